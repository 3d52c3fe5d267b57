/* src/httpdate.c: the three forms of HTTP date RFC 9110 (5.6.7) has recipients accept, and
 * what is not one. */
#include "../../src/httpdate.h"
#include "unit.h"

void test_httpdate(void) {
  const int64_t NOW = 1796601600; /* 2026-12-07 00:00:00 UTC */
  static const struct {
    const char *s;
    int64_t want;
    const char *why;
  } rows[] = {
      {"Sun, 06 Nov 1994 08:49:37 GMT", 784111777, "IMF-fixdate"},
      {"Sunday, 06-Nov-94 08:49:37 GMT", 784111777, "rfc850-date"},
      {"Sun Nov  6 08:49:37 1994", 784111777, "asctime, one-digit day"},
      {"Thu Jan 01 00:00:00 1970", 0, "asctime, two-digit day: the epoch"},
      {"Thu, 01 Jan 1970 00:00:00 GMT", 0, "the epoch"},
      {"Wed, 31 Dec 1969 23:59:59 GMT", -1, "before 1970"},
      {"Tue, 29 Feb 2000 00:00:00 GMT", 951782400, "a leap day of a year divisible by 400"},
      {"Thu, 29 Feb 2001 00:00:00 GMT", -1, "no 29 February in 2001"},
      {"Mon, 29 Feb 2100 00:00:00 GMT", -1, "none in 2100 either"},
      {"Sun, 31 Apr 2024 00:00:00 GMT", -1, "no 31 April"},
      {"Sun, 06 Nov 1994 24:00:00 GMT", -1, "hour 24"},
      {"Sun, 06 Nov 1994 08:60:00 GMT", -1, "minute 60"},
      {"Sun, 06 Nov 1994 08:49:60 GMT", 784111800, "a leap second is taken"},
      {"Sun, 06 Nov 1994 08:49:37 UTC", -1, "not GMT"},
      {"Sun, 06 Nov 1994 08:49:37 GMT ", -1, "a tail"},
      {"sun, 06 Nov 1994 08:49:37 GMT", -1, "names are case-sensitive"},
      {"Sun, 6 Nov 1994 08:49:37 GMT", -1, "IMF-fixdate has two-digit days"},
      {"Sun, 06 Nov 94 08:49:37 GMT", -1, "IMF-fixdate has four-digit years"},
      {"Saturday, 01-Jan-77 00:00:00 GMT", 220924800, "rfc850: 77 is 1977 (2077 is over 50 years ahead)"},
      {"Thursday, 01-Jan-76 00:00:00 GMT", 3345062400, "rfc850: 76 is 2076 (within 50 years)"},
      {"Saturday, 01-Jan-50 00:00:00 GMT", 2524608000, "rfc850: 50 is 2050 (within 50 years)"},
      {"", -1, "empty"},
      {"1733529600", -1, "epoch seconds are not an HTTP date"},
  };
  for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
    int64_t got = http_date(rows[i].s, NOW);
    CHECK(got == rows[i].want, "%s: \"%s\" gave %lld, want %lld", rows[i].why, rows[i].s, (long long)got,
          (long long)rows[i].want);
  }
}
