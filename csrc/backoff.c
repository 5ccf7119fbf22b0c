/*
 * backoff.c - retry delay arithmetic, as pure functions.
 *
 * The retry loop itself lives in Lua (so that the OpenResty and Neovim
 * transports can sleep their own way); these only compute how long.
 *
 *   backoff(attempt, opts)  exponential, capped, "equal jitter":
 *                           d = min(max, base * 2^(attempt-1)),
 *                           delay = d/2 + random * d/2
 *                           or, when the server sent Retry-After,
 *                           min(retry_after, max_retry_after), no jitter.
 *   parse_retry_after(v)    delay-seconds or an HTTP-date (any of the
 *                           three formats, read by curl_getdate).
 */
#define _POSIX_C_SOURCE 200112L

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "onecli.h"

#define DEFAULT_BASE 0.5
#define DEFAULT_MAX 8.0
#define DEFAULT_MAX_RETRY_AFTER 60.0

/* xorshift64*, seeded lazily; jitter does not need a strong generator */
static unsigned long long prng_state;

static double prng_next(void)
{
    if (prng_state == 0) {
        prng_state = (unsigned long long)time(NULL) * 2654435761ULL
                     ^ (unsigned long long)clock()
                     ^ (unsigned long long)(size_t)&prng_state;
        if (prng_state == 0)
            prng_state = 88172645463325252ULL;
    }
    prng_state ^= prng_state >> 12;
    prng_state ^= prng_state << 25;
    prng_state ^= prng_state >> 27;
    return (double)((prng_state * 2685821657736338717ULL) >> 11)
           / 9007199254740992.0;
}

double onecli_retry_after_seconds(const char *value, double now)
{
    const char *p = value;
    char *end;
    double seconds;
    time_t when;

    while (isspace((unsigned char)*p))
        p++;
    if (*p == '\0')
        return -1;
    if (isdigit((unsigned char)*p)) {
        /* delay-seconds: digits, optionally one decimal point (lenient);
         * no hex, no exponent, no sign */
        const char *q = p;
        int dots = 0;
        while (isdigit((unsigned char)*q) || (*q == '.' && dots++ == 0))
            q++;
        end = (char *)q;
        while (isspace((unsigned char)*end))
            end++;
        if (*end != '\0')
            return -1;
        seconds = strtod(p, NULL);      /* 400 nines: inf, capped below */
        if (!(seconds >= 0))
            return -1;
        return seconds < ONECLI_RETRY_AFTER_MAX ? seconds : ONECLI_RETRY_AFTER_MAX;
    }
    if (!isalpha((unsigned char)*p))
        return -1;   /* "-5", "+3", garbage */
    when = curl_getdate(p, NULL);
    if (when == (time_t)-1)
        return -1;
    seconds = (double)when - now;
    if (!(seconds > 0))
        return 0;
    return seconds < ONECLI_RETRY_AFTER_MAX ? seconds : ONECLI_RETRY_AFTER_MAX;
}

/* core.parse_retry_after(value [, now]) -> seconds | nil */
static int l_parse_retry_after(lua_State *L)
{
    const char *value = luaL_optstring(L, 1, NULL);
    double now = (double)luaL_optnumber(L, 2, (lua_Number)time(NULL));
    double seconds = value ? onecli_retry_after_seconds(value, now) : -1;
    if (seconds < 0)
        lua_pushnil(L);
    else
        lua_pushnumber(L, seconds);
    return 1;
}

static double opt_number_field(lua_State *L, int idx, const char *field,
                               double dflt)
{
    double v = dflt;
    lua_getfield(L, idx, field);
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "backoff: option '%s' must be a number", field);
        v = (double)lua_tonumber(L, -1);
        if (v != v || v < 0)
            luaL_error(L, "backoff: option '%s' must be >= 0", field);
    }
    lua_pop(L, 1);
    return v;
}

/* core.backoff(attempt [, opts]) -> seconds */
static int l_backoff(lua_State *L)
{
    double attempt = (double)luaL_checknumber(L, 1);
    double base = DEFAULT_BASE, max = DEFAULT_MAX,
           max_retry_after = DEFAULT_MAX_RETRY_AFTER, random = -1,
           retry_after = -1, d;

    luaL_argcheck(L, attempt >= 1, 1, "attempt must be >= 1");
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        base = opt_number_field(L, 2, "base", DEFAULT_BASE);
        max = opt_number_field(L, 2, "max", DEFAULT_MAX);
        max_retry_after = opt_number_field(L, 2, "max_retry_after",
                                           DEFAULT_MAX_RETRY_AFTER);
        random = opt_number_field(L, 2, "random", -1);
        retry_after = opt_number_field(L, 2, "retry_after", -1);
        if (random >= 1)
            luaL_error(L, "backoff: option 'random' must be in [0, 1)");
    }
    if (retry_after >= 0) {
        lua_pushnumber(L, retry_after < max_retry_after ? retry_after : max_retry_after);
        return 1;
    }
    if (random < 0)
        random = prng_next();
    /* 2^(attempt-1) overflows to inf for huge attempts; min() handles it */
    d = attempt > 1024 ? max : base * pow(2.0, attempt - 1);
    if (d > max || d != d)
        d = max;
    lua_pushnumber(L, d / 2 + random * d / 2);
    return 1;
}

/* core.sleep(seconds): blocking sleep for plain Lua scripts; event loops
 * pass their own sleep function to the retry loop instead. */
static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    struct timespec req, rem;
    luaL_argcheck(L, s >= 0 && s <= 86400, 1, "seconds must be between 0 and 86400");
    req.tv_sec = (time_t)s;
    req.tv_nsec = (long)((s - (lua_Number)req.tv_sec) * 1e9);
    if (req.tv_nsec > 999999999L)
        req.tv_nsec = 999999999L;
    while (nanosleep(&req, &rem) != 0 && errno == EINTR)
        req = rem;
    return 0;
}

/* core.now() -> seconds from a monotonic clock, for measuring durations */
static int l_now(lua_State *L)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    lua_pushnumber(L, (lua_Number)ts.tv_sec + (lua_Number)ts.tv_nsec / 1e9);
    return 1;
}

void onecli_backoff_open(lua_State *L)
{
    static const luaL_Reg funcs[] = {
        { "backoff", l_backoff },
        { "sleep", l_sleep },
        { "now", l_now },
        { "parse_retry_after", l_parse_retry_after },
        { NULL, NULL }
    };
    onecli_setfuncs(L, funcs, 0);
}
