-- lua/downloadtask/ngx.lua (await and OpenResty's poller, compiled into the module): it
-- passes luacheck (Debian's lua-check), and the module carries the file's current text.
local S = require "spec.support.servers"

describe("lua/downloadtask/ngx.lua", function()
  it("passes luacheck", function()
    if not S.have("luacheck") then
      pending("luacheck is not installed (Debian: lua-check; ./dev deps installs it)")
      return
    end
    local p = io.popen("luacheck --no-color --std luajit --read-globals ngx --max-line-length 100"
      .. " -- lua/downloadtask/ngx.lua 2>&1; echo rc=$?")
    local out = p:read("*a")
    p:close()
    assert.matches("rc=0%s*$", out, nil, false)
  end)

  it("is what build/gen/ngx_lua.h holds (the Makefile remakes it when the file changes)", function()
    local src = assert(io.open("lua/downloadtask/ngx.lua", "rb")):read("*a")
    local gen = assert(io.open("build/gen/ngx_lua.h", "rb")):read("*a")
    local bytes = {}
    for h in gen:match("{(.*)}"):gmatch("0x(%x%x)") do bytes[#bytes + 1] = string.char(tonumber(h, 16)) end
    assert.are.equal(src, table.concat(bytes))
  end)
end)
