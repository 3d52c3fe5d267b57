-- retry and resume, against the fault server: transient failures, Retry-After,
-- interrupted bodies, a file that changes between attempts, 416 on a complete file.
local dt = require "downloadtask"
local S = require "spec.support.servers"
local socket = require "socket"

local f
local N = 200000

local function fetch(opts, on_task)
  local out = { events = {}, headers = 0, progress = {} }
  opts.success = function(r) out.res = r; out.events[#out.events + 1] = "success" end
  opts.fail = function(e) out.err = e; out.events[#out.events + 1] = "fail" end
  local t0 = socket.gettime()
  local t = dt.downloadFile(opts)
  t:onHeadersReceived(function(h) out.headers = out.headers + 1; out.status = h.statusCode end)
  t:onProgressUpdate(function(p) out.progress[#out.progress + 1] = p end)
  if on_task then on_task(t) end
  t:await()
  out.secs = socket.gettime() - t0
  return out
end

local function stats(key)
  local out = fetch { url = f.url("/stats?key=" .. key) }
  local body = S.readfile(out.res.tempFilePath)
  os.remove(out.res.tempFilePath)
  return {
    hits = tonumber(body:match('"hits":(%d+)')),
    ranges = tonumber(body:match('"ranges":(%d+)')),
  }
end

local part_files = require("spec.support.helpers").part_files

-- An interrupted resume download of N pattern bytes (etag "v1") into dest,
-- which leaves a part file of N/2 bytes; returns its path and its info file's.
local function interrupted(dest)
  fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22&dropafter=%d"):format(N, math.floor(N / 2))),
    filePath = dest, resume = true }
  local part, info = part_files(dest:match("^(.*)/[^/]*$"))
  assert(part and info, "no part file")
  return part, info
end

local function file_equals_pattern(path, offset, n)
  local s = S.readfile(path)
  return s ~= nil and #s == n and s == S.pattern(offset, n)
end

setup(function()
  f = S.fault()
end)

describe("retry", function()
  it("retries a 503 after its Retry-After, then delivers the 200 once", function()
    local out = fetch { url = f.url("/flaky?key=ra&fails=1&status=503&hdr=Retry-After:1&n=1000"), retry = 2 }
    assert.are.same({ "success" }, out.events)
    assert.are.equal(200, out.res.statusCode)
    assert.are.equal(2, out.res.attempts)
    assert.are.equal(1, out.headers)
    assert.are.equal(200, out.status)
    assert.is_true(out.secs >= 0.95, "Retry-After: 1 honoured, took " .. out.secs)
    assert.are.equal(2, stats("ra").hits)
    os.remove(out.res.tempFilePath)
  end)

  it("retries 429 and 5xx until attempts run out, then delivers the last response", function()
    local out = fetch { url = f.url("/flaky?key=five&fails=9&status=500&n=10"), retry = 2 }
    assert.are.same({ "success" }, out.events)
    assert.are.equal(500, out.res.statusCode)
    assert.are.equal(3, out.res.attempts)
    assert.are.equal(3, stats("five").hits)
    os.remove(out.res.tempFilePath)
    local tmr = fetch { url = f.url("/flaky?key=429&fails=1&status=429&n=10"), retry = 1 }
    assert.are.equal(200, tmr.res.statusCode)
    os.remove(tmr.res.tempFilePath)
  end)

  it("does not retry what is not transient", function()
    local out = fetch { url = f.url("/flaky?key=nf&fails=9&status=404&n=10"), retry = 3 }
    assert.are.equal(404, out.res.statusCode)
    assert.are.equal(1, out.res.attempts)
    os.remove(out.res.tempFilePath)
  end)

  it("retries connection failures with exponential backoff and reports the attempts", function()
    local out = fetch { url = ("http://127.0.0.1:%d/"):format(S.free_port()), retry = 2 }
    assert.are.same({ "fail" }, out.events)
    assert.are.equal(600001, out.err.errno)
    assert.are.equal("downloadFile:fail connection refused", out.err.errMsg)
    assert.are.equal(3, out.err.attempts)
    -- 250 ms then 500 ms, each +-20 %
    assert.is_true(out.secs >= 0.6 and out.secs < 3, "took " .. out.secs)
  end)

  it("retries a body cut short and leaves no file behind", function()
    local dir = S.tmpdir()
    local out = fetch { url = f.url(("/flaky?key=cut&fails=1&n=%d&dropafter=%d"):format(N, math.floor(N / 2))),
      filePath = dir .. "/x.bin", retry = 1 }
    assert.are.same({ "success" }, out.events)
    assert.is_true(file_equals_pattern(dir .. "/x.bin", 0, N))
    assert.are.same({ "x.bin" }, S.listdir(dir))
    -- progress never went down although the second attempt started over
    for i = 2, #out.progress do
      assert.is_true(out.progress[i].totalBytesWritten >= out.progress[i - 1].totalBytesWritten)
    end
  end)

  it("abort during a backoff wait ends the task at once", function()
    local t0 = socket.gettime()
    local out = fetch({ url = ("http://127.0.0.1:%d/"):format(S.free_port()), retry = 10 }, function(t)
      socket.sleep(0.1)
      dt.poll(0)
      t:abort()
    end)
    assert.are.same({ "fail" }, out.events)
    assert.are.equal("downloadFile:fail abort", out.err.errMsg)
    assert.is_true(socket.gettime() - t0 < 1)
  end)
end)

describe("resume", function()
  it("keeps the part file of an interrupted download and continues it with a Range", function()
    local dir = S.tmpdir()
    local dest = dir .. "/out.bin"
    local first = fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22&dropafter=%d"):format(N, math.floor(N / 2))),
      filePath = dest, resume = true }
    assert.are.same({ "fail" }, first.events)
    local part, info = part_files(dir)
    assert.are.equal(2, #S.listdir(dir))
    assert.is_truthy(part and info)
    assert.are.equal(math.floor(N / 2), S.filesize(part))
    local out = fetch { url = f.url(("/flaky?key=res&fails=0&n=%d&range=1&etag=%%22v1%%22"):format(N)),
      filePath = dest, resume = true }
    assert.are.same({ "success" }, out.events)
    assert.are.equal(200, out.res.statusCode) -- the resource's, though the answer was a 206
    assert.are.equal("bytes " .. math.floor(N / 2) .. "-" .. (N - 1) .. "/" .. N, out.res.header["content-range"])
    assert.are.equal(dest, out.res.filePath)
    assert.are.equal(N, out.res.dataLength)
    assert.is_true(file_equals_pattern(dest, 0, N))
    assert.are.same({ "out.bin" }, S.listdir(dir))
    assert.are.equal(1, stats("res").ranges)
    -- progress counts the bytes already there
    assert.is_true(out.progress[1].totalBytesWritten >= math.floor(N / 2))
    assert.are.equal(N, out.progress[1].totalBytesExpectedToWrite)
    assert.are.equal(100, out.progress[#out.progress].progress)
  end)

  it("a large body's part file holds every byte received before the cut (gathered writes)", function()
    -- bodies of 1 MiB or more are written in 256 KiB pieces: the last, partial piece
    -- must reach the part file too, or the next attempt would ask for the wrong range
    local big, cut = 3000000, 1300001
    local dir = S.tmpdir()
    local dest = dir .. "/big.bin"
    local first = fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22b1%%22&dropafter=%d"):format(big, cut)),
      filePath = dest, resume = true }
    assert.are.same({ "fail" }, first.events)
    local part = part_files(dir)
    assert.are.equal(cut, S.filesize(part))
    assert.is_true(file_equals_pattern(part, 0, cut))
    local out = fetch { url = f.url(("/flaky?key=big&fails=0&n=%d&range=1&etag=%%22b1%%22"):format(big)),
      filePath = dest, resume = true }
    assert.are.same({ "success" }, out.events)
    assert.are.equal(200, out.res.statusCode) -- the resource's (docs/resume.md)
    assert.is_truthy(out.res.header["content-range"], "not continued")
    assert.are.equal(big, out.res.dataLength)
    assert.is_true(file_equals_pattern(dest, 0, big))
    assert.are.same({ "big.bin" }, S.listdir(dir))
  end)

  it("never splices two versions: a changed file (If-Range mismatch) starts over", function()
    local dir = S.tmpdir()
    local dest = dir .. "/out.bin"
    local part = interrupted(dest)
    assert.are.equal(math.floor(N / 2), S.filesize(part))
    local out = fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22v2%%22&shift=7"):format(N)),
      filePath = dest, resume = true }
    assert.are.equal(200, out.res.statusCode)
    assert.is_true(file_equals_pattern(dest, 7, N), "the whole file is the new version")
    assert.are.same({ "out.bin" }, S.listdir(dir))
  end)

  it("succeeds on a 416 when the part file is complete already", function()
    local dir = S.tmpdir()
    local dest = dir .. "/out.bin"
    local part = interrupted(dest)
    S.writefile(part, S.pattern(0, N))
    local out = fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22"):format(N)), filePath = dest, resume = true }
    assert.are.same({ "success" }, out.events)
    assert.are.equal(416, out.res.statusCode)
    assert.are.equal(dest, out.res.filePath)
    assert.is_true(file_equals_pattern(dest, 0, N))
    assert.are.same({ "out.bin" }, S.listdir(dir))
  end)

  it("with retry, a retry continues rather than restarts", function()
    local dir = S.tmpdir()
    local dest = dir .. "/out.bin"
    local out = fetch { url = f.url(("/flaky?key=rr&fails=1&n=%d&range=1&etag=%%22e%%22&dropafter=%d"):format(N, math.floor(N / 2))),
      filePath = dest, resume = true, retry = 1 }
    assert.are.same({ "success" }, out.events)
    assert.are.equal(2, out.res.attempts)
    assert.is_true(file_equals_pattern(dest, 0, N))
    local st = stats("rr")
    assert.are.equal(2, st.hits)
    assert.are.equal(1, st.ranges)
    assert.are.same({ "out.bin" }, S.listdir(dir))
  end)

  it("a part file without a validator is not continued", function()
    local dir = S.tmpdir()
    local dest = dir .. "/out.bin"
    local part, info = interrupted(dest)
    os.remove(info)
    S.writefile(part, ("x"):rep(1000))
    local out = fetch { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22"):format(N)), filePath = dest, resume = true }
    assert.are.equal(200, out.res.statusCode)
    assert.is_true(file_equals_pattern(dest, 0, N))
  end)

  it("needs filePath", function()
    local ok, err = pcall(dt.downloadFile, { url = f.url("/bytes"), resume = true })
    assert.is_false(ok)
    assert.matches("'resume'", err, 1, true)
  end)
end)
