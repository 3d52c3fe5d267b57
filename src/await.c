/*
 * await.c: DownloadTask:await, dt.awaitAll and dt.awaitAny, and the OpenResty glue they share
 * (the poller, lua/downloadtask/ngx.lua compiled in). Their reference is in task.c, beside the
 * other methods. A waiting coroutine is kept in its task's user value table (UV_WAITERS); the
 * dispatcher resumes it after `complete`.
 */
#include "binding.h"

#include <string.h>

/* 1, res or 2, nil, err: the outcome of the ended task at stack index 1,
 * counted for await's Lua half */
static int push_outcome(lua_State *L, dt_task *t) {
  int done = t->state == TS_DONE;
  compat_getuservalue(L, 1); /* t */
  int uv = lua_gettop(L);
  lua_pushinteger(L, done ? 1 : 2);
  if (!done) lua_pushnil(L);
  lua_rawgeti(L, uv, UV_RESULT);
  return done ? 2 : 3;
}

/* Makes this coroutine a waiter of the task at stack index ti. */
static void add_waiter(lua_State *L, int ti) {
  compat_getuservalue(L, ti);
  if (compat_rawgeti(L, -1, UV_WAITERS) != LUA_TTABLE) {
    lua_pop(L, 1);
    lua_newtable(L);
    lua_pushvalue(L, -1);
    lua_rawseti(L, -3, UV_WAITERS);
  }
  lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
  lua_pushthread(L);
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, -2, i);
    int same = lua_rawequal(L, -1, -2);
    lua_pop(L, 1);
    if (same) {
      lua_pop(L, 3);
      return;
    }
  }
  lua_rawseti(L, -2, n + 1);
  lua_pop(L, 2);
}

/* This coroutine's await() returns: the dispatcher must not resume it for
 * this task any more, whatever it yields to next. In the array being woken,
 * the entry becomes false so the dispatcher's index stays valid. */
static void remove_waiter(lua_State *L, int ti, dt_task *t) {
  int base = lua_gettop(L);
  compat_getuservalue(L, ti);
  int uv = lua_gettop(L);
  lua_pushthread(L);
  int me = lua_gettop(L);
  if (compat_rawgeti(L, uv, UV_WAITERS) == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1), k = 0;
    lua_createtable(L, (int)n, 0);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -2, i);
      if (lua_rawequal(L, -1, me)) lua_pop(L, 1);
      else lua_rawseti(L, -2, ++k);
    }
    lua_rawseti(L, uv, UV_WAITERS);
  }
  lua_settop(L, me);
  if (t->stage == SG_WAKE && compat_rawgeti(L, uv, UV_SNAP) == LUA_TTABLE) {
    lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
    for (lua_Integer i = 1; i <= n; i++) {
      lua_rawgeti(L, -1, i);
      int same = lua_rawequal(L, -1, me);
      lua_pop(L, 1);
      if (same) {
        lua_pushboolean(L, 0);
        lua_rawseti(L, -2, i);
      }
    }
  }
  lua_settop(L, base);
}

/* An error at the position of await's caller: level 1 is await's Lua half. */
static int await_error_at(lua_State *L, int level, const char *msg) {
  luaL_where(L, level);
  lua_pushstring(L, msg);
  lua_concat(L, 2);
  return lua_error(L);
}

static int await_error(lua_State *L, const char *msg) { return await_error_at(L, 2, msg); }

/* Blocking outside a coroutine would wait forever: every task not ended is
 * paused or waits for a paused one's destination, and no news is waiting to
 * be delivered (only a listener or a callback could resume one, and none can
 * run). */
static int stuck_paused(dt_state *st) { return st->live > 0 && dispatch_stuck(st); }

/* await's C half: returns 1, res or 2, nil, err once the task
 * has ended (and stops waiting for it). Otherwise, with a second argument
 * (OpenResty's wait below), returns 0; in a coroutine, registers the
 * coroutine as a waiter and returns 0 for the Lua half to yield; outside
 * one, drives the loop until the task ends. Its errors name `who` (third
 * argument, default "DownloadTask:await") at the caller `level` frames up
 * (fourth, default 2): awaitAll awaits its tasks through it. */
static int l_await_step(lua_State *L) {
  dt_task *t = luaL_testudata(L, 1, DT_TASK_MT);
  if (!t)
    return await_error(L, lua_pushfstring(L, "bad argument #1 to 'await' (%s expected, got %s)",
                                          DT_TASK_MT, luaL_typename(L, 1)));
  int check_only = lua_toboolean(L, 2);
  int level = lua_type(L, 4) == LUA_TNUMBER ? (int)lua_tointeger(L, 4) : 2;
  lua_settop(L, 3); /* `who` stays on the stack while it is used */
  const char *who = lua_type(L, 3) == LUA_TSTRING ? lua_tostring(L, 3) : "DownloadTask:await";
  /* from a finalizer run by lua_close after the module's own: nothing would ever end */
  if (t->st->closed) return await_error_at(L, level, "downloadtask: the module is closed");
  state_check_fork(L, t->st);
  if (t->orphan)
    return await_error_at(L, level, lua_pushfstring(L, "%s: the download belongs to the parent "
                                                       "process (this one was fork()ed from it) and ends there", who));
  if (t->ended) {
    if (!check_only) remove_waiter(L, 1, t);
    return push_outcome(L, t);
  }
  if (check_only || compat_isyieldable(L)) {
    if (!check_only) add_waiter(L, 1);
    lua_pushinteger(L, 0);
    return 1;
  }
  dt_state *st = t->st;
  if (st->depth > 0 || st->in_run)
    return await_error_at(L, level, lua_pushfstring(L, "%s: cannot block while the loop is being "
                                                       "driven; call it from a coroutine, or use poll()", who));
  while (!t->ended) {
    if (stuck_paused(st))
      return await_error_at(L, level, lua_pushfstring(L, "%s: the task cannot end: every download left "
                                                         "is paused or waits for a paused one's destination, and nothing "
                                                         "could resume one while it blocks; resume() first", who));
    if (dispatch_poll(L, st, -1) != LUA_OK) return lua_error(L);
  }
  return push_outcome(L, t);
}

static int l_await_yield(lua_State *L) { return lua_yield(L, 0); }

/* OpenResty's poller: poll(0) unless the loop is already being driven;
 * returns the number of tasks not yet ended. */
static int l_await_tick(lua_State *L) {
  dt_state *st = state_get(L);
  if (st->depth == 0 && !st->in_run && dispatch_poll(L, st, 0) != LUA_OK) return lua_error(L);
  lua_pushinteger(L, st->live);
  return 1;
}

/* ---- awaitAll, awaitAny ------------------------------------------------ */

/* Checks that the argument of dt.<name> (stack index 1) is an array of
 * tasks, with the errors placed at the caller of the Lua half, as await's;
 * returns its length and the number of its tasks not yet ended, and leaves a
 * copy of the array at stack index 2. Only the copy is read afterwards: a
 * listener, or a finalizer (any allocation may run one), may change the
 * caller's array, and the tasks awaited are the ones it held at the call. */
static lua_Integer check_tasks(lua_State *L, const char *name, lua_Integer *left) {
  if (!lua_istable(L, 1))
    await_error(L, lua_pushfstring(L, "bad argument #1 to '%s' (table expected, got %s)", name,
                                   luaL_typename(L, 1)));
  lua_settop(L, 1);
  lua_Integer n = (lua_Integer)lua_rawlen(L, 1);
  lua_createtable(L, n > 64 ? 64 : (int)n, 0);
  *left = 0;
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 1, i);
    dt_task *t = luaL_testudata(L, -1, DT_TASK_MT);
    if (!t)
      await_error(L, lua_pushfstring(L, "bad argument #1 to '%s' (item %d: %s expected, got %s)",
                                     name, (int)i, DT_TASK_MT, luaL_typename(L, -1)));
    if (t->st->closed) await_error(L, "downloadtask: the module is closed");
    state_check_fork(L, t->st);
    if (t->orphan)
      await_error(L, lua_pushfstring(L, "downloadtask.%s: item %d belongs to the parent process "
                                        "(this one was fork()ed from it) and ends there",
                                     name, (int)i));
    if (!t->ended) (*left)++;
    lua_rawseti(L, 2, i);
  }
  return n;
}

static void refuse_blocking(lua_State *L, const char *name) {
  dt_state *st = state_get(L);
  if (st->depth > 0 || st->in_run)
    await_error(L, lua_pushfstring(L, "downloadtask.%s: cannot block while the loop is being "
                                      "driven; call it from a coroutine, or use poll()", name));
}

/* awaitAll's C half: checks the array and returns its length, how many of
 * its tasks have not ended, and a copy of it (check_tasks). Outside a
 * coroutine (and outside OpenResty: no second argument) refuses to block
 * while the loop is being driven, before anything is awaited; the Lua half
 * then awaits each task in turn. */
static int l_all_check(lua_State *L) {
  int check_only = lua_toboolean(L, 2);
  lua_settop(L, 1);
  lua_Integer left;
  lua_Integer n = check_tasks(L, "awaitAll", &left);
  if (left > 0 && !check_only && !compat_isyieldable(L)) refuse_blocking(L, "awaitAll");
  lua_pushinteger(L, n);
  lua_pushinteger(L, left);
  lua_pushvalue(L, 2); /* the tasks as they were at the call */
  return 3;
}

/* The first ended task of the array, if any: pushes it and its outcome
 * (res, nil or nil, err) and returns 3; else returns 0. With `unwait`, this
 * coroutine stops waiting for every task of the array. Reads check_tasks'
 * copy (stack index 2), which holds tasks only. */
static int any_ended(lua_State *L, lua_Integer n, int unwait) {
  for (lua_Integer i = 1; i <= n; i++) {
    lua_rawgeti(L, 2, i);
    dt_task *t = lua_touserdata(L, -1);
    lua_pop(L, 1);
    if (!t->ended) continue;
    if (unwait)
      for (lua_Integer j = 1; j <= n; j++) {
        lua_rawgeti(L, 2, j);
        remove_waiter(L, lua_gettop(L), lua_touserdata(L, -1));
        lua_pop(L, 1);
      }
    lua_rawgeti(L, 2, i);
    compat_getuservalue(L, -1);
    int done = t->state == TS_DONE;
    lua_rawgeti(L, -1, UV_RESULT);
    lua_remove(L, -2);
    if (!done) {
      lua_pushnil(L);
      lua_insert(L, -2);
    } else {
      lua_pushnil(L);
    }
    return 3;
  }
  return 0;
}

/* awaitAny's C half: returns the first ended task of the array and its
 * outcome (task, res, nil or task, nil, err), and stops waiting for the
 * others. Otherwise, with a second argument (OpenResty's wait), returns 0;
 * in a coroutine, makes the coroutine a waiter of every task (the dispatcher
 * resumes it when the first ends) and returns 0 for the Lua half to yield;
 * outside one, drives the loop until one has ended. */
static int l_any_step(lua_State *L) {
  int check_only = lua_toboolean(L, 2);
  lua_settop(L, 1);
  lua_Integer left;
  lua_Integer n = check_tasks(L, "awaitAny", &left);
  if (n == 0) await_error(L, "bad argument #1 to 'awaitAny' (empty array: nothing could end)");
  int found = any_ended(L, n, !check_only);
  if (found) return found;
  if (check_only || compat_isyieldable(L)) {
    if (!check_only)
      for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, 2, i);
        add_waiter(L, lua_gettop(L));
        lua_pop(L, 1);
      }
    lua_pushinteger(L, 0);
    return 1;
  }
  refuse_blocking(L, "awaitAny");
  dt_state *st = state_get(L);
  while (!(found = any_ended(L, n, 0))) {
    if (stuck_paused(st))
      return await_error(L, "downloadtask.awaitAny: no task can end: every download left is paused "
                            "or waits for a paused one's destination, and nothing could resume "
                            "one while it blocks; resume() first");
    if (dispatch_poll(L, st, -1) != LUA_OK) return lua_error(L);
  }
  return found;
}

/* OpenResty's poller: the path of the engine's notifier socket (made now if
 * need be), or nil and why it cannot be made. */
static int l_await_notifier(lua_State *L) {
  dt_state *st = state_get(L);
  const char *why = "unknown error";
  const char *path = engine_notify_path(state_engine(L, st), &why);
  if (!path) {
    lua_pushnil(L);
    lua_pushstring(L, why);
    return 2;
  }
  lua_pushstring(L, path);
  return 1;
}

/* await's Lua half, and OpenResty's poller: lua/downloadtask/ngx.lua, made a
 * byte array NGX_LUA by the Makefile. Only 5.2+ can continue a C function
 * after a yield, and each version its own way; a Lua loop is the same
 * everywhere. */
#include "ngx_lua.h"

static const char KICK_KEY = 'k', ALL_KEY = 'a', ANY_KEY = 'y';

/* Whether global `name` is a table, looked up without calling anything: raw,
 * then through __index tables (nginx's Lua module may give a coroutine
 * globals of its own that inherit the real ones that way). */
static int global_is_table(lua_State *L, const char *name) {
  int top = lua_gettop(L), found = 0;
  lua_pushglobaltable(L);
  for (int depth = 0; depth < 4 && lua_istable(L, -1); depth++) {
    lua_pushstring(L, name);
    lua_rawget(L, -2);
    if (!lua_isnil(L, -1)) {
      found = lua_istable(L, -1);
      break;
    }
    lua_pop(L, 1);
    if (!lua_getmetatable(L, -1)) break;
    lua_pushliteral(L, "__index");
    lua_rawget(L, -2);
  }
  lua_settop(L, top);
  return found;
}

/* pushes the await method and OpenResty's poller kick */
void push_await(lua_State *L) {
  if (luaL_loadbuffer(L, (const char *)NGX_LUA, sizeof NGX_LUA, "@downloadtask/ngx.lua") != LUA_OK)
    lua_error(L);
  lua_pushcfunction(L, l_await_step);
  lua_pushcfunction(L, l_await_yield);
  lua_pushcfunction(L, l_await_tick);
  lua_pushcfunction(L, l_await_notifier);
  lua_pushcfunction(L, l_any_step);
  lua_pushcfunction(L, l_all_check);
  lua_call(L, 6, 4);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ANY_KEY);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &ALL_KEY);
  lua_rawsetp(L, LUA_REGISTRYINDEX, &KICK_KEY);
  state_get(L)->ngx = global_is_table(L, "ngx"); /* under nginx: downloadFile starts the poller */
}

/* pushes awaitAll and awaitAny, for the module table */
void task_push_many(lua_State *L) {
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ALL_KEY);
  lua_rawgetp(L, LUA_REGISTRYINDEX, &ANY_KEY);
}

/* Under nginx's Lua module (a global ngx table when the module is loaded),
 * downloadFile starts the worker's poller, so that a download nobody awaits
 * is driven too. Elsewhere this costs a flag test per download. */
void ngx_kick(lua_State *L, dt_state *st) {
  if (!st->ngx) return;
  lua_rawgetp(L, LUA_REGISTRYINDEX, &KICK_KEY);
  /* the task exists and runs: nothing here may raise */
  if (lua_pcall(L, 0, 0, 0) != LUA_OK) lua_pop(L, 1);
}

