-- A live terminal progress bar: percent, bytes, speed and ETA.
--   lua5.4 examples/progress.lua URL [FILE]
-- Without FILE the body goes to a private temporary file, removed at the end.
local dt = require "downloadtask"

local url, path = arg[1], arg[2]
if not url then
  io.stderr:write("usage: lua5.4 examples/progress.lua URL [FILE]\n")
  os.exit(2)
end

local function human(n)
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local i = 1
  while n >= 1024 and i < #units do
    n, i = n / 1024, i + 1
  end
  -- a speed is a float: whole bytes are rounded (5.3+ refuses "%d" for 146.5)
  return (i == 1 and "%d %s" or "%.1f %s"):format(i == 1 and math.floor(n + 0.5) or n, units[i])
end

-- Speed and ETA want a sub-second wall clock: LuaSocket's when it is installed,
-- else whole seconds (os.clock() would be CPU time, which an idle poll barely uses).
local has_socket, socket = pcall(require, "socket")
local clock = has_socket and socket.gettime or os.time

local started = nil
local width = 30
local last_line = ""

local function draw(p)
  local now = clock()
  started = started or now
  local elapsed = math.max(now - started, 1e-3)
  local speed = p.totalBytesWritten / elapsed
  local total = p.totalBytesExpectedToWrite
  local filled = total > 0 and math.floor(width * p.progress / 100) or 0
  local bar = ("#"):rep(filled) .. ("-"):rep(width - filled)
  local eta = "--"
  if total > 0 and speed > 0 and now > started then
    eta = ("%ds"):format(math.floor((total - p.totalBytesWritten) / speed + 0.5))
  end
  local line = ("\r[%s] %3d%%  %s / %s  %s/s  ETA %s"):format(bar, p.progress,
    human(p.totalBytesWritten), total >= 0 and human(total) or "?",
    now > started and human(speed) or "--", eta)
  if line ~= last_line then
    io.write(line, (" "):rep(math.max(0, #last_line - #line)))
    io.flush()
    last_line = line
  end
end

local task = dt.downloadFile {
  url = url,
  filePath = path,
  success = function(res)
    local secs = (res.profile.responseEnd - res.profile.fetchStart) / 1000
    io.write(("\n%d %s: %s in %.2f s (%s/s) -> %s\n"):format(res.statusCode,
      res.statusCode < 300 and "OK" or "(not a success status)", human(res.dataLength), secs,
      human(res.dataLength / math.max(secs, 1e-3)), res.filePath or res.tempFilePath))
    if res.tempFilePath then os.remove(res.tempFilePath) end
  end,
  fail = function(err)
    io.write(("\nfailed: %s (errno %d)\n"):format(err.errMsg, err.errno))
    os.exit(1, true) -- true: close the Lua state, so the module stops and removes what it holds
  end,
}
task:onHeadersReceived(function(h)
  io.write(("HTTP %d, %s bytes, %s\n"):format(h.statusCode, h.header["content-length"] or "unknown",
    h.header["content-type"] or "no content-type"))
end)
task:onProgressUpdate(draw)

-- A game-style loop: poll once a "frame" and do other work in between.
while dt.poll(16) > 0 do end
