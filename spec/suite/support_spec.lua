-- Checks the test-server support code (spec/support/) against the real
-- servers, with luasocket and the curl command only: it must not depend on
-- the downloadtask module it exists to test.
local socket = require "socket"
local S = require "spec.support.servers"

local MiB = 1024 * 1024

-- A minimal HTTP/1.1 exchange on a fresh connection (Connection: close).
-- Returns { status=, headers={name_lower=value,...}, list={{name,value},...}, body= }.
local function read_response(c, head_only)
  local line = assert(c:receive("*l"))
  local status = tonumber(line:match("^HTTP/1%.%d (%d%d%d)"))
  local r = { status = status, headers = {}, list = {}, status_line = line }
  while true do
    line = assert(c:receive("*l"))
    if line == "" then break end
    local name, value = line:match("^([^:]+):%s*(.-)%s*$")
    name = name:lower()
    r.list[#r.list + 1] = { name, value }
    r.headers[name] = r.headers[name] and r.headers[name] .. ", " .. value or value
  end
  if head_only then return r end
  if r.headers["transfer-encoding"] == "chunked" then
    local parts = {}
    while true do
      local size = tonumber(assert(c:receive("*l")):match("^%x+"), 16)
      if size == 0 then assert(c:receive("*l")); break end
      parts[#parts + 1] = assert(c:receive(size))
      assert(c:receive("*l"))
    end
    r.body = table.concat(parts)
  else
    local body, err, partial = c:receive("*a")
    r.body, r.err = body or partial, err
  end
  return r
end

local function request(port, target, opts)
  opts = opts or {}
  local c = assert(socket.connect("127.0.0.1", port))
  c:settimeout(opts.timeout or 10)
  local t = { (opts.method or "GET") .. " " .. target .. " HTTP/1.1", "Host: 127.0.0.1" }
  for _, h in ipairs(opts.headers or {}) do t[#t + 1] = h end
  t[#t + 1] = "Connection: close"
  assert(c:send(table.concat(t, "\r\n") .. "\r\n\r\n"))
  return c
end

local function http(port, target, opts)
  local c = request(port, target, opts)
  local r = read_response(c, opts and opts.method == "HEAD")
  c:close()
  return r
end

-- Shell single-quoting (URLs carry "&").
local function sq(s) return "'" .. s:gsub("'", [['\'']]) .. "'" end

-- curl, to 127.0.0.1 only. Returns curl's exit code and what -w printed.
local function curl(args)
  local p = assert(io.popen("curl -s " .. args .. " 2>/dev/null; echo \" rc=$?\""))
  local out = p:read("*a")
  p:close()
  local text, rc = out:match("^(.-) rc=(%d+)%s*$")
  return tonumber(rc), text
end

local function alive(pid)
  local stat = S.readfile("/proc/" .. pid .. "/stat")
  return stat ~= nil and not stat:match("^%d+ %(.*%) Z")
end

describe("support: pattern", function()
  it("is deterministic, sliceable and not short-periodic", function()
    local a = S.pattern(0, 3 * 65536 + 100)
    assert.are.equal(3 * 65536 + 100, #a)
    assert.are.equal(a, S.pattern(0, #a))
    for _, o in ipairs { 1, 3, 4, 5, 255, 65535, 65536, 65539, 131072 } do
      assert.are.equal(a:sub(o + 1, o + 1000), S.pattern(o, 1000))
    end
    assert.are_not.equal(a:sub(1, 1024), a:sub(257, 1280))
    assert.are_not.equal(a:sub(1, 65536), a:sub(65537, 131072))   -- block stamps
    assert.is_nil(a:find("^%z+$"))
    assert.are.equal("", S.pattern(12345, 0))
  end)
end)

describe("support: files", function()
  it("gives fresh directories and reads/writes files", function()
    local d1, d2 = S.tmpdir(), S.tmpdir()
    assert.are_not.equal(d1, d2)
    assert.are.same({}, S.listdir(d1))
    S.writefile(d1 .. "/b", "xyz")
    S.writefile(d1 .. "/a", S.pattern(0, 5000))
    assert.are.same({ "a", "b" }, S.listdir(d1))
    assert.are.equal("xyz", S.readfile(d1 .. "/b"))
    assert.are.equal(3, S.filesize(d1 .. "/b"))
    assert.is_nil(S.readfile(d1 .. "/missing"))
    assert.is_nil(S.filesize(d1 .. "/missing"))
    assert.is_true(S.file_matches_pattern(d1 .. "/a", 5000))
    assert.is_false(S.file_matches_pattern(d1 .. "/a", 4999))
    assert.is_false(S.file_matches_pattern(d1 .. "/b", 3))
  end)
end)

describe("support: ports", function()
  -- Was: free_port() could hand out one port twice (the kernel reuses a closed port). Two
  -- server blocks of S.nginx_tls() on one port made nginx serve both with the first
  -- block's certificate: the h2 specs failed with an expired one, once in a few hundred runs.
  it("free_port never hands out the same port twice", function()
    local seen = {}
    for i = 1, 3000 do
      local p = S.free_port()
      assert(not seen[p], ("port %d handed out again at call %d"):format(p, i))
      seen[p] = true
    end
  end)
end)

describe("support: nginx", function()
  local ng
  setup(function() ng = S.nginx() end)

  it("is started once and cached", function()
    assert.are.equal(ng, S.nginx())
    assert.are.equal("http://127.0.0.1:" .. ng.port .. "/small.txt", ng.url("small.txt"))
    assert.are.equal(ng.url("small.txt"), ng.url("/small.txt"))
  end)

  it("serves the generated files", function()
    local r = http(ng.port, "/small.txt")
    assert.are.equal(200, r.status)
    assert.are.equal("hello downloadtask\n", r.body)
    assert.are.equal("19", r.headers["content-length"])
    r = http(ng.port, "/empty.bin")
    assert.are.equal(200, r.status)
    assert.are.equal("", r.body)
    assert.are.equal(S.pattern(0, 1024), http(ng.port, "/1k.bin").body)
    assert.is_true(S.file_matches_pattern(ng.root .. "/1m.bin", MiB))
    assert.is_true(S.file_matches_pattern(ng.root .. "/100m.bin", 100 * MiB))
  end)

  it("reports the 100 MiB length and answers ranges with 206", function()
    local r = http(ng.port, "/100m.bin", { method = "HEAD" })
    assert.are.equal(200, r.status)
    assert.are.equal("104857600", r.headers["content-length"])
    r = http(ng.port, "/100m.bin", { headers = { "Range: bytes=104857500-" } })
    assert.are.equal(206, r.status)
    assert.are.equal("bytes 104857500-104857599/104857600", r.headers["content-range"])
    assert.are.equal(S.pattern(104857500, 100), r.body)
  end)

  it("answers 404 for a missing file", function()
    assert.are.equal(404, http(ng.port, "/nope.bin").status)
  end)

  it("delivers 100m.bin intact to curl", function()
    local file = S.tmpdir() .. "/100m.bin"
    local rc, code = curl(("-o %s -w '%%{http_code}' %s"):format(sq(file), sq(ng.url("100m.bin"))))
    assert.are.equal(0, rc)
    assert.are.equal("200", code)
    assert.is_true(S.file_matches_pattern(file, 100 * MiB))
  end)
end)

describe("support: fault server", function()
  local f
  setup(function() f = S.fault() end)

  it("is started once and cached", function()
    assert.are.equal(f, S.fault())
    assert.are.equal("http://127.0.0.1:" .. f.port .. "/bytes?n=1", f.url("/bytes?n=1"))
  end)

  it("/bytes sends the pattern with a Content-Length", function()
    local r = http(f.port, "/bytes?n=1000")
    assert.are.equal(200, r.status)
    assert.are.equal("1000", r.headers["content-length"])
    assert.are.equal("application/octet-stream", r.headers["content-type"])
    assert.are.equal("close", r.headers["connection"])
    assert.are.equal(S.pattern(0, 1000), r.body)
  end)

  it("/bytes?nolength=1 has no Content-Length and ends with the connection", function()
    local r = http(f.port, "/bytes?n=10&nolength=1")
    assert.are.equal(200, r.status)
    assert.is_nil(r.headers["content-length"])
    assert.are.equal(S.pattern(0, 10), r.body)
  end)

  it("/bytes?chunked=1 is well-formed chunked encoding", function()
    local r = http(f.port, "/bytes?n=100000&chunked=1&chunk=30000")
    assert.are.equal("chunked", r.headers["transfer-encoding"])
    assert.is_nil(r.headers["content-length"])
    assert.are.equal(S.pattern(0, 100000), r.body)
  end)

  it("/bytes faults show in curl's exit codes", function()
    local function rc_of(q, opt) return (curl("-o /dev/null " .. (opt or "") .. " " .. sq(f.url(q)))) end
    assert.are.equal(0, rc_of("/bytes?n=5000000"))
    assert.are.equal(18, rc_of("/bytes?n=100000&dropafter=500"))         -- partial file
    assert.are.equal(56, rc_of("/bytes?n=100000&dropafter=500&reset=1")) -- reset
    assert.are.equal(18, rc_of("/bytes?n=1000&cl=2000"))
    assert.are.equal(56, rc_of("/bytes?n=100000&chunked=1&badchunk=1"))
    assert.are_not.equal(0, rc_of("/bytes?n=100000&chunked=1&truncchunk=1"))
    assert.are.equal(52, rc_of("/close"))                                  -- empty reply
    assert.are_not.equal(0, rc_of("/garbage"))
    assert.are.equal(47, rc_of("/loop", "-L"))                                -- too many redirects
  end)

  it("/bytes paces: stall, delay, rate, hdelay", function()
    local function time_of(q)
      local t = socket.gettime()
      local r = http(f.port, q)
      assert.are.equal(S.pattern(0, #r.body), r.body)
      return socket.gettime() - t, #r.body
    end
    local t, n = time_of("/bytes?n=1000&stallafter=500&stall=300")
    assert.are.equal(1000, n)
    assert.is_true(t >= 0.3 and t < 1.5, "stall took " .. t)
    t = time_of("/bytes?n=10&chunk=2&delay=50")          -- 4 pauses between 5 writes
    assert.is_true(t >= 0.2 and t < 1.5, "delay took " .. t)
    t = time_of("/bytes?n=30000&rate=100000")
    assert.is_true(t >= 0.25 and t < 1.5, "rate took " .. t)
    t = time_of("/bytes?n=10&hdelay=200")
    assert.is_true(t >= 0.2 and t < 1.5, "hdelay took " .. t)
  end)

  it("/bytes extras: status, etag, ranges, conditional 304, hdr", function()
    local r = http(f.port, "/bytes?n=5&status=203&etag=%22v1%22&hdr=Retry-After:%207")
    assert.are.equal(203, r.status)
    assert.are.equal('"v1"', r.headers["etag"])
    assert.are.equal("7", r.headers["retry-after"])
    r = http(f.port, "/bytes?n=100&range=1", { headers = { "Range: bytes=10-" } })
    assert.are.equal(206, r.status)
    assert.are.equal("bytes 10-99/100", r.headers["content-range"])
    assert.are.equal(S.pattern(10, 90), r.body)
    r = http(f.port, "/bytes?n=100&range=1", { headers = { "Range: bytes=100-" } })
    assert.are.equal(416, r.status)
    r = http(f.port, "/bytes?n=100&etag=%22v1%22", { headers = { 'If-None-Match: "v1"' } })
    assert.are.equal(304, r.status)
    assert.are.equal("", r.body)
  end)

  it("/status/C answers with that status", function()
    local r = http(f.port, "/status/404?n=10")
    assert.are.equal(404, r.status)
    assert.are.equal("10", r.headers["content-length"])
    assert.are.equal(S.pattern(0, 10), r.body)
    r = http(f.port, "/status/503")
    assert.are.equal(503, r.status)
    assert.are.equal("status 503\n", r.body)
  end)

  it("/redirect/N counts down, keeping the query", function()
    local r = http(f.port, "/redirect/2?n=5")
    assert.are.equal(302, r.status)
    assert.are.equal("/redirect/1?n=5", r.headers["location"])
    r = http(f.port, "/redirect/1?n=5&code=307")
    assert.are.equal(307, r.status)
    assert.are.equal("/redirect/0?n=5&code=307", r.headers["location"])
    r = http(f.port, "/redirect/0?n=5")
    assert.are.equal(200, r.status)
    assert.are.equal(S.pattern(0, 5), r.body)
    assert.are.equal(16, #http(f.port, "/redirect/0").body)
    local rc, code = curl("-L -o /dev/null -w '%{http_code} %{num_redirects}' " .. sq(f.url("/redirect/3")))
    assert.are.equal(0, rc)
    assert.are.equal("200 3", code)
  end)

  it("/redirect-to and /loop", function()
    local r = http(f.port, "/redirect-to?url=ftp%3A%2F%2F127.0.0.1%2Fx%3Fa%3D1")
    assert.are.equal(302, r.status)
    assert.are.equal("ftp://127.0.0.1/x?a=1", r.headers["location"])
    r = http(f.port, "/loop")
    assert.are.equal(302, r.status)
    assert.are.equal("/loop", r.headers["location"])
  end)

  it("/echo returns the request line and headers", function()
    local r = http(f.port, "/echo?x=1", { headers = { "X-Custom-Thing: Hello World" } })
    assert.are.equal(200, r.status)
    assert.are.equal("text/plain", r.headers["content-type"])
    assert.are.equal("GET /echo?x=1 HTTP/1.1\nhost: 127.0.0.1\n"
      .. "x-custom-thing: Hello World\nconnection: close\n", r.body)
  end)

  it("/headers, /dup and /bigheader", function()
    local r = http(f.port, "/headers?n=3")
    assert.are.equal("v-1", r.headers["x-h-1"])
    assert.are.equal("v-3", r.headers["x-h-3"])
    assert.are.equal("ok", r.body)
    r = http(f.port, "/dup")
    assert.are.equal("a, b", r.headers["x-dup"])
    assert.are.equal("a=1, b=2", r.headers["set-cookie"])
    local names = {}
    for _, h in ipairs(r.list) do names[#names + 1] = h[1] end
    assert.is_truthy(table.concat(names, " "):find("x-mixed-case", 1, true))
    local c = request(f.port, "/dup")
    assert.is_truthy(c:receive("*a"):find("\r\nX-Mixed-Case: Yes\r\n", 1, true))
    c:close()
    r = http(f.port, "/bigheader?size=100000")
    assert.are.equal(100000, #r.headers["x-big"])
  end)

  it("/hang does not answer", function()
    local c = request(f.port, "/hang")
    c:settimeout(0.3)
    local t = socket.gettime()
    local data, err, partial = c:receive(1)
    assert.is_nil(data)
    assert.are.equal("timeout", err)
    assert.are.equal("", partial)
    assert.is_true(socket.gettime() - t >= 0.29)
    c:close()
  end)

  it("/stats counts concurrent /slow requests", function()
    assert.are.equal("ok", http(f.port, "/stats/reset").body)
    local conns = {}
    for i = 1, 5 do conns[i] = request(f.port, "/slow?ms=400&n=100") end
    socket.sleep(0.1)
    local r = http(f.port, "/stats")
    assert.are.equal("application/json", r.headers["content-type"])
    assert.are.equal('{"active":5,"max":5,"total":5}', r.body)
    for i = 1, 5 do
      local resp = read_response(conns[i])
      conns[i]:close()
      assert.are.equal(200, resp.status)
      assert.are.equal(S.pattern(0, 100), resp.body)
    end
    assert.are.equal('{"active":0,"max":5,"total":5}', http(f.port, "/stats").body)
  end)

  it("serves 150 concurrent connections", function()
    http(f.port, "/stats/reset")
    local conns = {}
    for i = 1, 150 do conns[i] = request(f.port, "/slow?ms=300&n=" .. i * 100) end
    for i = 1, 150 do
      local resp = read_response(conns[i])
      conns[i]:close()
      assert.are.equal(S.pattern(0, i * 100), resp.body)
    end
    assert.are.equal('{"active":0,"max":150,"total":150}', http(f.port, "/stats").body)
  end)

  it("/flaky fails F times, then serves cleanly", function()
    http(f.port, "/stats/reset")
    local q = "/flaky?key=k1&fails=2&status=503&n=50"
    assert.are.equal(503, http(f.port, q).status)
    assert.are.equal(503, http(f.port, q).status)
    local r = http(f.port, q)
    assert.are.equal(200, r.status)
    assert.are.equal(S.pattern(0, 50), r.body)
    assert.are.equal('{"active":0,"max":0,"total":0,"hits":3,"ranges":0}', http(f.port, "/stats?key=k1").body)
  end)

  it("answers 431 to an oversized request line or head", function()
    local r = http(f.port, "/bytes?pad=" .. ("a"):rep(70000))
    assert.are.equal(431, r.status)
    r = http(f.port, "/bytes", { headers = { "X-Pad: " .. ("a"):rep(1100000) } })
    assert.are.equal(431, r.status)
    assert.are.equal(404, http(f.port, "/no/such/thing").status)
  end)

  it("streams 100 MiB to curl intact", function()
    local file = S.tmpdir() .. "/big"
    local t = socket.gettime()
    local rc = curl(("-o %s %s"):format(sq(file), sq(f.url("/bytes?n=104857600"))))
    t = socket.gettime() - t
    assert.are.equal(0, rc)
    assert.is_true(S.file_matches_pattern(file, 100 * MiB))
    assert.is_true(t < 10, "100 MiB took " .. t .. " s")
  end)

  it("survives clients that vanish mid-body", function()
    for _ = 1, 5 do
      local c = request(f.port, "/bytes?n=50000000")
      assert(c:receive(1000))
      c:close()
    end
    assert.are.equal(S.pattern(0, 10), http(f.port, "/bytes?n=10").body)
  end)
end)

describe("support: cleanup", function()
  -- Runs spec/support/cleanup_fixture.lua in a nested busted (through
  -- run-specs.sh when `wrapped`) and checks its servers and run dir are gone.
  local function nested(mode, wrapped)
    local out = S.tmpdir() .. "/fixture.out"
    local runner = wrapped and "spec/support/run-specs.sh" or "lua5.4 /usr/bin/busted"
    local ok, _, code = os.execute(("DT_FIXTURE_MODE=%s DT_FIXTURE_OUT=%s %s -o TAP "
      .. "spec/support/cleanup_fixture.lua >/dev/null 2>&1"):format(mode, out, runner))
    if type(ok) == "number" then         -- 5.1 and LuaJIT: the wait status
      code = math.floor(ok / 256)
      ok = code == 0 or nil
    end
    local ngpid, fpid, dir = (S.readfile(out) or ""):match("^(%d+)\n(%d+)\n([^\n]+)\n$")
    assert.is_truthy(ngpid, "the fixture did not start the servers")
    assert.is_false(alive(ngpid), "nginx survived")
    assert.is_false(alive(fpid), "the fault server survived")
    assert.is_nil(S.filesize(dir), "the run dir survived")
    return ok, code
  end

  it("after a passing run", function()
    assert.are.same({ true, 0 }, { nested("pass") })
  end)
  it("after a failing run", function()
    assert.are.same({ nil, 1 }, { nested("fail") })
  end)
  it("after a spec error", function()
    assert.are.same({ nil, 1 }, { nested("error") })
  end)
  it("after os.exit without closing the state, through run-specs.sh", function()
    assert.are.same({ nil, 3 }, { nested("exit", true) })
  end)
end)
