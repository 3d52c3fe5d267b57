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

SRC = src/module.c src/task.c src/dispatch.c src/engine.c
OBJ = $(SRC:.c=.o)
HDR = src/dt.h src/binding.h src/compat.h

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
bench: downloadtask.so $(eval .PHONY: bench) ; $(LUA) bench/run.lua $(BENCH_ARGS)
