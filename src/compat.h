/*
 * compat.h: every difference between the Lua versions the binding builds
 * against (5.4, 5.3, 5.2, 5.1 and LuaJIT 2.1) lives here, and nowhere else.
 *
 * The binding is written against the Lua 5.4 API. For older versions this
 * header provides what they lack under the 5.4 name (luaL_setfuncs,
 * luaL_testudata, lua_rawlen, lua_rawgetp, ...), and a compat_ function
 * wherever the same name means something else from one version to another:
 *
 *   compat_newuserdata(L, sz)     a full userdata with room for one user value
 *   compat_getuservalue(L, i)     pushes it (5.1/LuaJIT: the environment table)
 *   compat_setuservalue(L, i)     pops a table into it
 *   compat_getfield/compat_rawgeti  push, and return the type pushed (5.1/5.2
 *                                 return nothing)
 *   compat_tointegerx(L, i, &ok)  ok only for a number with an integral value,
 *                                 as in 5.3+ (5.1/5.2/LuaJIT truncate 1.5 to 1)
 *   compat_isyieldable(L)         5.1/5.2 cannot tell: "not the main thread"
 *   compat_resume(co, from, n, &nres)  lua_resume with 5.4's signature
 *   compat_rawget(L, i)           lua_rawget, returning the type pushed
 *   compat_closethread(co, from)  closes a dead coroutine's to-be-closed
 *                                 variables: lua_closethread from 5.4.6,
 *                                 lua_resetthread before; 5.1-5.3 and LuaJIT
 *                                 have none (LUA_OK, nothing done)
 */
#ifndef DT_COMPAT_H
#define DT_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

/* LuaJIT 2.1 speaks the 5.1 API plus a few 5.2/5.3 functions (luaL_setfuncs,
 * luaL_testudata, luaL_setmetatable, luaL_traceback, luaL_newlib, LUA_OK,
 * lua_isyieldable). Its luaconf.h defines LUA_LJDIR; PUC Lua's does not. */
#if LUA_VERSION_NUM == 501 && defined(LUA_LJDIR) && defined(LUA_OK)
#define COMPAT_LUAJIT 1
#else
#define COMPAT_LUAJIT 0
#endif

#if LUA_VERSION_NUM < 501 || LUA_VERSION_NUM > 504
#error "downloadtask: Lua 5.1 to 5.4 or LuaJIT 2.1 expected"
#endif

/* ---- user values, getfield/rawgeti, resume ----------------------------- */

#if LUA_VERSION_NUM >= 504
#define compat_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 1)
#define compat_getuservalue(L, i) ((void)lua_getiuservalue((L), (i), 1))
#define compat_setuservalue(L, i) ((void)lua_setiuservalue((L), (i), 1))
#elif LUA_VERSION_NUM >= 502
#define compat_newuserdata(L, sz) lua_newuserdata((L), (sz))
#define compat_getuservalue(L, i) ((void)lua_getuservalue((L), (i)))
#define compat_setuservalue(L, i) ((void)lua_setuservalue((L), (i)))
#else
#define compat_newuserdata(L, sz) lua_newuserdata((L), (sz))
#define compat_getuservalue(L, i) lua_getfenv((L), (i))
#define compat_setuservalue(L, i) ((void)lua_setfenv((L), (i)))
#endif

#if LUA_VERSION_NUM >= 503
#define compat_getfield(L, i, k) lua_getfield((L), (i), (k))
#define compat_rawgeti(L, i, n) lua_rawgeti((L), (i), (n))
#define compat_rawget(L, i) lua_rawget((L), (i))
#else
static inline int compat_rawget(lua_State *L, int idx) {
  lua_rawget(L, idx);
  return lua_type(L, -1);
}
static inline int compat_getfield(lua_State *L, int idx, const char *k) {
  lua_getfield(L, idx, k);
  return lua_type(L, -1);
}
static inline int compat_rawgeti(lua_State *L, int idx, lua_Integer n) {
  lua_rawgeti(L, idx, (int)n);
  return lua_type(L, -1);
}
#endif

#if LUA_VERSION_NUM >= 504
static inline int compat_resume(lua_State *co, lua_State *from, int nargs, int *nres) {
  return lua_resume(co, from, nargs, nres);
}
#elif LUA_VERSION_NUM >= 502
static inline int compat_resume(lua_State *co, lua_State *from, int nargs, int *nres) {
  int rc = lua_resume(co, from, nargs);
  *nres = lua_gettop(co);
  return rc;
}
#else
static inline int compat_resume(lua_State *co, lua_State *from, int nargs, int *nres) {
  (void)from;
  int rc = lua_resume(co, nargs);
  *nres = lua_gettop(co);
  return rc;
}
#endif

/* LUA_VERSION_RELEASE_NUM appeared with 5.4.0; lua_closethread with 5.4.6,
 * when lua_resetthread (5.4.0-5.4.5) became its deprecated alias. */
#if LUA_VERSION_NUM >= 504 && defined(LUA_VERSION_RELEASE_NUM) && LUA_VERSION_RELEASE_NUM >= 50406
#define compat_closethread(co, from) lua_closethread((co), (from))
#elif LUA_VERSION_NUM >= 504
#define compat_closethread(co, from) ((void)(from), lua_resetthread(co))
#else
#define compat_closethread(co, from) ((void)(co), (void)(from), LUA_OK)
#endif

/* ---- integers and yieldability ---------------------------------------- */

#if LUA_VERSION_NUM >= 503
#define compat_tointegerx(L, i, isint) lua_tointegerx((L), (i), (isint))
#define compat_isyieldable(L) lua_isyieldable(L)
#else
/* lua_Integer is ptrdiff_t here: 64 bits on the platforms we build for. */
static inline lua_Integer compat_tointegerx(lua_State *L, int idx, int *isint) {
  *isint = 0;
  if (!lua_isnumber(L, idx)) return 0;
  lua_Number n = lua_tonumber(L, idx);
  if (!(n >= -9223372036854775808.0 && n < 9223372036854775808.0)) return 0;
  lua_Integer i = (lua_Integer)n;
  if ((lua_Number)i != n) return 0;
  *isint = 1;
  return i;
}
#if COMPAT_LUAJIT
#define compat_isyieldable(L) lua_isyieldable(L)
#else
/* No way to ask 5.1/5.2 whether a yield would cross a C call; inside one,
 * coroutine.yield raises "attempt to yield across a C-call boundary". */
static inline int compat_isyieldable(lua_State *L) {
  int ismain = lua_pushthread(L);
  lua_pop(L, 1);
  return !ismain;
}
#endif
#endif

/* ---- 5.2 API missing from 5.1 (and partly from LuaJIT) ----------------- */

#if LUA_VERSION_NUM == 501

#ifndef LUA_OK
#define LUA_OK 0
#endif

#define lua_rawlen(L, i) lua_objlen((L), (i))

static inline int compat_absindex(lua_State *L, int idx) {
  return (idx > 0 || idx <= LUA_REGISTRYINDEX) ? idx : lua_gettop(L) + idx + 1;
}

static inline int compat_rawgetp(lua_State *L, int idx, const void *p) {
  idx = compat_absindex(L, idx);
  lua_pushlightuserdata(L, (void *)p);
  lua_rawget(L, idx);
  return lua_type(L, -1);
}
#define lua_rawgetp compat_rawgetp

static inline void compat_rawsetp(lua_State *L, int idx, const void *p) {
  idx = compat_absindex(L, idx);
  lua_pushlightuserdata(L, (void *)p);
  lua_insert(L, -2);
  lua_rawset(L, idx);
}
#define lua_rawsetp compat_rawsetp

/* the global table of the running thread */
#ifndef lua_pushglobaltable
#define lua_pushglobaltable(L) lua_pushvalue((L), LUA_GLOBALSINDEX)
#endif

/* 5.2's luaL_tolstring, without the __name lookup */
static inline const char *compat_tolstring(lua_State *L, int idx, size_t *len) {
  idx = compat_absindex(L, idx);
  if (luaL_callmeta(L, idx, "__tostring")) {
    if (!lua_isstring(L, -1)) luaL_error(L, "'__tostring' must return a string");
  } else {
    switch (lua_type(L, idx)) {
    case LUA_TNUMBER:
    case LUA_TSTRING:
      lua_pushvalue(L, idx);
      break;
    case LUA_TBOOLEAN:
      lua_pushstring(L, lua_toboolean(L, idx) ? "true" : "false");
      break;
    case LUA_TNIL:
      lua_pushliteral(L, "nil");
      break;
    default:
      lua_pushfstring(L, "%s: %p", luaL_typename(L, idx), lua_topointer(L, idx));
    }
  }
  return lua_tolstring(L, -1, len);
}
#define luaL_tolstring compat_tolstring

#if !COMPAT_LUAJIT
static inline void compat_setfuncs(lua_State *L, const luaL_Reg *l, int nup) {
  luaL_checkstack(L, nup, "too many upvalues");
  for (; l->name; l++) {
    for (int i = 0; i < nup; i++) lua_pushvalue(L, -nup);
    lua_pushcclosure(L, l->func, nup);
    lua_setfield(L, -(nup + 2), l->name);
  }
  lua_pop(L, nup);
}
#define luaL_setfuncs compat_setfuncs

static inline void compat_setmetatable(lua_State *L, const char *tname) {
  luaL_getmetatable(L, tname);
  lua_setmetatable(L, -2);
}
#define luaL_setmetatable compat_setmetatable

static inline void *compat_testudata(lua_State *L, int idx, const char *tname) {
  void *p = lua_touserdata(L, idx);
  if (!p || !lua_getmetatable(L, idx)) return NULL;
  luaL_getmetatable(L, tname);
  int same = lua_rawequal(L, -1, -2);
  lua_pop(L, 2);
  return same ? p : NULL;
}
#define luaL_testudata compat_testudata

/* 5.2's luaL_traceback, without the elision of deep stacks */
static inline void compat_traceback(lua_State *L, lua_State *L1, const char *msg, int level) {
  lua_Debug ar;
  int top = lua_gettop(L);
  if (msg) lua_pushfstring(L, "%s\n", msg);
  lua_pushliteral(L, "stack traceback:");
  while (lua_getstack(L1, level++, &ar)) {
    lua_getinfo(L1, "Sln", &ar);
    lua_pushfstring(L, "\n\t%s:", ar.short_src);
    if (ar.currentline > 0) lua_pushfstring(L, "%d:", ar.currentline);
    if (*ar.namewhat) lua_pushfstring(L, " in function '%s'", ar.name);
    else if (*ar.what == 'm') lua_pushliteral(L, " in main chunk");
    else if (*ar.what == 'C') lua_pushliteral(L, " in ?");
    else lua_pushfstring(L, " in function <%s:%d>", ar.short_src, ar.linedefined);
    lua_concat(L, lua_gettop(L) - top);
  }
  lua_concat(L, lua_gettop(L) - top);
}
#define luaL_traceback compat_traceback
#endif /* !COMPAT_LUAJIT */

#ifndef luaL_newlib
#define luaL_newlib(L, l) (lua_createtable((L), 0, sizeof(l) / sizeof((l)[0]) - 1), luaL_setfuncs((L), (l), 0))
#endif

#endif /* LUA_VERSION_NUM == 501 */

#endif
