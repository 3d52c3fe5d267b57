-- The fault server's lies and header oddities (spec/support/faultserver.lua,
-- next to serve_bytes): lie206, lie416, fold, hflood, cookies, hslow,
-- retryafter. Checked with raw luasocket requests only, so these specs say what
-- the server sends whatever the downloadtask module does with it.
-- Runs on Lua 5.1 to 5.4 and LuaJIT.
local socket = require "socket"
local S = require "spec.support.servers"
local P = require "spec.support.pattern"

-- Sends one request and reads the whole response until the server closes.
-- Returns { status=, lines={raw head lines after the status line},
-- headers={lower name = value, repeats joined ", ", folded lines unfolded},
-- list={{name, value}...}, body=, times={arrival time of each head line} }.
local function request(target, extra)
  local f = S.fault()
  local c = assert(socket.tcp())
  c:settimeout(10)
  assert(c:connect("127.0.0.1", f.port))
  local req = "GET " .. target .. " HTTP/1.1\r\nHost: 127.0.0.1\r\n"
  for _, h in ipairs(extra or {}) do req = req .. h .. "\r\n" end
  assert(c:send(req .. "\r\n"))
  local r = { lines = {}, headers = {}, list = {}, times = {} }
  local line = assert(c:receive("*l"))
  r.times[1] = socket.gettime()
  r.status = tonumber(line:match("^HTTP/1%.1 (%d%d%d) "))
  while true do
    line = assert(c:receive("*l"))
    r.times[#r.times + 1] = socket.gettime()
    if line == "" then break end
    r.lines[#r.lines + 1] = line
    if line:match("^[ \t]") then        -- obsolete line folding: joins the previous value
      local last = r.list[#r.list]
      last[2] = last[2] .. " " .. line:match("^[ \t]*(.-)[ \t]*$")
    else
      local name, value = line:match("^([^:]+):[ \t]*(.-)[ \t]*$")
      r.list[#r.list + 1] = { name:lower(), value }
    end
  end
  for _, h in ipairs(r.list) do
    r.headers[h[1]] = r.headers[h[1]] and r.headers[h[1]] .. ", " .. h[2] or h[2]
  end
  local body, err, partial = c:receive("*a")
  r.body = body or partial
  c:close()
  return r
end

describe("fault server: lying ranges", function()
  it("lie206=start answers a Range request with the whole body from 0", function()
    local r = request("/bytes?n=1000&lie206=start", { "Range: bytes=400-" })
    assert.are.equal(206, r.status)
    assert.are.equal("bytes 0-999/1000", r.headers["content-range"])
    assert.are.equal("1000", r.headers["content-length"])
    assert.are.equal(P.pattern(0, 1000), r.body)
  end)

  it("lie206=start leaves a request without Range alone", function()
    local r = request("/bytes?n=1000&lie206=start")
    assert.are.equal(200, r.status)
    assert.is_nil(r.headers["content-range"])
    assert.are.equal(P.pattern(0, 1000), r.body)
  end)

  it("lie206=none sends the requested bytes without Content-Range", function()
    local r = request("/bytes?n=1000&lie206=none", { "Range: bytes=400-" })
    assert.are.equal(206, r.status)
    assert.is_nil(r.headers["content-range"])
    assert.are.equal("600", r.headers["content-length"])
    assert.are.equal(P.pattern(400, 600), r.body)
  end)

  it("lie416=N answers a Range request with 416 and bytes */N, no body", function()
    local r = request("/bytes?n=1000&lie416=700", { "Range: bytes=700-" })
    assert.are.equal(416, r.status)
    assert.are.equal("bytes */700", r.headers["content-range"])
    assert.are.equal("", r.body)
    -- without a Range header: the ordinary body
    r = request("/bytes?n=1000&lie416=700")
    assert.are.equal(200, r.status)
    assert.are.equal(P.pattern(0, 1000), r.body)
  end)

  it("the lies stay on /flaky's later requests; the faults go", function()
    local key = "ext" .. math.random(1e9)
    local q = "/flaky?key=" .. key .. "&fails=1&n=1000&nolength=1&dropafter=300&lie206=start"
    local r = request(q)
    assert.are.equal(200, r.status)
    assert.are.equal(P.pattern(0, 300), r.body)
    r = request(q, { "Range: bytes=300-" })
    assert.are.equal(206, r.status)
    assert.are.equal("bytes 0-999/1000", r.headers["content-range"])
    assert.are.equal(P.pattern(0, 1000), r.body)
    r = request("/flaky?key=" .. key .. "b&fails=1&n=10&status=503&retryafter=2&lie416=5",
      { "Range: bytes=5-" })
    assert.are.equal(416, r.status)
    assert.are.equal("bytes */5", r.headers["content-range"])
  end)

  it("rejects an unknown lie206 value", function()
    assert.are.equal(400, request("/bytes?n=10&lie206=bogus", { "Range: bytes=1-" }).status)
  end)
end)

describe("fault server: header oddities", function()
  it("fold=1 sends a folded X-Folded header", function()
    local r = request("/bytes?n=10&fold=1")
    local i
    for k, line in ipairs(r.lines) do if line == "X-Folded: first" then i = k end end
    assert.is_truthy(i)
    assert.are.equal("  second", r.lines[i + 1])
    assert.are.equal("first second", r.headers["x-folded"])
    assert.are.equal(P.pattern(0, 10), r.body)
  end)

  it("hflood=N adds N headers X-Flood-i: vi", function()
    local r = request("/bytes?n=10&hflood=1500")
    local seen = 0
    for _, h in ipairs(r.list) do
      local i = h[1]:match("^x%-flood%-(%d+)$")
      if i then
        seen = seen + 1
        assert.are.equal("v" .. i, h[2])
        assert.are.equal(seen, tonumber(i))
      end
    end
    assert.are.equal(1500, seen)
    assert.are.equal(P.pattern(0, 10), r.body)
  end)

  it("cookies=N sends N Set-Cookie headers in order", function()
    local r = request("/bytes?n=10&cookies=5")
    local got = {}
    for _, h in ipairs(r.list) do
      if h[1] == "set-cookie" then got[#got + 1] = h[2] end
    end
    assert.are.same({ "c1=1", "c2=2", "c3=3", "c4=4", "c5=5" }, got)
  end)

  it("retryafter=S adds Retry-After", function()
    local r = request("/bytes?n=10&status=503&retryafter=7")
    assert.are.equal(503, r.status)
    assert.are.equal("7", r.headers["retry-after"])
  end)

  it("hslow=MS spaces the head's lines MS apart", function()
    local r = request("/bytes?n=10&hslow=80")
    -- status, Date, Server, Content-Type, Content-Length, Connection, blank line
    assert.are.equal(6, #r.times - 1)
    for i = 2, #r.times - 1 do
      assert.is_true(r.times[i] - r.times[i - 1] >= 0.06,
        ("line %d came %.3f s after the one before"):format(i, r.times[i] - r.times[i - 1]))
    end
    assert.are.equal(P.pattern(0, 10), r.body)
    -- and without it the head comes at once
    r = request("/bytes?n=10")
    assert.is_true(r.times[#r.times] - r.times[1] < 0.05)
  end)
end)
