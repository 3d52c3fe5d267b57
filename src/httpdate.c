/*
 * httpdate.c: HTTP dates (httpdate.h).
 */
#include "httpdate.h"

#include <string.h>

static const char *const WDAY[] = {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"};
static const char *const WDAY_LONG[] = {"Monday", "Tuesday", "Wednesday", "Thursday",
                                        "Friday", "Saturday", "Sunday"};
static const char *const MONTH[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                    "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};

/* Days from 1970-01-01 to y-m-d of the proleptic Gregorian calendar (Howard
 * Hinnant's days_from_civil). */
static int64_t days_from_civil(int64_t y, int m, int d) {
  y -= m <= 2;
  int64_t era = (y >= 0 ? y : y - 399) / 400;
  int64_t yoe = y - era * 400;
  int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + doe - 719468;
}

static int is_leap(int64_t y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

/* Reads exactly n digits (n <= 4) at *p; -1 when they are not there. */
static int digits(const char **p, int n) {
  int v = 0;
  for (int i = 0; i < n; i++) {
    unsigned char c = (unsigned char)(*p)[i];
    if (c < '0' || c > '9') return -1;
    v = v * 10 + (c - '0');
  }
  *p += n;
  return v;
}

/* Matches one of names[0..n) at *p followed by `after`; returns its index. */
static int word(const char **p, const char *const *names, int n, char after) {
  for (int i = 0; i < n; i++) {
    size_t len = strlen(names[i]);
    if (strncmp(*p, names[i], len) == 0 && (*p)[len] == after) {
      *p += len + 1;
      return i;
    }
  }
  return -1;
}

static int lit(const char **p, const char *s) {
  size_t len = strlen(s);
  if (strncmp(*p, s, len) != 0) return 0;
  *p += len;
  return 1;
}

/* "HH:MM:SS" -> seconds of the day; -1 when malformed (60: a leap second) */
static int64_t clock_time(const char **p) {
  int h = digits(p, 2);
  if (h < 0 || h > 23 || !lit(p, ":")) return -1;
  int m = digits(p, 2);
  if (m < 0 || m > 59 || !lit(p, ":")) return -1;
  int s = digits(p, 2);
  if (s < 0 || s > 60) return -1;
  return (int64_t)h * 3600 + m * 60 + s;
}

static int64_t to_epoch(int64_t y, int mon, int d, int64_t secs) {
  static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (mon < 0 || d < 1 || d > mdays[mon] + (mon == 1 && is_leap(y)) || secs < 0 || y < 1970)
    return -1;
  return days_from_civil(y, mon + 1, d) * 86400 + secs;
}

/* Epoch seconds of an HTTP date, -1 when s is not one (or is before 1970); `now` (epoch
 * seconds) places a two-digit year:
 *   IMF-fixdate  Sun, 06 Nov 1994 08:49:37 GMT
 *   rfc850-date  Sunday, 06-Nov-94 08:49:37 GMT
 *   asctime      Sun Nov  6 08:49:37 1994 */
int64_t http_date(const char *s, int64_t now) {
  const char *p = s;
  int64_t secs;
  int d, mon, y;
  if (word(&p, WDAY, 7, ',') >= 0) { /* IMF-fixdate */
    if (!lit(&p, " ") || (d = digits(&p, 2)) < 0 || !lit(&p, " ") ||
        (mon = word(&p, MONTH, 12, ' ')) < 0 || (y = digits(&p, 4)) < 0 || !lit(&p, " ") ||
        (secs = clock_time(&p)) < 0 || !lit(&p, " GMT") || *p)
      return -1;
    return to_epoch(y, mon, d, secs);
  }
  if (word(&p, WDAY_LONG, 7, ',') >= 0) { /* rfc850-date */
    if (!lit(&p, " ") || (d = digits(&p, 2)) < 0 || !lit(&p, "-") ||
        (mon = word(&p, MONTH, 12, '-')) < 0 || (y = digits(&p, 2)) < 0 || !lit(&p, " ") ||
        (secs = clock_time(&p)) < 0 || !lit(&p, " GMT") || *p)
      return -1;
    /* a two-digit year more than 50 years in the future is the most recent
     * past year with those digits (RFC 9110) */
    int64_t t = to_epoch(2000 + y, mon, d, secs);
    if (t < 0 || t > now + (int64_t)50 * 31556952) t = to_epoch(1900 + y, mon, d, secs);
    return t;
  }
  if (word(&p, WDAY, 7, ' ') >= 0) { /* asctime */
    if ((mon = word(&p, MONTH, 12, ' ')) < 0) return -1;
    if (*p == ' ') {
      p++;
      d = digits(&p, 1);
    } else {
      d = digits(&p, 2);
    }
    if (d < 0 || !lit(&p, " ") || (secs = clock_time(&p)) < 0 || !lit(&p, " ") ||
        (y = digits(&p, 4)) < 0 || *p)
      return -1;
    return to_epoch(y, mon, d, secs);
  }
  return -1;
}

