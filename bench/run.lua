-- `make bench`: downloadtask against the `curl` command (same libcurl) and lua-http, in the
-- same run, on loopback from our own nginx. See docs/performance.md.
--
--   lua5.4 bench/run.lua [--pairs N] [--only NAME,NAME] [--no-write] [--write]
--                        [--seg-mib N] [--seg-pairs N] [--https-mib N]
--
-- NAMEs: big, game, mid, durable, many, queue, poll, prio, and issue 13's seglimit,
-- segmirror, segflat (`segments` for the three; bench/segments.lua says what they are).
-- --seg-mib: the segments rows' file size in MiB (default 1024; 200 for a quick run);
-- --seg-pairs: their timed rounds on the throttled servers (default 3).
-- Issue 13's https (HTTPS file -> file, HTTP/1.1 and h2, against curl --http1.1/--http2),
-- h2many (1000 x 100 KiB over one h2 host, 50 at a time, against curl --parallel; the
-- connections counted in nginx's log) and limits (plain file -> file beside
-- `curl -o /dev/null` and a 256 KiB-write `dd`): bench/https.lua says what they are.
-- --https-mib: their file size in MiB (default 1024; 200 for a quick run).
-- --pairs (default 7) is the number of timed rounds after one warm-up round (3 times as
-- many for the short workloads, mid and many); each round runs every client once, after a `sync`, alternating the order
-- (downloadtask first in odd rounds, last in even ones). Ratios are taken round by round
-- (downloadtask / curl of the same round) and their median is reported.
-- Writes bench/results.md unless --no-write or --only is given. --write with --only writes
-- the "Segments and mirrors" section alone, when segments rows ran (the main table stays),
-- and the "HTTPS, HTTP/2 and the single-stream limits" section, when those rows ran.
-- DT_BENCH_SO=/path/to/downloadtask.so measures another build (a private copy, a variant).

local HERE = (arg[0]:match("^(.*)/[^/]*$") or ".")
local function abspath(p)
  if p:sub(1, 1) == "/" then return p end
  local cwd = os.getenv("PWD") or io.popen("pwd"):read("l")
  return (cwd .. "/" .. p):gsub("/%./", "/"):gsub("/%.$", "")
end
HERE = abspath(HERE)
local REPO = HERE:match("^(.*)/[^/]*$")
package.path = HERE .. "/?.lua;" .. package.path

------------------------------------------------------------------------------
-- Options.

local opt = { pairs = 7, only = nil, write = true, seg_mib = 1024, seg_pairs = 3, seg_write = false, https_mib = 1024 }
do
  local i = 1
  while arg[i] do
    local a = arg[i]
    if a == "--pairs" then opt.pairs = assert(math.tointeger(tonumber(arg[i + 1])), "--pairs N"); i = i + 1
    elseif a == "--only" then
      opt.only = {}
      for n in arg[i + 1]:gmatch("[^,]+") do opt.only[n] = true end
      opt.write = false
      i = i + 1
    elseif a == "--no-write" then opt.write = false; opt.no_write = true
    elseif a == "--write" then opt.seg_write = true
    elseif a == "--seg-mib" then opt.seg_mib = assert(math.tointeger(tonumber(arg[i + 1])), "--seg-mib N"); i = i + 1
    elseif a == "--https-mib" then opt.https_mib = assert(math.tointeger(tonumber(arg[i + 1])), "--https-mib N"); i = i + 1
    elseif a == "--seg-pairs" then opt.seg_pairs = assert(math.tointeger(tonumber(arg[i + 1])), "--seg-pairs N"); i = i + 1
    else
      io.stderr:write("usage: lua5.4 bench/run.lua [--pairs N] [--only big,game,mid,durable,many,queue,poll,prio,"
        .. "segments,seglimit,segmirror,segflat,segrate,https,h2many,limits] [--no-write] [--write] [--seg-mib N] "
        .. "[--seg-pairs N] [--https-mib N]\n")
      os.exit(2)
    end
    i = i + 1
  end
  assert(opt.pairs >= 1, "--pairs must be at least 1")
  assert(opt.seg_pairs >= 1, "--seg-pairs must be at least 1")
  assert(opt.seg_mib >= 1, "--seg-mib must be at least 1")
  assert(opt.https_mib >= 1, "--https-mib must be at least 1")
end
local SEG = require "segments"
SEG.expand(opt.only)
local function wanted(name) return not opt.only or opt.only[name] end
local function wanted_seg()
  for n in pairs(SEG.NAMES) do if wanted(n) then return true end end
  return false
end
local H13 = require "https"
local function wanted_h13()
  for n in pairs(H13.NAMES) do if wanted(n) then return true end end
  return false
end

------------------------------------------------------------------------------
-- Extra Debian packages only the benchmark needs: installed here, on first use, so that
-- ./dev (build and tests) stays lean. GNU time for CPU and peak RSS; lua-http and
-- lua-cqueues for the Lua peer (cqueues also gives the monotonic clock); aria2 (aria2c) for
-- the segments rows (issue 13).

local EXTRA = { "time", "lua-http", "lua-cqueues", "aria2" }
do
  local missing = {}
  for _, p in ipairs(EXTRA) do
    local f = io.popen("dpkg-query -W -f='${Status}' " .. p .. " 2>/dev/null")
    local s = f:read("a")
    f:close()
    if not s:match("ok installed") then missing[#missing + 1] = p end
  end
  if #missing > 0 then
    local sudo = io.popen("id -u"):read("l") == "0" and "" or "sudo "
    io.stderr:write("bench: installing ", table.concat(missing, " "), "\n")
    local ok = os.execute(sudo .. "apt-get update -qq && DEBIAN_FRONTEND=noninteractive " .. sudo
      .. "apt-get install -y -qq --no-install-recommends " .. table.concat(missing, " ") .. " >/dev/null")
    if not ok then io.stderr:write("bench: could not install ", table.concat(missing, " "), "\n") end
  end
end

local B = require "lib"
local socket = require "socket"
local q = B.quote

local HAVE_HTTP = os.execute("dpkg-query -W -f='${Status}' lua-http 2>/dev/null | grep -q 'ok installed'") == true
local HTTP_PATH = "/usr/share/lua/5.3/?.lua;/usr/share/lua/5.3/?/init.lua;"
  .. "/usr/share/lua/5.1/?.lua;/usr/share/lua/5.1/?/init.lua;;"

local KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024

------------------------------------------------------------------------------
-- Setup: temp dir, files, the module copied there (a rebuild during the run changes
-- nothing), nginx. Everything is undone in `cleanup`, also on error.

local T = {} -- state for cleanup
local SEGS -- the segments rows (bench/segments.lua), once set up
local HTTPS -- the https, h2many and limits rows (bench/https.lua), once set up
local function cleanup()
  if SEGS then pcall(SEGS.cleanup) end
  if HTTPS then pcall(HTTPS.cleanup) end
  if T.nginx then pcall(B.stop_nginx, T.nginx) end
  T.nginx = nil
  if T.dir and T.dir:match("/dt%-bench%.[%w]+$") then B.sh("rm -rf " .. q(T.dir)) end
  T.dir = nil
end
local sentinel = setmetatable({}, { __gc = cleanup }) -- also at state close

local started_at = B.now()

local function setup()
  local so = os.getenv("DT_BENCH_SO") or REPO .. "/downloadtask.so"
  assert(B.filesize(so), "build first: make (no " .. so .. ")")
  local base = os.getenv("TMPDIR") or "/tmp"
  T.dir = B.capture("mktemp -d " .. q(base .. "/dt-bench.XXXXXX"))
  assert(T.dir:match("/dt%-bench%.[%w]+$"), "mktemp failed")
  local d = T.dir
  for _, sub in ipairs { "www", "www/small", "out", "lib", "scratch", "tmp" } do
    B.sh("mkdir -p " .. q(d .. "/" .. sub))
  end
  B.sh(("cp %s %s"):format(q(so), q(d .. "/lib/downloadtask.so")))

  local t0 = B.now()
  B.log("bench: generating files in %s", d)
  if wanted("big") or wanted("game") then B.make_file(d .. "/www/1g.bin", GiB) end
  if wanted("mid") or wanted("durable") then B.make_file(d .. "/www/100m.bin", 100 * MiB) end
  if wanted("many") then
    for i = 1, 1000 do B.make_file(("%s/www/small/s%04d.bin"):format(d, i), 100 * KiB) end
  end
  if wanted("queue") or wanted("prio") then B.writefile(d .. "/www/tiny.txt", "hello downloadtask\n") end
  if wanted("poll") or wanted("prio") then B.make_file(d .. "/www/10m.bin", 10 * MiB) end
  B.log("bench: files ready in %.1f s", B.now() - t0)

  T.nginx = B.start_nginx(HERE, d, d .. "/www")
  B.log("bench: nginx on 127.0.0.1:%d", T.nginx.port)
end

------------------------------------------------------------------------------
-- Commands.

local function dt_env()
  return ("LUA_CPATH=%s TMPDIR=%s "):format(q(T.dir .. "/lib/?.so;;"), q(T.dir .. "/tmp"))
end
-- Runs `cmd` under GNU time, with environment assignments `env` ("" for none).
local function run(env, cmd)
  return B.measure(cmd, T.dir .. "/scratch", env)
end

local function dt(script, ...)
  local args = {}
  for i, a in ipairs { ... } do args[i] = q(a) end
  return run(dt_env(), ("lua5.4 %s %s"):format(q(HERE .. "/" .. script), table.concat(args, " ")))
end

local function curl(...)
  local args = {}
  for i, a in ipairs { ... } do args[i] = q(a) end
  return run("", "curl " .. table.concat(args, " "))
end

local function luahttp(...)
  local args = {}
  for i, a in ipairs { ... } do args[i] = q(a) end
  return run(("LUA_PATH=%s "):format(q(HTTP_PATH)),
    ("lua5.4 %s %s"):format(q(HERE .. "/http_file.lua"), table.concat(args, " ")))
end

local function expect_size(path, size, who)
  local n = B.filesize(path)
  if n ~= size then error(("%s: %s has %s bytes, expected %d"):format(who, path, tostring(n), size), 0) end
end

------------------------------------------------------------------------------
-- Rounds: a warm-up, then opt.pairs timed rounds, alternating the order of the clients.

-- Short workloads (under a second a run) get SHORT_ROUNDS times as many rounds: their
-- spread from one run to the next is wider than the margins we look at.
local SHORT_ROUNDS = 3

local function rounds(label, clients, n, nowarm)
  -- clients: list of { key=, run=function() -> r }; each run cleans up after itself.
  -- nowarm: no warm-up round (the throttled segments rows, where a round takes minutes)
  n = n or opt.pairs
  local runs = {}
  for _, c in ipairs(clients) do runs[c.key] = {} end
  if not nowarm then
    B.log("bench: %s: warm-up", label)
    for _, c in ipairs(clients) do c.run() end
  end
  for i = 1, n do
    local order = {}
    for j = 1, #clients do order[j] = clients[i % 2 == 1 and j or #clients + 1 - j] end
    local line = {}
    for _, c in ipairs(order) do
      if c.warm then B.touch_pages(T.dir .. "/scratch/warm.bin", c.warm) end
      -- the previous run's dirty pages and journal go to disk now, untimed, not during this run
      B.sh("sync")
      socket.sleep(0.05)
      local r = c.run()
      table.insert(runs[c.key], r)
      line[#line + 1] = ("%s %.3f s"):format(c.key, r.wall)
    end
    B.log("bench: %s: round %d/%d: %s", label, i, n, table.concat(line, ", "))
  end
  return runs
end

local function ratios(a, b)
  local t = {}
  for i = 1, #a do t[i] = a[i].wall / b[i].wall end
  return t
end

------------------------------------------------------------------------------
-- Workloads.

local R = {} -- results by workload
local notes = {} -- anything odd seen during the run

local function single(size, file, mode)
  local url = T.nginx.url(file)
  local dest = T.dir .. "/out/" .. file
  local warm = size + 64 * MiB
  local clients = {
    { key = "downloadtask", warm = warm, run = function()
      local r = dt("dt_file.lua", url, dest, tostring(size), mode)
      expect_size(dest, size, "downloadtask")
      os.remove(dest)
      return r
    end },
    { key = "curl", warm = warm, run = function()
      local r = curl("--no-progress-meter", "-f", "-o", dest, url)
      expect_size(dest, size, "curl")
      os.remove(dest)
      return r
    end },
  }
  if HAVE_HTTP and mode == "plain" then
    clients[#clients + 1] = { key = "lua-http", warm = warm, run = function()
      local r = luahttp(url, dest, tostring(size))
      expect_size(dest, size, "lua-http")
      os.remove(dest)
      return r
    end }
  end
  return clients
end

local function w_big()
  local runs = rounds("1 GiB -> file", single(GiB, "1g.bin", "plain"))
  R.big = runs
end

local function w_game()
  local runs = rounds("1 GiB -> file, progress listener + 60 Hz poll(0)", single(GiB, "1g.bin", "game"))
  R.game = runs
end

local function w_mid()
  R.mid = rounds("100 MiB -> file", single(100 * MiB, "100m.bin", "plain"), opt.pairs * SHORT_ROUNDS)
end

-- What `durable = true` costs: the fsync of the file before the rename and of the directory
-- after it, beside the same download without it and curl (which syncs nothing).
local function w_durable()
  local clients = single(100 * MiB, "100m.bin", "plain")
  for i = #clients, 1, -1 do if clients[i].key == "lua-http" then table.remove(clients, i) end end
  local url, dest = T.nginx.url("100m.bin"), T.dir .. "/out/100m.bin"
  table.insert(clients, 2, { key = "downloadtask durable", warm = 164 * MiB, run = function()
    local r = dt("dt_file.lua", url, dest, tostring(100 * MiB), "durable")
    expect_size(dest, 100 * MiB, "downloadtask durable")
    os.remove(dest)
    return r
  end })
  R.durable = rounds("100 MiB -> file, durable", clients, opt.pairs * SHORT_ROUNDS)
end

-- A fresh, empty destination directory for the next run of a many-files workload. The
-- last run's files are moved aside, not deleted, and stay until the bench ends (`cleanup`
-- removes its temp dir; 5 GB at most): ext4 skips inodes freed in the last seconds to
-- minutes when it allocates new ones (recently_deleted), and with 1000 files deleted just
-- before a run that scan was a sixth to a third of the run's time (perf), whichever client
-- came next. Deleted between runs, the 10,000-file workload took 2-4 s a run instead of 1.
local function dest_dir(out)
  local retired = 0
  return function()
    if B.sh("test -d " .. q(out)) then
      retired = retired + 1
      B.sh(("mv %s %s"):format(q(out), q(("%s.retired.%d"):format(out, retired))))
    end
    B.sh("mkdir -p " .. q(out))
  end
end

local function w_many()
  local out = T.dir .. "/out/many"
  local list, cfg = {}, {}
  for i = 1, 1000 do
    local url = T.nginx.url(("small/s%04d.bin"):format(i))
    local dest = ("%s/s%04d.bin"):format(out, i)
    list[i] = url .. "\t" .. dest
    cfg[i] = ('url = "%s"\noutput = "%s"'):format(url, dest)
  end
  local listfile, cfgfile = T.dir .. "/many.list", T.dir .. "/many.curlrc"
  B.writefile(listfile, table.concat(list, "\n") .. "\n")
  B.writefile(cfgfile, table.concat(cfg, "\n") .. "\n")
  local fresh = dest_dir(out)
  local function check(who)
    for i = 1, 1000 do expect_size(("%s/s%04d.bin"):format(out, i), 100 * KiB, who) end
  end
  fresh()
  R.many = rounds("1000 x 100 KiB -> files, 50 at a time", {
    { key = "downloadtask", run = function()
      local r = dt("dt_many.lua", listfile, "50")
      check("downloadtask")
      fresh()
      return r
    end },
    { key = "curl", run = function()
      local r = curl("--parallel", "--parallel-max", "50", "--no-progress-meter", "-f", "-Z", "-K", cfgfile)
      check("curl")
      fresh()
      return r
    end },
  }, opt.pairs * SHORT_ROUNDS)
end

local QUEUE_N = 10000
local function w_queue()
  local out = T.dir .. "/out/queue"
  local url = T.nginx.url("tiny.txt")
  local cfg = {}
  for i = 1, QUEUE_N do cfg[i] = ('url = "%s"\noutput = "%s/q%05d.txt"'):format(url, out, i) end
  local cfgfile = T.dir .. "/queue.curlrc"
  B.writefile(cfgfile, table.concat(cfg, "\n") .. "\n")
  local fresh = dest_dir(out)
  local function check(who)
    for _, i in ipairs { 1, QUEUE_N // 2, QUEUE_N } do expect_size(("%s/q%05d.txt"):format(out, i), 19, who) end
  end
  fresh()
  R.queue = rounds("10,000 tasks queued at once (10 at a time)", {
    { key = "downloadtask", run = function()
      local r = dt("dt_queue.lua", url, out, tostring(QUEUE_N))
      r.res = B.results(r.out)
      check("downloadtask")
      fresh()
      return r
    end },
    { key = "curl", run = function()
      local r = curl("--parallel", "--parallel-max", "10", "--no-progress-meter", "-f", "-K", cfgfile)
      check("curl")
      fresh()
      return r
    end },
  })
end

local POLL_N, POLL_CALLS = 1000, 1000
local function w_poll()
  local out = T.dir .. "/out/poll"
  B.sh("mkdir -p " .. q(out))
  R.poll = {}
  -- "1g": listeners, with the host's Lua in generational GC mode (5.4's other collector)
  for _, listener in ipairs { "0", "1", "1g" } do
    B.log("bench: poll(0) with %d downloads running, %s progress listener%s: %d calls at 60 Hz",
      POLL_N, listener == "0" and "no" or "one", listener == "1g" and ", generational GC" or "", POLL_CALLS)
    local r = dt("dt_poll.lua", T.nginx.url("limited/10m.bin"), out, tostring(POLL_N),
      tostring(POLL_CALLS), "0.016", listener:sub(1, 1), listener == "1g" and "generational" or "incremental")
    r.res = B.results(r.out)
    if (r.res.stuck or 0) > 0 then
      B.log("bench:   WARNING: %d of %d aborted downloads never delivered fail(abort) within 10 s", r.res.stuck, POLL_N)
      notes[#notes + 1] = ("- `poll(0)` row%s: after the timing, aborting the %d downloads left %d of them that never "
        .. "delivered `fail` (abort) within 10 s (a bug of the module, not a timing)."):format(
        listener ~= "0" and " with listeners" or "", POLL_N, r.res.stuck)
    end
    B.log("bench:   median %.1f us, p99 %.1f us, max %.1f us", r.res.median * 1e6, r.res.p99 * 1e6, r.res.max * 1e6)
    R.poll[listener] = r
  end
end

-- Issue 14: 10,000 tasks queued behind one slow download (maxConcurrent = 1), inserted
-- with priority 0 and with random priorities; dt.tasks() and dt.abortAll() on them.
local PRIO_N = 10000
local function w_prio()
  R.prio = {}
  for i = 1, opt.pairs do
    B.log("bench: 10,000 priority inserts, round %d of %d", i, opt.pairs)
    local r = dt("dt_priority.lua", T.nginx.url("limited/10m.bin"), T.nginx.url("tiny.txt"), tostring(PRIO_N))
    local rounds_of = {}
    for line in r.out:gmatch("[^\n]+") do
      if line:match("^RESULT ") then rounds_of[line:match("round=(%w+)")] = B.results(line) end
    end
    assert(rounds_of.fifo and rounds_of.random, "dt_priority.lua printed no results:\n" .. r.out)
    R.prio[i] = rounds_of
  end
end

-- Issue 13's rows (bench/segments.lua): their own file and throttled servers.
local function setup_segments()
  SEGS = SEG.new { B = B, T = T, here = HERE, mib = opt.seg_mib, pairs = opt.pairs, seg_pairs = opt.seg_pairs,
    wanted = wanted, dt_env = dt_env, run = function(env, cmd) return B.measure(cmd, T.dir .. "/scratch", env) end,
    rounds = rounds }
  SEGS.setup()
end

-- Issue 13's HTTPS, h2 and limits rows (bench/https.lua): their own file and https servers.
local function setup_https()
  HTTPS = H13.new { B = B, T = T, here = HERE, mib = opt.https_mib, pairs = opt.pairs,
    short_pairs = opt.pairs * SHORT_ROUNDS, wanted = wanted, dt_env = dt_env,
    run = function(env, cmd) return B.measure(cmd, T.dir .. "/scratch", env) end, rounds = rounds,
    dest_dir = dest_dir }
  HTTPS.setup()
end

------------------------------------------------------------------------------
-- The table.

local function fmt_s(x) return ("%.3f"):format(x) end
local function fmt_mib(b) return ("%.1f"):format(b / MiB) end
local function pass(ok) return ok and "PASS" or "MISS" end

local rows = {}
local details = {}

local function client_rows(label, runs, order, ratio_key, target, limit)
  local rs
  if ratio_key and runs[ratio_key] and runs.curl then rs = ratios(runs[ratio_key], runs.curl) end
  for i, key in ipairs(order) do
    local list = runs[key]
    if list then
      local walls = B.field(list, "wall")
      local row = {
        i == 1 and label or "",
        key,
        ("%s (%s–%s)"):format(fmt_s(B.median(walls)), fmt_s(B.min(walls)), fmt_s(B.max(walls))),
        fmt_s(B.median(B.field(list, "cpu"))),
        fmt_mib(B.median(B.field(list, "rss"))),
        "", "", "",
      }
      if key ~= "curl" and runs.curl then
        local r = ratios(list, runs.curl)
        row[6] = ("%.2f× (%.2f–%.2f)"):format(B.median(r), B.min(r), B.max(r))
        if key == ratio_key and limit then
          row[7] = ("≤ %.2f×"):format(limit)
          row[8] = pass(B.median(r) <= limit)
        end
        local pr = {}
        for j, x in ipairs(r) do pr[j] = ("%.2f"):format(x) end
        details[#details + 1] = ("- %s, %s/curl by round: %s"):format(label, key, table.concat(pr, ", "))
      end
      rows[#rows + 1] = row
    end
  end
  return rs
end

local function build_table()
  local order = { "downloadtask", "curl", "lua-http" }
  if R.big then client_rows("1 GiB → file", R.big, order, "downloadtask", nil, 0.75) end
  if R.game then client_rows("1 GiB → file, progress listener + 60 Hz `poll(0)` loop", R.game, order, "downloadtask", nil, 0.79) end
  if R.mid then client_rows("100 MiB → file", R.mid, order, "downloadtask", nil, 0.80) end
  if R.durable then
    client_rows("100 MiB → file: `durable = true` beside the same without it", R.durable,
      { "downloadtask", "downloadtask durable", "curl" }, nil, nil, nil)
  end
  if R.many then client_rows("1000 × 100 KiB → files, 50 at a time", R.many, order, "downloadtask", nil, 0.90) end
  if R.big then
    local dt_rss = B.median(B.field(R.big.downloadtask, "rss"))
    local curl_rss = B.median(B.field(R.big.curl, "rss"))
    rows[#rows + 1] = { "peak RSS, 1 GiB → file", "downloadtask", "", "", fmt_mib(dt_rss),
      ("%+.1f MiB vs curl"):format((dt_rss - curl_rss) / MiB), ("≤ curl + 8 MiB (%s)"):format(fmt_mib(curl_rss + 8 * MiB)),
      pass(dt_rss <= curl_rss + 8 * MiB) }
  end
  if R.queue then
    local list = R.queue.downloadtask
    local after, before, create = {}, {}, {}
    for i, r in ipairs(list) do after[i], before[i], create[i] = r.res.after, r.res.before, r.res.create end
    local a = B.median(after)
    client_rows("10,000 tasks queued at once, run to completion (10 at a time)", R.queue, order, nil, nil, nil)
    rows[#rows + 1] = { "10,000 tasks queued: process RSS right after creating them", "downloadtask", "", "",
      fmt_mib(a), ("%.1f MiB before creating; created in %.0f ms"):format(B.median(before) / MiB, B.median(create) * 1000),
      "≤ 20 MiB in all", pass(a <= 20 * MiB) }
  end
  if R.poll then
    for _, k in ipairs { "0", "1", "1g" } do
      local r = R.poll[k]
      if r then
        rows[#rows + 1] = { ("`poll(0)` with %d downloads running, %s, %d calls at 60 Hz%s"):format(POLL_N,
            k == "0" and "no listeners" or "a progress listener on each", POLL_CALLS,
            k == "1g" and ", host Lua in generational GC mode" or ""),
          "downloadtask", "", "", fmt_mib(r.rss),
          ("median %.0f µs, p99 %.0f µs, max %.0f µs"):format(r.res.median * 1e6, r.res.p99 * 1e6, r.res.max * 1e6),
          "median ≤ 100 µs, max ≤ 1 ms", pass(r.res.median <= 100e-6 and r.res.max <= 1e-3) }
      end
    end
  end
  if R.prio then
    local function med(round, key)
      local xs = {}
      for i, r in ipairs(R.prio) do xs[i] = r[round][key] end
      return B.median(xs)
    end
    for _, round in ipairs { "fifo", "random" } do
      local what = round == "fifo" and "priority 0" or "random priorities −1000…1000"
      rows[#rows + 1] = { ("10,000 inserts into the queue (%s), one download running, maxConcurrent = 1"):format(what),
        "downloadtask", "", "", "",
        ("created in %.1f ms (%.2f µs each); abortAll %.1f ms, drained in %.1f ms"):format(med(round, "create") * 1000,
          med(round, "create") * 1e6 / PRIO_N, med(round, "abort") * 1000, med(round, "drain") * 1000),
        "", "" }
    end
    rows[#rows + 1] = { "`dt.tasks()` with 10,000 queued", "downloadtask", "", "", "",
      ("median %.2f ms a call"):format(med("random", "tasks") * 1000), "", "" }
    rows[#rows + 1] = { "1,000 `pause()` then 1,000 `resume()` on tasks among 10,000 queued (random priorities)",
      "downloadtask", "", "", "",
      ("carried out by the engine in %.1f ms (%.1f µs a pause) and %.1f ms (%.1f µs a resume)"):format(
        med("random", "pause") * 1000, med("random", "pause") * 1e6 / 1000,
        med("random", "resume") * 1000, med("random", "resume") * 1e6 / 1000), "", "" }
  end
  local head = { "workload", "client", "wall s, median (min–max)", "user+sys CPU s", "peak RSS MiB",
    "ratio to curl, median of rounds (min–max)", "target", "" }
  local lines = { "| " .. table.concat(head, " | ") .. " |", "|" .. ("---|"):rep(#head) }
  for _, r in ipairs(rows) do lines[#lines + 1] = "| " .. table.concat(r, " | ") .. " |" end
  return table.concat(lines, "\n")
end

local function machine()
  local model = B.capture("grep -m1 '^model name' /proc/cpuinfo | sed 's/^[^:]*: *//'")
  local commit = B.capture("git -C " .. q(REPO) .. " rev-parse --short HEAD 2>/dev/null")
  local dirty = B.capture("git -C " .. q(REPO) .. " status --porcelain --untracked-files=no -- src 2>/dev/null")
  return {
    ("- machine: %s cores (`nproc`), %s, Linux %s, %s MiB RAM"):format(B.capture("nproc"), model,
      B.capture("uname -r"), B.capture("awk '/MemTotal/ {print int($2/1024)}' /proc/meminfo")),
    ("- curl: %s"):format(B.capture("curl --version | head -1")),
    ("- nginx: %s, 1 worker, sendfile, on 127.0.0.1; files in %s (same filesystem as the destinations)"):format(
      B.capture("/usr/sbin/nginx -v 2>&1 | sed 's/^nginx version: //'"), os.getenv("TMPDIR") or "/tmp"),
    (os.getenv("DT_BENCH_SO") and ("- downloadtask: %s (DT_BENCH_SO); Lua: %s"):format(os.getenv("DT_BENCH_SO"),
      B.capture("lua5.4 -v")) or ("- downloadtask: commit %s%s; Lua: %s"):format(commit,
      dirty ~= "" and " with uncommitted changes in src/" or "", B.capture("lua5.4 -v"))),
    ("- date: %s; %d timed rounds after a warm-up (%d for 100 MiB and 1000 × 100 KiB), `sync` before each run; "
      .. "wall clock: %s"):format(B.capture("date -u '+%Y-%m-%d %H:%M UTC'"),
      opt.pairs, opt.pairs * SHORT_ROUNDS, B.clock_name),
    ("- load average at the end: %s (other work on the machine makes figures noisy)"):format(
      B.capture("cut -d' ' -f1-3 /proc/loadavg")),
  }
end

------------------------------------------------------------------------------

local ok, err = xpcall(function()
  setup()
  if wanted("big") then w_big() end
  if wanted("game") then w_game() end
  if wanted("mid") then w_mid() end
  if wanted("durable") then w_durable() end
  if wanted("many") then w_many() end
  if wanted("queue") then w_queue() end
  if wanted("poll") then w_poll() end
  if wanted("prio") then w_prio() end
  if wanted_seg() then
    setup_segments()
    SEGS.run()
  end
  if wanted_h13() then
    setup_https()
    HTTPS.run()
  end
end, debug.traceback)
cleanup()
if not ok then
  io.stderr:write("bench: ", tostring(err), "\n")
  os.exit(1)
end

local tbl = build_table()
local info = machine()
local seg_section
if SEGS then
  seg_section = SEGS.section(SEGS.table(), info)
  print()
  print(seg_section)
end
local https_section
if HTTPS then
  https_section = HTTPS.section(HTTPS.table(), info)
  print()
  print(https_section)
end
if #rows > 0 or not (SEGS or HTTPS) then -- the main table, unless only issue 13's rows ran (their sections have the rest)
  print()
  print(tbl)
  print()
  print(table.concat(info, "\n"))
  if #notes > 0 then print("\n" .. table.concat(notes, "\n")) end
end
print(("\nbench: done in %.0f s"):format(B.now() - started_at))

if opt.write then
  local text = table.concat({
    "# Benchmark results",
    "",
    "Written by `make bench` (`lua5.4 bench/run.lua`). Wall time is measured around each",
    "child process (a fresh `lua5.4` or `curl` process, startup included); CPU (user+sys, all",
    "threads) and peak RSS come from GNU time. Ratios are downloadtask / curl of the same round;",
    "the table shows their median. Targets are from issue 4. Before each timed single-file run",
    "the bench writes and deletes a file of the same size (untimed): this VM hands freed memory",
    "back to its host, and touching it again costs up to a second per GiB, whoever touches it",
    "(see bench/lib.lua, `touch_pages`). Other work on the machine still makes the figures noisy:",
    "compare ratios, not seconds, and look at the min–max spread.",
    "",
    tbl,
    "",
    "## Machine",
    "",
    table.concat(info, "\n"),
    "",
    #notes > 0 and ("## Notes\n\n" .. table.concat(notes, "\n") .. "\n") or "",
    "## Ratios round by round",
    "",
    table.concat(details, "\n"),
    "",
  }, "\n")
  -- bench/openresty.lua (make bench-openresty) writes a section of its own: it stays
  local old = B.readfile(HERE .. "/results.md") or ""
  local ngx = old:match("\n(## OpenResty\n.-)\n## ") or old:match("\n(## OpenResty\n.*)$")
  if ngx then text = text .. "\n" .. ngx:gsub("%s*$", "") .. "\n" end
  if seg_section then text = SEG.splice(text, seg_section) end
  if https_section then text = H13.splice(text, https_section) end
  B.writefile(HERE .. "/results.md", text)
  B.log("bench: wrote %s", HERE .. "/results.md")
elseif opt.seg_write and not opt.no_write and (seg_section or https_section) then
  -- --only ... --write: the segments and https sections alone; the rest of the file stays as it is
  local text = B.readfile(HERE .. "/results.md") or "# Benchmark results\n"
  if seg_section then text = SEG.splice(text, seg_section) end
  if https_section then text = H13.splice(text, https_section) end
  B.writefile(HERE .. "/results.md", text)
  B.log("bench: wrote the %s of %s", seg_section and https_section and "segments and https sections"
    or seg_section and "segments section" or "https section", HERE .. "/results.md")
end
