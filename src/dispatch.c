/*
 * dispatch.c: turns what the engine published into calls of Lua functions.
 * The only place that calls Lua, always on the lua_State passed to the
 * poll/run/await that is running.
 *
 * Tasks with something to deliver wait in a FIFO. Each task moves through
 * stages (headers, progress, result, complete, wake), and its stage and
 * listener index advance *before* each call, so an error raised by a
 * listener leaves the dispatcher at once, with the module consistent, and
 * the next poll() carries on with the next listener: no event is lost.
 */
#include "binding.h"
#include "platform.h"

#include <errno.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the FIFO --------------------------------------------------------- */

void dispatch_push(dt_state *st, dt_task *t) {
  if (t->in_fifo) return;
  t->in_fifo = 1;
  t->fifo_seq = ++st->fifo_seq;
  t->fifo_next = NULL;
  t->fifo_prev = st->fifo_tail;
  if (st->fifo_tail) st->fifo_tail->fifo_next = t;
  else st->fifo_head = t;
  st->fifo_tail = t;
}

void dispatch_remove(dt_state *st, dt_task *t) {
  if (!t->in_fifo) return;
  if (t->fifo_prev) t->fifo_prev->fifo_next = t->fifo_next;
  else st->fifo_head = t->fifo_next;
  if (t->fifo_next) t->fifo_next->fifo_prev = t->fifo_prev;
  else st->fifo_tail = t->fifo_prev;
  t->fifo_prev = t->fifo_next = NULL;
  t->in_fifo = 0;
}

/* the first task not being delivered by an outer dispatcher run */
static dt_task *first_ready(dt_state *st) {
  dt_task *t = st->fifo_head;
  while (t && t->busy) t = t->fifo_next;
  return t;
}

int dispatch_pending(dt_state *st) { return first_ready(st) != NULL; }

/* A blocking wait would never end: nothing is left to deliver, and every
 * live task is paused or (the engine says) waits for a paused task's
 * destination, which only a call of the caller's could change. */
int dispatch_stuck(dt_state *st) {
  dispatch_take(st);
  if (dispatch_pending(st)) return 0;
  if (st->live <= st->paused) return 1;
  if (!st->engine || !engine_owned_here(st->engine) || !engine_stuck(st->engine)) return 0;
  dispatch_take(st); /* what the engine published before it said so */
  return !dispatch_pending(st);
}

/* ---- taking news from the engine (engine mutex held: only moves) ------- */

static void take_one(void *owner, dt_pub *pub, void *ud) {
  dt_task *t = owner;
  dt_state *st = ud;
  unsigned ev = pub->events;
  pub->events = 0;
  t->attempts = pub->attempts > (long)UINT_MAX ? UINT_MAX : (unsigned)pub->attempts;
  /* after abort() nothing from the engine is delivered; what the pub holds
   * is freed (and a finished body removed) with the transfer */
  if (t->state == TS_ABORTED && (ev & DT_EV_ABORTED) && !t->abort_acked) {
    t->abort_acked = 1;
    dispatch_push(st, t);
  }
  if (t->state == TS_ABORTED || t->result_delivered) return;
  if ((ev & DT_EV_STARTED) && t->state == TS_QUEUED) t->state = TS_RUNNING;
  if ((ev & DT_EV_DONE) && pub->result && t->state == TS_PAUSED) {
    /* the transfer ended before the engine saw pause(): that was a no-op */
    t->state = TS_RUNNING;
    st->paused--;
  }
  if ((ev & DT_EV_HEADERS) && pub->headers && pub->headers->continued && t->headers) {
    free(pub->headers); /* a continuation: res.header stays the first answer's */
    pub->headers = NULL;
  } else if ((ev & DT_EV_HEADERS) && pub->headers) {
    /* after a retry, res.header is the last attempt's; the event fired once */
    int again = t->headers != NULL;
    free(t->headers);
    t->headers = pub->headers;
    pub->headers = NULL;
    if (!again) t->headers_owed = 1;
  }
  /* nothing is delivered while paused: resume() or the end brings it */
  if (t->headers_owed && t->state != TS_PAUSED) {
    t->headers_owed = 0;
    t->inbox |= DT_EV_HEADERS;
  }
  if (ev & DT_EV_PROGRESS) {
    t->now = pub->now;
    t->total = pub->total;
    /* published before the engine saw pause(): not delivered while paused */
    if (t->state != TS_PAUSED) t->inbox |= DT_EV_PROGRESS;
  }
  if ((ev & DT_EV_DONE) && pub->result) {
    t->result = pub->result;
    pub->result = NULL;
    t->inbox |= DT_EV_DONE;
  }
  if (t->inbox) dispatch_push(st, t);
}

/* The parent's xfers are never freed in the child (their engine and its
 * thread are the parent's); they stay reachable from here, so that a leak
 * checker at the child's exit (make asan, a child that closes its state)
 * counts them as held, which they are. A lock-free stack: any thread may
 * orphan for its own lua_State. */
struct kept_xfer {
  struct kept_xfer *next;
  dt_xfer *x;
};
static _Atomic(struct kept_xfer *) kept_xfers;

static void keep_xfer(dt_xfer *x) {
  struct kept_xfer *k = malloc(sizeof *k); /* none: the copy is just not reachable */
  if (!k) return;
  k->x = x;
  k->next = atomic_load(&kept_xfers);
  while (!atomic_compare_exchange_weak(&kept_xfers, &k->next, k)) {}
}

/* In a fork()ed child, a task of the parent's (one with an xfer of the
 * parent's engine) is the parent's business: the child never delivers it,
 * and never removes or renames its files. It stops counting as live, leaves
 * the FIFO, and what it had taken is freed, files untouched. Its anchor stays
 * until the task is released (unref'ing here could add a key to the anchor
 * table its caller is walking). */
void dispatch_orphan(dt_state *st, dt_task *t) {
  if (!t->x || t->orphan) return;
  t->orphan = 1;
  keep_xfer(t->x);
  t->x = NULL; /* the parent's engine's: neither aborted nor unref'd */
  dispatch_remove(st, t);
  task_unlist(t);
  t->inbox = 0;
  t->stage = SG_IDLE;
  free(t->headers);
  t->headers = NULL;
  dt_result_free(t->result); /* not dt_result_discard: the body is the parent's */
  t->result = NULL;
  st->live--;
  if (t->state == TS_PAUSED) st->paused--; /* its state stays what it was */
}

void dispatch_take(dt_state *st) {
  if (st->engine && engine_owned_here(st->engine)) engine_take(st->engine, take_one, st);
}

/* ---- building the tables handed to Lua -------------------------------- */

static void set_int(lua_State *L, const char *k, lua_Integer v) {
  lua_pushinteger(L, v);
  lua_setfield(L, -2, k);
}

static void set_num(lua_State *L, const char *k, double v) {
  lua_pushnumber(L, v);
  lua_setfield(L, -2, k);
}

static void set_str(lua_State *L, const char *k, const char *v) {
  lua_pushstring(L, v);
  lua_setfield(L, -2, k);
}

/* Joins the array at `arr` with ", " (one buffer: linear). */
static void push_joined(lua_State *L, int arr) {
  lua_Integer n = (lua_Integer)lua_rawlen(L, arr);
  luaL_Buffer b;
  luaL_buffinit(L, &b);
  for (lua_Integer k = 1; k <= n; k++) {
    if (k > 1) luaL_addlstring(&b, ", ", 2);
    lua_rawgeti(L, arr, k);
    luaL_addvalue(&b);
  }
  luaL_pushresult(&b);
}

/* Pushes the header table: names are lower case already; repeated names are
 * joined with ", ". Linear in the number of headers (1000 Set-Cookie lines
 * joined one lua_concat at a time took 36 ms): the first pass gathers the
 * values of a repeated name in an array, the second joins each array once.
 * With `cookies`, also pushes the Set-Cookie values as an array, in order
 * (nil when there are none). */
static void push_header_table(lua_State *L, const dt_headers *h, int cookies) {
  /* 5.1's luaL_Buffer keeps up to LUA_MINSTACK / 2 pieces on the stack */
  luaL_checkstack(L, 8 + LUA_MINSTACK, "downloadtask headers");
  lua_createtable(L, 0, h ? (int)h->count : 0);
  int tbl = lua_gettop(L), repeated = 0;
  const char *p = h ? h->data : NULL;
  for (size_t i = 0; h && i < h->count; i++) {
    const char *name = p;
    size_t nlen = strlen(name);
    const char *value = name + nlen + 1;
    size_t vlen = strlen(value);
    p = value + vlen + 1;
    lua_pushlstring(L, name, nlen);
    lua_pushvalue(L, -1);
    int t = compat_rawget(L, tbl);
    if (t == LUA_TNIL) { /* the first (usually the only) one */
      lua_pop(L, 1);
      lua_pushlstring(L, value, vlen);
      lua_rawset(L, tbl);
    } else if (t == LUA_TSTRING) { /* the second: an array of both */
      lua_createtable(L, 4, 0);
      lua_insert(L, -2);
      lua_rawseti(L, -2, 1);
      lua_pushlstring(L, value, vlen);
      lua_rawseti(L, -2, 2);
      lua_rawset(L, tbl);
      repeated = 1;
    } else { /* the third and later: appended */
      lua_pushlstring(L, value, vlen);
      lua_rawseti(L, -2, (lua_Integer)lua_rawlen(L, -2) + 1);
      lua_pop(L, 2);
    }
  }
  if (cookies) { /* the array gathered above is the cookies, before it is joined */
    lua_pushliteral(L, "set-cookie");
    int t = compat_rawget(L, tbl);
    if (t == LUA_TSTRING) {
      lua_createtable(L, 1, 0);
      lua_insert(L, -2);
      lua_rawseti(L, -2, 1);
    }
  }
  if (repeated) {
    /* changing the value of an existing key is allowed while lua_next walks */
    lua_pushnil(L);
    while (lua_next(L, tbl)) {
      if (lua_type(L, -1) == LUA_TTABLE) {
        push_joined(L, lua_gettop(L));
        lua_pushvalue(L, -3);
        lua_insert(L, -2);
        lua_rawset(L, tbl);
      }
      lua_pop(L, 1);
    }
  }
}

static void push_profile(lua_State *L, const dt_profile *p) {
  lua_createtable(L, 0, 20);
  set_num(L, "fetchStart", p->fetch_start);
  set_num(L, "domainLookUpStart", p->lookup_start);
  set_num(L, "domainLookUpEnd", p->lookup_end);
  set_num(L, "connectStart", p->connect_start);
  set_num(L, "connectEnd", p->connect_end);
  set_num(L, "SSLconnectionStart", p->ssl_start);
  set_num(L, "SSLconnectionEnd", p->ssl_end);
  set_num(L, "requestStart", p->request_start);
  set_num(L, "requestEnd", p->request_end);
  set_num(L, "responseStart", p->response_start);
  set_num(L, "responseEnd", p->response_end);
  set_num(L, "redirectStart", p->redirect_start);
  set_num(L, "redirectEnd", p->redirect_end);
  set_str(L, "peerIP", p->peer_ip);
  set_int(L, "port", p->port);
  set_str(L, "protocol", p->protocol ? p->protocol : "");
  lua_pushboolean(L, p->socket_reused);
  lua_setfield(L, -2, "socketReused");
  set_int(L, "sendBytesCount", p->send_bytes);
  set_int(L, "receivedBytedCount", p->received_bytes);
  set_num(L, "throughputKbps", p->throughput_kbps);
}

static void push_error(lua_State *L, int err, const char *reason, long attempts) {
  lua_createtable(L, 0, 3);
  lua_pushfstring(L, "downloadFile:fail %s", reason ? reason : "unknown error");
  lua_setfield(L, -2, "errMsg");
  set_int(L, "errno", err);
  set_int(L, "attempts", attempts);
}

/* The body reaches the destination here, at delivery: a task aborted
 * before its success is delivered leaves the destination as it was. */
static void land_body(dt_task *t) { dt_result_land(t->result); }

static void push_result(lua_State *L, dt_task *t) {
  dt_result *r = t->result;
  if (!r->ok) {
    push_error(L, r->err, r->reason, r->attempts);
    return;
  }
  lua_createtable(L, 0, 10);
  set_int(L, "statusCode", r->status);
  if (r->to_dest) {
    set_str(L, "filePath", xfer_opts(t->x)->file_path);
  } else if (r->body_path) {
    set_str(L, "tempFilePath", r->body_path);
  }
  push_header_table(L, t->headers, 1);
  if (lua_isnil(L, -1)) lua_pop(L, 1);
  else lua_setfield(L, -3, "cookies");
  lua_setfield(L, -2, "header");
  set_int(L, "dataLength", r->length);
  if (r->sha256[0]) set_str(L, "sha256", r->sha256); /* none on a 304: nothing was written */
  set_int(L, "attempts", r->attempts);
  set_int(L, "segments", r->segments > 0 ? r->segments : 1);
  push_profile(L, &r->profile);
  lua_setfield(L, -2, "profile");
  set_str(L, "errMsg", "downloadFile:ok");
  if (!r->to_dest && r->body_path) { free(r->body_path); r->body_path = NULL; }
}

/* ---- delivery --------------------------------------------------------- */

/* Keeps a string error's traceback; other error values pass unchanged. */
static int msgh(lua_State *L) {
  if (lua_type(L, 1) == LUA_TSTRING) luaL_traceback(L, L, lua_tostring(L, 1), 1);
  return 1;
}

static void uv_set(lua_State *L, int uv, int slot) { lua_rawseti(L, uv, slot); }

/* whether uv[slot] holds at least one listener */
static int has_listeners(lua_State *L, int uv, int slot) {
  int any = compat_rawgeti(L, uv, slot) == LUA_TTABLE && lua_rawlen(L, -1) > 0;
  lua_pop(L, 1);
  return any;
}

/* Picks the task's next event and prepares it in UV_EVENT/UV_SNAP.
 * Returns 0 when nothing is left to deliver. */
/* The event table on top of the stack goes to the listeners of `slot`, a
 * snapshot of them (one added meanwhile waits for the next event), from
 * stage `stage` on; returns 1 (a stage to run). */
static int start_event(lua_State *L, dt_task *t, int uv, int slot, int stage) {
  uv_set(L, uv, UV_EVENT);
  lua_rawgeti(L, uv, slot);
  uv_set(L, uv, UV_SNAP);
  t->stage = (unsigned char)stage;
  t->idx = 1;
  return 1;
}

static int next_stage(lua_State *L, dt_task *t, int uv) {
  if (t->state == TS_ABORTED && !t->result_delivered) {
    if (!t->abort_acked) return 0; /* the engine is still removing its files */
    push_error(L, DT_ERR_ABORT, "abort", (long)t->attempts); /* 0: before any request */
    uv_set(L, uv, UV_RESULT);
    t->stage = SG_RESULT;
    return 1;
  }
  if (t->inbox & DT_EV_HEADERS) {
    t->inbox &= ~DT_EV_HEADERS;
    if (!has_listeners(L, uv, UV_HEADERS)) return next_stage(L, t, uv);
    lua_createtable(L, 0, 2);
    push_header_table(L, t->headers, 0);
    lua_setfield(L, -2, "header");
    set_int(L, "statusCode", t->headers->status);
    return start_event(L, t, uv, UV_HEADERS, SG_HEADERS);
  }
  if (t->inbox & DT_EV_PROGRESS) {
    t->inbox &= ~DT_EV_PROGRESS;
    /* repeated values are not sent again, and after a retry that starts over,
     * nothing is sent until it has caught up: values never go down */
    if (t->progress_sent && (t->now < t->sent_now || (t->now == t->sent_now && t->total == t->sent_total)))
      return next_stage(L, t, uv);
    t->progress_sent = 1;
    t->sent_now = t->now;
    t->sent_total = t->total;
    /* nobody listens: no event table (1000 downloads' progress in one poll) */
    if (!has_listeners(L, uv, UV_PROGRESS)) return next_stage(L, t, uv);
    lua_Integer pct = 0;
    if (t->total > 0) pct = (lua_Integer)(t->now >= t->total ? 100 : t->now * 100 / t->total);
    else if (t->total == 0) pct = 100;
    lua_createtable(L, 0, 3);
    set_int(L, "progress", pct);
    set_int(L, "totalBytesWritten", t->now);
    set_int(L, "totalBytesExpectedToWrite", t->total);
    return start_event(L, t, uv, UV_PROGRESS, SG_PROGRESS);
  }
  if (t->inbox & DT_EV_DONE) {
    land_body(t);
    push_result(L, t);
    uv_set(L, uv, UV_RESULT);
    t->inbox &= ~DT_EV_DONE;
    t->stage = SG_RESULT;
    return 1;
  }
  return 0;
}

/* Calls fn (at the top) with the value in uv[slot]. */
static int call1(lua_State *L, int h, int uv, int slot) {
  lua_rawgeti(L, uv, slot);
  return lua_pcall(L, 1, 0, h);
}

/* Resumes a coroutine waiting in await(). */
static int wake(lua_State *L, lua_State *co) {
  if (lua_status(co) != LUA_YIELD) return LUA_OK; /* finished, or not suspended in await */
  int nres = 0;
  int rc = compat_resume(co, L, 0, &nres);
  if (rc == LUA_OK || rc == LUA_YIELD) {
    lua_pop(co, nres);
    return LUA_OK;
  }
  /* the coroutine died: its error (with its traceback, taken before its
   * stack goes), then its to-be-closed variables are closed, which Lua does
   * not do for a coroutine that dies in an error (coroutine.close does); an
   * error raised by a __close replaces the first, as coroutine.close reports */
  if (!lua_checkstack(co, 1)) { /* no room for a copy: the error as before, nothing closed */
    lua_xmove(co, L, 1);
    return rc;
  }
  lua_pushvalue(co, -1);
  lua_xmove(co, L, 1); /* the error value */
  int orig = lua_gettop(L);
  if (lua_type(L, orig) == LUA_TSTRING) luaL_traceback(L, co, lua_tostring(L, orig), 0);
  else lua_pushvalue(L, orig); /* orig + 1: what propagates */
  if (compat_closethread(co, L) != LUA_OK) {
    lua_xmove(co, L, 1);
    if (!lua_rawequal(L, -1, orig)) lua_replace(L, orig + 1); /* a __close raised */
    else lua_pop(L, 1);
  }
  lua_replace(L, orig);
  return rc;
}

static void end_task(lua_State *L, dt_task *t, int uv) {
  lua_pushnil(L);
  uv_set(L, uv, UV_SNAP);
  lua_pushnil(L);
  uv_set(L, uv, UV_EVENT);
  t->stage = SG_IDLE;
  task_release(L, t);
}

/* One step of t's delivery: at most one call of Lua. Returns LUA_OK, an
 * error status (error value on top), or -1 when t has nothing left. */
static int step(lua_State *L, dt_task *t, int uv, int h) {
  int rc;
  if (t->orphan) return -1; /* a listener fork()ed: the parent's task is not delivered here */
  switch (t->stage) {
  case SG_IDLE:
    return next_stage(L, t, uv) ? LUA_OK : -1;
  case SG_HEADERS:
  case SG_PROGRESS:
    /* pause() from a listener: nothing fires while paused, the event's other
     * listeners get it after resume() (which queues the task again) */
    if (t->state == TS_PAUSED) return -1;
    if (compat_rawgeti(L, uv, UV_SNAP) != LUA_TTABLE || compat_rawgeti(L, -1, t->idx) == LUA_TNIL) {
      lua_settop(L, h);
      t->stage = SG_IDLE;
      return LUA_OK;
    }
    t->idx++;
    rc = call1(L, h, uv, UV_EVENT);
    /* abort() from a listener: what was queued is dropped, fail comes next */
    if (t->state == TS_ABORTED && !t->result_delivered) t->stage = SG_IDLE;
    return rc;
  case SG_RESULT: {
    int ok = t->state != TS_ABORTED && t->result && t->result->ok;
    t->result_delivered = 1;
    task_unlist(t);
    if (t->state == TS_PAUSED) t->st->paused--; /* it had finished when pause() came */
    if (t->state != TS_ABORTED) t->state = ok ? TS_DONE : TS_FAILED;
    t->stage = SG_COMPLETE;
    if (compat_rawgeti(L, uv, ok ? UV_SUCCESS : UV_FAIL) != LUA_TFUNCTION) {
      lua_settop(L, h);
      return LUA_OK;
    }
    return call1(L, h, uv, UV_RESULT);
  }
  case SG_COMPLETE:
    t->ended = 1;
    t->stage = SG_WAKE;
    t->idx = 0;
    if (compat_rawgeti(L, uv, UV_COMPLETE) != LUA_TFUNCTION) {
      lua_settop(L, h);
      return LUA_OK;
    }
    return call1(L, h, uv, UV_RESULT);
  case SG_WAKE:
    if (t->idx == 0) { /* waiters that come later find the task ended */
      lua_rawgeti(L, uv, UV_WAITERS);
      uv_set(L, uv, UV_SNAP);
      lua_pushnil(L);
      uv_set(L, uv, UV_WAITERS);
      t->idx = 1;
    }
    if (compat_rawgeti(L, uv, UV_SNAP) != LUA_TTABLE || compat_rawgeti(L, -1, t->idx) == LUA_TNIL) {
      lua_settop(L, h);
      end_task(L, t, uv);
      return -1;
    }
    t->idx++;
    /* false: that coroutine's await() has returned already */
    return lua_isthread(L, -1) ? wake(L, lua_tothread(L, -1)) : LUA_OK;
  }
  return -1;
}

/* Delivers everything t has. */
static int deliver(lua_State *L, dt_state *st, dt_task *t) {
  int top = lua_gettop(L);
  lua_rawgeti(L, LUA_REGISTRYINDEX, st->anchors);
  lua_rawgeti(L, -1, t->anchor); /* keeps t alive while we work */
  compat_getuservalue(L, -1);
  int uv = lua_gettop(L);
  if (!t->uv_full) {
    /* Every slot in the array part before anything is handed over: a memory
     * error from a slot store further on would lose a result whose body file
     * is already Lua's. Failing here changes nothing; the next poll retries. */
    lua_createtable(L, UV_ALL, 0);
    for (int i = 1; i <= UV_ALL; i++) {
      lua_rawgeti(L, uv, i);
      lua_rawseti(L, -2, i);
    }
    lua_pushvalue(L, -1);
    compat_setuservalue(L, uv - 1);
    lua_replace(L, uv);
    t->uv_full = 1;
  }
  lua_pushcfunction(L, msgh);
  int h = lua_gettop(L);
  t->busy = st->depth;
  int rc;
  while ((rc = step(L, t, uv, h)) == LUA_OK) {
    lua_settop(L, h);
    /* a listener that fork()ed returns in both processes: the child must
     * not go on with the parent's tasks (landing a body, say) */
    if (state_forked(st)) state_check_fork(L, st);
  }
  t->busy = 0;
  if (rc == -1) {
    if ((t->stage == SG_IDLE && !t->inbox) || t->state == TS_PAUSED) dispatch_remove(st, t);
    lua_settop(L, top);
    return LUA_OK;
  }
  lua_replace(L, top + 1); /* the error value, for lua_error */
  lua_settop(L, top + 1);
  return rc;
}

/* the poll budget's clock, from the platform layer like every other clock */
static double mono_s(void) { return plat_mono_ms() / 1000.0; }

/* whether push number a came after b (both wrap) */
static int seq_after(unsigned a, unsigned b) { return a - b - 1u < 0x80000000u; }

int dispatch_run(lua_State *L, dt_state *st) {
  /* tasks queued by listeners during this run wait for the next one, so a
   * listener that keeps creating work cannot keep poll() from returning: the
   * run ends after the task pushed last before it began. Known by push
   * number, not by a walk: counting 10,000 tasks ate poll(0)'s budget, and
   * then it delivered one task a call. */
  unsigned last = st->fifo_seq;
  luaL_checkstack(L, 8, "downloadtask dispatcher");
  /* poll(0) in a frame: after its time budget, the tasks left wait for the
   * next poll (each task's events stay whole and in order; progress values
   * that pile up meanwhile are coalesced) */
  double deadline = st->depth == 1 ? st->deadline : 0;
  dt_task *t;
  while ((t = first_ready(st)) && !seq_after(t->fifo_seq, last)) {
    int rc = deliver(L, st, t);
    if (rc != LUA_OK) return rc;
    if (deadline > 0 && mono_s() >= deadline) break;
  }
  return LUA_OK;
}

static int run_p(lua_State *L) {
  dt_state *st = lua_touserdata(L, 1);
  lua_pop(L, 1);
  if (dispatch_run(L, st) != LUA_OK) return lua_error(L);
  return 0;
}

int dispatch_poll(lua_State *L, dt_state *st, int wait_ms) {
  state_check_fork(L, st);
  dispatch_take(st);
  if (wait_ms != 0 && !dispatch_pending(st) && st->live > 0 && st->engine &&
      engine_owned_here(st->engine)) {
    engine_wait(st->engine, wait_ms);
    dispatch_take(st);
  }
  st->depth++;
  if (st->depth == 1)
    st->deadline = wait_ms == 0 && st->poll_budget_us > 0 ? mono_s() + (double)st->poll_budget_us / 1e6 : 0;
  lua_pushcfunction(L, run_p);
  lua_pushlightuserdata(L, st);
  int rc = lua_pcall(L, 1, 0, 0);
  if (rc != LUA_OK)
    for (dt_task *t = st->fifo_head; t; t = t->fifo_next)
      if (t->busy >= st->depth) t->busy = 0;
  st->depth--;
  /* a poll cut short (its time budget, a listener's error) leaves news that
   * the descriptor no longer shows: a loop waiting on dt.fd() must wake */
  if (st->depth == 0 && dispatch_pending(st) && st->engine && engine_owned_here(st->engine))
    engine_rearm(st->engine);
  return rc;
}
