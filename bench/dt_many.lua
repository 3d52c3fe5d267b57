-- Many downloads to files, N at a time, with downloadtask (child process of bench/run.lua).
--   lua5.4 bench/dt_many.lua LISTFILE CONCURRENCY
-- LISTFILE has one "URL<TAB>DEST" line per download.
local dt = require "downloadtask"
local list, concurrency = arg[1], math.tointeger(tonumber(arg[2]))

dt.configure { maxConcurrent = concurrency }
local failed, done = 0, 0
local function ok(r)
  if r.statusCode == 200 then done = done + 1 else failed = failed + 1 end
end
local function bad(e)
  failed = failed + 1
  io.stderr:write("dt_many: ", e.errMsg, "\n")
end
for line in io.lines(list) do
  local url, dest = line:match("^(%S+)\t(.+)$")
  dt.downloadFile { url = url, filePath = dest, success = ok, fail = bad }
end
dt.run()
print(("RESULT done=%d failed=%d"):format(done, failed))
if failed > 0 then os.exit(1) end
