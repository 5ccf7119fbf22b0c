# lua-onecli - build, test and install.
#
#   make demo       install what is missing, build, run the quickstart
#                   against the bundled local OneCLI stand-in server
#   make test       install what is missing, build, run every test (ends
#                   "N passed, N failed, N skipped")
#   make build      build onecli.core for each runtime in RUNTIMES
#   make bench      time lua-onecli against a C floor, RSS/fds, batch vs sequential
#   make asan       the whole suite against an ASan+UBSan build
#   make valgrind   the whole suite under valgrind (no definite leaks)
#   make lint       luacheck
#   make fuzz       every libFuzzer target for FUZZ_SECONDS each (clang)
#   make isolation  every test alone (busted --filter), one by one
#   make install    install into PREFIX (LuaRocks variable names)
#
# Variables follow LuaRocks' names, so `luarocks make` and distro
# packagers can drive it: LUA_INCDIR, LIBFLAG, CFLAGS, PREFIX, LUADIR,
# LIBDIR, DESTDIR.

RUNTIMES    ?= lua5.1 lua5.3 lua5.4 luajit
CC          ?= cc
PKG_CONFIG  ?= pkg-config
BUSTED      ?= busted

WARNINGS    = -std=c99 -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes \
              -Wstrict-prototypes
CFLAGS      ?= -O2 -g
CFLAGS      += $(WARNINGS) -fPIC -fvisibility=hidden
LIBFLAG     ?= -shared
CURL_CFLAGS := $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
CURL_LIBS   := $(or $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null),-lcurl)

# Where each runtime's headers live (Debian paths).
INCDIR_lua5.1 = /usr/include/lua5.1
INCDIR_lua5.3 = /usr/include/lua5.3
INCDIR_lua5.4 = /usr/include/lua5.4
INCDIR_luajit = /usr/include/luajit-2.1

# Installation (single runtime; LUA_INCDIR picks the headers).
LUA_VERSION ?= 5.4
PREFIX      ?= /usr/local
LUADIR      ?= $(PREFIX)/share/lua/$(LUA_VERSION)
LIBDIR      ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUA_INCDIR  ?= /usr/include/lua$(LUA_VERSION)

SOURCES     = csrc/core.c csrc/json.c csrc/jsondec.c csrc/jsonenc.c csrc/errors.c csrc/backoff.c csrc/url.c csrc/http.c \
              csrc/transport.c csrc/multi.c
HEADERS     = csrc/onecli.h csrc/compat.h
LUA_MODULES = $(shell find lua -name '*.lua' | sort)

# Debian packages the build and the tests need.
DEB_BUILD   = gcc make pkg-config libcurl4-openssl-dev ca-certificates \
              lua5.1 liblua5.1-0-dev lua5.3 liblua5.3-dev lua5.4 liblua5.4-dev \
              luajit2 libluajit2-5.1-dev
# lua-cjson: the specs, the fuzz properties and the bench's floor compare
# against it (the library itself does not use it)
DEB_TEST    = $(DEB_BUILD) lua-cjson lua-busted lua-socket lua-check luarocks openssl locales \
              nginx libnginx-mod-http-lua neovim
DEB_CHECK   = $(DEB_TEST) valgrind

.PHONY: all build demo test test-only deps deps-build deps-check asan \
        valgrind lint install rock-check bench clean isolation

all: build

build: $(foreach r,$(RUNTIMES),build/$(r)/onecli/core.so build/$(r)/onecli_spec_fork.so)

build/%/onecli/core.so: $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(INCDIR_$*) $(CURL_CFLAGS) $(LIBFLAG) -o $@ $(SOURCES) $(CURL_LIBS)

# fork() for the specs (spec/support/fork.c): not part of the library
build/%/onecli_spec_fork.so: spec/support/fork.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(INCDIR_$*) $(LIBFLAG) -o $@ $<

# ---------------------------------------------------------------------
# Installing what is missing (Debian; needs root or sudo).

deps:
	@sh .ci/deps $(DEB_TEST)

deps-build:
	@sh .ci/deps $(DEB_BUILD)

deps-check:
	@sh .ci/deps $(DEB_CHECK)

# ---------------------------------------------------------------------

demo: deps
	@$(MAKE) --no-print-directory build
	lua5.4 examples/demo.lua

test: deps
	@$(MAKE) --no-print-directory build
	@$(MAKE) --no-print-directory test-only

# Runs busted under each runtime (TAP), luacheck, and the installed-rock
# check; prints one "N passed, N failed" line at the end.
test-only:
	@sh .ci/test-all "$(RUNTIMES)"

lint:
	luacheck lua spec examples

rock-check:
	@sh .ci/rock-check

# Runs every test of the suite alone (busted --filter on its full name),
# under lua5.4: a test that passes only after another one fails here.
isolation: deps
	@$(MAKE) --no-print-directory build RUNTIMES=lua5.4
	@sh .ci/isolation

# Times client.agents:list() (lua5.4 and LuaJIT) against a C floor
# (spec/bench/floor.c: one reused libcurl handle + cjson.decode, built into
# build/bench/floor) on a private nginx serving a 10-agent and a
# 4,000-agent list (static files, a free port of 127.0.0.1): interleaved
# rounds (nginx and the timed processes pinned to CPUs 1 and 0), median us
# per call, min-max, ratio to the floor. Then
# instructions per call (valgrind --tool=callgrind), VmRSS and open fds
# over 100,000 calls, and client:batch against sequential calls (50 calls,
# each answer delayed 100 ms). spec/bench/run.sh; prints, asserts
# nothing; under 3 minutes.
bench: deps-check
	@$(MAKE) --no-print-directory build RUNTIMES="lua5.4 luajit"
	@mkdir -p build/bench
	$(CC) -O2 -g $(WARNINGS) -I$(INCDIR_lua5.4) $(CURL_CFLAGS) -o build/bench/floor \
	    spec/bench/floor.c -llua5.4 $(CURL_LIBS)
	@sh spec/bench/run.sh

# ---------------------------------------------------------------------
# Memory checking.

ASAN_FLAGS = -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
             -fno-sanitize-recover=undefined

build/asan/onecli/core.so: $(SOURCES) $(HEADERS)
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -fPIC -fvisibility=hidden $(ASAN_FLAGS) -I$(INCDIR_lua5.4) \
	    $(CURL_CFLAGS) -shared -o $@ $(SOURCES) $(CURL_LIBS)

build/asan/onecli_spec_fork.so: spec/support/fork.c
	@mkdir -p $(dir $@)
	$(CC) $(WARNINGS) -fPIC -fvisibility=hidden $(ASAN_FLAGS) -I$(INCDIR_lua5.4) -shared -o $@ $<

asan: deps build/asan/onecli/core.so build/asan/onecli_spec_fork.so
	@LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	 ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	 ONECLI_BUILD_DIR=build/asan \
	 sh .ci/test-all lua5.4 asan

valgrind: deps-check build/lua5.4/onecli/core.so build/lua5.4/onecli_spec_fork.so
	@ONECLI_VALGRIND=1 sh .ci/test-all lua5.4 valgrind

# ---------------------------------------------------------------------

# Every module under lua/ keeps its place (lua/onecli/transport/nvim.lua
# -> $(LUADIR)/onecli/transport/nvim.lua).
install: build/lua$(LUA_VERSION)/onecli/core.so
	install -d $(DESTDIR)$(LIBDIR)/onecli
	for f in $(LUA_MODULES); do \
	    d="$(DESTDIR)$(LUADIR)/$$(dirname "$${f#lua/}")"; \
	    install -d "$$d" && install -m 644 "$$f" "$$d/" || exit 1; \
	done
	install -m 755 build/lua$(LUA_VERSION)/onecli/core.so $(DESTDIR)$(LIBDIR)/onecli/

clean:
	rm -rf build

# libFuzzer targets (make fuzz, make fuzz-ci): spec/fuzz/fuzz.mk
-include spec/fuzz/fuzz.mk
