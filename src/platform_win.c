/*
 * platform_win.c: platform.h on Windows (Vista and later, x64 and x86),
 * built with mingw-w64 against msvcrt; tested under wine.
 *
 * What differs from POSIX, and how it is met:
 * - Paths are UTF-8 in Lua and UTF-16 for Windows: every path goes through
 *   the wide calls (_wopen, MoveFileExW, FindFirstFileW, ...). Backslashes
 *   are accepted; resolved paths come back with '/'.
 * - Files are CRT descriptors opened _O_BINARY (text mode would turn every
 *   "\n" of a body into "\r\n") and _O_NOINHERIT (no child process gets them).
 * - rename() refuses an existing target: MoveFileExW with
 *   MOVEFILE_REPLACE_EXISTING replaces it. An open file cannot be removed or
 *   renamed: the engine closes a file before either, on every platform.
 * - There are no FIFOs or character devices to write in place but the DOS
 *   devices (NUL, CON, COM1, ...): those are written in place. A symbolic link
 *   or junction (a reparse point) as the destination is followed to its final
 *   target (GetFinalPathNameByHandleW); a dangling one is replaced itself.
 * - No O_NOFOLLOW: a temporary or resume file is created under a name nobody
 *   else uses, in the destination's own directory.
 * - The wake-up object is a connected pair of loopback TCP sockets (select,
 *   WSAPoll and libuv's uv_poll wait on sockets only); dt.fd() is the SOCKET.
 * - No fork(), no signals to block, no permission bits to keep, no
 *   directory fsync (NTFS journals its metadata): those are no-ops.
 * - SHA-256 from BCrypt; the temp directory from GetTempPathW; whether a
 *   process runs from OpenProcess.
 */
#define WIN32_LEAN_AND_MEAN
#include <winsock2.h>
#include <ws2tcpip.h>
#include <windows.h>
#include <bcrypt.h>

#include "platform.h"

#include <errno.h>
#include <fcntl.h>
#include <io.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <wchar.h>

#ifndef WSA_FLAG_NO_HANDLE_INHERIT
#define WSA_FLAG_NO_HANDLE_INHERIT 0x80
#endif

/* ---- text and errors --------------------------------------------------- */

/* UTF-8 to a malloc'ed UTF-16 string, '/' kept (Windows takes both). */
static wchar_t *wide(const char *s) {
  int n = MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, NULL, 0);
  if (n <= 0) {
    errno = EINVAL; /* not UTF-8 */
    return NULL;
  }
  wchar_t *w = malloc((size_t)n * sizeof *w);
  if (!w) {
    errno = ENOMEM;
    return NULL;
  }
  MultiByteToWideChar(CP_UTF8, MB_ERR_INVALID_CHARS, s, -1, w, n);
  return w;
}

/* UTF-16 to a malloc'ed UTF-8 string, '\\' as it is. */
static char *utf8_native(const wchar_t *w) {
  int n = WideCharToMultiByte(CP_UTF8, 0, w, -1, NULL, 0, NULL, NULL);
  char *s = n > 0 ? malloc((size_t)n) : NULL;
  if (!s) {
    errno = ENOMEM;
    return NULL;
  }
  WideCharToMultiByte(CP_UTF8, 0, w, -1, s, n, NULL, NULL);
  return s;
}

/* The same with '/' for '\\': the form of the paths this layer resolves. */
static char *utf8(const wchar_t *w) {
  char *s = utf8_native(w);
  for (char *p = s; p && *p; p++)
    if (*p == '\\') *p = '/';
  return s;
}

static int errno_of(DWORD e) {
  switch (e) {
  case ERROR_FILE_NOT_FOUND:
  case ERROR_PATH_NOT_FOUND:
  case ERROR_INVALID_DRIVE:
  case ERROR_BAD_NETPATH:
    return ENOENT;
  case ERROR_ACCESS_DENIED:
  case ERROR_SHARING_VIOLATION:
  case ERROR_LOCK_VIOLATION:
  case ERROR_PRIVILEGE_NOT_HELD:
    return EACCES;
  case ERROR_WRITE_PROTECT:
    return EROFS;
  case ERROR_FILE_EXISTS:
  case ERROR_ALREADY_EXISTS:
    return EEXIST;
  case ERROR_DISK_FULL:
  case ERROR_HANDLE_DISK_FULL:
    return ENOSPC;
  case ERROR_NOT_ENOUGH_MEMORY:
  case ERROR_OUTOFMEMORY:
    return ENOMEM;
  case ERROR_DIRECTORY:
    return ENOTDIR;
  case ERROR_FILENAME_EXCED_RANGE:
    return ENAMETOOLONG;
  case ERROR_CANT_RESOLVE_FILENAME:
    return ELOOP;
  default:
    return EIO;
  }
}

static int fail_win(void) {
  errno = errno_of(GetLastError());
  return -1;
}

/* ---- the wake-up object ------------------------------------------------ */

static INIT_ONCE wsa_once = INIT_ONCE_STATIC_INIT;
static BOOL CALLBACK wsa_start(PINIT_ONCE o, PVOID p, PVOID *c) {
  (void)o;
  (void)p;
  (void)c;
  WSADATA d;
  return WSAStartup(MAKEWORD(2, 2), &d) == 0; /* kept until the process ends */
}

static SOCKET new_socket(int family, int type, int protocol) {
  SOCKET s = WSASocketW(family, type, protocol, NULL, 0, WSA_FLAG_OVERLAPPED | WSA_FLAG_NO_HANDLE_INHERIT);
  if (s == INVALID_SOCKET && WSAGetLastError() == WSAEINVAL) { /* before Windows 7 SP1 */
    s = WSASocketW(family, type, protocol, NULL, 0, WSA_FLAG_OVERLAPPED);
    if (s != INVALID_SOCKET) SetHandleInformation((HANDLE)s, HANDLE_FLAG_INHERIT, 0);
  }
  return s;
}

/* A connected pair over 127.0.0.1: the listener takes one connection, and
 * that connection must come from our own connecting socket (another local
 * process could connect in between). */
int plat_wake_open(plat_wake *w) {
  if (!InitOnceExecuteOnce(&wsa_once, wsa_start, NULL, NULL)) return fail_win();
  SOCKET l = new_socket(AF_INET, SOCK_STREAM, IPPROTO_TCP), c = INVALID_SOCKET, a = INVALID_SOCKET;
  struct sockaddr_in addr, mine, peer;
  int len = sizeof addr;
  memset(&addr, 0, sizeof addr);
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (l == INVALID_SOCKET || bind(l, (struct sockaddr *)&addr, sizeof addr) != 0 ||
      getsockname(l, (struct sockaddr *)&addr, &len) != 0 || listen(l, 1) != 0)
    goto fail;
  c = new_socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  if (c == INVALID_SOCKET || connect(c, (struct sockaddr *)&addr, sizeof addr) != 0) goto fail;
  len = sizeof mine;
  if (getsockname(c, (struct sockaddr *)&mine, &len) != 0) goto fail;
  for (int tries = 0; tries < 8; tries++) {
    len = sizeof peer;
    a = accept(l, (struct sockaddr *)&peer, &len);
    if (a == INVALID_SOCKET) goto fail;
    if (peer.sin_port == mine.sin_port && peer.sin_addr.s_addr == mine.sin_addr.s_addr) break;
    closesocket(a); /* someone else's */
    a = INVALID_SOCKET;
  }
  if (a == INVALID_SOCKET) goto fail;
  SetHandleInformation((HANDLE)a, HANDLE_FLAG_INHERIT, 0);
  closesocket(l);
  u_long on = 1;
  BOOL nodelay = TRUE; /* one byte, at once: no Nagle delay */
  if (ioctlsocket(a, FIONBIO, &on) != 0 || ioctlsocket(c, FIONBIO, &on) != 0 ||
      setsockopt(c, IPPROTO_TCP, TCP_NODELAY, (const char *)&nodelay, sizeof nodelay) != 0) {
    closesocket(a);
    closesocket(c);
    errno = EIO;
    return -1;
  }
  w->r = (intptr_t)a;
  w->w = (intptr_t)c;
  return 0;
fail:
  if (l != INVALID_SOCKET) closesocket(l);
  if (c != INVALID_SOCKET) closesocket(c);
  errno = EIO;
  return -1;
}

void plat_wake_close(plat_wake *w) {
  closesocket((SOCKET)w->r);
  closesocket((SOCKET)w->w);
}

void plat_wake_signal(plat_wake *w) {
  char b = 1;
  (void)send((SOCKET)w->w, &b, 1, 0); /* a full buffer already wakes the reader */
}

void plat_wake_drain(plat_wake *w) {
  char buf[64];
  while (recv((SOCKET)w->r, buf, sizeof buf, 0) == (int)sizeof buf) {}
}

void plat_wake_wait(plat_wake *w, int ms) {
  fd_set r;
  FD_ZERO(&r);
  FD_SET((SOCKET)w->r, &r);
  struct timeval tv = {ms / 1000, (ms % 1000) * 1000};
  (void)select(0, &r, NULL, NULL, ms < 0 ? NULL : &tv);
}

int plat_wake_fd(const plat_wake *w) { return (int)w->r; }

/* ---- threads and processes --------------------------------------------- */

int plat_thread_start(void *thread, void *(*fn)(void *), void *arg) {
  return pthread_create((pthread_t *)thread, NULL, fn, arg) == 0 ? 0 : -1;
}

long plat_pid(void) { return (long)GetCurrentProcessId(); }

int plat_pid_alive(long pid) {
  HANDLE h = OpenProcess(SYNCHRONIZE | PROCESS_QUERY_LIMITED_INFORMATION, FALSE, (DWORD)pid);
  if (!h) return GetLastError() != ERROR_INVALID_PARAMETER; /* no such process; else: not ours to open */
  int alive = WaitForSingleObject(h, 0) == WAIT_TIMEOUT;
  CloseHandle(h);
  return alive;
}

void plat_hostname(char *buf, size_t n) {
  DWORD len = n > 0 ? (DWORD)n : 0;
  if (n == 0) return;
  if (!GetComputerNameA(buf, &len)) buf[0] = '\0';
  buf[n - 1] = '\0';
}

void plat_cloexec_sockets_above(int fd) { (void)fd; /* sockets are made non-inheritable */ }

long long plat_socket(int family, int type, int protocol) {
  SOCKET s = new_socket(family, type, protocol);
  return s == INVALID_SOCKET ? -1 : (long long)s;
}

/* ---- time and randomness ----------------------------------------------- */

double plat_mono_ms(void) {
  static LARGE_INTEGER freq; /* the same for the system's lifetime */
  LARGE_INTEGER now;
  if (!freq.QuadPart) QueryPerformanceFrequency(&freq);
  QueryPerformanceCounter(&now);
  return (double)now.QuadPart * 1000.0 / (double)freq.QuadPart;
}

double plat_epoch_ms(void) {
  FILETIME ft; /* 100 ns units since 1601 */
  GetSystemTimeAsFileTime(&ft);
  unsigned long long t = ((unsigned long long)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
  return (double)(t - 116444736000000000ull) / 10000.0;
}

unsigned plat_rand(void) {
  static atomic_uint counter;
  LARGE_INTEGER now;
  QueryPerformanceCounter(&now);
  unsigned x = (unsigned)now.QuadPart ^ ((unsigned)GetCurrentProcessId() << 16) ^
               (atomic_fetch_add(&counter, 1) * 2654435761u);
  x ^= x >> 16;
  x *= 0x45d9f3bu;
  return x ^ (x >> 16);
}

/* ---- memory ------------------------------------------------------------ */

const int plat_malloc_size_known = 0;
size_t plat_malloc_size(void *p) {
  (void)p;
  return 0;
}

/* ---- SHA-256 ----------------------------------------------------------- */

static INIT_ONCE sha_once = INIT_ONCE_STATIC_INIT;
static BCRYPT_ALG_HANDLE sha_alg;
static BOOL CALLBACK sha_open(PINIT_ONCE o, PVOID p, PVOID *c) {
  (void)o;
  (void)p;
  (void)c;
  return BCRYPT_SUCCESS(BCryptOpenAlgorithmProvider(&sha_alg, BCRYPT_SHA256_ALGORITHM, NULL, 0));
}

struct plat_sha256 {
  BCRYPT_HASH_HANDLE h;
};

plat_sha256 *plat_sha256_new(void) {
  if (!InitOnceExecuteOnce(&sha_once, sha_open, NULL, NULL)) return NULL;
  return calloc(1, sizeof(plat_sha256));
}

int plat_sha256_init(plat_sha256 *s) {
  if (s->h) BCryptDestroyHash(s->h);
  s->h = NULL;
  return BCRYPT_SUCCESS(BCryptCreateHash(sha_alg, &s->h, NULL, 0, NULL, 0, 0));
}

int plat_sha256_update(plat_sha256 *s, const void *p, size_t n) {
  const unsigned char *b = p;
  while (n > 0) { /* BCryptHashData takes a ULONG count */
    ULONG k = n > 0x40000000u ? 0x40000000u : (ULONG)n;
    if (!s->h || !BCRYPT_SUCCESS(BCryptHashData(s->h, (PUCHAR)b, k, 0))) return 0;
    b += k;
    n -= k;
  }
  return 1;
}

int plat_sha256_final(plat_sha256 *s, unsigned char out[32]) {
  int ok = s->h && BCRYPT_SUCCESS(BCryptFinishHash(s->h, out, 32, 0));
  if (s->h) BCryptDestroyHash(s->h);
  s->h = NULL;
  return ok;
}

void plat_sha256_free(plat_sha256 *s) {
  if (!s) return;
  if (s->h) BCryptDestroyHash(s->h);
  free(s);
}

/* ---- files ------------------------------------------------------------- */

char *plat_cwd(void) {
  wchar_t *w = _wgetcwd(NULL, 0);
  if (!w) return NULL;
  char *s = utf8(w);
  free(w);
  return s;
}

int plat_is_sep(char c) { return c == '/' || c == '\\'; }

int plat_mkdir(const char *path) {
  wchar_t *w = wide(path);
  if (!w) return -1;
  int rc = _wmkdir(w);
  free(w);
  return rc;
}

int plat_rmdir(const char *path) {
  wchar_t *w = wide(path);
  if (!w) return -1;
  int rc = _wrmdir(w);
  free(w);
  return rc;
}

/* "C:/x", "C:\\x", "//server/share", "\\\\server\\share"; "/x" is the current drive's root */
int plat_is_absolute(const char *path) {
  if (path[0] == '/' || path[0] == '\\') return 1;
  return ((path[0] >= 'A' && path[0] <= 'Z') || (path[0] >= 'a' && path[0] <= 'z')) && path[1] == ':' &&
         (path[2] == '/' || path[2] == '\\');
}

int plat_open_write(const char *path, int flags) {
  wchar_t *w = wide(path);
  if (!w) return -1;
  int of = _O_BINARY | _O_NOINHERIT | ((flags & PLAT_RDWR) ? _O_RDWR : _O_WRONLY);
  if (flags & PLAT_EXCL) of |= _O_CREAT | _O_EXCL;
  if (flags & PLAT_CREATE) of |= _O_CREAT;
  if (flags & PLAT_TRUNC) of |= _O_TRUNC;
  int fd = _wopen(w, of, _S_IREAD | _S_IWRITE);
  free(w);
  return fd;
}

int plat_open_read(const char *path) {
  wchar_t *w = wide(path);
  if (!w) return -1;
  int fd = _wopen(w, _O_RDONLY | _O_BINARY | _O_NOINHERIT);
  free(w);
  return fd;
}

int plat_open_inplace(const char *path) {
  wchar_t *w = wide(path);
  if (!w) return -1;
  int fd = _wopen(w, _O_WRONLY | _O_BINARY | _O_NOINHERIT);
  free(w);
  return fd;
}

int plat_close(int fd) { return _close(fd); }

int plat_write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    unsigned k = len > 0x40000000u ? 0x40000000u : (unsigned)len;
    int w = _write(fd, p, k);
    if (w <= 0) {
      if (w == 0) errno = ENOSPC;
      return 0;
    }
    p += w;
    len -= (size_t)w;
  }
  return 1;
}

long long plat_read(int fd, void *buf, size_t n) { return _read(fd, buf, n > INT_MAX ? INT_MAX : (unsigned)n); }

/* No pread: seek, read, and put the position back (only the engine thread
 * uses the descriptor). */
long long plat_pread(int fd, void *buf, size_t n, int64_t off) {
  long long pos = _telli64(fd);
  if (pos < 0 || _lseeki64(fd, off, SEEK_SET) < 0) return -1;
  long long r = plat_read(fd, buf, n);
  int e = errno;
  if (_lseeki64(fd, pos, SEEK_SET) < 0) return -1;
  errno = e;
  return r;
}

/* No pwrite in the CRT: seek, write, and go back (only the engine thread
 * writes a body's file, so nothing moves the position in between). */
int plat_pwrite_all(int fd, const void *buf, size_t n, int64_t off) {
  long long pos = _telli64(fd);
  if (pos < 0 || _lseeki64(fd, off, SEEK_SET) < 0) return 0;
  int ok = plat_write_all(fd, buf, n);
  int e = errno;
  if (_lseeki64(fd, pos, SEEK_SET) < 0) return 0;
  errno = e;
  return ok;
}

int plat_set_size(int fd, int64_t size) { return _chsize_s(fd, size) == 0 ? 0 : -1; }

long long plat_size(int fd) { return _filelengthi64(fd); }

long long plat_seek_end(int fd) { return _lseeki64(fd, 0, SEEK_END); }

int plat_seek_to(int fd, int64_t off) { return _lseeki64(fd, off, SEEK_SET) < 0 ? -1 : 0; }

int plat_truncate0(int fd) { return _chsize_s(fd, 0) == 0 && _lseeki64(fd, 0, SEEK_SET) == 0 ? 0 : -1; }

int plat_sync(int fd) { return _commit(fd); }

int plat_keep_mode(const char *path, int fd) {
  (void)path;
  (void)fd;
  return 0; /* no permission bits; a read-only destination refuses the replacing rename */
}

int plat_rename(const char *from, const char *to) {
  wchar_t *a = wide(from), *b = a ? wide(to) : NULL;
  int rc = b && MoveFileExW(a, b, MOVEFILE_REPLACE_EXISTING | MOVEFILE_WRITE_THROUGH) ? 0 : -1;
  if (rc != 0 && b) fail_win();
  free(a);
  free(b);
  return rc;
}

int plat_unlink(const char *path) {
  wchar_t *w = wide(path);
  int rc = w && DeleteFileW(w) ? 0 : -1;
  if (rc != 0 && w) fail_win();
  free(w);
  return rc;
}

int plat_sync_dir(const char *dir) {
  (void)dir;
  return 0; /* NTFS journals its directory entries; there is no directory fsync */
}

int plat_dir_each(const char *dir, void (*fn)(const char *, const char *, void *), void *ud) {
  size_t n = strlen(dir);
  char *pat = malloc(n + 3);
  if (!pat) {
    errno = ENOMEM;
    return -1;
  }
  memcpy(pat, dir, n);
  memcpy(pat + n, "/*", 3);
  wchar_t *w = wide(pat);
  free(pat);
  if (!w) return -1;
  WIN32_FIND_DATAW fd;
  HANDLE h = FindFirstFileW(w, &fd);
  free(w);
  if (h == INVALID_HANDLE_VALUE) return fail_win();
  do {
    if (wcscmp(fd.cFileName, L".") == 0 || wcscmp(fd.cFileName, L"..") == 0) continue;
    char *name = utf8(fd.cFileName);
    if (name) fn(dir, name, ud);
    free(name);
  } while (FindNextFileW(h, &fd));
  FindClose(h);
  return 0;
}

static INIT_ONCE temp_once = INIT_ONCE_STATIC_INIT;
static char *temp_dir;
static BOOL CALLBACK temp_find(PINIT_ONCE o, PVOID p, PVOID *c) {
  (void)o;
  (void)p;
  (void)c;
  wchar_t w[MAX_PATH + 2];
  DWORD n = GetTempPathW(MAX_PATH + 1, w);
  if (n > 0 && n <= MAX_PATH && (temp_dir = utf8_native(w)) != NULL) { /* as Windows writes it */
    size_t len = strlen(temp_dir);
    if (len > 3 && temp_dir[len - 1] == '\\') temp_dir[len - 1] = '\0'; /* keep "C:\\" */
  }
  return TRUE;
}

const char *plat_temp_dir(void) {
  InitOnceExecuteOnce(&temp_once, temp_find, NULL, NULL);
  return temp_dir ? temp_dir : ".";
}

/* The separator a name joins dir with: the one dir uses (tempDir as the
 * caller wrote it: res.tempFilePath reads like the paths around it). */
char plat_sep(const char *dir) {
  const char *b = strrchr(dir, '\\'), *f = strrchr(dir, '/');
  return f > b ? '/' : '\\';
}

/* NUL, CON, PRN, AUX, COM1-9, LPT1-9, in any directory and with any
 * extension: the devices Windows keeps in every directory. */
static int dos_device(const char *path) {
  const char *base = strrchr(path, '/');
  base = base ? base + 1 : path;
  size_t n = strcspn(base, ".");
  char b[5] = "";
  if (n < 3 || n > 4) return 0;
  for (size_t i = 0; i < n; i++) b[i] = (char)(base[i] >= 'a' && base[i] <= 'z' ? base[i] - 32 : base[i]);
  if (n == 3) return !strcmp(b, "NUL") || !strcmp(b, "CON") || !strcmp(b, "PRN") || !strcmp(b, "AUX");
  return (!strncmp(b, "COM", 3) || !strncmp(b, "LPT", 3)) && b[3] >= '1' && b[3] <= '9';
}

int plat_kind(const char *path, const char **what) {
  if (dos_device(path)) return PLAT_INPLACE;
  wchar_t *w = wide(path);
  if (!w) return -1;
  DWORD a = GetFileAttributesW(w);
  free(w);
  if (a == INVALID_FILE_ATTRIBUTES) {
    DWORD e = GetLastError();
    if (e == ERROR_FILE_NOT_FOUND || e == ERROR_PATH_NOT_FOUND) return PLAT_NONE;
    errno = errno_of(e);
    return -1;
  }
  if (a & FILE_ATTRIBUTE_DIRECTORY) {
    *what = "destination is a directory";
    return PLAT_DIR;
  }
  return PLAT_REGULAR;
}

/* The final path of an existing file, links and junctions followed. */
static char *final_path(const wchar_t *w) {
  HANDLE h = CreateFileW(w, 0, FILE_SHARE_READ | FILE_SHARE_WRITE | FILE_SHARE_DELETE, NULL, OPEN_EXISTING,
                         FILE_FLAG_BACKUP_SEMANTICS, NULL);
  if (h == INVALID_HANDLE_VALUE) return NULL;
  wchar_t buf[32768];
  DWORD n = GetFinalPathNameByHandleW(h, buf, 32767, FILE_NAME_NORMALIZED | VOLUME_NAME_DOS);
  CloseHandle(h);
  if (n == 0 || n >= 32767) return NULL;
  const wchar_t *p = buf;
  if (wcsncmp(p, L"\\\\?\\UNC\\", 8) == 0) { /* \\?\UNC\server\share -> //server/share */
    p += 6;
    buf[6] = L'\\';
  } else if (wcsncmp(p, L"\\\\?\\", 4) == 0) {
    p += 4;
  }
  return utf8(p);
}

char *plat_follow_links(const char *path) {
  char *s = strdup(path);
  if (!s) {
    errno = ENOMEM;
    return NULL;
  }
  for (char *p = s; *p; p++)
    if (*p == '\\') *p = '/';
  if (dos_device(s)) return s;
  wchar_t *w = wide(s);
  if (!w) {
    free(s);
    return NULL;
  }
  DWORD a = GetFileAttributesW(w);
  if (a != INVALID_FILE_ATTRIBUTES && (a & FILE_ATTRIBUTE_REPARSE_POINT) && !(a & FILE_ATTRIBUTE_DIRECTORY)) {
    char *t = final_path(w); /* NULL: a dangling link, replaced itself */
    if (t) {
      free(s);
      s = t;
    }
  }
  free(w);
  return s;
}

char *plat_realdir(const char *dir) {
  size_t n = strlen(dir);
  char *d = malloc(n + 2);
  if (!d) {
    errno = ENOMEM;
    return NULL;
  }
  memcpy(d, dir, n + 1);
  if (n == 2 && d[1] == ':') memcpy(d + 2, "/", 2); /* "C:" alone is that drive's current directory */
  wchar_t *w = wide(d);
  free(d);
  if (!w) return NULL;
  wchar_t full[32768];
  DWORD len = GetFullPathNameW(w, 32767, full, NULL);
  free(w);
  if (len == 0 || len >= 32767) {
    fail_win();
    return NULL;
  }
  DWORD a = GetFileAttributesW(full);
  if (a == INVALID_FILE_ATTRIBUTES) {
    fail_win();
    return NULL;
  }
  if (!(a & FILE_ATTRIBUTE_DIRECTORY)) {
    errno = ENOTDIR;
    return NULL;
  }
  char *r = (a & FILE_ATTRIBUTE_REPARSE_POINT) ? final_path(full) : NULL;
  if (!r) r = utf8(full);
  if (r) {
    size_t rl = strlen(r);
    if (rl > 3 && r[rl - 1] == '/') r[rl - 1] = '\0';
  }
  return r;
}

/* ---- the module itself ------------------------------------------------- */

void plat_pin_module(const void *addr) {
  HMODULE h;
  (void)GetModuleHandleExW(GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_PIN,
                           (LPCWSTR)addr, &h);
}
