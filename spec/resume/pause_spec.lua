-- task:pause() / task:resume() and configure{rateLimit} (issue 14, README "A short tour", "Many
-- downloads"), against the fault server: /flaky?key=K counts the requests of a key and those
-- that carried a Range header (/stats?key=K); its fault parameters (rate=...) apply to the
-- first `fails` requests only, so a resumed request comes at full speed.
local dt = require "downloadtask"
local S = require "spec.support.servers"
local H = require "spec.support.helpers"
local socket = require "socket"

local T = H.tracker()
local f, ng

setup(function()
  f, ng = S.fault(), S.nginx()
end)
after_each(T.cleanup)

local N = 400000
local keyn = 0
local function key()
  keyn = keyn + 1
  return ("pause%d-%d"):format(math.floor(H.now() * 1000) % 1000000, keyn)
end

-- Polls until fn() is true (10 s at most).
local function poll_until(what, fn)
  local deadline = H.now() + 10
  while not fn() do
    assert(H.now() < deadline, "timed out waiting for " .. what)
    dt.poll(10)
  end
end

-- Polls for `secs` seconds.
local function poll_for(secs)
  local stop = H.now() + secs
  while H.now() < stop do dt.poll(10) end
end

local function stats(k)
  local res = assert(dt.downloadFile { url = f.url("/stats?key=" .. k) }:await())
  local body = S.readfile(res.tempFilePath)
  os.remove(res.tempFilePath)
  return { hits = tonumber(body:match('"hits":(%d+)')), ranges = tonumber(body:match('"ranges":(%d+)')) }
end

-- A download of N pattern bytes into a fresh directory, at `rate` bytes/s on its first
-- request (later ones at full speed); `extra` adds query parameters.
local function slow_download(k, extra, opts)
  local dir = S.tmpdir()
  opts = opts or {}
  opts.url = f.url(("/flaky?key=%s&fails=1&n=%d&rate=100000%s"):format(k, N, extra or ""))
  opts.filePath = dir .. "/file.bin"
  local out = { progress = 0 }
  opts.success = function(r) out.res = r end
  opts.fail = function(e) out.err = e end
  opts.complete = function() out.complete = true end
  out.task = T.start(opts)
  out.task:onProgressUpdate(function(p)
    out.progress = out.progress + 1
    out.now = p.totalBytesWritten
  end)
  out.dir, out.dest = dir, opts.filePath
  return out
end

local function wait_end(out)
  poll_until("the download's end", function() return out.complete end)
end

-- Once d has some bytes: pause, let `seconds` pass (polling), resume, and wait for the end.
local function pause_midway(d, seconds)
  poll_until("some bytes", function() return (d.now or 0) >= 50000 end)
  d.task:pause()
  poll_for(seconds)
  d.task:resume()
  wait_end(d)
end

describe("task:pause() and task:resume()", function()
  it("continue a running download with one Range request; nothing fires while paused", function()
    local k = key()
    local d = slow_download(k, "&range=1&etag=%22v1%22")
    poll_until("some bytes", function() return (d.now or 0) >= 50000 end)
    d.task:pause()
    assert.are.equal("paused", d.task.state)
    local seen = d.progress
    -- the connection is gone: the server's handler sees it closed meanwhile
    poll_for(0.5)
    assert.are.equal(seen, d.progress)
    assert.are.equal("paused", d.task.state)
    assert.is_nil(d.complete)
    d.task:resume()
    assert.are.equal("running", d.task.state)
    wait_end(d)
    assert.is_nil(d.err)
    assert.are.equal("done", d.task.state)
    assert.is_true(S.file_matches_pattern(d.dest, N))
    assert.are.same({ "file.bin" }, S.listdir(d.dir)) -- no temporary file left
    assert.are.same({ hits = 2, ranges = 1 }, stats(k))
  end)

  it("check sha256 over the bytes before and after the pause", function()
    local whole = assert(dt.downloadFile { url = f.url(("/bytes?n=%d"):format(N)) }:await())
    local p = io.popen(("sha256sum %q"):format(whole.tempFilePath))
    local digest = p:read("*l"):match("^(%x+)")
    p:close()
    os.remove(whole.tempFilePath)
    local k = key()
    local d = slow_download(k, "&range=1&etag=%22v1%22", { sha256 = digest })
    pause_midway(d, 0.2)
    assert.is_nil(d.err)
    assert.are.equal(digest, d.res.sha256)
    assert.is_true(S.file_matches_pattern(d.dest, N))
    assert.are.same({ hits = 2, ranges = 1 }, stats(k))
  end)

  it("start over when the server ignores the range (200 instead of 206)", function()
    local k = key()
    local d = slow_download(k, "&etag=%22v1%22") -- no range=1: every answer is a whole 200
    pause_midway(d, 0.2)
    assert.is_nil(d.err)
    assert.is_true(S.file_matches_pattern(d.dest, N))
    assert.are.same({ "file.bin" }, S.listdir(d.dir))
    assert.are.same({ hits = 2, ranges = 1 }, stats(k))
  end)

  it("start over when the server's 206 does not continue the bytes kept", function()
    local k = key()
    -- lie206=start: a Range request gets a 206 of the whole body from byte 0
    local d = slow_download(k, "&range=1&etag=%22v1%22&lie206=start")
    pause_midway(d, 0.2)
    assert.is_nil(d.err) -- no retry option, yet no failure: starting over is no retry
    assert.is_true(S.file_matches_pattern(d.dest, N))
    assert.are.same({ "file.bin" }, S.listdir(d.dir))
    assert.are.same({ hits = 3, ranges = 1 }, stats(k))
  end)

  it("start over without a Range request when the response named no validator", function()
    local k = key()
    local d = slow_download(k, "&range=1")
    pause_midway(d, 0.2)
    assert.is_nil(d.err)
    assert.is_true(S.file_matches_pattern(d.dest, N))
    assert.are.same({ hits = 2, ranges = 0 }, stats(k))
  end)

  it("continue a resume = true download from its part file", function()
    local k = key()
    local d = slow_download(k, "&range=1&etag=%22v1%22", { resume = true })
    pause_midway(d, 0.2)
    assert.is_nil(d.err)
    assert.is_true(S.file_matches_pattern(d.dest, N))
    assert.are.same({ "file.bin" }, S.listdir(d.dir))
    assert.are.same({ hits = 2, ranges = 1 }, stats(k))
  end)

  it("resume after the server has closed the paused connection's socket for good", function()
    -- the paused transfer's connection is closed on pause (its body was unfinished); after a
    -- second the server has long dropped it too, and resume makes a new one
    local k = key()
    local d = slow_download(k, "&range=1&etag=%22v1%22")
    pause_midway(d, 1)
    assert.is_nil(d.err)
    assert.is_true(S.file_matches_pattern(d.dest, N))
    assert.is_false(d.res.profile.socketReused)
    assert.are.same({ hits = 2, ranges = 1 }, stats(k))
  end)

  it("stop the timeout clock while paused", function()
    -- 1.5 s of timeout; the first 50 KB take 0.5 s, the pause 2 s, the rest comes at once
    local k = key()
    local d = slow_download(k, "&range=1&etag=%22v1%22", { timeout = 1500 })
    pause_midway(d, 2)
    assert.is_nil(d.err)
    assert.is_true(S.file_matches_pattern(d.dest, N))
  end)

  it("abort a paused download: fail abort, nothing left on disk", function()
    local k = key()
    local d = slow_download(k, "&range=1&etag=%22v1%22")
    poll_until("some bytes", function() return (d.now or 0) >= 50000 end)
    d.task:pause()
    poll_for(0.2)
    d.task:abort()
    assert.are.equal("aborted", d.task.state)
    wait_end(d)
    assert.are.equal(600003, d.err.errno)
    assert.are.same({}, S.listdir(d.dir))
  end)

  it("keep a paused queued task's place while the others pass it", function()
    dt.configure { maxConcurrent = 1 }
    local order = {}
    local function task(name, url)
      return T.start { url = url, success = function() order[#order + 1] = name end }
    end
    local a = task("a", f.url("/slow?ms=300&n=10"))
    local b = task("b", ng.url("small.txt"))
    local c = task("c", ng.url("small.txt"))
    local d = task("d", f.url("/slow?ms=300&n=10"))
    local e = task("e", ng.url("small.txt"))
    b:pause()
    assert.are.equal("paused", b.state)
    poll_until("c", function() return order[2] == "c" end) -- c passed the paused b
    assert.are.same({ "a", "c" }, order)
    assert.are.equal("paused", b.state)
    -- d runs now; b, resumed, is back in its place: before e
    b:resume()
    assert.are.equal("queued", b.state)
    poll_until("all", function() return #order == 5 end)
    assert.are.same({ "a", "c", "d", "b", "e" }, order)
    assert.are.equal("done", e.state)
    assert.are.equal("done", d.state)
  end)

  it("hold a retry's backoff while paused and go on with it after resume", function()
    local k = key()
    local out = {}
    local t = T.start {
      url = f.url(("/flaky?key=%s&fails=1&status=503&retryafter=1&n=1000"):format(k)),
      retry = 1,
      success = function(r) out.res = r end,
      fail = function(e) out.err = e end,
    }
    poll_until("the 503", function() return stats(k).hits == 1 end)
    t:pause()
    poll_for(1.5) -- longer than the Retry-After: no retry while paused
    assert.are.equal(1, stats(k).hits)
    assert.are.equal("paused", t.state)
    t:resume()
    poll_until("the retry's end", function() return out.res or out.err end)
    assert.is_nil(out.err)
    assert.are.equal(200, out.res.statusCode)
    assert.are.equal(2, stats(k).hits)
  end)

  it("go through the states; no-ops where the contract says so", function()
    dt.configure { maxConcurrent = 1 }
    local a = T.start { url = f.url("/slow?ms=300&n=10") }
    local q = T.start { url = ng.url("small.txt") }
    assert.are.equal("queued", q.state)
    q:resume() -- not paused: nothing
    assert.are.equal("queued", q.state)
    q:pause()
    q:pause() -- paused already: nothing
    assert.are.equal("paused", q.state)
    q:resume()
    assert.are.equal("queued", q.state)
    poll_until("a running", function() return a.state == "running" end)
    a:resume() -- running: nothing
    assert.are.equal("running", a.state)
    a:pause()
    assert.are.equal("paused", a.state)
    -- a paused task is still listed
    assert.are.equal(a, dt.tasks()[1])
    a:resume()
    assert.are.equal("running", a.state)
    assert(a:await())
    assert(q:await())
    assert.are.equal("done", q.state)
    q:pause() -- ended: nothing
    q:resume()
    assert.are.equal("done", q.state)
  end)
end)

-- pause() acts on the binding at once, while the engine may already have published news of
-- the transfer: none of it may reach a listener while the task is paused (chaos, control
-- cases: a headers event taken before the pause was delivered in state "paused").
describe("news published before the pause", function()
  local function record(t, log)
    t:onHeadersReceived(function(h) log[#log + 1] = "headers:" .. t.state end)
    t:onProgressUpdate(function(p) log[#log + 1] = "progress:" .. t.state end)
  end

  it("headers that came before pause() are delivered after resume(), not while paused", function()
    local t = T.start { url = f.url("/bytes?n=100000&rate=50000&etag=E1") }
    local log = {}
    record(t, log)
    socket.sleep(0.3) -- the engine has published the headers (and some progress); Lua took nothing
    t:pause()
    poll_for(0.3)
    assert.are.same({}, log)
    t:resume()
    local res = assert(t:await())
    assert.are.equal(100000, res.dataLength)
    assert.are.equal("headers:running", log[1])
    for _, e in ipairs(log) do assert.is_nil(e:find("paused", 1, true), table.concat(log, " ")) end
  end)

  it("a pause after the transfer ended, before its news was taken, is a no-op", function()
    local out = {}
    local t = T.start { url = ng.url("small.txt"), success = function(r) out.res = r end }
    local log = {}
    record(t, log)
    socket.sleep(0.3) -- done on the engine's side
    t:pause()
    assert.are.equal("paused", t.state) -- the binding does not know yet
    dt.run() -- returns: the task is not paused once its end is taken
    assert.are.equal("done", t.state)
    assert.are.equal(200, out.res.statusCode)
    assert.are.same({ "headers:running", "progress:running" }, log)
    assert.are.equal(0, dt.poll(0))
  end)
end)

-- Blocking waits (run, await and awaitAny outside a coroutine) with nothing but paused tasks
-- left would wait forever: only a listener or a callback could resume one, and none can run.
-- In a child process, so that a wait that does hang ends (timeout 30: rc 124) instead of
-- holding up the suite.
describe("blocking waits and paused tasks", function()
  it("run() returns when every task left is paused; await/awaitAny raise; resume goes on", function()
    local out, rc = H.child(([[
      local dt = require "downloadtask"
      local slow, small = %q, %q
      local a = dt.downloadFile { url = slow }
      local b = dt.downloadFile { url = slow }
      a:pause()
      dt.run() -- b ends; a, paused, does not hold run()
      print("RUN", a.state, b.state, dt.poll(0))
      local ok, err = pcall(a.await, a)
      print("AWAIT", ok, err)
      ok, err = pcall(dt.awaitAny, { a })
      print("ANY", ok, err)
      ok, err = pcall(dt.awaitAll, { a })
      print("ALL", ok, err)
      -- a listener of a running download may resume it: await waits for that
      local c = dt.downloadFile { url = slow }
      c:pause()
      dt.downloadFile { url = small, success = function() c:resume() end }
      local res = c:await()
      print("BY_LISTENER", res and res.statusCode, c.state)
      a:resume()
      res = a:await()
      print("RESUMED", res and res.statusCode, a.state, dt.poll(0))
    ]]):format(f.url("/bytes?n=200000&rate=800000"), ng.url("small.txt")))
    assert.are.equal(0, rc, out)
    assert.matches("RUN\tpaused\tdone\t1\n", out)
    assert.matches("AWAIT\tfalse\t[^\n]*DownloadTask:await: the task cannot end: every download left is paused", out)
    assert.matches("ANY\tfalse\t[^\n]*downloadtask.awaitAny: no task can end", out)
    -- named for what was called, not for ngx.lua's await (issue 22 item 15)
    assert.matches("ALL\tfalse\t[^\n]*downloadtask.awaitAll: the task cannot end", out)
    assert.is_nil(out:match("ALL\tfalse\t[^\n]*ngx%.lua"), out)
    assert.matches("BY_LISTENER\t200\tdone\n", out)
    assert.matches("RESUMED\t200\tdone\t0\n", out)
  end)
end)

describe("configure{rateLimit}", function()
  it("caps the sum of the running downloads within 10 % over 5 s, shared evenly", function()
    dt.configure { rateLimit = 300000 }
    local now = { 0, 0, 0 }
    local tasks = {}
    for i = 1, 3 do
      tasks[i] = T.start { url = f.url("/bytes?n=20000000") }
      tasks[i]:onProgressUpdate(function(p) now[i] = p.totalBytesWritten end)
    end
    poll_until("all running", function() return now[1] > 0 and now[2] > 0 and now[3] > 0 end)
    local t0, base = H.now(), now[1] + now[2] + now[3]
    poll_for(5)
    local secs = H.now() - t0
    local got = now[1] + now[2] + now[3] - base
    local expected = 300000 * secs
    assert(math.abs(got - expected) <= expected * 0.1,
      ("%d bytes in %.2f s, expected %.0f +-10 %%"):format(got, secs, expected))
    for i = 1, 3 do -- fair: each near a third
      assert(now[i] > 0.25 * (got + base) and now[i] < 0.42 * (got + base),
        ("download %d has %d of %d bytes"):format(i, now[i], got + base))
    end
    for i = 1, 3 do tasks[i]:abort() end
  end)
end)
