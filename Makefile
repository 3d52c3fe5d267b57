# downloadtask: build, test, examples.  Every path and tool is a ?= variable.
#
# Out-of-tree builds (issue 16): each Lua has a build directory of its own, build/<v>/
# (v = 5.4, 5.3, 5.2, 5.1 or luajit) holding its objects and its downloadtask.so, whatever
# the entry point (`make`, `make build/<v>/downloadtask.so`, `make test-<v>`, `luarocks
# make`). Nothing is compiled into src/, so builds for two Lua versions never share an
# object. The top-level downloadtask.so is a symlink to build/5.4/downloadtask.so, remade
# by every `make`, for tools that load ./?.so: it always is the Lua 5.4 build.
#
# V picks the Lua that `make`, `make test` and `make example` build for and run; it follows
# LUA (`make LUA=lua5.3` builds build/5.3 and tests with lua5.3), and LUA follows V
# (`make test V=luajit`).
ifeq ($(origin LUA),undefined)
V ?= 5.4
LUA = $(call lua_name,$(V))
else
V ?= $(call lua_version_of,$(firstword $(LUA)))
endif
LUA_PC ?= lua5.4
PKG_CONFIG ?= pkg-config
CC ?= cc
LUA_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags $(LUA_PC))
CURL_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libcurl)
CURL_LIBS ?= $(shell $(PKG_CONFIG) --libs libcurl)
CRYPTO_CFLAGS ?= $(shell $(PKG_CONFIG) --cflags libcrypto)
CRYPTO_LIBS ?= $(shell $(PKG_CONFIG) --libs libcrypto)
OPT ?= -O2 -g
WARN ?= -std=c11 -Wall -Wextra -Wpedantic -Wmissing-prototypes -Wshadow
CFLAGS ?= $(OPT)
DEFS = -fPIC -fvisibility=hidden -D_POSIX_C_SOURCE=200809L -I$(GEN)
ALL_CFLAGS = $(WARN) $(CFLAGS) $(DEFS) $(LUA_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS)
LDFLAGS ?=
LIBS = $(CURL_LIBS) $(CRYPTO_LIBS) -lpthread
BUSTED ?= $(LUA) /usr/bin/busted

# One platform file a platform (src/platform.h): platform_posix.c here, platform_win.c for Windows.
COMMON_SRC = src/module.c src/task.c src/options.c src/httpdate.c src/await.c src/dispatch.c src/engine.c src/transfer.c src/body.c src/segments.c src/files.c src/ranges.c src/record.c src/headers.c src/pace.c src/queue.c
SRC = $(COMMON_SRC) src/notify.c src/platform_posix.c
WIN_SRC = $(COMMON_SRC) src/notify_none.c src/platform_win.c
HDR = src/dt.h src/binding.h src/options.h src/httpdate.h src/compat.h src/files.h src/notify.h src/platform.h src/ranges.h src/record.h src/engine_int.h $(GEN)/ngx_lua.h
GEN = build/gen

# Every Lua the sources support. LUA_VERSIONS (the ones test-all runs) may be narrowed on
# the command line; the build rules exist for all of these whatever it says.
KNOWN_LUAS = 5.4 5.3 5.2 5.1 luajit
LUA_VERSIONS ?= $(KNOWN_LUAS)
lua_name = $(if $(filter luajit,$(1)),luajit,lua$(1))
lua_version_of = $(if $(filter luajit%,$(notdir $(1))),luajit,$(patsubst lua%,%,$(notdir $(1))))
# The headers of each Lua: pkg-config's lua5.x / luajit, or LUA_CFLAGS_<v>=-I... given by hand
# (a Lua that pkg-config does not know, e.g. built from source into /usr/local).
$(foreach v,$(KNOWN_LUAS),$(eval LUA_CFLAGS_$(v) ?= $$(shell $$(PKG_CONFIG) --cflags $(call lua_name,$(v)))))

BUILD = build/$(V)
MODULE = $(BUILD)/downloadtask.so

.PHONY: all test example clean deps FORCE

all: $(MODULE) $(if $(filter 5.4,$(V)),downloadtask.so)

# A LUA whose version the name does not tell (LUA=/opt/lua/bin/lua) needs V.
check_v = $(if $(filter $(V),$(KNOWN_LUAS)),,$(error cannot tell the Lua version of LUA='$(LUA)': set V to one of $(KNOWN_LUAS)))
$(if $(filter $(V),$(KNOWN_LUAS)),,$(MODULE)): ; $(check_v)

# build/<v>/src/*.o and build/<v>/downloadtask.so, for each Lua.
define lua_build
build/$(1)/src/%.o: src/%.c $$(HDR)
	@mkdir -p $$(@D)
	$$(CC) $$(WARN) $$(CFLAGS) $$(DEFS) $$(LUA_CFLAGS_$(1)) $$(CURL_CFLAGS) $$(CRYPTO_CFLAGS) -c -o $$@ $$<

build/$(1)/downloadtask.so: $$(SRC:src/%.c=build/$(1)/src/%.o)
	$$(CC) -shared $$(LDFLAGS) -o $$@ $$^ $$(LIBS)
endef
$(foreach v,$(KNOWN_LUAS),$(eval $(call lua_build,$(v))))

# Remade at every make (FORCE): whatever replaced it (an old Makefile's build, a copy), it
# points at the Lua 5.4 build again afterwards.
downloadtask.so: build/5.4/downloadtask.so FORCE
	@if [ "$$(readlink $@ 2>/dev/null)" != $< ]; then rm -f $@ && ln -s $< $@; fi

# The await method and OpenResty's poller are Lua (lua/downloadtask/ngx.lua), compiled into
# the module: task.c includes it as a byte array made here, so `require "downloadtask"` needs
# no .lua file at run time. A byte array, not a string: ISO C guarantees string literals of
# 4095 bytes only (-Woverlength-strings). od and sed, as every POSIX system has them.
$(GEN)/ngx_lua.h: lua/downloadtask/ngx.lua
	@mkdir -p $(@D)
	{ echo '/* generated from $< by the Makefile: do not edit */'; \
	  echo 'static const unsigned char NGX_LUA[] = {'; \
	  od -An -v -tx1 $< | sed -e 's/\([0-9a-f][0-9a-f]\)/0x\1,/g' -e 's/^ *//'; \
	  echo '};'; } >$@.tmp && mv $@.tmp $@

clean:
	rm -rf build downloadtask.so src/*.o

# The whole suite against real servers with the Lua V and its build;
# spec/support/run-specs.sh stops the servers whatever happens.
test: $(MODULE)
	$(check_v)DT_TEST_LUA=$(LUA) DT_TEST_CPATH='$(BUILD)/?.so' spec/support/run-specs.sh $(BUSTED_ARGS)

# A live progress bar against a local nginx that the runner starts and stops. The runner
# loads build/<v>/ of the Lua that runs it.
example: $(MODULE)
	$(check_v)$(LUA) examples/with-local-server.lua examples/progress.lua

# ---- Every Lua (issue 5): 5.4, 5.3, 5.2, 5.1 and LuaJIT 2.1 ----------------------------
# `make test-<v>` runs the whole suite with that interpreter and build/<v>/downloadtask.so;
# `make test-all` runs it for each version and fails when any of them fails.
.PHONY: test-all $(KNOWN_LUAS:%=test-%)

$(KNOWN_LUAS:%=test-%): test-%: build/%/downloadtask.so
	DT_TEST_LUA=$(call lua_name,$*) DT_TEST_CPATH='build/$*/?.so' spec/support/run-specs.sh $(BUSTED_ARGS)

test-all:
	@failed=; for v in $(LUA_VERSIONS); do \
	  start=$$(date +%s); \
	  if $(MAKE) --no-print-directory test-$$v; then r=passed; else r=FAILED; failed="$$failed $$v"; fi; \
	  echo "test-all: Lua $$v $$r in $$(( $$(date +%s) - start )) s"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-all: FAILED on:$$failed" >&2; exit 1; fi

# ---- LuaRocks (issue 16) -------------------------------------------------------------
# rockspec/*.rockspec build with `type = "make"`: luarocks runs `make rock` with its own
# variables (the Lua headers it picked, libcurl's and libcrypto's directories, its CFLAGS
# and LIBFLAG), then `make rock-install`. The objects go to build/rock/<Lua include dir>/,
# recompiled every time (luarocks builds once; nothing there can be stale), so the clone
# keeps no object and no downloadtask.so from it. rock-install also installs the
# lua-language-server stubs (lua/downloadtask/types.lua).
LUA_INCDIR ?= /usr/include/lua5.4
ROCK_CFLAGS ?= -O2 -fPIC
LIBFLAG ?= -shared
ROCK_DIR = build/rock/$(notdir $(LUA_INCDIR))
rock_dirs = $(foreach d,$(1),$(if $(strip $(d)),$(2)$(d)))
.PHONY: rock rock-install rockspec

rock: FORCE $(GEN)/ngx_lua.h
	rm -rf $(ROCK_DIR) && mkdir -p $(ROCK_DIR)
	for f in $(SRC); do \
	  $(CC) $(WARN) $(ROCK_CFLAGS) $(DEFS) -I$(LUA_INCDIR) $(call rock_dirs,$(sort $(CURL_INCDIR) $(OPENSSL_INCDIR)),-I) \
	    -c -o $(ROCK_DIR)/$$(basename $$f .c).o $$f || exit 1; \
	done
	$(CC) $(LIBFLAG) $(LDFLAGS) -o $(ROCK_DIR)/downloadtask.so $(SRC:src/%.c=$(ROCK_DIR)/%.o) \
	  $(call rock_dirs,$(sort $(CURL_LIBDIR) $(OPENSSL_LIBDIR)),-L) -lcurl -lcrypto -lpthread

rock-install:
	@[ -n "$(INST_LIBDIR)" ] && [ -n "$(INST_LUADIR)" ] || { echo "make rock-install: INST_LIBDIR and INST_LUADIR are luarocks' to give" >&2; exit 2; }
	mkdir -p $(INST_LIBDIR) $(INST_LUADIR)/downloadtask
	cp $(ROCK_DIR)/downloadtask.so $(INST_LIBDIR)/
	cp lua/downloadtask/types.lua $(INST_LUADIR)/downloadtask/

# The release rockspec: build/rockspec/downloadtask-<DT_VERSION>-1.rockspec, made from the
# scm one with the version of src/dt.h, the release's git tag v<DT_VERSION> and ROCK_URL
# (the published repository, git+https://...; no default: the scm rockspec names none).
DT_VERSION := $(shell sed -n 's/^\#define DT_VERSION "\(.*\)"/\1/p' src/dt.h)
ROCK_URL ?=
ROCK_RELEASE = build/rockspec/downloadtask-$(DT_VERSION)-1.rockspec

rockspec: $(ROCK_RELEASE)
	@echo "make rockspec: $(ROCK_RELEASE)"

$(ROCK_RELEASE): rockspec/downloadtask-scm-1.rockspec src/dt.h
	@[ -n "$(DT_VERSION)" ] || { echo "make rockspec: no DT_VERSION in src/dt.h" >&2; exit 1; }
	@case "$(ROCK_URL)" in git+https://*|https://*) ;; *) echo "make rockspec: set ROCK_URL to the published repository (git+https://host/owner/downloadtask.git)" >&2; exit 1 ;; esac
	@mkdir -p $(@D)
	sed -e 's|^version = "scm-1"|version = "$(DT_VERSION)-1"|' \
	    -e 's|^  url = .*|  url = "$(ROCK_URL)",\n  tag = "v$(DT_VERSION)",|' $< >$@.tmp
	@grep -q '^version = "$(DT_VERSION)-1"' $@.tmp && grep -q '^  tag = "v$(DT_VERSION)"' $@.tmp \
	  || { echo "make rockspec: $< has no version/url line to replace" >&2; rm -f $@.tmp; exit 1; }
	mv $@.tmp $@

# ---- Reliability (issue 3): sanitizers, valgrind, allocation failures, soak -------------
# Checked builds live in build/<kind>/, never in the top-level downloadtask.so; docs/maintainers.md's
# "Reliability" section says what each target proves. valgrind comes with `./dev deps`
# (which `./dev test`, and so .ci/run, runs first); the sanitizer runtimes come with gcc.
LUA_LIBS ?= $(shell $(PKG_CONFIG) --libs $(LUA_PC))
SAN_OPT ?= -O1 -g -fno-omit-frame-pointer
ASAN_FLAGS ?= -fsanitize=address,undefined
TSAN_FLAGS ?= -fsanitize=thread
TORTURE_ARGS ?=
TORTURE_ASAN_STEP ?= 1

.PHONY: asan tsan valgrind torture soak

build/asan/src/%.o: src/%.c $(HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SAN_OPT) $(ASAN_FLAGS) -c -o $@ $<

build/tsan/src/%.o: src/%.c $(HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) $(SAN_OPT) $(TSAN_FLAGS) -c -o $@ $<

build/asan/downloadtask.so: $(SRC:src/%.c=build/asan/src/%.o)
	$(CC) -shared $(LDFLAGS) $(ASAN_FLAGS) -o $@ $^ $(LIBS)

build/tsan/downloadtask.so: $(SRC:src/%.c=build/tsan/src/%.o)
	$(CC) -shared $(LDFLAGS) $(TSAN_FLAGS) -o $@ $^ $(LIBS)

# A lua5.4 command line linked with the sanitizer's runtime (tools/luahost.c).
build/asan/luahost: tools/luahost.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(SAN_OPT) $(ASAN_FLAGS) $(LUA_CFLAGS) -o $@ $< $(LUA_LIBS)

build/tsan/luahost: tools/luahost.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(SAN_OPT) $(TSAN_FLAGS) $(LUA_CFLAGS) -o $@ $< $(LUA_LIBS)

# The allocation-failure host (tools/torture.c), plain and under ASan+UBSan.
build/torture/torture: tools/torture.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(SAN_OPT) $(LUA_CFLAGS) -o $@ $< $(LUA_LIBS) -ldl

build/asan/torture: tools/torture.c
	@mkdir -p $(@D)
	$(CC) $(WARN) $(SAN_OPT) $(ASAN_FLAGS) $(LUA_CFLAGS) -o $@ $< $(LUA_LIBS) -ldl

# The whole suite, module and Lua host under ASan+UBSan; any report fails it (~2 min).
asan: build/asan/downloadtask.so build/asan/luahost
	tools/checked-suite.sh asan build/asan $(BUSTED_ARGS)

# The whole suite under TSan (every spec drives the engine thread); any race report fails it
# (~2.5 min). Left out: the RSS bound of "1000 tiny downloads" (TSan's shadow memory and
# its allocator's quarantine grow RSS by design; make soak and make asan bound it).
TSAN_SKIP ?= --filter-out=without growing memory
tsan: build/tsan/downloadtask.so build/tsan/luahost
	tools/checked-suite.sh tsan build/tsan "$(TSAN_SKIP)" $(BUSTED_ARGS)

# memcheck over the whole suite with the ordinary build: zero errors, nothing definitely
# lost (~2.5 min). Left out: the fork() case, whose child never frees the parent's engine
# by design (engine_forget drops the pointer: memcheck counts it definitely lost and the
# child exits 99); make asan runs it.
VALGRIND_SKIP ?= --filter-out=fork%(%) the child
valgrind: downloadtask.so
	tools/checked-suite.sh valgrind build/valgrind "$(VALGRIND_SKIP)" $(BUSTED_ARGS)

# spec/torture/downloads.lua with its n-th Lua allocation failing, for every n: on the
# ordinary build, failing from the n-th on (~10 s) and failing the n-th only, which Lua's
# emergency collection retries (~10 s: a full collection at every allocation); then with
# the module and the host under ASan+UBSan, LeakSanitizer checking every run (~45 s;
# TORTURE_ASAN_STEP=k takes every k-th n).
torture: build/5.4/downloadtask.so build/torture/torture build/asan/downloadtask.so build/asan/torture
	build/torture/torture -c 'build/5.4/?.so' $(TORTURE_ARGS) spec/torture/downloads.lua
	build/torture/torture -c 'build/5.4/?.so' -m once $(TORTURE_ARGS) spec/torture/downloads.lua
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  build/asan/torture -c 'build/asan/?.so' -s $(TORTURE_ASAN_STEP) $(TORTURE_ARGS) spec/torture/downloads.lua

# The seeded random invariant tester (tools/chaos/, docs/maintainers.md "Reliability"): cases drawn from
# SEED (default: the clock, printed first) run SECONDS (default 60) or N cases, several at
# once; CASE=k replays case k of SEED alone. CHAOS_CPATH picks the module (a cpath template,
# e.g. another worktree's build); CHECK=asan runs it with the module and the Lua host under
# ASan+UBSan (tools/checked-suite.sh: any report fails it). chaos-long: as long as SECONDS says.
SEED ?=
N ?=
CASE ?=
SECONDS ?= 60
CHAOS_CPATH ?= ./?.so
CHECK ?=
CHAOS_ARGS = $(if $(SEED),--seed=$(SEED)) $(if $(N),--n=$(N)) $(if $(CASE),--case=$(CASE)) --seconds=$(SECONDS)
.PHONY: chaos chaos-long
chaos chaos-long: $(if $(filter asan,$(CHECK)),build/asan/downloadtask.so build/asan/luahost,downloadtask.so)
	$(if $(filter asan,$(CHECK)),BUSTED=tools/chaos/run.lua tools/checked-suite.sh asan build/asan $(CHAOS_ARGS),\
	  BUSTED=tools/chaos/run.lua DT_TEST_LUA=$(LUA) DT_TEST_CPATH='$(CHAOS_CPATH)' spec/support/run-specs.sh $(CHAOS_ARGS))

# 10,000 downloads in one process: RSS, descriptors and registry references must come back.
soak: $(MODULE)
	BUSTED=tools/soak.lua DT_TEST_LUA=$(LUA) DT_TEST_CPATH='$(BUILD)/?.so' spec/support/run-specs.sh $(SOAK_ARGS)
bench: downloadtask.so $(eval .PHONY: bench) ; $(LUA) bench/run.lua $(BENCH_ARGS)
# issue 15's OpenResty figures (bench/openresty.lua): a real nginx with the Lua module, which
# loads build/luajit/downloadtask.so; writes the OpenResty section of bench/results.md.
bench-openresty: build/luajit/downloadtask.so build/5.4/downloadtask.so $(eval .PHONY: bench-openresty)
	BUSTED=bench/openresty.lua DT_TEST_LUA=lua5.4 spec/support/run-specs.sh $(BENCH_ARGS)

# ---- C unit tests of the pure parts (tests/unit/) ---------------------------------------
# `make unit`: each pure source with its tests, under ASan and UBSan, no libcurl, no Lua;
# ends with "<n> passed, <m> failed". A pure part is one whose file includes neither
# curl.h nor lua.h (src/ranges.c, record.c, httpdate.c, headers.c, pace.c and queue.c).
UNIT_SRC = src/ranges.c src/record.c src/httpdate.c src/headers.c src/pace.c src/queue.c
UNIT_TESTS = tests/unit/main.c tests/unit/test_ranges.c tests/unit/test_record.c tests/unit/test_httpdate.c \
  tests/unit/test_headers.c tests/unit/test_pace.c tests/unit/test_queue.c
.PHONY: unit

build/unit/unit: $(UNIT_SRC) $(UNIT_TESTS) tests/unit/unit.h src/ranges.h src/record.h src/httpdate.h src/headers.h src/pace.h src/queue.h
	@mkdir -p $(@D)
	$(CC) $(WARN) -Werror $(SAN_OPT) $(ASAN_FLAGS) -fno-sanitize-recover=all -D_POSIX_C_SOURCE=200809L -o $@ $(UNIT_SRC) $(UNIT_TESTS) -lm

# ... and the notifier socket (notify.c) with real sockets, built with the platform layer
build/unit/notify: tests/unit/test_notify.c tests/unit/notify_main.c src/notify.c src/platform_posix.c src/notify.h src/platform.h tests/unit/unit.h
	@mkdir -p $(@D)
	$(CC) $(WARN) -Werror $(SAN_OPT) $(ASAN_FLAGS) -fno-sanitize-recover=all $(DEFS) $(CRYPTO_CFLAGS) -o $@ \
	  tests/unit/notify_main.c tests/unit/test_notify.c src/notify.c src/platform_posix.c $(CRYPTO_LIBS) -lpthread -ldl

unit: build/unit/unit build/unit/notify
	ASAN_OPTIONS=detect_leaks=1 build/unit/unit
	ASAN_OPTIONS=detect_leaks=1 build/unit/notify

# ---- Fuzzing the parsers of untrusted bytes (tests/fuzz/) --------------------------------
# `make fuzz`: one libFuzzer target per parser of what a server, the disk or a caller hands
# over (Content-Range, the part's record, the ranges decision, HTTP dates, header lines), each run FUZZ_SECONDS from its
# committed seed corpus (tests/fuzz/corpus/<name>/; what it finds goes to build/fuzz/), under
# ASan and UBSan; each prints "fuzz <name>: <runs> runs, 0 crashes". Debian's clang and
# libclang-rt-14-dev (the fuzzer runtime) come with ./dev deps.
FUZZ_CC ?= clang
FUZZ_SECONDS ?= 20
FUZZ_TARGETS = content_range record decide httpdate header
.PHONY: fuzz

build/fuzz/%: tests/fuzz/fuzz_%.c $(UNIT_SRC) src/ranges.h src/record.h src/httpdate.h src/headers.h src/pace.h src/queue.h
	@mkdir -p $(@D)
	$(FUZZ_CC) -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
	  -D_POSIX_C_SOURCE=200809L -o $@ $< $(UNIT_SRC)

fuzz: $(FUZZ_TARGETS:%=build/fuzz/%)
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p build/fuzz/corpus/$$t; \
	  build/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) -artifact_prefix=build/fuzz/$$t- \
	    build/fuzz/corpus/$$t tests/fuzz/corpus/$$t >build/fuzz/$$t.log 2>&1; rc=$$?; \
	  runs=$$(sed -n 's/^Done \([0-9]*\) runs.*/\1/p' build/fuzz/$$t.log); \
	  if [ $$rc -ne 0 ]; then tail -n 30 build/fuzz/$$t.log; \
	    echo "fuzz $$t: $${runs:-?} runs, 1 crash (build/fuzz/$$t.log, build/fuzz/$$t-*)" >&2; exit 1; fi; \
	  echo "fuzz $$t: $$runs runs, 0 crashes"; \
	done

# ---- Interop: server software we did not write (issue 22) -------------------------------
# `make interop`: tools/interop/deps.sh installs Apache, lighttpd, caddy, h2o, nghttpd, httpbin
# (gunicorn), squid, tinyproxy, dante and microsocks from Debian (none left running or enabled), then
# tools/interop/run.lua starts each on free loopback ports from tools/interop/conf/ and
# compares the module with the curl command on every case; a server that cannot start is
# skipped with its reason. INTEROP_ARGS=--only=apache2,squid narrows it.
INTEROP_ARGS ?=
.PHONY: interop
interop: downloadtask.so
	tools/interop/deps.sh
	BUSTED=tools/interop/run.lua DT_TEST_LUA=$(LUA) DT_TEST_CPATH='./?.so' spec/support/run-specs.sh $(INTEROP_ARGS)

# ---- Reference (issue 5): HTML from the /*** comments of src/module.c and src/task.c -----
# LDoc (Debian lua-ldoc) with Markdown by lua-discount, configured by config.ld; both come
# with `./dev deps`. Installs nothing itself. DOC_DIR picks the output directory.
LDOC ?= ldoc
DOC_DIR ?= doc/html

.PHONY: doc

doc:
	@command -v $(firstword $(LDOC)) >/dev/null 2>&1 || { echo "make doc: '$(firstword $(LDOC))' not found; install Debian's lua-ldoc and lua-discount (./dev deps)" >&2; exit 1; }
	@mkdir -p $(DOC_DIR)
	@out=$$($(LDOC) --fatalwarnings -d $(abspath $(DOC_DIR)) . 2>&1); rc=$$?; \
	if [ $$rc -ne 0 ]; then printf '%s\n' "$$out" >&2; echo "make doc: ldoc failed" >&2; exit 1; fi; \
	if printf '%s\n' "$$out" | grep -q 'not found'; then printf '%s\n' "$$out" >&2; \
	  echo "make doc: no Markdown formatter for ldoc; install Debian's lua-discount (./dev deps)" >&2; exit 1; fi; \
	echo "make doc: $(DOC_DIR)/index.html"

# ---- The portable POSIX build (issue 12) ------------------------------------------------
# The code macOS and the BSDs compile, built and tested on Linux: POSIX.1-2008 only (no
# _GNU_SOURCE, no pipe2), and -DDT_PORTABLE switches off what the sources take from glibc
# when they find it (malloc_usable_size for the receive-buffer cache). `make
# test-posix-portable` runs the whole suite against build/portable/downloadtask.so.
PORTABLE_DEFS = -fPIC -fvisibility=hidden -D_POSIX_C_SOURCE=200809L -DDT_PORTABLE -I$(GEN)
.PHONY: test-posix-portable

build/portable/src/%.o: src/%.c $(HDR)
	@mkdir -p $(@D)
	$(CC) $(WARN) $(CFLAGS) $(PORTABLE_DEFS) $(LUA_CFLAGS_5.4) $(CURL_CFLAGS) $(CRYPTO_CFLAGS) -c -o $@ $<

build/portable/downloadtask.so: $(SRC:src/%.c=build/portable/src/%.o)
	$(CC) -shared $(LDFLAGS) -o $@ $^ $(LIBS)

test-posix-portable: build/portable/downloadtask.so portable-symbols
	DT_TEST_LUA=lua5.4 DT_TEST_CPATH='build/portable/?.so' spec/support/run-specs.sh $(BUSTED_ARGS)

# Every function the portable build takes from outside libcurl, Lua and libcrypto is in
# tools/portable-symbols.txt (POSIX 2008, C11, glibc's names for them): a Linux-only call
# outside platform_posix.c's #ifdefs (accept4, pipe2, malloc_usable_size) fails it.
.PHONY: portable-symbols
portable-symbols: build/portable/downloadtask.so
	@sed -e 's/#.*//' tools/portable-symbols.txt | tr ' ' '\n' | grep . >build/portable/allowed.txt
	@bad=$$(nm -D --undefined-only $< | awk '{print $$2}' | sed 's/@.*//' | \
	  grep -Ev '^(curl_|lua_|luaL_|EVP_|_ITM_|__gmon_start__$$|_Jv_)' | \
	  grep -vxF -f build/portable/allowed.txt); \
	if [ -n "$$bad" ]; then echo "portable-symbols: the portable build calls what POSIX 2008 has not:" $$bad >&2; exit 1; fi; \
	echo "portable-symbols: every call of the portable build is POSIX 2008, C11, libcurl, Lua or libcrypto"

# ---- Windows x64, tested under wine (issue 12) --------------------------------------------
# `make windows-deps`: mingw-w64 and wine from Debian, and the sources of curl, lua5.4 and
# luajit from `apt-get source`, cross-built into $(WIN_DEPS) (tools/windows/deps.sh; cached:
# a second run does nothing). `make windows`: the interpreters and their DLLs in
# build/windows/{lua5.4,luajit}/, the probe module (tools/windows/probe.c, a tool-chain
# check that is not downloadtask), the wine prefix and downloadtask.dll from src/ with
# src/platform_win.c for each (WIN_MODULE=no leaves the module out).
# `make test-windows`: spec/portable/ under wine with both interpreters, against servers
# started here (tools/windows/run-portable.lua); a missing downloadtask.dll is a failure.
# `make test-portable`: the same specs on Linux with $(LUA) and ./downloadtask.so.
WIN_CROSS ?= x86_64-w64-mingw32-
WIN_CC ?= $(WIN_CROSS)gcc
WIN_DIR ?= build/windows
WIN_DEPS ?= $(WIN_DIR)/deps
WIN_OPT ?= -O2
WIN_CURL_CFLAGS ?= -DCURL_STATICLIB -I$(WIN_DEPS)/curl/include
WIN_CURL_LIBS ?= $(WIN_DEPS)/curl/lib/libcurl.a -lbcrypt -ladvapi32 -lcrypt32 -lws2_32
# winpthread and libgcc linked in: the DLL needs Windows' own DLLs and its Lua DLL only
WIN_MODULE_LIBS ?= $(WIN_CURL_LIBS) -static-libgcc -Wl,-Bstatic -lpthread -Wl,-Bdynamic
WIN_MODULE ?= yes
WIN_LUAS = lua5.4 luajit
# What a module DLL may import besides its Lua DLL: Windows' own DLLs (case-insensitive)
WIN_SYSTEM_DLLS ?= kernel32 msvcrt ws2_32 advapi32 bcrypt crypt32 secur32 normaliz user32 shell32 ole32
WINEPREFIX ?= $(CURDIR)/$(WIN_DIR)/wineprefix
win_luadll = $(if $(filter luajit,$(1)),lua51.dll,lua54.dll)
win_luaexe = $(if $(filter luajit,$(1)),luajit.exe,lua.exe)
WIN_STAMPS = $(WIN_DEPS)/stamps/curl $(WIN_DEPS)/stamps/lua5.4 $(WIN_DEPS)/stamps/luajit
WIN_INTERP = $(foreach v,$(WIN_LUAS),$(WIN_DIR)/$(v)/$(call win_luaexe,$(v)) $(WIN_DIR)/$(v)/$(call win_luadll,$(v)))
WIN_PROBES = $(WIN_LUAS:%=$(WIN_DIR)/%/probe.dll)
WIN_MODULES = $(WIN_LUAS:%=$(WIN_DIR)/%/downloadtask.dll)

.PHONY: windows-deps windows test-windows test-portable

windows-deps:
	DEPS=$(WIN_DEPS) CROSS=$(WIN_CROSS) tools/windows/deps.sh

$(WIN_STAMPS) &:
	DEPS=$(WIN_DEPS) CROSS=$(WIN_CROSS) tools/windows/deps.sh

$(WIN_DIR)/lua5.4/lua.exe $(WIN_DIR)/lua5.4/lua54.dll: $(WIN_DEPS)/stamps/lua5.4
	@mkdir -p $(@D)
	cp $(WIN_DEPS)/lua5.4/$(@F) $@

$(WIN_DIR)/luajit/luajit.exe $(WIN_DIR)/luajit/lua51.dll: $(WIN_DEPS)/stamps/luajit
	@mkdir -p $(@D)
	cp $(WIN_DEPS)/luajit/$(@F) $@

# Linked against the Lua DLL itself (mingw's ld needs no import library) and the static
# libcurl, so the DLL needs system DLLs and that Lua DLL only.
$(WIN_PROBES): $(WIN_DIR)/%/probe.dll: tools/windows/probe.c $(WIN_DEPS)/stamps/curl
	$(WIN_CC) $(WARN) $(WIN_OPT) $(WIN_CURL_CFLAGS) -I$(WIN_DEPS)/$*/include -shared -s -o $@ \
	  $< $(WIN_DIR)/$*/$(call win_luadll,$*) $(WIN_CURL_LIBS)

$(WIN_MODULES): $(WIN_DIR)/%/downloadtask.dll: $(WIN_SRC) $(HDR) $(WIN_DEPS)/stamps/curl
	$(WIN_CC) $(WARN) $(WIN_OPT) $(WIN_CURL_CFLAGS) -I$(GEN) -I$(WIN_DEPS)/$*/include -shared -s -o $@ \
	  $(WIN_SRC) $(WIN_DIR)/$*/$(call win_luadll,$*) $(WIN_MODULE_LIBS)

# each Lua's DLL, which the modules link against
$(WIN_DIR)/lua5.4/probe.dll $(WIN_DIR)/lua5.4/downloadtask.dll: $(WIN_DIR)/lua5.4/lua54.dll
$(WIN_DIR)/luajit/probe.dll $(WIN_DIR)/luajit/downloadtask.dll: $(WIN_DIR)/luajit/lua51.dll

# A fresh prefix takes wine ~8 s; `wineserver -w` waits until its registry is on disk.
$(WINEPREFIX)/system.reg:
	@start=$$(date +%s.%N); \
	WINEPREFIX=$(WINEPREFIX) WINEDEBUG=-all wine wineboot --init >/dev/null 2>&1 && \
	WINEPREFIX=$(WINEPREFIX) wineserver -w && \
	echo "windows: wine prefix $(WINEPREFIX) made in $$(echo "$$(date +%s.%N) $$start" | awk '{ printf "%.1f", $$1 - $$2 }') s"

windows: $(WIN_INTERP) $(WIN_PROBES) $(WINEPREFIX)/system.reg $(if $(filter yes,$(WIN_MODULE)),$(WIN_MODULES))
	@bad=; for f in $(WIN_PROBES) $(if $(filter yes,$(WIN_MODULE)),$(WIN_MODULES)); do \
	  dlls=$$($(WIN_CROSS)objdump -p $$f | sed -n 's/^\tDLL Name: //p'); echo "windows: $$f imports" $$dlls; \
	  for d in $$dlls; do n=$$(echo "$${d%.dll}" | sed 's/\.DLL$$//' | tr A-Z a-z); \
	    case " $(WIN_SYSTEM_DLLS) lua54 lua51 " in *" $$n "*) ;; *) bad="$$bad $$f:$$d";; esac; done; \
	done; if [ -n "$$bad" ]; then echo "windows: imports outside Windows and the Lua DLL:$$bad" >&2; exit 1; fi

test-windows: windows
	BUSTED=tools/windows/run-portable.lua DT_TEST_LUA=$(LUA) WINEPREFIX=$(WINEPREFIX) \
	  WINDOWS_REQUIRE_MODULE=$(if $(filter yes,$(WIN_MODULE)),1,0) spec/support/run-specs.sh $(WIN_LUAS)

test-portable: downloadtask.so
	BUSTED=tools/windows/run-portable.lua DT_TEST_LUA=$(LUA) spec/support/run-specs.sh linux
