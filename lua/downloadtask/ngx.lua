-- downloadtask's await method, and its OpenResty glue: the worker's poller.
--
-- Not a module to require: the Makefile compiles this file into downloadtask.so
-- (build/gen/ngx_lua.h) and src/task.c runs it once per Lua state, with six C functions:
--   step(task [, check [, who, level]])  0 while the task runs (and, without check,
--                         registers the running coroutine to be resumed when it ends); 1, res;
--                         or 2, nil, err. Its errors name `who` (default DownloadTask:await)
--                         `level` frames up (default 2)
--   yield()               coroutine.yield from C
--   tick()                poll(0) unless the loop is already being driven; returns the
--                         number of tasks not yet ended
--   notifier()            the path of the engine's notifier socket (made at the first call),
--                         which gets a byte whenever poll(0) has something to deliver; or
--                         nil and why it cannot be made
--   any(tasks [, check])  awaitAny's step: 0 while none of the array's tasks has ended (and,
--                         without check, registers the running coroutine with each of them);
--                         or the first ended task and its res, nil or nil, err
--   all_check(tasks [, check])  checks awaitAll's array; returns its length, how many of
--                         its tasks have not ended, and a copy of it (the tasks awaited)
-- It returns the await method, `kick` (which downloadFile calls under nginx), and
-- dt.awaitAll and dt.awaitAny.
--
-- Plain Lua: await yields in a coroutine (the dispatcher resumes it after `complete`; a
-- resume by anyone else just waits again) and drives the loop outside one (in C).
--
-- OpenResty: a request cannot block (it would stall every request of the worker) and
-- cannot wait on a pipe, but a cosocket can wait on a Unix-domain socket. One timer per
-- worker, the poller, connects a cosocket to the engine's notifier socket and sits in
-- receive: nginx's event loop wakes it exactly when the engine has news, it calls poll(0)
-- (listeners and callbacks run there) and posts the ngx.semaphore of every await whose task
-- has ended. No timer loop, no ngx.sleep: a worker with nothing to deliver does nothing.
local step, yield, tick, notifier, any, all_check = ...

-- The phases in which a request or timer may yield: await waits on a semaphore there.
local NGX_WAIT = {
  rewrite = true, server_rewrite = true, access = true, content = true, timer = true,
  ssl_cert = true, ssl_session_fetch = true, ssl_client_hello = true, preread = true,
}
-- The poller's receive timeout (seconds): a guard only. While downloads are live the engine
-- writes a byte at least every second (a heartbeat), so a read never times out (a timeout
-- would write "lua tcp socket read timed out" to error.log); at each byte the poller checks
-- whether the worker exits with no await waiting, and ends then, so a graceful stop or reload
-- is not held up. With nothing live and nobody awaiting it ends at once (a new download or
-- await starts it again), so that with `lua_code_cache off` the request's Lua VM, which the
-- timer holds, can go.
local GUARD = 5
-- An await's semaphore wait (seconds): the poller posts it; the timeout only guards against
-- a poller that died of an error the log shows.
local SEMA_WAIT = 5

local waiting = {}     -- task -> { sema = ngx.semaphore, n = awaits waiting on it }
local any_waiting = {} -- awaitAny: ngx.semaphore -> its array of tasks
local running = false  -- the poller timer is scheduled or running
local in_tick = false  -- listeners are running (inside tick)

-- poll(0), then wake the awaits whose task has ended; returns tick's count (1 after an
-- error: a listener's error is logged and polling goes on).
local function poll_and_wake(ngx)
  in_tick = true
  local ok, live = pcall(tick)
  in_tick = false
  if not ok then
    ngx.log(ngx.ERR, "downloadtask: ", tostring(live))
    live = 1
  end
  for task, w in pairs(waiting) do
    if step(task, true) ~= 0 then
      waiting[task] = nil
      w.sema:post(w.n)
    end
  end
  for sema, tasks in pairs(any_waiting) do
    -- an error (the array changed meanwhile) is raised by awaitAny itself
    local okc, t = pcall(any, tasks, true)
    if not okc or t ~= 0 then
      any_waiting[sema] = nil
      sema:post(1)
    end
  end
  return live
end

local function nobody_waits() return next(waiting) == nil and next(any_waiting) == nil end

local function connect(ngx)
  local path, why = notifier()
  if not path then return nil, why end
  local sock = ngx.socket.tcp()
  sock:settimeout(GUARD * 1000)
  local ok, err = sock:connect("unix:" .. path)
  if not ok then
    return nil, "cannot connect to the notifier socket " .. path .. ": " .. tostring(err)
  end
  return sock
end

-- Waits on the notifier socket and polls after every byte. Without `ended` (the poller
-- timer): until nothing is live and nobody awaits, or the worker exits and nobody awaits.
-- With `ended` (an await that could not start the timer): until ended() is true. Returns
-- true, or nil and why it could not wait.
local function drive(ngx, ended)
  local sock, err = connect(ngx)
  if not sock then return nil, err end
  -- news published before the connection existed wrote no byte to it: poll first
  local live = poll_and_wake(ngx)
  while true do
    if ended and ended() then break end
    -- nothing to drive: no yield between this and the end
    if not ended and nobody_waits() and (live == 0 or ngx.worker.exiting()) then break end
    -- receiveany returns what has arrived (the engine may have written more than one byte
    -- before this ran); lua-nginx-module < 0.10.14 has receive(1) only
    local data, rerr
    if sock.receiveany then data, rerr = sock:receiveany(64)
    else data, rerr = sock:receive(1) end
    if not data and rerr ~= "timeout" then
      -- the engine closed it (it stops, or dropped this connection as its oldest): again
      sock:close()
      sock, err = connect(ngx)
      if not sock then return nil, err end
    end
    live = poll_and_wake(ngx)
  end
  sock:close()
  return true
end

local start_poller

local function poller(premature)
  local ngx = ngx
  local ok, done, err = pcall(drive, ngx)
  running = false
  if not (ok and done) then
    ngx.log(ngx.ERR, "downloadtask: the poller stopped: ", tostring(ok and err or done))
    -- the awaits retry (starting a poller again, or driving from their request)
    for task, w in pairs(waiting) do
      waiting[task] = nil
      w.sema:post(w.n)
    end
    for sema in pairs(any_waiting) do
      any_waiting[sema] = nil
      sema:post(1)
    end
    return
  end
  -- a download started after the last check (nothing can run between that check and
  -- here; this only guards that reasoning) is not left without a poller
  if not premature and (not nobody_waits() or tick() > 0) then start_poller(ngx) end
end

function start_poller(ngx)
  if running then return true end
  local ok, err = ngx.timer.at(0, poller)
  running = ok and true or false
  return running, err
end

-- downloadFile's hook, in a worker: a download nobody awaits is driven too
local function kick()
  local ngx = rawget(_G, "ngx")
  if not running and type(ngx) == "table" and ngx.get_phase and ngx.get_phase() ~= "init" then
    local ok, err = start_poller(ngx)
    if not ok and not ngx.worker.exiting() then
      ngx.log(ngx.WARN, "downloadtask: cannot start the poller: ", tostring(err))
    end
  end
end

local function ngx_await(self, ngx)
  local n, a, b = step(self, true)
  if n == 0 and in_tick then
    error("DownloadTask:await: cannot wait inside a listener in OpenResty (listeners run in "
      .. "the poller timer); await in a timer of your own (ngx.timer.at)", 3)
  end
  while n == 0 do
    local ok, err = start_poller(ngx)
    if ok then
      local w = waiting[self]
      if not w then
        w = { sema = require("ngx.semaphore").new(), n = 0 }
        waiting[self] = w
      end
      w.n = w.n + 1
      w.sema:wait(SEMA_WAIT)
      -- on a timeout or after the poller's error, w may still be registered: count this
      -- await out of it (the poller removes w when it posts)
      if waiting[self] == w then
        w.n = w.n - 1
        if w.n == 0 then waiting[self] = nil end
      end
    else
      -- no timer (lua_max_pending_timers or lua_max_running_timers reached, or the worker
      -- exits): wait on the notifier socket from this request
      local done, why = drive(ngx, function() return step(self, true) ~= 0 end)
      if not done then
        error("downloadtask: await: cannot start the poller timer (" .. tostring(err)
          .. ") nor wait on the notifier socket from here (" .. tostring(why) .. ")", 3)
      end
    end
    n, a, b = step(self, true)
  end
  if n == 1 then return a end
  return a, b
end

-- ngx when this runs in an OpenResty phase that may yield, else nil
local function in_ngx()
  local ngx = rawget(_G, "ngx")
  if type(ngx) == "table" and ngx.get_phase and NGX_WAIT[ngx.get_phase()] then return ngx end
end

-- `who` and `level`: what step's errors name, and where (awaitAll awaits through this)
local function await_task(self, who, level)
  local ngx = in_ngx()
  if ngx then return ngx_await(self, ngx) end
  local n, a, b = step(self, false, who, level)
  while n == 0 do
    yield()
    n, a, b = step(self, false, who, level)
  end
  if n == 1 then return a end
  return a, b
end

-- dt.awaitAll and dt.awaitAny

local NGX_TICK_MSG = ": cannot wait inside a listener in OpenResty (listeners run in "
  .. "the poller timer); await in a timer of your own (ngx.timer.at)"

local function await_all(tasks)
  local ngx = in_ngx()
  -- `copy`: the tasks as the array held them at the call (a listener may change the array)
  local n, left, copy = all_check(tasks, ngx ~= nil)
  if ngx and in_tick and left > 0 then error("downloadtask.awaitAll" .. NGX_TICK_MSG, 2) end
  local out = {}
  for i = 1, n do
    local res, err = await_task(copy[i], "downloadtask.awaitAll", 4) -- level 4: awaitAll's caller
    out[i] = res or err
  end
  return out
end

local function ngx_await_any(tasks, ngx)
  if in_tick then error("downloadtask.awaitAny" .. NGX_TICK_MSG, 3) end
  local t, a, b = any(tasks, true)
  while t == 0 do
    local ok, err = start_poller(ngx)
    if ok then
      local sema = require("ngx.semaphore").new()
      any_waiting[sema] = tasks
      sema:wait(SEMA_WAIT)
      any_waiting[sema] = nil
    else
      local done, why = drive(ngx, function() return any(tasks, true) ~= 0 end)
      if not done then
        error("downloadtask: awaitAny: cannot start the poller timer (" .. tostring(err)
          .. ") nor wait on the notifier socket from here (" .. tostring(why) .. ")", 3)
      end
    end
    t, a, b = any(tasks, true)
  end
  return t, a, b
end

local function await_any(tasks)
  local ngx = in_ngx()
  local t, a, b = any(tasks, ngx ~= nil)
  if t == 0 and ngx then t, a, b = ngx_await_any(tasks, ngx) end
  while t == 0 do
    yield()
    t, a, b = any(tasks)
  end
  if a ~= nil then return t, a end
  return t, nil, b
end

return await_task, kick, await_all, await_any
