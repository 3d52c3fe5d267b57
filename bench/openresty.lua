-- `make bench-openresty`: downloadtask's await inside a real nginx with the Lua module
-- (spec/support/openresty.{lua,conf}, one worker, LuaJIT build), the figures of issue 15,
-- measured in one run. Writes the "OpenResty" section of bench/results.md (--no-write: prints
-- it only).
--
--   BUSTED=bench/openresty.lua spec/support/run-specs.sh [--no-write]   (what make does)
--
-- run-specs.sh starts nothing itself: it gives the temp dir and pid file through which
-- spec/support/servers.lua and openresty.lua stop every server afterwards.
package.path = "./?.lua;" .. package.path
local S = require "spec.support.servers"
local OR = require "spec.support.openresty"
local socket = require "socket"

local write = true
for _, a in ipairs(arg) do if a == "--no-write" then write = false end end

local ok_or, why = OR.available()
if not ok_or then
  io.stderr:write("bench/openresty.lua: ", why, "\n")
  os.exit(1)
end

local function sorted(xs)
  local t = {}
  for i, x in ipairs(xs) do t[i] = x end
  table.sort(t)
  return t
end
local function pct(xs, p)
  local t = sorted(xs)
  return t[math.max(1, math.ceil(#t * p))]
end
local function median(xs) return pct(xs, 0.5) end
local function ms(x) return ("%.2f"):format(x * 1000) end

-- CPU seconds (utime + stime, in 10 ms ticks) of a process, or of one of its threads
local function cpu_seconds(pid, tid)
  local path = "/proc/" .. pid .. (tid and "/task/" .. tid or "") .. "/stat"
  local rest = assert(S.readfile(path)):match("^.*%) (.*)$")
  local f = {}
  for x in rest:gmatch("%S+") do f[#f + 1] = x end
  return (tonumber(f[12]) + tonumber(f[13])) / 100
end

local function timed_get(o, target)
  local t0 = socket.gettime()
  local r = OR.get(o, target)
  return socket.gettime() - t0, r
end

local ng, f = S.nginx(), S.fault()
local o = OR.start { workers = 1 }
local direct = { port = ng.port }
local rows = {}
local function row(figure, measured, target, pass)
  rows[#rows + 1] = ("| %s | %s | %s | %s |"):format(figure, measured, target, pass and "PASS" or "MISS")
  io.stderr:write(rows[#rows], "\n")
end

local ok, err = pcall(function()
  local worker = tonumber(OR.get(o, "/pong").fields.worker)
  local small = ng.url("small.txt")
  local fetch = "/fetch?url=" .. OR.escape(small)

  -- 1. await overhead: /fetch (downloads small.txt with downloadFile, awaits it, answers)
  -- against GET small.txt from the origin directly, alternating, 500 pairs after 50 warm-ups
  for _ = 1, 50 do timed_get(o, fetch); timed_get(direct, "/small.txt") end
  local tf, td, diff = {}, {}, {}
  for i = 1, 500 do
    local a, r = timed_get(o, fetch)
    assert(r.fields.status == "200", r.body)
    local b = timed_get(direct, "/small.txt")
    tf[i], td[i], diff[i] = a, b, a - b
  end
  local over_med, over_p99 = median(tf) - median(td), pct(tf, 0.99) - pct(td, 0.99)
  row("await overhead over fetching the same 19-byte file directly (500 sequential pairs)",
    ("median %s ms (/fetch %s, direct %s); p99 %s ms (/fetch %s, direct %s)"):format(
      ms(over_med), ms(median(tf)), ms(median(td)), ms(over_p99), ms(pct(tf, 0.99)), ms(pct(td, 0.99))),
    "median ≤ 0.5 ms; p99 ≤ 2 ms", over_med <= 0.0005 and over_p99 <= 0.002)

  -- 2. worker CPU while one request awaits an idle 10 s trickle: 1000 bytes at 100 bytes/s,
  -- one 100-byte chunk a second. The whole process, and its main thread alone (nginx's
  -- event loop and the Lua poller: what a timer loop burns; the rest is the engine thread
  -- receiving the chunks).
  local c0, m0 = cpu_seconds(worker), cpu_seconds(worker, worker)
  local t0 = socket.gettime()
  local r = OR.get(o, "/fetch?url=" .. OR.escape(f.url("/bytes?n=1000&rate=100&chunk=100")), 30)
  local wall = socket.gettime() - t0
  local used, main = cpu_seconds(worker) - c0, cpu_seconds(worker, worker) - m0
  assert(r.fields.status == "200" and r.fields.length == "1000", r.body)
  row(("worker CPU (utime+stime, 10 ms ticks) while one request awaits an idle %.1f s trickle"):format(wall),
    ("%d ms (main thread %d ms)"):format(math.floor(used * 1000 + 0.5), math.floor(main * 1000 + 0.5)),
    "≤ 10 ms", used <= 0.010)

  -- 3. /ping latency for 3 s of back-to-back requests, with nothing running, then while 50
  -- awaited downloads run (each 400 000 bytes at 100 000 bytes/s, progress listeners on)
  local function pings(seconds)
    local xs, stop = {}, socket.gettime() + seconds
    while socket.gettime() < stop do
      local dt, pr = timed_get(o, "/ping")
      assert(pr.body == "pong\n", pr.body)
      xs[#xs + 1] = dt
    end
    return xs
  end
  assert(OR.get(o, "/configure?max=64").body == "ok\n")
  local idle = pings(3)
  local conns = {}
  for i = 1, 50 do
    conns[i] = OR.send(o, "/fetch?url=" .. OR.escape(f.url("/bytes?n=400000&rate=100000")), 30)
  end
  socket.sleep(0.3)
  local busy = pings(3)
  for _, c in ipairs(conns) do
    local x = OR.receive(c)
    assert(x.fields.status == "200" and x.fields.length == "400000", x.body)
  end
  local p_idle, p_busy = pct(idle, 0.99), pct(busy, 0.99)
  row("`/ping` p99 while 50 awaited downloads run, against none (3 s of back-to-back requests each)",
    ("%s ms against %s ms (%+.0f %%; medians %s and %s ms; %d and %d requests)"):format(
      ms(p_busy), ms(p_idle), (p_busy / p_idle - 1) * 100, ms(median(busy)), ms(median(idle)), #busy, #idle),
    "within 10 %", p_busy <= p_idle * 1.10)

  -- 4. 1000 concurrent requests on the one worker, each awaiting its own download of small.txt
  t0 = socket.gettime()
  conns = {}
  for i = 1, 1000 do conns[i] = OR.send(o, fetch, 60) end
  local good = 0
  for _, c in ipairs(conns) do
    local x = OR.receive(c)
    if x.fields.status == "200" and x.fields.length == "19" then good = good + 1 end
  end
  row("1000 concurrent requests on one worker, each awaiting its own 19-byte download (maxConcurrent 64)",
    ("%d of 1000 answered correctly in %.2f s"):format(good, socket.gettime() - t0),
    "all answered, correct", good == 1000)
end)
OR.stop(o)
if not ok then
  io.stderr:write("bench/openresty.lua: ", tostring(err), "\n")
  os.exit(1)
end

local section = table.concat({
  "## OpenResty",
  "",
  "Written by `make bench-openresty` (`bench/openresty.lua`): Debian's nginx with its Lua module,",
  "one worker, the LuaJIT build, on loopback with the client (Lua 5.4, LuaSocket) in the same",
  "machine; issue 15's figures, measured in one run.",
  "",
  "| figure | measured | target |  |",
  "|---|---|---|---|",
}, "\n") .. "\n" .. table.concat(rows, "\n") .. "\n"
print(section)
if write then
  local path = "bench/results.md"
  local text = S.readfile(path) or "# Benchmark results\n"
  local before = text:match("^(.-)\n## OpenResty\n") or text:gsub("\n*$", "")
  S.writefile(path, before .. "\n\n" .. section)
end
