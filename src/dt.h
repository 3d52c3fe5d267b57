/*
 * dt.h: the boundary between the Lua binding and the download engine.
 *
 * Neither lua.h nor curl/curl.h is included here: the binding (task.c,
 * module.c) talks to the engine (engine.c) only through these types and
 * functions. A transfer (dt_xfer) is shared by both sides and reference
 * counted under the engine's mutex; the engine publishes what happened to it
 * (started, headers, progress, done) into its `pub` part and links it onto
 * the engine's ready list, and the binding takes that list in poll().
 */
#ifndef DT_H
#define DT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#define DT_VERSION "0.1.0"

/* errno values (the reference: @{err}) */
enum {
  DT_ERR_NETWORK = 600000,
  DT_ERR_CONNECT = 600001,
  DT_ERR_ABORT = 600003,
  DT_ERR_TIMEOUT = 5,
  DT_ERR_REDIRECTS = 600008,
  DT_ERR_URL = 600009,
  DT_ERR_SAVE = 603300,
  DT_ERR_MAXSIZE = 603301,
  DT_ERR_PERM = 603303,
  DT_ERR_CHECKSUM = 603304
};

/* A 304 has no body: nothing is written anywhere. */
#define DT_NOT_MODIFIED 304

/* what the engine has published since the binding last looked */
enum {
  DT_EV_STARTED = 1u << 0,
  DT_EV_HEADERS = 1u << 1,
  DT_EV_PROGRESS = 1u << 2,
  DT_EV_DONE = 1u << 3,
  DT_EV_ABORTED = 1u << 4 /* an abort has been carried out: nothing of it is left on disk */
};

/* The settings of configure() every transfer reads: one copy shared by the
 * transfers made while they held, not one each. Reference counted with an
 * atomic, since the last transfer holding it may be freed on either thread. */
typedef struct dt_shared {
  atomic_int refs;
  const char *user_agent; /* never NULL */
  const char *temp_dir;   /* never NULL */
  char data[];
} dt_shared;

dt_shared *dt_shared_new(const char *user_agent, const char *temp_dir); /* NULL: no memory */
dt_shared *dt_shared_ref(dt_shared *s);
void dt_shared_unref(dt_shared *s);

/* Options fixed at creation; immutable afterwards, so both threads may read.
 * One allocation holds the struct, the header array and every string (a
 * queued task costs little), so dt_opts_free is one free() and an unref. */
typedef struct dt_opts {
  const char *url;
  const char *file_path;  /* NULL: private temporary file under shared->temp_dir */
  dt_shared *shared;      /* userAgent, tempDir */
  const char *const *headers; /* "Name: value" lines, curl-ready */
  size_t nheaders;
  long timeout_ms;         /* 0: none */
  long connect_timeout_ms; /* 0: none */
  long max_redirects;
  int64_t max_file_size; /* < 0: none */
  long progress_interval_ms;
  long stall_timeout_ms;    /* 0: none */
  int64_t rate_limit;       /* bytes/s, 0: none */
  const char *etag;         /* If-None-Match, may be NULL */
  int64_t if_modified_since; /* epoch seconds, < 0: none */
  const char *sha256;       /* expected hex digest (lower case), may be NULL */
  long retry;               /* retries of transient failures */
  int resume;               /* keep and continue "<file_path>.part" */
  int insecure;
  const char *ca_file; /* may be NULL */
  const char *proxy;   /* may be NULL: the environment decides */
  int durable;         /* fsync the file before the rename and the directory after it */
  long priority;       /* the queue starts higher ones first; equal ones in call order */
  int create_dirs;     /* create the missing parent directories of file_path */
  long segments;       /* connections one body may be fetched over (1: no ranges) */
  const char *const *mirrors; /* other URLs of the same file, for ranges */
  size_t nmirrors;
} dt_opts;

/* Final response headers: `count` pairs of NUL-terminated name (lower case)
 * and value strings packed in `data`, in the order received. */
typedef struct dt_headers {
  long status;   /* the resource's: a continuation (a 206 of a resumed body) shows the first's */
  int continued; /* a continuation's headers: the binding keeps the first answer's */
  size_t count;
  size_t len;
  char data[];
} dt_headers;

typedef struct dt_profile {
  double fetch_start; /* ms since the epoch */
  double lookup_start, lookup_end, connect_start, connect_end;
  double ssl_start, ssl_end, request_start, request_end;
  double response_start, response_end, redirect_start, redirect_end;
  char peer_ip[64];
  long port;
  const char *protocol; /* static string */
  int socket_reused;
  int64_t send_bytes, received_bytes;
  double throughput_kbps;
} dt_profile;

typedef struct dt_result {
  int ok;          /* a response was received */
  long status;     /* final status code */
  int64_t length;  /* bytes written */
  int err;         /* DT_ERR_* when !ok */
  char *reason;    /* when !ok: the reason after "downloadFile:fail " */
  char *body_path; /* the file holding the body; NULL when !ok, or when written in place */
  char *dest_path; /* to_dest: the resolved destination (absolute, links followed) that
                      dt_result_land renames body_path onto; NULL when written in place */
  int to_dest;     /* the body is the destination's (2xx with a filePath) */
  int durable;     /* dt_result_land syncs the directory after the rename */
  char sha256[65]; /* hex digest of the body when opts.sha256 was given, else "" */
  long attempts;   /* requests made (always set) */
  int segments;    /* connections the body came over (1 unless split into ranges) */
  dt_profile profile;
} dt_result;

/* What the binding takes from a transfer. Filled by the engine under the
 * mutex; moved out by engine_take(). */
typedef struct dt_pub {
  unsigned events;
  dt_headers *headers;
  int64_t now, total; /* progress: bytes written, expected (-1 unknown) */
  long attempts;       /* requests started so far (err.attempts of an abort) */
  dt_result *result;
} dt_pub;

typedef struct dt_engine dt_engine;
typedef struct dt_xfer dt_xfer;

/* Engine life cycle. engine_new returns NULL on failure (errno-style
 * message in *why). */
dt_engine *engine_new(const char **why);
void engine_free(dt_engine *e);        /* aborts all, joins the thread */
int engine_owned_here(dt_engine *e);   /* false in a fork()ed child */
void engine_forget(dt_engine *e);      /* in a fork()ed child: close its descriptors, free nothing */
int engine_fd(dt_engine *e);           /* readable when the ready list is non-empty */
/* The path of a Unix-domain socket whose connections get a byte whenever
 * engine_fd does (OpenResty's cosockets cannot wait on a pipe); made at the
 * first call, removed by engine_free. NULL and *why when it cannot be made. */
const char *engine_notify_path(dt_engine *e, const char **why);
void engine_set_max_concurrent(dt_engine *e, long n);
/* Connections to one host at most (0: no cap); applied by the engine thread. */
void engine_set_max_per_host(dt_engine *e, long n);

/* Transfers. engine_submit takes ownership of opts (freed with the xfer)
 * and returns a transfer holding one reference for the caller. */
dt_xfer *engine_submit(dt_engine *e, dt_opts *opts, void *owner);
void engine_abort(dt_engine *e, dt_xfer *x);
void engine_release(dt_engine *e, dt_xfer *x); /* drop the caller's reference */
/* pause() (paused != 0) and resume(): carried out by the engine thread in
 * order with the other commands; the last one asked for wins. */
void engine_pause(dt_engine *e, dt_xfer *x, int paused);
/* configure{rateLimit}: bytes/s for all transfers together (0: none). */
void engine_set_rate_limit(dt_engine *e, int64_t bytes_per_second);
const dt_opts *xfer_opts(const dt_xfer *x);

/* Takes the ready list: calls fn(owner, pub, ud) for each transfer that has
 * news and whose owner is still set, with the mutex held (fn must only move
 * data). Drains the wakeup descriptor first. */
typedef void (*dt_take_fn)(void *owner, dt_pub *pub, void *ud);
void engine_take(dt_engine *e, dt_take_fn fn, void *ud);

/* Waits up to ms (-1: forever) for the descriptor to become readable. */
void engine_wait(dt_engine *e, int ms);
/* Makes the descriptor readable again: the binding still has news that
 * engine_take drained the descriptor for (a poll cut short). */
void engine_rearm(dt_engine *e);
/* 1 when nothing can move without a call of the binding's: no command is
 * queued, nothing runs or waits for a retry, and whatever is queued waits for
 * the destination of a paused transfer (or nothing is queued). Set at the end
 * of an engine round, which wakes the descriptor when it becomes 1; every new
 * command clears it. News published before it was set is on the ready list. */
int engine_stuck(dt_engine *e);

void dt_opts_free(dt_opts *o);
/* Frees a result without touching any file (also what a fork()ed child does
 * with its parent's results). */
void dt_result_free(dt_result *r);
/* At the delivery of a success: moves the body onto its destination (a
 * rename; nothing for a body written in place or not the destination's).
 * When that fails the result becomes a failure (ok = 0, err, reason) and the
 * body is removed. Plain file work, no Lua: called by the dispatcher. */
void dt_result_land(dt_result *r);
/* The body file left by an undelivered or abandoned result is removed. */
void dt_result_discard(dt_result *r);

#endif
