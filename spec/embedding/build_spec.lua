-- Out-of-tree builds (issue 16): each Lua version builds into build/<v>/ whatever the entry
-- point, so builds for two versions never share an object, and the top-level
-- downloadtask.so is only ever a symlink to the Lua 5.4 build. The builds run in a copy of
-- the sources (the tree's own build/ is in use by the suite), one version after the other
-- without `make clean`, and each module is loaded by its own interpreter.
--
-- It never loads the module into this process and its children run plain make, lua5.4 and
-- luajit/lua5.1, so it is the same under every Lua and under the sanitizers and valgrind.

local S = require "spec.support.servers"

-- Runs a shell command; returns its output (stdout and stderr) and its exit status.
local sh = require("spec.support.servers").run

local q = S.quote

-- The second Lua: LuaJIT when its headers are there, else 5.1 (both are in ./dev deps).
local OTHER = select(2, sh("pkg-config --exists luajit")) == 0 and "luajit" or "5.1"
local OTHER_LUA = OTHER == "luajit" and "luajit" or "lua5.1"

-- Loads dir/?.so with the interpreter lua; returns the output ("ok <version> <_VERSION>").
local function load_with(lua, dir)
  return sh(("%s -e 'package.cpath = %q; local dt = require \"downloadtask\"; print(\"ok \" .. dt.version .. \" \" .. (jit and jit.version or _VERSION))'")
    :format(lua, dir .. "/?.so"))
end

-- Files under dir, relative, sorted, except what build/ holds.
local function files(dir)
  local out = sh(("cd %s && find . -path ./build -prune -o \\( -type f -o -type l \\) -print | sort"):format(q(dir)))
  return out
end

describe("out-of-tree builds", function()
  local copy

  before_each(function()
    copy = S.tmpdir()
    local out, rc = sh(("cp -r src lua rockspec Makefile %s"):format(q(copy)))
    assert.equals(0, rc, out)
  end)

  it("builds Lua 5.4 and " .. OTHER .. " in turn, without make clean, each loaded by its own Lua", function()
    local before = files(copy)
    -- `make` (Lua 5.4 and the top-level symlink), then the other Lua through its build path
    local out, rc = sh(("make -s -C %s"):format(q(copy)))
    assert.equals(0, rc, out)
    out, rc = sh(("make -s -C %s build/%s/downloadtask.so"):format(q(copy), OTHER))
    assert.equals(0, rc, out)
    -- and `make` again: nothing to do, and 5.4's module is still 5.4's
    out, rc = sh(("make -q -C %s build/5.4/downloadtask.so build/%s/downloadtask.so"):format(q(copy), OTHER))
    assert.equals(0, rc, "make -q: a build is out of date after building the other version\n" .. out)
    out, rc = sh(("make -s -C %s"):format(q(copy)))
    assert.equals(0, rc, out)

    out, rc = load_with("lua5.4", copy .. "/build/5.4")
    assert.equals(0, rc, out)
    assert.matches("ok %S+ Lua 5.4", out)
    out, rc = load_with(OTHER_LUA, copy .. "/build/" .. OTHER)
    assert.equals(0, rc, out)
    assert.matches(OTHER == "luajit" and "ok %S+ LuaJIT 2" or "ok %S+ Lua 5.1", out)
    -- the top-level module is the 5.4 build, through a symlink, and loads in lua5.4
    out = sh(("readlink %s"):format(q(copy .. "/downloadtask.so")))
    assert.equals("build/5.4/downloadtask.so\n", out)
    out, rc = load_with("lua5.4", copy)
    assert.equals(0, rc, out)

    -- each version's objects in its own directory, none beside the sources
    for _, v in ipairs { "5.4", OTHER } do
      for _, name in ipairs { "module", "task", "dispatch", "engine" } do
        assert.truthy(S.filesize(("%s/build/%s/src/%s.o"):format(copy, v, name)), v .. " " .. name .. ".o")
      end
    end
    -- and nothing new outside build/ but that symlink
    local after = files(copy)
    assert.equals(before, (after:gsub("%./downloadtask%.so\n", "", 1)))
  end)

  it("`make LUA=" .. OTHER_LUA .. "` builds and names that Lua's directory; `make` puts the symlink back", function()
    local out, rc = sh(("make -s -C %s LUA=%s"):format(q(copy), OTHER_LUA))
    assert.equals(0, rc, out)
    assert.truthy(S.filesize(copy .. "/build/" .. OTHER .. "/downloadtask.so"))
    assert.falsy(S.filesize(copy .. "/build/5.4/downloadtask.so"))
    -- a stale regular file where the symlink goes (an older Makefile's build) is replaced
    S.writefile(copy .. "/downloadtask.so", "stale")
    out, rc = sh(("make -s -C %s"):format(q(copy)))
    assert.equals(0, rc, out)
    assert.equals("build/5.4/downloadtask.so\n", (sh(("readlink %s"):format(q(copy .. "/downloadtask.so")))))
  end)
end)
