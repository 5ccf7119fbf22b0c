/*
 * compat.h - the few Lua C API calls that Lua 5.1 / LuaJIT lack.
 *
 * The core is written against the Lua 5.3 C API. Everything here carries
 * the private prefix onecli_ (never lua*: LuaJIT already defines some 5.2
 * functions and a clash would be silent).
 */
#ifndef ONECLI_COMPAT_H
#define ONECLI_COMPAT_H

#include <lua.h>
#include <lauxlib.h>

#if LUA_VERSION_NUM >= 502

#define onecli_rawlen(L, i)          lua_rawlen((L), (i))
#define onecli_setfuncs(L, l, n)     luaL_setfuncs((L), (l), (n))
#define onecli_rawgetp(L, i, p)      ((void)lua_rawgetp((L), (i), (p)))
#define onecli_rawsetp(L, i, p)      lua_rawsetp((L), (i), (p))
#define onecli_newlibtable(L, l)     lua_createtable((L), 0, sizeof(l) / sizeof((l)[0]) - 1)
/* the user value of a full userdata (a table here) */
#define onecli_getuservalue(L, i)    ((void)lua_getuservalue((L), (i)))
#define onecli_setuservalue(L, i)    lua_setuservalue((L), (i))

#else /* Lua 5.1 and LuaJIT */

#define onecli_rawlen(L, i)          lua_objlen((L), (i))

static inline void onecli_setfuncs(lua_State *L, const luaL_Reg *l, int nup)
{
    luaL_checkstack(L, nup + 1, "too many upvalues");
    for (; l->name != NULL; l++) {
        int i;
        for (i = 0; i < nup; i++)
            lua_pushvalue(L, -nup);
        lua_pushcclosure(L, l->func, nup);
        lua_setfield(L, -(nup + 2), l->name);
    }
    lua_pop(L, nup);
}

/* Only used with pseudo-indices or absolute indices. */
static inline void onecli_rawgetp(lua_State *L, int idx, const void *p)
{
    lua_pushlightuserdata(L, (void *)p);
    lua_rawget(L, idx);
}

/* Sets t[p] = v where v is at the top of the stack (popped). */
static inline void onecli_rawsetp(lua_State *L, int idx, const void *p)
{
    lua_pushlightuserdata(L, (void *)p);
    lua_insert(L, -2);
    lua_rawset(L, idx);
}

#define onecli_newlibtable(L, l)     lua_createtable((L), 0, sizeof(l) / sizeof((l)[0]) - 1)
/* a userdata's environment table plays the part of its user value */
#define onecli_getuservalue(L, i)    lua_getfenv((L), (i))
#define onecli_setuservalue(L, i)    ((void)lua_setfenv((L), (i)))

#endif

#if LUA_VERSION_NUM >= 503
#define ONECLI_HAS_INTEGERS 1
#else
#define ONECLI_HAS_INTEGERS 0
#endif

#endif /* ONECLI_COMPAT_H */
