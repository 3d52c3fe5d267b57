-- Several downloads, each awaited in its own coroutine.
--   lua5.4 examples/coroutines.lua URL [URL ...]
local dt = require "downloadtask"

local urls = { ... }
if #urls == 0 then
  io.stderr:write("usage: lua5.4 examples/coroutines.lua URL [URL ...]\n")
  os.exit(2)
end

local function fetch(i, url)
  -- await() yields this coroutine until the task ends, then returns res or nil, err
  local res, err = dt.downloadFile { url = url }:await()
  if res then
    print(("#%d %s -> %d, %d bytes"):format(i, url, res.statusCode, res.dataLength))
    os.remove(res.tempFilePath)
  else
    print(("#%d %s -> %s"):format(i, url, err.errMsg))
  end
end

for i, url in ipairs(urls) do
  coroutine.wrap(fetch)(i, url)
end
dt.run() -- drives every download and resumes each coroutine when its task ends
print("all done")
