/*
 * options.c: downloadFile's options, read once and checked (every bad one raises, naming it),
 * then copied into the engine's dt_opts; with the HTTP date parser of ifModifiedSince. The
 * reference's table of the options is in task.c, beside downloadFile.
 */
#include "options.h"
#include "httpdate.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* Every name downloadFile accepts, in the order they are read; the ones from
 * FIRST_UNIMPLEMENTED on are in the contract but not built yet, and say so rather
 * than being ignored. The O_ names index this array. */
static const char *const OPTION_NAMES[] = {
    "url", "filePath", "header", "timeout", "success", "fail", "complete", "connectTimeout",
    "maxRedirects", "maxFileSize", "insecure", "caFile", "proxy", "stallTimeout", "sha256",
    "rateLimit", "etag", "ifModifiedSince", "resume", "retry", "durable", "priority",
    "createDirs", "segments", "mirrors", NULL};

#define FIRST_UNIMPLEMENTED O_COUNT

static int opt_error(lua_State *L, const char *name, const char *what) {
  return luaL_error(L, "downloadFile: bad option '%s' (%s)", name, what);
}

static int opt_type_error(lua_State *L, const char *name, const char *expected, int idx) {
  const char *msg = lua_pushfstring(L, "%s expected, got %s", expected, luaL_typename(L, idx));
  return opt_error(L, name, msg);
}



static const char *opt_string(lua_State *L, optread *r, int i, int required) {
  int idx = OPT_AT(r, i);
  const char *name = OPTION_NAMES[i];
  if (lua_isnil(L, idx)) {
    if (required) opt_error(L, name, "string expected, got nil");
    return NULL;
  }
  if (lua_type(L, idx) != LUA_TSTRING) opt_type_error(L, name, "string", idx);
  size_t len;
  const char *s = lua_tolstring(L, idx, &len);
  if (strlen(s) != len) opt_error(L, name, "string contains a zero byte");
  r->need += len + 1;
  return s;
}

/* 64 bits whatever the C long is (32 on Windows): sizes and rates beyond
 * 2 GiB, dates beyond 2038. */
static int64_t opt_int64(lua_State *L, optread *r, int i, int64_t def, long min) {
  int idx = OPT_AT(r, i);
  const char *name = OPTION_NAMES[i];
  if (lua_isnil(L, idx)) return def;
  int isint = 0;
  lua_Integer v = lua_type(L, idx) == LUA_TNUMBER ? compat_tointegerx(L, idx, &isint) : 0;
  if (!isint) opt_type_error(L, name, "integer", idx);
  if (v < min) opt_error(L, name, lua_pushfstring(L, "must be at least %d", (int)min));
  return (int64_t)v;
}

/* Counts and milliseconds, which libcurl takes as a long: clamped to its range. */
static long opt_int(lua_State *L, optread *r, int i, long def, long min) {
  int64_t v = opt_int64(L, r, i, def, min);
  return v > LONG_MAX ? LONG_MAX : (long)v;
}

static int opt_bool(lua_State *L, optread *r, int i) {
  int idx = OPT_AT(r, i);
  if (lua_isnil(L, idx)) return 0;
  if (lua_type(L, idx) != LUA_TBOOLEAN) opt_type_error(L, OPTION_NAMES[i], "boolean", idx);
  return lua_toboolean(L, idx);
}

static int64_t opt_if_modified_since(lua_State *L, optread *r) {
  int idx = OPT_AT(r, O_IF_MODIFIED_SINCE);
  const char *name = OPTION_NAMES[O_IF_MODIFIED_SINCE];
  if (lua_type(L, idx) == LUA_TSTRING) {
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    int64_t t = strlen(s) == len ? http_date(s, (int64_t)time(NULL)) : -1;
    if (t < 0)
      opt_error(L, name, lua_pushfstring(L, "not an HTTP date from 1970 on: '%s'", s));
    return t;
  }
  if (!lua_isnil(L, idx) && lua_type(L, idx) != LUA_TNUMBER)
    opt_type_error(L, name, "integer or HTTP date string", idx);
  return opt_int64(L, r, O_IF_MODIFIED_SINCE, -1, 0);
}

/* Whether s starts with the lower-case prefix p, in any case. */
static int has_prefix_ci(const char *s, const char *p) {
  for (; *p; s++, p++)
    if (*s != *p && !(*s >= 'A' && *s <= 'Z' && *s + 32 == *p)) return 0;
  return 1;
}

/* A URL of the request (`url`, a mirror; opt_string has refused a zero byte): http(s) only,
 * and no line break, which could add lines to the request. */
static void url_check(lua_State *L, const char *name, const char *u) {
  if (has_line_break(u, strlen(u)))
    opt_error(L, name, "a URL contains a line break");
  if (!has_prefix_ci(u, "http://") && !has_prefix_ci(u, "https://"))
    opt_error(L, name, lua_pushfstring(L, "http:// or https:// URL expected, got '%s'", u));
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
      opt_error(L, "header", lua_pushfstring(L, "names must be strings, got %s",
                                             luaL_typename(L, -2)));
    size_t klen, vlen;
    const char *k = lua_tolstring(L, -2, &klen);
    if (klen == 0) opt_error(L, "header", "empty header name");
    for (size_t i = 0; i < klen; i++)
      if (!is_token_char((unsigned char)k[i]))
        opt_error(L, "header", lua_pushfstring(L, "invalid header name '%s'", k));
    int t = lua_type(L, -1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER)
      opt_error(L, "header", lua_pushfstring(L, "value of '%s' must be a string, got %s", k,
                                             luaL_typename(L, -1)));
    lua_pushvalue(L, -1); /* convert a copy: lua_next needs the key untouched */
    const char *v = lua_tolstring(L, -1, &vlen);
    if (has_line_break(v, vlen))
      opt_error(L, "header", lua_pushfstring(L, "value of '%s' contains a line break or a zero byte", k));
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
  /* unknown names: a raw walk, which runs no metamethod */
  lua_pushnil(L);
  while (lua_next(L, 1)) {
    lua_pop(L, 1);
    const char *k = lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
    int i = 0;
    while (k && OPTION_NAMES[i] && strcmp(OPTION_NAMES[i], k) != 0) i++;
    if (!k || !OPTION_NAMES[i]) {
      lua_pushvalue(L, -1);
      luaL_error(L, "downloadFile: unknown option '%s'", k ? k : luaL_tolstring(L, -1, NULL));
    }
    if (i >= FIRST_UNIMPLEMENTED)
      luaL_error(L, "downloadFile: option '%s' is not implemented in this version", k);
  }
  luaL_checkstack(L, O_COUNT + 8, "downloadFile options");
  memset(r, 0, sizeof *r);
  r->base = lua_gettop(L) + 1;
  for (int i = 0; i < O_COUNT; i++) lua_getfield(L, 1, OPTION_NAMES[i]);

  dt_opts *v = &r->v;
  const char *url = opt_string(L, r, O_URL, 1);
  url_check(L, "url", url);
  const char *fp = opt_string(L, r, O_FILE_PATH, 0);
  if (fp && !*fp) opt_error(L, "filePath", "empty path");
  v->timeout_ms = opt_int(L, r, O_TIMEOUT, 60000, 0);
  static const int fns[] = {O_SUCCESS, O_FAIL, O_COMPLETE};
  for (int i = 0; i < 3; i++) {
    int idx = OPT_AT(r, fns[i]);
    if (!lua_isnil(L, idx) && lua_type(L, idx) != LUA_TFUNCTION)
      opt_type_error(L, OPTION_NAMES[fns[i]], "function", idx);
  }
  v->connect_timeout_ms = opt_int(L, r, O_CONNECT_TIMEOUT, 30000, 0);
  v->max_redirects = opt_int(L, r, O_MAX_REDIRECTS, 10, 0);
  v->max_file_size = opt_int64(L, r, O_MAX_FILE_SIZE, -1, 0);
  v->insecure = opt_bool(L, r, O_INSECURE);
  opt_string(L, r, O_CA_FILE, 0);
  const char *proxy = opt_string(L, r, O_PROXY, 0);
  if (proxy && has_line_break(proxy, strlen(proxy))) opt_error(L, "proxy", "contains a line break");
  v->stall_timeout_ms = opt_int(L, r, O_STALL_TIMEOUT, 0, 0);
  const char *sha = opt_string(L, r, O_SHA256, 0);
  if (sha && (strlen(sha) != 64 || strspn(sha, "0123456789abcdefABCDEF") != 64))
    opt_error(L, "sha256", "64 hexadecimal digits expected");
  v->rate_limit = opt_int64(L, r, O_RATE_LIMIT, 0, 0);
  const char *etag = opt_string(L, r, O_ETAG, 0);
  if (etag && has_line_break(etag, strlen(etag))) opt_error(L, "etag", "contains a line break");
  v->if_modified_since = opt_if_modified_since(L, r);
  v->resume = opt_bool(L, r, O_RESUME);
  if (v->resume && !fp) opt_error(L, "resume", "needs filePath");
  v->retry = opt_int(L, r, O_RETRY, 0, 0);
  v->durable = opt_bool(L, r, O_DURABLE);
  v->priority = opt_int(L, r, O_PRIORITY, 0, LONG_MIN);
  v->create_dirs = opt_bool(L, r, O_CREATE_DIRS);
  v->segments = opt_int(L, r, O_SEGMENTS, 1, 1);
  if (v->segments > 16) opt_error(L, "segments", "at most 16");
  int m = OPT_AT(r, O_MIRRORS);
  if (!lua_isnil(L, m)) {
    if (lua_type(L, m) != LUA_TTABLE) opt_type_error(L, "mirrors", "table", m);
    size_t n = (size_t)lua_rawlen(L, m);
    if (n > 16) opt_error(L, "mirrors", "at most 16 URLs");
    /* the checked strings go to a table of our own: copy_options reads that one, which no
     * finalizer running in between (any allocation may run one) can change */
    lua_createtable(L, (int)n, 0);
    int copy = lua_gettop(L);
    for (size_t i = 1; i <= n; i++) { /* raw: no metamethod runs */
      lua_rawgeti(L, m, (lua_Integer)i);
      size_t len;
      const char *u = lua_type(L, -1) == LUA_TSTRING ? lua_tolstring(L, -1, &len) : NULL;
      if (!u) opt_error(L, "mirrors", lua_pushfstring(L, "URL strings expected, got %s at %d", luaL_typename(L, -1), (int)i));
      if (strlen(u) != len) opt_error(L, "mirrors", "a URL contains a zero byte");
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
    if (lua_type(L, h) != LUA_TTABLE) opt_type_error(L, "header", "table", h);
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

