-- The LuaRocks route: the rockspec builds and installs a module that Lua 5.4 loads.
describe("rockspec", function()
  it("installs through luarocks --lua-version 5.4 into a tree from which require works", function()
    local S = require "spec.support.servers"
    local tree = S.tmpdir()
    local build = io.popen(("luarocks --lua-version 5.4 --tree %q make rockspec/downloadtask-scm-1.rockspec 2>&1; echo rc=$?")
      :format(tree))
    local out = build:read("a")
    build:close()
    assert.matches("rc=0", out, 1, true)
    local p = io.popen(([[LUA_CPATH=%q lua5.4 -e 'local dt = require "downloadtask"; print(dt.version, package.searchpath("downloadtask", package.cpath))' 2>&1]])
      :format(tree .. "/lib/lua/5.4/?.so"))
    local loaded = p:read("a")
    p:close()
    local version = (require "downloadtask").version
    assert.matches(version, loaded, 1, true)
    assert.matches(tree, loaded, 1, true)
  end)
end)
