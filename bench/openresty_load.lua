-- bench/openresty.lua's background load outside the worker: N downloads of URL, each with
-- the listeners /fetch registers (headers, progress), driven by awaitAll in this process.
--
--   lua5.4 bench/openresty_load.lua URL N BYTES CPATH
local url, n, bytes, cpath = arg[1], tonumber(arg[2]), tonumber(arg[3]), arg[4]
package.cpath = cpath .. ";" .. package.cpath
local dt = require "downloadtask"
local socket = require "socket"
dt.configure { maxConcurrent = 64 }
local tasks, progress = {}, 0
for i = 1, n do
  local t = dt.downloadFile { url = url }
  local headers
  t:onHeadersReceived(function(h) headers = h.statusCode end)
  t:onProgressUpdate(function(p) progress = progress + 1 end)
  tasks[i] = t
  socket.sleep(0.002) -- 2 ms apart, as bench/openresty.lua starts its own
end
local good = 0
for _, r in ipairs(dt.awaitAll(tasks)) do
  if r.tempFilePath then os.remove(r.tempFilePath) end
  if r.statusCode == 200 and r.dataLength == bytes then good = good + 1 end
end
print(("%d of %d ok, %d progress events"):format(good, n, progress))
