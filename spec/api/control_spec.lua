-- Managing many downloads (issue 14, README "A short tour", "Many downloads"): dt.tasks(),
-- dt.abortAll(), dt.awaitAll(), dt.awaitAny(), fields of the user's own on tasks, the
-- `priority` and `createDirs` options. Against the real servers: nginx for quick bodies, the
-- fault server's /slow and /hang for downloads that take their time.
local dt = require "downloadtask"
local S = require "spec.support.servers"
local H = require "spec.support.helpers"
local socket = require "socket"
local lfs = require "lfs"

local T = H.tracker()
local ng, f

setup(function()
  ng, f = S.nginx(), S.fault()
end)
after_each(T.cleanup)

local function small() return ng.url("small.txt") end
local function slow(ms) return f.url(("/slow?ms=%d&n=10"):format(ms)) end
local function hang() return f.url("/hang") end

-- Polls until fn() is true (10 s at most).
local function poll_until(what, fn)
  local deadline = H.now() + 10
  while not fn() do
    assert(H.now() < deadline, "timed out waiting for " .. what)
    dt.poll(10)
  end
end

local function errmsg(fn, ...)
  local ok, err = pcall(fn, ...)
  assert.is_false(ok, "no error raised")
  return tostring(err)
end

describe("dt.tasks()", function()
  it("lists the queued and running tasks in creation order; a task leaves once its result is delivered", function()
    dt.configure { maxConcurrent = 1 }
    local a = T.start { url = slow(300) }
    local b = T.start { url = small() }
    local c = T.start { url = small() }
    local list = dt.tasks()
    assert.are.equal(3, #list)
    assert.are.equal(a, list[1])
    assert.are.equal(b, list[2])
    assert.are.equal(c, list[3])
    assert.are_not.equal(list, dt.tasks()) -- a new table each call
    local seen
    T.start { url = small(), success = function() seen = dt.tasks() end }
    H.settle()
    assert.are.same({}, dt.tasks())
    -- inside success, the task being delivered and those before it have left the list
    assert.are.same({}, seen)
  end)

  it("drops an aborted task at once, before its fail is delivered", function()
    local a = T.start { url = hang() }
    local b = T.start { url = hang() }
    a:abort()
    local list = dt.tasks()
    assert.are.equal(1, #list)
    assert.are.equal(b, list[1])
    -- its fail is still to come (poll's count of live tasks includes it until then)
    a:await()
    assert.are.equal("aborted", a.state)
    assert.are.equal(1, #dt.tasks())
    assert.are.equal(b, dt.tasks()[1])
    assert.are.equal(1, dt.poll(0))
  end)
end)

describe("dt.abortAll()", function()
  it("aborts every task not yet ended and returns how many; each gets fail abort", function()
    local fails = {}
    local function on_fail(e) fails[#fails + 1] = e end
    for _ = 1, 5 do T.start { url = hang(), fail = on_fail } end
    local done = T.start { url = small() }
    done:await()
    assert.are.equal(5, dt.abortAll())
    for _, t in ipairs(T.tasks) do
      if t ~= done then assert.are.equal("aborted", t.state) end
    end
    assert.are.equal("done", done.state)
    assert.are.same({}, dt.tasks())
    assert.are.equal(0, dt.abortAll())
    H.settle()
    assert.are.equal(5, #fails)
    for _, e in ipairs(fails) do
      assert.are.equal(600003, e.errno)
      assert.are.equal("downloadFile:fail abort", e.errMsg)
    end
  end)

  it("works inside a listener", function()
    local n
    local other = T.start { url = hang() }
    T.start { url = small(), success = function() n = dt.abortAll() end }
    H.settle()
    assert.are.equal(1, n)
    assert.are.equal("aborted", other.state)
  end)
end)

describe("fields of the user's own", function()
  it("are kept on the task, through and after completion", function()
    local t = T.start { url = small() }
    t.name = "level2"
    t[1] = "first"
    t.meta = { size = 19 }
    t.level = 1
    t.level = nil
    local res = t:await()
    assert.are.equal(200, res.statusCode)
    assert.are.equal("level2", t.name)
    assert.are.equal("first", t[1])
    assert.are.equal(19, t.meta.size)
    assert.is_nil(t.level)
    assert.is_nil(t.never_set)
    assert.are.equal("done", t.state)
    -- methods still work, and a field set after the end stays too
    t.after = true
    collectgarbage()
    collectgarbage()
    assert.is_true(t.after)
    t:abort() -- a no-op on an ended task
    assert.are.equal("level2", t.name)
  end)

  it("are visible in callbacks, and are the task's own", function()
    local names = {}
    local a, b
    a = T.start { url = small(), complete = function() names[#names + 1] = a.name end }
    b = T.start { url = small(), complete = function() names[#names + 1] = b.name end }
    a.name, b.name = "a", "b"
    dt.awaitAll { a, b }
    table.sort(names)
    assert.are.same({ "a", "b" }, names)
  end)

  it("cannot be state or a method's name", function()
    local t = T.start { url = small() }
    assert.matches("'state' is read%-only", errmsg(function() t.state = "done" end))
    for _, m in ipairs { "abort", "await", "onProgressUpdate", "offProgressUpdate",
      "onHeadersReceived", "offHeadersReceived" } do
      assert.matches("'" .. m .. "' is a method", errmsg(function() t[m] = 1 end))
      assert.are.equal("function", type(t[m]))
    end
    assert.is_true(t.state == "queued" or t.state == "running")
    t:await()
    assert.matches("'state' is read%-only", errmsg(function() t.state = "x" end))
    assert.are.equal("done", t.state)
  end)
end)

describe("dt.awaitAll()", function()
  it("outside a coroutine, drives the loop and returns, in order, the tables complete received", function()
    local got = {}
    local function opts(url, i)
      return { url = url, complete = function(r) got[i] = r end }
    end
    local a = T.start(opts(slow(200), 1))
    local b = T.start(opts(f.url("/close"), 2))
    local c = T.start(opts(small(), 3))
    local out = dt.awaitAll { a, b, c }
    assert.are.equal(3, #out)
    for i = 1, 3 do assert.are.equal(got[i], out[i]) end -- the same tables
    assert.are.equal(200, out[1].statusCode)
    assert.is_number(out[2].errno)
    assert.are.equal(200, out[3].statusCode)
    assert.are.equal("done", a.state)
    assert.are.equal("failed", b.state)
  end)

  it("in a coroutine, yields until every task has ended", function()
    local a = T.start { url = slow(200) }
    local b = T.start { url = small() }
    local out, after_b
    local co = coroutine.create(function()
      out = dt.awaitAll { a, b }
    end)
    assert(coroutine.resume(co))
    assert.are.equal("suspended", coroutine.status(co))
    b:await()
    after_b = out
    dt.run()
    assert.is_nil(after_b) -- b alone did not end the wait
    assert.are.equal("dead", coroutine.status(co))
    assert.are.equal(200, out[1].statusCode)
    assert.are.equal(200, out[2].statusCode)
  end)

  it("returns at once with an empty array or ended tasks, also inside a listener", function()
    assert.are.same({}, dt.awaitAll {})
    local a = T.start { url = small() }
    local res = a:await()
    local out = dt.awaitAll { a, a }
    assert.are.equal(res, out[1])
    assert.are.equal(res, out[2])
    local inner
    T.start { url = small(), success = function() inner = dt.awaitAll { a } end }
    H.settle()
    assert.are.equal(res, inner[1])
  end)

  it("refuses to block inside a listener, where poll is allowed", function()
    local pending = T.start { url = slow(300) }
    local err, polled
    T.start { url = small(), success = function()
      polled = dt.poll(0)
      err = select(2, pcall(dt.awaitAll, { pending }))
    end }
    H.settle()
    assert.is_number(polled)
    assert.matches("downloadtask.awaitAll: cannot block while the loop is being driven", tostring(err))
    assert.are.equal("done", pending.state)
  end)

  it("in a coroutine inside a listener, waits", function()
    local pending = T.start { url = slow(200) }
    local out
    T.start { url = small(), success = function()
      coroutine.wrap(function() out = dt.awaitAll { pending } end)()
    end }
    H.settle()
    assert.are.equal(200, out[1].statusCode)
  end)

  it("raises on an argument that is not an array of tasks", function()
    assert.matches("bad argument #1 to 'awaitAll' %(table expected, got nil%)", errmsg(dt.awaitAll))
    assert.matches("item 2: downloadtask.DownloadTask expected, got string",
      errmsg(dt.awaitAll, { T.start { url = small() }, "x" }))
  end)
end)

describe("dt.awaitAny()", function()
  it("outside a coroutine, returns the first task to end and its res; the others go on", function()
    local slow_t = T.start { url = slow(1500) }
    local fast = T.start { url = small() }
    local t, res, err = dt.awaitAny { slow_t, fast }
    assert.are.equal(fast, t)
    assert.are.equal(200, res.statusCode)
    assert.is_nil(err)
    assert.are.equal("running", slow_t.state)
    assert.are.equal(200, slow_t:await().statusCode)
  end)

  it("returns task, nil, err for a task that fails", function()
    local h = T.start { url = hang() }
    local bad = T.start { url = f.url("/close") }
    local t, res, err = dt.awaitAny { h, bad }
    assert.are.equal(bad, t)
    assert.is_nil(res)
    assert.is_number(err.errno)
  end)

  it("returns a task that was aborted, once its fail is delivered", function()
    local a = T.start { url = hang() }
    local b = T.start { url = hang() }
    local co_out
    local co = coroutine.create(function() co_out = { dt.awaitAny { a, b } } end)
    assert(coroutine.resume(co))
    b:abort()
    assert.are.equal("suspended", coroutine.status(co)) -- ended only at the delivery of fail
    poll_until("awaitAny to return", function() return co_out end)
    assert.are.equal(b, co_out[1])
    assert.is_nil(co_out[2])
    assert.are.equal(600003, co_out[3].errno)
    assert.is_true(a.state == "queued" or a.state == "running")
    -- outside a coroutine, too
    a:abort()
    local t, res, err = dt.awaitAny { a }
    assert.are.equal(a, t)
    assert.is_nil(res)
    assert.are.equal("downloadFile:fail abort", err.errMsg)
  end)

  it("in a coroutine, is resumed once: a task ending later does not resume it again", function()
    local fast = T.start { url = small() }
    local later = T.start { url = slow(300) }
    local got, resumed_after = nil, 0
    local co = coroutine.create(function()
      got = dt.awaitAny { later, fast }
      while true do
        coroutine.yield("mine")
        resumed_after = resumed_after + 1
      end
    end)
    assert(coroutine.resume(co))
    poll_until("awaitAny to return", function() return got end)
    assert.are.equal(fast, got)
    later:await()
    H.settle()
    assert.are.equal(0, resumed_after)
  end)

  it("with ended tasks, returns the first of the array that has ended, also inside a listener", function()
    local a = T.start { url = small() }
    local b = T.start { url = small() }
    dt.awaitAll { a, b }
    local t = dt.awaitAny { b, a }
    assert.are.equal(b, t)
    local inner
    local h = T.start { url = hang() }
    T.start { url = small(), success = function() inner = dt.awaitAny { h, a } end }
    H.settle(2)
    assert.are.equal(a, inner)
  end)

  it("raises on an empty array, and refuses to block inside a listener", function()
    assert.matches("bad argument #1 to 'awaitAny' %(empty array", errmsg(dt.awaitAny, {}))
    local h = T.start { url = hang() }
    local err
    T.start { url = small(), success = function() err = select(2, pcall(dt.awaitAny, { h })) end }
    poll_until("the listener", function() return err end)
    assert.matches("downloadtask.awaitAny: cannot block while the loop is being driven", tostring(err))
    assert.matches("item 1: downloadtask.DownloadTask expected, got number", errmsg(dt.awaitAny, { 1 }))
  end)
end)

describe("priority", function()
  -- With one download at a time and a slow one holding the slot, what is queued behind it
  -- starts (and ends) in the queue's order.
  local function order_of(specs)
    dt.configure { maxConcurrent = 1 }
    local blocker = T.start { url = slow(400) }
    poll_until("the first download to run", function() return blocker.state == "running" end)
    local order = {}
    for _, s in ipairs(specs) do
      T.start { url = small(), priority = s[2], complete = function() order[#order + 1] = s[1] end }
    end
    H.settle()
    return order
  end

  it("starts higher priorities first, equal ones in call order", function()
    assert.are.same({ "p10", "p5a", "p5b", "a", "b", "c", "neg" }, order_of {
      { "a" }, { "p5a", 5 }, { "neg", -1 }, { "b", 0 }, { "p5b", 5 }, { "p10", 10 }, { "c" },
    })
  end)

  it("keeps call order for many equal priorities", function()
    local specs, want = {}, {}
    for i = 1, 30 do
      specs[i] = { i, i % 3 }
    end
    for _, p in ipairs { 2, 1, 0 } do
      for i = 1, 30 do if i % 3 == p then want[#want + 1] = i end end
    end
    assert.are.same(want, order_of(specs))
  end)

  it("orders 200 tasks of random priorities as a stable sort would", function()
    math.randomseed(14)
    local specs = {}
    for i = 1, 200 do specs[i] = { i, math.random(-5, 5) } end
    local want = {}
    for i, s in ipairs(specs) do want[i] = s end
    table.sort(want, function(a, b)
      if a[2] ~= b[2] then return a[2] > b[2] end
      return a[1] < b[1]
    end)
    for i, s in ipairs(want) do want[i] = s[1] end
    assert.are.same(want, order_of(specs))
  end)

  it("takes integers only", function()
    assert.matches("bad option 'priority' %(integer expected, got number%)",
      errmsg(dt.downloadFile, { url = small(), priority = 1.5 }))
    assert.matches("bad option 'priority' %(integer expected, got string%)",
      errmsg(dt.downloadFile, { url = small(), priority = "high" }))
    assert.are.equal(200, T.start { url = small(), priority = 2.0 }:await().statusCode)
  end)
end)

describe("createDirs", function()
  local function umask()
    return tonumber(H.proc_status("Umask"), 8)
  end

  it("creates the missing parent directories, nested, with 0777 minus the umask", function()
    local dir = S.tmpdir()
    local dest = dir .. "/a/b/c/small.txt"
    local res, err = T.start { url = small(), filePath = dest, createDirs = true }:await()
    assert(res, err and err.errMsg)
    assert.are.equal(dest, res.filePath)
    assert.are.equal(S.SMALL_TXT, S.readfile(dest))
    local want = ("%o"):format(511 - umask())
    if umask() == 18 then assert.are.equal("755", want) end
    for _, d in ipairs { "/a", "/a/b", "/a/b/c" } do
      assert.are.equal("directory", lfs.attributes(dir .. d, "mode"))
      assert.are.equal(want, H.mode_of(dir .. d))
    end
    -- directories that exist already, and a relative path with "./" and "//"
    res = T.start { url = small(), filePath = dest, createDirs = true }:await()
    assert.are.equal(200, res.statusCode)
  end)

  it("without it, a missing directory fails as before", function()
    local dest = S.tmpdir() .. "/missing/small.txt"
    local res, err = T.start { url = small(), filePath = dest }:await()
    assert.is_nil(res)
    assert.are.equal(603300, err.errno)
    assert.matches("directory does not exist", err.errMsg, 1, true)
  end)

  it("fails naming the path when a file is in the way", function()
    local dir = S.tmpdir()
    S.writefile(dir .. "/file", "x")
    local res, err = T.start { url = small(), filePath = dir .. "/file/b/small.txt", createDirs = true }:await()
    assert.is_nil(res)
    assert.are.equal(603300, err.errno)
    assert.are.equal("downloadFile:fail save file error: not a directory: " .. dir .. "/file", err.errMsg)
    assert.are.equal("x", S.readfile(dir .. "/file"))
    assert.is_nil(lfs.attributes(dir .. "/file/b"))
  end)

  -- Was (issue 22 item 11): the directories made stayed when nothing was saved.
  it("removes the directories it made when nothing is saved: a refused connection, a 404, an abort", function()
    local refused = ("http://127.0.0.1:%d/x"):format(S.free_port())
    for _, case in ipairs {
      { what = "refused", url = refused },
      { what = "404", url = S.nginx().url("missing.bin") },
      { what = "abort", url = S.fault().url("/bytes?n=1000000&rate=100000"), abort = true },
    } do
      local dir = S.tmpdir()
      S.run("mkdir -p " .. S.quote(dir .. "/kept"))
      local t = T.start { url = case.url, filePath = dir .. "/kept/a/b/f.bin", createDirs = true }
      if case.abort then
        t:onProgressUpdate(function() t:abort() end)
      end
      t:await()
      assert.are.same({ "kept" }, S.listdir(dir), case.what)
      assert.are.same({}, S.listdir(dir .. "/kept"), case.what .. ": a made directory is left")
    end
  end)

  -- Found by review: the removal walked the path's text, so ".." took away a directory it
  -- had not made, and "//" stopped it early; and a download queued behind another into the
  -- same new directory failed once the first had removed it.
  it("removes exactly the directories it made, whatever '..' or '//' the path holds", function()
    local dir = S.tmpdir()
    S.run("mkdir -p " .. S.quote(dir .. "/old"))
    local missing = S.nginx().url("missing.bin")
    assert(T.start { url = missing, filePath = dir .. "/new/../old/f.bin", createDirs = true }:await())
    assert.are.same({ "old" }, S.listdir(dir), "'..': the directory there before stays, the one made goes")
    assert(T.start { url = missing, filePath = dir .. "/a/b//f.bin", createDirs = true }:await())
    assert.are.same({ "old" }, S.listdir(dir), "'//': both made directories go")
  end)

  it("a download queued behind another into the same new directory makes it again", function()
    local dir = S.tmpdir()
    local dest = dir .. "/new/f.bin"
    local first = T.start { url = S.nginx().url("missing.bin"), filePath = dest, createDirs = true, resume = true }
    local second = T.start { url = small(), filePath = dest, createDirs = true, resume = true }
    assert.are.equal(404, assert(first:await()).statusCode)
    local res, err = second:await()
    assert(res, err and err.errMsg)
    assert.are.equal(S.SMALL_TXT, S.readfile(dest))
  end)

  it("keeps a made directory that another download put a file in", function()
    for _, missing_first in ipairs { false, true } do
      local dir = S.tmpdir()
      local function slow()
        return T.start { url = S.fault().url("/bytes?n=300000&rate=300000"), filePath = dir .. "/new/ok.bin",
          createDirs = true }
      end
      local function missing()
        return T.start { url = S.nginx().url("missing.bin"), filePath = dir .. "/new/no.bin", createDirs = true }
      end
      local m, s1
      if missing_first then m = missing(); s1 = slow() else s1 = slow(); m = missing() end
      local r2 = assert(m:await())
      assert.are.equal(404, r2.statusCode)
      local r1, e1 = s1:await()
      assert(r1, e1 and e1.errMsg)
      assert.are.same({ "ok.bin" }, S.listdir(dir .. "/new"))
    end
  end)

  it("takes a boolean only", function()
    assert.matches("bad option 'createDirs' %(boolean expected, got string%)",
      errmsg(dt.downloadFile, { url = small(), filePath = "x", createDirs = "yes" }))
  end)
end)

describe("awaitAll and awaitAny in OpenResty", function()
  local OR = require "spec.support.openresty"
  local available, why = OR.available()
  if not available then
    pending(why)
    return
  end

  local o
  setup(function()
    o = OR.start { workers = 1 }
  end)
  teardown(function()
    assert.is_true(OR.stop(o), "nginx did not stop on SIGTERM")
  end)

  local function many(q)
    return "/many?urls=" .. OR.escape(table.concat(q.urls, ",")) .. "&mode=" .. q.mode
      .. (q.abort and "&abort=" .. q.abort or "")
  end

  it("awaitAll waits for every task without blocking the worker", function()
    local c = OR.send(o, many { mode = "all", urls = { slow(600), ng.url("small.txt"), f.url("/close") } })
    -- the worker answers another request meanwhile
    local t0 = H.now()
    local p = OR.get(o, "/pong")
    assert.matches("pong", p.body)
    assert.is_true(H.now() - t0 < 0.4, "the worker was blocked")
    assert.is_false(OR.readable(c))
    local r = OR.receive(c)
    assert.are.equal(200, r.status, r.body)
    assert.are.equal("status 200", r.fields.r1)
    assert.are.equal("status 200", r.fields.r2)
    assert.matches("^errno %d+$", r.fields.r3)
  end)

  it("awaitAny returns the first task to end, also one that was aborted", function()
    local r = OR.get(o, many { mode = "any", urls = { hang(), ng.url("small.txt") } })
    assert.are.equal(200, r.status, r.body)
    assert.are.equal("2", r.fields.index)
    assert.are.equal("status 200", r.fields.result)
    assert.are.equal("1", r.fields.aborted)
    r = OR.get(o, many { mode = "any", urls = { hang(), hang() }, abort = 2 })
    assert.are.equal(200, r.status, r.body)
    assert.are.equal("2", r.fields.index)
    assert.are.equal("errno 600003", r.fields.result)
    assert.are.equal("1", r.fields.aborted)
  end)
end)
