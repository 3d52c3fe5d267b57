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
    assert.are.equal(206, out.headers[1].statusCode) -- continued (what res says: issue 20, item 12)
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
