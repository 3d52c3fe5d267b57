/*
 * headers.h: a response's header lines as they arrive, kept in one buffer as pairs of
 * NUL-terminated name (lower case) and value. Pure: no libcurl, no I/O. Unit-tested in
 * tests/unit/test_headers.c, fuzzed by tests/fuzz/fuzz_header.c.
 */
#ifndef DT_HEADERS_H
#define DT_HEADERS_H

#include <stddef.h>

typedef struct hlist {
  char *buf;    /* name\0value\0name\0value\0... (malloc'ed; NULL until the first) */
  size_t len;   /* bytes of buf in use */
  size_t cap;
  size_t count; /* pairs */
} hlist;

enum { HLIST_OK = 0, HLIST_FULL = 1, HLIST_NOMEM = 2 };

/* Adds one header line as libcurl hands it over (with or without its CR LF): "Name: value",
 * the value without the blanks around it; or a continuation (a line that starts with a space
 * or a tab, RFC 9112's obsolete line folding), joined to the previous value with one space.
 * Ignored: a blank line, a line without a colon or with nothing before it, a continuation
 * with nothing before it or nothing in it, a line holding a zero byte. HLIST_FULL when it would make more than max_count
 * headers or max_bytes in all (the list is unchanged), HLIST_NOMEM when out of memory. */
int hlist_add_line(hlist *h, const char *line, size_t len, size_t max_count, size_t max_bytes);

/* The value of the first header of that name (lower case), or NULL. */
const char *hlist_find(const hlist *h, const char *name);

/* A new response: the list is emptied, its buffer kept. */
void hlist_clear(hlist *h);

void hlist_free(hlist *h);

#endif
