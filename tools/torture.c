/*
 * torture.c: runs spec/torture/downloads.lua's download script once for every Lua
 * allocation it makes, with an allocator that fails from that allocation on,
 * and checks that each run ends in success or a Lua memory error: never a
 * crash, a stuck thread or loop, a leaked descriptor or a file left behind,
 * and that the module still works once memory is back. (make torture)
 *
 *   torture [-c cpath] [-m persistent|once] [-s step] [-t seconds] [-v] [-x] SCRIPT [first [last]]
 *
 * -x runs `first` alone, without fork(), for a debugger (TORTURE_TRAP=1 raises
 * SIGTRAP at the failing allocation; TORTURE_TRACE=1 prints its C stack).
 *
 * The host's own state runs SCRIPT's setup() (it starts nginx through
 * spec/support/servers.lua) with a normal allocator. Then, for each n, a
 * fork()ed child makes a fresh state, loads SCRIPT and calls run(cfg) with
 * an allocator that fails the n-th allocation (-m once: only that one, so
 * Lua's emergency collection retries it and the run usually goes on; the
 * default, persistent: that one and every later one until run() returns).
 * The child then restores the allocator and calls check(cfg, ok), closes the
 * state and compares its open descriptors with those before the state was
 * made. An alarm ends a stuck child. Built with ASan (make torture), LSan
 * checks every child for leaks when it exits.
 *
 * n = 0 counts: run() without failures, printing how many allocations it made.
 */
#define _GNU_SOURCE
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <dirent.h>
#include <dlfcn.h>
#include <execinfo.h>
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *opt_cpath = "./?.so";
static int opt_persistent = 1, opt_verbose = 0, opt_nofork = 0;
static unsigned opt_timeout = 20;
static const char *script_path = "";

typedef struct alloc_ctl {
  unsigned long count;   /* growing allocations since counting began */
  unsigned long fail_at; /* 0: never */
  int counting, persistent, failing;
  lua_State *L;
  int in_listener; /* the first failure struck in a listener, or in the module's call of one */
  char where[256]; /* the script's lines on the Lua stack at the first failure */
  int out;          /* the report pipe */
} alloc_ctl;

/* Notes the script's frames (file:line, innermost first) at the first
 * failing allocation, for the report. lua_getinfo "Sl" allocates nothing. */
static void note_where(alloc_ctl *c) {
  lua_Debug ar;
  size_t k = 0;
  c->where[0] = '\0';
  for (int level = 0; c->L && lua_getstack(c->L, level, &ar) && k + 32 < sizeof c->where; level++) {
    if (!lua_getinfo(c->L, "Sl", &ar)) break;
    if (ar.what[0] == 'C') k += (size_t)snprintf(c->where + k, sizeof c->where - k, "%s[C]", k ? "<" : "");
    else if (ar.currentline > 0)
      k += (size_t)snprintf(c->where + k, sizeof c->where - k, "%s%s:%d", k ? "<" : "", ar.short_src,
                            ar.currentline);
  }
}

/* Whether one of the script's functions runs, called from C (the module's
 * dispatcher) called from the script: a listener. Reads the call chain only
 * (lua_getstack, lua_getinfo "S"), which allocates nothing. */
static int listener_running(lua_State *L) {
  lua_Debug ar;
  int seen_script = 0, seen_c_above = 0;
  for (int level = 0; L && lua_getstack(L, level, &ar); level++) {
    if (!lua_getinfo(L, "S", &ar)) break;
    int script = ar.what[0] == 'L' && strstr(ar.source, script_path) != NULL;
    if (script && seen_c_above) return 1;
    if (script) seen_script = 1;
    else if (seen_script && ar.what[0] == 'C') seen_c_above = 1;
  }
  return 0;
}

/* Whether the allocation being made is the module calling into Lua
 * (lua_pcallk, lua_callk, lua_resume setting up the call of a listener or
 * a coroutine): its C stack reaches one of those before any frame of the
 * module. The module's own allocations (tables it builds) reach the module
 * first. */
static int module_calling_lua(void) {
  void *frames[64];
  int n = backtrace(frames, 64);
  for (int i = 1; i < n; i++) {
    Dl_info info;
    if (!dladdr(frames[i], &info) || !info.dli_fname) continue;
    if (strstr(info.dli_fname, "downloadtask")) return 0;
    if (info.dli_sname && (strcmp(info.dli_sname, "lua_pcallk") == 0 ||
                           strcmp(info.dli_sname, "lua_callk") == 0 ||
                           strcmp(info.dli_sname, "lua_resume") == 0))
      return 1;
  }
  return 0;
}

static void *torture_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
  alloc_ctl *c = ud;
  if (nsize == 0) {
    free(ptr);
    return NULL;
  }
  /* Lua expects a block that shrinks never to fail; ptr == NULL: osize is a type */
  if (c->counting && (ptr == NULL || nsize > osize)) {
    c->count++;
    if (c->fail_at && c->count == c->fail_at) {
      c->failing = 1;
      c->in_listener = listener_running(c->L) || module_calling_lua();
      note_where(c);
      if (opt_verbose && c->out >= 0) { /* said now: a stuck run reports nothing after this */
        char buf[300];
        int k = snprintf(buf, sizeof buf, "first failure at %s in_listener=%d\n", c->where, c->in_listener);
        ssize_t w = write(c->out, buf, (size_t)(k < (int)sizeof buf ? k : (int)sizeof buf - 1));
        (void)w;
      }
      if (getenv("TORTURE_TRAP")) raise(SIGTRAP); /* for a debugger: where it fails */
      if (getenv("TORTURE_TRACE")) { /* or the C stack, on stderr */
        void *frames[64];
        backtrace_symbols_fd(frames, backtrace(frames, 64), 2);
      }
    }
    if (c->failing) {
      if (!c->persistent) c->failing = 0;
      return NULL;
    }
  }
  return realloc(ptr, nsize);
}


/* ---- small helpers ------------------------------------------------------ */

static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  int n = 0;
  struct dirent *e;
  if (!d) return -1;
  while ((e = readdir(d)) != NULL)
    if (e->d_name[0] != '.') n++;
  closedir(d);
  return n - 1; /* the directory's own descriptor */
}

static void set_paths(lua_State *L) {
  if (luaL_dostring(L, "package.path = './?.lua;' .. package.path") != LUA_OK) lua_pop(L, 1);
  lua_getglobal(L, "package");
  lua_pushfstring(L, "%s;", opt_cpath);
  lua_getfield(L, -2, "cpath");
  lua_concat(L, 2);
  lua_setfield(L, -2, "cpath");
  lua_pop(L, 1);
}

/* Loads SCRIPT and pushes the table it returns; NULL or an error message. */
static const char *load_script(lua_State *L, const char *script) {
  if (luaL_loadfile(L, script) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK)
    return lua_tostring(L, -1);
  if (!lua_istable(L, -1)) return "the script must return a table";
  return NULL;
}

/* A memory error as Lua and the module report one: LUA_ERRMEM, or the same
 * message re-raised from poll/run/await (a listener's error), or an error
 * in the message handler, which had no memory to build a traceback. */
static int is_memory_error(int status, const char *msg) {
  if (status == LUA_ERRMEM) return 1;
  if (!msg) return 0;
  return strstr(msg, "not enough memory") != NULL || strcmp(msg, "error in error handling") == 0;
}

/* ---- one run, in a child ------------------------------------------------ */

enum { RC_OK = 0, RC_MEMERR = 10, RC_OTHER_ERROR = 20, RC_UNUSABLE = 21, RC_LEFTOVER = 22,
       RC_FDS = 24, RC_SETUP = 25 };

static void report(int out, unsigned long n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void report(int out, unsigned long n, const char *fmt, ...) {
  char buf[2048];
  int k = snprintf(buf, sizeof buf, "%lu ", n);
  va_list ap;
  va_start(ap, fmt);
  k += vsnprintf(buf + k, sizeof buf - (size_t)k, fmt, ap);
  va_end(ap);
  if (k > (int)sizeof buf - 2) k = (int)sizeof buf - 2;
  for (int i = 0; i < k; i++)
    if (buf[i] == '\n') buf[i] = '|';
  buf[k++] = '\n';
  ssize_t w = write(out, buf, (size_t)k);
  (void)w;
}

static int child(unsigned long n, const char *script, const char *cfgchunk, const char *workdir,
                 int out) {
  char dir[4096], tmp[4096];
  snprintf(dir, sizeof dir, "%s/%lu", workdir, n);
  snprintf(tmp, sizeof tmp, "%s/%lu.tmp", workdir, n);
  if (mkdir(dir, 0700) != 0 || mkdir(tmp, 0700) != 0) {
    report(out, n, "setup: mkdir: %s", strerror(errno));
    return RC_SETUP;
  }
  alarm(opt_timeout);
  int fds_before = count_fds();
  alloc_ctl ctl = {0, 0, 0, opt_persistent, 0, NULL, 0, "", out};
  lua_State *L = lua_newstate(torture_alloc, &ctl);
  if (!L) return RC_SETUP;
  ctl.L = L;
  luaL_openlibs(L);
  set_paths(L);
  const char *why = load_script(L, script);
  if (why || luaL_loadstring(L, cfgchunk) != LUA_OK || lua_pcall(L, 0, 1, 0) != LUA_OK) {
    report(out, n, "setup: %s", why ? why : lua_tostring(L, -1));
    return RC_SETUP;
  }
  int m = lua_gettop(L) - 1, cfg = lua_gettop(L);
  lua_pushstring(L, dir);
  lua_setfield(L, cfg, "dir");
  lua_pushstring(L, tmp);
  lua_setfield(L, cfg, "tmp");

  /* the run, failing from the n-th allocation on */
  lua_getfield(L, m, "run");
  lua_pushvalue(L, cfg);
  ctl.fail_at = n;
  ctl.counting = 1;
  int status = lua_pcall(L, 1, 0, 0);
  ctl.counting = 0;
  ctl.failing = 0;
  unsigned long made = ctl.count;
  const char *msg = status == LUA_OK ? NULL : lua_tostring(L, -1);
  int rc = RC_OK;
  char detail[1024] = "";
  if (status != LUA_OK) {
    rc = is_memory_error(status, msg) ? RC_MEMERR : RC_OTHER_ERROR;
    snprintf(detail, sizeof detail, "%s (failing from %s)", msg ? msg : "(not a string)",
             ctl.where[0] ? ctl.where : "?");
  } else if (ctl.where[0]) {
    snprintf(detail, sizeof detail, "success (failing from %s)", ctl.where);
  }
  lua_settop(L, cfg);
  if (opt_verbose) report(out, n, "run ended: %s", detail[0] ? detail : "success");

  /* memory is back: the module must work, every task must end */
  lua_getfield(L, m, "check");
  lua_pushvalue(L, cfg);
  lua_pushboolean(L, status == LUA_OK);
  char unusable[1024] = "";
  if (lua_pcall(L, 2, 1, 0) != LUA_OK) {
    snprintf(unusable, sizeof unusable, "%s", lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
    lua_pop(L, 1);
    lua_pushnil(L);
  }
  int handed = lua_gettop(L);

  /* nothing on disk that nobody was given */
  char left[1024] = "";
  const char *dirs[2] = {dir, tmp};
  for (int i = 0; i < 2; i++) {
    DIR *d = opendir(dirs[i]);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
      if (e->d_name[0] == '.') continue;
      /* in the destination directory: anything but a temporary file (check() says
       * which destinations may exist) */
      size_t len = strlen(e->d_name);
      if (i == 0 && !(len > 5 && strcmp(e->d_name + len - 5, ".part") == 0)) continue;
      /* A private body handed to a listener is the listener's to remove: when the
       * memory error struck inside a listener, the file may stay. */
      if (i == 1 && ctl.in_listener) continue;
      if (i == 1) {
        lua_pushfstring(L, "%s/%s", tmp, e->d_name);
        int given = lua_istable(L, handed) && lua_rawget(L, handed) != LUA_TNIL;
        lua_pop(L, 1);
        if (given) continue;
      }
      size_t k = strlen(left);
      snprintf(left + k, sizeof left - k, " %s/%s", i ? "tmp" : "dir", e->d_name);
    }
    if (d) closedir(d);
  }
  lua_close(L); /* in every case, so that LeakSanitizer judges a closed state */
  int fds_after = count_fds();
  alarm(0);
  if (unusable[0]) {
    report(out, n, "unusable after %s: %s", detail[0] ? detail : "success", unusable);
    return RC_UNUSABLE;
  }
  if (left[0]) {
    report(out, n, "left behind:%s (run: %s)", left, detail[0] ? detail : "success");
    return RC_LEFTOVER;
  }
  if (fds_after != fds_before) {
    report(out, n, "descriptors: %d before the state, %d after lua_close (run: %s)", fds_before,
           fds_after, detail[0] ? detail : "success");
    return RC_FDS;
  }
  if (rc == RC_OTHER_ERROR) report(out, n, "not a memory error: %s", detail);
  else report(out, n, "%s allocations=%lu%s%s", rc == RC_OK ? "success" : "memory-error", made,
              rc == RC_OK ? "" : ": ", detail);
  return rc;
}

/* ---- the driver --------------------------------------------------------- */

static volatile sig_atomic_t interrupted;
static void on_signal(int sig) { interrupted = sig; }

typedef struct outcome {
  unsigned long ok, memerr, bad;
} outcome;

/* Runs one child; prints and counts its outcome. Returns its line. */
static int run_one(unsigned long n, const char *script, const char *cfgchunk, const char *workdir,
                   outcome *o, char *line, size_t linesz) {
  fflush(NULL);
  if (opt_nofork) return child(n, script, cfgchunk, workdir, 1);
  int p[2];
  if (pipe(p) != 0) return -1;
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    close(p[0]);
    signal(SIGINT, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    exit(child(n, script, cfgchunk, workdir, p[1])); /* exit(): LSan checks at exit */
  }
  close(p[1]);
  size_t len = 0;
  ssize_t r;
  while (len + 1 < linesz && (r = read(p[0], line + len, linesz - 1 - len)) != 0) {
    if (r < 0) {
      if (errno == EINTR && !interrupted) continue;
      break;
    }
    len += (size_t)r;
  }
  line[len] = '\0';
  if (len && line[len - 1] == '\n') line[len - 1] = '\0';
  for (char *nl; (nl = strchr(line, '\n')) != NULL;) *nl = ' '; /* -v: one line per phase */
  close(p[0]);
  if (interrupted) kill(pid, SIGKILL);
  int st;
  while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {}
  int code = -1;
  const char *what = NULL;
  char buf[64];
  if (WIFSIGNALED(st)) {
    int sig = WTERMSIG(st);
    what = sig == SIGALRM ? "STUCK (no end within the time limit)" : buf;
    snprintf(buf, sizeof buf, "CRASH (signal %d, %s)", sig, strsignal(sig));
  } else {
    code = WEXITSTATUS(st);
    if (code == 23) what = "LEAK (LeakSanitizer)";
    else if (code == 1) what = "sanitizer report or fatal error";
  }
  if (code == RC_OK) o->ok++;
  else if (code == RC_MEMERR) o->memerr++;
  else o->bad++;
  if (what || (code != RC_OK && code != RC_MEMERR)) {
    printf("torture: n=%lu FAILED: %s: %s\n", n, what ? what : "check", line[0] ? line : "(no report)");
  } else if (opt_verbose) {
    printf("torture: %s\n", line);
  }
  return code;
}

static void usage(void) {
  fprintf(stderr, "usage: torture [-c cpath] [-m persistent|once] [-s step] [-t seconds] [-v] [-x] "
                  "SCRIPT [first [last]]\n");
  exit(2);
}

int main(int argc, char **argv) {
  unsigned long step = 1;
  int c;
  while ((c = getopt(argc, argv, "c:m:s:t:vx")) != -1) {
    switch (c) {
    case 'c': opt_cpath = optarg; break;
    case 'm':
      if (strcmp(optarg, "once") == 0) opt_persistent = 0;
      else if (strcmp(optarg, "persistent") == 0) opt_persistent = 1;
      else usage();
      break;
    case 's': step = strtoul(optarg, NULL, 10); break;
    case 't': opt_timeout = (unsigned)strtoul(optarg, NULL, 10); break;
    case 'v': opt_verbose = 1; break;
    case 'x': opt_nofork = 1; break;
    default: usage();
    }
  }
  if (optind >= argc || step == 0) usage();
  const char *script = argv[optind];
  script_path = script;
  unsigned long first = optind + 1 < argc ? strtoul(argv[optind + 1], NULL, 10) : 1;
  unsigned long last = optind + 2 < argc ? strtoul(argv[optind + 2], NULL, 10) : 0;
  setvbuf(stdout, NULL, _IOLBF, 0);
  void *warm[1];
  backtrace(warm, 1); /* loads the unwinder now, not in a child at its failing allocation */

  /* the host's own state: setup() starts the servers; closing it stops them */
  lua_State *H = luaL_newstate();
  luaL_openlibs(H);
  set_paths(H);
  const char *why = load_script(H, script);
  if (!why) {
    lua_getfield(H, -1, "setup");
    if (lua_pcall(H, 0, 1, 0) != LUA_OK || !lua_isstring(H, -1)) why = lua_tostring(H, -1);
  }
  if (why) {
    fprintf(stderr, "torture: setup failed: %s\n", why ? why : "setup() must return a string");
    lua_close(H);
    return 2;
  }
  const char *cfgchunk = lua_tostring(H, -1);
  const char *base = getenv("TMPDIR");
  char wd[4096];
  snprintf(wd, sizeof wd, "%s/dt-torture.XXXXXX", base && *base ? base : "/tmp");
  if (!mkdtemp(wd)) {
    perror("torture: mkdtemp");
    lua_close(H);
    return 2;
  }
  signal(SIGINT, on_signal);
  signal(SIGTERM, on_signal);

  outcome o = {0, 0, 0};
  char line[4096];
  time_t t0 = time(NULL);
  /* n = 0: no failure; says how many allocations run() makes */
  if (opt_nofork) { /* one run in this process; then nginx is stopped as usual */
    int rc = run_one(first, script, cfgchunk, wd, &o, line, sizeof line);
    lua_close(H);
    return rc;
  }
  int code = run_one(0, script, cfgchunk, wd, &o, line, sizeof line);
  unsigned long count = 0;
  const char *a = strstr(line, "allocations=");
  if (code == RC_OK && a) count = strtoul(a + 12, NULL, 10);
  if (!count) {
    fprintf(stderr, "torture: the run without failures did not succeed: %s\n", line);
    lua_close(H);
    return 1;
  }
  /* a run's count varies a little with timing (progress events, polls) */
  if (!last) last = count + count / 20;
  printf("torture: run() makes %lu allocations without failures; failing from n = %lu to %lu "
         "(step %lu, %s)\n",
         count, first, last, step, opt_persistent ? "persistent" : "once");
  for (unsigned long n = first; n <= last && !interrupted; n += step) {
    run_one(n, script, cfgchunk, wd, &o, line, sizeof line);
    if (n % 500 < step)
      printf("torture: n=%lu: %lu success, %lu memory error, %lu FAILED (%ld s)\n", n, o.ok, o.memerr,
             o.bad, (long)(time(NULL) - t0));
  }
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", wd);
  if (system(cmd) != 0) fprintf(stderr, "torture: could not remove %s\n", wd);
  lua_close(H); /* stops nginx */
  printf("torture: %lu runs in %ld s: %lu success, %lu memory error, %lu FAILED%s\n",
         o.ok + o.memerr + o.bad, (long)(time(NULL) - t0), o.ok, o.memerr, o.bad,
         interrupted ? " (interrupted)" : "");
  return (o.bad || interrupted) ? 1 : 0;
}
