/*
 * jsonenc.c - the JSON encoder: core.json_encode(value) -> string.
 *
 * Written here rather than borrowed from lua-cjson (the decoder is ours
 * too, jsondec.c) because the encoder has to be right for every input:
 *
 *  - strings (values and keys) must be valid UTF-8 (RFC 3629: no overlong
 *    forms, no surrogates, nothing above U+10FFFF); anything else is
 *    refused, naming where it is, never sent as invalid JSON;
 *  - numbers are written exactly: integers in full (Lua 5.3+ integers to
 *    2^63, integral floats as digits), other floats with the fewest digits
 *    that read back as the same double (cjson rounds to 14 digits);
 *  - tables marked with core.array() and core.empty_array encode as JSON
 *    arrays even when empty ([]); other empty tables as {};
 *  - a table is an array when its keys are exactly 1..n, an object when
 *    they are all strings; mixed, sparse or other keys, cycles (deeper than
 *    JSON_MAX_DEPTH), NaN, infinities, functions and other userdata are
 *    refused with a message that names the value's place (".a.b[2]").
 *
 * The text is built in a C buffer owned by a userdata on the stack, so a
 * refusal (a Lua error) half-way leaves nothing behind: the buffer is
 * freed by __gc. Output never depends on anything but the value.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onecli.h"

#define JSON_MAX_DEPTH 128
#define BUFFER_MT "onecli.jsonbuffer"

/* ---------------------------------------------------------------- */
/* UTF-8                                                            */

size_t onecli_utf8_check(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        size_t n;
        unsigned char lo = 0x80, hi = 0xBF;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            if (c == 0xE0)
                lo = 0xA0;         /* overlong */
            else if (c == 0xED)
                hi = 0x9F;         /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            if (c == 0xF0)
                lo = 0x90;         /* overlong */
            else if (c == 0xF4)
                hi = 0x8F;         /* above U+10FFFF */
        } else {
            return i;
        }
        if (len - i <= n || p[i + 1] < lo || p[i + 1] > hi)
            return i;
        if (n >= 2 && (p[i + 2] < 0x80 || p[i + 2] > 0xBF))
            return i;
        if (n == 3 && (p[i + 3] < 0x80 || p[i + 3] > 0xBF))
            return i;
        i += n + 1;
    }
    return len;
}

/* ---------------------------------------------------------------- */
/* the output buffer, owned by a userdata                           */

static int buffer_gc(lua_State *L)
{
    onecli_buffer_t *b = (onecli_buffer_t *)luaL_checkudata(L, 1, BUFFER_MT);
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    return 0;
}

static void buffer_reserve(lua_State *L, onecli_buffer_t *b, size_t n)
{
    size_t cap;
    char *p;
    if (b->cap - b->len >= n)
        return;
    if (n > ((size_t)-1) / 2 - b->len)
        luaL_error(L, "cannot encode JSON: the text would be too large");
    cap = b->cap ? b->cap : 256;
    while (cap - b->len < n)
        cap *= 2;
    p = realloc(b->data, cap);
    if (p == NULL)
        luaL_error(L, "not enough memory");
    b->data = p;
    b->cap = cap;
}

static void buffer_add(lua_State *L, onecli_buffer_t *b, const char *s, size_t n)
{
    buffer_reserve(L, b, n);
    memcpy(b->data + b->len, s, n);
    b->len += n;
}

#define buffer_addliteral(L, b, s) buffer_add((L), (b), "" s, sizeof(s) - 1)

static void buffer_addchar(lua_State *L, onecli_buffer_t *b, char c)
{
    buffer_reserve(L, b, 1);
    b->data[b->len++] = c;
}

/* ---------------------------------------------------------------- */
/* where a value is, for messages                                   */

typedef struct onecli_json_place_t {
    const struct onecli_json_place_t *parent;
    const char *key;       /* object member, or NULL */
    size_t key_len;
    lua_Integer index;     /* array element (1-based) when key is NULL */
} onecli_json_place_t;

/* Pushes ".a.b[2]" (or "the value" at the top), at most ~200 bytes. */
static const char *push_place(lua_State *L, const onecli_json_place_t *place)
{
    const onecli_json_place_t *chain[JSON_MAX_DEPTH + 2];
    int n = 0, i;
    luaL_Buffer b;
    if (place == NULL || (place->parent == NULL && place->key == NULL && place->index == 0)) {
        lua_pushliteral(L, "the value");
        return lua_tostring(L, -1);
    }
    for (; place != NULL && n < JSON_MAX_DEPTH + 2; place = place->parent)
        chain[n++] = place;
    luaL_buffinit(L, &b);
    luaL_addstring(&b, "the value at ");
    for (i = n - 1; i >= 0; i--) {
        const onecli_json_place_t *p = chain[i];
        char num[32];
        if (p->parent == NULL)
            continue;                       /* the root */
        if (p->key != NULL) {
            size_t k, shown = p->key_len > 40 ? 40 : p->key_len;
            luaL_addchar(&b, '.');
            for (k = 0; k < shown; k++) {
                unsigned char c = (unsigned char)p->key[k];
                luaL_addchar(&b, (c < 0x20 || c == 0x7f || c >= 0x80) ? '?' : (char)c);
            }
            if (shown < p->key_len)
                luaL_addstring(&b, "...");
        } else {
            snprintf(num, sizeof num, "[%lld]", (long long)p->index);
            luaL_addstring(&b, num);
        }
    }
    luaL_pushresult(&b);
    return lua_tostring(L, -1);
}

static int refuse(lua_State *L, const onecli_json_place_t *place, const char *what)
{
    const char *where = push_place(L, place);
    return luaL_error(L, "cannot encode JSON: %s: %s", where, what);
}

/* ---------------------------------------------------------------- */
/* scalars                                                          */

static void encode_string(lua_State *L, onecli_buffer_t *b, const char *s, size_t len,
                          const onecli_json_place_t *place, int is_key)
{
    static const char hex[] = "0123456789abcdef";
    size_t bad = onecli_utf8_check(s, len), i = 0, run;
    if (bad < len) {
        char what[160];
        snprintf(what, sizeof what, "%s is not valid UTF-8 (byte %lu of %lu); "
                 "send binary data base64-encoded", is_key ? "a key" : "the string",
                 (unsigned long)bad + 1, (unsigned long)len);
        refuse(L, place, what);
    }
    buffer_reserve(L, b, len + 2);
    buffer_addchar(L, b, '"');
    while (i < len) {
        unsigned char c;
        for (run = i; run < len; run++) {
            c = (unsigned char)s[run];
            if (c < 0x20 || c == '"' || c == '\\')
                break;
        }
        if (run > i)
            buffer_add(L, b, s + i, run - i);
        if (run == len)
            break;
        c = (unsigned char)s[run];
        switch (c) {
        case '"': buffer_addliteral(L, b, "\\\""); break;
        case '\\': buffer_addliteral(L, b, "\\\\"); break;
        case '\n': buffer_addliteral(L, b, "\\n"); break;
        case '\r': buffer_addliteral(L, b, "\\r"); break;
        case '\t': buffer_addliteral(L, b, "\\t"); break;
        case '\b': buffer_addliteral(L, b, "\\b"); break;
        case '\f': buffer_addliteral(L, b, "\\f"); break;
        default: {
            char u[6] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15] };
            buffer_add(L, b, u, sizeof u);
        }
        }
        i = run + 1;
    }
    buffer_addchar(L, b, '"');
}

/* Formats d with the fewest significant digits (15 to 17) that read back
 * as d; the decimal point is always '.', whatever the C locale says. */
static int format_double(char *out, size_t size, double d)
{
    int prec, n = 0;
    char *p;
    for (prec = 15; prec <= 17; prec++) {
        n = snprintf(out, size, "%.*g", prec, d);
        if (strtod(out, NULL) == d)
            break;
    }
    for (p = out; *p; p++)
        if (*p == ',')
            *p = '.';
    return n;
}

static void encode_number(lua_State *L, onecli_buffer_t *b, int idx,
                          const onecli_json_place_t *place)
{
    char num[64];
    int n;
    lua_Number d;
#if ONECLI_HAS_INTEGERS
    if (lua_isinteger(L, idx)) {
        n = snprintf(num, sizeof num, LUA_INTEGER_FMT, (LUAI_UACINT)lua_tointeger(L, idx));
        buffer_add(L, b, num, (size_t)n);
        return;
    }
#endif
    d = lua_tonumber(L, idx);
    if (d != d || d == HUGE_VAL || d == -HUGE_VAL)
        refuse(L, place, d != d ? "NaN is not a JSON number"
                                : "an infinite number is not a JSON number");
    if (d == floor(d) && fabs(d) < 1e18)
        n = snprintf(num, sizeof num, "%.0f", (double)d);   /* integral: all digits */
    else
        n = format_double(num, sizeof num, (double)d);
    buffer_add(L, b, num, (size_t)n);
}

/* ---------------------------------------------------------------- */
/* tables                                                           */

/* Returns 1 if the value at idx is a table marked as a JSON array. */
static int is_marked(lua_State *L, int idx)
{
    return onecli_json_is_marked_array(L, idx);
}

static int positive_index(lua_State *L, int idx, lua_Integer *out)
{
    lua_Number n;
    if (lua_type(L, idx) != LUA_TNUMBER)
        return 0;
#if ONECLI_HAS_INTEGERS
    if (lua_isinteger(L, idx)) {
        lua_Integer i = lua_tointeger(L, idx);
        if (i < 1)
            return 0;
        *out = i;
        return 1;
    }
#endif
    n = lua_tonumber(L, idx);
    if (!(n >= 1) || n != floor(n) || n > 9007199254740992.0)
        return 0;
    *out = (lua_Integer)n;
    return 1;
}

static void encode_value(lua_State *L, onecli_buffer_t *b, int idx, int depth,
                         const onecli_json_place_t *place);

/* Describes a key that cannot be a JSON member name. */
static void refuse_key(lua_State *L, int key, const onecli_json_place_t *place, int marked)
{
    char what[160];
    if (lua_type(L, key) == LUA_TNUMBER)
        snprintf(what, sizeof what, "number key %.17g in %s", (double)lua_tonumber(L, key),
                 marked ? "a table marked as an array" : "a table");
    else
        snprintf(what, sizeof what, "%s key in %s", luaL_typename(L, key),
                 marked ? "a table marked as an array" : "a table");
    refuse(L, place, what);
}

static void encode_table(lua_State *L, onecli_buffer_t *b, int idx, int depth,
                         const onecli_json_place_t *place)
{
    int marked = is_marked(L, idx);
    size_t strings = 0, integers = 0;
    lua_Integer max_index = 0, i;
    onecli_json_place_t child;

    if (depth > JSON_MAX_DEPTH) {
        char what[96];
        snprintf(what, sizeof what, "tables nested deeper than %d (or a table that "
                 "contains itself)", JSON_MAX_DEPTH);
        refuse(L, place, what);
    }
    luaL_checkstack(L, 8, "JSON value nested too deeply");

    /* what kind of table: keys 1..n (array) or strings (object) */
    lua_pushnil(L);
    while (lua_next(L, idx) != 0) {
        lua_Integer k;
        lua_pop(L, 1);
        if (lua_type(L, -1) == LUA_TSTRING && !marked) {
            strings++;
        } else if (positive_index(L, -1, &k)) {
            integers++;
            if (k > max_index)
                max_index = k;
        } else {
            refuse_key(L, lua_gettop(L), place, marked);
        }
    }
    if (strings > 0 && integers > 0)
        refuse(L, place, "a table mixes string keys and array indices");
    if (integers > 0 && (lua_Integer)integers != max_index) {
        char what[96];
        snprintf(what, sizeof what, "sparse array (highest index %lld, %lu elements)",
                 (long long)max_index, (unsigned long)integers);
        refuse(L, place, what);
    }

    child.parent = place;
    if (strings == 0 && (integers > 0 || marked)) {
        buffer_addchar(L, b, '[');
        for (i = 1; i <= max_index; i++) {
            if (i > 1)
                buffer_addchar(L, b, ',');
            lua_rawgeti(L, idx, (int)i);
            child.key = NULL;
            child.key_len = 0;
            child.index = i;
            encode_value(L, b, lua_gettop(L), depth + 1, &child);
            lua_pop(L, 1);
        }
        buffer_addchar(L, b, ']');
        return;
    }
    buffer_addchar(L, b, '{');
    lua_pushnil(L);
    i = 0;
    while (lua_next(L, idx) != 0) {
        size_t klen;
        const char *key = lua_tolstring(L, -2, &klen);   /* a string: checked above */
        if (i++ > 0)
            buffer_addchar(L, b, ',');
        child.key = key;
        child.key_len = klen;
        child.index = 0;
        encode_string(L, b, key, klen, &child, 1);
        buffer_addchar(L, b, ':');
        encode_value(L, b, lua_gettop(L), depth + 1, &child);
        lua_pop(L, 1);
    }
    buffer_addchar(L, b, '}');
}

static void encode_value(lua_State *L, onecli_buffer_t *b, int idx, int depth,
                         const onecli_json_place_t *place)
{
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        buffer_addliteral(L, b, "null");
        return;
    case LUA_TBOOLEAN:
        if (lua_toboolean(L, idx))
            buffer_addliteral(L, b, "true");
        else
            buffer_addliteral(L, b, "false");
        return;
    case LUA_TNUMBER:
        encode_number(L, b, idx, place);
        return;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        encode_string(L, b, s, len, place, 0);
        return;
    }
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {     /* cjson.null, core.null */
            buffer_addliteral(L, b, "null");
            return;
        }
        refuse(L, place, "light userdata (only onecli.null is JSON null)");
        return;
    case LUA_TTABLE:
        encode_table(L, b, idx, depth, place);
        return;
    default: {
        char what[64];
        snprintf(what, sizeof what, "a value of type %s", luaL_typename(L, idx));
        refuse(L, place, what);
    }
    }
}

/* core.json_encode(value) -> string; raises on values JSON cannot hold. */
static int l_json_encode(lua_State *L)
{
    onecli_buffer_t *b;
    onecli_json_place_t root = { NULL, NULL, 0, 0 };
    luaL_checkany(L, 1);
    lua_settop(L, 1);
    b = (onecli_buffer_t *)lua_newuserdata(L, sizeof *b);    /* 2: owns the text */
    memset(b, 0, sizeof *b);
    luaL_getmetatable(L, BUFFER_MT);
    lua_setmetatable(L, 2);
    encode_value(L, b, 1, 0, &root);
    lua_pushlstring(L, b->data ? b->data : "", b->len);
    free(b->data);                 /* now, rather than at the next collection */
    b->data = NULL;
    b->len = b->cap = 0;
    return 1;
}

void onecli_jsonenc_open(lua_State *L)
{
    if (luaL_newmetatable(L, BUFFER_MT)) {
        lua_pushcfunction(L, buffer_gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_pop(L, 1);
    lua_pushcfunction(L, l_json_encode);
    lua_setfield(L, -2, "json_encode");
}
