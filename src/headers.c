/*
 * headers.c: a response's header lines (headers.h).
 */
#include "headers.h"

#include <stdlib.h>
#include <string.h>

/* Appends n bytes and a terminator. */
static int add(hlist *h, const char *s, size_t n) {
  if (h->len + n + 1 > h->cap) {
    size_t cap = h->cap ? h->cap * 2 : 1024;
    while (cap < h->len + n + 1) cap *= 2;
    char *b = realloc(h->buf, cap);
    if (!b) return 0;
    h->buf = b;
    h->cap = cap;
  }
  memcpy(h->buf + h->len, s, n);
  h->buf[h->len + n] = '\0';
  h->len += n + 1;
  return 1;
}

static int blank(char c) { return c == ' ' || c == '\t'; }

int hlist_add_line(hlist *h, const char *buf, size_t len, size_t max_count, size_t max_bytes) {
  size_t end = len;
  while (end > 0 && (buf[end - 1] == '\r' || buf[end - 1] == '\n')) end--;
  if (end == 0) return HLIST_OK;
  /* a zero byte would end a name or value early and shift every pair after it (a value
   * "x\0etag\0v" would read as an ETag): such a line is no header of ours (found by make fuzz) */
  if (memchr(buf, '\0', end)) return HLIST_OK;
  if (blank(buf[0])) {
    /* obsolete line folding: the line continues the previous header's
     * value, joined with one space */
    size_t v = 0;
    while (v < end && blank(buf[v])) v++;
    size_t vend = end;
    while (vend > v && blank(buf[vend - 1])) vend--;
    if (h->count == 0 || vend == v) return HLIST_OK;
    if (h->len + (vend - v) + 2 > max_bytes) return HLIST_FULL;
    h->len--; /* the value's terminator goes: the value continues */
    if (h->buf[h->len - 1] != '\0') { /* after a space, unless it was empty */
      if (!add(h, " ", 1)) {
        h->len++;
        return HLIST_NOMEM;
      }
      h->len--;
    }
    if (!add(h, buf + v, vend - v)) {
      h->len++; /* (its terminator is still there) */
      return HLIST_NOMEM;
    }
    return HLIST_OK;
  }
  const char *colon = memchr(buf, ':', end);
  if (!colon || colon == buf) return HLIST_OK;
  size_t nlen = (size_t)(colon - buf);
  size_t v = nlen + 1;
  while (v < end && blank(buf[v])) v++;
  size_t vend = end;
  while (vend > v && blank(buf[vend - 1])) vend--;
  if (h->count >= max_count || h->len + end + 2 > max_bytes) return HLIST_FULL;
  size_t at = h->len;
  if (!add(h, buf, nlen) || !add(h, buf + v, vend - v)) {
    h->len = at;
    return HLIST_NOMEM;
  }
  for (size_t i = 0; i < nlen; i++) {
    char c = h->buf[at + i];
    if (c >= 'A' && c <= 'Z') h->buf[at + i] = (char)(c + 32);
  }
  h->count++;
  return HLIST_OK;
}

const char *hlist_find(const hlist *h, const char *name) {
  const char *p = h->buf;
  for (size_t i = 0; p && i < h->count; i++) {
    const char *v = p + strlen(p) + 1;
    if (strcmp(p, name) == 0) return v;
    p = v + strlen(v) + 1;
  }
  return NULL;
}

void hlist_clear(hlist *h) { h->len = h->count = 0; }

void hlist_free(hlist *h) {
  free(h->buf);
  h->buf = NULL;
  h->len = h->cap = h->count = 0;
}
