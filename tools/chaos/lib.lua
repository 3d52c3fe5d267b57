-- The chaos tester's shared parts (tools/chaos/run.lua is the program; docs/maintainers.md
-- "Reliability", "make chaos"): the seeded generator, the code that starts a
-- case's downloads with their listeners and host faults, and the oracle.
-- Lua 5.4 only (integer bit operators): the tester is a program of its own.
-- tools/chaos/child.lua loads it too, to run a case in a child process.
local P = require "spec.support.pattern"
local lfs = require "lfs"

local M = {}

------------------------------------------------------------------------------
-- PRNG: xorshift64 seeded through splitmix64. Integer arithmetic only, so a
-- seed gives the same cases on every Lua 5.4 (and 5.3) build. Each case has
-- its own generator seeded from (seed, case number): `CASE=k` replays case k
-- alone, identical to the run that found it.

local function splitmix(x)
  x = x + 0x9E3779B97F4A7C15
  x = (x ~ (x >> 30)) * 0xBF58476D1CE4E5B9
  x = (x ~ (x >> 27)) * 0x94D049BB133111EB
  return x ~ (x >> 31)
end

function M.rng(seed, k)
  local s = splitmix(splitmix(seed) ~ k)
  if s == 0 then s = 1 end
  local r = {}
  function r.next()
    s = s ~ (s << 13); s = s ~ (s >> 7); s = s ~ (s << 17)
    return s
  end
  function r.int(a, b)
    if b <= a then return a end
    return a + ((r.next() >> 1) % (b - a + 1))
  end
  function r.chance(percent) return r.int(1, 100) <= percent end
  function r.pick(t) return t[r.int(1, #t)] end
  -- t = { weight, value, weight, value, ... }
  function r.weighted(t)
    local total = 0
    for i = 1, #t, 2 do total = total + t[i] end
    local x = r.int(1, total)
    for i = 1, #t, 2 do
      x = x - t[i]
      if x <= 0 then return t[i + 1] end
    end
  end
  function r.bytes(n)
    local t = {}
    for i = 1, n do t[i] = string.char(r.int(0, 255)) end
    return table.concat(t)
  end
  return r
end

-- A seed from the command line: a number, or any string (hashed).
function M.parse_seed(s)
  local n = math.tointeger(tonumber(s))
  if n then return n end
  local h = 1469598103934665603
  for i = 1, #s do h = (h ~ s:byte(i)) * 1099511628211 end
  return h
end

------------------------------------------------------------------------------
-- Expected bodies: the fault server and nginx serve the pattern of
-- spec/support/pattern.lua, so every expected byte is known. A body is
-- { shift = K, len = L }: bytes [K, K + L) of the pattern.

local digests = {}
function M.digest(s)
  if digests[s] then return digests[s] end
  local tmp = os.tmpname()
  local p = assert(io.popen("sha256sum > " .. tmp, "w"))
  p:write(s)
  p:close()
  local f = assert(io.open(tmp, "rb"))
  local d = f:read("a"):match("^(%x+)")
  f:close()
  os.remove(tmp)
  if #s < 4 * 1024 * 1024 then digests[s] = d end
  return d
end

function M.body_bytes(b) return P.pattern(b.shift or 0, b.len) end

local function body_str(b)
  return ("pattern[%d,+%d)"):format(b.shift or 0, b.len)
end

------------------------------------------------------------------------------
-- The generator. A case is a plain table (no functions), so it can be
-- printed; the same (seed, k) always gives the same case.

local WRONG_SHA = ("ab"):rep(32)

-- Query string from a list of {k, v}.
local function query(list)
  local t = {}
  for _, kv in ipairs(list) do
    t[#t + 1] = kv[1] .. "=" .. tostring(kv[2]):gsub("[^%w%-%._~]", function(ch)
      return ("%%%02X"):format(ch:byte())
    end)
  end
  return table.concat(t, "&")
end
M.query = query

local function gen_size(r)
  return r.weighted { 3, 0, 6, r.int(1, 2000), 10, r.int(2001, 70000), 6, r.int(70001, 300000),
    2, r.int(300001, 1500000) }
end

-- One download's server side: { server = "fault"|"nginx"|"tls", path = "/x?q",
-- accept = { body... }, needs = { resume=, retry_min=, caFile=, insecure=, etag= },
-- what = "short description" }
local function gen_server(r, c, ti, force)
  local n = gen_size(r)
  local key = ("k%d-%d-%d"):format(c.seed & 0xffffffff, c.k, ti)
  local beh = force or r.weighted {
    10, "whole", 5, "nolength", 4, "chunked", 5, "trickle", 9, "cut", 3, "stall", 3, "clshort",
    3, "cllong", 8, "lie206", 8, "lie416", 4, "redirect", 2, "loop", 2, "scheme", 5, "5xx",
    3, "status", 3, "hflood", 2, "fold", 2, "cookies", 2, "hslow", 4, "nginx", 3, "tls", 2, "304",
    6, "ranges", 6, "versioned", 3, "regenerated" }
  local s = { server = "fault", accept = { { len = n } }, needs = {}, what = beh }
  local q = { { "n", n } }
  local function add(k, v) q[#q + 1] = { k, v } end
  if r.chance(30) then add("etag", '"e' .. r.int(1, 999999) .. '"') end

  if beh == "whole" then
  elseif beh == "nolength" then add("nolength", 1)
  elseif beh == "chunked" then add("chunked", 1)
  elseif beh == "trickle" then
    add("rate", math.max(20000, n * 10 // r.int(2, 15)))
  elseif beh == "cut" then
    if n == 0 then n = 100; q[1][2] = n; s.accept = { { len = n } } end
    s.path = "/flaky"
    add("key", key); add("fails", r.int(1, 3))
    local drop = r.int(0, n - 1)
    add("dropafter", drop)
    local reset = r.chance(40)
    if reset then add("reset", 1) end
    if r.chance(40) then
      add("nolength", 1)
      -- without a length, a close after B bytes is the end of a B-byte body
      if not reset then s.accept[#s.accept + 1] = { len = drop } end
    end
    s.needs.retry_hint = true
  elseif beh == "stall" then
    add("stallafter", r.int(0, n)); add("stall", r.int(50, 1500))
  elseif beh == "clshort" then
    if n == 0 then n = 100; q[1][2] = n end
    local cl = r.int(0, n - 1)
    add("cl", cl)
    s.accept = { { len = cl } }
  elseif beh == "cllong" then
    add("cl", n + r.int(1, 5000))
    s.accept = {}                  -- never a success with a file
  elseif beh == "lie206" or beh == "lie416" then
    if n < 2 then n = r.int(2, 100000); q[1][2] = n end
    local part = r.int(1, n - 1)
    s.path = "/flaky"
    s.accept = { { len = n } }
    add("key", key); add("fails", 1); add("dropafter", part)
    if not q[2] or q[2][1] ~= "etag" then add("etag", '"e' .. r.int(1, 999999) .. '"') end
    local nolength = r.chance(40)
    if nolength then add("nolength", 1) end
    if beh == "lie206" then
      add("lie206", r.pick { "start", "start", "none" })
    else
      local said = r.weighted { 6, part, 1, part + r.int(1, 10), 1, math.max(0, part - r.int(1, 10)) }
      add("lie416", said)
      local shift = r.chance(50) and r.int(1, 1000) or 0
      if shift > 0 then add("shift", shift) end
      -- A 416 completes a part only at the complete length the first answer gave (issue 20,
      -- item 2): the first answer said n, so a 416 saying `part` is a lie, unless the first
      -- answer had no length (nolength: its close after `part` bytes ended a `part`-byte body)
      if said == part and nolength then s.accept_416 = { shift = shift, len = part } end
      if shift > 0 then s.accept = { { shift = shift, len = n } } end
    end
    -- without a length, the first attempt's close is the end of a body of `part` bytes
    if nolength then s.accept[#s.accept + 1] = { shift = s.accept[1].shift, len = part } end
    s.needs.resume, s.needs.retry_min = true, 1
  elseif beh == "redirect" then
    local hops = r.int(1, 4)
    s.path = "/redirect/" .. hops
    add("code", r.pick { 301, 302, 303, 307, 308 })
    if r.chance(30) then s.needs.maxRedirects = r.int(0, hops) end
  elseif beh == "loop" then
    s.path, q, s.accept = "/loop", {}, {}
  elseif beh == "scheme" then
    if r.chance(50) then
      s.path, q, s.accept = "/redirect-to", { { "url", "ftp://127.0.0.1:1/x" } }, {}
    else
      s.path, q = "/redirect-to", { { "url", "TLS/1k.bin" } }   -- filled in at run time
      s.accept = { { len = 1024 } }
      s.needs.caFile = true
    end
  elseif beh == "5xx" then
    s.path = "/flaky"
    add("key", key); add("fails", r.int(1, 3)); add("status", r.pick { 500, 502, 503, 504 })
    if r.chance(50) then add("retryafter", r.pick { 0, 0, 1 }) end
    s.needs.retry_hint = true
  elseif beh == "status" then
    s.path, q = "/status/" .. r.pick { 404, 410, 500, 403 }, { { "n", n } }
    s.accept = {}
  elseif beh == "hflood" then add("hflood", r.weighted { 3, r.int(1, 100), 2, r.int(900, 1100), 1, r.int(1500, 2500) })
  elseif beh == "fold" then add("fold", 1)
  elseif beh == "cookies" then add("cookies", r.int(1, 50))
  elseif beh == "hslow" then add("hslow", r.int(5, 80))
  elseif beh == "nginx" then
    local name = r.pick { "empty.bin", "1k.bin", "1m.bin" }
    s.server, s.path, q = "nginx", "/" .. name, {}
    n = ({ ["empty.bin"] = 0, ["1k.bin"] = 1024, ["1m.bin"] = 1048576 })[name]
    s.accept = { { len = n } }      -- n is the real size: rateLimit below is chosen from it
  elseif beh == "tls" then
    local v = r.pick { "valid", "valid", "selfsigned", "expired" }
    s.server, s.path, q = "tls_" .. v, "/1k.bin", {}
    s.accept = { { len = 1024 } }
    if v == "valid" then s.needs.caFile = true
    elseif r.chance(50) then s.needs.insecure = true
    else s.accept = {} end
  elseif beh == "ranges" then
    -- segments (issue 13): a body big enough to split, from a server that takes ranges,
    -- whose range requests may be cut (fetched again, or the download fails) or lied to
    n = r.int(2 * 1048576, 5 * 1048576 + 7)
    q[1][2] = n
    s.accept = { { len = n } }
    s.path = "/flaky"
    local f = r.weighted { 4, "none", 3, "rangedrop", 1, "lie206", 1, "trickle" }
    if c.kind == "kill" then f = "trickle"; s.needs.resume = true end  -- killed mid-way, then resumed
    add("key", key); add("fails", f == "trickle" and 100 or 0); add("range", 1)
    if f == "rangedrop" then add("rangedrop", r.int(0, 1048576)); add("rangefails", r.int(1, 6))
    elseif f == "lie206" then add("lie206", r.pick { "start", "none" })
    elseif f == "trickle" then add("rate", r.int(500000, 3000000)) end
    s.needs.segments = true
  elseif beh == "versioned" then
    -- issue 20: the first request is cut after `part` bytes of version A; every later one
    -- serves version B (other bytes: shift) with its own validator of the same kind, and may
    -- ignore If-Range. The one right success is B whole; A's bytes never join B's.
    if n < 2 then n = r.int(2, 300000); q[1][2] = n end
    if #q > 1 then q = { q[1] } end                    -- no etag from above
    local part, shift = r.int(1, n - 1), r.int(1, 1000)
    s.path = "/flaky"
    add("key", key); add("fails", 1); add("dropafter", part); add("range", 1)
    local kind = r.pick { "etag", "unquoted", "weak", "long", "lastmod", "none" }
    local a, b = r.int(1, 999999), r.int(1, 999999)
    local function lm(day) return ("Mon, %02d Jan 2024 00:00:00 GMT"):format(day) end
    if kind == "etag" then add("etag", '"a' .. a .. '"'); add("thenetag", '"b' .. b .. '"')
    elseif kind == "unquoted" then add("etag", "a" .. a); add("thenetag", "b" .. b)
    elseif kind == "weak" then
      add("etag", 'W/"a' .. a .. '"'); add("thenetag", 'W/"b' .. b .. '"')
      add("lastmod", lm(1)); add("thenlastmod", lm(2))
    elseif kind == "long" then
      add("etag", '"' .. ("a"):rep(r.int(256, 1200)) .. '"'); add("thenetag", '"' .. ("b"):rep(r.int(256, 1200)) .. '"')
    elseif kind == "lastmod" then add("lastmod", lm(1)); add("thenlastmod", lm(2)) end
    add("thenshift", shift)
    if r.chance(60) then add("ignoreifrange", 1) end
    if r.chance(30) then s.needs.segments = true end
    s.accept = { { shift = shift, len = n } }
    s.needs.resume, s.needs.retry_min = true, 2
    s.what = "versioned/" .. kind
  elseif beh == "regenerated" then
    -- issue 20: no validator, a new body for every request (lighttpd's CGI): never split,
    -- never continued; the right success is the first answer's body whole
    n = r.int(2 * 1048576, 3 * 1048576)
    q = { { "n", n } }
    s.path = "/flaky"
    add("key", key); add("fails", 0); add("range", 1); add("shiftper", 7)
    -- (a retry after a timeout is a later request: another whole version is right too)
    s.accept = { { shift = 7, len = n }, { shift = 14, len = n }, { shift = 21, len = n }, { shift = 28, len = n } }
    s.needs.segments = true
  elseif beh == "304" then
    local e = '"v' .. r.int(1, 1000) .. '"'
    q = { { "n", n }, { "etag", e } }
    s.needs.etag = e
  end
  if not s.path then s.path = "/bytes" end
  s.path = s.path .. (#q > 0 and "?" .. query(q) or "")
  s.n = n
  return s
end

local function gen_options(r, c, s, has_dest)
  local o = {}
  if has_dest and (s.needs.resume or r.chance(25)) then o.resume = true end
  o.retry = r.weighted { 10, nil, 3, 1, 2, 2, 1, 3 }
  if s.needs.retry_hint and not o.retry and r.chance(50) then o.retry = r.int(1, 3) end
  if s.needs.retry_min and (o.retry or 0) < s.needs.retry_min then o.retry = r.int(s.needs.retry_min, 3) end
  local sha = r.weighted { 6, "none", 3, "right", 1, "wrong" }
  if sha == "right" then
    local b = s.accept[1] or { len = s.n }
    o.sha256 = M.digest(M.body_bytes(b))
    if r.chance(30) then o.sha256 = o.sha256:upper() end
  elseif sha == "wrong" then
    o.sha256 = WRONG_SHA
  end
  if r.chance(10) then o.maxFileSize = r.int(0, (s.n or 1000) * 2) end
  if r.chance(15) then o.rateLimit = math.max(20000, (s.n or 0) * 10 // r.int(3, 20)) end
  if r.chance(12) then o.stallTimeout = r.int(100, 2000) end
  if r.chance(10) then o.timeout = r.int(100, 5000) end
  if r.chance(20) then o.durable = true end
  if s.needs.segments or r.chance(10) then o.segments = r.int(1, 8) end
  if s.needs.maxRedirects then o.maxRedirects = s.needs.maxRedirects end
  if s.needs.caFile then o.caFile = true end          -- the CA's path, at run time
  if s.needs.insecure then o.insecure = true end
  if s.needs.etag then o.etag = s.needs.etag end
  return o
end

-- The kinds of case, and of destination and host fault in a case run here.
M.KINDS = { "inproc", "pair", "ulimit", "diskfull", "rodir", "kill", "close" }

function M.gen(seed, k)
  local r = M.rng(seed, k)
  local c = { seed = seed, k = k, tasks = {} }
  c.kind = r.weighted { 58, "inproc", 8, "pair", 12, "ulimit", 6, "diskfull", 4, "rodir",
    6, "kill", 6, "close" }

  -- destination
  if c.kind == "inproc" then
    c.dest = r.weighted { 30, "absent", 25, "existing", 8, "symlink", 10, "none", 8, "long",
      4, "fifo", 4, "fifo_reader", 3, "nodir" }
  elseif c.kind == "pair" or c.kind == "kill" or c.kind == "close" or c.kind == "ulimit"
      or c.kind == "diskfull" or c.kind == "rodir" then
    c.dest = r.weighted { 1, "absent", 1, "existing" }
  end
  if c.dest == "existing" or c.dest == "symlink" or c.dest == "fifo_reader" then
    c.old = "OLD" .. r.bytes(r.int(0, 3000))
  end
  c.name = c.dest == "long" and ("L"):rep(r.int(200, 255)) or "dest.bin"

  -- tasks
  local ntasks = (c.kind == "pair" and 2) or (c.kind == "kill" or c.kind == "close") and r.int(1, 3) or 1
  for ti = 1, ntasks do
    local force
    if c.kind == "ulimit" or c.kind == "diskfull" then
      force = r.pick { "whole", "nolength", "nolength", "chunked", "trickle" }
    elseif c.kind == "kill" then
      force = r.chance(35) and "ranges" or "trickle"
    elseif c.kind == "close" then
      force = "trickle"
    elseif c.kind == "rodir" then
      force = r.pick { "whole", "nolength", "status" }
    end
    local s = gen_server(r, c, ti, force)
    if (c.kind == "ulimit" or c.kind == "diskfull" or c.kind == "kill" or c.kind == "close")
        and s.what ~= "ranges" then
      -- big enough to hit the limit, small enough to be quick
      local n = r.int(40000, 400000)
      s.n, s.accept = n, { { len = n } }
      s.path = s.path:gsub("n=%d+", "n=" .. n)
    end
    if c.kind == "pair" and ti == 2 and s.server == "fault" and s.accept[1]
        and not s.path:find("shift=", 1, true) then
      -- another version, so the two bodies differ
      local sh = r.int(1, 5000)
      s.path = s.path .. "&shift=" .. sh
      for _, b in ipairs(s.accept) do b.shift = (b.shift or 0) + sh end
      if s.accept_416 then s.accept_416.shift = s.accept_416.shift + sh end
    end
    local has_dest = c.dest ~= "none"
    local o = gen_options(r, c, s, has_dest)
    if c.kind == "ulimit" or c.kind == "diskfull" then
      if r.chance(60) then o.rateLimit = r.int(200000, 2000000) end
      o.maxFileSize, o.timeout = nil, nil
    end
    local t = { s = s, o = o, fault = "none" }
    if c.kind == "inproc" or c.kind == "pair" then
      t.fault = r.weighted { 45, "none", 12, "abort_at", 5, "abort_headers", 6, "abort_progress",
        6, "raise", 8, "gc", 8, "await", 3, "yield", 2, "popen" }
      t.at_ms = r.int(0, 1500)
      t.at_pct = r.int(0, 100)
      t.raise_in = r.pick { "headers", "progress", "success", "fail", "complete" }
    end
    c.tasks[ti] = t
  end
  -- The caller's control (pause/resume, priority), from a stream of its own so that every
  -- case the generator made before it existed is still made the same, and a third of the
  -- in-process tasks without another fault get a pause: 107 of seed 11's first 1000 cases'
  -- 1224 tasks. (The salt is one with which none of the seed-11 cases README cites gets a
  -- pause, so that they still replay the holes they found.) The oracle adds: no headers or
  -- progress event reaches a listener while the task is paused. (Progress still never goes
  -- down: a resume that starts over is not shown until it passes what was shown.)
  if c.kind == "inproc" or c.kind == "pair" then
    local r2 = M.rng(seed ~ 0x5A17C113, k)
    for _, t in ipairs(c.tasks) do
      if t.fault == "none" and r2.chance(33) then
        -- pause_late: see M.tick
        t.control = r2.weighted { 4, "pause_at", 3, "pause_progress", 2, "pause_now", 3, "pause_late" }
        t.pauses = r2.weighted { 3, 1, 1, 2 }        -- pause/resume cycles
        t.pause_ms = r2.int(0, 800)                   -- how long each pause lasts
        t.at_ms = r2.weighted { 5, r2.int(0, 40), 3, r2.int(40, 300), 2, r2.int(300, 800) }
        t.at_pct = r2.int(0, 100)
      end
      if r2.chance(30) then t.o.priority = r2.int(-3, 3) end
    end
  end
  -- mirrors (a stream of its own too): 40 % of the in-process "ranges" tasks get one or two.
  -- "same" serves the same bytes under another URL; "renamed" the same bytes with an ETag of
  -- its own (as another server's software names them: issue 20 item 9), to be used; "version"
  -- another version of the same size (another etag, other bytes, a later Last-Modified, which
  -- the main URL then sends too: of the same size and with no date, no client could tell);
  -- "size" another size; "down" refuses connections. "version", "size" and "down" must be
  -- dropped after one answer, and the destination must still be exactly the main URL's body:
  -- the oracle is unchanged.
  if c.kind == "inproc" or c.kind == "pair" then
    local r3 = M.rng(seed ~ 0x3177025, k)
    for _, t in ipairs(c.tasks) do
      if t.s.what == "ranges" and r3.chance(40) then
        t.mirrors = {}
        for i = 1, r3.int(1, 2) do
          local kind = r3.weighted { 3, "same", 2, "renamed", 2, "version", 2, "size", 1, "down" }
          if (kind == "version" or kind == "renamed") and not t.s.path:find("etag=", 1, true) then kind = "same" end
          local p = t.s.path:gsub("key=([^&]*)", "key=%%1m" .. i)
          local other_etag = "etag=%%%%22m" .. r3.int(1, 999999) .. "%%%%22"
          if kind == "renamed" then
            p = p:gsub("etag=[^&]*", other_etag)
          elseif kind == "version" then
            if not t.s.path:find("lastmod=", 1, true) then
              t.s.path = t.s.path .. "&lastmod=Mon,%2001%20Jan%202024%2000:00:00%20GMT"
            end
            p = p:gsub("etag=[^&]*", other_etag):gsub("&lastmod=[^&]*", "")
              .. "&shift=" .. r3.int(1, 5000) .. "&lastmod=Tue,%2002%20Jan%202024%2000:00:00%20GMT"
          elseif kind == "size" then
            p = p:gsub("([?&])n=(%d+)", function(sep, n) return sep .. "n=" .. (tonumber(n) + r3.int(1, 1000)) end)
          end
          t.mirrors[i] = { server = "fault", path = p, kind = kind }
        end
      end
    end
  end
  if c.kind == "ulimit" then c.limit_blocks = r.int(1, c.tasks[1].s.n // 1024 - 1) end
  if c.kind == "diskfull" then c.tmpfs_kb = r.pick { 16, 32, 64, 128 } end
  if c.kind == "kill" or c.kind == "close" then c.die_ms = r.int(20, 600) end
  return c
end

-- One line that says what the case does.
function M.describe(c, urls)
  local t = { ("kind=%s dest=%s%s"):format(c.kind, c.dest or "-",
    c.dest == "long" and "(" .. #c.name .. " bytes)" or "") }
  if c.limit_blocks then t[#t + 1] = ("ulimit -f %d"):format(c.limit_blocks) end
  if c.tmpfs_kb then t[#t + 1] = ("tmpfs %dk"):format(c.tmpfs_kb) end
  if c.die_ms then t[#t + 1] = ("dies after %d ms"):format(c.die_ms) end
  for i, task in ipairs(c.tasks) do
    local opts = {}
    for k, v in pairs(task.o) do opts[#opts + 1] = k .. "=" .. tostring(v) end
    table.sort(opts)
    local fault = task.fault
    if fault == "abort_at" then fault = fault .. "(" .. task.at_ms .. "ms)"
    elseif fault == "abort_progress" then fault = fault .. "(" .. task.at_pct .. "%)"
    elseif fault == "raise" then fault = fault .. "(" .. task.raise_in .. ")" end
    if task.mirrors then
      local kinds = {}
      for j, m in ipairs(task.mirrors) do kinds[j] = m.kind end
      fault = fault .. " mirrors=" .. table.concat(kinds, ",")
    end
    if task.control then
      fault = ("%s %s(%s)x%d for %dms"):format(fault, task.control, task.control == "pause_progress"
        and task.at_pct .. "%" or task.control ~= "pause_now" and task.at_ms .. "ms" or "0",
        task.pauses, task.pause_ms)
    end
    t[#t + 1] = ("task%d: %s url=%s opts={%s} fault=%s"):format(i, task.s.what,
      urls and urls(task.s) or task.s.server .. ":" .. task.s.path, table.concat(opts, ","), fault)
  end
  return table.concat(t, " | ")
end

-- url(s) for a server side of a case; bases: server name -> "http://127.0.0.1:port"
function M.url_maker(bases)
  return function(s)
    local path = s.path:gsub("TLS/1k%.bin", function()
      return (bases.tls_valid .. "/1k.bin"):gsub("[^%w%-%._~]", function(ch)
        return ("%%%02X"):format(ch:byte())
      end)
    end)
    return bases[s.server] .. path
  end
end

-- Lua source for a value of strings, numbers, booleans and tables of them.
function M.serialize(v)
  local t = type(v)
  if t == "string" then return ("%q"):format(v)
  elseif t == "number" or t == "boolean" or t == "nil" then return ("%q"):format(v)
  elseif t == "table" then
    local parts = {}
    for k, x in pairs(v) do
      local tk, tx = type(k), type(x)
      if (tk == "string" or tk == "number") and (tx ~= "function" and tx ~= "userdata" and tx ~= "thread") then
        parts[#parts + 1] = "[" .. M.serialize(k) .. "]=" .. M.serialize(x)
      end
    end
    return "{" .. table.concat(parts, ",") .. "}"
  end
  return "nil"
end

------------------------------------------------------------------------------
-- Running a case's downloads (in this process or in a child).
-- env = { dt =, url = function(s) -> url, ca =, dir =, durable_ok =, now = }

local RAISE = setmetatable({}, { __tostring = function() return "chaos: deliberate listener error" end })
M.RAISE = RAISE

-- Starts task i of the case; returns its record.
function M.start_task(env, c, i)
  local dt, task = env.dt, c.tasks[i]
  local rec = { i = i, events = {}, progress = {}, headers = 0, started = env.now(), notes = {} }
  local o = { url = env.url(task.s) }
  if c.dest ~= "none" then o.filePath = env.dest end
  for k, v in pairs(task.o) do o[k] = v end
  if o.caFile then o.caFile = env.ca end
  if task.mirrors then
    o.mirrors = {}
    for i, m in ipairs(task.mirrors) do
      o.mirrors[i] = m.kind == "down" and "http://127.0.0.1:1/mirror" or env.url(m)
    end
  end
  if o.durable and not env.durable_ok then o.durable = nil end
  rec.opts = o
  local f = task.fault
  local function maybe_raise(where)
    if f == "raise" and task.raise_in == where and not rec.raised then
      rec.raised = true
      error(RAISE, 0)
    end
    if f == "gc" then collectgarbage() end
    if f == "yield" and where == "progress" and not rec.yielded then
      rec.yielded = true
      coroutine.yield()           -- outside a coroutine, or across C: an error
    end
  end
  o.success = function(res)
    rec.events[#rec.events + 1] = "success"
    rec.res = res
    rec.state_at_success = rec.task and rec.task.state
    -- what the file holds when success is delivered (never open a FIFO here: it would block)
    if res.filePath and lfs.attributes(res.filePath, "mode") == "file" then
      local fh = io.open(res.filePath, "rb")
      rec.file_at_success = fh and fh:read("a")
      if fh then fh:close() end
    end
    maybe_raise("success")
  end
  o.fail = function(err)
    rec.events[#rec.events + 1] = "fail"
    rec.err = err
    maybe_raise("fail")
  end
  o.complete = function(r)
    rec.events[#rec.events + 1] = "complete"
    rec.complete_arg = r
    rec.state_at_complete = rec.task and rec.task.state
    rec.ended = env.now()
    maybe_raise("complete")
  end
  local ok, t = pcall(dt.downloadFile, o)
  if not ok then
    rec.raised_at_call = tostring(t)
    rec.events[#rec.events + 1] = "raised"
    rec.ended = env.now()
    return rec
  end
  rec.task = t
  -- the caller's pause: no event may be delivered while the task is paused
  local function not_paused(what)
    if t.state == "paused" then rec.notes[#rec.notes + 1] = what .. " delivered while paused" end
  end
  local function pause_now()
    rec.pauses = (rec.pauses or 0) + 1
    t:pause()
    if t.state == "paused" then rec.paused_at = env.now() end
  end
  t:onHeadersReceived(function(h)
    not_paused("headers")
    rec.headers = rec.headers + 1
    rec.last_header = h
    if f == "abort_headers" then t:abort(); rec.aborted = true end
    maybe_raise("headers")
  end)
  t:onProgressUpdate(function(p)
    not_paused("progress")
    rec.progress[#rec.progress + 1] = { p.progress, p.totalBytesWritten, p.totalBytesExpectedToWrite }
    if task.control == "pause_progress" and not rec.paused_at and (rec.pauses or 0) < task.pauses
        and p.progress >= task.at_pct and not rec.aborted then
      pause_now()
    end
    if f == "abort_progress" and p.progress >= task.at_pct and not rec.aborted then
      t:abort(); rec.aborted = true
    end
    if f == "popen" and not rec.popen_done then
      rec.popen_done = true
      -- A program started during a download must inherit no socket of ours.
      local p2 = io.popen("for f in /proc/$$/fd/*; do readlink $f; done 2>/dev/null")
      local out = p2:read("a")
      p2:close()
      local n = 0
      for line in out:gmatch("[^\n]+") do if line:match("^socket:") then n = n + 1 end end
      rec.popen_sockets = n
    end
    maybe_raise("progress")
  end)
  rec.pause_now = pause_now
  if task.control == "pause_now" then pause_now() end
  if f == "await" then
    rec.co = coroutine.create(function()
      local res, err = t:await()
      rec.await_res, rec.await_err = res, err
      rec.await_done = true
    end)
    local ok2, e = coroutine.resume(rec.co)
    if not ok2 then rec.notes[#rec.notes + 1] = "await coroutine raised: " .. tostring(e) end
  end
  return rec
end

-- Timed faults; called from the loop.
function M.tick(env, c, rec)
  local task = c.tasks[rec.i]
  if task.control and rec.task and not rec.ended and not rec.aborted then
    local now = env.now()
    if rec.paused_at then
      if now - rec.paused_at >= task.pause_ms / 1000 then
        rec.paused_at = nil
        rec.task:resume()
      end
    elseif task.control ~= "pause_progress" and (rec.pauses or 0) < task.pauses
        and now - rec.started >= (task.at_ms + (rec.pauses or 0) * 200) / 1000 then
      -- pause_late: 30 ms without polling first, so that the engine has published news
      -- (headers, progress, the end) that Lua has not taken when pause() is called
      if task.control == "pause_late" and env.sleep then env.sleep(0.03) end
      rec.pause_now()
    end
  end
  if task.fault == "abort_at" and rec.task and not rec.aborted and not rec.ended
      and env.now() - rec.started >= task.at_ms / 1000 then
    rec.aborted = true
    rec.task:abort()
  end
end

------------------------------------------------------------------------------
-- Files.

function M.read(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("a")
  f:close()
  return s
end

function M.write(path, s)
  local f = assert(io.open(path, "wb"))
  assert(f:write(s))
  assert(f:close())
end

-- The only names besides the destination that may stay in its directory:
-- resume's documented part files. 0.2 (docs/resume.md): ".dt.<hash of the
-- destination's name>.part" and ".info"; 0.1: <filePath>.part and
-- <filePath>.part.info. Adjust here when the naming changes.
function M.allowed_part(name, dest_name, resume)
  if not resume then return false end
  return name == dest_name .. ".part" or name == dest_name .. ".part.info"
    or name:match("^%.dt%.%x+%.part$") ~= nil or name:match("^%.dt%.%x+%.info$") ~= nil
end

-- What a directory holds: name -> { mode =, size =, target = (symlinks) }
function M.snapshot(dir)
  local t = {}
  for name in lfs.dir(dir) do
    if name ~= "." and name ~= ".." then
      local a = lfs.symlinkattributes(dir .. "/" .. name)
      if a then t[name] = { mode = a.mode, size = a.size, target = a.target } end
    end
  end
  return t
end

------------------------------------------------------------------------------
-- The oracle. Returns a list of violations (strings), empty when all holds.
-- st = { dir =, dest =, old = (content before, or nil when absent),
--        old_mode =, link_target = (the file a symlink points to),
--        recs = {...}, after = snapshot, extra_allowed = { name = true } }

local function prefix_ok(content, b)
  return content ~= nil and #content == b.len and content == M.body_bytes(b)
end

local function describe_content(content, c_tasks)
  if content == nil then return "absent" end
  for _, task in ipairs(c_tasks) do
    for _, b in ipairs(task.s.accept) do
      if #content == b.len and content == M.body_bytes(b) then return body_str(b) end
    end
  end
  return ("%d bytes (%s...)"):format(#content, ("%q"):format(content:sub(1, 8)))
end

function M.check(c, st)
  local v = {}
  local function bad(fmt, ...) v[#v + 1] = fmt:format(...) end
  local successes = {}
  for _, rec in ipairs(st.recs) do
    local task = c.tasks[rec.i]
    local tag = #c.tasks > 1 and ("task%d: "):format(rec.i) or ""
    local ev = table.concat(rec.events, ",")
    for _, n in ipairs(rec.notes) do bad("%s%s", tag, n) end
    if st.partial and #rec.events == 0 then goto continue end   -- in flight when its process ended
    if rec.raised_at_call then
      bad("%sdownloadFile raised: %s", tag, rec.raised_at_call)
      goto continue
    end
    if ev ~= "success,complete" and ev ~= "fail,complete" then
      bad("%sevents were [%s], not success|fail then complete then nothing", tag, ev)
    end
    local res, err = rec.res, rec.err
    local t = { state = rec.state or (rec.task and rec.task.state) }
    -- task.state agrees with what was delivered
    if res and t.state ~= "done" then bad("%ssuccess delivered but task.state is %s", tag, t.state) end
    if err then
      local want = err.errMsg == "downloadFile:fail abort" and "aborted" or "failed"
      if t.state ~= want then bad("%sfail (%s) delivered but task.state is %s", tag, err.errMsg, t.state) end
      if type(err.errno) ~= "number" then bad("%sfail without a numeric errno", tag) end
      if err.errMsg == "downloadFile:fail abort" and not rec.aborted then
        bad("%sfail abort without abort()", tag)
      end
    end
    -- progress never goes down and ends at the total
    local lastw, lastp = -1, -1
    for _, p in ipairs(rec.progress) do
      if p[2] < lastw then bad("%sprogress went down: totalBytesWritten %d after %d", tag, p[2], lastw) break end
      if p[1] < lastp then bad("%sprogress went down: %d%% after %d%%", tag, p[1], lastp) break end
      lastw, lastp = p[2], p[1]
    end
    if res and (res.filePath or res.tempFilePath) and res.statusCode // 100 == 2 and (res.dataLength or 0) > 0
        and #rec.progress > 0 and not (task.fault == "raise" and task.raise_in == "progress") then
      local p = rec.progress[#rec.progress]
      if p[2] ~= res.dataLength or p[1] ~= 100 then
        bad("%slast progress event {%d%%, %d, %d} does not show every byte of dataLength %d",
          tag, p[1], p[2], p[3], res.dataLength)
      end
    end
    if rec.popen_sockets and rec.popen_sockets > 0 then
      bad("%sa program started during the download inherited %d socket(s)", tag, rec.popen_sockets)
    end
    if task.fault == "await" and rec.await_done then
      if (rec.await_res ~= nil) ~= (res ~= nil) then bad("%sawait's result disagrees with the callbacks", tag) end
    elseif task.fault == "await" and not rec.await_done then
      bad("%sawait never returned", tag)
    end
    if res then
      local sc = res.statusCode
      if type(sc) ~= "number" then bad("%ssuccess without a statusCode", tag) sc = 0 end
      if res.filePath then
        local accepted = {}
        for _, b in ipairs(task.s.accept) do accepted[#accepted + 1] = b end
        local via416 = sc == 416
        if via416 then
          if not task.o.resume then bad("%s416 success with filePath without resume", tag) end
          accepted = { task.s.accept[1] }
          if task.s.accept_416 then accepted[#accepted + 1] = task.s.accept_416 end
        elseif sc // 100 ~= 2 or sc == 304 then
          bad("%ssuccess %d reports filePath", tag, sc)
        end
        local content = rec.file_at_success
        local ok_body
        for _, b in ipairs(accepted) do
          if prefix_ok(content, b) then ok_body = b end
        end
        if task.o.sha256 then
          -- with sha256, only a body with that digest may be delivered
          if task.o.sha256:lower() == WRONG_SHA then
            bad("%ssuccess %d with filePath although sha256 was wrong", tag, sc)
          end
          if ok_body and M.digest(M.body_bytes(ok_body)) ~= task.o.sha256:lower() then
            bad("%sdelivered %s whose digest is not the sha256 asked", tag, body_str(ok_body))
          end
          if res.sha256 ~= task.o.sha256:lower() then
            bad("%sres.sha256 %s is not the digest asked", tag, tostring(res.sha256))
          end
        end
        if not ok_body then
          bad("%ssuccess %d with filePath, but at success the file held %s, expected %s", tag, sc,
            describe_content(content, c.tasks),
            #accepted > 0 and body_str(accepted[1]) .. (accepted[2] and " or " .. body_str(accepted[2]) or "")
            or "no success with a file at all")
        elseif res.dataLength ~= ok_body.len then
          bad("%sdataLength %s, the file has %d bytes", tag, tostring(res.dataLength), ok_body.len)
        end
        if task.o.maxFileSize and content and #content > task.o.maxFileSize then
          bad("%sfile of %d bytes beyond maxFileSize %d", tag, #content, task.o.maxFileSize)
        end
        successes[#successes + 1] = content
      else
        if c.dest ~= "none" and sc // 100 == 2 and sc ~= 304 then
          bad("%ssuccess %d without filePath although filePath was given", tag, sc)
        end
        if res.tempFilePath then
          local content = M.read(res.tempFilePath)
          if content == nil then bad("%stempFilePath %s does not exist", tag, res.tempFilePath)
          elseif #content ~= res.dataLength then
            bad("%stempFilePath holds %d bytes, dataLength says %s", tag, #content, tostring(res.dataLength))
          elseif sc // 100 == 2 and c.dest == "none" then
            local okb
            for _, b in ipairs(task.s.accept) do if prefix_ok(content, b) then okb = true end end
            if not okb then
              bad("%ssuccess %d: tempFilePath holds %s", tag, sc, describe_content(content, c.tasks))
            end
            if task.o.sha256 and task.o.sha256:lower() == WRONG_SHA then
              bad("%ssuccess %d although sha256 was wrong", tag, sc)
            end
          end
          os.remove(res.tempFilePath)
        end
      end
      if task.o.sha256 and res.sha256 == nil then
        bad("%sres.sha256 missing although the option was given (status %d)", tag, sc)
      end
    end
    ::continue::
  end

  -- the destination: the last success's body, or byte for byte what it was
  if st.dest_path then
    local now_content = st.content_path and M.read(st.content_path)
    if st.frozen then now_content = st.frozen_content end  -- as it was before a follow-up download
    local expect_old = st.old
    if not st.content_path then
      -- a FIFO: its reader's data was checked at success; only its kind below
    elseif #successes > 0 then
      local found = false
      for _, s in ipairs(successes) do if s == now_content then found = true end end
      if not found then
        bad("%s holds %s, which no success delivered", st.link_target_name and "the symlink's target"
          or "destination", describe_content(now_content, c.tasks))
      end
    elseif now_content ~= expect_old then
      bad("no success with a file, but the destination changed: was %s, now %s",
        expect_old and (#expect_old .. " bytes") or "absent", describe_content(now_content, c.tasks))
    end
    -- never replaced by a file of another kind
    local a = lfs.symlinkattributes(st.dest_path)
    if st.old_kind and (not a or a.mode ~= st.old_kind) then
      bad("destination was a %s, now %s", st.old_kind, a and a.mode or "absent")
    end
    if st.old_kind == "link" and a and a.mode == "link" and a.target ~= st.link_target_name then
      bad("symlink now points to %s", tostring(a.target))
    end
  end

  -- no file left in the directory but the destination and resume's part files
  if st.after then
    local resume = false
    for _, task in ipairs(c.tasks) do if task.o.resume then resume = true end end
    local any_success_file = false
    for _, rec in ipairs(st.recs) do if rec.res and rec.res.filePath then any_success_file = true end end
    for name, a in pairs(st.after) do
      if name ~= c.name and not (st.extra_allowed and st.extra_allowed[name]) then
        if M.allowed_part(name, c.name, resume) then
          if any_success_file and #c.tasks == 1 then
            bad("%s left after a success (resume removes its part files on success)", name)
          end
        else
          bad("file left in the directory: %s (%s, %d bytes)", name, a.mode, a.size or -1)
        end
      end
    end
  end
  return v
end

return M
