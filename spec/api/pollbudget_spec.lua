-- configure{pollBudget}: poll(0) stops delivering once its time budget is spent; the
-- tasks not reached are delivered by the next polls, each task's events whole and in order.
local dt = require "downloadtask"
local S = require "spec.support.servers"
local socket = require "socket"

local N = 20

describe("configure{pollBudget}", function()
  after_each(function() dt.configure { pollBudget = 500 } end)

  it("rejects a negative or non-integer budget and changes nothing", function()
    assert.has_error(function() dt.configure { pollBudget = -1 } end,
      "downloadtask.configure: bad option 'pollBudget' (must be at least 0)")
    assert.has_error(function() dt.configure { pollBudget = "x" } end,
      "downloadtask.configure: bad option 'pollBudget' (integer expected, got string)")
  end)

  it("a tiny budget spreads delivery over several poll(0) calls, each task whole and in order", function()
    local ng = S.nginx()
    local log = {}
    for i = 1, N do
      local t = dt.downloadFile {
        url = ng.url("small.txt"),
        success = function(res) log[#log + 1] = { i, "success" }; os.remove(res.tempFilePath) end,
        fail = function(e) log[#log + 1] = { i, "fail " .. e.errMsg } end,
        complete = function() log[#log + 1] = { i, "complete" } end,
      }
      t:onHeadersReceived(function() log[#log + 1] = { i, "headers" } end)
    end
    socket.sleep(1.5) -- the engine finishes all N meanwhile; nothing is delivered yet
    assert.are.equal(0, #log)
    dt.configure { pollBudget = 1 }
    local polls, live = 0, N
    local per_poll = {}
    while live > 0 and polls < 1000 do
      local before = #log
      live = dt.poll(0)
      polls = polls + 1
      per_poll[#per_poll + 1] = #log - before
    end
    assert.are.equal(0, live)
    assert.is_true(polls > 1, "one poll(0) delivered everything despite a 1 µs budget")
    assert.is_true(per_poll[1] >= 3, "the first poll(0) delivered less than one whole task")
    -- each task: headers, success, complete, in a row (a task is never cut in the middle)
    assert.are.equal(3 * N, #log)
    local seen = {}
    for k = 1, #log, 3 do
      local i = log[k][1]
      assert.is_nil(seen[i])
      seen[i] = true
      assert.are.same({ { i, "headers" }, { i, "success" }, { i, "complete" } }, { log[k], log[k + 1], log[k + 2] })
    end
  end)

  it("pollBudget = 0 delivers everything ready in one poll(0)", function()
    local ng = S.nginx()
    local done = 0
    for _ = 1, N do
      dt.downloadFile {
        url = ng.url("small.txt"),
        success = function(res) done = done + 1; os.remove(res.tempFilePath) end,
      }
    end
    socket.sleep(1.5)
    dt.configure { pollBudget = 0 }
    assert.are.equal(0, dt.poll(0))
    assert.are.equal(N, done)
  end)
end)
