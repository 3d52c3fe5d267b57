-- abort, await in coroutines, sha256, and the error numbers of the contract.
-- Plain Lua (see harness.lua); runs under wine and on Linux.
local H = dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "harness.lua")
local dt = require "downloadtask"

H.test("abort: fail once with errno 600003, then complete, and no file left", function()
  local fails, completes, successes, seen = 0, 0, 0, nil
  local task = dt.downloadFile {
    url = H.url("slow/100m.bin"), filePath = H.path("aborted.bin"), rateLimit = 1048576,
    success = function() successes = successes + 1 end,
    fail = function(e) fails = fails + 1; seen = e end,
    complete = function() completes = completes + 1 end,
  }
  local progressed = false
  task:onProgressUpdate(function(p)
    if p.totalBytesWritten > 0 and not progressed then
      progressed = true
      task:abort()
      task:abort()                     -- twice is a no-op
    end
  end)
  dt.run()
  H.truthy(progressed, "some bytes arrived before the abort")
  H.eq(task.state, "aborted", "state")
  H.eq(successes, 0, "success calls")
  H.eq(fails, 1, "fail calls")
  H.eq(completes, 1, "complete calls")
  H.eq(seen.errMsg, "downloadFile:fail abort", "errMsg")
  H.eq(seen.errno, 600003, "errno")
  -- aborted.bin and its temporary file must be gone: the runner checks the directory
end)

H.test("abort right after the call, before any poll", function()
  local seen
  local task = dt.downloadFile {
    url = H.url("1m.bin"), filePath = H.path("aborted-early.bin"),
    fail = function(e) seen = e end,
  }
  task:abort()
  H.eq(task.state, "aborted", "state at once")
  dt.run()
  H.eq(seen and seen.errno, 600003, "errno")
end)

H.test("await in coroutines: each returns its own result", function()
  local results, co = {}, {}
  for i, name in ipairs { "small.txt", "1k.bin", "no-such-file" } do
    co[i] = coroutine.create(function()
      local task = dt.downloadFile { url = H.url(name) }
      local res, err = task:await()
      results[i] = { res = res, err = err }
    end)
    assert(coroutine.resume(co[i]))
    H.eq(coroutine.status(co[i]), "suspended", "coroutine " .. i .. " waits")
  end
  dt.run()
  for i = 1, 3 do H.eq(coroutine.status(co[i]), "dead", "coroutine " .. i .. " finished") end
  H.eq(results[1].res.statusCode, 200, "small.txt")
  H.eq(results[1].res.dataLength, #H.SMALL_TXT, "small.txt length")
  H.eq(results[2].res.dataLength, 1024, "1k.bin length")
  H.eq(results[3].res.statusCode, 404, "no-such-file")
  for i = 1, 3 do H.truthy(os.remove(results[i].res.tempFilePath), "removing tempFilePath " .. i) end
end)

H.test("await outside a coroutine drives the loop; a failure is nil, err", function()
  local res = dt.downloadFile { url = H.url("small.txt") }:await()
  H.eq(res.statusCode, 200, "statusCode")
  H.truthy(os.remove(res.tempFilePath), "removing tempFilePath")
  local none, err = dt.downloadFile { url = ("http://127.0.0.1:%d/"):format(H.CLOSED_PORT) }:await()
  H.eq(none, nil, "result of a refused connection")
  H.eq(err.errno, 600001, "errno")
end)

H.test("sha256: a matching digest passes and is reported", function()
  local dest = H.path("checked.txt")
  local res = H.download(dt, { url = H.url("small.txt"), filePath = dest, sha256 = H.SMALL_SHA256:upper() })
  H.eq(res.errMsg, "downloadFile:ok")
  H.eq(res.sha256, H.SMALL_SHA256, "res.sha256")
  H.expect_file("checked.txt", #H.SMALL_TXT)
end)

H.test("sha256: a mismatch fails with 603304 and leaves the destination alone", function()
  local dest = H.path("unchecked.txt")
  H.writefile(dest, "previous")
  local err, kind = H.download(dt, { url = H.url("small.txt"), filePath = dest, sha256 = ("0"):rep(64) })
  H.eq(kind, "fail")
  H.eq(err.errno, 603304, "errno")
  H.truthy(err.errMsg:find("checksum mismatch", 1, true), "errMsg " .. err.errMsg)
  H.eq(H.readfile(dest), "previous", "destination")
  H.expect_file("unchecked.txt", 8)
end)

H.test("sha256 of a 1 MiB body", function()
  -- the digest of the served pattern, from the Linux side (sha256sum of nginx's 1m.bin)
  local want = os.getenv("DT_PORTABLE_SHA256_1M")
  H.truthy(want and #want == 64, "DT_PORTABLE_SHA256_1M")
  local res = H.download(dt, { url = H.url("1m.bin"), sha256 = want })
  H.eq(res.sha256, want, "res.sha256")
  H.truthy(os.remove(res.tempFilePath), "removing tempFilePath")
end)

local function fails_with(opts, errno, what)
  local err, kind = H.download(dt, opts)
  H.eq(kind, "fail", what)
  H.eq(err.errno, errno, what .. ": errno (" .. tostring(err.errMsg) .. ")")
  H.truthy(err.errMsg:find("^downloadFile:fail "), what .. ": errMsg " .. tostring(err.errMsg))
  return err
end

H.test("error numbers", function()
  fails_with({ url = ("http://127.0.0.1:%d/x"):format(H.CLOSED_PORT) }, 600001, "connection refused")
  fails_with({ url = "http://" }, 600009, "invalid url")
  fails_with({ url = H.url("small.txt"), filePath = H.path("no-such-dir") .. H.SEP .. "x.txt" },
    603300, "missing directory")
  fails_with({ url = H.url("1m.bin"), filePath = H.path("too-big.bin"), maxFileSize = 1000 },
    603301, "maxFileSize")
  fails_with({ url = H.url("slow/100m.bin"), filePath = H.path("timeout.bin"), timeout = 300 },
    5, "timeout")
  fails_with({ url = H.url("redirect-to?url=" .. H.url("redirect-to?url=" .. H.url("small.txt"))),
    filePath = H.path("redirects.txt"), maxRedirects = 1 }, 600008, "too many redirects")
end)

H.test("bad options raise at the call", function()
  H.fails(function() dt.downloadFile {} end, "url")
  H.fails(function() dt.downloadFile { url = H.url("x"), timeout = "soon" } end, "timeout")
  H.fails(function() dt.downloadFile { url = H.url("x"), noSuchOption = 1 } end, "noSuchOption")
  H.fails(function() dt.downloadFile { url = H.url("x"), header = { A = "b\r\nc" } } end, "header")
  H.fails(function() dt.downloadFile { url = "ftp://127.0.0.1/x" } end, "url")
  H.fails(function() dt.configure { userAgent = "a\r\nX-Injected: 1" } end, "userAgent")
end)

H.run()
