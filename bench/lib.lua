-- Helpers for bench/run.lua: shell, files, our own nginx, timing a child process, statistics.
local socket = require "socket"

local B = {}

B.HOST = "127.0.0.1" -- loopback only, ever

-- A monotonic clock in seconds: cqueues.monotime (CLOCK_MONOTONIC) when lua-cqueues is
-- there, else luasocket's wall clock (microseconds; fine over seconds unless NTP steps).
do
  local ok, cq = pcall(require, "cqueues")
  if ok and type(cq) == "table" and cq.monotime then
    B.now, B.clock_name = cq.monotime, "CLOCK_MONOTONIC (cqueues.monotime)"
  else
    B.now, B.clock_name = socket.gettime, "gettimeofday (socket.gettime)"
  end
end

function B.quote(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end

-- Runs a command with /bin/sh; errors when it was killed by a signal (Ctrl-C).
function B.sh(cmd)
  local ok, how, code = os.execute(cmd)
  if how == "signal" then error(("interrupted (signal %d) in: %s"):format(code, cmd), 0) end
  return ok == true, code
end

-- Output of a command, trailing newline removed.
function B.capture(cmd)
  local p = assert(io.popen(cmd))
  local s = p:read("a")
  p:close()
  return (s:gsub("%s+$", ""))
end

function B.readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function B.writefile(path, s)
  local f = assert(io.open(path, "wb"))
  assert(f:write(s))
  assert(f:close())
end

function B.filesize(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local n = f:seek("end")
  f:close()
  return n
end

function B.log(fmt, ...)
  io.stderr:write(fmt:format(...), "\n")
  io.stderr:flush()
end

------------------------------------------------------------------------------
-- Generated files: big writes of a 1 MiB block of pseudo-random bytes.

local BLOCK
local function block()
  if BLOCK then return BLOCK end
  math.randomseed(42)
  local parts, t = {}, {}
  for i = 1, 1024 do
    for j = 1, 1024 do t[j] = math.random(0, 255) end
    parts[i] = string.char(table.unpack(t))
  end
  BLOCK = table.concat(parts)
  return BLOCK
end

-- A file of `size` bytes (a multiple of 1 KiB).
function B.make_file(path, size)
  local b = block()
  local f = assert(io.open(path, "wb"))
  f:setvbuf("no")
  local left = size
  while left > 0 do
    local n = math.min(left, #b)
    assert(f:write(n == #b and b or b:sub(1, n)))
    left = left - n
  end
  assert(f:close())
end

-- Writes `size` bytes of page cache and frees them again, untimed, right before a timed
-- run. This machine is a VM whose kernel reports freed memory to the host (virtio-balloon
-- free page reporting, 2 s after it is freed); touching such memory again costs host page
-- faults: `dd` of 1 GiB into the page cache takes 0.15 s on memory just freed and 0.7-1.2 s
-- on memory reported a while ago. Without this, whichever client happens to get reported
-- memory loses up to a second per GiB: noise that is not the client's.
function B.touch_pages(path, size)
  B.sh(("dd if=/dev/zero of=%s bs=1M count=%d status=none; rm -f %s"):format(B.quote(path),
    (size + 1048575) // 1048576, B.quote(path)))
end

------------------------------------------------------------------------------
-- nginx on a free loopback port.

function B.free_port()
  local s = assert(socket.bind(B.HOST, 0))
  local _, port = s:getsockname()
  s:close()
  return math.tointeger(tonumber(port))
end

local function can_connect(port)
  local c = socket.tcp()
  c:settimeout(0.5)
  local ok = c:connect(B.HOST, port)
  c:close()
  return ok == 1
end

local function alive(pid)
  local st = B.readfile("/proc/" .. pid .. "/stat")
  return st ~= nil and not st:match("^%d+ %(.*%) Z")
end

-- Our own pid (the lua5.4 process running the bench), from /proc/self.
function B.mypid()
  return math.tointeger(tonumber(B.readfile("/proc/self/stat"):match("^(%d+)")))
end

-- Starts nginx from bench/nginx.conf serving `root`; everything else lives in `dir`.
-- A watchdog shell kills nginx's process group when this process goes away, however it
-- goes (even SIGKILL), so no nginx outlives the bench.
function B.start_nginx(here, dir, root)
  local nginx = os.getenv("DT_BENCH_NGINX") or "/usr/sbin/nginx"
  local template = assert(B.readfile(here .. "/nginx.conf"), "missing bench/nginx.conf")
  B.sh("mkdir -p " .. B.quote(dir .. "/nginx-temp"))
  local conf, pidfile = dir .. "/nginx.conf", dir .. "/nginx.pid"
  -- Close inherited descriptors above 2 so nginx holds none of ours.
  local close_fds = [[for fd in $(ls /proc/$$/fd); do [ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done; ]]
  for _ = 1, 5 do
    local port = B.free_port()
    B.writefile(conf, (template:gsub("%${(%u+)}", { PORT = tostring(port), ROOT = root, RUNDIR = dir })))
    os.remove(pidfile)
    local started = B.sh("bash -c " .. B.quote(close_fds .. ("exec %s -q -p %s -c %s </dev/null >>%s 2>&1")
      :format(nginx, B.quote(dir), B.quote(conf), B.quote(dir .. "/nginx-start.log"))))
    local pid
    local deadline = B.now() + 5
    while started and not pid and B.now() < deadline do
      pid = math.tointeger(tonumber((B.readfile(pidfile) or ""):match("%d+")))
      if not pid then socket.sleep(0.005) end
    end
    if pid then
      deadline = B.now() + 5
      while not can_connect(port) and B.now() < deadline do socket.sleep(0.01) end
      -- setsid: the watchdog must survive a signal sent to our whole process group.
      local rm = dir:match("/dt%-bench%.[%w]+$") and ("; rm -rf " .. B.quote(dir)) or ""
      B.sh(("setsid bash -c %s >/dev/null 2>&1 </dev/null &"):format(B.quote(close_fds ..
        ("while [ -d /proc/%d ] && [ -d /proc/%d ]; do sleep 1; done; kill -TERM -%d %d 2>/dev/null%s")
        :format(B.mypid(), pid, pid, pid, rm))))
      return { port = port, pid = pid, url = function(path)
        return ("http://%s:%d/%s"):format(B.HOST, port, path)
      end }
    end
  end
  error("could not start nginx; see " .. dir .. "/nginx-error.log and nginx-start.log")
end

function B.stop_nginx(ng)
  if not ng then return end
  B.sh(("kill -TERM -%d %d 2>/dev/null"):format(ng.pid, ng.pid))
  local deadline = B.now() + 2
  while alive(ng.pid) and B.now() < deadline do socket.sleep(0.01) end
  if alive(ng.pid) then B.sh(("kill -KILL -- -%d %d 2>/dev/null"):format(ng.pid, ng.pid)) end
end

------------------------------------------------------------------------------
-- Timing a child: wall time around it with the monotonic clock; user+sys CPU and peak RSS
-- of the child (all its threads) from GNU time's rusage.

B.TIME = "/usr/bin/time"
B.CHILD_TIMEOUT = 300 -- seconds

-- `env`: variable assignments for the child, e.g. "LUA_PATH='...' ".
-- Returns { wall = s, cpu = s, rss = bytes, out = stdout, ok = bool }.
function B.measure(cmd, scratch, env)
  local tfile, ofile, efile = scratch .. "/time.txt", scratch .. "/stdout.txt", scratch .. "/stderr.txt"
  os.remove(tfile)
  -- `timeout` outside GNU time: a hung child fails the run instead of hanging the bench.
  local full = ("%stimeout -k 5 %d %s -f '%%e %%U %%S %%M' -o %s %s >%s 2>%s"):format(env or "",
    B.CHILD_TIMEOUT, B.TIME, B.quote(tfile), cmd,
    B.quote(ofile), B.quote(efile))
  local t0 = B.now()
  local ok = B.sh(full)
  local wall = B.now() - t0
  local tout = B.readfile(tfile) or ""
  local e, u, s, m = tout:match("([%d.]+) ([%d.]+) ([%d.]+) (%d+)%s*$")
  local r = { wall = wall, ok = ok, out = B.readfile(ofile) or "", err = B.readfile(efile) or "" }
  if u then
    r.cpu = tonumber(u) + tonumber(s)
    r.rss = tonumber(m) * 1024
  end
  if not ok or not u then
    error(("command failed: %s\n%s%s"):format(cmd, r.err, tout), 0)
  end
  return r
end

-- "key=value" pairs from lines starting with RESULT in a child's output.
function B.results(out)
  local t = {}
  for line in out:gmatch("[^\n]+") do
    if line:match("^RESULT ") then
      for k, v in line:gmatch("(%w+)=(%S+)") do t[k] = tonumber(v) or v end
    end
  end
  return t
end

------------------------------------------------------------------------------
-- Statistics.

function B.median(xs)
  local t = {}
  for i, x in ipairs(xs) do t[i] = x end
  table.sort(t)
  local n = #t
  if n == 0 then return nil end
  if n % 2 == 1 then return t[(n + 1) // 2] end
  return (t[n // 2] + t[n // 2 + 1]) / 2
end

function B.min(xs)
  local m = math.huge
  for _, x in ipairs(xs) do m = math.min(m, x) end
  return m
end

function B.max(xs)
  local m = -math.huge
  for _, x in ipairs(xs) do m = math.max(m, x) end
  return m
end

function B.field(runs, k)
  local t = {}
  for i, r in ipairs(runs) do t[i] = r[k] end
  return t
end

return B
