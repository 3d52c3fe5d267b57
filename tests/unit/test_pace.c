/* src/pace.c: rateLimit's pacing with the clock passed in, and the retries' backoff. */
#include "../../src/pace.h"
#include "unit.h"

#include <math.h>

static int near(double a, double b) { return fabs(a - b) < 1e-6; }

static void test_rate(void) {
  CHECK(near(pace_rate(0, 0, 3), 0), "no limit at all");
  CHECK(near(pace_rate(1000, 0, 3), 1000), "its own limit alone");
  CHECK(near(pace_rate(0, 3000, 3), 1000), "the global limit shared by 3 running");
  CHECK(near(pace_rate(500, 3000, 3), 500), "its own limit under its share");
  CHECK(near(pace_rate(5000, 3000, 3), 1000), "its share under its own limit");
  CHECK(near(pace_rate(0, 3000, 0), 3000), "no download counted running: the whole limit");
}

static void test_take(void) {
  double due = 0, now = 1000;
  /* 1000 bytes/s: 100-byte chunks are due 100 ms apart */
  CHECK(pace_take(&due, 1000, 100, now) == 0 && near(due, 1100), "the first chunk at once: due %f", due);
  CHECK(near(pace_take(&due, 1000, 100, now), 1100), "the next waits for 1100");
  CHECK(near(pace_take(&due, 1000, 100, 1099.5), 0) && near(due, 1200), "within 1 ms of due: taken");
  double t = 0;
  int taken = 0;
  for (now = 1200; now < 2200; now += 10) /* one second of a fast sender polling every 10 ms */
    if (pace_take(&due, 1000, 100, now) == 0) taken++;
  CHECK(taken == 10, "1000 bytes in a second at 1000 bytes/s: %d chunks", taken);
  /* an idle spell: at most PACE_SLACK_MS of catching up */
  due = 1000;
  now = 11000;
  taken = 0;
  while (pace_take(&due, 1000, 10, now) == 0) taken++;
  CHECK(taken == (int)(PACE_SLACK_MS / 10) + 1, "after 10 s idle, 250 ms worth at once: %d chunks", taken);
  /* the rate changes between chunks: each chunk is paid at the rate of its moment */
  due = 0;
  pace_take(&due, 1000, 100, 0);   /* due 100 */
  pace_take(&due, 2000, 100, 100); /* due 150 */
  CHECK(near(due, 150), "a chunk at the new rate: %f", due);
  t = pace_take(&due, 0, 1 << 20, 0);
  CHECK(t == 0, "rate 0: no limit");
}

static void test_backoff(void) {
  CHECK(near(pace_backoff(1, 250, 30000, -1), 250), "the first retry: base");
  CHECK(near(pace_backoff(2, 250, 30000, -1), 500), "doubling");
  CHECK(near(pace_backoff(4, 250, 30000, -1), 2000), "the fourth");
  CHECK(near(pace_backoff(8, 250, 30000, -1), 30000), "at most max (250 * 2^7 = 32000)");
  CHECK(near(pace_backoff(1000000, 250, 30000, -1), 30000), "a huge count stays at max");
  CHECK(near(pace_backoff(0, 250, 30000, -1), 250), "n 0 as the first");
  CHECK(near(pace_backoff(2, 250, 30000, 0), 400), "jitter 0: 80 %%");
  CHECK(near(pace_backoff(2, 250, 30000, 1), 600), "jitter 1: 120 %%");
  CHECK(near(pace_backoff(2, 250, 30000, 0.5), 500), "jitter 0.5: 100 %%");
  CHECK(near(pace_backoff(8, 250, 30000, 1), 36000), "jitter applies after the cap");
}

void test_pace(void) {
  test_rate();
  test_take();
  test_backoff();
}
