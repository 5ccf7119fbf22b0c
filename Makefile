# lua-onecli - build, test and install.
#
#   make            the Neovim plugin build (the default, `all`): builds
#                   onecli.core for LuaJIT and puts it at lua/onecli/core.so,
#                   where Neovim's runtimepath loader finds it (lazy.nvim
#                   `build = "make"`, packer `run = "make"`, pack/*/start +
#                   `make`). Only that build: the other runtimes' headers
#                   need not be installed. Uses LuaJIT's headers
#                   (/usr/include/luajit-2.1, else `pkg-config luajit`),
#                   else Lua 5.1's (LuaJIT's C API is 5.1's); LUAJIT_INCDIR
#                   overrides. lua/onecli/core.so is never committed.
#                   (`make plugin` is the same.) A build failing for want
#                   of headers says which Debian package to install.
#   make demo       install what is missing, build, run the quickstart
#                   against the bundled local OneCLI stand-in server
#   make test       install what is missing, build, run every test (ends
#                   "N passed, N failed, N skipped")
#   make build      build onecli.core for each runtime in RUNTIMES (strict:
#                   fails naming the missing headers' Debian package); with
#                   luajit among them it refreshes lua/onecli/core.so too,
#                   so a stale copy never shadows a new build in Neovim
#   make bench      time lua-onecli against a C floor, RSS/fds, batch vs
#                   sequential, async transports' added latency
#   make asan       the whole suite against an ASan+UBSan build (Neovim,
#                   in the nvim specs, loads the plain lua/onecli/core.so)
#   make valgrind   the whole suite under valgrind (no definite leaks)
#   make lint       luacheck
#   make fuzz       every libFuzzer target for FUZZ_SECONDS each (clang)
#   make isolation  every test alone (busted --filter), one by one
#   make install    install into PREFIX (LuaRocks variable names), with
#                   the onecli-standin command in BINDIR
#   make rock       the source rock of the versioned rockspec, made offline
#                   from this checkout (build/lua-onecli-<version>-1.src.rock;
#                   ROCK_REF=v0.1.0 packs a tag instead): .ci/make-rock
#   make clean      remove build/ and lua/onecli/core.so
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

# LuaJIT's headers for the LuaJIT build (the one Neovim loads): Debian's
# path, else what pkg-config knows, else Lua 5.1's (the same C API).
ifeq ($(origin LUAJIT_INCDIR),undefined)
LUAJIT_INCDIR := $(firstword $(foreach d,/usr/include/luajit-2.1 \
                   $(patsubst -I%,%,$(filter -I%,$(shell $(PKG_CONFIG) --cflags-only-I luajit 2>/dev/null))) \
                   /usr/include/lua5.1 \
                   $(patsubst -I%,%,$(filter -I%,$(shell $(PKG_CONFIG) --cflags-only-I lua5.1 2>/dev/null))),\
                   $(if $(wildcard $(d)/lua.h),$(d))))
endif

# Where each runtime's headers live (Debian paths), and the Debian package
# that has them.
INCDIR_lua5.1 = /usr/include/lua5.1
INCDIR_lua5.3 = /usr/include/lua5.3
INCDIR_lua5.4 = /usr/include/lua5.4
INCDIR_luajit = $(or $(LUAJIT_INCDIR),/usr/include/luajit-2.1)
DEVPKG_lua5.1 = liblua5.1-0-dev
DEVPKG_lua5.3 = liblua5.3-dev
DEVPKG_lua5.4 = liblua5.4-dev
DEVPKG_luajit = libluajit2-5.1-dev

# Where Neovim finds the core: its runtimepath loader (vim._load_package)
# looks for lua/onecli/core.so in every runtimepath directory, before
# package.cpath.
PLUGIN_CORE = lua/onecli/core.so

# $(call check_headers,RUNTIME): stops with one clear line when lua.h or
# curl/curl.h is missing, naming the Debian package to install.
check_headers = \
	test -f "$(INCDIR_$(1))/lua.h" || { \
	    echo "lua-onecli: no Lua headers for $(1) (lua.h in $(INCDIR_$(1))$(if $(filter luajit,$(1)),$(comma) pkg-config luajit or /usr/include/lua5.1)): install them (Debian: apt-get install $(DEVPKG_$(1)))" >&2; \
	    exit 1; }; \
	command -v $(firstword $(CC)) >/dev/null 2>&1 || { \
	    echo "lua-onecli: no C compiler ($(CC)): install one (Debian: apt-get install gcc)" >&2; exit 1; }; \
	printf '\043include <curl/curl.h>\n' | $(CC) $(CURL_CFLAGS) -E -x c - >/dev/null 2>&1 || { \
	    echo "lua-onecli: no libcurl headers (curl/curl.h): install them (Debian: apt-get install libcurl4-openssl-dev)" >&2; \
	    exit 1; }
comma = ,

# Installation (single runtime; LUA_INCDIR picks the headers).
LUA_VERSION ?= 5.4
PREFIX      ?= /usr/local
LUADIR      ?= $(PREFIX)/share/lua/$(LUA_VERSION)
LIBDIR      ?= $(PREFIX)/lib/lua/$(LUA_VERSION)
LUA_INCDIR  ?= /usr/include/lua$(LUA_VERSION)
BINDIR      ?= $(PREFIX)/bin
# the interpreter the installed onecli-standin runs with (its shebang)
LUA         ?= lua$(LUA_VERSION)

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
# lua-luv: the socket-driven driver under a plain luv loop
DEB_TEST    = $(DEB_BUILD) lua-cjson lua-busted lua-socket lua-check luarocks openssl locales \
              nginx libnginx-mod-http-lua neovim lua-luv
DEB_CHECK   = $(DEB_TEST) valgrind

.PHONY: all plugin build demo test test-only deps deps-build deps-check asan \
        valgrind lint install rock-check rock bench clean isolation

all: plugin

# The Neovim plugin: the LuaJIT build, copied to lua/onecli/core.so (a
# rename, so a running Neovim keeps the copy it mapped).
plugin: $(PLUGIN_CORE)

$(PLUGIN_CORE): build/luajit/onecli/core.so
	cp $< $@.tmp && mv -f $@.tmp $@
	@echo "lua-onecli: $@ built for Neovim (LuaJIT); \`make build\` builds every runtime"

build: $(foreach r,$(RUNTIMES),build/$(r)/onecli/core.so build/$(r)/onecli_spec_fork.so) \
       $(if $(filter luajit,$(RUNTIMES)),$(PLUGIN_CORE))

build/%/onecli/core.so: $(SOURCES) $(HEADERS)
	@$(call check_headers,$*)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -I$(INCDIR_$*) $(CURL_CFLAGS) $(LIBFLAG) -o $@ $(SOURCES) $(CURL_LIBS)

# fork() for the specs (spec/support/fork.c): not part of the library
build/%/onecli_spec_fork.so: spec/support/fork.c
	@$(call check_headers,$*)
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

rock:
	@sh .ci/make-rock

# Runs every test of the suite alone (busted --filter on its full name),
# under lua5.4: a test that passes only after another one fails here.
isolation: deps
	@$(MAKE) --no-print-directory build plugin RUNTIMES=lua5.4
	@sh .ci/isolation

# Times client.agents:list() (lua5.4 and LuaJIT) against a C floor
# (spec/bench/floor.c: one reused libcurl handle + cjson.decode, built into
# build/bench/floor) on a private nginx serving a 10-agent and a
# 4,000-agent list (static files, a free port of 127.0.0.1): interleaved
# rounds (nginx and the timed processes pinned to CPUs 1 and 0), median us
# per call, min-max, ratio to the floor. Then
# instructions per call (valgrind --tool=callgrind), VmRSS and open fds
# over 100,000 calls, and client:batch against sequential calls (50 calls,
# each answer delayed 100 ms), and the added latency of the socket-driven
# asynchronous transports (Neovim; a plain luv loop under lua5.1, LuaJIT
# and lua5.4) against the blocking one (spec/bench/async_bench.lua).
# spec/bench/run.sh; prints, asserts nothing; under 3 minutes.
bench: deps-check
	@$(MAKE) --no-print-directory build RUNTIMES="lua5.1 lua5.4 luajit"
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

# Neovim (the nvim specs) loads a plain LuaJIT build, never build/asan:
# $(PLUGIN_CORE) keeps it current.
asan: deps build/asan/onecli/core.so build/asan/onecli_spec_fork.so $(PLUGIN_CORE)
	@LD_PRELOAD="$$($(CC) -print-file-name=libasan.so) $$($(CC) -print-file-name=libubsan.so)" \
	 ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
	 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	 ONECLI_BUILD_DIR=build/asan \
	 sh .ci/test-all lua5.4 asan

valgrind: deps-check build/lua5.4/onecli/core.so build/lua5.4/onecli_spec_fork.so $(PLUGIN_CORE)
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
	install -d $(DESTDIR)$(BINDIR)
	sed '1s|^#!.*|#!/usr/bin/env $(LUA)|' bin/onecli-standin > $(DESTDIR)$(BINDIR)/onecli-standin
	chmod 755 $(DESTDIR)$(BINDIR)/onecli-standin

clean:
	rm -rf build
	rm -f $(PLUGIN_CORE) $(PLUGIN_CORE).tmp

# libFuzzer targets (make fuzz, make fuzz-ci): spec/fuzz/fuzz.mk
-include spec/fuzz/fuzz.mk
