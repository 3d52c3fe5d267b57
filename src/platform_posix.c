/*
 * platform_posix.c: platform.h on POSIX.1-2008 (Linux, macOS, the BSDs).
 *
 * Strictly portable unless the C library says otherwise: pipe() + fcntl()
 * rather than pipe2(), and glibc's malloc_usable_size only under __GLIBC__
 * (DT_PORTABLE switches it off, so that Linux builds and tests the code
 * macOS compiles). SHA-256 comes from OpenSSL's libcrypto.
 */
#if defined(__APPLE__)
#define _DARWIN_C_SOURCE /* dladdr, RTLD_NODELETE and F_FULLFSYNC next to POSIX */
#endif
#define _XOPEN_SOURCE 700 /* realpath: glibc declares it only for XSI */
#include "platform.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#if defined(__GLIBC__) && !defined(DT_PORTABLE)
#include <malloc.h>
#define HAVE_USABLE_SIZE 1
#endif

/* dladdr and RTLD_NODELETE are not POSIX: glibc declares them only with
 * _GNU_SOURCE, which this file does not define (it would hide what macOS
 * lacks); the declarations are the same on every system that has them. */
#include <dlfcn.h>
#if !defined(RTLD_NODELETE) && defined(__GLIBC__)
#define RTLD_NODELETE 0x01000
#endif
#if defined(__GLIBC__) && !defined(__USE_GNU)
typedef struct {
  const char *dli_fname;
  void *dli_fbase;
  const char *dli_sname;
  void *dli_saddr;
} Dl_info;
extern int dladdr(const void *, Dl_info *);
#endif

/* ---- the wake-up object ------------------------------------------------ */

static int cloexec_nonblock(int fd) {
  int fd_fl = fcntl(fd, F_GETFD), fl = fcntl(fd, F_GETFL);
  if (fd_fl < 0 || fl < 0) return -1;
  if (fcntl(fd, F_SETFD, fd_fl | FD_CLOEXEC) != 0) return -1;
  return fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

int plat_wake_open(plat_wake *w) {
  int p[2];
  if (pipe(p) != 0) return -1;
  if (cloexec_nonblock(p[0]) != 0 || cloexec_nonblock(p[1]) != 0) {
    int e = errno;
    close(p[0]);
    close(p[1]);
    errno = e;
    return -1;
  }
  w->r = p[0];
  w->w = p[1];
  return 0;
}

void plat_wake_close(plat_wake *w) {
  close((int)w->r);
  close((int)w->w);
}

void plat_wake_signal(plat_wake *w) {
  char b = 1;
  ssize_t n;
  do n = write((int)w->w, &b, 1);
  while (n < 0 && errno == EINTR);
}

void plat_wake_drain(plat_wake *w) {
  char buf[64];
  while (read((int)w->r, buf, sizeof buf) == (ssize_t)sizeof buf) {} /* it holds a byte or two */
}

/* A signal ends poll() early (EINTR); the wait goes on for what is left of
 * ms, on the monotonic clock, instead of starting over: with a signal every
 * 0.2 s, poll(1000) took 9 s. */
void plat_wake_wait(plat_wake *w, int ms) {
  struct pollfd p = {.fd = (int)w->r, .events = POLLIN};
  double t0 = ms > 0 ? plat_mono_ms() : 0;
  int left = ms;
  while (poll(&p, 1, left) < 0 && errno == EINTR) {
    if (ms <= 0) continue; /* 0: once more at once; < 0: no limit */
    double spent = plat_mono_ms() - t0;
    if (spent >= ms) return;
    left = ms - (int)spent;
  }
}

int plat_wake_fd(const plat_wake *w) { return (int)w->r; }

/* ---- threads and processes --------------------------------------------- */

int plat_thread_start(void *thread, void *(*fn)(void *), void *arg) {
  /* The thread inherits the mask; this thread's own is put back at once.
   * Synchronous signals stay deliverable (a crash must still crash). */
  sigset_t all, old;
  sigfillset(&all);
  static const int sync_signals[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT, SIGTRAP};
  for (size_t i = 0; i < sizeof sync_signals / sizeof sync_signals[0]; i++) sigdelset(&all, sync_signals[i]);
  int masked = pthread_sigmask(SIG_BLOCK, &all, &old) == 0;
  int rc = pthread_create((pthread_t *)thread, NULL, fn, arg);
  if (masked) pthread_sigmask(SIG_SETMASK, &old, NULL);
  return rc == 0 ? 0 : -1;
}

/* getpid() is a system call, and the binding asks at every poll: the pid
 * is kept, and forgotten in a fork()ed child (pthread_atfork). */
static atomic_long cached_pid;
static void forget_pid(void) { atomic_store_explicit(&cached_pid, 0, memory_order_relaxed); }
static void watch_fork(void) { (void)pthread_atfork(NULL, NULL, forget_pid); }
static pthread_once_t fork_once = PTHREAD_ONCE_INIT;

long plat_pid(void) {
  long p = atomic_load_explicit(&cached_pid, memory_order_relaxed);
  if (p == 0) {
    pthread_once(&fork_once, watch_fork);
    p = (long)getpid();
    atomic_store_explicit(&cached_pid, p, memory_order_relaxed);
  }
  return p;
}

int plat_pid_alive(long pid) { return !(kill((pid_t)pid, 0) != 0 && errno == ESRCH); }

void plat_hostname(char *buf, size_t n) {
  if (n == 0) return;
  if (gethostname(buf, n - 1) != 0) buf[0] = '\0';
  buf[n - 1] = '\0';
}

/* libcurl 7.88 makes the multi handle's wakeup socket pair without
 * close-on-exec (and no option reaches it): the Unix sockets above `after`
 * (the engine's own pipe, made just before) that curl_multi_init left
 * inheritable get the flag. Descriptors are numbered lowest-free first, so
 * they are found right above the pipe; the scan stops at the first gap. */
void plat_cloexec_sockets_above(int after) {
  for (int fd = after + 1, gaps = 0; gaps < 8; fd++) {
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0) {
      gaps++;
      continue;
    }
    struct stat st;
    if (!(fl & FD_CLOEXEC) && fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
      (void)fcntl(fd, F_SETFD, fl | FD_CLOEXEC);
  }
}

/* Close-on-exec from the moment it exists where SOCK_CLOEXEC is (Linux, the
 * BSDs); set right after elsewhere (macOS). */
long long plat_socket(int family, int type, int protocol) {
  int fd;
#ifdef SOCK_CLOEXEC
  fd = socket(family, type | SOCK_CLOEXEC, protocol);
  if (fd >= 0 || errno != EINVAL) return fd;
#endif
  fd = socket(family, type, protocol);
  if (fd >= 0 && fcntl(fd, F_SETFD, FD_CLOEXEC) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

int plat_nonblock(int fd) {
  int fl = fcntl(fd, F_GETFL);
  return fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ? -1 : 0;
}

/* accept(), then its flags: POSIX 2008 has no accept4 (macOS neither). The
 * moment between the two is the only one a fork()+exec() on another thread
 * could take the connection along. */
int plat_accept(int listen_fd) {
  int c = accept(listen_fd, NULL, NULL);
  if (c < 0) return -1;
  if (fcntl(c, F_SETFD, FD_CLOEXEC) != 0 || plat_nonblock(c) != 0) {
    int e = errno;
    close(c);
    errno = e;
    return -1;
  }
#ifdef SO_NOSIGPIPE
  int one = 1;
  (void)setsockopt(c, SOL_SOCKET, SO_NOSIGPIPE, &one, sizeof one);
#endif
  return c;
}

/* ---- time and randomness ----------------------------------------------- */

double plat_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1000.0 + (double)ts.tv_nsec / 1e6;
}

double plat_epoch_ms(void) {
  struct timeval tv;
  gettimeofday(&tv, NULL);
  return (double)tv.tv_sec * 1000.0 + (double)tv.tv_usec / 1000.0;
}

unsigned plat_rand(void) {
  static atomic_uint counter;
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  unsigned x = (unsigned)ts.tv_nsec ^ ((unsigned)plat_pid() << 16) ^
               (atomic_fetch_add(&counter, 1) * 2654435761u);
  x ^= x >> 16; /* spread the counter's bits over the low ones too */
  x *= 0x45d9f3bu;
  return x ^ (x >> 16);
}

/* ---- memory ------------------------------------------------------------ */

#ifdef HAVE_USABLE_SIZE
const int plat_malloc_size_known = 1;
size_t plat_malloc_size(void *p) { return malloc_usable_size(p); }
#else
const int plat_malloc_size_known = 0;
size_t plat_malloc_size(void *p) {
  (void)p;
  return 0;
}
#endif

/* ---- SHA-256 ----------------------------------------------------------- */

struct plat_sha256 {
  EVP_MD_CTX *md;
};

plat_sha256 *plat_sha256_new(void) {
  plat_sha256 *h = malloc(sizeof *h);
  if (h && !(h->md = EVP_MD_CTX_new())) {
    free(h);
    h = NULL;
  }
  return h;
}

int plat_sha256_init(plat_sha256 *h) { return EVP_DigestInit_ex(h->md, EVP_sha256(), NULL) == 1; }

int plat_sha256_update(plat_sha256 *h, const void *p, size_t n) { return EVP_DigestUpdate(h->md, p, n) == 1; }

int plat_sha256_final(plat_sha256 *h, unsigned char out[32]) {
  unsigned char d[EVP_MAX_MD_SIZE];
  unsigned int dn = 0;
  if (EVP_DigestFinal_ex(h->md, d, &dn) != 1 || dn != 32) return 0;
  memcpy(out, d, 32);
  return 1;
}

void plat_sha256_free(plat_sha256 *h) {
  if (!h) return;
  EVP_MD_CTX_free(h->md);
  free(h);
}

/* ---- files ------------------------------------------------------------- */

int plat_open_write(const char *path, int flags) {
  int of = O_CLOEXEC | O_NOFOLLOW | ((flags & PLAT_RDWR) ? O_RDWR : O_WRONLY);
  if (flags & PLAT_EXCL) of |= O_CREAT | O_EXCL;
  if (flags & PLAT_CREATE) of |= O_CREAT;
  if (flags & PLAT_TRUNC) of |= O_TRUNC;
  if (flags & PLAT_REGULAR_ONLY) of |= O_NONBLOCK; /* a FIFO must not block open() */
  int fd = open(path, of, (flags & PLAT_PRIVATE) ? 0600 : 0666);
  if (fd < 0 || !(flags & PLAT_REGULAR_ONLY)) return fd;
  struct stat st;
  int fl = fcntl(fd, F_GETFL);
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    int e = fstat(fd, &st) == 0 && !S_ISREG(st.st_mode) ? PLAT_ENOTREG : errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int plat_is_absolute(const char *path) { return path[0] == '/'; }
int plat_is_sep(char c) { return c == '/'; }
int plat_mkdir(const char *path) { return mkdir(path, 0777); }

int plat_rmdir(const char *path) { return rmdir(path); }

char *plat_cwd(void) {
  for (size_t n = 256; n <= 65536; n *= 2) {
    char *b = malloc(n);
    if (!b) return NULL;
    if (getcwd(b, n)) return b;
    free(b);
    if (errno != ERANGE) return NULL;
  }
  return NULL;
}

int plat_open_read(const char *path) { return open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW); }

int plat_open_inplace(const char *path) {
  int fd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) return -1;
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  return fd;
}

int plat_close(int fd) { return close(fd); }

int plat_write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  size_t off = 0;
  while (off < len) {
    ssize_t w = write(fd, p + off, len - off);
    if (w < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    off += (size_t)w;
  }
  return 1;
}

long long plat_read(int fd, void *buf, size_t n) {
  ssize_t r;
  do r = read(fd, buf, n);
  while (r < 0 && errno == EINTR);
  return r;
}

long long plat_pread(int fd, void *buf, size_t n, int64_t off) {
  ssize_t r;
  do r = pread(fd, buf, n, (off_t)off);
  while (r < 0 && errno == EINTR);
  return r;
}

int plat_pwrite_all(int fd, const void *buf, size_t len, int64_t off) {
  const char *p = buf;
  size_t done = 0;
  while (done < len) {
    ssize_t w = pwrite(fd, p + done, len - done, (off_t)(off + (int64_t)done));
    if (w < 0) {
      if (errno == EINTR) continue;
      return 0;
    }
    done += (size_t)w;
  }
  return 1;
}

int plat_set_size(int fd, int64_t size) { return ftruncate(fd, (off_t)size); }

long long plat_size(int fd) {
  struct stat st;
  return fstat(fd, &st) == 0 ? (long long)st.st_size : -1;
}

long long plat_seek_end(int fd) { return (long long)lseek(fd, 0, SEEK_END); }

int plat_seek_to(int fd, int64_t off) { return lseek(fd, (off_t)off, SEEK_SET) < 0 ? -1 : 0; }

int plat_truncate0(int fd) { return ftruncate(fd, 0) == 0 && lseek(fd, 0, SEEK_SET) == 0 ? 0 : -1; }

/* macOS's fsync leaves the data in the drive's cache; F_FULLFSYNC does not
 * (and fsync stays the answer where that fcntl is refused). */
int plat_sync(int fd) {
#ifdef F_FULLFSYNC
  if (fcntl(fd, F_FULLFSYNC) == 0) return 0;
#endif
  return fsync(fd);
}

int plat_keep_mode(const char *path, int fd) {
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0;
  return fchmod(fd, st.st_mode & 07777);
}

int plat_rename(const char *from, const char *to) { return rename(from, to); }

int plat_unlink(const char *path) { return unlink(path); }

int plat_sync_dir(const char *dir) {
  int fd = open(dir, O_RDONLY | O_CLOEXEC | O_DIRECTORY);
  if (fd < 0) return -1;
  int rc = fsync(fd);
  int e = errno;
  close(fd);
  errno = e;
  return rc;
}

int plat_dir_each(const char *dir, void (*fn)(const char *, const char *, void *), void *ud) {
  DIR *d = opendir(dir);
  if (!d) return -1;
  struct dirent *ent;
  while ((ent = readdir(d)) != NULL)
    if (strcmp(ent->d_name, ".") != 0 && strcmp(ent->d_name, "..") != 0) fn(dir, ent->d_name, ud);
  closedir(d);
  return 0;
}

const char *plat_temp_dir(void) {
  const char *t = getenv("TMPDIR");
  return t && *t ? t : "/tmp";
}

char plat_sep(const char *dir) {
  (void)dir;
  return '/';
}

int plat_kind(const char *path, const char **what) {
  struct stat st;
  if (stat(path, &st) != 0) return errno == ENOENT ? PLAT_NONE : -1;
  if (S_ISREG(st.st_mode)) return PLAT_REGULAR;
  if (S_ISFIFO(st.st_mode) || S_ISCHR(st.st_mode)) return PLAT_INPLACE;
  *what = S_ISDIR(st.st_mode)    ? "destination is a directory"
          : S_ISBLK(st.st_mode)  ? "destination is a block device"
          : S_ISSOCK(st.st_mode) ? "destination is a socket"
                                 : "destination is not a regular file";
  return S_ISDIR(st.st_mode) ? PLAT_DIR : PLAT_OTHER;
}

/* The first dl bytes of dir, a slash and name, in a new string; NULL when out of memory. */
static char *join(const char *dir, size_t dl, const char *name) {
  size_t n = dl + strlen(name) + 2;
  char *p = malloc(n);
  if (p) snprintf(p, n, "%.*s/%s", (int)dl, dir, name);
  return p;
}

char *plat_follow_links(const char *path) {
  char *cur = strdup(path);
  if (!cur) {
    errno = ENOMEM;
    return NULL;
  }
  for (int hops = 0; hops < 40; hops++) {
    struct stat st;
    if (lstat(cur, &st) != 0 || !S_ISLNK(st.st_mode)) return cur;
    size_t cap = (size_t)st.st_size + 2;
    if (cap < 256) cap = 256;
    char *buf = malloc(cap);
    ssize_t n = buf ? readlink(cur, buf, cap - 1) : -1;
    if (n < 0) {
      int e = buf ? errno : ENOMEM;
      free(buf);
      free(cur);
      errno = e;
      return NULL;
    }
    buf[n] = '\0';
    char *next = buf;
    if (buf[0] != '/') { /* relative to the link's directory */
      const char *slash = strrchr(cur, '/');
      next = slash ? join(cur, (size_t)(slash - cur), buf) : strdup(buf);
      free(buf);
    }
    free(cur);
    if (!(cur = next)) {
      errno = ENOMEM;
      return NULL;
    }
  }
  free(cur);
  errno = ELOOP;
  return NULL;
}

char *plat_realdir(const char *dir) { return realpath(dir, NULL); }

/* ---- the module itself ------------------------------------------------- */

/* One more reference to the library, never dropped (RTLD_NODELETE). */
void plat_pin_module(const void *addr) {
  Dl_info info;
  if (dladdr(addr, &info) && info.dli_fname) (void)dlopen(info.dli_fname, RTLD_NOW | RTLD_NODELETE);
}
