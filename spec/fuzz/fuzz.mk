# spec/fuzz/fuzz.mk - libFuzzer targets for the C core (included by the
# top-level Makefile).
#
#   make fuzz         install clang + libFuzzer if missing, build every
#                     target into build/fuzz/, run each for FUZZ_SECONDS
#                     (default 60), FUZZ_JOBS (default 2) at a time; one
#                     "ok - fuzz <target>: ..." / "not ok - ..." line per
#                     target, then "N passed, N failed"; non-zero on failure
#   make fuzz-ci      the same, 20 seconds per target
#   make fuzz-build   only build the targets
#   make fuzz-run     only run them (as built)
#   make fuzz-seeds   regenerate spec/fuzz/corpus/ from the server captures
#                     in FUZZ_CAPTURES (default ../shared/reference/captures)
#   make fuzz-repro FUZZ_TARGET=json FUZZ_INPUT=build/fuzz/crashes/json/crash-...
#                     run one target on one input (a crash reproducer); to
#                     shrink one: build/fuzz/json -minimize_crash=1
#                     -max_total_time=30 -exact_artifact_path=small <crash>
#   make fuzz-clean   remove build/fuzz/
#
# Targets (properties in spec/fuzz/properties.lua): normalize, json,
# redact, url, retry_after. Each binary is spec/fuzz/driver.c built with
# -DFUZZ_TARGET and linked with every csrc/*.c (a wildcard: new files are
# picked up), all with -fsanitize=fuzzer(-no-link),address,undefined. Only
# build/fuzz/ is written: the normal `make build` is not affected.
# libFuzzer's own corpus (inputs it finds) grows in build/fuzz/corpus/; the
# committed seeds in spec/fuzz/corpus/ are read, never written. Logs are
# in build/fuzz/logs/, crash inputs in build/fuzz/crashes/<target>/.
#
# FUZZ_IGNORE=id,id (see properties.lua) turns the named property failures
# into notes, to look past a known bug; leave it empty for real results.

FUZZ_TARGETS  ?= normalize json redact url retry_after
FUZZ_SECONDS  ?= 60
FUZZ_JOBS     ?= 2
FUZZ_IGNORE   ?=
FUZZ_CAPTURES ?= ../shared/reference/captures
FUZZ_DIR      ?= build/fuzz
FUZZ_CC       ?= clang-14
PKG_CONFIG    ?= pkg-config
FUZZ_DEBS     = clang libclang-rt-14-dev lua5.4 liblua5.4-dev \
                libcurl4-openssl-dev lua-cjson pkg-config gcc

# Evaluated when used (after fuzz-deps may have installed what they ask).
FUZZ_MULTIARCH = $(shell gcc -print-multiarch 2>/dev/null || \
                   dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null)
FUZZ_LUA_INC  ?= /usr/include/lua5.4
FUZZ_LUA_LIBS ?= -llua5.4
FUZZ_LUA_CPATH = /usr/lib/$(FUZZ_MULTIARCH)/lua/5.4/?.so
FUZZ_CURL_CFLAGS = $(shell $(PKG_CONFIG) --cflags libcurl 2>/dev/null)
FUZZ_CURL_LIBS   = $(or $(shell $(PKG_CONFIG) --libs libcurl 2>/dev/null),-lcurl)

FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_CFLAGS   ?= -g -O1
FUZZ_WARN     = -std=c99 -Wall -Wextra -pedantic -Wshadow -Wmissing-prototypes \
                -Wstrict-prototypes
FUZZ_INC      = -I$(FUZZ_LUA_INC) $(FUZZ_CURL_CFLAGS)

FUZZ_CORE_SRC = $(wildcard csrc/*.c)
FUZZ_CORE_HDR = $(wildcard csrc/*.h)
FUZZ_CORE_OBJ = $(patsubst csrc/%.c,$(FUZZ_DIR)/obj/%.o,$(FUZZ_CORE_SRC))
FUZZ_BINS     = $(addprefix $(FUZZ_DIR)/,$(FUZZ_TARGETS))
FUZZ_RUN      = FUZZ_DIR='$(FUZZ_DIR)' FUZZ_SECONDS='$(FUZZ_SECONDS)' \
                FUZZ_JOBS='$(FUZZ_JOBS)' FUZZ_IGNORE='$(FUZZ_IGNORE)' \
                sh spec/fuzz/run.sh $(FUZZ_TARGETS)

.PHONY: fuzz fuzz-ci fuzz-deps fuzz-build fuzz-run fuzz-seeds fuzz-repro fuzz-clean

# A build that fails (the core is mid-change) still ends in TAP lines and
# a summary (run.sh reads the marker), and never runs binaries left from an
# earlier build. The line with $(MAKE) runs even under make -n (.ci/run
# asks make -n fuzz-ci whether the target exists), so it only builds.
fuzz: fuzz-deps
	@mkdir -p $(FUZZ_DIR) && rm -f $(FUZZ_DIR)/build-failed
	@$(MAKE) --no-print-directory fuzz-build || touch $(FUZZ_DIR)/build-failed
	@$(FUZZ_RUN)

# (a target-specific value: it holds for the prerequisite fuzz too)
fuzz-ci: FUZZ_SECONDS = 20
fuzz-ci: fuzz

fuzz-deps:
	@sh .ci/deps $(FUZZ_DEBS)

fuzz-build: $(FUZZ_BINS)

# runs what is built, builds nothing
fuzz-run:
	@$(FUZZ_RUN)

# The core, instrumented for coverage and the sanitizers; its warnings are
# the core's business (make build shows them), so they stay quiet here.
$(FUZZ_DIR)/obj/%.o: csrc/%.c $(FUZZ_CORE_HDR)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -std=c99 -w $(FUZZ_SAN) -fsanitize=fuzzer-no-link \
	    $(FUZZ_INC) -c -o $@ $<

$(FUZZ_BINS): $(FUZZ_DIR)/%: spec/fuzz/driver.c $(FUZZ_CORE_OBJ)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(FUZZ_WARN) $(FUZZ_SAN) -fsanitize=fuzzer \
	    -DFUZZ_TARGET='"$*"' -DFUZZ_PROPERTIES='"$(abspath spec/fuzz/properties.lua)"' \
	    -DFUZZ_LUA_CPATH='"$(FUZZ_LUA_CPATH)"' $(FUZZ_INC) \
	    -o $@ spec/fuzz/driver.c $(FUZZ_CORE_OBJ) $(FUZZ_LUA_LIBS) $(FUZZ_CURL_LIBS) -lm

fuzz-seeds:
	@sh .ci/deps lua5.4 lua-cjson
	lua5.4 spec/fuzz/seeds.lua '$(FUZZ_CAPTURES)' spec/fuzz/corpus

fuzz-repro:
	@test -n '$(FUZZ_TARGET)' && test -n '$(FUZZ_INPUT)' || \
	    { echo 'usage: make fuzz-repro FUZZ_TARGET=<target> FUZZ_INPUT=<file>' >&2; exit 2; }
	@$(MAKE) --no-print-directory $(FUZZ_DIR)/$(FUZZ_TARGET)
	FUZZ_IGNORE='$(FUZZ_IGNORE)' $(FUZZ_DIR)/$(FUZZ_TARGET) -runs=1 $(FUZZ_INPUT)

fuzz-clean:
	rm -rf $(FUZZ_DIR)
