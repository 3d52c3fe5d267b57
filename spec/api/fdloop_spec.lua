-- dt.fd() in a foreign event loop (luv): downloads driven only by the loop.
local dt = require "downloadtask"
local S = require "spec.support.servers"

local has_luv, uv = pcall(require, "luv")

describe("dt.fd() in a luv loop", function()
  if not has_luv then
    pending("lua-luv is not installed for " .. _VERSION)
    return
  end

  it("drives downloads with no other call than poll(0) on readiness", function()
    local ng, f = S.nginx(), S.fault()
    local done, failed = {}, 0
    local urls = { ng.url("1m.bin"), ng.url("small.txt"), f.url("/bytes?n=300000&chunk=10000&delay=20"),
      f.url("/status/404?n=5") }
    for i, url in ipairs(urls) do
      dt.downloadFile {
        url = url,
        success = function(res) done[i] = res; os.remove(res.tempFilePath) end,
        fail = function() failed = failed + 1 end,
      }
    end
    local ticks, wakeups = 0, 0
    local timer = uv.new_timer()
    timer:start(5, 5, function() ticks = ticks + 1 end)
    local watcher = uv.new_poll(dt.fd())
    watcher:start("r", function()
      wakeups = wakeups + 1
      if dt.poll(0) == 0 then
        watcher:stop(); watcher:close(); timer:close()
      end
    end)
    uv.run()
    assert.are.equal(0, failed)
    assert.are.equal(1048576, done[1].dataLength)
    assert.are.equal(S.SMALL_TXT:len(), done[2].dataLength)
    assert.are.equal(300000, done[3].dataLength)
    assert.are.equal(404, done[4].statusCode)
    assert.is_true(wakeups >= 1)
    -- the trickled body takes ~0.6 s: the loop kept running its timer meanwhile
    assert.is_true(ticks >= 20, "ticks " .. ticks)
  end)

  it("fd is not readable while nothing is ready", function()
    local fd = dt.fd()
    local readable = false
    local watcher = uv.new_poll(fd)
    local timer = uv.new_timer()
    watcher:start("r", function() readable = true end)
    timer:start(100, 0, function() watcher:stop(); watcher:close(); timer:close() end)
    uv.run()
    assert.is_false(readable)
  end)

  -- whether dt.fd() becomes readable within ms, asked through the luv loop
  local function readable_within(ms)
    local readable = false
    local watcher, timer = uv.new_poll(dt.fd()), uv.new_timer()
    local function stop() watcher:stop(); watcher:close(); timer:stop(); timer:close() end
    watcher:start("r", function() readable = true; stop() end)
    uv.update_time() -- the loop's clock stood still while the spec slept
    timer:start(ms, 0, stop)
    uv.run()
    return readable
  end

  it("stays readable when poll(0) stopped at its time budget with news left", function()
    local ng = S.nginx()
    local done = 0
    for _ = 1, 20 do
      dt.downloadFile { url = ng.url("small.txt"), success = function(r) done = done + 1; os.remove(r.tempFilePath) end }
    end
    require("socket").sleep(1.5) -- all 20 finish in the engine meanwhile
    dt.configure { pollBudget = 1 }
    local ok, err = pcall(function()
      dt.poll(0)
      assert.is_true(done > 0 and done < 20, "delivered " .. done)
      local rounds = 0
      while done < 20 and rounds < 100 do
        assert.is_true(readable_within(500), ("fd not readable with %d of 20 delivered"):format(done))
        dt.poll(0)
        rounds = rounds + 1
      end
      assert.are.equal(20, done)
      assert.is_false(readable_within(100))
    end)
    dt.configure { pollBudget = 500 }
    assert(ok, err)
  end)

  it("stays readable after a listener's error left news undelivered", function()
    local ng = S.nginx()
    local calls = 0
    for _ = 1, 2 do
      dt.downloadFile { url = ng.url("small.txt"), success = function(r)
        calls = calls + 1
        os.remove(r.tempFilePath)
        if calls == 1 then error("boom") end
      end }
    end
    require("socket").sleep(1)
    assert.has_error(function() dt.poll(0) end)
    assert.are.equal(1, calls)
    assert.is_true(readable_within(500), "fd not readable after the error")
    assert.are.equal(0, dt.poll(0))
    assert.are.equal(2, calls)
  end)
end)
