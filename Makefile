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

# The whole suite against real servers; spec/support/run-specs.sh stops them whatever happens.
test: downloadtask.so
	spec/support/run-specs.sh $(BUSTED_ARGS)

# A live progress bar against a local nginx that the runner starts and stops.
example: downloadtask.so
	$(LUA) examples/with-local-server.lua examples/progress.lua
