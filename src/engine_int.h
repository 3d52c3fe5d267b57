/*
 * engine_int.h: the engine's insides, shared by its files: engine.c (the thread, the queue,
 * publishing), transfer.c (a transfer's start, end, retry and pause), body.c (the body's files,
 * headers and write path), segments.c (ranges over several connections), with ranges.c and
 * record.c as their pure parts. Never included by the binding, which sees dt.h only. Everything here runs on the engine thread unless a
 * comment says "under mu".
 */
#ifndef DT_ENGINE_INT_H
#define DT_ENGINE_INT_H

#include "dt.h"
#include "files.h"
#include "headers.h"
#include "pace.h"
#include "queue.h"
#include "notify.h"
#include "platform.h"

#include <curl/curl.h>

#include <pthread.h>
#include <stdatomic.h>

/* What a server may send before it reaches Lua. */
#define MAX_HEADERS 1000
#define MAX_HEADER_BYTES (256 * 1024)
/* libcurl's receive buffer. It hands the body over in pieces of at most
 * 16 KiB whatever its size; above glibc's mmap threshold (128 KiB) every
 * transfer would map and unmap its own buffer, which costs page faults and
 * holds the process's memory-map lock against the Lua thread. */
#define RECV_BUFFER (100 * 1024)
/* Bodies of at least GATHER_MIN bytes (by Content-Length) are gathered into
 * GATHER_BUF-byte writes: one write(2) where libcurl's pieces would make 16.
 * The buffers come from a pool of GATHER_POOL, made on first use and kept
 * by the engine thread; a transfer that finds none writes each piece. */
#define GATHER_BUF (256 * 1024)
#define GATHER_POOL 4
/* Downloads without filePath whose private file is made after their request
 * went out, per engine round (more are made when their body begins). */
#define AHEAD_MAX 64
#define GATHER_MIN (1024 * 1024)

enum { PH_NEW, PH_WAITING, PH_RUNNING, PH_SLEEPING, PH_PAUSED, PH_DONE };

/* retry backoff (pace_backoff): 250 ms, doubling, at most 30 s, +-20 % jitter; Retry-After
 * is honoured up to 5 minutes */
#define RETRY_BASE_MS 250.0
#define RETRY_MAX_MS 30000.0
#define RETRY_AFTER_MAX_S 300

/* progress-only news wakes a waiting Lua thread at most once per this many
 * ms, or per the shortest progressInterval of the news if that is shorter */
#define WAKE_PROGRESS_MS 50.0

/* the notifier's heartbeat while downloads are live (notify_beat), below the 5 s read
 * timeout of OpenResty's poller */
#define NOTIFY_BEAT_MS 1000.0

/* segments: a body of at least 2 * SEG_MIN bytes is split into ranges of at
 * least SEG_MIN; a range that fails is fetched again up to SEG_TRIES times
 * (beyond the download's own `retry`) before the download fails. */
#define SEG_MIN (1024 * 1024)
#define SEG_TRIES 3

/* One range [start, end) of a segmented body. Range 0 is the main
 * connection's (the request that found the size), as long as it runs; a
 * range fetched again, and every other one, has a connection of its own. */
typedef struct dt_seg {
  struct dt_xfer *x;
  CURL *easy; /* its own connection, or NULL */
  struct curl_slist *slist;
  int64_t start, end;
  int64_t pos;     /* bytes start..pos-1 are in the file */
  int tries;       /* requests made for it */
  int src;         /* where it is fetched: 0 the main request's URL, i mirrors[i - 1] */
  int checked;     /* this response is a 206 of exactly the range asked */
  int bad;         /* the server answered the range with something else */
  int queued;      /* a resumed part's range waiting for one of the `segments` connections */
  long oserr;      /* the OS error of its last connection (ECONNRESET, ...) */
  long pxerr;      /* its SOCKS proxy's error (CURLINFO_PROXY_ERROR), or 0 */
  int werr;        /* errno of a failed write, or 0 */
  double retry_at; /* > 0: to be fetched again then */
  double resume_at; /* > 0: paused by rateLimit until then (monotonic ms) */
  char *wbuf;      /* received bytes before pos not written yet (GATHER_BUF), or NULL */
  size_t wlen;
  hlist h;         /* this response's headers (headers.h) */
  char errbuf[CURL_ERROR_SIZE];
} dt_seg;

/* What only a transfer that has left the queue needs: made by start() the
 * first time, kept across retries (attempt, fetch_start), freed when the
 * transfer finishes or is dropped. A queued transfer is only its dt_xfer and
 * its dt_opts. */
typedef struct xrun {
  dt_result *res; /* what finish() publishes */
  CURL *easy;
  struct curl_slist *slist;
  int fd;
  int to_dest;
  int inplace;  /* fd is the destination itself (a FIFO or a character device) */
  int ranged;   /* this attempt asked for the rest of the resume part (Range) */
  int retry_fail; /* fail_err is set, yet another attempt may start over */
  int complete_part; /* a 416 found the resume part complete */
  char *wbuf;  /* gathered body bytes not yet written (a pool buffer), or NULL */
  size_t wlen;
  char *part_path; /* temporary file (or resume part) beside the destination */
  char *body_path; /* the file the body goes to */
  /* no filePath: the private file for the body, made while the request was
   * on its way (open_ahead), or -1/NULL */
  int ahead_fd;
  char *ahead_path;
  int64_t written, total;
  double last_progress;
  hlist hdr; /* final response headers so far (headers.h) */
  plat_sha256 *md;  /* SHA-256 of the body, when opts.sha256 is given */
  double last_byte; /* monotonic ms of the last body byte, for stallTimeout */
  double main_last_byte; /* segmented: the main connection's last body byte */
  long attempt;      /* requests started so far */
  double retry_at;   /* PH_SLEEPING: when to try again */
  int body_started;
  int discard;       /* the body is ignored (a retry follows, or a 416 on a complete part) */
  int retry_pending; /* a retryable status with attempts left */
  int fail_err; /* set by our callbacks: the reason libcurl was stopped */
  int64_t offset;    /* resume: bytes already in the part file */
  double resume_at;  /* rateLimit: paused until then (0: not paused) */
  double rate_due;   /* rateLimit: when the bytes taken so far are due (0: none taken yet) */
  /* pause(): a body written to a temporary file (not `resume`) is kept with
   * its descriptor between the pause and the next attempt, which continues
   * it with Range + If-Range when the response named a validator */
  int held;          /* fd and part_path hold `written` bytes of the body */
  char *held_validator;
  char *if_range;    /* the validator this attempt's Range was sent with (ranged), or NULL */
  int continued;     /* this attempt's answer continues the body an earlier answer started */
  long body_status;  /* the status of the answer that started the body (0: none yet) */
  int64_t part_length; /* ranged: the complete length the part was started with, -1 unknown */
  long resumes;      /* attempts started by resume(): not retries */
  int resumed;       /* the next or current attempt continues a paused one */
  double attempt_start; /* monotonic ms this attempt started (timeout's clock) */
  double spent_ms;      /* timeout's clock before the pause that ended the last attempt */
  double backoff_left;  /* paused in a retry's backoff: what was left of it */
  double fetch_start;
  /* segments (opts.segments > 1) */
  dt_seg *segs;   /* this attempt's ranges, or NULL: one connection */
  int nsegs;
  int seg_conns;  /* connections at once: res.segments, and rateLimit's share */
  int main_over;  /* the main connection has ended */
  int seg_off;    /* the server's ranges did not match: one connection from now on */
  long seg_status; /* the main response's status, for after its handle is gone */
  char *seg_url;  /* where the ranges are asked (the main request's final URL) */
  unsigned char mirror_dead[16]; /* a mirror that failed or told another size or validator */
  char *seg_validator; /* If-Range, and the resume part's validator; may be NULL */
  char *mirror_validator[16]; /* each mirror's own, learnt from its first answer; NULL until then */
  long long seg_lm_time; /* the main response's Last-Modified (s since the epoch), -1: none */
  double seg_saved_at; /* when the ranges were last written to the info file */
  dt_seg *rmap;   /* `resume`: the ranges the part's info file recorded, or NULL */
  int nrmap;
  int64_t rmap_total;
  char fail_reason[256];
  char errbuf[CURL_ERROR_SIZE];
} xrun;

struct dt_xfer {
  atomic_int refs;
  /* flags under e->mu; bytes, not bit-fields, so that each is a memory
   * location of its own */
  unsigned char in_ready, in_cmd, abort_req;
  unsigned char pause_req;  /* under mu: pause() asked for, resume() cleared */
  unsigned char pause_now;  /* engine thread only: pause_req as seen when commands were taken */
  unsigned char paused_from; /* engine thread only: PH_WAITING, PH_RUNNING or PH_SLEEPING */
  unsigned char abort_now; /* engine thread only: abort_req as seen under mu when commands were taken */
  unsigned char phase;     /* engine thread only */
  dt_opts *opts; /* immutable */
  dt_engine *engine;

  /* under e->mu */
  void *owner;
  dt_pub pub;
  dt_xfer *next_ready, *next_cmd;
  /* lists taken from under mu, walked after unlock; one link per list, since
   * the engine walks taken commands while the binding takes the ready list */
  dt_xfer *next_taken_cmd, *next_taken_ready;

  /* engine thread only */
  /* on the running or sleeping list; while waiting, the queue's heap links:
   * next = right sibling, prev = left sibling or parent */
  dt_xfer *prev, *next;
  qnode qn;       /* waiting: its place in the queue (queue.h); qn.seq is kept across a pause */
  xrun *run; /* from the first start() until finish() or drop() */
  char *cwd;         /* a relative filePath's working directory, taken at the call */
  dest_info dest;    /* filePath resolved, before the first start */
  char *dest_reason; /* why it could not be (then dest_err) */
  files_made made;   /* createDirs: the directories it made, to go when nothing is saved */
  int dest_err;
  unsigned char dest_done;
};

typedef struct xlist {
  dt_xfer *head, *tail;
  long n;
} xlist;

/* The queue (queue.c): higher opts->priority first, then call order. These
 * take the transfer a node is embedded in. */
#define XFER_OF_QNODE(n) ((dt_xfer *)(void *)((char *)(n)-offsetof(dt_xfer, qn)))
static inline dt_xfer *xq_first(const queue *q) { return q->root ? XFER_OF_QNODE(q->root) : NULL; }
static inline void xq_push(queue *q, dt_xfer *x) {
  x->qn.priority = x->opts->priority;
  queue_push(q, &x->qn);
}
static inline void xq_push_front(queue *q, dt_xfer *x) {
  x->qn.priority = x->opts->priority;
  queue_push_front(q, &x->qn);
}
/* with the seq it has: a transfer put back keeps its place */
static inline void xq_insert(queue *q, dt_xfer *x) {
  x->qn.priority = x->opts->priority;
  queue_insert(q, &x->qn);
}
static inline void xq_remove(queue *q, dt_xfer *x) { queue_remove(q, &x->qn); }

struct dt_engine {
  pthread_mutex_t mu;
  pthread_t thread;
  long pid;
  CURLM *multi;
  plat_wake wake; /* readable while the ready list has news */

  /* under mu */
  int wake_sent, shutdown;
  int stuck; /* engine_stuck() */
  long max_concurrent;
  int64_t rate_limit_req; /* configure{rateLimit} as asked for */
  long max_per_host, max_per_host_set; /* the cap asked for, the one the multi handle has */
  dt_xfer *cmd_head, *cmd_tail;
  dt_xfer *ready_head, *ready_tail;

  /* engine thread only */
  queue waiting;
  xlist running, sleeping, paused;
  int64_t rate_limit; /* configure{rateLimit}: engine thread's copy (bytes/s, 0: none) */
  int wake_due; /* news was published: the pipe gets its byte at the end of this round */
  int wake_urgent;  /* ... and it is more than progress: the byte goes at once */
  double last_wake; /* monotonic ms of the last byte */
  double wake_window; /* ms: progress news waits for last_wake + this ... */
  int wake_window_set; /* ... once set by news (else WAKE_PROGRESS_MS) */
  char *gather_free[GATHER_POOL]; /* pool buffers not in use */
  int gather_nfree, gather_made;
  files_scans scans; /* directories swept of dead processes' temporary files */
  int start_oom; /* start_waiting left a transfer queued for want of memory */
  long start_skipped; /* ... and this many for their destination's writer */
  dt_xfer *ahead[AHEAD_MAX]; /* started this round, without filePath (a reference each) */
  int nahead;

  dt_notify notify; /* OpenResty's wakeups (notify.c); its own mutex */
};

/* ---- shared between the engine's files -------------------------------- */

/* engine.c: the thread, the queue, publishing, the receive buffers */
double epoch_ms(void);
double mono_ms(void);
void release_easy(dt_engine *e, CURL **easy);
void publish(dt_engine *e, dt_xfer *x, unsigned ev, dt_headers *h, dt_result *r);
void run_free(dt_xfer *x);
void xfer_unref(dt_xfer *x);
void xlist_push(xlist *l, dt_xfer *x);
void xlist_remove(xlist *l, dt_xfer *x);

/* transfer.c: starting, finishing, retrying, pausing a transfer */
void abort_xfer(dt_engine *e, dt_xfer *x);
int add_header(dt_xfer *x, const char *name, const char *value);
const char *body_validator(dt_xfer *x);
void drop(dt_engine *e, dt_xfer *x);
void fail(dt_engine *e, dt_xfer *x, int err, const char *reason);
void fill_profile(dt_xfer *x, dt_profile *p);
void finish_rc(dt_engine *e, dt_xfer *x, CURLcode rc);
/* How a connection ended: libcurl's result, the OS error, the SOCKS proxy's
 * error (CURLINFO_PROXY_ERROR) and libcurl's message ("" when none). */
typedef struct curl_end {
  CURLcode rc;
  long oserr;
  long proxy_err;
  const char *errbuf;
} curl_end;
/* The DT_ERR_* and reason of a failure: the main connection's (map_error),
 * or any connection's, a range's too (map_error_of): one classification. */
int map_error(dt_xfer *x, CURLcode rc, char *reason, size_t n);
int map_error_of(dt_xfer *x, const curl_end *c, char *reason, size_t n);
curl_socket_t open_socket(void *ud, curlsocktype purpose, struct curl_sockaddr *a);
void pause_xfer(dt_engine *e, dt_xfer *x);
void resume_xfer(dt_engine *e, dt_xfer *x);
void retry_later(dt_engine *e, dt_xfer *x);
void set_io(CURL *c, const dt_opts *o, struct curl_slist *headers, char *errbuf,
            curl_write_callback on_head, curl_write_callback on_body, void *ud);
void sleep_then_retry(dt_engine *e, dt_xfer *x, double delay);
void start(dt_engine *e, dt_xfer *x);
int transient(CURLcode rc);
void timeout_reason(const dt_opts *o, const char *curl_msg, char *reason, size_t n);

/* body.c: the body's files, headers, begin_body and the write path */
int attempts_left(const dt_xfer *x);
int begin_body(dt_engine *e, dt_xfer *x);
void close_body(dt_xfer *x);
void drop_ahead(xrun *r);
void file_error(dt_xfer *x, int e, const char *path);
const char *find_header(dt_xfer *x, const char *name);
void forget_map(xrun *r);
void gather_end(dt_xfer *x);
int gather_flush(dt_xfer *x);
int gather_flush_end(dt_xfer *x);
int hash_existing(dt_xfer *x);
unsigned next_rand(void);
size_t on_header(char *buf, size_t size, size_t n, void *ud);
void open_ahead(dt_engine *e);
int open_inplace(dt_xfer *x);
int open_part(dt_engine *e, dt_xfer *x);
int open_resume_part(dt_engine *e, dt_xfer *x, char **validator);
double rate_of(dt_engine *e, dt_xfer *x);
double rate_pace(dt_engine *e, dt_xfer *x, size_t len, double now);
void resolve_dest(dt_xfer *x);
void unmake_dirs(dt_xfer *x);
size_t write_body(char *buf, size_t size, size_t n, void *ud);

/* segments.c: ranges over several connections */
void seg_end(dt_engine *e, dt_seg *s, CURLcode rc);
void seg_free(dt_engine *e, dt_xfer *x);
void seg_main_end(dt_engine *e, dt_xfer *x, CURLcode rc);
int64_t seg_read_map(dt_xfer *x, const char *line, long long size);
void seg_save(dt_xfer *x);
int seg_split(dt_xfer *x, int64_t base);
void seg_stop_all(dt_engine *e, dt_xfer *x);
double seg_timers(dt_engine *e, dt_xfer *x, double now);

#endif
