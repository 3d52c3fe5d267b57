-- How closely `rateLimit` holds from the start with `segments` (issue 20, item 7), run by
-- bench/segments.lua as a child process:
--   lua5.4 bench/dt_segrate.lua URL DEST SEGMENTS RATE SECONDS
-- Downloads URL to DEST with `segments` and `rateLimit = RATE` (bytes a second), and after
-- SECONDS (counted from downloadFile) reads how many bytes were written, from the last
-- progress event, then aborts (the destination stays untouched). Prints
-- "RESULT bytes=<n> seconds=<measured>".
local dt = require "downloadtask"
local socket = require "socket"
local url, dest = arg[1], arg[2]
local segments, rate, seconds = math.tointeger(tonumber(arg[3])), tonumber(arg[4]), tonumber(arg[5])

local written = 0
local t0 = socket.gettime()
local task = dt.downloadFile { url = url, filePath = dest, segments = segments, rateLimit = rate }
task:onProgressUpdate(function(p) written = p.totalBytesWritten end)
while socket.gettime() - t0 < seconds do dt.poll(10) end
local took = socket.gettime() - t0
task:abort()
task:await()
print(("RESULT bytes=%d seconds=%.3f"):format(written, took))
