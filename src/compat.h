/*
 * compat.h: every difference between the Lua versions the binding builds
 * against lives here, and nowhere else.
 */
#ifndef DT_COMPAT_H
#define DT_COMPAT_H

#include <lauxlib.h>
#include <lua.h>

#if LUA_VERSION_NUM >= 504
#define compat_newuserdata(L, sz) lua_newuserdatauv((L), (sz), 1)
#define compat_getuservalue(L, i) ((void)lua_getiuservalue((L), (i), 1))
#define compat_setuservalue(L, i) ((void)lua_setiuservalue((L), (i), 1))
static inline int compat_resume(lua_State *co, lua_State *from, int nargs, int *nres) {
  return lua_resume(co, from, nargs, nres);
}
#else
#error "downloadtask: this Lua version is not supported yet (Lua 5.4 is)"
#endif

#endif
