-- The fault matrix of issue 3, the cases the other specs do not cover yet
-- (events_spec: listener errors, abort everywhere, coroutine.yield; files_spec
-- and results_spec: bodies cut short, resets, Content-Length too large,
-- timeouts, /loop, file:// redirects, missing directories; options_spec:
-- maxRedirects, maxFileSize bounds; lifecycle_spec: closing the state).
--
-- Every case here checks the same four things: exactly one terminal event
-- (success or fail, then complete, then nothing for a while), the destination
-- untouched unless the download succeeded with a 2xx, no temporary file left
-- beside it or in tempDir, and the module still usable afterwards.
-- TLS is in tls_spec.lua. Only 127.0.0.1 and localhost are ever contacted.
local dt = require "downloadtask"
local S = require "spec.support.servers"
local H = require "spec.support.helpers"

local ROOT, OLD, now, quote, sh = H.ROOT, H.OLD, H.now, H.quote, H.sh

local function count_keys(t)
  local n = 0
  for _ in pairs(t) do n = n + 1 end
  return n
end

------------------------------------------------------------------------------
-- Helpers.

local ng, f, tmp
local T = H.tracker()

-- Runs one download to its end, then polls 150 ms more so that a second
-- terminal event would be seen. out.calls lists success/fail/complete in order.
local function fetch(opts)
  return T.fetch(opts, { quiet = 0.15, listen = true })
end

-- A small download works: the module is still usable. (To a filePath of its
-- own: some cases leave tempDir pointing at a full or read-only file system.)
local function expect_usable()
  H.expect_usable(200)
end

local function expect_one_terminal(out, kind)
  assert.are.same({ kind, "complete" }, out.calls,
    "terminal events: " .. table.concat(out.calls, ", ")
      .. (out.err and (" (" .. out.err.errMsg .. ")") or ""))
  assert.is_true(rawequal(out.complete, kind == "success" and out.res or out.err))
end

-- One case of the matrix against a destination that already holds OLD.
--   expect.errno [, expect.reason (Lua pattern on the part after "downloadFile:fail ")]
--   or expect.status [, expect.check(path_of_body)]
-- Returns out; the case's directory is out.dir.
local function case(opts, expect)
  local out, dir, dest = H.fetch_over_old(fetch, opts)
  out.dir = dir
  if expect.errno then
    expect_one_terminal(out, "fail")
    assert.are.equal(expect.errno, out.err.errno, out.err.errMsg)
    if expect.reason then
      assert.matches(expect.reason, out.err.errMsg:sub(#"downloadFile:fail " + 1))
    end
    assert.are.equal("failed", out.task.state)
    assert.are.equal(OLD, S.readfile(dest))
  else
    expect_one_terminal(out, "success")
    assert.are.equal(expect.status, out.res.statusCode)
    assert.are.equal("done", out.task.state)
    if math.floor(expect.status / 100) == 2 then
      assert.are.equal(dest, out.res.filePath)
      assert.is_nil(out.res.tempFilePath)
      if expect.check then expect.check(dest) end
    else
      assert.is_nil(out.res.filePath)
      assert.are.equal(OLD, S.readfile(dest))
      assert.are.equal(tmp, out.res.tempFilePath:match("^(.*)/[^/]+$"))
      if expect.check then expect.check(out.res.tempFilePath) end
      assert(os.remove(out.res.tempFilePath))
    end
  end
  assert.are.same({ "dest.bin" }, S.listdir(dir))   -- no .part left beside it
  assert.are.same({}, S.listdir(tmp))               -- nor a private file in tempDir
  expect_usable()
  return out
end

local function pattern_file(n)
  return function(path)
    assert.is_true(S.file_matches_pattern(path, n), ("%s: not the first %d pattern bytes (size %s)")
      :format(path, n, tostring(S.filesize(path))))
  end
end

-- Mounts a tmpfs on a new directory; returns it, or nil when not permitted.
-- The caller unmounts it with finally().
local function tmpfs(options)
  local mnt = S.tmpdir() .. "/mnt"
  if not H.mount_tmpfs(mnt, options) then
    return nil
  end
  finally(function()
    dt.configure { tempDir = tmp }
    sh(("umount %s 2>/dev/null"):format(quote(mnt)))
  end)
  return mnt
end

-- Fills a tmpfs: writes until the file system says no.
local function fill(mnt)
  local fh = assert(io.open(mnt .. "/filler", "wb"))
  local chunk = ("f"):rep(4096)
  for _ = 1, 100000 do
    if not fh:write(chunk) or not fh:flush() then break end
  end
  fh:close()
end

------------------------------------------------------------------------------

describe("fault matrix", function()
  setup(function() ng, f = S.nginx(), S.fault() end)
  before_each(function() tmp = H.fresh_tempdir() end)
  after_each(T.cleanup)

  ----------------------------------------------------------------------------
  describe("bodies cut short or mis-framed", function()
    it("connection closed mid-body (chunked): 600000", function()
      case({ url = f.url("/bytes?n=300000&chunked=1&chunk=10000&dropafter=100000") }, { errno = 600000 })
    end)

    it("connection reset mid-body (chunked): 600001 connection reset", function()
      case({ url = f.url("/bytes?n=300000&chunked=1&chunk=10000&dropafter=100000&reset=1") },
        { errno = 600001, reason = "^connection reset$" })
    end)

    it("connection reset mid-body (no Content-Length): 600001 connection reset", function()
      case({ url = f.url("/bytes?n=300000&nolength=1&dropafter=100000&reset=1") },
        { errno = 600001, reason = "^connection reset$" })
    end)

    it("Content-Length smaller than the body: exactly the announced bytes, success", function()
      local out = case({ url = f.url("/bytes?n=100000&cl=50000") },
        { status = 200, check = pattern_file(50000) })
      assert.are.equal(50000, out.res.dataLength)
      local last = out.progress[#out.progress]
      assert.are.same({ 100, 50000, 50000 },
        { last.progress, last.totalBytesWritten, last.totalBytesExpectedToWrite })
    end)

    it("malformed chunked body (a chunk size that is not hex): 600000", function()
      case({ url = f.url("/bytes?n=100000&chunked=1&chunk=10000&badchunk=1") }, { errno = 600000 })
    end)

    it("truncated chunked body (the last chunk cut, no terminating chunk): 600000", function()
      case({ url = f.url("/bytes?n=100000&chunked=1&chunk=10000&truncchunk=1") }, { errno = 600000 })
    end)
  end)

  ----------------------------------------------------------------------------
  describe("slow and silent servers", function()
    it("a 1-byte-per-second trickle is cut by stallTimeout (errno 5)", function()
      local out = case({ url = f.url("/bytes?n=100&rate=1"), stallTimeout = 500 },
        { errno = 5, reason = "^timeout %(stallTimeout: 500 ms%)$" })
      assert.are.equal(1, #out.headers)            -- the body had begun
      assert.is_true(out.elapsed < 3, ("took %.2f s"):format(out.elapsed))
    end)

    it("a server that accepts and never answers: timeout ends it, and abort does too", function()
      local out = case({ url = f.url("/hang"), timeout = 300 }, { errno = 5, reason = "^timeout %(timeout: 300 ms%)$" })
      assert.is_true(out.elapsed < 3, ("took %.2f s"):format(out.elapsed))

      local dir = S.tmpdir()
      S.writefile(dir .. "/dest.bin", OLD)
      local calls, err = {}, nil
      local t = dt.downloadFile {
        url = f.url("/hang"), filePath = dir .. "/dest.bin",
        fail = function(e) err = e; calls[#calls + 1] = "fail" end,
        success = function() calls[#calls + 1] = "success" end,
        complete = function() calls[#calls + 1] = "complete" end,
      }
      T.track(t)
      local deadline = now() + 0.3
      while now() < deadline do dt.poll(10) end
      assert.are.equal("running", t.state)
      t:abort()
      t:abort()
      deadline = now() + 5
      while #calls < 2 and now() < deadline do dt.poll(10) end
      deadline = now() + 0.15
      while now() < deadline do dt.poll(10) end
      assert.are.same({ "fail", "complete" }, calls)
      assert.are.equal("downloadFile:fail abort", err.errMsg)
      assert.are.equal(600003, err.errno)
      assert.are.same({ "dest.bin" }, S.listdir(dir))
      assert.are.equal(OLD, S.readfile(dir .. "/dest.bin"))
      assert.are.same({}, S.listdir(tmp))
      expect_usable()
    end)

    it("an endless body (no Content-Length, and chunked) is cut by maxFileSize at once", function()
      for _, framing in ipairs { "nolength=1", "chunked=1" } do
        local out = case({ url = f.url("/bytes?n=1000000000000&" .. framing), maxFileSize = 1000000 },
          { errno = 603301, reason = "^exceed max file size$" })
        assert.is_true(out.elapsed < 5, ("%s: took %.2f s"):format(framing, out.elapsed))
        for _, p in ipairs(out.progress) do
          assert.is_true(p.totalBytesWritten <= 1000000, framing .. ": wrote past maxFileSize")
        end
      end
    end)
  end)

  ----------------------------------------------------------------------------
  describe("status codes and redirects", function()
    for _, status in ipairs { 404, 500 } do
      it(status .. " with a body (chunked): success, body in tempFilePath, destination untouched", function()
        local out = case({ url = f.url(("/bytes?status=%d&n=70000&chunked=1&chunk=7000"):format(status)) },
          { status = status, check = pattern_file(70000) })
        assert.are.equal(70000, out.res.dataLength)
        assert.are.equal(status, out.headers[1].statusCode)
      end)
    end

    it("301 -> 302 -> 200: the final body, headers of the final response only", function()
      local url = f.url("/redirect-to?code=301&url=" .. ("/redirect/1?code=302&n=5000&etag=final")
        :gsub("[/?=&]", function(c) return ("%%%02X"):format(c:byte()) end))
      local out = case({ url = url }, { status = 200, check = pattern_file(5000) })
      assert.are.equal(1, #out.headers)
      assert.are.equal(200, out.headers[1].statusCode)
      assert.are.equal("final", out.res.header.etag)
      assert.is_nil(out.res.header.location)
      assert.is_true(out.res.profile.redirectEnd > 0)
    end)

    it("redirects to ftp://, file://, gopher:// and dict:// fail with 600009 unsupported protocol", function()
      for _, target in ipairs { "ftp://127.0.0.1:1/x", "file:///etc/passwd", "gopher://127.0.0.1:1/",
                                "dict://127.0.0.1:1/d" } do
        case({ url = f.url("/redirect-to?url=" .. target) },
          { errno = 600009, reason = "^unsupported protocol$" })
      end
    end)
  end)

  ----------------------------------------------------------------------------
  describe("Authorization and Cookie across redirects", function()
    local SECRET = { Authorization = "Bearer s3cret", Cookie = "session=s3cret", ["X-Keep"] = "kept" }

    local function echo_lines(out)
      local got = {}
      for line in S.readfile(out.res.filePath):gmatch("[^\n]+") do
        local name, value = line:match("^([^:]+): (.*)$")
        if name then got[name] = value end
      end
      return got
    end

    it("are not sent to another host (127.0.0.1 -> localhost on another port)", function()
      for _, header in ipairs {
        SECRET,
        { authorization = "Bearer s3cret", cookie = "session=s3cret", ["X-Keep"] = "kept" },
      } do
        local target = ("http://localhost:%d/echo"):format(f.port)
        local out = case({ url = ng.url("redirect-to?url=" .. target), header = header }, { status = 200 })
        local got = echo_lines(out)
        assert.are.equal(("localhost:%d"):format(f.port), got.host)
        assert.are.equal("kept", got["x-keep"])
        assert.is_nil(got.authorization, "Authorization was sent to another host")
        assert.is_nil(got.cookie, "Cookie was sent to another host")
      end
    end)

    it("are sent on a same-host redirect", function()
      local out = case({ url = f.url("/redirect-to?url=/echo"), header = SECRET }, { status = 200 })
      local got = echo_lines(out)
      assert.are.equal(("127.0.0.1:%d"):format(f.port), got.host)
      assert.are.equal("Bearer s3cret", got.authorization)
      assert.are.equal("session=s3cret", got.cookie)
      assert.are.equal("kept", got["x-keep"])
    end)
  end)

  ----------------------------------------------------------------------------
  describe("URLs", function()
    -- Each is refused by the URL parser, before any lookup or connection.
    for _, u in ipairs {
      "http://127.0.0.1:99999/", "http://127.0.0.1:abc/", "http://127.0.0.1:-1/",
      "http://127.0.0.1:80:80/", "http://[::1/", "http://[::g]/", "http://[127.0.0.1]/",
      "http://:80/", "http://@/", "http://a b/", "http://127.0.0.1/a b",
      "http://127.0.0.1:1/\127", "http://\t/", "http://user:pa ss@127.0.0.1:1/", "https://",
    } do
      it(("malformed %q: 600009 invalid url"):format(u), function()
        case({ url = u }, { errno = 600009, reason = "^invalid url$" })
      end)
    end

    it("a 100 KB URL reaches the server, which refuses it (431 / 414): success, destination untouched", function()
      local pad = ("a"):rep(100 * 1024)
      local out = case({ url = f.url("/bytes?n=10&pad=" .. pad) }, { status = 431 })
      assert.are.equal(431, out.headers[1].statusCode)
      case({ url = ng.url("small.txt?pad=" .. pad) }, { status = 414 })
    end)

    it("a 9 MB URL (beyond libcurl's 8 MB limit): 600009 invalid url", function()
      case({ url = f.url("/bytes?n=10&pad=" .. ("a"):rep(9 * 1024 * 1024)) },
        { errno = 600009, reason = "^invalid url$" })
    end)
  end)

  ----------------------------------------------------------------------------
  describe("what the server sends is bounded", function()
    -- libcurl 7.88 refuses a single header line over 100 KB ("Out of memory",
    -- 600000); a libcurl that takes it hands it over, bounded by
    -- MAX_HEADER_BYTES (256 KB) in src/engine.c. Either way: one terminal event.
    it("a 200 KB header line: success or 600000, exactly one terminal event", function()
      local dir = S.tmpdir()
      local out = fetch { url = f.url("/bigheader?size=204800"), filePath = dir .. "/dest.bin" }
      if out.err then
        expect_one_terminal(out, "fail")
        assert.are.equal(600000, out.err.errno, out.err.errMsg)
        assert.are.same({}, S.listdir(dir))
      else
        expect_one_terminal(out, "success")
        assert.are.equal(200, out.res.statusCode)
        assert.is_true(#(out.res.header["x-big"] or "") <= 256 * 1024)
        assert.are.equal("ok", S.readfile(dir .. "/dest.bin"))
        assert.are.same({ "dest.bin" }, S.listdir(dir))
      end
      assert.are.same({}, S.listdir(tmp))
      expect_usable()
    end)

    -- 0.2 (issue 10 #14): no header is dropped silently; beyond MAX_HEADERS (1000
    -- lines) the download fails and says why
    it("5000 headers: fail 600000 'too many headers', nothing left; 990 are all kept", function()
      case({ url = f.url("/headers?n=5000") },
        { errno = 600000, reason = "^the response had too many headers$" })
      local out = case({ url = f.url("/headers?n=990") }, {
        status = 200, check = function(p) assert.are.equal("ok", S.readfile(p)) end })
      assert.are.equal("v-1", out.res.header["x-h-1"])
      assert.are.equal("v-990", out.res.header["x-h-990"])
      assert.is_true(count_keys(out.res.header) >= 990)
      assert.are.equal(1, #out.headers)
    end)
  end)

  ----------------------------------------------------------------------------
  describe("full disk and unwritable directories (tmpfs)", function()
    local function need(mnt)
      if mnt then return true end
      print("tmpfs cases: skipped, mount -t tmpfs is not permitted here")
      pending("mount -t tmpfs is not permitted here")
      return false
    end

    it("full disk at the destination: 603300 'No space left on device', the old file kept", function()
      local mnt = tmpfs("size=256k")
      if not need(mnt) then return end
      S.writefile(mnt .. "/dest.bin", OLD)
      local out = fetch { url = ng.url("1m.bin"), filePath = mnt .. "/dest.bin" }
      expect_one_terminal(out, "fail")
      assert.are.equal(603300, out.err.errno)
      assert.are.equal("downloadFile:fail save file error: No space left on device", out.err.errMsg)
      assert.are.same({ "dest.bin" }, S.listdir(mnt))
      assert.are.equal(OLD, S.readfile(mnt .. "/dest.bin"))
      expect_usable()
    end)

    it("full tempDir, no filePath: 603300 'No space left on device', nothing left", function()
      local mnt = tmpfs("size=256k")
      if not need(mnt) then return end
      fill(mnt)
      dt.configure { tempDir = mnt }
      local out = fetch { url = ng.url("1m.bin") }
      expect_one_terminal(out, "fail")
      assert.are.equal(603300, out.err.errno)
      assert.are.equal("downloadFile:fail save file error: No space left on device", out.err.errMsg)
      assert.are.same({ "filler" }, S.listdir(mnt))
      dt.configure { tempDir = tmp }
      expect_usable()
    end)

    it("full tempDir, a 404 body for a filePath elsewhere: 603300, destination untouched, no .part", function()
      local mnt = tmpfs("size=256k")
      if not need(mnt) then return end
      fill(mnt)
      dt.configure { tempDir = mnt }
      local out = case({ url = f.url("/bytes?status=404&n=1000000") },
        { errno = 603300, reason = "^save file error: No space left on device$" })
      assert.are.same({ "filler" }, S.listdir(mnt))
    end)

    it("read-only tempDir, no filePath: 603303 permission denied", function()
      local mnt = tmpfs("ro,size=256k")
      if not need(mnt) then return end
      dt.configure { tempDir = mnt }
      local out = fetch { url = ng.url("1k.bin") }
      expect_one_terminal(out, "fail")
      assert.are.equal(603303, out.err.errno)
      assert.are.equal("downloadFile:fail permission denied: " .. mnt, out.err.errMsg)
      assert.are.same({}, S.listdir(mnt))
      dt.configure { tempDir = tmp }
      expect_usable()
    end)

    it("read-only tempDir, a 404 body for a filePath elsewhere: 603303, destination untouched, no .part", function()
      local mnt = tmpfs("ro,size=256k")
      if not need(mnt) then return end
      dt.configure { tempDir = mnt }
      case({ url = f.url("/bytes?status=404&n=5000") }, { errno = 603303, reason = "^permission denied: /.*/mnt$" })
      assert.are.same({}, S.listdir(mnt))
    end)
  end)

  ----------------------------------------------------------------------------
  -- fork(): Debian 12's lua-posix is built for Lua 5.1-5.3 only, so the spec
  -- uses luaposix when it loads under this Lua, otherwise tools/dtposix.c, which
  -- spec/support/dtposix.lua builds with the compiler the build uses.
  describe("fork()", function()
    -- { fork(), _exit(code), waitpid(pid, nohang) -> pid[, status], kill(pid, sig) }
    local function posix()
      local ok, unistd = pcall(require, "posix.unistd")
      local ok2, wait = pcall(require, "posix.sys.wait")
      local ok3, signal = pcall(require, "posix.signal")
      if ok and ok2 and ok3 then
        return {
          fork = unistd.fork, _exit = unistd._exit,
          waitpid = function(pid, nohang)
            local p, how, st = wait.wait(pid, nohang and wait.WNOHANG or 0)
            if p == 0 or not how then return p or -1 end
            return p, how == "exited" and st or 128 + st
          end,
          kill = function(pid, sig) return signal.kill(pid, sig) == 0 end,
        }
      end
      return require("spec.support.dtposix").load()
    end

    -- SPEC 0.2: "A fork()ed child never delivers, deletes or moves its parent's downloads":
    -- in the child the parent's task is not live, nothing of it is delivered, its state
    -- stays what it was at the fork and await on it raises (spec/regress/fork_spec.lua
    -- covers finished bodies, abort and lua_close in the child).
    it("the child leaves the parent's in-flight task alone (not live, never delivered), downloads on its own engine; the parent's finishes", function()
      local P, why = posix()
      if not P then
        print("fork: skipped, " .. why)
        pending(why)
        return
      end
      local dir = S.tmpdir()
      local N = 400000
      local calls, res = {}, nil
      local t = dt.downloadFile {
        url = f.url(("/bytes?n=%d&rate=400000"):format(N)), filePath = dir .. "/parent.bin",
        success = function(r) res = r; calls[#calls + 1] = "success" end,
        fail = function(e) calls[#calls + 1] = "fail:" .. e.errno .. ":" .. e.errMsg end,
        complete = function() calls[#calls + 1] = "complete" end,
      }
      T.track(t)
      local written = 0
      t:onProgressUpdate(function(p) written = p.totalBytesWritten end)
      local deadline = now() + 5
      while written == 0 and now() < deadline do dt.poll(10) end
      assert.is_true(written > 0 and written < N, "the parent's download is not mid-body")
      io.stdout:flush()
      io.stderr:flush()

      local report = dir .. "/child.out"
      local pid = P.fork()
      if pid == 0 then
        -- The child: never returns into busted, leaves by _exit (no atexit, no
        -- finalizers: the servers belong to the parent).
        local ok, msg = pcall(function()
          local lines = {}
          local function say(s) lines[#lines + 1] = s end
          -- the parent's task: not live here, and nothing of it is delivered (its
          -- callbacks would append to the child's copy of `calls`)
          say("live " .. dt.poll(0))
          local d = now() + 1
          while now() < d do dt.poll(10) end
          say("orphan " .. table.concat(calls, "|"))
          say("orphan-state " .. t.state)
          -- a download of its own, on its own engine
          local r, e = dt.downloadFile { url = ng.url("1m.bin"), filePath = dir .. "/child.bin" }:await()
          say("own " .. (r and (r.statusCode .. " " .. r.dataLength) or ("fail " .. e.errMsg)))
          say("pending " .. dt.poll(0))
          S.writefile(report, table.concat(lines, "\n") .. "\n")
        end)
        if not ok then S.writefile(report, "error " .. tostring(msg) .. "\n") end
        P._exit(ok and 0 or 1)
      end

      -- The parent: keeps driving its download while the child works.
      local status
      deadline = now() + 20
      while now() < deadline do
        local p, st = P.waitpid(pid, true)
        if p == pid then status = st; break end
        dt.poll(10)
      end
      if not status then
        P.kill(pid, 9)
        P.waitpid(pid, false)
      end
      deadline = now() + 20
      while #calls < 2 and now() < deadline do dt.poll(10) end

      local rep = S.readfile(report) or "(no report)"
      assert.are.equal(0, status, "child: " .. rep)
      assert.matches("live 0\n", rep)
      assert.matches("orphan \n", rep)
      assert.matches("orphan%-state running\n", rep)
      assert.matches("own 200 1048576\n", rep)
      assert.matches("pending 0\n", rep)
      assert.is_true(S.file_matches_pattern(dir .. "/child.bin", 1024 * 1024))

      assert.are.same({ "success", "complete" }, calls)
      assert.are.equal(200, res.statusCode)
      assert.are.equal(N, res.dataLength)
      assert.is_true(S.file_matches_pattern(dir .. "/parent.bin", N))
      assert.are.same({ "child.bin", "child.out", "parent.bin" }, S.listdir(dir))
      expect_usable()
    end)
  end)

  ----------------------------------------------------------------------------
  describe("many tasks", function()
    -- The body, also run in a child Lua (the one under test) when the descriptor limit is too
    -- low for it here. Returns a table of facts.
    local FIVE_THOUSAND = [==[
local dt, S, url, dir, now = ...
local dummies = {}
for i = 1, 1100 do dummies[i] = assert(io.open("/dev/null", "rb")) end
local function high_fds()
  local n = 0
  for name in require("lfs").dir("/proc/self/fd") do
    local fd = tonumber(name)
    if fd and fd > 1024 then
      local target = require("lfs").symlinkattributes("/proc/self/fd/" .. name, "target") or ""
      if not target:match("^/dev/null$") then n = n + 1 end
    end
  end
  return n
end
dt.configure { maxConcurrent = 64 }
local ok, bad, failed, maxhigh = 0, 0, {}, 0
local N = 5000
for i = 1, N do
  dt.downloadFile {
    url = url, filePath = dir .. "/f" .. i,
    success = function(r)
      if r.statusCode == 200 and r.dataLength == 19 then ok = ok + 1 else bad = bad + 1 end
    end,
    fail = function(e) failed[#failed + 1] = e.errMsg end,
  }
end
local deadline, samples = now() + 50, 0
while dt.poll(20) > 0 and now() < deadline do
  if samples < 20 then
    samples = samples + 1
    local h = high_fds()
    if h > maxhigh then maxhigh = h end
  end
end
local left = dt.poll(0)
dt.configure { maxConcurrent = 10 }
for _, fh in ipairs(dummies) do fh:close() end
local files, intact = 0, 0
for name in require("lfs").dir(dir) do
  if name:match("^f%d+$") then
    files = files + 1
    if S.readfile(dir .. "/" .. name) == S.SMALL_TXT then intact = intact + 1 end
  elseif name ~= "." and name ~= ".." then
    files = files + 1000000     -- anything else (a .part) is a failure
  end
end
return { ok = ok, bad = bad, failed = #failed, first_fail = failed[1], left = left,
         maxhigh = maxhigh, files = files, intact = intact }
]==]

    local function soft_limit()
      local p = assert(io.popen("ulimit -n"))
      local v = p:read("*l")
      p:close()
      return tonumber(v) or math.huge    -- "unlimited"
    end

    it("5000 tasks with maxConcurrent = 64 all succeed, with descriptors above 1024 in use", function()
      local dir = S.tmpdir()
      local r
      if soft_limit() >= 2048 then
        r = assert((loadstring or load)(FIVE_THOUSAND, "=five-thousand"))(dt, S, ng.url("small.txt"), dir, now)
      else
        local code = ("package.path = %q .. package.path\npackage.cpath = %q .. package.cpath\n")
          :format(ROOT .. "/?.lua;", S.MODULE_CPATH .. ";")
          .. "local f = assert((loadstring or load)(" .. ("%q"):format(FIVE_THOUSAND) .. "))\n"
          .. ("local r = f(require 'downloadtask', require 'spec.support.servers', %q, %q, require('socket').gettime)\n")
            :format(ng.url("small.txt"), dir)
          .. "for k, v in pairs(r) do print(k .. '=' .. tostring(v)) end\n"
        local p = assert(io.popen(("cd %s && bash -c %s 2>&1; echo rc=$?"):format(quote(ROOT),
          quote("ulimit -n 4096 && exec timeout 55 " .. S.LUA .. " -e " .. quote(code)))))
        local out = p:read("*a")
        p:close()
        if out:match("ulimit") and not out:match("ok=") then
          print("5000 tasks: skipped, cannot raise the descriptor limit: " .. out)
          pending("cannot raise the descriptor limit to 4096")
          return
        end
        assert.matches("rc=0", out)
        r = {}
        for k, v in out:gmatch("(%w+)=([^\n]*)") do r[k] = tonumber(v) or v end
      end
      dt.configure { maxConcurrent = 10 }
      assert.are.equal(0, r.failed, "first failure: " .. tostring(r.first_fail))
      assert.are.equal(0, r.bad)
      assert.are.equal(5000, r.ok)
      assert.are.equal(0, r.left)
      assert.are.equal(5000, r.files)
      assert.are.equal(5000, r.intact)
      assert.is_true(r.maxhigh > 0, "no descriptor above 1024 was seen in use")
      expect_usable()
    end)
  end)
end)
