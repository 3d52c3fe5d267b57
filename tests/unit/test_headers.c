/* src/headers.c: header lines as libcurl hands them over, obsolete line folding, the limits. */
#include "../../src/headers.h"
#include "unit.h"

#include <string.h>

/* The list as "name=value;" pairs, for comparing with a row's expectation. */
static const char *flat(const hlist *h) {
  static char out[4096];
  size_t n = 0;
  const char *p = h->buf;
  out[0] = '\0';
  for (size_t i = 0; p && i < h->count && n < sizeof out - 1; i++) {
    const char *v = p + strlen(p) + 1;
    n += (size_t)snprintf(out + n, sizeof out - n, "%s=%s;", p, v);
    p = v + strlen(v) + 1;
  }
  return out;
}

static void test_lines(void) {
  static const struct {
    const char *lines[4];
    const char *want;
    const char *why;
  } rows[] = {
      {{"Content-Type: text/plain\r\n"}, "content-type=text/plain;", "a line, its name in lower case"},
      {{"ETag:\"a\"\r\n"}, "etag=\"a\";", "no blank after the colon"},
      {{"X-A:  \t v \t \r\n"}, "x-a=v;", "blanks around the value go"},
      {{"X-Empty:\r\n"}, "x-empty=;", "an empty value"},
      {{"X-A: 1\r\n", "X-A: 2\r\n"}, "x-a=1;x-a=2;", "repeats are kept in order"},
      {{"X-Folded: first\r\n", "  second\r\n"}, "x-folded=first second;", "folding joins with one space"},
      {{"X-Folded: first\r\n", "\tsecond \r\n", " third\r\n"}, "x-folded=first second third;",
       "folding twice, a tab"},
      {{"X-Empty:\r\n", "  more\r\n"}, "x-empty=more;", "folding onto an empty value: no space first"},
      {{"  orphan\r\n"}, "", "a continuation with nothing before it"},
      {{"X-A: v\r\n", "   \r\n"}, "x-a=v;", "a blank continuation"},
      {{"no colon here\r\n"}, "", "a line without a colon"},
      {{": value\r\n"}, "", "an empty name"},
      {{"\r\n"}, "", "the blank line at the end of the headers"},
      {{"X-A: a:b:c\r\n"}, "x-a=a:b:c;", "the first colon ends the name"},
      {{"X-A: v"}, "x-a=v;", "without CR LF"},
      {{"X-A: v\n"}, "x-a=v;", "LF alone"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    hlist h = {0};
    int rc = HLIST_OK;
    for (int j = 0; j < 4 && rows[i].lines[j] && rc == HLIST_OK; j++)
      rc = hlist_add_line(&h, rows[i].lines[j], strlen(rows[i].lines[j]), 1000, 65536);
    CHECK(rc == HLIST_OK && strcmp(flat(&h), rows[i].want) == 0, "%s: got '%s', want '%s' (rc %d)", rows[i].why,
          flat(&h), rows[i].want, rc);
    hlist_free(&h);
  }
}

static void test_limits_and_find(void) {
  hlist h = {0};
  const char *l = "X-A: 1\r\n";
  CHECK(hlist_add_line(&h, l, strlen(l), 2, 65536) == HLIST_OK, "first of two");
  CHECK(hlist_add_line(&h, l, strlen(l), 2, 65536) == HLIST_OK, "second of two");
  CHECK(hlist_add_line(&h, l, strlen(l), 2, 65536) == HLIST_FULL, "a third over max_count");
  CHECK(h.count == 2, "the list is unchanged: %zu", h.count);
  hlist_clear(&h);
  CHECK(h.count == 0 && hlist_find(&h, "x-a") == NULL, "cleared for a new response");
  char big[300];
  memset(big, 'v', sizeof big);
  memcpy(big, "X-Big: ", 7);
  CHECK(hlist_add_line(&h, big, sizeof big, 100, 256) == HLIST_FULL, "a line over max_bytes");
  CHECK(hlist_add_line(&h, "X-B: 1", 6, 100, 256) == HLIST_OK, "a small one fits");
  size_t before = h.len;
  CHECK(hlist_add_line(&h, big, sizeof big - 7, 100, 256) == HLIST_FULL && h.len == before,
        "a continuation over max_bytes leaves the list as it was");
  const char *more[] = {"ETag: \"e\"\r\n", "Last-Modified: Mon, 01 Jan 2024 00:00:00 GMT\r\n", "etag: \"second\"\r\n"};
  for (int i = 0; i < 3; i++) hlist_add_line(&h, more[i], strlen(more[i]), 100, 65536);
  const char *e = hlist_find(&h, "etag");
  CHECK(e && strcmp(e, "\"e\"") == 0, "find: the first of a name: %s", e ? e : "(none)");
  e = hlist_find(&h, "last-modified");
  CHECK(e && strcmp(e, "Mon, 01 Jan 2024 00:00:00 GMT") == 0, "find: a value with colons");
  CHECK(hlist_find(&h, "ETag") == NULL, "find takes the lower-case name");
  CHECK(hlist_find(&h, "x-missing") == NULL, "find: an absent name");
  hlist_clear(&h);
  static const char nul_value[] = "X-A: x\0etag\0\"forged\"\r\n", nul_fold[] = "  x\0etag\0\"forged\"\r\n";
  hlist_add_line(&h, "X-B: 1\r\n", 8, 100, 65536);
  CHECK(hlist_add_line(&h, nul_value, sizeof nul_value - 1, 100, 65536) == HLIST_OK && h.count == 1,
        "a line with a zero byte is ignored (make fuzz: it forged a pair)");
  CHECK(hlist_add_line(&h, nul_fold, sizeof nul_fold - 1, 100, 65536) == HLIST_OK && h.count == 1 &&
            hlist_find(&h, "etag") == NULL && strcmp(hlist_find(&h, "x-b"), "1") == 0,
        "a continuation with a zero byte too");
  hlist_free(&h);
  CHECK(h.buf == NULL && h.count == 0, "freed");
}

void test_headers(void) {
  test_lines();
  test_limits_and_find();
}
