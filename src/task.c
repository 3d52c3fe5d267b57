/*
 * task.c: the DownloadTask userdata: downloadFile (its options are read and
 * checked by options.c), the task's methods (abort, on/off listeners, await)
 * and metamethods (__index for `state`, __tostring, __close, __gc).
 *
 * A task's Lua values (listeners, callbacks, waiting coroutines, its result)
 * live in its user value table; the task itself is anchored in the state's
 * anchor table from creation until it ends, so a running task nobody
 * references still delivers its callbacks.
 */
#include "binding.h"
#include "options.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/***
 * downloadFile, its options and results, and the DownloadTask methods.
 * @module downloadtask
 */

static const char *const STATE_NAMES[] = {"queued", "running", "done", "failed", "aborted", "paused"};

const char *task_state_name(int s) { return STATE_NAMES[s]; }

static dt_task *check_task(lua_State *L) { return luaL_checkudata(L, 1, DT_TASK_MT); }

/* ---- options ---------------------------------------------------------- */

/***
 * The options of @{downloadFile}. Each is read exactly once per call (an `__index` of the
 * options table runs at most once per name; unknown names are found by a raw walk). Bad
 * options raise a Lua error at the call that names the option, and such a call leaves
 * nothing behind (no task, no file): a wrong type (`downloadFile: bad option 'timeout' (integer expected, got string)`),
 * a missing `url`, an unknown name (`downloadFile: unknown option 'filepath'`), a negative
 * number, a header name that is not an HTTP token, CR, LF or a zero byte in a string that
 * becomes part of the request (`url`, `header` values, `proxy`, `mirrors`), a `url` or mirror
 * other than `http://` or `https://`. A well-formed call whose URL the URL parser refuses
 * returns a task that fails with errno 600009. Integer options take an integral number on
 * every Lua version (`2000.0` is accepted, `1.5` is not).
 * @table options
 * @tfield string url required; `http://` or `https://` only (also for every redirect; a
 * redirect from https to http is refused)
 * @tfield[opt] string filePath the destination (non-empty; its directory must exist, else
 * `fail` with 603300). The body goes to a temporary file beside it and replaces it only when
 * the download succeeds with a 2xx (and its checksum matches). Absent: the body goes to a
 * new private (0600) temporary file under `tempDir` (@{configure}), returned as
 * `res.tempFilePath`
 * @tfield[opt] table header request headers, name (an HTTP token) → string or number value
 * (no CR, LF or zero byte); an empty string sends the header with an empty value
 * @tfield[opt=60000] integer timeout ms, limit on the whole download, counted from when it
 * leaves the queue (each attempt, with `retry`); `0` = none. Fails with errno 5
 * @tfield[opt] function success `success(res)`: a response was received, whatever its
 * status code; see @{res}
 * @tfield[opt] function fail `fail(err)`: no usable response; see @{err}
 * @tfield[opt] function complete `complete(result)`: after `success` or `fail`, with the same
 * table
 * @tfield[opt=30000] integer connectTimeout **(ext)** ms, limit on connecting; `0` = none
 * @tfield[opt=10] integer maxRedirects **(ext)** redirects followed; `0` = none (a 3xx is then
 * the final response). More fail with errno 600008
 * @tfield[opt] integer maxFileSize **(ext)** bytes; fail with errno 603301 as soon as more
 * would be written. Default (absent): no limit. `0` is a limit too, not "off" as for the
 * timeouts and `rateLimit`: only an empty body passes (a zero-length limit means something;
 * a zero-length timeout would not). libcurl's `CURLOPT_MAXFILESIZE` (and curl's
 * `--max-filesize`) take 0 as off; the module checks every write itself, so here 0 keeps
 * its meaning
 * @tfield[opt=false] boolean insecure **(ext)** skip TLS peer and host verification
 * @tfield[opt] string caFile **(ext)** trust this CA bundle instead of the system's
 * @tfield[opt] string proxy **(ext)** proxy URL; without it libcurl's usual `http_proxy`,
 * `https_proxy` and `no_proxy` variables apply
 * @tfield[opt=0] integer stallTimeout **(ext)** ms; fail with errno 5 when no body byte arrives
 * for this long (waiting for the response counts, pauses made by `rateLimit` do not);
 * `0` = off
 * @tfield[opt] string sha256 **(ext)** 64 hexadecimal digits (either case): the body is hashed
 * while written; for a 2xx response a mismatch fails with errno 603304 and leaves the
 * destination untouched. `res.sha256` holds the digest of the bytes written, for any status
 * with a body; for a `304`, the digest of the `filePath` file as it stands (without one, of
 * the empty body)
 * @tfield[opt=0] integer rateLimit **(ext)** bytes/s, cap this download's speed; `0` = off
 * @tfield[opt] string etag **(ext)** sent as `If-None-Match` (no line breaks). A `304` is a
 * `success` with `statusCode = 304`, no `filePath`, no `tempFilePath`, the destination
 * untouched
 * @tfield[opt] integer|string ifModifiedSince **(ext)** epoch seconds, or an HTTP date as
 * found in a `last-modified` header (`"Sun, 06 Nov 1994 08:49:37 GMT"`; the obsolete
 * `"Sunday, 06-Nov-94 08:49:37 GMT"` and `"Sun Nov  6 08:49:37 1994"` too), sent as
 * `If-Modified-Since`; a string that is not such a date (from 1970 on) raises an error at
 * the call. A `304` as for `etag`. A server that ignores the condition and answers `200`
 * with a `Last-Modified` not later than the date is reported as `304` too, with nothing
 * written (libcurl's time condition; `curl -z` does the same)
 * @tfield[opt=false] boolean resume **(ext)** needs `filePath`: the body goes to a part file
 * beside it, `.dt.<hash of the name>.part` (its record to `.dt.<hash>.info`), kept when the
 * download fails or is aborted, and continued with `Range`/`If-Range` by the next download of
 * the same `filePath` with `resume = true` (or the next `retry` attempt) when the answer is
 * of the same version and length (docs/resume.md)
 * @tfield[opt=0] integer retry **(ext)** retries of transient failures (could not connect,
 * connection reset or cut short, timeouts, statuses 408, 429 and 5xx), with exponential
 * backoff (250 ms doubling up to 30 s, ±20 % jitter) that a `Retry-After` (up to 300 s)
 * replaces. When attempts run out on a status, that response is delivered to `success`;
 * on a network error, `fail` gets the last error
 * @tfield[opt=false] boolean durable **(ext)** `fsync` the file before the rename and the
 * directory after it, so that the destination holds the old or the new file also after a
 * power loss
 * @tfield[opt=0] integer priority **(ext)** the queue (`maxConcurrent`, @{configure}) starts
 * higher priorities first (negative ones after the default 0); equal priorities in call
 * order. A `retry` waiting for its next attempt goes before the others of its priority. A
 * download whose `filePath` another one is writing is passed by the ones after it
 * @tfield[opt=false] boolean createDirs **(ext)** create the missing parent directories of
 * `filePath` (`mkdir -p`, mode 0777 minus the umask) when the download leaves the queue; a
 * directory that cannot be made (a file in the way, no permission) fails the download with
 * 603300 or 603303 naming it. When nothing is saved (a failure, a non-2xx answer, an abort),
 * the directories it made are removed again, deepest first, each only while empty (another
 * download may have put its file there; a `resume` part keeps them)
 * @tfield[opt] integer segments **(ext)** 1 to 16: a body of at least 2 MiB with a strong
 * validator whose server honours ranges (`Accept-Ranges: bytes`, or a 206) is fetched over
 * up to this many connections at once, each writing its own range (at least 1 MiB) of the
 * temporary file; a range that fails is fetched again on its own. `res.segments` says how
 * many were used. Default: 1 without `mirrors`, one range per URL with them; `segments = 1`
 * given with `mirrors` fetches from `url` alone
 * @tfield[opt] {string,...} mirrors **(ext)** up to 16 other http(s) URLs of the same file:
 * the ranges of `segments` are spread over `url` and these (without `segments`, one range
 * each). A mirror that fails, or answers a range with another size or validator, is dropped
 * and its ranges are fetched from the URLs that are left
 */

/***
 * Starts a download and returns at once; it waits in the queue while `maxConcurrent`
 * (@{configure}) downloads run. The work happens off the Lua thread; callbacks and listeners
 * run only inside @{poll}, @{run} or @{DownloadTask:await}. A task nobody references keeps
 * running until it ends and its callbacks fire.
 * @function downloadFile
 * @tparam options options see @{options}
 * @treturn DownloadTask the task, in state `"queued"`
 * @raise on a bad option (wrong type, missing `url`, unknown name), naming the option
 * @usage
 * local task = dt.downloadFile{
 *   url = "http://127.0.0.1:8080/pack.zip", filePath = "cache/pack.zip",
 *   timeout = 30000, retry = 3,
 *   success = function(res) print(res.statusCode, res.dataLength) end,
 *   fail = function(err) print(err.errno, err.errMsg) end,
 *   complete = function(r) print("done:", r.errMsg) end,
 * }
 */
/* dt.downloadFile(options) -> DownloadTask */

/* Everything that can raise comes first (reading the options, starting the
 * engine, making the userdata and its tables, the anchor); a call that raises
 * leaves no task behind: nothing anchored, nothing live, nothing submitted. */
int task_new(lua_State *L) {
  optread r;
  read_options(L, &r);
  dt_state *st = state_get(L);
  dt_engine *e = state_engine(L, st);

  /* the userdata first, harmless until it has an xfer */
  dt_task *t = compat_newuserdata(L, sizeof *t);
  memset(t, 0, sizeof *t);
  t->anchor = LUA_NOREF;
  t->st = st;
  t->total = -1;
  luaL_setmetatable(L, DT_TASK_MT);
  int ti = lua_gettop(L);

  lua_createtable(L, UV_CREATED, 0);
  static const struct { int opt; int slot; } cbs[] = {
      {O_SUCCESS, UV_SUCCESS}, {O_FAIL, UV_FAIL}, {O_COMPLETE, UV_COMPLETE}, {O_URL, UV_URL}};
  for (size_t i = 0; i < sizeof cbs / sizeof cbs[0]; i++) {
    lua_pushvalue(L, OPT_AT(&r, cbs[i].opt)); /* as read: not fetched again */
    lua_rawseti(L, -2, cbs[i].slot);
  }
  compat_setuservalue(L, ti);

  lua_rawgeti(L, LUA_REGISTRYINDEX, st->anchors);
  lua_pushvalue(L, ti);
  t->anchor = luaL_ref(L, -2);
  lua_pop(L, 1);

  /* from here on nothing may raise before the task is whole, but the
   * out-of-memory error below, which first takes the anchor back */
  dt_opts *o = copy_options(L, &r, st);
  t->x = o ? engine_submit(e, o, t) : NULL;
  if (!t->x) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, st->anchors);
    luaL_unref(L, -1, t->anchor);
    t->anchor = LUA_NOREF;
    t->ended = 1;
    return luaL_error(L, "downloadFile: not enough memory");
  }
  st->live++;
  t->listed = 1;
  t->list_prev = st->list_tail;
  if (st->list_tail) st->list_tail->list_next = t;
  else st->list_head = t;
  st->list_tail = t;
  st->listed++;
  lua_settop(L, ti);
  ngx_kick(L, st);
  return 1;
}

/***
 * The table given to `success(res)` (and then to `complete`), and returned by
 * @{DownloadTask:await}: a response was received, **whatever its status code**.
 * @table res
 * @tfield integer statusCode HTTP status of the final response (after redirects)
 * @tfield[opt] string filePath the destination, when `filePath` was given and the status is
 * 2xx (not for a 304), or a 416 that found a `resume` part file complete
 * @tfield[opt] string tempFilePath the file holding the body, when no `filePath` was given or
 * the status is not 2xx (a non-2xx body never replaces the destination); not for a 304. The
 * file is the caller's: remove it when done
 * @tfield table header response headers of the final response; names in lower case,
 * repeated headers joined with `", "`
 * @tfield[opt] table cookies **(ext)** the final response's `Set-Cookie` values, in order,
 * as an array (absent when there are none); `header["set-cookie"]` holds them joined
 * @tfield integer dataLength bytes written
 * @tfield table profile timings and connection facts: see @{profile}
 * @tfield[opt] string sha256 **(ext)** hex digest (lower case) of the body, when the `sha256`
 * option was given; for a `304`, of the `filePath` file as it stands (without one, of the
 * empty body)
 * @tfield integer attempts **(ext)** requests made by `retry` (1 without it; the request
 * `resume()` starts and a segmented download's fall-back to one connection are not counted)
 * @tfield integer segments **(ext)** connections the body came over: 1 unless `segments`
 * (or `mirrors`) split it into ranges
 * @tfield string errMsg `"downloadFile:ok"`
 */

/***
 * The table given to `fail(err)` (and then to `complete`), and returned by
 * @{DownloadTask:await} after `nil`: no usable response was received.
 * @table err
 * @tfield string errMsg `"downloadFile:fail <reason>"`; exactly `"downloadFile:fail abort"`
 * after @{DownloadTask:abort}
 * @tfield integer errno the kind of failure: see @{errno}
 * @tfield integer attempts **(ext)** requests made (1 without `retry`; after
 * @{DownloadTask:abort}, those started, 0 when it had not started)
 */

/***
 * The values of `err.errno` (@{err}), with the reasons of `errMsg`.
 * @table errno
 * @field 600000 any other network error (libcurl's message, e.g. `transfer closed with 10
 * bytes remaining to read`)
 * @field 600001 `could not resolve host`, `connection refused`, `connection reset`,
 * `could not connect: ...`, `TLS error: ...`
 * @field 600003 `abort`
 * @field 5 `timeout (<option>: <ms> ms)`, naming the limit that fired: `timeout` (the whole
 * download), `connectTimeout` or `stallTimeout`, e.g. `timeout (stallTimeout: 10000 ms)`
 * @field 600008 `too many redirects`
 * @field 600009 `invalid url`, `unsupported protocol` (also a redirect to another scheme),
 * `redirect from https to http refused`
 * @field 603300 `save file error: <reason>` (`directory does not exist`, `destination is a
 * directory`, `No space left on device`, ...)
 * @field 603301 `exceed max file size`
 * @field 603303 `permission denied`
 * @field 603304 **(ext)** `checksum mismatch: expected <sha256 option>, got <digest of the body>`
 */

/***
 * `res.profile` (@{res}): timings, in ms since the epoch (0 where it did not happen), and
 * connection facts, named as in the mini-program profile.
 * @table profile
 * @tfield number fetchStart
 * @tfield number domainLookUpStart
 * @tfield number domainLookUpEnd
 * @tfield number connectStart
 * @tfield number connectEnd
 * @tfield number SSLconnectionStart
 * @tfield number SSLconnectionEnd
 * @tfield number requestStart
 * @tfield number requestEnd
 * @tfield number responseStart
 * @tfield number responseEnd
 * @tfield number redirectStart
 * @tfield number redirectEnd
 * @tfield string peerIP the server's address
 * @tfield integer port the server's port
 * @tfield string protocol `"http1.0"`, `"http1.1"`, `"h2"` or `"h3"`
 * @tfield boolean socketReused a connection was reused
 * @tfield integer sendBytesCount bytes sent
 * @tfield integer receivedBytedCount bytes received (sic, as in the mini-program API)
 * @tfield number throughputKbps
 */

/***
 * The table given to @{DownloadTask:onProgressUpdate} listeners.
 * Values never go down; at most one event per `progressInterval` (@{configure}), with the
 * latest values; an event with the same values as the previous one is not repeated. The last
 * event before `success` shows every byte.
 * @table progressEvent
 * @tfield integer progress percentage, 0–100 (0 while the size is unknown)
 * @tfield integer totalBytesWritten bytes in the file so far (with `resume`, counting those
 * already in the part file); a body of 1 MiB or more is written in 256 KiB pieces
 * @tfield integer totalBytesExpectedToWrite the expected size, -1 while unknown; a download
 * of unknown size ends with an event where it equals `totalBytesWritten` and `progress` is 100
 */

/***
 * The table given to @{DownloadTask:onHeadersReceived} listeners, once, for the final
 * response, before any progress event.
 * @table headersEvent
 * @tfield table header response headers; names in lower case, repeated headers joined with
 * `", "`
 * @tfield integer statusCode HTTP status
 */

/* ---- ending ----------------------------------------------------------- */

/* Lets go of everything the task holds but its Lua values; idempotent. In a
 * fork()ed child, the parent's tasks are orphaned first (a finalizer may be
 * the first thing the child runs of this module): their results and files
 * are the parent's, to be freed, never removed. */
void task_unlist(dt_task *t) {
  if (!t->listed) return;
  dt_state *st = t->st;
  if (t->list_prev) t->list_prev->list_next = t->list_next;
  else st->list_head = t->list_next;
  if (t->list_next) t->list_next->list_prev = t->list_prev;
  else st->list_tail = t->list_prev;
  t->list_prev = t->list_next = NULL;
  t->listed = 0;
  st->listed--;
}

void task_release(lua_State *L, dt_task *t) {
  state_check_fork(L, t->st);
  if (t->in_fifo) dispatch_remove(t->st, t);
  task_unlist(t);
  if (t->anchor != LUA_NOREF && !t->st->closed) {
    lua_rawgeti(L, LUA_REGISTRYINDEX, t->st->anchors);
    luaL_unref(L, -1, t->anchor);
    lua_pop(L, 1);
    if (!t->orphan) t->st->live--; /* an orphan stopped counting already */
  }
  t->anchor = LUA_NOREF;
  if (t->x) {
    dt_engine *e = t->st->closed ? NULL : t->st->engine;
    if (e && !engine_owned_here(e)) e = NULL;
    if (e && !t->ended) engine_abort(e, t->x);
    engine_release(e, t->x);
    t->x = NULL;
  }
  free(t->headers);
  t->headers = NULL;
  dt_result_discard(t->result);
  t->result = NULL;
}

/* ---- methods ---------------------------------------------------------- */

/***
 * A download, returned by @{downloadFile}. Its methods live in the metatable
 * `"downloadtask.DownloadTask"`, which also has `__tostring`, `__close` (Lua 5.4's `<close>`)
 * and `__gc` (the finalizer: a task is anchored until it ends, so it is only collected
 * after that). Listeners may be added and removed at any time, also from inside a
 * listener (taking effect from the next event); adding the same function twice calls it
 * twice.
 * @type DownloadTask
 */

/***
 * Stops the download: `fail` fires once with `"downloadFile:fail abort"` (errno 600003) at
 * the next `poll`/`run`/`await`, then `complete`, then nothing. `task.state` becomes
 * `"aborted"` at once. A no-op once `success`/`fail` has been delivered, and when called
 * twice. Inside a headers or progress listener, the remaining listeners of that event are
 * skipped. The destination is left as it was, even when the transfer had finished but
 * `success` was not yet delivered. In a `fork()`ed child, a no-op on the parent's tasks
 * (see @{poll}).
 * @function abort
 */
int task_abort(lua_State *L, dt_task *t) {
  state_check_fork(L, t->st);
  if (t->result_delivered || t->state == TS_ABORTED || t->orphan) return 0;
  task_unlist(t);
  if (t->state == TS_PAUSED) t->st->paused--;
  t->state = TS_ABORTED;
  t->inbox = 0;
  dt_result_discard(t->result); /* a finished body that will never be delivered */
  t->result = NULL;
  dt_engine *e = t->st->engine;
  if (t->x && !t->orphan && e && engine_owned_here(e)) {
    engine_abort(e, t->x); /* "abort" is delivered once the engine says it is done */
  } else {
    t->abort_acked = 1;
    dispatch_push(t->st, t);
  }
  if (!t->busy) t->stage = SG_IDLE; /* a busy task notices after its listener returns */
  return 1;
}

static int l_abort(lua_State *L) {
  task_abort(L, check_task(L));
  return 0;
}

/* pause()/resume() may reach the engine: not on an orphan or a released task */
static dt_engine *control_engine(dt_task *t) {
  dt_engine *e = t->st->engine;
  return t->x && !t->orphan && e && engine_owned_here(e) ? e : NULL;
}

/***
 * **(ext)** Pauses the download: a running transfer stops and its connection is freed, keeping
 * the bytes received so far; a queued task keeps its place in the queue but the others pass
 * it; a retry's backoff wait stops. `task.state` becomes `"paused"` at once; no event fires
 * until @{DownloadTask:resume} (headers that had arrived but were not delivered yet come
 * after it, and so does an event for the listeners after the one that called `pause`), and
 * the `timeout` and `stallTimeout` clocks stop. A no-op on a paused task and on one that
 * has ended (or whose transfer has finished and only waits for delivery; when
 * that is learnt only after the call, the task turns back to `"running"` and its end is
 * delivered as usual).
 * @function pause
 */
static int l_pause(lua_State *L) {
  dt_task *t = check_task(L);
  state_check_fork(L, t->st);
  if (t->state != TS_QUEUED && t->state != TS_RUNNING) return 0;
  if (t->result_delivered || t->result) return 0; /* ended, or about to be delivered as such */
  dt_engine *e = control_engine(t);
  if (!e) return 0;
  t->state = TS_PAUSED;
  t->st->paused++;
  if (t->inbox & DT_EV_HEADERS) t->headers_owed = 1; /* delivered after resume() */
  t->inbox &= (unsigned char)~(DT_EV_PROGRESS | DT_EV_HEADERS); /* nothing fires while paused */
  engine_pause(e, t->x, 1);
  return 0;
}

/***
 * **(ext)** Resumes a paused download: a transfer that was running continues with a range
 * request (`Range` and `If-Range` with the `ETag` or `Last-Modified` it received), or starts
 * over when the server cannot continue it (no validator, a `200` instead of a `206`, a `206`
 * that does not continue the bytes kept). A queued task goes back to its place; a retry's
 * backoff wait goes on. `task.state` becomes `"running"` (`"queued"` when it never started).
 * A no-op on a task that is not paused.
 * @function resume
 */
static int l_resume(lua_State *L) {
  dt_task *t = check_task(L);
  state_check_fork(L, t->st);
  if (t->state != TS_PAUSED || t->orphan) return 0; /* a parent's task: its state stays */
  dt_engine *e = control_engine(t);
  t->st->paused--;
  t->state = t->attempts > 0 ? TS_RUNNING : TS_QUEUED; /* a later "started" makes it running */
  /* an event pause() stopped midway (from one of its listeners): the others get
   * it; so does anything left in the inbox (none is, as pause() clears it) */
  int held = t->stage == SG_HEADERS || t->stage == SG_PROGRESS || t->inbox;
  if (t->headers_owed) { /* held back by the pause: the next poll delivers it */
    t->headers_owed = 0;
    t->inbox |= DT_EV_HEADERS;
    held = 1;
  }
  if (held) {
    dispatch_push(t->st, t);
    /* the descriptor must show it (an fd loop, OpenResty's poller): the engine
     * has nothing new to say until the resumed request is answered. Inside
     * poll, the dispatcher delivers it or re-arms when it stops. */
    if (e && t->st->depth == 0) engine_rearm(e);
  }
  if (e) engine_pause(e, t->x, 0);
  return 0;
}

/* Listener arrays are replaced, never changed in place, so the dispatcher
 * can walk the array it started with while listeners add and remove. */
static int listeners_on(lua_State *L, int slot) {
  check_task(L);
  luaL_checktype(L, 2, LUA_TFUNCTION);
  compat_getuservalue(L, 1);
  lua_rawgeti(L, -1, slot);
  lua_Integer n = lua_istable(L, -1) ? (lua_Integer)lua_rawlen(L, -1) : 0;
  lua_createtable(L, (int)n + 1, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    lua_rawseti(L, -2, i);
  }
  lua_pushvalue(L, 2);
  lua_rawseti(L, -2, n + 1);
  lua_rawseti(L, -3, slot);
  return 0;
}

static int listeners_off(lua_State *L, int slot) {
  check_task(L);
  int all = lua_isnoneornil(L, 2);
  if (!all) luaL_checktype(L, 2, LUA_TFUNCTION);
  compat_getuservalue(L, 1);
  if (all) {
    lua_pushnil(L);
    lua_rawseti(L, -2, slot);
    return 0;
  }
  lua_rawgeti(L, -1, slot);
  if (!lua_istable(L, -1)) return 0;
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1), k = 0;
  lua_createtable(L, (int)n, 0);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    if (lua_rawequal(L, -1, 2)) lua_pop(L, 1);
    else lua_rawseti(L, -2, ++k);
  }
  lua_rawseti(L, -3, slot);
  return 0;
}

/***
 * Adds a progress listener.
 * @function onProgressUpdate
 * @tparam function listener called as `listener(p)` with a @{progressEvent}
 * `{progress, totalBytesWritten, totalBytesExpectedToWrite}`
 * @usage task:onProgressUpdate(function(p)
 *   io.write(("\r%3d%% %d/%d"):format(p.progress, p.totalBytesWritten, p.totalBytesExpectedToWrite))
 * end)
 */

/***
 * Removes a progress listener: every registration of `listener`, or all listeners.
 * @function offProgressUpdate
 * @tparam[opt] function listener the listener to remove; absent: remove them all
 */

/***
 * Adds a listener for the headers of the final response (once, before any progress event).
 * With `retry`, responses that are retried are not reported.
 * @function onHeadersReceived
 * @tparam function listener called as `listener(h)` with a @{headersEvent} `{header, statusCode}`
 */

/***
 * Removes a headers listener: every registration of `listener`, or all listeners.
 * @function offHeadersReceived
 * @tparam[opt] function listener the listener to remove; absent: remove them all
 */

static int l_on_progress(lua_State *L) { return listeners_on(L, UV_PROGRESS); }
static int l_off_progress(lua_State *L) { return listeners_off(L, UV_PROGRESS); }
static int l_on_headers(lua_State *L) { return listeners_on(L, UV_HEADERS); }
static int l_off_headers(lua_State *L) { return listeners_off(L, UV_HEADERS); }

/***
 * **(ext)** Waits until every task of the array has ended, as @{DownloadTask:await} waits
 * (in a coroutine: yields; outside one: drives the loop, refused with an error while the
 * loop is being driven unless every task has ended already; in OpenResty: waits on a
 * semaphore). An empty array, or one whose tasks have all ended, returns at once.
 * @function awaitAll
 * @tparam {DownloadTask,...} tasks
 * @treturn {table,...} for each task, in the same order, the table its `complete` received:
 * its @{res} or its @{err}
 * @raise when `tasks` is not an array of tasks, or when blocking is refused
 * @usage
 * local results = dt.awaitAll{a, b, c}
 * for i, r in ipairs(results) do print(i, r.errMsg) end
 */

/***
 * **(ext)** Waits until one task of the array has ended, as @{DownloadTask:await} waits
 * (in a coroutine: yields; outside one: drives the loop, refused with an error while the
 * loop is being driven unless one has ended already; in OpenResty: waits on a semaphore).
 * When several have ended, the first of the array is returned. An aborted task counts once
 * its `fail` has been delivered.
 * @function awaitAny
 * @tparam {DownloadTask,...} tasks not empty
 * @treturn[1] DownloadTask the task that ended
 * @treturn[1] table its @{res} when `success` was delivered
 * @treturn[2] DownloadTask the task that ended
 * @treturn[2] nil
 * @treturn[2] table its @{err} when `fail` was delivered
 * @raise when `tasks` is empty or not an array of tasks, or when blocking is refused
 * @usage
 * local pending = {a, b, c}
 * while #pending > 0 do
 *   local t, res, err = dt.awaitAny(pending)
 *   for i = #pending, 1, -1 do if pending[i] == t then table.remove(pending, i) end end
 * end
 */

/***
 * **(ext)** Waits for the task to end. In a coroutine: yields until the task has ended (the
 * dispatcher resumes it after `complete`; a resume by anyone else just waits again). Outside
 * a coroutine: drives the loop (as @{poll}) until the task ends; refused with an error while
 * the loop is being driven (inside a listener or @{run}). In an OpenResty request or timer
 * it waits on an `ngx.semaphore` instead of blocking the worker. In a `fork()`ed child,
 * awaiting a task of the parent's raises an error (it ends in the parent only).
 * @function await
 * @treturn[1] table @{res} when `success` was delivered
 * @treturn[2] nil
 * @treturn[2] table @{err} when `fail` was delivered (also after @{DownloadTask:abort})
 * @usage
 * coroutine.wrap(function()
 *   local res, err = dt.downloadFile{url = url, filePath = "a.bin"}:await()
 *   if res then print(res.statusCode) else print(err.errMsg) end
 * end)()
 * dt.run()
 */

/* ---- metamethods ------------------------------------------------------ */

/***
 * **(ext)** What Lua has seen of the task (read-only): `"queued"` while it waits for a slot
 * under `maxConcurrent`, `"running"` once it has one, `"done"` when `success` has been
 * delivered (any status code), `"failed"` when `fail` has been delivered, `"aborted"` after
 * @{DownloadTask:abort} (at once), `"paused"` after @{DownloadTask:pause} (at once, until
 * @{DownloadTask:resume}). It changes inside `poll`, except `aborted`, `paused` and a resume.
 * @tfield string state
 */

static int l_index(lua_State *L) {
  dt_task *t = check_task(L);
  /* not lua_tostring alone: it would turn a number key into a string in place */
  const char *k = lua_type(L, 2) == LUA_TSTRING ? lua_tostring(L, 2) : NULL;
  if (k && strcmp(k, "state") == 0) {
    lua_pushstring(L, STATE_NAMES[t->state]);
    return 1;
  }
  lua_pushvalue(L, 2);
  if (compat_rawget(L, lua_upvalueindex(1)) != LUA_TNIL) return 1;
  compat_getuservalue(L, 1);
  if (compat_rawgeti(L, -1, UV_FIELDS) != LUA_TTABLE) {
    lua_pushnil(L);
    return 1;
  }
  lua_pushvalue(L, 2);
  lua_rawget(L, -2);
  return 1;
}

/***
 * **(ext)** `task.key = value`: a task carries fields of the user's own, of any key but
 * `state` and the names of its methods (`task.name = "level2"`; reading a key never set
 * gives `nil`). They stay after the task has ended, so a task from @{tasks} or
 * @{awaitAny} says what it was for. Assigning `state` or the name of a method raises an
 * error.
 * @function __newindex
 * @usage
 * local task = dt.downloadFile{url = url, filePath = "level2.pak"}
 * task.level = 2
 * local t, res = dt.awaitAny(dt.tasks())
 * print(t.level, t.state)
 */
/* A table of its own holds them: the user value's slots are the module's. */
static int l_newindex(lua_State *L) {
  check_task(L);
  lua_settop(L, 3);
  if (lua_type(L, 2) == LUA_TSTRING) {
    const char *k = lua_tostring(L, 2);
    if (strcmp(k, "state") == 0)
      return luaL_error(L, "DownloadTask: 'state' is read-only");
    lua_pushvalue(L, 2);
    if (compat_rawget(L, lua_upvalueindex(1)) != LUA_TNIL)
      return luaL_error(L, "DownloadTask: '%s' is a method and cannot be assigned", k);
    lua_pop(L, 1);
  }
  compat_getuservalue(L, 1);
  if (compat_rawgeti(L, -1, UV_FIELDS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, UV_FIELDS);
  }
  lua_pushvalue(L, 2);
  lua_pushvalue(L, 3);
  lua_rawset(L, -3); /* a nil or NaN key raises as for a table */
  return 0;
}

/***
 * `tostring(task)` names the state and URL: `"DownloadTask (running): http://..."`.
 * @function __tostring
 * @treturn string
 */
static int l_tostring(lua_State *L) {
  dt_task *t = check_task(L);
  compat_getuservalue(L, 1);
  lua_rawgeti(L, -1, UV_URL);
  lua_pushfstring(L, "DownloadTask (%s): %s", STATE_NAMES[t->state], lua_tostring(L, -1));
  return 1;
}

/***
 * Lua 5.4's `local t <close> = dt.downloadFile{...}`: aborts the task when the scope is left,
 * unless it has ended (as @{DownloadTask:abort}).
 * @function __close
 */
static int l_close(lua_State *L) {
  dt_task *t = check_task(L);
  if (!t->result_delivered && t->state != TS_ABORTED) {
    lua_pushcfunction(L, l_abort);
    lua_pushvalue(L, 1);
    lua_call(L, 1, 0);
  }
  return 0;
}

static int l_gc(lua_State *L) {
  dt_task *t = luaL_checkudata(L, 1, DT_TASK_MT);
  task_release(L, t);
  return 0;
}

void task_open(lua_State *L) {
  static const luaL_Reg methods[] = {{"abort", l_abort},
                                     {"pause", l_pause},
                                     {"resume", l_resume},
                                     {"onProgressUpdate", l_on_progress},
                                     {"offProgressUpdate", l_off_progress},
                                     {"onHeadersReceived", l_on_headers},
                                     {"offHeadersReceived", l_off_headers},
                                     {NULL, NULL}};
  static const luaL_Reg meta[] = {
      {"__tostring", l_tostring}, {"__close", l_close}, {"__gc", l_gc}, {NULL, NULL}};
  luaL_newmetatable(L, DT_TASK_MT);
  lua_getfield(L, -1, "__index");
  int done = !lua_isnil(L, -1);
  lua_pop(L, 1);
  if (done) {
    lua_pop(L, 1);
    return;
  }
  luaL_setfuncs(L, meta, 0);
  luaL_newlib(L, methods);
  push_await(L);
  lua_setfield(L, -2, "await");
  lua_pushvalue(L, -1);
  lua_pushcclosure(L, l_index, 1);
  lua_setfield(L, -3, "__index");
  lua_pushcclosure(L, l_newindex, 1);
  lua_setfield(L, -2, "__newindex");
  lua_pop(L, 1);
}

/* ---- the task list ----------------------------------------------------- */

/***
 * **(ext)** The tasks not yet ended: those whose `state` is `"queued"`, `"running"` or `"paused"`, in
 * the order they were created. A task leaves the list when its `success` or `fail` is
 * delivered, or when it is aborted (at once). A new table at each call; building it costs
 * one step per task listed.
 * @function tasks
 * @treturn {DownloadTask,...}
 * @usage for _, t in ipairs(dt.tasks()) do print(t.name, t.state) end
 */
int task_tasks(lua_State *L) {
  dt_state *st = state_get(L);
  state_check_fork(L, st);
  lua_createtable(L, st->listed > INT_MAX ? INT_MAX : (int)st->listed, 0);
  int arr = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->anchors);
  lua_Integer i = 0;
  for (dt_task *t = st->list_head; t; t = t->list_next) {
    lua_rawgeti(L, -1, t->anchor); /* a listed task is anchored */
    lua_rawseti(L, arr, ++i);
  }
  lua_settop(L, arr);
  return 1;
}

/***
 * **(ext)** Aborts every task of @{tasks}, as @{DownloadTask:abort} (their `fail` with errno
 * 600003 comes at the next `poll`/`run`/`await`). Allowed inside a listener.
 * @function abortAll
 * @treturn integer how many tasks were aborted
 * @usage dt.abortAll() -- leaving the scene
 */
int task_abort_all(lua_State *L) {
  dt_state *st = state_get(L);
  state_check_fork(L, st);
  lua_Integer n = 0;
  for (dt_task *t = st->list_head, *next; t; t = next) {
    next = t->list_next;
    n += task_abort(L, t);
  }
  lua_pushinteger(L, n);
  return 1;
}
