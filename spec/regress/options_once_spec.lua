-- Regression, issue 10 item 7 (#7 in the lead's list): downloadFile read every option twice
-- (check_options, then build_options), and anchored the task before the second read. An
-- options table whose __index gives `url` only once left it NULL and the engine thread
-- crashed in strncasecmp(NULL); one that raised on the second read leaked an anchored task
-- per call. SPEC 0.2: "Options are read exactly once each (metamethods of the options table
-- may run, once per name). A downloadFile call that raises leaves nothing behind: no task,
-- no anchor, no file."
-- Also here: `durable` (a boolean) and `ifModifiedSince` as an HTTP date (SPEC 0.2).
local dt = require "downloadtask"
local S = require "spec.support.servers"
local H = require "spec.support.helpers"

local T = H.tracker()

-- every option name of the 0.2 contract this version knows
local NAMES = { "url", "filePath", "header", "timeout", "success", "fail", "complete",
  "connectTimeout", "maxRedirects", "maxFileSize", "insecure", "caFile", "proxy", "stallTimeout",
  "sha256", "rateLimit", "etag", "ifModifiedSince", "resume", "retry", "durable" }

-- DownloadTask userdata held by the registry's tables: the anchors of tasks not yet ended
local function anchored()
  local reg = debug.getregistry()
  local mt = reg["downloadtask.DownloadTask"]
  local n = 0
  for _, v in pairs(reg) do
    if type(v) == "table" then
      for _, x in pairs(v) do
        if type(x) == "userdata" and getmetatable(x) == mt then n = n + 1 end
      end
    end
  end
  return n
end

-- an options table whose values all come from __index, counting the reads per name;
-- `raise(name, nth)` says whether the nth read of name raises
local function counted(values, raise)
  local reads = {}
  local opts = setmetatable({}, { __index = function(_, k)
    reads[k] = (reads[k] or 0) + 1
    if raise and raise(k, reads[k]) then error("raised reading " .. k, 0) end
    return values[k]
  end })
  return opts, reads
end

describe("regression: options are read once", function()
  after_each(T.cleanup)

  it("each name is fetched exactly once, through __index too, and the download works", function()
    local ng = S.nginx()
    local dir = S.tmpdir()
    local got
    local opts, reads = counted({ url = ng.url("small.txt"), filePath = dir .. "/s.txt",
      success = function(r) got = r end, header = { ["X-A"] = "1" }, timeout = 5000 })
    T.track(dt.downloadFile(opts))
    for _, name in ipairs(NAMES) do
      assert.are.equal(1, reads[name], "reads of " .. name)
    end
    H.settle()
    assert.are.equal(200, got and got.statusCode)
    assert.are.equal(S.SMALL_TXT, S.readfile(dir .. "/s.txt"))
    -- nothing read after the call
    for _, name in ipairs(NAMES) do assert.are.equal(1, reads[name]) end
  end)

  it("an __index that gives url only once does not crash the process (child Lua)", function()
    local ng = S.nginx()
    local out, rc = H.child(([[
      local dt = require "downloadtask"
      local n = 0
      local opts = setmetatable({}, { __index = function(_, k)
        if k == "url" then n = n + 1; if n == 1 then return %q end end
      end })
      local ok, r, e = pcall(function() return dt.downloadFile(opts):await() end)
      print("ok", ok, r and r.statusCode or tostring(e and e.errMsg or r))
    ]]):format(ng.url("small.txt")))
    assert.are.equal(0, rc, out)
    assert.matches("ok\ttrue\t200", out, 1, true)
  end)

  it("a call that raises at any option leaves no task, no anchor, no live count, no file", function()
    local ng = S.nginx()
    local dir = S.tmpdir()
    local before = anchored()
    local values = { url = ng.url("small.txt"), filePath = dir .. "/f.bin", timeout = 5000 }
    for _, name in ipairs(NAMES) do
      for _ = 1, 20 do
        local opts, reads = counted(values, function(k, nth) return k == name and nth == 1 end)
        local ok, err = pcall(dt.downloadFile, opts)
        assert.is_false(ok, name)
        assert.are.equal("raised reading " .. name, err)
        assert.are.equal(1, reads[name])
      end
      assert.are.equal(0, dt.poll(0), "live tasks after raising at " .. name)
      assert.are.equal(before, anchored(), "anchors after raising at " .. name)
    end
    -- the same with a bad value found after the other options were read
    for _ = 1, 50 do
      assert.has_error(function()
        dt.downloadFile(setmetatable({ durable = "yes" }, { __index = values }))
      end)
    end
    collectgarbage()
    collectgarbage()
    assert.are.equal(0, dt.poll(0))
    assert.are.equal(before, anchored())
    assert.are.same({}, S.listdir(dir))
    H.expect_usable()
  end)

  it("an __index that raises on a second read of a name is never reached twice", function()
    -- 14b16c9 raised there after anchoring the task: one leaked anchor per call
    local ng = S.nginx()
    local before = anchored()
    local tasks = {}
    for i = 1, 30 do
      local name = NAMES[(i - 1) % #NAMES + 1]
      local opts = counted({ url = ng.url("small.txt") }, function(k, nth) return k == name and nth == 2 end)
      local ok, t = pcall(dt.downloadFile, opts)
      assert(ok, t)
      tasks[#tasks + 1] = T.track(t)
    end
    H.settle()
    for _, t in ipairs(tasks) do assert.are.equal("done", t.state) end
    assert.are.equal(0, dt.poll(0))
    assert.are.equal(before, anchored())
  end)
end)

describe("durable", function()
  after_each(T.cleanup)

  it("is a boolean option: true and false download, another type raises naming it", function()
    local ng = S.nginx()
    local dir = S.tmpdir()
    for _, v in ipairs { true, false } do
      local out = T.fetch { url = ng.url("small.txt"), filePath = dir .. "/d.txt", durable = v }
      H.expect_ok(out)
      assert.are.equal(S.SMALL_TXT, S.readfile(dir .. "/d.txt"))
    end
    local ok, err = pcall(dt.downloadFile, { url = ng.url("small.txt"), durable = 1 })
    assert.is_false(ok)
    assert.are.equal("downloadFile: bad option 'durable' (boolean expected, got number)", err)
    assert.are.equal(0, dt.poll(0))
  end)
end)

describe("ifModifiedSince as an HTTP date", function()
  after_each(T.cleanup)

  -- the fault server answers 304 when If-Modified-Since equals lastmod as sent: the engine
  -- sends the IMF-fixdate of the epoch seconds, so the string must convert exactly
  local function status_for(lastmod, ims)
    local f = S.fault()
    local out = T.fetch { url = f.url("/bytes?n=10&lastmod=" .. lastmod:gsub(" ", "%%20"):gsub(",", "%%2C")),
      ifModifiedSince = ims }
    if out.res and out.res.tempFilePath then os.remove(out.res.tempFilePath) end
    return out.res and out.res.statusCode
  end

  it("accepts the three forms of RFC 9110 (IMF-fixdate, rfc850, asctime)", function()
    local imf = "Sun, 06 Nov 1994 08:49:37 GMT"
    assert.are.equal(304, status_for(imf, imf))
    assert.are.equal(304, status_for(imf, "Sunday, 06-Nov-94 08:49:37 GMT"))
    assert.are.equal(304, status_for(imf, "Sun Nov  6 08:49:37 1994"))
    assert.are.equal(304, status_for(imf, 784111777))
    -- one second earlier: the server sends the body (libcurl itself treats a 200 whose
    -- Last-Modified is not newer than the condition as not modified: no later date here)
    assert.are.equal(200, status_for(imf, "Sun, 06 Nov 1994 08:49:36 GMT"))
    -- a leap day, a leap second's neighbour and the end of a year
    assert.are.equal(304, status_for("Tue, 29 Feb 2000 12:00:00 GMT", "Tue, 29 Feb 2000 12:00:00 GMT"))
    assert.are.equal(304, status_for("Fri, 31 Dec 2038 23:59:59 GMT", "Fri, 31 Dec 2038 23:59:59 GMT"))
    assert.are.equal(304, status_for("Thu, 01 Jan 1970 00:00:00 GMT", 0))
  end)

  it("a string that is not an HTTP date raises at the call naming the option", function()
    local U = "http://127.0.0.1:1/"
    for _, bad in ipairs {
      "", "yesterday", "1994-11-06T08:49:37Z", "Sun, 06 Nov 1994 08:49:37 UTC",
      "Sun, 6 Nov 1994 08:49:37 GMT", "Sun, 31 Feb 1994 08:49:37 GMT", "Sun, 06 Nov 1994 24:00:00 GMT",
      "sun, 06 nov 1994 08:49:37 gmt", "Sun, 06 Nov 1969 08:49:37 GMT", " Sun, 06 Nov 1994 08:49:37 GMT",
      "Sun, 06 Nov 1994 08:49:37 GMT ", "Sun Nov 6 08:49:37 1994", "Sunday, 06-Nov-1994 08:49:37 GMT",
    } do
      local ok, err = pcall(dt.downloadFile, { url = U, ifModifiedSince = bad })
      assert.is_false(ok, bad)
      assert.matches("bad option 'ifModifiedSince'", err, 1, true)
    end
    local ok, err = pcall(dt.downloadFile, { url = U, ifModifiedSince = {} })
    assert.is_false(ok)
    assert.are.equal("downloadFile: bad option 'ifModifiedSince' (integer or HTTP date string expected, got table)", err)
    assert.are.equal(0, dt.poll(0))
  end)
end)
