/*
 * files.c: the engine's file naming and bookkeeping (see files.h), on top of
 * the platform layer (platform.h): no system call of its own, so the same
 * code runs on POSIX and on Windows.
 *
 * Temporary names are short and fixed in length, so that a destination may
 * have any name its directory accepts (255 bytes too): a temporary file is
 * ".dt.<host>.<pid>.<random>.tmp" beside its destination, a resume part
 * ".dt.<hash of the destination's name>.part". The host and pid in a name
 * say whose it is: files_sweep removes those of processes of this host that
 * no longer run (a kill -9, an os.exit that skipped lua_close), never a live
 * one's, and never a resume part, which is kept on purpose.
 */
#include "files.h"
#include "dt.h"
#include "platform.h"
#include "record.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- small helpers ---------------------------------------------------- */

static uint64_t fnv64(const char *s) {
  uint64_t h = 14695981039346656037ull;
  for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
  return h;
}

/* 32 bits naming this host in temporary names */
static unsigned host_tag(void) {
  static atomic_uint tag; /* 0: not computed yet */
  unsigned t = atomic_load_explicit(&tag, memory_order_relaxed);
  if (t) return t;
  char name[256] = "";
  plat_hostname(name, sizeof name);
  uint64_t h = fnv64(name);
  t = (unsigned)(h ^ (h >> 32));
  if (!t) t = 1;
  atomic_store_explicit(&tag, t, memory_order_relaxed);
  return t;
}

unsigned files_rand(void) { return plat_rand(); }

static char *join(const char *dir, const char *name) {
  size_t a = strlen(dir), b = strlen(name);
  char *p = malloc(a + b + 2);
  if (!p) return NULL;
  memcpy(p, dir, a);
  p[a] = '/';
  memcpy(p + a + 1, name, b + 1);
  return p;
}

char *files_join(const char *dir, const char *name) { return join(dir, name); }

char *files_cwd(void) { return plat_cwd(); }

int files_error(int e, const char *what, const char *path, char *reason, size_t n) {
  if (e == EACCES || e == EPERM || e == EROFS) {
    snprintf(reason, n, "permission denied: %s", path);
    return DT_ERR_PERM;
  }
  /* the documented reasons name their object; libc's (disk full, ...) stand alone */
  if (what) snprintf(reason, n, "save file error: %s: %s", what, path);
  else snprintf(reason, n, "save file error: %s", strerror(e));
  return DT_ERR_SAVE;
}

/* ---- destinations ----------------------------------------------------- */

void files_dest_free(dest_info *d) {
  free(d->path);
  free(d->dir);
  d->path = d->dir = NULL;
  d->base = NULL;
}

static char *dupn(const char *p, size_t n) {
  char *d = malloc(n + 1);
  if (!d) return NULL;
  memcpy(d, p, n);
  d[n] = '\0';
  return d;
}

/* Splits p at its last '/': the directory ("." or "/" at least) and the name. */
static int split(const char *p, char **dir, char **name) {
  const char *slash = strrchr(p, '/');
  size_t dl = slash ? (size_t)(slash - p) : 0;
  *dir = slash ? (dl ? dupn(p, dl) : strdup("/")) : strdup(".");
  *name = strdup(slash ? slash + 1 : p);
  if (*dir && *name) return 0;
  free(*dir);
  free(*name);
  return -1;
}

/* Whether p names a directory (links followed); 0 with errno otherwise. */
static int is_dir(const char *p) {
  const char *what = NULL;
  int k = plat_kind(p, &what);
  if (k == PLAT_DIR) return 1;
  if (k >= 0) errno = k == PLAT_NONE ? ENOENT : ENOTDIR;
  return 0;
}

/* One mkdir of `mkdir -p`: made (*made set), or there already as a directory. */
static int make_dir(const char *p, int *made, int *err, char *reason, size_t n) {
  if (plat_mkdir(p) == 0) { /* 0777 & ~umask */
    *made = 1;
    return 0;
  }
  int e = errno;
  if (e == EEXIST || e == EISDIR) {
    if (is_dir(p)) return 0;
    e = errno;
  }
  *err = files_error(e, e == ENOTDIR || e == EEXIST ? "not a directory" : strerror(e), p, reason, n);
  return -1;
}

int files_make_dirs(const char *file_path, files_made *made, int *err, char *reason, size_t n) {
  const char *slash = NULL;
  for (const char *q = file_path; *q; q++)
    if (plat_is_sep(*q)) slash = q;
  if (!slash || slash == file_path) return 0; /* the working directory or the root */
  size_t dl = (size_t)(slash - file_path);
  char *p = malloc(dl + 1); /* strndup: not in mingw */
  if (p) {
    memcpy(p, file_path, dl);
    p[dl] = '\0';
  }
  if (!p) {
    *err = files_error(ENOMEM, NULL, file_path, reason, n);
    return -1;
  }
  int rc = 0, nmade = 0, count = 1;
  for (const char *q = p; *q; q++) count += plat_is_sep(*q);
  size_t *ends = NULL;
  if (!is_dir(p)) { /* the usual case, a directory that exists, costs one stat */
    ends = made->path ? NULL : malloc((size_t)count * sizeof *ends); /* NULL: they stay */
    for (char *q = p + 1; rc == 0; q++) {
      if (*q && (!plat_is_sep(*q) || plat_is_sep(q[-1]))) continue;
      char sep = *q;
      *q = '\0';
      int created = 0;
      rc = make_dir(p, &created, err, reason, n);
      if (created && ends) ends[nmade++] = (size_t)(q - p);
      *q = sep;
      if (!sep) break;
    }
  }
  if (nmade > 0) { /* also after a failure further down: what was made goes */
    made->path = p;
    made->ends = ends;
    made->n = nmade;
  } else {
    free(p);
    free(ends);
  }
  return rc;
}

void files_unmake_dirs(files_made *m) {
  for (int i = m->n - 1; i >= 0; i--) {
    m->path[m->ends[i]] = '\0';
    if (plat_rmdir(m->path) != 0) break;
  }
  files_made_free(m);
}

void files_made_free(files_made *m) {
  free(m->path);
  free(m->ends);
  m->path = NULL;
  m->ends = NULL;
  m->n = 0;
}

int files_resolve(const char *file_path, dest_info *d, int *err, char *reason, size_t n) {
  memset(d, 0, sizeof *d);
  size_t len = strlen(file_path);
  if (len == 0 || file_path[len - 1] == '/') {
    *err = files_error(0, "destination is a directory", file_path, reason, n);
    return -1;
  }
  int e = 0;
  char *target = plat_follow_links(file_path);
  if (!target) e = errno;
  char *dir = NULL, *name = NULL, *real = NULL;
  if (!target || split(target, &dir, &name) != 0) {
    *err = files_error(e ? e : ENOMEM, NULL, file_path, reason, n);
    free(target);
    return -1;
  }
  free(target);
  if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
    *err = files_error(0, "destination is a directory", file_path, reason, n);
    goto fail;
  }
  real = plat_realdir(dir);
  if (!real) {
    e = errno;
    if (e == ENOENT || e == ENOTDIR) *err = files_error(e, "directory does not exist", dir, reason, n);
    else *err = files_error(e, NULL, dir, reason, n);
    goto fail;
  }
  d->path = join(real, name);
  if (!d->path) {
    *err = files_error(ENOMEM, NULL, file_path, reason, n);
    goto fail;
  }
  d->dir = real;
  real = NULL;
  d->base = strrchr(d->path, '/') + 1;
  const char *what = "destination is not a regular file";
  int kind = plat_kind(d->path, &what);
  if (kind < 0) {
    *err = files_error(errno, NULL, d->path, reason, n);
    goto fail;
  } else if (kind == PLAT_NONE) {
    d->kind = DEST_NEW;
  } else if (kind == PLAT_REGULAR) {
    d->kind = DEST_REGULAR;
  } else if (kind == PLAT_INPLACE) {
    d->kind = DEST_INPLACE;
  } else {
    *err = files_error(0, what, d->path, reason, n);
    goto fail;
  }
  free(dir);
  free(name);
  return 0;
fail:
  free(dir);
  free(name);
  free(real);
  files_dest_free(d);
  return -1;
}

/* ---- temporary files -------------------------------------------------- */

#define TEMP_PREFIX ".dt."
#define TEMP_SUFFIX ".tmp"
#define SWEEP_EVERY_S 60.0

/* Whether name is a temporary file of a process of this host that no longer runs. */
static int stale(const char *name) {
  unsigned host, rnd;
  long pid;
  int end = 0;
  if (strncmp(name, TEMP_PREFIX, 4) != 0) return 0;
  if (sscanf(name + 4, "%8x.%ld.%8x.tmp%n", &host, &pid, &rnd, &end) != 3 || end == 0 ||
      name[4 + end] != '\0')
    return 0;
  if (host != host_tag() || pid <= 0 || pid == plat_pid()) return 0;
  return !plat_pid_alive(pid);
}

static void sweep_one(const char *dir, const char *name, void *ud) {
  (void)ud;
  if (!stale(name)) return;
  char *p = join(dir, name);
  if (p) (void)plat_unlink(p); /* gone already: fine */
  free(p);
}

void files_sweep(files_scans *c, const char *dir) {
  double now = plat_mono_ms() / 1000.0;
  int i;
  for (i = 0; i < 16; i++)
    if (c->slot[i].dir && strcmp(c->slot[i].dir, dir) == 0) break;
  if (i < 16 && now - c->slot[i].at < SWEEP_EVERY_S) return;
  if (i == 16) { /* a new directory takes the oldest slot */
    i = c->next;
    c->next = (c->next + 1) % 16;
    free(c->slot[i].dir);
    c->slot[i].dir = strdup(dir);
    if (!c->slot[i].dir) return;
  }
  c->slot[i].at = now;
  (void)plat_dir_each(dir, sweep_one, NULL); /* an unreadable directory: nothing to sweep */
}

void files_scans_free(files_scans *c) {
  for (int i = 0; i < 16; i++) {
    free(c->slot[i].dir);
    c->slot[i].dir = NULL;
  }
}

int files_temp(const char *dir, int flags, char **path) {
  size_t n = strlen(dir) + 64;
  char *p = malloc(n);
  if (!p) {
    errno = ENOMEM;
    return -1;
  }
  for (int tries = 0; tries < 100; tries++) {
    /* the directory's own separator: on Windows a tempFilePath is "C:\\...\\name" */
    snprintf(p, n, "%s%c" TEMP_PREFIX "%08x.%ld.%08x" TEMP_SUFFIX, dir, plat_sep(dir), host_tag(), plat_pid(),
             files_rand());
    int fd = plat_open_write(p, PLAT_EXCL | flags);
    if (fd >= 0) {
      *path = p;
      return fd;
    }
    if (errno != EEXIST) break;
  }
  int e = errno;
  free(p);
  errno = e;
  return -1;
}

int files_deliver_private(char **path) {
  const char *old = *path;
  size_t dl = strlen(old);
  while (dl > 0 && !plat_is_sep(old[dl - 1])) dl--;
  size_t n = dl + 32;
  char *p = malloc(n);
  if (!p) {
    errno = ENOMEM;
    return -1;
  }
  /* the new name is taken by creating it (exclusively), then the body is renamed over it:
   * never over a file somebody else has */
  for (int tries = 0; tries < 100; tries++) {
    snprintf(p, n, "%.*sdownloadtask-%08x", (int)dl, old, files_rand());
    int fd = plat_open_write(p, PLAT_EXCL | PLAT_PRIVATE);
    if (fd < 0 && errno == EEXIST) continue;
    if (fd < 0) break;
    plat_close(fd);
    if (plat_rename(old, p) != 0) {
      int e = errno;
      plat_unlink(p);
      errno = e;
      break;
    }
    free(*path);
    *path = p;
    return 0;
  }
  int e = errno;
  free(p);
  errno = e;
  return -1;
}

/* ---- resume ----------------------------------------------------------- */

char *files_part_path(const dest_info *d, const char *suffix) {
  char name[64];
  snprintf(name, sizeof name, TEMP_PREFIX "%016llx%s", (unsigned long long)fnv64(d->base), suffix);
  return join(d->dir, name);
}

/* The info file holds the part's record (record.h); one naming another
 * destination (two names may share a hash), of another version or not whole
 * is none. */
char *files_read_validator(const dest_info *d, const char **ranges, long long *length) {
  char *info = files_part_path(d, ".info");
  if (!info) return NULL;
  int fd = plat_open_read(info);
  free(info);
  if (fd < 0) return NULL;
  size_t cap = RECORD_MAX + 1, len = 0;
  char *buf = malloc(cap);
  long long r = 1;
  while (buf && len < cap && (r = plat_read(fd, buf + len, cap - len)) > 0) len += (size_t)r;
  plat_close(fd);
  part_record rec;
  if (!buf || r < 0 || !record_parse(buf, len, &rec) || strcmp(rec.name, d->base) != 0) {
    free(buf);
    return NULL;
  }
  /* one allocation: the validator, then the ranges line */
  size_t a = strlen(rec.validator) + 1, b = rec.ranges ? strlen(rec.ranges) + 1 : 0;
  char *out = malloc(a + b);
  if (out) {
    memcpy(out, rec.validator, a);
    if (b) memcpy(out + a, rec.ranges, b);
    if (ranges) *ranges = b ? out + a : NULL;
    if (length) *length = rec.length;
  }
  free(buf);
  return out;
}

void files_write_validator(const dest_info *d, const char *v, long long length) {
  files_write_info(d, v, length, NULL);
}

/* Written to a temporary file of this process and renamed over the info
 * file: a crash leaves the old record or the new one, never half of one (the
 * temporary file of a killed process goes with the next sweep). */
void files_write_info(const dest_info *d, const char *v, long long length, const char *ranges) {
  char *info = files_part_path(d, ".info");
  if (!info) return;
  part_record rec = {length, v, d->base, ranges};
  size_t n = 0;
  char *text = v ? record_format(&rec, &n) : NULL;
  char *tmp = NULL;
  int fd = text ? files_temp(d->dir, 0, &tmp) : -1;
  int ok = fd >= 0 && plat_write_all(fd, text, n);
  if (fd >= 0 && plat_close(fd) != 0) ok = 0;
  if (ok) ok = plat_rename(tmp, info) == 0;
  if (tmp && !ok) (void)plat_unlink(tmp);
  /* none, too long, or not written: a stale record must not vouch for the part */
  if (!ok) (void)plat_unlink(info);
  free(tmp);
  free(text);
  free(info);
}

int files_sync_dir(const char *dir) { return plat_sync_dir(dir); }
