-- The queue with 10,000 tasks in it (child process of bench/run.lua), issue 14:
--   lua5.4 bench/dt_priority.lua SLOW_URL URL COUNT
-- maxConcurrent = 1 and a slow download (SLOW_URL) holds the one slot, so that everything
-- created after it stays queued. For priority 0 (call order) and then for priorities drawn
-- from -1000..1000 (seeded), prints:
--   create  seconds for COUNT downloadFile calls (the engine thread inserts them into its
--           queue meanwhile)
--   tasks   median seconds of one dt.tasks() call with COUNT queued (11 calls)
--   pause   seconds from 1,000 task:pause() calls (every 10th queued task) until the engine
--           has carried them out (each an O(log n) removal from its queue): a queued task
--           aborted after them delivers its fail only then, commands being taken in order
--   resume  the same for the 1,000 task:resume() calls (each an O(1) insertion)
--   abort   seconds for dt.abortAll()
--   drain   seconds from there until every aborted task has delivered its fail (the engine
--           takes each out of its queue, an O(log n) removal, and says so)
local dt = require "downloadtask"
local socket = require "socket"
local now = socket.gettime
local slow, url, count = arg[1], arg[2], math.tointeger(tonumber(arg[3]))

dt.configure { maxConcurrent = 1 }
local blocker = dt.downloadFile { url = slow }
local deadline = now() + 10
while blocker.state ~= "running" and now() < deadline do dt.poll(10) end
assert(blocker.state == "running", "the slow download did not start")

local function median(xs)
  table.sort(xs)
  return xs[(#xs + 1) // 2]
end

local function round(name, priority_of)
  collectgarbage()
  local t0 = now()
  for i = 1, count do dt.downloadFile { url = url, priority = priority_of(i) } end
  local create = now() - t0
  local times = {}
  for i = 1, 11 do
    local t1 = now()
    local list = dt.tasks()
    times[i] = now() - t1
    assert(#list == count + 1, "dt.tasks() did not list them all")
  end
  local list = dt.tasks()
  local function commands(method, sentinel)
    local t1 = now()
    for i = 10, count, 10 do list[i + 1][method](list[i + 1]) end
    sentinel:abort()
    sentinel:await()
    return now() - t1
  end
  local pause = commands("pause", list[2])
  local resume = commands("resume", list[3])
  local t2 = now()
  local n = dt.abortAll()
  local abort = now() - t2
  assert(n == count - 1, "abortAll did not abort them all")
  local t3 = now()
  while dt.poll(10) > 0 do end
  local drain = now() - t3
  print(("RESULT round=%s create=%.6f tasks=%.6f pause=%.6f resume=%.6f abort=%.6f drain=%.6f"):format(name, create,
    median(times), pause, resume, abort, drain))
  blocker = dt.downloadFile { url = slow }
  deadline = now() + 10
  while blocker.state ~= "running" and now() < deadline do dt.poll(10) end
end

round("fifo", function() return 0 end)
math.randomseed(14)
round("random", function() return math.random(-1000, 1000) end)
blocker:abort()
while dt.poll(10) > 0 do end
