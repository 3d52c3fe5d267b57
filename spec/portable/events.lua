-- Listeners: onHeadersReceived, onProgressUpdate, their off* twins, and task.state.
-- Plain Lua (see harness.lua); runs under wine and on Linux.
local H = dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "harness.lua")
local dt = require "downloadtask"

H.test("headers come first, progress never goes down and ends at every byte", function()
  local events, last = {}, nil
  local task = dt.downloadFile {
    -- 0.5 s: poll(20) returns at news (headers, progress, the end), not at the start, so a
    -- download over within one poll would never be seen running
    url = H.url("slow/1m.bin"), filePath = H.path("progress.bin"), rateLimit = 2 * 1048576,
    success = function(r) events[#events + 1] = { "success", r } end,
  }
  H.eq(task.state, "queued", "state after the call")   -- what Lua has seen so far
  task:onHeadersReceived(function(h) events[#events + 1] = { "headers", h } end)
  task:onProgressUpdate(function(p)
    if last then
      H.truthy(p.totalBytesWritten >= last.totalBytesWritten, "totalBytesWritten went down")
      H.truthy(p.progress >= last.progress, "progress went down")
    end
    last = p
    events[#events + 1] = { "progress", p }
  end)
  local states = {}
  while dt.poll(20) > 0 do states[task.state] = true end
  H.truthy(states.running, "state running while it downloads")
  H.eq(task.state, "done", "state at the end")
  H.eq(events[1][1], "headers", "first event")
  H.eq(events[1][2].statusCode, 200, "headers' statusCode")
  H.eq(events[1][2].header["content-length"], "1048576", "content-length header")
  H.eq(events[#events][1], "success", "last event")
  H.truthy(#events >= 3, "at least one progress event")
  H.eq(last.totalBytesWritten, 1048576, "last totalBytesWritten")
  H.eq(last.totalBytesExpectedToWrite, 1048576, "last totalBytesExpectedToWrite")
  H.eq(last.progress, 100, "last progress")
  H.expect_file("progress.bin", 1048576)
end)

H.test("a listener added twice runs twice; off removes one or all", function()
  local counts = { a = 0, b = 0, h = 0 }
  local function a() counts.a = counts.a + 1 end
  local function b() counts.b = counts.b + 1 end
  local function hdr() counts.h = counts.h + 1 end
  local task = dt.downloadFile { url = H.url("small.txt"), filePath = H.path("listeners.txt") }
  task:onProgressUpdate(a)
  task:onProgressUpdate(a)
  task:onProgressUpdate(b)
  task:offProgressUpdate(b)
  task:onHeadersReceived(hdr)
  task:onHeadersReceived(hdr)
  task:offHeadersReceived()
  dt.run()
  H.truthy(counts.a >= 2 and counts.a % 2 == 0, "a ran twice per event, ran " .. counts.a)
  H.eq(counts.b, 0, "removed listener")
  H.eq(counts.h, 0, "listeners removed with no argument")
  H.expect_file("listeners.txt", #H.SMALL_TXT)
end)

H.test("a listener may remove itself and abort from inside", function()
  local calls, res = 0, nil
  local task
  local function once()
    calls = calls + 1
    task:offProgressUpdate(once)
    task:abort()
  end
  task = dt.downloadFile {
    url = H.url("slow/100m.bin"), filePath = H.path("self-abort.bin"), rateLimit = 1048576,
    fail = function(e) res = e end,
  }
  task:onProgressUpdate(once)
  dt.run()
  H.eq(calls, 1, "listener calls")
  H.eq(res and res.errMsg, "downloadFile:fail abort", "errMsg")
  H.eq(task.state, "aborted", "state")
end)

H.test("an error in a listener propagates out of poll and the download goes on", function()
  local res
  local task = dt.downloadFile {
    url = H.url("small.txt"), filePath = H.path("raising.txt"),
    success = function(r) res = r end,
  }
  task:onHeadersReceived(function() error("boom from a listener") end)
  local ok, err = pcall(dt.run)
  H.eq(ok, false, "run raised")
  H.truthy(tostring(err):find("boom from a listener", 1, true), "the listener's message")
  dt.run()
  H.eq(res and res.statusCode, 200, "the download still succeeded")
  H.expect_file("raising.txt", #H.SMALL_TXT)
end)

H.test("tostring names the state and the URL", function()
  local task = dt.downloadFile { url = H.url("small.txt"), filePath = H.path("tostring.txt") }
  local s = tostring(task)
  H.truthy(s:find(H.url("small.txt"), 1, true), "URL in " .. s)
  dt.run()
  H.truthy(tostring(task):find("done", 1, true), "state in " .. tostring(task))
  H.expect_file("tostring.txt", #H.SMALL_TXT)
end)

H.run()
