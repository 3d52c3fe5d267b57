/*
 * httpdate.h: HTTP dates (RFC 9110 5.6.7), parsed by hand: strptime and timegm depend on
 * the locale or are not standard C. Pure; unit-tested in tests/unit/test_httpdate.c.
 */
#ifndef DT_HTTPDATE_H
#define DT_HTTPDATE_H

#include <stdint.h>

/* Epoch seconds of an HTTP date in any of the three forms recipients accept, -1 when s is
 * not one (or is before 1970). `now` (epoch seconds) places a two-digit year (rfc850-date):
 * more than 50 years in the future is the most recent past year with those digits. */
int64_t http_date(const char *s, int64_t now);

#endif
