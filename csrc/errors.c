/*
 * errors.c - error objects and error normalization.
 *
 * normalize(method, path, status, headers, body, opts) is a pure function
 * any transport can call: it reads every error body shape the OneCLI
 * servers produce (reference section 5) and returns one error object:
 *
 *   F       {"error": "<message>"}                  (+ optional "code")
 *   E       {"error": {"message": m, "type": t}}    (+ optional "code")
 *   code    {"error": "<code>", "message": m}
 *   auth    {"message": m, "code": c}               (better-auth)
 *   G       {"error": "approval_not_found"}         (gateway tokens)
 *   text    plain-text bodies (gateway 401, proxies)
 *   H       HTML pages (dashboard 404, proxy 502) and empty bodies
 *
 * Every error object shares one metatable (onecli.Error) whose __tostring
 * prints one line. Credentials are masked in every field (redact()).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "onecli.h"

static const char error_mt_key = 0;

#define REDACTED "[REDACTED]"
#define PLAIN_TEXT_MAX 200
/* Error fields are bounded: a server (or a 1 MB id) must not make an
 * error object, or the line it prints, as large as what it sent. */
#define MESSAGE_MAX 2048
#define PATH_MAX_LEN 1024
#define TOKEN_MAX 64          /* type, code from a body */
#define REQUEST_ID_MAX 128
#define TRUNCATED "..."

/* ---------------------------------------------------------------- */
/* reason phrases                                                   */

#define ONECLI_REASONS(X) \
    X(200, "OK") X(201, "Created") X(202, "Accepted") X(204, "No Content") \
    X(301, "Moved Permanently") X(302, "Found") X(303, "See Other") \
    X(304, "Not Modified") X(307, "Temporary Redirect") \
    X(308, "Permanent Redirect") X(400, "Bad Request") \
    X(401, "Unauthorized") X(402, "Payment Required") X(403, "Forbidden") \
    X(404, "Not Found") X(405, "Method Not Allowed") \
    X(406, "Not Acceptable") X(407, "Proxy Authentication Required") \
    X(408, "Request Timeout") X(409, "Conflict") X(410, "Gone") \
    X(411, "Length Required") X(412, "Precondition Failed") \
    X(413, "Content Too Large") X(414, "URI Too Long") \
    X(415, "Unsupported Media Type") X(422, "Unprocessable Entity") \
    X(425, "Too Early") X(428, "Precondition Required") \
    X(429, "Too Many Requests") X(431, "Request Header Fields Too Large") \
    X(500, "Internal Server Error") X(501, "Not Implemented") \
    X(502, "Bad Gateway") X(503, "Service Unavailable") \
    X(504, "Gateway Timeout") X(505, "HTTP Version Not Supported")

static const char *reason_phrase(long status)
{
    switch (status) {
#define ONECLI_REASON_CASE(code, text) case code: return text;
    ONECLI_REASONS(ONECLI_REASON_CASE)
#undef ONECLI_REASON_CASE
    default: return NULL;
    }
}

/* ---------------------------------------------------------------- */
/* redaction                                                        */

/*
 * Redaction reads "logical" characters: a byte, a JSON escape \uXXXX of an
 * ASCII character, or a percent-encoded byte %XX. A key a server echoes
 * JSON-escaped (\u006f\u0063_...) or percent-encoded (%6F%63_...), or with
 * some characters one way and some another, is still the key: decoding
 * the body or the URL would reveal it.
 */
static int hex_value(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* The logical character at s[i] (i < len) into *c; returns its length in
 * bytes. */
static size_t logical_char(const char *s, size_t len, size_t i, int *c)
{
    if (s[i] == '\\' && len - i >= 6 && s[i + 1] == 'u') {
        int a = hex_value((unsigned char)s[i + 2]), b = hex_value((unsigned char)s[i + 3]),
            d = hex_value((unsigned char)s[i + 4]), e = hex_value((unsigned char)s[i + 5]);
        if (a == 0 && b >= 0 && b < 8 && d >= 0 && e >= 0) {
            *c = (b << 8) | (d << 4) | e;
            if (*c < 0x80) {
                *c &= 0x7f;
                return 6;
            }
        }
    } else if (s[i] == '%' && len - i >= 3) {
        int a = hex_value((unsigned char)s[i + 1]), b = hex_value((unsigned char)s[i + 2]);
        if (a >= 0 && b >= 0) {
            *c = (a << 4) | b;
            return 3;
        }
    }
    *c = (unsigned char)s[i];
    return 1;
}

/* If the logical characters from s[i] spell word[0..wlen), returns the
 * bytes they take; else 0. */
static size_t match_logical(const char *s, size_t len, size_t i, const char *word,
                            size_t wlen)
{
    size_t k, start = i;
    for (k = 0; k < wlen; k++) {
        int c;
        if (i >= len)
            return 0;
        i += logical_char(s, len, i, &c);
        if (c != (unsigned char)word[k])
            return 0;
    }
    return i - start;
}

static const char *const key_prefixes[] = { "oc_org_", "aoc_", "oc_" };

/* Length of a key-shaped token starting at s[i], or 0: a OneCLI key
 * prefix (oc_, oc_org_, aoc_) followed by 16 or more letters or digits;
 * the token then runs on over letters, digits and '_', so that a key glued
 * to it (oc_AAAA...AAAAoc_<key>) goes with it. No
 * word boundary is needed before it: raw bodies carry keys right after
 * escapes ("\\n", "%3D"), and masking a lookalike costs nothing. */
static size_t key_token_length(const char *s, size_t len, size_t i)
{
    size_t p;
    for (p = 0; p < sizeof key_prefixes / sizeof key_prefixes[0]; p++) {
        const char *prefix = key_prefixes[p];
        size_t plen = match_logical(s, len, i, prefix, strlen(prefix)), j, alnum = 0;
        if (plen == 0)
            continue;
        j = i + plen;
        while (j < len) {
            int c;
            size_t n = logical_char(s, len, j, &c);
            if (c == '_' && alnum >= 16) {
                j += n;                 /* past the 16: the run goes on */
            } else if (c < 0x80 && isalnum(c)) {
                alnum++;
                j += n;
            } else {
                break;
            }
        }
        if (alnum >= 16)
            return j - i;
    }
    return 0;
}

/* Where the secret's body starts: after a OneCLI key prefix, when what
 * remains is long enough to be distinctive on its own (16+), else 0. */
static size_t secret_body_offset(const char *secret, size_t secret_len)
{
    size_t p;
    for (p = 0; p < sizeof key_prefixes / sizeof key_prefixes[0]; p++) {
        size_t plen = strlen(key_prefixes[p]);
        if (secret_len >= plen + 16 && memcmp(secret, key_prefixes[p], plen) == 0)
            return plen;
    }
    return 0;
}

/* Pushes s with every occurrence of the secret masked: whole, or its body
 * without the key prefix, in any mix of raw, \uXXXX and %XX characters. */
static void push_without_secret(lua_State *L, const char *s, size_t len,
                                const char *secret, size_t secret_len)
{
    size_t body = secret_body_offset(secret, secret_len), i = 0, copied = 0;
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    while (i < len) {
        size_t n = match_logical(s, len, i, secret, secret_len);
        if (n == 0 && body > 0)
            n = match_logical(s, len, i, secret + body, secret_len - body);
        if (n > 0) {
            luaL_addlstring(&b, s + copied, i - copied);
            luaL_addstring(&b, REDACTED);
            i += n;
            copied = i;
        } else {
            i++;
        }
    }
    luaL_addlstring(&b, s + copied, len - copied);
    luaL_pushresult(&b);
}

/* Pushes s with the secret and anything shaped like a OneCLI key masked.
 * Two passes: the exact secret first, wherever it is (even inside a
 * longer token), then key shapes. */
void onecli_push_redacted(lua_State *L, const char *s, size_t len,
                          const char *secret, size_t secret_len)
{
    luaL_Buffer b;
    size_t i = 0, copied = 0;
    if (secret_len > 0) {
        push_without_secret(L, s, len, secret, secret_len);
        s = lua_tolstring(L, -1, &len);      /* stays on the stack, below b */
    }
    luaL_buffinit(L, &b);
    while (i < len) {
        size_t token = 0;
        if (s[i] == 'o' || s[i] == 'a' || s[i] == '\\' || s[i] == '%')
            token = key_token_length(s, len, i);
        if (token > 0) {
            luaL_addlstring(&b, s + copied, i - copied);
            luaL_addstring(&b, REDACTED);
            i += token;
            copied = i;
        } else {
            i++;
        }
    }
    luaL_addlstring(&b, s + copied, len - copied);
    luaL_pushresult(&b);
    if (secret_len > 0)
        lua_remove(L, -2);
}

/* core.redact(s [, secret]) -> string */
static int l_redact(lua_State *L)
{
    size_t len, secret_len = 0;
    const char *s = luaL_checklstring(L, 1, &len);
    const char *secret = luaL_optlstring(L, 2, NULL, &secret_len);
    onecli_push_redacted(L, s, len, secret, secret ? secret_len : 0);
    return 1;
}

/* ---------------------------------------------------------------- */
/* building error objects                                           */

/* The length of the longest prefix of s (len bytes) that is at most max
 * bytes and does not end inside a UTF-8 sequence. */
static size_t utf8_cut(const char *s, size_t len, size_t max)
{
    size_t n;
    if (len <= max)
        return len;
    n = max;
    while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
        n--;
    return n;
}

/* err[field] = redact(s), cut to max bytes (with "..." when cut). The
 * whole string is redacted first: a key cut in half would not match. */
static void set_redacted(lua_State *L, int err, const char *field,
                         const char *s, size_t len,
                         const char *secret, size_t secret_len, size_t max)
{
    size_t rlen, cut;
    const char *r;
    onecli_push_redacted(L, s, len, secret, secret_len);
    r = lua_tolstring(L, -1, &rlen);
    if (rlen > max) {
        cut = utf8_cut(r, rlen, max - (sizeof TRUNCATED - 1));
        lua_pushlstring(L, r, cut);
        lua_pushliteral(L, TRUNCATED);
        lua_concat(L, 2);
        lua_remove(L, -2);
    }
    lua_setfield(L, err, field);
}

static void set_string(lua_State *L, int err, const char *field, const char *s)
{
    if (s != NULL) {
        lua_pushstring(L, s);
        lua_setfield(L, err, field);
    }
}

static void push_new_error(lua_State *L)
{
    lua_createtable(L, 0, 16);
    onecli_rawgetp(L, LUA_REGISTRYINDEX, &error_mt_key);
    lua_setmetatable(L, -2);
}

static const char *transport_type(const char *code)
{
    if (strcmp(code, "OPERATION_TIMEDOUT") == 0)
        return "timeout_error";
    if (strncmp(code, "SSL_", 4) == 0 || strcmp(code, "PEER_FAILED_VERIFICATION") == 0)
        return "tls_error";
    return "connection_error";
}

void onecli_error_push_transport(lua_State *L, const char *method,
        const char *path, const char *code, const char *message,
        const char *secret, int request_sent)
{
    const char *type = transport_type(code);
    size_t secret_len = secret ? strlen(secret) : 0;
    int err;
    push_new_error(L);
    err = lua_gettop(L);
    set_string(L, err, "type", type);
    set_redacted(L, err, "message", message, strlen(message), secret, secret_len,
                 MESSAGE_MAX);
    set_string(L, err, "code", code);
    lua_pushboolean(L, strcmp(type, "tls_error") != 0);
    lua_setfield(L, err, "retryable");
    lua_pushboolean(L, request_sent);
    lua_setfield(L, err, "request_sent");
    set_string(L, err, "method", method);
    if (path)
        set_redacted(L, err, "path", path, strlen(path), secret, secret_len, PATH_MAX_LEN);
    lua_pushinteger(L, 1);
    lua_setfield(L, err, "attempts");
}

/* Reads an optional string field of the table at idx (absolute). The
 * returned pointer stays valid while the table is on the stack. */
static const char *opt_string_field(lua_State *L, int idx, const char *field)
{
    const char *s = NULL;
    if (idx == 0 || lua_type(L, idx) != LUA_TTABLE)
        return NULL;
    lua_getfield(L, idx, field);
    if (lua_type(L, -1) == LUA_TSTRING)
        s = lua_tostring(L, -1);
    lua_pop(L, 1);
    return s;
}

/* A lower_snake_case machine token such as "approval_not_found". */
static int is_machine_token(const char *s)
{
    int underscore = 0;
    if (!islower((unsigned char)*s))
        return 0;
    for (; *s; s++) {
        if (*s == '_')
            underscore = 1;
        else if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s))
            return 0;
    }
    return underscore;
}

/* An error type: lower_snake_case, at most TOKEN_MAX bytes ("not_found_error",
 * "enterprise_license_required"). */
static int is_type_token(const char *s)
{
    size_t n = 0;
    if (!islower((unsigned char)*s))
        return 0;
    for (; *s; s++, n++) {
        if (n >= TOKEN_MAX || !(islower((unsigned char)*s) || isdigit((unsigned char)*s)
                                || *s == '_'))
            return 0;
    }
    return 1;
}

static const char *type_for_status(long status, int json_body)
{
    if (status >= 200 && status < 300)
        return "decode_error";
    if (status == 401 || status == 403)
        return "authentication_error";
    if (status == 404)
        return json_body ? "not_found_error" : "invalid_request_error";
    if (status == 422)
        return "validation_error";
    if (status == 429)
        return "rate_limit_error";
    if (status >= 400 && status < 500)
        return "invalid_request_error";
    return "api_error";
}

static int status_retryable(long status)
{
    return status == 408 || status == 429 || status == 500 || status == 502
           || status == 503 || status == 504;
}

/* Skips leading white space; sets *n to the trimmed length. */
static const char *trim(const char *s, size_t len, size_t *n)
{
    while (len > 0 && isspace((unsigned char)*s)) {
        s++;
        len--;
    }
    while (len > 0 && isspace((unsigned char)s[len - 1]))
        len--;
    *n = len;
    return s;
}

static int is_blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

static int contains_ci(const char *haystack, const char *needle)
{
    size_t n = strlen(needle);
    for (; *haystack; haystack++) {
        size_t i;
        for (i = 0; i < n; i++)
            if (tolower((unsigned char)haystack[i]) != needle[i])
                break;
        if (i == n)
            return 1;
    }
    return 0;
}

/*
 * core.normalize(method, path, status, headers, body [, opts]) -> err
 * opts: { secret = api key, attempts = n, reason = reason phrase }
 */
static int l_normalize(lua_State *L)
{
    const char *method = luaL_optstring(L, 1, NULL);
    const char *path = luaL_optstring(L, 2, NULL);
    long status = (long)luaL_checkinteger(L, 3);
    size_t body_len = 0, secret_len = 0, text_len;
    const char *body = luaL_optlstring(L, 5, NULL, &body_len);
    const char *secret = NULL, *reason = NULL, *content_type, *request_id,
               *retry_after, *text;
    const char *message = NULL, *type = NULL, *code = NULL, *hint = NULL;
    lua_Integer attempts = 1;
    int json_body = 0, html = 0, err, decoded;
    char decode_message[160];

    lua_settop(L, 6);
    if (!lua_isnil(L, 4))
        luaL_checktype(L, 4, LUA_TTABLE);
    if (!lua_isnil(L, 6)) {
        luaL_checktype(L, 6, LUA_TTABLE);
        lua_getfield(L, 6, "secret");
        if (lua_type(L, -1) == LUA_TSTRING)
            secret = lua_tolstring(L, -1, &secret_len);
        lua_getfield(L, 6, "attempts");
        if (lua_type(L, -1) == LUA_TNUMBER)
            attempts = lua_tointeger(L, -1);
        lua_getfield(L, 6, "reason");
        if (lua_type(L, -1) == LUA_TSTRING)
            reason = lua_tostring(L, -1);
        /* 7 secret, 8 attempts, 9 reason stay on the stack */
    } else {
        lua_settop(L, 9);
    }
    if (reason == NULL || *reason == '\0')
        reason = reason_phrase(status);
    if (reason == NULL)
        reason = "HTTP error";

    content_type = opt_string_field(L, lua_isnil(L, 4) ? 0 : 4, "content-type");
    request_id = opt_string_field(L, lua_isnil(L, 4) ? 0 : 4, "x-request-id");
    retry_after = opt_string_field(L, lua_isnil(L, 4) ? 0 : 4, "retry-after");

    text = trim(body ? body : "", body_len, &text_len);
    html = (text_len > 0 && text[0] == '<')
           || (content_type != NULL && contains_ci(content_type, "text/html"));

    decoded = text_len > 0 && !html && onecli_json_decode(L, body, body_len); /* 10 */
    if (!decoded) {
        if (text_len > 0 && !html) {
            const char *m = lua_tostring(L, -1);
            strncpy(decode_message, m ? m : "invalid JSON", sizeof decode_message - 1);
            decode_message[sizeof decode_message - 1] = '\0';
        } else {
            decode_message[0] = '\0';
        }
        lua_pop(L, 1 - (text_len == 0 || html));
        lua_pushnil(L);
    }
    json_body = decoded;

    if (decoded && lua_type(L, 10) == LUA_TTABLE) {
        const char *top_message = opt_string_field(L, 10, "message");
        const char *top_code = opt_string_field(L, 10, "code");
        lua_getfield(L, 10, "error");                             /* 11 */
        if (lua_type(L, 11) == LUA_TSTRING) {
            const char *e = lua_tostring(L, 11);
            if (top_message != NULL) {          /* {"error": code, "message": m} */
                message = top_message;
                code = e;
            } else {
                message = e;
                code = top_code ? top_code : (is_machine_token(e) ? e : NULL);
            }
        } else if (lua_type(L, 11) == LUA_TTABLE) {  /* envelope */
            message = opt_string_field(L, 11, "message");
            type = opt_string_field(L, 11, "type");
            code = opt_string_field(L, 11, "code");
            if (code == NULL)
                code = top_code;
        } else if (top_message != NULL) {            /* {"message", "code"} */
            message = top_message;
            code = top_code;
        }
    } else {
        lua_pushnil(L);                                           /* 11 */
    }

    push_new_error(L);
    err = lua_gettop(L);

    if (status >= 200 && status < 300) {
        type = "decode_error";
        if (text_len == 0)
            message = "expected a JSON response body but it was empty";
        else if (html)
            message = "expected a JSON response body but got an HTML page";
        else if (!decoded)
            message = lua_pushfstring(L, "expected a JSON response body but got "
                                      "invalid JSON (%s)", decode_message);
        else
            message = "the JSON response body does not have the expected shape";
        lua_insert(L, err);  /* keep any pushed string below the error */
        err = lua_gettop(L);
    } else if (status >= 300 && status < 400) {
        const char *location = opt_string_field(L, lua_isnil(L, 4) ? 0 : 4, "location");
        type = "api_error";
        message = location ? lua_pushfstring(L, "unexpected redirect (%d) to %s",
                                             (int)status, location)
                           : reason;
        if (location) {
            lua_insert(L, err);
            err = lua_gettop(L);
        }
    }

    if (message == NULL && !json_body && !html && text_len > 0
            && text_len <= PLAIN_TEXT_MAX && memchr(text, '\n', text_len) == NULL) {
        lua_pushlstring(L, text, text_len);   /* plain text such as "no project found" */
        lua_insert(L, err);
        err = lua_gettop(L);
        message = lua_tostring(L, err - 1);
    }
    if (message == NULL || is_blank(message))
        message = reason;
    if (status == 400 || status == 401) {
        /* an organization key without a workspace (reference 3.3) */
        if (contains_ci(message, "header is required")
                && (contains_ci(message, "x-project-id") || contains_ci(message, "x-workspace-id")))
            hint = "this call needs a workspace: an organization key (oc_org_...) is sent "
                   "with the project_id (or workspace_id) option, or ONECLI_PROJECT_ID / "
                   "ONECLI_WORKSPACE_ID";
    }
    /* the body's own type only when it is a machine token: a type with a
     * line break or spaces would forge log lines through tostring(err) */
    if (type == NULL || !is_type_token(type))
        type = type_for_status(status, json_body);
    if (hint != NULL)
        ;   /* set above */
    else if (strcmp(type, "enterprise_license_required") == 0)
        /* v2's Enterprise routers, before authentication (reference 14.2) */
        hint = "this needs a OneCLI Enterprise licence: a self-hosted server gets it with "
               "ENTERPRISE_ENABLED=true (client:instance().entitled tells); OneCLI Cloud "
               "always has it";
    else if (html && status >= 500)
        hint = "an HTML page came back instead of JSON: a proxy or load balancer "
               "answered, the OneCLI API behind it may be down or restarting";
    else if (html)
        hint = "an HTML page came back instead of JSON: check the base URL (the "
               "OneCLI API lives under /v1; v2 serves it on its own port, 10256 "
               "by default, not the dashboard's 10254)";

    lua_pushinteger(L, status);
    lua_setfield(L, err, "status");
    lua_pushstring(L, type);               /* a machine token: checked above */
    lua_setfield(L, err, "type");
    set_redacted(L, err, "message", message, strlen(message), secret, secret_len,
                 MESSAGE_MAX);
    lua_pushboolean(L, status_retryable(status));
    lua_setfield(L, err, "retryable");
    if (code)
        set_redacted(L, err, "code", code, strlen(code), secret, secret_len, 2 * TOKEN_MAX);
    if (request_id)
        set_redacted(L, err, "request_id", request_id, strlen(request_id),
                     secret, secret_len, REQUEST_ID_MAX);
    if (method)
        set_redacted(L, err, "method", method, strlen(method), secret, secret_len, TOKEN_MAX);
    if (path)
        set_redacted(L, err, "path", path, strlen(path), secret, secret_len, PATH_MAX_LEN);
    if (retry_after) {
        double seconds = onecli_retry_after_seconds(retry_after, (double)time(NULL));
        if (seconds >= 0) {
            lua_pushnumber(L, seconds);
            lua_setfield(L, err, "retry_after");
        }
    }
    lua_pushinteger(L, attempts);
    lua_setfield(L, err, "attempts");
    if (body_len > 0) {
        /* redact before cutting (a key cut in half by the truncation
         * would no longer match), but only a window a little longer than
         * what is kept: the longest encoded secret fits in the margin */
        size_t redacted_len, window = ONECLI_ERROR_BODY_MAX + 6 * secret_len + 1024;
        onecli_push_redacted(L, body, body_len < window ? body_len : window, secret, secret_len);
        lua_tolstring(L, -1, &redacted_len);
        if (redacted_len > ONECLI_ERROR_BODY_MAX || body_len > window) {
            lua_pushlstring(L, lua_tostring(L, -1), redacted_len < ONECLI_ERROR_BODY_MAX
                                                    ? redacted_len : ONECLI_ERROR_BODY_MAX);
            lua_remove(L, -2);
            lua_pushboolean(L, 1);
            lua_setfield(L, err, "body_truncated");
        }
        lua_setfield(L, err, "body");
    }
    set_string(L, err, "hint", hint);
    return 1;
}

/* core.transport_error(method, path, code, message [, opts]) -> err */
static int l_transport_error(lua_State *L)
{
    const char *method = luaL_optstring(L, 1, NULL);
    const char *path = luaL_optstring(L, 2, NULL);
    const char *code = luaL_checkstring(L, 3);
    const char *message = luaL_optstring(L, 4, code);
    const char *secret = NULL;
    int request_sent = 1;
    lua_Integer attempts = 1;
    lua_settop(L, 5);
    if (!lua_isnil(L, 5)) {
        luaL_checktype(L, 5, LUA_TTABLE);
        secret = opt_string_field(L, 5, "secret");
        lua_getfield(L, 5, "request_sent");
        if (!lua_isnil(L, -1))
            request_sent = lua_toboolean(L, -1);
        lua_getfield(L, 5, "attempts");
        if (lua_type(L, -1) == LUA_TNUMBER)
            attempts = lua_tointeger(L, -1);
        lua_pop(L, 2);
    }
    onecli_error_push_transport(L, method, path, code, message, secret, request_sent);
    lua_pushinteger(L, attempts);
    lua_setfield(L, -2, "attempts");
    return 1;
}

/* core.new_error(fields) -> fields, with the error metatable */
static int l_new_error(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    onecli_rawgetp(L, LUA_REGISTRYINDEX, &error_mt_key);
    lua_setmetatable(L, 1);
    return 1;
}

static int l_is_error(lua_State *L)
{
    int is = 0;
    if (lua_type(L, 1) == LUA_TTABLE && lua_getmetatable(L, 1)) {
        onecli_rawgetp(L, LUA_REGISTRYINDEX, &error_mt_key);
        is = lua_rawequal(L, -1, -2);
    }
    lua_pushboolean(L, is);
    return 1;
}

static int l_reason_phrase(lua_State *L)
{
    const char *r = reason_phrase((long)luaL_checkinteger(L, 1));
    if (r)
        lua_pushstring(L, r);
    else
        lua_pushnil(L);
    return 1;
}

/* Appends at most max bytes of s to b (then "..."), on one line: control
 * characters (C0, DEL) and the Unicode line breaks U+0085, U+2028 and
 * U+2029 become spaces, so that no field can start a log line of its
 * own. */
static void add_one_line(luaL_Buffer *b, const char *s, size_t max)
{
    size_t len = strlen(s), n = utf8_cut(s, len, max), i;
    for (i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f) {
            luaL_addchar(b, ' ');
        } else if (c == 0xC2 && i + 1 < n && (unsigned char)s[i + 1] == 0x85) {
            luaL_addchar(b, ' ');
            i++;
        } else if (c == 0xE2 && i + 2 < n && (unsigned char)s[i + 1] == 0x80
                   && ((unsigned char)s[i + 2] == 0xA8 || (unsigned char)s[i + 2] == 0xA9)) {
            luaL_addchar(b, ' ');
            i += 2;
        } else {
            luaL_addchar(b, (char)c);
        }
    }
    if (n < len)
        luaL_addstring(b, TRUNCATED);
}

/* Reads field as a string into a stack slot; returns NULL if absent. */
static const char *field_string(lua_State *L, const char *field, int *pushed)
{
    lua_getfield(L, 1, field);
    (*pushed)++;
    if (lua_type(L, -1) == LUA_TSTRING || lua_type(L, -1) == LUA_TNUMBER)
        return lua_tostring(L, -1);
    return NULL;
}

/*
 * onecli: 409 invalid_request_error: An agent with this identifier already
 * exists (POST /v1/agents, request abc123)
 */
static int error_tostring(lua_State *L)
{
    luaL_Buffer b;
    int pushed = 0;
    const char *status, *type, *message, *method, *path, *request_id, *hint, *where;
    lua_Integer attempts = 1;
    double deadline = 0;
    size_t len;
    const char *line;

    luaL_checktype(L, 1, LUA_TTABLE);
    status = field_string(L, "status", &pushed);
    type = field_string(L, "type", &pushed);
    message = field_string(L, "message", &pushed);
    method = field_string(L, "method", &pushed);
    path = field_string(L, "path", &pushed);
    request_id = field_string(L, "request_id", &pushed);
    hint = field_string(L, "hint", &pushed);
    where = field_string(L, "where", &pushed);
    lua_getfield(L, 1, "attempts");
    pushed++;
    if (lua_type(L, -1) == LUA_TNUMBER)
        attempts = lua_tointeger(L, -1);
    lua_getfield(L, 1, "deadline");
    pushed++;
    if (lua_type(L, -1) == LUA_TNUMBER) {
        lua_Number d = lua_tonumber(L, -1);
        deadline = (d > 0 && d < 1e9) ? (double)d : 0;
    }

    luaL_buffinit(L, &b);
    luaL_addstring(&b, "onecli: ");
    if (status) {
        add_one_line(&b, status, 16);
        luaL_addchar(&b, ' ');
    }
    add_one_line(&b, type ? type : "error", TOKEN_MAX);
    luaL_addstring(&b, ": ");
    add_one_line(&b, message && !is_blank(message) ? message : "(no message)", MESSAGE_MAX);
    if (method || path || request_id || attempts > 1 || deadline > 0) {
        int sep = 0;
        luaL_addstring(&b, " (");
        if (method || path) {
            if (method)
                add_one_line(&b, method, TOKEN_MAX);
            if (method && path)
                luaL_addchar(&b, ' ');
            if (path)
                add_one_line(&b, path, 256);
            sep = 1;
        }
        if (request_id) {
            luaL_addstring(&b, sep ? ", request " : "request ");
            add_one_line(&b, request_id, REQUEST_ID_MAX);
            sep = 1;
        }
        if (attempts > 1) {
            char n[32];
            snprintf(n, sizeof n, "%s%d attempts", sep ? ", " : "", (int)attempts);
            luaL_addstring(&b, n);
            sep = 1;
        }
        if (deadline > 0) {
            char n[64];
            snprintf(n, sizeof n, "%sdeadline of %g s reached", sep ? ", " : "", deadline);
            luaL_addstring(&b, n);
        }
        luaL_addchar(&b, ')');
    }
    if (where) {     /* where the user's code called: set when raised */
        luaL_addstring(&b, " at ");
        add_one_line(&b, where, 256);
    }
    if (hint) {
        luaL_addstring(&b, "; hint: ");
        add_one_line(&b, hint, 512);
    }
    luaL_pushresult(&b);
    (void)pushed;
    /* fields were redacted when the error was made, but an error built by
     * hand through new_error() may not have been: mask key shapes again */
    line = lua_tolstring(L, -1, &len);
    onecli_push_redacted(L, line, len, NULL, 0);
    return 1;
}

void onecli_errors_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "normalize", l_normalize },
        { "transport_error", l_transport_error },
        { "new_error", l_new_error },
        { "is_error", l_is_error },
        { "reason_phrase", l_reason_phrase },
        { "redact", l_redact },
        { NULL, NULL }
    };
    lua_newtable(L);
    lua_pushcfunction(L, error_tostring);
    lua_setfield(L, -2, "__tostring");
    lua_pushliteral(L, "onecli.Error");
    lua_setfield(L, -2, "__name");
    lua_pushvalue(L, -1);
    onecli_rawsetp(L, LUA_REGISTRYINDEX, &error_mt_key);
    lua_setfield(L, -2, "error_mt");
    onecli_setfuncs(L, funcs, 0);
}
