/*
 * json.c - the JSON bridge to lua-cjson.
 *
 * lua-cjson has no C API, so a private instance (cjson.new()) is required
 * once at load time and its encode/decode functions are kept in registry
 * slots keyed by the addresses of statics below. A private instance keeps
 * our settings away from other users of cjson in the same process
 * (OpenResty).
 *
 * Two things Debian's lua-cjson 2.1.0 cannot do are added here:
 *  - emit an empty JSON array, and write every number exactly (cjson
 *    rounds to 14 digits): such parts are swapped for random placeholder
 *    strings before encoding, and each quoted placeholder is replaced by
 *    its literal text ([] or the exact number) afterwards;
 *  - return integers on Lua 5.3+: cjson decodes every number as a float,
 *    so integral values in the exactly representable range (|x| < 2^53)
 *    are turned back into integers after decoding. A JSON 1.0 therefore
 *    also comes back as the integer 1.
 *
 * Encoding validates the value first (no functions, no cycles, no mixed
 * or sparse tables, no NaN/inf) so that every refusal names the problem.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "onecli.h"

#define JSON_MAX_DEPTH 128

static const char encode_key = 0;
static const char decode_key = 0;
static const char array_mt_key = 0;
static const char empty_array_mt_key = 0;
static const char placeholder_key = 0;

/* Returns 1 if the value at idx is a table marked as a JSON array. */
static int json_is_marked_array(lua_State *L, int idx)
{
    int marked = 0;
    if (lua_type(L, idx) != LUA_TTABLE || !lua_getmetatable(L, idx))
        return 0;
    onecli_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    marked = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    if (!marked) {
        onecli_rawgetp(L, LUA_REGISTRYINDEX, &empty_array_mt_key);
        marked = lua_rawequal(L, -1, -2);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return marked;
}

static int json_is_empty_table(lua_State *L, int idx)
{
    lua_pushnil(L);
    if (lua_next(L, idx) == 0)
        return 1;
    lua_pop(L, 2);
    return 0;
}

/*
 * cjson 2.1.0 writes numbers with "%.14g": integers from 10^14 on come out
 * in exponent form or rounded, and some fractions lose digits. Writes the
 * exact JSON text of the number at idx into buf and returns 1 when cjson's
 * would differ, else returns 0.
 */
static int json_exact_number(lua_State *L, int idx, char *buf, size_t size)
{
    lua_Number d;
#if ONECLI_HAS_INTEGERS
    if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        if (i > -100000000000000LL && i < 100000000000000LL)
            return 0;
        snprintf(buf, size, LUA_INTEGER_FMT, (LUAI_UACINT)i);
        return 1;
    }
#endif
    d = lua_tonumber(L, idx);
    if (d == floor(d) && fabs(d) < 1e14)
        return 0;
    if (d == floor(d) && fabs(d) < 9.2e18) {
        /* an integral value (LuaJIT has no integer subtype): no exponent */
        snprintf(buf, size, "%.0f", (double)d);
        return 1;
    }
    snprintf(buf, size, "%.14g", (double)d);
    if (strtod(buf, NULL) == d)
        return 0;
    snprintf(buf, size, "%.17g", (double)d);
    return 1;
}

static int json_is_positive_integer(lua_State *L, int idx, lua_Number *out)
{
    lua_Number n;
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
    n = lua_tonumber(L, idx);
    if (n < 1 || n != floor(n) || n > 9007199254740992.0)
        return 0;
    *out = n;
    return 1;
}

/* Pushes a description of the key at idx for error messages. */
static const char *json_key_name(lua_State *L, int idx)
{
    if (lua_type(L, idx) == LUA_TSTRING)
        return lua_pushfstring(L, "\"%s\"", lua_tostring(L, idx));
    if (lua_type(L, idx) == LUA_TNUMBER)
        return lua_pushfstring(L, "[%f]", (double)lua_tonumber(L, idx));
    return lua_pushfstring(L, "<%s>", luaL_typename(L, idx));
}

static int json_check_value(lua_State *L, int idx, int depth, int *raw);

/*
 * Validates the table at idx (absolute). Sets *raw when something below
 * needs literal JSON text that cjson cannot write (a marked empty array,
 * a number cjson would round).
 */
static int json_check_table(lua_State *L, int idx, int depth, int *raw)
{
    int marked = json_is_marked_array(L, idx);
    size_t strings = 0, integers = 0;
    lua_Number max_index = 0, n;

    if (depth > JSON_MAX_DEPTH)
        return luaL_error(L, "cannot encode JSON: tables nested deeper than %d "
                          "(or a table that contains itself)", JSON_MAX_DEPTH);
    luaL_checkstack(L, 6, "JSON value nested too deeply");

    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        if (lua_type(L, -2) == LUA_TSTRING && !marked) {
            strings++;
        } else if (json_is_positive_integer(L, -2, &n)) {
            integers++;
            if (n > max_index)
                max_index = n;
        } else {
            json_key_name(L, -2);
            return luaL_error(L, "cannot encode JSON: %s key %s in %s",
                              luaL_typename(L, -3), lua_tostring(L, -1),
                              marked ? "a table marked as an array" : "a table");
        }
        json_check_value(L, lua_gettop(L), depth + 1, raw);
        lua_pop(L, 1);
    }
    if (strings > 0 && integers > 0)
        return luaL_error(L, "cannot encode JSON: a table mixes string keys and "
                          "array indices");
    if (integers > 0 && (lua_Number)integers != max_index)
        return luaL_error(L, "cannot encode JSON: sparse array (highest index %d, "
                          "%d elements)", (int)max_index, (int)integers);
    if (marked && integers == 0)
        *raw = 1;
    return 0;
}

static int json_check_value(lua_State *L, int idx, int depth, int *raw)
{
    char literal[64];
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
    case LUA_TBOOLEAN:
    case LUA_TSTRING:
        return 0;
    case LUA_TNUMBER: {
        lua_Number n = lua_tonumber(L, idx);
        if (n != n || n == HUGE_VAL || n == -HUGE_VAL)
            return luaL_error(L, "cannot encode JSON: number %f is not finite",
                              (double)n);
        if (json_exact_number(L, idx, literal, sizeof literal))
            *raw = 1;
        return 0;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL)
            return 0; /* cjson.null */
        return luaL_error(L, "cannot encode JSON: light userdata");
    case LUA_TTABLE:
        return json_check_table(L, idx, depth, raw);
    default:
        return luaL_error(L, "cannot encode JSON: value of type %s",
                          luaL_typename(L, idx));
    }
}

/* Pushes the placeholder string for literal JSON text, and records the
 * text in the literals table at index lits (absolute). */
static void json_push_placeholder(lua_State *L, int lits, const char *text)
{
    int n = (int)onecli_rawlen(L, lits) + 1;
    lua_pushstring(L, text);
    lua_rawseti(L, lits, n);
    onecli_rawgetp(L, LUA_REGISTRYINDEX, &placeholder_key);
    lua_pushfstring(L, "%s%d", lua_tostring(L, -1), n);
    lua_remove(L, -2);
}

/* Pushes a copy of the (validated) value at idx in which every part cjson
 * cannot write is a placeholder string whose literal text is in lits. */
static void json_copy_with_placeholders(lua_State *L, int idx, int lits)
{
    char literal[64];
    if (lua_type(L, idx) == LUA_TNUMBER
            && json_exact_number(L, idx, literal, sizeof literal)) {
        json_push_placeholder(L, lits, literal);
        return;
    }
    if (lua_type(L, idx) != LUA_TTABLE) {
        lua_pushvalue(L, idx);
        return;
    }
    if (json_is_marked_array(L, idx) && json_is_empty_table(L, idx)) {
        json_push_placeholder(L, lits, "[]");
        return;
    }
    luaL_checkstack(L, 6, "JSON value nested too deeply");
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        int value = lua_gettop(L);
        lua_pushvalue(L, value - 1);                   /* key */
        json_copy_with_placeholders(L, value, lits);   /* copied value */
        lua_rawset(L, value - 2);
        lua_pop(L, 1);
    }
}

/* Replaces every quoted placeholder in the JSON text at the top of the
 * stack by its literal; pops the text and pushes the result. */
static void json_substitute(lua_State *L, int lits)
{
    size_t len, plen;
    const char *s = lua_tolstring(L, -1, &len), *end = s + len, *p;
    const char *prefix;
    luaL_Buffer b;

    onecli_rawgetp(L, LUA_REGISTRYINDEX, &placeholder_key);
    prefix = lua_tolstring(L, -1, &plen);
    lua_insert(L, -2);                     /* keep both strings anchored */
    luaL_buffinit(L, &b);
    /* every placeholder sits in quotes: "<prefix><n>" */
    while ((p = strstr(s, prefix)) != NULL) {
        char *q;
        long n = strtol(p + plen, &q, 10);
        luaL_addlstring(&b, s, (size_t)(p - 1 - s));
        lua_rawgeti(L, lits, (int)n);
        luaL_addvalue(&b);
        s = q + 1;                          /* past the closing quote */
    }
    luaL_addlstring(&b, s, (size_t)(end - s));
    luaL_pushresult(&b);
    lua_replace(L, -3);
    lua_pop(L, 1);
}

/* core.json_encode(value) -> string; raises on values JSON cannot hold. */
static int l_json_encode(lua_State *L)
{
    int raw = 0;
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    json_check_value(L, 1, 0, &raw);

    lua_newtable(L);                                  /* 2: literals */
    onecli_rawgetp(L, LUA_REGISTRYINDEX, &encode_key);
    if (raw)
        json_copy_with_placeholders(L, 1, 2);
    else
        lua_pushvalue(L, 1);
    lua_call(L, 1, 1);
    if (raw)
        json_substitute(L, 2);
    return 1;
}

#if ONECLI_HAS_INTEGERS
/* Turns integral floats (|x| < 2^53) in the value at idx into integers. */
static void json_fix_integers(lua_State *L, int idx, int depth)
{
    if (depth > 1000 || lua_type(L, idx) != LUA_TTABLE)
        return;
    luaL_checkstack(L, 4, "JSON value nested too deeply");
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        int value = lua_gettop(L);
        if (lua_type(L, value) == LUA_TNUMBER && !lua_isinteger(L, value)) {
            lua_Number n = lua_tonumber(L, value);
            if (n == floor(n) && fabs(n) < 9007199254740992.0) {
                lua_pushvalue(L, value - 1);
                lua_pushinteger(L, (lua_Integer)n);
                lua_rawset(L, idx); /* assigning an existing field is allowed */
            }
        } else if (lua_type(L, value) == LUA_TTABLE) {
            json_fix_integers(L, value, depth + 1);
        }
        lua_pop(L, 1);
    }
}
#endif

static int json_decode_protected(lua_State *L)
{
    /* stack: decode, string */
    lua_call(L, 1, 1);
#if ONECLI_HAS_INTEGERS
    if (lua_type(L, -1) == LUA_TNUMBER && !lua_isinteger(L, -1)) {
        lua_Number n = lua_tonumber(L, -1);
        if (n == floor(n) && fabs(n) < 9007199254740992.0) {
            lua_pop(L, 1);
            lua_pushinteger(L, (lua_Integer)n);
        }
    } else {
        json_fix_integers(L, lua_gettop(L), 0);
    }
#endif
    return 1;
}

int onecli_json_decode(lua_State *L, const char *s, size_t len)
{
    lua_pushcfunction(L, json_decode_protected);
    onecli_rawgetp(L, LUA_REGISTRYINDEX, &decode_key);
    lua_pushlstring(L, s, len);
    if (lua_pcall(L, 2, 1, 0) != 0) {
        if (!lua_isstring(L, -1)) {
            lua_pop(L, 1);
            lua_pushliteral(L, "invalid JSON");
        }
        return 0;
    }
    return 1;
}

/* core.json_decode(string) -> value | nil, message */
static int l_json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (onecli_json_decode(L, s, len))
        return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

/* core.array([t]) -> t, marked so that it encodes as a JSON array. */
static int l_array(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        lua_settop(L, 0);
        lua_newtable(L);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    if (lua_getmetatable(L, 1)) {
        if (!json_is_marked_array(L, 1))
            return luaL_argerror(L, 1, "table already has a metatable");
        lua_pop(L, 1);
        return 1;
    }
    onecli_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    lua_setmetatable(L, 1);
    return 1;
}

static int l_is_array(lua_State *L)
{
    lua_pushboolean(L, json_is_marked_array(L, 1));
    return 1;
}

static int json_empty_array_newindex(lua_State *L)
{
    return luaL_error(L, "onecli.empty_array is read-only; use onecli.array({...})");
}

/* Calls cj[name](arg) for configuration; cj at the top of the stack. */
static void json_configure(lua_State *L, const char *name, int arg)
{
    lua_getfield(L, -1, name);
    if (lua_isfunction(L, -1)) {
        lua_pushboolean(L, arg);
        lua_call(L, 1, 0);
    } else {
        lua_pop(L, 1);
    }
}

void onecli_json_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "json_encode", l_json_encode },
        { "json_decode", l_json_decode },
        { "array", l_array },
        { "is_array", l_is_array },
        { NULL, NULL }
    };
    char placeholder[64];
    unsigned long seed = (unsigned long)time(NULL) ^ (unsigned long)clock()
                         ^ (unsigned long)(size_t)&seed;

    /* cj = require("cjson").new() */
    lua_getglobal(L, "require");
    lua_pushliteral(L, "cjson");
    lua_call(L, 1, 1);
    lua_getfield(L, -1, "null");
    lua_setfield(L, -3, "null");               /* core.null = cjson.null */
    lua_getfield(L, -1, "new");
    if (lua_isfunction(L, -1)) {
        lua_call(L, 0, 1);
        lua_remove(L, -2);
    } else {
        lua_pop(L, 1);
    }
    json_configure(L, "encode_invalid_numbers", 0);
    json_configure(L, "decode_invalid_numbers", 0);
    lua_getfield(L, -1, "encode");
    onecli_rawsetp(L, LUA_REGISTRYINDEX, &encode_key);
    lua_getfield(L, -1, "decode");
    onecli_rawsetp(L, LUA_REGISTRYINDEX, &decode_key);
    lua_pop(L, 1);

    seed = seed * 6364136223846793005UL + 1442695040888963407UL;
    snprintf(placeholder, sizeof placeholder, "onecli-raw-%08lx%08lx-",
             seed & 0xffffffffUL, (seed >> 16) & 0xffffffffUL);
    lua_pushstring(L, placeholder);
    onecli_rawsetp(L, LUA_REGISTRYINDEX, &placeholder_key);

    /* metatable of arrays marked with core.array() */
    lua_newtable(L);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
    lua_pushliteral(L, "onecli.array");
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -1);
    onecli_rawsetp(L, LUA_REGISTRYINDEX, &array_mt_key);
    lua_setfield(L, -2, "array_mt");

    /* core.empty_array: a read-only marked empty table */
    lua_newtable(L);
    lua_newtable(L);
    lua_pushliteral(L, "array");
    lua_setfield(L, -2, "__jsontype");
    lua_pushliteral(L, "onecli.empty_array");
    lua_setfield(L, -2, "__name");
    lua_pushcfunction(L, json_empty_array_newindex);
    lua_setfield(L, -2, "__newindex");
    lua_pushliteral(L, "onecli.empty_array");
    lua_setfield(L, -2, "__metatable");
    lua_pushvalue(L, -1);
    onecli_rawsetp(L, LUA_REGISTRYINDEX, &empty_array_mt_key);
    lua_setmetatable(L, -2);
    lua_setfield(L, -2, "empty_array");

    onecli_setfuncs(L, funcs, 0);
}
