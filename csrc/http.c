/*
 * http.c - what the blocking transport (transport.c) and the multi driver
 * (multi.c) share: reading the client options and a request table,
 * preparing a libcurl easy handle for one exchange, the response buffers
 * and their callbacks, and turning the outcome into Lua values (status,
 * headers, body, or a structured transport error).
 *
 * An onecli_exchange_t is embedded in a structure owned by a userdata
 * (the Transport itself, or one transfer slot of a Multi), so everything
 * it holds on the C heap is released by that userdata's close()/__gc even
 * when a Lua error interrupts a request half-way. libcurl's callbacks get
 * the exchange, never a lua_State.
 */
#define _POSIX_C_SOURCE 200112L

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <unistd.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "onecli.h"

#define DEFAULT_TIMEOUT 60.0
#define DEFAULT_CONNECT_TIMEOUT 10.0
#define DEFAULT_MAX_RESPONSE (64u * 1024u * 1024u)
#define MAX_HEADER_NAME 256
#define MAX_HEAD_SIZE (1024u * 1024u)
#define KEEP_BUFFER_MAX (256u * 1024u)

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

/* ---------------------------------------------------------------- */
/* may the request have been sent?                                  */

/*
 * One decision for every transport (core.request_sent exposes it): from
 * what the transport saw, may the server have received the request? A
 * request that may have been received is never repeated unless it is
 * idempotent or the server asked (onecli.retry).
 *
 *   sends  how many times the request started going out: libcurl's
 *          pre-request callback (7.80+) runs right before the request is
 *          written, after the connection (and TLS) is up; -1 = unknown
 *   bytes  request bytes written (CURLINFO_REQUEST_SIZE); -1 = unknown
 *
 * Started (sends > 0) or bytes written: it may have been sent, whatever
 * libcurl's code says (CURLE_UNSUPPORTED_PROTOCOL is also what an
 * HTTP/0.9 reply gives, after the request went out; COULDNT_CONNECT is
 * what libcurl's own re-send gives after the first try went out on a
 * reused connection). Counted and not started: it was not sent. Not
 * counted (older libcurl, a transport that does not count): only the
 * codes of a failure before the request is written (below) mean "not
 * sent", and only with no request bytes written (or none counted).
 */
#define ONECLI_BEFORE_SEND_CODES(X) \
    X(UNSUPPORTED_PROTOCOL) X(FAILED_INIT) X(URL_MALFORMAT) X(NOT_BUILT_IN) \
    X(COULDNT_RESOLVE_PROXY) X(COULDNT_RESOLVE_HOST) X(COULDNT_CONNECT) \
    X(BAD_FUNCTION_ARGUMENT) X(INTERFACE_FAILED) X(UNKNOWN_OPTION) \
    X(SSL_CONNECT_ERROR) X(PEER_FAILED_VERIFICATION) X(SSL_CERTPROBLEM) \
    X(SSL_CIPHER) X(SSL_CACERT_BADFILE) X(SSL_CRL_BADFILE) \
    X(SSL_ENGINE_NOTFOUND) X(SSL_ENGINE_SETFAILED) X(SSL_ENGINE_INITFAILED) \
    X(SSL_ISSUER_ERROR) X(SSL_PINNEDPUBKEYNOTMATCH) X(SSL_INVALIDCERTSTATUS) \
    X(SSL_CLIENTCERT) X(USE_SSL_FAILED) X(PROXY) X(QUIC_CONNECT_ERROR)

static int before_send_code(const char *name)
{
#define ONECLI_BEFORE_SEND_CMP(code) if (strcmp(name, #code) == 0) return 1;
    ONECLI_BEFORE_SEND_CODES(ONECLI_BEFORE_SEND_CMP)
#undef ONECLI_BEFORE_SEND_CMP
    return 0;
}

int onecli_request_sent(const char *code, long sends, long bytes)
{
    if (sends > 0 || bytes > 0)
        return 1;
    if (sends == 0)
        return 0;
    return !(bytes <= 0 && before_send_code(code));
}

/* core.request_sent(code, { sends =, bytes = }) -> boolean */
static int l_request_sent(lua_State *L)
{
    const char *code = luaL_checkstring(L, 1);
    long sends = -1, bytes = -1;
    if (!lua_isnoneornil(L, 2)) {
        luaL_checktype(L, 2, LUA_TTABLE);
        lua_getfield(L, 2, "sends");
        if (!lua_isnil(L, -1))
            sends = (long)luaL_checkinteger(L, -1);
        lua_getfield(L, 2, "bytes");
        if (!lua_isnil(L, -1))
            bytes = (long)luaL_checkinteger(L, -1);
        lua_pop(L, 2);
    }
    lua_pushboolean(L, onecli_request_sent(code, sends, bytes));
    return 1;
}

/* core.before_send_codes -> { "COULDNT_CONNECT", ... } (for the specs and
 * the README's table) */
static void push_before_send_codes(lua_State *L)
{
    int n = 0;
    lua_newtable(L);
#define ONECLI_BEFORE_SEND_PUSH(code) lua_pushliteral(L, #code); lua_rawseti(L, -2, ++n);
    ONECLI_BEFORE_SEND_CODES(ONECLI_BEFORE_SEND_PUSH)
#undef ONECLI_BEFORE_SEND_PUSH
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
    if (b->cap > KEEP_BUFFER_MAX)
        buffer_release(b);
    b->len = 0;
}

static size_t write_body(char *data, size_t size, size_t nmemb, void *ud)
{
    onecli_exchange_t *x = ud;
    size_t n = size * nmemb;
    if (!buffer_append(&x->body, data, n, x->max_response)) {
        x->too_large = x->body.len + n > x->max_response;
        return 0; /* aborts the transfer with CURLE_WRITE_ERROR */
    }
    return n;
}

static size_t write_header(char *data, size_t size, size_t nmemb, void *ud)
{
    onecli_exchange_t *x = ud;
    size_t n = size * nmemb;
    /* keep only the last response's headers (after 1xx or proxy CONNECT) */
    if (n >= 5 && memcmp(data, "HTTP/", 5) == 0)
        x->head.len = 0;
    if (!buffer_append(&x->head, data, n, MAX_HEAD_SIZE)) {
        x->head_too_large = 1;
        return 0;
    }
    return n;
}

/* ---------------------------------------------------------------- */
/* connections                                                      */

/* libcurl made a socket: remember it as not used yet. */
static int on_socket(void *ud, curl_socket_t fd, curlsocktype purpose)
{
    onecli_conns_t *c = ud;
    int i;
    if (c == NULL || purpose != CURLSOCKTYPE_IPCXN)
        return CURL_SOCKOPT_OK;
    for (i = 0; i < c->n; i++) {
        if (c->s[i].fd == fd) {     /* a number the system gave out again */
            c->s[i].used = 0;
            c->s[i].port = 0;
            return CURL_SOCKOPT_OK;
        }
    }
    if (c->n < ONECLI_CONNS_MAX) {
        i = c->n++;
    } else {
        i = c->next;
        c->next = (c->next + 1) % ONECLI_CONNS_MAX;
    }
    c->s[i].fd = fd;
    c->s[i].used = 0;
    c->s[i].port = 0;
    return CURL_SOCKOPT_OK;
}

/* libcurl closes a socket: forget it, then close it. */
static int on_close(void *ud, curl_socket_t fd)
{
    onecli_conns_t *c = ud;
    int i;
    for (i = 0; c != NULL && i < c->n; i++) {
        if (c->s[i].fd == fd) {
            c->s[i] = c->s[--c->n];
            if (c->next > c->n)
                c->next = 0;
            break;
        }
    }
    return close(fd);
}

void onecli_conns_neuter(onecli_conns_t *c)
{
    int devnull = open("/dev/null", O_RDWR), i;
    if (devnull < 0)
        return;
    for (i = 0; i < c->n; i++)
        if (c->s[i].fd != devnull)
            dup2(devnull, c->s[i].fd);
    close(devnull);
}

/* The pid, looked up once per process: glibc does not cache getpid(),
 * and every request checks it. A fork() through the C library runs
 * forget_pid in the child (registered once, in onecli_http_open; glibc
 * unregisters it if the module is unloaded). A child made by a raw clone()
 * system call would keep the parent's pid here: nothing in Lua, nginx or
 * Neovim does that. */
static volatile long cached_pid = 0;

static void forget_pid(void)
{
    cached_pid = 0;
}

long onecli_process_id(void)
{
    long pid = cached_pid;
    if (pid == 0) {
        pid = (long)getpid();
        cached_pid = pid;
    }
    return pid;
}

static int local_port(curl_socket_t fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET)
        return ntohs(((struct sockaddr_in *)(void *)&ss)->sin_port);
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)(void *)&ss)->sin6_port);
    return -1;
}

/* Before a request goes out on a connection that has carried one: is
 * something waiting on it? An answer that ran past its length (or a
 * second answer nobody asked for) would be taken for this request's; a
 * close would lose it. Returns 0 (clean), 1 (data waiting), 2 (closed). */
static int stale_connection(onecli_exchange_t *x, int port)
{
    onecli_conns_t *c = x->conns;
    struct pollfd pfd;
    char byte;
    ssize_t n;
    int i;
    if (c == NULL || port <= 0)
        return 0;
    for (i = 0; i < c->n; i++) {
        if (c->s[i].port <= 0)      /* looked up once per socket */
            c->s[i].port = local_port(c->s[i].fd);
        if (c->s[i].port == port)
            break;
    }
    if (i == c->n)
        return 0;                   /* not ours to judge */
    if (!c->s[i].used) {
        c->s[i].used = 1;           /* a new connection: its first request */
        return 0;
    }
    pfd.fd = c->s[i].fd;
    pfd.events = POLLIN;
    pfd.revents = 0;
    if (poll(&pfd, 1, 0) <= 0)
        return 0;
    if (pfd.revents & (POLLERR | POLLHUP | POLLNVAL))
        return 2;
    if (x->tls)
        return 1;                   /* records nobody asked for (or an alert) */
    n = recv(c->s[i].fd, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
    if (n > 0)
        return 1;
    if (n == 0)
        return 2;
    return (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) ? 0 : 2;
}

#if LIBCURL_VERSION_NUM >= 0x075000
/* Runs right before the request is written, once per send. A second call
 * within one transfer is libcurl re-sending the request by itself (a
 * reused connection closed without an answer): refused, so that every
 * send is an attempt the retry loop counts and decides on. A reused
 * connection with something waiting on it is refused too, before anything
 * is written (libcurl 7.88 still reuses such a connection). */
static int prereq(void *ud, char *conn_primary_ip, char *conn_local_ip,
                  int conn_primary_port, int conn_local_port)
{
    onecli_exchange_t *x = ud;
    (void)conn_primary_ip;
    (void)conn_local_ip;
    (void)conn_primary_port;
    if (x->sends >= 1) {
        x->resend_refused = 1;
        return CURL_PREREQFUNC_ABORT;
    }
    x->stale = stale_connection(x, conn_local_port);
    if (x->stale)
        return CURL_PREREQFUNC_ABORT;      /* nothing was written */
    x->sends++;
    return CURL_PREREQFUNC_OK;
}
#endif

/* The value of the next Content-Length header line at or after p in the
 * head, or NULL; *vlen its length. Advances *p past the line. */
static const char *next_content_length(const char **p, const char *end, size_t *vlen)
{
    static const char name[] = "content-length:";
    while (*p < end) {
        const char *line = *p, *eol = memchr(line, '\n', (size_t)(end - line)), *v, *ve;
        size_t i;
        *p = eol ? eol + 1 : end;
        if ((size_t)((eol ? eol : end) - line) < sizeof name - 1)
            continue;
        for (i = 0; i < sizeof name - 1; i++) {
            char c = line[i];
            if ((c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c) != name[i])
                break;
        }
        if (i < sizeof name - 1)
            continue;
        v = line + sizeof name - 1;
        ve = eol ? eol : end;
        while (v < ve && (*v == ' ' || *v == '\t'))
            v++;
        while (ve > v && (ve[-1] == '\r' || ve[-1] == ' ' || ve[-1] == '\t'))
            ve--;
        *vlen = (size_t)(ve - v);
        return v;
    }
    return NULL;
}

CURLcode onecli_exchange_inspect(onecli_exchange_t *x)
{
    const char *h = x->head.data, *end = h + x->head.len, *p = h, *first, *v;
    size_t n = x->head.len, first_len, vlen;
    /* every head ends with an empty line; libcurl 7.88 takes a close in
     * the middle of the head for the end of an answer with no body */
    if (n < 2 || !(h[n - 1] == '\n' && (h[n - 2] == '\n' || (n >= 3 && h[n - 2] == '\r'
                                                               && h[n - 3] == '\n')))) {
        snprintf(x->errbuf, sizeof x->errbuf, "the server closed the connection in the "
                 "middle of the response head");
        return CURLE_PARTIAL_FILE;
    }
    /* RFC 9112 6.3: different Content-Length values are an error the
     * recipient cannot recover from (which one framed the body?) */
    first = next_content_length(&p, end, &first_len);
    while (first != NULL && (v = next_content_length(&p, end, &vlen)) != NULL) {
        if (vlen != first_len || memcmp(v, first, vlen) != 0) {
            snprintf(x->errbuf, sizeof x->errbuf, "the answer has contradictory "
                     "Content-Length headers");
            x->final = 1;
            return CURLE_WEIRD_SERVER_REPLY;
        }
    }
    return CURLE_OK;
}

int onecli_exchange_redo(onecli_exchange_t *x, CURL *easy, CURLcode rc)
{
    if (rc != CURLE_ABORTED_BY_CALLBACK || !x->stale || x->redone)
        return 0;
    if (curl_easy_setopt(easy, CURLOPT_FRESH_CONNECT, 1L) != CURLE_OK)
        return 0;
    x->redone = 1;
    x->stale = 0;
    x->body.len = 0;
    x->head.len = 0;
    x->too_large = 0;
    x->errbuf[0] = '\0';
    return 1;
}

void onecli_exchange_finish(onecli_exchange_t *x)
{
    if (x->headers) {
        curl_slist_free_all(x->headers);
        x->headers = NULL;
    }
}

void onecli_exchange_recycle(onecli_exchange_t *x)
{
    onecli_exchange_finish(x);
    buffer_recycle(&x->body);
    buffer_recycle(&x->head);
}

void onecli_exchange_release(onecli_exchange_t *x)
{
    onecli_exchange_finish(x);
    buffer_release(&x->body);
    buffer_release(&x->head);
}

/* ---------------------------------------------------------------- */
/* options                                                          */

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

void onecli_options_read(lua_State *L, int idx, onecli_options_t *o,
                        const char **ca_file, const char **user_agent)
{
    lua_Number max_response = DEFAULT_MAX_RESPONSE;

    memset(o, 0, sizeof *o);
    if (lua_isnoneornil(L, idx)) {
        lua_newtable(L);
        lua_replace(L, idx);
    }
    luaL_checktype(L, idx, LUA_TTABLE);
    o->timeout_ms = opt_seconds_ms(L, idx, "timeout", (long)(DEFAULT_TIMEOUT * 1000));
    o->connect_timeout_ms = opt_seconds_ms(L, idx, "connect_timeout",
                                           (long)(DEFAULT_CONNECT_TIMEOUT * 1000));
    *ca_file = opt_string(L, idx, "ca_file");
    *user_agent = opt_string(L, idx, "user_agent");
    if (*user_agent != NULL) {
        /* one header line: a CR or LF would start a header of its own */
        const unsigned char *p = (const unsigned char *)*user_agent;
        size_t n = 0;
        for (; *p; p++, n++)
            if (*p < 0x20 || *p == 0x7f)
                luaL_error(L, "option 'user_agent' must be one line of printable "
                           "text (no control characters)");
        if (n > 512)
            luaL_error(L, "option 'user_agent' must be at most 512 bytes");
    }
    o->proxy_arg = opt_string(L, idx, "proxy");
    if (o->proxy_arg != NULL) {
        /* the whole URL, credentials included (they are the caller's secret) */
        const unsigned char *p = (const unsigned char *)o->proxy_arg;
        size_t n = 0;
        if (strncmp(o->proxy_arg, "http://", 7) != 0 && strncmp(o->proxy_arg, "https://", 8) != 0)
            luaL_error(L, "option 'proxy' must be an http:// or https:// URL");
        for (; *p; p++, n++)
            if (*p <= 0x20 || *p == 0x7f)
                luaL_error(L, "option 'proxy' must be a URL without spaces or control characters");
        if (n > 2048)
            luaL_error(L, "option 'proxy' must be at most 2048 bytes");
    }
    lua_getfield(L, idx, "insecure");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
        luaL_error(L, "option 'insecure' must be a boolean");
    o->insecure = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, idx, "max_response_size");
    if (!lua_isnil(L, -1)) {
        max_response = luaL_checknumber(L, -1);
        if (!(max_response >= 1))
            luaL_error(L, "option 'max_response_size' must be >= 1");
    }
    lua_pop(L, 1);
    o->max_response = max_response > 4294967295.0 ? 4294967295u : (size_t)max_response;
}

int onecli_options_own(onecli_options_t *o, const char *ca_file,
                       const char *user_agent)
{
    if (ca_file && (o->ca_file = dup_string(ca_file)) == NULL)
        return 0;
    if (o->proxy_arg && (o->proxy = dup_string(o->proxy_arg)) == NULL)
        return 0;
    o->proxy_arg = NULL;
    o->user_agent = dup_string(user_agent ? user_agent : default_user_agent);
    return o->user_agent != NULL;
}

void onecli_options_release(onecli_options_t *o)
{
    free(o->ca_file);
    o->ca_file = NULL;
    free(o->user_agent);
    o->user_agent = NULL;
    free(o->proxy);
    o->proxy = NULL;
}

/* ---------------------------------------------------------------- */
/* requests                                                         */

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

void onecli_request_read(lua_State *L, int idx, const onecli_options_t *o,
                         onecli_request_t *r)
{
    int body_idx, headers_idx;

    memset(r, 0, sizeof *r);
    r->method = opt_string(L, idx, "method");
    r->url = opt_string(L, idx, "url");
    if (r->method == NULL || r->url == NULL)
        luaL_error(L, "request needs 'method' and 'url'");
    r->path = opt_string(L, idx, "path");
    r->secret = opt_string(L, idx, "secret");
    lua_getfield(L, idx, "body");
    body_idx = lua_gettop(L);
    if (!lua_isnil(L, body_idx)) {
        if (lua_type(L, body_idx) != LUA_TSTRING)
            luaL_error(L, "request body must be a string, got %s",
                       luaL_typename(L, body_idx));
        r->body = lua_tolstring(L, body_idx, &r->body_len);
    }
    if (r->body && (strcmp(r->method, "GET") == 0 || strcmp(r->method, "HEAD") == 0))
        luaL_error(L, "a %s request cannot have a body", r->method);
    r->timeout_ms = opt_seconds_ms(L, idx, "timeout", o->timeout_ms);
    r->connect_timeout_ms = opt_seconds_ms(L, idx, "connect_timeout",
                                           o->connect_timeout_ms);
    lua_getfield(L, idx, "fresh_connect");
    r->fresh_connect = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, idx, "decode");
    r->decode = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, idx, "listen");
    r->listen = lua_toboolean(L, -1);
    lua_pop(L, 1);
    lua_getfield(L, idx, "response_headers");
    if (!lua_isnil(L, -1)) {
        const char *which = lua_tostring(L, -1);
        if (which == NULL || lua_type(L, -1) != LUA_TSTRING
                || (strcmp(which, "all") != 0 && strcmp(which, "errors") != 0))
            luaL_error(L, "request response_headers must be \"all\" or \"errors\"");
        r->lean_headers = strcmp(which, "errors") == 0;
    }
    lua_pop(L, 1);
    lua_getfield(L, idx, "headers");
    headers_idx = lua_gettop(L);
    if (!lua_isnil(L, headers_idx)) {
        luaL_checktype(L, headers_idx, LUA_TTABLE);
        check_headers(L, headers_idx);
        r->headers_idx = headers_idx;
    }
}

/* Builds x->headers from the validated map at idx; raises only on OOM,
 * when the partial list is already owned by x. */
static void build_headers(lua_State *L, onecli_exchange_t *x, int idx)
{
    struct curl_slist *next;
    if (idx != 0) {
        lua_pushnil(L);
        while (lua_next(L, idx) != 0) {
            const char *line;
            lua_pushvalue(L, -1);
            line = lua_pushfstring(L, "%s: %s", lua_tostring(L, -3),
                                   lua_tostring(L, -1));
            next = curl_slist_append(x->headers, line);
            lua_pop(L, 3);
            if (next == NULL)
                luaL_error(L, "not enough memory");
            x->headers = next;
        }
    }
    next = curl_slist_append(x->headers, "Expect:"); /* no 100-continue */
    if (next == NULL)
        luaL_error(L, "not enough memory");
    x->headers = next;
}

#define SETOPT(opt, val) \
    do { if (rc == CURLE_OK) rc = curl_easy_setopt(easy, (opt), (val)); } while (0)

CURLcode onecli_exchange_prepare(lua_State *L, onecli_exchange_t *x, CURL *easy,
                                 const onecli_options_t *o,
                                 const onecli_request_t *r)
{
    CURLcode rc = CURLE_OK;

    onecli_exchange_finish(x);
    build_headers(L, x, r->headers_idx);
    x->body.len = 0;
    x->head.len = 0;
    x->too_large = 0;
    x->head_too_large = 0;
#if LIBCURL_VERSION_NUM >= 0x075000
    x->sends = 0;
#else
    x->sends = -1;                  /* not counted */
#endif
    x->resend_refused = 0;
    x->stale = 0;
    x->redone = 0;
    x->final = 0;
    x->forked = 0;
    x->tls = strncmp(r->url, "https:", 6) == 0 || strncmp(r->url, "HTTPS:", 6) == 0;
    x->decode = r->decode;
    x->lean_headers = r->lean_headers;
    x->listen = r->listen;
    x->max_response = o->max_response;
    x->errbuf[0] = '\0';

    /* reset keeps the connection, DNS and TLS session caches */
    curl_easy_reset(easy);
    SETOPT(CURLOPT_URL, r->url);
    SETOPT(CURLOPT_NOSIGNAL, 1L);
#if LIBCURL_VERSION_NUM >= 0x075500
    SETOPT(CURLOPT_PROTOCOLS_STR, "http,https");
#else
    SETOPT(CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    SETOPT(CURLOPT_FOLLOWLOCATION, 0L);
    /* the path goes out as built: libcurl would otherwise remove "." and
     * ".." segments, and the request would reach another route */
    SETOPT(CURLOPT_PATH_AS_IS, 1L);
    /* libcurl re-sends a request once, silently, when a reused connection
     * closes without an answer: the pre-request callback refuses that
     * (see prereq), and requests that must not be repeated ask for a
     * connection of their own as well */
    SETOPT(CURLOPT_FRESH_CONNECT, r->fresh_connect ? 1L : 0L);
#if LIBCURL_VERSION_NUM >= 0x075000
    SETOPT(CURLOPT_PREREQFUNCTION, prereq);
    SETOPT(CURLOPT_PREREQDATA, (void *)x);
#endif
    SETOPT(CURLOPT_SOCKOPTFUNCTION, on_socket);
    SETOPT(CURLOPT_SOCKOPTDATA, (void *)x->conns);
    SETOPT(CURLOPT_CLOSESOCKETFUNCTION, on_close);
    SETOPT(CURLOPT_CLOSESOCKETDATA, (void *)x->conns);
    SETOPT(CURLOPT_TCP_KEEPALIVE, 1L);
    SETOPT(CURLOPT_TIMEOUT_MS, r->timeout_ms);
    SETOPT(CURLOPT_CONNECTTIMEOUT_MS, r->connect_timeout_ms);
    SETOPT(CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
    SETOPT(CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);
    if (o->ca_file)
        SETOPT(CURLOPT_CAINFO, o->ca_file);
    if (o->proxy) {
        /* every request through it: no_proxy from the environment would
         * let a 127.0.0.1 or internal host bypass the gateway */
        SETOPT(CURLOPT_PROXY, o->proxy);
        SETOPT(CURLOPT_NOPROXY, "");
    }
    SETOPT(CURLOPT_USERAGENT, o->user_agent);
    SETOPT(CURLOPT_HTTPHEADER, x->headers);
    SETOPT(CURLOPT_ERRORBUFFER, x->errbuf);
    SETOPT(CURLOPT_WRITEFUNCTION, write_body);
    SETOPT(CURLOPT_WRITEDATA, (void *)x);
    SETOPT(CURLOPT_HEADERFUNCTION, write_header);
    SETOPT(CURLOPT_HEADERDATA, (void *)x);
    if (strcmp(r->method, "GET") == 0) {
        SETOPT(CURLOPT_HTTPGET, 1L);
    } else if (strcmp(r->method, "HEAD") == 0) {
        SETOPT(CURLOPT_NOBODY, 1L);
    } else {
        SETOPT(CURLOPT_CUSTOMREQUEST, r->method);
        if (r->body || strcmp(r->method, "DELETE") != 0) {
            /* libcurl does not copy the body: the caller keeps the string
             * referenced until the transfer is over */
            SETOPT(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
            SETOPT(CURLOPT_POSTFIELDS, r->body ? r->body : "");
        }
    }
    return rc;
}

#undef SETOPT

/* ---------------------------------------------------------------- */
/* outcomes                                                         */

static void push_response_headers(lua_State *L, const onecli_buffer_t *head, int lean);

void onecli_exchange_push_error(lua_State *L, onecli_exchange_t *x, CURL *easy,
                                CURLcode rc, const onecli_request_t *r,
                                int started)
{
    const char *where = r->path ? r->path : r->url;
    long request_size = 0;
    int sent;

    if (!started) {   /* the handle could not be set up: nothing was sent */
        onecli_error_push_transport(L, r->method, where, curl_code_name(rc),
                                    curl_easy_strerror(rc), r->secret, 0);
        return;
    }
    if (easy != NULL)
        curl_easy_getinfo(easy, CURLINFO_REQUEST_SIZE, &request_size);
    sent = onecli_request_sent(curl_code_name(rc), x->sends, request_size);
    if (x->forked) {
        onecli_error_push_transport(L, r->method, where, "FORKED",
                                    "the process forked while the request was in flight: "
                                    "it belongs to the parent process", r->secret, 1);
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "retryable");
    } else if (x->stale) {
        /* refused before anything was written: nothing was sent */
        onecli_error_push_transport(L, r->method, where,
                                    x->stale == 1 ? "WEIRD_SERVER_REPLY" : "GOT_NOTHING",
                                    x->stale == 1
                                    ? "the server sent data nobody asked for on a kept-alive "
                                      "connection (an answer longer than it said?); the "
                                      "connection was dropped before sending"
                                    : "a kept-alive connection was closed by the server; it "
                                      "was dropped before sending",
                                    r->secret, 0);
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "connection_reused");
    } else if (x->resend_refused) {
        /* the request went out on a reused connection, which closed
         * without an answer; libcurl's own re-send was refused */
        onecli_error_push_transport(L, r->method, where, "GOT_NOTHING",
                                    "the server closed a reused connection without "
                                    "answering (the request may have reached it)",
                                    r->secret, 1);
        lua_pushboolean(L, 1);
        lua_setfield(L, -2, "connection_reused");
    } else if (x->head_too_large || strstr(x->errbuf, "Too large response headers") != NULL
               || rc == CURLE_OUT_OF_MEMORY) {
        /* libcurl caps a header line at 100 KB (OUT_OF_MEMORY) and the head
         * at 300 KB: the same answer will never fit */
        onecli_error_push_transport(L, r->method, where, "RESPONSE_TOO_LARGE",
                                    x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc),
                                    r->secret, sent);
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "retryable");
    } else if (x->too_large) {
        lua_pushfstring(L, "response body larger than max_response_size "
                        "(%d bytes)", (int)x->max_response);
        onecli_error_push_transport(L, r->method, where, "RESPONSE_TOO_LARGE",
                                    lua_tostring(L, -1), r->secret, sent);
        lua_remove(L, -2);
        lua_pushboolean(L, 0);
        lua_setfield(L, -2, "retryable");
    } else {
        onecli_error_push_transport(L, r->method, where, curl_code_name(rc),
                                    x->errbuf[0] ? x->errbuf : curl_easy_strerror(rc),
                                    r->secret, sent);
        if (x->final) {
            lua_pushboolean(L, 0);
            lua_setfield(L, -2, "retryable");
        }
    }
    if (easy != NULL) {
        long connect_code = 0;
        if (curl_easy_getinfo(easy, CURLINFO_HTTP_CONNECTCODE, &connect_code) == CURLE_OK
                && connect_code >= 300) {
            /* the proxy refused the CONNECT (an https:// URL through a
             * proxy): its status and headers, which name why (the OneCLI
             * gateway's X-OneCLI-Gateway-Error); libcurl drops its body.
             * Nothing reached the server. */
            lua_pushinteger(L, (lua_Integer)connect_code);
            lua_setfield(L, -2, "proxy_status");
            push_response_headers(L, &x->head, 0);
            lua_setfield(L, -2, "proxy_headers");
            lua_pushboolean(L, 0);
            lua_setfield(L, -2, "request_sent");
        }
    }
}

/* Pushes the response headers as a table with lower-cased names; repeated
 * headers are joined with ", ". */
/* The headers a 2xx answer keeps with lean_headers: what the client reads
 * on a success (a redirect's Location; the type and the request id for
 * whoever looks). Lower case. */
static int success_header(const char *name, size_t n)
{
    switch (n) {
    case 8:
        return memcmp(name, "location", 8) == 0;
    case 12:
        return memcmp(name, "content-type", 12) == 0 || memcmp(name, "x-request-id", 12) == 0;
    default:
        return 0;
    }
}

/* Pushes the response headers as a table: names in lower case, values
 * trimmed, repeated headers joined with ", ". lean: only success_header()
 * names. */
static void push_response_headers(lua_State *L, const onecli_buffer_t *head, int lean)
{
    const char *p = head->data, *end = head->data + head->len;
    lua_createtable(L, 0, lean ? 2 : 12);
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
            if (lean && !success_header(name, n)) {
                p = eol ? eol + 1 : NULL;
                continue;
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

int onecli_exchange_push_response(lua_State *L, onecli_exchange_t *x, CURL *easy)
{
    long status = 0;
    int success;
    curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status);
    success = status >= 200 && status < 300;
    lua_pushinteger(L, (lua_Integer)status);
    push_response_headers(L, &x->head, x->lean_headers && success);
    if (x->decode && success && status != 204 && status != 205 && x->body.len > 0) {
        /* decoded from the buffer: no copy of the body as a Lua string */
        if (onecli_json_decode(L, x->body.data, x->body.len) && lua_type(L, -1) == LUA_TTABLE) {
            lua_pushnil(L);
            lua_insert(L, -2);
            return 4;
        }
        lua_pop(L, 1);   /* not an object or an array: the body, as without decode */
    }
    lua_pushlstring(L, x->body.data ? x->body.data : "", x->body.len);
    return 3;
}

CURLcode onecli_exchange_settle(onecli_exchange_t *x, CURL *easy, CURLcode rc)
{
    long status = 0;
    if (rc != CURLE_OPERATION_TIMEDOUT || !x->listen || x->too_large)
        return rc;
    if (curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK
            || status < 200 || status >= 300)
        return rc;
    if (onecli_exchange_inspect(x) != CURLE_OK)     /* the head did not end */
        return rc;
    x->errbuf[0] = '\0';
    return CURLE_OK;
}

/* ---------------------------------------------------------------- */

void onecli_http_open(lua_State *L)
{
    static int atfork_registered = 0;
    const char *lua_version;
    curl_version_info_data *info = curl_version_info(CURLVERSION_NOW);

    if (!atfork_registered && pthread_atfork(NULL, NULL, forget_pid) == 0)
        atfork_registered = 1;

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
    lua_pushcfunction(L, l_request_sent);
    lua_setfield(L, -2, "request_sent");
    push_before_send_codes(L);
    lua_setfield(L, -2, "before_send_codes");
}
