-- Files: the destination holds the complete new file or is left as it was;
-- no temporary file is left behind after a failure or an abort; modes;
-- symlinks at the destination.
local dt = require "downloadtask"
local S = require "spec.support.servers"
local socket = require "socket"
local lfs = require "lfs"
local H = require "spec.support.helpers"

local ROOT, OLD, now, settle = H.ROOT, H.OLD, H.now, H.settle
local quote, sh, mode_of = H.quote, H.sh, H.mode_of

-- This process's umask, from /proc.
local function umask()
  local m = H.proc_status("Umask")
  if not m then error("no Umask in /proc/self/status") end
  return tonumber(m, 8)
end

-- a & ~b, without 5.3's bitwise operators (the suite runs on 5.1 to 5.4)
local function clear_bits(a, b)
  local r, bit = 0, 1
  while a > 0 do
    if a % 2 == 1 and b % 2 == 0 then r = r + bit end
    a, b, bit = math.floor(a / 2), math.floor(b / 2), bit * 2
  end
  return r
end

local T = H.tracker()
local start, fetch = T.start, T.fetch

-- Waits (up to `seconds`) for the directory listing to equal `expected`;
-- returns the last listing.
local function eventually_listing(dir, expected, seconds)
  local deadline = now() + (seconds or 2)
  local l
  repeat
    l = S.listdir(dir)
    if table.concat(l, "\0") == table.concat(expected, "\0") then return l end
    socket.sleep(0.01)
  until now() > deadline
  return l
end

describe("files", function()
  local ng, f, tmp

  setup(function() ng, f = S.nginx(), S.fault() end)
  before_each(function() tmp = H.fresh_tempdir() end)
  after_each(T.cleanup)

  describe("after a failure, the directory holds only what was there before", function()
    -- { name, options (filePath added), expected errno }
    local failures = {
      { "body cut short", function(ng, f) return { url = f.url("/bytes?n=300000&dropafter=100000") } end, 600000 },
      { "Content-Length larger than the body", function(ng, f) return { url = f.url("/bytes?n=50000&cl=90000") } end, 600000 },
      { "connection reset mid-body", function(ng, f) return { url = f.url("/bytes?n=300000&dropafter=100000&reset=1") } end, 600001 },
      { "connection refused", function() return { url = "http://127.0.0.1:1/" } end, 600001 },
      { "closed without an answer", function(ng, f) return { url = f.url("/close") } end, 600000 },
      { "not HTTP", function(ng, f) return { url = f.url("/garbage") } end, nil },
      { "timeout before the response", function(ng, f) return { url = f.url("/hang"), timeout = 300 } end, 5 },
      { "timeout mid-body", function(ng, f)
          return { url = f.url("/bytes?n=300000&stallafter=100000&stall=3000"), timeout = 500 } end, 5 },
      { "too many redirects", function(ng, f) return { url = f.url("/loop") } end, 600008 },
      { "invalid url", function() return { url = "http://[::1/" } end, 600009 },
      { "unsupported protocol", function(ng, f) return { url = f.url("/redirect-to?url=ftp://127.0.0.1:1/x") } end, 600009 },
      { "max file size (announced)", function(ng) return { url = ng.url("1m.bin"), maxFileSize = 1000 } end, 603301 },
      { "max file size (mid-body, chunked)", function(ng, f)
          return { url = f.url("/bytes?n=300000&chunked=1&chunk=10000"), maxFileSize = 150000 } end, 603301 },
    }
    for _, c in ipairs(failures) do
      local name, make, errno = c[1], c[2], c[3]

      it(name .. ": a pre-existing destination keeps its exact content", function()
        local dir = S.tmpdir()
        S.writefile(dir .. "/keep.txt", "unrelated\n")
        S.writefile(dir .. "/dest.bin", OLD)
        local opts = make(ng, f)
        opts.filePath = dir .. "/dest.bin"
        local out = fetch(opts)
        assert.are.same({ "fail", "complete" }, out.calls)
        if errno then assert.are.equal(errno, out.err.errno) end
        assert.are.same({ "dest.bin", "keep.txt" }, S.listdir(dir))
        assert.are.equal(OLD, S.readfile(dir .. "/dest.bin"))
        assert.are.equal("unrelated\n", S.readfile(dir .. "/keep.txt"))
        assert.are.same({}, S.listdir(tmp))
      end)

      it(name .. ": an absent destination stays absent", function()
        local dir = S.tmpdir()
        local opts = make(ng, f)
        opts.filePath = dir .. "/dest.bin"
        local out = fetch(opts)
        assert.are.same({ "fail", "complete" }, out.calls)
        assert.are.same({}, S.listdir(dir))
        assert.are.same({}, S.listdir(tmp))
      end)
    end

    it("a non-2xx response leaves the destination as it was", function()
      local dir = S.tmpdir()
      S.writefile(dir .. "/dest.bin", OLD)
      local out = fetch { url = f.url("/status/503?n=5000"), filePath = dir .. "/dest.bin" }
      assert.are.equal(503, out.res.statusCode)
      assert.are.same({ "dest.bin" }, S.listdir(dir))
      assert.are.equal(OLD, S.readfile(dir .. "/dest.bin"))
      assert.is_true(S.file_matches_pattern(out.res.tempFilePath, 5000))
    end)

    it("destination is a directory: it and its content are left alone", function()
      local dir = S.tmpdir()
      assert(lfs.mkdir(dir .. "/d"))
      S.writefile(dir .. "/d/inside", "x")
      local out = fetch { url = ng.url("small.txt"), filePath = dir .. "/d" }
      assert.are.equal(603300, out.err.errno)
      assert.are.same({ "d" }, S.listdir(dir))
      assert.are.same({ "inside" }, S.listdir(dir .. "/d"))
      assert.are.equal("x", S.readfile(dir .. "/d/inside"))
    end)

    it("missing directory: nothing is created", function()
      local dir = S.tmpdir()
      local out = fetch { url = ng.url("small.txt"), filePath = dir .. "/no/such/dir/f" }
      assert.are.equal(603300, out.err.errno)
      assert.are.same({}, S.listdir(dir))
    end)

    it("permission denied (read-only file system): the destination is untouched", function()
      local dir = S.tmpdir()
      local mnt = dir .. "/ro"
      if not H.mount_tmpfs(mnt, "size=1m") then
        print("permission denied: skipped, mount -t tmpfs is not permitted here")
        pending("cannot mount a tmpfs")
        return
      end
      H.then_umount(mnt, function()
        S.writefile(mnt .. "/dest.bin", OLD)
        assert(sh(("mount -o remount,ro %s"):format(quote(mnt))), "remount read-only failed")
        local out = fetch { url = ng.url("1k.bin"), filePath = mnt .. "/dest.bin" }
        assert.are.equal(603303, out.err.errno)
        assert.are.same({ "dest.bin" }, S.listdir(mnt))
        assert.are.equal(OLD, S.readfile(mnt .. "/dest.bin"))
      end)
    end)

    it("disk full: the partial file is removed", function()
      local dir = S.tmpdir()
      local mnt = dir .. "/small-fs"
      if not H.mount_tmpfs(mnt, "size=64k") then
        print("disk full: skipped, mount -t tmpfs is not permitted here")
        pending("cannot mount a small tmpfs")
        return
      end
      H.then_umount(mnt, function()
        S.writefile(mnt .. "/dest.bin", OLD)
        local out = fetch { url = ng.url("1m.bin"), filePath = mnt .. "/dest.bin" }
        assert.are.equal(603300, out.err.errno)
        assert.are.same({ "dest.bin" }, S.listdir(mnt))
        assert.are.equal(OLD, S.readfile(mnt .. "/dest.bin"))
      end)
    end)
  end)

  describe("success", function()
    it("replaces a pre-existing destination with the new content", function()
      local dir = S.tmpdir()
      S.writefile(dir .. "/dest.bin", OLD)
      S.writefile(dir .. "/keep.txt", "unrelated\n")
      local out = fetch { url = ng.url("1m.bin"), filePath = dir .. "/dest.bin" }
      assert.are.equal(200, out.res.statusCode)
      assert.is_true(S.file_matches_pattern(dir .. "/dest.bin", 1048576))
      assert.are.same({ "dest.bin", "keep.txt" }, S.listdir(dir))
    end)

    it("replaces a longer destination completely (no stale tail)", function()
      local dir = S.tmpdir()
      S.writefile(dir .. "/dest", ("z"):rep(5000))
      fetch { url = ng.url("small.txt"), filePath = dir .. "/dest" }
      assert.are.equal(S.SMALL_TXT, S.readfile(dir .. "/dest"))
    end)

    it("a relative filePath is relative to the current directory", function()
      local dir = S.tmpdir()
      local rel = "spec-files-rel-" .. tostring(os.time()) .. ".txt"
      local ok, err = pcall(function()
        local out = fetch { url = ng.url("small.txt"), filePath = rel }
        assert.are.equal(rel, out.res.filePath)
        assert.are.equal(S.SMALL_TXT, S.readfile(ROOT .. "/" .. rel))
      end)
      os.remove(ROOT .. "/" .. rel)
      assert(ok, err)
      assert.are.same({}, S.listdir(dir))
    end)

    it("a new destination gets mode 0666 & ~umask; a replaced one keeps its permission bits", function()
      local dir = S.tmpdir()
      local expected = ("%o"):format(clear_bits(0x1B6, umask()))      -- 0666 & ~umask
      fetch { url = ng.url("small.txt"), filePath = dir .. "/new" }
      assert.are.equal(expected, mode_of(dir .. "/new"))
      -- 0.2: a replaced destination keeps its mode (a 0600 file stays private)
      for _, m in ipairs { "600", "640", "755" } do
        S.writefile(dir .. "/old", OLD)
        sh("chmod " .. m .. " " .. quote(dir .. "/old"))
        fetch { url = ng.url("small.txt"), filePath = dir .. "/old" }
        assert.are.equal(m, mode_of(dir .. "/old"))
        assert.are.equal(S.SMALL_TXT, S.readfile(dir .. "/old"))
      end
      -- with resume too (the part file is sealed the same way)
      S.writefile(dir .. "/old", OLD)
      sh("chmod 600 " .. quote(dir .. "/old"))
      fetch { url = ng.url("small.txt"), filePath = dir .. "/old", resume = true }
      assert.are.equal("600", mode_of(dir .. "/old"))
      assert.are.equal(S.SMALL_TXT, S.readfile(dir .. "/old"))
    end)

    for _, m in ipairs { { "077", "600" }, { "002", "664" }, { "022", "644" } } do
      it("the destination gets mode " .. m[2] .. " under umask " .. m[1] .. " (child process)", function()
        local dir = S.tmpdir()
        local out = H.child(([[
          local dt = require "downloadtask"
          local res, err = dt.downloadFile{url = %q, filePath = %q}:await()
          print(res and res.statusCode or err.errMsg)
        ]]):format(ng.url("small.txt"), dir .. "/f"), "umask " .. m[1] .. " &&")
        assert.are.equal("200\n", out)
        assert.are.equal(m[2], mode_of(dir .. "/f"))
      end)
    end
  end)

  describe("symlinks", function()
    -- 0.2 (SPEC "Destination kinds"): a symlink is resolved and its final
    -- target replaced; the link stays a link
    it("a destination that is a symlink: the link stays, its final target is replaced", function()
      local dir = S.tmpdir()
      S.writefile(dir .. "/target", OLD)
      assert(lfs.link("target", dir .. "/mid", true))
      assert(lfs.link("mid", dir .. "/dest", true))          -- a chain of two links
      local out = fetch { url = ng.url("small.txt"), filePath = dir .. "/dest" }
      assert.are.equal(200, out.res.statusCode)
      assert.are.equal(dir .. "/dest", out.res.filePath)
      assert.are.equal("link", lfs.symlinkattributes(dir .. "/dest", "mode"))
      assert.are.equal("link", lfs.symlinkattributes(dir .. "/mid", "mode"))
      assert.are.equal("file", lfs.symlinkattributes(dir .. "/target", "mode"))
      assert.are.equal(S.SMALL_TXT, S.readfile(dir .. "/target"))
      assert.are.same({ "dest", "mid", "target" }, S.listdir(dir))
    end)

    it("a dangling symlink at the destination: its target is created, the link stays", function()
      local dir = S.tmpdir()
      local elsewhere = S.tmpdir()
      assert(lfs.link(elsewhere .. "/created-through-link", dir .. "/dest", true))
      local out = fetch { url = ng.url("small.txt"), filePath = dir .. "/dest" }
      assert.are.equal(200, out.res.statusCode)
      assert.are.equal("link", lfs.symlinkattributes(dir .. "/dest", "mode"))
      assert.are.equal(S.SMALL_TXT, S.readfile(dir .. "/dest"))
      assert.are.same({ "created-through-link" }, S.listdir(elsewhere))
    end)

    it("after a failure, a symlinked destination and its target are unchanged", function()
      local dir = S.tmpdir()
      S.writefile(dir .. "/target", OLD)
      assert(lfs.link("target", dir .. "/dest", true))
      local out = fetch { url = f.url("/bytes?n=100000&dropafter=50000"), filePath = dir .. "/dest" }
      assert.are.equal(600000, out.err.errno)
      assert.are.equal("link", lfs.symlinkattributes(dir .. "/dest", "mode"))
      assert.are.equal(OLD, S.readfile(dir .. "/target"))
      assert.are.same({ "dest", "target" }, S.listdir(dir))
    end)

    it("the temporary file is written beside the link's final target", function()
      local dir, other = S.tmpdir(), S.tmpdir()
      S.writefile(other .. "/target", OLD)
      assert(lfs.link(other .. "/target", dir .. "/dest", true))
      local seen
      local t = start { url = f.url("/bytes?n=60000&rate=60000"), filePath = dir .. "/dest" }
      t:onProgressUpdate(function(p)
        if not seen and p.totalBytesWritten > 0 then seen = { S.listdir(dir), S.listdir(other) } end
      end)
      settle()
      assert.is_not_nil(seen, "no progress event")
      assert.are.same({ "dest" }, seen[1])
      assert.are.equal(2, #seen[2])                         -- the target and a temporary file
      assert.matches("^%.dt%..+%.tmp$", seen[2][1] == "target" and seen[2][2] or seen[2][1])
      assert.are.equal("link", lfs.symlinkattributes(dir .. "/dest", "mode"))
      assert.is_true(S.file_matches_pattern(other .. "/target", 60000))
      assert.are.same({ "target" }, S.listdir(other))
    end)
  end)

  describe("abort", function()
    it("while queued: nothing is created, the destination is untouched", function()
      dt.configure { maxConcurrent = 1 }
      local dir = S.tmpdir()
      S.writefile(dir .. "/dest.bin", OLD)
      local first = start { url = f.url("/bytes?n=10&hdelay=500"), filePath = dir .. "/first" }
      local out = {}
      local t = start { url = ng.url("1m.bin"), filePath = dir .. "/dest.bin",
                        fail = function(e) out.err = e end, success = function(r) out.res = r end }
      dt.poll(50)
      assert.are.equal("queued", t.state)
      t:abort()
      settle()
      assert.are.equal("downloadFile:fail abort", out.err.errMsg)
      assert.are.equal(600003, out.err.errno)
      assert.are.equal("done", first.state)
      assert.are.same({ "dest.bin", "first" }, S.listdir(dir))
      assert.are.equal(OLD, S.readfile(dir .. "/dest.bin"))
    end)

    -- The strict form: the moment fail "abort" has been delivered and run()
    -- has returned, the temporary file must be gone.
    -- Regression: this was a bug at fae49ab (the .part of an aborted download
    -- was removed asynchronously by the engine thread after fail "abort" had
    -- been delivered: ~1 in 3 mid-body aborts and ~4 in 5 aborts after the
    -- transfer finished left <dest>.<rand>.part behind when run() returned).
    -- Repro at fae49ab (after finish, before delivery):
    --   local t = dt.downloadFile{url = nginx.url("small.txt"), filePath = dir.."/s"}
    --   socket.sleep(0.1); t:abort(); dt.run(); print(S.listdir(dir)[1])  --> s.8e480927.part
    -- The uncommitted engine change (DT_EV_ABORTED: "abort" is delivered once
    -- the engine has removed the files) makes both strict specs pass.
    it("mid-body: no temporary file once fail 'abort' is delivered (strict, 10 tries)", function()
      local leftovers = {}
      for i = 1, 10 do
        local dir = S.tmpdir()
        S.writefile(dir .. "/dest.bin", OLD)
        local got
        local t = start { url = f.url("/bytes?n=2000000&rate=400000"), filePath = dir .. "/dest.bin",
                          complete = function(r) got = r end }
        t:onProgressUpdate(function(p) if p.totalBytesWritten > 0 then t:abort() end end)
        settle()
        assert.are.equal("downloadFile:fail abort", got.errMsg)
        local l = S.listdir(dir)
        if #l ~= 1 then leftovers[#leftovers + 1] = ("try %d: %s"):format(i, table.concat(l, " ")) end
        assert.are.equal(OLD, S.readfile(dir .. "/dest.bin"))
      end
      assert.are.same({}, leftovers)
    end)

    it("mid-body: the destination is untouched and the temporary file goes away", function()
      local dir = S.tmpdir()
      S.writefile(dir .. "/dest.bin", OLD)
      local got, parts
      local t = start { url = f.url("/bytes?n=2000000&rate=400000"), filePath = dir .. "/dest.bin",
                        complete = function(r) got = r end }
      t:onProgressUpdate(function(p)
        if p.totalBytesWritten > 0 and not parts then
          parts = S.listdir(dir)
          t:abort()
        end
      end)
      settle()
      assert.are.equal(2, #parts)                  -- the .part existed mid-body
      assert.are.equal("downloadFile:fail abort", got.errMsg)
      assert.are.equal("aborted", t.state)
      assert.are.same({ "dest.bin" }, eventually_listing(dir, { "dest.bin" }))
      assert.are.equal(OLD, S.readfile(dir .. "/dest.bin"))
    end)

    it("a 100 MiB download aborted mid-body leaves nothing", function()
      dt.configure { progressInterval = 0 }
      local dir = S.tmpdir()
      local got, at_abort
      local t = start { url = ng.url("100m.bin"), filePath = dir .. "/100m.bin",
                        complete = function(r) got = r end }
      t:onProgressUpdate(function(p)
        if p.totalBytesWritten > 0 and not at_abort then
          local l = S.listdir(dir)
          at_abort = l[1] and S.filesize(dir .. "/" .. l[1]) or -1
          t:abort()
        end
      end)
      settle(30)
      assert.are.equal("downloadFile:fail abort", got.errMsg)
      -- the scenario really was mid-body: the .part was there and not complete
      assert.is_true(at_abort > 0 and at_abort < 104857600, "size of the .part at abort: " .. tostring(at_abort))
      assert.are.same({}, eventually_listing(dir, {}))
      assert.is_nil(lfs.attributes(dir .. "/100m.bin"))
    end)

    it("after the transfer finished, before success was delivered: destination untouched", function()
      local dir = S.tmpdir()
      S.writefile(dir .. "/dest.bin", OLD)
      local out = { calls = {} }
      local t = start { url = ng.url("1k.bin"), filePath = dir .. "/dest.bin",
                        success = function() out.calls[#out.calls + 1] = "success" end,
                        fail = function(e) out.err = e; out.calls[#out.calls + 1] = "fail" end,
                        complete = function() out.calls[#out.calls + 1] = "complete" end }
      -- no poll: wait for the engine to finish the body into the .part
      local deadline, before = now() + 5, nil
      repeat
        socket.sleep(0.02)
        before = S.listdir(dir)
        local part = before[1] ~= "dest.bin" and before[1] or before[2]
        local done = part and S.filesize(dir .. "/" .. part) == 1024
      until done or now() > deadline
      socket.sleep(0.1)
      assert.are.equal(2, #before)
      t:abort()
      settle()
      assert.are.same({ "fail", "complete" }, out.calls)
      assert.are.equal("downloadFile:fail abort", out.err.errMsg)
      assert.are.equal(OLD, S.readfile(dir .. "/dest.bin"))
      assert.are.same({ "dest.bin" }, eventually_listing(dir, { "dest.bin" }))
      -- and it stays that way
      dt.poll(100)
      assert.are.equal(OLD, S.readfile(dir .. "/dest.bin"))
    end)

    -- Regression: see the strict mid-body case above.
    it("after the transfer finished: no temporary file once fail 'abort' is delivered (strict, 10 tries)", function()
      local leftovers = {}
      for i = 1, 10 do
        local dir = S.tmpdir()
        local got
        local t = start { url = ng.url("small.txt"), filePath = dir .. "/s",
                          complete = function(r) got = r end }
        local deadline = now() + 5
        repeat socket.sleep(0.01) until (S.listdir(dir)[1] and S.filesize(dir .. "/" .. S.listdir(dir)[1]) == 19)
          or now() > deadline
        socket.sleep(0.05)
        t:abort()
        settle()
        assert.are.equal("downloadFile:fail abort", got.errMsg)
        local l = S.listdir(dir)
        if #l ~= 0 then leftovers[#leftovers + 1] = ("try %d: %s"):format(i, table.concat(l, " ")) end
      end
      assert.are.same({}, leftovers)
    end)

    it("after success was delivered, abort is a no-op and the file stays", function()
      local dir = S.tmpdir()
      local out = fetch { url = ng.url("small.txt"), filePath = dir .. "/s" }
      assert.are.equal(200, out.res.statusCode)
      out.task:abort()
      settle()
      dt.poll(50)
      assert.are.same({ "success", "complete" }, out.calls)
      assert.are.equal(S.SMALL_TXT, S.readfile(dir .. "/s"))
      assert.are.same({ "s" }, S.listdir(dir))
    end)

    it("abort of a download without filePath leaves no private file in tempDir", function()
      local got
      local t = start { url = f.url("/bytes?n=2000000&rate=400000"), complete = function(r) got = r end }
      t:onProgressUpdate(function(p) if p.totalBytesWritten > 0 then t:abort() end end)
      settle()
      assert.are.equal("downloadFile:fail abort", got.errMsg)
      assert.are.same({}, eventually_listing(tmp, {}))
    end)

    -- Without filePath the body's private file is made while the request is on its
    -- way (engine.c, open_ahead): before any answer, tempDir already holds it. Whatever
    -- ends the download, nothing of it may be left (strict: at the moment fail/complete
    -- is delivered).
    it("abort before any answer: the private file made ahead is gone when fail 'abort' is delivered", function()
      local got, listing
      local t = start { url = f.url("/bytes?n=10&hdelay=3000"),
                        complete = function(r) got = r; listing = S.listdir(tmp) end }
      local deadline = now() + 5
      while #S.listdir(tmp) == 0 and now() < deadline do dt.poll(10) end
      assert.are.equal(1, #S.listdir(tmp)) -- made ahead, before the answer
      dt.poll(0) -- the start, published before the file was made, is taken here
      assert.are.equal("running", t.state)
      t:abort()
      settle()
      assert.are.equal("downloadFile:fail abort", got.errMsg)
      assert.are.same({}, listing)
    end)
  end)

  describe("without filePath, tempDir holds at the end only what the result names", function()
    local cases = {
      { "a 304 (etag matches): no file", function() return { url = f.url("/bytes?n=100&etag=E1"), etag = "E1" } end, 304 },
      { "a 503 retried into a 200: the 200's body only", function()
          return { url = f.url("/flaky?key=ahead503&fails=1&status=503&n=1000"), retry = 1 } end, 200 },
      { "a 404: its body", function() return { url = f.url("/status/404?n=50") } end, 404 },
      { "a stall before the answer (timeout): nothing", function()
          return { url = f.url("/bytes?n=10&hdelay=3000"), timeout = 300 } end, nil },
      { "connection refused: nothing", function() return { url = "http://127.0.0.1:1/" } end, nil },
    }
    for _, c in ipairs(cases) do
      it(c[1], function()
        local opts = c[2]()
        local res, err, listing
        opts.success = function(r) res = r end
        opts.fail = function(e) err = e end
        opts.complete = function() listing = S.listdir(tmp) end
        start(opts)
        settle()
        if c[3] then
          assert.is_nil(err)
          assert.are.equal(c[3], res.statusCode)
          if res.tempFilePath then
            assert.are.same({ res.tempFilePath:match("[^/]+$") }, listing)
            os.remove(res.tempFilePath)
          else
            assert.are.same({}, listing)
          end
        else
          assert.is_nil(res)
          assert.is_table(err)
          assert.are.same({}, listing)
        end
        assert.are.same({}, eventually_listing(tmp, {}))
      end)
    end
  end)

  describe("abort, <close>", function()
    -- Lua 5.4 only; S.with_close(v, fn) is `do local t <close> = v; fn(t) end`
    local it = S.with_close and it or pending
    it("<close> aborts: nothing is left", function()
      local dir = S.tmpdir()
      local got
      S.with_close(dt.downloadFile { url = f.url("/bytes?n=2000000&rate=400000"),
          filePath = dir .. "/c", complete = function(r) got = r end }, function()
        local deadline = now() + 5
        while #S.listdir(dir) == 0 and now() < deadline do dt.poll(10) end
      end)
      settle()
      assert.are.equal("downloadFile:fail abort", got.errMsg)
      assert.are.same({}, eventually_listing(dir, {}))
    end)
  end)
end)
