-- nginx with Debian's Lua module (OpenResty's ngx_http_lua, LuaJIT 2.1) on 127.0.0.1, for
-- spec/embedding/openresty_spec.lua.
--
--   local OR = require "spec.support.openresty"
--   local ok, why = OR.available()    -- false, reason when the module or LuaJIT is missing
--   local o = OR.start { workers = 1, reuseport = false, code_cache = true }
--       -- { port, ssl_port, pid, dir, files, tmp, errlog, ca, url(path) }:
--       -- spec/support/openresty.conf with its own temp dir (S.tmpdir()), ports, pid file,
--       -- error log, and TMPDIR for the workers (tmp: where the notifier sockets go)
--   local r = OR.get(o, "/pong")      -- { status=, body=, fields = { key = value } }
--   local c = OR.send(o, "/fetch?url=" .. OR.escape(u))   -- request sent, not read yet
--   OR.readable(c)                    -- true once the response (or EOF) has started to arrive
--   OR.receive(c)                     -- the response, as OR.get's
--   OR.stop(o [, "QUIT"])             -- signal the master (TERM by default) and wait for the
--                                     -- whole process group to exit; true if it did
--
-- The module nginx loads is the LuaJIT build, whatever Lua runs busted: `make -s
-- build/luajit/downloadtask.so` (up to date with src/), copied into the instance's dir so
-- a rebuild while nginx runs cannot touch it. DT_TEST_OPENRESTY_MODULE names another
-- LuaJIT build to load instead. Every master pid is appended to $DT_TEST_PIDFILE, so
-- spec/support/run-specs.sh stops what a crashed spec left running.

local socket = require "socket"
local lfs = require "lfs"
local S = require "spec.support.servers"

local OR = {}

local NGINX = os.getenv("DT_TEST_NGINX") or "/usr/sbin/nginx"
local LUA_MODULE = "/usr/share/nginx/modules/ngx_http_lua_module.so"
local NDK_MODULE = "/usr/share/nginx/modules/ndk_http_module.so"
local HOST = "127.0.0.1"

local HERE = S.SUPPORT_DIR
local REPO = HERE:gsub("/spec/support$", "")
local quote, bash, CLOSE_FDS = S.quote, S.bash, S.CLOSE_FDS

function OR.escape(s)
  return (tostring(s):gsub("[^%w%-%._~]", function(ch) return ("%%%02X"):format(ch:byte()) end))
end

-- The LuaJIT build of the module, built (or found up to date) once per busted process.
local built
local function luajit_module()
  local explicit = os.getenv("DT_TEST_OPENRESTY_MODULE")
  if explicit and explicit ~= "" then return explicit end
  if built then return built end
  local log = S.tmpdir() .. "/make.log"
  if not bash(("make -s -C %s build/luajit/downloadtask.so >%s 2>&1"):format(quote(REPO), quote(log))) then
    error("make build/luajit/downloadtask.so failed:\n" .. (S.readfile(log) or ""))
  end
  built = REPO .. "/build/luajit/downloadtask.so"
  return built
end

-- true, or false and why the OpenResty specs cannot run here.
function OR.available()
  for _, f in ipairs { NGINX, LUA_MODULE, NDK_MODULE } do
    if not lfs.attributes(f) then
      return false, f .. " is missing (Debian: apt-get install nginx libnginx-mod-http-lua)"
    end
  end
  if not os.getenv("DT_TEST_OPENRESTY_MODULE")
      and not bash("pkg-config --exists luajit") then
    return false, "LuaJIT's headers are missing (Debian: apt-get install libluajit2-5.1-dev)"
  end
  return true
end

local function record_pid(pid)
  local file = os.getenv("DT_TEST_PIDFILE")
  local f = file and io.open(file, "a")
  if f then
    f:write(pid, "\n")
    f:close()
  end
end

local function read_pid(path, timeout)
  local deadline = socket.gettime() + timeout
  repeat
    local pid = tonumber((S.readfile(path) or ""):match("%d+"))
    if pid then return pid end
    socket.sleep(0.005)
  until socket.gettime() > deadline
end

local function can_connect(port)
  local c = socket.tcp()
  c:settimeout(0.5)
  local ok = c:connect(HOST, port)
  c:close()
  return ok == 1
end

-- Instances still running, kept in the registry (busted's insulation reloads this file per
-- spec file); busted's 'exit' stops them if a spec did not (run-specs.sh would otherwise).
local REGISTRY_KEY = "downloadtask.spec.support.openresty"
local live = debug.getregistry()[REGISTRY_KEY]
if not live then
  live = {}
  debug.getregistry()[REGISTRY_KEY] = live
  local ok, busted = pcall(require, "busted")
  if ok and type(busted) == "table" and type(busted.subscribe) == "function" then
    pcall(busted.subscribe, { "exit" }, function()
      for o in pairs(live) do OR.stop(o) end
      return nil, true
    end)
  end
end

-- Starts an instance; opts.workers (default 1), opts.reuseport (one listening socket per
-- worker, so the kernel spreads connections over the workers).
function OR.start(opts)
  opts = opts or {}
  local ng = S.nginx()                 -- serves the file init_by_lua downloads
  local dir = S.tmpdir()
  for _, d in ipairs { "/temp", "/files", "/lib", "/tmp" } do assert(lfs.mkdir(dir .. d)) end
  local certs = S.tls_certs()
  local lib = dir .. "/lib/downloadtask.so"
  S.writefile(lib, assert(S.readfile(luajit_module())))
  local template = assert(S.readfile(HERE .. "/openresty.conf"), "missing openresty.conf")
  local conf, pidfile, errlog = dir .. "/nginx.conf", dir .. "/nginx.pid", dir .. "/error.log"

  for _ = 1, 5 do                      -- the port can be taken before nginx binds it
    local port, ssl_port = S.free_port(), S.free_port()
    local text = template:gsub("%${([%u_]+)}", {
      DIR = dir, PORT = tostring(port), WORKERS = tostring(opts.workers or 1),
      SSL_PORT = tostring(ssl_port), SSL_CERT = certs.valid.cert, SSL_KEY = certs.valid.key,
      CODE_CACHE = opts.code_cache == false and "off" or "on",
      LISTEN = opts.reuseport and " reuseport" or "", LIBDIR = dir .. "/lib",
      INIT_URL = ng.url("small.txt"),
    })
    S.writefile(conf, text)
    os.remove(pidfile)
    -- LUA_PATH/LUA_CPATH of the busted process may name another Lua's modules: the master's
    -- LuaJIT must see its own defaults.
    local started = bash(CLOSE_FDS .. "unset LUA_PATH LUA_CPATH LUA_INIT; "
      .. ("exec %s -q -p %s -c %s -e %s </dev/null >>%s 2>&1")
      :format(NGINX, quote(dir), quote(conf), quote(errlog), quote(dir .. "/start.log")))
    local pid = started and read_pid(pidfile, 5)
    if pid then
      record_pid(pid)
      local deadline = socket.gettime() + 5
      while not can_connect(port) and socket.gettime() < deadline do socket.sleep(0.01) end
      local o = {
        port = port, pid = pid, dir = dir, files = dir .. "/files", errlog = errlog,
        ssl_port = ssl_port, tmp = dir .. "/tmp", ca = certs.ca,
        url = function(path) return ("http://%s:%d%s"):format(HOST, port, path) end,
      }
      live[o] = true
      return o
    end
  end
  error("could not start nginx with the Lua module; see " .. dir .. "/start.log and " .. errlog
    .. ":\n" .. (S.readfile(dir .. "/start.log") or "") .. (S.readfile(errlog) or ""))
end

local function alive(pid)
  local stat = S.readfile("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %(.*%) Z")
end

-- The live pids of the master's process group (the master and its workers).
function OR.group(o)
  local pids = {}
  for name in lfs.dir("/proc") do
    local pid = tonumber(name)
    local stat = pid and S.readfile("/proc/" .. name .. "/stat")
    -- pid (comm) state ppid pgrp ...; comm may hold anything, so parse after the last ')'
    local st, pgrp = (stat or ""):match("%) (%a) %-?%d+ (%d+)[^)]*$")
    if pgrp and tonumber(pgrp) == o.pid and st ~= "Z" then pids[#pids + 1] = pid end
  end
  return pids
end

-- Signals the master (TERM: fast shutdown; QUIT: graceful) and waits up to `timeout` s
-- (default 5) for the whole group to be gone; then SIGKILLs what is left. True when it
-- went by itself.
function OR.stop(o, sig, timeout)
  if not o or o.stopped then return true end
  o.stopped = true
  live[o] = nil
  bash(("kill -%s %d 2>/dev/null"):format(sig or "TERM", o.pid))
  local deadline = socket.gettime() + (timeout or 5)
  while socket.gettime() < deadline do
    if #OR.group(o) == 0 and not alive(o.pid) then return true end
    socket.sleep(0.02)
  end
  bash(("kill -KILL -- -%d %d 2>/dev/null"):format(o.pid, o.pid))
  return false
end

------------------------------------------------------------------------------
-- A minimal HTTP/1.0 client: nginx answers with the body up to the end of the connection.

function OR.send(o, target, timeout)
  local c = assert(socket.connect(HOST, o.port))
  c:settimeout(timeout or 20)
  assert(c:send(("GET %s HTTP/1.0\r\nHost: localhost\r\n\r\n"):format(target)))
  return c
end

-- True once something (the response, or the end of the connection) can be read from c.
function OR.readable(c)
  local r = socket.select({ c }, nil, 0)
  return r[1] ~= nil
end

function OR.receive(c)
  local data, err, partial = c:receive("*a")
  c:close()
  data = data or partial or ""
  local status = tonumber(data:match("^HTTP/1%.%d (%d%d%d)"))
  local body = data:match("\r\n\r\n(.*)$") or ""
  local fields = {}
  for k, v in body:gmatch("([%w_]+)=([^\n]*)") do fields[k] = v end
  return { status = status, body = body, fields = fields, err = err }
end

function OR.get(o, target, timeout)
  return OR.receive(OR.send(o, target, timeout))
end

return OR
