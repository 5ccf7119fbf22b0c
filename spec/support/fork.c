/*
 * spec/support/fork.c - fork() for the specs (Lua module onecli_spec_fork),
 * built by the Makefile next to the core for each runtime. Debian's
 * lua-posix has no Lua 5.4 build, and the fork specs run everywhere.
 *
 *   local f = require("onecli_spec_fork")
 *   local pid = f.fork()          -- 0 in the child
 *   f.exit(code)                  -- _exit(): no atexit, no stdio flush
 *   local status = f.wait(pid)    -- the child's exit code (-1: signalled)
 *   f.getpid()
 */
#define _POSIX_C_SOURCE 200112L

#include <stdio.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <lua.h>
#include <lauxlib.h>

#if defined(__GNUC__)
#define EXPORT __attribute__((visibility("default")))
#else
#define EXPORT
#endif

EXPORT int luaopen_onecli_spec_fork(lua_State *L);

static int l_fork(lua_State *L)
{
    pid_t pid;
    fflush(NULL);                 /* nothing buffered is written twice */
    pid = fork();
    if (pid < 0)
        return luaL_error(L, "fork failed");
    lua_pushinteger(L, (lua_Integer)pid);
    return 1;
}

static int l_exit(lua_State *L)
{
    _exit((int)luaL_optinteger(L, 1, 0));
    return 0;
}

static int l_wait(lua_State *L)
{
    pid_t pid = (pid_t)luaL_checkinteger(L, 1);
    int status = 0;
    if (waitpid(pid, &status, 0) != pid)
        return luaL_error(L, "waitpid failed");
    lua_pushinteger(L, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
    return 1;
}

static int l_getpid(lua_State *L)
{
    lua_pushinteger(L, (lua_Integer)getpid());
    return 1;
}

int luaopen_onecli_spec_fork(lua_State *L)
{
    lua_newtable(L);
    lua_pushcfunction(L, l_fork);
    lua_setfield(L, -2, "fork");
    lua_pushcfunction(L, l_exit);
    lua_setfield(L, -2, "exit");
    lua_pushcfunction(L, l_wait);
    lua_setfield(L, -2, "wait");
    lua_pushcfunction(L, l_getpid);
    lua_setfield(L, -2, "getpid");
    return 1;
}
