/*
 * pace.c: rateLimit's pacing and the retries' backoff (pace.h).
 */
#include "pace.h"

double pace_rate(double own, double global, long running) {
  if (global <= 0) return own;
  double share = global / (double)(running > 0 ? running : 1);
  return own > 0 && own < share ? own : share;
}

double pace_take(double *due, double rate, size_t len, double now) {
  if (rate <= 0) return 0;
  if (*due == 0) *due = now;
  else if (*due < now - PACE_SLACK_MS) *due = now - PACE_SLACK_MS;
  if (*due > now + 1) return *due;
  *due += (double)len * 1000.0 / rate;
  return 0;
}

double pace_backoff(long n, double base, double max, double jitter) {
  double delay = base;
  for (long i = 1; i < n && delay < max; i++) delay *= 2;
  if (delay > max) delay = max;
  if (jitter >= 0) delay *= 0.8 + 0.4 * (jitter > 1 ? 1 : jitter);
  return delay;
}
