-- Real servers on 127.0.0.1 for the specs, and file helpers.
--
--   local S = require "spec.support.servers"
--   local ng = S.nginx()          -- { port, root, url(path), pid }
--   local f  = S.fault()          -- { port, url(path), pid }
--   local t  = S.nginx_tls()      -- { ca, pid, valid, selfsigned, expired, wronghost, h2 },
--                                 -- each variant { port, url(path), cert, key }: https
--                                 -- nginx (same docroot) with certificates made at run
--                                 -- time by the `openssl` command (see S.tls_certs)
--
-- Servers start lazily, once per busted process, on ports picked at run time,
-- and everything lives in one per-run temp dir. Cleanup, in layers, so no
-- server survives a failing or crashing run:
--   1. stop_all() from busted's 'exit' event and from a __gc sentinel; busted
--      ends either by returning from its main chunk or by os.exit(code, true),
--      and both close the Lua state, which runs pending finalizers;
--   2. the fault server's stdin is a pipe from this process: when this
--      process dies, however it dies, the server reads end of file and exits;
--   3. every pid is appended to $DT_TEST_PIDFILE (and <run dir>/pids) for
--      spec/support/run-specs.sh, which kills what is left after busted.
--
-- busted runs each spec file "insulated": package.loaded is restored after
-- the file, so this module is loaded again by the next file. The state is
-- therefore kept in the registry, which insulation does not touch, so all
-- files share one nginx, one fault server and one run dir.

local socket = require "socket"
local lfs = require "lfs"
local P = require "spec.support.pattern"

local S = {}

-- The Lua under test (the one busted runs on; `make test-<version>` sets it)
-- and the fault server's Lua, which is always 5.4: it is a separate process.
local LUA = os.getenv("DT_TEST_LUA") or "lua5.4"
local SERVER_LUA = os.getenv("DT_TEST_SERVER_LUA") or "lua5.4"
local NGINX = os.getenv("DT_TEST_NGINX") or "/usr/sbin/nginx"
local HOST = "127.0.0.1"

-- This file is loaded by the busted process, whatever Lua runs it (5.1 to
-- 5.4, LuaJIT): no 5.3+ operators or functions here.
local tointeger = math.tointeger or function(v)
  if type(v) == "number" and v % 1 == 0 then return v end
end

-- Directory of this file, absolute, so a spec that changes directory still works.
local HERE = debug.getinfo(1, "S").source:match("^@(.*)/[^/]*$") or "."
HERE = HERE:gsub("^%./", "")
if HERE:sub(1, 1) ~= "/" then HERE = lfs.currentdir() .. (HERE == "." and "" or "/" .. HERE) end

local REGISTRY_KEY = "downloadtask.spec.support.servers"
local state = debug.getregistry()[REGISTRY_KEY]
if not state then
  state = { tmpcount = 0 }
  debug.getregistry()[REGISTRY_KEY] = state
end

------------------------------------------------------------------------------
-- Small helpers.

local function quote(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end

-- Runs a bash script; true when it exits with status 0.
local function bash(script)
  local ok = os.execute("bash -c " .. quote(script))
  return ok == true or ok == 0         -- 5.1 and LuaJIT return the status
end

-- Prefix for spawning a long-lived server: close every inherited descriptor
-- above 2. Neither luasocket nor libcurl marks its sockets close-on-exec, and
-- a server holding a copy of a spec's socket would keep that connection open
-- after the spec closes it.
local CLOSE_FDS = [[for fd in $(ls /proc/$$/fd); do ]]
  .. [[[ "$fd" -gt 2 ] && eval "exec $fd>&-" 2>/dev/null; done; ]]

local function sleep(seconds) socket.sleep(seconds) end

-- for other spec helpers (spec/support/openresty.lua)
S.quote, S.bash, S.CLOSE_FDS, S.SUPPORT_DIR = quote, bash, CLOSE_FDS, HERE

function S.readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

-- Runs a shell command; returns its output (stdout and stderr) and its exit status.
function S.run(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return (out:gsub("rc=%d+%s*$", "")), rc
end

-- Whether a command is installed (on PATH), on every Lua: the status is read from the
-- shell's output, since os.execute reports it differently on 5.1/LuaJIT (a number) and
-- 5.2+ (true or nil). A spec that needs a tool says what to install when this is false:
--   if not S.have("strace") then pending("strace is not installed (Debian: strace; ./dev deps)") return end
function S.have(cmd)
  local _, rc = S.run("command -v " .. quote(cmd) .. " >/dev/null")
  return rc == 0
end

function S.writefile(path, s)
  local f = assert(io.open(path, "wb"))
  assert(f:write(s))
  assert(f:close())
  return true
end

function S.filesize(path)
  return lfs.attributes(path, "size")
end

function S.listdir(dir)
  local names = {}
  for name in lfs.dir(dir) do
    if name ~= "." and name ~= ".." then names[#names + 1] = name end
  end
  table.sort(names)
  return names
end

S.pattern = P.pattern

-- For specs that start a child Lua which loads the module: the interpreter
-- under test and the cpath template of the module under test, absolute
-- ($DT_TEST_CPATH relative to the repository root, as run-specs.sh gives it
-- to busted; by default the top-level ./?.so).
S.LUA = LUA
-- pkg-config's name for the headers of the Lua running this (to build a helper module)
S.LUA_PC = jit and "luajit" or "lua" .. _VERSION:match("%d+%.%d+")
do
  local cpath = os.getenv("DT_TEST_CPATH") or "./?.so"
  cpath = cpath:gsub("^%./", "")
  if cpath:sub(1, 1) ~= "/" then cpath = lfs.currentdir() .. "/" .. cpath end
  S.MODULE_CPATH = cpath
end

-- Lua 5.4 only (nil elsewhere): with_close(v, fn) calls fn(v) in a block where
-- v is a `local <close>` variable. Compiled from a string so that spec files
-- that use it still load on the versions without `<close>`.
S.with_close = _VERSION == "Lua 5.4" and assert(load([[
  local v, fn = ...
  do
    local c <close> = v
    fn(c)
  end
]], "=with_close")) or nil

-- math.type, also where numbers are all doubles (5.1, 5.2, LuaJIT): there an
-- integral value is "integer", as integer as a number gets.
S.math_type = math.type or function(x)
  if type(x) ~= "number" then return nil end
  return x % 1 == 0 and "integer" or "float"
end

-- True when the file holds exactly the first n bytes of the pattern.
-- Compared in 1 MiB pieces so a 100 MiB file never sits in memory at once.
function S.file_matches_pattern(path, n)
  if S.filesize(path) ~= n then return false end
  local f = io.open(path, "rb")
  if not f then return false end
  local ok = true
  P.each(0, n, 1024 * 1024, function(expected)
    if ok and f:read(#expected) ~= expected then ok = false end
  end)
  f:close()
  return ok
end

-- A port nobody listens on right now (bind port 0, read it, close), and one this process
-- has not handed out before: the kernel may give a closed port again at once, and two
-- servers of one config on one port would go unnoticed (nginx serves both with the first).
-- Also handy for "connection refused" specs.
local handed_out = {}
function S.free_port()
  for _ = 1, 1000 do
    local s = assert(socket.bind(HOST, 0))
    local _, port = s:getsockname()
    s:close()
    port = tointeger(tonumber(port))
    if not handed_out[port] then
      handed_out[port] = true
      return port
    end
  end
  error("free_port: no port that was not handed out before in 1000 tries")
end

local function can_connect(port)
  local c = socket.tcp()
  c:settimeout(0.5)
  local ok = c:connect(HOST, port)
  c:close()
  return ok == 1
end

local function url_for(port)
  return function(path)
    path = tostring(path or "")
    if path:sub(1, 1) == "/" then path = path:sub(2) end
    return ("http://%s:%d/%s"):format(HOST, port, path)
  end
end

------------------------------------------------------------------------------
-- Per-run directory and pid bookkeeping.

local function record_pid(pid)
  for _, file in ipairs { state.dir .. "/pids", os.getenv("DT_TEST_PIDFILE") } do
    local f = io.open(file, "a")
    if f then
      f:write(pid, "\n")
      f:close()
    end
  end
end

-- Reads a pid file, waiting up to `timeout` s for it to be written.
local function read_pid(path, timeout)
  local deadline = socket.gettime() + timeout
  repeat
    local pid = tointeger(tonumber((S.readfile(path) or ""):match("%d+")))
    if pid then return pid end
    sleep(0.005)
  until socket.gettime() > deadline
  return nil
end

-- Waits (up to 2 s) for pid to be gone or a zombie, SIGTERM first, then
-- SIGKILL. With group = true the whole process group goes too (nginx's master
-- leads its own group). A zombie counts as gone: the daemonized master is
-- an orphan, and PID 1 in a container may reap it late.
local function kill(pid, group)
  local targets = group and ("-- -%d %d"):format(pid, pid) or tostring(pid)
  bash(([[
    alive() { [ -r /proc/%d/stat ] && ! grep -q '^[0-9]* (.*) Z' /proc/%d/stat 2>/dev/null; }
    kill -TERM %s 2>/dev/null
    for i in $(seq 200); do alive || exit 0; sleep 0.01; done
    kill -KILL %s 2>/dev/null; exit 0
  ]]):format(pid, pid, targets, targets))
end

local stop_all

local function run_dir()
  if state.dir then return state.dir end
  local base = os.getenv("DT_TEST_TMPDIR") or os.getenv("TMPDIR") or "/tmp"
  local p = assert(io.popen("mktemp -d " .. quote(base .. "/dt-spec.XXXXXX")))
  local dir = p:read("*l")
  p:close()
  assert(dir and dir ~= "", "mktemp -d failed under " .. base)
  state.dir = dir
  assert(lfs.mkdir(dir .. "/tmp"))

  -- Finalized when the Lua state closes, even when busted exits early.
  if not state.sentinel then
    if newproxy then                   -- 5.1 and LuaJIT: no __gc on tables
      state.sentinel = newproxy(true)
      getmetatable(state.sentinel).__gc = function() stop_all() end
    else
      state.sentinel = setmetatable({}, { __gc = function() stop_all() end })
    end
  end
  -- busted publishes 'exit' after the last file; the subscriber returns
  -- (nil, true) so later subscribers still run.
  if not state.subscribed then
    local ok, busted = pcall(require, "busted")
    if ok and type(busted) == "table" and type(busted.subscribe) == "function" then
      state.subscribed = pcall(busted.subscribe, { "exit" }, function()
        stop_all()
        return nil, true
      end)
    end
  end
  return dir
end

------------------------------------------------------------------------------
-- nginx.

local NGINX_FILES = {   -- name -> size; content from the pattern, but small.txt
  ["small.txt"] = 19,
  ["empty.bin"] = 0,
  ["1k.bin"] = 1024,
  ["1m.bin"] = 1024 * 1024,
  ["100m.bin"] = 100 * 1024 * 1024,
}
S.NGINX_FILES = NGINX_FILES
S.SMALL_TXT = "hello downloadtask\n"

local function make_docroot(root)
  assert(lfs.mkdir(root))
  S.writefile(root .. "/small.txt", S.SMALL_TXT)
  for name, size in pairs(NGINX_FILES) do
    if name:match("%.bin$") then
      local f = assert(io.open(root .. "/" .. name, "wb"))
      P.each(0, size, 4 * 1024 * 1024, function(chunk) assert(f:write(chunk)) end)
      assert(f:close())
    end
  end
end

function S.nginx()
  if state.nginx then return state.nginx end
  local dir = run_dir()
  local root = dir .. "/www"
  make_docroot(root)
  assert(lfs.mkdir(dir .. "/nginx-temp"))
  local template = assert(S.readfile(HERE .. "/nginx.conf"), "missing nginx.conf template")
  local conf, pidfile, errlog = dir .. "/nginx.conf", dir .. "/nginx.pid", dir .. "/nginx-error.log"

  -- The port can be taken between free_port() and nginx's bind: retry.
  for _ = 1, 5 do
    local port = S.free_port()
    local text = template:gsub("%${(%u+)}", { PORT = tostring(port), ROOT = root, RUNDIR = dir })
    S.writefile(conf, text)
    os.remove(pidfile)
    local started = bash(CLOSE_FDS .. ("exec %s -q -p %s -c %s -e %s </dev/null >>%s 2>&1")
      :format(NGINX, quote(dir), quote(conf), quote(errlog), quote(dir .. "/nginx-start.log")))
    -- The daemon writes its pid file after the starting process has exited.
    local pid = started and read_pid(pidfile, 5)
    if pid then
      record_pid(pid)
      local deadline = socket.gettime() + 5
      while not can_connect(port) and socket.gettime() < deadline do sleep(0.01) end
      state.nginx = { port = port, root = root, url = url_for(port), pid = pid }
      return state.nginx
    end
  end
  error("could not start nginx; see " .. errlog .. " and " .. dir .. "/nginx-start.log")
end

------------------------------------------------------------------------------
-- Fault server.

function S.fault()
  if state.fault then return state.fault end
  local dir = run_dir()
  local pidfile, log = dir .. "/faultserver.pid", dir .. "/faultserver.log"

  for _ = 1, 5 do
    local port = S.free_port()
    os.remove(pidfile)
    -- `exec` keeps the shell's pid ($$) for the server; its stdin is our pipe.
    -- popen runs `sh -c`: exec so no shell sits between us and the server.
    local pipe = assert(io.popen("exec bash -c " .. quote(("echo $$ > %s; %s exec %s %s %d >>%s 2>&1")
      :format(quote(pidfile), CLOSE_FDS, SERVER_LUA, quote(HERE .. "/faultserver.lua"), port, quote(log))), "w"))
    local pid = read_pid(pidfile, 5)
    if pid then
      record_pid(pid)
      local deadline = socket.gettime() + 5
      repeat
        if can_connect(port) then
          state.fault = { port = port, url = url_for(port), pid = pid, pipe = pipe }
          return state.fault
        end
        sleep(0.01)
      until socket.gettime() > deadline
             or not bash(("kill -0 %d 2>/dev/null"):format(pid))   -- bind failed: it exited
      kill(pid)
    end
    pcall(pipe.close, pipe)
  end
  error("could not start the fault server; see " .. log)
end

------------------------------------------------------------------------------
-- TLS: certificates made with the `openssl` command, and an https nginx.

local OPENSSL = os.getenv("DT_TEST_OPENSSL") or "openssl"

-- Makes, once per run, in <run dir>/tls (EC P-256 keys, so it takes ~0.2 s):
--   ca         a test CA (ca.pem, ca.key)
--   valid      signed by the CA, for localhost and 127.0.0.1, valid for 10 years
--   expired    signed by the CA, for localhost and 127.0.0.1, valid only in January 2020
--   wronghost  signed by the CA, for wrong-host.invalid only (a name, never looked up)
--   selfsigned self-signed, for localhost and 127.0.0.1
-- Returns { dir, ca = path, <variant> = { cert = path, key = path } }.
function S.tls_certs()
  if state.tls_certs then return state.tls_certs end
  local dir = run_dir() .. "/tls"
  assert(lfs.mkdir(dir))
  -- Every command's output (openssl's progress dots and "Signature ok" chatter) goes to
  -- tls/openssl.log, read only when something failed: `exec` redirects the whole script.
  local script = ([[
    set -e
    cd %s
    exec >openssl.log 2>&1
    o=%s
    ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
    $o req -x509 $ec -keyout ca.key -out ca.pem -days 3650 -subj "/CN=downloadtask test CA" \
      -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
    for n in valid expired wronghost; do
      $o req $ec -keyout $n.key -out $n.csr -subj "/CN=$n"
    done
    printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ok.ext
    printf 'subjectAltName=DNS:wrong-host.invalid\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >wrong.ext
    $o x509 -req -in valid.csr -CA ca.pem -CAkey ca.key -set_serial 2 -out valid.pem -days 3650 -extfile ok.ext
    $o x509 -req -in wronghost.csr -CA ca.pem -CAkey ca.key -set_serial 3 -out wronghost.pem -days 3650 -extfile wrong.ext
    # `openssl ca` is the one that takes explicit dates (for the expired certificate)
    mkdir db && : >db/index.txt && echo 1000 >db/serial
    printf '%%s\n' '[ca]' 'default_ca = tca' '[tca]' 'database = db/index.txt' 'serial = db/serial' \
      'new_certs_dir = db' 'default_md = sha256' 'policy = pol' 'unique_subject = no' \
      '[pol]' 'commonName = supplied' \
      '[ext]' 'subjectAltName = DNS:localhost,IP:127.0.0.1' 'basicConstraints = CA:FALSE' \
      'extendedKeyUsage = serverAuth' >ca.cnf
    $o ca -batch -config ca.cnf -cert ca.pem -keyfile ca.key -in expired.csr -out expired.pem \
      -startdate 20200101000000Z -enddate 20200201000000Z -extensions ext -notext
    $o req -x509 $ec -keyout selfsigned.key -out selfsigned.pem -days 3650 -subj "/CN=localhost" \
      -addext "subjectAltName=DNS:localhost,IP:127.0.0.1"
  ]]):format(quote(dir), quote(OPENSSL))
  if not bash(script) then
    error("making the test certificates failed:\n" .. (S.readfile(dir .. "/openssl.log") or "(no openssl.log)"))
  end
  local certs = { dir = dir, ca = dir .. "/ca.pem" }
  for _, n in ipairs { "valid", "expired", "wronghost", "selfsigned" } do
    certs[n] = { cert = dir .. "/" .. n .. ".pem", key = dir .. "/" .. n .. ".key" }
  end
  state.tls_certs = certs
  return certs
end

S.TLS_VARIANTS = { "valid", "selfsigned", "expired", "wronghost" }

local function https_url_for(port)
  return function(path)
    path = tostring(path or "")
    if path:sub(1, 1) == "/" then path = path:sub(2) end
    return ("https://%s:%d/%s"):format(HOST, port, path)
  end
end

-- A second nginx (its own master, pid file and logs in the run dir) with one
-- https server block per certificate of S.tls_certs(), each on its own
-- loopback port, all serving the docroot of S.nginx() plus
--   /redirect-to?url=U    302 to U (taken verbatim: no '&' in U)
function S.nginx_tls()
  if state.nginx_tls then return state.nginx_tls end
  local ng = S.nginx()                 -- the docroot, and `daemon`/cleanup as there
  local certs = S.tls_certs()
  local dir = run_dir()
  assert(lfs.attributes(dir .. "/nginx-tls-temp") or lfs.mkdir(dir .. "/nginx-tls-temp"))
  local conf, pidfile = dir .. "/nginx-tls.conf", dir .. "/nginx-tls.pid"
  local errlog = dir .. "/nginx-tls-error.log"

  for _ = 1, 5 do
    local ports, servers = {}, {}
    for _, n in ipairs(S.TLS_VARIANTS) do
      ports[n] = S.free_port()
      servers[#servers + 1] = ([[
    server {
        listen 127.0.0.1:%d ssl;
        server_name localhost;
        root %s;
        ssl_certificate %s;
        ssl_certificate_key %s;
        location = /redirect-to { return 302 $arg_url; }
    }

]]):format(ports[n], ng.root, certs[n].cert, certs[n].key)
    end
    -- h2: HTTP/2 over TLS (ALPN) with the valid certificate; X-Conn names the connection
    -- (nginx's $connection serial), so a spec can count the connections a client opened; its
    -- access log (t.h2.log) has a line "<connection> <status> <Range>" a request
    ports.h2 = S.free_port()
    local h2log = dir .. "/nginx-h2-access.log"
    servers[#servers + 1] = ([[
    server {
        listen 127.0.0.1:%d ssl http2;
        server_name localhost;
        root %s;
        ssl_certificate %s;
        ssl_certificate_key %s;
        add_header X-Conn $connection always;
        access_log %s h2conn;
    }
]]):format(ports.h2, ng.root, certs.valid.cert, certs.valid.key, h2log)
    local text = ([[
# Generated by spec/support/servers.lua (S.nginx_tls): https with test certificates.
user root;
daemon on;
master_process on;
worker_processes 1;
pid %s;
error_log %s warn;
events { worker_connections 1024; }
http {
    access_log off;
    log_format h2conn '$connection $status "$http_range"';
    server_tokens off;
    keepalive_timeout 60s;
    default_type application/octet-stream;
    client_body_temp_path %s/body;
    proxy_temp_path %s/proxy;
    fastcgi_temp_path %s/fastcgi;
    uwsgi_temp_path %s/uwsgi;
    scgi_temp_path %s/scgi;
%s}
]]):format(pidfile, errlog, dir .. "/nginx-tls-temp", dir .. "/nginx-tls-temp",
      dir .. "/nginx-tls-temp", dir .. "/nginx-tls-temp", dir .. "/nginx-tls-temp",
      table.concat(servers))
    S.writefile(conf, text)
    os.remove(pidfile)
    local started = bash(CLOSE_FDS .. ("exec %s -q -p %s -c %s -e %s </dev/null >>%s 2>&1")
      :format(NGINX, quote(dir), quote(conf), quote(errlog), quote(dir .. "/nginx-tls-start.log")))
    local pid = started and read_pid(pidfile, 5)
    if pid then
      record_pid(pid)
      local t = { ca = certs.ca, certs = certs, pid = pid }
      for _, n in ipairs(S.TLS_VARIANTS) do
        local deadline = socket.gettime() + 5
        while not can_connect(ports[n]) and socket.gettime() < deadline do sleep(0.01) end
        t[n] = { port = ports[n], url = https_url_for(ports[n]), cert = certs[n].cert, key = certs[n].key }
      end
      local deadline = socket.gettime() + 5
      while not can_connect(ports.h2) and socket.gettime() < deadline do sleep(0.01) end
      t.h2 = { port = ports.h2, url = https_url_for(ports.h2), log = h2log }
      state.nginx_tls = t
      return t
    end
  end
  error("could not start the https nginx; see " .. errlog .. " and " .. dir .. "/nginx-tls-start.log")
end

------------------------------------------------------------------------------
-- Other server software (the interop suite, tools/interop/): started in the
-- foreground in a session of its own, its pid recorded like nginx's, so that
-- run-specs.sh stops it (and its children) whatever happens.

-- Runs `cmd` (a shell command that stays in the foreground) with its output
-- in `log`, and waits up to `timeout` s (default 10) for 127.0.0.1:port to
-- accept. Returns its pid, or nil and why: whether it exited or kept running
-- without listening, and the last lines of `log` and of `logs` (a list of the
-- server's own log files, such as squid's cache.log), so that the reason is
-- never empty even when the server writes nothing to its output.
local function last_lines(path, n)
  local text = S.readfile(path)
  if not text then return nil end
  local lines, errors = {}, {}
  for line in text:gmatch("[^\n]+") do
    line = line:gsub("%s+$", "")
    if line ~= "" then
      lines[#lines + 1] = line
      -- a server's closing lines may be its shutdown chatter: keep its last error lines too
      local l = line:lower()
      if l:find("fatal") or l:find("error") or l:find("emerg") or l:find("alert") or l:find("crit") then
        errors[#errors + 1] = #lines
      end
    end
  end
  if #lines == 0 then return nil end
  local first = math.max(1, #lines - n + 1)
  local picked = {}
  for k = math.max(1, #errors - 1), #errors do
    if errors[k] < first then picked[#picked + 1] = lines[errors[k]] end
  end
  if #picked > 0 then picked[#picked + 1] = "..." end
  for i = first, #lines do picked[#picked + 1] = lines[i] end
  local s = table.concat(picked, " / ")
  if #s > 1000 then s = s:sub(1, 300) .. " ... " .. s:sub(-700) end
  return s
end

function S.spawn(cmd, port, log, timeout, logs)
  local p = assert(io.popen("bash -c " .. quote(CLOSE_FDS .. ("setsid %s </dev/null >>%s 2>&1 & echo $!")
    :format(cmd, quote(log)))))
  local pid = tointeger(tonumber(p:read("*l") or ""))
  p:close()
  if not pid then return nil, "could not start: " .. cmd end
  record_pid(pid)
  timeout = timeout or 10
  local alive = ("[ -r /proc/%d/stat ] && ! grep -q '^[0-9]* (.*) Z' /proc/%d/stat 2>/dev/null"):format(pid, pid)
  local deadline = socket.gettime() + timeout
  local exited = false
  repeat
    if can_connect(port) then return pid end
    sleep(0.02)
    exited = not bash(alive)
  until exited or socket.gettime() > deadline
  -- gone, but something of its session listens (a server that forked and let its parent go)
  if exited and can_connect(port) then return pid end
  kill(pid, true)
  local why = exited and ("exited without listening on port %d"):format(port)
    or ("did not listen on port %d within %g s"):format(port, timeout)
  local said = {}
  local paths = { log }
  for _, path in ipairs(logs or {}) do paths[#paths + 1] = path end
  for _, path in ipairs(paths) do
    local tail = last_lines(path, 6)
    if tail then said[#said + 1] = path:match("[^/]*$") .. ": " .. tail end
  end
  if #said == 0 then return nil, why .. "; its output and logs are empty (" .. cmd .. ")" end
  return nil, why .. "; " .. table.concat(said, "; ")
end

-- Stops what S.spawn started (its whole session).
function S.stop(pid) kill(pid, true) end

------------------------------------------------------------------------------
-- Scratch directories.

-- A fresh, empty directory for one spec's files.
function S.tmpdir()
  local dir = run_dir()
  state.tmpcount = state.tmpcount + 1
  local path = ("%s/tmp/%04d"):format(dir, state.tmpcount)
  assert(lfs.mkdir(path))
  return path
end

------------------------------------------------------------------------------
-- Stopping. Idempotent; safe from a finalizer at state close.

stop_all = function()
  local fault, ng, ngtls = state.fault, state.nginx, state.nginx_tls
  state.fault, state.nginx, state.nginx_tls, state.tls_certs = nil, nil, nil, nil
  if fault then
    kill(fault.pid)
    -- At state close the pipe's own finalizer may have run first (closing it
    -- is what lets the server see end of file): the handle is closed then.
    if io.type(fault.pipe) == "file" then pcall(fault.pipe.close, fault.pipe) end
  end
  if ng then kill(ng.pid, true) end
  if ngtls then kill(ngtls.pid, true) end
  if state.dir then
    local dir = state.dir
    state.dir = nil
    -- A guard against ever removing something that is not our run dir.
    if dir:match("/dt%-spec%.[%w]+$") then bash("rm -rf " .. quote(dir)) end
  end
end
S.stop_all = function() stop_all() end

return S
