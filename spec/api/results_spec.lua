-- What success/fail hand to Lua: every field of res, the profile, and every
-- documented errno with its errMsg.
local dt = require "downloadtask"
local S = require "spec.support.servers"
local lfs = require "lfs"
local H = require "spec.support.helpers"

local now, settle = H.now, H.settle
local quote, sh, mode_of = H.quote, H.sh, H.mode_of

local T = H.tracker()
local start, fetch = T.start, T.fetch

local function expect_ok(out, status)
  H.expect_ok(out, status, true)
end

-- reason: exact text after "downloadFile:fail ", or a Lua pattern when `pattern`.
local function expect_fail(out, errno, reason, pattern)
  assert.are.same({ "fail", "complete" }, out.calls)
  assert.are.equal(errno, out.err.errno)
  assert.are.equal("integer", S.math_type(out.err.errno))
  assert.matches("^downloadFile:fail %S", out.err.errMsg)
  if reason and pattern then
    assert.matches(reason, out.err.errMsg:sub(#"downloadFile:fail " + 1))
  elseif reason then
    assert.are.equal("downloadFile:fail " .. reason, out.err.errMsg)
  end
  assert.are.equal(out.err, out.complete)
  assert.are.equal("failed", out.task.state)
  assert.is_nil(out.err.statusCode)
  assert.is_nil(out.err.tempFilePath)
end

-- Runs a Lua chunk in a child of the Lua under test (the module under test
-- first in its cpath); returns its output and exit status. `prefix` is put
-- before the command (setpriv ...).
local child = H.child

local PROFILE_TIMES = {
  "fetchStart", "domainLookUpStart", "domainLookUpEnd", "connectStart", "connectEnd",
  "SSLconnectionStart", "SSLconnectionEnd", "requestStart", "requestEnd", "responseStart",
  "responseEnd", "redirectStart", "redirectEnd",
}
-- The order of one request's phases.
local TIMELINE = {
  "fetchStart", "domainLookUpStart", "domainLookUpEnd", "connectStart", "connectEnd",
  "requestStart", "requestEnd", "responseStart", "responseEnd",
}

local function misordered(p)
  for i = 2, #TIMELINE do
    local a, b = TIMELINE[i - 1], TIMELINE[i]
    if p[b] < p[a] then return ("%s (%.3f) < %s (%.3f)"):format(b, p[b], a, p[a]) end
  end
  return nil
end

describe("results", function()
  local ng, f, tmp

  setup(function() ng, f = S.nginx(), S.fault() end)
  before_each(function() tmp = H.fresh_tempdir() end)
  after_each(T.cleanup)

  describe("success", function()
    it("with filePath: statusCode, filePath, no tempFilePath, dataLength, errMsg", function()
      local dir = S.tmpdir()
      local dest = dir .. "/small.txt"
      local out = fetch { url = ng.url("small.txt"), filePath = dest }
      expect_ok(out)
      assert.are.equal(dest, out.res.filePath)
      assert.is_nil(out.res.tempFilePath)
      assert.are.equal(19, out.res.dataLength)
      assert.are.equal("integer", S.math_type(out.res.dataLength))
      assert.are.equal("integer", S.math_type(out.res.statusCode))
      assert.are.equal(S.SMALL_TXT, S.readfile(dest))
      assert.are.same({ "small.txt" }, S.listdir(dir))
      assert.are.same({}, S.listdir(tmp))          -- no private file was needed
      assert.are.equal("table", type(out.res.header))
      assert.are.equal("table", type(out.res.profile))
    end)

    it("without filePath: a private (0600) tempFilePath under tempDir that is the caller's", function()
      local out = fetch { url = ng.url("1m.bin") }
      expect_ok(out)
      local p = out.res.tempFilePath
      assert.are.equal("string", type(p))
      assert.is_nil(out.res.filePath)
      assert.are.equal(tmp .. "/", p:sub(1, #tmp + 1))
      assert.are.equal("600", mode_of(p))
      assert.are.equal(1048576, out.res.dataLength)
      assert.is_true(S.file_matches_pattern(p, 1048576))
      -- still there later: the module does not remove it
      dt.poll(50)
      collectgarbage()
      collectgarbage()
      assert.is_true(S.file_matches_pattern(p, 1048576))
      assert.are.same({ (p:match("[^/]+$")) }, S.listdir(tmp))
      os.remove(p)
    end)

    it("each download gets its own tempFilePath", function()
      local paths = {}
      for i = 1, 5 do
        start { url = f.url("/bytes?n=100&i=" .. i), success = function(r) paths[#paths + 1] = r.tempFilePath end }
      end
      settle()
      assert.are.equal(5, #paths)
      local seen = {}
      for _, p in ipairs(paths) do
        assert.is_nil(seen[p])
        seen[p] = true
        assert.is_true(S.file_matches_pattern(p, 100))
      end
      assert.are.equal(5, #S.listdir(tmp))
    end)

    it("a 404 with filePath: success, tempFilePath holds the body, destination untouched", function()
      local dir = S.tmpdir()
      local dest = dir .. "/dest.bin"
      S.writefile(dest, "precious old content\n")
      local out = fetch { url = f.url("/status/404?n=300"), filePath = dest }
      expect_ok(out, 404)
      assert.is_nil(out.res.filePath)
      local p = out.res.tempFilePath
      assert.are.equal("string", type(p))
      assert.are.equal(tmp .. "/", p:sub(1, #tmp + 1))
      assert.are.equal("600", mode_of(p))
      assert.are.equal(300, out.res.dataLength)
      assert.is_true(S.file_matches_pattern(p, 300))
      assert.are.equal("precious old content\n", S.readfile(dest))
      assert.are.same({ "dest.bin" }, S.listdir(dir))
      os.remove(p)
    end)

    it("a 500 without a destination yet: success, the destination is not created", function()
      local dir = S.tmpdir()
      local out = fetch { url = f.url("/status/500"), filePath = dir .. "/x" }
      expect_ok(out, 500)
      assert.are.equal("status 500\n", S.readfile(out.res.tempFilePath))
      assert.are.same({}, S.listdir(dir))
      os.remove(out.res.tempFilePath)
    end)

    it("100 MiB arrive intact", function()
      local dir = S.tmpdir()
      local dest = dir .. "/100m.bin"
      local out = fetch { url = ng.url("100m.bin"), filePath = dest }
      expect_ok(out)
      assert.are.equal(104857600, out.res.dataLength)
      assert.are.equal(dest, out.res.filePath)
      assert.is_true(S.file_matches_pattern(dest, 104857600))
      assert.are.same({ "100m.bin" }, S.listdir(dir))
      os.remove(dest)
    end)

    it("an empty body: dataLength 0 and an empty file", function()
      local dir = S.tmpdir()
      local out = fetch { url = ng.url("empty.bin"), filePath = dir .. "/empty.bin" }
      expect_ok(out)
      assert.are.equal(0, out.res.dataLength)
      assert.are.equal(0, S.filesize(dir .. "/empty.bin"))
      out = fetch { url = ng.url("empty.bin") }
      expect_ok(out)
      assert.are.equal(0, out.res.dataLength)
      assert.are.equal(0, S.filesize(out.res.tempFilePath))
      os.remove(out.res.tempFilePath)
    end)

    it("a body without Content-Length (chunked, and close-delimited)", function()
      local out = fetch { url = f.url("/bytes?n=70000&chunked=1&chunk=9000") }
      expect_ok(out)
      assert.are.equal(70000, out.res.dataLength)
      assert.is_true(S.file_matches_pattern(out.res.tempFilePath, 70000))
      out = fetch { url = f.url("/bytes?n=70000&nolength=1") }
      expect_ok(out)
      assert.are.equal(70000, out.res.dataLength)
      assert.is_true(S.file_matches_pattern(out.res.tempFilePath, 70000))
    end)
  end)

  describe("header", function()
    it("has lower-case names and repeated headers joined with ', '", function()
      local out = fetch { url = f.url("/dup") }
      expect_ok(out)
      local h = out.res.header
      assert.are.equal("a, b", h["x-dup"])
      assert.are.equal("a=1, b=2", h["set-cookie"])
      assert.are.equal("Yes", h["x-mixed-case"])
      assert.is_nil(h["X-Mixed-Case"])
      assert.are.equal("2", h["content-length"])
      assert.are.equal("text/plain", h["content-type"])
      for k, v in pairs(h) do
        assert.are.equal("string", type(k))
        assert.are.equal("string", type(v))
        assert.are.equal(k:lower(), k)
      end
    end)

    it("is the final response's after redirects", function()
      local out = fetch { url = f.url("/redirect/2?n=5") }
      expect_ok(out)
      assert.is_nil(out.res.header.location)
      assert.are.equal("5", out.res.header["content-length"])
      assert.are.equal("application/octet-stream", out.res.header["content-type"])
    end)
  end)

  describe("profile", function()
    it("has every field, with the right types and plausible values", function()
      local t_before = now() * 1000
      local out = fetch { url = ng.url("1k.bin") }
      local t_after = now() * 1000
      expect_ok(out)
      local p = out.res.profile
      for _, k in ipairs(PROFILE_TIMES) do
        assert.are.equal("number", type(p[k]), k)
      end
      assert.is_true(p.fetchStart > 0)
      assert.is_true(p.fetchStart >= t_before - 1000 and p.fetchStart <= t_after + 1000,
        "fetchStart is not ms since the epoch: " .. p.fetchStart)
      assert.is_true(p.fetchStart <= p.responseEnd)
      assert.is_true(p.responseEnd <= t_after + 1000)
      assert.is_nil(misordered(p))
      assert.are.equal(0, p.SSLconnectionStart)      -- plain http
      assert.are.equal(0, p.SSLconnectionEnd)
      assert.are.equal(0, p.redirectStart)
      assert.are.equal(0, p.redirectEnd)
      assert.are.equal("127.0.0.1", p.peerIP)
      assert.are.equal(ng.port, p.port)
      assert.are.equal("integer", S.math_type(p.port))
      assert.are.equal("http1.1", p.protocol)
      assert.are.equal("boolean", type(p.socketReused))
      assert.are.equal("integer", S.math_type(p.sendBytesCount))
      assert.are.equal("integer", S.math_type(p.receivedBytedCount))
      assert.is_true(p.sendBytesCount > 0)
      assert.is_true(p.receivedBytedCount > out.res.dataLength)   -- headers too
      assert.are.equal("number", type(p.throughputKbps))
      assert.is_true(p.throughputKbps >= 0)
      os.remove(out.res.tempFilePath)
    end)

    it("port is the server's: also for the fault server", function()
      local out = fetch { url = f.url("/bytes?n=10") }
      expect_ok(out)
      assert.are.equal(f.port, out.res.profile.port)
      assert.are.equal("127.0.0.1", out.res.profile.peerIP)
    end)

    it("socketReused: false on a fresh connection, true on a kept-alive one", function()
      -- the fault server closes every connection
      local a = fetch { url = f.url("/bytes?n=10") }
      expect_ok(a)
      assert.is_false(a.res.profile.socketReused)
      -- nginx keeps connections alive: the second of two in a row reuses one
      expect_ok(fetch { url = ng.url("small.txt") })
      local b = fetch { url = ng.url("small.txt") }
      expect_ok(b)
      assert.is_true(b.res.profile.socketReused)
    end)

    it("redirectStart/End are set only with redirects", function()
      local out = fetch { url = f.url("/redirect/3") }
      expect_ok(out)
      local p = out.res.profile
      assert.is_true(p.redirectStart > 0)
      assert.is_true(p.redirectEnd > 0)
      assert.is_true(p.redirectStart >= p.fetchStart)
      assert.is_true(p.redirectEnd >= p.redirectStart)
      assert.is_true(p.redirectEnd <= p.responseEnd)
    end)

    -- Regression (was a bug, fixed): with redirects the phases of the final request are out of order
    -- (e.g. requestStart < connectEnd): fill_profile places domainLookUp*/
    -- connect* after redirectEnd (CURLINFO_REDIRECT_TIME) but requestStart/
    -- requestEnd at CURLINFO_PRETRANSFER_TIME, which libcurl accumulates per
    -- hop (sum of each hop's own pretransfer time), not since the start.
    -- Repro: dt.downloadFile{url = fault.url("/redirect/3")}:await().profile
    --   -> requestStart 1795641091521.328 < connectEnd 1795641091521.574
    it("with redirects, the final request's phases are in order", function()
      local out = fetch { url = f.url("/redirect/3") }
      expect_ok(out)
      assert.is_nil(misordered(out.res.profile))
      assert.is_true(out.res.profile.redirectEnd <= out.res.profile.domainLookUpStart)
    end)
  end)

  describe("errors", function()
    it("600000: a body cut short (dropafter)", function()
      local out = fetch { url = f.url("/bytes?n=100000&dropafter=5000") }
      expect_fail(out, 600000)
      assert.are.same({}, S.listdir(tmp))
    end)

    it("600000: Content-Length larger than the body", function()
      local out = fetch { url = f.url("/bytes?n=10&cl=20") }
      expect_fail(out, 600000, "transfer closed with 10 bytes remaining to read")
    end)

    it("600000: the server closes without answering", function()
      expect_fail(fetch { url = f.url("/close") }, 600000)
    end)

    -- Regression (was a bug, fixed): a response that is not HTTP is reported as errno 600009
    -- "unsupported protocol" (libcurl's CURLE_UNSUPPORTED_PROTOCOL for
    -- "Received HTTP/0.9 when not allowed"), which SPEC reserves for a URL
    -- that is invalid or of another scheme; the URL here is fine, so it is
    -- "any other network error" (600000).
    -- Repro: dt.downloadFile{url = fault.url("/garbage")}:await()
    --   -> nil, {errno = 600009, errMsg = "downloadFile:fail unsupported protocol"}
    it("600000: a response that is not HTTP (/garbage)", function()
      expect_fail(fetch { url = f.url("/garbage") }, 600000)
    end)

    it("600001: connection refused (port 1, and a free port)", function()
      expect_fail(fetch { url = "http://127.0.0.1:1/" }, 600001, "connection refused")
      expect_fail(fetch { url = ("http://127.0.0.1:%d/x"):format(S.free_port()) }, 600001,
        "connection refused")
    end)

    it("600001: connection reset", function()
      expect_fail(fetch { url = f.url("/bytes?n=100000&dropafter=5000&reset=1") }, 600001,
        "connection reset")
    end)

    -- The lookup must fail without any packet leaving the machine: in a child
    -- process with its own mount namespace, /etc/nsswitch.conf says "hosts:
    -- files" and /etc/resolv.conf names 127.0.0.1 only.
    it("600001: could not resolve host", function()
      local dir = S.tmpdir()
      S.writefile(dir .. "/nsswitch.conf", "hosts: files\n")
      S.writefile(dir .. "/resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
      local probe = ("unshare -m sh -c %s"):format(quote(
        ("mount --bind %s/nsswitch.conf /etc/nsswitch.conf && mount --bind %s/resolv.conf /etc/resolv.conf && grep -q '^hosts: files$' /etc/nsswitch.conf")
          :format(dir, dir)))
      local said, rc = S.run(probe)
      if rc ~= 0 then
        -- e.g. in a chroot, where / is no mount point: "unshare: cannot change root
        -- filesystem propagation: Invalid argument"
        pending("needs unshare -m and mount --bind to fail a lookup without network traffic; "
          .. "here they failed (status " .. tostring(rc) .. "): " .. (said:gsub("%s+$", ""):gsub("\n", "; ")))
        return
      end
      local prefix = ("unshare -m sh -c %s"):format(quote(
        ("mount --bind %s/nsswitch.conf /etc/nsswitch.conf && mount --bind %s/resolv.conf /etc/resolv.conf && exec \"$0\" \"$@\"")
          :format(dir, dir)))
      local out, rc = child([[
        local dt = require "downloadtask"
        local res, err = dt.downloadFile{url = "http://downloadtask-spec.invalid/x"}:await()
        print("RESULT", err and err.errno, err and err.errMsg)
      ]], prefix)
      assert.are.equal(0, rc, out)
      local errno, msg = out:match("RESULT\t(%d+)\t([^\n]*)")
      assert.are.equal("600001", errno, out)
      assert.are.equal("downloadFile:fail could not resolve host: downloadtask-spec.invalid", msg)
    end)

    it("5: timeout", function()
      local out = fetch { url = f.url("/hang"), timeout = 300 }
      expect_fail(out, 5, "timeout (timeout: 300 ms)")
      assert.is_true(out.elapsed < 3)
    end)

    it("600008: too many redirects (/loop)", function()
      expect_fail(fetch { url = f.url("/loop") }, 600008, "too many redirects")
    end)

    for _, u in ipairs { "http://", "https://", "http://127.0.0.1:99999/", "http://[::1/" } do
      it(("600009: url %q (http, but the URL parser refuses it)"):format(u), function()
        local dir = S.tmpdir()
        local out = fetch { url = u, filePath = dir .. "/passwd" }
        expect_fail(out, 600009, "invalid url")
        assert.are.same({}, S.listdir(dir))
      end)
    end

    -- A url of another scheme, or none, raises at the call, naming url (version 0.3; it was a
    -- task failing with 600009, while a mirror of the same kind raised). Without a scheme
    -- libcurl would guess http://, so "127.0.0.1:PORT/small.txt" must raise too.
    for _, u in ipairs { "ftp://127.0.0.1:1/file", "not a url", "file:///etc/passwd", "",
                         "gopher://127.0.0.1:1/", "http:/127.0.0.1/", "http:", "127.0.0.1:%d/small.txt",
                         " http://127.0.0.1:%d/small.txt" } do
      it(("raises on url %q, naming url, and leaves nothing behind"):format(u), function()
        local dir, before = S.tmpdir(), #dt.tasks()
        local ok, err = pcall(dt.downloadFile, { url = u:format(ng.port), filePath = dir .. "/passwd" })
        assert.is_false(ok)
        assert.matches("bad option 'url' (http:// or https:// URL expected, got '" .. u:format(ng.port) .. "')",
          err, 1, true)
        assert.are.equal(before, #dt.tasks())
        assert.are.same({}, S.listdir(dir))
      end)
    end

    it("the scheme is case-insensitive, a fragment is not sent", function()
      expect_ok(fetch { url = ("HTTP://127.0.0.1:%d/small.txt"):format(ng.port) })
      expect_ok(fetch { url = ("hTTp://127.0.0.1:%d/small.txt#part"):format(ng.port) })
    end)

    it("600009: a redirect to another scheme is not followed", function()
      local out = fetch { url = f.url("/redirect-to?url=file:///etc/passwd") }
      expect_fail(out, 600009)
      assert.are.same({}, S.listdir(tmp))
    end)

    it("603300: the destination's directory does not exist (it is not created)", function()
      local dir = S.tmpdir()
      local out = fetch { url = ng.url("small.txt"), filePath = dir .. "/missing/small.txt" }
      expect_fail(out, 603300, "save file error: directory does not exist: " .. dir .. "/missing")
      assert.are.same({}, S.listdir(dir))
    end)

    it("603300: the destination is a directory", function()
      local dir = S.tmpdir()
      assert(lfs.mkdir(dir .. "/sub"))
      local out = fetch { url = ng.url("small.txt"), filePath = dir .. "/sub" }
      expect_fail(out, 603300, "save file error: destination is a directory: " .. dir .. "/sub")
      assert.are.equal("directory", lfs.attributes(dir .. "/sub", "mode"))
      assert.are.same({ "sub" }, S.listdir(dir))
      assert.are.same({}, S.listdir(dir .. "/sub"))
    end)

    it("603301: exceed max file size", function()
      expect_fail(fetch { url = ng.url("1m.bin"), maxFileSize = 1000 }, 603301, "exceed max file size")
      assert.are.same({}, S.listdir(tmp))
    end)

    -- As root permissions are bypassed: a read-only mount gives EROFS, and a
    -- child running as nobody gives EACCES.
    it("603303: permission denied (read-only file system)", function()
      local dir = S.tmpdir()
      local mnt = dir .. "/ro"
      if not H.mount_tmpfs(mnt, "ro,size=1m") then
        print("603303 (read-only mount): skipped, mount -t tmpfs is not permitted here")
        pending("cannot mount a read-only tmpfs")
        return
      end
      H.then_umount(mnt, function()
        local out = fetch { url = ng.url("small.txt"), filePath = mnt .. "/small.txt" }
        expect_fail(out, 603303, "permission denied: " .. mnt .. "/small.txt")
        assert.are.same({}, S.listdir(mnt))
      end)
    end)

    it("603303: permission denied (directory not writable for the user)", function()
      -- The child runs as nobody: it needs to reach the interpreter and the module under
      -- test. The clone may sit in a private (0700) directory, as CI's does: the child
      -- loads a copy of the module from a directory of its own that nobody can read.
      local p = assert(io.popen("mktemp -d /tmp/dt-perm.XXXXXX"))
      local dir = p:read("*l")
      p:close()
      local libdir = dir .. "/lib"
      local module = S.MODULE_CPATH:gsub("%?", "downloadtask")
      assert(sh(("mkdir %s && cp %s %s/ && chmod 755 %s %s && chmod 644 %s/*")
        :format(quote(libdir), quote(module), quote(libdir), quote(dir), quote(libdir), quote(libdir))))
      -- the interpreter under test may still be out of reach (make asan's lives in the clone)
      local setpriv = "setpriv --reuid=65534 --regid=65534 --clear-groups"
      local probe = child('require "downloadtask" print("REACHED")', setpriv, libdir .. "/?.so")
      if not probe:find("REACHED", 1, true) then
        sh(("rm -rf %s"):format(quote(dir)))
        print("603303 (unprivileged child): skipped, nobody cannot run the Lua under test: " .. probe)
        pending("the Lua under test is not reachable for an unprivileged user")
        return
      end
      local dest = dir .. "/dest"
      assert(sh(("mkdir %s && chmod 755 %s"):format(quote(dest), quote(dest))))
      local out, rc = child(([[
        local dt = require "downloadtask"
        dt.configure { tempDir = %q }
        local res, err = dt.downloadFile{url = %q, filePath = %q}:await()
        print("RESULT", err and err.errno, err and err.errMsg)
      ]]):format(dest, f.url("/bytes?n=100"), dest .. "/f"),
        setpriv, libdir .. "/?.so")
      local listing = S.listdir(dest)
      sh(("rm -rf %s"):format(quote(dir)))
      if rc ~= 0 and out:match("setpriv") then
        print("603303 (unprivileged child): skipped, setpriv failed: " .. out)
        pending("setpriv is not usable")
        return
      end
      assert.are.equal(0, rc, out)
      local errno, msg = out:match("RESULT\t(%d+)\t([^\n]*)")
      assert.are.equal("603303", errno, out)
      assert.are.equal("downloadFile:fail permission denied: " .. dest .. "/f", msg)
      assert.are.same({}, listing)
    end)

    it("603300: no space left on device", function()
      local dir = S.tmpdir()
      local mnt = dir .. "/small-fs"
      if not H.mount_tmpfs(mnt, "size=64k") then
        print("603300 (disk full): skipped, mount -t tmpfs is not permitted here")
        pending("cannot mount a small tmpfs")
        return
      end
      H.then_umount(mnt, function()
        local out = fetch { url = ng.url("1m.bin"), filePath = mnt .. "/1m.bin" }
        expect_fail(out, 603300)
        assert.matches("^downloadFile:fail save file error: .", out.err.errMsg)
        assert.are.same({}, S.listdir(mnt))
      end)
    end)

    it("a failure carries errMsg, errno and attempts (1 without retry)", function()
      local out = fetch { url = "http://127.0.0.1:1/" }
      expect_fail(out, 600001)
      local keys = {}
      for k in pairs(out.err) do keys[#keys + 1] = k end
      table.sort(keys)
      assert.are.same({ "attempts", "errMsg", "errno" }, keys)
      assert.are.equal(1, out.err.attempts)
    end)
  end)
end)
