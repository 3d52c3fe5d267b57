-- The LuaRocks route: the rockspec builds and installs a module that the Lua under test
-- loads (luarocks --lua-version 5.x; for LuaJIT, 5.1 with LuaJIT's headers).
describe("rockspec", function()
  local V = _VERSION:match("%d+%.%d+")
  it("installs through luarocks --lua-version " .. V .. " into a tree from which require works", function()
    local S = require "spec.support.servers"
    local tree = S.tmpdir()
    -- From a copy of the sources: luarocks make leaves its objects beside them and its
    -- downloadtask.so in the current directory, where they would replace the Makefile's.
    local copy = S.tmpdir()
    assert(os.execute(("cp -r src rockspec %q"):format(copy)))
    local vars = jit and " LUA_INCDIR=/usr/include/luajit-2.1" or ""
    local build = io.popen(("cd %q && rm -f src/*.o && luarocks --lua-version %s --tree %q make rockspec/downloadtask-scm-1.rockspec%s 2>&1; echo rc=$?")
      :format(copy, V, tree, vars))
    local out = build:read("*a")
    build:close()
    assert.matches("rc=0", out, 1, true)
    -- package.searchpath is 5.2+: the same search, by hand
    local p = io.popen(([[LUA_CPATH=%q %s -e 'local dt = require "downloadtask"; for t in package.cpath:gmatch("[^;]+") do local f = io.open((t:gsub("%%?", "downloadtask"))) if f then f:close() print(dt.version, (t:gsub("%%?", "downloadtask"))) break end end' 2>&1]])
      :format(tree .. "/lib/lua/" .. V .. "/?.so", S.LUA))
    local loaded = p:read("*a")
    p:close()
    local version = (require "downloadtask").version
    assert.matches(version, loaded, 1, true)
    assert.matches(tree, loaded, 1, true)
  end)
end)
