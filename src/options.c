/*
 * options.c: downloadFile's options and configure's settings, each declared once in a table
 * (name, kind, checks, where it goes, default, range), read once and checked by the same code
 * (every bad one raises "<function>: bad option '<name>' (<what>)"), then copied into the
 * engine's dt_opts. The reference's table of the options is in task.c, beside downloadFile.
 */
#include "options.h"
#include "httpdate.h"
#include "platform.h"

#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the options, declared ------------------------------------------------------------ */

/* What an option's value must be, and where it goes. */
enum {
  K_STRING,   /* a string without a zero byte; it stays on the stack for copy_options */
  K_LONG,     /* an integer, into a long of the target (values above `cap` become `cap`) */
  K_INT64,    /* an integer, into an int64_t of the target (the same) */
  K_BOOL,     /* a boolean, into an int of the target */
  K_DATE,     /* epoch seconds or an HTTP date string, into an int64_t of the target */
  K_FUNCTION, /* a function (a listener): the task keeps it */
  K_TABLE     /* a table, read by read_options itself (header, mirrors) */
};
/* Checks beyond the kind. */
enum { F_REQUIRED = 1, F_NONEMPTY = 2, F_ONE_LINE = 4, F_URL = 8, F_HEX64 = 16, F_DIR = 32 };
#define NONE (-1) /* no field: checked only */
static const char DF[] = "downloadFile";

typedef struct opt_def {
  const char *name;
  unsigned char kind, flags;
  int at;             /* offsetof the field in the target struct, or NONE */
  int64_t def;        /* integers: the value when absent */
  int64_t min, max;   /* integers: below min or above max is an error */
  int64_t cap;        /* integers: a value above cap is taken as cap (libcurl's long) */
} opt_def;

#define BIG INT64_MAX
#define LONGMAX ((int64_t)LONG_MAX)
#define OPT(f) ((int)offsetof(dt_opts, f))
#define SET(f) ((int)offsetof(dt_settings, f))

/* downloadFile's options, in the order they are read (the O_ names of options.h index it);
 * lua/downloadtask/types.lua declares each with its type, and spec/api/types_spec.lua checks
 * that against this table. */
static const opt_def OPTIONS[O_COUNT] = {
    {"url", K_STRING, F_REQUIRED | F_URL, NONE, 0, 0, 0, 0},
    {"filePath", K_STRING, F_NONEMPTY, NONE, 0, 0, 0, 0},
    {"header", K_TABLE, 0, NONE, 0, 0, 0, 0},
    {"timeout", K_LONG, 0, OPT(timeout_ms), 60000, 0, BIG, LONGMAX},
    {"success", K_FUNCTION, 0, NONE, 0, 0, 0, 0},
    {"fail", K_FUNCTION, 0, NONE, 0, 0, 0, 0},
    {"complete", K_FUNCTION, 0, NONE, 0, 0, 0, 0},
    {"connectTimeout", K_LONG, 0, OPT(connect_timeout_ms), 30000, 0, BIG, LONGMAX},
    {"maxRedirects", K_LONG, 0, OPT(max_redirects), 10, 0, BIG, LONGMAX},
    {"maxFileSize", K_INT64, 0, OPT(max_file_size), -1, 0, BIG, BIG},
    {"insecure", K_BOOL, 0, OPT(insecure), 0, 0, 0, 0},
    {"caFile", K_STRING, 0, NONE, 0, 0, 0, 0},
    {"proxy", K_STRING, F_ONE_LINE, NONE, 0, 0, 0, 0},
    {"stallTimeout", K_LONG, 0, OPT(stall_timeout_ms), 0, 0, BIG, LONGMAX},
    {"sha256", K_STRING, F_HEX64, NONE, 0, 0, 0, 0},
    {"rateLimit", K_INT64, 0, OPT(rate_limit), 0, 0, BIG, BIG},
    {"etag", K_STRING, F_ONE_LINE, NONE, 0, 0, 0, 0},
    {"ifModifiedSince", K_DATE, 0, OPT(if_modified_since), -1, 0, BIG, BIG},
    {"resume", K_BOOL, 0, OPT(resume), 0, 0, 0, 0},
    {"retry", K_LONG, 0, OPT(retry), 0, 0, BIG, LONGMAX},
    {"durable", K_BOOL, 0, OPT(durable), 0, 0, 0, 0},
    {"priority", K_LONG, 0, OPT(priority), 0, (int64_t)LONG_MIN, BIG, LONGMAX},
    {"createDirs", K_BOOL, 0, OPT(create_dirs), 0, 0, 0, 0},
    {"segments", K_LONG, 0, OPT(segments), 1, 1, 16, 16},
    {"mirrors", K_TABLE, 0, NONE, 0, 0, 0, 0},
};

/* configure's settings: absent ones stay as they are (def -1 / NULL marks them). */
static const opt_def SETTINGS[] = {
    {"maxConcurrent", K_INT64, 0, SET(max_concurrent), -1, 1, BIG, 1000000},
    {"progressInterval", K_INT64, 0, SET(progress_interval), -1, 0, BIG, LONGMAX},
    {"userAgent", K_STRING, F_NONEMPTY | F_ONE_LINE, SET(user_agent), 0, 0, 0, 0},
    {"tempDir", K_STRING, F_NONEMPTY | F_DIR, SET(temp_dir), 0, 0, 0, 0},
    {"pollBudget", K_INT64, 0, SET(poll_budget), -1, 0, BIG, 60000000},
    {"maxPerHost", K_INT64, 0, SET(max_per_host), -1, 0, BIG, 1000000},
    {"rateLimit", K_INT64, 0, SET(rate_limit), -1, 0, BIG, BIG},
};
#define NSETTINGS (sizeof SETTINGS / sizeof SETTINGS[0])

/* ---- reading one value ------------------------------------------------------------------ */

/* The one error format: "<function>: bad option '<name>' (<what>)". */
static int opt_error(lua_State *L, const char *fn, const char *name, const char *what) {
  return luaL_error(L, "%s: bad option '%s' (%s)", fn, name, what);
}

static int opt_type_error(lua_State *L, const char *fn, const char *name, const char *expected, int idx) {
  return opt_error(L, fn, name, lua_pushfstring(L, "%s expected, got %s", expected, luaL_typename(L, idx)));
}

/* Whether s starts with the lower-case prefix p, in any case. */
static int has_prefix_ci(const char *s, const char *p) {
  for (; *p; s++, p++)
    if (*s != *p && !(*s >= 'A' && *s <= 'Z' && *s + 32 == *p)) return 0;
  return 1;
}

/* A URL of the request (`url`, a mirror; a zero byte was refused): http(s) only, and no line
 * break, which could add lines to the request. */
static void url_check(lua_State *L, const char *name, const char *u) {
  if (has_line_break(u, strlen(u))) opt_error(L, DF, name, "a URL contains a line break");
  if (!has_prefix_ci(u, "http://") && !has_prefix_ci(u, "https://"))
    opt_error(L, DF, name, lua_pushfstring(L, "http:// or https:// URL expected, got '%s'", u));
}

/* The string option d at idx, checked as its flags say; NULL when absent. */
static const char *read_string(lua_State *L, const char *fn, const opt_def *d, int idx) {
  if (lua_type(L, idx) != LUA_TSTRING) opt_type_error(L, fn, d->name, "string", idx);
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (strlen(s) != len) opt_error(L, fn, d->name, "string contains a zero byte");
  if ((d->flags & F_NONEMPTY) && len == 0) opt_error(L, fn, d->name, "must not be empty");
  if ((d->flags & F_ONE_LINE) && has_line_break(s, len)) opt_error(L, fn, d->name, "contains a line break");
  if (d->flags & F_URL) url_check(L, d->name, s);
  if ((d->flags & F_HEX64) && (len != 64 || strspn(s, "0123456789abcdefABCDEF") != 64))
    opt_error(L, fn, d->name, "64 hexadecimal digits expected");
  if (d->flags & F_DIR) {
    const char *what = NULL;
    int kind = plat_kind(s, &what);
    if (kind != PLAT_DIR)
      opt_error(L, fn, d->name, lua_pushfstring(L, "'%s' is not a directory%s%s", s,
                                                kind == PLAT_NONE ? ": it does not exist" : kind < 0 ? ": " : "",
                                                kind < 0 ? strerror(errno) : ""));
  }
  return s;
}

/* The integer option d at idx (64 bits whatever the C long is: 32 on Windows), in its range,
 * then capped. */
static int64_t read_integer(lua_State *L, const char *fn, const opt_def *d, int idx) {
  int isint = 0;
  lua_Integer v = lua_type(L, idx) == LUA_TNUMBER ? compat_tointegerx(L, idx, &isint) : 0;
  if (!isint) opt_type_error(L, fn, d->name, "integer", idx);
  /* the limits that can be crossed are small (%d: Lua 5.1's lua_pushfstring has no %I) */
  if ((int64_t)v < d->min) opt_error(L, fn, d->name, lua_pushfstring(L, "must be at least %d", (int)d->min));
  if ((int64_t)v > d->max) opt_error(L, fn, d->name, lua_pushfstring(L, "at most %d", (int)d->max));
  return (int64_t)v > d->cap ? d->cap : (int64_t)v;
}

/* ifModifiedSince: epoch seconds, or an HTTP date (the clock places a two-digit year). */
static int64_t read_date(lua_State *L, const char *fn, const opt_def *d, int idx) {
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    int64_t t = strlen(s) == len ? http_date(s, (int64_t)time(NULL)) : -1;
    if (t < 0) opt_error(L, fn, d->name, lua_pushfstring(L, "not an HTTP date from 1970 on: '%s'", s));
    return t;
  }
  if (lua_type(L, idx) != LUA_TNUMBER) opt_type_error(L, fn, d->name, "integer or HTTP date string", idx);
  return read_integer(L, fn, d, idx);
}

/* Reads and checks the value at idx of option d (nil: its default) into the target struct at
 * `into` (NULL: checked only); returns a string option's value (NULL otherwise or absent). */
static const char *read_value(lua_State *L, const char *fn, const opt_def *d, int idx, char *into) {
  const char *s = NULL;
  int64_t n = d->def;
  if (lua_isnil(L, idx)) {
    if (d->flags & F_REQUIRED) opt_error(L, fn, d->name, "string expected, got nil");
  } else if (d->kind == K_STRING) {
    s = read_string(L, fn, d, idx);
  } else if (d->kind == K_LONG || d->kind == K_INT64) {
    n = read_integer(L, fn, d, idx);
  } else if (d->kind == K_DATE) {
    n = read_date(L, fn, d, idx);
  } else if (d->kind == K_BOOL) {
    if (lua_type(L, idx) != LUA_TBOOLEAN) opt_type_error(L, fn, d->name, "boolean", idx);
    n = lua_toboolean(L, idx);
  } else if (d->kind == K_FUNCTION && lua_type(L, idx) != LUA_TFUNCTION) {
    opt_type_error(L, fn, d->name, "function", idx);
  } else if (d->kind == K_TABLE && lua_type(L, idx) != LUA_TTABLE) {
    opt_type_error(L, fn, d->name, "table", idx);
  }
  if (!into || d->at == NONE) return s;
  char *f = into + d->at;
  if (d->kind == K_STRING) {
    memcpy(f, &s, sizeof s);
  } else if (d->kind == K_LONG) {
    long v = (long)n;
    memcpy(f, &v, sizeof v);
  } else if (d->kind == K_BOOL) {
    int v = (int)n;
    memcpy(f, &v, sizeof v);
  } else {
    memcpy(f, &n, sizeof n);
  }
  return s;
}

/* Raises "<fn>: unknown option '<name>'" for the first key of the table at stack index 1 that
 * is not one of the n in defs (a raw walk, which runs no metamethod). */
static void check_names(lua_State *L, const char *fn, const opt_def *defs, size_t n) {
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    size_t i = 0;
    while (k && i < n && strcmp(defs[i].name, k) != 0) i++;
    if (!k || i == n) {
      lua_pushvalue(L, -1);
      luaL_error(L, "%s: unknown option '%s'", fn, k ? k : luaL_tolstring(L, -1, NULL));
    }
  }
}

void read_settings(lua_State *L, dt_settings *s) {
  static const char fn[] = "downloadtask.configure";
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  check_names(L, fn, SETTINGS, NSETTINGS);
  s->user_agent = s->temp_dir = NULL;
  for (size_t i = 0; i < NSETTINGS; i++) {
    compat_getfield(L, 1, SETTINGS[i].name); /* stays on the stack: the strings live there */
    read_value(L, fn, &SETTINGS[i], lua_gettop(L), (char *)s);
  }
}

static int is_token_char(unsigned char c) {
  return c > 32 && c < 127 && !strchr("\"(),/:;<=>?@[\\]{}", c);
}

/* Checks the header table at h (iterated raw, once) and pushes the array of
 * its curl-ready "Name: value" lines, adding their sizes to *need; returns
 * how many. */
static size_t header_lines(lua_State *L, int h, size_t *need) {
  size_t n = 0;
  lua_newtable(L);
  int lines = lua_gettop(L);
  lua_pushnil(L);
  while (lua_next(L, h)) {
    if (lua_type(L, -2) != LUA_TSTRING)
      opt_error(L, DF, "header", lua_pushfstring(L, "names must be strings, got %s",
                                             luaL_typename(L, -2)));
    size_t klen, vlen;
    const char *k = lua_tolstring(L, -2, &klen);
    if (klen == 0) opt_error(L, DF, "header", "empty header name");
    for (size_t i = 0; i < klen; i++)
      if (!is_token_char((unsigned char)k[i]))
        opt_error(L, DF, "header", lua_pushfstring(L, "invalid header name '%s'", k));
    int t = lua_type(L, -1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      opt_error(L, DF, "header", lua_pushfstring(L, "value of '%s' must be a string, got %s", k,
                                             luaL_typename(L, -1)));
    lua_pushvalue(L, -1); /* convert a copy: lua_next needs the key untouched */
    const char *v = lua_tolstring(L, -1, &vlen);
    if (has_line_break(v, vlen))
      opt_error(L, DF, "header", lua_pushfstring(L, "value of '%s' contains a line break or a zero byte", k));
    if (vlen == 0) lua_pushfstring(L, "%s;", k); /* how libcurl sends an empty value */
    else lua_pushfstring(L, "%s: %s", k, v);    /* neither has a zero byte */
    size_t len;
    lua_tolstring(L, -1, &len);
    *need += len + 1;
    lua_rawseti(L, lines, (lua_Integer)++n);
    lua_pop(L, 2);
  }
  return n;
}

/* Reads and checks every option, raising an error naming the first bad one.
 * Each name is fetched exactly once (a metamethod of the options table runs
 * at most once per name); everything that can raise, allocations in Lua
 * included, happens here, before the task exists. Leaves the values on the
 * stack (see optread). */
void read_options(lua_State *L, optread *r) {
  luaL_checktype(L, 1, LUA_TTABLE);
  lua_settop(L, 1);
  check_names(L, DF, OPTIONS, O_COUNT);
  luaL_checkstack(L, O_COUNT + 8, "downloadFile options");
  memset(r, 0, sizeof *r);
  r->base = lua_gettop(L) + 1;
  for (int i = 0; i < O_COUNT; i++) lua_getfield(L, 1, OPTIONS[i].name);
  dt_opts *v = &r->v;
  for (int i = 0; i < O_COUNT; i++) {
    const char *str = read_value(L, DF, &OPTIONS[i], OPT_AT(r, i), (char *)v);
    if (str) r->need += strlen(str) + 1;
  }
  if (v->resume && lua_isnil(L, OPT_AT(r, O_FILE_PATH))) opt_error(L, DF, "resume", "needs filePath");
  int m = OPT_AT(r, O_MIRRORS);
  if (!lua_isnil(L, m)) {
    size_t n = (size_t)lua_rawlen(L, m);
    if (n > 16) opt_error(L, DF, "mirrors", "at most 16 URLs");
    /* the checked strings go to a table of our own: copy_options reads that one, which no
     * finalizer running in between (any allocation may run one) can change */
    lua_createtable(L, (int)n, 0);
    int copy = lua_gettop(L);
    for (size_t i = 1; i <= n; i++) { /* raw: no metamethod runs */
      lua_rawgeti(L, m, (lua_Integer)i);
      size_t len;
      const char *u = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
      if (!u) opt_error(L, DF, "mirrors", lua_pushfstring(L, "URL strings expected, got %s at %d", luaL_typename(L, -1), (int)i));
      if (strlen(u) != len) opt_error(L, DF, "mirrors", "a URL contains a zero byte");
      url_check(L, "mirrors", u);
      r->need += len + 1;
      lua_rawseti(L, copy, (lua_Integer)i);
    }
    v->nmirrors = n;
    r->mirrors = copy;
    /* mirrors are there to be used: without `segments`, one range per URL */
    if (lua_isnil(L, OPT_AT(r, O_SEGMENTS))) v->segments = (long)n + 1 > 16 ? 16 : (long)n + 1;
  }
  int h = OPT_AT(r, O_HEADER);
  if (!lua_isnil(L, h)) {
    v->nheaders = header_lines(L, h, &r->need);
    r->lines = lua_gettop(L);
  }
}

/* Copies s (may be NULL) with its terminator to *at and moves *at past it. */
static char *put_string(char **at, const char *s, size_t n) {
  if (!s) return NULL;
  char *c = memcpy(*at, s, n + 1);
  *at += n + 1;
  return c;
}

/* Copies the n strings of the array at idx (checked strings: no allocation)
 * to out[] and *at. */
static void put_strings(lua_State *L, int idx, size_t n, const char **out, char **at) {
  for (size_t i = 0; i < n; i++) {
    lua_rawgeti(L, idx, (lua_Integer)i + 1);
    size_t len;
    const char *s = lua_tolstring(L, -1, &len);
    out[i] = put_string(at, s, len);
    lua_pop(L, 1);
  }
}

static char *put_option(lua_State *L, const optread *r, int i, char **at) {
  size_t n;
  const char *s = lua_tolstring(L, OPT_AT(r, i), &n); /* a string or nil: no allocation */
  return put_string(at, s, n);
}

/* The engine's options from what read_options left on the stack, in one
 * allocation (see dt_opts); NULL when out of memory. Calls nothing that can
 * raise or run Lua code: the task is anchored by then. */
dt_opts *copy_options(lua_State *L, const optread *r, dt_state *st) {
  dt_opts *o = malloc(sizeof *o + (r->v.nheaders + r->v.nmirrors) * sizeof(char *) + r->need);
  if (!o) return NULL;
  *o = r->v;
  o->progress_interval_ms = st->progress_interval;
  const char **hl = (const char **)(void *)(o + 1); /* sizeof *o keeps pointer alignment */
  const char **ml = hl + r->v.nheaders;
  char *at = (char *)(ml + r->v.nmirrors);
  put_strings(L, r->lines, r->v.nheaders, hl, &at);
  o->headers = r->v.nheaders ? hl : NULL;
  put_strings(L, r->mirrors, r->v.nmirrors, ml, &at);
  o->mirrors = r->v.nmirrors ? ml : NULL;
  o->url = put_option(L, r, O_URL, &at);
  o->file_path = put_option(L, r, O_FILE_PATH, &at);
  o->ca_file = put_option(L, r, O_CA_FILE, &at);
  o->proxy = put_option(L, r, O_PROXY, &at);
  o->etag = put_option(L, r, O_ETAG, &at);
  char *sha = put_option(L, r, O_SHA256, &at);
  for (char *p = sha; p && *p; p++)
    if (*p >= 'A' && *p <= 'F') *p = (char)(*p + 32);
  o->sha256 = sha;
  o->shared = dt_shared_ref(st->shared);
  return o;
}

