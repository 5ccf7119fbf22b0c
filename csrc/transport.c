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
 *                           insecure=, user_agent=, max_response_size= }
 *   status, headers, body = t:request{ method=, url=, path=, headers=,
 *                                      body=, timeout=, connect_timeout=,
 *                                      secret= }
 *   nil, err = t:request{...}      -- transport failure (structured error)
 *   t:close()
 *
 * TLS verification is on unless insecure = true. Proxies are taken from
 * the environment as libcurl reads them (http_proxy, HTTPS_PROXY,
 * NO_PROXY, ...). Redirects are not followed.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "onecli.h"

#define TRANSPORT_MT "onecli.Transport"
#define DEFAULT_TIMEOUT 60.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_MAX_RESPONSE (64u * 1024u * 1024u)
#define MAX_HEADER_NAME 256

typedef struct onecli_buffer_t {
    char *data;
    size_t len;
    size_t cap;
} onecli_buffer_t;

typedef struct onecli_transport_t {
    CURL *easy;
    struct curl_slist *headers;
    onecli_buffer_t body;
    onecli_buffer_t head;
    size_t max_response;
    int too_large;
    int insecure;
    long timeout_ms;
    long connect_timeout_ms;
    char *ca_file;
    char *user_agent;
    char errbuf[CURL_ERROR_SIZE];
} onecli_transport_t;

static char default_user_agent[160];

/* ---------------------------------------------------------------- */
/* curl error names                                                 */

#define ONECLI_CURL_CODES(X) \
    X(UNSUPPORTED_PROTOCOL) X(FAILED_INIT) X(URL_MALFORMAT) \
    X(NOT_BUILT_IN) X(COULDNT_RESOLVE_PROXY) X(COULDNT_RESOLVE_HOST) \
    X(COULDNT_CONNECT) X(WEIRD_SERVER_REPLY) X(REMOTE_ACCESS_DENIED) \
    X(HTTP2) X(PARTIAL_FILE) X(HTTP_RETURNED_ERROR) X(WRITE_ERROR) \
    X(READ_ERROR) X(OUT_OF_MEMORY) X(OPERATION_TIMEDOUT) \
    X(RANGE_ERROR) X(SSL_CONNECT_ERROR) X(BAD_DOWNLOAD_RESUME) \
    X(FUNCTION_NOT_FOUND) X(ABORTED_BY_CALLBACK) \
    X(BAD_FUNCTION_ARGUMENT) X(INTERFACE_FAILED) X(TOO_MANY_REDIRECTS) \
    X(UNKNOWN_OPTION) X(GOT_NOTHING) X(SSL_ENGINE_NOTFOUND) \
    X(SSL_ENGINE_SETFAILED) X(SEND_ERROR) X(RECV_ERROR) \
    X(SSL_CERTPROBLEM) X(SSL_CIPHER) X(PEER_FAILED_VERIFICATION) \
    X(BAD_CONTENT_ENCODING) X(FILESIZE_EXCEEDED) X(USE_SSL_FAILED) \
    X(SEND_FAIL_REWIND) X(SSL_ENGINE_INITFAILED) X(LOGIN_DENIED) \
    X(SSL_CACERT_BADFILE) X(SSL_SHUTDOWN_FAILED) X(AGAIN) \
    X(SSL_CRL_BADFILE) X(SSL_ISSUER_ERROR) X(CHUNK_FAILED) \
    X(NO_CONNECTION_AVAILABLE) X(SSL_PINNEDPUBKEYNOTMATCH) \
    X(SSL_INVALIDCERTSTATUS) X(HTTP2_STREAM) X(RECURSIVE_API_CALL) \
    X(AUTH_ERROR) X(HTTP3) X(QUIC_CONNECT_ERROR) X(PROXY) \
    X(SSL_CLIENTCERT)

static const char *curl_code_name(CURLcode rc)
{
    switch (rc) {
#define ONECLI_CURL_CASE(name) case CURLE_##name: return #name;
    ONECLI_CURL_CODES(ONECLI_CURL_CASE)
#undef ONECLI_CURL_CASE
    default: return "UNKNOWN";
    }
}

/* The request provably never left this machine. */
static int never_sent(CURLcode rc)
{
    return rc == CURLE_COULDNT_RESOLVE_PROXY || rc == CURLE_COULDNT_RESOLVE_HOST
           || rc == CURLE_COULDNT_CONNECT || rc == CURLE_URL_MALFORMAT
           || rc == CURLE_UNSUPPORTED_PROTOCOL;
}

/* ---------------------------------------------------------------- */
/* buffers and callbacks                                            */

static int buffer_append(onecli_buffer_t *b, const char *data, size_t n,
                         size_t limit)
{
    if (n > limit || b->len > limit - n)
        return 0;
    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        char *p;
        while (cap < b->len + n)
            cap *= 2;
        p = realloc(b->data, cap);
        if (p == NULL)
            return 0;
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    return 1;
}

static void buffer_release(onecli_buffer_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* Keeps small buffers for the next request, frees big ones. */
static void buffer_recycle(onecli_buffer_t *b)
{
    if (b->cap > 256 * 1024)
        buffer_release(b);
    b->len = 0;
}

static size_t write_body(char *data, size_t size, size_t nmemb, void *ud)
{
    onecli_transport_t *t = ud;
    size_t n = size * nmemb;
    if (!buffer_append(&t->body, data, n, t->max_response)) {
        t->too_large = t->body.len + n > t->max_response;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

static size_t write_header(char *data, size_t size, size_t nmemb, void *ud)
{
    onecli_transport_t *t = ud;
    size_t n = size * nmemb;
    /* keep only the last response's headers (after 1xx or proxy CONNECT) */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
        t->head.len = 0;
    if (!buffer_append(&t->head, data, n, 1024 * 1024))
        return 0;
    return n;
}

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
        curl_easy_cleanup(t->easy);
        t->easy = NULL;
    }
    if (t->headers) {
        curl_slist_free_all(t->headers);
        t->headers = NULL;
    }
    buffer_release(&t->body);
    buffer_release(&t->head);
    free(t->ca_file);
    t->ca_file = NULL;
    free(t->user_agent);
    t->user_agent = NULL;
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

/* Reads an optional number of seconds into milliseconds. */
static long opt_seconds_ms(lua_State *L, int idx, const char *field, long dflt)
{
    lua_Number s;
    lua_getfield(L, idx, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return dflt;
    }
    if (lua_type(L, -1) != LUA_TNUMBER)
        luaL_error(L, "option '%s' must be a number of seconds, got %s", field,
                   luaL_typename(L, -1));
    s = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (!(s >= 0) || s > 2000000)
        luaL_error(L, "option '%s' must be between 0 and 2000000 seconds", field);
    if (s > 0 && s < 0.001)
        s = 0.001;    /* 0 means "no limit" to libcurl: keep tiny values tiny */
    return (long)(s * 1000 + 0.5);
}

static const char *opt_string(lua_State *L, int idx, const char *field)
{
    const char *s = NULL;
    lua_getfield(L, idx, field);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "option '%s' must be a string, got %s", field,
                       luaL_typename(L, -1));
        s = lua_tostring(L, -1);
    }
    lua_pop(L, 1); /* the string stays referenced by the options table */
    return s;
}

static char *dup_string(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p)
        memcpy(p, s, n);
    return p;
}

/* core.new_transport([opts]) -> transport */
static int l_new_transport(lua_State *L)
{
    onecli_transport_t *t;
    const char *ca_file = NULL, *user_agent = NULL;
    lua_Number max_response = DEFAULT_MAX_RESPONSE;
    long timeout_ms, connect_timeout_ms;
    int insecure = 0;

    lua_settop(L, 1);
    if (lua_isnil(L, 1)) {
        lua_newtable(L);
        lua_replace(L, 1);
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    timeout_ms = opt_seconds_ms(L, 1, "timeout", (long)(DEFAULT_TIMEOUT * 1000));
    connect_timeout_ms = opt_seconds_ms(L, 1, "connect_timeout",
                                        (long)(DEFAULT_CONNECT_TIMEOUT * 1000));
    ca_file = opt_string(L, 1, "ca_file");
    user_agent = opt_string(L, 1, "user_agent");
    lua_getfield(L, 1, "insecure");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
        return luaL_error(L, "option 'insecure' must be a boolean");
    insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 1, "max_response_size");
    if (!lua_isnil(L, -1)) {
        max_response = luaL_checknumber(L, -1);
        if (!(max_response >= 1))
            return luaL_error(L, "option 'max_response_size' must be >= 1");
    }
    lua_pop(L, 1);

    t = (onecli_transport_t *)lua_newuserdata(L, sizeof *t);
    memset(t, 0, sizeof *t);
    luaL_getmetatable(L, TRANSPORT_MT);
    lua_setmetatable(L, -2);
    /* from here on the userdata owns every allocation: raising is safe */
    t->timeout_ms = timeout_ms;
    t->connect_timeout_ms = connect_timeout_ms;
    t->insecure = insecure;
    t->max_response = max_response > 4294967295.0 ? 4294967295u : (size_t)max_response;
    t->easy = curl_easy_init();
    if (t->easy == NULL)
        return luaL_error(L, "curl_easy_init failed");
    if (ca_file && (t->ca_file = dup_string(ca_file)) == NULL)
        return luaL_error(L, "not enough memory");
    t->user_agent = dup_string(user_agent ? user_agent : default_user_agent);
    if (t->user_agent == NULL)
        return luaL_error(L, "not enough memory");
    return 1;
}

/* Validates request.headers (a name -> value map) before any allocation. */
static void check_headers(lua_State *L, int idx)
{
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        const char *name, *value;
        if (lua_type(L, -2) != LUA_TSTRING)
            luaL_error(L, "request header names must be strings");
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "request header '%s' must be a string, got %s",
                       lua_tostring(L, -2), luaL_typename(L, -1));
        name = lua_tostring(L, -2);
        lua_pushvalue(L, -1);
        value = lua_tostring(L, -1);
        if (*name == '\0' || strpbrk(name, ":\r\n \t") != NULL)
            luaL_error(L, "request header name '%s' is not valid", name);
        if (strpbrk(value, "\r\n") != NULL)
            luaL_error(L, "request header '%s' contains a line break", name);
        lua_pop(L, 2);
    }
}

/* Builds t->headers from the validated map at idx; raises only on OOM,
 * when the partial list is already owned by t. */
static void build_headers(lua_State *L, onecli_transport_t *t, int idx)
{
    struct curl_slist *next;
    if (idx != 0) {
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            const char *line;
            lua_pushvalue(L, -1);
            line = lua_pushfstring(L, "%s: %s", lua_tostring(L, -3),
                                   lua_tostring(L, -1));
            next = curl_slist_append(t->headers, line);
            lua_pop(L, 3);
            if (next == NULL)
                luaL_error(L, "not enough memory");
            t->headers = next;
        }
    }
    next = curl_slist_append(t->headers, "Expect:"); /* no 100-continue */
    if (next == NULL)
        luaL_error(L, "not enough memory");
    t->headers = next;
}

/* Pushes the response headers as a table with lower-cased names; repeated
 * headers are joined with ", ". */
static void push_response_headers(lua_State *L, onecli_transport_t *t)
{
    const char *p = t->head.data, *end = t->head.data + t->head.len;
    lua_newtable(L);
    while (p != NULL && p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        const char *line_end = eol ? eol : end, *colon, *v, *ve;
        char name[MAX_HEADER_NAME];
        size_t n, i;
        colon = memchr(p, ':', (size_t)(line_end - p));
        if (colon && colon > p && (size_t)(colon - p) < sizeof name
                && memcmp(p, "HTTP/", 5) != 0) {
            n = (size_t)(colon - p);
            for (i = 0; i < n; i++) {
                char c = p[i];
                name[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
            }
            v = colon + 1;
            ve = line_end;
            while (v < ve && (*v == ' ' || *v == '\t'))
                v++;
            while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
                ve--;
            lua_pushlstring(L, name, n);
            lua_pushvalue(L, -1);
            lua_rawget(L, -3);
            if (lua_isnil(L, -1)) {
                lua_pop(L, 1);
                lua_pushlstring(L, v, (size_t)(ve - v));
            } else {
                lua_pushliteral(L, ", ");
                lua_pushlstring(L, v, (size_t)(ve - v));
                lua_concat(L, 3);
            }
            lua_rawset(L, -3);
        }
        p = eol ? eol + 1 : NULL;
    }
}

#define SETOPT(opt, val) \
    do { if (rc == CURLE_OK) rc = curl_easy_setopt(t->easy, (opt), (val)); } while (0)

/* t:request(req) -> status, headers, body | nil, err */
static int transport_request(lua_State *L)
{
    onecli_transport_t *t = check_transport(L, 1);
    const char *method, *url, *path, *secret, *body = NULL;
    size_t body_len = 0;
    long timeout_ms, connect_timeout_ms, status = 0, request_size = 0;
    int headers_idx = 0, fresh_connect;
    CURLcode rc = CURLE_OK;

    if (t->easy == NULL)
        return luaL_error(L, "transport is closed");
    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);

    method = opt_string(L, 2, "method");
    url = opt_string(L, 2, "url");
    if (method == NULL || url == NULL)
        return luaL_error(L, "request needs 'method' and 'url'");
    path = opt_string(L, 2, "path");
    secret = opt_string(L, 2, "secret");
    lua_getfield(L, 2, "body");                                       /* 3 */
    if (!lua_isnil(L, 3)) {
        if (lua_type(L, 3) != LUA_TSTRING)
            return luaL_error(L, "request body must be a string, got %s",
                              luaL_typename(L, 3));
        body = lua_tolstring(L, 3, &body_len);
    }
    if (body && (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0))
        return luaL_error(L, "a %s request cannot have a body", method);
    timeout_ms = opt_seconds_ms(L, 2, "timeout", t->timeout_ms);
    connect_timeout_ms = opt_seconds_ms(L, 2, "connect_timeout", t->connect_timeout_ms);
    lua_getfield(L, 2, "fresh_connect");
    fresh_connect = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, 2, "headers");                                    /* 4 */
    if (!lua_isnil(L, 4)) {
        luaL_checktype(L, 4, LUA_TTABLE);
        check_headers(L, 4);
        headers_idx = 4;
    }

    if (t->headers) {
        curl_slist_free_all(t->headers);
        t->headers = NULL;
    }
    build_headers(L, t, headers_idx);
    t->body.len = 0;
    t->head.len = 0;
    t->too_large = 0;
    t->errbuf[0] = '\0';

    /* reset keeps the connection, DNS and TLS session caches */
    curl_easy_reset(t->easy);
    SETOPT(CURLOPT_URL, url);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    /* libcurl re-sends a request once, silently, when a reused connection
     * closes without an answer; requests that must not be repeated ask
     * for a connection of their own instead */
    SETOPT(CURLOPT_FRESH_CONNECT, fresh_connect ? 1L : 0L);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_TIMEOUT_MS, timeout_ms);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
    SETOPT(CURLOPT_SSL_VERIFYPEER, t->insecure ? 0L : 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, t->insecure ? 0L : 2L);
    if (t->ca_file)
        SETOPT(CURLOPT_CAINFO, t->ca_file);
    SETOPT(CURLOPT_USERAGENT, t->user_agent);
    SETOPT(CURLOPT_HTTPHEADER, t->headers);
    SETOPT(CURLOPT_ERRORBUFFER, t->errbuf);
    SETOPT(CURLOPT_WRITEFUNCTION, write_body);
    SETOPT(CURLOPT_WRITEDATA, (void *)t);
    SETOPT(CURLOPT_HEADERFUNCTION, write_header);
    SETOPT(CURLOPT_HEADERDATA, (void *)t);
    if (strcmp(method, "GET") == 0) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else {
        SETOPT(CURLOPT_CUSTOMREQUEST, method);
        if (body || strcmp(method, "DELETE") != 0) {
            /* the body string is anchored on the stack during perform */
            SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
            SETOPT(CURLOPT_POSTFIELDS, body ? body : "");
        }
    }
    if (rc != CURLE_OK) {
        onecli_error_push_transport(L, method, path ? path : url,
                                    curl_code_name(rc), curl_easy_strerror(rc),
                                    secret, 0);
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }

    rc = curl_easy_perform(t->easy);

    curl_slist_free_all(t->headers);
    t->headers = NULL;
    if (rc != CURLE_OK) {
        const char *message = t->errbuf[0] ? t->errbuf : curl_easy_strerror(rc);
        int sent;
        curl_easy_getinfo(t->easy, CURLINFO_REQUEST_SIZE, &request_size);
        sent = !never_sent(rc) && request_size > 0;
        if (t->too_large) {
            lua_pushfstring(L, "response body larger than max_response_size "
                            "(%d bytes)", (int)t->max_response);
            onecli_error_push_transport(L, method, path ? path : url,
                                        "RESPONSE_TOO_LARGE", lua_tostring(L, -1),
                                        secret, sent);
            lua_pushboolean(L, 0);
            lua_setfield(L, -2, "retryable");
        } else {
            onecli_error_push_transport(L, method, path ? path : url,
                                        curl_code_name(rc), message, secret, sent);
        }
        buffer_recycle(&t->body);
        buffer_recycle(&t->head);
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &status);
    lua_pushinteger(L, (lua_Integer)status);
    push_response_headers(L, t);
    lua_pushlstring(L, t->body.data ? t->body.data : "", t->body.len);
    buffer_recycle(&t->body);
    buffer_recycle(&t->head);
    return 3;
}

void onecli_transport_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "request", transport_request },
        { "close", transport_close },
        { "is_closed", transport_is_closed },
        { NULL, NULL }
    };
    static const luaL_Reg metamethods[] = {
        { "__gc", transport_close },
#if LUA_VERSION_NUM >= 504
        { "__close", transport_close },
#endif
        { "__tostring", transport_tostring },
        { NULL, NULL }
    };
    static const luaL_Reg funcs[] = {
        { "new_transport", l_new_transport },
        { NULL, NULL }
    };
    const char *lua_version;
    curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);

    /* User-Agent: lua-onecli/<version> <Lua version> libcurl/<version> */
    lua_getglobal(L, "jit");
    if (lua_type(L, -1) == LUA_TTABLE) {
        lua_getfield(L, -1, "version");
        lua_remove(L, -2);
    } else {
        lua_pop(L, 1);
        lua_getglobal(L, "_VERSION");
    }
    lua_version = lua_isstring(L, -1) ? lua_tostring(L, -1) : LUA_VERSION;
    snprintf(default_user_agent, sizeof default_user_agent,
             "lua-onecli/%s %s libcurl/%s", ONECLI_VERSION, lua_version,
             info->version);
    lua_pop(L, 1);
    lua_pushstring(L, default_user_agent);
    lua_setfield(L, -2, "user_agent");
    lua_pushstring(L, info->version);
    lua_setfield(L, -2, "curl_version");

    if (luaL_newmetatable(L, TRANSPORT_MT)) {
        onecli_setfuncs(L, metamethods, 0);
        onecli_newlibtable(L, methods);
        onecli_setfuncs(L, methods, 0);
        lua_setfield(L, -2, "__index");
    }
    lua_pop(L, 1);
    onecli_setfuncs(L, funcs, 0);
}
