/* src/notify.c, the engine's notifier socket (OpenResty's wake-ups), with real sockets: a
 * connection the engine accepts after it has signalled must not miss that signal (issue 22,
 * item 2: an await then waited for the poller's 1 s idle timeout). Built with the platform
 * layer, apart from the pure tests (make unit). */
#include "../../src/notify.h"
#include "unit.h"

#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

static int connect_to(const char *path) {
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  strncpy(a.sun_path, path, sizeof a.sun_path - 1);
  if (fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int readable(int fd) {
  struct pollfd p = {fd, POLLIN, 0};
  return poll(&p, 1, 200) == 1 && (p.revents & POLLIN);
}

void test_notify(void) {
  dt_notify n;
  notify_init(&n);
  const char *why = NULL;
  const char *path = notify_open(&n, &why);
  CHECK(path != NULL, "notify_open: %s", why ? why : "");
  if (!path) return;

  /* the ordinary case: connected and accepted, then signalled */
  int a = connect_to(path);
  notify_accept(&n);
  notify_send(&n);
  CHECK(a >= 0 && readable(a), "an accepted connection gets the signal");

  /* the race: the reader connected (the poller, then polled once), the engine signalled
   * before it accepted the connection; the accept must hand the signal on */
  int b = connect_to(path);
  char c;
  CHECK(read(a, &c, 1) == 1, "drain a");
  notify_send(&n); /* b is not accepted yet */
  notify_accept(&n);
  CHECK(b >= 0 && readable(b), "a connection accepted after a signal gets a byte at once");

  if (a >= 0) close(a);
  if (b >= 0) close(b);
  notify_close(&n);
}
