/*
 * segments.c: a body fetched as ranges over several connections at once (`segments`,
 * `mirrors`): the split, each range's connection and its checks, the ranges kept in the
 * part's record for `resume`, and the fall-back to one connection. Engine thread only.
 */
#include "engine_int.h"
#include "ranges.h"
#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- segments (engine thread) ----------------------------------------- */

/* Writes what range s has gathered; 0 (s->werr set) when that failed, and
 * then those bytes do not count as held. */
static int seg_flush(dt_xfer *x, dt_seg *s) {
  size_t n = s->wlen;
  s->wlen = 0;
  if (n == 0 || plat_pwrite_all(x->run->fd, s->wbuf, n, s->pos - (int64_t)n)) return 1;
  s->werr = errno ? errno : EIO;
  s->pos -= (int64_t)n;
  return 0;
}

/* The range's connection is over: what it gathered goes to the file, and
 * its buffer goes. */
static void seg_release(dt_xfer *x, dt_seg *s) {
  if (s->wlen && x->run->fd >= 0) (void)seg_flush(x, s);
  s->wlen = 0;
  free(s->wbuf);
  s->wbuf = NULL;
}

/* Stops every range's own connection; the ranges stay (what they hold
 * counts for the resume part, close_body). */
void seg_stop_all(dt_engine *e, dt_xfer *x) {
  for (int i = 0; x->run && i < x->run->nsegs; i++) {
    dt_seg *s = &x->run->segs[i];
    seg_release(x, s);
    release_easy(e, &s->easy);
    curl_slist_free_all(s->slist);
    s->slist = NULL;
    s->retry_at = 0;
  }
}

/* Forgets this attempt's ranges. */
void seg_free(dt_engine *e, dt_xfer *x) {
  seg_stop_all(e, x);
  for (int i = 0; i < x->run->nsegs; i++) hlist_free(&x->run->segs[i].h);
  free(x->run->segs);
  x->run->segs = NULL;
  x->run->nsegs = x->run->seg_conns = 0;
  x->run->main_over = 0;
  free(x->run->seg_url);
  x->run->seg_url = NULL;
  free(x->run->seg_validator);
  x->run->seg_validator = NULL;
  for (int i = 0; i < 16; i++) {
    free(x->run->mirror_validator[i]);
    x->run->mirror_validator[i] = NULL;
  }
}

/* A range's answer's headers, parsed as the main response's are (headers.c). Too many is
 * an answer not to use. */
static size_t seg_header(char *buf, size_t size, size_t n, void *ud) {
  dt_seg *s = ud;
  size_t len = size * n;
  if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) { /* a new response */
    hlist_clear(&s->h);
    return len;
  }
  if (hlist_add_line(&s->h, buf, len, MAX_HEADERS, MAX_HEADER_BYTES) == HLIST_OK) return len;
  s->bad = 1;
  return 0;
}

/* Whether the answer to range s is the bytes asked (ranges_decide_range): a 206 of exactly
 * the range, of the URL's version (a server that ignores If-Range still names its own; a
 * validator too long to keep is no match). A mirror's first answer teaches its validator. */
static int seg_answer_usable(dt_xfer *x, dt_seg *s) {
  xrun *r = x->run;
  char **mv = s->src > 0 ? &r->mirror_validator[s->src - 1] : NULL;
  ranges_range want = {s->pos, s->end, r->total, mv ? *mv : r->seg_validator, mv != NULL,
                       r->seg_lm_time, r->md != NULL};
  const char *lm = hlist_find(&s->h, "last-modified"), *date = hlist_find(&s->h, "date");
  const char *etag = hlist_find(&s->h, "etag");
  if (etag && strlen(etag) > RECORD_VALIDATOR_MAX) etag = NULL; /* too long to keep: no match */
  ranges_answer a = {0, hlist_find(&s->h, "content-range"), etag, lm,
                     lm ? (long long)curl_getdate(lm, NULL) : -1, date ? (long long)curl_getdate(date, NULL) : -1};
  curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &a.status);
  const char *learnt = NULL;
  if (ranges_decide_range(&want, &a, &learnt) != RANGES_WRITE) return 0;
  if (learnt && mv && !*mv && !(*mv = strdup(learnt))) return 0; /* out of memory: refused */
  return 1;
}

static size_t seg_write(char *buf, size_t size, size_t n, void *ud) {
  dt_seg *s = ud;
  dt_xfer *x = s->x;
  size_t len = size * n;
  if (!s->checked) {
    /* only a 206 of exactly the range asked, of the same body, is written:
     * anything else (a 200, another range, another size) would put bytes
     * where they do not belong */
    if (!seg_answer_usable(x, s)) {
      s->bad = 1;
      return 0;
    }
    s->checked = 1;
  }
  if ((int64_t)len > s->end - s->pos) { /* more than the range */
    s->bad = 1;
    return 0;
  }
  double due = rate_pace(x->engine, x, len, mono_ms());
  if (due > 0) { /* seg_timers continues it then */
    s->resume_at = due;
    return CURL_WRITEFUNC_PAUSE;
  }
  /* gathered into GATHER_BUF-byte writes, as the main connection's are:
   * libcurl hands over 16 KiB at a time */
  if (s->wbuf && s->wlen + len > GATHER_BUF && !seg_flush(x, s)) return 0;
  if (s->wbuf && len < GATHER_BUF) {
    memcpy(s->wbuf + s->wlen, buf, len);
    s->wlen += len;
  } else if (!plat_pwrite_all(x->run->fd, buf, len, s->pos)) {
    s->werr = errno ? errno : EIO;
    return 0;
  }
  s->pos += (int64_t)len;
  if (s->pos == s->end && !seg_flush(x, s)) return 0; /* complete: all of it in the file */
  x->run->written += (int64_t)len;
  x->run->last_byte = mono_ms();
  if (x->run->last_byte - x->run->last_progress >= (double)x->opts->progress_interval_ms) {
    x->run->last_progress = x->run->last_byte;
    publish(x->engine, x, DT_EV_PROGRESS, NULL, NULL);
  }
  return len;
}

/* Whether two URLs name the same scheme, host and port (unparsable: no). */
static int same_origin(const char *a, const char *b) {
  CURLU *u = curl_url(), *v = curl_url();
  int same = 0;
  if (u && v && curl_url_set(u, CURLUPART_URL, a, 0) == CURLUE_OK && curl_url_set(v, CURLUPART_URL, b, 0) == CURLUE_OK) {
    same = 1;
    const CURLUPart parts[] = {CURLUPART_SCHEME, CURLUPART_HOST, CURLUPART_PORT};
    for (int i = 0; same && i < 3; i++) {
      char *p = NULL, *q = NULL;
      curl_url_get(u, parts[i], &p, CURLU_DEFAULT_PORT);
      curl_url_get(v, parts[i], &q, CURLU_DEFAULT_PORT);
      same = p && q && curl_strequal(p, q);
      curl_free(p);
      curl_free(q);
    }
  }
  curl_url_cleanup(u);
  curl_url_cleanup(v);
  return same;
}

/* Starts (or starts again) the connection of range s: 1, or 0 when out of
 * memory (the caller tries again later). */
static int seg_start(dt_engine *e, dt_xfer *x, dt_seg *s) {
  const dt_opts *o = x->opts;
  s->retry_at = 0;
  s->checked = s->bad = 0;
  s->errbuf[0] = '\0';
  hlist_clear(&s->h);
  if (!s->wbuf) s->wbuf = malloc(GATHER_BUF); /* without one, each piece is written */
  s->wlen = 0;
  CURL *c = curl_easy_init();
  if (!c) return 0;
  struct curl_slist *l = NULL;
  int ok = 1;
  /* the URL's own validator: url's, or what the mirror named in its first answer */
  const char *v = s->src > 0 ? x->run->mirror_validator[s->src - 1] : x->run->seg_validator;
  if (v) {
    size_t n = strlen(v) + 12;
    char *line = malloc(n);
    if (line) {
      snprintf(line, n, "If-Range: %s", v);
      struct curl_slist *t = curl_slist_append(l, line);
      if (t) l = t;
      else ok = 0;
      free(line);
    } else {
      ok = 0;
    }
  }
  /* as libcurl does after a redirect: credentials meant for url's host are not sent to
   * another host (the one url redirected to) */
  int other_host = s->src == 0 && !same_origin(o->url, x->run->seg_url);
  for (size_t i = 0; ok && i < o->nheaders; i++) {
    if (other_host && (curl_strnequal(o->headers[i], "authorization:", 14) || curl_strnequal(o->headers[i], "cookie:", 7)))
      continue;
    struct curl_slist *t = curl_slist_append(l, o->headers[i]);
    if (t) l = t;
    else ok = 0;
  }
  if (!ok) {
    curl_slist_free_all(l);
    curl_easy_cleanup(c);
    return 0;
  }
  s->slist = l;
  char range[64];
  snprintf(range, sizeof range, "%lld-%lld", (long long)s->pos, (long long)s->end - 1);
  const char *url = s->src > 0 ? o->mirrors[s->src - 1] : x->run->seg_url;
  curl_easy_setopt(c, CURLOPT_URL, url);
  curl_easy_setopt(c, CURLOPT_RANGE, range);
  /* tagged: reap() tells a range's handle from a transfer's */
  curl_easy_setopt(c, CURLOPT_PRIVATE, (void *)((uintptr_t)s | 1u));
  curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
  int tls = curl_strnequal(url, "https://", 8);
  /* a connection of its own, also over HTTP/2: multiplexed on one, the ranges would share
   * the per-connection cap they are there to get around */
  curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, 1L);
  curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
  /* the main request's redirects are behind us; a mirror's are followed */
  curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, s->src > 0 && o->max_redirects != 0 ? 1L : 0L);
  curl_easy_setopt(c, CURLOPT_MAXREDIRS, o->max_redirects);
  curl_easy_setopt(c, CURLOPT_REDIR_PROTOCOLS_STR, tls ? "https" : "http,https");
  if (o->timeout_ms > 0) { /* what is left of the attempt's clock */
    double left = (double)o->timeout_ms - (mono_ms() - x->run->attempt_start) - x->run->spent_ms;
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, left < 1 ? 1L : left >= (double)LONG_MAX ? LONG_MAX : (long)left);
  }
  curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
  if (o->stall_timeout_ms > 0) { /* a stalled range is fetched again */
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    /* seconds, rounded up; at most a billion, which libcurl may still count in ms */
    long secs = o->stall_timeout_ms / 1000 + (o->stall_timeout_ms % 1000 != 0);
    curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, secs > 1000000000L ? 1000000000L : secs);
  }
  curl_easy_setopt(c, CURLOPT_USERAGENT, o->shared->user_agent);
  set_io(c, o, s->slist, s->errbuf, seg_header, seg_write, s);
  /* rateLimit: paced by seg_write with the download's other connections, one budget (libcurl's
   * own cap lets each connection burst for seconds); small reads keep the pace chunk by chunk */
  double rate = rate_of(e, x);
  if (rate > 0) {
    long b = (long)(rate / 16);
    curl_easy_setopt(c, CURLOPT_BUFFERSIZE, b < 16384 ? 16384L : b > RECV_BUFFER ? (long)RECV_BUFFER : b);
  }
  s->resume_at = 0;
  s->tries++;
  s->easy = c;
  if (curl_multi_add_handle(e->multi, c) != CURLM_OK) {
    s->easy = NULL;
    curl_easy_cleanup(c);
    curl_slist_free_all(s->slist);
    s->slist = NULL;
    return 0;
  }
  return 1;
}

/* Splits what is left of the body, [base, total), into ranges when it is
 * worth it; the main connection goes on with the first. 0 when out of memory
 * (the download fails as a write would). */
int seg_split(dt_xfer *x, int64_t base) {
  xrun *r = x->run;
  int64_t left = r->total - base;
  long k = x->opts->segments;
  if (left / SEG_MIN < k) k = (long)(left / SEG_MIN);
  /* a resumed segmented part: its recorded ranges from the one holding
   * base (the first gap), which the main connection continues */
  int first = 0;
  if (r->rmap) {
    while (first < r->nrmap && r->rmap[first].pos != base) first++;
    k = first < r->nrmap ? r->nrmap - first : 0;
  }
  if (k < 2 && !(r->rmap && k == 1)) return 1;
  const char *url = NULL;
  curl_easy_getinfo(r->easy, CURLINFO_EFFECTIVE_URL, &url);
  const char *v = body_validator(x);
  r->segs = calloc((size_t)k, sizeof *r->segs);
  r->seg_url = url ? strdup(url) : NULL;
  r->seg_validator = v ? strdup(v) : NULL;
  if (!r->segs || !r->seg_url || (v && !r->seg_validator)) {
    free(r->segs);
    r->segs = NULL;
    free(r->seg_url);
    r->seg_url = NULL;
    free(r->seg_validator);
    r->seg_validator = NULL;
    return 0;
  }
  r->nsegs = (int)k;
  const char *lm = find_header(x, "last-modified");
  r->seg_lm_time = lm ? (long long)curl_getdate(lm, NULL) : -1;
  curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &r->seg_status);
  for (long i = 0; i < k; i++) {
    dt_seg *s = &r->segs[i];
    s->x = x;
    if (r->rmap) {
      s->start = r->rmap[first + i].start;
      s->pos = r->rmap[first + i].pos;
      s->end = r->rmap[first + i].end;
      if (i > 0) r->written += s->pos - s->start; /* held already: progress counts them */
    } else {
      s->start = s->pos = base + left / k * i;
      s->end = i == k - 1 ? r->total : base + left / k * (i + 1);
    }
    /* mirrors: the ranges go round the URLs (the first is the main connection's) */
    s->src = (int)(i % (long)(x->opts->nmirrors + 1));
    while (s->src > 0 && r->mirror_dead[s->src - 1]) s->src = (s->src + 1) % (int)(x->opts->nmirrors + 1);
  }
  forget_map(r);
  r->segs[0].tries = 1;
  /* The part now fills in with gaps: the info file records which bytes it
   * holds (now, every so often, and when the attempt ends), so that a
   * `resume` also after a kill -9 continues every range. */
  seg_save(x);
  /* started by check_timers, right after this round of curl_multi_perform:
   * libcurl refuses curl_multi_add_handle from within its callbacks, and
   * this runs in one (the main connection's first body bytes). A resumed
   * part may have recorded more ranges than `segments`: those wait, and one
   * starts whenever a connection has finished its range. */
  long running = 1;
  for (long i = 1; i < k; i++) {
    if (r->segs[i].pos >= r->segs[i].end) continue;
    if (running < x->opts->segments) {
      r->segs[i].retry_at = 1;
      running++;
    } else {
      r->segs[i].queued = 1;
    }
  }
  r->seg_conns = (int)running;
  return 1;
}

/* The ranges as the resume part's info file records them: "T s:p:e ...",
 * the body's size and each range's start, bytes held up to, and end. The
 * main connection's gathered bytes are not in the file yet. */
void seg_save(dt_xfer *x) {
  xrun *r = x->run;
  if (!x->opts->resume || !r->seg_validator || !r->part_path || r->nsegs == 0) return;
  size_t cap = 32 + (size_t)r->nsegs * 66, n;
  char *t = malloc(cap);
  if (!t) return;
  n = (size_t)snprintf(t, cap, "%lld", (long long)r->total);
  for (int i = 0; i < r->nsegs && n < cap; i++) {
    dt_seg *s = &r->segs[i];
    int64_t p = s->pos - (int64_t)s->wlen - (i == 0 ? (int64_t)r->wlen : 0);
    n += (size_t)snprintf(t + n, cap - n, " %lld:%lld:%lld", (long long)s->start, (long long)(p < s->start ? s->start : p),
                          (long long)s->end);
  }
  if (n < cap) files_write_info(&x->dest, r->seg_validator, r->total, t);
  free(t);
  r->seg_saved_at = mono_ms();
}

/* Reads the ranges a part's info file recorded into x->run->rmap: they
 * must follow each other up to the size, and hold no byte past the part's
 * size (a range that holds nothing may start past it: it has not started).
 * Returns the part's bytes without a gap from its start, or -1. */
int64_t seg_read_map(dt_xfer *x, const char *line, long long size) {
  long long t, a, p, b;
  int used = 0;
  if (sscanf(line, "%lld%n", &t, &used) != 1 || t <= 0) return -1;
  const char *c = line + used;
  dt_seg *m = NULL;
  int n = 0;
  int64_t prefix = -1, next = -1;
  while (*c == ' ') {
    if (sscanf(c, " %lld:%lld:%lld%n", &a, &p, &b, &used) != 3 || n >= 64 || a < 0 || p < a || b < p ||
        (next >= 0 && a != next) || (p > a && p > size)) { /* held bytes past the file's end */
      free(m);
      return -1;
    }
    dt_seg *g = realloc(m, sizeof *m * (size_t)(n + 1));
    if (!g) {
      free(m);
      return -1;
    }
    m = g;
    memset(&m[n], 0, sizeof *m);
    m[n].start = a;
    m[n].pos = p;
    m[n].end = b;
    if (prefix < 0 && p < b) prefix = p; /* the first gap */
    next = b;
    n++;
    c += used;
  }
  if (*c != '\0' || n == 0 || next != t) {
    free(m);
    return -1;
  }
  x->run->rmap = m;
  x->run->nrmap = n;
  x->run->rmap_total = t;
  return prefix < 0 ? t : prefix;
}

/* The ranges' own retry timers; returns how long until the next one (ms). */
double seg_timers(dt_engine *e, dt_xfer *x, double now) {
  double wait = 1000;
  for (int i = 0; i < x->run->nsegs; i++) {
    dt_seg *s = &x->run->segs[i];
    if (s->resume_at > 0 && s->easy) { /* paused by rateLimit */
      if (s->resume_at <= now) {
        s->resume_at = 0;
        curl_easy_pause(s->easy, CURLPAUSE_CONT);
      } else if (s->resume_at - now < wait) {
        wait = s->resume_at - now;
      }
    }
    if (s->retry_at <= 0) continue;
    if (s->retry_at <= now) {
      if (!seg_start(e, x, s)) s->retry_at = now + RETRY_BASE_MS;
      else continue;
    }
    if (s->retry_at - now < wait) wait = s->retry_at - now;
  }
  return wait;
}


/* Every range is in the file: the download ends as one connection's would.
 * Until then, a connection that has finished its range hands over to a
 * range that waits for one. */
static void seg_check_done(dt_engine *e, dt_xfer *x) {
  for (int i = 0; i < x->run->nsegs; i++)
    if (x->run->segs[i].queued) {
      x->run->segs[i].queued = 0;
      x->run->segs[i].retry_at = 1;
      break;
    }
  if (!x->run->main_over) return;
  for (int i = 0; i < x->run->nsegs; i++)
    if (x->run->segs[i].pos < x->run->segs[i].end) return;
  if (x->run->md) { /* the digest of the file as it is, read back */
    int fd = plat_open_read(x->run->body_path);
    char *buf = malloc(RECV_BUFFER);
    int ok = fd >= 0 && buf && plat_sha256_init(x->run->md);
    for (int64_t off = 0; ok && off < x->run->total;) {
      long long n = plat_read(fd, buf, RECV_BUFFER);
      ok = n > 0 && plat_sha256_update(x->run->md, buf, (size_t)n);
      off += n;
    }
    free(buf);
    if (fd >= 0) plat_close(fd);
    if (!ok) {
      fail(e, x, DT_ERR_SAVE, "save file error: cannot compute the checksum");
      return;
    }
  }
  finish_rc(e, x, CURLE_OK);
}

/* The server's answer to a range did not match it: stop the ranges, and the
 * download starts over (or, with resume, goes on from the bytes it holds
 * without a gap) on one connection. That next request is no retry. */
static void seg_give_up(dt_engine *e, dt_xfer *x) {
  x->run->seg_off = 1;
  x->run->resumes++;
  sleep_then_retry(e, x, 0);
}

/* A range failed: fetched again later, or the download fails (or retries
 * as a whole, with `retry`). */
static void seg_failed(dt_engine *e, dt_xfer *x, dt_seg *s, CURLcode rc, const char *why) {
  /* the download's timeout has passed: no range is worth asking again */
  long t = x->opts->timeout_ms;
  int expired = t > 0 && mono_ms() - x->run->attempt_start + x->run->spent_ms >= (double)t;
  if (!expired && s->tries - SEG_TRIES < x->opts->retry && (rc == CURLE_OK || transient(rc))) {
    double delay = pace_backoff(s->tries, RETRY_BASE_MS, RETRY_MAX_MS, -1), now = mono_ms();
    s->retry_at = now + delay;
    if (t > 0) { /* not after the download's timeout: then it ends */
      double deadline = x->run->attempt_start + (double)t - x->run->spent_ms;
      if (s->retry_at > deadline) s->retry_at = deadline > now ? deadline : now + 1;
    }
    return;
  }
  /* tried enough: one connection from the start may still succeed where concurrent ranges
   * are cut (lighttpd cuts concurrent ranged answers). No retry, and its end is the
   * download's. With `resume` the download fails instead and keeps its recorded ranges: the
   * next resume continues every one, where one connection would drop those past the first
   * gap. */
  if (!expired && !x->opts->resume) {
    seg_give_up(e, x);
    return;
  }
  if (rc != CURLE_OK && attempts_left(x) && transient(rc)) {
    retry_later(e, x);
    return;
  }
  /* the errors one connection would give; past the download's timeout, libcurl's message
   * is the range's own clock's */
  curl_end c = {rc, s->oserr, s->pxerr,
                expired && rc == CURLE_OPERATION_TIMEDOUT ? "Operation timed out" : why};
  char reason[512];
  int err = map_error_of(x, &c, reason, sizeof reason);
  fail(e, x, err, reason);
}

/* A range's connection ended. */
void seg_end(dt_engine *e, dt_seg *s, CURLcode rc) {
  dt_xfer *x = s->x;
  if (rc == CURLE_OK && !s->checked) { /* a whole answer that was no 206 of the range (an empty 503, a 416) */
    long status = 0;
    curl_easy_getinfo(s->easy, CURLINFO_RESPONSE_CODE, &status);
    if (status != 206) s->bad = 1;
  }
  seg_release(x, s);
  s->oserr = s->pxerr = 0;
  curl_easy_getinfo(s->easy, CURLINFO_OS_ERRNO, &s->oserr);
  curl_easy_getinfo(s->easy, CURLINFO_PROXY_ERROR, &s->pxerr);
  release_easy(e, &s->easy);
  curl_slist_free_all(s->slist);
  s->slist = NULL;
  if (s->werr) {
    file_error(x, s->werr, x->dest.path ? x->dest.path : x->run->body_path);
    fail(e, x, x->run->fail_err, x->run->fail_reason);
  } else if (s->src > 0 && s->pos < s->end) {
    /* a mirror that failed, or answered with another size or validator
     * (If-Range: a whole body), is dropped; its range is fetched from the
     * next URL that is left, at once */
    x->run->mirror_dead[s->src - 1] = 1;
    int n = (int)x->opts->nmirrors + 1;
    do s->src = (s->src + 1) % n;
    while (s->src > 0 && x->run->mirror_dead[s->src - 1]);
    for (int i = 0; i < x->run->nsegs; i++) { /* the dead mirror's ranges that wait */
      dt_seg *o = &x->run->segs[i];
      if (o != s && !o->easy && o->src > 0 && x->run->mirror_dead[o->src - 1] && o->pos < o->end) o->src = s->src;
    }
    s->tries--;
    s->retry_at = 1;
  } else if (s->bad) {
    seg_give_up(e, x);
  } else if (s->pos < s->end) {
    seg_failed(e, x, s, rc, s->errbuf[0] ? s->errbuf : rc != CURLE_OK ? curl_easy_strerror(rc)
                                                                     : "a range of the body ended early");
  } else {
    seg_check_done(e, x);
  }
}

/* The main connection of a segmented download ended: by our hand at the
 * end of its range, or by a failure. */
void seg_main_end(dt_engine *e, dt_xfer *x, CURLcode rc) {
  xrun *r = x->run;
  dt_seg *s0 = &r->segs[0];
  int c = gather_flush_end(x);
  fill_profile(x, &r->res->profile);
  s0->oserr = s0->pxerr = 0;
  curl_easy_getinfo(r->easy, CURLINFO_OS_ERRNO, &s0->oserr);
  curl_easy_getinfo(r->easy, CURLINFO_PROXY_ERROR, &s0->pxerr);
  release_easy(e, &r->easy);
  r->main_over = 1;
  if (c != 0) {
    file_error(x, errno, x->dest.path ? x->dest.path : r->body_path);
    fail(e, x, r->fail_err, r->fail_reason);
  } else if (s0->pos == s0->end) {
    seg_check_done(e, x);
  } else if (r->fail_err) { /* a write error or a limit of ours: final */
    fail(e, x, r->fail_err, r->fail_reason);
  } else {
    seg_failed(e, x, s0, rc, r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
  }
}
