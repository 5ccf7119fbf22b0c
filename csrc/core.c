/*
 * core.c - entry point of onecli.core. It only registers: each concern
 * lives in its own file (json.c, jsondec.c, jsonenc.c, errors.c, backoff.c, url.c, http.c shared by
 * transport.c and multi.c).
 */
#include <curl/curl.h>

#include "onecli.h"

ONECLI_EXPORT int luaopen_onecli_core(lua_State *L);

static int curl_ready = 0;

void onecli_type_open(lua_State *L, const char *tname, const luaL_Reg *methods,
                      lua_CFunction close, lua_CFunction tostring)
{
    if (luaL_newmetatable(L, tname)) {
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__gc");
#if LUA_VERSION_NUM >= 504
        lua_pushcfunction(L, close);
        lua_setfield(L, -2, "__close");
#endif
        lua_pushcfunction(L, tostring);
        lua_setfield(L, -2, "__tostring");
        lua_newtable(L);
        onecli_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
}

int luaopen_onecli_core(lua_State *L)
{
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
            return luaL_error(L, "onecli.core: curl_global_init failed");
        curl_ready = 1;
    }
    lua_newtable(L);
    lua_pushliteral(L, ONECLI_VERSION);
    lua_setfield(L, -2, "_VERSION");
    onecli_json_open(L);
    onecli_jsondec_open(L);
    onecli_jsonenc_open(L);
    onecli_errors_open(L);
    onecli_backoff_open(L);
    onecli_url_open(L);
    onecli_http_open(L);
    onecli_transport_open(L);
    onecli_multi_open(L);
    return 1;
}
