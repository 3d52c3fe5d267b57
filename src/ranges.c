/*
 * ranges.c: which bytes of an answer may join a part (ranges.h).
 */
#include "ranges.h"

#include <limits.h>
#include <stdio.h>
#include <string.h>

/* Reads a decimal number of digits only (no sign, no space) at p into *v; the end of it, or
 * NULL when there is none or it does not fit. */
static const char *number(const char *p, long long *v) {
  if (*p < '0' || *p > '9') return NULL;
  long long n = 0;
  for (; *p >= '0' && *p <= '9'; p++) {
    int d = *p - '0';
    if (n > (LLONG_MAX - d) / 10) return NULL;
    n = n * 10 + d;
  }
  *v = n;
  return p;
}

static const char *blanks(const char *p) {
  while (*p == ' ' || *p == '\t') p++;
  return p;
}

/* "bytes a-b/t" (t may be "*": -1), RFC 9110 14.4; 1 when it parses. Strict: digits only, and
 * nothing after it but blanks and the line's CR LF. */
int content_range(const char *v, long long *a, long long *b, long long *t) {
  *t = -1;
  if (!v) return 0;
  const char *p = blanks(v);
  if (strncmp(p, "bytes", 5) != 0 || (p[5] != ' ' && p[5] != '\t')) return 0;
  p = blanks(p + 5);
  long long x, y, z = -1;
  if (!(p = number(p, &x)) || *p++ != '-' || !(p = number(p, &y)) || *p++ != '/') return 0;
  if (*p == '*') p++;
  else if (!(p = number(p, &z))) return 0;
  while (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') p++; /* the header line's end */
  if (*p != '\0' || y < x) return 0;
  *a = x;
  *b = y;
  *t = z;
  return 1;
}

const char *ranges_strong_validator(const char *etag, const char *last_modified,
                                    long long lm_time, long long date_time) {
  if (etag && *etag && strncmp(etag, "W/", 2) != 0) return etag;
  if (last_modified && *last_modified && lm_time >= 0 && date_time >= 0 && lm_time < date_time)
    return last_modified;
  return NULL;
}

int ranges_same_version(const char *recorded, const char *etag, const char *last_modified) {
  if (!recorded || !*recorded) return 0;
  return (etag && strcmp(etag, recorded) == 0) ||
         (last_modified && strcmp(last_modified, recorded) == 0);
}

/* "bytes * /t" of a 416 (t >= 0); -1 when it says nothing usable */
static long long unsatisfied_length(const char *v) {
  long long t = -1;
  int n = 0;
  if (!v || sscanf(v, " bytes */%lld%n", &t, &n) != 1 || n == 0 || t < 0) return -1;
  return t;
}

ranges_verdict ranges_decide(const ranges_part *p, const ranges_answer *a, long long *total) {
  *total = p->total;
  if (a->status == 206) {
    long long from, to, t;
    if (!content_range(a->content_range, &from, &to, &t) || from != p->held) return RANGES_START_OVER;
    if (t >= 0 && p->total >= 0 && t != p->total) return RANGES_START_OVER; /* another length */
    long long length = t >= 0 ? t : p->total;
    if (length >= 0 && to >= length) return RANGES_START_OVER; /* past the body's end */
    if (!ranges_same_version(p->validator, a->etag, a->last_modified)) return RANGES_START_OVER;
    /* a length of "*": the open range asked for ends where the body does */
    *total = t >= 0 ? t : p->total >= 0 ? p->total : to + 1;
    return RANGES_APPEND;
  }
  if (a->status == 416) {
    long long t = unsatisfied_length(a->content_range);
    if (t != p->held || (p->total >= 0 && t != p->total)) return RANGES_START_OVER;
    /* a 416 need not name a validator; one that names another version is not this part's */
    if ((a->etag || a->last_modified) && !ranges_same_version(p->validator, a->etag, a->last_modified))
      return RANGES_START_OVER;
    *total = t;
    return RANGES_COMPLETE;
  }
  return RANGES_WHOLE;
}

ranges_verdict ranges_decide_range(const ranges_range *r, const ranges_answer *a, const char **learnt) {
  *learnt = NULL;
  long long from, to, t;
  if (a->status != 206 || !content_range(a->content_range, &from, &to, &t) || from != r->start ||
      to != r->end - 1 || t != r->total)
    return RANGES_UNUSABLE;
  if (r->validator) /* the URL's version, as it named it before */
    return ranges_same_version(r->validator, a->etag, a->last_modified) ? RANGES_WRITE : RANGES_UNUSABLE;
  if (!r->mirror) /* url without a validator: split only with a checksum; the length agreed */
    return r->checksum ? RANGES_WRITE : RANGES_UNUSABLE;
  /* a mirror's first answer: url's Last-Modified where both send one */
  if (r->url_lm_time >= 0 && a->lm_time >= 0 && a->lm_time != r->url_lm_time) return RANGES_UNUSABLE;
  *learnt = ranges_strong_validator(a->etag, a->last_modified, a->lm_time, a->date_time);
  return *learnt || r->checksum ? RANGES_WRITE : RANGES_UNUSABLE;
}
