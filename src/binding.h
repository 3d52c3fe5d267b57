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

/* task->state, in the order of SPEC.md's names */
enum { TS_QUEUED, TS_RUNNING, TS_DONE, TS_FAILED, TS_ABORTED };

/* Delivery stages of one task, so that a listener error can leave the
 * dispatcher and the next poll() continue right after that listener. */
enum { SG_IDLE, SG_HEADERS, SG_PROGRESS, SG_RESULT, SG_COMPLETE, SG_WAKE };

/* Slots of a task's user value table. */
enum {
  UV_PROGRESS = 1, /* array of progress listeners (replaced, never mutated) */
  UV_HEADERS,      /* array of headers listeners (likewise) */
  UV_SUCCESS,
  UV_FAIL,
  UV_COMPLETE,
  UV_WAITERS, /* array of coroutines in await() */
  UV_RESULT,  /* res or err table, once built */
  UV_EVENT,   /* the event table being delivered */
  UV_SNAP,    /* the listener array being delivered */
  UV_URL
};

typedef struct dt_state dt_state;

typedef struct dt_task {
  dt_state *st;
  dt_xfer *x; /* NULL once released */
  int orphan; /* x belongs to the engine of the process we were forked from */
  int state;
  int anchor; /* registry reference keeping the task alive until it ends */
  int ended;  /* success/fail and complete delivered */
  int abort_acked; /* the engine has carried out abort(): "abort" may be delivered */
  int result_delivered;

  /* taken from the engine, not yet delivered */
  unsigned inbox;
  dt_headers *headers; /* kept until the end: res.header needs it */
  int64_t now, total;
  int64_t sent_now, sent_total; /* the last progress delivered */
  int progress_sent;
  dt_result *result;

  /* delivery */
  int stage, idx, busy, in_fifo;
  struct dt_task *fifo_prev, *fifo_next;
} dt_task;

struct dt_state {
  dt_engine *engine;
  int closed;
  long max_concurrent, progress_interval;
  dt_shared *shared; /* userAgent and tempDir, shared with the tasks made under them */
  dt_task *fifo_head, *fifo_tail; /* tasks with something to deliver */
  int depth;   /* nesting of dispatcher runs */
  int in_run;  /* inside run() */
  long live;   /* tasks not yet ended */
  long poll_budget_us; /* poll(0) stops delivering after this long (0: never) */
  double deadline;     /* of the running poll(0), monotonic seconds; 0: none */
  int anchors; /* registry reference of the anchor table */
};

/* module.c */
dt_state *state_get(lua_State *L);
void state_check_fork(lua_State *L, dt_state *st);
dt_engine *state_engine(lua_State *L, dt_state *st);

/* task.c */
int task_new(lua_State *L);
void task_open(lua_State *L);
void task_release(lua_State *L, dt_task *t);
const char *task_state_name(int s);

/* dispatch.c */
void dispatch_take(dt_state *st);
void dispatch_orphan(dt_state *st, dt_task *t);
void dispatch_push(dt_state *st, dt_task *t);
void dispatch_remove(dt_state *st, dt_task *t);
int dispatch_pending(dt_state *st);
int dispatch_run(lua_State *L, dt_state *st); /* LUA_OK or an error on the stack */
int dispatch_poll(lua_State *L, dt_state *st, int wait_ms);

#endif
