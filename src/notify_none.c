/*
 * notify_none.c: notify.h where the engine needs no second wakeup (Windows:
 * OpenResty, whose cosockets it serves, does not run there). Opening one
 * fails with a reason; everything else has nothing to do.
 */
#include "notify.h"

#include <string.h>

void notify_init(dt_notify *n) {
  memset(n, 0, sizeof *n);
  n->listen_fd = -1;
}

const char *notify_open(dt_notify *n, const char **why) {
  (void)n;
  *why = "the notifier socket is not available on this platform";
  return NULL;
}

int notify_listen_fd(dt_notify *n) {
  (void)n;
  return -1;
}

void notify_accept(dt_notify *n) { (void)n; }
void notify_send(dt_notify *n) { (void)n; }
double notify_beat(dt_notify *n, double now, double every) {
  (void)n;
  (void)now;
  return every;
}
void notify_close(dt_notify *n) { (void)n; }
void notify_forget(dt_notify *n) { (void)n; }
