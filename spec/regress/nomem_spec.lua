-- Regressions found by make torture: a Lua memory error must leave the module usable.
--
-- Each case runs tools/torture.c on a script of spec/torture/: the script's run() is made
-- to fail at its 1st, 2nd, ... n-th Lua allocation (and every later one, until run()
-- returns); check() then runs with memory back. See tools/torture.c.
--
-- 1. spec/torture/require.lua: a memory error inside luaopen_downloadtask leaves a
--    half-made module state in the registry (no anchor table: st->anchors is LUA_NOREF) or a
--    DownloadTask metatable without __index; the next require takes both as they are: a
--    download then crashes (lua_rawgeti on a nil anchor table, SIGSEGV) or its task cannot
--    be used ("attempt to index a downloadtask.DownloadTask value").
-- 2. spec/torture/dispatch.lua: a memory error raised in the dispatcher outside a pcall
--    (building a headers/progress/result table, a traceback, resuming a coroutine) longjmps
--    out of dispatch_run and leaves st->depth and st->in_run raised and the task "busy":
--    every later run() and blocking await() fail with "the loop is already being driven",
--    and the busy task is never delivered again.
--
-- tools/torture.c is a Lua 5.4 host: these run against the top-level Lua 5.4 build.
local S = require "spec.support.servers"

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return rc, (out:gsub("rc=%d+%s*$", ""))
end

local describe_54 = (_VERSION == "Lua 5.4" and not jit) and describe or pending

describe_54("regression: after a Lua memory error", function()
  local ready, why
  local function torture(script)
    if ready == nil then
      local rc, out = sh("make -s downloadtask.so build/torture/torture")
      ready, why = rc == 0, out
    end
    assert(ready, "cannot build the torture host: " .. tostring(why))
    local rc, out = sh(("build/torture/torture -c ./?.so -t 10 %s"):format(script))
    local failed = {}
    for line in out:gmatch("[^\n]+") do
      if line:match(" FAILED: ") and #failed < 5 then failed[#failed + 1] = line end
    end
    return rc, table.concat(failed, "\n"), out
  end

  it("a second require completes the module that a memory error interrupted", function()
    local rc, failed, out = torture("spec/torture/require.lua")
    assert.are.equal("", failed)
    assert.are.equal(0, rc, out)
  end)

  it("run(), poll() and await() work again and every task is delivered to its end", function()
    local rc, failed, out = torture("spec/torture/dispatch.lua")
    assert.are.equal("", failed)
    assert.are.equal(0, rc, out)
  end)
end)
