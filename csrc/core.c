/*
 * core.c - entry point of onecli.core. It only registers: each concern
 * lives in its own file (json.c, errors.c, backoff.c, transport.c).
 */
#include <curl/curl.h>

#include "onecli.h"

ONECLI_EXPORT int luaopen_onecli_core(lua_State *L);

static int curl_ready = 0;

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
    onecli_errors_open(L);
    onecli_backoff_open(L);
    onecli_transport_open(L);
    return 1;
}
