/*
 * luahost.c: a minimal stand-in for the `lua5.4` command, built with a
 * sanitizer (make asan, make tsan) so that the sanitizer's runtime is linked
 * into the executable that loads the sanitized downloadtask.so, instead of
 * being LD_PRELOADed into every process the specs start (bash, nginx, gcc,
 * curl). Lua itself (liblua5.4) is not instrumented; its allocations still
 * go through the sanitizer's malloc, so leaks and bad frees are seen.
 *
 * Understands what the specs and busted use of lua.c's command line:
 *   luahost [-e stat] [-l mod] [-E] [-W] [-v] [-] [--] [script [args]]
 * and LUA_INIT_5_4 / LUA_INIT. Exits 1 on an error, like lua.c.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *progname = "lua5.4";

/* lua_close unloads the C modules it loaded; a leak report printed after
 * that cannot name the module's functions. The host keeps every library
 * mapped: this definition takes the place of libc's for liblua5.4's calls. */
int dlclose(void *handle);
int dlclose(void *handle) {
  (void)handle;
  return 0;
}

/* Kept in a global so a leak checker at exit (os.exit without closing the
 * state) sees Lua's memory as reachable, as it is in lua.c. */
static lua_State *host_state;

static int msghandler(lua_State *L) {
  const char *msg = lua_tostring(L, 1);
  if (msg == NULL) {
    if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING) return 1;
    msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
  }
  luaL_traceback(L, L, msg, 1);
  return 1;
}

static int report(lua_State *L, int status) {
  if (status != LUA_OK) {
    const char *msg = lua_tostring(L, -1);
    fprintf(stderr, "%s: %s\n", progname, msg ? msg : "(error object is not a string)");
    fflush(stderr);
    lua_pop(L, 1);
  }
  return status;
}

static int docall(lua_State *L, int narg, int nres) {
  int base = lua_gettop(L) - narg;
  lua_pushcfunction(L, msghandler);
  lua_insert(L, base);
  int status = lua_pcall(L, narg, nres, base);
  lua_remove(L, base);
  return status;
}

static int dochunk(lua_State *L, int status) {
  if (status == LUA_OK) status = docall(L, 0, 0);
  return report(L, status);
}

static int dostring(lua_State *L, const char *s, const char *name) {
  return dochunk(L, luaL_loadbuffer(L, s, strlen(s), name));
}

static int dolibrary(lua_State *L, const char *name) {
  lua_getglobal(L, "require");
  lua_pushstring(L, name);
  int status = docall(L, 1, 1);
  if (status == LUA_OK) lua_setglobal(L, name);
  return report(L, status);
}

static int handle_luainit(lua_State *L) {
  const char *name = "=LUA_INIT_5_4";
  const char *init = getenv(name + 1);
  if (init == NULL) {
    name = "=LUA_INIT";
    init = getenv(name + 1);
  }
  if (init == NULL) return LUA_OK;
  if (init[0] == '@') return dochunk(L, luaL_loadfile(L, init + 1));
  return dostring(L, init, name);
}

/* The work, under lua_pcall so that a memory error is reported, not fatal. */
static int pmain(lua_State *L) {
  int argc = (int)lua_tointeger(L, 1);
  char **argv = (char **)lua_touserdata(L, 2);
  int script = 0, no_env = 0, i;
  luaL_checkversion(L);
  for (i = 1; i < argc; i++) { /* find the script, check the options */
    const char *a = argv[i];
    if (a[0] != '-' || strcmp(a, "-") == 0) {
      script = i;
      break;
    }
    if (strcmp(a, "--") == 0) {
      script = i + 1 < argc ? i + 1 : 0;
      break;
    }
    if (strcmp(a, "-E") == 0) no_env = 1;
    else if (strcmp(a, "-e") == 0 || strcmp(a, "-l") == 0) {
      if (a[2] == '\0' && ++i >= argc) return luaL_error(L, "'%s' needs an argument", a);
    } else if ((a[1] == 'e' || a[1] == 'l') && a[2] != '\0') {
      /* -estat, -lmod */
    } else if (strcmp(a, "-W") != 0 && strcmp(a, "-v") != 0) {
      return luaL_error(L, "unrecognized option '%s' (this host takes -e -l -E -W -v)", a);
    }
  }
  if (no_env) {
    lua_pushboolean(L, 1);
    lua_setfield(L, LUA_REGISTRYINDEX, "LUA_NOENV");
  }
  luaL_openlibs(L);
  /* arg: the script at 0, its arguments from 1, the interpreter and options below 0 */
  int at = script ? script : 0;
  lua_createtable(L, argc - at - 1, at + 1);
  for (i = 0; i < argc; i++) {
    lua_pushstring(L, argv[i]);
    lua_rawseti(L, -2, i - at);
  }
  lua_setglobal(L, "arg");
  /* as lua.c 5.4.4 (Debian 12's lua5.4) does, so that the collector runs
   * at the same moments as under lua5.4: specs about finalizers rely on it */
  lua_gc(L, LUA_GCGEN, 0, 0);
  if (!no_env && handle_luainit(L) != LUA_OK) return 0;
  int last = script ? script : argc;
  for (i = 1; i < last; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) break;
    if (a[1] == 'W') lua_warning(L, "@on", 0);
    if (a[1] == 'v') printf("%s (sanitizer host)\n", LUA_RELEASE);
    if (a[1] == 'e' || a[1] == 'l') {
      const char *v = a[2] ? a + 2 : argv[++i];
      int status = a[1] == 'e' ? dostring(L, v, "=(command line)") : dolibrary(L, v);
      if (status != LUA_OK) return 0;
    }
  }
  if (script) {
    const char *fname = argv[script];
    if (strcmp(fname, "-") == 0 && strcmp(argv[script - 1], "--") != 0) fname = NULL;
    int status = luaL_loadfile(L, fname);
    if (status == LUA_OK) {
      int n = argc - script - 1;
      luaL_checkstack(L, n + 3, "too many arguments to script");
      for (i = 1; i <= n; i++) lua_pushstring(L, argv[script + i]);
      status = docall(L, n, LUA_MULTRET);
    }
    if (report(L, status) != LUA_OK) return 0;
  }
  lua_pushboolean(L, 1);
  return 1;
}

int main(int argc, char **argv) {
  if (argv[0] && argv[0][0]) progname = argv[0];
  lua_State *L = host_state = luaL_newstate();
  if (L == NULL) {
    fprintf(stderr, "%s: cannot create state: not enough memory\n", progname);
    return EXIT_FAILURE;
  }
  lua_pushcfunction(L, pmain);
  lua_pushinteger(L, argc);
  lua_pushlightuserdata(L, argv);
  int status = lua_pcall(L, 2, 1, 0);
  int ok = lua_toboolean(L, -1);
  report(L, status);
  lua_close(L);
  host_state = NULL;
  return (ok && status == LUA_OK) ? EXIT_SUCCESS : EXIT_FAILURE;
}
