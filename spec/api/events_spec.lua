-- Event delivery: listener order, progress, coalescing, abort at every
-- moment, listener errors, re-entrancy, await, poll/run, task.state,
-- garbage collection, <close>, maxConcurrent and dt.fd().
-- Against the real nginx and fault server of spec/support/servers.lua.
local dt = require "downloadtask"
local S = require "spec.support.servers"
local socket = require "socket"
local http = require "socket.http"

local now = socket.gettime
local pack = table.pack or function(...) return { n = select("#", ...), ... } end
local F, NG

------------------------------------------------------------------------------
-- Helpers.

local live = {}   -- tasks started by the running spec; aborted in after_each

local function poll_until(cond, timeout)
  local deadline = now() + (timeout or 10)
  while not cond() do
    assert(now() < deadline, "timed out waiting for a condition")
    dt.poll(10)
  end
end

-- Polls until no task is left (the documented `while dt.poll(10) > 0` loop).
local function drain(timeout)
  local deadline = now() + (timeout or 10)
  while dt.poll(10) > 0 do
    assert(now() < deadline, "timed out draining the loop")
  end
end

-- Keeps polling for `ms` even when nothing is left, to catch late events.
local function settle(ms)
  local deadline = now() + (ms or 200) / 1000
  while now() < deadline do dt.poll(10) end
end

-- Starts a download whose callbacks (and, unless listen == false, headers
-- and progress listeners) append {kind, value} to the returned log. User
-- callbacks in opts still run, after being logged.
local function start(url, opts, listen)
  local log, o = {}, {}
  for k, v in pairs(opts or {}) do o[k] = v end
  o.url = url
  for _, kind in ipairs { "success", "fail", "complete" } do
    local user = o[kind]
    o[kind] = function(r)
      log[#log + 1] = { kind, r }
      if user then user(r) end
    end
  end
  local t = dt.downloadFile(o)
  live[#live + 1] = t
  if listen ~= false then
    t:onHeadersReceived(function(h) log[#log + 1] = { "headers", h } end)
    t:onProgressUpdate(function(p) log[#log + 1] = { "progress", p } end)
  end
  return t, log
end

local function count(log, kind)
  local n = 0
  for _, e in ipairs(log) do if e[1] == kind then n = n + 1 end end
  return n
end

local function first(log, kind)
  for _, e in ipairs(log) do if e[1] == kind then return e[2] end end
end

local function progresses(log)
  local out = {}
  for _, e in ipairs(log) do if e[1] == "progress" then out[#out + 1] = e[2] end end
  return out
end

-- The kinds in order, a run of progress events written "progress+".
local function seq(log)
  local out = {}
  for _, e in ipairs(log) do
    if e[1] == "progress" then
      if out[#out] ~= "progress+" then out[#out + 1] = "progress+" end
    else
      out[#out + 1] = e[1]
    end
  end
  return table.concat(out, " ")
end

-- Exactly one fail "abort", then complete with the same table, and nothing
-- else terminal.
local function assert_aborted(log)
  assert.equals(1, count(log, "fail"))
  assert.equals(0, count(log, "success"))
  assert.equals(1, count(log, "complete"))
  local err = first(log, "fail")
  assert.equals("downloadFile:fail abort", err.errMsg)
  assert.equals(600003, err.errno)
  assert.is_true(rawequal(err, first(log, "complete")))
  assert.equals("complete", log[#log][1])
  assert.equals("fail", log[#log - 1][1])
end

-- A body trickled by the fault server: n pattern bytes at `rate` bytes/s.
local function trickle(n, rate, extra)
  return F.url(("/bytes?n=%d&rate=%d%s"):format(n, rate, extra or ""))
end

-- The directory's listing once it equals `expected` (waiting up to 1 s: an
-- aborted transfer's files are removed on the engine thread), else as it is.
local function listing(dir, expected)
  local deadline = now() + 1
  local names = S.listdir(dir)
  while now() < deadline and table.concat(names, "/") ~= table.concat(expected, "/") do
    socket.sleep(0.01)
    names = S.listdir(dir)
  end
  return names
end

local function fault_get(path)
  local body, code = http.request(F.url(path))
  assert(code == 200, "fault server " .. path .. ": " .. tostring(code))
  return body
end

------------------------------------------------------------------------------

describe("downloadtask events", function()
  setup(function()
    F, NG = S.fault(), S.nginx()
  end)

  after_each(function()
    dt.configure { maxConcurrent = 10, progressInterval = 100 }
    for _, t in ipairs(live) do pcall(t.abort, t) end
    live = {}
    local deadline = now() + 5
    while now() < deadline do
      local ok, n = pcall(dt.poll, 10)
      if ok and n == 0 then break end
    end
  end)

  --------------------------------------------------------------------------
  describe("order of events for one task", function()
    it("headers, then rising integer progress ending at every byte, then success and complete", function()
      local dest = S.tmpdir() .. "/out.bin"
      local n = 60000
      local t, log = start(trickle(n, 120000), { filePath = dest })
      drain()
      assert.equals("headers progress+ success complete", seq(log))
      assert.equals(1, count(log, "headers"))
      local ps = progresses(log)
      assert.is_true(#ps >= 2, "a 0.5 s trickle gives several progress events, got " .. #ps)
      local pw, pp = -1, -1
      for _, p in ipairs(ps) do
        assert.equals("integer", S.math_type(p.progress))
        assert.equals("integer", S.math_type(p.totalBytesWritten))
        assert.is_true(p.progress >= 0 and p.progress <= 100)
        assert.equals(n, p.totalBytesExpectedToWrite)
        assert.is_true(p.totalBytesWritten >= pw, "written went down")
        assert.is_true(p.progress >= pp, "progress went down")
        pw, pp = p.totalBytesWritten, p.progress
      end
      local res = first(log, "success")
      local last = ps[#ps]
      assert.equals(n, res.dataLength)
      assert.equals(res.dataLength, last.totalBytesWritten)
      assert.equals(100, last.progress)
      assert.is_true(rawequal(res, first(log, "complete")))
      assert.is_true(S.file_matches_pattern(dest, n))
      assert.equals("done", t.state)
      local before = #log
      settle(300)
      assert.equals(before, #log, "something was delivered after complete")
    end)

    it("fail, then complete with the same table, then nothing", function()
      local t, log = start(F.url("/bytes?n=100000&dropafter=50000"))
      drain()
      local s = seq(log)
      assert.is_true(s == "headers fail complete" or s == "headers progress+ fail complete", s)
      local err = first(log, "fail")
      assert.matches("^downloadFile:fail ", err.errMsg)
      assert.equals("number", type(err.errno))
      assert.is_true(rawequal(err, first(log, "complete")))
      assert.equals("failed", t.state)
      local before = #log
      settle(300)
      assert.equals(before, #log)
    end)

    for _, mode in ipairs { "nolength=1", "chunked=1" } do
      it("unknown size (" .. mode .. "): -1 and 0% during, total == written and 100% at the end", function()
        local n = 60000
        local _, log = start(trickle(n, 120000, "&" .. mode))
        drain()
        assert.equals("headers progress+ success complete", seq(log))
        local ps = progresses(log)
        assert.is_true(#ps >= 2, "expected events during the trickle, got " .. #ps)
        for i = 1, #ps - 1 do
          assert.equals(-1, ps[i].totalBytesExpectedToWrite)
          assert.equals(0, ps[i].progress)
        end
        local last = ps[#ps]
        assert.equals(n, last.totalBytesWritten)
        assert.equals(n, last.totalBytesExpectedToWrite)
        assert.equals(100, last.progress)
        assert.equals(n, first(log, "success").dataLength)
      end)
    end
  end)

  describe("empty bodies still get one 100% progress event", function()
    for _, path in ipairs { "nginx:/empty.bin", "/bytes?n=0&nolength=1", "/bytes?n=0&chunked=1", "/status/204" } do
      it(path, function()
        local url = path:match("^nginx:") and NG.url(path:sub(7)) or F.url(path)
        local _, log = start(url)
        dt.run()
        assert.equals("headers progress+ success complete", seq(log))
        local ps = progresses(log)
        assert.equals(1, #ps)
        assert.same({ progress = 100, totalBytesWritten = 0, totalBytesExpectedToWrite = 0 }, ps[1])
        assert.equals(0, first(log, "success").dataLength)
      end)
    end
  end)

  --------------------------------------------------------------------------
  describe("progress coalescing", function()
    local function events_over_one_second()
      local _, log = start(trickle(100000, 100000, "&chunk=2000"))
      drain()
      assert.equals(1, count(log, "success"))
      return count(log, "progress")
    end

    it("progressInterval=200 gives at most ~7 events over ~1 s; 0 gives more", function()
      dt.configure { progressInterval = 200 }
      local slow = events_over_one_second()
      assert.is_true(slow >= 2 and slow <= 7, "interval 200 ms: " .. slow .. " events")
      dt.configure { progressInterval = 0 }
      local fast = events_over_one_second()
      assert.is_true(fast > slow and fast >= 10,
        ("interval 0: %d events, interval 200: %d"):format(fast, slow))
    end)

    -- The engine wakes a waiting thread (run, await) for progress alone at most every
    -- 50 ms, or every progressInterval when that is shorter: a short interval is kept.
    -- 50 chunks a second: about 50 events at 10 ms, at most ~21 if the 50 ms cap applied.
    -- A download's start (queued -> running) calls no listener, so it wakes no
    -- waiter: the state is taken with the next news, or by the next poll.
    it("a start alone does not end poll(ms)", function()
      local t = start(F.url("/bytes?n=10&hdelay=600"))
      local t0 = now()
      dt.poll(3000)
      assert.is_true(now() - t0 >= 0.4, ("poll returned after %.3f s"):format(now() - t0))
      assert.are_not.equal("queued", t.state) -- ended by the answer's news (headers, end)
      drain()
    end)

    it("progressInterval=10 is kept while run() waits (shorter than the 50 ms wake-up cap)", function()
      dt.configure { progressInterval = 10 }
      local _, log = start(trickle(100000, 100000, "&chunk=2000"))
      dt.run() -- waits for the engine's wake-ups only (drain's poll(10) would not)
      assert.equals(1, count(log, "success"))
      local n = count(log, "progress")
      assert.is_true(n >= 30, "interval 10 ms: " .. n .. " events")
    end)
  end)

  --------------------------------------------------------------------------
  it("onHeadersReceived gets the final response after redirects", function()
    local _, log = start(F.url("/redirect/2?n=32"))
    drain()
    assert.equals(1, count(log, "headers"))
    local h = first(log, "headers")
    assert.equals(200, h.statusCode)
    assert.equals("32", h.header["content-length"])
    assert.equals("application/octet-stream", h.header["content-type"])
    assert.is_nil(h.header["location"])
    local res = first(log, "success")
    assert.equals(200, res.statusCode)
    assert.equals(32, res.dataLength)
  end)

  --------------------------------------------------------------------------
  describe("adding and removing listeners", function()
    it("off(fn) removes every registration of fn and leaves the others", function()
      local t, log = start(trickle(40000, 100000))
      local pf, pg, hf, hg = 0, 0, 0, 0
      local function PF() pf = pf + 1 end
      local function PG() pg = pg + 1 end
      local function HF() hf = hf + 1 end
      local function HG() hg = hg + 1 end
      t:onProgressUpdate(PF); t:onProgressUpdate(PG); t:onProgressUpdate(PF)
      t:onHeadersReceived(HF); t:onHeadersReceived(HG); t:onHeadersReceived(HF)
      t:offProgressUpdate(PF)
      t:offHeadersReceived(HF)
      drain()
      assert.equals(1, count(log, "success"))
      assert.equals(0, pf)
      assert.equals(count(log, "progress"), pg)
      assert.equals(0, hf)
      assert.equals(1, hg)
    end)

    it("off() without an argument removes every listener", function()
      local t, log = start(trickle(40000, 100000))
      local calls = 0
      t:onProgressUpdate(function() calls = calls + 1 end)
      t:onHeadersReceived(function() calls = calls + 1 end)
      t:offProgressUpdate()
      t:offHeadersReceived()
      drain()
      assert.equals(0, calls)
      assert.equals(0, count(log, "progress"))   -- the recorders went too
      assert.equals(0, count(log, "headers"))
      assert.equals("success complete", seq(log))
    end)

    it("adding the same function twice calls it twice per event", function()
      local t, log = start(trickle(40000, 100000))
      local pf, hf = 0, 0
      local function PF() pf = pf + 1 end
      local function HF() hf = hf + 1 end
      t:onProgressUpdate(PF); t:onProgressUpdate(PF)
      t:onHeadersReceived(HF); t:onHeadersReceived(HF)
      drain()
      assert.is_true(count(log, "progress") >= 1)
      assert.equals(2 * count(log, "progress"), pf)
      assert.equals(2, hf)
    end)

    it("adding or removing inside a listener takes effect from the next event", function()
      local t, log = start(trickle(60000, 120000), nil, false)
      local events, n = {}, 0
      local G = function() table.insert(events[n], "G") end
      local H = function() table.insert(events[n], "H") end
      t:onProgressUpdate(function()
        n = n + 1
        events[n] = { "A" }
        if n == 1 then
          t:onProgressUpdate(H)
          t:offProgressUpdate(G)
        end
      end)
      t:onProgressUpdate(G)
      local hb, hc = 0, 0
      local HB = function() hb = hb + 1 end
      local HC = function() hc = hc + 1 end
      t:onHeadersReceived(function()
        t:onHeadersReceived(HB)
        t:offHeadersReceived(HC)
      end)
      t:onHeadersReceived(HC)
      drain()
      assert.equals("success complete", seq(log))
      assert.is_true(n >= 2, "need two progress events, got " .. n)
      assert.same({ "A", "G" }, events[1])
      for i = 2, n do assert.same({ "A", "H" }, events[i]) end
      assert.equals(1, hc)   -- removed during its own event: still called for it
      assert.equals(0, hb)   -- added during the only headers event: never called
    end)
  end)

  --------------------------------------------------------------------------
  describe("abort", function()
    it("while queued behind maxConcurrent", function()
      dt.configure { maxConcurrent = 1 }
      local t1, l1 = start(F.url("/hang"))
      local t2, l2 = start(F.url("/bytes?n=16"))
      poll_until(function() return t1.state == "running" end)
      settle(100)
      assert.equals("queued", t2.state)
      t2:abort()
      assert.equals("aborted", t2.state)
      t1:abort()
      assert.equals("aborted", t1.state)
      drain()
      assert.equals("fail complete", seq(l2))
      assert_aborted(l2)
      assert.equals("fail complete", seq(l1))
      assert_aborted(l1)
    end)

    it("while connecting / waiting for headers", function()
      local t, log = start(F.url("/hang"))
      poll_until(function() return t.state == "running" end)
      settle(100)
      t:abort()
      assert.equals("aborted", t.state)
      drain()
      assert.equals("fail complete", seq(log))
      assert_aborted(log)
      assert.equals("aborted", t.state)
    end)

    it("mid-body: nothing after abort, no file and no temporary file left", function()
      local dir = S.tmpdir()
      local t, log = start(trickle(200000, 100000), { filePath = dir .. "/out.bin" })
      poll_until(function()
        local p = progresses(log)
        return #p > 0 and p[#p].totalBytesWritten > 0
      end)
      local np = count(log, "progress")
      t:abort()
      assert.equals("aborted", t.state)
      drain()
      settle(200)
      assert.equals(np, count(log, "progress"))
      assert.equals("headers progress+ fail complete", seq(log))
      assert_aborted(log)
      assert.same({}, listing(dir, {}))
    end)

    it("after the transfer finished but before success was delivered (destination unchanged)", function()
      local dir = S.tmpdir()
      local dest = dir .. "/out.txt"
      S.writefile(dest, "old content")
      local t, log = start(NG.url("/small.txt"), { filePath = dest })
      socket.sleep(0.3)   -- the engine finishes meanwhile; nothing is delivered without poll
      assert.equals(0, #log)
      t:abort()
      assert.equals("aborted", t.state)
      dt.run()
      assert.equals("fail complete", seq(log))
      assert_aborted(log)
      assert.equals("old content", S.readfile(dest))
      assert.same({ "out.txt" }, listing(dir, { "out.txt" }))
    end)

    it("after the transfer finished but before success was delivered (no destination before)", function()
      local dir = S.tmpdir()
      local t, log = start(NG.url("/1k.bin"), { filePath = dir .. "/out.bin" })
      socket.sleep(0.3)
      t:abort()
      assert.equals("aborted", t.state)
      dt.run()
      assert.equals("fail complete", seq(log))
      assert_aborted(log)
      assert.same({}, listing(dir, {}))
    end)

    -- Regression (was a bug, fixed): when a download is aborted after its transfer finished (and, most
    -- of the time, mid-body too), its <dest>.<random>.part file still exists
    -- when fail "abort" is delivered and when run() returns: it is unlinked
    -- later, on the engine thread, when the transfer's last reference goes
    -- (xfer_free -> dt_result_discard of pub.result; drop() -> close_body),
    -- i.e. after the abort command is processed. A program that does
    -- `t:abort(); dt.run(); os.exit(0)` keeps the .part file forever.
    it("an aborted download's temporary file is gone when fail is delivered", function()
      local dir = S.tmpdir()
      local at_fail
      local t, log = start(NG.url("/1k.bin"), {
        filePath = dir .. "/out.bin",
        fail = function() at_fail = S.listdir(dir) end,
      })
      socket.sleep(0.3)   -- the transfer finishes; nothing is delivered
      t:abort()
      dt.run()
      assert_aborted(log)
      assert.same({}, at_fail)
    end)

    it("from the last progress listener (100%): no file and no temporary file left", function()
      local dir = S.tmpdir()
      local t, log = start(NG.url("/1k.bin"), { filePath = dir .. "/out.bin" })
      t:onProgressUpdate(function(p) if p.progress == 100 then t:abort() end end)
      dt.run()
      settle(100)
      assert.equals(1024, progresses(log)[#progresses(log)].totalBytesWritten)
      assert.equals("headers progress+ fail complete", seq(log))
      assert_aborted(log)
      assert.same({}, S.listdir(dir))
    end)

    it("after a listener error interrupted an event: the rest of it is skipped", function()
      local t, log = start(F.url("/bytes?n=1000"), nil, false)
      local later = 0
      t:onHeadersReceived(function() error("boom-headers") end)
      t:onHeadersReceived(function() later = later + 1 end)
      t:onProgressUpdate(function() later = later + 1 end)
      local ok, err = pcall(dt.run)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("boom-headers", 1, true))
      t:abort()
      assert.equals("aborted", t.state)
      dt.run()
      assert.equals(0, later)
      assert.equals("fail complete", seq(log))
      assert_aborted(log)
    end)

    it("twice: one fail", function()
      local t, log = start(F.url("/hang"))
      poll_until(function() return t.state == "running" end)
      t:abort()
      t:abort()
      assert.equals("aborted", t.state)
      drain()
      t:abort()
      settle(100)
      assert.equals("fail complete", seq(log))
      assert_aborted(log)
    end)

    it("from inside a headers listener: the rest of that event is skipped, fail comes next", function()
      local dest = S.tmpdir() .. "/out.bin"
      local t, log = start(trickle(100000, 200000), { filePath = dest }, false)
      local state_in, later = nil, 0
      t:onHeadersReceived(function()
        t:abort()
        state_in = t.state
      end)
      t:onHeadersReceived(function() later = later + 1 end)
      t:onProgressUpdate(function() later = later + 1 end)
      drain()
      settle(100)
      assert.equals("aborted", state_in)
      assert.equals(0, later)
      assert.equals("fail complete", seq(log))
      assert_aborted(log)
      assert.is_nil(S.filesize(dest))
    end)

    it("from inside a progress listener", function()
      local t, log = start(trickle(100000, 200000), nil, false)
      local calls, skipped, state_in = 0, 0, nil
      t:onProgressUpdate(function()
        calls = calls + 1
        t:abort()
        state_in = t.state
      end)
      t:onProgressUpdate(function() skipped = skipped + 1 end)
      drain()
      settle(100)
      assert.equals(1, calls)
      assert.equals(0, skipped)
      assert.equals("aborted", state_in)
      assert.equals("fail complete", seq(log))
      assert_aborted(log)
    end)

    it("from inside success: a no-op, state stays done", function()
      local t, state_in
      local log
      t, log = start(NG.url("/small.txt"), {
        success = function() t:abort(); state_in = t.state end,
      })
      drain()
      settle(100)
      assert.equals("done", state_in)
      assert.equals("done", t.state)
      assert.equals("headers progress+ success complete", seq(log))
      assert.equals(0, count(log, "fail"))
    end)

    it("from inside fail: a no-op, one fail", function()
      local t, state_in
      local log
      t, log = start(F.url("/close"), {
        fail = function() t:abort(); state_in = t.state end,
      })
      drain()
      settle(100)
      assert.equals("failed", state_in)
      assert.equals("failed", t.state)
      assert.equals("fail complete", seq(log))
      assert.is_not.equals("downloadFile:fail abort", first(log, "fail").errMsg)
    end)

    it("from inside complete: a no-op", function()
      local t
      local log
      t, log = start(NG.url("/small.txt"), { complete = function() t:abort() end })
      drain()
      settle(100)
      assert.equals("done", t.state)
      assert.equals("headers progress+ success complete", seq(log))
    end)
  end)

  --------------------------------------------------------------------------
  describe("listener errors", function()
    it("a string error leaves run() with a traceback; the rest is delivered once; module usable", function()
      local t, log = start(trickle(40000, 100000))
      local a, b, raised = 0, 0, false
      t:onProgressUpdate(function()
        a = a + 1
        if not raised then
          raised = true
          error("boom-progress")
        end
      end)
      t:onProgressUpdate(function() b = b + 1 end)
      local ok, err = pcall(dt.run)
      assert.is_false(ok)
      assert.equals("string", type(err))
      assert.truthy(err:find("boom-progress", 1, true))
      assert.truthy(err:find("stack traceback", 1, true))
      dt.run()
      assert.equals(a, b)   -- the listener after the one that raised still got that event
      assert.equals(count(log, "progress"), a)
      assert.equals(1, count(log, "headers"))
      assert.equals(1, count(log, "success"))
      assert.equals(1, count(log, "complete"))
      assert.equals("done", t.state)
      local _, log2 = start(NG.url("/small.txt"))
      dt.run()
      assert.equals(1, count(log2, "success"))
    end)

    it("a table error comes out of poll() unchanged; the rest is delivered once", function()
      local t, log = start(trickle(40000, 100000))
      local E = { "my error" }
      local a, b, raised = 0, 0, false
      t:onProgressUpdate(function()
        a = a + 1
        if not raised then
          raised = true
          error(E)
        end
      end)
      t:onProgressUpdate(function() b = b + 1 end)
      local ok, err = pcall(function()
        local deadline = now() + 10
        while dt.poll(10) > 0 do assert(now() < deadline) end
      end)
      assert.is_false(ok)
      assert.is_true(rawequal(E, err))
      drain()
      assert.equals(a, b)
      assert.equals(1, count(log, "success"))
      assert.equals(1, count(log, "complete"))
      assert.equals("done", t.state)
      local _, log2 = start(NG.url("/small.txt"))
      drain()
      assert.equals(1, count(log2, "success"))
    end)

    it("an error in success still lets complete through, once", function()
      local t, log = start(NG.url("/small.txt"), { success = function() error("boom-success") end })
      local ok, err = pcall(dt.run)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("boom-success", 1, true))
      dt.run()
      settle(100)
      assert.equals("headers progress+ success complete", seq(log))
      assert.equals("done", t.state)
    end)

    it("coroutine.yield in a listener (poll from the main thread) raises; module usable", function()
      local t, log = start(NG.url("/small.txt"))
      t:onHeadersReceived(function() coroutine.yield() end)
      local ok, err = pcall(dt.run)
      assert.is_false(ok)
      assert.truthy(tostring(err):find("yield", 1, true))
      dt.run()
      assert.equals(1, count(log, "success"))
      assert.equals(1, count(log, "complete"))
      local _, log2 = start(NG.url("/small.txt"))
      dt.run()
      assert.equals(1, count(log2, "success"))
    end)

    it("coroutine.yield in a listener (poll from inside a coroutine) raises; module usable", function()
      local t, log = start(NG.url("/small.txt"))
      t:onHeadersReceived(function() coroutine.yield("leaked") end)
      local co = coroutine.create(function()
        local deadline = now() + 10
        while dt.poll(10) > 0 do assert(now() < deadline) end
        return "drained"
      end)
      local ok, err = coroutine.resume(co)
      assert.is_false(ok, "the yield must not escape to our resume: " .. tostring(err))
      assert.truthy(tostring(err):find("yield", 1, true))
      drain()
      assert.equals(1, count(log, "success"))
      assert.equals(1, count(log, "complete"))
    end)
  end)

  --------------------------------------------------------------------------
  describe("re-entrancy", function()
    it("a download started inside a listener completes", function()
      local log2
      local _, log1 = start(NG.url("/small.txt"), {
        success = function() _, log2 = start(NG.url("/1k.bin")) end,
      })
      dt.run()
      assert.equals(1, count(log1, "success"))
      assert.is_table(log2)
      assert.equals("headers progress+ success complete", seq(log2))
      assert.equals(1024, first(log2, "success").dataLength)
    end)

    it("poll() inside a listener works", function()
      local t, log = start(NG.url("/small.txt"))
      local t2, log2 = start(NG.url("/1k.bin"))
      local inner = {}
      t:onHeadersReceived(function()
        inner[#inner + 1] = { pcall(dt.poll, 0) }
        inner[#inner + 1] = { pcall(dt.poll, 20) }
      end)
      dt.run()
      assert.equals(2, #inner)
      for _, r in ipairs(inner) do
        assert.is_true(r[1], tostring(r[2]))
        assert.equals("integer", S.math_type(r[2]))
      end
      assert.equals("headers progress+ success complete", seq(log))
      assert.equals("headers progress+ success complete", seq(log2))
      assert.equals("done", t.state)
      assert.equals("done", t2.state)
    end)

    it("run() inside a listener raises an error mentioning run", function()
      local t, log = start(NG.url("/small.txt"))
      local ok, err
      t:onHeadersReceived(function() ok, err = pcall(dt.run) end)
      dt.run()
      assert.is_false(ok)
      assert.truthy(tostring(err):find("run", 1, true))
      assert.equals(1, count(log, "success"))
    end)

    it("a blocking await() inside a listener raises a clear error", function()
      local t, log = start(NG.url("/small.txt"))
      local t2, log2 = start(F.url("/hang"))   -- must not have ended: that returns at once
      local ok, err
      t:onHeadersReceived(function()
        ok, err = pcall(t2.await, t2)
        t2:abort()
      end)
      dt.run()
      assert.is_false(ok)
      assert.truthy(tostring(err):find("await", 1, true))
      assert.truthy(tostring(err):find("coroutine", 1, true))
      assert.equals(1, count(log, "success"))
      assert_aborted(log2)
    end)

    it("await inside a coroutine started inside a listener works", function()
      local t, log = start(trickle(20000, 100000))
      local got_self, got_other, t2
      t:onHeadersReceived(function()
        coroutine.wrap(function() got_self = t:await() end)()
        t2 = start(NG.url("/1k.bin"))
        coroutine.wrap(function() got_other = t2:await() end)()
      end)
      dt.run()
      assert.is_table(got_self)
      assert.is_true(rawequal(first(log, "success"), got_self))
      assert.is_table(got_other)
      assert.equals(1024, got_other.dataLength)
    end)
  end)

  --------------------------------------------------------------------------
  describe("await", function()
    it("inside a coroutine returns res on success and nil, err on failure", function()
      local ok_t, ok_log = start(NG.url("/small.txt"))
      local bad_t, bad_log = start(F.url("/close"))
      local r1, r2
      coroutine.wrap(function() r1 = pack(ok_t:await()) end)()
      coroutine.wrap(function() r2 = pack(bad_t:await()) end)()
      assert.is_nil(r1)
      assert.is_nil(r2)
      dt.run()
      assert.equals(1, r1.n)
      assert.is_true(rawequal(first(ok_log, "success"), r1[1]))
      assert.equals(200, r1[1].statusCode)
      assert.equals(2, r2.n)
      assert.is_nil(r2[1])
      assert.is_true(rawequal(first(bad_log, "fail"), r2[2]))
      assert.equals("number", type(r2[2].errno))
    end)

    it("outside a coroutine drives the loop and returns the same", function()
      local ok_t, ok_log = start(NG.url("/small.txt"))
      local res = ok_t:await()
      assert.is_true(rawequal(first(ok_log, "success"), res))
      assert.equals(S.SMALL_TXT, S.readfile(res.tempFilePath))
      os.remove(res.tempFilePath)
      local bad_t, bad_log = start(F.url("/close"))
      local r = pack(bad_t:await())
      assert.equals(2, r.n)
      assert.is_nil(r[1])
      assert.is_true(rawequal(first(bad_log, "fail"), r[2]))
    end)

    it("several coroutines awaiting one task are all resumed, in order", function()
      local t, log = start(trickle(20000, 100000))
      local order, results = {}, {}
      for i = 1, 3 do
        coroutine.wrap(function()
          results[i] = t:await()
          order[#order + 1] = i
        end)()
      end
      dt.run()
      assert.same({ 1, 2, 3 }, order)
      for i = 1, 3 do assert.is_true(rawequal(first(log, "success"), results[i])) end
    end)

    it("a coroutine resumed early by the user just waits again", function()
      local t, log = start(trickle(20000, 100000))
      local returns = 0
      local got
      local co = coroutine.create(function()
        got = t:await()
        returns = returns + 1
        return "finished"
      end)
      assert.is_true(coroutine.resume(co))
      poll_until(function() return t.state == "running" end)
      local ok, v = coroutine.resume(co, "spurious")
      assert.is_true(ok)
      assert.is_nil(v)
      assert.equals("suspended", coroutine.status(co))
      assert.equals(0, returns)
      dt.run()
      assert.equals(1, returns)
      assert.equals("dead", coroutine.status(co))
      assert.is_true(rawequal(first(log, "success"), got))
    end)

    it("one coroutine can await several tasks in turn; an aborted task gives nil, abort", function()
      local t1, l1 = start(NG.url("/small.txt"))
      local r1, r2, e2, t2
      coroutine.wrap(function()
        r1 = t1:await()
        t2 = start(F.url("/hang"))
        r2, e2 = t2:await()
      end)()
      poll_until(function() return t2 ~= nil and t2.state == "running" end)
      t2:abort()
      drain()
      assert.is_true(rawequal(first(l1, "success"), r1))
      assert.is_nil(r2)
      assert.equals("downloadFile:fail abort", e2.errMsg)
      assert.equals(600003, e2.errno)
    end)

    -- Regression (was a bug, fixed): the dispatcher resumes a coroutine that is no longer waiting in
    -- await(). Here the coroutine's await() already returned (it was resumed
    -- from the complete callback, after the task ended), and the coroutine
    -- then yielded to its own scheduler; the wake stage that follows complete
    -- still resumes it, with no values, because wake() in src/dispatch.c only
    -- checks lua_status(co) == LUA_YIELD, not that co is still in await_k.
    -- The same happens when complete raises and the user resumes the
    -- coroutine before the next poll.
    it("a waiter whose await already returned is not resumed again by the dispatcher", function()
      local co
      local t = start(NG.url("/small.txt"), {
        complete = function() assert(coroutine.resume(co)) end,
      })
      local awaited, resumed_again = 0, 0
      co = coroutine.create(function()
        t:await()
        awaited = awaited + 1
        coroutine.yield("waiting for my own scheduler")
        resumed_again = resumed_again + 1
      end)
      assert.is_true(coroutine.resume(co))
      dt.run()
      settle(50)
      assert.equals(1, awaited)
      assert.equals(0, resumed_again, "the dispatcher resumed a coroutine not waiting in await")
      assert.equals("suspended", coroutine.status(co))
    end)

    it("on an ended task returns at once", function()
      local t, log = start(NG.url("/small.txt"))
      local bad, bad_log = start(F.url("/close"))
      dt.run()
      assert.is_true(rawequal(first(log, "success"), t:await()))
      local co = coroutine.create(function() return t:await() end)
      local ok, r = coroutine.resume(co)
      assert.is_true(ok)
      assert.equals("dead", coroutine.status(co))
      assert.is_true(rawequal(first(log, "success"), r))
      local r2 = pack(bad:await())
      assert.is_nil(r2[1])
      assert.is_true(rawequal(first(bad_log, "fail"), r2[2]))
    end)

    it("an error raised by a coroutine after await returns propagates with its traceback", function()
      local t = start(NG.url("/small.txt"))
      local line
      local co = coroutine.create(function()
        t:await()
        line = debug.getinfo(1, "l").currentline + 1
        error("after-await-boom")
      end)
      assert.is_true(coroutine.resume(co))
      local ok, err = pcall(dt.run)
      assert.is_false(ok)
      assert.equals("string", type(err))
      assert.truthy(err:find("after-await-boom", 1, true))
      assert.truthy(err:find("stack traceback", 1, true))
      -- the coroutine's own frame appears in the traceback
      assert.truthy(err:find("events_spec.lua:" .. line .. ": in ", 1, true), err)
      drain()
      local t2 = start(NG.url("/small.txt"))
      local E = {}
      coroutine.wrap(function() t2:await(); error(E) end)()
      local ok2, err2 = pcall(dt.run)
      assert.is_false(ok2)
      assert.is_true(rawequal(E, err2))
      drain()
    end)
  end)

  --------------------------------------------------------------------------
  describe("poll and run", function()
    it("while dt.poll(10) > 0 completes downloads", function()
      local logs = {}
      for _, p in ipairs { "/small.txt", "/1k.bin", "/1m.bin" } do
        local _, log = start(NG.url(p))
        logs[#logs + 1] = log
      end
      local deadline = now() + 10
      while dt.poll(10) > 0 do assert(now() < deadline) end
      for _, log in ipairs(logs) do
        assert.equals("headers progress+ success complete", seq(log))
      end
    end)

    it("poll() returns the number of tasks not yet ended", function()
      assert.equals(0, dt.poll())
      local tasks = {}
      for i = 1, 3 do tasks[i] = start(F.url("/slow?ms=300&n=10")) end
      assert.equals(3, dt.poll(0))
      local deadline = now() + 10
      repeat
        local n = dt.poll(10)
        local ended = 0
        for _, t in ipairs(tasks) do if t.state == "done" then ended = ended + 1 end end
        assert.equals(3 - ended, n)
        assert(now() < deadline)
      until n == 0
      assert.equals(0, dt.poll(0))
    end)

    it("poll(0) returns at once when nothing is ready; poll(ms) waits", function()
      local t = start(F.url("/hang"))
      poll_until(function() return t.state == "running" end)
      local t0 = now()
      assert.equals(1, dt.poll(0))
      assert.is_true(now() - t0 < 0.05, "poll(0) took " .. (now() - t0))
      t0 = now()
      assert.equals(1, dt.poll(100))
      local waited = now() - t0
      assert.is_true(waited >= 0.05 and waited < 2, "poll(100) took " .. waited)
      t:abort()
      drain()
    end)

    it("run() returns when nothing is left, and at once with no task", function()
      local t1, l1 = start(NG.url("/small.txt"))
      local t2, l2 = start(F.url("/slow?ms=100&n=10"))
      dt.run()
      assert.equals("done", t1.state)
      assert.equals("done", t2.state)
      assert.equals(1, count(l1, "complete"))
      assert.equals(1, count(l2, "complete"))
      assert.equals(0, dt.poll(0))
      local t0 = now()
      dt.run()
      assert.is_true(now() - t0 < 0.05)
    end)
  end)

  --------------------------------------------------------------------------
  it("task.state and tostring(task) follow the task", function()
    dt.configure { maxConcurrent = 1 }
    local u1, u2 = F.url("/slow?ms=300&n=10"), NG.url("/small.txt")
    local t1 = start(u1)
    local t2 = start(u2)
    assert.equals("queued", t1.state)   -- nothing seen by Lua yet
    poll_until(function() return t1.state == "running" end)
    assert.equals("queued", t2.state)
    assert.truthy(tostring(t2):find("queued", 1, true))
    assert.truthy(tostring(t2):find(u2, 1, true))
    assert.truthy(tostring(t1):find("running", 1, true))
    assert.truthy(tostring(t1):find(u1, 1, true))
    drain()
    assert.equals("done", t1.state)
    assert.equals("done", t2.state)
    assert.truthy(tostring(t2):find("done", 1, true))
    dt.configure { maxConcurrent = 10 }
    local t404 = start(F.url("/status/404"))
    local tfail = start(F.url("/close"))
    local tab = start(F.url("/hang"))
    tab:abort()
    assert.equals("aborted", tab.state)
    assert.truthy(tostring(tab):find("aborted", 1, true))
    drain()
    assert.equals("done", t404.state)   -- any status code is a success
    assert.equals("failed", tfail.state)
    assert.truthy(tostring(tfail):find("failed", 1, true))
    assert.equals("aborted", tab.state)
  end)

  it("a running task nobody references still delivers success", function()
    local successes, completes = 0, 0
    local function fire_and_forget()
      dt.downloadFile {
        url = trickle(30000, 100000),
        success = function() successes = successes + 1 end,
        complete = function() completes = completes + 1 end,
      }
    end
    fire_and_forget()
    local deadline = now() + 10
    while completes == 0 do
      collectgarbage("collect")
      collectgarbage("collect")
      dt.poll(10)
      assert(now() < deadline, "the unreferenced task never ended")
    end
    collectgarbage("collect")
    settle(100)
    assert.equals(1, successes)
    assert.equals(1, completes)
  end)

  describe("<close>", function()
    -- Lua 5.4 only; S.with_close(v, fn) is `do local t <close> = v; fn(t) end`
    local it = S.with_close and it or pending
    it("leaving the scope before the end aborts the task", function()
      local ref, log
      S.with_close(dt.downloadFile { url = F.url("/hang") }, function(t)
        live[#live + 1] = t
        ref = t
        log = {}
        t:onHeadersReceived(function() log[#log + 1] = { "headers" } end)
        poll_until(function() return t.state == "running" end)
      end)
      assert.equals("aborted", ref.state)
      -- the same through start(), whose log shows the fail
      local ref2, log2
      do
        local t2, l2 = start(F.url("/hang"))
        S.with_close(t2, function(t)
          ref2, log2 = t2, l2
          poll_until(function() return t.state == "running" end)
        end)
      end
      assert.equals("aborted", ref2.state)
      assert.equals(0, #log2)   -- delivered at the next poll, not at once
      drain()
      assert.equals("fail complete", seq(log2))
      assert_aborted(log2)
      assert.equals(0, #log)
    end)

    it("leaving the scope after the end does nothing", function()
      local ref, log
      do
        local t1, l1 = start(NG.url("/small.txt"))
        S.with_close(t1, function(t)
          ref, log = t1, l1
          t:await()
        end)
      end
      settle(100)
      assert.equals("done", ref.state)
      assert.equals("headers progress+ success complete", seq(log))
    end)
  end)

  it("maxConcurrent caps the transfers the server sees", function()
    fault_get("/stats/reset")
    dt.configure { maxConcurrent = 3 }
    local logs = {}
    for i = 1, 10 do
      local _, log = start(F.url("/slow?ms=300&n=10&i=" .. i))
      logs[i] = log
    end
    dt.run()
    for i = 1, 10 do assert.equals(1, count(logs[i], "success")) end
    local stats = fault_get("/stats")
    assert.equals(3, tonumber(stats:match('"max":(%d+)')), stats)
    assert.equals(10, tonumber(stats:match('"total":(%d+)')), stats)
  end)

  it("dt.fd() is a stable non-negative integer", function()
    local fd = dt.fd()
    assert.equals("integer", S.math_type(fd))
    assert.is_true(fd >= 0)
    assert.equals(fd, dt.fd())
    local _, log = start(NG.url("/small.txt"))
    dt.run()
    assert.equals(1, count(log, "success"))
    assert.equals(fd, dt.fd())
  end)
end)
