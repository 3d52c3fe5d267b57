-- Options of dt.downloadFile and dt.configure: what is refused at the call,
-- and that every accepted option does what the reference and README say.
local dt = require "downloadtask"
local S = require "spec.support.servers"
local lfs = require "lfs"
local socket = require "socket"
local H = require "spec.support.helpers"

local DEFAULTS, now, settle = H.DEFAULTS, H.now, H.settle

-- Tasks started by the current test; after_each aborts what is left.
local T = H.tracker()
local start = T.start

-- Runs one download to its end. Returns a record with res/err, the order of
-- the callbacks, the task and the elapsed time. Never hangs: 20 s deadline.
local function fetch(opts)
  return T.fetch(opts, { timeout = 20 })
end

local function expect_ok(out, status)
  H.expect_ok(out, status)
end

local function expect_fail(out, errno, reason)
  assert.are.same({ "fail", "complete" }, out.calls)
  assert.are.equal(errno, out.err.errno)
  if reason then
    assert.are.equal("downloadFile:fail " .. reason, out.err.errMsg)
  else
    assert.matches("^downloadFile:fail .", out.err.errMsg)
  end
end

-- The request headers the fault server's /echo saw, from the body file.
-- Returns name -> value (lower-case names) and name -> count.
local function echoed(path)
  local body = assert(S.readfile(path), "no echo body at " .. tostring(path))
  local h, count, first = {}, {}, true
  for line in body:gmatch("([^\n]*)\n") do
    if first then
      first = false                     -- the request line
    else
      local name, value = line:match("^([^:]+): ?(.*)$")
      if name then
        h[name] = value
        count[name] = (count[name] or 0) + 1
      end
    end
  end
  return h, count
end

-- Raises the error of dt.downloadFile(opts) and returns its message.
local function call_error(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "the call was expected to raise an error")
  assert.are.equal("string", type(err))
  return err
end

describe("options", function()
  local ng, f

  setup(function()
    ng, f = S.nginx(), S.fault()
  end)

  before_each(function()
    H.fresh_tempdir()   -- private files of this test land here
  end)

  after_each(T.cleanup)

  describe("bad options raise an error at the call naming the option", function()
    local U = "http://127.0.0.1:1/"   -- never contacted: the call must fail first

    local cases = {
      { "missing url", {}, "url" },
      { "url not a string", { url = 42 }, "url" },
      { "url a table", { url = { "http://x/" } }, "url" },
      { "url with a zero byte", { url = "http://127.0.0.1:1/\0x" }, "url" },
      { "unknown option name", { url = U, bogus = 1 }, "bogus" },
      { "unknown option, wrong case", { url = U, filepath = "/tmp/x" }, "filepath" },
      { "filePath not a string", { url = U, filePath = 5 }, "filePath" },
      { "filePath empty", { url = U, filePath = "" }, "filePath" },
      { "header not a table", { url = U, header = "Accept: x" }, "header" },
      { "header name not a string", { url = U, header = { "x" } }, "header" },
      { "header name with a space", { url = U, header = { ["X Test"] = "v" } }, "header" },
      { "header name with a colon", { url = U, header = { ["X-Test:"] = "v" } }, "header" },
      { "header name empty", { url = U, header = { [""] = "v" } }, "header" },
      { "header value with CR", { url = U, header = { ["X-Test"] = "a\rb" } }, "header" },
      { "header value with LF", { url = U, header = { ["X-Test"] = "a\nInjected: 1" } }, "header" },
      { "header value with a zero byte", { url = U, header = { ["X-Test"] = "a\0b" } }, "header" },
      { "header value a table", { url = U, header = { ["X-Test"] = {} } }, "header" },
      { "header value a boolean", { url = U, header = { ["X-Test"] = true } }, "header" },
      { "timeout a string", { url = U, timeout = "100" }, "timeout" },
      { "timeout negative", { url = U, timeout = -1 }, "timeout" },
      { "timeout not an integer", { url = U, timeout = 1.5 }, "timeout" },
      { "connectTimeout a string", { url = U, connectTimeout = "100" }, "connectTimeout" },
      { "connectTimeout negative", { url = U, connectTimeout = -5 }, "connectTimeout" },
      { "maxRedirects a boolean", { url = U, maxRedirects = true }, "maxRedirects" },
      { "maxRedirects negative", { url = U, maxRedirects = -1 }, "maxRedirects" },
      { "maxRedirects not an integer", { url = U, maxRedirects = 2.5 }, "maxRedirects" },
      { "maxFileSize a string", { url = U, maxFileSize = "1000" }, "maxFileSize" },
      { "maxFileSize negative", { url = U, maxFileSize = -1 }, "maxFileSize" },
      { "insecure not a boolean", { url = U, insecure = 1 }, "insecure" },
      { "insecure a string", { url = U, insecure = "true" }, "insecure" },
      { "success not a function", { url = U, success = 1 }, "success" },
      { "fail not a function", { url = U, fail = "f" }, "fail" },
      { "complete not a function", { url = U, complete = {} }, "complete" },
      { "caFile not a string", { url = U, caFile = 1 }, "caFile" },
      { "proxy not a string", { url = U, proxy = false }, "proxy" },
      -- CR, LF and NUL in any string that becomes part of the request (header injection)
      { "url with CR LF", { url = "http://127.0.0.1:1/\r\nX-Injected: 1" }, "url" },
      { "url with LF", { url = "http://127.0.0.1:1/a\nb" }, "url" },
      { "proxy with CR LF", { url = U, proxy = "http://127.0.0.1:1/\r\nX-Injected: 1" }, "proxy" },
      { "proxy with a zero byte", { url = U, proxy = "http://127.0.0.1:1\0" }, "proxy" },
      { "a mirror with CR LF", { url = U, mirrors = { "http://127.0.0.1:2/\r\nX-Injected: 1" } }, "mirrors" },
      { "etag with LF", { url = U, etag = "\"a\"\nX-Injected: 1" }, "etag" },
      { "url of another scheme", { url = "ftp://127.0.0.1:1/x" }, "url" },
    }
    for _, c in ipairs(cases) do
      local what, opts, name = c[1], c[2], c[3]
      it(what, function()
        local err = call_error(dt.downloadFile, opts)
        assert.matches("'" .. name .. "'", err, 1, true)
        assert.matches("downloadFile", err, 1, true)
        -- nothing was started
        assert.are.equal(0, dt.poll(0))
      end)
    end

    it("options not a table", function()
      local err = call_error(dt.downloadFile, "http://127.0.0.1:1/")
      assert.matches("table expected", err, 1, true)
      err = call_error(dt.downloadFile)
      assert.matches("table expected", err, 1, true)
      assert.are.equal(0, dt.poll(0))
    end)

    it("the message says what is wrong (README wording)", function()
      assert.are.equal("downloadFile: bad option 'timeout' (integer expected, got string)",
        call_error(dt.downloadFile, { url = U, timeout = "1" }))
      assert.are.equal("downloadFile: unknown option 'filepath'",
        call_error(dt.downloadFile, { url = U, filepath = "x" }))
    end)

    it("a bad header does not send a request (no task, the callbacks never run)", function()
      local called = false
      local cb = function() called = true end
      call_error(dt.downloadFile, { url = ng.url("small.txt"), header = { ["X-A"] = "a\r\nX-B: b" },
        success = cb, fail = cb, complete = cb })
      settle(0.3)
      dt.poll(100)
      assert.is_false(called)
    end)
  end)

  describe("configure", function()
    it("raises on an unknown key, and changes nothing then", function()
      local err = call_error(dt.configure, { userAgent = "changed/1", bogus = 1 })
      assert.matches("'bogus'", err, 1, true)
      local out = fetch { url = f.url("/echo") }
      expect_ok(out)
      assert.are.equal(DEFAULTS.userAgent, (echoed(out.res.tempFilePath))["user-agent"])
      os.remove(out.res.tempFilePath)
    end)

    it("raises when not given a table", function()
      call_error(dt.configure, "maxConcurrent=2")
      call_error(dt.configure)
    end)

    local bad = {
      { "maxConcurrent", 0 }, { "maxConcurrent", -3 }, { "maxConcurrent", 1.5 },
      { "maxConcurrent", true }, { "maxConcurrent", {} },
      { "progressInterval", -1 }, { "progressInterval", 0.5 }, { "progressInterval", false },
      { "userAgent", 1 }, { "userAgent", "" }, { "userAgent", {} },
      { "userAgent", "x\r\nAuthorization: Bearer stolen" }, { "userAgent", "x\nX-Injected: 1" },
      { "userAgent", "x\ry" }, { "userAgent", "x\0y" },
      { "tempDir", 7 }, { "tempDir", "" }, { "tempDir", true },
    }
    for _, c in ipairs(bad) do
      it(("raises on %s = %s (%s)"):format(c[1], tostring(c[2]), type(c[2])), function()
        local err = call_error(dt.configure, { [c[1]] = c[2] })
        assert.matches("'" .. c[1] .. "'", err, 1, true)
      end)
    end

    -- Regression (was a bug, fixed): configure converts numeric strings (lua_tointegerx) while
    -- downloadFile refuses them: configure{maxConcurrent = "2"} is accepted.
    -- Repro: lua5.4 -e 'package.cpath="./?.so" local dt=require"downloadtask"
    --   print(pcall(dt.configure, {maxConcurrent="2"}))'   --> true
    it("raises on a numeric string for an integer setting", function()
      local err = call_error(dt.configure, { maxConcurrent = "2" })
      assert.matches("'maxConcurrent'", err, 1, true)
      err = call_error(dt.configure, { progressInterval = "100" })
      assert.matches("'progressInterval'", err, 1, true)
    end)

    it("accepts valid values", function()
      assert.has_no.errors(function()
        dt.configure { maxConcurrent = 3, progressInterval = 50, userAgent = "x/1", tempDir = S.tmpdir() }
        dt.configure {}
        dt.configure { maxConcurrent = 1 }
        dt.configure { progressInterval = 0 }
      end)
    end)

    it("tempDir must name an existing directory: the error names the path, and nothing changes", function()
      local dir = S.tmpdir()
      S.writefile(dir .. "/file", "x")
      for _, bad in ipairs { "/no/such/dir", dir .. "/missing", dir .. "/file" } do
        local err = call_error(dt.configure, { tempDir = bad })
        assert.matches("'tempDir' ('" .. bad .. "' is not a directory", err, 1, true)
      end
      local out = fetch { url = f.url("/bytes?n=10") }
      expect_ok(out)
      assert.is_truthy(S.filesize(out.res.tempFilePath))
      os.remove(out.res.tempFilePath)
    end)

    it("a userAgent with a line break adds no header to the request: it is refused", function()
      call_error(dt.configure, { userAgent = "evil/1\r\nAuthorization: Bearer stolen" })
      local out = fetch { url = f.url("/echo") }
      expect_ok(out)
      local got = echoed(out.res.tempFilePath)
      os.remove(out.res.tempFilePath)
      assert.is_nil(got.authorization)
      assert.are.equal(DEFAULTS.userAgent, got["user-agent"])
    end)

    it("userAgent is sent, by downloads created afterwards", function()
      dt.configure { userAgent = "spec-agent/1.0 (options_spec)" }
      local a = fetch { url = f.url("/echo") }
      expect_ok(a)
      local h, count = echoed(a.res.tempFilePath)
      assert.are.equal("spec-agent/1.0 (options_spec)", h["user-agent"])
      assert.are.equal(1, count["user-agent"])
      os.remove(a.res.tempFilePath)

      -- a task created before a change keeps the old value
      local res1, res2
      start { url = f.url("/echo?first=1"), success = function(r) res1 = r end }
      dt.configure { userAgent = "second-agent/2" }
      start { url = f.url("/echo?second=1"), success = function(r) res2 = r end }
      settle()
      assert.are.equal("spec-agent/1.0 (options_spec)", (echoed(res1.tempFilePath))["user-agent"])
      assert.are.equal("second-agent/2", (echoed(res2.tempFilePath))["user-agent"])
      os.remove(res1.tempFilePath)
      os.remove(res2.tempFilePath)
    end)

    it("the default userAgent is downloadtask/<version>", function()
      local a = fetch { url = f.url("/echo") }
      expect_ok(a)
      assert.are.equal("downloadtask/" .. dt.version, (echoed(a.res.tempFilePath))["user-agent"])
      os.remove(a.res.tempFilePath)
    end)

    it("tempDir holds the private files of downloads created afterwards", function()
      local d1, d2 = S.tmpdir(), S.tmpdir()
      dt.configure { tempDir = d1 }
      local a = fetch { url = ng.url("small.txt") }
      expect_ok(a)
      assert.are.equal(d1 .. "/", a.res.tempFilePath:sub(1, #d1 + 1))
      assert.are.equal(S.SMALL_TXT, S.readfile(a.res.tempFilePath))
      assert.are.same({ (a.res.tempFilePath:match("[^/]+$")) }, S.listdir(d1))

      local r1, r2
      start { url = ng.url("1k.bin"), success = function(r) r1 = r end }
      dt.configure { tempDir = d2 }
      start { url = ng.url("1k.bin"), success = function(r) r2 = r end }
      settle()
      assert.are.equal(d1 .. "/", r1.tempFilePath:sub(1, #d1 + 1))
      assert.are.equal(d2 .. "/", r2.tempFilePath:sub(1, #d2 + 1))
      assert.is_true(S.file_matches_pattern(r2.tempFilePath, 1024))
    end)

    it("a tempDir removed after configure makes such downloads fail with 603300", function()
      local gone = S.tmpdir() .. "/gone"
      assert(lfs.mkdir(gone))
      dt.configure { tempDir = gone }
      assert(lfs.rmdir(gone))
      local out = fetch { url = ng.url("small.txt") }
      expect_fail(out, 603300)
      assert.matches("^downloadFile:fail save file error: ", out.err.errMsg)
    end)

    it("maxConcurrent limits the downloads running at once", function()
      local reset = fetch { url = f.url("/stats/reset") }
      expect_ok(reset)
      dt.configure { maxConcurrent = 2 }
      local done = 0
      for i = 1, 5 do
        start { url = f.url("/slow?ms=150&n=1&i=" .. i), success = function() done = done + 1 end }
      end
      settle()
      assert.are.equal(5, done)
      local stats = fetch { url = f.url("/stats") }
      local body = S.readfile(stats.res.tempFilePath)
      assert.are.equal(2, tonumber(body:match('"max":(%d+)')))
      assert.are.equal(5, tonumber(body:match('"total":(%d+)')))
    end)
  end)

  describe("header", function()
    it("is received by the server, also a numeric and an empty value", function()
      local out = fetch { url = f.url("/echo"), header = {
        ["X-Spec-Test"] = "hello world", ["X-Number"] = 42, ["X-Float"] = 1.5, ["X-Empty"] = "",
        ["Accept"] = "application/x-spec",
      } }
      expect_ok(out)
      local h, count = echoed(out.res.tempFilePath)
      assert.are.equal("hello world", h["x-spec-test"])
      assert.are.equal("42", h["x-number"])
      assert.are.equal("1.5", h["x-float"])
      assert.are.equal("", h["x-empty"])
      assert.are.equal(1, count["x-empty"])
      assert.are.equal("application/x-spec", h["accept"])
      assert.are.equal(1, count["accept"])             -- replaces libcurl's own
      os.remove(out.res.tempFilePath)
    end)

    it("a User-Agent header overrides the configured one", function()
      local out = fetch { url = f.url("/echo"), header = { ["User-Agent"] = "by-header/3" } }
      expect_ok(out)
      local h, count = echoed(out.res.tempFilePath)
      assert.are.equal("by-header/3", h["user-agent"])
      assert.are.equal(1, count["user-agent"])
      os.remove(out.res.tempFilePath)
    end)

    it("no Accept-Encoding is sent (bodies are saved as sent)", function()
      local out = fetch { url = f.url("/echo") }
      expect_ok(out)
      local h = echoed(out.res.tempFilePath)
      assert.is_nil(h["accept-encoding"])
      assert.is_not_nil(h["host"])
      os.remove(out.res.tempFilePath)
    end)
  end)

  describe("timeout", function()
    it("ends a download whose response does not come (hdelay): errno 5, well before 5 s", function()
      local out = fetch { url = f.url("/bytes?n=10&hdelay=5000"), timeout = 300 }
      expect_fail(out, 5, "timeout (timeout: 300 ms)")
      assert.is_true(out.elapsed >= 0.25, "ended too early: " .. out.elapsed)
      assert.is_true(out.elapsed < 2, "took " .. out.elapsed .. " s")
      assert.are.equal("failed", out.task.state)
    end)

    it("ends a download from a server that never answers (/hang)", function()
      local out = fetch { url = f.url("/hang"), timeout = 300 }
      expect_fail(out, 5, "timeout (timeout: 300 ms)")
      assert.is_true(out.elapsed >= 0.25 and out.elapsed < 2, "took " .. out.elapsed .. " s")
    end)

    it("limits the whole download, not only the wait for headers", function()
      local out = fetch { url = f.url("/bytes?n=100000&rate=20000"), timeout = 500 }
      expect_fail(out, 5, "timeout (timeout: 500 ms)")
      assert.is_true(out.elapsed < 2, "took " .. out.elapsed .. " s")
    end)

    it("0 means none", function()
      local out = fetch { url = f.url("/bytes?n=10&hdelay=400"), timeout = 0 }
      expect_ok(out)
      assert.are.equal(10, out.res.dataLength)
      os.remove(out.res.tempFilePath)
    end)

    it("a download that ends in time succeeds", function()
      local out = fetch { url = f.url("/bytes?n=10&hdelay=100"), timeout = 3000 }
      expect_ok(out)
      os.remove(out.res.tempFilePath)
    end)

    it("counts from when the download leaves the queue", function()
      dt.configure { maxConcurrent = 1 }
      local order, second = {}, nil
      local t0 = now()
      start { url = f.url("/bytes?n=10&hdelay=700"), timeout = 5000,
              success = function(r) order[#order + 1] = "first"; os.remove(r.tempFilePath) end,
              fail = function(e) order[#order + 1] = "first failed: " .. e.errMsg end }
      start { url = ng.url("small.txt"), timeout = 400,
              success = function(r) second = r; order[#order + 1] = "second" end,
              fail = function(e) second = e; order[#order + 1] = "second failed: " .. e.errMsg end }
      settle()
      local elapsed = now() - t0
      assert.are.same({ "first", "second" }, order)
      assert.are.equal(200, second.statusCode)
      assert.are.equal(S.SMALL_TXT, S.readfile(second.tempFilePath))
      -- it really waited in the queue longer than its own timeout
      assert.is_true(elapsed > 0.6, "the queue did not hold the second download: " .. elapsed)
      os.remove(second.tempFilePath)
    end)
  end)

  describe("connectTimeout", function()
    it("is accepted (also 0) and a normal download works", function()
      expect_ok(fetch { url = ng.url("small.txt"), connectTimeout = 5000 })
      expect_ok(fetch { url = ng.url("small.txt"), connectTimeout = 0 })
    end)

    -- A listener whose accept queue is full drops SYNs: connecting hangs,
    -- on loopback only.
    it("ends a connect that hangs, with errno 5", function()
      local srv = assert(socket.tcp())
      assert(srv:bind("127.0.0.1", 0))
      assert(srv:listen(0))
      local _, port = srv:getsockname()
      local fillers, full = {}, false
      for _ = 1, 8 do
        local c = socket.tcp()
        c:settimeout(0.2)
        fillers[#fillers + 1] = c
        if not c:connect("127.0.0.1", port) then full = true; break end
      end
      if not full then
        for _, c in ipairs(fillers) do c:close() end
        srv:close()
        print("connectTimeout: skipped, could not fill a listen queue on loopback")
        pending("could not make a connect hang on loopback")
        return
      end
      local url = ("http://127.0.0.1:%d/"):format(port)
      local ct = fetch { url = url, connectTimeout = 300, timeout = 5000 }
      -- control: without connectTimeout it is the whole-download timeout that ends it
      local tt = fetch { url = url, connectTimeout = 0, timeout = 900 }
      for _, c in ipairs(fillers) do c:close() end
      srv:close()
      expect_fail(ct, 5, "timeout (connectTimeout: 300 ms)")
      assert.is_true(ct.elapsed >= 0.25 and ct.elapsed < 0.8, "took " .. ct.elapsed .. " s")
      expect_fail(tt, 5, "timeout (timeout: 900 ms)")
      assert.is_true(tt.elapsed >= 0.85, "took " .. tt.elapsed .. " s")
    end)
  end)

  describe("maxRedirects", function()
    it("2 refuses a third redirect with 600008", function()
      local out = fetch { url = f.url("/redirect/3"), maxRedirects = 2 }
      expect_fail(out, 600008, "too many redirects")
    end)

    it("2 follows two", function()
      local out = fetch { url = f.url("/redirect/2?n=20"), maxRedirects = 2 }
      expect_ok(out)
      assert.are.equal(20, out.res.dataLength)
      assert.is_true(S.file_matches_pattern(out.res.tempFilePath, 20))
      os.remove(out.res.tempFilePath)
    end)

    it("0 follows none: the 302 is the final response", function()
      local dir = S.tmpdir()
      local out = fetch { url = f.url("/redirect/1"), maxRedirects = 0, filePath = dir .. "/r" }
      expect_ok(out, 302)
      assert.are.equal("/redirect/0", out.res.header.location)
      assert.is_nil(out.res.filePath)
      assert.are.equal("redirect\n", S.readfile(out.res.tempFilePath))
      assert.are.same({}, S.listdir(dir))       -- a 3xx body never reaches filePath
      assert.are.equal(0, out.res.profile.redirectStart)
      os.remove(out.res.tempFilePath)
    end)

    it("defaults to 10", function()
      local out = fetch { url = f.url("/redirect/10") }
      expect_ok(out)
      os.remove(out.res.tempFilePath)
      expect_fail(fetch { url = f.url("/redirect/11") }, 600008, "too many redirects")
    end)
  end)

  describe("maxFileSize", function()
    it("fails with 603301 when the announced size is bigger, leaving nothing", function()
      local dir = S.tmpdir()
      local out = fetch { url = ng.url("1m.bin"), filePath = dir .. "/1m.bin", maxFileSize = 1000 }
      expect_fail(out, 603301, "exceed max file size")
      assert.are.same({}, S.listdir(dir))
    end)

    it("fails with 603301 when a body of unknown size grows too big", function()
      local dir = S.tmpdir()
      local out = fetch { url = f.url("/bytes?n=200000&chunked=1&chunk=1000"), filePath = dir .. "/c",
                          maxFileSize = 5000 }
      expect_fail(out, 603301, "exceed max file size")
      assert.are.same({}, S.listdir(dir))
      out = fetch { url = f.url("/bytes?n=200000&nolength=1"), filePath = dir .. "/c", maxFileSize = 5000 }
      expect_fail(out, 603301, "exceed max file size")
      assert.are.same({}, S.listdir(dir))
    end)

    it("a body of exactly maxFileSize succeeds; one byte more fails", function()
      local dir = S.tmpdir()
      local out = fetch { url = ng.url("1k.bin"), filePath = dir .. "/k", maxFileSize = 1024 }
      expect_ok(out)
      assert.are.equal(1024, out.res.dataLength)
      assert.is_true(S.file_matches_pattern(dir .. "/k", 1024))
      expect_fail(fetch { url = ng.url("1k.bin"), filePath = dir .. "/k2", maxFileSize = 1023 },
        603301, "exceed max file size")
      out = fetch { url = f.url("/bytes?n=2048&chunked=1&chunk=100"), filePath = dir .. "/c", maxFileSize = 2048 }
      expect_ok(out)
      assert.is_true(S.file_matches_pattern(dir .. "/c", 2048))
      expect_fail(fetch { url = f.url("/bytes?n=2048&chunked=1&chunk=100"), filePath = dir .. "/c2",
                          maxFileSize = 2047 }, 603301, "exceed max file size")
      assert.are.same({ "c", "k" }, S.listdir(dir))
    end)

    it("0 allows only an empty body", function()
      local dir = S.tmpdir()
      expect_ok(fetch { url = ng.url("empty.bin"), filePath = dir .. "/e", maxFileSize = 0 })
      assert.are.equal(0, S.filesize(dir .. "/e"))
      expect_fail(fetch { url = ng.url("small.txt"), filePath = dir .. "/s", maxFileSize = 0 }, 603301)
    end)
  end)

  describe("other options", function()
    it("insecure and caFile are accepted for http", function()
      expect_ok(fetch { url = ng.url("small.txt"), insecure = true })
      expect_ok(fetch { url = ng.url("small.txt"), insecure = false, caFile = "/nonexistent/ca.pem" })
    end)

    it("proxy sends the request to the proxy", function()
      -- without the proxy this would be "connection refused"; through it, the
      -- fault server routes on the path, so "http://127.0.0.1:1/echo" is its 404
      local out = fetch { url = "http://127.0.0.1:1/echo", proxy = f.url("") }
      expect_ok(out, 404)
      assert.are.equal("not found\n", S.readfile(out.res.tempFilePath))
      os.remove(out.res.tempFilePath)
    end)

    -- Was (issue 22 item 9): "could not resolve proxy: " and nothing after it.
    it("a proxy that cannot be made sense of is named as given", function()
      local out = fetch { url = "http://127.0.0.1:1/x", proxy = "nonsense://::" }
      expect_fail(out, 600001, "could not resolve proxy: nonsense://::")
    end)

    it("the largest integers are accepted for the limits", function()
      local M = math.maxinteger or (2^63 - 1024)   -- 5.1, 5.2, LuaJIT: the largest double below 2^63
      expect_ok(fetch { url = ng.url("small.txt"), timeout = M, connectTimeout = M,
                        maxRedirects = M, maxFileSize = M })
    end)

    it("timeout = 2.0 (an integral float) is accepted", function()
      expect_ok(fetch { url = ng.url("small.txt"), timeout = 2000.0 })
    end)

    it("options from __index (fresh strings each read) are copied before anything frees them", function()
      -- the url below exists only while downloadFile holds it; copying 200 header lines
      -- allocates, and with the collector at its most eager a string not kept on the
      -- stack was freed before the copy (valgrind and ASan saw it)
      local headers = {}
      for i = 1, 200 do headers["X-H" .. i] = ("v"):rep(i) end
      local base = f.url("/echo")
      local opts = setmetatable({ header = headers }, { __index = function(_, k)
        if k == "url" then return base .. "?" .. ("q"):rep(300) end
      end })
      local pause = collectgarbage("setpause", 0)
      local ok, out = pcall(fetch, opts)
      collectgarbage("setpause", pause)
      assert(ok, out)
      expect_ok(out)
      local h = echoed(out.res.tempFilePath)
      assert.are.equal(("v"):rep(200), h["x-h200"])
      assert.are.equal(("v"):rep(1), h["x-h1"])
      os.remove(out.res.tempFilePath)
    end)
  end)
end)
