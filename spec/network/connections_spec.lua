-- Connections (issue 13): downloads to one HTTP/2 host share one multiplexed connection
-- (CURLOPT_PIPEWAIT), and configure{maxPerHost} caps the connections to one host.
local dt = require "downloadtask"
local S = require "spec.support.servers"
local H = require "spec.support.helpers"

local T = H.tracker()
after_each(T.cleanup)

local function stats(f)
  local res = assert(dt.downloadFile { url = f.url("/stats") }:await())
  local body = S.readfile(res.tempFilePath)
  os.remove(res.tempFilePath)
  return tonumber(body:match('"max":(%d+)'))
end

describe("HTTP/2", function()
  it("20 downloads at once to one h2 host share one connection", function()
    local tls = S.nginx_tls()
    local tasks = {}
    for i = 1, 20 do
      tasks[i] = T.start { url = tls.h2.url("1k.bin"), caFile = tls.ca, filePath = S.tmpdir() .. "/f" .. i }
    end
    local conns, protocols = {}, {}
    for _, t in ipairs(tasks) do
      local res, err = t:await()
      assert.is_truthy(res, err and err.errMsg)
      assert.are.equal(200, res.statusCode)
      assert.are.equal(1024, res.dataLength)
      conns[res.header["x-conn"]] = true
      protocols[res.profile.protocol] = true
    end
    assert.are.same({ h2 = true }, protocols)
    local n = 0
    for _ in pairs(conns) do n = n + 1 end
    assert.are.equal(1, n, "connections opened")
  end)
end)

describe("configure{maxPerHost}", function()
  it("caps the connections to one host; 0 takes the cap away", function()
    local f = S.fault()
    assert(dt.downloadFile { url = f.url("/stats/reset") }:await())
    dt.configure { maxPerHost = 2 }
    local tasks = {}
    for i = 1, 6 do tasks[i] = T.start { url = f.url("/slow?ms=300&n=10") } end
    for _, t in ipairs(tasks) do
      local res = assert(t:await())
      os.remove(res.tempFilePath)
    end
    assert.are.equal(2, stats(f))
    assert(dt.downloadFile { url = f.url("/stats/reset") }:await())
    dt.configure { maxPerHost = 0 }
    for i = 1, 6 do tasks[i] = T.start { url = f.url("/slow?ms=300&n=10") } end
    for _, t in ipairs(tasks) do
      local res = assert(t:await())
      os.remove(res.tempFilePath)
    end
    assert.is_true(stats(f) > 2)
  end)

  it("is checked like every setting", function()
    assert.has_error(function() dt.configure { maxPerHost = -1 } end)
    assert.has_error(function() dt.configure { maxPerHost = "2" } end)
  end)
end)
