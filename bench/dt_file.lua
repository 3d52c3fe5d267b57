-- One download to a file with downloadtask, run by bench/run.lua as a child process.
--   lua5.4 bench/dt_file.lua URL DEST SIZE [plain|game|durable]
-- plain: dt.run() until it ends. durable: the same with `durable = true`.
-- game:  a progress listener and a 60 Hz game-style loop: poll(0), then sleep ~16 ms.
local dt = require "downloadtask"
local url, dest, size, mode = arg[1], arg[2], math.tointeger(tonumber(arg[3])), arg[4] or "plain"

local res, err
local task = dt.downloadFile {
  url = url,
  filePath = dest,
  durable = mode == "durable",
  success = function(r) res = r end,
  fail = function(e) err = e end,
}

if mode == "game" then
  local socket = require "socket"
  local events, seen, frames = 0, 0, 0
  task:onProgressUpdate(function(p)
    events = events + 1
    seen = p.totalBytesWritten
  end)
  while dt.poll(0) > 0 do
    frames = frames + 1
    socket.sleep(0.016)
  end
  print(("RESULT frames=%d events=%d seen=%d"):format(frames, events, seen))
else
  dt.run()
end

if err then
  io.stderr:write("dt_file: ", err.errMsg, "\n")
  os.exit(1)
end
if res.statusCode ~= 200 or res.dataLength ~= size then
  io.stderr:write(("dt_file: status %d, %d bytes, expected %d\n"):format(res.statusCode, res.dataLength, size))
  os.exit(1)
end
