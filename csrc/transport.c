/*
 * transport.c - blocking HTTP over one libcurl easy handle.
 *
 * A Transport userdata (metatable onecli.Transport) owns one CURL easy
 * handle, reused for every request so that connections are kept alive,
 * plus the header list and response buffers of the request in flight.
 * Everything on the C heap is owned by the userdata, so a Lua error at
 * any point leaves nothing behind: __gc (and __close on 5.4) call the
 * same idempotent close().
 *
 *   t = core.new_transport{ timeout=, connect_timeout=, ca_file=,
 *                           insecure=, user_agent=, max_response_size=,
 *                           proxy= }   -- proxy: every request through it
 *   status, headers, body = t:request{ method=, url=, path=, headers=,
 *                                      body=, timeout=, connect_timeout=,
 *                                      secret=, fresh_connect=, decode=,
 *                                      response_headers= }
 *   status, headers, nil, value = t:request{ decode = true, ... }
 *                                  -- a 2xx JSON object or array, decoded
 *                                  -- from the buffer (no body string)
 *   response_headers = "errors": a 2xx answer's headers table holds only
 *                                  Location, Content-Type, X-Request-Id
 *   nil, err = t:request{...}      -- transport failure (structured error)
 *   t:options()                    -- the options above, as a table
 *   t:close()
 *
 * TLS verification is on unless insecure = true. Proxies are taken from
 * the environment as libcurl reads them (http_proxy, HTTPS_PROXY,
 * NO_PROXY, ...). Redirects are not followed. Reading the options and
 * the request, setting the handle up and the response buffers live in
 * http.c, shared with the multi driver (multi.c).
 */
#include <string.h>

#include "onecli.h"

#define TRANSPORT_MT "onecli.Transport"

typedef struct onecli_transport_t {
    CURL *easy;
    onecli_exchange_t x;
    onecli_options_t o;
    onecli_conns_t conns;
    long pid;                 /* the process the handle belongs to */
} onecli_transport_t;

/* ---------------------------------------------------------------- */
/* the userdata                                                     */

static onecli_transport_t *check_transport(lua_State *L, int idx)
{
    return (onecli_transport_t *)luaL_checkudata(L, idx, TRANSPORT_MT);
}

static int transport_close(lua_State *L)
{
    onecli_transport_t *t = check_transport(L, 1);
    if (t->easy) {
        if (t->pid != onecli_process_id())
            onecli_conns_neuter(&t->conns);   /* the parent's connections */
        curl_easy_cleanup(t->easy);
        t->easy = NULL;
    }
    onecli_exchange_release(&t->x);
    onecli_options_release(&t->o);
    return 0;
}

static int transport_is_closed(lua_State *L)
{
    lua_pushboolean(L, check_transport(L, 1)->easy == NULL);
    return 1;
}

static int transport_tostring(lua_State *L)
{
    onecli_transport_t *t = check_transport(L, 1);
    if (t->easy)
        lua_pushfstring(L, TRANSPORT_MT " (%p)", (void *)t);
    else
        lua_pushliteral(L, TRANSPORT_MT " (closed)");
    return 1;
}

/* t:options() -> the options the transport was made with (for a multi
 * handle that should behave the same: client:batch) */
static int transport_options(lua_State *L)
{
    onecli_transport_t *t = check_transport(L, 1);
    if (t->easy == NULL)
        return luaL_error(L, "transport is closed");
    lua_createtable(L, 0, 6);
    lua_pushnumber(L, (lua_Number)t->o.timeout_ms / 1000);
    lua_setfield(L, -2, "timeout");
    lua_pushnumber(L, (lua_Number)t->o.connect_timeout_ms / 1000);
    lua_setfield(L, -2, "connect_timeout");
    lua_pushboolean(L, t->o.insecure);
    lua_setfield(L, -2, "insecure");
    if (t->o.ca_file) {
        lua_pushstring(L, t->o.ca_file);
        lua_setfield(L, -2, "ca_file");
    }
    lua_pushstring(L, t->o.user_agent);
    lua_setfield(L, -2, "user_agent");
    lua_pushnumber(L, (lua_Number)t->o.max_response);
    lua_setfield(L, -2, "max_response_size");
    if (t->o.proxy) {
        lua_pushstring(L, t->o.proxy);
        lua_setfield(L, -2, "proxy");
    }
    return 1;
}

/* core.new_transport([opts]) -> transport */
static int l_new_transport(lua_State *L)
{
    onecli_transport_t *t;
    onecli_options_t o;
    const char *ca_file, *user_agent;

    lua_settop(L, 1);
    onecli_options_read(L, 1, &o, &ca_file, &user_agent);
    t = (onecli_transport_t *)lua_newuserdata(L, sizeof *t);
    memset(t, 0, sizeof *t);
    t->x.conns = &t->conns;
    t->pid = onecli_process_id();
    luaL_getmetatable(L, TRANSPORT_MT);
    lua_setmetatable(L, -2);
    /* from here on the userdata owns every allocation: raising is safe */
    t->o = o;
    t->easy = curl_easy_init();
    if (t->easy == NULL)
        return luaL_error(L, "curl_easy_init failed");
    if (!onecli_options_own(&t->o, ca_file, user_agent))
        return luaL_error(L, "not enough memory");
    return 1;
}

/* In a process forked since the handle was made (a pre-forking server,
 * nginx's workers after a call in init_by_lua): the kept-alive
 * connections belong to the parent. They are pointed at /dev/null (so
 * closing them sends nothing to the parent's peers), closed with the old
 * handle, and this process starts with a handle of its own. */
static void transport_after_fork(lua_State *L, onecli_transport_t *t)
{
    onecli_conns_neuter(&t->conns);
    curl_easy_cleanup(t->easy);
    memset(&t->conns, 0, sizeof t->conns);
    t->pid = onecli_process_id();
    t->easy = curl_easy_init();
    if (t->easy == NULL)
        luaL_error(L, "curl_easy_init failed");
}

/* t:request(req) -> status, headers, body | nil, err */
static int transport_request(lua_State *L)
{
    onecli_transport_t *t = check_transport(L, 1);
    onecli_request_t r;
    CURLcode rc;

    if (t->easy == NULL)
        return luaL_error(L, "transport is closed");
    if (t->pid != onecli_process_id())
        transport_after_fork(L, t);
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    onecli_request_read(L, 2, &t->o, &r);   /* the body string stays on the stack */
    rc = onecli_exchange_prepare(L, &t->x, t->easy, &t->o, &r);
    if (rc != CURLE_OK) {
        onecli_exchange_push_error(L, &t->x, t->easy, rc, &r, 0);
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    rc = curl_easy_perform(t->easy);
    if (onecli_exchange_redo(&t->x, t->easy, rc))
        rc = curl_easy_perform(t->easy);   /* nothing went out on the stale one */
    if (rc == CURLE_OK)
        rc = onecli_exchange_inspect(&t->x);
    else
        rc = onecli_exchange_settle(&t->x, t->easy, rc);
    onecli_exchange_finish(&t->x);
    if (rc != CURLE_OK) {
        onecli_exchange_push_error(L, &t->x, t->easy, rc, &r, 1);
        onecli_exchange_recycle(&t->x);
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    {
        int n = onecli_exchange_push_response(L, &t->x, t->easy);
        onecli_exchange_recycle(&t->x);
        return n;
    }
}

void onecli_transport_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "request", transport_request },
        { "close", transport_close },
        { "is_closed", transport_is_closed },
        { "options", transport_options },
        { NULL, NULL }
    };
    onecli_type_open(L, TRANSPORT_MT, methods, transport_close, transport_tostring);
    lua_pushcfunction(L, l_new_transport);
    lua_setfield(L, -2, "new_transport");
}
