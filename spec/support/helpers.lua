-- Helpers shared by the spec files that drive downloads themselves (files,
-- results, options, faults, tls, lifecycle).
--
--   local H = require "spec.support.helpers"
--   local T = H.tracker()           -- per spec file: the tasks its tests start
--   after_each(T.cleanup)
--   local out = T.fetch { url = ... }
--
-- Servers, temp dirs and file helpers are in spec/support/servers.lua (S);
-- this module is what the specs had each copied for themselves.
--
-- Loaded by the busted process, whatever Lua runs it (5.1 to 5.4, LuaJIT):
-- no 5.3+ operators or functions here. Every file and pipe it opens it also
-- closes: lifecycle_spec counts open descriptors.

local dt = require "downloadtask"
local S = require "spec.support.servers"
local socket = require "socket"
local lfs = require "lfs"
-- busted's assert, as the spec files have it (callable like Lua's, with
-- are.equal and the rest)
local assert = require "luassert"

local H = {}

local now = socket.gettime
H.now = now
H.quote = S.quote

-- The repository root: busted runs from there.
H.ROOT = lfs.currentdir()

-- What a destination holds before a download that must leave it untouched.
H.OLD = "old content that must survive\n"

-- The configure settings as the module starts with them (the reference); after_each
-- puts them back.
H.DEFAULT_TMP = (os.getenv("TMPDIR") and os.getenv("TMPDIR") ~= "") and os.getenv("TMPDIR") or "/tmp"
H.DEFAULTS = {
  maxConcurrent = 10,
  maxPerHost = 0,
  rateLimit = 0,
  progressInterval = 100,
  userAgent = "downloadtask/" .. dt.version,
  tempDir = H.DEFAULT_TMP,
}

-- The resume part and info file of the one destination in dir (0.2 names:
-- ".dt.<hash of the name>.part" and ".info"), as paths; nil when absent.
function H.part_files(dir)
  local part, info
  for _, n in ipairs(S.listdir(dir)) do
    if n:match("^%.dt%.%x+%.part$") then part = dir .. "/" .. n end
    if n:match("^%.dt%.%x+%.info$") then info = dir .. "/" .. n end
  end
  return part, info
end

-- Runs a command with os.execute (sh -c); true when it exits with status 0.
function H.sh(cmd)
  local ok = os.execute(cmd)
  return ok == true or ok == 0       -- 5.1 and LuaJIT return the status
end

-- The permission bits of a file in octal ("644"), nil when it does not exist.
function H.mode_of(path)
  local p = assert(io.popen("stat -c %a " .. S.quote(path) .. " 2>/dev/null"))
  local m = p:read("*l")
  p:close()
  return m
end

-- The value of a field of /proc/self/status ("Umask", "VmRSS"), as text; nil
-- when there is none. Read whole and closed: an io.lines loop left early keeps
-- the file open until a collection, and the descriptor-counting specs would
-- see it.
function H.proc_status(field)
  local f = assert(io.open("/proc/self/status"))
  local text = f:read("*a")
  f:close()
  return text:match(field .. ":%s*(%d+)")
end

-- Polls until no task is live (or `seconds`, default 10, pass).
function H.settle(seconds)
  local deadline = now() + (seconds or 10)
  while dt.poll(20) > 0 and now() < deadline do end
end

-- A fresh, empty directory (S.tmpdir()) made the module's tempDir, where the
-- private files of downloads without filePath go; returns it.
function H.fresh_tempdir()
  local tmp = S.tmpdir()
  dt.configure { tempDir = tmp }
  return tmp
end

-- Downloads with `fetch` (a T.fetch wrapper) into dest.bin of a fresh
-- directory, where that file holds OLD first; returns the fetch record, the
-- directory and the destination.
function H.fetch_over_old(fetch, opts)
  local dir = S.tmpdir()
  local dest = dir .. "/dest.bin"
  S.writefile(dest, H.OLD)
  opts.filePath = dest
  return fetch(opts), dir, dest
end

-- Makes the directory `mnt` and mounts a tmpfs (mount -o `options`) on it;
-- false when this machine does not permit that.
function H.mount_tmpfs(mnt, options)
  assert(lfs.mkdir(mnt))
  return H.sh(("mount -t tmpfs -o %s tmpfs %s 2>/dev/null"):format(options, S.quote(mnt)))
end

-- Runs fn(), unmounts `mnt` whatever fn did, then raises fn's error if any.
function H.then_umount(mnt, fn)
  local ok, err = pcall(fn)
  H.sh(("umount %s"):format(S.quote(mnt)))
  assert(ok, err)
end

-- Runs a Lua chunk in a child of the Lua under test, from the repository root,
-- with `cpath` (default: the module under test, S.MODULE_CPATH) first in its
-- package.cpath. `prefix` is put before the command (setpriv ..., umask N &&).
-- Returns its output (stdout and stderr), its exit status and the seconds it took.
function H.child(script, prefix, cpath)
  local code = ("package.cpath = %q .. package.cpath\n"):format((cpath or S.MODULE_CPATH) .. ";") .. script
  local t0 = now()
  local p = assert(io.popen(("cd %s && %s timeout 30 %s -e %s 2>&1; echo \"rc=$?\"")
    :format(S.quote(H.ROOT), prefix or "", S.LUA, S.quote(code))))
  local out = p:read("*a")
  p:close()
  local elapsed = now() - t0
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return (out:gsub("rc=%d+%s*$", "")), rc, elapsed
end

-- A small download to a filePath of its own works: the module is still
-- usable. With `status`, its statusCode is checked too.
function H.expect_usable(status)
  local path = S.tmpdir() .. "/usable.txt"
  local res, err = dt.downloadFile { url = S.nginx().url("small.txt"), filePath = path }:await()
  assert(res, "module not usable any more: " .. tostring(err and err.errMsg))
  if status then assert.are.equal(status, res.statusCode) end
  assert.are.equal(S.SMALL_TXT, S.readfile(path))
end

-- The success checks every spec makes: the callbacks, the status, errMsg.
-- With `same_task`, also that complete got the success table and the task
-- is "done".
function H.expect_ok(out, status, same_task)
  assert.are.same({ "success", "complete" }, out.calls,
    out.err and ("the download failed: " .. tostring(out.err.errMsg)) or nil)
  assert.are.equal(status or 200, out.res.statusCode)
  assert.are.equal("downloadFile:ok", out.res.errMsg)
  if same_task then
    assert.are.equal(out.res, out.complete)               -- the same table
    assert.are.equal("done", out.task.state)
  end
end

-- The tasks one spec file starts, so that after each test what is left can be
-- aborted.
function H.tracker()
  local T = { tasks = {} }

  -- Tracks a task started some other way; returns it.
  function T.track(t)
    T.tasks[#T.tasks + 1] = t
    return t
  end

  -- dt.downloadFile(opts), tracked.
  function T.start(opts)
    return T.track(dt.downloadFile(opts))
  end

  -- For after_each: aborts what the test left queued, running or paused, polls until
  -- nothing is live (10 s at most) and puts the settings back to DEFAULTS.
  function T.cleanup()
    for _, t in ipairs(T.tasks) do
      if t.state == "queued" or t.state == "running" or t.state == "paused" then t:abort() end
    end
    T.tasks = {}
    H.settle()
    dt.configure(H.DEFAULTS)
  end

  -- Runs one download to its end. Returns a record: res/err, complete, the
  -- order of the callbacks in calls ("success"/"fail", "complete"), the task
  -- and the elapsed time. Never hangs: an error after `how.timeout` s
  -- (default 30). Options in `how`:
  --   quiet   seconds to go on polling after complete, so that a second
  --           terminal event would be seen
  --   listen  collect the onHeadersReceived and onProgressUpdate arguments in
  --           out.headers and out.progress
  function T.fetch(opts, how)
    how = how or {}
    local timeout = how.timeout or 30
    local out = { calls = {} }
    if how.listen then out.progress, out.headers = {}, {} end
    opts.success = function(r) out.res = r; out.calls[#out.calls + 1] = "success" end
    opts.fail = function(e) out.err = e; out.calls[#out.calls + 1] = "fail" end
    opts.complete = function(r) out.complete = r; out.calls[#out.calls + 1] = "complete" end
    local t0 = now()
    out.task = T.start(opts)
    if how.listen then
      out.task:onHeadersReceived(function(h) out.headers[#out.headers + 1] = h end)
      out.task:onProgressUpdate(function(p) out.progress[#out.progress + 1] = p end)
    end
    local deadline = t0 + timeout
    while not out.complete and now() < deadline do dt.poll(20) end
    out.elapsed = now() - t0
    assert(out.complete, "download did not end within " .. timeout .. " s: " .. tostring(opts.url):sub(1, 200))
    if how.quiet then
      local quiet = now() + how.quiet
      while now() < quiet do dt.poll(10) end
    end
    return out
  end

  return T
end

-- The ranges a segmented resume part's record holds (its line "ranges T s:p:e ...", src/record.h):
-- the total and an array of { start =, pos =, ["end"] = }; nil without that line.
function H.recorded_ranges(info)
  local text = S.readfile(info)
  local line = text and text:match("\nranges ([^\n]*)\n$")
  if not line then return nil end
  local total, r = tonumber(line:match("^(%d+)")), {}
  for a, p, b in line:gmatch(" (%d+):(%d+):(%d+)") do
    r[#r + 1] = { start = tonumber(a), pos = tonumber(p), ["end"] = tonumber(b) }
  end
  return total, r
end

-- Checks the part against the fault server's body (S.pattern) inside the recorded ranges:
-- the first byte that differs and its range (nil, nil when every held byte is right), and
-- how many bytes the ranges hold.
function H.part_check(part, ranges)
  local data = S.readfile(part) or ""
  local held = 0
  for _, g in ipairs(ranges) do
    if g.pos > g.start then
      local want = S.pattern(g.start, g.pos - g.start)
      local got = data:sub(g.start + 1, g.pos)
      if got ~= want then
        for i = 1, #want do
          if got:sub(i, i) ~= want:sub(i, i) then return g.start + i - 1, g, held end
        end
      end
      held = held + g.pos - g.start
    end
  end
  return nil, nil, held
end

return H
