-- 10,000 tasks queued at once (child process of bench/run.lua).
--   lua5.4 bench/dt_queue.lua URL DESTDIR COUNT
-- Prints the process's resident memory before and right after creating the tasks (VmRSS
-- from /proc/self/status: the whole process, interpreter and libcurl included), then runs
-- them all to completion (maxConcurrent left at its default) and prints how long that took.
local dt = require "downloadtask"
local socket = require "socket"
local url, dir, count = arg[1], arg[2], math.tointeger(tonumber(arg[3]))

local function rss()
  for line in io.lines("/proc/self/status") do
    local kb = line:match("^VmRSS:%s+(%d+)")
    if kb then return tonumber(kb) * 1024 end
  end
end

local done, failed = 0, 0
local function ok(r)
  if r.statusCode == 200 then done = done + 1 else failed = failed + 1 end
end
local function bad() failed = failed + 1 end

collectgarbage()
local before = rss()
local t0 = socket.gettime()
for i = 1, count do
  dt.downloadFile { url = url, filePath = ("%s/q%05d.txt"):format(dir, i), success = ok, fail = bad }
end
local created = socket.gettime() - t0
local after = rss()
dt.run()
local total = socket.gettime() - t0
print(("RESULT before=%d after=%d create=%.6f total=%.6f done=%d failed=%d"):format(
  before, after, created, total, done, failed))
if failed > 0 or done ~= count then os.exit(1) end
