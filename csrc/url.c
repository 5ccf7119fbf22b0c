/*
 * url.c - what goes into a request's URL: the base URL's normal form,
 * path segments, query components. Pure functions.
 *
 *   core.escape(s)          percent-encodes every byte but the unreserved
 *                           ones (A-Z a-z 0-9 - . _ ~), for a query
 *                           component or a path segment
 *   core.path_segment(s)    escape(s) for one path segment: nil, message
 *                           for "", "." and ".." (a dot segment would
 *                           change the route: /v1/agents/.. is /v1/)
 *   core.normalize_url(u)   the API base: scheme lower-cased, trailing
 *                           slashes dropped, /v1 added to a bare origin;
 *                           returns url, base_path or nil, message
 *
 * normalize_url refuses what would make the request go somewhere else
 * than it reads: no credentials (user:pass@), no query or fragment, no
 * white space, control or non-ASCII bytes, no backslashes, no dot
 * segments (also percent-encoded: %2e), a host that is there. Its messages
 * never repeat what came before an '@' (it may be a key) nor anything
 * shaped like a key.
 */
#include <ctype.h>
#include <string.h>

#include "onecli.h"

#define SHOWN_MAX 120

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
           || c == '-' || c == '.' || c == '_' || c == '~';
}

static void push_escaped(lua_State *L, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    luaL_Buffer b;
    size_t i;
    luaL_buffinit(L, &b);
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (unreserved(c)) {
            luaL_addchar(&b, (char)c);
        } else {
            luaL_addchar(&b, '%');
            luaL_addchar(&b, hex[c >> 4]);
            luaL_addchar(&b, hex[c & 15]);
        }
    }
    luaL_pushresult(&b);
}

/* core.escape(s) -> s percent-encoded */
static int l_escape(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    push_escaped(L, s, len);
    return 1;
}

/* core.path_segment(s) -> encoded | nil, message */
static int l_path_segment(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (len == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "an empty string is not a path segment");
        return 2;
    }
    if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.')) {
        lua_pushnil(L);
        lua_pushfstring(L, "\"%s\" is a dot segment: it would change the route, not name "
                        "a resource", s);
        return 2;
    }
    push_escaped(L, s, len);
    return 1;
}

/* ---------------------------------------------------------------- */
/* base URLs                                                        */

/* Is s[0..len) a dot segment, literally or percent-encoded (".", "..",
 * "%2e", ".%2E", ...)? Servers that parse URLs the WHATWG way treat the
 * encoded forms as dot segments too. */
static int dot_segment(const char *s, size_t len)
{
    int dots = 0;
    size_t i = 0;
    while (i < len) {
        if (s[i] == '.') {
            i++;
        } else if (len - i >= 3 && s[i] == '%' && s[i + 1] == '2'
                   && (s[i + 2] == 'e' || s[i + 2] == 'E')) {
            i += 3;
        } else {
            return 0;
        }
        dots++;
    }
    return dots == 1 || dots == 2;
}

/* Pushes what a message may show of the URL u: nothing up to its last '@'
 * (credentials, wherever they sit: "user:key@host", "http://u:p@h", a
 * '@' after a stray "/"), no control or non-ASCII bytes, key-shaped tokens
 * masked, at most SHOWN_MAX bytes. */
static const char *push_shown(lua_State *L, const char *u, size_t len)
{
    const char *start = u, *p;
    luaL_Buffer b;
    size_t i, n, shown_len;
    const char *shown;
    for (p = u; p < u + len; p++)
        if (*p == '@')
            start = p + 1;
    luaL_buffinit(L, &b);
    if (start != u)
        luaL_addstring(&b, "[credentials removed]@");
    n = (size_t)(u + len - start);
    for (i = 0; i < n && i < SHOWN_MAX; i++) {
        unsigned char c = (unsigned char)start[i];
        luaL_addchar(&b, (c <= 0x20 || c >= 0x7f) ? '?' : (char)c);
    }
    if (n > SHOWN_MAX)
        luaL_addstring(&b, "...");
    luaL_pushresult(&b);
    /* mask anything shaped like a key (a key pasted as the URL) */
    shown = lua_tolstring(L, -1, &shown_len);
    onecli_push_redacted(L, shown, shown_len, NULL, 0);
    lua_remove(L, -2);
    return lua_tostring(L, -1);
}

static int same_ci(const char *a, const char *b, size_t n)
{
    size_t i;
    for (i = 0; i < n; i++)
        if (tolower((unsigned char)a[i]) != b[i])
            return 0;
    return 1;
}

static int refuse(lua_State *L, const char *u, size_t len, const char *why)
{
    const char *shown = push_shown(L, u, len);
    lua_pushnil(L);
    lua_pushfstring(L, "%s (got '%s')", why, shown);
    return 2;
}

/* core.normalize_url(url) -> url, base_path | nil, message */
static int l_normalize_url(lua_State *L)
{
    size_t len, i, scheme_len, auth_len, path_len;
    const char *u, *rest, *auth, *path, *end, *host_end, *p;
    luaL_Buffer b;

    if (lua_type(L, 1) != LUA_TSTRING || onecli_rawlen(L, 1) == 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "url must be a non-empty string");
        return 2;
    }
    u = lua_tolstring(L, 1, &len);
    end = u + len;
    for (i = 0; i < len; i++) {
        unsigned char c = (unsigned char)u[i];
        if (c <= 0x20 || c == 0x7f)
            return refuse(L, u, len, "url must not contain white space or control characters");
        if (c >= 0x80)
            return refuse(L, u, len, "url must be ASCII (punycode the host, "
                          "percent-encode the path)");
        if (c == '\\')
            return refuse(L, u, len, "url must not contain backslashes");
    }
    /* scheme "://" */
    for (i = 0; i < len && (isalnum((unsigned char)u[i]) || u[i] == '+' || u[i] == '-'
                            || u[i] == '.'); i++)
        ;
    if (i == 0 || !isalpha((unsigned char)u[0]) || len - i < 3 || memcmp(u + i, "://", 3) != 0)
        return refuse(L, u, len, "url must start with http:// or https://");
    scheme_len = i;
    if (!((scheme_len == 4 && same_ci(u, "http", 4))
          || (scheme_len == 5 && same_ci(u, "https", 5))))
        return refuse(L, u, len, "url must use http or https");
    rest = u + scheme_len + 3;
    if (memchr(rest, '?', (size_t)(end - rest)) || memchr(rest, '#', (size_t)(end - rest)))
        return refuse(L, u, len, "url must not have a query string or fragment");
    auth = rest;
    path = memchr(rest, '/', (size_t)(end - rest));
    if (path == NULL)
        path = end;
    auth_len = (size_t)(path - auth);
    if (memchr(auth, '@', auth_len))
        return refuse(L, u, len, "url must not contain credentials; use api_key");
    if (auth_len == 0)
        return refuse(L, u, len, "url has no host");
    /* host: [v6] or name/v4, then an optional :port of digits */
    if (auth[0] == '[') {
        host_end = memchr(auth, ']', auth_len);
        if (host_end == NULL || host_end == auth + 1)
            return refuse(L, u, len, "url has a malformed IPv6 host");
        host_end++;
    } else {
        host_end = memchr(auth, ':', auth_len);
        if (host_end == NULL)
            host_end = path;
        if (host_end == auth)
            return refuse(L, u, len, "url has no host");
    }
    if (host_end < path) {
        if (*host_end != ':' || host_end + 1 == path)
            return refuse(L, u, len, "url has a malformed port");
        for (p = host_end + 1; p < path; p++)
            if (!isdigit((unsigned char)*p))
                return refuse(L, u, len, "url has a malformed port");
        if (path - host_end - 1 > 5)
            return refuse(L, u, len, "url has a malformed port");
    }
    /* path: no dot segments; trailing slashes go; empty -> /v1 */
    path_len = (size_t)(end - path);
    while (path_len > 0 && path[path_len - 1] == '/')
        path_len--;
    for (p = path; p < path + path_len;) {
        const char *seg = p + 1, *next = memchr(seg, '/', (size_t)(path + path_len - seg));
        if (next == NULL)
            next = path + path_len;
        if (dot_segment(seg, (size_t)(next - seg)))
            return refuse(L, u, len, "url must not contain '.' or '..' path segments");
        p = next;
    }
    luaL_buffinit(L, &b);
    for (i = 0; i < scheme_len; i++)
        luaL_addchar(&b, (char)tolower((unsigned char)u[i]));
    luaL_addstring(&b, "://");
    luaL_addlstring(&b, auth, auth_len);
    if (path_len == 0)
        luaL_addstring(&b, "/v1");
    else
        luaL_addlstring(&b, path, path_len);
    luaL_pushresult(&b);
    if (path_len == 0)
        lua_pushliteral(L, "/v1");
    else
        lua_pushlstring(L, path, path_len);
    return 2;
}

void onecli_url_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "escape", l_escape },
        { "path_segment", l_path_segment },
        { "normalize_url", l_normalize_url },
        { NULL, NULL }
    };
    onecli_setfuncs(L, funcs, 0);
}
