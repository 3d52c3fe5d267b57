-- The LuaRocks route: the rockspec builds and installs a module that the Lua under test
-- loads (luarocks --lua-version 5.x; for LuaJIT, 5.1 with LuaJIT's headers), plus the
-- lua-language-server stubs, and leaves nothing in the clone outside build/ (issue 16).
-- `luarocks lint` passes on the scm rockspec and on the release one `make rockspec` writes.

-- Runs a shell command; returns its output (stdout and stderr) and its exit status.
local sh = require("spec.support.servers").run

local function read(path) return assert(require("spec.support.servers").readfile(path)) end

describe("rockspec", function()
  local S = require "spec.support.servers"
  local q = S.quote
  local V = _VERSION:match("%d+%.%d+")

  it("installs through luarocks --lua-version " .. V .. " into a tree from which require works, leaving no object in the clone", function()
    local tree = S.tmpdir()
    -- From a copy of the clone: the files it holds before and after are compared.
    local copy = S.tmpdir()
    assert(S.bash(("cp -r src lua rockspec Makefile %s"):format(q(copy))))
    local list = ("cd %s && find . -path ./build -prune -o \\( -type f -o -type l \\) -print | sort"):format(q(copy))
    local before = sh(list)
    local vars = jit and " LUA_INCDIR=/usr/include/luajit-2.1" or ""
    local out, rc = sh(("cd %s && luarocks --lua-version %s --tree %s make rockspec/downloadtask-scm-1.rockspec%s")
      :format(q(copy), V, q(tree), vars))
    assert.equals(0, rc, out)
    assert.equals(before, (sh(list)))
    -- package.searchpath is 5.2+: the same search, by hand
    local p = io.popen(([[LUA_CPATH=%q %s -e 'local dt = require "downloadtask"; for t in package.cpath:gmatch("[^;]+") do local f = io.open((t:gsub("%%?", "downloadtask"))) if f then f:close() print(dt.version, (t:gsub("%%?", "downloadtask"))) break end end' 2>&1]])
      :format(tree .. "/lib/lua/" .. V .. "/?.so", S.LUA))
    local loaded = p:read("*a")
    p:close()
    local version = (require "downloadtask").version
    assert.matches(version, loaded, 1, true)
    assert.matches(tree, loaded, 1, true)
    -- the stubs, where an editor pointed at the tree's share/lua/<v> finds them
    assert.equals(read("lua/downloadtask/types.lua"), read(tree .. "/share/lua/" .. V .. "/downloadtask/types.lua"))
  end)

  it("passes luarocks lint, and make rockspec writes a release rockspec of DT_VERSION that does too", function()
    local out, rc = sh("luarocks lint rockspec/downloadtask-scm-1.rockspec")
    assert.equals(0, rc, out)
    local version = assert(read("src/dt.h"):match('#define DT_VERSION "([^"]+)"'))
    local dir = S.tmpdir()
    -- in a copy, so the clone's build/rockspec is not touched by a test run
    assert(S.bash(("cp -r src rockspec Makefile %s"):format(q(dir))))
    out, rc = sh(("make -s -C %s rockspec"):format(q(dir)))
    assert.not_equals(0, rc)
    assert.matches("set ROCK_URL", out, 1, true)
    out, rc = sh(("make -s -C %s rockspec ROCK_URL=git+https://example.org/downloadtask.git"):format(q(dir)))
    assert.equals(0, rc, out)
    local path = ("%s/build/rockspec/downloadtask-%s-1.rockspec"):format(dir, version)
    assert.matches("make rockspec: build/rockspec/downloadtask-" .. version .. "-1.rockspec", out, 1, true)
    local text = read(path)
    assert.matches('\nversion = "' .. version .. '-1"\n', text, 1, true)
    assert.matches('\n  url = "git+https://example.org/downloadtask.git",\n  tag = "v' .. version .. '",\n', text, 1, true)
    out, rc = sh("luarocks lint " .. q(path))
    assert.equals(0, rc, out)
    -- everything but the version and the source is the scm rockspec's
    local scm = read("rockspec/downloadtask-scm-1.rockspec")
    assert.equals(scm:match("\ndescription = .*$"), text:match("\ndescription = .*$"))
  end)
end)
