/*
 * engine.c: the download engine. Owns the CURLM, every CURL easy handle and
 * every file descriptor of a download, on a native thread of its own, started
 * with the engine. Never includes lua.h.
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

static double epoch_ms(void) { return plat_epoch_ms(); }
double mono_ms(void) { return plat_mono_ms(); }

/* ---- small helpers ---------------------------------------------------- */

static void xlist_push(xlist *l, dt_xfer *x) {
  x->next = NULL;
  x->prev = l->tail;
  if (l->tail) l->tail->next = x;
  else l->head = x;
  l->tail = x;
  l->n++;
}

static void xlist_remove(xlist *l, dt_xfer *x) {
  if (x->prev) x->prev->next = x->next;
  else l->head = x->next;
  if (x->next) x->next->prev = x->prev;
  else l->tail = x->prev;
  x->prev = x->next = NULL;
  l->n--;
}

static int xq_before(const dt_xfer *a, const dt_xfer *b) {
  return a->opts->priority != b->opts->priority ? a->opts->priority > b->opts->priority
                                                : a->seq < b->seq;
}

/* Links two heap roots; returns the new root. */
static dt_xfer *xq_link(dt_xfer *a, dt_xfer *b) {
  if (!a) return b;
  if (!b) return a;
  if (xq_before(b, a)) {
    dt_xfer *t = a;
    a = b;
    b = t;
  }
  b->next = a->child;
  if (a->child) a->child->prev = b;
  b->prev = a;
  a->child = b;
  a->prev = a->next = NULL;
  return a;
}

/* The two-pass pairing of a sibling list into one heap (iterative: no
 * recursion however long the list). */
static dt_xfer *xq_pairs(dt_xfer *first) {
  dt_xfer *pairs = NULL;
  while (first) {
    dt_xfer *a = first, *b = a->next;
    first = b ? b->next : NULL;
    a->prev = a->next = NULL;
    if (b) b->prev = b->next = NULL;
    dt_xfer *m = xq_link(a, b);
    m->next = pairs;
    pairs = m;
  }
  dt_xfer *root = NULL;
  while (pairs) {
    dt_xfer *n = pairs->next;
    pairs->next = NULL;
    root = xq_link(root, pairs);
    pairs = n;
  }
  return root;
}

/* Inserts x with the seq it has (a transfer put back keeps its place). */
static void xq_insert(xqueue *q, dt_xfer *x) {
  x->child = x->prev = x->next = NULL;
  q->root = xq_link(q->root, x);
  q->n++;
}

/* After the transfers of its priority queued so far. */
static void xq_push(xqueue *q, dt_xfer *x) {
  x->seq = ++q->back;
  xq_insert(q, x);
}

/* Before the transfers of its priority queued so far. */
static void xq_push_front(xqueue *q, dt_xfer *x) {
  x->seq = --q->front;
  xq_insert(q, x);
}

static void xq_remove(xqueue *q, dt_xfer *x) {
  if (x == q->root) {
    q->root = xq_pairs(x->child);
  } else {
    if (x->prev->child == x) x->prev->child = x->next;
    else x->prev->next = x->next;
    if (x->next) x->next->prev = x->prev;
    q->root = xq_link(q->root, xq_pairs(x->child));
  }
  x->child = x->prev = x->next = NULL;
  q->n--;
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
static void drop_ahead(xrun *r);

static void run_free(dt_xfer *x) {
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
  free(r->hbuf);
  plat_sha256_free(r->md);
  free(r);
}

static void xfer_free(dt_xfer *x) {
  free(x->cwd);
  files_dest_free(&x->dest);
  free(x->dest_reason);
  free(x->pub.headers);
  dt_result_discard(x->pub.result);
  run_free(x);
  dt_opts_free(x->opts);
  free(x);
}

static void xfer_unref(dt_xfer *x) {
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
  if (x->run) x->pub.attempts = x->run->attempt;
  if (h) { /* an earlier attempt's headers Lua has not taken yet: only the last counts */
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

/* ---- files ------------------------------------------------------------ */

static void set_fail(dt_xfer *x, int err, const char *fmt, const char *arg) {
  x->run->fail_err = err;
  snprintf(x->run->fail_reason, sizeof x->run->fail_reason, fmt, arg);
}

void file_error(dt_xfer *x, int e, const char *path) {
  x->run->fail_err = files_error(e, NULL, path, x->run->fail_reason, sizeof x->run->fail_reason);
}

static unsigned next_rand(void) { return files_rand(); }

/* filePath's final target, once, before the transfer first starts (the
 * queue needs it: one destination, one writer). */
static void resolve_dest(dt_xfer *x) {
  if (x->dest_done || !x->opts->file_path) return;
  x->dest_done = 1;
  char reason[512];
  char *abs = x->cwd ? files_join(x->cwd, x->opts->file_path) : NULL;
  const char *path = abs ? abs : x->opts->file_path;
  if ((x->opts->create_dirs && files_make_dirs(path, &x->dest_err, reason, sizeof reason) != 0) ||
      files_resolve(path, &x->dest, &x->dest_err, reason, sizeof reason) != 0)
    x->dest_reason = strdup(reason); /* NULL: start() says "out of memory" */
  free(abs);
}

/* A new temporary file beside the destination, after sweeping that
 * directory of the ones dead processes left. */
static int open_part(dt_engine *e, dt_xfer *x) {
  files_sweep(&e->scans, x->dest.dir);
  int fd = files_temp(x->dest.dir, &x->run->part_path);
  if (fd < 0) file_error(x, errno, x->dest.path);
  return fd;
}

/* The destination itself, for a FIFO or a character device: no temporary
 * file and no rename. A FIFO nobody reads fails at once (ENXIO) instead of
 * blocking the engine thread in open(). */
static int open_inplace(dt_xfer *x) {
  int fd = plat_open_inplace(x->dest.path);
  if (fd < 0) {
    if (errno == ENXIO) set_fail(x, DT_ERR_SAVE, "save file error: FIFO has no reader: %s", x->dest.path);
    else file_error(x, errno, x->dest.path);
    return -1;
  }
  x->run->inplace = 1;
  return fd;
}

/* A private (0600) file under tempDir, for bodies that are not the
 * destination's. */
/* A new private file: its descriptor and *path, or -1 with errno (ENOMEM:
 * no memory for the name). */
static int make_private(dt_xfer *x, char **path) {
  size_t n = strlen(x->opts->shared->temp_dir) + 32;
  char *p = malloc(n);
  if (!p) {
    errno = ENOMEM;
    return -1;
  }
  int fd = -1;
  errno = EEXIST;
  for (int tries = 0; fd < 0 && errno == EEXIST && tries < 100; tries++) {
    snprintf(p, n, "%s%cdownloadtask-%08x", x->opts->shared->temp_dir, plat_sep(x->opts->shared->temp_dir),
             next_rand());
    fd = plat_open_write(p, PLAT_EXCL | PLAT_PRIVATE);
  }
  if (fd < 0) {
    int err = errno;
    free(p);
    errno = err;
    return -1;
  }
  *path = p;
  return fd;
}

/* The body's private file: the one made ahead, or a new one. */
static int open_private(dt_xfer *x) {
  char *p = x->run->ahead_path;
  int fd = x->run->ahead_fd;
  x->run->ahead_fd = -1;
  x->run->ahead_path = NULL;
  if (fd < 0 && (fd = make_private(x, &p)) < 0) {
    if (errno == ENOMEM) set_fail(x, DT_ERR_SAVE, "save file error: %s", "out of memory");
    else file_error(x, errno, x->opts->shared->temp_dir);
    return -1;
  }
  free(x->run->body_path);
  x->run->body_path = p;
  return fd;
}

/* Removes a private file made ahead that no body took (a 304, a retry's
 * discarded body, a failure, an abort). */
static void drop_ahead(xrun *r) {
  if (r->ahead_fd < 0) return;
  plat_close(r->ahead_fd);
  plat_unlink(r->ahead_path);
  free(r->ahead_path);
  r->ahead_fd = -1;
  r->ahead_path = NULL;
}

/* Makes the private files of the downloads started this round, now that
 * their requests are on their way: creating a file (an inode, a directory
 * entry) takes tens of microseconds, and on a file system busy with
 * deletions (ext4 skipping recently freed inodes) a few hundred; made here,
 * it overlaps the server's answer instead of delaying the body. A failure
 * is left for the body's own open_private to report. */
static void open_ahead(dt_engine *e) {
  for (int i = 0; i < e->nahead; i++) {
    dt_xfer *x = e->ahead[i];
    xrun *r = x->run;
    if (x->phase == PH_RUNNING && r && r->easy && !r->body_started && r->ahead_fd < 0) {
      char *p = NULL;
      int fd = make_private(x, &p);
      if (fd >= 0) {
        r->ahead_fd = fd;
        r->ahead_path = p;
      }
    }
    xfer_unref(x);
  }
  e->nahead = 0;
}

/* ---- writing the body (engine thread) --------------------------------- */

/* Writes body bytes to the file, then hashes them: the digest describes
 * only bytes that reached the file. 0 (with errno) when that failed. */
static int emit(dt_xfer *x, const char *buf, size_t len) {
  if (!plat_write_all(x->run->fd, buf, len)) return 0;
  if (x->run->md && !plat_sha256_update(x->run->md, buf, len)) {
    errno = ENOMEM;
    return 0;
  }
  return 1;
}

/* A pool buffer for x's body, when it is worth one and one is free. */
static void gather_begin(dt_engine *e, dt_xfer *x) {
  if (x->run->wbuf || x->run->fd < 0 || x->run->total < GATHER_MIN) return;
  if (e->gather_nfree > 0) x->run->wbuf = e->gather_free[--e->gather_nfree];
  else if (e->gather_made < GATHER_POOL && (x->run->wbuf = malloc(GATHER_BUF)) != NULL) e->gather_made++;
  x->run->wlen = 0;
}

/* Writes what x has gathered; 0 (with errno) when that failed. */
static int gather_flush(dt_xfer *x) {
  size_t n = x->run->wlen;
  x->run->wlen = 0;
  if (n == 0 || emit(x, x->run->wbuf, n)) return 1;
  if (x->run->nsegs && !x->run->main_over) x->run->segs[0].pos -= (int64_t)n; /* not held */
  return 0;
}

/* Gives x's buffer back to the pool; what it held is dropped. */
static void gather_end(dt_xfer *x) {
  if (!x->run->wbuf) return;
  dt_engine *e = x->engine;
  e->gather_free[e->gather_nfree++] = x->run->wbuf;
  x->run->wbuf = NULL;
  x->run->wlen = 0;
}

/* The end of a body received whole: its last gathered bytes are written.
 * 0, or -1 with errno. */
int gather_flush_end(dt_xfer *x) {
  int ok = !x->run->wbuf || gather_flush(x);
  gather_end(x); /* only returns the buffer to the pool: errno stays */
  return ok ? 0 : -1;
}

/* Closes the body's file and removes it; with `resume` the part file beside
 * the destination is kept on purpose, for the next attempt or download,
 * with every byte received (an empty one is not worth keeping). */
static void close_body(dt_xfer *x) {
  drop_ahead(x->run);
  int keep = x->opts->resume && x->run->part_path && !x->run->inplace;
  int flushed = 1;
  if (x->run->wbuf && x->run->fd >= 0 && keep && x->run->to_dest) flushed = gather_flush(x);
  gather_end(x);
  if (keep && x->run->nsegs && x->run->fd >= 0) {
    /* ranges leave gaps: the info file says which bytes the part holds */
    keep = flushed && x->run->seg_validator;
    if (keep) seg_save(x);
  }
  if (x->run->fd >= 0) {
    if (keep && plat_size(x->run->fd) == 0) keep = 0;
    plat_close(x->run->fd);
    x->run->fd = -1;
  }
  if (x->run->body_path && (!x->run->part_path || strcmp(x->run->body_path, x->run->part_path) != 0))
    plat_unlink(x->run->body_path); /* a private file */
  if (x->run->part_path && !keep) {
    plat_unlink(x->run->part_path);
    if (x->opts->resume) files_write_validator(&x->dest, NULL, -1);
  }
  free(x->run->body_path);
  x->run->body_path = NULL;
  free(x->run->part_path);
  x->run->part_path = NULL;
  x->run->held = 0;
  free(x->run->held_validator);
  x->run->held_validator = NULL;
}

/* ---- resume ----------------------------------------------------------- */

/* The value of a final-response header collected so far, or NULL. */
static const char *find_header(dt_xfer *x, const char *name) {
  const char *p = x->run->hbuf;
  for (size_t i = 0; p && i < x->run->hcount; i++) {
    const char *v = p + strlen(p) + 1;
    if (strcmp(p, name) == 0) return v;
    p = v + strlen(v) + 1;
  }
  return NULL;
}

/* Feeds the bytes already in the part file to the checksum. */
static int hash_existing(dt_xfer *x) {
  char buf[65536];
  for (int64_t off = 0; off < x->run->offset;) {
    long long n = plat_pread(x->run->fd, buf, sizeof buf, off);
    if (n <= 0 || !plat_sha256_update(x->run->md, buf, (size_t)n)) return 0;
    off += n;
  }
  return 1;
}

/* Lets go of the ranges the resume part's info file recorded (seg_split
 * took them up, or they no longer apply). */
void forget_map(xrun *r) {
  free(r->rmap);
  r->rmap = NULL;
  r->nrmap = 0;
}

/* Empties the resume part: what it holds cannot be continued. */
static int restart_part(dt_xfer *x) {
  if (x->opts->resume) files_write_validator(&x->dest, NULL, -1);
  x->run->offset = 0;
  forget_map(x->run);
  if (x->run->fd < 0) return 1;
  if (plat_truncate0(x->run->fd) != 0) return 0;
  return !x->run->md || plat_sha256_init(x->run->md);
}

/* Opens the destination's resume part to continue it; returns the
 * descriptor and sets x->run->offset (0 when there is nothing it may safely
 * continue). */
static int open_resume_part(dt_engine *e, dt_xfer *x, char **validator) {
  files_sweep(&e->scans, x->dest.dir);
  char *p = files_part_path(&x->dest, ".part");
  if (!p) {
    set_fail(x, DT_ERR_SAVE, "save file error: %s", "out of memory");
    return -1;
  }
  /* only a regular file is a part: something else under that name (a FIFO)
   * must neither block the engine thread in open() nor take its writes */
  int fd = plat_open_write(p, PLAT_RDWR | PLAT_CREATE | PLAT_REGULAR_ONLY);
  if (fd < 0 && errno == PLAT_ENOTREG) {
    set_fail(x, DT_ERR_SAVE, "save file error: the resume part is not a regular file: %s", p);
    free(p);
    return -1;
  }
  if (fd < 0) {
    file_error(x, errno, x->dest.path);
    free(p);
    return -1;
  }
  x->run->part_path = p;
  long long end = plat_seek_end(fd);
  const char *ranges = NULL;
  forget_map(x->run);
  long long length = -1;
  *validator = end > 0 ? files_read_validator(&x->dest, &ranges, &length) : NULL;
  x->run->part_length = *validator ? length : -1;
  if (*validator && ranges) { /* a segmented part: it goes on from its first gap */
    int64_t prefix = seg_read_map(x, ranges, end);
    if (prefix < 0 || plat_seek_to(fd, prefix) != 0) {
      free(*validator); /* ranges it cannot trust: nothing in it is kept */
      *validator = NULL;
    } else {
      end = prefix;
    }
  }
  if (end <= 0 || !*validator) { /* nothing, or nothing to guard a splice with */
    if (plat_truncate0(fd) != 0) {
      file_error(x, errno, x->dest.path);
      plat_close(fd);
      return -1;
    }
    end = 0;
  }
  x->run->offset = end;
  return fd;
}

/* ---- headers ---------------------------------------------------------- */

static int hbuf_add(dt_xfer *x, const char *s, size_t n) {
  if (x->run->hlen + n + 1 > x->run->hcap) {
    size_t cap = x->run->hcap ? x->run->hcap * 2 : 1024;
    while (cap < x->run->hlen + n + 1) cap *= 2;
    char *b = realloc(x->run->hbuf, cap);
    if (!b) return 0;
    x->run->hbuf = b;
    x->run->hcap = cap;
  }
  memcpy(x->run->hbuf + x->run->hlen, s, n);
  x->run->hbuf[x->run->hlen + n] = '\0';
  x->run->hlen += n + 1;
  return 1;
}

/* A response with more headers than MAX_HEADERS (or MAX_HEADER_BYTES in
 * all) fails rather than losing some silently. */
static size_t too_many_headers(dt_xfer *x) {
  set_fail(x, DT_ERR_NETWORK, "%s", "the response had too many headers");
  return 0;
}

static size_t on_header(char *buf, size_t size, size_t n, void *ud) {
  dt_xfer *x = ud;
  size_t len = size * n;
  if (x->run->body_started) return len; /* trailers are not the response's headers */
  if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) { /* a new response begins */
    x->run->hlen = x->run->hcount = 0;
    return len;
  }
  size_t end = len;
  while (end > 0 && (buf[end - 1] == '\r' || buf[end - 1] == '\n')) end--;
  if (end == 0) return len;
  if (buf[0] == ' ' || buf[0] == '\t') {
    /* obsolete line folding: the line continues the previous header's
     * value, joined with one space */
    size_t v = 0;
    while (v < end && (buf[v] == ' ' || buf[v] == '\t')) v++;
    size_t vend = end;
    while (vend > v && (buf[vend - 1] == ' ' || buf[vend - 1] == '\t')) vend--;
    if (x->run->hcount == 0 || vend == v) return len;
    if (x->run->hlen + (vend - v) + 2 > MAX_HEADER_BYTES) return too_many_headers(x);
    x->run->hlen--; /* the value's terminator goes: the value continues */
    if (x->run->hbuf[x->run->hlen - 1] != '\0') { /* after a space, unless it was empty */
      if (!hbuf_add(x, " ", 1)) return 0;
      x->run->hlen--;
    }
    if (!hbuf_add(x, buf + v, vend - v)) return 0;
    return len;
  }
  char *colon = memchr(buf, ':', end);
  if (!colon || colon == buf) return len;
  size_t nlen = (size_t)(colon - buf);
  size_t v = nlen + 1;
  while (v < end && (buf[v] == ' ' || buf[v] == '\t')) v++;
  size_t vend = end;
  while (vend > v && (buf[vend - 1] == ' ' || buf[vend - 1] == '\t')) vend--;
  if (x->run->hcount >= MAX_HEADERS || x->run->hlen + end + 2 > MAX_HEADER_BYTES)
    return too_many_headers(x);
  size_t at = x->run->hlen;
  if (!hbuf_add(x, buf, nlen) || !hbuf_add(x, buf + v, vend - v)) return 0;
  for (size_t i = 0; i < nlen; i++) {
    char c = x->run->hbuf[at + i];
    if (c >= 'A' && c <= 'Z') x->run->hbuf[at + i] = (char)(c + 32);
  }
  x->run->hcount++;
  return len;
}

static dt_headers *make_headers(dt_xfer *x, long status) {
  dt_headers *h = malloc(sizeof *h + x->run->hlen + 1);
  if (!h) return NULL;
  h->status = status;
  h->count = x->run->hcount;
  h->len = x->run->hlen;
  if (x->run->hlen) memcpy(h->data, x->run->hbuf, x->run->hlen);
  h->data[x->run->hlen] = '\0';
  return h;
}

/* The resume part's recorded ranges are not used: the part is cut at its
 * first gap (keep), and only then does the info file lose the ranges line
 * (in between, the ranges claim bytes past the part's size, which
 * seg_read_map refuses). 0 (fail set) when the cut failed. */
static int drop_map(dt_xfer *x, int64_t keep) {
  forget_map(x->run);
  if (!x->run->to_dest || x->run->inplace) return 1; /* not this body's file: the part stays as it is */
  if (plat_set_size(x->run->fd, keep) != 0) {
    file_error(x, errno, x->dest.path);
    return 0;
  }
  files_write_validator(&x->dest, keep > 0 ? body_validator(x) : NULL, x->run->total);
  return 1;
}

/* The first body byte (or the end of a bodiless response) fixes the final
 * response: choose the file for its body and publish its headers. */
static int retry_status(long status) { return status >= 500 || status == 429 || status == 408; }

/* Whether another attempt may follow this one: the attempts resume() started
 * are not retries. */
int attempts_left(const dt_xfer *x) { return x->run->attempt - x->run->resumes <= x->opts->retry; }

static int begin_body(dt_engine *e, dt_xfer *x) {
  long status = 0;
  curl_easy_getinfo(x->run->easy, CURLINFO_RESPONSE_CODE, &status);
  x->run->body_started = 1;
  if (retry_status(status) && attempts_left(x)) {
    x->run->discard = x->run->retry_pending = 1; /* another attempt follows: nobody sees this one */
    return 1;
  }
  curl_off_t cl = -1;
  curl_easy_getinfo(x->run->easy, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
  int64_t had = x->run->offset, total = -2; /* -2: from Content-Length */
  if ((x->opts->resume || x->run->held) && x->run->part_path) {
    /* the one decision (ranges.c): may this answer's bytes join the part? */
    ranges_verdict verdict = RANGES_WHOLE;
    long long t = -1;
    if (x->run->ranged && had > 0) {
      ranges_part p = {had, x->run->part_length, x->run->if_range};
      ranges_answer a = {status, find_header(x, "content-range"), find_header(x, "etag"),
                         find_header(x, "last-modified")};
      verdict = ranges_decide(&p, &a, &t);
    }
    if (verdict == RANGES_COMPLETE) {
      /* the part was complete already: it is the body (its digest, fed
       * from the part, is checked like any body's) */
      x->run->discard = 1;
      x->run->to_dest = x->run->complete_part = 1;
      x->run->written = had;
      x->run->body_path = strdup(x->run->part_path);
      return x->run->body_path != NULL; /* fd stays: finish_rc seals the file */
    }
    if (verdict == RANGES_START_OVER && status == 206) {
      /* another version, length or place: appending would splice two bodies.
       * The part is emptied, and the next attempt (retry) or download starts over */
      if (!restart_part(x)) {
        file_error(x, errno, x->dest.path);
        return 0;
      }
      x->run->retry_fail = 1;
      /* after a pause the download starts over: that is no retry */
      if (x->run->resumed) x->run->resumes++;
      x->run->resumed = 0;
      set_fail(x, DT_ERR_NETWORK, "%s", "the server's 206 does not continue the partial file");
      return 0;
    }
    if (verdict == RANGES_APPEND) {
      total = t;
    } else if ((verdict == RANGES_START_OVER || status / 100 == 2) && had > 0) {
      /* a whole new body, or a 416 that is not this part's: the part is useless */
      if (!restart_part(x)) {
        file_error(x, errno, x->dest.path);
        return 0;
      }
      had = 0;
    }
  }
  if (status == DT_NOT_MODIFIED) { /* the caller's copy is current: no file at all */
    if (x->run->fd >= 0 && !x->run->part_path) { /* in place: nothing to write */
      plat_close(x->run->fd);
      x->run->fd = -1;
    }
    if (x->run->part_path) {
      plat_close(x->run->fd);
      x->run->fd = -1;
      if (!x->opts->resume) plat_unlink(x->run->part_path);
      free(x->run->part_path);
      x->run->part_path = NULL;
    }
  } else if (status / 100 == 2 && x->run->inplace) {
    x->run->to_dest = 1; /* written where it stands */
  } else if (status / 100 == 2 && x->run->part_path) {
    x->run->to_dest = 1;
    x->run->body_path = strdup(x->run->part_path);
    if (!x->run->body_path) {
      set_fail(x, DT_ERR_SAVE, "save file error: %s", "out of memory");
      return 0;
    }
  } else {
    if (x->run->inplace) { /* not the destination's body: it is not written there */
      plat_close(x->run->fd);
      x->run->fd = -1;
      x->run->inplace = 0;
    }
    if (x->run->part_path) { /* this body never replaces the destination */
      int keep = x->opts->resume && plat_size(x->run->fd) > 0;
      plat_close(x->run->fd);
      x->run->fd = -1;
      if (!keep) plat_unlink(x->run->part_path);
      if (!keep && x->opts->resume) files_write_validator(&x->dest, NULL, -1);
      free(x->run->part_path);
      x->run->part_path = NULL;
    }
    x->run->fd = open_private(x);
    if (x->run->fd < 0) return 0;
  }
  int partial = status == 206 && x->run->to_dest && had > 0;
  x->run->written = partial ? had : 0; /* progress counts the bytes already there */
  if (total == -2) /* with a part: what was there, and what comes */
    total = cl < 0 ? -1 : !partial ? cl : cl > INT64_MAX - had ? -1 : had + cl;
  x->run->total = total;
  /* the part's record: what the answer that started the body said (a part with
   * recorded ranges keeps its record until the ranges are taken up or the part
   * is cut at its first gap: a validator alone would vouch for the gaps after a
   * kill -9) */
  if (status / 100 == 2 && x->opts->resume && x->run->part_path && !x->run->rmap)
    files_write_validator(&x->dest, body_validator(x), total);
  /* segments: a body in a file of ours, of a known size, from a server that
   * takes ranges (it says so, or it just answered one) */
  const char *ar = find_header(x, "accept-ranges");
  if (x->run->rmap && !(status == 206 && partial && total == x->run->rmap_total && x->opts->segments > 1) &&
      !drop_map(x, partial ? had : 0)) /* they do not apply: one stream from the first gap */
    return 0;
  /* ... and only a body with a strong validator: each range must be of its version */
  if (x->opts->segments > 1 && !x->run->seg_off && !x->run->discard && x->run->fd >= 0 &&
      !x->run->inplace && x->run->body_path && total > 0 && body_validator(x) &&
      (x->opts->max_file_size < 0 || total <= x->opts->max_file_size) &&
      ((status == 200 && ar && strstr(ar, "bytes")) || (status == 206 && partial)) &&
      !seg_split(x, partial ? had : 0)) {
    set_fail(x, DT_ERR_SAVE, "save file error: %s", "out of memory");
    return 0;
  }
  /* not taken up by seg_split (seg_off, maxFileSize, ...): no gaps may stay */
  if (x->run->rmap && !drop_map(x, partial ? had : 0)) return 0;
  if (!x->run->discard) gather_begin(e, x);
  dt_headers *h = make_headers(x, status);
  if (!h) {
    set_fail(x, DT_ERR_SAVE, "save file error: %s", "out of memory");
    return 0;
  }
  publish(e, x, DT_EV_HEADERS, h, NULL);
  return 1;
}

/* ---- the hot path ----------------------------------------------------- */

/* The bytes per second x may take now (0: no limit): its own rateLimit, and
 * its even share of the global one among the running downloads. */
double rate_of(dt_engine *e, dt_xfer *x) {
  double own = (double)x->opts->rate_limit;
  double k = x->run && x->run->seg_conns > 1 ? (double)x->run->seg_conns : 1; /* per connection */
  if (e->rate_limit <= 0) return own / k;
  double share = (double)e->rate_limit / (double)(e->running.n > 0 ? e->running.n : 1);
  return (own > 0 && own < share ? own : share) / k;
}

static size_t write_body(char *buf, size_t size, size_t n, void *ud) {
  dt_xfer *x = ud;
  size_t len = size * n;
  if (!x->run->body_started && !begin_body(x->engine, x)) return 0;
  if (x->run->discard) return len;
  /* segmented: the main connection writes its range and then stops */
  size_t take = len;
  int stop = 0;
  if (x->run->nsegs && (int64_t)len >= x->run->segs[0].end - x->run->segs[0].pos) {
    take = (size_t)(x->run->segs[0].end - x->run->segs[0].pos);
    stop = 1;
  }
  if (x->opts->max_file_size >= 0 && x->run->written + (int64_t)take > x->opts->max_file_size) {
    set_fail(x, DT_ERR_MAXSIZE, "%s", "exceed max file size");
    return 0;
  }
  x->run->last_byte = x->run->main_last_byte = mono_ms();
  if (x->run->fd < 0) return len; /* a 304's stray body */
  double rate = rate_of(x->engine, x);
  if (rate > 0) {
    /* rateLimit: take this chunk only once the bytes before it are due; until
     * then libcurl keeps it and stops reading, so TCP slows the sender down.
     * The rate may change between chunks (the global limit's share follows
     * the number of running downloads): each chunk pushes the due time by
     * its own length at the rate of the moment. */
    double now = x->run->last_byte;
    if (x->run->rate_due == 0) x->run->rate_due = now;
    else if (x->run->rate_due < now - RATE_SLACK_MS) x->run->rate_due = now - RATE_SLACK_MS;
    if (x->run->rate_due > now + 1) {
      x->run->resume_at = x->run->rate_due;
      return CURL_WRITEFUNC_PAUSE;
    }
    x->run->rate_due += (double)len * 1000.0 / rate;
  }
  int ok;
  if (!x->run->wbuf) {
    ok = emit(x, buf, take);
  } else if (x->run->wlen + take <= GATHER_BUF) {
    memcpy(x->run->wbuf + x->run->wlen, buf, take);
    x->run->wlen += take;
    if (x->run->nsegs) x->run->segs[0].pos += (int64_t)take; /* gathered: counted, and taken back if the flush fails */
    ok = x->run->wlen < GATHER_BUF || gather_flush(x);
    if (x->run->nsegs) x->run->segs[0].pos -= (int64_t)take; /* counted below */
    if (!ok && x->run->nsegs) x->run->segs[0].pos += (int64_t)take; /* gather_flush took them back already */
  } else {
    ok = gather_flush(x) && (take >= GATHER_BUF ? emit(x, buf, take)
                                                : (memcpy(x->run->wbuf, buf, take), x->run->wlen = take, 1));
  }
  if (!ok) {
    file_error(x, errno, x->dest.path ? x->dest.path : x->run->body_path);
    return 0;
  }
  x->run->written += (int64_t)take;
  if (x->run->nsegs) x->run->segs[0].pos += (int64_t)take;
  if (x->run->last_byte - x->run->last_progress >= (double)x->opts->progress_interval_ms) {
    /* progress counts what the file holds: on a slow link or with rateLimit,
     * 256 KiB would take longer than progressInterval to gather */
    if (x->run->wlen > 0 && !gather_flush(x)) {
      file_error(x, errno, x->dest.path ? x->dest.path : x->run->body_path);
      return 0;
    }
    x->run->last_progress = x->run->last_byte;
    publish(x->engine, x, DT_EV_PROGRESS, NULL, NULL);
  }
  return stop ? 0 : len; /* stop: seg_main_end takes it from here */
}

/* ---- starting and finishing ------------------------------------------- */

static void finish(dt_engine *e, dt_xfer *x);

void fail(dt_engine *e, dt_xfer *x, int err, const char *reason) {
  x->run->res->ok = 0;
  x->run->res->err = err;
  free(x->run->res->reason);
  x->run->res->reason = strdup(reason);
  finish(e, x);
}

/* Every socket of a transfer is close-on-exec from the moment it exists: a
 * program started with io.popen or os.execute during a download inherits
 * no connection. */
curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a) {
  (void)ud;
  (void)purpose;
  long long fd = plat_socket(a->family, a->socktype, a->protocol);
  return fd < 0 ? CURL_SOCKET_BAD : (curl_socket_t)fd;
}

/* libcurl guesses a scheme for "host/path"; we take http:// and https:// only. */
static int scheme_ok(const char *url) {
  return curl_strnequal(url, "http://", 7) || curl_strnequal(url, "https://", 8);
}

/* Appends "Name: value" to the request's header list. */
static int add_header(dt_xfer *x, const char *name, const char *value) {
  size_t n = strlen(name) + strlen(value) + 3;
  char *line = malloc(n);
  struct curl_slist *s = NULL;
  if (line) {
    snprintf(line, n, "%s: %s", name, value);
    s = curl_slist_append(x->run->slist, line);
    free(line);
  }
  if (s) x->run->slist = s;
  return s != NULL;
}

/* What a transfer's request and a range's have in common: headers, buffers,
 * callbacks, TLS and the proxy. */
void set_io(CURL *c, const dt_opts *o, struct curl_slist *headers, char *errbuf,
                   curl_write_callback on_head, curl_write_callback on_body, void *ud) {
  curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
  curl_easy_setopt(c, CURLOPT_BUFFERSIZE, (long)RECV_BUFFER);
  curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
  curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_head);
  curl_easy_setopt(c, CURLOPT_HEADERDATA, ud);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, ud);
  if (o->insecure) {
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 0L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 0L);
  }
  if (o->ca_file) curl_easy_setopt(c, CURLOPT_CAINFO, o->ca_file);
  if (o->proxy) curl_easy_setopt(c, CURLOPT_PROXY, o->proxy);
}

static void start(dt_engine *e, dt_xfer *x) {
  const dt_opts *o = x->opts;
  x->phase = PH_RUNNING;
  xlist_push(&e->running, x);
  if (x->run->attempt++ == 0) x->run->fetch_start = epoch_ms();
  /* what an earlier attempt left */
  x->run->body_started = x->run->discard = x->run->retry_pending = x->run->to_dest = x->run->fail_err = 0;
  x->run->inplace = x->run->ranged = x->run->retry_fail = x->run->complete_part = 0;
  x->run->hlen = x->run->hcount = 0;
  x->run->written = x->run->offset = 0;
  x->run->part_length = x->run->held ? x->run->total : -1; /* a held body's, before it goes */
  x->run->total = -1;
  x->run->attempt_start = mono_ms();
  x->run->rate_due = x->run->resume_at = 0;
  x->run->errbuf[0] = '\0';
  if (x->run->segs) seg_free(e, x);
  if (x->run->attempt == 1) publish(e, x, DT_EV_STARTED, NULL, NULL);

  if (!scheme_ok(o->url)) {
    fail(e, x, DT_ERR_URL, strstr(o->url, "://") ? "unsupported protocol" : "invalid url");
    return;
  }
  char *validator = NULL;
  if (o->file_path) {
    resolve_dest(x);
    if (!x->dest.path) {
      fail(e, x, x->dest_reason ? x->dest_err : DT_ERR_SAVE,
           x->dest_reason ? x->dest_reason : "save file error: out of memory");
      return;
    }
    if (x->run->held) { /* paused: the body so far is still open */
      validator = x->run->held_validator;
      x->run->held_validator = NULL;
      long long size = plat_size(x->run->fd);
      if (size <= 0 || !validator) { /* nothing a range could continue */
        free(validator);
        validator = NULL;
        if (plat_truncate0(x->run->fd) != 0) {
          file_error(x, errno, x->dest.path);
          fail(e, x, x->run->fail_err, x->run->fail_reason);
          return;
        }
        size = 0;
      }
      x->run->offset = size;
    } else {
      x->run->fd = x->dest.kind == DEST_INPLACE ? open_inplace(x)
                   : o->resume                  ? open_resume_part(e, x, &validator)
                                                : open_part(e, x);
    }
    if (x->run->fd < 0) {
      fail(e, x, x->run->fail_err, x->run->fail_reason);
      return;
    }
  }
  /* a body kept by pause() has been hashed as it was written (its file is
   * write-only): the digest goes on from there */
  int hashed = x->run->held && x->run->offset > 0 && x->run->md;
  if (o->sha256 && !hashed &&
      (!(x->run->md || (x->run->md = plat_sha256_new())) || !plat_sha256_init(x->run->md) ||
       !hash_existing(x))) {
    free(validator);
    fail(e, x, DT_ERR_SAVE, "save file error: cannot compute the checksum");
    return;
  }
  CURL *c = x->run->easy = curl_easy_init();
  int ok = c != NULL;
  if (ok && x->run->offset > 0) { /* continue, unless the file changed meanwhile */
    char range[64];
    snprintf(range, sizeof range, "bytes=%lld-", (long long)x->run->offset);
    ok = add_header(x, "Range", range) && add_header(x, "If-Range", validator);
    x->run->ranged = 1;
  }
  free(x->run->if_range); /* begin_body checks the answer against it */
  x->run->if_range = x->run->ranged ? validator : NULL;
  if (!x->run->ranged) free(validator);
  if (!ok) {
    fail(e, x, DT_ERR_NETWORK, "out of memory");
    return;
  }
  if (o->etag && !add_header(x, "If-None-Match", o->etag)) {
    fail(e, x, DT_ERR_NETWORK, "out of memory");
    return;
  }
  for (size_t i = 0; i < o->nheaders; i++) {
    struct curl_slist *s = curl_slist_append(x->run->slist, o->headers[i]);
    if (!s) {
      fail(e, x, DT_ERR_NETWORK, "out of memory");
      return;
    }
    x->run->slist = s;
  }
  curl_easy_setopt(c, CURLOPT_URL, o->url);
  curl_easy_setopt(c, CURLOPT_PRIVATE, (void *)x);
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  /* HTTP/2 (negotiated over TLS only): wait for a connection to the host
   * that is being made and share it (one multiplexed connection per host)
   * rather than open one each. Over plain HTTP/1.1 waiting gains nothing and,
   * with maxPerHost, held transfers back to one connection at a time. */
  if (curl_strnequal(o->url, "https://", 8)) curl_easy_setopt(c, CURLOPT_PIPEWAIT, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, o->max_redirects != 0 ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, o->max_redirects);
  long timeout = o->timeout_ms;
  if (timeout > 0 && x->run->spent_ms > 0) /* resumed: timeout's clock goes on from the pause */
    timeout = x->run->spent_ms >= (double)timeout ? 1 : timeout - (long)x->run->spent_ms;
  curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
  curl_easy_setopt(c, CURLOPT_USERAGENT, o->shared->user_agent);
  set_io(c, o, x->run->slist, x->run->errbuf, on_header, write_body, x);
  if (o->max_file_size >= 0)
    curl_easy_setopt(c, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)o->max_file_size);
  double rate = rate_of(e, x);
  if (rate > 0) { /* small reads: the pace is kept chunk by chunk */
    long b = (long)(rate / 16);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, b < 16384 ? 16384L : b > RECV_BUFFER ? (long)RECV_BUFFER : b);
  }
  if (o->if_modified_since >= 0) {
    curl_easy_setopt(c, CURLOPT_TIMECONDITION, (long)CURL_TIMECOND_IFMODSINCE);
    curl_easy_setopt(c, CURLOPT_TIMEVALUE_LARGE, (curl_off_t)o->if_modified_since);
  }
  /* never from https down to http */
  if (curl_strnequal(o->url, "https://", 8))
    curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, "https");
  x->run->last_byte = x->run->main_last_byte = mono_ms();
  if (curl_multi_add_handle(e->multi, c) != CURLM_OK) {
    fail(e, x, DT_ERR_NETWORK, "could not start the transfer");
    return;
  }
  if (!o->file_path && x->run->ahead_fd < 0 && e->nahead < AHEAD_MAX) {
    atomic_fetch_add(&x->refs, 1);
    e->ahead[e->nahead++] = x;
  }
}

static const char *protocol_name(long v) {
  switch (v) {
  case CURL_HTTP_VERSION_1_0: return "http1.0";
  case CURL_HTTP_VERSION_1_1: return "http1.1";
  case CURL_HTTP_VERSION_2_0: return "h2";
  case CURL_HTTP_VERSION_3: return "h3";
  default: return "";
  }
}

void fill_profile(dt_xfer *x, dt_profile *p) {
  CURL *c = x->run->easy;
  curl_off_t t_lookup = 0, t_connect = 0, t_app = 0, t_pre = 0, t_start = 0, t_total = 0,
             t_redirect = 0, speed = 0, dl = 0;
  long redirects = 0, hsize = 0, rsize = 0, port = 0, version = 0, nconn = 0;
  char *ip = NULL;
  curl_easy_getinfo(c, CURLINFO_NAMELOOKUP_TIME_T, &t_lookup);
  curl_easy_getinfo(c, CURLINFO_CONNECT_TIME_T, &t_connect);
  curl_easy_getinfo(c, CURLINFO_APPCONNECT_TIME_T, &t_app);
  curl_easy_getinfo(c, CURLINFO_PRETRANSFER_TIME_T, &t_pre);
  curl_easy_getinfo(c, CURLINFO_STARTTRANSFER_TIME_T, &t_start);
  curl_easy_getinfo(c, CURLINFO_TOTAL_TIME_T, &t_total);
  curl_easy_getinfo(c, CURLINFO_REDIRECT_TIME_T, &t_redirect);
  curl_easy_getinfo(c, CURLINFO_REDIRECT_COUNT, &redirects);
  curl_easy_getinfo(c, CURLINFO_SPEED_DOWNLOAD_T, &speed);
  curl_easy_getinfo(c, CURLINFO_SIZE_DOWNLOAD_T, &dl);
  curl_easy_getinfo(c, CURLINFO_HEADER_SIZE, &hsize);
  curl_easy_getinfo(c, CURLINFO_REQUEST_SIZE, &rsize);
  curl_easy_getinfo(c, CURLINFO_PRIMARY_IP, &ip);
  curl_easy_getinfo(c, CURLINFO_PRIMARY_PORT, &port);
  curl_easy_getinfo(c, CURLINFO_HTTP_VERSION, &version);
  curl_easy_getinfo(c, CURLINFO_NUM_CONNECTS, &nconn);
  /* libcurl's times are microseconds from the start of the whole transfer,
   * but after redirects each phase's time is the sum over all hops; so the
   * final hop's phases start at the redirect time and each is clamped to
   * come no earlier than the one before: the order always holds. */
  double s = x->run->fetch_start;
#define AT(us) ((us) > 0 ? s + (double)(us) / 1000.0 : 0.0)
#define LATEST(a, b) ((a) > (b) ? (a) : (b))
  p->fetch_start = s;
  double base = redirects > 0 ? AT(t_redirect) : s;
  if (base == 0.0) base = s;
  p->lookup_start = base;
  p->lookup_end = LATEST(AT(t_lookup), base);
  p->connect_start = p->lookup_end;
  p->connect_end = LATEST(AT(t_connect), p->connect_start);
  p->ssl_start = t_app > 0 ? p->connect_end : 0;
  p->ssl_end = t_app > 0 ? LATEST(AT(t_app), p->connect_end) : 0;
  p->request_start = LATEST(AT(t_pre), t_app > 0 ? p->ssl_end : p->connect_end);
  p->request_end = p->request_start;
  p->response_start = t_start > 0 ? LATEST(AT(t_start), p->request_end) : 0;
  p->response_end = LATEST(AT(t_total), LATEST(p->response_start, p->request_end));
  p->redirect_start = redirects > 0 ? s : 0;
  p->redirect_end = redirects > 0 ? AT(t_redirect) : 0;
#undef LATEST
#undef AT
  snprintf(p->peer_ip, sizeof p->peer_ip, "%s", ip ? ip : "");
  p->port = port;
  p->protocol = protocol_name(version);
  p->socket_reused = nconn == 0;
  p->send_bytes = rsize;
  p->received_bytes = (int64_t)hsize + (int64_t)dl;
  p->throughput_kbps = (double)speed * 8.0 / 1000.0;
}

static int map_error(dt_xfer *x, CURLcode rc, char *reason, size_t n) {
  long oserr = 0;
  const char *detail = x->run->errbuf[0] ? x->run->errbuf : curl_easy_strerror(rc);
  if (x->run->easy) curl_easy_getinfo(x->run->easy, CURLINFO_OS_ERRNO, &oserr);
  if (x->run->fail_err) {
    snprintf(reason, n, "%s", x->run->fail_reason);
    return x->run->fail_err;
  }
  switch (rc) {
  case CURLE_UNSUPPORTED_PROTOCOL:
    /* libcurl says this also of a reply that is not HTTP at all (it takes it
     * for HTTP/0.9, which it refuses): that is the server's fault, not the URL's */
    if (strstr(x->run->errbuf, "HTTP/0.9")) {
      snprintf(reason, n, "the server's reply is not HTTP");
      return DT_ERR_NETWORK;
    }
    if (curl_strnequal(x->opts->url, "https://", 8)) {
      /* the refused redirect's Location (CURLINFO_REDIRECT_URL is only set
       * when libcurl does not follow redirects itself) */
      const char *next = find_header(x, "location");
      if (next && curl_strnequal(next, "http://", 7)) {
        snprintf(reason, n, "redirect from https to http refused");
        return DT_ERR_URL;
      }
    }
    snprintf(reason, n, "unsupported protocol");
    return DT_ERR_URL;
  case CURLE_URL_MALFORMAT:
    snprintf(reason, n, "invalid url");
    return DT_ERR_URL;
  case CURLE_COULDNT_RESOLVE_HOST:
  case CURLE_COULDNT_RESOLVE_PROXY: {
    /* the name that did not resolve, as libcurl's message gives it */
    int proxy = rc == CURLE_COULDNT_RESOLVE_PROXY;
    const char *what = proxy ? "Could not resolve proxy: " : "Could not resolve host: ";
    const char *name = strstr(x->run->errbuf, what);
    name = name ? name + strlen(what) : "";
    size_t len = strcspn(name, " \r\n");
    char *host = NULL;
    CURLU *u = len == 0 && !proxy ? curl_url() : NULL; /* no message: the URL's host */
    if (u && curl_url_set(u, CURLUPART_URL, x->opts->url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
      name = host;
      len = strlen(host);
    }
    snprintf(reason, n, "could not resolve %s: %.*s", proxy ? "proxy" : "host", (int)len, name);
    curl_free(host);
    curl_url_cleanup(u);
    return DT_ERR_CONNECT;
  }
  case CURLE_COULDNT_CONNECT:
    if (oserr == ECONNREFUSED) snprintf(reason, n, "connection refused");
    else snprintf(reason, n, "could not connect: %s", detail);
    return DT_ERR_CONNECT;
  case CURLE_OPERATION_TIMEDOUT:
    snprintf(reason, n, "timeout");
    return DT_ERR_TIMEOUT;
  case CURLE_TOO_MANY_REDIRECTS:
    snprintf(reason, n, "too many redirects");
    return DT_ERR_REDIRECTS;
  case CURLE_FILESIZE_EXCEEDED:
    snprintf(reason, n, "exceed max file size");
    return DT_ERR_MAXSIZE;
  case CURLE_SSL_CONNECT_ERROR:
  case CURLE_PEER_FAILED_VERIFICATION:
  case CURLE_SSL_CERTPROBLEM:
  case CURLE_SSL_CIPHER:
  case CURLE_SSL_CACERT_BADFILE:
  case CURLE_SSL_ISSUER_ERROR:
  case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
  case CURLE_SSL_ENGINE_NOTFOUND:
  case CURLE_SSL_ENGINE_SETFAILED:
  case CURLE_SSL_CRL_BADFILE:
    snprintf(reason, n, "TLS error: %s", detail);
    return DT_ERR_CONNECT;
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
    if (oserr == ECONNRESET) {
      snprintf(reason, n, "connection reset");
      return DT_ERR_CONNECT;
    }
    break;
  default:
    break;
  }
  snprintf(reason, n, "%s", detail);
  return DT_ERR_NETWORK;
}

/* Ends a running transfer with libcurl's result rc. */
int transient(CURLcode rc) {
  switch (rc) {
  case CURLE_COULDNT_CONNECT:
  case CURLE_OPERATION_TIMEDOUT:
  case CURLE_RECV_ERROR:
  case CURLE_SEND_ERROR:
  case CURLE_PARTIAL_FILE:
  case CURLE_GOT_NOTHING:
  case CURLE_HTTP2:
  case CURLE_HTTP2_STREAM:
    return 1;
  default:
    return 0;
  }
}

/* Ends this attempt and sleeps before the next: exponential backoff with
 * jitter, or the server's Retry-After. With resume, the part file stays and
 * the next attempt continues it. */
void retry_later(dt_engine *e, dt_xfer *x) {
  curl_off_t after = -1;
  if (x->run->easy) curl_easy_getinfo(x->run->easy, CURLINFO_RETRY_AFTER, &after);
  double delay = RETRY_BASE_MS;
  for (long i = 1; i < x->run->attempt && delay < RETRY_MAX_MS; i++) delay *= 2;
  if (delay > RETRY_MAX_MS) delay = RETRY_MAX_MS;
  delay *= 0.8 + 0.4 * (double)(next_rand() % 1001) / 1000.0;
  if (after > 0) delay = 1000.0 * (double)(after > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : after);
  sleep_then_retry(e, x, delay);
}

/* Ends this attempt; the next one starts after delay ms. */
void sleep_then_retry(dt_engine *e, dt_xfer *x, double delay) {
  if (x->run->easy) {
    curl_multi_remove_handle(e->multi, x->run->easy);
    curl_easy_cleanup(x->run->easy);
    x->run->easy = NULL;
  }
  curl_slist_free_all(x->run->slist);
  x->run->slist = NULL;
  seg_stop_all(e, x);
  close_body(x);
  seg_free(e, x);
  x->run->resumed = 0;
  x->run->spent_ms = 0;
  xlist_remove(&e->running, x);
  x->phase = PH_SLEEPING;
  x->run->retry_at = mono_ms() + delay;
  xlist_push(&e->sleeping, x);
}

/* A replaced destination keeps its permission bits (a new one has
 * 0666 & ~umask from open()). 0, or -1 with errno. */
static int keep_mode(dt_xfer *x) { return plat_keep_mode(x->dest.path, x->run->fd); }

/* The resume part, complete, becomes an ordinary temporary file: its name
 * is free for the next download of the destination, which may start as
 * soon as this one has finished (one destination, one writer). */
static int release_part(dt_xfer *x) {
  char *tmp = NULL;
  int fd = files_temp(x->dest.dir, &tmp);
  if (fd < 0) return -1;
  plat_close(fd);
  if (plat_rename(x->run->part_path, tmp) != 0) {
    int e = errno;
    plat_unlink(tmp);
    free(tmp);
    errno = e;
    return -1;
  }
  files_write_validator(&x->dest, NULL, -1);
  free(x->run->body_path);
  x->run->body_path = tmp;
  free(x->run->part_path);
  x->run->part_path = NULL;
  return 0;
}

/* res.sha256 of a 304: the digest of the destination as it stands (none
 * when there is no file there). Not compared with the option: a 304 says the
 * caller's copy is current, and it is left as it is either way. */
static void digest_file(dt_xfer *x, dt_result *r) {
  int fd = plat_open_read(x->dest.path);
  if (fd < 0) return;
  char buf[65536];
  long long n;
  int ok = plat_sha256_init(x->run->md);
  while (ok && (n = plat_read(fd, buf, sizeof buf)) != 0) ok = n > 0 && plat_sha256_update(x->run->md, buf, (size_t)n);
  plat_close(fd);
  unsigned char d[32];
  if (!ok || !plat_sha256_final(x->run->md, d)) return;
  for (unsigned int i = 0; i < 32; i++) snprintf(r->sha256 + 2 * i, 3, "%02x", d[i]);
}

void finish_rc(dt_engine *e, dt_xfer *x, CURLcode rc) {
  dt_result *r = x->run->res;
  if (x->run->nsegs && !x->run->main_over) { /* the other ranges may still run */
    seg_main_end(e, x, rc);
    return;
  }
  if (rc == CURLE_OK && !x->run->body_started && !begin_body(e, x)) rc = CURLE_WRITE_ERROR;
  /* a failure our callbacks recorded wins: libcurl may have returned it from
   * another call (curl_easy_pause delivers buffered data) and still end the
   * transfer with CURLE_OK */
  if (rc == CURLE_OK && x->run->fail_err) rc = CURLE_WRITE_ERROR;
  if ((rc == CURLE_OK && x->run->retry_pending) ||
      (rc != CURLE_OK && attempts_left(x) &&
       (x->run->retry_fail || (!x->run->fail_err && transient(rc))))) {
    retry_later(e, x);
    return;
  }
  if (rc == CURLE_OK && x->run->fd >= 0) {
    int c = gather_flush_end(x);
    if (c == 0 && x->run->to_dest && !x->run->inplace) c = keep_mode(x);
    if (c == 0 && x->run->to_dest && x->opts->durable && plat_sync(x->run->fd) != 0) c = -1;
    int ce = errno;
    if (plat_close(x->run->fd) != 0 && c == 0) {
      c = -1;
      ce = errno;
    }
    x->run->fd = -1;
    if (c != 0) {
      file_error(x, ce, x->dest.path ? x->dest.path : x->run->body_path);
      rc = CURLE_WRITE_ERROR;
    }
  }
  if (x->run->easy) fill_profile(x, &r->profile);
  if (rc != CURLE_OK) {
    char reason[512];
    int err = map_error(x, rc, reason, sizeof reason);
    fail(e, x, err, reason);
    return;
  }
  if (x->run->easy) curl_easy_getinfo(x->run->easy, CURLINFO_RESPONSE_CODE, &r->status);
  else r->status = x->run->seg_status; /* segmented: the main response's */
  r->segments = x->run->seg_conns > 1 ? x->run->seg_conns : 1;
  if (x->run->md && r->status == DT_NOT_MODIFIED) {
    /* the file is the caller's copy, untouched: its digest; without one, the
     * digest of what this download wrote, nothing (res.sha256 is there
     * whenever the option was given) */
    if (x->dest.path && x->dest.kind != DEST_INPLACE) digest_file(x, r);
    unsigned char d[32];
    if (!r->sha256[0] && plat_sha256_init(x->run->md) && plat_sha256_final(x->run->md, d))
      for (unsigned int i = 0; i < 32; i++) snprintf(r->sha256 + 2 * i, 3, "%02x", d[i]);
  }
  if (x->run->md && r->status != DT_NOT_MODIFIED) {
    unsigned char d[32];
    if (plat_sha256_final(x->run->md, d))
      for (unsigned int i = 0; i < 32; i++) snprintf(r->sha256 + 2 * i, 3, "%02x", d[i]);
    if ((r->status / 100 == 2 || x->run->complete_part) && strcmp(r->sha256, x->opts->sha256) != 0) {
      fail(e, x, DT_ERR_CHECKSUM, "checksum mismatch");
      return;
    }
  }
  if (x->run->to_dest && x->opts->resume && x->run->part_path && x->run->body_path &&
      strcmp(x->run->part_path, x->run->body_path) == 0 && release_part(x) != 0) {
    file_error(x, errno, x->dest.path);
    fail(e, x, x->run->fail_err, x->run->fail_reason);
    return;
  }
  if (x->run->to_dest && x->run->body_path && !(r->dest_path = strdup(x->dest.path))) {
    fail(e, x, DT_ERR_SAVE, "save file error: out of memory");
    return;
  }
  r->ok = 1;
  r->length = x->run->written;
  r->body_path = x->run->body_path; /* from here on the result owns the file */
  x->run->body_path = NULL;
  r->to_dest = x->run->to_dest;
  r->durable = x->opts->durable;
  if (x->run->to_dest) {
    free(x->run->part_path);
    x->run->part_path = NULL;
  }
  /* the last progress shows every byte */
  if (x->run->total < 0 || x->run->total < x->run->written) x->run->total = x->run->written;
  finish(e, x);
}

/* Publishes x->run->res and lets go of everything the transfer held. */
static void finish(dt_engine *e, dt_xfer *x) {
  dt_result *r = x->run->res;
  x->run->res = NULL;
  if (x->run->easy) {
    curl_multi_remove_handle(e->multi, x->run->easy);
    curl_easy_cleanup(x->run->easy);
    x->run->easy = NULL;
  }
  curl_slist_free_all(x->run->slist);
  x->run->slist = NULL;
  seg_stop_all(e, x);
  if (!r->ok && r->err == DT_ERR_CHECKSUM && x->opts->resume && x->run->part_path) {
    plat_unlink(x->run->part_path); /* a wrong file is nothing to continue */
    files_write_validator(&x->dest, NULL, -1);
  }
  if (!r->ok) close_body(x);
  drop_ahead(x->run); /* before the news: nothing of it is left once Lua hears */
  r->attempts = x->run->attempt;
  if (x->phase == PH_RUNNING) xlist_remove(&e->running, x);
  x->phase = PH_DONE;
  publish(e, x, DT_EV_DONE | (r->ok ? DT_EV_PROGRESS : 0u), NULL, r);
  run_free(x);
  xfer_unref(x); /* the engine's reference */
}

/* Stops x without telling anyone: the binding already knows. */
static void drop(dt_engine *e, dt_xfer *x) {
  if (x->phase == PH_WAITING) xq_remove(&e->waiting, x);
  if (x->phase == PH_SLEEPING) xlist_remove(&e->sleeping, x);
  if (x->phase == PH_PAUSED) xlist_remove(&e->paused, x);
  if (x->phase == PH_RUNNING) {
    xlist_remove(&e->running, x);
    if (x->run->easy) {
      curl_multi_remove_handle(e->multi, x->run->easy);
      curl_easy_cleanup(x->run->easy);
      x->run->easy = NULL;
    }
  }
  if (x->run) seg_stop_all(e, x);
  /* also the body a pause kept, paused or queued again by resume() */
  if (x->run && x->phase != PH_DONE) close_body(x);
  if (x->phase == PH_DONE) return;
  x->phase = PH_DONE;
  run_free(x);
  xfer_unref(x);
}

/* Carries out engine_abort(): stops x if it still runs, removes any body it
 * left (also a finished one the binding has not taken), then says so, so
 * that the binding delivers "abort" only once nothing of it is on disk. */
static void abort_xfer(dt_engine *e, dt_xfer *x) {
  pthread_mutex_lock(&e->mu);
  dt_result *untaken = x->pub.result;
  x->pub.result = NULL;
  /* drop() frees the run, and with it the count err.attempts reports */
  if (x->run) x->pub.attempts = x->run->attempt;
  pthread_mutex_unlock(&e->mu);
  dt_result_discard(untaken);
  if (x->phase != PH_DONE) {
    atomic_fetch_add(&x->refs, 1); /* drop() lets go of the engine's */
    drop(e, x);
    publish(e, x, DT_EV_ABORTED, NULL, NULL);
    xfer_unref(x);
    return;
  }
  publish(e, x, DT_EV_ABORTED, NULL, NULL);
}

/* ---- pause and resume (engine thread) ---------------------------------- */

/* The validator a range request may continue the body with: the answer's
 * strong validator (ranges.c); NULL when it has none. */
const char *body_validator(dt_xfer *x) {
  const char *lm = find_header(x, "last-modified"), *date = find_header(x, "date");
  return ranges_strong_validator(find_header(x, "etag"), lm, lm ? (long long)curl_getdate(lm, NULL) : -1,
                                 date ? (long long)curl_getdate(date, NULL) : -1);
}

/* Carries out pause(): x leaves the queue, its backoff or its connection
 * (the easy handle goes, its connection back to libcurl's pool or closed),
 * and waits on the paused list, publishing nothing. A running body written
 * to a temporary file stays open for the attempt resume() starts (`resume`'s
 * part file stays anyway, with its validator). */
static void pause_xfer(dt_engine *e, dt_xfer *x) {
  double now = mono_ms();
  x->paused_from = x->phase;
  if (x->phase == PH_WAITING) {
    xq_remove(&e->waiting, x); /* its seq is kept: resume() puts it back in its place */
  } else if (x->phase == PH_SLEEPING) {
    xlist_remove(&e->sleeping, x);
    x->run->backoff_left = x->run->retry_at > now ? x->run->retry_at - now : 0;
  } else if (x->phase == PH_RUNNING) {
    xlist_remove(&e->running, x);
    xrun *r = x->run;
    if (r->easy) {
      curl_multi_remove_handle(e->multi, r->easy);
      curl_easy_cleanup(r->easy);
      r->easy = NULL;
    }
    curl_slist_free_all(r->slist);
    r->slist = NULL;
    seg_stop_all(e, x);
    r->spent_ms += now - r->attempt_start;
    const char *v = NULL;
    /* a segmented body has gaps: it is not kept (with `resume`, the part
     * keeps what it holds without a gap) */
    int keep = !x->opts->resume && !r->nsegs && r->body_started && r->to_dest && !r->inplace && !r->discard &&
               !r->fail_err && r->fd >= 0 && r->part_path && (v = body_validator(x)) != NULL;
    if (keep && r->wbuf) keep = gather_flush(x); /* the file holds every byte taken */
    if (keep) keep = (r->held_validator = strdup(v)) != NULL;
    if (keep) {
      gather_end(x);
      r->held = 1;
      free(r->body_path); /* begin_body names it again */
      r->body_path = NULL;
    } else {
      close_body(x);
    }
    seg_free(e, x);
    r->resumed = 1;
  } else {
    return; /* new (not queued yet) or done: nothing to pause */
  }
  x->phase = PH_PAUSED;
  xlist_push(&e->paused, x);
}

/* Carries out resume(): a queued transfer goes back to its place, one in a
 * backoff sleeps what was left of it, one that was running is first in the
 * queue for a new attempt (continuing what it kept). */
static void resume_xfer(dt_engine *e, dt_xfer *x) {
  xlist_remove(&e->paused, x);
  if (x->paused_from == PH_WAITING) {
    x->phase = PH_WAITING;
    xq_insert(&e->waiting, x);
  } else if (x->paused_from == PH_SLEEPING) {
    x->phase = PH_SLEEPING;
    x->run->retry_at = mono_ms() + x->run->backoff_left;
    xlist_push(&e->sleeping, x);
  } else {
    x->run->resumes++;
    x->phase = PH_WAITING;
    xq_push_front(&e->waiting, x);
  }
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
    dt_xfer *x = e->waiting.root;
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
        fail(e, x, DT_ERR_TIMEOUT, "timeout");
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
    engine_notify_poll(e, wait);
  }
  take_commands(e);
  while (e->running.head) drop(e, e->running.head);
  while (e->sleeping.head) drop(e, e->sleeping.head);
  while (e->paused.head) drop(e, e->paused.head);
  while (e->waiting.root) drop(e, e->waiting.root);
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
