-- Regressions of issue 10 ("The file promise, made exact"), engine side: each
-- case names the item it covers and failed at 14b16c9. Against the real
-- servers: nginx and the fault server (lie206, lie416, fold, cookies).
local dt = require "downloadtask"
local S = require "spec.support.servers"
local H = require "spec.support.helpers"
local lfs = require "lfs"
local socket = require "socket"

local quote, sh, OLD = S.quote, H.sh, H.OLD
local f, ng
local N = 100000

local T = H.tracker()
after_each(T.cleanup)

setup(function()
  f = S.fault()
  ng = S.nginx()
end)

local function fetch(opts) return T.fetch(opts) end

local part_files = require("spec.support.helpers").part_files

-- a part of N/2 bytes of version "v1" for dest
local function interrupted(dest)
  local out = fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22&dropafter=%d"):format(N, N / 2)),
    filePath = dest, resume = true }
  assert.are.equal(600000, out.err and out.err.errno)
  local part, info = part_files(dest:match("^(.*)/[^/]*$"))
  assert(part and info, "no part file")
  assert.are.equal(N / 2, S.filesize(part))
  return part, info
end

local function is_pattern(path, offset, n)
  local s = S.readfile(path)
  return s ~= nil and #s == n and s == S.pattern(offset, n)
end

local function sha256_of(s)
  local tmp = os.tmpname()
  S.writefile(tmp, s)
  local p = assert(io.popen("sha256sum " .. quote(tmp)))
  local out = p:read("*a")
  p:close()
  os.remove(tmp)
  return out:match("^(%x+)")
end

describe("issue 10 #1: a write failure is a failure in every mode", function()
  -- a file-size limit in a child process: bash's ulimit -f 49 allows 50,176
  -- bytes; SIGXFSZ ignored so the write fails with EFBIG. At 14b16c9 the
  -- rateLimit case reported success with 49,152 bytes and replaced the file.
  for _, mode in ipairs { "rateLimit", "plain", "sha256", "resume" } do
    it(mode .. ": 603300, the old destination kept, nothing else left", function()
      local dir = S.tmpdir()
      S.writefile(dir .. "/dest", OLD)
      local extra = ({ rateLimit = "rateLimit = 20000,", plain = "",
        sha256 = ("sha256 = %q,"):format(("0"):rep(64)), resume = "resume = true, rateLimit = 20000," })[mode]
      local out, rc = H.child(([[
        local dt = require "downloadtask"
        local res, err = dt.downloadFile{url = %q, filePath = %q, %s}:await()
        print("RESULT", res and "success" or "fail", res and res.dataLength or err.errno, err and err.errMsg)
      ]]):format(f.url("/bytes?n=60000&nolength=1&etag=%22e%22"), dir .. "/dest", extra),
        -- bash's ulimit -f counts KiB (dash's counts 512-byte blocks)
        [[bash -c 'ulimit -f 49; trap "" XFSZ; exec "$@"' limited]])
      assert.are.equal(0, rc, out)
      assert.matches("RESULT\tfail\t603300\tdownloadFile:fail save file error: File too large", out, 1, true)
      assert.are.equal(OLD, S.readfile(dir .. "/dest"))
      local left = S.listdir(dir)
      if mode == "resume" then -- the part holds what reached the file, for the next attempt
        assert.are.equal(3, #left)
      else
        assert.are.same({ "dest" }, left)
      end
    end)
  end

  it("a full tmpfs with rateLimit: 603300, the old destination kept", function()
    local mnt = S.tmpdir() .. "/mnt"
    if not H.mount_tmpfs(mnt, "size=64k") then
      pending("cannot mount a small tmpfs")
      return
    end
    H.then_umount(mnt, function()
      S.writefile(mnt .. "/dest", OLD)
      local out = fetch { url = f.url("/bytes?n=200000&nolength=1"), filePath = mnt .. "/dest", rateLimit = 400000 }
      assert.are.equal(603300, out.err and out.err.errno)
      assert.are.equal("downloadFile:fail save file error: No space left on device", out.err.errMsg)
      assert.are.equal(OLD, S.readfile(mnt .. "/dest"))
      assert.are.same({ "dest" }, S.listdir(mnt))
    end)
  end)
end)

describe("issue 10 #2: resume appends a 206 only where the part ends", function()
  for _, lie in ipairs { "start", "none" } do
    it("a 206 with lie206=" .. lie .. " fails, empties the part; the next download starts over", function()
      local dir = S.tmpdir()
      local dest = dir .. "/out.bin"
      S.writefile(dest, OLD)
      interrupted(dest)
      local out = fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22&lie206=%s"):format(N, lie)),
        filePath = dest, resume = true }
      assert.are.equal(600000, out.err and out.err.errno)
      assert.are.equal("downloadFile:fail the server's 206 does not continue the partial file", out.err.errMsg)
      assert.are.equal(OLD, S.readfile(dest))
      assert.are.same({ "out.bin" }, S.listdir(dir)) -- an empty part is not kept
      out = fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22"):format(N)), filePath = dest, resume = true }
      assert.are.equal(200, out.res.statusCode)
      assert.is_true(is_pattern(dest, 0, N))
    end)
  end

  it("with retry, the next attempt starts over and gets the whole file", function()
    local dir = S.tmpdir()
    local dest = dir .. "/out.bin"
    interrupted(dest)
    local out = fetch { url = f.url(("/flaky?key=lie206r&fails=1&n=%d&range=1&etag=%%22v1%%22&lie206=start"):format(N)),
      filePath = dest, resume = true, retry = 2 }
    assert.are.equal(200, out.res and out.res.statusCode, out.err and out.err.errMsg)
    assert.are.equal(2, out.res.attempts)
    assert.is_true(is_pattern(dest, 0, N))
    assert.are.same({ "out.bin" }, S.listdir(dir))
  end)

  it("a hostile 206 Content-Length does not overflow the expected total (UBSan)", function()
    local dir = S.tmpdir()
    local dest = dir .. "/out.bin"
    interrupted(dest)
    local totals = {}
    local t = T.start { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22&cl=9223372036854775807"):format(N)),
      filePath = dest, resume = true }
    t:onProgressUpdate(function(p) totals[#totals + 1] = p.totalBytesExpectedToWrite end)
    local res, err = t:await()
    assert.is_nil(res)
    assert.are.equal(600000, err.errno)
    for _, v in ipairs(totals) do assert.is_true(v == -1 or v >= N, tostring(v)) end
  end)
end)

describe("issue 10 #3: a 416 completes a part only at its size, then sha256 is checked", function()
  -- A 416 whose length is not the one the first answer gave (the record keeps it, issue 20
  -- item 2) does not complete the part: it is an ordinary answer (before 0.3 the part was
  -- taken, and only sha256 caught it).
  it("a corrupt part and a lying 416: the part is not completed, the destination kept, the part gone", function()
    local dir = S.tmpdir()
    local dest = dir .. "/out.bin"
    S.writefile(dest, OLD)
    local part = interrupted(dest)
    S.writefile(part, ("x"):rep(N / 2))
    local want = sha256_of(S.pattern(0, N))
    local out = fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22&lie416=%d"):format(N, N / 2)),
      filePath = dest, resume = true, sha256 = want }
    assert.are.equal(416, out.res and out.res.statusCode, out.err and out.err.errMsg)
    assert.is_nil(out.res.filePath)
    assert.are.equal(OLD, S.readfile(dest))
    assert.are.same({ "out.bin" }, S.listdir(dir))
  end)

  it("a complete part and a true 416 with the right sha256: success, res.sha256 is the part's", function()
    local dir = S.tmpdir()
    local dest = dir .. "/out.bin"
    local part = interrupted(dest)
    S.writefile(part, S.pattern(0, N))
    local want = sha256_of(S.pattern(0, N))
    local out = fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22"):format(N)),
      filePath = dest, resume = true, sha256 = want }
    assert.are.equal(416, out.res and out.res.statusCode)
    assert.are.equal(want, out.res.sha256)
    assert.is_true(is_pattern(dest, 0, N))
    assert.are.same({ "out.bin" }, S.listdir(dir))
  end)

  it("a 416 of another size: the part is dropped, the 416 body goes to tempFilePath", function()
    local dir = S.tmpdir()
    local dest = dir .. "/out.bin"
    S.writefile(dest, OLD)
    interrupted(dest)
    local out = fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22&lie416=%d"):format(N, 77)),
      filePath = dest, resume = true }
    assert.are.equal(416, out.res and out.res.statusCode)
    assert.is_nil(out.res.filePath)
    if out.res.tempFilePath then os.remove(out.res.tempFilePath) end
    assert.are.equal(OLD, S.readfile(dest))
    assert.are.same({ "out.bin" }, S.listdir(dir))
  end)
end)

describe("issue 10 #4: one destination, one writer", function()
  for _, resume in ipairs { true, false } do
    it("two downloads to one filePath (resume = " .. tostring(resume) .. "): the second waits queued; each success finds its own body", function()
      local dir = S.tmpdir()
      local dest = dir .. "/out.bin"
      local seen = {}
      local function opts(shift, tag)
        return { url = f.url(("/bytes?n=%d&range=1&etag=%%22%s%%22&shift=%d&rate=400000"):format(N, tag, shift)),
          filePath = dest, resume = resume,
          success = function(r) seen[#seen + 1] = { tag, is_pattern(dest, shift, N), r.dataLength } end }
      end
      local a = dt.downloadFile(opts(0, "a"))
      local b = dt.downloadFile(opts(5, "b"))
      local waited = false
      while a.state ~= "done" do
        dt.poll(10)
        if a.state == "running" and b.state == "queued" then waited = true end
        assert.are_not.equal("running", a.state == "running" and b.state or nil)
      end
      b:await()
      assert.is_true(waited, "b never waited while a ran")
      assert.are.same({ { "a", true, N }, { "b", true, N } }, seen)
      assert.is_true(is_pattern(dest, 5, N))
      assert.are.same({ "out.bin" }, S.listdir(dir))
    end)
  end

  it("a link and its target are one destination", function()
    local dir = S.tmpdir()
    assert(lfs.link("target", dir .. "/link", true))
    local a = dt.downloadFile { url = f.url(("/bytes?n=%d&rate=400000"):format(N)), filePath = dir .. "/target" }
    local b = dt.downloadFile { url = f.url(("/bytes?n=%d&shift=3"):format(N)), filePath = dir .. "/link" }
    local waited = false
    while a.state ~= "done" do
      dt.poll(10)
      if a.state == "running" and b.state == "queued" then waited = true end
    end
    assert(b:await())
    assert.is_true(waited)
    assert.is_true(is_pattern(dir .. "/target", 3, N))
    assert.are.equal("link", lfs.symlinkattributes(dir .. "/link", "mode"))
  end)
end)

describe("issue 10 #5: a destination is never replaced by a file of another kind", function()
  it("a FIFO with a reader is written in place and stays a FIFO", function()
    local dir = S.tmpdir()
    assert(sh("mkfifo " .. quote(dir .. "/fifo")))
    assert(sh(("(cat %s > %s) </dev/null >/dev/null 2>&1 &"):format(quote(dir .. "/fifo"), quote(dir .. "/got"))))
    socket.sleep(0.1)
    local out = fetch { url = f.url("/bytes?n=" .. N), filePath = dir .. "/fifo" }
    assert.are.equal(200, out.res and out.res.statusCode, out.err and out.err.errMsg)
    assert.are.equal(dir .. "/fifo", out.res.filePath)
    assert.are.equal("named pipe", lfs.attributes(dir .. "/fifo", "mode"))
    for _ = 1, 100 do if S.filesize(dir .. "/got") == N then break end socket.sleep(0.02) end
    assert.is_true(is_pattern(dir .. "/got", 0, N))
    assert.are.same({ "fifo", "got" }, S.listdir(dir))
  end)

  it("a FIFO without a reader fails at once with 603300 naming it", function()
    local dir = S.tmpdir()
    assert(sh("mkfifo " .. quote(dir .. "/fifo")))
    local t0 = socket.gettime()
    local out = fetch { url = f.url("/bytes?n=" .. N), filePath = dir .. "/fifo", timeout = 5000 }
    assert.are.equal(603300, out.err and out.err.errno)
    assert.are.equal("downloadFile:fail save file error: FIFO has no reader: " .. dir .. "/fifo", out.err.errMsg)
    assert.is_true(socket.gettime() - t0 < 2)
    assert.are.equal("named pipe", lfs.attributes(dir .. "/fifo", "mode"))
    assert.are.same({ "fifo" }, S.listdir(dir))
  end)

  it("a character device (a private null device) is written in place and stays one", function()
    local dir = S.tmpdir()
    if not sh("mknod " .. quote(dir .. "/null") .. " c 1 3 2>/dev/null") then
      pending("mknod is not permitted here")
      return
    end
    local out = fetch { url = ng.url("1m.bin"), filePath = dir .. "/null" }
    assert.are.equal(200, out.res and out.res.statusCode, out.err and out.err.errMsg)
    assert.are.equal(1048576, out.res.dataLength)
    assert.are.equal("char device", lfs.attributes(dir .. "/null", "mode"))
    assert.are.same({ "null" }, S.listdir(dir))
  end)

  it("a block device fails with 603300 naming it, and stays one", function()
    local dir = S.tmpdir()
    if not sh("mknod " .. quote(dir .. "/blk") .. " b 7 200 2>/dev/null") then
      pending("mknod is not permitted here")
      return
    end
    local out = fetch { url = ng.url("small.txt"), filePath = dir .. "/blk" }
    assert.are.equal(603300, out.err and out.err.errno)
    assert.are.equal("downloadFile:fail save file error: destination is a block device: " .. dir .. "/blk", out.err.errMsg)
    assert.are.equal("block device", lfs.attributes(dir .. "/blk", "mode"))
    assert.are.same({ "blk" }, S.listdir(dir))
  end)

  it("a non-2xx body never goes into a FIFO: it goes to tempFilePath", function()
    local dir = S.tmpdir()
    assert(sh("mkfifo " .. quote(dir .. "/fifo")))
    assert(sh(("(cat %s > %s) </dev/null >/dev/null 2>&1 &"):format(quote(dir .. "/fifo"), quote(dir .. "/got"))))
    socket.sleep(0.1)
    local out = fetch { url = f.url("/bytes?status=404&n=300"), filePath = dir .. "/fifo" }
    assert.are.equal(404, out.res and out.res.statusCode)
    assert.is_true(is_pattern(out.res.tempFilePath, 0, 300))
    os.remove(out.res.tempFilePath)
    for _ = 1, 100 do if S.filesize(dir .. "/got") then break end socket.sleep(0.02) end
    socket.sleep(0.05)
    assert.are.equal(0, S.filesize(dir .. "/got"))
  end)
end)

describe("issue 10 #8: descriptors are close-on-exec", function()
  it("a program started during a download inherits no socket or pipe of the module", function()
    -- what a program inherits before the module is loaded, and during a download
    local out, rc = H.child(([[
      local function inherited()
        local ls = io.popen("ls -l /proc/self/fd/ 2>&1")
        local s = ls:read("*a")
        ls:close()
        return s
      end
      print("BEFORE", inherited())
      local dt = require "downloadtask"
      local t = dt.downloadFile{url = %q}
      local seen
      t:onProgressUpdate(function(p)
        if not seen and p.totalBytesWritten > 0 then seen = inherited() end
      end)
      local res = t:await()
      os.remove(res.tempFilePath)
      print("DURING", seen)
    ]]):format(f.url("/bytes?n=400000&rate=400000")))
    assert.are.equal(0, rc, out)
    local before, during = out:match("BEFORE\t(.*)DURING\t(.*)$")
    assert.is_truthy(during and during:find("->", 1, true), out)
    assert.is_nil(during:match("socket:%["), out)
    local function fds(listing)
      local set = {}
      for fd, what in listing:gmatch("(%d+) %-> ([^\n]*)") do set[fd] = what end
      return set
    end
    local b = fds(before)
    for fd, what in pairs(fds(during)) do
      -- 1 is popen's pipe (a new one each time), 3 is ls's own directory; a checker's own
      -- files (valgrind's log of the ls process) are not the module's: sockets and pipes are
      if fd ~= "1" and fd ~= "3" and (what:match("^socket:") or what:match("^pipe:") or what:match("^anon_inode:")) then
        assert.is_truthy(b[fd], "inherited: " .. fd .. " -> " .. what)
      end
    end
  end)
end)

describe("issue 10 #12: what a killed process leaves is swept, a live one's never", function()
  it("the temporary file of a process that exited without lua_close is removed by the next download there", function()
    local dir = S.tmpdir()
    local out, rc = H.child(([[
      local dt = require "downloadtask"
      local t = dt.downloadFile{url = %q, filePath = %q}
      t:onProgressUpdate(function(p) if p.totalBytesWritten > 0 then os.exit(0, false) end end)
      t:await()
    ]]):format(f.url("/bytes?n=400000&rate=200000"), dir .. "/a"))
    assert.are.equal(0, rc, out)
    local left = S.listdir(dir)
    assert.are.equal(1, #left, "the killed download left its temporary file")
    assert.matches("^%.dt%.%x+%.%d+%.%x+%.tmp$", left[1])
    local res = fetch { url = ng.url("small.txt"), filePath = dir .. "/b" }
    assert.are.equal(200, res.res.statusCode)
    assert.are.same({ "b" }, S.listdir(dir))
  end)

  -- Was (issue 22 item 18): a body without filePath went to tempDir as downloadtask-XXXXXXXX
  -- from the start, a name without host and pid, so what a killed process left there stayed.
  -- While it is written it now has the sweepable name, and the one it is delivered under
  -- (res.tempFilePath, yours to keep) only when it is done.
  it("the private file of a filePath-less download of a killed process is removed from tempDir", function()
    local dir = S.tmpdir()
    local out, rc = H.child(([[
      local dt = require "downloadtask"
      dt.configure { tempDir = %q }
      local t = dt.downloadFile{url = %q}
      t:onProgressUpdate(function(p) if p.totalBytesWritten > 0 then os.exit(0, false) end end)
      t:await()
    ]]):format(dir, f.url("/bytes?n=400000&rate=200000")))
    assert.are.equal(0, rc, out)
    local left = S.listdir(dir)
    assert.are.equal(1, #left, "the killed download left its file")
    assert.matches("^%.dt%.%x+%.%d+%.%x+%.tmp$", left[1])
    -- a delivered body keeps its name and stays: it is the caller's
    local kept, rc2 = H.child(([[
      local dt = require "downloadtask"
      dt.configure { tempDir = %q }
      local res = assert(dt.downloadFile{url = %q}:await())
      print(res.tempFilePath)
    ]]):format(dir, ng.url("small.txt")))
    assert.are.equal(0, rc2, kept)
    local delivered = kept:match("([^\n]+)\n$")
    assert.matches("/downloadtask%-%x+$", delivered)
    dt.configure { tempDir = dir }
    local res = fetch { url = ng.url("small.txt") }
    dt.configure { tempDir = os.getenv("TMPDIR") or "/tmp" }
    assert.are.equal(200, res.res.statusCode)
    local names = S.listdir(dir)
    table.sort(names)
    local want = { delivered:match("[^/]+$"), res.res.tempFilePath:match("[^/]+$") }
    table.sort(want)
    assert.are.same(want, names, "the killed process's file was swept, the delivered ones kept")
    assert.are.equal(S.SMALL_TXT, S.readfile(delivered))
    os.remove(delivered)
    os.remove(res.res.tempFilePath)
  end)

  it("another process's download into the same directory does not remove this one's", function()
    local dir = S.tmpdir()
    local t = T.start { url = f.url(("/bytes?n=%d&rate=200000"):format(N)), filePath = dir .. "/mine" }
    while #S.listdir(dir) == 0 do dt.poll(10) end
    local out, rc = H.child(([[
      local dt = require "downloadtask"
      local res, err = dt.downloadFile{url = %q, filePath = %q}:await()
      print(res and res.statusCode or err.errMsg)
    ]]):format(ng.url("small.txt"), dir .. "/theirs"))
    assert.are.equal("200\n", out)
    assert.are.equal(0, rc)
    local res, err = t:await()
    assert.is_truthy(res, err and err.errMsg)
    assert.is_true(is_pattern(dir .. "/mine", 0, N))
    assert.are.same({ "mine", "theirs" }, S.listdir(dir))
  end)

  it("aborted queued and unstarted resume tasks leave no empty part files", function()
    local dir = S.tmpdir()
    dt.configure { maxConcurrent = 1 }
    local first = T.start { url = f.url("/bytes?n=1000&hdelay=300"), filePath = dir .. "/x0", resume = true }
    local tasks = {}
    for i = 1, 5 do tasks[i] = T.start { url = f.url("/bytes?n=1000"), filePath = dir .. "/x" .. i, resume = true } end
    dt.poll(50)
    for _, t in ipairs(tasks) do t:abort() end
    first:abort()
    dt.run()
    dt.configure { maxConcurrent = 10 }
    assert.are.same({}, S.listdir(dir))
  end)
end)

describe("issue 10 #13: any name the file system accepts is a destination", function()
  for _, resume in ipairs { false, true } do
    it("a 255-byte name (resume = " .. tostring(resume) .. ")", function()
      local dir = S.tmpdir()
      local name = ("n"):rep(251) .. ".bin"
      assert.are.equal(255, #name)
      if resume then interrupted(dir .. "/" .. name) end
      local out = fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22"):format(N)), filePath = dir .. "/" .. name,
        resume = resume }
      assert.are.equal(200, out.res and out.res.statusCode, out.err and out.err.errMsg)
      assert.is_true(is_pattern(dir .. "/" .. name, 0, N))
      assert.are.same({ name }, S.listdir(dir))
    end)
  end
end)

describe("issue 10 #14: headers", function()
  it("an obsolete folded line continues the previous header, joined with one space", function()
    local out = fetch { url = f.url("/bytes?n=10&fold=1") }
    assert.are.equal("first second", out.res.header["x-folded"])
    os.remove(out.res.tempFilePath)
  end)

  it("1001 Set-Cookie headers: the download fails saying so, rather than dropping some", function()
    local dir = S.tmpdir()
    local out = fetch { url = f.url("/bytes?n=10&cookies=1001"), filePath = dir .. "/d" }
    assert.are.equal(600000, out.err and out.err.errno)
    assert.are.equal("downloadFile:fail the response had too many headers", out.err.errMsg)
    assert.are.same({}, S.listdir(dir))
  end)
end)

describe("durable", function()
  it("fsyncs the file before the rename and the directory after it (strace)", function()
    if not S.have("strace") then
      pending("strace is not installed (Debian: strace; ./dev deps installs it)")
      return
    end
    local function count(durable)
      local dir = S.tmpdir()
      local out = H.child(([[
        local dt = require "downloadtask"
        local res, err = dt.downloadFile{url = %q, filePath = %q, durable = %s}:await()
        print("RESULT", res and res.statusCode or err.errMsg)
      ]]):format(ng.url("1k.bin"), dir .. "/d", tostring(durable)), -- LeakSanitizer cannot run under ptrace (make asan's host)
        "ASAN_OPTIONS=${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0 strace -f -qq -e trace=fsync,fdatasync -o "
          .. quote(dir .. "/trace"))
      assert.matches("RESULT\t200", out, 1, true)
      local trace = S.readfile(dir .. "/trace") or ""
      local n = 0
      for _ in trace:gmatch("fsync%(") do n = n + 1 end
      return n
    end
    assert.are.equal(0, count(false))
    assert.is_true(count(true) >= 2)
  end)
end)

describe("signals", function()
  it("the engine thread blocks asynchronous signals (a host's SIGINT handler never runs on it)", function()
    local out, rc = H.child([[
      local dt = require "downloadtask"
      dt.fd() -- starts the engine
      local main = io.open("/proc/self/stat"):read("*l"):match("^(%d+)")
      for tid in io.popen("ls /proc/" .. main .. "/task"):lines() do
        local f = io.open("/proc/" .. main .. "/task/" .. tid .. "/status")
        if f then
          local st = f:read("*a")
          f:close()
          if tid ~= main then print("BLOCKED", st:match("SigBlk:%s*(%x+)")) end
        end
      end
    ]])
    assert.are.equal(0, rc, out)
    local mask = out:match("BLOCKED\t(%x+)")
    assert.is_truthy(mask, out)
    -- SIGINT (2), SIGPIPE (13), SIGXFSZ (25) blocked: bits 1, 12, 24
    local v = tonumber(mask:sub(-8), 16)
    for _, bit in ipairs { 1, 12, 24 } do
      assert.is_true(math.floor(v / 2 ^ bit) % 2 == 1, "signal " .. (bit + 1) .. " not blocked: " .. mask)
    end
  end)
end)

describe("issue 10 #15: res.sha256 whenever the option is given", function()
  it("a 304 reports the digest of the destination as it stands, untouched", function()
    local dir = S.tmpdir()
    S.writefile(dir .. "/d", OLD)
    local out = fetch { url = f.url("/bytes?n=100&etag=%22e1%22"), filePath = dir .. "/d", etag = '"e1"',
      sha256 = ("0"):rep(64) }
    assert.are.equal(304, out.res and out.res.statusCode)
    assert.are.equal(sha256_of(OLD), out.res.sha256)
    assert.are.equal(OLD, S.readfile(dir .. "/d"))
    assert.are.same({ "d" }, S.listdir(dir))
  end)
end)

describe("issue 10: a relative filePath", function()
  it("is the caller's working directory's at the call: a chdir before it starts or lands does not move it", function()
    local a, b = S.tmpdir(), S.tmpdir()
    local home = lfs.currentdir()
    dt.configure { maxConcurrent = 1 }
    local first = T.start { url = f.url("/bytes?n=1000&hdelay=200") }  -- holds the only slot
    assert(lfs.chdir(a))
    local t = T.start { url = f.url(("/bytes?n=%d"):format(N)), filePath = "rel.bin" }
    assert(lfs.chdir(b))                                              -- before t starts
    local ok, res, err = pcall(function() return t:await() end)
    assert(lfs.chdir(home))
    dt.configure { maxConcurrent = 10 }
    assert(ok, res)
    assert.is_truthy(res, err and err.errMsg)
    assert.are.equal("rel.bin", res.filePath)
    assert.is_true(is_pattern(a .. "/rel.bin", 0, N))
    assert.are.same({}, S.listdir(b))
    local r1 = first:await()
    if r1 and r1.tempFilePath then os.remove(r1.tempFilePath) end
  end)
end)

describe("issue 10: something else where the resume part goes", function()
  it("a FIFO named like the part file fails the download at once instead of blocking the engine", function()
    local dir = S.tmpdir()
    local dest = dir .. "/out.bin"
    local part = interrupted(dest)
    os.remove(part)
    assert(sh("mkfifo " .. quote(part)))
    local t0 = socket.gettime()
    local out = fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22"):format(N)), filePath = dest,
      resume = true, timeout = 5000 }
    assert.are.equal(603300, out.err and out.err.errno)
    assert.matches("^downloadFile:fail save file error: the resume part is not a regular file: ", out.err.errMsg)
    assert.is_true(socket.gettime() - t0 < 2)
    assert.are.equal("named pipe", lfs.attributes(part, "mode"))
    -- the engine is not stuck: another download completes
    assert.are.equal(200, fetch { url = ng.url("small.txt"), filePath = dir .. "/s" }.res.statusCode)
  end)
end)
