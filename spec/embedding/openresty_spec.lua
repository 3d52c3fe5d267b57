-- downloadtask inside OpenResty: a real nginx with Debian's Lua module (LuaJIT 2.1) loads
-- the LuaJIT build of the module (spec/support/openresty.conf, started and stopped by
-- spec/support/openresty.lua). This process is only the HTTP client, whatever Lua runs it.
--
-- What it checks: await() in a request waits on an ngx.semaphore while one poller timer per
-- worker drives the downloads, so the worker keeps serving other requests; listeners run in
-- that timer; an error in one is logged and polling goes on; abort() from another request;
-- the module loaded (and even used) in init_by_lua, in the master, before nginx forks.
local S = require "spec.support.servers"
local socket = require "socket"
local OR = require "spec.support.openresty"

local MiB = 1024 * 1024

local function wait_until(what, fn, timeout)
  local socket = require "socket"
  local deadline = socket.gettime() + (timeout or 5)
  while true do
    local v = fn()
    if v then return v end
    assert(socket.gettime() < deadline, "timed out waiting for " .. what)
    socket.sleep(0.02)
  end
end

-- Waits until the worker lists `id` among its pending downloads (asking /pong).
local function wait_pending(o, id)
  return wait_until(id .. " pending", function()
    local p = OR.get(o, "/pong")
    for x in (p.fields.pending or ""):gmatch("[^,]+") do
      if x == id then return p end
    end
  end)
end

-- Waits until /result has the outcome of the download registered as `id`.
local function wait_result(o, id, what)
  return wait_until(what, function()
    local x = OR.get(o, "/result?id=" .. id)
    return x.fields.result ~= "none" and x
  end)
end

local function fetch_target(q)
  local parts = {}
  for _, k in ipairs { "url", "file", "id", "rate", "timeout", "boom" } do
    if q[k] then parts[#parts + 1] = k .. "=" .. OR.escape(q[k]) end
  end
  return "/fetch?" .. table.concat(parts, "&")
end

local function errlog(o) return S.readfile(o.errlog) or "" end

describe("OpenResty, one worker", function()
  local available, why = OR.available()
  if not available then
    pending(why)
    return
  end

  local o, ng, f
  setup(function()
    ng, f = S.nginx(), S.fault()
    o = OR.start { workers = 1 }
  end)
  teardown(function()
    assert.is_true(OR.stop(o), "nginx did not stop on SIGTERM")
    assert.are.same({}, OR.group(o))
  end)

  it("downloads in a content handler with await(); listeners run in the poller timer", function()
    local r = OR.get(o, fetch_target { url = ng.url("1m.bin"), file = "a.bin" })
    assert.are.equal(200, r.status, r.body)
    local x = r.fields
    assert.are.equal("200", x.status, r.body)
    assert.are.equal(tostring(MiB), x.length)
    assert.are.equal(o.files .. "/a.bin", x.file)
    assert.are.equal("done", x.state)
    assert.is_true(S.file_matches_pattern(o.files .. "/a.bin", MiB))
    -- listeners: the headers event, then at least the last progress event, showing every byte
    assert.are.equal("200", x.headers_status)
    assert.is_true(tonumber(x.progress_events) >= 1, r.body)
    assert.are.equal("100", x.last_progress)
    assert.are.equal(tostring(MiB), x.last_written)
    assert.are.equal("timer", x.listener_phase)

    local r2 = OR.get(o, fetch_target { url = ng.url("small.txt"), file = "small.txt" })
    assert.are.equal("200", r2.fields.status, r2.body)
    assert.are.equal(S.SMALL_TXT, S.readfile(o.files .. "/small.txt"))
  end)

  it("does not block the worker: requests are answered while a download is pending", function()
    -- A: 200 000 bytes trickled at 100 000 bytes/s (~2 s)
    local a = OR.send(o, fetch_target {
      url = f.url("/bytes?n=200000&rate=100000"), file = "trickle.bin", id = "A" })
    -- the worker answers /pong while A is pending (and says so)
    local pong = wait_pending(o, "A")
    assert.are.equal("pong", pong.body:match("^(%a+)"))
    -- B: a download of its own, awaited and answered while A still is pending
    local b = OR.get(o, fetch_target { url = ng.url("small.txt") })
    assert.are.equal("200", b.fields.status, b.body)
    assert.are.equal("19", b.fields.length)
    assert.are.equal(pong.fields.worker, b.fields.worker)      -- the same (only) worker
    local after = OR.get(o, "/pong")
    assert.are.equal("A", after.fields.pending)                 -- A had not returned yet
    assert.is_false(OR.readable(a), "A answered before B")
    -- then A completes, with progress events along the way
    local ra = OR.receive(a)
    assert.are.equal("200", ra.fields.status, ra.body)
    assert.are.equal("200000", ra.fields.length)
    assert.is_true(S.file_matches_pattern(o.files .. "/trickle.bin", 200000))
    assert.is_true(tonumber(ra.fields.progress_events) >= 3, ra.body)
    assert.are.equal("", OR.get(o, "/pong").fields.pending)
  end)

  -- Was (issue 22 item 1): the poller's idle cosocket read logged "[error] lua tcp socket
  -- read timed out" about once a second whenever a download went a second without news, and
  -- once more when the poller stopped (9 lines for one 9 s await).
  it("normal operation writes nothing to error.log, also through seconds without news", function()
    local before = #errlog(o)
    -- the answer's headers come after 3.5 s: no news at all until then
    local r = OR.get(o, fetch_target { url = f.url("/bytes?n=1000&hdelay=3500"), file = "quiet.bin" })
    assert.are.equal("200", r.fields.status, r.body)
    socket.sleep(1.5) -- the poller, with nothing left to drive, ends
    local log = errlog(o):sub(before + 1)
    assert.is_nil(log:find("timed out", 1, true), log)
    assert.is_nil(log:find("[error]", 1, true), log)
  end)

  it("logs a listener's error to error.log, and await() still returns", function()
    local r = OR.get(o, fetch_target { url = ng.url("1m.bin"), file = "boom.bin", boom = "1" })
    assert.are.equal("200", r.fields.status, r.body)
    assert.are.equal(tostring(MiB), r.fields.length)
    assert.is_true(S.file_matches_pattern(o.files .. "/boom.bin", MiB))
    local log = wait_until("the error in error.log", function()
      local text = errlog(o)
      return text:find("boom from a listener", 1, true) and text
    end)
    assert.truthy(log:find("[error]", 1, true), log)
    assert.truthy(log:find("downloadtask: ", 1, true), log)
    -- and the poller goes on for the next request
    local r2 = OR.get(o, fetch_target { url = ng.url("small.txt") })
    assert.are.equal("200", r2.fields.status, r2.body)
  end)

  it("await() inside a listener raises a clear error (logged), the request still gets its result", function()
    local r = OR.get(o, fetch_target { url = ng.url("small.txt"), boom = "await" })
    assert.are.equal("200", r.fields.status, r.body)
    local log = wait_until("the error in error.log", function()
      local text = errlog(o)
      return text:find("cannot wait inside a listener in OpenResty", 1, true) and text
    end)
    assert.truthy(log:find("[error]", 1, true), log)
  end)

  it("abort() from another request ends the awaiting one", function()
    local h = OR.send(o, fetch_target { url = f.url("/hang"), id = "H" })
    wait_pending(o, "H")
    local ab = OR.get(o, "/abort?id=H")
    assert.are.equal("aborted aborted", ab.body:match("^[^\n]*"))
    local r = OR.receive(h)
    assert.are.equal("600003", r.fields.errno, r.body)
    assert.are.equal("downloadFile:fail abort", r.fields.errMsg)
    assert.are.equal("aborted", r.fields.state)
  end)

  it("a timeout ends the awaiting request with errno 5", function()
    local r = OR.get(o, fetch_target { url = f.url("/hang"), timeout = "300" })
    assert.are.equal("5", r.fields.errno, r.body)
    assert.are.equal("failed", r.fields.state)
  end)

  it("await() in a timer of one's own: the request is answered at once", function()
    local r = OR.get(o, "/background?id=bg&file=bg.bin&url="
      .. OR.escape(f.url("/bytes?n=100000&rate=100000")))
    assert.are.equal("started", r.body:match("^[^\n]*"))
    assert.are.equal("bg", OR.get(o, "/pong").fields.pending)  -- still downloading (~1 s)
    local res = wait_result(o, "bg", "the background download")
    assert.are.equal("200", res.fields.status, res.body)
    assert.are.equal("100000", res.fields.length)
    assert.is_true(S.file_matches_pattern(o.files .. "/bg.bin", 100000))
  end)

  it("a download nobody awaits completes; its callbacks run in the poller timer", function()
    local r = OR.get(o, "/fire?id=fire&file=fire.bin&url=" .. OR.escape(f.url("/bytes?n=100000&rate=400000")))
    assert.are.equal("started", r.body:match("^[^\n]*"))
    assert.are.equal("none", OR.get(o, "/result?id=fire").fields.result)  -- still downloading
    local res = wait_result(o, "fire", "the unawaited download's success")
    assert.are.equal("200", res.fields.status, res.body)
    assert.are.equal("100000", res.fields.length)
    assert.are.equal("timer", res.fields.phase)
    assert.is_true(S.file_matches_pattern(o.files .. "/fire.bin", 100000))
  end)

  it("loads in init_by_lua, in the master; a download there before the fork does not hurt", function()
    local r = OR.get(o, "/init")
    assert.are.equal("ok 200 19", r.fields.init, r.body)
    assert.are_not.equal(tostring(o.pid), r.fields.worker)
    assert.is_nil(errlog(o):find("[alert]", 1, true), errlog(o))
    assert.is_nil(errlog(o):find("[crit]", 1, true), errlog(o))
  end)
end)

describe("OpenResty, two workers", function()
  local available, why = OR.available()
  if not available then
    pending(why)
    return
  end

  it("each worker downloads with an engine of its own", function()
    local ng = S.nginx()
    -- reuseport: a listening socket per worker, the kernel spreads connections over them
    local o = OR.start { workers = 2, reuseport = true }
    local ok, err = pcall(function()
      local conns = {}
      for i = 1, 16 do
        conns[i] = OR.send(o, fetch_target { url = ng.url("/slow/1m.bin"), file = "w" .. i .. ".bin" })
      end
      local workers, n = {}, 0
      for i, c in ipairs(conns) do
        local r = OR.receive(c)
        assert.are.equal("200", r.fields.status, r.body)
        assert.is_true(S.file_matches_pattern(o.files .. "/w" .. i .. ".bin", MiB))
        if not workers[r.fields.worker] then
          workers[r.fields.worker] = true
          n = n + 1
        end
      end
      -- 16 connections all hashed to one of two sockets: 1 chance in 32768
      assert.are.equal(2, n)
      for _, c in ipairs { OR.send(o, "/init"), OR.send(o, "/init") } do
        assert.are.equal("ok 200 19", OR.receive(c).fields.init)
      end
    end)
    assert.is_true(OR.stop(o), "nginx did not stop on SIGTERM")
    assert(ok, err)
  end)
end)

-- The poller's edge cases (src/task.c, AWAIT_LUA):
-- - a graceful stop (SIGQUIT, and for the old workers of a reload SIGHUP) runs the poller's
--   pending timer "premature": it keeps polling until no request awaits, so the requests
--   get their results and the worker exits;
-- - an error in a listener does not stop the poller while downloads remain.

describe("OpenResty, poller edge cases", function()
  local available, why = OR.available()
  if not available then
    pending(why)
    return
  end

  it("a graceful stop lets a request awaiting a download complete, then the worker exits", function()
    local f = S.fault()
    local o = OR.start { workers = 1 }
    local ok, err = pcall(function()
      local a = OR.send(o, fetch_target { url = f.url("/bytes?n=100000&rate=100000"), id = "Q" }, 10)
      wait_pending(o, "Q")
      assert(S.bash("kill -QUIT " .. o.pid))
      local r = OR.receive(a)
      assert.are.equal("200", r.fields.status, r.body)
      assert.are.equal("100000", r.fields.length)
      wait_until("nginx to exit", function() return #OR.group(o) == 0 end, 5)
    end)
    OR.stop(o)
    assert(ok, err)
  end)

  it("polling goes on after a listener error while only unawaited downloads remain", function()
    local ng, f = S.nginx(), S.fault()
    local o = OR.start { workers = 1 }
    local ok, err = pcall(function()
      local r = OR.get(o, "/detached?id=D&boom=1&url=" .. OR.escape(f.url("/bytes?n=100000&rate=200000"))
        .. "&then=" .. OR.escape(ng.url("small.txt")))
      assert.are.equal("200", r.fields.status, r.body)
      local x = wait_result(o, "D", "the detached download's success")
      assert.are.equal("200", x.fields.status, x.body)
      assert.are.equal("100000", x.fields.length)
      assert.truthy(errlog(o):find("boom from a detached listener", 1, true))
    end)
    OR.stop(o)
    assert(ok, err)
  end)
end)

-- The event-driven poller (lua/downloadtask/ngx.lua, src/notify.c): the worker's poller
-- sits in a cosocket receive on the engine's notifier socket, which the engine writes a byte
-- to when there is news; no timer loop. Exact figures: bench/openresty.lua (docs/openresty.md).

-- The CPU time (user + system, seconds) a process has used so far, all threads: fields 14
-- and 15 of /proc/<pid>/stat, in clock ticks (100 a second on Linux).
local function cpu_seconds(pid)
  local stat = assert(S.readfile("/proc/" .. pid .. "/stat"))
  local rest = stat:match("^.*%) (.*)$")   -- after comm, which may hold anything
  local f = {}
  for x in rest:gmatch("%S+") do f[#f + 1] = x end
  -- rest starts at field 3 (state): utime is field 14, stime 15
  return (tonumber(f[12]) + tonumber(f[13])) / 100
end

-- The notifier directories (dt.XXXXXX, each holding the socket n) under the workers' TMPDIR.
local function notifier_dirs(o)
  local lfs = require "lfs"
  local dirs = {}
  for name in lfs.dir(o.tmp) do
    if name:match("^dt%.") then dirs[#dirs + 1] = o.tmp .. "/" .. name end
  end
  return dirs
end

describe("OpenResty, the event-driven poller", function()
  local available, why = OR.available()
  if not available then
    pending(why)
    return
  end

  local o, ng, f
  setup(function()
    ng, f = S.nginx(), S.fault()
    o = OR.start { workers = 1 }
  end)
  teardown(function()
    assert.is_true(OR.stop(o), "nginx did not stop on SIGTERM")
    -- the worker's engine stopped with it: its socket and directory are gone
    assert.are.same({}, notifier_dirs(o))
  end)

  it("connects to a socket in a private directory (0700) of the worker's TMPDIR", function()
    local r = OR.get(o, fetch_target { url = ng.url("small.txt") })
    assert.are.equal("200", r.fields.status, r.body)
    local dirs = notifier_dirs(o)
    assert.are.equal(1, #dirs, table.concat(dirs, " "))
    local lfs = require "lfs"
    assert.are.equal("rwx------", lfs.attributes(dirs[1], "permissions"))
    assert.are.equal("socket", lfs.attributes(dirs[1] .. "/n", "mode"))
  end)

  it("a worker awaiting an idle trickle uses (almost) no CPU", function()
    local worker = tonumber(OR.get(o, "/pong").fields.worker)
    OR.get(o, fetch_target { url = ng.url("small.txt") })       -- the poller, warm
    -- 300 bytes at 100 bytes/s in 100-byte chunks: ~3 s, a chunk a second
    local c0 = cpu_seconds(worker)
    local a = OR.send(o, fetch_target { url = f.url("/bytes?n=300&rate=100&chunk=100"), id = "T" })
    local r = OR.receive(a)
    local used = cpu_seconds(worker) - c0
    assert.are.equal("200", r.fields.status, r.body)
    assert.are.equal("300", r.fields.length)
    -- target (issue 15): 10 ms for 10 s; 10× that for these ~3 s. The 5 ms timer loop of
    -- 0.1 used ~24 ms here (80 ms per 10 s); the figure itself: bench/openresty.lua.
    assert.is_true(used <= 0.03, ("worker CPU %.3f s for a 3 s trickle"):format(used))
  end)

  it("1000 concurrent requests on one worker, each awaiting its own download, all answered", function()
    local conns = {}
    for i = 1, 1000 do
      conns[i] = OR.send(o, fetch_target { url = ng.url("small.txt"), file = "c" .. i .. ".txt" }, 60)
    end
    local workers = {}
    for i, c in ipairs(conns) do
      local r = OR.receive(c)
      assert.are.equal("200", r.fields.status, i .. ": " .. r.body)
      assert.are.equal("19", r.fields.length, i .. ": " .. r.body)
      assert.are.equal(o.files .. "/c" .. i .. ".txt", r.fields.file)
      workers[r.fields.worker] = true
    end
    for i = 1, 1000 do
      assert.are.equal(S.SMALL_TXT, S.readfile(o.files .. "/c" .. i .. ".txt"), "c" .. i .. ".txt")
    end
    assert.are.equal(1, (function() local n = 0 for _ in pairs(workers) do n = n + 1 end return n end)())
    assert.are.equal("", OR.get(o, "/pong").fields.pending)
  end)

  it("await() in rewrite_by_lua and access_by_lua", function()
    local r = OR.get(o, "/phases?url=" .. OR.escape(ng.url("small.txt")))
    assert.are.equal("rewrite 200 19", r.fields.rewrite, r.body)
    assert.are.equal("access 200 19", r.fields.access, r.body)
  end)

  it("await() in ssl_certificate_by_lua, during the handshake", function()
    local out = io.popen(("curl -sS --cacert %s --max-time 20 https://127.0.0.1:%d/ssl 2>&1")
      :format(S.quote(o.ca), o.ssl_port)):read("*a")
    assert.are.equal("ssl=ssl_cert 200 19\n", out)
  end)

  it("the poller ends when idle and starts again with the next download", function()
    OR.get(o, fetch_target { url = ng.url("small.txt") })
    -- the poller's receive times out after 1 s; then, with nothing to drive, it ends
    require("socket").sleep(1.5)
    local r = OR.get(o, "/fire?id=again&file=again.bin&url=" .. OR.escape(f.url("/bytes?n=1000&rate=4000")))
    assert.are.equal("started", r.body:match("^[^\n]*"))
    local res = wait_result(o, "again", "the unawaited download after an idle poller")
    assert.are.equal("200", res.fields.status, res.body)
    assert.are.equal("1000", res.fields.length)
  end)
end)

describe("OpenResty, the poller across a reload and without the code cache", function()
  local available, why = OR.available()
  if not available then
    pending(why)
    return
  end

  it("a reload (HUP): the old worker answers its awaiting request and exits; the new one downloads", function()
    local ng, f = S.nginx(), S.fault()
    local o = OR.start { workers = 1 }
    local ok, err = pcall(function()
      local old = OR.get(o, "/pong").fields.worker
      local a = OR.send(o, fetch_target { url = f.url("/bytes?n=150000&rate=100000"), id = "R" }, 10)
      wait_pending(o, "R")
      assert(S.bash("kill -HUP " .. o.pid))
      local r = OR.receive(a)
      assert.are.equal("200", r.fields.status, r.body)
      assert.are.equal("150000", r.fields.length)
      assert.are.equal(old, r.fields.worker)
      local new = wait_until("a new worker", function()
        local w = OR.get(o, "/pong").fields.worker
        return w ~= old and w
      end)
      local r2 = OR.get(o, fetch_target { url = ng.url("small.txt") })
      assert.are.equal("200", r2.fields.status, r2.body)
      assert.are.equal(new, r2.fields.worker)
      -- the old worker is gone, and its notifier directory with it
      wait_until("the old worker to exit", function() return #OR.group(o) == 2 end, 5)
      wait_until("one notifier directory", function() return #notifier_dirs(o) == 1 end, 5)
    end)
    OR.stop(o)
    assert(ok, err)
  end)

  it("lua_code_cache off: each request's Lua VM has its engine; its poller ends, and the VM goes", function()
    local ng, f = S.nginx(), S.fault()
    local o = OR.start { workers = 1, code_cache = false }
    local ok, err = pcall(function()
      local a = OR.send(o, fetch_target { url = f.url("/bytes?n=100000&rate=100000") }, 10)
      local r = OR.get(o, fetch_target { url = ng.url("small.txt") })
      assert.are.equal("200", r.fields.status, r.body)
      assert.are.equal("19", r.fields.length)
      local ra = OR.receive(a)
      assert.are.equal("200", ra.fields.status, ra.body)
      assert.are.equal("100000", ra.fields.length)
      -- each VM's poller ends after its idle second, the VM closes, its engine stops and
      -- removes its notifier socket
      wait_until("the request VMs' engines to stop", function() return #notifier_dirs(o) == 0 end, 6)
    end)
    OR.stop(o)
    assert(ok, err)
  end)
end)
