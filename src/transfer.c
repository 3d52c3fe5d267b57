/*
 * transfer.c: one transfer's life on the engine thread: start() sets up its request (the
 * easy handle, the resume part's Range), finish_rc() turns libcurl's end into a result or a
 * retry (error mapping, backoff), and pause()/resume() stop and continue it.
 */
#include "engine_int.h"
#include "ranges.h"
#include "record.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
int add_header(dt_xfer *x, const char *name, const char *value) {
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

/* What an earlier attempt left, in the one place an attempt's state is set up
 * (the state kept across attempts, such as the held body, stays). */
static void attempt_reset(dt_engine *e, dt_xfer *x) {
  x->run->body_started = x->run->discard = x->run->retry_pending = x->run->to_dest = x->run->fail_err = 0;
  x->run->inplace = x->run->ranged = x->run->retry_fail = x->run->complete_part = 0;
  x->run->continued = 0;
  hlist_clear(&x->run->hdr);
  x->run->written = x->run->offset = 0;
  x->run->part_length = x->run->held ? x->run->total : -1; /* a held body's, before it goes */
  x->run->total = -1;
  x->run->attempt_start = mono_ms();
  x->run->rate_due = x->run->resume_at = 0;
  x->run->errbuf[0] = '\0';
  if (x->run->segs) seg_free(e, x);
}

/* The attempt's file for a filePath (start): the held body of a paused one, the
 * destination itself (a FIFO), the resume part, or a new temporary file beside it; with
 * *validator what a Range may continue it with. 0 when it failed (fail() called). */
static int open_dest(dt_engine *e, dt_xfer *x, char **validator) {
  const dt_opts *o = x->opts;
  resolve_dest(x);
  if (!x->dest.path) {
    fail(e, x, x->dest_reason ? x->dest_err : DT_ERR_SAVE,
         x->dest_reason ? x->dest_reason : "save file error: out of memory");
    return 0;
  }
  if (x->run->held) { /* paused: the body so far is still open */
    *validator = x->run->held_validator;
    x->run->held_validator = NULL;
    long long size = plat_size(x->run->fd);
    if (size <= 0 || !*validator) { /* nothing a range could continue */
      free(*validator);
      *validator = NULL;
      if (plat_truncate0(x->run->fd) != 0) {
        file_error(x, errno, x->dest.path);
        fail(e, x, x->run->fail_err, x->run->fail_reason);
        return 0;
      }
      size = 0;
    }
    x->run->offset = size;
  } else {
    x->run->fd = x->dest.kind == DEST_INPLACE ? open_inplace(x)
                 : o->resume                  ? open_resume_part(e, x, validator)
                                              : open_part(e, x);
  }
  if (x->run->fd < 0) {
    fail(e, x, x->run->fail_err, x->run->fail_reason);
    return 0;
  }
  return 1;
}

void start(dt_engine *e, dt_xfer *x) {
  const dt_opts *o = x->opts;
  x->phase = PH_RUNNING;
  xlist_push(&e->running, x);
  if (x->run->attempt++ == 0) x->run->fetch_start = epoch_ms();
  attempt_reset(e, x);
  if (x->run->attempt == 1) publish(e, x, DT_EV_STARTED, NULL, NULL);

  if (!scheme_ok(o->url)) {
    fail(e, x, DT_ERR_URL, strstr(o->url, "://") ? "unsupported protocol" : "invalid url");
    return;
  }
  char *validator = NULL;
  if (o->file_path && !open_dest(e, x, &validator)) return;
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

/* "timeout (<which option>: <ms> ms)": which limit fired, from libcurl's message
 * (curl_msg: "Connection timed out after", "Operation too slow", "Operation timed
 * out after") or the engine's own stall check (curl_msg NULL). */
void timeout_reason(const dt_opts *o, const char *curl_msg, char *reason, size_t n) {
  const char *which = "timeout";
  long ms = o->timeout_ms;
  if (!curl_msg || strstr(curl_msg, "too slow")) {
    which = "stallTimeout";
    ms = o->stall_timeout_ms;
  } else if ((strstr(curl_msg, "onnect") || strstr(curl_msg, "Resolving timed out")) &&
             o->connect_timeout_ms > 0 && (o->timeout_ms <= 0 || o->connect_timeout_ms < o->timeout_ms)) {
    /* the connect phase ("Connection timed out", "Failed to connect"), and the shorter limit */
    which = "connectTimeout";
    ms = o->connect_timeout_ms;
  }
  snprintf(reason, n, "timeout (%s: %ld ms)", which, ms);
}

/* What a proxy said (CURLPX_*), 0 when nothing (or no handle). */
static long proxy_error(dt_xfer *x) {
  long px = 0;
  if (x->run->easy) curl_easy_getinfo(x->run->easy, CURLINFO_PROXY_ERROR, &px);
  return px;
}

/* How the main connection ended, as map_error_of reads it. */
static curl_end main_end(dt_xfer *x, CURLcode rc) {
  curl_end c = {rc, 0, proxy_error(x), x->run->errbuf};
  if (x->run->easy) curl_easy_getinfo(x->run->easy, CURLINFO_OS_ERRNO, &c.oserr);
  return c;
}

/* "could not resolve host: <name>" (or proxy), the name as libcurl's message gives it, else
 * the URL's host, else the proxy as given. */
static int resolve_reason(dt_xfer *x, const curl_end *c, char *reason, size_t n) {
  /* the name that did not resolve, as libcurl's message gives it */
  int proxy = c->rc == CURLE_COULDNT_RESOLVE_PROXY;
  const char *what = proxy ? "Could not resolve proxy: " : "Could not resolve host: ";
  const char *name = strstr(c->errbuf, what);
  name = name ? name + strlen(what) : "";
  size_t len = strcspn(name, " \r\n");
  char *host = NULL;
  CURLU *u = len == 0 && !proxy ? curl_url() : NULL; /* no message: the URL's host */
  if (u && curl_url_set(u, CURLUPART_URL, x->opts->url, 0) == CURLUE_OK &&
      curl_url_get(u, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
    name = host;
    len = strlen(host);
  }
  if (proxy && len == 0 && x->opts->proxy) { /* no name in libcurl's message: the proxy as given */
    name = x->opts->proxy;
    len = strlen(name);
  }
  snprintf(reason, n, "could not resolve %s: %.*s", proxy ? "proxy" : "host", (int)len, name);
  curl_free(host);
  curl_url_cleanup(u);
  return DT_ERR_CONNECT;
}

int map_error(dt_xfer *x, CURLcode rc, char *reason, size_t n) {
  curl_end c = main_end(x, rc);
  return map_error_of(x, &c, reason, n);
}

int map_error_of(dt_xfer *x, const curl_end *c, char *reason, size_t n) {
  CURLcode rc = c->rc;
  long oserr = c->oserr;
  const char *detail = c->errbuf[0] ? c->errbuf : curl_easy_strerror(rc);
  if (x->run->fail_err) {
    snprintf(reason, n, "%s", x->run->fail_reason);
    return x->run->fail_err;
  }
  switch (rc) {
  case CURLE_UNSUPPORTED_PROTOCOL:
    /* libcurl says this also of a reply that is not HTTP at all (it takes it
     * for HTTP/0.9, which it refuses): that is the server's fault, not the URL's */
    if (strstr(c->errbuf, "HTTP/0.9")) {
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
  case CURLE_COULDNT_RESOLVE_PROXY:
    return resolve_reason(x, c, reason, n);
  case CURLE_COULDNT_CONNECT:
    if (oserr == ECONNREFUSED) snprintf(reason, n, "connection refused");
    else snprintf(reason, n, "could not connect: %s", detail);
    return DT_ERR_CONNECT;
  case CURLE_OPERATION_TIMEDOUT:
    timeout_reason(x->opts, detail, reason, n);
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
  case CURLE_PROXY: /* a SOCKS proxy's word for what a direct connection would have met */
    switch (c->proxy_err) {
    case CURLPX_REPLY_CONNECTION_REFUSED:
      snprintf(reason, n, "connection refused");
      return DT_ERR_CONNECT;
    case CURLPX_RESOLVE_HOST:
    case CURLPX_REPLY_HOST_UNREACHABLE:
    case CURLPX_REPLY_NETWORK_UNREACHABLE:
    case CURLPX_REPLY_TTL_EXPIRED:
      snprintf(reason, n, "could not connect: %s", detail);
      return DT_ERR_CONNECT;
    default:
      break;
    }
    break;
  default:
    break;
  }
  snprintf(reason, n, "%s", detail);
  return DT_ERR_NETWORK;
}

/* Whether another attempt may do better, whatever the route: through a SOCKS
 * proxy, a refused or unreachable target is retried as it is directly. */
static int transient_here(dt_xfer *x, CURLcode rc) {
  if (rc != CURLE_PROXY) return transient(rc);
  long px = proxy_error(x);
  return px == CURLPX_REPLY_CONNECTION_REFUSED || px == CURLPX_REPLY_HOST_UNREACHABLE ||
         px == CURLPX_REPLY_NETWORK_UNREACHABLE || px == CURLPX_REPLY_TTL_EXPIRED;
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
  double delay = pace_backoff(x->run->attempt, RETRY_BASE_MS, RETRY_MAX_MS, (double)(next_rand() % 1001) / 1000.0);
  if (after > 0) delay = 1000.0 * (double)(after > RETRY_AFTER_MAX_S ? RETRY_AFTER_MAX_S : after);
  sleep_then_retry(e, x, delay);
}

/* Ends this attempt; the next one starts after delay ms. */
void sleep_then_retry(dt_engine *e, dt_xfer *x, double delay) {
  release_easy(e, &x->run->easy);
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
  int fd = files_temp(x->dest.dir, 0, &tmp);
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
       (x->run->retry_fail || (!x->run->fail_err && transient_here(x, rc))))) {
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
  if (x->run->continued) r->status = x->run->body_status ? x->run->body_status : 200;
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
      char why[200];
      snprintf(why, sizeof why, "checksum mismatch: expected %s, got %s", x->opts->sha256, r->sha256);
      fail(e, x, DT_ERR_CHECKSUM, why);
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
  /* a private body's name said which process wrote it; it is the caller's now */
  if (!x->run->to_dest && x->run->body_path && files_deliver_private(&x->run->body_path) != 0) {
    file_error(x, errno, x->run->body_path); /* under its own name the next sweep would take it */
    fail(e, x, x->run->fail_err, x->run->fail_reason);
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
  release_easy(e, &x->run->easy);
  curl_slist_free_all(x->run->slist);
  x->run->slist = NULL;
  seg_stop_all(e, x);
  if (!r->ok && r->err == DT_ERR_CHECKSUM && x->opts->resume && x->run->part_path) {
    plat_unlink(x->run->part_path); /* a wrong file is nothing to continue */
    files_write_validator(&x->dest, NULL, -1);
  }
  if (!r->ok) close_body(x);
  drop_ahead(x->run); /* before the news: nothing of it is left once Lua hears */
  if (!r->ok || !r->to_dest) unmake_dirs(x); /* nothing saved: createDirs' directories go */
  else files_made_free(&x->made);              /* the file is in them: they are the caller's */
  r->attempts = x->run->attempt - x->run->resumes; /* retry's requests: resume() starts none */
  if (x->phase == PH_RUNNING) xlist_remove(&e->running, x);
  x->phase = PH_DONE;
  publish(e, x, DT_EV_DONE | (r->ok ? DT_EV_PROGRESS : 0u), NULL, r);
  run_free(x);
  xfer_unref(x); /* the engine's reference */
}

/* Stops x without telling anyone: the binding already knows. */
void drop(dt_engine *e, dt_xfer *x) {
  if (x->phase == PH_WAITING) xq_remove(&e->waiting, x);
  if (x->phase == PH_SLEEPING) xlist_remove(&e->sleeping, x);
  if (x->phase == PH_PAUSED) xlist_remove(&e->paused, x);
  if (x->phase == PH_RUNNING) {
    xlist_remove(&e->running, x);
    release_easy(e, &x->run->easy);
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
void abort_xfer(dt_engine *e, dt_xfer *x) {
  pthread_mutex_lock(&e->mu);
  dt_result *untaken = x->pub.result;
  x->pub.result = NULL;
  /* drop() frees the run, and with it the count err.attempts reports */
  if (x->run) x->pub.attempts = x->run->attempt - x->run->resumes;
  pthread_mutex_unlock(&e->mu);
  dt_result_discard(untaken);
  if (x->phase != PH_DONE) {
    atomic_fetch_add(&x->refs, 1); /* drop() lets go of the engine's */
    drop(e, x);
    unmake_dirs(x);
    publish(e, x, DT_EV_ABORTED, NULL, NULL);
    xfer_unref(x);
    return;
  }
  unmake_dirs(x); /* a result not taken yet: its file went with it (none after a delivery) */
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
void pause_xfer(dt_engine *e, dt_xfer *x) {
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
    release_easy(e, &r->easy);
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
void resume_xfer(dt_engine *e, dt_xfer *x) {
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

