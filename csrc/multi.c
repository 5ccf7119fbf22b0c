/*
 * multi.c - many HTTP exchanges at once over one libcurl multi handle.
 *
 * A Multi userdata (metatable onecli.Multi) owns the CURLM handle and
 * every transfer slot: an easy handle with its exchange (header list,
 * response buffers). Slots are recycled through a free list and the multi
 * handle keeps the connection cache, so connections are reused from one
 * transfer to the next. Nothing here blocks except wait(); nothing calls
 * back into Lua.
 *
 *   m = core.new_multi{ timeout=, connect_timeout=, ca_file=, insecure=,
 *                       user_agent=, max_response_size=,
 *                       max_host_connections=, sockets= }
 *   id = m:add(req)        -- req as for transport:request; starts it
 *   running = m:perform()  -- drives every transfer, never blocks
 *   done = m:collect()     -- { {id=, status=, headers=, body=} | {id=, err=}, ... }
 *   ms = m:timeout()       -- when to call perform() again (-1: no timer)
 *   m:wait(ms)             -- blocks up to ms for socket activity
 *   m:cancel(id)           -- true if the transfer was known (and is gone)
 *   m:pending()            -- added and not yet collected
 *   m:close()              -- idempotent; also __gc and __close
 *
 * Socket-driven hosts (an event loop such as libuv's) make the handle with
 * `sockets = true` and, instead of perform() and wait(), let the loop watch
 * exactly the sockets libcurl names:
 *
 *   running = m:socket_action(fd, "r"|"w"|"rw"|"e")  -- fd is ready
 *   running = m:socket_action()                       -- libcurl's timer fired
 *   changes, timer = m:socket_events()
 *     -- changes: { fd, what, fd, what, ... } in the order libcurl asked,
 *     --   what = "r", "w", "rw" (watch for that) or "remove" (stop watching)
 *     -- timer: nil (unchanged), -1 (no timer) or ms (call socket_action()
 *     --   with no fd once that many ms have passed)
 *     -- reset: true once after a fork: stop watching every socket first
 *
 * libcurl's CURLMOPT_SOCKETFUNCTION and CURLMOPT_TIMERFUNCTION only queue
 * what they are told (they never call Lua, so nothing can raise inside
 * libcurl); the host reads the queue after every add(), cancel() and
 * socket_action(), in order. A "remove" may name a socket libcurl has
 * already closed.
 *
 * Lua strings libcurl must see after add() returns (the request body) are
 * anchored in the userdata's user value table, keyed by transfer id, with
 * the method, path and secret an error object needs at collect() time.
 */
#define _POSIX_C_SOURCE 200112L

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "onecli.h"

#define MULTI_MT "onecli.Multi"
#define MAX_WAIT_MS 86400000.0   /* one day */

typedef enum {
    XFER_FREE,      /* on the free list */
    XFER_RUNNING,   /* added to the multi handle */
    XFER_DONE       /* finished, waiting in the done queue for collect() */
} onecli_xfer_state_t;

typedef struct onecli_xfer_t {
    CURL *easy;
    onecli_exchange_t x;
    lua_Integer id;
    onecli_xfer_state_t state;
    CURLcode result;
    int started;                 /* result came from the transfer itself */
    struct onecli_xfer_t *next;  /* free list or done queue */
} onecli_xfer_t;

/* One CURLMOPT_SOCKETFUNCTION call, queued for socket_events(). */
typedef struct onecli_sockev_t {
    curl_socket_t fd;
    int what;                    /* CURL_POLL_IN, _OUT, _INOUT, _REMOVE */
} onecli_sockev_t;

#define MAX_SOCKET_EVENTS 65536  /* unread beyond this: the host is not reading */

typedef struct onecli_multi_t {
    CURLM *multi;
    onecli_xfer_t **slots;       /* every slot ever made, owned here */
    size_t nslots, cap;
    onecli_xfer_t *free_list;
    onecli_xfer_t *done_head, *done_tail;
    lua_Integer last_id;
    size_t pending;
    onecli_options_t o;
    onecli_conns_t conns;        /* the sockets of the shared connection cache */
    long max_host;               /* CURLMOPT_MAX_HOST_CONNECTIONS, 0: none */
    long pid;                    /* the process the handles belong to */
    int sockets;                 /* socket events on (new_multi{ sockets = true }) */
    onecli_sockev_t *evs;        /* socket events not read yet */
    size_t nevs, evcap;
    int ev_lost;                 /* an event could not be queued */
    int ev_reset;                /* forked: every socket watched is gone */
    long timer_ms;               /* the last CURLMOPT_TIMERFUNCTION value */
    int timer_changed;           /* ... not read yet */
} onecli_multi_t;

static onecli_multi_t *check_multi(lua_State *L, int idx)
{
    return (onecli_multi_t *)luaL_checkudata(L, idx, MULTI_MT);
}

static void queue_done(onecli_multi_t *m, onecli_xfer_t *xf);

/* CURLMOPT_SOCKETFUNCTION: queue what libcurl wants watched. */
static int on_socket_event(CURL *easy, curl_socket_t fd, int what, void *userp,
                           void *socketp)
{
    onecli_multi_t *m = (onecli_multi_t *)userp;
    (void)easy;
    (void)socketp;
    if (!m->sockets)
        return 0;
    if (m->nevs == m->evcap) {
        size_t cap = m->evcap ? m->evcap * 2 : 16;
        onecli_sockev_t *p;
        if (cap > MAX_SOCKET_EVENTS
                || (p = realloc(m->evs, cap * sizeof *p)) == NULL) {
            m->ev_lost = 1;
            return 0;
        }
        m->evs = p;
        m->evcap = cap;
    }
    m->evs[m->nevs].fd = fd;
    m->evs[m->nevs].what = what;
    m->nevs++;
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: remember when libcurl wants socket_action(). */
static int on_timer_event(CURLM *multi, long timeout_ms, void *userp)
{
    onecli_multi_t *m = (onecli_multi_t *)userp;
    (void)multi;
    m->timer_ms = timeout_ms;
    m->timer_changed = 1;
    return 0;
}

/* The settings every multi handle of m gets (again after a fork). */
static void multi_configure(onecli_multi_t *m)
{
    if (m->max_host > 0)
        curl_multi_setopt(m->multi, CURLMOPT_MAX_HOST_CONNECTIONS, m->max_host);
    if (m->sockets) {
        curl_multi_setopt(m->multi, CURLMOPT_SOCKETFUNCTION, on_socket_event);
        curl_multi_setopt(m->multi, CURLMOPT_SOCKETDATA, (void *)m);
        curl_multi_setopt(m->multi, CURLMOPT_TIMERFUNCTION, on_timer_event);
        curl_multi_setopt(m->multi, CURLMOPT_TIMERDATA, (void *)m);
    }
}

/* In a process forked since the multi handle was made: the connections
 * belong to the parent (see transport.c). Transfers in flight are failed
 * (FORKED), every handle is closed with its sockets pointed at /dev/null,
 * and this process starts with handles of its own. */
static void multi_after_fork(lua_State *L, onecli_multi_t *m)
{
    size_t i;
    onecli_conns_neuter(&m->conns);
    for (i = 0; i < m->nslots; i++) {
        onecli_xfer_t *xf = m->slots[i];
        if (xf->state == XFER_RUNNING) {
            curl_multi_remove_handle(m->multi, xf->easy);
            xf->result = CURLE_ABORTED_BY_CALLBACK;
            xf->started = 1;
            xf->x.forked = 1;
            onecli_exchange_finish(&xf->x);
            queue_done(m, xf);
        }
    }
    curl_multi_cleanup(m->multi);             /* closes the cached connections */
    for (i = 0; i < m->nslots; i++) {
        onecli_xfer_t *xf = m->slots[i];
        if (xf->easy != NULL) {
            curl_easy_cleanup(xf->easy);
            xf->easy = NULL;                  /* made again when the slot is taken */
        }
    }
    memset(&m->conns, 0, sizeof m->conns);
    m->pid = onecli_process_id();
    /* the parent's sockets are gone: the host stops watching all of them */
    if (m->sockets) {
        m->nevs = 0;
        m->ev_reset = 1;
        m->timer_ms = -1;
        m->timer_changed = 1;
    }
    m->multi = curl_multi_init();
    if (m->multi == NULL)
        luaL_error(L, "curl_multi_init failed");
    multi_configure(m);
}

static onecli_multi_t *check_open(lua_State *L, int idx)
{
    onecli_multi_t *m = check_multi(L, idx);
    if (m->multi == NULL)
        luaL_error(L, "multi is closed");
    if (m->pid != onecli_process_id())
        multi_after_fork(L, m);
    return m;
}

/* ---------------------------------------------------------------- */
/* slots                                                            */

/* The first free slot, made if needed; it stays on the free list until
 * the caller takes it, so a raise leaves it there. */
static onecli_xfer_t *free_slot(lua_State *L, onecli_multi_t *m)
{
    onecli_xfer_t *xf = m->free_list;
    if (xf == NULL) {
        if (m->nslots == m->cap) {
            size_t cap = m->cap ? m->cap * 2 : 8;
            onecli_xfer_t **p = realloc(m->slots, cap * sizeof *p);
            if (p == NULL)
                luaL_error(L, "not enough memory");
            m->slots = p;
            m->cap = cap;
        }
        xf = calloc(1, sizeof *xf);
        if (xf == NULL)
            luaL_error(L, "not enough memory");
        xf->x.conns = &m->conns;
        m->slots[m->nslots++] = xf;
        m->free_list = xf;
    }
    if (xf->easy == NULL && (xf->easy = curl_easy_init()) == NULL)
        luaL_error(L, "curl_easy_init failed");
    return xf;
}

static void queue_done(onecli_multi_t *m, onecli_xfer_t *xf)
{
    xf->state = XFER_DONE;
    xf->next = NULL;
    if (m->done_tail)
        m->done_tail->next = xf;
    else
        m->done_head = xf;
    m->done_tail = xf;
}

static void unlink_done(onecli_multi_t *m, onecli_xfer_t *xf)
{
    onecli_xfer_t *prev = NULL, *p;
    for (p = m->done_head; p != NULL; prev = p, p = p->next) {
        if (p != xf)
            continue;
        if (prev)
            prev->next = p->next;
        else
            m->done_head = p->next;
        if (m->done_tail == p)
            m->done_tail = prev;
        return;
    }
}

/* Returns a taken slot to the free list and drops its anchor (anchors is
 * the stack index of the user value table). Allocates nothing. */
static void release_slot(lua_State *L, onecli_multi_t *m, onecli_xfer_t *xf,
                         int anchors)
{
    lua_pushinteger(L, xf->id);
    lua_pushnil(L);
    lua_rawset(L, anchors);
    onecli_exchange_recycle(&xf->x);
    xf->id = 0;
    xf->state = XFER_FREE;
    xf->next = m->free_list;
    m->free_list = xf;
    m->pending--;
}

/* Moves every finished transfer from the multi handle to the done queue. */
static void drain(onecli_multi_t *m)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(m->multi, &left)) != NULL) {
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        char *priv = NULL;
        onecli_xfer_t *xf;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, &priv);
        /* msg is invalid once the handle is removed */
        curl_multi_remove_handle(m->multi, easy);
        xf = (onecli_xfer_t *)(void *)priv;
        if (xf == NULL || xf->state != XFER_RUNNING)
            continue;
        if (onecli_exchange_redo(&xf->x, easy, result)
                && curl_multi_add_handle(m->multi, easy) == CURLM_OK)
            continue;      /* nothing went out on the stale connection: again, on a new one */
        if (result == CURLE_OK)
            result = onecli_exchange_inspect(&xf->x);
        else
            result = onecli_exchange_settle(&xf->x, easy, result);
        xf->result = result;
        xf->started = 1;
        onecli_exchange_finish(&xf->x);
        queue_done(m, xf);
    }
}

/* ---------------------------------------------------------------- */
/* methods                                                          */

/* m:add(req) -> id */
static int multi_add(lua_State *L)
{
    onecli_multi_t *m = check_open(L, 1);
    onecli_request_t r;
    onecli_xfer_t *xf;
    lua_Integer id;
    CURLcode rc;

    luaL_checktype(L, 2, LUA_TTABLE);
    lua_settop(L, 2);
    onecli_request_read(L, 2, &m->o, &r);                    /* 3 body, 4 headers */
    xf = free_slot(L, m);
    rc = onecli_exchange_prepare(L, &xf->x, xf->easy, &m->o, &r);
    if (rc == CURLE_OK)
        rc = curl_easy_setopt(xf->easy, CURLOPT_PRIVATE, (void *)xf);

    id = m->last_id + 1;
    onecli_getuservalue(L, 1);                               /* 5 anchors */
    lua_pushinteger(L, id);
    lua_createtable(L, 0, 5);
    lua_pushstring(L, r.method);
    lua_setfield(L, -2, "method");
    lua_pushstring(L, r.url);
    lua_setfield(L, -2, "url");
    if (r.path) {
        lua_pushstring(L, r.path);
        lua_setfield(L, -2, "path");
    }
    if (r.secret) {
        lua_pushstring(L, r.secret);
        lua_setfield(L, -2, "secret");
    }
    lua_pushvalue(L, 3);            /* the very string libcurl points at */
    lua_setfield(L, -2, "body");
    lua_rawset(L, 5);

    /* nothing below raises: take the slot */
    m->last_id = id;
    m->free_list = xf->next;
    xf->next = NULL;
    xf->id = id;
    xf->started = 0;
    m->pending++;
    if (rc == CURLE_OK) {
        CURLMcode mc = curl_multi_add_handle(m->multi, xf->easy);
        if (mc == CURLM_OK) {
            xf->state = XFER_RUNNING;
            lua_pushinteger(L, id);
            return 1;
        }
        strncpy(xf->x.errbuf, curl_multi_strerror(mc), sizeof xf->x.errbuf - 1);
        xf->x.errbuf[sizeof xf->x.errbuf - 1] = '\0';
        rc = CURLE_FAILED_INIT;
        xf->started = 1;            /* report errbuf; nothing was sent */
    }
    xf->result = rc;                /* reported by the next collect() */
    onecli_exchange_finish(&xf->x);
    queue_done(m, xf);
    lua_pushinteger(L, id);
    return 1;
}

/* m:perform() -> number of transfers still running */
static int multi_perform(lua_State *L)
{
    onecli_multi_t *m = check_open(L, 1);
    int running = 0;
    CURLMcode mc = curl_multi_perform(m->multi, &running);
    if (mc != CURLM_OK)
        return luaL_error(L, "curl_multi_perform: %s", curl_multi_strerror(mc));
    drain(m);
    lua_pushinteger(L, running);
    return 1;
}

/* m:socket_action([fd [, events]]) -> number of transfers still running.
 * events: "r", "w", "rw" (ready for that), "e" (an error on the socket);
 * without fd: libcurl's timer fired. */
static int multi_socket_action(lua_State *L)
{
    onecli_multi_t *m = check_open(L, 1);
    curl_socket_t fd = CURL_SOCKET_TIMEOUT;
    int mask = 0, running = 0;
    CURLMcode mc;

    if (!m->sockets)
        return luaL_error(L, "socket_action: this multi handle was made without "
                          "sockets = true");
    if (!lua_isnoneornil(L, 2)) {
        lua_Integer n = luaL_checkinteger(L, 2);
        const char *ev = luaL_optstring(L, 3, "");
        luaL_argcheck(L, n >= 0 && n <= 0x7fffffff, 2, "not a socket");
        fd = (curl_socket_t)n;
        for (; *ev; ev++) {
            if (*ev == 'r')
                mask |= CURL_CSELECT_IN;
            else if (*ev == 'w')
                mask |= CURL_CSELECT_OUT;
            else if (*ev == 'e')
                mask |= CURL_CSELECT_ERR;
            else if (*ev != 'd' && *ev != 'p')   /* luv's disconnect, prioritized */
                return luaL_argerror(L, 3, "events must be made of r, w and e");
        }
    }
    mc = curl_multi_socket_action(m->multi, fd, mask, &running);
    if (mc != CURLM_OK)
        return luaL_error(L, "curl_multi_socket_action: %s", curl_multi_strerror(mc));
    drain(m);
    lua_pushinteger(L, running);
    return 1;
}

/* m:socket_events() -> { fd, what, ... }, timer | nil, reset | nil */
static int multi_socket_events(lua_State *L)
{
    onecli_multi_t *m = check_open(L, 1);
    size_t i;
    if (m->ev_lost) {
        m->ev_lost = 0;
        m->nevs = 0;
        return luaL_error(L, "socket_events: too many unread socket events (the "
                          "host must read them after every call)");
    }
    lua_createtable(L, (int)(m->nevs * 2), 0);
    for (i = 0; i < m->nevs; i++) {
        const char *what;
        switch (m->evs[i].what) {
        case CURL_POLL_IN: what = "r"; break;
        case CURL_POLL_OUT: what = "w"; break;
        case CURL_POLL_INOUT: what = "rw"; break;
        case CURL_POLL_REMOVE: what = "remove"; break;
        default: what = ""; break;           /* CURL_POLL_NONE: nothing to watch */
        }
        lua_pushinteger(L, (lua_Integer)m->evs[i].fd);
        lua_rawseti(L, -2, (int)(2 * i + 1));
        lua_pushstring(L, *what ? what : "remove");
        lua_rawseti(L, -2, (int)(2 * i + 2));
    }
    m->nevs = 0;
    if (m->timer_changed) {
        m->timer_changed = 0;
        lua_pushinteger(L, (lua_Integer)(m->timer_ms < 0 ? -1 : m->timer_ms));
    } else {
        lua_pushnil(L);
    }
    if (m->ev_reset) {
        m->ev_reset = 0;
        lua_pushboolean(L, 1);
        return 3;
    }
    return 2;
}

/* The anchored string field of the table on top of the stack, or NULL. */
static const char *anchored(lua_State *L, const char *field)
{
    const char *s = NULL;
    if (lua_type(L, -1) != LUA_TTABLE)
        return NULL;
    lua_getfield(L, -1, field);
    if (lua_type(L, -1) == LUA_TSTRING)
        s = lua_tostring(L, -1);
    lua_pop(L, 1);   /* still referenced by the anchor table */
    return s;
}

/* Pushes { id=, status=, headers=, body= }, { id=, status=, headers=,
 * value= } (decode) or { id=, err= }. */
static void push_outcome(lua_State *L, onecli_xfer_t *xf, int anchors)
{
    int t;
    lua_createtable(L, 0, 4);
    t = lua_gettop(L);
    lua_pushinteger(L, xf->id);
    lua_setfield(L, t, "id");
    if (xf->result == CURLE_OK) {
        if (onecli_exchange_push_response(L, &xf->x, xf->easy) == 4)
            lua_setfield(L, t, "value");
        lua_setfield(L, t, "body");      /* nil when decoded */
        lua_setfield(L, t, "headers");
        lua_setfield(L, t, "status");
        return;
    }
    {
        onecli_request_t r;
        memset(&r, 0, sizeof r);
        lua_pushinteger(L, xf->id);
        lua_rawget(L, anchors);
        r.method = anchored(L, "method");
        r.url = anchored(L, "url");
        r.path = anchored(L, "path");
        r.secret = anchored(L, "secret");
        onecli_exchange_push_error(L, &xf->x, xf->easy, xf->result, &r, xf->started);
        lua_setfield(L, t, "err");
        lua_settop(L, t);
    }
}

/* m:collect() -> array of the transfers finished since the last call */
static int multi_collect(lua_State *L)
{
    onecli_multi_t *m = check_open(L, 1);
    int n = 0;
    lua_settop(L, 1);
    drain(m);
    lua_newtable(L);                                         /* 2 results */
    onecli_getuservalue(L, 1);                               /* 3 anchors */
    while (m->done_head != NULL) {
        onecli_xfer_t *xf = m->done_head;
        push_outcome(L, xf, 3);   /* a raise leaves xf queued for next time */
        lua_rawseti(L, 2, ++n);
        m->done_head = xf->next;
        if (m->done_head == NULL)
            m->done_tail = NULL;
        release_slot(L, m, xf, 3);
    }
    lua_settop(L, 2);
    return 1;
}

/* m:timeout() -> milliseconds until perform() is due, -1 for no timer */
static int multi_timeout(lua_State *L)
{
    onecli_multi_t *m = check_open(L, 1);
    long ms = -1;
    drain(m);
    if (m->done_head != NULL) {
        ms = 0;                   /* something to collect right now */
    } else {
        CURLMcode mc = curl_multi_timeout(m->multi, &ms);
        if (mc != CURLM_OK)
            return luaL_error(L, "curl_multi_timeout: %s", curl_multi_strerror(mc));
    }
    lua_pushinteger(L, (lua_Integer)ms);
    return 1;
}

/* m:wait(ms) -> number of sockets with activity; blocks at most ms */
static int multi_wait(lua_State *L)
{
    onecli_multi_t *m = check_open(L, 1);
    lua_Number ms = luaL_checknumber(L, 2);
    int numfds = 0, timeout;
    CURLMcode mc;

    luaL_argcheck(L, ms >= 0, 2, "milliseconds must be >= 0");
    timeout = (int)(ms > MAX_WAIT_MS ? MAX_WAIT_MS : ms);
    if (m->done_head != NULL)
        timeout = 0;
#if LIBCURL_VERSION_NUM >= 0x074200
    mc = curl_multi_poll(m->multi, NULL, 0, timeout, &numfds);
#else
    mc = curl_multi_wait(m->multi, NULL, 0, timeout, &numfds);
    if (mc == CURLM_OK && numfds == 0 && timeout > 0) {
        /* before 7.66 curl_multi_wait returns at once without sockets */
        struct timespec ts;
        ts.tv_sec = timeout / 1000;
        ts.tv_nsec = (long)(timeout % 1000) * 1000000L;
        nanosleep(&ts, NULL);
    }
#endif
    if (mc != CURLM_OK)
        return luaL_error(L, "curl_multi_poll: %s", curl_multi_strerror(mc));
    lua_pushinteger(L, numfds);
    return 1;
}

/* m:cancel(id) -> true if the transfer was known (and is now gone) */
static int multi_cancel(lua_State *L)
{
    onecli_multi_t *m = check_open(L, 1);
    lua_Integer id = luaL_checkinteger(L, 2);
    size_t i;
    lua_settop(L, 2);
    for (i = 0; id > 0 && i < m->nslots; i++) {
        onecli_xfer_t *xf = m->slots[i];
        if (xf->id != id || xf->state == XFER_FREE)
            continue;
        if (xf->state == XFER_RUNNING)
            curl_multi_remove_handle(m->multi, xf->easy);
        else
            unlink_done(m, xf);
        onecli_getuservalue(L, 1);                           /* 3 anchors */
        release_slot(L, m, xf, 3);
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    return 1;
}

static int multi_pending(lua_State *L)
{
    onecli_multi_t *m = check_multi(L, 1);
    lua_pushinteger(L, (lua_Integer)m->pending);
    return 1;
}

static int multi_close(lua_State *L)
{
    onecli_multi_t *m = check_multi(L, 1);
    size_t i;
    if (m->multi != NULL && m->pid != onecli_process_id())
        onecli_conns_neuter(&m->conns);       /* the parent's connections */
    /* every easy handle leaves the multi handle before anything is freed */
    for (i = 0; i < m->nslots; i++) {
        onecli_xfer_t *xf = m->slots[i];
        if (xf->state == XFER_RUNNING && m->multi != NULL)
            curl_multi_remove_handle(m->multi, xf->easy);
    }
    for (i = 0; i < m->nslots; i++) {
        onecli_xfer_t *xf = m->slots[i];
        if (xf->easy != NULL)
            curl_easy_cleanup(xf->easy);
        onecli_exchange_release(&xf->x);
        free(xf);
    }
    free(m->slots);
    m->slots = NULL;
    m->sockets = 0;          /* curl_multi_cleanup's callbacks are not queued */
    free(m->evs);
    m->evs = NULL;
    m->nevs = m->evcap = 0;
    m->nslots = m->cap = 0;
    m->free_list = m->done_head = m->done_tail = NULL;
    m->pending = 0;
    if (m->multi != NULL) {
        curl_multi_cleanup(m->multi);
        m->multi = NULL;
    }
    onecli_options_release(&m->o);
    /* let the anchored request strings go */
    lua_settop(L, 1);
    onecli_getuservalue(L, 1);
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, 2) != 0) {
            lua_pop(L, 1);
            lua_pushvalue(L, -1);
            lua_pushnil(L);
            lua_rawset(L, 2);
        }
    }
    return 0;
}

static int multi_is_closed(lua_State *L)
{
    lua_pushboolean(L, check_multi(L, 1)->multi == NULL);
    return 1;
}

static int multi_tostring(lua_State *L)
{
    onecli_multi_t *m = check_multi(L, 1);
    if (m->multi)
        lua_pushfstring(L, MULTI_MT " (%p, %d pending)", (void *)m, (int)m->pending);
    else
        lua_pushliteral(L, MULTI_MT " (closed)");
    return 1;
}

/* core.new_multi([opts]) -> multi */
static int l_new_multi(lua_State *L)
{
    onecli_multi_t *m;
    onecli_options_t o;
    const char *ca_file, *user_agent;
    long max_host = 0;
    int sockets;

    lua_settop(L, 1);
    onecli_options_read(L, 1, &o, &ca_file, &user_agent);
    lua_getfield(L, 1, "max_host_connections");
    if (!lua_isnil(L, -1)) {
        lua_Number n = lua_tonumber(L, -1);
        if (lua_type(L, -1) != LUA_TNUMBER || !(n >= 0 && n <= 100000) || n != (long)n)
            return luaL_error(L, "option 'max_host_connections' must be an "
                              "integer from 0 (no limit) to 100000");
        max_host = (long)n;
    }
    lua_pop(L, 1);
    lua_getfield(L, 1, "sockets");
    if (!lua_isnil(L, -1) && lua_type(L, -1) != LUA_TBOOLEAN)
        return luaL_error(L, "option 'sockets' must be a boolean");
    sockets = lua_toboolean(L, -1);
    lua_pop(L, 1);

    m = (onecli_multi_t *)lua_newuserdata(L, sizeof *m);
    memset(m, 0, sizeof *m);
    m->pid = onecli_process_id();
    m->max_host = max_host;
    m->sockets = sockets;
    m->timer_ms = -1;
    luaL_getmetatable(L, MULTI_MT);
    lua_setmetatable(L, -2);
    lua_newtable(L);
    onecli_setuservalue(L, -2);
    /* from here on the userdata owns every allocation: raising is safe */
    m->o = o;
    m->multi = curl_multi_init();
    if (m->multi == NULL)
        return luaL_error(L, "curl_multi_init failed");
    if (!onecli_options_own(&m->o, ca_file, user_agent))
        return luaL_error(L, "not enough memory");
    multi_configure(m);
    return 1;
}

void onecli_multi_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        { "add", multi_add },
        { "perform", multi_perform },
        { "collect", multi_collect },
        { "timeout", multi_timeout },
        { "wait", multi_wait },
        { "cancel", multi_cancel },
        { "socket_action", multi_socket_action },
        { "socket_events", multi_socket_events },
        { "pending", multi_pending },
        { "close", multi_close },
        { "is_closed", multi_is_closed },
        { NULL, NULL }
    };
    onecli_type_open(L, MULTI_MT, methods, multi_close, multi_tostring);
    lua_pushcfunction(L, l_new_multi);
    lua_setfield(L, -2, "new_multi");
}
