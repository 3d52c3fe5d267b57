-- Which bytes may join a part (issue 20): the answers of servers we did not write, modelled
-- with the fault server. Each case broke the file promise or threw bytes away on 0d1c375;
-- the decision is src/ranges.c's (unit-tested in tests/unit/test_ranges.c).
local S = require "spec.support.servers"
local H = require "spec.support.helpers"
local P = require "spec.support.pattern"

local T = H.tracker()
local MiB = 1024 * 1024

local function q(s) return (s:gsub("[^%w%-%._~]", function(c) return ("%%%02X"):format(c:byte()) end)) end

describe("integrity: a resumed answer of another version is never appended", function()
  local f
  setup(function() f = S.fault() end)
  after_each(T.cleanup)

  -- v1 cut after `cut` bytes leaves a part; v2 (other bytes: shift=7) comes from a server
  -- that ignores If-Range and answers the range with its own validator. Was: a success whose
  -- file is v1's first bytes and v2's rest (cocos2d-x's asset manager had the same bug).
  local function resume_across_versions(v1, v2)
    local n, cut = 300000, 100000
    local dir = S.tmpdir()
    local dest = dir .. "/f.bin"
    local out = T.fetch { url = f.url(("/bytes?n=%d&range=1&%s&dropafter=%d"):format(n, v1, cut)),
      filePath = dest, resume = true }
    assert.are.equal(600000, out.err and out.err.errno, out.err and out.err.errMsg)
    local part = H.part_files(dir)
    assert.are.equal(cut, part and S.filesize(part))
    out = T.fetch { url = f.url(("/bytes?n=%d&range=1&%s&ignoreifrange=1&shift=7"):format(n, v2)),
      filePath = dest, resume = true, retry = 1 }
    H.expect_ok(out)
    assert.is_true(S.readfile(dest) == P.pattern(7, n), "the destination is not v2 whole (a splice?)")
  end

  it("strong ETags", function()
    resume_across_versions("etag=%22v1%22", "etag=%22v2%22")
  end)

  it("unquoted ETags (S3-compatible stores)", function()
    resume_across_versions("etag=v1", "etag=v2")
  end)

  it("Last-Modified", function()
    resume_across_versions("lastmod=" .. q("Mon, 01 Jan 2024 00:00:00 GMT"),
      "lastmod=" .. q("Tue, 02 Jan 2024 00:00:00 GMT"))
  end)

  it("the same version is still continued, not fetched again", function()
    local n, cut = 300000, 100000
    local dir = S.tmpdir()
    local dest = dir .. "/f.bin"
    local url = ("/bytes?n=%d&range=1&etag=%%22v1%%22"):format(n)
    local out = T.fetch { url = f.url(url .. "&dropafter=" .. cut), filePath = dest, resume = true }
    assert.are.equal(600000, out.err and out.err.errno)
    out = T.fetch({ url = f.url(url), filePath = dest, resume = true }, { listen = true })
    assert.are.same({ "success", "complete" }, out.calls)
    assert.are.equal("bytes 100000-299999/300000", out.res.header["content-range"]) -- continued
    assert.are.equal(200, out.res.statusCode) -- the resource's status (issue 20, item 12)
    assert.is_true(out.progress[1].totalBytesWritten >= cut)
    assert.is_true(S.file_matches_pattern(dest, n))
  end)
end)

describe("integrity: segments split only a body with a strong validator", function()
  local f
  setup(function() f = S.fault() end)
  after_each(T.cleanup)

  -- Was: lighttpd's CGI output (Accept-Ranges, Content-Length, no validator, a new body for
  -- every request) was split, and the file was made of several generations.
  it("no ETag and no Last-Modified: one connection", function()
    local dir = S.tmpdir()
    local out = T.fetch { url = f.url(("/bytes?n=%d&range=1"):format(4 * MiB)), filePath = dir .. "/f", segments = 4 }
    H.expect_ok(out)
    assert.are.equal(1, out.res.segments)
    assert.is_true(S.file_matches_pattern(dir .. "/f", 4 * MiB))
  end)

  it("a weak ETag and a Last-Modified that is not earlier than Date: one connection", function()
    local dir = S.tmpdir()
    local out = T.fetch { url = f.url(("/bytes?n=%d&range=1&etag=%s&lastmod=%s"):format(4 * MiB,
      q('W/"w1"'), q("Fri, 01 Jan 2100 00:00:00 GMT"))), filePath = dir .. "/f", segments = 4 }
    H.expect_ok(out)
    assert.are.equal(1, out.res.segments)
  end)

  -- Was: an unquoted ETag was compared with each range's Last-Modified, every range was
  -- refused and the download fell back to one connection.
  it("an unquoted ETag (beside a Last-Modified) is a strong validator: four ranges", function()
    local dir = S.tmpdir()
    local out = T.fetch { url = f.url(("/bytes?n=%d&range=1&etag=v1&lastmod=%s"):format(4 * MiB,
      q("Mon, 01 Jan 2024 00:00:00 GMT"))), filePath = dir .. "/f", segments = 4 }
    H.expect_ok(out)
    assert.are.equal(4, out.res.segments)
    assert.is_true(S.file_matches_pattern(dir .. "/f", 4 * MiB))
  end)
end)

describe("integrity: the part's record", function()
  local f
  setup(function() f = S.fault() end)
  after_each(T.cleanup)

  -- Was: the first answer said 65536 bytes, the part held 32768, and a later 416 saying
  -- "bytes */32768" made the half part the destination. The record keeps the length.
  it("a lying 416 does not complete a half part", function()
    local dir = S.tmpdir()
    local dest = dir .. "/f.bin"
    local url = "/bytes?n=65536&range=1&etag=%22v1%22"
    local out = T.fetch { url = f.url(url .. "&dropafter=32768"), filePath = dest, resume = true }
    assert.are.equal(600000, out.err and out.err.errno)
    out = T.fetch { url = f.url(url .. "&lie416=32768"), filePath = dest, resume = true }
    assert.are.equal(416, out.res and out.res.statusCode, out.err and out.err.errMsg)
    assert.is_nil(S.filesize(dest))
    assert.is_nil((H.part_files(dir)))
  end)

  -- Was: an ETag over 255 bytes turned the ranges' version check off, and over ~4 KB the
  -- info file could not be read back, so every resume started over. Validators up to
  -- 8 KiB (RECORD_VALIDATOR_MAX) work for resume and segments alike.
  for _, len in ipairs { 300, 5000 } do
    it(("a %d-byte ETag: resumed, and checked on every range"):format(len), function()
      local etag = '"' .. ("e"):rep(len - 2) .. '"'
      local dir = S.tmpdir()
      local dest = dir .. "/f.bin"
      local url = ("/bytes?n=%d&range=1&etag=%s"):format(4 * MiB, q(etag))
      local out = T.fetch { url = f.url(url .. "&dropafter=100000"), filePath = dest, resume = true }
      assert.are.equal(600000, out.err and out.err.errno)
      out = T.fetch({ url = f.url(url), filePath = dest, resume = true, segments = 4 }, { listen = true })
      assert.are.same({ "success", "complete" }, out.calls)
      assert.is_truthy(out.res.header["content-range"], "not continued")
      assert.is_true(out.res.segments > 1, "the rest was not split")
      assert.is_true(S.file_matches_pattern(dest, 4 * MiB))
      -- another version of the same length whose server ignores If-Range: every range refused
      out = T.fetch { url = f.url(("/bytes?n=%d&range=1&etag=%s&ignoreifrange=1&shift=7"):format(4 * MiB,
        q('"' .. ("f"):rep(len - 2) .. '"'))), filePath = dir .. "/g.bin", segments = 4 }
      H.expect_ok(out)
      assert.is_true(S.readfile(dir .. "/g.bin") == P.pattern(7, 4 * MiB), "g.bin is not one version")
    end)
  end

  -- Was: written in place (O_TRUNC, then write); now a new file renamed over it. A record of
  -- 0.2's format (validator, name) is none: the part starts over, nothing is spliced.
  it("is written whole, by rename; an older record's part starts over", function()
    local dir = S.tmpdir()
    local dest = dir .. "/f.bin"
    local url = "/bytes?n=300000&range=1&etag=%22v1%22"
    local out = T.fetch { url = f.url(url .. "&dropafter=100000"), filePath = dest, resume = true }
    assert.are.equal(600000, out.err and out.err.errno)
    local part, info = H.part_files(dir)
    assert.are.equal('downloadtask part 2\nlength 300000\nvalidator "v1"\nname f.bin\n', S.readfile(info))
    S.writefile(info, '"v1"\nf.bin\n')
    out = T.fetch({ url = f.url(url), filePath = dest, resume = true }, { listen = true })
    H.expect_ok(out)
    assert.are.equal(200, out.headers[1].statusCode)
    assert.is_true(S.file_matches_pattern(dest, 300000))
    assert.are.same({ "f.bin" }, S.listdir(dir))
    assert.is_nil(S.filesize(part))
  end)
end)

describe("integrity: a segmented part is continued", function()
  local f
  setup(function() f = S.fault() end)
  after_each(T.cleanup)

  -- Was: when the last ranges had not started (maxPerHost, an early kill), the part file
  -- ended before them, the record was refused (a range starting past the file's end) and
  -- the resume sent a plain GET, throwing every byte away.
  it("when ranges that hold nothing start past the part file's end", function()
    local dt = require "downloadtask"
    local n = 8 * MiB
    local dir = S.tmpdir()
    local dest = dir .. "/f.bin"
    local url = ("/bytes?n=%d&range=1&etag=%%22v1%%22"):format(n)
    dt.configure { maxPerHost = 2 }
    local t = T.start { url = f.url(url .. "&rate=1000000"), filePath = dest, resume = true, segments = 4 }
    local stop = H.now() + 1.2
    while H.now() < stop do dt.poll(50) end
    t:abort()
    t:await()
    dt.configure { maxPerHost = 0 }
    local part, info = H.part_files(dir)
    local _, ranges = H.recorded_ranges(info)
    assert.is_truthy(ranges, "no ranges recorded")
    local size, past = S.filesize(part), false
    for _, r in ipairs(ranges) do
      if r.pos == r.start and r.start > size then past = true end
    end
    assert.is_true(past, "no unstarted range beyond the part's end: the case did not arise")
    local out = T.fetch({ url = f.url(url), filePath = dest, resume = true, segments = 4 }, { listen = true })
    assert.are.same({ "success", "complete" }, out.calls)
    assert.is_truthy(out.res.header["content-range"], "not continued: a plain GET")
    assert.is_true(S.file_matches_pattern(dest, n))
  end)
end)

describe("integrity: a continued download's result describes the resource", function()
  local f
  setup(function() f = S.fault() end)
  after_each(T.cleanup)

  -- Was (issue 20, item 12): after pause()/resume() a 200 download reported statusCode 206,
  -- attempts 2 without retry, and the range answer's headers, while its headers event said 200.
  it("after pause() and resume(): statusCode 200, attempts 1, the first answer's headers", function()
    local dt = require "downloadtask"
    local n = 2 * MiB
    local dir = S.tmpdir()
    local events, written = {}, 0
    local t = T.start { url = f.url(("/bytes?n=%d&range=1&etag=%%22v1%%22&rate=2000000"):format(n)),
      filePath = dir .. "/f.bin" }
    t:onHeadersReceived(function(h) events[#events + 1] = h.statusCode end)
    t:onProgressUpdate(function(p) written = p.totalBytesWritten end)
    local deadline = H.now() + 10
    while written < 300000 and H.now() < deadline do dt.poll(20) end
    t:pause()
    local stop = H.now() + 0.3
    while H.now() < stop do dt.poll(20) end
    t:resume()
    local res, err = t:await()
    assert.is_truthy(res, err and err.errMsg)
    assert.are.equal(200, res.statusCode)
    assert.are.equal(1, res.attempts)
    assert.is_nil(res.header["content-range"])
    assert.are.equal(tostring(n), res.header["content-length"])
    assert.are.same({ 200 }, events)
    assert.is_true(S.file_matches_pattern(dir .. "/f.bin", n))
  end)
end)

describe("segments over HTTP/2", function()
  after_each(T.cleanup)

  -- Was (issue 20, item 8): every range was multiplexed on the main request's connection
  -- (PIPEWAIT), while res.segments said 4: a per-connection cap was not got around.
  it("each range has a connection of its own; res.segments counts them", function()
    local tls = S.nginx_tls()
    local before = #(S.readfile(tls.h2.log) or "")
    local dir = S.tmpdir()
    local out = T.fetch { url = tls.h2.url("100m.bin"), filePath = dir .. "/f", segments = 4, caFile = tls.ca }
    H.expect_ok(out)
    assert.are.equal("h2", out.res.profile.protocol)
    assert.are.equal(4, out.res.segments)
    -- the ranges' requests, from the access log (the main request, stopped by the client at
    -- its range's end, is logged whenever nginx notices); the main one's connection is X-Conn
    local log = (S.readfile(tls.h2.log) or ""):sub(before + 1)
    local conns, ranged = { [out.res.header["x-conn"]] = true }, 0
    for conn in log:gmatch('(%d+) 206 "bytes=[^\n]*\n') do
      ranged = ranged + 1
      conns[conn] = true
    end
    local n = 0
    for _ in pairs(conns) do n = n + 1 end
    assert.are.equal(3, ranged, log)
    assert.are.equal(4, n, "connections for the main request and 3 ranges:\n" .. log)
    assert.is_true(S.file_matches_pattern(dir .. "/f", 100 * MiB))
  end)
end)
