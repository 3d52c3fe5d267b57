-- One download to a file with downloadtask and the `segments` option (issue 13), run by
-- bench/segments.lua as a child process.
--   lua5.4 bench/dt_segments.lua URL DEST SIZE SEGMENTS [MIRROR ...]
--   lua5.4 bench/dt_segments.lua --probe URL DEST SIZE SEGMENTS [MIRROR ...]
-- Prints "RESULT segments=<res.segments or nil> missing=<option or none> status=<code>".
-- A build that does not know `segments` raises "unknown option 'segments'" (task.c checks
-- every name): the download then runs without the option, which is what segments = 1 means,
-- and missing=segments says so; the bench marks a segments = 8 row run that way "segments
-- not used". MIRRORs go to `mirrors`; a build without that option is not run around: with
-- --probe, the download is created and aborted at once and only the missing option is told
-- (the bench skips the mirrors row then).
local dt = require "downloadtask"
local probe = arg[1] == "--probe"
local a0 = probe and 1 or 0
local url, dest = arg[a0 + 1], arg[a0 + 2]
local size, segments = math.tointeger(tonumber(arg[a0 + 3])), math.tointeger(tonumber(arg[a0 + 4]))
local mirrors = {}
for i = a0 + 5, #arg do mirrors[#mirrors + 1] = arg[i] end

local res, err
local opts = {
  url = url,
  filePath = dest,
  segments = segments,
  mirrors = #mirrors > 0 and mirrors or nil,
  success = function(r) res = r end,
  fail = function(e) err = e end,
}

local missing = "none"
local ok, task = pcall(dt.downloadFile, opts)
if not ok and (probe or opts.mirrors) then
  -- not measured: a mirrors row without mirrors would be another row. Every unknown name,
  -- one at a time (the check names the first its walk meets)
  local names = {}
  while not ok do
    local name = tostring(task):match("unknown option '([%w_]+)'")
    if not name or #names > 2 then error(task, 0) end
    names[#names + 1] = name
    opts[name] = nil
    ok, task = pcall(dt.downloadFile, opts)
  end
  task:abort()
  dt.run()
  print(("RESULT missing=%s"):format(table.concat(names, ",")))
  os.exit(probe and 0 or 3)
end
if not ok then
  local name = tostring(task):match("unknown option '([%w_]+)'")
  if not name then error(task, 0) end
  assert(name == "segments", task)
  missing = "segments"
  opts.segments = nil
  task = dt.downloadFile(opts)
end

if probe then
  task:abort()
  dt.run()
  print("RESULT missing=none")
  os.exit(0)
end

dt.run()

if err then
  io.stderr:write("dt_segments: ", err.errMsg, "\n")
  os.exit(1)
end
if (res.statusCode ~= 200 and res.statusCode ~= 206) or res.dataLength ~= size then
  io.stderr:write(("dt_segments: status %d, %d bytes, expected %d\n"):format(res.statusCode, res.dataLength, size))
  os.exit(1)
end
print(("RESULT segments=%s missing=%s status=%d"):format(tostring(res.segments), missing, res.statusCode))
