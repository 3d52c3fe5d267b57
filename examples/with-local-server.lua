-- Runs an example against a local nginx on a free loopback port, then stops nginx.
--   lua5.4 examples/with-local-server.lua examples/progress.lua
-- The example gets the URL of a 100 MiB file served at about 25 MiB/s (so a progress bar
-- has time to move) and a destination in a temporary directory.
-- It loads the module built for the Lua that runs it: build/5.4/ under lua5.4,
-- build/luajit/ under LuaJIT (`make`, `make build/<v>/downloadtask.so`), or the cpath
-- template DT_CPATH when it is set. nginx and its files live in a directory under $TMPDIR
-- that is removed at the end.
package.path = "./?.lua;./spec/?.lua;" .. package.path
package.cpath = (os.getenv("DT_CPATH") or ("build/%s/?.so"):format(jit and "luajit" or _VERSION:match("%d+%.%d+")))
  .. ";" .. package.cpath
local S = require "spec.support.servers"

local script = assert(arg[1], "usage: lua5.4 examples/with-local-server.lua EXAMPLE.lua")
local real_exit, code = os.exit, 0
os.exit = function(c) -- the example's own exit must not skip stopping nginx
  error({ exit = c == true and 0 or (c == false and 1 or c or 0) }, 0)
end
local ok, err = pcall(function()
  local ngx = S.nginx()
  local dir = S.tmpdir()
  arg = { [0] = script, ngx.url("slow/100m.bin"), dir .. "/100m.bin" }
  print(("nginx on 127.0.0.1:%d; downloading %s"):format(ngx.port, arg[1]))
  dofile(script)
end)
S.stop_all()
if not ok then
  if type(err) == "table" and err.exit then
    code = err.exit
  else
    io.stderr:write(tostring(err), "\n")
    code = 1
  end
end
real_exit(code)
