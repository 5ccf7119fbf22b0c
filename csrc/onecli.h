/*
 * onecli.h - internal interface between the files of onecli.core.
 *
 * One file per concern; each has one *_open function that adds its
 * functions to the module table on top of the stack. Only
 * luaopen_onecli_core is exported from the shared object.
 */
#ifndef ONECLI_H
#define ONECLI_H

#include <stddef.h>
#include <lua.h>
#include <lauxlib.h>
#include <curl/curl.h>

#include "compat.h"

#define ONECLI_VERSION "0.1.0"

#if defined(__GNUC__)
#define ONECLI_HIDDEN __attribute__((visibility("hidden")))
#define ONECLI_EXPORT __attribute__((visibility("default")))
#else
#define ONECLI_HIDDEN
#define ONECLI_EXPORT
#endif

/* Largest response body kept in an error object. */
#define ONECLI_ERROR_BODY_MAX 4096

/* core.c */
/* Makes the metatable tname (once): methods as __index; close() as __gc
 * (and __close on 5.4), an idempotent close shared with the close method;
 * tostring as __tostring. */
ONECLI_HIDDEN void onecli_type_open(lua_State *L, const char *tname,
        const luaL_Reg *methods, lua_CFunction close, lua_CFunction tostring);

/* json.c */
ONECLI_HIDDEN void onecli_json_open(lua_State *L);
/* Whether the value at idx is a table marked with core.array() (or
 * core.empty_array). */
ONECLI_HIDDEN int onecli_json_is_marked_array(lua_State *L, int idx);
/* Pushes the metatable that marks arrays. */
ONECLI_HIDDEN void onecli_json_push_array_mt(lua_State *L);

/* jsondec.c */
ONECLI_HIDDEN void onecli_jsondec_open(lua_State *L);
/* Decodes s; on success pushes the value and returns 1, on failure pushes
 * an error message and returns 0. Never raises for bad input. */
ONECLI_HIDDEN int onecli_json_decode(lua_State *L, const char *s, size_t len);

/* jsonenc.c */
ONECLI_HIDDEN void onecli_jsonenc_open(lua_State *L);
/* The offset of the first byte of s that is not valid UTF-8 (RFC 3629),
 * or len when all of it is. */
ONECLI_HIDDEN size_t onecli_utf8_check(const char *s, size_t len);

/* errors.c */
ONECLI_HIDDEN void onecli_errors_open(lua_State *L);
/* Pushes s with the secret (any mix of raw, \uXXXX and %XX characters; or
 * its body without the key prefix) and anything shaped like a OneCLI key
 * masked as [REDACTED]. secret may be NULL. */
ONECLI_HIDDEN void onecli_push_redacted(lua_State *L, const char *s, size_t len,
        const char *secret, size_t secret_len);
/* Pushes a normalized transport error. secret may be NULL. */
ONECLI_HIDDEN void onecli_error_push_transport(lua_State *L, const char *method,
        const char *path, const char *code, const char *message,
        const char *secret, int request_sent);

/* backoff.c */
ONECLI_HIDDEN void onecli_backoff_open(lua_State *L);
/* The largest Retry-After the error objects report, in seconds (2^31 - 1:
 * finite, and beyond any wait that makes sense). */
#define ONECLI_RETRY_AFTER_MAX 2147483647.0
/* Seconds until the Retry-After value (at most ONECLI_RETRY_AFTER_MAX), or
 * -1 if it cannot be read. */
ONECLI_HIDDEN double onecli_retry_after_seconds(const char *value, double now);

/* http.c - shared by transport.c and multi.c */

/* A growable byte buffer on the C heap. */
typedef struct onecli_buffer_t {
    char *data;
    size_t len;
    size_t cap;
} onecli_buffer_t;

/* Options of a Transport or a Multi; the strings are owned copies. */
typedef struct onecli_options_t {
    long timeout_ms;
    long connect_timeout_ms;
    size_t max_response;
    int insecure;
    char *ca_file;
    char *user_agent;
    char *proxy;               /* an explicit proxy URL (no_proxy ignored), or NULL */
    const char *proxy_arg;     /* read() -> own(): borrowed from the options table */
} onecli_options_t;

/* A request table as read from Lua: the strings point into Lua values
 * that the caller keeps referenced (on the stack, or anchored). */
typedef struct onecli_request_t {
    const char *method, *url, *path, *secret, *body;
    size_t body_len;
    long timeout_ms;
    long connect_timeout_ms;
    int fresh_connect;
    int decode;               /* req.decode: a 2xx JSON answer comes back decoded */
    int lean_headers;         /* req.response_headers == "errors" */
    int listen;               /* req.listen: the timeout ends a 2xx body (see settle) */
    int headers_idx;          /* stack index of the headers table, or 0 */
} onecli_request_t;

/* The sockets a Transport or a Multi has opened, and whether each has
 * carried a request yet: a request about to go out on one that has is on
 * a reused (kept-alive) connection, which must have nothing waiting on it. */
#define ONECLI_CONNS_MAX 256
typedef struct onecli_conns_t {
    struct {
        curl_socket_t fd;
        int used;
        int port;             /* its local port once looked up (0: not yet) */
    } s[ONECLI_CONNS_MAX];
    int n, next;
} onecli_conns_t;

/* After fork(): points every connection socket of c at /dev/null, so that
 * nothing the child's libcurl writes while closing them (a TLS close
 * notify, ...) reaches the peers the parent still talks to. The sockets
 * stay open until libcurl closes them (then c forgets them). */
ONECLI_HIDDEN void onecli_conns_neuter(onecli_conns_t *c);
/* The id of this process (changes in a forked child). Cached: a fork()
 * makes the child look it up again (pthread_atfork), so that a request
 * costs no getpid() system call. */
ONECLI_HIDDEN long onecli_process_id(void);

/* The C side of one exchange: request header list, response buffers and
 * libcurl's error text. Always embedded in memory a userdata owns. */
typedef struct onecli_exchange_t {
    struct curl_slist *headers;
    onecli_buffer_t body;
    onecli_buffer_t head;
    size_t max_response;
    int too_large;
    int head_too_large;
    long sends;               /* times the request started out; -1: unknown */
    int resend_refused;       /* libcurl tried to send it a second time */
    int stale;                /* a reused connection had something waiting: 1 data, 2 closed */
    int redone;               /* the transfer was started again on a new connection */
    int final;                /* the failure is not one a retry can help */
    int forked;               /* the process forked while the transfer ran */
    int tls;                  /* https */
    int decode;               /* from the request (see onecli_request_t) */
    int lean_headers;
    int listen;
    onecli_conns_t *conns;    /* the owner's sockets (set once by the owner) */
    char errbuf[CURL_ERROR_SIZE];
} onecli_exchange_t;

/* May the server have received the request? code: libcurl's code name
 * (COULDNT_CONNECT); sends: times the request started going out, bytes:
 * request bytes written (-1: not counted). See http.c. */
ONECLI_HIDDEN int onecli_request_sent(const char *code, long sends, long bytes);
/* Sets core.user_agent, core.curl_version, core.request_sent and
 * core.before_send_codes. */
ONECLI_HIDDEN void onecli_http_open(lua_State *L);
/* Reads the options table at idx (nil: defaults) into o; the two strings
 * are borrowed from the table. Raises on bad options, allocates nothing. */
ONECLI_HIDDEN void onecli_options_read(lua_State *L, int idx, onecli_options_t *o,
        const char **ca_file, const char **user_agent);
/* Copies the strings into o; returns 0 when out of memory. */
ONECLI_HIDDEN int onecli_options_own(onecli_options_t *o, const char *ca_file,
        const char *user_agent);
ONECLI_HIDDEN void onecli_options_release(onecli_options_t *o);
/* Reads and checks the request table at idx (absolute). Pushes two values
 * (body, headers) that must stay on the stack while r is used. */
ONECLI_HIDDEN void onecli_request_read(lua_State *L, int idx,
        const onecli_options_t *o, onecli_request_t *r);
/* Resets easy and sets it up for r; raises only when out of memory (what
 * was allocated is owned by x). Returns libcurl's verdict on the options. */
ONECLI_HIDDEN CURLcode onecli_exchange_prepare(lua_State *L, onecli_exchange_t *x,
        CURL *easy, const onecli_options_t *o, const onecli_request_t *r);
/* After a transfer ended with rc: if it was refused before anything was
 * written because its reused connection had something waiting (and it
 * was not redone yet), sets easy up to go again on a new connection and
 * returns 1; the caller performs it again. Nothing was sent, so this is
 * not an attempt. */
ONECLI_HIDDEN int onecli_exchange_redo(onecli_exchange_t *x, CURL *easy, CURLcode rc);
/* After a transfer libcurl completed: is the answer well-formed? A head
 * cut short by a close, or contradictory Content-Length headers, are
 * failures (with x->errbuf set). Returns CURLE_OK or the failure's code. */
ONECLI_HIDDEN CURLcode onecli_exchange_inspect(onecli_exchange_t *x);
/* After a transfer that ended with rc: for a listening request (a stream
 * of server-sent events), a timeout after a complete 2xx head is the end
 * of the answer, and what came is its body: returns CURLE_OK then, rc
 * otherwise. */
ONECLI_HIDDEN CURLcode onecli_exchange_settle(onecli_exchange_t *x, CURL *easy, CURLcode rc);
/* Frees the request header list (the transfer is over). */
ONECLI_HIDDEN void onecli_exchange_finish(onecli_exchange_t *x);
/* Also empties the buffers, keeping small ones for the next exchange. */
ONECLI_HIDDEN void onecli_exchange_recycle(onecli_exchange_t *x);
ONECLI_HIDDEN void onecli_exchange_release(onecli_exchange_t *x);
/* Pushes status, headers, body of a completed exchange, or (a request
 * with decode, a 2xx answer whose body is a JSON object or array) status,
 * headers, nil, value: the value decoded from the buffer, no body string.
 * With lean_headers a 2xx answer's headers table holds only the headers
 * the client reads on a success (see http.c). Returns 3 or 4. */
ONECLI_HIDDEN int onecli_exchange_push_response(lua_State *L,
        onecli_exchange_t *x, CURL *easy);
/* Pushes the structured error of a failed exchange; started = 0 when rc
 * came from setting the handle up (nothing was sent). Only method, url,
 * path and secret of r are used. */
ONECLI_HIDDEN void onecli_exchange_push_error(lua_State *L, onecli_exchange_t *x,
        CURL *easy, CURLcode rc, const onecli_request_t *r, int started);

/* url.c */
ONECLI_HIDDEN void onecli_url_open(lua_State *L);

/* transport.c */
ONECLI_HIDDEN void onecli_transport_open(lua_State *L);

/* multi.c */
ONECLI_HIDDEN void onecli_multi_open(lua_State *L);

#endif /* ONECLI_H */
