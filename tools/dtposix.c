/*
 * dtposix.c: the few POSIX calls the regression specs need and no Lua gives
 * them on every version (Debian's lua-posix is built for 5.1-5.3 only):
 * fork, _exit, waitpid, kill, and a thread that sends signals to the Lua thread.
 * Built by the specs themselves (spec/support/dtposix.lua) with the compiler
 * and the Lua headers the module is built with; any Lua 5.1-5.4 or LuaJIT.
 *
 *   fork() -> pid (0 in the child)
 *   _exit([code])                       no atexit handlers, no finalizers
 *   waitpid(pid[, nohang]) -> pid[, status]   status: exit code, or 128 + signal
 *   kill(pid, signo) -> ok
 *   sleep(ms)
 *   pester(signo, every_ms, count)      installs a handler for signo WITHOUT
 *       SA_RESTART (so a waiting system call fails with EINTR, as under a host
 *       with such handlers), then a thread sends signo to the calling thread
 *       every every_ms, count times. Returns nothing; one at a time.
 *   pestered() -> n                     how many of them the handler saw;
 *       waits for the thread and puts the old handler back
 */
#define _POSIX_C_SOURCE 200809L
#include <lauxlib.h>
#include <lua.h>

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t seen;
static pthread_t target, sender;
static int sender_running, pester_signo;
static long pester_every_ms, pester_count;
static struct sigaction old_action;

static void on_signal(int signo) {
  (void)signo;
  seen++;
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {}
}

static void *send_signals(void *arg) {
  (void)arg;
  for (long i = 0; i < pester_count; i++) {
    sleep_ms(pester_every_ms);
    if (pthread_kill(target, pester_signo) != 0) break;
  }
  return NULL;
}

static int l_pester(lua_State *L) {
  if (sender_running) return luaL_error(L, "pester: already running");
  pester_signo = (int)luaL_checkinteger(L, 1);
  pester_every_ms = (long)luaL_checkinteger(L, 2);
  pester_count = (long)luaL_checkinteger(L, 3);
  struct sigaction sa;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0; /* no SA_RESTART */
  if (sigaction(pester_signo, &sa, &old_action) != 0) return luaL_error(L, "sigaction: %s", strerror(errno));
  seen = 0;
  target = pthread_self();
  if (pthread_create(&sender, NULL, send_signals, NULL) != 0) {
    sigaction(pester_signo, &old_action, NULL);
    return luaL_error(L, "pthread_create failed");
  }
  sender_running = 1;
  return 0;
}

static int l_pestered(lua_State *L) {
  if (sender_running) {
    pthread_join(sender, NULL);
    sender_running = 0;
    sigaction(pester_signo, &old_action, NULL);
  }
  lua_pushinteger(L, (lua_Integer)seen);
  return 1;
}

static int l_fork(lua_State *L) {
  pid_t p = fork();
  if (p < 0) return luaL_error(L, "fork: %s", strerror(errno));
  lua_pushinteger(L, p);
  return 1;
}

static int l_exit(lua_State *L) {
  _exit((int)luaL_optinteger(L, 1, 0));
  return 0;
}

static int l_waitpid(lua_State *L) {
  int st = 0;
  pid_t p = waitpid((pid_t)luaL_checkinteger(L, 1), &st, lua_toboolean(L, 2) ? WNOHANG : 0);
  lua_pushinteger(L, p);
  if (p <= 0) return 1;
  lua_pushinteger(L, WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st));
  return 2;
}

static int l_kill(lua_State *L) {
  lua_pushboolean(L, kill((pid_t)luaL_checkinteger(L, 1), (int)luaL_checkinteger(L, 2)) == 0);
  return 1;
}

static int l_sleep(lua_State *L) {
  sleep_ms((long)luaL_checkinteger(L, 1));
  return 0;
}

int luaopen_dtposix(lua_State *L);
int luaopen_dtposix(lua_State *L) {
  static const luaL_Reg f[] = {{"fork", l_fork},       {"_exit", l_exit},     {"waitpid", l_waitpid},
                               {"sleep", l_sleep},     {"pester", l_pester},  {"pestered", l_pestered},
                               {"kill", l_kill},       {NULL, NULL}};
  lua_newtable(L);
  for (const luaL_Reg *r = f; r->name; r++) {
    lua_pushcfunction(L, r->func);
    lua_setfield(L, -2, r->name);
  }
  lua_pushinteger(L, SIGUSR1);
  lua_setfield(L, -2, "SIGUSR1");
  return 1;
}
