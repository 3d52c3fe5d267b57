-- Regression, issue 10 item 15 (#15): `attempts` was only in res/err when `retry` was given,
-- and never after an abort; `res.sha256` on a 304 was documented as set. SPEC 0.2:
-- "res.attempts and err.attempts are always present: the requests made (1 without retry;
-- 0 for a task aborted before its first request)". res.sha256 is there on a 304 too: without
-- a file, the digest of what was written (nothing); with filePath, the digest of the
-- destination as it stands (regress_file_promise_spec).
local dt = require "downloadtask"
local S = require "spec.support.servers"
local H = require "spec.support.helpers"
local socket = require "socket"

local T = H.tracker()

local function stats(key)
  local res = assert(dt.downloadFile { url = S.fault().url("/stats?key=" .. key) }:await())
  local body = S.readfile(res.tempFilePath)
  os.remove(res.tempFilePath)
  return tonumber(body:match('"hits":(%d+)'))
end

describe("regression: attempts always present", function()
  after_each(T.cleanup)

  it("res.attempts is 1 without retry (a 200, a 404)", function()
    local ng = S.nginx()
    local out = T.fetch { url = ng.url("small.txt") }
    H.expect_ok(out)
    assert.are.equal(1, out.res.attempts)
    out = T.fetch { url = ng.url("no-such-file") }
    assert.are.equal(404, out.res.statusCode)
    assert.are.equal(1, out.res.attempts)
    os.remove(out.res.tempFilePath)
  end)

  it("err.attempts is 0 for a task aborted before its first request", function()
    dt.configure { maxConcurrent = 1 }
    local f = S.fault()
    local blocker = T.start { url = f.url("/hang") }
    local queued = T.start { url = f.url("/bytes?n=10") }
    dt.poll(50)
    assert.are.equal("queued", queued.state)
    queued:abort()
    local immediate = T.start { url = f.url("/bytes?n=10") }
    immediate:abort()
    for _, t in ipairs { queued, immediate } do
      local r, err = t:await()
      assert.is_nil(r)
      assert.are.equal("downloadFile:fail abort", err.errMsg)
      assert.are.equal(0, err.attempts)
    end
    blocker:abort()
    local _, err = blocker:await()
    assert.are.equal(600003, err.errno)
    assert.are.equal(1, err.attempts)
  end)

  it("err.attempts after an abort with retry counts the requests started", function()
    local f = S.fault()
    local key = "abort-attempts-" .. tostring(socket.gettime())
    local t = T.start { url = f.url("/flaky?key=" .. key .. "&fails=100&status=503&n=10"), retry = 8 }
    local deadline = socket.gettime() + 10
    while (stats(key) or 0) < 2 and socket.gettime() < deadline do dt.poll(50) end
    t:abort()
    local r, err = t:await()
    assert.is_nil(r)
    assert.are.equal(600003, err.errno)
    local hits = stats(key)
    assert.is_true(hits >= 2, "hits " .. hits)
    -- an attempt the engine had started may not have reached the server yet
    assert.is_true(err.attempts == hits or err.attempts == hits + 1,
      ("err.attempts %s, server saw %d"):format(tostring(err.attempts), hits))
  end)

  it("a 304 without filePath: res.sha256 is the digest of what was written, nothing; attempts 1", function()
    local f = S.fault()
    local out = T.fetch { url = f.url("/bytes?n=10&etag=%22v1%22"), etag = '"v1"', sha256 = ("a"):rep(64) }
    H.expect_ok(out, 304)
    assert.are.equal("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", out.res.sha256)
    assert.are.equal(0, out.res.dataLength)
    assert.are.equal(1, out.res.attempts)
  end)

  -- Seen by the chaos tester under make asan (seed 1796097148): when a second attempt's
  -- headers arrived before Lua took the first's, the first were overwritten and leaked.
  -- Under make asan this spec leaked 165 bytes at 3034216; the listener sees the last attempt's only.
  it("headers of an attempt Lua never saw are dropped for the next attempt's, without a leak", function()
    local f = S.fault()
    local key = "unseen-headers-" .. tostring(socket.gettime())
    local dest = os.tmpname()
    os.remove(dest)
    local t = T.start { url = f.url("/flaky?key=" .. key .. "&fails=1&n=50000&dropafter=20000&etag=%22u1%22"),
      filePath = dest, resume = true, retry = 2 }
    local seen = {}
    t:onHeadersReceived(function(h) seen[#seen + 1] = h.statusCode end)
    local deadline = socket.gettime() + 10
    -- (stats() awaits a download, which would poll: ask with LuaSocket instead)
    local http = require "socket.http"
    local function hits()
      local body = http.request(f.url("/stats?key=" .. key))
      return tonumber(body and body:match('"hits":(%d+)')) or 0
    end
    while hits() < 2 and socket.gettime() < deadline do socket.sleep(0.05) end
    socket.sleep(0.3)                  -- both attempts' headers are published; nobody polled
    local res, err = t:await()
    assert.is_nil(err and err.errMsg)
    assert.are.equal(2, res.attempts)
    assert.are.equal(50000, #S.readfile(dest))
    assert.are.same({ res.statusCode }, seen, "status " .. res.statusCode)
    os.remove(dest)
  end)
end)
