-- make soak: 10,000 downloads in one process against a local nginx: successes (to a file and
-- to a private temporary file), 404s, refused connections and aborts (at once, from a headers
-- listener, from a progress listener), some awaited in coroutines; listeners on most. RSS is
-- sampled from /proc/self/statm; after the run, descriptors and the registry references must
-- be back where they were after the warm-up, and RSS may have grown by 5 % at most.
--
--   lua5.4 tools/soak.lua [--cpath=TEMPLATE] [downloads [warm-up]]   (from the repository root)
--
-- make soak runs it through spec/support/run-specs.sh (as BUSTED), which stops nginx
-- whatever happens and passes $DT_TEST_CPATH as --cpath, as it does to busted.
local cpath, numbers = "./?.so", {}
for _, a in ipairs(arg) do
  if a:match("^%-%-cpath=") then cpath = a:sub(9) else numbers[#numbers + 1] = tonumber(a) end
end
package.path = "./?.lua;" .. package.path
package.cpath = cpath .. ";" .. package.cpath

local dt = require "downloadtask"
local S = require "spec.support.servers"
local lfs = require "lfs"
local socket = require "socket"

local TOTAL = numbers[1] or 10000
local WARMUP = numbers[2] or math.floor(TOTAL / 5)
local STALL = 30              -- seconds without any download ending: stuck
local MAX_CONCURRENT = 16
local IN_FLIGHT = 48          -- tasks created and not yet ended, at most
local SAMPLE_EVERY = 250
local MAX_GROWTH = 0.05

local PAGE = 4096
do
  local p = io.popen("getconf PAGESIZE 2>/dev/null")
  PAGE = tonumber(p:read("*a")) or PAGE
  p:close()
end

local function rss_kb()
  local f = assert(io.open("/proc/self/statm"))
  local _, resident = f:read("*a"):match("^(%d+)%s+(%d+)")
  f:close()
  return math.floor(tonumber(resident) * PAGE / 1024)
end

-- Descriptors, split: sockets (libcurl keeps idle connections to nginx in its cache, up to
-- 4 per transfer slot) and all the others (files, pipes), which must come back exactly.
local function fds()
  local sockets, others = 0, 0
  for name in lfs.dir("/proc/self/fd") do
    if name ~= "." and name ~= ".." then
      local target = lfs.symlinkattributes("/proc/self/fd/" .. name, "target") or ""
      if target:match("^socket:") then sockets = sockets + 1 else others = others + 1 end
    end
  end
  return others - 1, sockets   -- lfs.dir's own descriptor
end

-- References held in the registry: its entries that are not the integers of luaL_ref's
-- free list, and the same inside every table the registry holds under a reference (the
-- module's anchor table of running tasks is one).
local function registry_refs()
  local reg = debug.getregistry()
  local direct, anchored = 0, 0
  for k, v in pairs(reg) do
    if type(v) ~= "number" then direct = direct + 1 end
    if type(k) == "number" and k > 2 and type(v) == "table" then
      for _, w in pairs(v) do
        if type(w) ~= "number" then anchored = anchored + 1 end
      end
    end
  end
  return direct, anchored
end

local function full_gc()
  collectgarbage("collect")
  collectgarbage("collect")
end

local ng = S.nginx()
local refused = ("http://127.0.0.1:%d/x"):format(S.free_port())
local dir, tmp = S.tmpdir(), S.tmpdir()
dt.configure { maxConcurrent = MAX_CONCURRENT, tempDir = tmp, progressInterval = 0 }

local kinds = { "file", "temp", "404", "refused", "abort", "abort-headers", "abort-progress",
  "await" }
local stats, expect = {}, {
  file = "ok", temp = "ok", ["404"] = "ok", refused = "fail", abort = "abort",
  ["abort-headers"] = "abort", ["abort-progress"] = "abort", await = "ok",
}
for _, k in ipairs(kinds) do stats[k] = { ok = 0, fail = 0, abort = 0, wrong = 0 } end
local submitted, ended = 0, 0

local function outcome(kind, res)
  local how = res.errMsg == "downloadFile:ok" and "ok"
    or res.errMsg == "downloadFile:fail abort" and "abort" or "fail"
  local s = stats[kind]
  s[how] = s[how] + 1
  if how ~= expect[kind] then
    s.wrong = s.wrong + 1
    if s.wrong <= 3 then io.stderr:write("soak: ", kind, ": ", res.errMsg, "\n") end
  end
  if res.tempFilePath then os.remove(res.tempFilePath) end
end

local function submit(i)
  local kind = kinds[i % #kinds + 1]
  submitted = submitted + 1
  local url = kind == "404" and ng.url("missing-" .. i)
    or kind == "refused" and refused
    or kind:match("^abort%-") and ng.url("1m.bin")
    or ng.url("1k.bin")
  local opts = { url = url, complete = function(res) ended = ended + 1 outcome(kind, res) end }
  if kind ~= "temp" then opts.filePath = ("%s/f%d"):format(dir, i % 64) end
  if kind == "await" then
    opts.complete = nil
    local t = dt.downloadFile(opts)
    coroutine.wrap(function()
      local res, err = t:await()
      ended = ended + 1
      outcome(kind, res or err)
    end)()
    return
  end
  local t = dt.downloadFile(opts)
  if kind == "abort" then t:abort() end
  if kind == "abort-headers" then t:onHeadersReceived(function() t:abort() end) end
  if kind == "abort-progress" then t:onProgressUpdate(function() t:abort() end) end
  if kind == "file" then
    t:onHeadersReceived(function(h) assert(h.statusCode == 200) end)
    t:onProgressUpdate(function(p) assert(p.progress >= 0) end)
  end
end

local t0 = socket.gettime()
local samples, base_rss, base_fd, base_sock, base_reg, base_anchor, max_rss = {}, nil
local next_sample = SAMPLE_EVERY
local last_end, last_change = 0, socket.gettime()
local function watchdog()
  if ended ~= last_end then
    last_end, last_change = ended, socket.gettime()
  elseif socket.gettime() - last_change > STALL then
    io.stderr:write(("soak: FAILED: stuck: no download ended for %d s; %d submitted, %d ended, poll() says %d not ended\n")
      :format(STALL, submitted, ended, dt.poll(0)))
    S.stop_all()
    os.exit(1)
  end
end
while ended < TOTAL do
  while submitted < TOTAL and submitted - ended < IN_FLIGHT do submit(submitted + 1) end
  dt.poll(10)
  watchdog()
  if ended >= next_sample then
    next_sample = next_sample + SAMPLE_EVERY
    full_gc()
    local r = rss_kb()
    samples[#samples + 1] = ("%d:%d"):format(ended, r)
    if ended >= WARMUP then
      if not base_rss then
        -- baseline once the warm-up is done, with its tasks all ended
        while dt.poll(10) > 0 do watchdog() end
        full_gc()
        base_rss = rss_kb()
        base_fd, base_sock = fds()
        base_reg, base_anchor = registry_refs()
        max_rss = base_rss
      end
      if r > max_rss then max_rss = r end
    end
  end
end
while dt.poll(10) > 0 do watchdog() end
local seconds = socket.gettime() - t0
full_gc()
local end_rss = rss_kb()
if end_rss > max_rss then max_rss = end_rss end
local end_fd, end_sock = fds()
local end_reg, end_anchor = registry_refs()
local left_tmp = #S.listdir(tmp)
local parts = 0
for _, name in ipairs(S.listdir(dir)) do if name:match("%.part$") then parts = parts + 1 end end

local growth = (max_rss - base_rss) / base_rss
print(("soak: %d downloads in %.1f s (%.0f/s), at most %d in flight, maxConcurrent %d")
  :format(ended, seconds, ended / seconds, IN_FLIGHT, MAX_CONCURRENT))
for _, k in ipairs(kinds) do
  local s = stats[k]
  print(("soak:   %-15s ok %5d  fail %5d  abort %5d  unexpected %d"):format(k, s.ok, s.fail, s.abort, s.wrong))
end
print("soak: RSS kB after each " .. SAMPLE_EVERY .. " downloads: " .. table.concat(samples, " "))
print(("soak: RSS after the %d-download warm-up %d kB, highest after it %d kB, at the end %d kB: growth %.2f %% (limit %.0f %%)")
  :format(WARMUP, base_rss, max_rss, end_rss, growth * 100, MAX_GROWTH * 100))
print(("soak: descriptors (not sockets) %d after the warm-up, %d at the end; sockets %d and %d (idle connections libcurl keeps, at most %d)")
  :format(base_fd, end_fd, base_sock, end_sock, 4 * MAX_CONCURRENT))
print(("soak: registry references %d after the warm-up, %d at the end; tasks anchored %d and %d")
  :format(base_reg, end_reg, base_anchor, end_anchor))
print(("soak: files left: %d in tempDir, %d .part beside the destinations"):format(left_tmp, parts))

local failures = {}
local function check(ok, what) if not ok then failures[#failures + 1] = what end end
check(growth <= MAX_GROWTH, "RSS grew by more than 5 % after the warm-up")
check(end_fd == base_fd, "descriptors are not back to the baseline")
check(end_sock <= 4 * MAX_CONCURRENT, "more sockets open than libcurl's connection cache holds")
check(end_reg == base_reg and end_anchor == base_anchor, "registry references are not back to the baseline")
check(left_tmp == 0 and parts == 0, "files left behind")
for _, k in ipairs(kinds) do check(stats[k].wrong == 0, "unexpected outcomes for " .. k) end
check(ended == TOTAL and dt.poll(0) == 0, "not every download ended")
S.stop_all()
if #failures > 0 then
  io.stderr:write("soak: FAILED: ", table.concat(failures, "; "), "\n")
  os.exit(1)
end
print("soak: passed")
