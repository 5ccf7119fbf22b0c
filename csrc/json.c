/*
 * json.c - the JSON values the encoder (jsonenc.c) and the decoder
 * (jsondec.c) share: null and the array marks.
 *
 * core.null is JSON null: a NULL light userdata, the same value as
 * lua-cjson's cjson.null. core.array(t) marks a table so that it encodes
 * as a JSON array even when empty (the decoder marks every array it
 * makes); core.empty_array is a read-only marked empty table.
 */
#include "onecli.h"

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

void onecli_json_push_array_mt(lua_State *L)
{
    onecli_rawgetp(L, LUA_REGISTRYINDEX, &array_mt_key);
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

void onecli_json_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "array", l_array },
        { "is_array", l_is_array },
        { NULL, NULL }
    };

    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");

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
