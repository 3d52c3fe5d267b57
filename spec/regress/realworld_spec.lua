-- Regressions found by trying the module as new users and against real servers (issue 22):
-- a crash, a hang and arithmetic overflows, each with the case that showed it.
local dt = require "downloadtask"
local S = require "spec.support.servers"
local H = require "spec.support.helpers"

local T = H.tracker()

describe("regression: awaitAny and awaitAll read the array once", function()
  local ng, f
  setup(function() ng, f = S.nginx(), S.fault() end)
  after_each(T.cleanup)

  -- Was a SIGSEGV in remove_waiter <- any_ended: the array was checked at the call, then read
  -- again after every poll, and a listener (or a finalizer) could have put something else in
  -- it. The tasks awaited are the ones the array held at the call. In a child: a crash there
  -- fails this case instead of ending busted.
  it("a listener that rewrites the array while awaitAny blocks", function()
    local out, rc = H.child(([[
      local dt = require "downloadtask"
      local slow = dt.downloadFile { url = %q }
      local arr = { slow }
      dt.downloadFile { url = %q, complete = function()
        arr[1] = "not a task"
        slow:abort()
      end }
      local t, res, err = dt.awaitAny(arr)
      print("awaitAny:", t == slow, res, err and err.errMsg)
    ]]):format(f.url("/bytes?n=1000000&rate=100000"), ng.url("small.txt")))
    assert.are.equal(0, rc, out)
    assert.matches("awaitAny:\ttrue\tnil\tdownloadFile:fail abort", out, 1, true)
  end)

  it("a listener that rewrites the array while awaitAll blocks", function()
    local slow = T.start { url = f.url("/bytes?n=1000000&rate=100000") }
    local arr = { slow }
    T.start { url = ng.url("small.txt"), complete = function()
      arr[1] = "not a task"
      slow:abort()
    end }
    local out = dt.awaitAll(arr)
    assert.are.equal("downloadFile:fail abort", out[1].errMsg)
  end)

  -- The same from finalizers: any allocation of awaitAny's may run one. Tables have
  -- finalizers from 5.2 on; 5.3's collector under setpause 10 takes very long (see
  -- regress_mirrors_gc_spec), so 5.2 and 5.4 run it.
  local table_gc = _VERSION == "Lua 5.2" or _VERSION == "Lua 5.4"
  ;(table_gc and it or pending)("a __gc that rewrites the array during awaitAny in a coroutine", function()
    local out, rc = H.child(([[
      local dt = require "downloadtask"
      local done = dt.downloadFile { url = %q }
      done:await()
      local waiting = {}
      for i = 1, 20 do waiting[i] = dt.downloadFile { url = %q } end
      local arr = { done }
      for i = 1, 20 do arr[i + 1] = waiting[i] end
      local budget, flips = 3000, 0
      local function arm()
        if budget == 0 then return end
        budget = budget - 1
        setmetatable({}, { __gc = function()
          flips = flips + 1
          for i = 2, #arr do arr[i] = (arr[i] == "x") and waiting[i - 1] or "x" end
          arm()
        end })
      end
      collectgarbage("setpause", 10)
      collectgarbage("setstepmul", 1000)
      arm()
      local errors = 0
      for _ = 1, 300 do
        local co = coroutine.wrap(function()
          for i = 2, #arr do arr[i] = waiting[i - 1] end
          local ok, t = pcall(dt.awaitAny, arr)
          if not ok then errors = errors + 1 elseif t ~= done then error("another task") end
        end)
        co()
      end
      budget = 0
      collectgarbage("setpause", 200)
      for _, t in ipairs(waiting) do t:abort() end
      dt.run()
      print("flips", flips, "errors", errors)
    ]]):format(ng.url("small.txt"), f.url("/bytes?n=1000000&rate=100000")))
    assert.are.equal(0, rc, out)
    local flips = tonumber(out:match("flips\t(%d+)"))
    assert.is_truthy(flips and flips > 0, "no finalizer ran: nothing was rewritten\n" .. out)
  end)
end)

describe("regression: await after the module is closed", function()
  -- Was: await() from a finalizer that lua_close runs after the module's own spun at 100 %
  -- CPU forever (run() raised there). The sentinel's finalizer is marked before the module
  -- is loaded, so it runs after the module's state is closed. 5.1 and LuaJIT: newproxy.
  it("raises 'the module is closed' instead of hanging", function()
    local out, rc = H.child(([[
      local task
      local function finalizer()
        local ok, err = pcall(function() return task:await() end)
        print("await:", ok, err)
        io.stdout:flush()
      end
      local sentinel
      if newproxy then
        sentinel = newproxy(true)
        getmetatable(sentinel).__gc = finalizer
      else
        sentinel = setmetatable({}, { __gc = finalizer })
      end
      local dt = require "downloadtask"
      task = dt.downloadFile { url = %q }
      _G.keep = sentinel
    ]]):format(S.fault().url("/bytes?n=1000000&rate=10000")))
    assert.are_not.equal(124, rc, "await hung (killed by timeout 30):\n" .. out)
    assert.matches("await:\tfalse\t[^\n]*the module is closed", out)
  end)
end)

describe("regression: integer options at their largest", function()
  -- Was undefined behaviour (UBSan under make asan): stallTimeout + 999 and SEG_TRIES + retry
  -- overflowed with math.maxinteger. Under the plain build these pass either way; make asan
  -- and the chaos tester's ASan run report the overflow.
  local big = math.maxinteger or 2 ^ 53
  it("math.maxinteger for every integer option still downloads", function()
    local f = S.fault()
    local out = T.fetch { url = f.url("/bytes?n=4194304&range=1&etag=%22v1%22"), timeout = big,
      connectTimeout = big, maxRedirects = big, maxFileSize = big, stallTimeout = big,
      rateLimit = big, retry = big, priority = big, segments = 4 }
    H.expect_ok(out)
    assert.are.equal(4194304, out.res.dataLength)
    assert.are.equal(4, out.res.segments)
    out = T.fetch { url = f.url("/bytes?n=10"), priority = math.mininteger or -2 ^ 53,
      ifModifiedSince = 0 }
    H.expect_ok(out)
  end)

  it("retry = math.maxinteger on ranges that keep failing: retried until aborted", function()
    local f = S.fault()
    local dir = S.tmpdir()
    local t = T.start { url = f.url("/flaky?key=maxint&fails=1000000&n=4194304&range=1&etag=%22v1%22&dropafter=200000"),
      filePath = dir .. "/d", retry = big, stallTimeout = big, segments = 4 }
    local err
    t:onProgressUpdate(function() end)
    local stop = H.now() + 1
    while H.now() < stop do dt.poll(50) end
    assert.are.equal("running", t.state)
    t:abort()
    local _, e = t:await()
    err = e
    assert.are.equal(600003, err and err.errno)
    assert.are.same({}, S.listdir(dir))
  end)
end)
