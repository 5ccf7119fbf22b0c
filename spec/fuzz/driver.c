/*
 * driver.c - the libFuzzer driver shared by every fuzz target of onecli.core.
 *
 * Built once per target with -DFUZZ_TARGET="<name>" (see fuzz.mk), linked
 * statically with every C file of csrc/, so the hidden functions of the
 * core are in the same executable; they are still reached only through the
 * Lua functions that luaopen_onecli_core registers, as a user reaches them.
 *
 * What it does:
 *  - once: one lua_State (luaL_openlibs), package.cpath pointed at Debian's
 *    lua-cjson for 5.4 (FUZZ_LUA_CPATH), luaopen_onecli_core() called and
 *    stored in package.loaded["onecli.core"], a global fuzz_fail(id, msg),
 *    then spec/fuzz/properties.lua loaded (FUZZ_PROPERTIES, or the path in
 *    the environment variable ONECLI_FUZZ_PROPERTIES); it returns a table
 *    with one function per target and an optional setup(target);
 *  - per input: properties[FUZZ_TARGET](input bytes as a Lua string) under
 *    lua_pcall with a traceback; the stack is reset after each input and a
 *    full collection runs every FUZZ_GC_EVERY inputs (default: every one)
 *    so memory stays flat. Collecting after every input also keeps
 *    libFuzzer's leak detection useful and cheap: an input that leaves
 *    more mallocs than frees behind makes libFuzzer run LeakSanitizer, and
 *    Lua garbage left for later would trigger that on almost every input
 *    (measured: 120 inputs/s with a collection every 2000, 8000 with one
 *    after each). What is still allocated after the collection is a real
 *    leak of C heap memory.
 *
 * Which properties each target checks is written in properties.lua. A
 * failed property calls fuzz_fail(id, msg): the message goes to stderr as
 * "FUZZ PROPERTY FAILED [id]: msg" and the process aborts, so libFuzzer
 * keeps the input as a crash. A Lua error escaping a target (the core
 * raised where it must not, or a harness bug) aborts the same way, with
 * "FUZZ LUA ERROR: msg".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

#ifndef FUZZ_TARGET
#error "build with -DFUZZ_TARGET=\"<target name>\" (see spec/fuzz/fuzz.mk)"
#endif
#ifndef FUZZ_PROPERTIES
#define FUZZ_PROPERTIES "spec/fuzz/properties.lua"
#endif
#ifndef FUZZ_LUA_CPATH
#define FUZZ_LUA_CPATH "/usr/lib/x86_64-linux-gnu/lua/5.4/?.so"
#endif
#ifndef FUZZ_GC_EVERY
#define FUZZ_GC_EVERY 1
#endif

int luaopen_onecli_core(lua_State *L);
int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static lua_State *fuzz_L;
static int fuzz_run_ref = LUA_NOREF;
static int fuzz_traceback_ref = LUA_NOREF;
static unsigned long fuzz_inputs;

/* Writes s to stderr with every byte that is not printable ASCII as \xNN
 * (line breaks too unless newlines is set), so that a message about a
 * hostile string stays readable. */
static void fuzz_write_escaped(const char *s, size_t len, int newlines)
{
    size_t i;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if ((c >= 0x20 && c < 0x7f && c != '\\') || (newlines && c == '\n'))
            fputc(c, stderr);
        else if (c == '\\')
            fputs("\\\\", stderr);
        else
            fprintf(stderr, "\\x%02x", c);
    }
}

static void fuzz_die(const char *what, const char *msg, size_t len)
{
    fprintf(stderr, "\n%s", what);
    fuzz_write_escaped(msg, len, 1);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
}

/* fuzz_fail(id, msg): reports a failed property and aborts. */
static int l_fuzz_fail(lua_State *L)
{
    size_t id_len = 0, msg_len = 0;
    const char *id = luaL_optlstring(L, 1, "?", &id_len);
    const char *msg = luaL_optlstring(L, 2, "", &msg_len);
    fprintf(stderr, "\nFUZZ PROPERTY FAILED [");
    fuzz_write_escaped(id, id_len, 0);
    fprintf(stderr, "]: ");
    fuzz_write_escaped(msg, msg_len, 0);
    fputc('\n', stderr);
    fflush(stderr);
    abort();
    return 0;
}

/* Ends the process when setting up fails: there is no input to blame. */
static void fuzz_setup_failed(lua_State *L, const char *what)
{
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "FUZZ SETUP FAILED: %s: %s\n", what, msg ? msg : "(no message)");
    exit(1);
}

static int l_open_core(lua_State *L)
{
    /* package.loaded["onecli.core"] = luaopen_onecli_core("onecli.core") */
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    lua_pushcfunction(L, luaopen_onecli_core);
    lua_pushliteral(L, "onecli.core");
    lua_call(L, 1, 1);
    lua_setfield(L, -2, "onecli.core");
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    lua_State *L = luaL_newstate();
    const char *properties = getenv("ONECLI_FUZZ_PROPERTIES");
    (void)argc;
    (void)argv;
    if (L == NULL) {
        fprintf(stderr, "FUZZ SETUP FAILED: luaL_newstate\n");
        exit(1);
    }
    luaL_openlibs(L);

    /* package.cpath = FUZZ_LUA_CPATH .. ";" .. package.cpath */
    lua_getglobal(L, "package");
    lua_getfield(L, -1, "cpath");
    lua_pushfstring(L, "%s;%s", FUZZ_LUA_CPATH, lua_tostring(L, -1));
    lua_setfield(L, -3, "cpath");
    lua_pop(L, 2);

    lua_pushcfunction(L, l_open_core);
    if (lua_pcall(L, 0, 0, 0) != LUA_OK)
        fuzz_setup_failed(L, "luaopen_onecli_core");

    lua_pushcfunction(L, l_fuzz_fail);
    lua_setglobal(L, "fuzz_fail");

    lua_getglobal(L, "debug");
    lua_getfield(L, -1, "traceback");
    fuzz_traceback_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_pop(L, 1);

    if (properties == NULL || *properties == '\0')
        properties = FUZZ_PROPERTIES;
    if (luaL_loadfile(L, properties) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
        fuzz_setup_failed(L, properties);
    if (!lua_istable(L, -1)) {
        fprintf(stderr, "FUZZ SETUP FAILED: %s did not return a table\n", properties);
        exit(1);
    }
    lua_getfield(L, -1, "setup");
    if (lua_isfunction(L, -1)) {
        lua_pushliteral(L, FUZZ_TARGET);
        if (lua_pcall(L, 1, 0, 0) != LUA_OK)
            fuzz_setup_failed(L, "setup(\"" FUZZ_TARGET "\")");
    } else {
        lua_pop(L, 1);
    }
    lua_getfield(L, -1, FUZZ_TARGET);
    if (!lua_isfunction(L, -1)) {
        fprintf(stderr, "FUZZ SETUP FAILED: %s has no function for target '%s'\n",
                properties, FUZZ_TARGET);
        exit(1);
    }
    fuzz_run_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    lua_settop(L, 0);
    lua_gc(L, LUA_GCCOLLECT, 0);
    fuzz_L = L;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    lua_State *L = fuzz_L;
    lua_settop(L, 0);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_traceback_ref);
    lua_rawgeti(L, LUA_REGISTRYINDEX, fuzz_run_ref);
    lua_pushlstring(L, (const char *)data, size);
    if (lua_pcall(L, 1, 0, 1) != LUA_OK) {
        size_t len = 0;
        const char *msg = lua_tolstring(L, -1, &len);
        if (msg == NULL) {
            msg = "(error object is not a string)";
            len = strlen(msg);
        }
        fuzz_die("FUZZ LUA ERROR: ", msg, len);
    }
    lua_settop(L, 0);
    if (++fuzz_inputs % FUZZ_GC_EVERY == 0)
        lua_gc(L, LUA_GCCOLLECT, 0);
    return 0;
}
