-- One download to a file with lua-http (cqueues), the Lua peer (child process of run.lua).
--   lua5.4 bench/http_file.lua URL DEST SIZE
-- Debian's lua-http installs for Lua 5.1-5.3 only; run.lua sets LUA_PATH so that 5.4
-- finds its Lua files (its C dependencies exist for 5.4).
local request = require "http.request"
local url, dest, size = arg[1], arg[2], math.tointeger(tonumber(arg[3]))

local req = request.new_from_uri(url)
local headers, stream = assert(req:go(60))
if headers:get(":status") ~= "200" then
  io.stderr:write("http_file: status ", headers:get(":status"), "\n")
  os.exit(1)
end
local f = assert(io.open(dest, "wb"))
assert(stream:save_body_to_file(f, 60))
assert(f:close())
stream:shutdown()
local f2 = assert(io.open(dest, "rb"))
local n = f2:seek("end")
f2:close()
if n ~= size then
  io.stderr:write(("http_file: %d bytes, expected %d\n"):format(n, size))
  os.exit(1)
end
