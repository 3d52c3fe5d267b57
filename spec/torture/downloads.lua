-- The download script of `make torture` (tools/torture.c runs it). Returns three functions:
--
--   setup()          in the host's own state, with a normal allocator, once: starts nginx
--                    (spec/support/servers.lua) and returns a chunk that builds `cfg`;
--   run(cfg)         in a fresh state whose allocator fails its n-th allocation: requires
--                    the module and downloads (success, 404, refused, abort, await, a
--                    listener that starts a download), to the end of dt.run();
--   check(cfg, ok)   afterwards, allocations working again (ok: run() succeeded): the
--                    module must still be usable (require, a new download, run() to the end
--                    of every task); returns the set of private files handed to listeners.
-- The host checks the rest: no *.part file in cfg.dir, no file in cfg.tmp (tempDir) that
-- was not handed to a listener, as many descriptors after lua_close as before the state.
local M = {}

function M.setup()
  local S = require "spec.support.servers"
  local ng = S.nginx()
  local base = ng.url("")
  return ("return { base = %q, refused = %q }"):format(base,
    ("http://127.0.0.1:%d/"):format(S.free_port()))
end

-- Set by run()'s listeners, read by check(): the private files handed to Lua.
local handed = {}

function M.run(cfg)
  local dt = require "downloadtask"
  dt.configure { maxConcurrent = 3, progressInterval = 0, tempDir = cfg.tmp }
  local dir = cfg.dir
  local log = {}
  local function note(...) log[#log + 1] = table.concat({ ... }, " ") end

  local a = dt.downloadFile {
    url = cfg.base .. "1k.bin", filePath = dir .. "/a.bin",
    header = { ["X-Torture"] = "1", Accept = "*/*" },
    success = function(res) note("a ok", res.statusCode, res.dataLength, res.header["content-length"]) end,
    fail = function(err) note("a fail", err.errMsg) end,
    complete = function() note("a complete") end,
  }
  a:onHeadersReceived(function(h) note("a headers", h.statusCode) end)
  a:onProgressUpdate(function(p) note("a progress", p.progress) end)

  -- a 404: its body goes to a private file handed over as tempFilePath
  dt.downloadFile {
    url = cfg.base .. "missing.bin", filePath = dir .. "/missing.bin",
    success = function(res)
      handed[res.tempFilePath] = true
      os.remove(res.tempFilePath)
      note("404", res.statusCode)
    end,
  }

  dt.downloadFile {
    url = cfg.refused .. "x", filePath = dir .. "/refused.bin",
    fail = function(err) note("refused", err.errno) end,
  }

  local b = dt.downloadFile { url = cfg.base .. "1m.bin", filePath = dir .. "/b.bin",
    fail = function(err) note("b", err.errMsg) end }
  b:onProgressUpdate(function() end)
  b:offProgressUpdate()
  b:abort()
  note(tostring(b), b.state)

  -- a listener that starts another download
  local c = dt.downloadFile { url = cfg.base .. "small.txt", filePath = dir .. "/c.txt" }
  c:onHeadersReceived(function()
    dt.downloadFile { url = cfg.base .. "small.txt", filePath = dir .. "/d.txt",
      complete = function(r) note("d", r.errMsg) end }
  end)

  -- await in a coroutine
  local co = coroutine.wrap(function()
    local res, err = c:await()
    note("await", res and res.statusCode or err.errMsg)
  end)
  co()
  dt.run()
  return log
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

function M.check(cfg, ok)
  local dt = require "downloadtask"
  dt.configure { tempDir = cfg.tmp }
  local got
  dt.downloadFile { url = cfg.base .. "small.txt", filePath = cfg.dir .. "/after.txt",
    success = function(res) got = res.statusCode end,
    fail = function(err) got = err.errMsg end }
  dt.run()
  assert(got == 200, "a download after the memory error did not succeed: " .. tostring(got))
  assert(dt.poll(0) == 0, "tasks left after run()")
  -- a 404 and a refused connection never make their destination; the aborted one only
  -- when the run stopped before its abort()
  assert(not exists(cfg.dir .. "/missing.bin"), "the 404 body replaced its destination")
  assert(not exists(cfg.dir .. "/refused.bin"), "a failed download made its destination")
  assert(not (ok and exists(cfg.dir .. "/b.bin")), "an aborted download made its destination")
  return handed
end

return M
