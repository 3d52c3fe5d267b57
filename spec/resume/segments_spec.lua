-- `segments` (issue 13, README "A short tour", "Many downloads"): a body of a known size from a server
-- that takes ranges is fetched over up to `segments` connections, each writing its own range
-- (at least 1 MiB) of the temporary file. Against nginx (100m.bin) and the fault server
-- (/flaky?range=1: Accept-Ranges and real 206s; rangedrop=B&rangefails=F closes the first F
-- requests for a range that does not start at 0 after B bytes; /stats?key=K counts the
-- requests of a key and the ones with a Range header).
local dt = require "downloadtask"
local S = require "spec.support.servers"
local H = require "spec.support.helpers"

local T = H.tracker()
local f, ng

setup(function()
  f, ng = S.fault(), S.nginx()
end)
after_each(T.cleanup)

local MiB = 1024 * 1024
local keyn = 0
local function key()
  keyn = keyn + 1
  return ("seg%d-%d"):format(math.floor(H.now() * 1000) % 1000000, keyn)
end

local function stats(k)
  local res = assert(dt.downloadFile { url = f.url("/stats?key=" .. k) }:await())
  local body = S.readfile(res.tempFilePath)
  os.remove(res.tempFilePath)
  return { hits = tonumber(body:match('"hits":(%d+)')), ranges = tonumber(body:match('"ranges":(%d+)')) }
end

local function is_pattern(path, n)
  local s = S.readfile(path)
  return s ~= nil and #s == n and s == S.pattern(0, n)
end

local function sha256_file(path)
  local p = assert(io.popen("sha256sum " .. S.quote(path)))
  local out = p:read("*a")
  p:close()
  return out:match("^(%x+)")
end

-- The fault server's /flaky body of n pattern bytes, with ranges, under key k.
-- The sha256 of the first n bytes of the pattern (what the fault server serves)
local function pattern_sha256(n)
  local path = S.tmpdir() .. "/pattern.bin"
  S.writefile(path, S.pattern(0, n))
  return S.run("sha256sum " .. S.quote(path)):match("^(%x+)")
end

-- Last-Modified dates (URL-encoded) for url and its mirrors
local LM1, LM2 = "Tue,%2014%20Nov%202023%2022:13:20%20GMT", "Tue,%2014%20Nov%202023%2022:15:00%20GMT"

local function flaky(k, n, extra)
  return f.url(("/flaky?key=%s&fails=0&n=%d&range=1&etag=%%22s1%%22%s"):format(k, n, extra or ""))
end

-- Nothing but `names` in dir: no temporary file, no part, no info.
local function only(dir, names)
  local left = S.listdir(dir)
  table.sort(left)
  table.sort(names)
  assert.are.same(names, left)
end

describe("segments", function()
  it("fetches nginx's 100 MiB over 8 connections: the same file, progress summed to the end", function()
    local dir = S.tmpdir()
    local out = T.fetch({ url = ng.url("100m.bin"), filePath = dir .. "/big.bin", segments = 8 }, { listen = true })
    H.expect_ok(out)
    assert.are.equal(8, out.res.segments)
    assert.are.equal(100 * MiB, out.res.dataLength)
    assert.are.equal(sha256_file(ng.root .. "/100m.bin"), sha256_file(dir .. "/big.bin"))
    local last = 0
    for _, p in ipairs(out.progress) do
      assert.is_true(p.totalBytesWritten >= last, "progress went back")
      assert.are.equal(100 * MiB, p.totalBytesExpectedToWrite)
      last = p.totalBytesWritten
    end
    assert.are.equal(100 * MiB, last)
    only(dir, { "big.bin" })
  end)

  it("splits sizes that the count does not divide, down to ranges of exactly 1 MiB", function()
    for _, c in ipairs {
      { n = 5 * MiB + 1, segs = 3, used = 3 },
      { n = 2 * MiB, segs = 16, used = 2 },        -- two ranges of exactly SEG_MIN
      { n = 2 * MiB - 1, segs = 16, used = 1 },    -- below: one connection
      { n = 16 * MiB + 15, segs = 16, used = 16 },
      { n = 7 * MiB + 3, segs = 5, used = 5 },
    } do
      local k = key()
      local dest = S.tmpdir() .. "/f.bin"
      local out = T.fetch { url = flaky(k, c.n), filePath = dest, segments = c.segs }
      H.expect_ok(out)
      assert.are.equal(c.used, out.res.segments, "n=" .. c.n)
      assert.are.equal(c.n, out.res.dataLength)
      assert.is_true(is_pattern(dest, c.n), "n=" .. c.n .. ": wrong content")
      assert.are.same({ hits = c.used, ranges = c.used - 1 }, stats(k), "n=" .. c.n)
    end
  end)

  it("also without filePath (tempFilePath), and segments = 1 is one connection", function()
    local k = key()
    local out = T.fetch { url = flaky(k, 3 * MiB), segments = 3 }
    H.expect_ok(out)
    assert.are.equal(3, out.res.segments)
    assert.is_true(is_pattern(out.res.tempFilePath, 3 * MiB))
    os.remove(out.res.tempFilePath)
    k = key()
    out = T.fetch { url = flaky(k, 3 * MiB), filePath = S.tmpdir() .. "/one.bin", segments = 1 }
    H.expect_ok(out)
    assert.are.equal(1, out.res.segments)
    assert.are.same({ hits = 1, ranges = 0 }, stats(k))
  end)

  it("a server that does not say Accept-Ranges gets one connection", function()
    local k = key()
    local dest = S.tmpdir() .. "/f.bin"
    local url = f.url(("/flaky?key=%s&fails=0&n=%d"):format(k, 3 * MiB))
    local out = T.fetch { url = url, filePath = dest, segments = 4 }
    H.expect_ok(out)
    assert.are.equal(1, out.res.segments)
    assert.is_true(is_pattern(dest, 3 * MiB))
    assert.are.same({ hits = 1, ranges = 0 }, stats(k))
  end)

  it("a 206 that lies (whole body, or no Content-Range): one connection again, the right file", function()
    for _, lie in ipairs { "start", "none" } do
      local k = key()
      local dir = S.tmpdir()
      local out = T.fetch { url = flaky(k, 3 * MiB, "&lie206=" .. lie), filePath = dir .. "/f.bin", segments = 3 }
      H.expect_ok(out)
      assert.are.equal(1, out.res.segments, lie)
      assert.is_true(is_pattern(dir .. "/f.bin", 3 * MiB), lie .. ": wrong content")
      -- the single-connection request that follows is no retry (attempts counts retry's)
      assert.are.equal(1, out.res.attempts, lie)
      assert.is_true(stats(k).hits >= 2, lie .. ": no second request")
      only(dir, { "f.bin" })
    end
  end)

  it("a range that fails midway is fetched again on its own", function()
    local k = key()
    local dest = S.tmpdir() .. "/f.bin"
    local out = T.fetch { url = flaky(k, 4 * MiB, "&rangedrop=300000&rangefails=2"), filePath = dest, segments = 4 }
    H.expect_ok(out)
    assert.are.equal(4, out.res.segments)
    assert.are.equal(1, out.res.attempts)
    assert.is_true(is_pattern(dest, 4 * MiB))
    -- the main request, three ranges, and the two dropped ranges again
    assert.are.same({ hits = 6, ranges = 5 }, stats(k))
  end)

  it("the main connection failing midway: its range is fetched again on its own", function()
    local k = key()
    local dest = S.tmpdir() .. "/f.bin"
    local url = f.url(("/flaky?key=%s&fails=1&n=%d&range=1&etag=%%22s1%%22&dropafter=200000"):format(k, 4 * MiB))
    local out = T.fetch { url = url, filePath = dest, segments = 4 }
    H.expect_ok(out)
    assert.are.equal(4, out.res.segments)
    assert.is_true(is_pattern(dest, 4 * MiB))
    assert.are.same({ hits = 5, ranges = 4 }, stats(k))
  end)

  it("the main connection stalling past stallTimeout: its range is asked again, the download goes on", function()
    local k = key()
    local dest = S.tmpdir() .. "/f.bin"
    local url = f.url(("/flaky?key=%s&fails=1&n=%d&range=1&etag=%%22s1%%22&stallafter=200000&stall=4000")
      :format(k, 4 * MiB))
    local out = T.fetch { url = url, filePath = dest, segments = 4, stallTimeout = 500 }
    H.expect_ok(out)
    assert.are.equal(1, out.res.attempts)
    assert.is_true(is_pattern(dest, 4 * MiB))
    assert.are.same({ hits = 5, ranges = 4 }, stats(k))
  end)

  it("timeout ends a segmented download whose ranges cannot make it, without asking them again", function()
    local dir = S.tmpdir()
    local t0 = H.now()
    local url = f.url(("/bytes?n=%d&range=1&etag=%%22s1%%22&rate=300000"):format(8 * MiB))
    local out = T.fetch { url = url, filePath = dir .. "/f.bin", segments = 4, timeout = 1500 }
    assert.are.equal(5, out.err and out.err.errno)         -- timeout
    assert.is_true(H.now() - t0 < 5, "took " .. (H.now() - t0))
    only(dir, {})
  end)

  -- Was (issue 20, item 10): the download failed, though one connection succeeds (lighttpd
  -- cuts concurrent ranged answers). With `resume` it still fails, keeping its ranges.
  it("ranges that keep failing: one connection from the start, and the right file", function()
    local k = key()
    local dir = S.tmpdir()
    S.writefile(dir .. "/f.bin", "old")
    local out = T.fetch { url = flaky(k, 4 * MiB, "&rangedrop=1000&rangefails=100"), filePath = dir .. "/f.bin", segments = 4 }
    H.expect_ok(out)
    assert.are.equal(1, out.res.attempts)
    assert.is_true(is_pattern(dir .. "/f.bin", 4 * MiB))
    only(dir, { "f.bin" })
  end)

  it("ranges that keep failing and one connection failing too: the destination stays as it was", function()
    local k = key()
    local dir = S.tmpdir()
    S.writefile(dir .. "/f.bin", "old")
    local out = T.fetch { url = flaky(k, 4 * MiB, "&rangedrop=1000&rangefails=100&dropafter=2000000&fails=100"),
      filePath = dir .. "/f.bin", segments = 4 }
    assert.are.equal(600000, out.err and out.err.errno)
    assert.are.equal("old", S.readfile(dir .. "/f.bin"))
    only(dir, { "f.bin" })
  end)

  local recorded = H.recorded_ranges

  -- Every recorded byte of the part is the body's; returns how many there are.
  local function part_holds(part, ranges)
    local bad, g, held = H.part_check(part, ranges)
    assert(bad == nil, ("byte %s of the part is not the body's (range at %s)"):format(tostring(bad), tostring(g and g.start)))
    return held
  end

  it("with resume, a failed segmented download keeps its ranges, and the next one continues every one", function()
    local k = key()
    local dir = S.tmpdir()
    local dest = dir .. "/f.bin"
    local n = 4 * MiB
    local out = T.fetch { url = flaky(k, n, "&rangedrop=1000&rangefails=100"), filePath = dest, segments = 4,
      resume = true }
    assert.are.equal(600000, out.err and out.err.errno)
    local part, info = H.part_files(dir)
    assert(part and info, "no part kept")
    local total, ranges = recorded(info)
    assert.are.equal(n, total)
    assert.are.equal(4, #ranges)
    local held = part_holds(part, ranges)
    assert.is_true(held > MiB, "held " .. held)
    local k2 = key()
    out = T.fetch({ url = flaky(k2, n), filePath = dest, segments = 4, resume = true }, { listen = true })
    H.expect_ok(out) -- the resource's status, though every answer was a 206 (docs/resume.md)
    assert.is_true(is_pattern(dest, n))
    assert.are.equal(n, out.res.dataLength)
    -- progress starts from what the part held
    assert.is_true(out.progress[1].totalBytesWritten >= held, "first progress " .. out.progress[1].totalBytesWritten)
    local st = stats(k2)
    assert.are.equal(st.hits, st.ranges, "every request continued a range")
    only(dir, { "f.bin" })
  end)

  it("a segmented download killed with kill -9 is continued from its recorded ranges", function()
    local dir = S.tmpdir()
    local dest = dir .. "/f.bin"
    local n = 6 * MiB
    local k = key()
    -- the first four requests (the main one and three ranges) trickle at 400 kB/s each
    local url = f.url(("/flaky?key=%s&fails=4&n=%d&range=1&etag=%%22s1%%22&rate=400000"):format(k, n))
    local script = ([[
      local dt = require "downloadtask"
      local t = dt.downloadFile { url = %q, filePath = %q, segments = 4, resume = true }
      local got = 0
      t:onProgressUpdate(function(p) got = p.totalBytesWritten end)
      while got < 1500000 do dt.poll(20) end
      local socket = require "socket"             -- poll(ms) returns at the next event:
      local stop = socket.gettime() + 1.2         -- wait past two of the info file's 500 ms
      while socket.gettime() < stop do dt.poll(20) end
      local pid = io.open("/proc/self/stat"):read("*l"):match("^(%%d+)")
      os.execute("kill -9 " .. pid)
    ]]):format(url, dest)
    local _, rc = H.child(script)
    assert.are.equal(137, rc)
    assert.is_nil(S.readfile(dest))
    local part, info = H.part_files(dir)
    assert(part and info, "no part left by the killed process")
    local total, ranges = recorded(info)
    assert.are.equal(n, total)
    assert.are.equal(4, #ranges)
    local held = part_holds(part, ranges)
    assert.is_true(held >= 1000000, "held " .. held)
    local out = T.fetch({ url = url, filePath = dest, segments = 4, resume = true }, { listen = true })
    H.expect_ok(out) -- the resource's status (docs/resume.md)
    assert.is_true(is_pattern(dest, n))
    assert.is_true(out.progress[1].totalBytesWritten >= held, "first progress " .. out.progress[1].totalBytesWritten)
    only(dir, { "f.bin" })
  end)

  it("sha256: right gives res.sha256; wrong fails with 603304 and leaves the destination", function()
    local n = 3 * MiB + 7
    local dir = S.tmpdir()
    local want = (function()
      S.writefile(dir .. "/ref", S.pattern(0, n))
      local d = sha256_file(dir .. "/ref")
      os.remove(dir .. "/ref")
      return d
    end)()
    local out = T.fetch { url = flaky(key(), n), filePath = dir .. "/f.bin", segments = 3, sha256 = want:upper() }
    H.expect_ok(out)
    assert.are.equal(3, out.res.segments)
    assert.are.equal(want, out.res.sha256)
    S.writefile(dir .. "/f.bin", "old")
    out = T.fetch { url = flaky(key(), n), filePath = dir .. "/f.bin", segments = 3, sha256 = ("0"):rep(64) }
    assert.are.equal(603304, out.err and out.err.errno)
    assert.are.equal("old", S.readfile(dir .. "/f.bin"))
    only(dir, { "f.bin" })
  end)

  it("maxFileSize: a body over it fails before any range; one within it is split", function()
    local dir = S.tmpdir()
    local out = T.fetch { url = flaky(key(), 3 * MiB), filePath = dir .. "/f.bin", segments = 3, maxFileSize = 3 * MiB - 1 }
    assert.are.equal(603301, out.err and out.err.errno)
    only(dir, {})
    out = T.fetch { url = flaky(key(), 3 * MiB), filePath = dir .. "/f.bin", segments = 3, maxFileSize = 3 * MiB }
    H.expect_ok(out)
    assert.are.equal(3, out.res.segments)
  end)

  it("abort while the ranges run: nothing on disk, the destination untouched", function()
    local dir = S.tmpdir()
    S.writefile(dir .. "/f.bin", "old")
    local t = T.start { url = f.url(("/bytes?n=%d&range=1&etag=%%22s1%%22&rate=500000"):format(4 * MiB)), filePath = dir .. "/f.bin", segments = 4 }
    local got = 0
    t:onProgressUpdate(function(p) got = p.totalBytesWritten end)
    local deadline = H.now() + 10
    while got < 200000 and H.now() < deadline do dt.poll(10) end
    assert.is_true(got >= 200000)
    t:abort()
    local res, err = t:await()
    assert.is_nil(res)
    assert.are.equal(600003, err.errno)
    assert.are.equal("old", S.readfile(dir .. "/f.bin"))
    only(dir, { "f.bin" })
  end)

  it("pause and resume a segmented download: the right file", function()
    local dir = S.tmpdir()
    local t = T.start { url = f.url(("/bytes?n=%d&range=1&etag=%%22s1%%22&rate=1000000"):format(4 * MiB)), filePath = dir .. "/f.bin", segments = 4 }
    local got = 0
    t:onProgressUpdate(function(p) got = p.totalBytesWritten end)
    local deadline = H.now() + 10
    while got < 300000 and H.now() < deadline do dt.poll(10) end
    t:pause()
    assert.are.equal("paused", t.state)
    dt.poll(200)
    t:resume()
    local res, err = t:await()
    assert(res, err and err.errMsg)
    assert.is_true(is_pattern(dir .. "/f.bin", 4 * MiB))
    only(dir, { "f.bin" })
  end)

  it("rateLimit is the sum over the connections", function()
    local n = 4 * MiB
    local t0 = H.now()
    local out = T.fetch { url = flaky(key(), n), filePath = S.tmpdir() .. "/f.bin", segments = 4, rateLimit = 2 * MiB }
    local took = H.now() - t0
    assert(out.res, out.err and out.err.errMsg)
    H.expect_ok(out)
    assert.are.equal(4, out.res.segments)
    -- 4 MiB at 2 MiB/s: about 2 s; four connections each at the whole limit would take 0.5 s
    assert.is_true(took > 1.4, ("took %.2f s"):format(took))
  end)

  -- Was (issue 20, item 7): the ranges were capped with libcurl's CURLOPT_MAX_RECV_SPEED_LARGE,
  -- which lets each connection burst for seconds: 4.2 MB/s (own) and 9.1 MB/s (global)
  -- against 1 MB/s. Now one budget paced by the module for all the connections.
  for _, where in ipairs { "own", "global" } do
    it(("rateLimit (%s) holds from the first seconds, over 8 connections"):format(where), function()
      local n, limit = 24 * MiB, 1 * MiB
      dt.configure { progressInterval = 20, rateLimit = where == "global" and limit or 0 }
      local written = 0
      local t = T.start { url = flaky(key(), n), filePath = S.tmpdir() .. "/f.bin", segments = 8,
        rateLimit = where == "own" and limit or nil }
      t:onProgressUpdate(function(p) written = p.totalBytesWritten end)
      local t0 = H.now()
      while H.now() - t0 < 2.5 do dt.poll(20) end
      local took = H.now() - t0
      t:abort()
      t:await()
      dt.configure { rateLimit = 0 }
      -- 2.5 s at 1 MiB/s, and the 250 ms a pause may take at once: at most ~2.75 MiB
      assert.is_true(written <= (took + 0.25) * limit * 1.1,
        ("%.2f MiB in %.2f s against %d MiB/s"):format(written / MiB, took, limit / MiB))
      assert.is_true(written > 0.5 * limit, "nothing came")
    end)
  end

  it("rejects segments outside 1..16", function()
    for _, v in ipairs { 0, 17, -1 } do
      local ok, msg = pcall(dt.downloadFile, { url = ng.url("1k.bin"), segments = v })
      assert.is_false(ok)
      assert.matches("segments", msg)
    end
    local ok, msg = pcall(dt.downloadFile, { url = ng.url("1k.bin"), segments = "8" })
    assert.is_false(ok)
    assert.matches("segments", msg)
  end)
end)

describe("mirrors", function()
  -- Two "servers" of the same file: /flaky under two keys with the same etag and size.
  local function same_file(n, extra)
    local a, b = key(), key()
    return a, b, flaky(a, n, extra), flaky(b, n, extra)
  end

  it("spread the ranges over url and the mirrors; the right file", function()
    local n = 6 * MiB + 5
    local a, b, ua, ub = same_file(n)
    local c = key()
    local dest = S.tmpdir() .. "/f.bin"
    local out = T.fetch { url = ua, mirrors = { ub, flaky(c, n) }, filePath = dest, segments = 6 }
    H.expect_ok(out)
    assert.are.equal(6, out.res.segments)
    assert.is_true(is_pattern(dest, n))
    -- sources by range: url, ub, c, url, ub, c
    assert.are.same({ hits = 2, ranges = 1 }, stats(a))
    assert.are.same({ hits = 2, ranges = 2 }, stats(b))
    assert.are.same({ hits = 2, ranges = 2 }, stats(c))
  end)

  it("without segments, one range per URL", function()
    local n = 4 * MiB
    local a, b, ua, ub = same_file(n)
    local out = T.fetch { url = ua, mirrors = { ub }, filePath = S.tmpdir() .. "/f.bin" }
    H.expect_ok(out)
    assert.are.equal(2, out.res.segments)
    assert.are.same({ hits = 1, ranges = 1 }, stats(b))
  end)

  -- the default and its documentation agree (issue 22 item 13): given, segments = 1 is url alone
  it("segments = 1 given with mirrors: url alone", function()
    local n = 4 * MiB
    local a, b, ua, ub = same_file(n)
    local out = T.fetch { url = ua, mirrors = { ub }, segments = 1, filePath = S.tmpdir() .. "/f.bin" }
    H.expect_ok(out)
    assert.are.equal(1, out.res.segments)
    assert.is_true((stats(b).hits or 0) == 0, "the mirror was asked")
  end)

  it("a mirror of another size, of another version, or down is dropped; its ranges come from the others", function()
    local n = 4 * MiB
    for _, case in ipairs {
      { what = "size", url = function(k) return flaky(k, n + 1) end, hits = 2 },
      { what = "version", url = function(k) -- other bytes, its own ETag, a later Last-Modified
        return f.url(("/flaky?key=%s&fails=0&n=%d&range=1&etag=%%22other%%22&shift=7&lastmod=%s"):format(k, n, LM2))
      end, hits = 2, lastmod = true },
      { what = "down", url = function() return ("http://127.0.0.1:%d/x"):format(S.free_port()) end, hits = 0 },
      { what = "cut", url = function(k) return flaky(k, n, "&rangedrop=1000&rangefails=100") end, hits = 2 },
    } do
      local a, m = key(), key()
      local dir = S.tmpdir()
      local url = flaky(a, n, case.lastmod and "&lastmod=" .. LM1)
      local out = T.fetch { url = url, mirrors = { case.url(m) }, filePath = dir .. "/f.bin", segments = 4 }
      H.expect_ok(out)
      assert.are.equal(4, out.res.segments, case.what)
      assert.is_true(is_pattern(dir .. "/f.bin", n), case.what .. ": wrong content")
      -- ranges 1 and 3 went to the mirror at once, and neither was asked of it again
      if case.hits > 0 then assert.are.equal(case.hits, stats(m).hits, case.what) end
      -- url: the main request, range 2, and ranges 1 and 3 again
      assert.are.equal(4, stats(a).hits, case.what)
      only(dir, { "f.bin" })
    end
  end)

  -- Was (issue 20 item 9): a mirror was asked with url's ETag as If-Range, so one naming the
  -- same bytes with an ETag of its own (Apache, lighttpd, caddy and h2o all do) answered 200
  -- and was dropped. Its first answer now teaches its validator, which guards its later ranges.
  it("a mirror that names the same bytes with its own ETag is used, with its own If-Range", function()
    local n = 6 * MiB
    local a, m = key(), key()
    local dir = S.tmpdir()
    local mirror = f.url(("/flaky?key=%s&fails=0&n=%d&range=1&etag=%%22mirror-etag%%22"):format(m, n))
    local out = T.fetch { url = flaky(a, n), mirrors = { mirror }, filePath = dir .. "/f.bin", segments = 6 }
    H.expect_ok(out)
    assert.are.equal(6, out.res.segments)
    assert.is_true(is_pattern(dir .. "/f.bin", n))
    -- ranges 1, 3 and 5 from the mirror, each answered with a 206 (If-Range: "mirror-etag" for
    -- those asked after its first answer; url's "s1" would have got the whole body)
    assert.are.same({ hits = 3, ranges = 3 }, stats(m))
    assert.are.same({ hits = 3, ranges = 2 }, stats(a), "url was asked for the mirror's ranges")
  end)

  it("a mirror's later answers must be of the version its first answer named", function()
    local n = 4 * MiB
    local a, m = key(), key()
    local dir = S.tmpdir()
    -- ranges 1 and 3 are asked of the mirror at once; its first answer names "m1", the second
    -- (300 ms later) another version, "m2", of other bytes, the same length and no date
    local mirror = f.url(("/flaky?key=%s&fails=1&n=%d&range=1&etag=%%22m1%%22"
      .. "&thenetag=%%22m2%%22&thenshift=9&thenhdelay=300"):format(m, n))
    local out = T.fetch { url = flaky(a, n), mirrors = { mirror }, filePath = dir .. "/f.bin", segments = 4 }
    H.expect_ok(out)
    assert.is_true(is_pattern(dir .. "/f.bin", n), "another version was spliced in")
    assert.are.equal(2, stats(m).hits)
    -- url: the main request, range 2, and the range the mirror's second answer was refused for
    assert.are.equal(3, stats(a).hits)
  end)

  it("a mirror with another Last-Modified than url's is dropped; one with the same is used", function()
    local n = 4 * MiB
    for _, case in ipairs { { lm = LM1, used = true }, { lm = LM2, used = false } } do
      local a, m = key(), key()
      local dir = S.tmpdir()
      local mirror = f.url(("/flaky?key=%s&fails=0&n=%d&range=1&etag=%%22m%%22&lastmod=%s"):format(m, n, case.lm))
      local out = T.fetch { url = flaky(a, n, "&lastmod=" .. LM1), mirrors = { mirror }, filePath = dir .. "/f.bin",
        segments = 4 }
      H.expect_ok(out)
      assert.is_true(is_pattern(dir .. "/f.bin", n))
      -- url: the main request and range 2, and ranges 1 and 3 when the mirror was dropped
      assert.are.equal(case.used and 2 or 4, stats(a).hits, case.lm)
    end
  end)

  it("a mirror naming no validator of its own is used only with sha256", function()
    local n = 4 * MiB
    local digest = pattern_sha256(n)
    for _, with in ipairs { false, true } do
      local a, m = key(), key()
      local dir = S.tmpdir()
      local mirror = f.url(("/flaky?key=%s&fails=0&n=%d&range=1"):format(m, n))
      local out = T.fetch { url = flaky(a, n), mirrors = { mirror }, filePath = dir .. "/f.bin", segments = 4,
        sha256 = with and digest or nil }
      H.expect_ok(out)
      assert.is_true(is_pattern(dir .. "/f.bin", n))
      assert.are.equal(with and 2 or 4, stats(a).hits, with and "with sha256" or "without")
    end
  end)

  it("url without a strong validator: mirrors are used with sha256, and not without", function()
    local n = 4 * MiB
    local digest = pattern_sha256(n)
    for _, with in ipairs { false, true } do
      local a, m = key(), key()
      local dir = S.tmpdir()
      local plain = "/flaky?key=%s&fails=0&n=%d&range=1"
      local out = T.fetch { url = f.url(plain:format(a, n)), mirrors = { f.url(plain:format(m, n)) },
        filePath = dir .. "/f.bin", segments = 4, sha256 = with and digest or nil }
      H.expect_ok(out)
      assert.are.equal(with and 4 or 1, out.res.segments)
      assert.is_true(is_pattern(dir .. "/f.bin", n))
      assert.are.equal(with and 2 or 0, stats(m).hits or 0)
      assert.are.equal(with and 2 or 1, stats(a).hits)
    end
  end)

  it("rejects mirrors that are not a list of http(s) URLs", function()
    for _, v in ipairs { "http://x/", { 1 }, { "ftp://x/f" }, { "x" }, { true } } do
      local ok, msg = pcall(dt.downloadFile, { url = ng.url("1k.bin"), mirrors = v })
      assert.is_false(ok)
      assert.matches("mirrors", msg)
    end
    local many = {}
    for i = 1, 17 do many[i] = ng.url("1k.bin") end
    local ok, msg = pcall(dt.downloadFile, { url = ng.url("1k.bin"), mirrors = many })
    assert.is_false(ok)
    assert.matches("at most 16", msg)
  end)
end)
