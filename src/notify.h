/*
 * notify.h: the engine's second way of saying "the Lua side has news", for
 * hosts that cannot wait on the wakeup pipe (OpenResty: a cosocket connects
 * to Unix-domain sockets only). A listening socket at a private path (a
 * mkdtemp'd directory, 0700); every connection made to it gets one byte
 * wherever the engine writes one to the pipe. Used by engine.c only; never
 * includes lua.h.
 */
#ifndef DT_NOTIFY_H
#define DT_NOTIFY_H

#include <pthread.h>

#define NOTIFY_MAX_CONNS 64
/* sun_path's size where it is smallest (104 on macOS and the BSDs, 108 on
 * Linux): a path that fits here fits every sockaddr_un */
#define NOTIFY_PATH_MAX 104

typedef struct dt_notify {
  pthread_mutex_t mu;
  int listen_fd;                 /* -1 until notify_open */
  int conns[NOTIFY_MAX_CONNS];   /* accepted connections, oldest first */
  int nconns;
  double last_sent;               /* monotonic ms of the last byte written (notify_beat) */
  char dir[NOTIFY_PATH_MAX];
  char path[NOTIFY_PATH_MAX];
} dt_notify;

void notify_init(dt_notify *n);
/* Any thread: the socket's path, made at the first call; NULL and *why on
 * failure. The caller then wakes the engine thread, which starts to accept. */
const char *notify_open(dt_notify *n, const char **why);
/* Engine thread: the listening descriptor (-1: none yet), and accepting what
 * waits on it. */
int notify_listen_fd(dt_notify *n);
void notify_accept(dt_notify *n);
/* Any thread: one byte to every connection (never blocks: a full socket
 * already has bytes the reader has not read); a connection whose reader
 * left is closed. */
void notify_send(dt_notify *n);
/* Engine thread, with downloads live: a byte to every connection when none went for
 * `every` ms (now: monotonic ms), so that a reader waiting with a timeout never times out
 * while there is something to wait for (OpenResty logs every cosocket read timeout as an
 * error). Returns the ms until the next one is due. */
double notify_beat(dt_notify *n, double now, double every);
/* The engine stops: everything closed, the path and its directory removed. */
void notify_close(dt_notify *n);
/* In a fork()ed child: the parent's descriptors closed, its files left alone. */
void notify_forget(dt_notify *n);

/* notify.c implements this on POSIX; notify_none.c, where nothing needs it
 * (Windows: OpenResty does not run there), says it is not available. */

#endif
