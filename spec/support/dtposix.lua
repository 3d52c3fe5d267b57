-- Builds and loads tools/dtposix.c (fork, _exit, waitpid, sleep and a signal
-- sender: see the file) for the Lua running this, into a scratch directory.
--
--   local P, why = require("spec.support.dtposix").load()
--   if not P then pending(why) return end
--   P.path     the built .so, for a child Lua to package.loadlib
--
-- Lua 5.1-5.4 and LuaJIT: no 5.3+ operators here.
local S = require "spec.support.servers"
local lfs = require "lfs"

local M = {}
local cached

function M.load()
  if cached then return cached end
  local dir = S.tmpdir()
  local so = dir .. "/dtposix.so"
  local src = lfs.currentdir() .. "/tools/dtposix.c"
  local cc = os.getenv("CC") or "cc"
  local cmd = ("%s -std=c11 -Wall -shared -fPIC -O1 -pthread $(pkg-config --cflags %s) -o %s %s >%s 2>&1"):format(
    cc, S.LUA_PC, S.quote(so), S.quote(src), S.quote(dir .. "/cc.log"))
  local ok = os.execute(cmd)
  if not (ok == true or ok == 0) then
    return nil, "cannot build tools/dtposix.c: " .. (S.readfile(dir .. "/cc.log") or "")
  end
  local open, err = package.loadlib(so, "luaopen_dtposix")
  if not open then return nil, "cannot load dtposix.so: " .. tostring(err) end
  cached = open()
  cached.path = so
  return cached
end

return M
