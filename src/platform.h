/*
 * platform.h: what the engine and the binding need from the operating system,
 * and nothing else. One implementation a platform: platform_posix.c (Linux,
 * macOS, the BSDs) and platform_win.c (Windows, built with mingw-w64). No
 * other source says #ifdef _WIN32; files.c builds the engine's file naming
 * and bookkeeping on top of this.
 *
 * Paths are UTF-8 everywhere (Windows converts them to UTF-16 for its wide
 * calls) and use '/' between components (Windows accepts it; a path this
 * layer resolves comes back with '/'). Files are C runtime descriptors (int)
 * in binary mode, close-on-exec (not inherited by child processes).
 * Functions that fail return -1 (or 0 where they say so) with errno set.
 */
#ifndef DT_PLATFORM_H
#define DT_PLATFORM_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

/* ---- the wake-up object ------------------------------------------------
 * Readable while the engine has news for the binding: a pipe on POSIX, a
 * connected loopback TCP socket pair on Windows (select(), WSAPoll and
 * uv_poll wait on sockets only there). */
typedef struct plat_wake {
  intptr_t r, w;
} plat_wake;

int plat_wake_open(plat_wake *w);
void plat_wake_close(plat_wake *w);
void plat_wake_signal(plat_wake *w); /* one byte; never blocks (a full pipe has enough) */
void plat_wake_drain(plat_wake *w);  /* reads what is there; never blocks */
/* Waits up to ms (< 0: no limit, 0: a look) until readable; a signal does
 * not restart the wait from the beginning. */
void plat_wake_wait(plat_wake *w, int ms);
/* What dt.fd() returns: a descriptor on POSIX, a SOCKET on Windows (its
 * value fits an int: Windows keeps handles within 32 bits). */
int plat_wake_fd(const plat_wake *w);

/* ---- threads and processes -------------------------------------------- */

/* Starts fn(arg) on a new thread. POSIX: with every asynchronous signal
 * blocked (a host's handler never runs there; EPIPE instead of SIGPIPE). */
int plat_thread_start(void *thread /* pthread_t * */, void *(*fn)(void *), void *arg);
/* This process's id; cheap (cached; a fork()ed child sees its own). */
long plat_pid(void);
/* Whether process `pid` of this host still runs (1), or surely not (0). */
int plat_pid_alive(long pid);
/* This host's name, for temporary names; "" when unknown. */
void plat_hostname(char *buf, size_t n);
/* After curl_multi_init: the sockets it made get close-on-exec (POSIX; a
 * no-op where sockets are not inherited). */
void plat_cloexec_sockets_above(int fd);
/* A socket for libcurl, not inherited by child processes; -1 on failure. */
long long plat_socket(int family, int type, int protocol);
/* POSIX only (notify.c): a connection accepted on listen_fd, nonblocking, not inherited by
 * child processes, and raising no SIGPIPE when written after its reader left (where the OS
 * has SO_NOSIGPIPE instead of MSG_NOSIGNAL). -1 with errno. */
int plat_accept(int listen_fd);
/* POSIX only: makes fd nonblocking; 0, or -1 with errno. */
int plat_nonblock(int fd);

/* ---- time and randomness ---------------------------------------------- */

double plat_mono_ms(void);  /* monotonic milliseconds */
double plat_epoch_ms(void); /* wall clock, milliseconds since 1970 */
unsigned plat_rand(void);   /* random bits for names and jitter (not for keys) */

/* ---- memory ------------------------------------------------------------ */

/* The usable size of a malloc'ed block, or 0 when the C library cannot tell
 * (then the engine keeps no receive-buffer cache). */
size_t plat_malloc_size(void *p);
extern const int plat_malloc_size_known;

/* ---- SHA-256 (OpenSSL's EVP on POSIX, BCrypt on Windows) ------------- */

typedef struct plat_sha256 plat_sha256;
plat_sha256 *plat_sha256_new(void); /* NULL: no memory */
int plat_sha256_init(plat_sha256 *h); /* starts over; 1 or 0 */
int plat_sha256_update(plat_sha256 *h, const void *p, size_t n);
int plat_sha256_final(plat_sha256 *h, unsigned char out[32]);
void plat_sha256_free(plat_sha256 *h);

/* ---- files ------------------------------------------------------------- */

enum {
  PLAT_EXCL = 1,    /* create; fail with EEXIST when it exists */
  PLAT_CREATE = 2,  /* create when missing */
  PLAT_TRUNC = 4,   /* empty it */
  PLAT_RDWR = 8,    /* read and write (else write only) */
  PLAT_PRIVATE = 16, /* 0600 instead of 0666 & ~umask */
  PLAT_REGULAR_ONLY = 32 /* fail with PLAT_ENOTREG when what is there is not a regular file
                            (a FIFO: without blocking in open) */
};
/* Opens path for writing, never through a symlink in its last component. */
int plat_open_write(const char *path, int flags);
#ifdef ENOTSUP
#define PLAT_ENOTREG ENOTSUP
#else
#define PLAT_ENOTREG EINVAL
#endif
/* The working directory, UTF-8 (malloc'd), or NULL; whether a path is absolute. */
char *plat_cwd(void);
int plat_is_absolute(const char *path);
/* Whether c separates path components ('/'; on Windows '\\' too). */
int plat_is_sep(char c);
/* mkdir with 0777 & ~umask (POSIX); 0 or -1 with errno. */
int plat_mkdir(const char *path);
/* rmdir: an empty directory only; 0 or -1 with errno. */
int plat_rmdir(const char *path);
int plat_open_read(const char *path);
/* A FIFO or character device, written in place: a FIFO without a reader
 * fails at once with ENXIO instead of blocking. */
int plat_open_inplace(const char *path);
int plat_close(int fd);
/* Writes all of buf: 1, or 0 with errno. */
int plat_write_all(int fd, const void *buf, size_t n);
/* Reads up to n bytes: the count, 0 at the end, -1 on error (EINTR retried). */
long long plat_read(int fd, void *buf, size_t n);
long long plat_pread(int fd, void *buf, size_t n, int64_t off);
/* Writes all of buf at offset off, leaving the file position where it was
 * (segments write their ranges beside the main connection's sequential
 * writes): 1, or 0 with errno. */
int plat_pwrite_all(int fd, const void *buf, size_t n, int64_t off);
/* Cuts (or extends) the file to size bytes; 0 or -1 with errno. */
int plat_set_size(int fd, int64_t size);
long long plat_size(int fd);   /* the file's size */
long long plat_seek_end(int fd); /* moves to the end; returns the offset */
int plat_seek_to(int fd, int64_t off); /* 0 or -1 with errno */
int plat_truncate0(int fd);    /* empties it and writes from the start again */
int plat_sync(int fd);         /* its data reaches the disk */
/* Gives fd the permission bits of the regular file at path, when there is
 * one (a replaced destination keeps its mode). */
int plat_keep_mode(const char *path, int fd);
int plat_rename(const char *from, const char *to); /* replaces `to` */
int plat_unlink(const char *path);
int plat_sync_dir(const char *dir); /* makes its entries durable */
/* Calls fn for the name of every entry of dir (no "." or ".."). 0, or -1. */
int plat_dir_each(const char *dir, void (*fn)(const char *dir, const char *name, void *ud), void *ud);
/* The default tempDir: $TMPDIR or /tmp; GetTempPathW on Windows (in
 * Windows' own form, with '\\'). Static. */
const char *plat_temp_dir(void);
/* The separator that joins a name to dir ('/'; on Windows the one dir uses). */
char plat_sep(const char *dir);

/* What is at a path, links followed. */
enum { PLAT_NONE, PLAT_REGULAR, PLAT_INPLACE, PLAT_DIR, PLAT_OTHER };
/* The kind of file at path (PLAT_NONE: nothing there), or -1 with errno;
 * *what names a kind that cannot be a destination. */
int plat_kind(const char *path, const char **what);
/* The path with links in its last component followed to their final
 * target (malloc'ed), or NULL with errno (ELOOP, ENOMEM, ...). */
char *plat_follow_links(const char *path);
/* The absolute, canonical form of an existing directory (malloc'ed), or
 * NULL with errno. */
char *plat_realdir(const char *dir);

/* ---- the module itself ------------------------------------------------- */

/* Keeps the shared library holding `addr` loaded until the process ends
 * (Lua 5.1 and LuaJIT unload it at lua_close before finalizers run). */
void plat_pin_module(const void *addr);

/* What marks luaopen_downloadtask as the library's one export. */
#if defined(_WIN32)
#define DT_EXPORT __declspec(dllexport)
#elif defined(__GNUC__)
#define DT_EXPORT __attribute__((visibility("default")))
#else
#define DT_EXPORT
#endif

#endif
