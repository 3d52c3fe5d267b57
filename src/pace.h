/*
 * pace.h: the arithmetic of rateLimit and of retries' backoff. Pure: no libcurl, no I/O, and
 * the clock (monotonic ms) and the randomness are passed in. Unit-tested in
 * tests/unit/test_pace.c.
 */
#ifndef DT_PACE_H
#define DT_PACE_H

#include <stddef.h>

/* A download that stops reading for a while (a stall, a slow disk) may then catch up this
 * much (ms of its rate) at once, no more. */
#define PACE_SLACK_MS 250.0

/* The bytes per second a download may take (0: no limit): its own limit (0: none), and its
 * even share of the global one (0: none) among the `running` downloads. */
double pace_rate(double own, double global, long running);

/* One budget for all of a download's connections: a chunk of len bytes is taken only once
 * the bytes before it are due. *due is when the bytes taken so far are (0: none taken yet).
 * Returns 0 when the chunk may be taken now (and pushes *due by its length at `rate`), else
 * the time to take it at. The rate may change between chunks. */
double pace_take(double *due, double rate, size_t len, double now);

/* The wait before retry n (1, 2, ...): base ms doubled for each retry before it, at most
 * max. With `jitter` in [0, 1], spread over 80 % to 120 % of that (so that many clients
 * failing at once do not come back at once); jitter < 0: none. */
double pace_backoff(long n, double base, double max, double jitter);

#endif
