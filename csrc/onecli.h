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

/* json.c */
ONECLI_HIDDEN void onecli_json_open(lua_State *L);
/* Decodes s; on success pushes the value and returns 1, on failure pushes
 * an error message and returns 0. Never raises for bad input. */
ONECLI_HIDDEN int onecli_json_decode(lua_State *L, const char *s, size_t len);

/* errors.c */
ONECLI_HIDDEN void onecli_errors_open(lua_State *L);
/* Pushes a normalized transport error. secret may be NULL. */
ONECLI_HIDDEN void onecli_error_push_transport(lua_State *L, const char *method,
        const char *path, const char *code, const char *message,
        const char *secret, int request_sent);

/* backoff.c */
ONECLI_HIDDEN void onecli_backoff_open(lua_State *L);
/* Seconds until the Retry-After value, or -1 if it cannot be read. */
ONECLI_HIDDEN double onecli_retry_after_seconds(const char *value, double now);

/* transport.c */
ONECLI_HIDDEN void onecli_transport_open(lua_State *L);

#endif /* ONECLI_H */
