-- make interop: the module against server software this project did not write (Apache,
-- lighttpd, caddy, h2o, nghttpd, httpbin under gunicorn; squid, tinyproxy, microsocks and
-- Dante as proxies), each case
-- compared with the curl command against the same server: the same bytes (sha256), the same
-- status. Servers start on free loopback ports from the configs in tools/interop/conf/ and
-- stop at the end whatever happens (run through spec/support/run-specs.sh, as BUSTED). A
-- server that is not installed or does not start is reported as skipped, with the reason;
-- the run fails on a wrong file, a difference from curl, a hang or a crash. Prints a table
-- server x case and a closing line "interop: N passed, N failed, N skipped".
--
--   lua5.4 tools/interop/run.lua [--cpath=T] [--only=server,...]    (from the repository root)
local args = { cpath = "./?.so" }
for _, a in ipairs(arg) do
  local k, v = a:match("^%-%-(%w+)=(.*)$")
  if k then args[k] = v else io.stderr:write("interop: unknown argument ", a, "\n"); os.exit(2) end
end
package.path = "./?.lua;" .. package.path
package.cpath = args.cpath .. ";" .. package.cpath

local S = require "spec.support.servers"
local P = require "spec.support.pattern"
local socket = require "socket"
local dt = require "downloadtask"

local q = S.quote
local MiB = 1024 * 1024
local CASE_LIMIT = 60 -- s a download may take before it counts as hung
local ONLY = {}
for n in (args.only or ""):gmatch("[^,]+") do ONLY[n] = true end

-- ---- a place for it all -----------------------------------------------------------------
-- The servers run as nobody: the run's directory (mktemp -d, 0700) must let them in.
local DIR = S.tmpdir()
S.run("chmod a+rx " .. q(DIR) .. "; d=" .. q(DIR) .. "; while [ \"$d\" != / ]; do chmod a+x \"$d\"; d=$(dirname \"$d\"); done")
local ROOT = DIR .. "/www"
assert(os.execute("mkdir -p " .. q(ROOT)))
-- logs and pid files of the servers that run as nobody
local LOGS = DIR .. "/logs"
assert(os.execute("mkdir -p " .. q(LOGS) .. " && chmod 1777 " .. q(LOGS)))
local FILES = { ["1k.bin"] = 1024, ["100k.bin"] = 100 * 1024, ["10m.bin"] = 10 * MiB, ["200m.bin"] = 200 * MiB }
local SHA = {}
for name, size in pairs(FILES) do
  local f = assert(io.open(ROOT .. "/" .. name, "wb"))
  P.each(0, size, 4 * MiB, function(chunk) assert(f:write(chunk)) end)
  assert(f:close())
end
S.writefile(ROOT .. "/text.txt", ("downloadtask interop, a text that compresses well.\n"):rep(2000))
-- CGIs (lighttpd): gen.sh, a new body at every request, the same length, no validator;
-- cat.sh, 10m.bin with no length (lighttpd streams it chunked); err.sh, a 500 with a body
S.writefile(ROOT .. "/gen.sh", "printf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\n"
  .. "/usr/bin/head -c 4194304 /dev/urandom\n")
S.writefile(ROOT .. "/cat.sh", "printf 'Content-Type: application/octet-stream\\r\\n\\r\\n'\n"
  .. "exec /bin/cat " .. q(ROOT .. "/10m.bin") .. "\n")
S.writefile(ROOT .. "/err.sh", "printf 'Status: 500\\r\\nContent-Type: text/plain\\r\\n\\r\\n'\n"
  .. "echo 'interop: this CGI fails on purpose'\n")
S.run("chmod -R a+rX " .. q(ROOT) .. "; chmod a+x " .. q(ROOT .. "/gen.sh") .. " " .. q(ROOT .. "/cat.sh")
  .. " " .. q(ROOT .. "/err.sh"))

local function sha256(path)
  local out = S.run("sha256sum " .. q(path))
  return out:match("^(%x+)")
end
for name in pairs(FILES) do SHA[name] = sha256(ROOT .. "/" .. name) end
SHA["text.txt"] = sha256(ROOT .. "/text.txt")
local CERTS = S.tls_certs()

-- ---- starting servers -------------------------------------------------------------------
local function fill(template, vars)
  local text = assert(S.readfile("tools/interop/conf/" .. template))
  text = text:gsub("@(%u+)@", function(k) return assert(vars[k], k) end)
  local path = DIR .. "/" .. template
  S.writefile(path, text)
  return path
end

local function have(cmd) return S.have(cmd) end

-- Each returns a table of URL makers (http, https, proxy ...) and pids, or nil and why (with
-- the last lines of the server's output and of its own logs, from S.spawn).
local SERVERS = {}

-- The number of connections a client opened, from an access log whose lines start with a
-- connection's id or the client's port: the distinct first fields of the lines that carry
-- `tag` (a query parameter the client's URLs have: ...?by=<tag>&...).
local function connections(log, tag)
  local seen, n, lines = {}, 0, 0
  for line in (S.readfile(log) or ""):gmatch("[^\n]+") do
    if line:find("by=" .. tag .. "&", 1, true) then
      lines = lines + 1
      local id = line:match("^(%S+)")
      if not seen[id] then seen[id] = true; n = n + 1 end
    end
  end
  return n, lines
end

SERVERS.apache2 = function()
  if not have("apache2") then return nil, "apache2 is not installed" end
  local v = { DIR = DIR, ROOT = ROOT, PORT = S.free_port(), TLSPORT = S.free_port(),
              CERT = CERTS.valid.cert, KEY = CERTS.valid.key }
  local conf = fill("apache2.conf", v)
  local pid, why = S.spawn(("apache2 -f %s -DFOREGROUND"):format(q(conf)), v.PORT, DIR .. "/apache2.out", nil,
    { DIR .. "/apache2-error.log" })
  if not pid then return nil, why end
  return { pid = pid, http = "http://127.0.0.1:" .. v.PORT .. "/", https = "https://127.0.0.1:" .. v.TLSPORT .. "/",
           redirects = true, access_log = DIR .. "/apache2-access.log", conn_log = true }
end

SERVERS.lighttpd = function()
  if not have("lighttpd") then return nil, "lighttpd is not installed" end
  local v = { LOGS = LOGS, ROOT = ROOT, PORT = S.free_port() }
  local conf = fill("lighttpd.conf", v)
  local pid, why = S.spawn(("lighttpd -D -f %s"):format(q(conf)), v.PORT, DIR .. "/lighttpd.out", nil,
    { LOGS .. "/lighttpd-error.log" })
  if not pid then return nil, why end
  return { pid = pid, http = "http://127.0.0.1:" .. v.PORT .. "/", gzip = true, cgi = true, rel_redirect = "rel",
           access_log = LOGS .. "/lighttpd-access.log" }
end

SERVERS.caddy = function()
  if not have("caddy") then return nil, "caddy is not installed" end
  local port = S.free_port()
  -- its access log (JSON, with the request's headers) goes to its output
  local pid, why = S.spawn(("env HOME=%s XDG_DATA_HOME=%s XDG_CONFIG_HOME=%s caddy file-server --root %s --listen 127.0.0.1:%d --access-log")
    :format(q(DIR), q(DIR .. "/caddy-data"), q(DIR .. "/caddy-config"), q(ROOT), port), port, DIR .. "/caddy.out")
  if not pid then return nil, why end
  return { pid = pid, http = "http://127.0.0.1:" .. port .. "/", access_log = DIR .. "/caddy.out" }
end

SERVERS.h2o = function()
  if not have("h2o") then return nil, "h2o is not installed" end
  local v = { LOGS = LOGS, ROOT = ROOT, PORT = S.free_port(), TLSPORT = S.free_port(),
              CERT = CERTS.valid.cert, KEY = CERTS.valid.key }
  local conf = fill("h2o.conf", v)
  local pid, why = S.spawn(("h2o -c %s"):format(q(conf)), v.PORT, DIR .. "/h2o.out", nil, { LOGS .. "/h2o-error.log" })
  if not pid then return nil, why end
  return { pid = pid, http = "http://127.0.0.1:" .. v.PORT .. "/", https = "https://127.0.0.1:" .. v.TLSPORT .. "/",
           access_log = LOGS .. "/h2o-access.log", conn_log = true }
end

SERVERS.nghttpd = function()
  if not have("nghttpd") then return nil, "nghttpd is not installed (Debian: nghttp2-server)" end
  local port = S.free_port()
  local pid, why = S.spawn(("nghttpd --htdocs=%s --address=127.0.0.1 %d %s %s")
    :format(q(ROOT), port, q(CERTS.valid.key), q(CERTS.valid.cert)), port, DIR .. "/nghttpd.out")
  if not pid then return nil, why end
  return { pid = pid, https = "https://127.0.0.1:" .. port .. "/", h2only = true }
end

-- httpbin (Flask) under gunicorn: not a file server, it has cases of its own (httpbin_cases).
-- Two workers of four threads each, so that both clients and a redirect chain never wait for
-- a free worker; as nobody, with its temporary files and logs in LOGS.
SERVERS.httpbin = function()
  if not have("gunicorn") then return nil, "gunicorn is not installed (Debian: gunicorn)" end
  local _, rc = S.run("/usr/bin/python3 -c 'import httpbin'")
  if rc ~= 0 then return nil, "httpbin is not installed for /usr/bin/python3 (Debian: python3-httpbin)" end
  local port = S.free_port()
  local cmd = ("gunicorn --bind 127.0.0.1:%d --workers 2 --threads 4 --preload --user nobody --group nogroup "
    .. "--chdir %s --worker-tmp-dir %s --error-logfile %s --access-logfile %s httpbin:app")
    :format(port, q(LOGS), q(LOGS), q(LOGS .. "/httpbin-error.log"), q(LOGS .. "/httpbin-access.log"))
  local pid, why = S.spawn(cmd, port, DIR .. "/httpbin.out", 20, { LOGS .. "/httpbin-error.log" })
  if not pid then return nil, why end
  return { pid = pid, http = "http://127.0.0.1:" .. port .. "/" }
end

-- proxies: { proxy = "scheme://host:port" }
local PROXIES = {}

PROXIES.squid = function()
  if not have("squid") then return nil, "squid is not installed" end
  local v = { LOGS = LOGS, PORT = S.free_port() }
  local conf = fill("squid.conf", v)
  local pid, why = S.spawn(("squid -N -f %s"):format(q(conf)), v.PORT, DIR .. "/squid.out", 20,
    { LOGS .. "/squid-cache.log" })
  if not pid then return nil, why end
  return { pid = pid, proxy = "http://127.0.0.1:" .. v.PORT, connect = true }
end

PROXIES.tinyproxy = function()
  if not have("tinyproxy") then return nil, "tinyproxy is not installed" end
  local v = { LOGS = LOGS, PORT = S.free_port() }
  local conf = fill("tinyproxy.conf", v)
  local pid, why = S.spawn(("tinyproxy -d -c %s"):format(q(conf)), v.PORT, DIR .. "/tinyproxy.out", nil,
    { LOGS .. "/tinyproxy.log" })
  if not pid then return nil, why end
  return { pid = pid, proxy = "http://127.0.0.1:" .. v.PORT, connect = true }
end

PROXIES.microsocks = function()
  if not have("microsocks") then return nil, "microsocks is not installed" end
  local port = S.free_port()
  local pid, why = S.spawn(("microsocks -i 127.0.0.1 -p %d"):format(port), port, DIR .. "/microsocks.out")
  if not pid then return nil, why end
  return { pid = pid, proxy = "socks5h://127.0.0.1:" .. port, connect = true }
end

PROXIES["microsocks+auth"] = function()
  if not have("microsocks") then return nil, "microsocks is not installed" end
  local port = S.free_port()
  local pid, why = S.spawn(("microsocks -i 127.0.0.1 -p %d -u dt -P s3cret"):format(port), port,
    DIR .. "/microsocks-auth.out")
  if not pid then return nil, why end
  return { pid = pid, proxy = "socks5h://dt:s3cret@127.0.0.1:" .. port, connect = true }
end

-- Dante's danted: SOCKS5 without authentication, to loopback destinations only (danted.conf)
PROXIES.dante = function()
  if not have("danted") then return nil, "danted is not installed (Debian: dante-server)" end
  local v = { LOGS = LOGS, PORT = S.free_port() }
  local conf = fill("danted.conf", v)
  local pid, why = S.spawn(("danted -f %s -p %s"):format(q(conf), q(LOGS .. "/danted.pid")), v.PORT,
    DIR .. "/danted.out", nil, { LOGS .. "/danted.log" })
  if not pid then return nil, why end
  return { pid = pid, proxy = "socks5h://127.0.0.1:" .. v.PORT, connect = true }
end

-- ---- the two clients --------------------------------------------------------------------
local n_out = 0
local function out_path(tag)
  n_out = n_out + 1
  return ("%s/out.%d.%s"):format(DIR, n_out, tag)
end

-- Waits for a task's end: res or nil, err (never hangs: CASE_LIMIT).
local function finish(t)
  local deadline = socket.gettime() + CASE_LIMIT
  while (t.state == "queued" or t.state == "running") and socket.gettime() < deadline do dt.poll(50) end
  if t.state == "queued" or t.state == "running" then
    t:abort()
    dt.run()
    return nil, { errMsg = "hung: no end within " .. CASE_LIMIT .. " s" }
  end
  return t:await()
end

-- One download with the module; returns res or nil, err. `watch(task)`, when given, is
-- called before the first poll (to add listeners).
local function fetch(opts, watch)
  local t = dt.downloadFile(opts)
  if watch then watch(t) end
  return finish(t)
end

-- The curl command on the same URL: status and the saved file (or nil, why).
local function curl(url, path, extra)
  local out, rc = S.run(("curl -s -o %s -w '%%{http_code}' --max-time %d --cacert %s %s %s")
    :format(q(path), CASE_LIMIT, q(CERTS.ca), extra or "", q(url)))
  if rc ~= 0 and rc ~= 22 then return nil, "curl exit " .. tostring(rc) end
  return tonumber(out:match("(%d+)%s*$"))
end

-- ---- cases ------------------------------------------------------------------------------
local results, order, servers_seen = {}, {}, {}
local passed, failed, skipped = 0, 0, 0

local function record(server, case, verdict, secs)
  if not servers_seen[server] then servers_seen[server] = true; order[#order + 1] = server end
  results[server] = results[server] or {}
  results[server][#results[server] + 1] = { case = case, verdict = verdict }
  if verdict == "ok" or verdict:match("^ok:") then passed = passed + 1
  elseif verdict:match("^skip") then skipped = skipped + 1
  else failed = failed + 1 end
  print(("interop: %-16s %-28s %s%s"):format(server, case, verdict, secs and (" (%.1f s)"):format(secs) or ""))
  io.stdout:flush()
end

-- Runs fn(), which returns nil (ok), "ok: <what was measured>" or what went wrong, catching
-- errors.
local function case(server, name, fn)
  local t0 = socket.gettime()
  local ok, why = pcall(fn)
  if not ok then why = "error: " .. tostring(why) end
  record(server, name, why or "ok", socket.gettime() - t0)
end

-- The module and curl fetch url; both must give status `want` and the file of sha `sha`.
local function same_as_curl(url, opts, sha, want, curl_extra)
  opts = opts or {}
  local a = out_path("dt")
  opts.url, opts.filePath, opts.caFile = url, a, opts.caFile or CERTS.ca
  local res, err = fetch(opts)
  if not res then return "module: " .. tostring(err and err.errMsg) end
  local b = out_path("curl")
  local status, why = curl(url, b, curl_extra)
  if not status then return why end
  if res.statusCode ~= status then return ("status %d, curl %d"):format(res.statusCode, status) end
  if want and status ~= want then return ("status %d, %d expected"):format(status, want) end
  local got = sha256(res.tempFilePath or a)
  if res.tempFilePath then os.remove(res.tempFilePath) end
  local theirs = sha256(b)
  if got ~= theirs then return "a different file than curl's" end
  if sha and got ~= sha then return "not the file served" end
  os.remove(a); os.remove(b)
  return nil, res
end

-- A tag for the URLs of one case (?by=<tag>&...), to find its requests in an access log.
local n_tag = 0
local function tag(what)
  n_tag = n_tag + 1
  return what .. n_tag
end

-- resume after kill -9: a child Lua downloads 10m.bin with resume = true at 3 MB/s and is
-- killed (SIGKILL) after 1.5 s, mid-way; this process then downloads the same filePath with
-- resume = true, at 6 MB/s, so that the first progress event comes long before the end. Where
-- the server takes ranges the part must be continued: a 206 with Content-Range, and a first
-- progress event that counts the part's bytes (the killed process holds 2 to 4 MB; the first
-- event, at the first bytes written, would count 16 KiB or so starting over). `segments` (or
-- nil) goes to both downloads.
local function resume_after_kill(base, takes_ranges, segments)
  local dir = out_path("resume")
  assert(os.execute("mkdir -p " .. q(dir)))
  local dest = dir .. "/10m.bin"
  local code = ("package.cpath = %q .. package.cpath; local dt = require 'downloadtask'; "
    .. "dt.downloadFile{url = %q, filePath = %q, resume = true, rateLimit = 3000000, caFile = %q, segments = %s}; dt.run()")
    :format(args.cpath .. ";", base .. "10m.bin", dest, CERTS.ca, tostring(segments))
  S.run(("timeout -s KILL 1.5 %s -e %s"):format(S.LUA, q(code)))
  local parts = S.run("ls -a " .. q(dir) .. " | grep -c '^\\.dt\\..*\\.part$'")
  if tonumber(parts) ~= 1 then return "no part left by the killed process" end
  local first
  local res, err = fetch({ url = base .. "10m.bin", filePath = dest, resume = true, caFile = CERTS.ca,
                           segments = segments, rateLimit = 6000000 },
    function(t) t:onProgressUpdate(function(p) first = first or p.totalBytesWritten end) end)
  if not res then return err.errMsg end
  if res.statusCode ~= 200 then return "status " .. res.statusCode end
  if sha256(dest) ~= SHA["10m.bin"] then return "a wrong file" end
  if takes_ranges then
    if not res.header["content-range"] then return "not continued (no Content-Range)" end
    if not first or first < 1000000 then
      return ("not continued: the first progress event counted %s bytes"):format(tostring(first))
    end
    if segments and res.segments < 2 then return "not split (res.segments " .. res.segments .. ")" end
  end
  S.run("rm -rf " .. q(dir))
end

local function web_cases(name, s)
  local base = s.http or s.https
  for _, f in ipairs { "1k.bin", "10m.bin", "200m.bin" } do
    case(name, "GET " .. f, function() return (same_as_curl(base .. f, nil, SHA[f], 200)) end)
  end
  case(name, "404 body as curl's", function() return (same_as_curl(base .. "no-such-file", nil, nil, 404)) end)
  case(name, "304 by etag", function()
    local res, err = fetch { url = base .. "1k.bin", caFile = CERTS.ca }
    if not res then return err.errMsg end
    os.remove(res.tempFilePath)
    local etag = res.header.etag
    if not etag then return "skip: the server sends no ETag" end
    local r2, e2 = fetch { url = base .. "1k.bin", etag = etag, caFile = CERTS.ca }
    if not r2 then return e2.errMsg end
    local status = curl(base .. "1k.bin", out_path("curl"), "-H " .. q("If-None-Match: " .. etag))
    if r2.statusCode ~= 304 or status ~= 304 then return ("module %d, curl %s"):format(r2.statusCode, tostring(status)) end
  end)
  case(name, "304 by ifModifiedSince", function()
    local res, err = fetch { url = base .. "1k.bin", caFile = CERTS.ca }
    if not res then return err.errMsg end
    os.remove(res.tempFilePath)
    local lm = res.header["last-modified"]
    if not lm then return "skip: the server sends no Last-Modified" end
    local r2, e2 = fetch { url = base .. "1k.bin", ifModifiedSince = lm, caFile = CERTS.ca }
    if not r2 then return e2.errMsg end
    if r2.statusCode ~= 304 then return "status " .. r2.statusCode end
  end)
  -- a server that takes no ranges (nghttpd) gets one connection and no continuation: the
  -- file must still be right
  local takes_ranges
  case(name, "segments = 8 (200 MiB)", function()
    local why, res = same_as_curl(base .. "200m.bin", { segments = 8 }, SHA["200m.bin"], 200)
    if why then return why end
    takes_ranges = res.header["accept-ranges"] == "bytes"
    if takes_ranges and res.segments < 2 then return "not split (res.segments " .. res.segments .. ")" end
    if not takes_ranges and res.segments ~= 1 then return "split, though the server takes no ranges" end
  end)
  case(name, "resume after kill -9", function() return resume_after_kill(base, takes_ranges) end)
  case(name, "resume after kill -9, segments = 8", function() return resume_after_kill(base, takes_ranges, 8) end)
  -- pause() after 3 MiB of a download at 8 MiB/s, half a second paused, resume(): the file
  -- as curl's. No progress event may come while paused. A server that takes ranges must have
  -- been asked for the rest with one: its access log shows the Range header (apache2,
  -- lighttpd, caddy, h2o; nghttpd takes no ranges).
  case(name, "pause and resume", function()
    local by = tag("pause")
    local url = base .. "10m.bin?by=" .. by .. "&"
    local dest = out_path("pause")
    local t = dt.downloadFile { url = url, filePath = dest, rateLimit = 8 * MiB, caFile = CERTS.ca }
    local at, paused, while_paused = 0, false, 0
    t:onProgressUpdate(function(p)
      at = p.totalBytesWritten
      if paused then while_paused = while_paused + 1 end
    end)
    local deadline = socket.gettime() + CASE_LIMIT
    while (t.state == "queued" or t.state == "running") and at < 3 * MiB and socket.gettime() < deadline do dt.poll(20) end
    if t.state ~= "running" then
      local state = t.state
      t:abort(); dt.run()
      return ("not paused: the download was %s at %d bytes"):format(state, at)
    end
    t:pause()
    paused = true
    if t.state ~= "paused" then return "state " .. t.state .. " after pause()" end
    local held = at
    local stop = socket.gettime() + 0.5
    while socket.gettime() < stop do dt.poll(50) end
    paused = false
    if while_paused > 0 then
      t:abort(); dt.run()
      return ("%d progress events while paused"):format(while_paused)
    end
    t:resume()
    local res, err = finish(t)
    if not res then return "module: " .. tostring(err and err.errMsg) end
    local b = out_path("curl")
    local status, why = curl(url, b)
    if not status then return why end
    if res.statusCode ~= status or status ~= 200 then return ("status %d, curl %d"):format(res.statusCode, status) end
    local got, theirs = sha256(dest), sha256(b)
    if got ~= theirs then return "a different file than curl's" end
    if got ~= SHA["10m.bin"] then return "not the file served" end
    os.remove(dest); os.remove(b)
    if takes_ranges and s.access_log then
      -- the module's resumed request, or all three (the module's two, curl's) when none has a
      -- range; lighttpd writes its log seconds later
      local from, lines
      for _ = 1, 50 do
        from, lines = nil, 0
        for line in (S.readfile(s.access_log) or ""):gmatch("[^\n]+") do
          if line:find("by=" .. by .. "&", 1, true) then
            lines = lines + 1
            from = from or tonumber(line:match('"bytes=(%d+)%-'))
          end
        end
        if (from and from > 0) or lines >= 3 then break end
        socket.sleep(0.1)
      end
      if not from or from == 0 then
        return ("resumed from zero (paused at %d bytes, no Range asked; %d requests logged)"):format(held, lines)
      end
    end
  end)
  if s.https then
    case(name, "HTTPS h2", function()
      local why, res = same_as_curl(s.https .. "10m.bin", nil, SHA["10m.bin"], 200)
      if why then return why end
      if res.profile.protocol ~= "h2" then return "protocol " .. tostring(res.profile.protocol) end
    end)
    -- 200 downloads, 50 at a time. Where the access log names the connection (apache2: the
    -- client's port; h2o: its connection id), the connections the module opened are counted
    -- and compared with curl --parallel --parallel-max 50 over the same 200 URLs: more than
    -- curl's fails the case; the verdict says both.
    case(name, "HTTPS h2, 200 x 100 KiB", function()
      local by = tag("dt")
      local function url(i, t) return s.https .. "100k.bin?by=" .. (t or by) .. "&i=" .. i end
      dt.configure { maxConcurrent = 50 }
      local t0 = socket.gettime()
      local tasks, bad, first = {}, 0, nil
      for i = 1, 200 do
        tasks[i] = dt.downloadFile { url = url(i), caFile = CERTS.ca, timeout = 20000 }
      end
      local all = dt.awaitAll(tasks)
      local dt_secs = socket.gettime() - t0
      dt.configure { maxConcurrent = 10 }
      local failed_i = {}
      for i, r in ipairs(all) do
        if r.statusCode ~= 200 then bad = bad + 1; first = first or r.errMsg; failed_i[#failed_i + 1] = i end
        if r.tempFilePath then os.remove(r.tempFilePath) end
      end
      if bad > 0 then
        -- A stream that stalls (seen 1 in 4 runs against nghttpd under load: one of 200 ran
        -- into its 20 s timeout) is asked again once (under another tag: not counted); a
        -- second failure fails the case, a success is printed (a finding to look into, not a
        -- wrong file).
        local again = 0
        for _, i in ipairs(failed_i) do
          local r = fetch { url = url(i, by .. "again"), caFile = CERTS.ca, timeout = 20000 }
          if r and r.statusCode == 200 then again = again + 1; os.remove(r.tempFilePath) end
        end
        if again < bad then return ("%d of 200 failed twice, the first with %s"):format(bad - again, tostring(first)) end
        print(("interop: %s: %d of 200 failed once (%s), then succeeded"):format(name, bad, tostring(first)))
      end
      if not s.conn_log then return "ok: connections not counted (no access log)" end
      local cby = tag("curl")
      local cfg = out_path("curl.cfg")
      local lines = {}
      for i = 1, 200 do lines[#lines + 1] = ('url = "%s"\noutput = "/dev/null"'):format(url(i, cby)) end
      S.writefile(cfg, table.concat(lines, "\n") .. "\n")
      t0 = socket.gettime()
      local out, rc = S.run(("curl -s --no-progress-meter --parallel --parallel-max 50 --cacert %s --max-time %d -w '%%{http_code}\\n' -K %s")
        :format(q(CERTS.ca), CASE_LIMIT, q(cfg)))
      local curl_secs = socket.gettime() - t0
      local ok200 = 0
      for _ in out:gmatch("200\n") do ok200 = ok200 + 1 end
      -- curl's own streams stall now and then over h2 (libcurl 7.88, as the module's: see
      -- docs/maintainers.md); the count is still taken when all 200 were answered
      if rc ~= 0 then
        print(("interop: %s: curl --parallel exit %s after %.1f s, %d of 200 with 200"):format(name, tostring(rc),
          curl_secs, ok200))
      end
      -- the server may write a line after the client has its bytes
      local mine, theirs, n_mine, n_theirs
      for _ = 1, 50 do
        mine, n_mine = connections(s.access_log, by)
        theirs, n_theirs = connections(s.access_log, cby)
        if n_mine >= 200 and n_theirs >= 200 then break end
        socket.sleep(0.05)
      end
      if n_mine < 200 then return ("the access log has %d of the module's 200 requests"):format(n_mine) end
      if n_theirs == 0 then return "the access log has none of curl's requests" end
      local said = ("module %d connection%s, curl --parallel %d%s"):format(mine, mine == 1 and "" or "s", theirs,
        n_theirs < 200 and (" (%d of its requests logged)"):format(n_theirs) or "")
      print(("interop: %s: 200 x 100 KiB over h2: %s (the module in %.1f s, curl in %.1f s)"):format(name, said,
        dt_secs, curl_secs))
      if mine > theirs then return "more connections than curl: " .. said end
      return "ok: " .. said
    end)
  end
  if s.redirects then
    for _, code in ipairs { 301, 302, 303, 307, 308 } do
      case(name, "redirect " .. code, function()
        return (same_as_curl(base .. "r" .. code, nil, SHA["10m.bin"], 200, "-L"))
      end)
    end
    case(name, "redirect to https", function()
      local res, err = fetch { url = base .. "rhttps", caFile = CERTS.ca }
      if not res then return err.errMsg end
      os.remove(res.tempFilePath)
      if res.statusCode ~= 200 then return "status " .. res.statusCode end
    end)
  end
  if s.gzip then
    case(name, "gzip saved as sent", function()
      return (same_as_curl(base .. "text.txt", { header = { ["Accept-Encoding"] = "gzip" } }, nil, 200,
        "-H 'Accept-Encoding: gzip'"))
    end)
  end
  if s.cgi then
    case(name, "CGI without validator: not split", function()
      local res, err = fetch { url = base .. "gen.sh", segments = 4 }
      if not res then return err.errMsg end
      os.remove(res.tempFilePath)
      if res.segments ~= 1 then return "split into " .. res.segments .. " ranges of bodies that differ" end
      if res.dataLength ~= 4194304 then return ("status %d, length %d"):format(res.statusCode, res.dataLength) end
    end)
    -- a body of unknown length, chunked: the whole file, and (no length) never split
    case(name, "chunked CGI (10 MiB)", function()
      local why, res = same_as_curl(base .. "cat.sh", { segments = 4 }, SHA["10m.bin"], 200)
      if why then return why end
      if res.header["content-length"] or not (res.header["transfer-encoding"] or ""):match("chunked") then
        return ("not chunked: Transfer-Encoding %s, Content-Length %s"):format(tostring(res.header["transfer-encoding"]),
          tostring(res.header["content-length"]))
      end
      if res.segments ~= 1 then return "split into " .. res.segments .. " ranges" end
    end)
    case(name, "500 body as curl's", function()
      local why, res = same_as_curl(base .. "err.sh", nil, nil, 500)
      if why then return why end
      if res.dataLength == 0 then return "an empty body" end
    end)
  end
  if s.rel_redirect then
    -- Location: /10m.bin, relative to the URL asked (curl -D shows it as sent)
    case(name, "relative redirect", function()
      local url = base .. s.rel_redirect
      local head = S.run(("curl -s -o /dev/null -D - %s"):format(q(url)))
      local loc = head:match("\n[Ll]ocation: *([^\r\n]*)")
      if loc ~= "/10m.bin" then return "the server's Location is " .. tostring(loc) .. ", not /10m.bin" end
      return (same_as_curl(url, nil, SHA["10m.bin"], 200, "-L"))
    end)
  end
end

-- httpbin's endpoints. Random bytes come with a seed, so that both clients get the same ones;
-- /get (where the redirects end) echoes the request's headers, so both send the same
-- User-Agent. /gzip compresses at every request with the time in the gzip header: the two
-- files are compared gunzipped (and must both be gzip as sent, of the Content-Length sent).
local function httpbin_cases(name, s)
  local base = s.http
  local UA = "downloadtask-interop"
  local same_ua = { ["User-Agent"] = UA }
  case(name, "/bytes/102400 (seeded)", function()
    local why, res = same_as_curl(base .. "bytes/102400?seed=20", nil, nil, 200)
    if why then return why end
    if res.dataLength ~= 102400 then return "length " .. res.dataLength end
  end)
  case(name, "/stream-bytes/102400 chunked", function()
    local why, res = same_as_curl(base .. "stream-bytes/102400?seed=21&chunk_size=1000", { segments = 4 }, nil, 200)
    if why then return why end
    if not (res.header["transfer-encoding"] or ""):match("chunked") then
      return "not chunked: Transfer-Encoding " .. tostring(res.header["transfer-encoding"])
    end
    if res.dataLength ~= 102400 then return "length " .. res.dataLength end
    if res.segments ~= 1 then return "split into " .. res.segments .. " ranges" end
  end)
  case(name, "/status/500 as curl's", function()
    return (same_as_curl(base .. "status/500", nil, nil, 500))
  end)
  case(name, "/status/418 body as curl's", function()
    local why, res = same_as_curl(base .. "status/418", nil, nil, 418)
    if why then return why end
    if res.dataLength == 0 then return "an empty body" end
  end)
  for _, path in ipairs { "redirect/3", "relative-redirect/3", "absolute-redirect/3" } do
    case(name, "/" .. path, function()
      local why, res = same_as_curl(base .. path, { header = same_ua }, nil, 200, "-L -A " .. q(UA))
      if why then return why end
      if res.dataLength == 0 then return "an empty body" end
    end)
  end
  case(name, "/redirect/3, maxRedirects = 2", function()
    local res, err = fetch { url = base .. "redirect/3", maxRedirects = 2 }
    local _, rc = S.run(("curl -s -o /dev/null -L --max-redirs 2 %s"):format(q(base .. "redirect/3")))
    if res then
      if res.tempFilePath then os.remove(res.tempFilePath) end
      return ("module status %d, curl exit %s"):format(res.statusCode, tostring(rc))
    end
    if err.errno ~= 600008 or rc ~= 47 then return ("module %d %s, curl exit %s"):format(err.errno, err.errMsg, tostring(rc)) end
  end)
  case(name, "/gzip saved as sent", function()
    local hdr = { ["Accept-Encoding"] = "gzip", ["User-Agent"] = UA }
    local a = out_path("dt")
    local res, err = fetch { url = base .. "gzip", filePath = a, header = hdr }
    if not res then return "module: " .. tostring(err.errMsg) end
    local b, bh = out_path("curl"), out_path("curl-head")
    local status, why = curl(base .. "gzip", b, "-A " .. q(UA) .. " -H 'Accept-Encoding: gzip' -D " .. q(bh))
    if not status then return why end
    if res.statusCode ~= 200 or status ~= 200 then return ("status %d, curl %d"):format(res.statusCode, status) end
    local lengths = { [a] = tonumber(res.header["content-length"]),
                      [b] = tonumber((S.readfile(bh) or ""):match("\n[Cc]ontent%-[Ll]ength: *(%d+)")) }
    local plain = {}
    for _, f in ipairs { a, b } do
      local who = f == a and "module" or "curl"
      local body = S.readfile(f) or ""
      if body:sub(1, 2) ~= "\31\139" then return who .. ": not gzip (decoded?)" end
      if #body ~= lengths[f] then return ("%s: %d bytes, Content-Length %s"):format(who, #body, tostring(lengths[f])) end
      local text, rc = S.run("gzip -dc " .. q(f))
      if rc ~= 0 then return who .. ": gzip -dc failed: " .. text end
      plain[#plain + 1] = text
    end
    local function line(text) return (text:gsub("%s+", " ")) end
    if plain[1] ~= plain[2] then return "gunzipped, not curl's: " .. line(plain[1]) .. " against " .. line(plain[2]) end
    if not plain[1]:match('"gzipped": *true') then return "not httpbin's /gzip: " .. line(plain[1]) end
    os.remove(a); os.remove(b); os.remove(bh)
  end)
  case(name, "/basic-auth with a header", function()
    local auth = "Basic dTpw" -- u:p
    return (same_as_curl(base .. "basic-auth/u/p", { header = { Authorization = auth } }, nil, 200,
      "-H " .. q("Authorization: " .. auth)))
  end)
  case(name, "/basic-auth, wrong password: 401", function()
    return (same_as_curl(base .. "basic-auth/u/p", { header = { Authorization = "Basic dTp4" } }, nil, 401, -- u:x
      "-H 'Authorization: Basic dTp4'"))
  end)
end

-- ---- the run ----------------------------------------------------------------------------
local started = {}
local function start(kind, name, fn)
  if next(ONLY) and not ONLY[name] then return nil end
  local s, why = fn()
  if not s then record(name, "start", "skip: " .. tostring(why)); return nil end
  started[#started + 1] = s.pid
  return s
end

local web = {}
for _, name in ipairs { "apache2", "lighttpd", "caddy", "h2o", "nghttpd" } do
  local t0 = socket.gettime()
  web[name] = start("web", name, SERVERS[name])
  if web[name] then web_cases(name, web[name]) end
  print(("interop: %s took %.1f s"):format(name, socket.gettime() - t0))
end

do
  local t0 = socket.gettime()
  local hb = start("web", "httpbin", SERVERS.httpbin)
  if hb then httpbin_cases("httpbin", hb) end
  print(("interop: httpbin took %.1f s"):format(socket.gettime() - t0))
end

-- mirrors across two servers of different software: the same file, other ETags. lighttpd
-- serves ranges 1 and 3 (asked without If-Range, then with its own ETag): Apache is asked
-- for range 2 alone (it was asked for 1 and 3 too while a mirror with another ETag was dropped)
if web.apache2 and web.lighttpd then
  case("apache2+lighttpd", "mirrors", function()
    local before = #(S.readfile(web.apache2.access_log) or "")
    local why, res = same_as_curl(web.apache2.http .. "200m.bin", { segments = 4, mirrors = { web.lighttpd.http .. "200m.bin" } },
      SHA["200m.bin"], 200)
    if why then return why end
    local log = (S.readfile(web.apache2.access_log) or ""):sub(before + 1)
    local ranged = 0
    for _ in log:gmatch('"GET /200m%.bin[^\n]*"bytes=') do ranged = ranged + 1 end
    if ranged ~= 1 then return ("Apache served %d ranges, not 1: the mirror was not used\n%s"):format(ranged, log) end
  end)
end

-- proxies: an http URL of Apache (or lighttpd) through each, and an https one (CONNECT)
local origin = web.apache2 or web.lighttpd or web.caddy
for _, name in ipairs { "squid", "tinyproxy", "microsocks", "microsocks+auth", "dante" } do
  local p
  if origin then
    p = start("proxy", name, PROXIES[name])
  elseif not next(ONLY) or ONLY[name] then
    record(name, "start", "skip: no origin server (apache2, lighttpd or caddy) in this run")
  end
  -- the module's connection (res.profile.port) must be the proxy's, or it went direct
  local function through_proxy(res)
    local port = tonumber(p.proxy:match(":(%d+)$"))
    if res.profile.port ~= port then
      return ("not through the proxy: connected to port %s, the proxy is on %d"):format(tostring(res.profile.port), port)
    end
  end
  if p then
    case(name, "http through the proxy", function()
      local why, res = same_as_curl(origin.http .. "10m.bin", { proxy = p.proxy }, SHA["10m.bin"], 200, "-x " .. q(p.proxy))
      return why or through_proxy(res)
    end)
    -- a refused port is the same failure, and retried the same, whatever the route (was:
    -- 600000 and no retry through SOCKS, 600001 and retried directly)
    if p.proxy:match("^socks") then
      case(name, "refused port: as direct", function()
        local closed = "http://127.0.0.1:" .. S.free_port() .. "/x"
        local _, direct = fetch { url = closed, retry = 1 }
        local _, via = fetch { url = closed, retry = 1, proxy = p.proxy }
        if not direct or not via then return "a refused port succeeded" end
        if via.errno ~= direct.errno or via.errMsg ~= direct.errMsg or via.attempts ~= direct.attempts then
          return ("through the proxy %d %q (attempts %d), direct %d %q (attempts %d)"):format(via.errno,
            via.errMsg, via.attempts, direct.errno, direct.errMsg, direct.attempts)
        end
      end)
    end
    if origin.https and p.connect then
      case(name, "https through the proxy", function()
        local why, res = same_as_curl(origin.https .. "10m.bin", { proxy = p.proxy }, SHA["10m.bin"], 200, "-x " .. q(p.proxy))
        return why or through_proxy(res)
      end)
    end
  end
end

for _, pid in ipairs(started) do S.stop(pid) end

-- the table: server x case
print("\ninterop: results (server | case | verdict)")
for _, server in ipairs(order) do
  for _, r in ipairs(results[server]) do print(("| %s | %s | %s |"):format(server, r.case, r.verdict)) end
end
print(("interop: %d passed, %d failed, %d skipped"):format(passed, failed, skipped))
os.exit(failed == 0 and 0 or 1)
