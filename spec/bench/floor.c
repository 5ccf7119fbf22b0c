/*
 * The floor of `make bench`: what one GET /agents costs with nothing but
 * libcurl and lua-cjson. One libcurl easy handle, set up once and reused
 * for every call (one kept-alive connection), the headers lua-onecli sends
 * (Authorization: Bearer <key>, Accept: application/json, a User-Agent),
 * the body collected into one growing buffer, and each body decoded with
 * cjson.decode through a lua_State (the result dropped).
 *
 *   floor URL N [KEY [EXPECTED]]
 *
 * One warm-up call (connects; checks the answer is a JSON array of
 * EXPECTED items when EXPECTED is given), then N timed calls. Prints one
 * line: "<microseconds per call> <items>", measured with CLOCK_MONOTONIC
 * around the timed loop only. Exits 1 on any failure.
 */
#define _POSIX_C_SOURCE 200809L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <lua.h>
#include <lauxlib.h>
#include <lualib.h>

typedef struct {
    char *data;
    size_t len;
    size_t cap;
} buffer_t;

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    buffer_t *b = userdata;
    size_t n = size * nmemb;

    if (b->len + n > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        char *data;
        while (cap < b->len + n)
            cap *= 2;
        data = realloc(b->data, cap);
        if (data == NULL)
            return 0;                   /* libcurl fails the transfer */
        b->data = data;
        b->cap = cap;
    }
    memcpy(b->data + b->len, ptr, n);
    b->len += n;
    return n;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* One call: GET, then cjson.decode(body) (the function at stack index 1).
 * Leaves the decoded value on the stack when keep is set. Returns 0 or
 * prints why and returns -1. */
static int call(lua_State *L, CURL *easy, buffer_t *body, int keep)
{
    CURLcode rc;
    long status = 0;

    body->len = 0;
    rc = curl_easy_perform(easy);
    if (rc != CURLE_OK) {
        fprintf(stderr, "floor: %s\n", curl_easy_strerror(rc));
        return -1;
    }
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200) {
        fprintf(stderr, "floor: HTTP %ld\n", status);
        return -1;
    }
    lua_pushvalue(L, 1);
    lua_pushlstring(L, body->data ? body->data : "", body->len);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "floor: cjson.decode: %s\n", lua_tostring(L, -1));
        return -1;
    }
    if (!keep)
        lua_pop(L, 1);
    return 0;
}

int main(int argc, char **argv)
{
    const char *url, *key;
    long n, expected, i, items;
    char auth[512], agent[128];
    struct curl_slist *headers = NULL;
    buffer_t body = { NULL, 0, 0 };
    lua_State *L;
    CURL *easy;
    double t0, t1;
    int status = 1;

    if (argc < 3) {
        fprintf(stderr, "usage: %s URL N [KEY [EXPECTED]]\n", argv[0]);
        return 2;
    }
    url = argv[1];
    n = strtol(argv[2], NULL, 10);
    key = argc > 3 ? argv[3] : "oc_bench";
    expected = argc > 4 ? strtol(argv[4], NULL, 10) : -1;
    if (n < 1) {
        fprintf(stderr, "floor: N must be at least 1\n");
        return 2;
    }

    L = luaL_newstate();
    if (L == NULL)
        return 1;
    luaL_openlibs(L);
    lua_getglobal(L, "require");
    lua_pushstring(L, "cjson");
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "floor: require 'cjson': %s\n", lua_tostring(L, -1));
        lua_close(L);
        return 1;
    }
    lua_getfield(L, -1, "decode");     /* stack: cjson, decode */
    lua_remove(L, 1);                  /* stack: decode (index 1) */

    curl_global_init(CURL_GLOBAL_DEFAULT);
    easy = curl_easy_init();
    if (easy == NULL)
        goto done;
    snprintf(auth, sizeof auth, "Authorization: Bearer %s", key);
    snprintf(agent, sizeof agent, "lua-onecli-floor/1 libcurl/%s",
             curl_version_info(CURLVERSION_NOW)->version);
    headers = curl_slist_append(headers, auth);
    headers = curl_slist_append(headers, "Accept: application/json");
    curl_easy_setopt(easy, CURLOPT_URL, url);
    curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(easy, CURLOPT_USERAGENT, agent);
    curl_easy_setopt(easy, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(easy, CURLOPT_WRITEDATA, (void *)&body);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, 30000L);

    /* warm-up: connects, and checks the answer */
    if (call(L, easy, &body, 1) != 0)
        goto done;
    if (!lua_istable(L, -1)) {
        fprintf(stderr, "floor: the answer is not a JSON array\n");
        goto done;
    }
    items = (long)lua_rawlen(L, -1);
    lua_pop(L, 1);
    if (expected >= 0 && items != expected) {
        fprintf(stderr, "floor: %ld items, expected %ld\n", items, expected);
        goto done;
    }

    t0 = now();
    for (i = 0; i < n; i++) {
        if (call(L, easy, &body, 0) != 0)
            goto done;
    }
    t1 = now();
    printf("%.3f %ld\n", (t1 - t0) * 1e6 / (double)n, items);
    status = 0;

done:
    if (easy != NULL)
        curl_easy_cleanup(easy);
    curl_slist_free_all(headers);
    curl_global_cleanup();
    free(body.data);
    lua_close(L);
    return status;
}
