-- Issue 13's HTTPS, HTTP/2 and single-stream-limit rows of `make bench`, run by bench/run.lua:
--
--   https    one file over HTTPS from nginx (bench/https/nginx.conf, a CA and certificate
--            made with `openssl` at run time), downloadtask (caFile) against
--            `curl --http1.1` and against `curl --http2` (`--cacert`, `-o file`). Two rows:
--            a server without h2 (downloadtask has no option to refuse h2, so the HTTP/1.1
--            row needs a server that does not offer it) and one with `listen ... ssl http2`.
--            Checked: res.profile.protocol (http1.1 / h2), curl's %{http_version}, the file
--            (size and `cmp`). Target: ≤ 0.9× curl; CPU (user+sys) per GiB reported.
--   h2many   1000 × 100 KiB over HTTPS h2, 50 at a time, each to its own file: downloadtask
--            (maxConcurrent = 50) against `curl --parallel --parallel-max 50 --http2 -K cfg`.
--            Connections are counted in nginx's access log ($connection of each request),
--            for both clients, run by run. Target: 1 connection, ≤ 0.9× curl --parallel.
--   limits   the plain-HTTP file → file beside the limits of this machine, in the same
--            rounds: downloadtask, curl -o file, curl -o /dev/null (receiving alone) and
--            `dd if=/dev/zero of=FILE bs=256k` (writing the same size in 256 KiB writes, no
--            fsync, on the filesystem of the destinations). Target: downloadtask ≤ 0.70×
--            curl (issue 13; the main table's "1 GiB → file" row keeps issue 4's 0.75×).
--
-- The file is --https-mib MiB (default 1024) of random bytes from /dev/urandom. The rows
-- take --pairs timed rounds after a warm-up (h2many 3 times as many, as the short rows of
-- the main table), alternating the order of the clients round by round; ratios are taken
-- round by round against curl (`curl --http1.1`, `curl --http2`, `curl --parallel`, `curl`).
local H = {}

local KiB, MiB, GiB = 1024, 1024 * 1024, 1024 * 1024 * 1024
local MANY, MANY_SIZE, MANY_AT_ONCE = 1000, 100 * KiB, 50

H.NAMES = { https = true, h2many = true, limits = true }

-- ctx: B (bench/lib.lua), T (run.lua's state: T.dir, T.nginx), here (bench/), run(env, cmd),
-- dt_env(), rounds(label, clients, n), dest_dir(dir), mib, pairs, short_pairs, wanted(name).
function H.new(ctx)
  local B, T, q = ctx.B, ctx.T, ctx.B.quote
  local size = ctx.mib * MiB
  local file = "h13.bin"
  local src = T.dir .. "/www/" .. file
  local out = T.dir .. "/out/h13"
  local dest = out .. "/" .. file
  local warm = size + 64 * MiB
  local self = { R = {}, notes = {}, details = {}, servers = {} }
  local tls -- { ca, h1 = server, h2 = server }

  local function args(list)
    local t = {}
    for i, a in ipairs(list) do t[i] = q(a) end
    return table.concat(t, " ")
  end

  -- A CA and a server certificate for 127.0.0.1 (EC P-256, as spec/support/servers.lua).
  local function make_certs(dir)
    B.sh("mkdir -p " .. q(dir))
    local script = ([[
      set -e
      cd %s
      exec >openssl.log 2>&1
      ec="-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
      openssl req -x509 $ec -keyout ca.key -out ca.pem -days 30 -subj "/CN=downloadtask bench CA" \
        -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
      openssl req $ec -keyout server.key -out server.csr -subj "/CN=localhost"
      printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext
      openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -set_serial 2 -out server.pem -days 30 -extfile ext
    ]]):format(q(dir))
    if not B.sh("bash -c " .. q(script)) then
      error("making the bench certificates failed:\n" .. (B.readfile(dir .. "/openssl.log") or ""), 0)
    end
    return { ca = dir .. "/ca.pem", cert = dir .. "/server.pem", key = dir .. "/server.key" }
  end

  -- An https nginx (HTTP/1.1 only, or with h2) in its own directory under T.dir.
  local function start_tls(name, h2, certs)
    local tpl = assert(B.readfile(ctx.here .. "/https/nginx.conf"), "missing bench/https/nginx.conf")
    local dir, tdir = T.dir .. "/" .. name, T.dir .. "/" .. name .. "-template"
    local log = dir .. "/access.log"
    B.sh("mkdir -p " .. q(dir) .. " " .. q(tdir))
    B.writefile(tdir .. "/nginx.conf", (tpl:gsub("%${([%u%d]+)}", {
      HTTP2 = h2 and " http2" or "", CERT = certs.cert, KEY = certs.key, LOG = log })))
    local ng = B.start_nginx(tdir, dir, T.dir .. "/www")
    ng.log = log
    ng.url = function(path) return ("https://%s:%d/%s"):format(B.HOST, ng.port, path) end
    self.servers[#self.servers + 1] = ng
    B.log("bench: https: nginx (%s) on 127.0.0.1:%d", h2 and "HTTP/2" or "HTTP/1.1", ng.port)
    return ng
  end

  function self.setup()
    B.sh("mkdir -p " .. q(out))
    if ctx.wanted("https") or ctx.wanted("limits") then
      local t0 = B.now()
      assert(B.sh(("head -c %d /dev/urandom >%s"):format(size, q(src))), "could not write " .. src)
      assert(B.filesize(src) == size, "short " .. src)
      B.log("bench: https: %d MiB of random bytes in %.1f s", ctx.mib, B.now() - t0)
    end
    if ctx.wanted("h2many") then
      B.sh("mkdir -p " .. q(T.dir .. "/www/h2small"))
      for i = 1, MANY do
        assert(B.sh(("head -c %d /dev/urandom >%s"):format(MANY_SIZE, q(("%s/www/h2small/s%04d.bin"):format(T.dir, i)))))
      end
    end
    if ctx.wanted("https") or ctx.wanted("h2many") then
      local certs = make_certs(T.dir .. "/tls")
      tls = { ca = certs.ca }
      if ctx.wanted("https") then tls.h1 = start_tls("nginx-h1", false, certs) end
      tls.h2 = start_tls("nginx-h2", true, certs)
    end
  end

  function self.cleanup()
    for i, ng in ipairs(self.servers) do
      pcall(B.stop_nginx, ng)
      self.servers[i] = nil
    end
  end

  -- Connections that served requests since the log was emptied, and the requests.
  local function connections(ng)
    local seen, n, reqs = {}, 0, 0
    for line in (B.readfile(ng.log) or ""):gmatch("[^\n]+") do
      local c = line:match("^(%d+) ")
      if c then
        reqs = reqs + 1
        if not seen[c] then seen[c], n = true, n + 1 end
      end
    end
    return n, reqs
  end
  -- nginx opens its log with O_APPEND: emptying it in place is safe while it runs
  local function empty_log(ng) B.writefile(ng.log, "") end

  -- CPU seconds (user+sys) the nginx worker has used so far: with TLS the server encrypts
  -- every byte, and on 2 cores its pace bounds the client's. nil when /proc says nothing.
  local function server_cpu(ng)
    if not ng.worker then
      local kids = B.readfile(("/proc/%d/task/%d/children"):format(ng.pid, ng.pid)) or ""
      ng.worker = math.tointeger(tonumber(kids:match("%d+")))
      if not ng.worker then return nil end
    end
    local st = B.readfile(("/proc/%d/stat"):format(ng.worker))
    if not st then return nil end
    local f = {}
    for x in st:match("^%d+ %b() (.*)$"):gmatch("%S+") do f[#f + 1] = x end
    -- after "pid (comm)": field 3 is f[1], so utime (14) and stime (15) are f[12], f[13]
    return (tonumber(f[12]) + tonumber(f[13])) / 100 -- USER_HZ is 100 on Linux
  end
  -- Wraps a client's run: the nginx worker's CPU during it goes into r.srv.
  local function with_server_cpu(ng, fn)
    return function()
      local c0 = server_cpu(ng)
      local r = fn()
      local c1 = server_cpu(ng)
      if c0 and c1 then r.srv = c1 - c0 end
      return r
    end
  end

  local function check(path, who)
    local n = B.filesize(path)
    if n ~= size then error(("%s: %s has %s bytes, expected %d"):format(who, path, tostring(n), size), 0) end
    if not B.sh(("cmp -s %s %s"):format(q(src), q(path))) then
      error(("%s: %s differs from the served file"):format(who, path), 0)
    end
    os.remove(path)
  end

  ----------------------------------------------------------------------------
  -- https: one file, HTTP/1.1 and h2.

  local function w_https(ng, proto)
    local url = ng.url(file)
    local flag = proto == "h2" and "--http2" or "--http1.1"
    local clients = {
      { key = "downloadtask", warm = warm, run = with_server_cpu(ng, function()
        empty_log(ng)
        local r = ctx.run(ctx.dt_env(), ("lua5.4 %s %s"):format(q(ctx.here .. "/dt_https.lua"),
          args { url, dest, tostring(size), tls.ca }))
        r.res = B.results(r.out)
        r.proto = r.res.protocol
        r.conns = connections(ng)
        check(dest, "downloadtask")
        return r
      end) },
      { key = "curl " .. flag, warm = warm, run = with_server_cpu(ng, function()
        empty_log(ng)
        local r = ctx.run("", "curl --no-progress-meter -f " .. flag .. " -w '%{http_version}' "
          .. args { "--cacert", tls.ca, "-o", dest, url })
        r.proto = r.out:match("[%d.]+")
        r.proto = r.proto == "2" and "h2" or r.proto == "1.1" and "http1.1" or r.proto
        r.conns = connections(ng)
        check(dest, "curl")
        return r
      end) },
    }
    return ctx.rounds(("https: %d MiB -> file, %s"):format(ctx.mib, proto), clients, ctx.pairs)
  end

  ----------------------------------------------------------------------------
  -- h2many: 1000 × 100 KiB over one h2 host, 50 at a time.

  function self.w_h2many()
    local ng = tls.h2
    local dir = out .. "/many"
    local list, cfg = {}, {}
    for i = 1, MANY do
      local url = ng.url(("h2small/s%04d.bin"):format(i))
      local d = ("%s/s%04d.bin"):format(dir, i)
      list[i] = url .. "\t" .. d
      cfg[i] = ('url = "%s"\noutput = "%s"'):format(url, d)
    end
    local listfile, cfgfile = T.dir .. "/h2many.list", T.dir .. "/h2many.curlrc"
    B.writefile(listfile, table.concat(list, "\n") .. "\n")
    B.writefile(cfgfile, table.concat(cfg, "\n") .. "\n")
    local fresh = ctx.dest_dir(dir)
    local function checkall(who)
      for i = 1, MANY do
        local d = ("%s/s%04d.bin"):format(dir, i)
        local n = B.filesize(d)
        if n ~= MANY_SIZE then error(("%s: %s has %s bytes, expected %d"):format(who, d, tostring(n), MANY_SIZE), 0) end
      end
      for _, i in ipairs { 1, 500, MANY } do -- a few compared byte for byte
        if not B.sh(("cmp -s %s/www/h2small/s%04d.bin %s/s%04d.bin"):format(q(T.dir), i, q(dir), i)) then
          error(("%s: s%04d.bin differs from the served file"):format(who, i), 0)
        end
      end
    end
    local function counted(r, who)
      local n, reqs = connections(ng)
      if reqs ~= MANY then error(("%s: nginx logged %d requests, expected %d"):format(who, reqs, MANY), 0) end
      r.conns = n
    end
    fresh()
    self.R.h2many = ctx.rounds(("https h2: %d x 100 KiB -> files, %d at a time"):format(MANY, MANY_AT_ONCE), {
      { key = "downloadtask", run = with_server_cpu(ng, function()
        empty_log(ng)
        local r = ctx.run(ctx.dt_env(), ("lua5.4 %s %s"):format(q(ctx.here .. "/dt_h2many.lua"),
          args { listfile, tostring(MANY_AT_ONCE), tls.ca }))
        r.res = B.results(r.out)
        r.proto = r.res.protocols
        counted(r, "downloadtask")
        checkall("downloadtask")
        fresh()
        return r
      end) },
      { key = "curl --parallel", run = with_server_cpu(ng, function()
        empty_log(ng)
        local r = ctx.run("", "curl --parallel --parallel-max " .. MANY_AT_ONCE .. " --http2 --no-progress-meter -f "
          .. "-w '%{http_version}\\n' " .. args { "--cacert", tls.ca, "-K", cfgfile })
        local seen, names = {}, {}
        for v in r.out:gmatch("[%d.]+") do
          v = v == "2" and "h2" or v == "1.1" and "http1.1" or v
          if not seen[v] then seen[v] = true; names[#names + 1] = v end
        end
        table.sort(names)
        r.proto = table.concat(names, ",")
        counted(r, "curl --parallel")
        checkall("curl --parallel")
        fresh()
        return r
      end) },
    }, ctx.short_pairs)
  end

  ----------------------------------------------------------------------------
  -- limits: plain HTTP file → file beside receiving alone and writing alone.

  function self.w_limits()
    local url = T.nginx.url(file)
    local chunks = size // (256 * KiB)
    self.R.limits = ctx.rounds(("limits: %d MiB -> file, plain HTTP"):format(ctx.mib), {
      { key = "downloadtask", warm = warm, run = function()
        local r = ctx.run(ctx.dt_env(), ("lua5.4 %s %s"):format(q(ctx.here .. "/dt_file.lua"),
          args { url, dest, tostring(size), "plain" }))
        check(dest, "downloadtask")
        return r
      end },
      { key = "curl", warm = warm, run = function()
        local r = ctx.run("", "curl --no-progress-meter -f " .. args { "-o", dest, url })
        check(dest, "curl")
        return r
      end },
      { key = "curl -o /dev/null", warm = warm, run = function()
        local r = ctx.run("", "curl --no-progress-meter -f -w '%{size_download}' " .. args { "-o", "/dev/null", url })
        if tonumber(r.out:match("%d+")) ~= size then error("curl -o /dev/null: got " .. r.out, 0) end
        return r
      end },
      { key = "dd bs=256k", warm = warm, run = function()
        local r = ctx.run("", ("dd if=/dev/zero of=%s bs=256k count=%d status=none"):format(q(dest), chunks))
        local n = B.filesize(dest)
        if n ~= size then error(("dd: %s bytes, expected %d"):format(tostring(n), size), 0) end
        os.remove(dest)
        return r
      end },
    }, ctx.pairs)
  end

  function self.run()
    if ctx.wanted("https") then
      self.R.https1 = w_https(tls.h1, "http1.1")
      self.R.https2 = w_https(tls.h2, "h2")
    end
    if ctx.wanted("h2many") then self.w_h2many() end
    if ctx.wanted("limits") then self.w_limits() end
  end

  ----------------------------------------------------------------------------
  -- The table: one row a client; ratios to curl (the row's `ref`) round by round.

  local function f3(x) return ("%.3f"):format(x) end

  -- "a, b" of the distinct values of field k over the rounds (in first-seen order)
  local function distinct(list, k)
    local seen, t = {}, {}
    for _, r in ipairs(list) do
      local v = tostring(r[k])
      if not seen[v] then seen[v] = true; t[#t + 1] = v end
    end
    return table.concat(t, ", ")
  end

  -- W: runs by key; clients: keys in order; ref: the reference key; target: key with a
  -- target; limit; want: { proto =, conns = } the target client must show in every round.
  local function rows_of(label, W, order, ref, target, limit, want, rows, per_gib)
    for i, key in ipairs(order) do
      local list = W[key]
      local walls = B.field(list, "wall")
      local cpu = B.median(B.field(list, "cpu"))
      local seen = {}
      if list[1].proto then seen[#seen + 1] = "protocol " .. distinct(list, "proto") end
      if list[1].conns then seen[#seen + 1] = "connections a run: " .. distinct(list, "conns") end
      if list[1].srv then seen[#seen + 1] = ("nginx CPU %.2f s"):format(B.median(B.field(list, "srv"))) end
      local ratio, tgt, mark = "", "", ""
      if key ~= ref then
        local r = {}
        for j = 1, #list do r[j] = list[j].wall / W[ref][j].wall end
        ratio = ("%.2f× (%.2f–%.2f)"):format(B.median(r), B.min(r), B.max(r))
        local pr = {}
        for j, x in ipairs(r) do pr[j] = ("%.2f"):format(x) end
        self.details[#self.details + 1] = ("- %s, %s / %s by round: %s"):format(label, key, ref, table.concat(pr, ", "))
        if key == target then
          local okr = B.median(r) <= limit
          tgt = ("≤ %.2f× %s"):format(limit, ref)
          local bad = {}
          if want and want.proto then
            tgt = tgt .. ", " .. want.proto
            for _, x in ipairs(list) do if x.proto ~= want.proto then bad[#bad + 1] = "protocol"; break end end
          end
          if want and want.conns then
            tgt = tgt .. (", %d connection"):format(want.conns)
            for _, x in ipairs(list) do if x.conns ~= want.conns then bad[#bad + 1] = "connections"; break end end
          end
          mark = (okr and #bad == 0) and "PASS" or ("MISS" .. (#bad > 0 and " (" .. table.concat(bad, ", ") .. ")" or ""))
        end
      end
      rows[#rows + 1] = { i == 1 and label or "", key,
        ("%s (%s–%s)"):format(f3(B.median(walls)), f3(B.min(walls)), f3(B.max(walls))),
        f3(cpu), per_gib and ("%.2f"):format(cpu / per_gib) or "",
        ("%.1f"):format(B.median(B.field(list, "rss")) / MiB), table.concat(seen, "; "), ratio, tgt, mark }
    end
  end

  function self.table()
    local rows = {}
    local what = ctx.mib % 1024 == 0 and ("%d GiB"):format(ctx.mib // 1024) or ("%d MiB"):format(ctx.mib)
    local gib = size / GiB
    if self.R.https1 then
      rows_of(("HTTPS %s → file, HTTP/1.1"):format(what), self.R.https1, { "downloadtask", "curl --http1.1" },
        "curl --http1.1", "downloadtask", 0.90, { proto = "http1.1" }, rows, gib)
    end
    if self.R.https2 then
      rows_of(("HTTPS %s → file, HTTP/2"):format(what), self.R.https2, { "downloadtask", "curl --http2" },
        "curl --http2", "downloadtask", 0.90, { proto = "h2" }, rows, gib)
    end
    if self.R.h2many then
      rows_of(("HTTPS h2, %d × 100 KiB → files, %d at a time"):format(MANY, MANY_AT_ONCE), self.R.h2many,
        { "downloadtask", "curl --parallel" }, "curl --parallel", "downloadtask", 0.90, { proto = "h2", conns = 1 },
        rows, nil)
    end
    if self.R.limits then
      rows_of(("plain %s → file, with the limits beside it"):format(what), self.R.limits,
        { "downloadtask", "curl", "curl -o /dev/null", "dd bs=256k" }, "curl", "downloadtask", 0.70, nil, rows, gib)
    end
    local head = { "workload", "client", "wall s, median (min–max)", "user+sys CPU s", "CPU s per GiB",
      "peak RSS MiB", "seen", "ratio to curl, median of rounds (min–max)", "target", "" }
    local lines = { "| " .. table.concat(head, " | ") .. " |", "|" .. ("---|"):rep(#head) }
    for _, r in ipairs(rows) do lines[#lines + 1] = "| " .. table.concat(r, " | ") .. " |" end
    return table.concat(lines, "\n")
  end

  function self.section(tbl, machine_lines)
    local t = {
      "## HTTPS, HTTP/2 and the single-stream limits (issue 13)",
      "",
      ("Written by `lua5.4 bench/run.lua --only https,h2many,limits --https-mib %d --write` or a full"):format(ctx.mib),
      "`make bench` (bench/https.lua). nginx (1 worker) serves one file of random bytes over HTTPS",
      "(a server without h2 for the HTTP/1.1 row, `listen ... ssl http2` for the others; CA and",
      "certificate made with `openssl` at run time; downloadtask gets `caFile`, curl `--cacert`) and",
      "over plain HTTP. Each client runs once a round, alternating the order round by round; ratios",
      "are to the row's curl command of the same round. Every download is checked (size and `cmp`;",
      "for the 1000 files all sizes and 3 compared); \"seen\" is res.profile.protocol (downloadtask),",
      "`%{http_version}` (curl) and the connections nginx's access log shows for each run",
      "(`$connection` of each request). The limit rows are `curl -o /dev/null` (receiving alone) and",
      "`dd if=/dev/zero bs=256k` to a file beside the destinations (writing alone, no fsync).",
      "\"nginx CPU\" is the median user+sys time of the nginx worker during a run (it encrypts",
      "every byte, on one of the 2 cores).",
      "",
      tbl,
      "",
      ("- file: %d MiB (%d bytes); %d timed rounds after a warm-up (%d for the 1000 files)"):format(ctx.mib, size,
        ctx.pairs, ctx.short_pairs),
    }
    for _, l in ipairs(machine_lines) do
      if not l:match("^%- date:") then t[#t + 1] = l end
    end
    t[#t + 1] = "- the machine is shared: 2 cores, with other agents' builds and test suites running during the"
      .. " run, so single rounds vary widely; read the medians and the min–max spread together"
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

-- `text` with its "## HTTPS, HTTP/2 and the single-stream limits" section replaced by
-- `section`, or `section` put before "## Segments and mirrors" or "## OpenResty", or at the end.
function H.splice(text, section)
  local head = "\n## HTTPS, HTTP/2 and the single-stream limits"
  local a = text:find(head, 1, true)
  if a then
    local b = text:find("\n## ", a + 1, true)
    return text:sub(1, a) .. section .. (b and text:sub(b) or "")
  end
  for _, h in ipairs { "\n## Segments and mirrors", "\n## OpenResty\n" } do
    local o = text:find(h, 1, true)
    if o then return text:sub(1, o) .. section .. "\n" .. text:sub(o + 1) end
  end
  return text:gsub("\n*$", "\n\n") .. section
end

return H
