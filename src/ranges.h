/*
 * ranges.h: which bytes of an answer may join a part. Pure functions: no libcurl, no I/O,
 * no clock; the engine hands them the part's record and the answer's status and headers.
 * Unit-tested in tests/unit/test_ranges.c.
 */
#ifndef DT_RANGES_H
#define DT_RANGES_H

/* Content-Range "bytes a-b/t" (t may be "*": -1); 1 when it parses. */
int content_range(const char *v, long long *a, long long *b, long long *t);

#endif
