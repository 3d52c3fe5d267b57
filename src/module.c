/*
 * module.c: the module table and its functions (downloadFile, poll, run,
 * configure, fd, version) and the per-lua_State module state, which owns
 * the engine: the engine is created with the first download and freed with
 * the state, when the lua_State closes.
 */
#include "binding.h"
#include "options.h"
#include "platform.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/***
 * The mini-program `downloadFile` / `DownloadTask` API for Lua, on libcurl.
 *
 * `dt.downloadFile{...}` starts a download and returns a @{DownloadTask} at once; the transfer
 * runs on a native thread of the module's own. Callbacks and listeners run only inside
 * @{poll}, @{run} or @{DownloadTask:await}, on the thread that called them. Names follow the
 * mini-program API (`errMsg`, `statusCode`, ...); what this module adds is marked **(ext)**.
 *
 * **Events, in order, for one task:**
 *
 * 1. the @{DownloadTask:onHeadersReceived} listeners, once, for the final response
 *    (see @{headersEvent});
 * 2. the @{DownloadTask:onProgressUpdate} listeners (see @{progressEvent}), at most one event
 *    per `progressInterval` (@{configure}), never going down, the last one before `success`
 *    showing every byte;
 * 3. `success(res)` (a response was received, **whatever its status code**: see @{res}) or
 *    `fail(err)` (no usable response: see @{err} and @{errno});
 * 4. `complete` with the same table;
 * 5. the coroutines waiting in @{DownloadTask:await} are resumed, in the order they started
 *    waiting.
 *
 * Once `success` or `fail` has fired, nothing else fires for that task but `complete`.
 * An event goes to the listeners registered when its delivery began; a listener may abort
 * tasks, start downloads, add or remove listeners, call @{poll}, or `await` in a coroutine.
 * @{run}, and a blocking `await` outside a coroutine, raise an error while the loop is being
 * driven. An error raised by a listener, a callback or a resumed coroutine propagates out of
 * the `poll`/`run`/`await` call that ran it, with its traceback; the module stays usable and
 * the next call delivers what is left.
 *
 * Misuse (a wrong type, an unknown option) raises a Lua error at the call; network and file
 * problems are results: they reach `fail` and `await`'s `nil, err`.
 *
 * @module downloadtask
 * @usage
 * local dt = require "downloadtask"
 * local task = dt.downloadFile{
 *   url = "https://example.org/pack.zip",
 *   filePath = "cache/pack.zip",
 *   success = function(res) print(res.statusCode, res.filePath, res.dataLength) end,
 *   fail = function(err) print(err.errMsg, err.errno) end,
 * }
 * task:onProgressUpdate(function(p) io.write(("\r%3d%%"):format(p.progress)) end)
 * dt.run() -- or dt.poll() once a frame, or task:await() in a coroutine
 */

static const char STATE_KEY = 's';

static int state_gc(lua_State *L) {
  dt_state *st = lua_touserdata(L, 1);
  state_check_fork(L, st); /* a child closing: the parent's tasks stay the parent's */
  if (st->engine && engine_owned_here(st->engine)) engine_free(st->engine);
  st->engine = NULL;
  st->closed = 1;
  dt_shared_unref(st->shared);
  st->shared = NULL;
  return 0;
}

dt_state *state_get(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &STATE_KEY);
  dt_state *st = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (!st || st->closed) luaL_error(L, "downloadtask: the module is closed");
  return st;
}

/* Whether this is a fork()ed child that has not yet let go of the parent's
 * engine (a pid comparison: cheap enough for every delivery step). */
int state_forked(dt_state *st) {
  return !st->closed && st->engine && !engine_owned_here(st->engine);
}

/* A fork()ed child does not have the parent's engine thread: it leaves the
 * parent's engine alone, and the parent's tasks too (dispatch_orphan: never
 * delivered here, no longer live, their files untouched); it starts its own
 * engine with its next download. Every task holding an xfer is anchored, and
 * until now every xfer was the parent's engine's. Raises nothing and calls no
 * Lua, so it can run anywhere, a finalizer included. */
void state_check_fork(lua_State *L, dt_state *st) {
  if (!state_forked(st)) return;
  engine_forget(st->engine);
  st->engine = NULL;
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->anchors);
  lua_pushnil(L);
  while (lua_next(L, -2)) {
    dt_task *t = luaL_testudata(L, -1, DT_TASK_MT);
    if (t) dispatch_orphan(st, t);
    lua_pop(L, 1);
  }
  lua_pop(L, 1);
}

/* The engine, started on first use. */
dt_engine *state_engine(lua_State *L, dt_state *st) {
  state_check_fork(L, st);
  if (!st->engine) {
    const char *why = "unknown error";
    st->engine = engine_new(&why);
    if (!st->engine) luaL_error(L, "downloadtask: cannot start the engine: %s", why);
    engine_set_max_concurrent(st->engine, st->max_concurrent);
    if (st->max_per_host > 0) engine_set_max_per_host(st->engine, st->max_per_host);
    if (st->rate_limit > 0) engine_set_rate_limit(st->engine, st->rate_limit);
  }
  return st->engine;
}

static void state_new(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &STATE_KEY);
  dt_state *st = lua_touserdata(L, -1);
  lua_pop(L, 1);
  if (st && st->anchors != LUA_NOREF) return;
  if (!st) {
  st = compat_newuserdata(L, sizeof *st);
  memset(st, 0, sizeof *st);
  st->anchors = LUA_NOREF;
  st->max_concurrent = 10;
  st->progress_interval = 100;
  st->poll_budget_us = 500;
  lua_createtable(L, 0, 1);
  lua_pushcfunction(L, state_gc);
  lua_setfield(L, -2, "__gc");
  lua_setmetatable(L, -2);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &STATE_KEY);
  }
  if (!st->shared) st->shared = dt_shared_new("downloadtask/" DT_VERSION, plat_temp_dir());
  if (!st->shared) luaL_error(L, "not enough memory");
  lua_newtable(L);
  st->anchors = luaL_ref(L, LUA_REGISTRYINDEX);
}

/***
 * Delivers what is ready: headers and progress events, `success`/`fail`/`complete`, and
 * resumes the coroutines of finished @{DownloadTask:await}s. Call it once a frame in a game
 * loop, or when @{fd} is readable. Work that listeners create during the call (the `fail` of
 * a task they abort, say) is delivered by the next call, so `poll` always returns.
 * Allowed inside a listener. A signal arriving meanwhile does not lengthen the wait.
 * `poll(ms)` returns at the first news: headers, progress (a waiting thread is woken for
 * progress alone at most every 50 ms, or every `progressInterval` when that is shorter), an
 * end. A download's start calls no listener and does not end the wait; its `state` turns
 * `"running"` at any later `poll`.
 *
 * In a `fork()`ed child, the parent's tasks are the parent's: they do not count as live
 * there (`poll` and @{run} do not wait for them), nothing of them is delivered there (no
 * listener, callback or `await` wake-up), their `state` stays what it was at the fork,
 * `abort` on them is a no-op and `await` raises; their files are never removed or moved by
 * the child. Downloads the child starts run on an engine of its own.
 * @function poll
 * @tparam[opt=0] integer ms how long to wait for something to be ready (0: do not wait);
 * must not be negative
 * @treturn integer the number of tasks not yet ended
 * @raise an error raised by a listener, callback or resumed coroutine, with its traceback
 * @usage
 * while game_running do
 *   dt.poll()          -- deliver, do not wait
 *   draw_frame()
 * end
 */
/* dt.poll([ms]) -> number of tasks not yet ended */
static int l_poll(lua_State *L) {
  dt_state *st = state_get(L);
  lua_Integer ms = luaL_optinteger(L, 1, 0);
  luaL_argcheck(L, ms >= 0, 1, "must not be negative");
  if (ms > INT_MAX) ms = INT_MAX;
  if (dispatch_poll(L, st, (int)ms) != LUA_OK) return lua_error(L);
  lua_pushinteger(L, st->live);
  return 1;
}

/***
 * Delivers until no task is left: waits for events and runs the listeners and callbacks,
 * including those of tasks they start. Refused with an error when the loop is already being
 * driven (`run` inside `run`, or inside a listener): use @{poll} there. Paused tasks do not
 * hold it: when every task left is paused, or queued behind a paused task's destination,
 * nothing could resume them while it waits, so it returns (they stay as they are; `poll`
 * still counts them).
 * @function run
 * @raise an error raised by a listener or callback (the module stays usable), or the
 * "already being driven" error
 */
/* dt.run(): deliver until no task is left */
static int l_run(lua_State *L) {
  dt_state *st = state_get(L);
  if (st->in_run || st->depth > 0)
    return luaL_error(L, "downloadtask.run: the loop is already being driven (run inside run or "
                         "inside a listener); use poll() there");
  st->in_run = 1;
  for (;;) {
    if (dispatch_stuck(st)) break; /* also: no task is left */
    if (dispatch_poll(L, st, -1) != LUA_OK) {
      st->in_run = 0;
      return lua_error(L);
    }
  }
  st->in_run = 0;
  return 0;
}

/***
 * Sets module-wide settings. Every name is checked first: a bad call (an unknown name, a
 * wrong type or value) raises an error and changes nothing. `userAgent`, `tempDir` and
 * `progressInterval` apply to downloads created afterwards; `maxConcurrent` at once.
 * @function configure
 * @tparam table settings
 * @tparam[opt=10] integer settings.maxConcurrent downloads running at once (at least 1); the
 * rest wait in the queue (`task.state == "queued"`) and start in order
 * @tparam[opt=0] integer settings.maxPerHost **(ext)** connections to one host at most (0: no
 * cap); applies at once. Over HTTPS with HTTP/2, downloads to one host share one multiplexed
 * connection anyway (they wait for the connection being made rather than open their own)
 * @tparam[opt=100] integer settings.progressInterval ms between two progress events of one
 * task (at least 0)
 * @tparam[opt] string settings.userAgent the `User-Agent` header sent (no CR, LF or zero
 * byte); default `"downloadtask/<version>"`
 * @tparam[opt] string settings.tempDir where bodies without `filePath` (and non-2xx bodies)
 * go: the directory of `res.tempFilePath`, which must exist (else the call raises, naming the
 * path); default `$TMPDIR`, else `/tmp` (Windows: `GetTempPathW`)
 * @tparam[opt=500] integer settings.pollBudget **(ext)** microseconds `poll(0)` may spend
 * delivering: once they are spent, the tasks not reached yet are delivered by the next poll
 * (each task's events stay whole and in order; progress piling up meanwhile is coalesced).
 * 0: no limit. `poll(ms)` with ms > 0, `run` and `await` have no budget.
 * @tparam[opt=0] integer settings.rateLimit **(ext)** bytes per second for all downloads
 * together, shared evenly among the running ones (a task's own `rateLimit` still caps it);
 * 0: no limit. Applies at once.
 * @usage dt.configure{maxConcurrent = 4, progressInterval = 250}
 */
/* dt.configure{maxConcurrent, maxPerHost, progressInterval, userAgent, tempDir, pollBudget, rateLimit} */
static int l_configure(lua_State *L) {
  dt_state *st = state_get(L);
  dt_settings set; /* every setting is checked first, so a bad call changes nothing */
  read_settings(L, &set);
  int64_t maxc = set.max_concurrent, interval = set.progress_interval, budget = set.poll_budget,
          per_host = set.max_per_host, rate = set.rate_limit;
  const char *ua = set.user_agent, *tmp = set.temp_dir;
  if (ua || tmp) { /* a new copy: the tasks made so far keep the one they hold */
    dt_shared *s = dt_shared_new(ua ? ua : st->shared->user_agent, tmp ? tmp : st->shared->temp_dir);
    if (!s) return luaL_error(L, "not enough memory");
    dt_shared_unref(st->shared);
    st->shared = s;
  }
  /* (options.c has capped each at what its field holds) */
  if (budget >= 0) st->poll_budget_us = (long)budget;
  if (interval >= 0) st->progress_interval = (long)interval;
  if (per_host >= 0) {
    st->max_per_host = (long)per_host;
    if (st->engine && engine_owned_here(st->engine)) engine_set_max_per_host(st->engine, st->max_per_host);
  }
  if (rate >= 0) {
    st->rate_limit = (int64_t)rate;
    if (st->engine && engine_owned_here(st->engine)) engine_set_rate_limit(st->engine, st->rate_limit);
  }
  if (maxc > 0) {
    st->max_concurrent = (long)maxc;
    if (st->engine && engine_owned_here(st->engine))
      engine_set_max_concurrent(st->engine, st->max_concurrent);
  }
  return 0;
}

/***
 * **(ext)** A descriptor (the read end of a pipe) that becomes readable when something is
 * ready to deliver, for luv, cqueues, copas or epoll loops: wait on it, then call `poll(0)`,
 * which drains it. While news is left undelivered (`poll(0)` stopped at its `pollBudget`, or
 * a listener raised an error out of it), the descriptor stays readable.
 * Starts the engine if it is not running yet.
 * @function fd
 * @treturn integer the file descriptor
 * @usage
 * local watcher = uv.new_poll(dt.fd())
 * watcher:start("r", function()
 *   if dt.poll(0) == 0 then watcher:stop(); watcher:close() end
 * end)
 */
/* dt.fd() -> descriptor readable when poll(0) has something to deliver */
static int l_fd(lua_State *L) {
  dt_state *st = state_get(L);
  lua_pushinteger(L, engine_fd(state_engine(L, st)));
  return 1;
}

/* Lua 5.1 and LuaJIT unload a C library (dlclose) at lua_close before they
 * run the finalizers of the objects created before `require` loaded it; one
 * of those calling a task method would jump into unmapped code. The library
 * therefore keeps itself loaded: one more reference, never dropped
 * (platform.h). The engine thread is stopped by the state's __gc anyway. */
static void pin_library(void) { plat_pin_module(&STATE_KEY); }

/***
 * The module's version string, like `"0.1.0"`.
 * @field version
 */

DT_EXPORT int luaopen_downloadtask(lua_State *L);
DT_EXPORT int luaopen_downloadtask(lua_State *L) {
  static const luaL_Reg funcs[] = {{"downloadFile", task_new},
                                   {"poll", l_poll},
                                   {"run", l_run},
                                   {"configure", l_configure},
                                   {"fd", l_fd},
                                   {"tasks", task_tasks},
                                   {"abortAll", task_abort_all},
                                   {NULL, NULL}};
  pin_library();
  state_new(L);
  task_open(L);
  luaL_newlib(L, funcs);
  task_push_many(L);
  lua_setfield(L, -3, "awaitAny");
  lua_setfield(L, -2, "awaitAll");
  lua_pushliteral(L, DT_VERSION);
  lua_setfield(L, -2, "version");
  return 1;
}
