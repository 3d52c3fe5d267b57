/*
 * notify.c: the engine's notifier socket (see notify.h). The Lua thread makes
 * it (notify_open) and may write to it (engine_rearm); the engine thread
 * accepts and writes: the descriptors are under the notifier's own mutex,
 * which no one holds for more than a few nonblocking system calls.
 */
#include "notify.h"
#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

/* No SIGPIPE when the reader left: MSG_NOSIGNAL (POSIX 2008), or SO_NOSIGPIPE on the socket
 * (macOS, set by plat_accept). */
#ifdef MSG_NOSIGNAL
#define NOSIGNAL MSG_NOSIGNAL
#else
#define NOSIGNAL 0
#endif

void notify_init(dt_notify *n) {
  memset(n, 0, sizeof *n);
  pthread_mutex_init(&n->mu, NULL);
  n->listen_fd = -1;
}

/* The directory: $TMPDIR when its socket path fits sun_path, else /tmp. */
static int make_dir(dt_notify *n) {
  const char *tmp = getenv("TMPDIR");
  const char *bases[] = {tmp && tmp[0] == '/' ? tmp : NULL, "/tmp"};
  for (size_t i = 0; i < sizeof bases / sizeof bases[0]; i++) {
    if (!bases[i]) continue;
    /* room for "/dt.XXXXXX" and "/n" */
    int len = snprintf(n->dir, sizeof n->dir, "%s/dt.XXXXXX", bases[i]);
    if (len < 0 || (size_t)len + 3 > sizeof n->dir) continue;
    if (mkdtemp(n->dir)) return 0; /* mkdtemp makes it 0700 */
  }
  n->dir[0] = '\0';
  return -1;
}

const char *notify_open(dt_notify *n, const char **why) {
  pthread_mutex_lock(&n->mu);
  if (n->listen_fd >= 0) {
    pthread_mutex_unlock(&n->mu);
    return n->path;
  }
  if (make_dir(n) != 0) {
    *why = "cannot create a private directory for the notifier socket in $TMPDIR or /tmp";
    pthread_mutex_unlock(&n->mu);
    return NULL;
  }
  struct sockaddr_un a;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  size_t dlen = strlen(n->dir); /* make_dir left room for "/n" */
  memcpy(a.sun_path, n->dir, dlen);
  memcpy(a.sun_path + dlen, "/n", 3);
  int fd = (int)plat_socket(AF_UNIX, SOCK_STREAM, 0);
  if (fd < 0 || plat_nonblock(fd) != 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
      listen(fd, 16) != 0) {
    *why = fd < 0 ? "cannot create the notifier socket" : "cannot listen on the notifier socket";
    if (fd >= 0) {
      close(fd);
      unlink(a.sun_path);
    }
    rmdir(n->dir);
    n->dir[0] = '\0';
    pthread_mutex_unlock(&n->mu);
    return NULL;
  }
  memcpy(n->path, a.sun_path, sizeof n->path);
  n->listen_fd = fd;
  pthread_mutex_unlock(&n->mu);
  return n->path;
}

int notify_listen_fd(dt_notify *n) {
  pthread_mutex_lock(&n->mu);
  int fd = n->listen_fd;
  pthread_mutex_unlock(&n->mu);
  return fd;
}

void notify_accept(dt_notify *n) {
  pthread_mutex_lock(&n->mu);
  for (;;) {
    int c = n->listen_fd < 0 ? -1 : plat_accept(n->listen_fd);
    if (c < 0) {
      if (errno == EINTR || errno == ECONNABORTED) continue;
      break; /* EAGAIN: nobody else waits; anything else: the next round retries */
    }
    if (n->nconns == NOTIFY_MAX_CONNS) {
      /* full: the oldest goes (its reader sees the end of the connection and
       * connects again); the readers are one per worker and Lua state, so
       * this takes a leak elsewhere */
      close(n->conns[0]);
      memmove(n->conns, n->conns + 1, (NOTIFY_MAX_CONNS - 1) * sizeof n->conns[0]);
      n->nconns--;
    }
    n->conns[n->nconns++] = c;
    /* The reader may have connected, polled, and then missed a byte the engine wrote
     * before this accept: it gets one now (at worst it polls once for nothing). */
    char b = 1;
    ssize_t r;
    do r = send(c, &b, 1, NOSIGNAL);
    while (r < 0 && errno == EINTR);
  }
  pthread_mutex_unlock(&n->mu);
}

static void send_locked(dt_notify *n);

void notify_send(dt_notify *n) {
  pthread_mutex_lock(&n->mu);
  send_locked(n);
  pthread_mutex_unlock(&n->mu);
}

double notify_beat(dt_notify *n, double now, double every) {
  pthread_mutex_lock(&n->mu);
  double left = every;
  if (n->nconns > 0) {
    if (now - n->last_sent >= every) {
      send_locked(n);
      n->last_sent = now;
    } else {
      left = n->last_sent + every - now;
    }
  }
  pthread_mutex_unlock(&n->mu);
  return left;
}

static void send_locked(dt_notify *n) {
  char b = 1;
  for (int i = 0; i < n->nconns;) {
    ssize_t r;
    do r = send(n->conns[i], &b, 1, NOSIGNAL); /* nonblocking: plat_accept made it so */
    while (r < 0 && errno == EINTR);
    if (r < 0 && errno != EAGAIN && errno != EWOULDBLOCK) { /* the reader left */
      close(n->conns[i]);
      n->conns[i] = n->conns[--n->nconns]; /* order only matters when full */
      continue;
    }
    i++;
  }
}

static void close_fds(dt_notify *n) {
  for (int i = 0; i < n->nconns; i++) close(n->conns[i]);
  n->nconns = 0;
  if (n->listen_fd >= 0) close(n->listen_fd);
  n->listen_fd = -1;
}

void notify_close(dt_notify *n) {
  pthread_mutex_lock(&n->mu);
  close_fds(n);
  if (n->dir[0]) {
    unlink(n->path);
    rmdir(n->dir);
  }
  pthread_mutex_unlock(&n->mu);
  pthread_mutex_destroy(&n->mu);
}

/* No lock: in a fork()ed child, the mutex may have been held by a thread that
 * does not exist here. */
void notify_forget(dt_notify *n) { close_fds(n); }
