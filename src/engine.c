/*
 * engine.c: the download engine's thread, its queue and its side of dt.h.
 * The engine owns the CURLM, every CURL easy handle and every file
 * descriptor of a download, on a native thread of its own, started with the
 * engine. Never includes lua.h. Its other files (engine_int.h has what they
 * share): transfer.c, a transfer's start, end, retry and pause; body.c, the
 * body's files, headers and write path; segments.c, ranges over several
 * connections; ranges.c and record.c, the pure decision of which bytes may
 * join a part and the part's record.
 *
 * Commands come in through a list under `mu` (add, abort) with
 * curl_multi_wakeup; news goes out through the ready list under `mu` and a
 * byte on the wake-up object (platform.h: a pipe, a socket on Windows), which
 * the binding drains in engine_take(). A transfer is on
 * each list at most once and being on a list holds a reference, so both lists
 * are bounded by the number of transfers and progress is coalesced: the pub
 * part keeps only the latest value.
 *
 * The body is written (plat_write_all) straight from libcurl's receive buffer
 * into a temporary file: beside the destination for a 2xx response with a
 * filePath, a private file under tempDir otherwise. The engine never renames
 * onto the destination: the binding does that when it delivers success, so a
 * task aborted before then leaves the destination as it was. Everything it
 * needs from the OS goes through platform.h; nothing here is per platform.
 */
#include "engine_int.h"
#include "ranges.h"
#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- libcurl's receive buffers ----------------------------------------
 * libcurl allocates each transfer's receive buffer (CURLOPT_BUFFERSIZE + 1
 * bytes) when the transfer starts and frees it when it ends. On the engine
 * thread that block lies at the top of a glibc thread arena: freeing it
 * trims the arena (madvise, which also shoots down the TLB of the CPU the
 * Lua thread runs on) and the next transfer faults the pages back in. With
 * many short transfers that was about a seventh of the process's CPU (perf;
 * 10,000 tiny downloads took as little CPU with glibc's trim threshold
 * raised). Up to RECV_CACHE freed buffers are kept here for the next
 * transfers instead: lock-free slots, so fork() cannot leave a lock held.
 * The hooks are installed with curl_global_init_mem, i.e. only when this
 * module is the first to initialise libcurl in the process; otherwise
 * libcurl allocates as it always does. (libcurl 7.x, Debian 12's 7.88,
 * allocates the buffer per transfer; a libcurl that does not never asks for
 * a block of that size, and then nothing is kept.) */
#define RECV_CACHE 16
#define RECV_BLOCK (RECV_BUFFER + 1)
static _Atomic(void *) recv_cache[RECV_CACHE];
/* Set by the first request for a receive buffer: a libcurl that allocates
 * them otherwise never gets blocks of about that size kept here. */
static atomic_int recv_seen;

static void *mem_malloc(size_t n) {
  if (n == RECV_BLOCK) {
    if (!atomic_load_explicit(&recv_seen, memory_order_relaxed))
      atomic_store_explicit(&recv_seen, 1, memory_order_relaxed);
    for (int i = 0; i < RECV_CACHE; i++) {
      if (!atomic_load_explicit(&recv_cache[i], memory_order_relaxed)) continue;
      void *p = atomic_exchange_explicit(&recv_cache[i], NULL, memory_order_acquire);
      if (p) return p;
    }
  }
  return malloc(n);
}

static void mem_free(void *p) {
  if (!p) return;
  size_t n = atomic_load_explicit(&recv_seen, memory_order_relaxed) ? plat_malloc_size(p) : 0;
  if (n >= RECV_BLOCK && n < RECV_BLOCK + 4096)
    for (int i = 0; i < RECV_CACHE; i++) {
      void *empty = NULL;
      if (atomic_compare_exchange_strong_explicit(&recv_cache[i], &empty, p, memory_order_release,
                                                  memory_order_relaxed))
        return;
    }
  free(p);
}

/* Under AddressSanitizer every buffer goes through its quarantine instead,
 * so that a use after free in libcurl still shows (make asan). */
#if defined(__SANITIZE_ADDRESS__)
#define RECV_CACHE_ON 0
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define RECV_CACHE_ON 0
#endif
#endif
#ifndef RECV_CACHE_ON
#define RECV_CACHE_ON plat_malloc_size_known /* 0 where the C library cannot tell a block's size */
#endif

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;
static void init_curl(void) {
  curl_init_rc = RECV_CACHE_ON ? curl_global_init_mem(CURL_GLOBAL_DEFAULT, mem_malloc, mem_free, realloc,
                                                      strdup, calloc)
                               : curl_global_init(CURL_GLOBAL_DEFAULT);
}

double epoch_ms(void) { return plat_epoch_ms(); }
double mono_ms(void) { return plat_mono_ms(); }

/* An easy handle leaves the multi handle and goes (its connection back to
 * libcurl's pool, or closed); *easy becomes NULL. Nothing when it is NULL. */
void release_easy(dt_engine *e, CURL **easy) {
  if (!*easy) return;
  curl_multi_remove_handle(e->multi, *easy);
  curl_easy_cleanup(*easy);
  *easy = NULL;
}

/* ---- small helpers ---------------------------------------------------- */

void xlist_push(xlist *l, dt_xfer *x) {
  x->next = NULL;
  x->prev = l->tail;
  if (l->tail) l->tail->next = x;
  else l->head = x;
  l->tail = x;
  l->n++;
}

void xlist_remove(xlist *l, dt_xfer *x) {
  if (x->prev) x->prev->next = x->next;
  else l->head = x->next;
  if (x->next) x->next->prev = x->prev;
  else l->tail = x->prev;
  x->prev = x->next = NULL;
  l->n--;
}

dt_shared *dt_shared_new(const char *user_agent, const char *temp_dir) {
  size_t ua = strlen(user_agent) + 1, td = strlen(temp_dir) + 1;
  dt_shared *s = malloc(sizeof *s + ua + td);
  if (!s) return NULL;
  atomic_init(&s->refs, 1);
  memcpy(s->data, user_agent, ua);
  memcpy(s->data + ua, temp_dir, td);
  s->user_agent = s->data;
  s->temp_dir = s->data + ua;
  return s;
}

dt_shared *dt_shared_ref(dt_shared *s) {
  atomic_fetch_add(&s->refs, 1);
  return s;
}

void dt_shared_unref(dt_shared *s) {
  if (s && atomic_fetch_sub(&s->refs, 1) == 1) free(s);
}

void dt_opts_free(dt_opts *o) {
  if (!o) return;
  dt_shared_unref(o->shared);
  free(o);
}

void dt_result_free(dt_result *r) {
  if (!r) return;
  free(r->reason);
  free(r->body_path);
  free(r->dest_path);
  free(r);
}

void dt_result_discard(dt_result *r) {
  if (r && r->body_path) plat_unlink(r->body_path);
  dt_result_free(r);
}

void dt_result_land(dt_result *r) {
  if (!r->ok || !r->to_dest || !r->body_path || !r->dest_path) return;
  if (plat_rename(r->body_path, r->dest_path) == 0) {
    free(r->body_path);
    r->body_path = NULL;
    if (r->durable) { /* the rename itself reaches the disk */
      char *slash = strrchr(r->dest_path, '/');
      *slash = '\0';
      /* the destination holds the new file by now: a failing directory sync
       * cannot make this a failure (the file promise), it only loses durability */
      (void)files_sync_dir(r->dest_path[0] ? r->dest_path : "/");
      *slash = '/';
    }
    return;
  }
  int e = errno;
  char reason[300];
  int perm = e == EACCES || e == EPERM || e == EROFS;
  if (perm) snprintf(reason, sizeof reason, "permission denied: %s", r->dest_path);
  else snprintf(reason, sizeof reason, "save file error: %s", strerror(e));
  r->ok = 0;
  r->err = perm ? DT_ERR_PERM : DT_ERR_SAVE;
  free(r->reason);
  r->reason = strdup(reason);
  plat_unlink(r->body_path);
}

/* The running part and its result, made together: a transfer that cannot
 * have both stays queued. Allocated here rather than at submit, a queued
 * transfer costs only its dt_xfer and dt_opts. */
static int run_new(dt_xfer *x) {
  if (x->run) return 1;
  xrun *r = calloc(1, sizeof *r);
  dt_result *res = calloc(1, sizeof *res);
  if (!r || !res) {
    free(r);
    free(res);
    return 0;
  }
  r->res = res;
  r->fd = -1;
  r->ahead_fd = -1;
  r->total = -1;
  r->last_progress = -1e18;
  x->run = r;
  return 1;
}

/* Frees what is left of the running part; the easy handle, the body's file
 * and the pool buffer are gone by now (finish(), drop(), retry_later()). */

void run_free(dt_xfer *x) {
  if (x->run) seg_free(x->engine, x);
  xrun *r = x->run;
  if (!r) return;
  x->run = NULL;
  drop_ahead(r);
  dt_result_discard(r->res);
  curl_slist_free_all(r->slist);
  free(r->part_path);
  free(r->body_path);
  free(r->held_validator);
  free(r->if_range);
  free(r->rmap);
  hlist_free(&r->hdr);
  plat_sha256_free(r->md);
  free(r);
}

static void xfer_free(dt_xfer *x) {
  free(x->cwd);
  files_dest_free(&x->dest);
  free(x->dest_reason);
  files_made_free(&x->made);
  free(x->pub.headers);
  dt_result_discard(x->pub.result);
  run_free(x);
  dt_opts_free(x->opts);
  free(x);
}

void xfer_unref(dt_xfer *x) {
  if (atomic_fetch_sub(&x->refs, 1) == 1) xfer_free(x);
}

/* Drops the list's reference of every transfer of a taken list. */
static void unref_taken(dt_xfer *x, int ready) {
  while (x) {
    dt_xfer *next = ready ? x->next_taken_ready : x->next_taken_cmd;
    xfer_unref(x);
    x = next;
  }
}

const dt_opts *xfer_opts(const dt_xfer *x) { return x->opts; }

/* ---- publishing (engine thread) --------------------------------------- */

/* Called with mu held: link x onto the ready list; tells the caller whether
 * the pipe needs a byte (only when `wake` asks for one: news that needs no
 * wake-up is taken with the next that does, or by the next poll). */
static int ready_locked(dt_engine *e, dt_xfer *x, int wake) {
  if (!x->owner) return 0;
  if (!x->in_ready) {
    x->in_ready = 1;
    atomic_fetch_add(&x->refs, 1);
    x->next_ready = NULL;
    if (e->ready_tail) e->ready_tail->next_ready = x;
    else e->ready_head = x;
    e->ready_tail = x;
  }
  if (!wake || e->wake_sent) return 0;
  e->wake_sent = 1;
  return 1;
}

static void wake_lua(dt_engine *e) {
  plat_wake_signal(&e->wake);
  notify_send(&e->notify);
}

void publish(dt_engine *e, dt_xfer *x, unsigned ev, dt_headers *h,
                    dt_result *r) {
  pthread_mutex_lock(&e->mu);
  if (!x->owner) { /* nobody will read it */
    pthread_mutex_unlock(&e->mu);
    free(h);
    dt_result_discard(r);
    return;
  }
  x->pub.events |= ev;
  if (ev & DT_EV_PROGRESS) {
    int64_t held = (int64_t)x->run->wlen; /* gathered, not in the file yet */
    for (int i = 0; i < x->run->nsegs; i++) held += (int64_t)x->run->segs[i].wlen;
    x->pub.now = x->run->written - held; /* what the file holds */
    x->pub.total = x->run->total;
  }
  if (x->run) x->pub.attempts = x->run->attempt - x->run->resumes;
  if (h && h->continued && x->pub.headers) {
    free(h); /* a continuation: the headers of the answer that started the body stay */
  } else if (h) { /* an earlier attempt's headers Lua has not taken yet: only the last counts */
    free(x->pub.headers);
    x->pub.headers = h;
  }
  if (r) x->pub.result = r;
  /* A start alone (queued -> running) calls no listener: it wakes nobody.
   * Waking for it cost every download an extra round of its waiter (an
   * OpenResty worker's poller ran once while the request was on its way,
   * competing with the transfer for the CPU). */
  int wake = ready_locked(e, x, ev != DT_EV_STARTED);
  pthread_mutex_unlock(&e->mu);
  if (wake) e->wake_due = 1; /* written once, at the end of the engine's round */
  if ((ev & DT_EV_PROGRESS) && (!e->wake_window_set || (double)x->opts->progress_interval_ms < e->wake_window)) {
    e->wake_window = (double)x->opts->progress_interval_ms;
    e->wake_window_set = 1;
  }
  if (ev & ~(DT_EV_PROGRESS | DT_EV_STARTED)) e->wake_urgent = 1;
}

/* ---- the thread ------------------------------------------------------- */

static void take_commands(dt_engine *e) {
  pthread_mutex_lock(&e->mu);
  dt_xfer *list = e->cmd_head;
  e->cmd_head = e->cmd_tail = NULL;
  for (dt_xfer *x = list; x; x = x->next_cmd) {
    x->in_cmd = 0;
    x->next_taken_cmd = x->next_cmd;
    x->abort_now = x->abort_req != 0; /* read under mu: engine_abort writes it */
    x->pause_now = x->pause_req;
  }
  pthread_mutex_unlock(&e->mu);
  for (dt_xfer *x = list; x; x = x->next_taken_cmd) {
    if (x->phase == PH_NEW) {
      x->phase = PH_WAITING;
      xq_push(&e->waiting, x);
    }
    if (x->abort_now) abort_xfer(e, x);
    else if (x->pause_now && x->phase != PH_PAUSED) pause_xfer(e, x);
    else if (!x->pause_now && x->phase == PH_PAUSED) resume_xfer(e, x);
  }
  unref_taken(list, 0); /* the list's references */
}

static int dest_busy(dt_engine *e, dt_xfer *x) {
  const xlist *lists[] = {&e->running, &e->sleeping, &e->paused};
  for (int i = 0; i < 3; i++)
    for (dt_xfer *y = lists[i]->head; y; y = y->next) /* a paused one that never started holds nothing */
      if (y->run && y->dest.path && strcmp(y->dest.path, x->dest.path) == 0) return 1;
  return 0;
}

static void start_waiting(dt_engine *e) {
  pthread_mutex_lock(&e->mu);
  long max = e->max_concurrent;
  long per_host = e->max_per_host;
  e->rate_limit = e->rate_limit_req;
  pthread_mutex_unlock(&e->mu);
  if (per_host != e->max_per_host_set) { /* the multi handle is this thread's alone */
    if (curl_multi_setopt(e->multi, CURLMOPT_MAX_HOST_CONNECTIONS, per_host) == CURLM_OK)
      e->max_per_host_set = per_host;
  }
  e->start_oom = 0;
  e->start_skipped = 0;
  dt_xfer *skipped = NULL; /* taken out, put back with their seq: their places are kept */
  while (e->waiting.root && e->running.n < max) {
    dt_xfer *x = xq_first(&e->waiting);
    xq_remove(&e->waiting, x);
    /* One destination, one writer: a transfer whose destination another
     * one is writing (or will write again after its retry's backoff) keeps
     * its place in the queue until that one has finished. */
    resolve_dest(x);
    if (x->dest.path && dest_busy(e, x)) {
      x->next = skipped;
      skipped = x;
      e->start_skipped++;
      continue;
    }
    /* Out of memory for its running part: x keeps its place in the queue and
     * is tried again on a later round (the loop wakes at least once a
     * second, check_timers), rather than failed or lost. */
    if (!run_new(x)) {
      xq_insert(&e->waiting, x);
      e->start_oom = 1;
      break;
    }
    start(e, x);
  }
  while (skipped) {
    dt_xfer *n = skipped->next;
    xq_insert(&e->waiting, skipped);
    skipped = n;
  }
}

static void reap(dt_engine *e) {
  CURLMsg *m;
  int left;
  while ((m = curl_multi_info_read(e->multi, &left))) {
    if (m->msg != CURLMSG_DONE) continue;
    char *p = NULL;
    curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &p);
    if ((uintptr_t)p & 1u) seg_end(e, (dt_seg *)(void *)(p - 1), m->data.result); /* a range's */
    else if (p) finish_rc(e, (dt_xfer *)(void *)p, m->data.result);
  }
}

/* The engine's own timers: resumes transfers paused by rateLimit whose time
 * has come, fails those whose stallTimeout passed without a body byte, and
 * returns how long the loop may sleep before the next deadline. */
static int check_timers(dt_engine *e) {
  double wait = 1000, now = mono_ms();
  for (dt_xfer *s = e->sleeping.head, *next; s; s = next) {
    next = s->next;
    if (s->run->retry_at <= now) { /* its turn comes before the others of its priority */
      xlist_remove(&e->sleeping, s);
      s->phase = PH_WAITING;
      xq_push_front(&e->waiting, s);
      wait = 0;
    } else if (s->run->retry_at - now < wait) {
      wait = s->run->retry_at - now;
    }
  }
  dt_xfer *x = e->running.head;
  while (x) {
    dt_xfer *next = x->next;
    long stall = x->opts->stall_timeout_ms;
    if (x->run->nsegs) {
      double w = seg_timers(e, x, now);
      if (w < wait) wait = w;
      if (now - x->run->seg_saved_at >= 500) seg_save(x);
    }
    if (x->run->resume_at > 0 && x->run->easy) {
      if (now < 0) now = mono_ms();
      double left = x->run->resume_at - now;
      if (left > 0) {
        if (left < wait) wait = left;
        x = next;
        continue;
      }
      x->run->resume_at = 0;
      x->run->last_byte = x->run->main_last_byte = now; /* a pause of ours is not a stall */
      /* delivers what libcurl kept: write_body runs, and may pause again or
       * fail (a write error comes back here, not through the multi handle) */
      CURLcode prc = curl_easy_pause(x->run->easy, CURLPAUSE_CONT);
      if (x->run->nsegs && x->run->segs[0].pos == x->run->segs[0].end && !x->run->fail_err) {
        seg_main_end(e, x, CURLE_OK); /* it wrote the end of its range and stopped */
        wait = 0;
        x = next;
        continue;
      }
      if (prc != CURLE_OK || x->run->fail_err) {
        char reason[512];
        int err = map_error(x, prc != CURLE_OK ? prc : CURLE_WRITE_ERROR, reason, sizeof reason);
        if (x->run->easy) fill_profile(x, &x->run->res->profile);
        fail(e, x, err, reason);
        wait = 0;
        x = next;
        continue;
      }
      if (x->run->resume_at > 0) {
        left = x->run->resume_at - now;
        if (left < wait) wait = left;
        x = next;
        continue;
      }
    }
    if (stall > 0 && x->run->easy) {
      if (now < 0) now = mono_ms();
      /* segmented: the main connection's own bytes (the ranges have theirs) */
      double left = (x->run->nsegs ? x->run->main_last_byte : x->run->last_byte) + (double)stall - now;
      if (left <= 0 && x->run->nsegs) {
        seg_main_end(e, x, CURLE_OPERATION_TIMEDOUT); /* its range is asked again on its own */
        wait = 0;
      } else if (left <= 0) {
        char why[80];
        timeout_reason(x->opts, NULL, why, sizeof why);
        fail(e, x, DT_ERR_TIMEOUT, why);
        wait = 0; /* a slot is free: start the next one now */
      } else if (left < wait) wait = left;
    }
    x = next;
  }
  return wait > 0 ? (int)wait + 1 : 0;
}

/* curl_multi_poll, also waiting for connections to the notifier socket once
 * there is one, and accepting them */
static void engine_notify_poll(dt_engine *e, int wait) {
  int fd = notify_listen_fd(&e->notify);
  int extra = fd >= 0;
  struct curl_waitfd w = {.fd = extra ? (curl_socket_t)fd : CURL_SOCKET_BAD, .events = CURL_WAIT_POLLIN};
  curl_multi_poll(e->multi, extra ? &w : NULL, (unsigned)extra, wait, NULL);
  if (extra && w.revents) notify_accept(&e->notify);
}

static void *engine_main(void *arg) {
  dt_engine *e = arg;
  for (;;) {
    pthread_mutex_lock(&e->mu);
    int stop = e->shutdown;
    pthread_mutex_unlock(&e->mu);
    if (stop) break;
    take_commands(e);
    start_waiting(e);
    int still;
    curl_multi_perform(e->multi, &still);
    open_ahead(e);
    reap(e);
    start_waiting(e);
    int wait = check_timers(e); /* last: it sees the pauses this round made */
    /* Nothing running or sleeping, and every queued transfer was passed over
     * by the last start_waiting for its destination (whose writer can then
     * only be paused; check_timers may have queued a retry since, which is
     * not passed over): only the binding can move anything (resume, abort).
     * A blocking run() or await must hear it when something is queued (with
     * nothing queued, the binding knows by itself: every task it has not
     * seen end is paused). */
    int stuck = e->running.n == 0 && e->sleeping.n == 0 && !e->start_oom &&
                e->waiting.n == e->start_skipped;
    pthread_mutex_lock(&e->mu);
    int now_stuck = stuck && e->cmd_head == NULL;
    int tell = now_stuck && !e->stuck && !e->wake_sent && e->waiting.n > 0;
    e->stuck = now_stuck;
    if (tell) e->wake_sent = 1;
    pthread_mutex_unlock(&e->mu);
    if (tell) wake_lua(e);
    if (e->wake_due) {
      /* Progress alone wakes a waiting Lua thread (run, await, an OpenResty
       * worker's poller) at most once per WAKE_PROGRESS_MS (or the shortest
       * progressInterval among the news, when that is shorter): with many
       * downloads each round has some, and every wake-up costs the waiter a
       * round of its own (an OpenResty worker: time its requests wait). A
       * task's progress is published at most once per progressInterval, so
       * with the default 100 ms each still sees every one, at most 50 ms
       * late. Headers, ends and aborts wake it at once. */
      double now = mono_ms();
      double window = e->wake_window_set && e->wake_window < WAKE_PROGRESS_MS ? e->wake_window : WAKE_PROGRESS_MS;
      if (e->wake_urgent || now - e->last_wake >= window) {
        e->wake_due = e->wake_urgent = 0;
        e->wake_window_set = 0;
        e->last_wake = now;
        wake_lua(e);
      } else {
        int left = (int)(e->last_wake + window - now) + 1;
        if (left < wait) wait = left;
      }
    }
    /* OpenResty's pollers wait on the notifier with a read timeout, which their worker logs
     * as an error: while downloads are live they get a byte at least every second */
    if (e->running.n || e->sleeping.n || e->paused.n || e->waiting.n) {
      double left = notify_beat(&e->notify, mono_ms(), NOTIFY_BEAT_MS);
      if (left < wait) wait = (int)left + 1;
    }
    engine_notify_poll(e, wait);
  }
  take_commands(e);
  while (e->running.head) drop(e, e->running.head);
  while (e->sleeping.head) drop(e, e->sleeping.head);
  while (e->paused.head) drop(e, e->paused.head);
  while (e->waiting.root) drop(e, xq_first(&e->waiting));
  for (int i = 0; i < e->nahead; i++) xfer_unref(e->ahead[i]);
  e->nahead = 0;
  while (e->gather_nfree > 0) free(e->gather_free[--e->gather_nfree]);
  files_scans_free(&e->scans);
  return NULL;
}

/* ---- the binding's side ----------------------------------------------- */

dt_engine *engine_new(const char **why) {
  pthread_once(&curl_once, init_curl);
  if (curl_init_rc != CURLE_OK) {
    *why = "libcurl could not be initialised";
    return NULL;
  }
  dt_engine *e = calloc(1, sizeof *e);
  if (!e) {
    *why = "not enough memory";
    return NULL;
  }
  if (plat_wake_open(&e->wake) != 0) {
    *why = "cannot create a pipe";
    free(e);
    return NULL;
  }
  e->max_concurrent = 10;
  e->pid = plat_pid();
  pthread_mutex_init(&e->mu, NULL);
  notify_init(&e->notify);
  e->multi = curl_multi_init();
  if (e->multi) plat_cloexec_sockets_above(e->wake.r > e->wake.w ? (int)e->wake.r : (int)e->wake.w);
  /* On POSIX the thread runs with every asynchronous signal blocked: a
   * host's handler (lua.c's SIGINT one touches its lua_State) never runs on
   * it, and a write to a FIFO whose reader left, or past RLIMIT_FSIZE, fails
   * with EPIPE or EFBIG instead of raising SIGPIPE or SIGXFSZ. */
  int started = e->multi && plat_thread_start(&e->thread, engine_main, e) == 0;
  if (!started) {
    *why = e->multi ? "cannot start the engine thread" : "libcurl multi handle";
    if (e->multi) curl_multi_cleanup(e->multi);
    plat_wake_close(&e->wake);
    notify_close(&e->notify);
    pthread_mutex_destroy(&e->mu);
    free(e);
    return NULL;
  }
  return e;
}

static void unref_list(dt_xfer *x, int ready) {
  while (x) {
    dt_xfer *next = ready ? x->next_ready : x->next_cmd;
    xfer_unref(x);
    x = next;
  }
}

void engine_free(dt_engine *e) {
  if (!e) return;
  pthread_mutex_lock(&e->mu);
  e->shutdown = 1;
  pthread_mutex_unlock(&e->mu);
  curl_multi_wakeup(e->multi);
  pthread_join(e->thread, NULL);
  /* commands that came after the thread's last look, and unread news */
  unref_list(e->cmd_head, 0);
  unref_list(e->ready_head, 1);
  curl_multi_cleanup(e->multi);
  plat_wake_close(&e->wake);
  notify_close(&e->notify);
  pthread_mutex_destroy(&e->mu);
  free(e);
}

int engine_owned_here(dt_engine *e) { return e->pid == plat_pid(); }

void engine_rearm(dt_engine *e) {
  pthread_mutex_lock(&e->mu);
  int wake = !e->wake_sent;
  e->wake_sent = 1;
  pthread_mutex_unlock(&e->mu);
  if (wake) wake_lua(e);
}

/* The parent's engine in a fork()ed child: its thread does not exist here and
 * its mutex may be held forever, so only the descriptors are closed. */
void engine_forget(dt_engine *e) {
  plat_wake_close(&e->wake);
  notify_forget(&e->notify);
}

const char *engine_notify_path(dt_engine *e, const char **why) {
  const char *path = notify_open(&e->notify, why);
  if (path) curl_multi_wakeup(e->multi); /* the thread's next wait includes it */
  return path;
}
int engine_fd(dt_engine *e) { return plat_wake_fd(&e->wake); }

int engine_stuck(dt_engine *e) {
  pthread_mutex_lock(&e->mu);
  int s = e->stuck;
  pthread_mutex_unlock(&e->mu);
  return s;
}

void engine_set_max_per_host(dt_engine *e, long n) {
  pthread_mutex_lock(&e->mu);
  e->max_per_host = n;
  pthread_mutex_unlock(&e->mu);
  curl_multi_wakeup(e->multi);
}

void engine_set_max_concurrent(dt_engine *e, long n) {
  pthread_mutex_lock(&e->mu);
  e->max_concurrent = n;
  pthread_mutex_unlock(&e->mu);
  curl_multi_wakeup(e->multi);
}

/* Queues a command; returns whether the engine must be woken for it. A
 * list that was not empty already has a wakeup on its way (curl_multi_poll
 * keeps it until it returns) and is taken whole: 10,000 downloadFile calls
 * in a row make one wakeup, not 10,000. */
static int command_locked(dt_engine *e, dt_xfer *x) {
  if (x->in_cmd) return 0;
  x->in_cmd = 1;
  atomic_fetch_add(&x->refs, 1);
  x->next_cmd = NULL;
  int was_empty = e->cmd_head == NULL;
  e->stuck = 0; /* until the engine has seen this command */
  if (e->cmd_tail) e->cmd_tail->next_cmd = x;
  else e->cmd_head = x;
  e->cmd_tail = x;
  return was_empty;
}

dt_xfer *engine_submit(dt_engine *e, dt_opts *opts, void *owner) {
  dt_xfer *x = calloc(1, sizeof *x);
  if (!x) {
    dt_opts_free(opts);
    return NULL;
  }
  x->engine = e;
  atomic_init(&x->refs, 2); /* the caller's and the engine's */
  x->opts = opts;
  x->owner = owner;
  x->phase = PH_NEW;
  /* a relative filePath is the caller's working directory's, now: a chdir
   * before the download starts or lands does not move it (without memory
   * for it, the directory of the moment it starts) */
  if (opts->file_path && !plat_is_absolute(opts->file_path)) x->cwd = files_cwd();
  pthread_mutex_lock(&e->mu);
  int wake = command_locked(e, x);
  pthread_mutex_unlock(&e->mu);
  if (wake) curl_multi_wakeup(e->multi);
  return x;
}

void engine_abort(dt_engine *e, dt_xfer *x) {
  pthread_mutex_lock(&e->mu);
  if (!x->abort_req) x->abort_req = 1;
  int wake = command_locked(e, x);
  pthread_mutex_unlock(&e->mu);
  if (wake) curl_multi_wakeup(e->multi);
}

void engine_pause(dt_engine *e, dt_xfer *x, int paused) {
  pthread_mutex_lock(&e->mu);
  x->pause_req = paused != 0;
  int wake = command_locked(e, x);
  pthread_mutex_unlock(&e->mu);
  if (wake) curl_multi_wakeup(e->multi);
}

void engine_set_rate_limit(dt_engine *e, int64_t bytes_per_second) {
  pthread_mutex_lock(&e->mu);
  e->rate_limit_req = bytes_per_second > 0 ? bytes_per_second : 0;
  pthread_mutex_unlock(&e->mu);
  curl_multi_wakeup(e->multi);
}

void engine_release(dt_engine *e, dt_xfer *x) {
  if (e) {
    pthread_mutex_lock(&e->mu);
    x->owner = NULL;
    pthread_mutex_unlock(&e->mu);
  }
  xfer_unref(x);
}

void engine_take(dt_engine *e, dt_take_fn fn, void *ud) {
  plat_wake_drain(&e->wake);
  pthread_mutex_lock(&e->mu);
  dt_xfer *list = e->ready_head;
  e->ready_head = e->ready_tail = NULL;
  e->wake_sent = 0;
  for (dt_xfer *x = list; x; x = x->next_ready) {
    x->in_ready = 0;
    x->next_taken_ready = x->next_ready;
    if (x->owner && x->pub.events) fn(x->owner, &x->pub, ud);
  }
  pthread_mutex_unlock(&e->mu);
  unref_taken(list, 1);
}

/* Waits up to ms (< 0: no limit) for the wake-up object. */
void engine_wait(dt_engine *e, int ms) { plat_wake_wait(&e->wake, ms); }
