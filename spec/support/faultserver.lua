-- A scriptable HTTP/1.1 test server that misbehaves on request.
--
--   lua5.4 spec/support/faultserver.lua PORT [--ignore-stdin]
--
-- Binds 127.0.0.1:PORT only. One process, one coroutine per connection,
-- multiplexed with socket.select on non-blocking sockets, so slow and hanging
-- connections never hold up the others. Every response carries
-- `Connection: close` and the connection is closed after it.
--
-- The server exits when its stdin reaches end of file (the spec process that
-- started it holds the other end of a pipe, so the server cannot outlive it),
-- or on SIGTERM. `--ignore-stdin` is for starting it by hand with stdin
-- redirected from /dev/null.
--
-- The endpoints are documented next to their code in `route` below.

local socket = require "socket"   -- also sets SIGPIPE to ignored (luasocket does at load)

local script_dir = arg[0]:match("^(.*)/[^/]*$") or "."
package.path = script_dir .. "/?.lua;" .. package.path
local P = require "pattern"

local PORT = math.tointeger(tonumber(arg[1] or ""))
if not PORT then
  io.stderr:write("usage: lua5.4 faultserver.lua PORT [--ignore-stdin]\n")
  os.exit(2)
end
local IGNORE_STDIN = arg[2] == "--ignore-stdin"

local MAX_LINE = 64 * 1024        -- longer request line: 431
local MAX_HEAD = 1024 * 1024      -- bigger request head: 431
local RECV_SIZE = 64 * 1024
local HEAD_TIMEOUT = 60           -- s to receive a request head
local LINGER_TIMEOUT = 2          -- s to wait for the client's FIN after our response
local MAX_CONN = 900              -- select() cannot watch descriptors >= FD_SETSIZE (1024)

local now = socket.gettime
local min, max, tointeger = math.min, math.max, math.tointeger

------------------------------------------------------------------------------
-- Scheduler: each connection is a coroutine that yields what it waits for.

local CLOSED = setmetatable({}, { __tostring = function() return "peer closed" end })

local threads = {}     -- coroutine -> { sock=, want="r"|"w"|nil, deadline=s|nil }
local nconn = 0

-- Wait until sock is readable ("r") or writable ("w"), or until `timeout`
-- seconds pass. Returns true when ready, false on timeout.
local function wait(sock, want, timeout)
  return coroutine.yield(sock, want, timeout and now() + timeout)
end

local function sleep(seconds)
  if seconds > 0 then coroutine.yield(nil, nil, now() + seconds) end
end

local function log(...)
  io.stderr:write(os.date("!%H:%M:%S "), string.format(...), "\n")
  io.stderr:flush()
end

local function step(co, ...)
  local rec = threads[co]
  local ok, sock, want, deadline = coroutine.resume(co, ...)
  if not ok then
    log("connection coroutine failed: %s", debug.traceback(co, tostring(sock)))
    rec.sock:close()
  end
  if not ok or coroutine.status(co) == "dead" then
    threads[co] = nil
    nconn = nconn - 1
    return
  end
  rec.want, rec.deadline = sock and want or nil, deadline
end

------------------------------------------------------------------------------
-- Socket helpers (called inside connection coroutines).

-- Returns the next bytes available, or nil when the peer closed (or on timeout).
local function recv_some(c, timeout)
  while true do
    local data, err, part = c.sock:receive(RECV_SIZE)
    local got = data or part
    if got and #got > 0 then return got end
    if err ~= "timeout" then return nil end
    if not wait(c.sock, "r", timeout) then return nil, "timeout" end
  end
end

-- Sends all of data, keeping the unsent rest across partial sends.
-- Raises CLOSED when the peer is gone.
local function send_all(c, data)
  local i, n = 1, #data
  while i <= n do
    local last, err, partial = c.sock:send(data, i)
    if last then
      i = last + 1
    elseif err == "timeout" then
      i = partial + 1
      wait(c.sock, "w")
    else
      error(CLOSED, 0)
    end
  end
end

-- Close after our response: half-close, then read until the client closes.
-- Closing with unread input would make the kernel send RST, which can destroy
-- a response the client has not read yet (the 431 case in particular).
local function linger_close(c)
  c.sock:shutdown("send")
  local deadline = now() + LINGER_TIMEOUT
  while true do
    local left = deadline - now()
    if left <= 0 or not recv_some(c, left) then break end
  end
  c.sock:close()
end

-- Abrupt close; with rst, SO_LINGER 0 makes close() send RST instead of FIN.
local function drop(c, rst)
  if rst then c.sock:setoption("linger", { on = true, timeout = 0 }) end
  c.sock:close()
  return "dropped"
end

------------------------------------------------------------------------------
-- HTTP helpers.

local REASONS = {
  [100] = "Continue", [200] = "OK", [201] = "Created", [202] = "Accepted",
  [204] = "No Content", [206] = "Partial Content",
  [301] = "Moved Permanently", [302] = "Found", [303] = "See Other",
  [304] = "Not Modified", [307] = "Temporary Redirect", [308] = "Permanent Redirect",
  [400] = "Bad Request", [401] = "Unauthorized", [403] = "Forbidden", [404] = "Not Found",
  [408] = "Request Timeout", [410] = "Gone", [416] = "Range Not Satisfiable",
  [429] = "Too Many Requests", [431] = "Request Header Fields Too Large",
  [500] = "Internal Server Error", [502] = "Bad Gateway", [503] = "Service Unavailable",
  [504] = "Gateway Timeout",
}

local function http_date(t)
  return os.date("!%a, %d %b %Y %H:%M:%S GMT", t)
end

local function url_decode(s)
  -- %XX only: '+' stays '+', so URLs passed in a query survive unchanged.
  return (s:gsub("%%(%x%x)", function(h) return string.char(tonumber(h, 16)) end))
end

local function parse_query(query)
  local q, hdr = {}, {}
  for pair in query:gmatch("[^&]+") do
    local k, v = pair:match("^([^=]*)=?(.*)$")
    k, v = url_decode(k), url_decode(v)
    q[k] = v
    if k == "hdr" then hdr[#hdr + 1] = v end
  end
  q.hdr = hdr
  return q
end

-- Integer query parameter; a malformed value is the test's bug, so it is a 400.
local BadRequest = setmetatable({}, { __tostring = function() return "bad request" end })
local function int(v, default)
  if v == nil or v == "" then return default end
  local n = tointeger(tonumber(v))
  if not n then error(BadRequest, 0) end
  return n
end

-- Sends status line and headers. headers: list of {name, value}; a value may
-- hold "\r\n" plus leading blanks (an obsolete folded continuation line).
-- `hdr=Name:Value` query parameters add headers to every response.
-- c.hslow (ms, set by serve_bytes) sends the status line and each header line
-- that many milliseconds apart; otherwise the head goes out in one write.
local function send_head(c, status, headers)
  local t = { ("HTTP/1.1 %d %s\r\n"):format(status, REASONS[status] or "Status") }
  t[#t + 1] = "Date: " .. http_date() .. "\r\n"
  t[#t + 1] = "Server: faultserver\r\n"
  for _, h in ipairs(headers) do t[#t + 1] = h[1] .. ": " .. h[2] .. "\r\n" end
  for _, h in ipairs(c.query and c.query.hdr or {}) do
    local name, value = h:match("^([^:]+):%s*(.*)$")
    if name then t[#t + 1] = name .. ": " .. value .. "\r\n" end
  end
  t[#t + 1] = "Connection: close\r\n\r\n"
  if c.hslow and c.hslow > 0 then
    for i, line in ipairs(t) do
      if i > 1 then sleep(c.hslow / 1000) end
      send_all(c, line)
    end
  else
    send_all(c, table.concat(t))
  end
end

local function bodyless(status)
  return status < 200 or status == 204 or status == 304
end

-- A complete response with a Content-Length body.
local function respond(c, status, body, ctype, headers)
  headers = headers or {}
  if bodyless(status) then body = "" else
    headers[#headers + 1] = { "Content-Type", ctype or "text/plain" }
    headers[#headers + 1] = { "Content-Length", tostring(#body) }
  end
  send_head(c, status, headers)
  if c.method ~= "HEAD" and #body > 0 then send_all(c, body) end
end

------------------------------------------------------------------------------
-- Shared state for /slow, /stats and /flaky.

local stats = { active = 0, max = 0, total = 0 }
local flaky = {}       -- key -> requests seen
local ranged = {}      -- key -> requests seen that carried a Range header

------------------------------------------------------------------------------
-- /bytes: the body generator with all its faults.

-- Parses a Range header against a representation of `size` bytes.
-- Returns first, last (inclusive), or false when unsatisfiable, or nil when
-- absent or not understood (then the whole body is sent, as servers do).
local function parse_range(value, size)
  if not value then return nil end
  local a, b = value:match("^%s*bytes%s*=%s*(%d*)%s*%-%s*(%d*)%s*$")
  if not a or (a == "" and b == "") then return nil end
  local first, last
  if a == "" then                          -- suffix range: last b bytes
    local len = tointeger(tonumber(b))
    if len == 0 or size == 0 then return false end
    first, last = max(0, size - len), size - 1
  else
    first = tointeger(tonumber(a))
    if b ~= "" and tointeger(tonumber(b)) < first then return nil end   -- invalid: ignored
    if first >= size then return false end
    last = b == "" and size - 1 or min(tointeger(tonumber(b)), size - 1)
  end
  return first, last
end

-- Parameters of /bytes (and of /flaky, which passes them on):
--   n=N           body of N pattern bytes (spec/support/pattern.lua)
--   status=C      status code (default 200)
--   etag=E, lastmod=D   validators; a matching If-None-Match/If-Modified-Since gives 304
--   range=1       honour Range like a file server: 206 with Content-Range, 416
--   cl=L          Content-Length: L whatever the body (too short or too long)
--   nolength=1    no Content-Length (the body ends when the connection closes)
--   chunked=1     Transfer-Encoding: chunked; badchunk=1 / truncchunk=1 break it midway
--   dropafter=B   close after B body bytes (reset=1: with RST instead of FIN)
--   stallafter=B, stall=MS   pause MS ms after B body bytes
--   rate=BPS, chunk=B, delay=MS   trickle the body
--   hdelay=MS     wait before the status line; shift=K: body starts K bytes later
--                 (another version of the file)
-- Lies and header oddities (for the holes of issue 10):
--   lie206=start  a request carrying a Range header (range=1 not needed) gets 206
--                 with the WHOLE body from byte 0 and `Content-Range: bytes 0-(n-1)/n`:
--                 a 206 that starts elsewhere than asked
--   lie206=none   a Range request gets 206 and the requested range's bytes but no
--                 Content-Range header at all (an unparsable Range: the whole body)
--   lie416=N      a request carrying a Range header gets 416 with
--                 `Content-Range: bytes */N` and an empty body
--   fold=1        adds an obsolete folded header: `X-Folded: first` and the
--                 continuation line `  second` (a client must see "first second")
--   hflood=N      N extra headers `X-Flood-<i>: v<i>` (i = 1..N)
--   cookies=N     N headers `Set-Cookie: c<i>=<i>`, in order
--   hslow=MS      the status line and each header line are sent MS ms apart
--   retryafter=S  adds `Retry-After: S` (with status=503, say)
--   hdr=Name:Value  (any route) an extra header; may repeat
-- /flaky drops the fault parameters (FAULT_PARAMS) once its failures are used
-- up; lie206, lie416 and the header oddities stay, since a lie about a range
-- only shows on the retry that asks for one.
local function serve_bytes(c, q, default_n)
  local n = int(q.n, default_n or 16)
  local status = int(q.status, 200)
  local hdelay = int(q.hdelay, 0)
  local offset, total = 0, n
  local headers = {}
  if q.etag then headers[#headers + 1] = { "ETag", q.etag } end
  if q.lastmod then headers[#headers + 1] = { "Last-Modified", q.lastmod } end
  if q.retryafter then headers[#headers + 1] = { "Retry-After", q.retryafter } end
  if q.fold == "1" then headers[#headers + 1] = { "X-Folded", "first\r\n  second" } end
  for i = 1, int(q.hflood, 0) do headers[#headers + 1] = { "X-Flood-" .. i, "v" .. i } end
  for i = 1, int(q.cookies, 0) do headers[#headers + 1] = { "Set-Cookie", ("c%d=%d"):format(i, i) } end
  c.hslow = int(q.hslow)

  if hdelay > 0 then sleep(hdelay / 1000) end

  -- Conditional requests (extension): a matching validator gives 304.
  local inm, ims = c.headers["if-none-match"], c.headers["if-modified-since"]
  if (q.etag and inm and (inm == "*" or inm:find(q.etag, 1, true)))
      or (q.lastmod and ims and ims == q.lastmod) then
    send_head(c, 304, headers)
    return
  end

  -- Ranges (extension, only with range=1): 206 / 416 like a file server. An
  -- If-Range that is not this version's etag or lastmod gets the whole body.
  -- lie416 and lie206 come first and answer any Range header, range=1 or not.
  local ifr = c.headers["if-range"]
  local current = not ifr or ifr == q.etag or ifr == q.lastmod or q.ignoreifrange == "1"
  local rq = c.headers["range"]
  -- review: rangebad=1 answers a closed range "bytes=a-b" (a segment's) as if it had no
  -- Range (200, whole body); noauth=1 answers a request carrying Authorization with 403
  if rq and q.rangebad == "1" and rq:match("^bytes=%d+%-%d+$") then rq = nil; c.headers["range"] = nil end
  -- review: rangeempty=C answers a closed range with status C and an empty body
  if rq and q.rangeempty and rq:match("^bytes=%d+%-%d+$") then
    respond(c, int(q.rangeempty), "", nil, { { "Content-Length", "0" } })
    return
  end
  if q.noauth == "1" and c.headers["authorization"] then
    respond(c, 403, "no Authorization here\n", "text/plain")
    return
  end
  if rq and q.lie416 then
    headers[#headers + 1] = { "Content-Range", "bytes */" .. int(q.lie416) }
    respond(c, 416, "", nil, headers)
    return
  elseif rq and q.lie206 == "start" then
    if not q.status then status = 206 end
    headers[#headers + 1] = { "Content-Range", ("bytes 0-%d/%d"):format(total - 1, total) }
  elseif rq and q.lie206 == "none" then
    if not q.status then status = 206 end
    local first, last = parse_range(rq, total)
    if first then offset, n = first, last - first + 1 end
  elseif q.lie206 and q.lie206 ~= "start" and q.lie206 ~= "none" then
    error(BadRequest, 0)
  elseif q.range == "1" and current then
    headers[#headers + 1] = { "Accept-Ranges", "bytes" }
    local first, last = parse_range(c.headers["range"], total)
    if first == false then
      headers[#headers + 1] = { "Content-Range", "bytes */" .. total }
      respond(c, 416, "", nil, headers)
      return
    elseif first then
      offset, n = first, last - first + 1
      if not q.status then status = 206 end
      headers[#headers + 1] = { "Content-Range", ("bytes %d-%d/%d"):format(first, last, total) }
    end
  end

  local chunked = q.chunked == "1"
  headers[#headers + 1] = { "Content-Type", "application/octet-stream" }
  if q.cl then
    headers[#headers + 1] = { "Content-Length", tostring(int(q.cl)) }
  elseif q.nolength ~= "1" and not chunked and not bodyless(status) then
    headers[#headers + 1] = { "Content-Length", tostring(n) }
  end
  if chunked then headers[#headers + 1] = { "Transfer-Encoding", "chunked" } end
  send_head(c, status, headers)
  if c.method == "HEAD" or bodyless(status) then return end

  -- Body. Fault points cut the body into writes so each fault happens
  -- exactly after the given number of body (payload) bytes.
  local rate = int(q.rate)
  local chunk = int(q.chunk) or (rate and min(max(rate // 20, 1), 65536)) or 65536
  chunk = max(chunk, 1)
  local delay = int(q.delay, 0) / 1000
  local dropafter = int(q.dropafter)
  local stallafter, stall = int(q.stallafter), int(q.stall, 0) / 1000
  local mid = (q.badchunk == "1" or q.truncchunk == "1") and chunked and n // 2 or nil
  local points = {}
  for _, p in ipairs { dropafter or -1, stallafter or -1, mid or -1 } do
    if p >= 0 then points[#points + 1] = p end
  end

  local sent, stalled, t0 = 0, false, now()

  -- Runs the faults due at `sent`; returns "dropped" when the body ends here.
  local function faults()
    if stallafter and not stalled and sent >= stallafter then
      stalled = true
      sleep(stall)
    end
    if dropafter and sent >= dropafter then
      return drop(c, q.reset == "1")
    end
    if mid and sent >= mid then
      if q.badchunk == "1" then
        send_all(c, "zz-not-a-size\r\n" .. P.pattern(offset + sent, min(16, n - sent)))
      else
        local announced = max(n - sent, 2)
        send_all(c, ("%x\r\n"):format(announced) .. P.pattern(offset + sent, announced // 2))
      end
      return drop(c)
    end
  end

  while sent < n do
    local r = faults()
    if r then return r end
    local len = min(chunk, n - sent)
    for _, p in ipairs(points) do
      if p > sent and p - sent < len then len = p - sent end
    end
    local data = P.pattern(offset + sent + int(q.shift, 0), len) -- shift=K: another version
    if chunked then data = ("%x\r\n"):format(len) .. data .. "\r\n" end
    send_all(c, data)
    sent = sent + len
    if rate then
      sleep(t0 + sent / rate - now())
    elseif delay > 0 and sent < n then
      sleep(delay)
    end
  end
  local r = faults()
  if r then return r end
  if chunked then send_all(c, "0\r\n\r\n") end
end

-- Query parameters that /flaky drops once its failures are used up.
local FAULT_PARAMS = { "status", "cl", "dropafter", "reset", "stallafter", "stall",
  "badchunk", "truncchunk", "hdelay", "delay", "rate", "hslow", "retryafter" }

------------------------------------------------------------------------------
-- Routes.

local function redirect(c, code, location)
  if not ({ [301] = 1, [302] = 1, [303] = 1, [307] = 1, [308] = 1 })[code] then
    error(BadRequest, 0)
  end
  respond(c, code, "redirect\n", "text/plain", { { "Location", location } })
end

local function route(c)
  local path, q = c.path, c.query

  -- GET /bytes?n=N&...       pattern body with optional faults (see serve_bytes)
  if path == "/bytes" then return serve_bytes(c, q) end

  -- GET /status/C?n=N        status C; body n pattern bytes, or "status C\n"
  local code = path:match("^/status/(%d+)$")
  if code then
    code = tointeger(tonumber(code))
    local body = q.n and P.pattern(0, int(q.n)) or ("status %d\n"):format(code)
    return respond(c, code, body, q.n and "application/octet-stream" or "text/plain")
  end

  -- GET /redirect/N?...      N hops (code=301|302|303|307|308), then /bytes
  local hops = path:match("^/redirect/(%d+)$")
  if hops then
    hops = tointeger(tonumber(hops))
    if hops == 0 then return serve_bytes(c, q, 16) end
    local loc = "/redirect/" .. (hops - 1) .. (c.rawquery ~= "" and "?" .. c.rawquery or "")
    return redirect(c, int(q.code, 302), loc)
  end

  -- GET /redirect-to?url=U   redirect to U verbatim (code= as above)
  if path == "/redirect-to" then
    if not q.url then error(BadRequest, 0) end
    return redirect(c, int(q.code, 302), q.url)
  end

  -- GET /loop                endless redirects
  if path == "/loop" then return redirect(c, 302, "/loop") end

  -- GET /echo                the request line and headers as received
  if path == "/echo" then
    local t = { c.request_line, "\n" }
    for _, h in ipairs(c.header_list) do t[#t + 1] = h[1] .. ": " .. h[2] .. "\n" end
    return respond(c, 200, table.concat(t), "text/plain")
  end

  -- GET /headers?n=N         N extra headers X-H-i: v-i
  if path == "/headers" then
    local headers = {}
    for i = 1, int(q.n, 0) do headers[i] = { "X-H-" .. i, "v-" .. i } end
    return respond(c, 200, "ok", "text/plain", headers)
  end

  -- GET /dup                 repeated headers and a mixed-case name
  if path == "/dup" then
    return respond(c, 200, "ok", "text/plain", {
      { "X-Dup", "a" }, { "X-Dup", "b" }, { "Set-Cookie", "a=1" }, { "Set-Cookie", "b=2" },
      { "X-Mixed-Case", "Yes" } })
  end

  -- GET /bigheader?size=S    one header X-Big with an S-byte value
  if path == "/bigheader" then
    local size = int(q.size, 1024)
    return respond(c, 200, "ok", "text/plain", { { "X-Big", ("x"):rep(size) } })
  end

  -- GET /hang                never answer; close when the client does
  if path == "/hang" then
    while recv_some(c) do end
    return drop(c)
  end

  -- GET /slow?ms=M&n=N       counted as active while it waits M ms, then N bytes
  if path == "/slow" then
    stats.active, stats.total = stats.active + 1, stats.total + 1
    stats.max = max(stats.max, stats.active)
    local counted = true
    c.cleanup = function()             -- also runs if the client goes away
      if counted then counted = false; stats.active = stats.active - 1 end
    end
    sleep(int(q.ms, 0) / 1000)
    local n = int(q.n, 0)
    respond(c, 200, P.pattern(0, n), "application/octet-stream")
    c.cleanup()
    return
  end

  -- GET /stats[?key=K]       {"active":A,"max":X,"total":T[,"hits":H]}
  if path == "/stats" then
    local hits = q.key and (',"hits":%d,"ranges":%d'):format(flaky[q.key] or 0,
      ranged[q.key] or 0) or ""
    return respond(c, 200, ('{"active":%d,"max":%d,"total":%d%s}'):format(
      stats.active, stats.max, stats.total, hits), "application/json")
  end

  -- GET /stats/reset         max = total = 0, forget /flaky counters
  if path == "/stats/reset" then
    stats.max, stats.total, flaky, ranged = 0, 0, {}, {}
    return respond(c, 200, "ok", "text/plain")
  end

  -- GET /flaky?key=K&fails=F&...  the first F requests with key K are /bytes
  -- with every parameter; later ones drop the fault parameters.
  if path == "/flaky" then
    local key = q.key or ""
    flaky[key] = (flaky[key] or 0) + 1
    if c.headers["range"] then ranged[key] = (ranged[key] or 0) + 1 end
    if flaky[key] > int(q.fails, 1) then
      for _, k in ipairs(FAULT_PARAMS) do q[k] = nil end
      -- another version once the failures are used up (issue 20): thenetag=E, thenlastmod=D,
      -- thenshift=K replace etag, lastmod and shift (an empty value removes it); thenhdelay=MS
      -- makes that version's headers wait
      for _, k in ipairs { "etag", "lastmod", "shift", "hdelay" } do
        local v = q["then" .. k]
        if v then q[k] = v ~= "" and v or nil end
      end
    end
    -- shiftper=K: every request of the key is a new version (shift K x its number, beside
    -- any shift given): a server that makes a new body for every request, as a CGI does
    if q.shiftper then q.shift = tostring(int(q.shift, 0) + int(q.shiftper) * flaky[key]) end
    -- rangedrop=B&rangefails=F: the first F requests with key K for a range that does not
    -- start at byte 0 (a segment's) are closed after B body bytes (segments, issue 13)
    local rq = c.headers["range"]
    if q.rangedrop and rq and not rq:match("^bytes=0%-") then
      local k2 = key .. "\0range"
      flaky[k2] = (flaky[k2] or 0) + 1
      if flaky[k2] <= int(q.rangefails, 1) then q.dropafter = q.rangedrop end
    end
    return serve_bytes(c, q)
  end

  -- GET /close               close without answering
  if path == "/close" then return drop(c) end

  -- GET /garbage             not HTTP at all
  if path == "/garbage" then
    send_all(c, "SSH-2.0-garbage this is not HTTP\r\n\0\1\2\3\255\254\r\n\r\n")
    return
  end

  return respond(c, 404, "not found\n", "text/plain")
end

------------------------------------------------------------------------------
-- One connection.

-- Reads the request head. Returns it (up to the blank line), or nil when the
-- client went away, or false, status for a request we refuse.
local function read_head(c)
  local buf = ""
  while true do
    local s = buf:find("\n\r?\n")
    if s then
      local head = buf:sub(1, s)
      if #head > MAX_HEAD then return false, 431 end
      local nl = head:find("\n", 1, true)
      if nl > MAX_LINE then return false, 431 end
      return head
    end
    if #buf > MAX_HEAD then return false, 431 end
    if #buf > MAX_LINE and not buf:find("\n", 1, true) then return false, 431 end
    local got = recv_some(c, HEAD_TIMEOUT)
    if not got then return nil end
    buf = buf .. got
  end
end

local function serve(c)
  local head, status = read_head(c)
  if head == nil then return drop(c) end
  if not head then
    respond(c, status, "request header too large\n", "text/plain")
    return
  end

  local lines = {}
  for line in head:gmatch("([^\n]*)\n") do lines[#lines + 1] = line:gsub("\r$", "") end
  local method, target = lines[1]:match("^(%u+) (%S+) HTTP/1%.%d$")
  if not method then return respond(c, 400, "bad request\n", "text/plain") end
  c.method, c.request_line = method, lines[1]
  c.header_list, c.headers = {}, {}
  for i = 2, #lines do
    local name, value = lines[i]:match("^([^:%s]+):[ \t]*(.-)[ \t]*$")
    if name then
      name = name:lower()
      c.header_list[#c.header_list + 1] = { name, value }
      c.headers[name] = c.headers[name] and c.headers[name] .. ", " .. value or value
    end
  end
  c.path, c.rawquery = target:match("^([^?]*)%??(.*)$")
  c.query = parse_query(c.rawquery)

  local ok, r = pcall(route, c)
  if ok then return r end
  if r == BadRequest then return respond(c, 400, "bad request\n", "text/plain") end
  error(r, 0)
end

local function connection(sock)
  local c = { sock = sock }
  local ok, r = pcall(serve, c)
  if c.cleanup then c.cleanup() end
  if not ok and r ~= CLOSED then log("error: %s", tostring(r)) end
  if ok and r ~= "dropped" then linger_close(c) else sock:close() end
end

------------------------------------------------------------------------------
-- Main loop.

local server = assert(socket.tcp4())   -- tcp() would create the socket only at bind
assert(server:setoption("reuseaddr", true))
local ok, err = server:bind("127.0.0.1", PORT)
if not ok then
  log("bind 127.0.0.1:%d failed: %s", PORT, err)
  os.exit(1)
end
assert(server:listen(1024))   -- a burst of 100+ connects must not overflow the backlog
server:settimeout(0)

-- socket.select accepts any object with a getfd method.
local stdin = { getfd = function() return 0 end }

while true do
  local recvt, sendt, deadline = {}, {}, nil
  if not IGNORE_STDIN then recvt[#recvt + 1] = stdin end
  if nconn < MAX_CONN then recvt[#recvt + 1] = server end
  for _, rec in pairs(threads) do
    if rec.want == "r" then recvt[#recvt + 1] = rec.sock
    elseif rec.want == "w" then sendt[#sendt + 1] = rec.sock end
    if rec.deadline and (not deadline or rec.deadline < deadline) then deadline = rec.deadline end
  end
  local readable, writable, serr = socket.select(recvt, sendt, deadline and max(0, deadline - now()))
  if not readable then            -- e.g. EBADF: stdin was closed before we started
    log("select failed: %s", tostring(serr))
    os.exit(1)
  end

  -- Only end of file counts: nobody writes to us.
  if readable[stdin] and io.stdin:read(1) == nil then os.exit(0) end

  if readable[server] then
    while nconn < MAX_CONN do
      local client = server:accept()
      if not client then break end
      client:settimeout(0)
      client:setoption("tcp-nodelay", true)   -- trickled bytes go out at once
      local co = coroutine.create(connection)
      threads[co] = { sock = client }
      nconn = nconn + 1
      step(co, client)
    end
  end

  -- Collect first: stepping changes `threads`.
  local ready, t = {}, now()
  for co, rec in pairs(threads) do
    if (rec.want == "r" and readable[rec.sock]) or (rec.want == "w" and writable[rec.sock]) then
      ready[#ready + 1] = { co, true }
    elseif rec.deadline and rec.deadline <= t then
      ready[#ready + 1] = { co, false }
    end
  end
  for _, r in ipairs(ready) do
    if threads[r[1]] then step(r[1], r[2]) end
  end
end
