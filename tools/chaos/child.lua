-- A chaos case that needs a process of its own (tools/chaos/run.lua starts it):
--   ulimit  the case's download under `ulimit -f` (bash set it, SIGXFSZ ignored):
--           its records go to --out for the parent's oracle;
--   close   the downloads are cut by os.exit(0, true) (lua_close) after die_ms;
--   kill    the process SIGKILLs itself after die_ms.
-- The case is generated again from (seed, case), exactly as the parent did.
local args = {}
for _, a in ipairs(arg) do
  local k, v = a:match("^%-%-(%w+)=(.*)$")
  if k then args[k] = v end
end
package.path = "./?.lua;" .. package.path
package.cpath = args.cpath .. ";" .. package.cpath

local L = require "tools.chaos.lib"
local socket = require "socket"
local dt = require "downloadtask"

local c = L.gen(math.tointeger(tonumber(args.seed)), math.tointeger(tonumber(args.case)))
local bases = load("return " .. args.bases)()
local env = { dt = dt, url = L.url_maker(bases), ca = args.ca, durable_ok = args.durable == "true",
  now = socket.gettime, dest = args.dest ~= "" and args.dest or nil }
dt.configure { progressInterval = 20 }

local recs = {}
for i = 1, #c.tasks do recs[i] = L.start_task(env, c, i) end
local t0 = socket.gettime()

-- The records so far, for the parent's oracle (task and coroutine objects stay here).
local function save()
  local out = {}
  for i, rec in ipairs(recs) do
    local r = {}
    for k, v in pairs(rec) do r[k] = v end
    r.state = rec.task and rec.task.state
    r.task, r.co = nil, nil
    out[i] = r
  end
  io.stdout:write(L.serialize(out))   -- a pipe: untouched by the file-size limit
  io.stdout:flush()
end

if c.kind == "kill" or c.kind == "close" then
  while socket.gettime() - t0 < c.die_ms / 1000 do dt.poll(5) end
  save()                         -- what was delivered before the end
  if c.kind == "close" then os.exit(0, true) end
  local pid = io.open("/proc/self/stat"):read("a"):match("^(%d+)")
  os.execute("kill -KILL " .. pid)
  socket.sleep(5)
  os.exit(3)
end

local deadline = t0 + 40
while socket.gettime() < deadline do
  local left = 0
  for _, rec in ipairs(recs) do if not rec.ended then left = left + 1 end end
  if left == 0 then break end
  local ok, e = pcall(dt.poll, 20)
  if not ok and e ~= L.RAISE then error(e, 0) end
end
dt.poll(100)                     -- anything after complete shows in the records
save()
os.exit(0, true)
