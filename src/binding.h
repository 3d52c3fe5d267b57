/*
 * binding.h: what the Lua-side files (module.c, task.c, dispatch.c) share.
 * Only these files include lua.h, and only they touch a lua_State, always on
 * the thread that called into the module.
 */
#ifndef DT_BINDING_H
#define DT_BINDING_H

#include "compat.h"
#include "dt.h"

#define DT_TASK_MT "downloadtask.DownloadTask"

/* task->state, in the order of the reference's names */
enum { TS_QUEUED, TS_RUNNING, TS_DONE, TS_FAILED, TS_ABORTED, TS_PAUSED };

/* Delivery stages of one task, so that a listener error can leave the
 * dispatcher and the next poll() continue right after that listener. */
enum { SG_IDLE, SG_HEADERS, SG_PROGRESS, SG_RESULT, SG_COMPLETE, SG_WAKE };

/* Slots of a task's user value table. The ones downloadFile sets come first
 * and the table is made with exactly those (UV_CREATED): a queued task
 * carries no empty slots. The first delivery replaces it with one that has
 * every slot (UV_ALL) in its array part, so storing a slot while delivering
 * never allocates. */
enum {
  UV_SUCCESS = 1,
  UV_FAIL,
  UV_COMPLETE,
  UV_URL,
  UV_CREATED = UV_URL,
  UV_PROGRESS, /* array of progress listeners (replaced, never mutated) */
  UV_HEADERS,  /* array of headers listeners (likewise) */
  UV_WAITERS,  /* array of coroutines in await() */
  UV_RESULT,  /* res or err table, once built */
  UV_EVENT,   /* the event table being delivered */
  UV_SNAP,    /* the listener array being delivered */
  UV_FIELDS,  /* the user's own fields (task.name = ...), made by the first assignment */
  UV_ALL = UV_FIELDS
};

typedef struct dt_state dt_state;

/* Whether s (len bytes) holds a CR, an LF or a zero byte: a string that becomes part of a
 * request (a header value, the URL, the proxy, the User-Agent) has none, or it could end a
 * line early and add lines of its own (a header injection). */
static inline int has_line_break(const char *s, size_t len) {
  for (size_t i = 0; i < len; i++)
    if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0') return 1;
  return 0;
}

/* Small fields are bytes and bits (only the Lua thread touches a task):
 * 10,000 queued tasks are 10,000 of these, 120 bytes each. */
typedef struct dt_task {
  dt_state *st;
  dt_xfer *x; /* NULL once released */
  int anchor; /* registry reference keeping the task alive until it ends */
  int idx;    /* delivery: the listener or waiter being called */
  unsigned short busy; /* delivery: depth of the dispatcher run calling it (C stack bounds it) */
  unsigned char state;
  unsigned char stage;
  unsigned char inbox; /* DT_EV_* taken from the engine, not yet delivered */
  unsigned char headers_owed; /* the headers event, held back while paused */
  unsigned orphan : 1; /* a task of the process we were forked from: never delivered here */
  unsigned ended : 1;  /* success/fail and complete delivered */
  unsigned abort_acked : 1; /* the engine has carried out abort(): "abort" may be delivered */
  unsigned result_delivered : 1;
  unsigned progress_sent : 1;
  unsigned in_fifo : 1;
  unsigned uv_full : 1; /* the user value table has every slot (dispatch.c, deliver) */
  unsigned listed : 1;  /* on the state's list of tasks (dt.tasks()) */
  struct dt_task *fifo_prev, *fifo_next;
  struct dt_task *list_prev, *list_next; /* dt.tasks(), in creation order */
  unsigned fifo_seq; /* st->fifo_seq when pushed: a dispatcher run stops after its last task */
  unsigned attempts; /* requests started, as last published (err.attempts of an abort) */

  /* taken from the engine, not yet delivered */
  dt_headers *headers; /* kept until the end: res.header needs it */
  dt_result *result;
  int64_t now, total;
  int64_t sent_now, sent_total; /* the last progress delivered */
} dt_task;

struct dt_state {
  dt_engine *engine;
  int closed;
  long max_concurrent, progress_interval;
  long max_per_host; /* configure's maxPerHost: 0, no cap */
  int64_t rate_limit; /* configure's rateLimit, bytes/s for all downloads: 0, none */
  dt_shared *shared; /* userAgent and tempDir, shared with the tasks made under them */
  dt_task *fifo_head, *fifo_tail; /* tasks with something to deliver */
  dt_task *list_head, *list_tail; /* queued or running, in creation order (dt.tasks()) */
  long listed;                    /* how many are on that list */
  unsigned fifo_seq;               /* pushes so far (wraps) */
  int depth;   /* nesting of dispatcher runs */
  int in_run;  /* inside run() */
  long live;   /* tasks not yet ended */
  long paused; /* of those, the ones in state "paused" (not orphans) */
  long poll_budget_us; /* poll(0) stops delivering after this long (0: never) */
  double deadline;     /* of the running poll(0), monotonic seconds; 0: none */
  int anchors; /* registry reference of the anchor table */
  int ngx;     /* loaded under nginx's Lua module: downloadFile starts the poller */
};

/* module.c */
dt_state *state_get(lua_State *L);
void state_check_fork(lua_State *L, dt_state *st);
int state_forked(dt_state *st);
dt_engine *state_engine(lua_State *L, dt_state *st);

/* task.c */
int task_new(lua_State *L);
void task_open(lua_State *L);
void task_release(lua_State *L, dt_task *t);
const char *task_state_name(int s);
void task_unlist(dt_task *t); /* off the list of dt.tasks(): ended, aborted or orphaned */
int task_abort(lua_State *L, dt_task *t); /* 1 when it was aborted now */
int task_tasks(lua_State *L);     /* dt.tasks() */
int task_abort_all(lua_State *L); /* dt.abortAll() */

/* await.c */
void task_push_many(lua_State *L); /* pushes awaitAll, then awaitAny */
void push_await(lua_State *L); /* pushes the await method (and keeps awaitAll, awaitAny, the poller's kick) */
void ngx_kick(lua_State *L, dt_state *st); /* under nginx: starts the worker's poller */

/* dispatch.c */
void dispatch_take(dt_state *st);
void dispatch_orphan(dt_state *st, dt_task *t); /* calls no Lua */
void dispatch_push(dt_state *st, dt_task *t);
void dispatch_remove(dt_state *st, dt_task *t);
int dispatch_pending(dt_state *st);
int dispatch_stuck(dt_state *st);
int dispatch_run(lua_State *L, dt_state *st); /* LUA_OK or an error on the stack */
int dispatch_poll(lua_State *L, dt_state *st, int wait_ms);

#endif
