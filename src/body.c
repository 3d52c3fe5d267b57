/*
 * body.c: where a transfer's body goes. The destination's files (the temporary file beside
 * it, the private file under tempDir, the resume part), the response's headers, the choice
 * made at the first body byte (begin_body: which file, continue or start over, split into
 * ranges) and the write path libcurl calls for every piece. Engine thread only.
 */
#include "engine_int.h"
#include "ranges.h"
#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- files ------------------------------------------------------------ */

static void set_fail(dt_xfer *x, int err, const char *fmt, const char *arg) {
  x->run->fail_err = err;
  snprintf(x->run->fail_reason, sizeof x->run->fail_reason, fmt, arg);
}

void file_error(dt_xfer *x, int e, const char *path) {
  x->run->fail_err = files_error(e, NULL, path, x->run->fail_reason, sizeof x->run->fail_reason);
}

unsigned next_rand(void) { return files_rand(); }

/* filePath's final target, once, before the transfer first starts (the
 * queue needs it: one destination, one writer). */
void resolve_dest(dt_xfer *x) {
  if (x->dest_done || !x->opts->file_path) return;
  x->dest_done = 1;
  char reason[512];
  char *abs = x->cwd ? files_join(x->cwd, x->opts->file_path) : NULL;
  const char *path = abs ? abs : x->opts->file_path;
  if ((x->opts->create_dirs &&
       files_make_dirs(path, &x->made, &x->dest_err, reason, sizeof reason) != 0) ||
      files_resolve(path, &x->dest, &x->dest_err, reason, sizeof reason) != 0)
    x->dest_reason = strdup(reason); /* NULL: start() says "out of memory" */
  free(abs);
}

/* createDirs: nothing was saved (a failure, a non-2xx answer, an abort), so the directories
 * made for it go, each while it is empty. Engine thread; once. */
void unmake_dirs(dt_xfer *x) { files_unmake_dirs(&x->made); }

/* createDirs: the destination's directory is there before a file is made in it (another
 * download that had made it may have removed it, empty, when it ended; it costs one stat).
 * 0, or -1 with the failure set. */
static int ensure_dirs(dt_xfer *x) {
  char reason[256];
  int err;
  if (!x->opts->create_dirs || files_make_dirs(x->dest.path, &x->made, &err, reason, sizeof reason) == 0) return 0;
  set_fail(x, err, "%s", reason);
  return -1;
}

/* A new temporary file beside the destination, after sweeping that
 * directory of the ones dead processes left. */
int open_part(dt_engine *e, dt_xfer *x) {
  if (ensure_dirs(x) != 0) return -1;
  files_sweep(&e->scans, x->dest.dir);
  int fd = files_temp(x->dest.dir, 0, &x->run->part_path);
  if (fd < 0) file_error(x, errno, x->dest.path);
  return fd;
}

/* The destination itself, for a FIFO or a character device: no temporary
 * file and no rename. A FIFO nobody reads fails at once (ENXIO) instead of
 * blocking the engine thread in open(). */
int open_inplace(dt_xfer *x) {
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
 * destination's: its descriptor and *path, or -1 with errno (ENOMEM: no
 * memory for the name). It has a sweepable name while it is written (a
 * killed process's goes with the next sweep of tempDir) and takes the one it
 * is delivered under at the end (files_deliver_private). */
static int make_private(dt_xfer *x, char **path) {
  files_sweep(&x->engine->scans, x->opts->shared->temp_dir);
  return files_temp(x->opts->shared->temp_dir, PLAT_PRIVATE, path);
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
void drop_ahead(xrun *r) {
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
void open_ahead(dt_engine *e) {
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
int gather_flush(dt_xfer *x) {
  size_t n = x->run->wlen;
  x->run->wlen = 0;
  if (n == 0 || emit(x, x->run->wbuf, n)) return 1;
  if (x->run->nsegs && !x->run->main_over) x->run->segs[0].pos -= (int64_t)n; /* not held */
  return 0;
}

/* Gives x's buffer back to the pool; what it held is dropped. */
void gather_end(dt_xfer *x) {
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
void close_body(dt_xfer *x) {
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
const char *find_header(dt_xfer *x, const char *name) { return hlist_find(&x->run->hdr, name); }

/* Feeds the bytes already in the part file to the checksum. */
int hash_existing(dt_xfer *x) {
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
int open_resume_part(dt_engine *e, dt_xfer *x, char **validator) {
  if (ensure_dirs(x) != 0) return -1;
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

/* A response with more headers than MAX_HEADERS (or MAX_HEADER_BYTES in
 * all) fails rather than losing some silently. */
static size_t too_many_headers(dt_xfer *x) {
  set_fail(x, DT_ERR_NETWORK, "%s", "the response had too many headers");
  return 0;
}

size_t on_header(char *buf, size_t size, size_t n, void *ud) {
  dt_xfer *x = ud;
  size_t len = size * n;
  if (x->run->body_started) return len; /* trailers are not the response's headers */
  if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) { /* a new response begins */
    hlist_clear(&x->run->hdr);
    return len;
  }
  int rc = hlist_add_line(&x->run->hdr, buf, len, MAX_HEADERS, MAX_HEADER_BYTES);
  if (rc == HLIST_FULL) return too_many_headers(x);
  return rc == HLIST_OK ? len : 0;
}

/* The result describes the resource: a continuation shows the status of the
 * answer that started the body (200 when that was another download's). */
static long shown_status(const dt_xfer *x, long status) {
  return !x->run->continued ? status : x->run->body_status ? x->run->body_status : 200;
}

static dt_headers *make_headers(dt_xfer *x, long status) {
  const hlist *l = &x->run->hdr;
  dt_headers *h = malloc(sizeof *h + l->len + 1);
  if (!h) return NULL;
  h->status = shown_status(x, status);
  h->continued = x->run->continued;
  h->count = l->count;
  h->len = l->len;
  if (l->len) memcpy(h->data, l->buf, l->len);
  h->data[l->len] = '\0';
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

/* A resume part's answer (begin_body): the one decision of ranges.c says whether its bytes
 * may join the part, and this carries it out. JOIN_ON: go on (*had and *total as they now
 * are); JOIN_COMPLETE: a 416 found the part whole, it is the body; JOIN_FAILED: fail set. */
enum { JOIN_ON, JOIN_COMPLETE, JOIN_FAILED };
static int join_part(dt_xfer *x, long status, int64_t *had, int64_t *total) {
  /* the one decision (ranges.c): may this answer's bytes join the part? */
  ranges_verdict verdict = RANGES_WHOLE;
  long long t = -1;
  if (x->run->ranged && *had > 0) {
    ranges_part p = {*had, x->run->part_length, x->run->if_range};
    ranges_answer a = {status, find_header(x, "content-range"), find_header(x, "etag"),
                       find_header(x, "last-modified"), -1, -1};
    verdict = ranges_decide(&p, &a, &t);
  }
  if (verdict == RANGES_COMPLETE) {
    /* the part was complete already: it is the body (its digest, fed
     * from the part, is checked like any body's) */
    x->run->discard = 1;
    x->run->to_dest = x->run->complete_part = 1;
    x->run->written = *had;
    x->run->body_path = strdup(x->run->part_path);
    return x->run->body_path ? JOIN_COMPLETE : JOIN_FAILED; /* fd stays: finish_rc seals the file */
  }
  if (verdict == RANGES_START_OVER && status == 206) {
    /* another version, length or place: appending would splice two bodies.
     * The part is emptied, and the next attempt (retry) or download starts over */
    if (!restart_part(x)) {
      file_error(x, errno, x->dest.path);
      return JOIN_FAILED;
    }
    x->run->retry_fail = 1;
    /* after a pause the download starts over: that is no retry */
    if (x->run->resumed) x->run->resumes++;
    x->run->resumed = 0;
    set_fail(x, DT_ERR_NETWORK, "%s", "the server's 206 does not continue the partial file");
    return JOIN_FAILED;
  }
  if (verdict == RANGES_APPEND) {
    *total = t;
    x->run->continued = 1;
  } else if ((verdict == RANGES_START_OVER || status / 100 == 2) && *had > 0) {
    /* a whole new body, or a 416 that is not this part's: the part is useless */
    if (!restart_part(x)) {
      file_error(x, errno, x->dest.path);
      return JOIN_FAILED;
    }
    *had = 0;
  }
  return JOIN_ON;
}

int begin_body(dt_engine *e, dt_xfer *x) {
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
    int j = join_part(x, status, &had, &total);
    if (j != JOIN_ON) return j == JOIN_COMPLETE;
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
  /* a 304 has no body, whatever length its headers name (also libcurl's 304 for a 200 that
   * ifModifiedSince's time condition refused: its body is never written) */
  if (status == DT_NOT_MODIFIED) total = 0;
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
  /* ... and only a body with a strong validator, each range must be of its version; or,
   * for mirrors, one whose sha256 is known (not kept for a resume: that needs the validator) */
  if (x->opts->segments > 1 && !x->run->seg_off && !x->run->discard && x->run->fd >= 0 &&
      !x->run->inplace && x->run->body_path && total > 0 &&
      (body_validator(x) || (x->run->md && x->opts->nmirrors > 0 && !x->opts->resume)) &&
      (x->opts->max_file_size < 0 || total <= x->opts->max_file_size) &&
      ((status == 200 && ar && strstr(ar, "bytes")) || (status == 206 && partial)) &&
      !seg_split(x, partial ? had : 0)) {
    set_fail(x, DT_ERR_SAVE, "save file error: %s", "out of memory");
    return 0;
  }
  /* not taken up by seg_split (seg_off, maxFileSize, ...): no gaps may stay */
  if (x->run->rmap && !drop_map(x, partial ? had : 0)) return 0;
  if (!x->run->discard) gather_begin(e, x);
  if (!x->run->continued && !x->run->discard) x->run->body_status = status;
  dt_headers *h = make_headers(x, status);
  if (!h) {
    set_fail(x, DT_ERR_SAVE, "save file error: %s", "out of memory");
    return 0;
  }
  publish(e, x, DT_EV_HEADERS, h, NULL);
  return 1;
}

/* ---- the hot path ----------------------------------------------------- */

/* The bytes per second x may take now (0: no limit), all its connections
 * together: its own rateLimit, and its even share of the global one among the
 * running downloads. */
double rate_of(dt_engine *e, dt_xfer *x) {
  return pace_rate((double)x->opts->rate_limit, (double)e->rate_limit, e->running.n);
}

/* rateLimit: the module's own pacing, one budget for all of x's connections
 * (the main one and every range): a chunk is taken only once the bytes
 * before it are due; until then libcurl keeps it and stops reading, so TCP
 * slows the sender down. The rate may change between chunks (the global
 * limit's share follows the number of running downloads): each chunk pushes
 * the due time by its own length at the rate of the moment (pace.c). Returns
 * 0 when the chunk may be taken now, else the monotonic ms to take it at. */
double rate_pace(dt_engine *e, dt_xfer *x, size_t len, double now) {
  return pace_take(&x->run->rate_due, rate_of(e, x), len, now);
}

size_t write_body(char *buf, size_t size, size_t n, void *ud) {
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
  double due = rate_pace(x->engine, x, len, x->run->last_byte);
  if (due > 0) {
    x->run->resume_at = due;
    return CURL_WRITEFUNC_PAUSE;
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

