-- Review of the changes since 6da3db5 (engine wake-ups, files made ahead, pause/run):
-- each test fails on the code it was written against and names the fault it pins down.
local dt = require "downloadtask"
local S = require "spec.support.servers"
local H = require "spec.support.helpers"
local socket = require "socket"

local T = H.tracker()
local f

setup(function()
  f = S.fault()
end)
after_each(T.cleanup)

-- Whether dt.fd() becomes readable within secs (socket.select takes any object with getfd).
local function readable_within(secs)
  local fd = dt.fd()
  local obj = { getfd = function() return fd end, dirty = function() return false end }
  local r = socket.select({ obj }, nil, secs)
  return r ~= nil and #r > 0
end

describe("review 0201", function()
  it("resume() that releases held headers makes dt.fd() readable (poll(0) has them to deliver)", function()
    -- every request waits 300 ms before its status line, then 3 s after the first body byte: after
    -- resume() the engine has nothing new to say for 300 ms
    local headers = 0
    local t = T.start { url = f.url("/bytes?n=200000&hdelay=300&stallafter=1&stall=3000") }
    t:onHeadersReceived(function() headers = headers + 1 end)
    socket.sleep(0.6) -- the engine publishes the headers; Lua does not take them yet
    t:pause()
    assert.are.equal("paused", t.state)
    dt.poll(0) -- takes the headers: held, since the task is paused
    assert.are.equal(0, headers)
    assert.is_false(readable_within(0.1)) -- nothing else to deliver meanwhile
    t:resume()
    -- poll(0) would deliver the held headers now: the descriptor must say so
    local readable = readable_within(0.3)
    dt.poll(0)
    assert.are.equal(1, headers)
    assert.is_true(readable, "dt.fd() stayed unreadable while poll(0) had the headers to deliver")
  end)
  it("pause() in a progress listener: the event's other listeners wait for resume()", function()
    local seen, paused_calls, events = {}, 0, 0
    local done = false
    local t = T.start { url = f.url("/bytes?n=300000&rate=300000"), complete = function() done = true end }
    t:onProgressUpdate(function()
      events = events + 1
      if events == 1 then t:pause() end
    end)
    t:onProgressUpdate(function(p)
      seen[#seen + 1] = p.totalBytesWritten
      if t.state == "paused" then paused_calls = paused_calls + 1 end
    end)
    local deadline = H.now() + 5
    while events == 0 and H.now() < deadline do dt.poll(10) end
    assert.are.equal(1, events)
    assert.are.equal("paused", t.state)
    -- "no event fires until resume": the second listener is not called while paused
    assert.are.equal(0, paused_calls)
    assert.are.equal(0, #seen)
    t:resume()
    while not done and H.now() < deadline + 5 do dt.poll(10) end
    assert.is_true(done)
    assert.are.equal(0, paused_calls)
    -- the held event reached the second listener after resume(): it missed nothing
    assert.is_true(#seen >= 1)
  end)
  -- (lead) An event held by pause() midway belongs to the paused task: an abort while paused
  -- drops it, as an abort from a listener skips the rest of that event.
  it("abort() while an event is held by a pause from its listener: the rest is never delivered", function()
    local second, events, got = 0, 0, nil
    local t = T.start { url = f.url("/bytes?n=300000&rate=300000"), complete = function(r) got = r end }
    t:onProgressUpdate(function()
      events = events + 1
      if events == 1 then t:pause() end
    end)
    t:onProgressUpdate(function() second = second + 1 end)
    local deadline = H.now() + 5
    while events == 0 and H.now() < deadline do dt.poll(10) end
    assert.are.equal("paused", t.state)
    t:abort()
    while not got and H.now() < deadline + 5 do dt.poll(10) end
    assert.are.equal("downloadFile:fail abort", got.errMsg)
    assert.are.equal(0, second)
    assert.are.equal(1, events)
  end)
  -- The engine says when nothing can move without the caller (engine_stuck): B waits only
  -- for a paused task's destination.
  it("run() does not wait forever for a task queued behind a paused one's destination", function()
    -- A (running, then paused) holds its destination; B, with the same filePath, waits in
    -- the queue until A has finished, which cannot happen while run() blocks. run() returns
    -- when every live task is paused; B is not paused, yet nothing can move it. In a child
    -- process, so that the hang is a timeout, not a stuck suite.
    local dir = S.tmpdir()
    local script = dir .. "/child.lua"
    S.writefile(script, [[
local dt = require "downloadtask"
local dest, url = arg[1], arg[2]
local got = 0
local a = dt.downloadFile { url = url, filePath = dest }
a:onProgressUpdate(function(p) got = p.totalBytesWritten end)
while got == 0 do dt.poll(10) end
a:pause()
local b = dt.downloadFile { url = url, filePath = dest }
dt.run()
print("run returned", a.state, b.state)
print("await", pcall(b.await, b))
a:resume()
local ra, rb = a:await(), b:await()
print("resumed", ra and ra.statusCode, rb and rb.statusCode)
]])
    local out, rc = S.run(("timeout 30 env LUA_CPATH=%s %s %s %s %s 2>&1"):format(S.quote(S.MODULE_CPATH .. ";;"),
      S.LUA, S.quote(script), S.quote(dir .. "/same.bin"), S.quote(f.url("/bytes?n=400000&rate=400000"))))
    assert.is_truthy(out:find("run returned", 1, true), "run() blocked (status " .. tostring(rc) .. "): " .. out)
    assert.is_truthy(out:find("await\tfalse\t[^\n]*DownloadTask:await: the task cannot end"), out)
    assert.is_truthy(out:find("resumed\t200\t200", 1, true), out)
  end)
  it("leaves no private file made ahead in tempDir, whatever ends the request", function()
    local tmp = S.tmpdir()
    dt.configure { tempDir = tmp }
    local ok, err = pcall(function()
      local ended = 0
      local function cb() ended = ended + 1 end
      local cases = {
        { url = f.url("/bytes?n=10&etag=%22e%22"), header = { ["If-None-Match"] = '"e"' } }, -- 304
        { url = f.url("/flaky?key=rv0201-" .. math.floor(H.now() * 1000) .. "&fails=1&status=503&n=100"), retry = 1 },
        { url = f.url("/bytes?n=100&hdelay=2000"), timeout = 300 }, -- fails before any body
        { url = f.url("/bytes?n=100&hdelay=400") }, -- aborted while the request is out
        { url = f.url("/bytes?n=100&hdelay=400") }, -- paused while the request is out, then resumed
        { url = f.url("/redirect/2?n=50") },
      }
      local tasks = {}
      for i, o in ipairs(cases) do
        o.complete = cb
        o.success = function(r) if r.tempFilePath then os.remove(r.tempFilePath) end end
        tasks[i] = T.start(o)
      end
      socket.sleep(0.2) -- the requests are out: their files were made ahead
      dt.poll(0) -- (the engine made them right after sending; this only lets a round pass)
      -- the three delayed answers have their file already: this test covers that path
      assert.is_true(#S.listdir(tmp) >= 3, "files made ahead: " .. #S.listdir(tmp))
      tasks[4]:abort()
      tasks[5]:pause()
      dt.poll(0)
      socket.sleep(0.6)
      tasks[5]:resume()
      local deadline = H.now() + 8
      while ended < #cases and H.now() < deadline do dt.poll(20) end
      assert.are.equal(#cases, ended)
      assert.are.same({}, S.listdir(tmp))
    end)
    dt.configure { tempDir = H.DEFAULT_TMP }
    assert(ok, err)
  end)
end)
