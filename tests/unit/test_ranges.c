/* src/ranges.c: Content-Range, strong validators, and the one decision of which answer bytes
 * may join a part. Each table row is one case; the rows named "item N" are the defects of
 * issue 20 that the decision answers. */
#include "../../src/ranges.h"
#include "unit.h"

#include <string.h>

static void test_content_range(void) {
  static const struct {
    const char *v;
    int ok;
    long long a, b, t;
  } rows[] = {
      {"bytes 0-99/100", 1, 0, 99, 100},
      {"bytes 100-199/*", 1, 100, 199, -1},
      {" bytes 5-5/6", 1, 5, 5, 6},
      {"bytes 9223372036854775806-9223372036854775806/9223372036854775807", 1,
       9223372036854775806LL, 9223372036854775806LL, 9223372036854775807LL},
      {"bytes 10-5/100", 0, 0, 0, 0},   /* end before start */
      {"bytes -1-5/100", 0, 0, 0, 0},   /* negative start */
      {"bytes */100", 0, 0, 0, 0},      /* a 416's form, not a range */
      {"items 0-99/100", 0, 0, 0, 0},   /* another unit */
      {"bytes 0-99", 0, 0, 0, 0},       /* no length */
      {"bytes 0-99/", 0, 0, 0, 0},
      {"", 0, 0, 0, 0},
      {"bytes", 0, 0, 0, 0},
      {"bytes 0-9/-9", 0, 0, 0, 0},     /* found by make fuzz: a negative length */
      {"bytes0-9/10", 0, 0, 0, 0},      /* no space after the unit */
      {"bytes +0-9/10", 0, 0, 0, 0},    /* a sign */
      {"bytes 0- 9/10", 0, 0, 0, 0},    /* a space inside */
      {"bytes 0-99/100xyz", 0, 0, 0, 0}, /* a tail */
      {"bytes 0-99/100 \t", 1, 0, 99, 100}, /* blanks after it */
      {" bytes 0-99/100\r\n", 1, 0, 99, 100}, /* the raw header line's end */
      {"bytes 0-9/99999999999999999999", 0, 0, 0, 0}, /* a length that does not fit */
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    long long a = -7, b = -7, t = -7;
    int ok = content_range(rows[i].v, &a, &b, &t);
    CHECK(ok == rows[i].ok && (!ok || (a == rows[i].a && b == rows[i].b && t == rows[i].t)),
          "content_range(\"%s\") = %d, %lld-%lld/%lld", rows[i].v, ok, a, b, t);
  }
  long long a, b, t;
  CHECK(content_range(NULL, &a, &b, &t) == 0 && t == -1, "content_range(NULL)");
}

static void test_strong_validator(void) {
  static const struct {
    const char *etag, *lm;
    long long lm_time, date_time;
    const char *want; /* "etag", "lm" or NULL */
    const char *why;
  } rows[] = {
      {"\"a\"", NULL, -1, -1, "etag", "a quoted ETag"},
      {"v1", NULL, -1, -1, "etag", "item 4: an unquoted ETag is strong too"},
      {"W/\"a\"", NULL, -1, -1, NULL, "item 4: a weak ETag alone"},
      {"W/\"a\"", "Mon, 01 Jan 2024 00:00:00 GMT", 100, 200, "lm", "weak ETag, Last-Modified before Date"},
      {"W/\"a\"", "Mon, 01 Jan 2024 00:00:00 GMT", 200, 200, NULL, "item 4: Last-Modified equal to Date is weak"},
      {NULL, "Mon, 01 Jan 2024 00:00:00 GMT", 300, 200, NULL, "Last-Modified after Date"},
      {NULL, "Mon, 01 Jan 2024 00:00:00 GMT", 100, -1, NULL, "no Date: cannot tell"},
      {NULL, "garbage", -1, 200, NULL, "an unparsable Last-Modified"},
      {NULL, NULL, -1, -1, NULL, "item 3: no validator at all"},
      {"", "Mon, 01 Jan 2024 00:00:00 GMT", 100, 200, "lm", "an empty ETag is none"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    const char *got = ranges_strong_validator(rows[i].etag, rows[i].lm, rows[i].lm_time, rows[i].date_time);
    const char *want = !rows[i].want ? NULL : strcmp(rows[i].want, "etag") == 0 ? rows[i].etag : rows[i].lm;
    CHECK(got == want, "%s: got %s", rows[i].why, got ? got : "NULL");
  }
}

static void test_same_version(void) {
  CHECK(ranges_same_version("\"a\"", "\"a\"", NULL), "the same ETag");
  CHECK(!ranges_same_version("\"a\"", "\"b\"", NULL), "item 1: another ETag");
  CHECK(!ranges_same_version("\"a\"", "a", NULL), "quoted and unquoted differ: exact strings");
  CHECK(ranges_same_version("v1", "v1", "Mon, 01 Jan 2024 00:00:00 GMT"), "an unquoted ETag");
  CHECK(ranges_same_version("Mon, 01 Jan 2024 00:00:00 GMT", "\"x\"", "Mon, 01 Jan 2024 00:00:00 GMT"),
        "a recorded Last-Modified against an answer that also has an ETag");
  CHECK(!ranges_same_version("\"a\"", NULL, NULL), "an answer naming no validator");
  CHECK(!ranges_same_version(NULL, "\"a\"", NULL), "nothing recorded");
  CHECK(!ranges_same_version("", "", NULL), "an empty record is none");
  char long_etag[1200];
  memset(long_etag, 'x', sizeof long_etag - 1);
  long_etag[0] = long_etag[sizeof long_etag - 2] = '"';
  long_etag[sizeof long_etag - 1] = '\0';
  char copy[sizeof long_etag];
  memcpy(copy, long_etag, sizeof copy);
  CHECK(ranges_same_version(long_etag, copy, NULL), "item 5: a 1 KiB ETag is compared whole");
  copy[600] = 'y';
  CHECK(!ranges_same_version(long_etag, copy, NULL), "item 5: one byte differs in the middle");
}

static void test_decide(void) {
  static const struct {
    long long held, total;
    const char *validator;
    long status;
    const char *crange, *etag, *lm;
    ranges_verdict want;
    long long want_total;
    const char *why;
  } rows[] = {
      {100, -1, "\"a\"", 206, "bytes 100-199/200", "\"a\"", NULL, RANGES_APPEND, 200, "continues the part"},
      {100, 200, "\"a\"", 206, "bytes 100-199/200", "\"a\"", NULL, RANGES_APPEND, 200, "and agrees with the record"},
      {100, -1, "\"a\"", 206, "bytes 100-199/*", "\"a\"", NULL, RANGES_APPEND, 200, "length unknown: the range's end"},
      {100, 300, "\"a\"", 206, "bytes 100-199/*", "\"a\"", NULL, RANGES_APPEND, 300, "length unknown: the record's"},
      {100, -1, "\"a\"", 206, "bytes 100-199/200", "\"b\"", NULL, RANGES_START_OVER, 0, "item 1: another version's 206"},
      {100, -1, "\"a\"", 206, "bytes 100-199/200", NULL, NULL, RANGES_START_OVER, 0, "a 206 naming no validator"},
      {100, -1, "v1", 206, "bytes 100-199/200", "v2", NULL, RANGES_START_OVER, 0, "item 4: unquoted, another version"},
      {100, -1, "v1", 206, "bytes 100-199/200", "v1", "Mon, 01 Jan 2024 00:00:00 GMT", RANGES_APPEND, 200,
       "item 4: unquoted, the same version (not compared with Last-Modified)"},
      {100, -1, "Mon, 01 Jan 2024 00:00:00 GMT", 206, "bytes 100-199/200", NULL, "Mon, 01 Jan 2024 00:00:00 GMT",
       RANGES_APPEND, 200, "a Last-Modified record"},
      {100, -1, "Mon, 01 Jan 2024 00:00:00 GMT", 206, "bytes 100-199/200", NULL, "Tue, 02 Jan 2024 00:00:00 GMT",
       RANGES_START_OVER, 0, "item 1: a later Last-Modified"},
      {100, 200, "\"a\"", 206, "bytes 100-299/300", "\"a\"", NULL, RANGES_START_OVER, 0, "another complete length"},
      {100, -1, "\"a\"", 206, "bytes 0-199/200", "\"a\"", NULL, RANGES_START_OVER, 0, "starts elsewhere (lie206=start)"},
      {100, -1, "\"a\"", 206, "bytes 150-199/200", "\"a\"", NULL, RANGES_START_OVER, 0, "leaves a gap"},
      {100, -1, "\"a\"", 206, NULL, "\"a\"", NULL, RANGES_START_OVER, 0, "no Content-Range (lie206=none)"},
      {100, -1, "\"a\"", 206, "bytes 100-250/200", "\"a\"", NULL, RANGES_START_OVER, 0, "past its own end"},
      {100, 333, "\"a\"", 206, "bytes 100-999/*", "\"a\"", NULL, RANGES_START_OVER, 0,
       "found by make fuzz: past the recorded length"},
      {200, -1, "\"a\"", 416, "bytes */200", NULL, NULL, RANGES_COMPLETE, 200, "416: the part was whole"},
      {200, 200, "\"a\"", 416, "bytes */200", "\"a\"", NULL, RANGES_COMPLETE, 200, "416 of the same version"},
      {200, -1, "\"a\"", 416, "bytes */200", "\"b\"", NULL, RANGES_START_OVER, 0, "item 1: 416 of another version"},
      {32768, 65536, "\"a\"", 416, "bytes */32768", NULL, NULL, RANGES_START_OVER, 0,
       "item 2: a lying 416 does not complete a half part"},
      {200, -1, "\"a\"", 416, "bytes */300", NULL, NULL, RANGES_START_OVER, 0, "416: the file grew"},
      {200, -1, "\"a\"", 416, NULL, NULL, NULL, RANGES_START_OVER, 0, "416 without a length"},
      {100, -1, "\"a\"", 200, NULL, "\"b\"", NULL, RANGES_WHOLE, 0, "a 200: a whole new body"},
      {100, -1, "\"a\"", 404, NULL, NULL, NULL, RANGES_WHOLE, 0, "an ordinary answer"},
      {100, -1, "\"a\"", 304, NULL, NULL, NULL, RANGES_WHOLE, 0, "a 304"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    ranges_part p = {rows[i].held, rows[i].total, rows[i].validator};
    ranges_answer a = {rows[i].status, rows[i].crange, rows[i].etag, rows[i].lm, -1, -1};
    long long total = -7;
    ranges_verdict v = ranges_decide(&p, &a, &total);
    int total_ok = (v != RANGES_APPEND && v != RANGES_COMPLETE) || total == rows[i].want_total;
    CHECK(v == rows[i].want && total_ok, "%s: verdict %d (want %d), total %lld", rows[i].why, (int)v,
          (int)rows[i].want, total);
  }
}

/* A range of a split body, asked of url or a mirror (issue 20 item 9: mirrors on other server
 * software name the same bytes with other ETags). */
static void test_decide_range(void) {
  enum { LM1 = 1700000000, LM2 = 1700000100, DATE = 1700009999 };
  const char *lm1 = "Tue, 14 Nov 2023 22:13:20 GMT";
  const struct {
    const char *validator;
    int mirror;
    long long url_lm;
    int checksum;
    long status;
    const char *crange, *etag, *lm;
    long long lm_time, date_time;
    ranges_verdict want;
    const char *want_learnt;
    const char *why;
  } rows[] = {
      {"\"a\"", 0, -1, 0, 206, "bytes 100-199/1000", "\"a\"", NULL, -1, DATE, RANGES_WRITE, NULL, "url's range"},
      {"\"a\"", 0, -1, 0, 206, "bytes 100-199/1000", "\"b\"", NULL, -1, DATE, RANGES_UNUSABLE, NULL,
       "url's range of another version"},
      {"\"a\"", 0, -1, 0, 200, NULL, "\"a\"", NULL, -1, DATE, RANGES_UNUSABLE, NULL, "a 200 to a range"},
      {"\"a\"", 0, -1, 0, 206, "bytes 100-199/1001", "\"a\"", NULL, -1, DATE, RANGES_UNUSABLE, NULL,
       "another complete length"},
      {"\"a\"", 0, -1, 0, 206, "bytes 100-198/1000", "\"a\"", NULL, -1, DATE, RANGES_UNUSABLE, NULL,
       "less than the range"},
      {"\"a\"", 0, -1, 0, 206, "bytes 0-199/1000", "\"a\"", NULL, -1, DATE, RANGES_UNUSABLE, NULL,
       "another start"},
      {"\"a\"", 0, -1, 0, 206, NULL, "\"a\"", NULL, -1, DATE, RANGES_UNUSABLE, NULL, "no Content-Range"},
      {"\"a\"", 0, -1, 0, 503, NULL, NULL, NULL, -1, DATE, RANGES_UNUSABLE, NULL, "an empty 503"},
      {NULL, 0, -1, 0, 206, "bytes 100-199/1000", NULL, NULL, -1, DATE, RANGES_UNUSABLE, NULL,
       "url without a validator, no sha256: never split"},
      {NULL, 0, -1, 1, 206, "bytes 100-199/1000", NULL, NULL, -1, DATE, RANGES_WRITE, NULL,
       "url without a validator, with sha256"},
      {NULL, 1, -1, 0, 206, "bytes 100-199/1000", "\"apache-1\"", NULL, -1, DATE, RANGES_WRITE, "\"apache-1\"",
       "item 9: a mirror's first answer, its own ETag learnt"},
      {NULL, 1, LM1, 0, 206, "bytes 100-199/1000", "\"m\"", lm1, LM1, DATE, RANGES_WRITE, "\"m\"",
       "item 9: the same Last-Modified as url"},
      {NULL, 1, LM1, 0, 206, "bytes 100-199/1000", "\"m\"", "Tue, 14 Nov 2023 22:15:00 GMT", LM2, DATE,
       RANGES_UNUSABLE, NULL, "item 9: another Last-Modified than url's: another version"},
      {NULL, 1, LM1, 0, 206, "bytes 100-199/1000", "\"m\"", NULL, -1, DATE, RANGES_WRITE, "\"m\"",
       "a mirror that sends no Last-Modified"},
      {NULL, 1, -1, 0, 206, "bytes 100-199/1000", NULL, lm1, LM1, DATE, RANGES_WRITE, lm1,
       "a mirror's Last-Modified as its validator"},
      {NULL, 1, -1, 0, 206, "bytes 100-199/1000", NULL, lm1, LM1, LM1, RANGES_UNUSABLE, NULL,
       "a mirror's Last-Modified equal to its Date is weak"},
      {NULL, 1, -1, 0, 206, "bytes 100-199/1000", "W/\"w\"", NULL, -1, DATE, RANGES_UNUSABLE, NULL,
       "a mirror with a weak ETag only"},
      {NULL, 1, -1, 0, 206, "bytes 100-199/1000", NULL, NULL, -1, DATE, RANGES_UNUSABLE, NULL,
       "a mirror with no validator, no sha256"},
      {NULL, 1, -1, 1, 206, "bytes 100-199/1000", NULL, NULL, -1, DATE, RANGES_WRITE, NULL,
       "a mirror with no validator, with sha256"},
      {NULL, 1, LM1, 1, 206, "bytes 100-199/1000", NULL, "Tue, 14 Nov 2023 22:15:00 GMT", LM2, DATE,
       RANGES_UNUSABLE, NULL, "with sha256 too, another Last-Modified is another version"},
      {NULL, 1, -1, 0, 206, "bytes 100-199/999", "\"m\"", NULL, -1, DATE, RANGES_UNUSABLE, NULL,
       "a mirror of another size"},
      {NULL, 1, -1, 0, 200, NULL, "\"m\"", NULL, -1, DATE, RANGES_UNUSABLE, NULL, "a mirror's 200"},
      {"\"m\"", 1, -1, 0, 206, "bytes 100-199/1000", "\"m\"", NULL, -1, DATE, RANGES_WRITE, NULL,
       "a mirror's later range, its own validator"},
      {"\"m\"", 1, -1, 0, 206, "bytes 100-199/1000", "\"a\"", NULL, -1, DATE, RANGES_UNUSABLE, NULL,
       "a mirror's later range of another version (ignoring If-Range)"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    ranges_range r = {100, 200, 1000, rows[i].validator, rows[i].mirror, rows[i].url_lm, rows[i].checksum};
    ranges_answer a = {rows[i].status, rows[i].crange, rows[i].etag, rows[i].lm, rows[i].lm_time,
                       rows[i].date_time};
    const char *learnt = "unset";
    ranges_verdict v = ranges_decide_range(&r, &a, &learnt);
    int learnt_ok = rows[i].want_learnt ? learnt && strcmp(learnt, rows[i].want_learnt) == 0 : learnt == NULL;
    CHECK(v == rows[i].want && learnt_ok, "%s: verdict %d (want %d), learnt %s", rows[i].why, (int)v,
          (int)rows[i].want, learnt ? learnt : "(none)");
  }
}

void test_ranges(void) {
  test_content_range();
  test_strong_validator();
  test_same_version();
  test_decide();
  test_decide_range();
}
