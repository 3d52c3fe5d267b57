-- Life cycle: closing the lua_State with downloads in flight (in a child
-- lua5.4), and many downloads in one state without leaking memory or
-- descriptors.
local dt = require "downloadtask"
local S = require "spec.support.servers"
local lfs = require "lfs"
local H = require "spec.support.helpers"

local DEFAULTS, now = H.DEFAULTS, H.now

-- Runs `code` with `<the Lua under test> -e` from the repo root (same
-- LUA_PATH/LUA_CPATH, the module under test first). Returns stdout+stderr,
-- exit status, seconds.
local function child(code)
  return H.child(code, nil, S.MODULE_CPATH .. ";" .. "./?.so")
end

-- The child: 20 trickled downloads into `dir` (+ 5 without filePath, whose
-- private files go to `tmp`, + `fast` quick ones that finish but are never
-- delivered), listeners that print, a short poll, then the state is closed
-- by `ending`.
local function closing_script(dir, tmp, slow_url, fast_url, fast, ending)
  return ([[
local dt = require "downloadtask"
dt.configure { tempDir = %q, maxConcurrent = 30 }
local dir, slow, fast_url, nfast = %q, %q, %q, %d
local function say(...) io.write(table.concat({ ... }, " "), "\n") io.flush() end
local tasks = {}
for i = 1, 25 do
  local t = dt.downloadFile {
    url = slow .. "&i=" .. i, filePath = i <= 20 and (dir .. "/slow" .. i) or nil,
    success = function() say("success", i) end,
    fail = function(e) say("fail", i, e.errMsg) end,
    complete = function() say("complete", i) end,
  }
  t:onHeadersReceived(function() say("headers", i) end)
  t:onProgressUpdate(function(p) say("progress", i, p.totalBytesWritten) end)
  tasks[i] = t
end
local deadline = os.time() + 10
local started = 0
repeat
  dt.poll(20)
  started = 0
  for _, t in ipairs(tasks) do if t.state == "running" then started = started + 1 end end
until started == 25 or os.time() > deadline
for _ = 1, 10 do dt.poll(20) end
for i = 1, nfast do
  dt.downloadFile { url = fast_url, filePath = dir .. "/fast" .. i,
    success = function() say("success fast", i) end,
    complete = function() say("complete fast", i) end }
end
if nfast > 0 then
  -- let them finish in the engine without delivering anything
  local t0 = os.clock()
  local f = io.popen("sleep 0.5") f:read("*a") f:close()
end
say("RUNNING", started)
say("CLOSING")
%s
]]):format(tmp, dir, slow_url, fast_url, fast, ending)
end

-- os.exit(code, true) closes the state from Lua 5.2 on (and in LuaJIT 2.1), not in 5.1:
-- there the end of the script is the way to close it.
local EXIT_CLOSES = _VERSION ~= "Lua 5.1" or jit ~= nil
local EXIT_AND_CLOSE = EXIT_CLOSES and "os.exit(0, true)" or ""

describe("lifecycle", function()
  local ng, f

  setup(function()
    ng, f = S.nginx(), S.fault()
  end)

  after_each(function()
    H.settle()
    dt.configure(DEFAULTS)
  end)

  describe("closing the lua_State with downloads in flight", function()
    for _, c in ipairs {
      { "os.exit(0, true)", "os.exit(0, true)" },
      { "the end of the script (lua.c closes the state)", "" },
    } do
      local name, ending = c[1], c[2]
      local it = (ending ~= "" and not EXIT_CLOSES) and pending or it
      it("by " .. name .. ": prompt exit, no listener after the close, no file left", function()
        local dir, tmp = S.tmpdir(), S.tmpdir()
        local out, rc, elapsed = child(closing_script(dir, tmp,
          f.url("/bytes?n=2000000&rate=20000"), ng.url("1k.bin"), 0, ending))
        assert.are.equal(0, rc, out)
        assert.is_true(elapsed < 5, ("the child took %.2f s"):format(elapsed))
        local before, after = out:match("^(.*)CLOSING\n(.*)$")
        assert.is_not_nil(before, "no CLOSING line in:\n" .. out)
        assert.are.equal("", after)
        -- the downloads were really in flight: listeners ran, nothing had ended
        assert.matches("RUNNING 25\n", before, 1, true)
        assert.matches("progress %d+ %d+\n", before)
        assert.is_nil(before:match("success") or before:match("fail") or before:match("complete"))
        assert.are.same({}, S.listdir(dir))
        assert.are.same({}, S.listdir(tmp))
      end)
    end

    it("downloads finished in the engine but never delivered leave no file either", function()
      local dir, tmp = S.tmpdir(), S.tmpdir()
      local out, rc, elapsed = child(closing_script(dir, tmp,
        f.url("/bytes?n=2000000&rate=20000"), ng.url("1k.bin"), 5, EXIT_AND_CLOSE))
      assert.are.equal(0, rc, out)
      assert.is_true(elapsed < 5, ("the child took %.2f s"):format(elapsed))
      local before, after = out:match("^(.*)CLOSING\n(.*)$")
      assert.is_not_nil(before, out)
      assert.are.equal("", after)
      assert.is_nil(before:match("fast"))
      assert.are.same({}, S.listdir(dir))
      assert.are.same({}, S.listdir(tmp))
    end)

    it("a state closed with only queued downloads exits at once", function()
      local dir = S.tmpdir()
      local out, rc, elapsed = child(([[
        local dt = require "downloadtask"
        dt.configure { maxConcurrent = 1 }
        for i = 1, 50 do
          dt.downloadFile { url = %q, filePath = %q .. "/q" .. i,
            complete = function() print("complete", i) end }
        end
        dt.poll(50)
        print("CLOSING")
      ]]):format(f.url("/hang"), dir))
      assert.are.equal(0, rc, out)
      assert.are.equal("CLOSING\n", out)
      assert.is_true(elapsed < 5, ("the child took %.2f s"):format(elapsed))
      assert.are.same({}, S.listdir(dir))
    end)

    it("a finalizer that runs after the module's state is closed does not crash", function()
      -- marked for finalization before the module: finalized after it at close
      local out, rc = child(([[
        local dt, t
        local function gc()
          local ok = pcall(dt.downloadFile, { url = %q })
          print("in gc", ok)
          pcall(t.abort, t)
          pcall(dt.poll, 0)
          print("gc done")
        end
        local keep                  -- kept alive: finalized at the close, not by a collection
        if newproxy then keep = newproxy(true); getmetatable(keep).__gc = gc  -- 5.1, LuaJIT
        else keep = setmetatable({}, { __gc = gc }) end
        dt = require "downloadtask"
        t = dt.downloadFile { url = %q }
        dt.poll(50)
        print("CLOSING")
      ]]):format(f.url("/hang"), f.url("/hang")))
      assert.are.equal(0, rc, out)
      assert.are.equal("CLOSING\nin gc\tfalse\ngc done\n", out)
    end)
  end)

  describe("many downloads", function()
    -- Open descriptors, split in two: sockets (libcurl keeps up to one
    -- connection per concurrent download alive in its cache, how many varies
    -- from run to run) and all others (files, pipes, ...), which must come
    -- back exactly.
    local function fds()
      local sockets, others, list = 0, 0, {}
      for name in lfs.dir("/proc/self/fd") do
        if name ~= "." and name ~= ".." then
          local target = lfs.symlinkattributes("/proc/self/fd/" .. name, "target") or ""
          if target:match("^socket:") then sockets = sockets + 1
          else others = others + 1; list[#list + 1] = name .. "=" .. target end
        end
      end
      table.sort(list)
      return others, sockets, table.concat(list, " ")
    end

    -- Read whole and closed here: an io.lines loop left early keeps its file
    -- open until a collection, and fds() would count it.
    local function rss_kb()
      return tonumber(H.proc_status("VmRSS"))
    end

    it("1000 tiny downloads all succeed without growing memory or descriptors", function()
      local tmp = S.tmpdir()
      dt.configure { tempDir = tmp }
      local ok, failed = 0, {}
      local function submit(n)
        for _ = 1, n do
          dt.downloadFile {
            url = ng.url("small.txt"),
            success = function(r)
              if r.statusCode == 200 and r.dataLength == 19 then ok = ok + 1 end
              os.remove(r.tempFilePath)
            end,
            fail = function(e) failed[#failed + 1] = e.errMsg end,
          }
        end
        local deadline = now() + 30
        while dt.poll(50) > 0 and now() < deadline do end
      end

      submit(100)
      collectgarbage()
      collectgarbage()
      local mem0, rss0 = collectgarbage("count"), rss_kb()
      local fds0, sockets0, list0 = fds()

      submit(400)                   -- all queued at once, maxConcurrent default
      for _ = 1, 5 do submit(100) end
      collectgarbage()
      collectgarbage()
      local mem1, rss1 = collectgarbage("count"), rss_kb()
      local fds1, sockets1, list1 = fds()

      assert.are.same({}, failed)
      assert.are.equal(1000, ok)
      assert.are.equal(0, dt.poll(0))
      assert.is_true(mem1 - mem0 < 300, ("Lua memory grew by %.1f KB"):format(mem1 - mem0))
      assert.are.equal(fds0, fds1, ("descriptors other than sockets: %d after the first 100 (%s), %d after 1000 (%s)")
        :format(fds0, list0, fds1, list1))
      assert.is_true(sockets1 <= sockets0 + DEFAULTS.maxConcurrent,
        ("sockets: %d after the first 100, %d after 1000"):format(sockets0, sockets1))
      -- C-side leaks do not show in collectgarbage: a coarse look at RSS
      assert.is_true(rss1 - rss0 < 4096, ("RSS grew by %d KB"):format(rss1 - rss0))
      assert.are.same({}, S.listdir(tmp))
    end)

    it("tasks nobody references are collected once they end", function()
      local tmp = S.tmpdir()
      dt.configure { tempDir = tmp }
      local weak = setmetatable({}, { __mode = "k" })
      for _ = 1, 50 do
        weak[dt.downloadFile { url = ng.url("small.txt"), success = function(r) os.remove(r.tempFilePath) end }] = true
      end
      collectgarbage()
      collectgarbage()
      local alive = 0
      for _ in pairs(weak) do alive = alive + 1 end
      assert.are.equal(50, alive)           -- anchored while running
      local deadline = now() + 10
      while dt.poll(50) > 0 and now() < deadline do end
      collectgarbage()
      collectgarbage()
      alive = 0
      for _ in pairs(weak) do alive = alive + 1 end
      assert.are.equal(0, alive)
    end)
  end)
end)
