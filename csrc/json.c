/*
 * json.c - decoding JSON through lua-cjson, and the array marks.
 *
 * lua-cjson has no C API, so a private instance (cjson.new()) is required
 * once at load time and its decode function is kept in a registry slot
 * keyed by the address of a static below. A private instance keeps our
 * settings away from other users of cjson in the same process
 * (OpenResty). Encoding is our own (jsonenc.c).
 *
 * Debian's lua-cjson 2.1.0 decodes every number as a float: on Lua 5.3+
 * integral values in the exactly representable range (|x| < 2^53) are
 * turned back into integers after decoding. A JSON 1.0 therefore also
 * comes back as the integer 1.
 *
 * core.array(t) marks a table so that it encodes as a JSON array even
 * when empty; core.empty_array is a read-only marked empty table.
 */
#include <math.h>

#include "onecli.h"

static const char decode_key = 0;
static const char array_mt_key = 0;
static const char empty_array_mt_key = 0;

/* Returns 1 if the value at idx is a table marked as a JSON array. */
int onecli_json_is_marked_array(lua_State *L, int idx)
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
        if (!onecli_json_is_marked_array(L, 1))
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
    lua_pushboolean(L, onecli_json_is_marked_array(L, 1));
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
        { "json_decode", l_json_decode },
        { "array", l_array },
        { "is_array", l_is_array },
        { NULL, NULL }
    };

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
    json_configure(L, "decode_invalid_numbers", 0);
    lua_getfield(L, -1, "decode");
    onecli_rawsetp(L, LUA_REGISTRYINDEX, &decode_key);
    lua_pop(L, 1);

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
