-- Many HTTPS downloads to files, N at a time, with downloadtask (child process of
-- bench/run.lua, issue 13's h2 row).
--   lua5.4 bench/dt_h2many.lua LISTFILE CONCURRENCY CAFILE
-- LISTFILE has one "URL<TAB>DEST" line per download. Prints the protocols negotiated
-- (res.profile.protocol, comma-separated, sorted) and how many answers came on a reused
-- connection (res.profile.socketReused); the bench counts connections in nginx's log.
local dt = require "downloadtask"
local list, concurrency, ca = arg[1], math.tointeger(tonumber(arg[2])), arg[3]

dt.configure { maxConcurrent = concurrency }
local failed, done, reused = 0, 0, 0
local protocols = {}
local function ok(r)
  if r.statusCode == 200 then done = done + 1 else failed = failed + 1 end
  local p = r.profile and r.profile.protocol or "none"
  protocols[p ~= "" and p or "none"] = true
  if r.profile and r.profile.socketReused then reused = reused + 1 end
end
local function bad(e)
  failed = failed + 1
  io.stderr:write("dt_h2many: ", e.errMsg, "\n")
end
for line in io.lines(list) do
  local url, dest = line:match("^(%S+)\t(.+)$")
  dt.downloadFile { url = url, filePath = dest, caFile = ca, success = ok, fail = bad }
end
dt.run()
local names = {}
for p in pairs(protocols) do names[#names + 1] = p end
table.sort(names)
print(("RESULT done=%d failed=%d reused=%d protocols=%s"):format(done, failed, reused, table.concat(names, ",")))
if failed > 0 then os.exit(1) end
