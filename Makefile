# downloadtask: build, test, examples.  Every path and tool is a ?= variable.
LUA ?= lua5.4
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
ALL_CFLAGS = $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -D_POSIX_C_SOURCE=200809L $(LUA_CFLAGS) $(CURL_CFLAGS) $(CRYPTO_CFLAGS)
LDFLAGS ?=
LIBS = $(CURL_LIBS) $(CRYPTO_LIBS) -lpthread
BUSTED ?= $(LUA) /usr/bin/busted

SRC = src/module.c src/task.c src/dispatch.c src/engine.c src/files.c
OBJ = $(SRC:.c=.o)
HDR = src/dt.h src/binding.h src/compat.h src/files.h

.PHONY: all test example clean deps

all: downloadtask.so

downloadtask.so: $(OBJ)
	$(CC) -shared $(LDFLAGS) -o $@ $(OBJ) $(LIBS)

src/%.o: src/%.c $(HDR)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

clean:
	rm -f downloadtask.so src/*.o
	rm -rf $(LUA_VERSIONS:%=build/%)

# The whole suite against real servers; spec/support/run-specs.sh stops them whatever happens.
test: downloadtask.so
	spec/support/run-specs.sh $(BUSTED_ARGS)

# A live progress bar against a local nginx that the runner starts and stops.
example: downloadtask.so
	$(LUA) examples/with-local-server.lua examples/progress.lua

# ---- Every Lua (issue 5): 5.4, 5.3, 5.2, 5.1 and LuaJIT 2.1 ----------------------------
# build/<v>/downloadtask.so is built against that Lua (pkg-config lua5.x or luajit);
# `make test-<v>` runs the whole suite with that interpreter and that build;
# `make test-all` runs it for each version and fails when any of them fails.
LUA_VERSIONS ?= 5.4 5.3 5.2 5.1 luajit
lua_name = $(if $(filter luajit,$(1)),luajit,lua$(1))
LUA_BUILDS = $(LUA_VERSIONS:%=build/%/downloadtask.so)

.PHONY: test-all $(LUA_VERSIONS:%=test-%)

$(LUA_BUILDS): build/%/downloadtask.so: $(SRC) $(HDR)
	@mkdir -p $(@D)
	luacflags=$$($(PKG_CONFIG) --cflags $(call lua_name,$*)) && \
	$(CC) $(WARN) $(CFLAGS) -fPIC -fvisibility=hidden -D_POSIX_C_SOURCE=200809L $$luacflags \
	  $(CURL_CFLAGS) $(CRYPTO_CFLAGS) -shared $(LDFLAGS) -o $@ $(SRC) $(LIBS)

$(LUA_VERSIONS:%=test-%): test-%: build/%/downloadtask.so
	DT_TEST_LUA=$(call lua_name,$*) DT_TEST_CPATH='build/$*/?.so' spec/support/run-specs.sh $(BUSTED_ARGS)

test-all:
	@failed=; for v in $(LUA_VERSIONS); do \
	  start=$$(date +%s); \
	  if $(MAKE) --no-print-directory test-$$v; then r=passed; else r=FAILED; failed="$$failed $$v"; fi; \
	  echo "test-all: Lua $$v $$r in $$(( $$(date +%s) - start )) s"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-all: FAILED on:$$failed" >&2; exit 1; fi

# ---- Reliability (issue 3): sanitizers, valgrind, allocation failures, soak -------------
# Checked builds live in build/<kind>/, never in the top-level downloadtask.so; README.md's
# "Reliability" section says what each target proves. valgrind: preinstalled on the CI image,
# else `apt-get install valgrind`; the sanitizer runtimes come with gcc.
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
torture: downloadtask.so build/torture/torture build/asan/downloadtask.so build/asan/torture
	build/torture/torture -c './?.so' $(TORTURE_ARGS) spec/torture/downloads.lua
	build/torture/torture -c './?.so' -m once $(TORTURE_ARGS) spec/torture/downloads.lua
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
	  build/asan/torture -c 'build/asan/?.so' -s $(TORTURE_ASAN_STEP) $(TORTURE_ARGS) spec/torture/downloads.lua

# The seeded random invariant tester (tools/chaos/, README "Reliability"): cases drawn from
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
soak: downloadtask.so
	BUSTED=tools/soak.lua DT_TEST_LUA=$(LUA) spec/support/run-specs.sh $(SOAK_ARGS)
bench: downloadtask.so $(eval .PHONY: bench) ; $(LUA) bench/run.lua $(BENCH_ARGS)

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
