-- downloadtask inside a libuv loop (luv): the loop waits on dt.fd() and calls
-- dt.poll(0) when it becomes readable, so nothing polls on a timer.
--   lua5.4 examples/luv.lua URL [URL ...]
local uv = require "luv"
local dt = require "downloadtask"

local urls = { ... }
if #urls == 0 then
  io.stderr:write("usage: lua5.4 examples/luv.lua URL [URL ...]\n")
  os.exit(2)
end

for i, url in ipairs(urls) do
  dt.downloadFile {
    url = url,
    success = function(res)
      print(("#%d %d, %d bytes"):format(i, res.statusCode, res.dataLength))
      os.remove(res.tempFilePath)
    end,
    fail = function(err) print(("#%d %s"):format(i, err.errMsg)) end,
  }
end

-- the loop stays free for other work meanwhile: a timer ticks every 10 ms
local ticks = 0
local timer = uv.new_timer()
timer:start(10, 10, function() ticks = ticks + 1 end)

local watcher = uv.new_poll(dt.fd())
watcher:start("r", function(err)
  assert(not err, err)
  if dt.poll(0) == 0 then -- everything ended: let the loop finish
    watcher:stop()
    watcher:close()
    timer:close()
  end
end)

uv.run()
print(("all done; the loop ran %d timer ticks meanwhile"):format(ticks))
