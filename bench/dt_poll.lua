-- poll(0) latency with many downloads running (child process of bench/run.lua).
--   lua5.4 bench/dt_poll.lua URL DESTDIR COUNT CALLS GAP_S LISTENER(0|1) [GCMODE]
-- Starts COUNT downloads of a rate-limited URL (they stay running), waits until every one
-- has received its headers, then times CALLS calls of poll(0), GAP_S seconds apart (a game
-- loop), each with a monotonic clock (cqueues.monotime; socket.gettime if cqueues is
-- missing). With LISTENER=1 each task has a progress listener. Aborts them all at the end.
local dt = require "downloadtask"
local socket = require "socket"
local url, dir = arg[1], arg[2]
local count, calls = math.tointeger(tonumber(arg[3])), math.tointeger(tonumber(arg[4]))
local gap, listener = tonumber(arg[5]), arg[6] == "1"
-- the host's collector: "incremental" (Lua 5.4's default) or "generational"
collectgarbage(arg[7] or "incremental")
local okcq, cq = pcall(require, "cqueues")
local now = okcq and cq.monotime or socket.gettime

dt.configure { maxConcurrent = count }
local tasks, headers, failed, progress = {}, 0, 0, 0
local function on_headers() headers = headers + 1 end
local function on_progress() progress = progress + 1 end
for i = 1, count do
  local t = dt.downloadFile {
    url = url, filePath = ("%s/p%04d.bin"):format(dir, i),
    fail = function(e) if e.errno ~= 600003 then failed = failed + 1 end end,
  }
  t:onHeadersReceived(on_headers)
  if listener then t:onProgressUpdate(on_progress) end
  tasks[i] = t
end
local deadline = now() + 60
while headers < count and failed == 0 and now() < deadline do dt.poll(10) end
if headers < count then
  io.stderr:write(("dt_poll: only %d of %d downloads running, %d failed\n"):format(headers, count, failed))
  os.exit(1)
end
socket.sleep(0.2) -- let them all reach steady state
local lat = {}
for i = 1, calls do
  local t0 = now()
  local live = dt.poll(0)
  lat[i] = now() - t0
  if live < count then
    io.stderr:write(("dt_poll: a download ended early (%d live)\n"):format(live))
    os.exit(1)
  end
  socket.sleep(gap)
end
table.sort(lat)
print(("RESULT median=%.9f p99=%.9f max=%.9f events=%d clock=%s"):format(
  lat[(#lat + 1) // 2], lat[math.ceil(#lat * 0.99)], lat[#lat], progress,
  okcq and "monotonic" or "wall"))
io.stdout:flush()
-- Abort them all and wait (bounded) for every fail("abort"); what is left is reported, and
-- closing the state (os.exit(_, true)) stops the engine and removes their files anyway.
for _, t in ipairs(tasks) do t:abort() end
deadline = now() + 10
local live
repeat live = dt.poll(10) until live == 0 or now() > deadline
print(("RESULT stuck=%d"):format(live))
os.exit(0, true)
