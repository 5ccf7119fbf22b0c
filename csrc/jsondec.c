/*
 * jsondec.c - the JSON decoder: core.json_decode(text) -> value.
 *
 * One pass over the text builds the Lua value directly (RFC 8259):
 *
 *  - arrays get the array mark of core.array() (json.c), so that an empty
 *    one encodes back as [] and json_encode(json_decode(s)) keeps every
 *    array an array;
 *  - null is core.null (a NULL light userdata, the same value as
 *    cjson.null), so arrays with nulls stay sequences;
 *  - an integer literal (no fraction, no exponent) in the 64-bit range is
 *    the exact Lua integer on Lua 5.3+; beyond it, a float. A literal with
 *    a fraction or an exponent is a float, unless its value is integral
 *    and below 2^53 in magnitude (1.0 and 1e3 are the integers 1 and 1000,
 *    as lua-cjson's numbers were turned back into integers before). On
 *    Lua 5.1 and LuaJIT every number is a double, correctly rounded
 *    (integers above 2^53 are the nearest double);
 *  - strings are copied as they are (no UTF-8 check, as lua-cjson); \u
 *    escapes become UTF-8, surrogate pairs joined, a lone surrogate is an
 *    error; a raw control character in a string is an error;
 *  - objects: a repeated key keeps its last value;
 *  - nesting deeper than JSON_DECODE_MAX_DEPTH, anything after the value,
 *    NaN, Infinity, leading zeros, hex and comments are errors.
 *
 * It replaces lua-cjson's decoder, which cannot tell [] from {} (Debian's
 * 2.1.0 has no decode_array_with_array_mt) and reads every number as a
 * double: marking arrays and restoring integers took a second walk over
 * the decoded tree, and integers above 2^53 could not be restored at all.
 *
 * The decoder runs in a protected call: an error is raised with
 * luaL_error and turned into a message by onecli_json_decode. All it
 * allocates is Lua values (the scratch buffer for escaped strings is a
 * userdata on the stack), so raising leaves nothing behind.
 */
#include <locale.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onecli.h"

#define JSON_DECODE_MAX_DEPTH 1000

typedef struct decoder_t {
    const unsigned char *start, *p, *end;
    int array_mt;             /* stack slot of the array metatable */
    int scratch;              /* stack slot of the scratch userdata (or nil) */
    size_t scratch_len;
    char point;               /* the locale's decimal point */
} decoder_t;

/* ---------------------------------------------------------------- */
/* errors                                                           */

static int decode_error(lua_State *L, decoder_t *d, const unsigned char *at,
                        const char *what)
{
    size_t offset = (size_t)(at - d->start) + 1;
    if (at >= d->end)
        return luaL_error(L, "%s but the text ends at byte %d", what,
                          (int)(d->end - d->start));
    if (*at >= 0x20 && *at < 0x7f)
        return luaL_error(L, "%s but found '%c' at byte %d", what, (int)*at, (int)offset);
    {
        char byte[8];
        snprintf(byte, sizeof byte, "0x%02X", (unsigned)*at);
        return luaL_error(L, "%s but found byte %s at byte %d", what, byte, (int)offset);
    }
}

/* ---------------------------------------------------------------- */
/* whitespace                                                       */

static const unsigned char *skip_space(const unsigned char *p, const unsigned char *end)
{
    while (p < end && (*p == ' ' || *p == '\n' || *p == '\r' || *p == '\t'))
        p++;
    return p;
}

/* ---------------------------------------------------------------- */
/* strings                                                          */

/* 1 for the bytes that end the plain part of a string: '"', '\\' and the
 * control characters (an error inside a string). */
static const unsigned char string_stop[256] = {
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,     /* '"' */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0,     /* '\\' */
};

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Reads the 4 hex digits after "\u" at p; -1 if they are not. */
static long read_hex4(const unsigned char *p, const unsigned char *end)
{
    long v = 0;
    int i;
    if (end - p < 4)
        return -1;
    for (i = 0; i < 4; i++) {
        int h = hex_value(p[i]);
        if (h < 0)
            return -1;
        v = v * 16 + h;
    }
    return v;
}

static char *put_utf8(char *out, unsigned long c)
{
    if (c < 0x80) {
        *out++ = (char)c;
    } else if (c < 0x800) {
        *out++ = (char)(0xC0 | (c >> 6));
        *out++ = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        *out++ = (char)(0xE0 | (c >> 12));
        *out++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *out++ = (char)(0x80 | (c & 0x3F));
    } else {
        *out++ = (char)(0xF0 | (c >> 18));
        *out++ = (char)(0x80 | ((c >> 12) & 0x3F));
        *out++ = (char)(0x80 | ((c >> 6) & 0x3F));
        *out++ = (char)(0x80 | (c & 0x3F));
    }
    return out;
}

/* A scratch buffer of at least len bytes (a userdata in d->scratch). */
static char *scratch(lua_State *L, decoder_t *d, size_t len)
{
    if (d->scratch_len < len) {
        size_t n = d->scratch_len * 2;
        if (n < len)
            n = len;
        if (n < 256)
            n = 256;
        lua_newuserdata(L, n);
        lua_replace(L, d->scratch);
        d->scratch_len = n;
    }
    return (char *)lua_touserdata(L, d->scratch);
}

/* The rest of a string with escapes: plain is where its text starts, p
 * the first backslash. Decoded text is never longer than its source. */
static const unsigned char *push_escaped_string(lua_State *L, decoder_t *d,
        const unsigned char *plain, const unsigned char *p)
{
    const unsigned char *end = d->end, *close = p;
    char *buf, *out;
    /* find the closing quote to size the buffer */
    while (close < end && *close != '"') {
        if (*close == '\\')
            close++;
        close++;
    }
    if (close >= end)
        decode_error(L, d, end, "expected the end of the string");
    buf = scratch(L, d, (size_t)(close - plain));
    memcpy(buf, plain, (size_t)(p - plain));
    out = buf + (p - plain);
    while (p < close) {
        unsigned char c = *p;
        if (c == '\\') {
            long u;
            switch (p[1]) {
            case '"': *out++ = '"'; break;
            case '\\': *out++ = '\\'; break;
            case '/': *out++ = '/'; break;
            case 'b': *out++ = '\b'; break;
            case 'f': *out++ = '\f'; break;
            case 'n': *out++ = '\n'; break;
            case 'r': *out++ = '\r'; break;
            case 't': *out++ = '\t'; break;
            case 'u':
                u = read_hex4(p + 2, close);
                if (u < 0)
                    decode_error(L, d, p, "expected 4 hex digits after \\u");
                if (u >= 0xDC00 && u <= 0xDFFF)
                    decode_error(L, d, p, "expected a \\u escape that is not a lone low surrogate");
                if (u >= 0xD800 && u <= 0xDBFF) {
                    long lo = -1;
                    if (close - (p + 6) >= 6 && p[6] == '\\' && p[7] == 'u')
                        lo = read_hex4(p + 8, close);
                    if (lo < 0xDC00 || lo > 0xDFFF)
                        decode_error(L, d, p, "expected a low surrogate after this high surrogate");
                    u = 0x10000 + ((u - 0xD800) << 10) + (lo - 0xDC00);
                    p += 6;
                }
                out = put_utf8(out, (unsigned long)u);
                p += 4;
                break;
            default:
                decode_error(L, d, p + 1, "expected an escape (\\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u)");
            }
            p += 2;
        } else if (c < 0x20) {
            decode_error(L, d, p, "expected a string without raw control characters");
        } else {
            *out++ = (char)c;
            p++;
        }
    }
    lua_pushlstring(L, buf, (size_t)(out - buf));
    return close + 1;
}

/* The string whose opening quote is at p - 1; pushes it, returns what
 * follows its closing quote. */
static const unsigned char *push_string(lua_State *L, decoder_t *d, const unsigned char *p)
{
    const unsigned char *plain = p, *end = d->end;
    while (p < end && !string_stop[*p])
        p++;
    if (p < end && *p == '"') {
        lua_pushlstring(L, (const char *)plain, (size_t)(p - plain));
        return p + 1;
    }
    if (p >= end)
        decode_error(L, d, end, "expected the end of the string");
    if (*p != '\\')
        decode_error(L, d, p, "expected a string without raw control characters");
    return push_escaped_string(L, d, plain, p);
}

/* ---------------------------------------------------------------- */
/* numbers                                                          */

#define DIGIT(c) ((unsigned)((c) - '0') < 10u)

/* strtod on s[0..len) with the locale's decimal point. */
static double read_double(lua_State *L, decoder_t *d, const unsigned char *s, size_t len)
{
    char small[64], *buf = small, *dot;
    if (len >= sizeof small)
        buf = scratch(L, d, len + 1);
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (d->point != '.' && (dot = strchr(buf, '.')) != NULL)
        *dot = d->point;
    return strtod(buf, NULL);
}

static void push_double(lua_State *L, double v)
{
#if ONECLI_HAS_INTEGERS
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        lua_pushinteger(L, (lua_Integer)v);
        return;
    }
#endif
    lua_pushnumber(L, (lua_Number)v);
}

/* The number at p (a '-' or a digit); pushes it, returns what follows. */
static const unsigned char *push_number(lua_State *L, decoder_t *d, const unsigned char *p)
{
    const unsigned char *s = p, *end = d->end, *digits;
    uint64_t u = 0;
    int negative = 0, is_float = 0;

    if (*p == '-') {
        negative = 1;
        p++;
    }
    digits = p;
    if (p < end && *p == '0') {
        p++;
    } else if (p < end && DIGIT(*p)) {
        while (p < end && DIGIT(*p)) {
            if (p - digits < 19)
                u = u * 10 + (uint64_t)(*p - '0');
            p++;
        }
    } else {
        decode_error(L, d, p, "expected a digit");
    }
    if (p < end && *p == '.') {
        p++;
        if (p >= end || !DIGIT(*p))
            decode_error(L, d, p, "expected a digit after the decimal point");
        while (p < end && DIGIT(*p))
            p++;
        is_float = 1;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p >= end || !DIGIT(*p))
            decode_error(L, d, p, "expected a digit in the exponent");
        while (p < end && DIGIT(*p))
            p++;
        is_float = 1;
    }
    if (is_float || p - digits > 19) {
        push_double(L, read_double(L, d, s, (size_t)(p - s)));
        return p;
    }
#if ONECLI_HAS_INTEGERS
    if (!negative && u <= (uint64_t)INT64_MAX) {
        lua_pushinteger(L, (lua_Integer)u);
        return p;
    }
    if (negative && u <= (uint64_t)INT64_MAX + 1u) {
        /* -u without overflowing (u may be 2^63) */
        lua_pushinteger(L, u == 0 ? 0 : -(lua_Integer)(u - 1u) - 1);
        return p;
    }
#endif
    /* a double, correctly rounded (the conversion rounds to nearest) */
    lua_pushnumber(L, (lua_Number)(negative ? -(double)u : (double)u));
    return p;
}

/* ---------------------------------------------------------------- */
/* values                                                           */

static const unsigned char *push_value(lua_State *L, decoder_t *d,
        const unsigned char *p, int depth);

static const unsigned char *expect_literal(lua_State *L, decoder_t *d,
        const unsigned char *p, const char *word, size_t len)
{
    if ((size_t)(d->end - p) < len || memcmp(p, word, len) != 0)
        decode_error(L, d, p, "expected a value");
    return p + len;
}

/* Containers are built with their final size: the members are first
 * pushed on the stack (up to STACKED of them), then the table is made
 * with room for exactly that many and filled, so it never rehashes while
 * it grows. A container with more members than that gets a table of
 * STACKED slots, filled, and grows from there as usual. */
#define STACKED 256

/* Makes the table for the n values (arrays) or n key/value pairs
 * (objects) above base, moves them in, and leaves only the table above
 * base. */
static void settle_array(lua_State *L, decoder_t *d, int base, int n, lua_Integer first)
{
    int i;
    lua_createtable(L, n, 0);
    lua_insert(L, base + 1);
    if (first == 1) {        /* a new table: mark it */
        lua_pushvalue(L, d->array_mt);
        lua_setmetatable(L, base + 1);
    }
    for (i = n; i >= 1; i--) {
#if LUA_VERSION_NUM >= 503
        lua_rawseti(L, base + 1, first + i - 1);
#else
        lua_rawseti(L, base + 1, (int)(first + i - 1));
#endif
    }
}

static const unsigned char *push_array(lua_State *L, decoder_t *d,
        const unsigned char *p, int depth)
{
    int base = lua_gettop(L), n = 0, t = 0;
    lua_Integer total = 0;
    p = skip_space(p, d->end);
    if (p < d->end && *p == ']') {
        settle_array(L, d, base, 0, 1);
        return p + 1;
    }
    for (;;) {
        if ((n & 31) == 0 && !lua_checkstack(L, 40))
            decode_error(L, d, p, "expected fewer values (the Lua stack is full)");
        p = push_value(L, d, p, depth);
        if (t) {
#if LUA_VERSION_NUM >= 503
            lua_rawseti(L, t, ++total);
#else
            lua_rawseti(L, t, (int)++total);
#endif
        } else if (++n == STACKED) {
            settle_array(L, d, base, n, 1);
            t = base + 1;
            total = n;
        }
        p = skip_space(p, d->end);
        if (p < d->end && *p == ',') {
            p = skip_space(p + 1, d->end);
            continue;
        }
        if (p < d->end && *p == ']') {
            if (!t)
                settle_array(L, d, base, n, 1);
            return p + 1;
        }
        decode_error(L, d, p, "expected ',' or ']' in the array");
    }
}

/* The n key/value pairs above base go into a new table, in order (a
 * repeated key keeps its last value). */
static void settle_object(lua_State *L, int base, int n)
{
    int i, t;
    lua_createtable(L, 0, n);
    t = lua_gettop(L);
    for (i = 0; i < n; i++) {
        lua_pushvalue(L, base + 1 + 2 * i);
        lua_pushvalue(L, base + 2 + 2 * i);
        lua_rawset(L, t);
    }
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
}

static const unsigned char *push_object(lua_State *L, decoder_t *d,
        const unsigned char *p, int depth)
{
    int base = lua_gettop(L), n = 0, t = 0;
    p = skip_space(p, d->end);
    if (p < d->end && *p == '}') {
        lua_createtable(L, 0, 0);
        return p + 1;
    }
    for (;;) {
        if ((n & 15) == 0 && !lua_checkstack(L, 40))
            decode_error(L, d, p, "expected fewer members (the Lua stack is full)");
        if (p >= d->end || *p != '"')
            decode_error(L, d, p, "expected a string (a member name)");
        p = skip_space(push_string(L, d, p + 1), d->end);
        if (p >= d->end || *p != ':')
            decode_error(L, d, p, "expected ':' after the member name");
        p = push_value(L, d, skip_space(p + 1, d->end), depth);
        if (t) {
            lua_rawset(L, t);
        } else if (++n == STACKED) {
            settle_object(L, base, n);
            t = base + 1;
        }
        p = skip_space(p, d->end);
        if (p < d->end && *p == ',') {
            p = skip_space(p + 1, d->end);
            continue;
        }
        if (p < d->end && *p == '}') {
            if (!t)
                settle_object(L, base, n);
            return p + 1;
        }
        decode_error(L, d, p, "expected ',' or '}' in the object");
    }
}

/* The value at p (no whitespace before it); pushes it, returns what
 * follows. */
static const unsigned char *push_value(lua_State *L, decoder_t *d,
        const unsigned char *p, int depth)
{
    if (p >= d->end)
        decode_error(L, d, p, "expected a value");
    switch (*p) {
    case '"':
        return push_string(L, d, p + 1);
    case '{':
    case '[':
        if (depth >= JSON_DECODE_MAX_DEPTH)
            decode_error(L, d, p, "expected nesting at most 1000 levels deep");
        if (!lua_checkstack(L, 8))
            decode_error(L, d, p, "expected less nesting (the Lua stack is full)");
        return *p == '{' ? push_object(L, d, p + 1, depth + 1)
                         : push_array(L, d, p + 1, depth + 1);
    case 't':
        p = expect_literal(L, d, p, "true", 4);
        lua_pushboolean(L, 1);
        return p;
    case 'f':
        p = expect_literal(L, d, p, "false", 5);
        lua_pushboolean(L, 0);
        return p;
    case 'n':
        p = expect_literal(L, d, p, "null", 4);
        lua_pushlightuserdata(L, NULL);
        return p;
    default:
        if (*p == '-' || DIGIT(*p))
            return push_number(L, d, p);
        decode_error(L, d, p, "expected a value");
        return p;
    }
}

/* In a protected call: the decoder state is a light userdata at 1. */
static int decode_protected(lua_State *L)
{
    decoder_t *d = (decoder_t *)lua_touserdata(L, 1);
    const unsigned char *p;
    onecli_json_push_array_mt(L);
    d->array_mt = lua_gettop(L);
    lua_pushnil(L);
    d->scratch = lua_gettop(L);
    p = push_value(L, d, skip_space(d->p, d->end), 0);
    p = skip_space(p, d->end);
    if (p < d->end)
        decode_error(L, d, p, "expected the end of the text after the value");
    return 1;
}

int onecli_json_decode(lua_State *L, const char *s, size_t len)
{
    decoder_t d;
    const char *point = localeconv()->decimal_point;
    d.start = d.p = (const unsigned char *)s;
    d.end = d.start + len;
    d.scratch_len = 0;
    d.point = point && point[0] ? point[0] : '.';
    lua_pushcfunction(L, decode_protected);
    lua_pushlightuserdata(L, &d);
    if (lua_pcall(L, 1, 1, 0) != 0) {
        if (!lua_isstring(L, -1)) {
            lua_pop(L, 1);
            lua_pushliteral(L, "invalid JSON");
        }
        return 0;
    }
    return 1;
}

/* core.json_decode(string) -> value | nil, message */
static int l_json_decode(lua_State *L)
{
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (onecli_json_decode(L, s, len))
        return 1;
    lua_pushnil(L);
    lua_insert(L, -2);
    return 2;
}

void onecli_jsondec_open(lua_State *L)
{
    lua_pushcfunction(L, l_json_decode);
    lua_setfield(L, -2, "json_decode");
}
