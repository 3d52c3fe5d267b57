-- The segments rows of `make bench` (issue 13), run by bench/run.lua:
--
--   seglimit   one file from a server that caps each connection at 20 MiB/s
--              (bench/seg/nginx.conf): curl, aria2c -x8 -s8 -k1M, downloadtask with
--              segments = 1 and segments = 8. Target: segments = 8 ≤ 0.9× aria2c.
--   segmirror  the same file from 3 such servers: aria2c given the 3 URLs, downloadtask
--              segments = 8 with mirrors = {url2, url3}. Target: ≤ 0.9× aria2c.
--   segflat    the file from the unthrottled bench nginx: segments = 8 against
--              segments = 1 (target: no slower by more than 10 %), curl and aria2c beside.
--   segrate    rateLimit = 1 MiB/s with segments = 8, from the unthrottled nginx: the bytes of
--              the first 3 s (bench/dt_segrate.lua), beside `curl --limit-rate 1M --max-time 3`.
--              Target: the module's average within 10 % of the limit.
--
-- `--only segments` runs all four. The file size is --seg-mib (default 1024: 1 GiB; e.g.
-- 200 for a quick run). The throttled rows take --seg-pairs timed rounds (default 3, no
-- warm-up round: one round of the one-connection clients is 2 × 51 s at 1 GiB), the
-- unthrottled row --pairs rounds after a warm-up, as the other rows. Every download is
-- checked against the served file (size and `cmp`), and no other file may be left beside
-- it (a temporary file, aria2's control file).
--
-- The file is random bytes from /dev/urandom, not bench/lib.lua's repeated 1 MiB block: a
-- segment written at the wrong MiB-aligned offset of a periodic file would still compare
-- equal.
local S = {}

local MiB = 1024 * 1024
local CAP = "20 MiB/s"

S.NAMES = { seglimit = true, segmirror = true, segflat = true, segrate = true }

-- `--only segments` stands for the four.
function S.expand(only)
  if only and only.segments then
    for n in pairs(S.NAMES) do only[n] = true end
  end
end

-- ctx: B (bench/lib.lua), T (run.lua's state: T.dir, T.nginx), here (bench/), run(env, cmd),
-- dt_env(), rounds(label, clients, n, nowarm), mib (file size in MiB), pairs, seg_pairs,
-- wanted(name).
function S.new(ctx)
  local B, T, q = ctx.B, ctx.T, ctx.B.quote
  local size = ctx.mib * MiB
  local file = "seg.bin"
  local src = T.dir .. "/www/" .. file
  local out = T.dir .. "/out/seg"
  local self = { R = {}, notes = {}, details = {}, size = size, servers = {} }

  local function args(list)
    local t = {}
    for i, a in ipairs(list) do t[i] = q(a) end
    return table.concat(t, " ")
  end

  function self.setup()
    B.sh("mkdir -p " .. q(out))
    local t0 = B.now()
    assert(B.sh(("head -c %d /dev/urandom >%s"):format(size, q(src))), "could not write " .. src)
    assert(B.filesize(src) == size, "short " .. src)
    B.log("bench: segments: %d MiB of random bytes in %.1f s", ctx.mib, B.now() - t0)
    if ctx.wanted("seglimit") or ctx.wanted("segmirror") then
      local n = ctx.wanted("segmirror") and 3 or 1
      for i = 1, n do
        local dir = ("%s/seg-nginx%d"):format(T.dir, i)
        B.sh("mkdir -p " .. q(dir))
        -- bench/seg/ holds the throttled nginx.conf; start_nginx reads <here>/nginx.conf
        self.servers[i] = B.start_nginx(ctx.here .. "/seg", dir, T.dir .. "/www")
        B.log("bench: segments: nginx capped at %s a connection on 127.0.0.1:%d", CAP, self.servers[i].port)
      end
    end
  end

  function self.cleanup()
    for i, ng in ipairs(self.servers) do
      -- B.stop_nginx's `kill -TERM -- -PGID PID` fails under dash ("Illegal number: -"), so
      -- it waits 2 s and leaves nginx to the watchdog; without the `--` dash's kill works
      B.sh(("kill -TERM -%d %d 2>/dev/null"):format(ng.pid, ng.pid))
      pcall(B.stop_nginx, ng)
      self.servers[i] = nil
    end
  end

  -- The download is the served file, and nothing else is left in the directory.
  local function check(dest, who)
    local n = B.filesize(dest)
    if n ~= size then error(("%s: %s has %s bytes, expected %d"):format(who, dest, tostring(n), size), 0) end
    if not B.sh(("cmp -s %s %s"):format(q(src), q(dest))) then
      error(("%s: %s differs from the served file"):format(who, dest), 0)
    end
    local left = B.capture(("ls -A %s"):format(q(out)))
    if left ~= file then error(("%s: left in %s: %s"):format(who, out, left:gsub("\n", " ")), 0) end
    os.remove(dest)
  end

  local dest = out .. "/" .. file
  local warm = size + 64 * MiB

  local function curl_client(url)
    return { key = "curl", warm = warm, run = function()
      local r = ctx.run("", "curl --no-progress-meter -f -o " .. args { dest, url })
      check(dest, "curl")
      return r
    end }
  end

  local function aria_client(urls)
    local key = #urls > 1 and ("aria2c, %d URLs"):format(#urls) or "aria2c"
    return { key = key, warm = warm, run = function()
      local r = ctx.run("", "aria2c --no-conf -q -x8 -s8 -k1M --allow-overwrite=true --auto-file-renaming=false "
        .. "--file-allocation=none --console-log-level=error --summary-interval=0 "
        .. args { "-d", out, "-o", file } .. " " .. args(urls))
      check(dest, key)
      return r
    end }
  end

  local function dt_client(segments, urls)
    local key = ("downloadtask segments=%d"):format(segments)
    if #urls > 1 then key = key .. (", mirrors=%d"):format(#urls - 1) end
    return { key = key, segments = segments, warm = warm, run = function()
      local r = ctx.run(ctx.dt_env(), ("lua5.4 %s %s"):format(q(ctx.here .. "/dt_segments.lua"),
        args { urls[1], dest, tostring(size), tostring(segments), table.unpack(urls, 2) }))
      r.res = B.results(r.out)
      check(dest, key)
      return r
    end }
  end

  function self.w_seglimit()
    local url = self.servers[1].url(file)
    local clients = { dt_client(8, { url }), aria_client { url }, dt_client(1, { url }), curl_client(url) }
    self.R.seglimit = { runs = ctx.rounds(("segments: %d MiB, %s per connection"):format(ctx.mib, CAP), clients,
      ctx.seg_pairs, true), clients = clients, ref = "aria2c", target = "downloadtask segments=8", limit = 0.90 }
  end

  function self.w_segmirror()
    local urls = {}
    for i, ng in ipairs(self.servers) do urls[i] = ng.url(file) end
    local p = ctx.run(ctx.dt_env(), ("lua5.4 %s --probe %s"):format(q(ctx.here .. "/dt_segments.lua"),
      args { urls[1], dest, tostring(size), "8", table.unpack(urls, 2) }))
    local missing = B.results(p.out).missing
    if missing ~= "none" then
      local why = ("%s not implemented (this build raises \"unknown option\" for %s)"):format(
        missing:gsub(",", " and "), missing:gsub("([%w_]+)", "'%1'"):gsub(",", " and "))
      B.log("bench: segments: mirrors row skipped: %s", why)
      self.R.segmirror = { skipped = why }
      return
    end
    local key = ("aria2c, %d URLs"):format(#urls)
    local clients = { dt_client(8, urls), aria_client(urls) }
    self.R.segmirror = { runs = ctx.rounds(("segments: %d MiB from %d servers, %s per connection"):format(ctx.mib,
      #urls, CAP), clients, ctx.seg_pairs, true), clients = clients, ref = key,
      target = clients[1].key, limit = 0.90 }
  end

  function self.w_segflat()
    local url = T.nginx.url(file)
    local clients = { dt_client(8, { url }), dt_client(1, { url }), curl_client(url), aria_client { url } }
    self.R.segflat = { runs = ctx.rounds(("segments: %d MiB, unthrottled"):format(ctx.mib), clients, ctx.pairs),
      clients = clients, ref = "downloadtask segments=1", target = "downloadtask segments=8", limit = 1.10 }
  end

  -- rateLimit from the start: each round, the module and curl, one after the other, each
  -- 3 s against the same 1 MiB/s; the average of those 3 s is bytes / 3 s.
  local RATE, SECONDS = MiB, 3
  function self.w_segrate()
    local url = T.nginx.url(file)
    local runs = { dt = {}, curl = {} }
    for round = 1, ctx.seg_pairs do
      local r = ctx.run(ctx.dt_env(), ("lua5.4 %s %s"):format(q(ctx.here .. "/dt_segrate.lua"),
        args { url, dest, "8", tostring(RATE), tostring(SECONDS) }))
      local res = B.results(r.out)
      local got = assert(math.tointeger(tonumber(res.bytes)), "dt_segrate.lua printed no bytes: " .. r.out)
      runs.dt[round] = got / tonumber(res.seconds)
      if B.filesize(dest) then error("segrate: the aborted download left " .. dest, 0) end
      ctx.run("", ("curl --no-progress-meter --limit-rate 1M --max-time %d -o %s %s || true"):format(
        SECONDS, q(dest), q(url)))
      runs.curl[round] = (B.filesize(dest) or 0) / SECONDS
      os.remove(dest)
      B.log("bench: segrate round %d: downloadtask %.3f MiB/s, curl %.3f MiB/s (limit 1 MiB/s)", round,
        runs.dt[round] / MiB, runs.curl[round] / MiB)
    end
    self.R.segrate = runs
  end

  function self.run()
    if ctx.wanted("seglimit") then self.w_seglimit() end
    if ctx.wanted("segmirror") then self.w_segmirror() end
    if ctx.wanted("segflat") then self.w_segflat() end
    if ctx.wanted("segrate") then self.w_segrate() end
  end

  ----------------------------------------------------------------------------
  -- The table: one row a client, ratios to the row's reference client taken round by
  -- round (medians, min–max).

  local function f3(x) return ("%.3f"):format(x) end

  -- What res.segments said over the rounds of a downloadtask client.
  local function used(list)
    local seen, missing = {}, false
    for _, r in ipairs(list) do
      local s = r.res and r.res.segments
      seen[#seen + 1] = tostring(s)
      if r.res and r.res.missing == "segments" then missing = true end
    end
    local n = {}
    for _, r in ipairs(list) do
      local s = math.tointeger(tonumber(r.res and r.res.segments))
      if s and s > 1 then n[#n + 1] = s end
    end
    return #n == #list and #list > 0, table.concat(seen, ","), missing
  end

  local function rows_of(label, W, rows)
    local ref = W.runs[W.ref]
    for i, c in ipairs(W.clients) do
      local list = W.runs[c.key]
      local walls = B.field(list, "wall")
      local client = c.key
      local mark = ""
      if c.segments then
        local all, seen, missing = used(list)
        if missing then
          client = client .. " (no `segments` option in this build: run without it)"
          if not self.told_missing then
            self.told_missing = true
            self.notes[#self.notes + 1] = "- The measured build has no `segments` option (downloadFile raises \"unknown"
              .. " option 'segments'\"): its segments rows ran without the option, one connection each, so they"
              .. " show the harness and the one-connection baseline, not segmented downloads."
          end
        else client = client .. (" (res.segments: %s)"):format(seen) end
        if c.segments > 1 and not all then mark = "segments not used" end
      end
      local ratio, target = "", ""
      if c.key ~= W.ref then
        local r = {}
        for j = 1, #list do r[j] = list[j].wall / ref[j].wall end
        ratio = ("%.2f× %s (%.2f–%.2f)"):format(B.median(r), W.ref, B.min(r), B.max(r))
        local pr = {}
        for j, x in ipairs(r) do pr[j] = ("%.2f"):format(x) end
        self.details[#self.details + 1] = ("- %s, %s / %s by round: %s"):format(label, c.key, W.ref,
          table.concat(pr, ", "))
        if c.key == W.target then
          target = ("≤ %.2f× %s, file identical"):format(W.limit, W.ref)
          if mark == "" then mark = B.median(r) <= W.limit and "PASS" or "MISS" end
        end
      end
      rows[#rows + 1] = { i == 1 and label or "", client,
        ("%s (%s–%s)"):format(f3(B.median(walls)), f3(B.min(walls)), f3(B.max(walls))),
        f3(B.median(B.field(list, "cpu"))), ("%.1f"):format(B.median(B.field(list, "rss")) / MiB),
        ratio, target, mark }
    end
  end

  function self.table()
    local rows = {}
    local what = ctx.mib % 1024 == 0 and ("%d GiB"):format(ctx.mib // 1024) or ("%d MiB"):format(ctx.mib)
    if self.R.seglimit then
      rows_of(("%s, one server capping each connection at %s"):format(what, CAP), self.R.seglimit, rows)
    end
    if self.R.segmirror then
      local label = ("%s from 3 servers (mirrors), each capping each connection at %s"):format(what, CAP)
      if self.R.segmirror.skipped then
        rows[#rows + 1] = { label, "downloadtask segments=8, mirrors=2", "", "", "", "", "", "skipped: "
          .. self.R.segmirror.skipped }
      else
        rows_of(label, self.R.segmirror, rows)
      end
    end
    if self.R.segflat then rows_of(("%s, unthrottled loopback"):format(what), self.R.segflat, rows) end
    if self.R.segrate then
      local R = self.R.segrate
      local label = "rateLimit = 1 MiB/s, first 3 s, unthrottled loopback"
      local function mibs(list)
        return ("%.3f (%.3f–%.3f)"):format(B.median(list) / MiB, B.min(list) / MiB, B.max(list) / MiB)
      end
      local rel = {}
      for j, v in ipairs(R.dt) do rel[j] = v / R.curl[j] end
      local dev = math.abs(B.median(R.dt) / RATE - 1)
      rows[#rows + 1] = { label, "downloadtask segments=8, rateLimit=1048576", mibs(R.dt) .. " MiB/s", "", "",
        ("%.2f× curl (%.2f–%.2f)"):format(B.median(rel), B.min(rel), B.max(rel)),
        "average within 10 % of the limit", dev <= 0.10 and ("PASS (%.1f %%)"):format(dev * 100)
          or ("MISS (%.1f %%)"):format(dev * 100) }
      rows[#rows + 1] = { "", "curl --limit-rate 1M (one connection)", mibs(R.curl) .. " MiB/s", "", "", "", "", "" }
    end
    local head = { "workload", "client", "wall s, median (min–max)", "user+sys CPU s", "peak RSS MiB",
      "ratio, median of rounds (min–max)", "target", "" }
    local lines = { "| " .. table.concat(head, " | ") .. " |", "|" .. ("---|"):rep(#head) }
    for _, r in ipairs(rows) do lines[#lines + 1] = "| " .. table.concat(r, " | ") .. " |" end
    return table.concat(lines, "\n")
  end

  -- The "Segments and mirrors" section of bench/results.md.
  function self.section(tbl, machine_lines)
    local t = {
      "## Segments and mirrors (issue 13)",
      "",
      ("Written by `lua5.4 bench/run.lua --only segments --seg-mib %d --write` or a full `make bench`"):format(ctx.mib),
      "(bench/segments.lua). One file of random bytes, downloaded by each client in turn, alternating",
      "the order round by round; each download is compared with the served file (size and `cmp`)",
      "and nothing else may be left beside it. Ratios are to the row's reference client of the same",
      "round. A `segments=8` row whose downloads did not report `res.segments` > 1 is marked",
      "\"segments not used\", not PASS.",
      "",
      tbl,
      "",
      ("- file: %d MiB (%d bytes); servers: nginx, 1 worker, `limit_rate 20m` (per connection) for the"
        .. " capped rows (bench/seg/nginx.conf), the bench's nginx for the unthrottled one"):format(ctx.mib, size),
      ("- rounds: %d timed for the capped rows (no warm-up), %d after a warm-up for the unthrottled row"):format(
        ctx.seg_pairs, ctx.pairs),
      ("- aria2c: %s, `-x8 -s8 -k1M --file-allocation=none`"):format(B.capture("aria2c --version | head -1")),
    }
    -- run.lua's machine lines, less its date line, which counts the other rows' rounds
    for _, l in ipairs(machine_lines) do
      if not l:match("^%- date:") then t[#t + 1] = l end
    end
    t[#t + 1] = ("- date: %s; wall clock: %s"):format(B.capture("date -u '+%Y-%m-%d %H:%M UTC'"), B.clock_name)
    if #self.notes > 0 then
      t[#t + 1] = ""
      for _, l in ipairs(self.notes) do t[#t + 1] = l end
    end
    t[#t + 1] = ""
    t[#t + 1] = "Ratios round by round:"
    t[#t + 1] = ""
    for _, l in ipairs(self.details) do t[#t + 1] = l end
    return table.concat(t, "\n") .. "\n"
  end

  return self
end

-- `text` with its "## Segments and mirrors" section replaced by `section`, or `section`
-- put before "## OpenResty" (bench/openresty.lua rewrites everything from that heading on),
-- or at the end.
function S.splice(text, section)
  local head = "\n## Segments and mirrors"
  local a = text:find(head, 1, true)
  if a then
    local b = text:find("\n## ", a + 1, true)
    return text:sub(1, a) .. section .. (b and text:sub(b) or "")
  end
  local o = text:find("\n## OpenResty\n", 1, true)
  if o then return text:sub(1, o) .. section .. text:sub(o) end
  return text:gsub("\n*$", "\n\n") .. section
end

return S
