-- Many downloads at once, and a game's frame loop (dt.poll(0) once a frame).
-- Plain Lua (see harness.lua); runs under wine and on Linux.
local H = dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "harness.lua")
local dt = require "downloadtask"

H.test("300 concurrent downloads all run at once and all arrive", function()
  -- 64 KiB each (a range of 1m.bin) at 32 KiB/s: ~2 s apiece, so all 300 are in flight
  -- together unless the module queues them (10 at a time would take a minute).
  dt.configure { maxConcurrent = 300 }
  local done, failed, tasks = 0, {}, {}
  for i = 1, 300 do
    local name = ("many-%03d.bin"):format(i)
    tasks[i] = dt.downloadFile {
      url = H.url("1m.bin"), filePath = H.path(name), header = { Range = "bytes=0-65535" },
      rateLimit = 32768,
      success = function(r)
        if r.statusCode == 206 and r.dataLength == 65536 then done = done + 1
        else failed[#failed + 1] = name .. ": status " .. r.statusCode .. ", " .. r.dataLength .. " bytes" end
      end,
      fail = function(e) failed[#failed + 1] = name .. ": " .. e.errMsg end,
    }
    H.expect_file(name, 65536)
  end
  local most, started = 0, os.time()
  repeat
    local left = dt.poll(50)
    local running = 0
    for i = 1, 300 do if tasks[i].state == "running" then running = running + 1 end end
    if running > most then most = running end
  until left == 0
  local took = os.time() - started
  dt.configure { maxConcurrent = 10 }
  H.eq(#failed, 0, "failures: " .. table.concat(failed, "; ", 1, math.min(#failed, 5)))
  H.eq(done, 300, "successes")
  H.truthy(most >= 250, "at most " .. most .. " tasks were running at once")
  H.truthy(took <= 30, "300 parallel downloads of ~2 s took " .. took .. " s")
  for i = 1, 300, 37 do
    H.truthy(H.readfile(H.path(("many-%03d.bin"):format(i))) == H.pattern(0, 65536), "content of " .. i)
  end
end)

H.test("a frame loop: poll(0) once a frame delivers everything, in frames", function()
  -- 1 MiB at 2 MiB/s takes ~0.5 s: the loop must run many frames meanwhile.
  local frames, ended = 0, 0
  local progress_frames = {}
  local tasks = {}
  for i = 1, 3 do
    tasks[i] = dt.downloadFile {
      url = H.url("slow/1m.bin"), filePath = H.path("frame-" .. i .. ".bin"), rateLimit = 2 * 1048576,
      complete = function() ended = ended + 1 end,
    }
    tasks[i]:onProgressUpdate(function() progress_frames[frames] = true end)
    H.expect_file("frame-" .. i .. ".bin", 1048576)
  end
  local pending = #tasks
  local guard = os.time() + 60
  while pending > 0 do
    frames = frames + 1
    pending = dt.poll(0)               -- the frame's delivery: never waits
    dt.poll(5)                         -- stands in for the frame's own work and vsync wait
    H.truthy(os.time() < guard, "the frame loop ran for a minute")
  end
  local distinct = 0
  for _ in pairs(progress_frames) do distinct = distinct + 1 end
  H.eq(ended, 3, "tasks ended")
  H.truthy(frames >= 20, "frames while downloading: " .. frames)
  H.truthy(distinct >= 3, "progress arrived in " .. distinct .. " different frames")
  for i = 1, 3 do H.eq(tasks[i].state, "done", "task " .. i) end
end)

H.test("poll returns the number of tasks not yet ended", function()
  H.eq(dt.poll(0), 0, "nothing running")
  local a = dt.downloadFile { url = H.url("small.txt"), filePath = H.path("poll-a.txt") }
  local b = dt.downloadFile { url = H.url("small.txt"), filePath = H.path("poll-b.txt") }
  H.eq(dt.poll(0) >= 1, true, "two tasks started")
  dt.run()
  H.eq(dt.poll(0), 0, "all ended")
  H.eq(a.state, "done"); H.eq(b.state, "done")
  H.expect_file("poll-a.txt", #H.SMALL_TXT)
  H.expect_file("poll-b.txt", #H.SMALL_TXT)
end)

H.run()
