/*
 * options.h: downloadFile's options as read (options.c), for task.c. Binding only.
 */
#ifndef DT_OPTIONS_H
#define DT_OPTIONS_H

#include "binding.h"

/* The O_ names index OPTIONS (options.c), in the order they are read. */
enum {
  O_URL, O_FILE_PATH, O_HEADER, O_TIMEOUT, O_SUCCESS, O_FAIL, O_COMPLETE, O_CONNECT_TIMEOUT,
  O_MAX_REDIRECTS, O_MAX_FILE_SIZE, O_INSECURE, O_CA_FILE, O_PROXY, O_STALL_TIMEOUT, O_SHA256,
  O_RATE_LIMIT, O_ETAG, O_IF_MODIFIED_SINCE, O_RESUME, O_RETRY, O_DURABLE, O_PRIORITY,
  O_CREATE_DIRS, O_SEGMENTS, O_MIRRORS, O_COUNT
};

/* The options as read: each value was fetched once (options[name], so an
 * __index runs once per name) and stays on the stack at base + O_x until the
 * engine's copy is made; a string there may be one only the stack holds. */
typedef struct optread {
  int base;      /* options[OPTIONS[i].name] is at base + i (nil: absent) */
  int lines;     /* stack index of the array of "Name: value" lines; 0: none */
  int mirrors;   /* stack index of the mirrors array (checked); 0: none */
  size_t need;   /* bytes for the strings and header lines, terminators included */
  dt_opts v;     /* numbers and flags; the string pointers are set by copy_options */
} optread;

#define OPT_AT(r, i) ((r)->base + (i))

/* Reads and checks every option of the table at stack index 1, raising an error naming the
 * first bad one; leaves the values on the stack (see optread). */
void read_options(lua_State *L, optread *r);
/* configure's settings as read: -1 (a string: NULL) for one not given. */
typedef struct dt_settings {
  int64_t max_concurrent, progress_interval, poll_budget, max_per_host, rate_limit;
  const char *user_agent, *temp_dir; /* on the stack, as read */
} dt_settings;

/* Reads and checks configure's settings (the table at stack index 1): raises on an unknown
 * name or a bad value before anything is changed. */
void read_settings(lua_State *L, dt_settings *s);

/* The engine's copy of the options read (one allocation); NULL when out of memory. */
dt_opts *copy_options(lua_State *L, const optread *r, dt_state *st);

#endif
