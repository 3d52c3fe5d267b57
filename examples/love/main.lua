-- A LÖVE 11 asset manager on downloadtask: a list of files, each with its size, state and
-- bar, an overall bar at the bottom; P pauses and resumes them all, a click on a queued file
-- gives it priority. At most two download at once (configure{maxConcurrent = 2}), so the rest
-- wait in the queue. The downloads run on the module's own thread; the game calls dt.poll()
-- (poll(0): it never waits) once a frame in love.update, and the listeners run there.
--
--   make build/luajit/downloadtask.so           # LÖVE runs LuaJIT 2.1: the LuaJIT build
--   love examples/love URL [URL...]             # or DT_LOVE_URLS="URL URL ..." love examples/love
--
-- A URL may be written NAME=URL to name its row (and its file); otherwise the name is the
-- URL's last path segment. URLs must be on the loopback (127.x.x.x, localhost, [::1]); the
-- example follows no redirect and uses no proxy, so it never leaves this machine. The files go
-- to a directory of their own in LÖVE's save directory (love.filesystem.getSaveDirectory()),
-- removed with everything in it when the window closes. Escape closes the window (aborting
-- what still runs).
-- DT_CPATH: a package.cpath template for the module; default <repo>/build/luajit/?.so, found
-- from this directory.
--
-- Pause: task:pause()/task:resume() are used when the module has them (a task answers nil
-- for a method it does not have); otherwise P only says "pause: not available in this build".
-- Priority: a task's priority is fixed when it is created (the module has no method to change
-- it), so a click ABORTS the queued task and starts the same download again with a higher
-- `priority` than any given so far. Nothing is lost: a queued task has not downloaded anything.
--
-- Test mode (spec/embedding/love_spec.lua): DT_LOVE_TEST=1 and
--   DT_LOVE_RESULT=path      written last: key=value lines (status, done, failed, bytes,
--                            file.N=..., priority_file, started_after_click, pause_available,
--                            *_at_shot, paused_bytes, dir, width, height, max_update_ms, ...)
--   DT_LOVE_SCREENSHOT=path  PNG of the window, taken mid-download, with the files paused
--                            when the build can pause
--   DT_LOVE_TIMEOUT=seconds  give up (abort all, status=timeout) after this long; default 60
--   DT_LOVE_ESCAPE_AFTER=seconds  press Escape after this long: the window aborts what still
--                            runs, removes its directory and writes status=quit, aborted=N,
--                            cleaned=true|false, dir=... as the result
-- The window drives itself through LÖVE's event queue, as a person would: once two files
-- download, it clicks the last queued row; once that file runs and one has finished, it presses
-- P, takes the screenshot when every unfinished file shows "paused" (or two frames after P
-- without pause), waits half a second, presses P again and, once all have ended, removes the
-- download directory, writes the result and quits: exit status 0 when every file arrived with
-- a 2xx, else 1. An error anywhere is written to the result (status=error) instead of LÖVE's
-- error screen.

local function getenv(name)
  local v = os.getenv(name)
  if v and v ~= "" then return v end
end

local test = {
  on = getenv("DT_LOVE_TEST") == "1",
  result = getenv("DT_LOVE_RESULT"),
  screenshot = getenv("DT_LOVE_SCREENSHOT"),
  timeout = tonumber(getenv("DT_LOVE_TIMEOUT") or "60") or 60,
  escape_after = tonumber(getenv("DT_LOVE_ESCAPE_AFTER") or ""),
  phase = "wait_running",
  report = {},            -- extra key=value lines for the result
}

-- The module: the LuaJIT build of this repository unless DT_CPATH says otherwise. The
-- default template "./?.so" is dropped: at the repository root it finds the Lua 5.4 build.
local default_cpath = love.filesystem.getSource() .. "/../../build/luajit/?.so"
package.cpath = (getenv("DT_CPATH") or default_cpath) .. ";"
  .. package.cpath:gsub("^%./%?%.so;", ""):gsub(";%./%?%.so", "")
local loaded, dt = pcall(require, "downloadtask")
local load_error
if not loaded then
  load_error = "cannot load downloadtask: build it with `make build/luajit/downloadtask.so` at "
    .. "the repository root, or set DT_CPATH to a cpath template such as /path/?.so\n" .. tostring(dt)
  dt = nil
end

local MAX_CONCURRENT = 2
local W = 800
local LIST = { x = 20, y = 64, row = 46 }             -- one row: name, state, size, bar
local COL = { name = 20, state = 230, size = 380, bar = 20, barw = 760, barh = 12 }
local OVERALL = { x = 20, y = 500, w = 760, h = 28 }
-- Colours that are whole multiples of 1/255, so a screenshot holds exactly these values.
local C = {
  track = { 68 / 255, 68 / 255, 68 / 255 },         -- #444444
  done = { 51 / 255, 204 / 255, 102 / 255 },        -- #33cc66
  running = { 51 / 255, 153 / 255, 1 },             -- #3399ff
  paused = { 1, 204 / 255, 51 / 255 },              -- #ffcc33
  queued = { 136 / 255, 136 / 255, 136 / 255 },     -- #888888
  failed = { 204 / 255, 68 / 255, 68 / 255 },       -- #cc4444
  hover = { 1, 1, 1, 0.06 },
  text = { 1, 1, 1 },
  dim = { 0.7, 0.7, 0.7 },
}

local rows = {}               -- { name, url, dest, task, written, total, state, priority, ... }
local dir                     -- the download directory, relative to the save directory
local dir_path                -- the same, as a path of the OS
local paused_all = false
local can_pause = false       -- known once the first task exists
local top_priority = 0        -- the highest priority given by a click so far
local message
local started_at, ended_at
local timing = { max_ms = 0, sum_ms = 0, updates = 0 }
local frames = 0
local exit_status = 1
local starts = {}             -- names, in the order their download went "running"

local function human(n)
  local units = { "B", "KiB", "MiB", "GiB", "TiB" }
  local i = 1
  while n >= 1024 and i < #units do
    n, i = n / 1024, i + 1
  end
  return (i == 1 and "%d %s" or "%.1f %s"):format(n, units[i])
end

local function is_loopback(u)
  local authority = u:match("^[hH][tT][tT][pP][sS]?://([^/?#]*)")
  if not authority then return false end
  local host = authority:gsub("^.*@", "")
  host = host:match("^%[([^%]]*)%]") or host:gsub(":%d*$", "")
  host = host:lower()
  return host == "localhost" or host == "::1" or host:match("^127%.%d+%.%d+%.%d+$") ~= nil
end

-- Writes a whole file under a temporary name, then renames it: a reader sees all or nothing.
local function write_file(path, data)
  local tmp = path .. ".tmp"
  local f = assert(io.open(tmp, "wb"))
  assert(f:write(data))
  assert(f:close())
  assert(os.rename(tmp, path))
end

local function one_line(s)
  return (tostring(s):gsub("[\r\n]+", " | "))
end

local function file_size(path)
  local f = io.open(path, "rb")
  if not f then return -1 end
  local n = f:seek("end")
  f:close()
  return n or -1
end

-- "queued", "running", "paused", "done", "failed", "aborted": what the row shows.
local function row_state(r)
  if r.state then return r.state end          -- ended: what its listener said
  return r.task and r.task.state or "queued"
end

local function ended(r) return r.state ~= nil end

local function fraction_of(r)
  if row_state(r) == "done" then return 1 end
  return r.total > 0 and math.min(r.written / r.total, 1) or 0
end

-- The rows by state, the bytes so far, the bytes in all (-1 while a size is unknown: a queued
-- file's size comes with its headers) and the overall fraction: by bytes once every size is
-- known, until then the mean of the files' fractions.
local function counts()
  local c = { queued = 0, running = 0, paused = 0, done = 0, failed = 0, aborted = 0 }
  local written, total, known, sum = 0, 0, true, 0
  for _, r in ipairs(rows) do
    local s = row_state(r)
    c[s] = (c[s] or 0) + 1
    written = written + r.written
    sum = sum + fraction_of(r)
    if r.total >= 0 then total = total + r.total else known = false end
  end
  local fraction = (known and total > 0) and written / total or (#rows > 0 and sum / #rows or 0)
  return c, written, known and total or -1, fraction
end

-- Starts (or, after a click, starts again) the download of a row. Listeners of a task that
-- the row has since replaced are ignored: `r.task == task` says whose news it is.
local function start(r, priority)
  local task
  task = dt.downloadFile {
    url = r.url,
    filePath = r.dest,
    priority = priority,
    maxRedirects = 0,     -- a 3xx is the answer: no redirect to another host
    proxy = "",           -- and no proxy from http_proxy & co.
    success = function(res)
      if r.task ~= task then return end
      r.statusCode, r.bytes = res.statusCode, res.dataLength
      if res.statusCode >= 200 and res.statusCode < 300 then
        r.state, r.written = "done", res.dataLength
        if r.total < 0 then r.total = res.dataLength end
      else
        r.state, r.error = "failed", ("HTTP %d"):format(res.statusCode)
      end
    end,
    fail = function(err)
      if r.task ~= task then return end
      r.state, r.error = "failed", ("%s (errno %d)"):format(err.errMsg, err.errno)
    end,
  }
  task.row = r.name       -- a field of our own: dt.tasks() then says which row a task is
  task:onHeadersReceived(function(h)
    if r.task ~= task then return end
    r.total = tonumber(h.header["content-length"] or "") or r.total
  end)
  task:onProgressUpdate(function(p)
    if r.task ~= task then return end
    r.written = p.totalBytesWritten
    if p.totalBytesExpectedToWrite >= 0 then r.total = p.totalBytesExpectedToWrite end
  end)
  r.task, r.priority = task, priority
  can_pause = task.pause ~= nil and task.resume ~= nil
  if paused_all and can_pause then task:pause() end
end

-- P: pause all, or resume all.
local function toggle_pause()
  if not can_pause then
    message = "pause: not available in this build"
    return
  end
  paused_all = not paused_all
  for _, r in ipairs(rows) do
    if r.task and not ended(r) then
      if paused_all then r.task:pause() else r.task:resume() end
    end
  end
  message = paused_all and "paused all (P resumes)" or "resumed all"
end

-- A click on a queued row: it goes ahead of every other queued file. See the top of the file:
-- abort + start again with a higher priority, because a task's priority cannot be changed.
local function give_priority(r)
  if ended(r) or row_state(r) ~= "queued" and not (row_state(r) == "paused" and r.written == 0) then
    message = ("%s is %s: only a queued file can be given priority"):format(r.name, row_state(r))
    return false
  end
  local old = r.task
  top_priority = top_priority + 1
  r.task = nil            -- the old task's listeners no longer speak for this row
  old:abort()
  start(r, top_priority)
  r.clicked = true
  message = ("%s goes first (priority %d)"):format(r.name, top_priority)
  return true
end

local function row_at(x, y)
  if x < LIST.x or x > W - LIST.x then return nil end
  local i = math.floor((y - LIST.y) / LIST.row) + 1
  if y >= LIST.y and rows[i] then return rows[i], i end
end

local function row_center(i)
  return W / 2, LIST.y + (i - 1) * LIST.row + LIST.row / 2
end

-- Removes the download directory and everything in it. Called at quit: tasks aborted there
-- may still be closing their temporary files on the module's thread, so it polls and tries
-- again for up to two seconds. Returns true when the directory is gone.
local function clean_up()
  if not dir then return true end
  local deadline = love.timer.getTime() + 2
  repeat
    for _, item in ipairs(love.filesystem.getDirectoryItems(dir)) do
      love.filesystem.remove(dir .. "/" .. item)
    end
    if love.filesystem.remove(dir) then
      dir = nil
      return true
    end
    if dt then dt.poll() end
    love.timer.sleep(0.02)
  until love.timer.getTime() > deadline
  return false
end

local function all_ended()
  for _, r in ipairs(rows) do
    if not ended(r) then return false end
  end
  return #rows > 0
end

local function parse_urls(args)
  local list = {}
  for _, a in ipairs(args) do list[#list + 1] = a end
  if #list == 0 and getenv("DT_LOVE_URLS") then
    for u in getenv("DT_LOVE_URLS"):gmatch("%S+") do list[#list + 1] = u end
  end
  local seen, out = {}, {}
  for i, a in ipairs(list) do
    local name, url = a:match("^([%w%._%-]+)=([hH][tT][tT][pP][sS]?://.*)$")
    url = url or a
    if not is_loopback(url) then
      return nil, "refused " .. url .. ": this example downloads only from the loopback "
        .. "(127.x.x.x, localhost, [::1])"
    end
    name = name or url:match("^[^?#]*/([%w%._%-]+)[^/]*$") or ("file" .. i)
    if seen[name] then name = name .. "." .. i end
    seen[name] = true
    out[#out + 1] = { name = name, url = url }
  end
  return out
end

function love.load(args)
  love.graphics.setBackgroundColor(0.1, 0.1, 0.12)
  if test.on and not (test.result and test.screenshot) then
    error("DT_LOVE_TEST=1 needs DT_LOVE_RESULT and DT_LOVE_SCREENSHOT (paths to write)")
  end
  if not dt then
    message = load_error
    return
  end
  local list, err = parse_urls(args)
  if not list then
    message = err
    return
  elseif #list == 0 then
    message = "usage: love examples/love URL [URL...]  (NAME=URL names a row; or DT_LOVE_URLS)"
    return
  end
  -- A directory of our own in the save directory: nothing else writes there.
  dir = ("downloads-%d-%d"):format(os.time(), love.math.random(1, 1e9))
  assert(love.filesystem.createDirectory(dir), "cannot create " .. dir .. " in the save directory")
  dir_path = love.filesystem.getSaveDirectory() .. "/" .. dir
  dt.configure { maxConcurrent = MAX_CONCURRENT }
  started_at = love.timer.getTime()
  for _, f in ipairs(list) do
    local r = { name = f.name, url = f.url, dest = dir_path .. "/" .. f.name, written = 0, total = -1 }
    rows[#rows + 1] = r
    start(r, 0)
  end
end

-- Test mode: the steps a person would take, through LÖVE's own event queue.
local function test_step()
  local now = love.timer.getTime()
  local phase = test.phase
  if phase ~= "quitting" and started_at and now - started_at > test.timeout then
    dt.abortAll()
    for _, r in ipairs(rows) do r.state = r.state or "aborted" end
    test.status = "timeout"
    message = ("timeout: not finished after %g s, in phase %s"):format(test.timeout, phase)
    test.phase, phase = "finish", "finish"
  end
  local c = counts()
  if test.escape_after and started_at and phase ~= "finish" and now - started_at > test.escape_after then
    test.escape_after = nil
    love.event.push("keypressed", "escape", "escape", false)
    return
  end
  if phase == "wait_running" then
    -- two downloading with bytes so far, at least two waiting: click the last one waiting
    local moving = 0
    for _, r in ipairs(rows) do
      if row_state(r) == "running" and r.written > 0 then moving = moving + 1 end
    end
    if moving >= MAX_CONCURRENT and c.queued >= 2 then
      for i = #rows, 1, -1 do
        if row_state(rows[i]) == "queued" then
          test.clicked = rows[i]
          test.starts_before_click = #starts
          local x, y = row_center(i)
          love.event.push("mousepressed", x, y, 1, false, 1)
          test.phase = "wait_clicked"
          break
        end
      end
    end
  elseif phase == "wait_clicked" then
    -- the clicked file downloads, one file has finished: pause all
    local r = test.clicked
    if r.clicked and row_state(r) == "running" and r.written > 0 and c.done >= 1 then
      love.event.push("keypressed", "p", "p", false)
      test.pressed_at_frame = frames
      test.phase = "wait_paused"
    end
  elseif phase == "wait_paused" then
    local settled
    if can_pause then
      settled = c.paused > 0 and c.running == 0 and c.queued == 0
    else
      settled = frames >= test.pressed_at_frame + 2
    end
    if settled or frames >= test.pressed_at_frame + 120 then
      test.phase = "shooting"
      local _, written = counts()
      for k, v in pairs(c) do test.report[#test.report + 1] = ("%s_at_shot=%d"):format(k, v) end
      test.report[#test.report + 1] = "bytes_at_shot=" .. written
      test.report[#test.report + 1] = "message_at_shot=" .. one_line(message or "")
      love.graphics.captureScreenshot(function(image)
        write_file(test.screenshot, image:encode("png"):getString())
        local w, h = image:getDimensions()
        test.report[#test.report + 1] = "width=" .. w
        test.report[#test.report + 1] = "height=" .. h
        local r, g, b = image:getPixel(OVERALL.x + 2, OVERALL.y + math.floor(OVERALL.h / 2))
        test.report[#test.report + 1] = ("overall_left=%02x%02x%02x"):format(math.floor(r * 255 + 0.5),
          math.floor(g * 255 + 0.5), math.floor(b * 255 + 0.5))
        local _, bytes = counts()
        test.held_from, test.held_bytes = love.timer.getTime(), bytes
        test.phase = "hold"
      end)
    end
  elseif phase == "hold" then
    if now - test.held_from >= 0.5 then
      local _, bytes = counts()
      test.report[#test.report + 1] = "paused_bytes=" .. (bytes - test.held_bytes)
      test.report[#test.report + 1] = ("paused_seconds=%.3f"):format(now - test.held_from)
      if can_pause then love.event.push("keypressed", "p", "p", false) end
      test.phase = "wait_end"
    end
  elseif phase == "wait_end" then
    if ended_at then test.phase = "finish" end
  end
  if test.phase == "finish" then
    test.phase = "quitting"
    local cnt, written, total = counts()
    local lines = {
      "status=" .. (test.status or (cnt.done == #rows and "done" or "failed")),
      "files=" .. #rows,
      "done=" .. cnt.done,
      "failed=" .. cnt.failed,
      "bytes=" .. written,
      "expected=" .. total,
      "pause_available=" .. (can_pause and 1 or 0),
      "priority_file=" .. (test.clicked and test.clicked.name or ""),
      "started_after_click=" .. (test.starts_before_click and starts[test.starts_before_click + 1] or ""),
      "starts=" .. table.concat(starts, ","),
      ("max_update_ms=%.4f"):format(timing.max_ms),
      ("mean_update_ms=%.4f"):format(timing.updates > 0 and timing.sum_ms / timing.updates or 0),
      "updates=" .. timing.updates,
      ("seconds=%.3f"):format(started_at and ended_at and ended_at - started_at or 0),
      "lua=" .. (jit and jit.version or _VERSION),
      "module=" .. (dt and dt.version or ""),
      "renderer=" .. one_line(table.concat({ pcall(love.graphics.getRendererInfo) }, " ", 2)),
      "message=" .. one_line(message or ""),
      "dir=" .. (dir_path or ""),
    }
    for i, r in ipairs(rows) do
      lines[#lines + 1] = ("file.%d=%s|%s|%s|%d|%d|%d"):format(i, r.name, row_state(r),
        tostring(r.statusCode or ""), r.bytes or -1, r.total, file_size(r.dest))
    end
    lines[#lines + 1] = "cleaned=" .. tostring(clean_up())
    for _, kv in ipairs(test.report) do lines[#lines + 1] = kv end
    write_file(test.result, table.concat(lines, "\n") .. "\n")
    exit_status = (cnt.done == #rows and not test.status) and 0 or 1
    love.event.quit(exit_status)
  end
end

function love.update()
  local t0 = love.timer.getTime()
  if started_at and not ended_at then
    dt.poll()             -- delivers headers, progress and results; returns at once
    for _, r in ipairs(rows) do
      if not r.seen_running and r.task and r.task.state == "running" then
        r.seen_running = true
        starts[#starts + 1] = r.name
      end
    end
    local ms = (love.timer.getTime() - t0) * 1000
    timing.updates = timing.updates + 1
    timing.sum_ms = timing.sum_ms + ms
    if ms > timing.max_ms then timing.max_ms = ms end
    if all_ended() then ended_at = love.timer.getTime() end
  end
  if test.on then test_step() end
end

local function bar(x, y, w, h, fraction, color)
  local g = love.graphics
  g.setColor(C.track)
  g.rectangle("fill", x, y, w, h)
  g.setColor(color)
  g.rectangle("fill", x, y, math.floor(w * math.max(0, math.min(fraction, 1)) + 0.5), h)
end

function love.draw()
  frames = frames + 1
  local g = love.graphics
  g.setColor(C.text)
  g.print(("downloadtask %s: %d files, at most %d at once"):format(dt and dt.version or "", #rows,
    MAX_CONCURRENT), LIST.x, 14)
  g.setColor(C.dim)
  g.print("P: pause/resume all    click a queued file: it goes first    Esc: quit", LIST.x, 34)

  local mx, my = love.mouse.getPosition()
  local hovered = row_at(mx, my)
  for i, r in ipairs(rows) do
    local y = LIST.y + (i - 1) * LIST.row
    if r == hovered then
      g.setColor(C.hover)
      g.rectangle("fill", LIST.x - 6, y, W - 2 * LIST.x + 12, LIST.row - 4)
    end
    local s = row_state(r)
    g.setColor(C.text)
    g.print(r.name, COL.name, y + 4)
    g.setColor(C[s] or C.failed)
    g.print(s .. ((r.priority or 0) > 0 and ("  (priority %d)"):format(r.priority) or ""), COL.state, y + 4)
    g.setColor(C.dim)
    g.print(("%s / %s"):format(human(r.written), r.total >= 0 and human(r.total) or "?"), COL.size, y + 4)
    if r.error then
      g.setColor(C.failed)
      g.print(r.error, COL.size + 180, y + 4)
    end
    bar(COL.bar, y + 24, COL.barw, COL.barh, fraction_of(r), C[s] or C.failed)
  end

  local c, written, total, fraction = counts()
  g.setColor(C.text)
  g.print(("overall: %d of %d files done, %d running, %d paused, %d queued%s    %s / %s"):format(
    c.done, #rows, c.running, c.paused, c.queued, c.failed > 0 and (", %d failed"):format(c.failed) or "",
    human(written), total >= 0 and human(total) or "?"), OVERALL.x, OVERALL.y - 22)
  local overall_color = (c.failed > 0 and C.failed) or (c.paused > 0 and C.paused)
    or (#rows > 0 and c.done == #rows and C.done) or C.running
  bar(OVERALL.x, OVERALL.y, OVERALL.w, OVERALL.h, fraction, overall_color)
  g.setColor(C.dim)
  g.print(("longest love.update while downloading: %.3f ms (%d updates)"):format(timing.max_ms,
    timing.updates), OVERALL.x, OVERALL.y + 40)
  if message then
    g.setColor(C.text)
    g.printf(message, OVERALL.x, OVERALL.y + 62, OVERALL.w)
  end
end

function love.keypressed(key)
  if key == "escape" then
    love.event.quit()
  elseif key == "p" and started_at then
    toggle_pause()
  end
end

function love.mousepressed(x, y, button)
  if button ~= 1 or not started_at then return end
  local r = row_at(x, y)
  if r then give_priority(r) end
end

function love.quit()
  local aborted = dt and dt.abortAll() or 0
  local cleaned = clean_up()
  if not cleaned then
    io.stderr:write("examples/love: could not remove ", tostring(dir_path), "\n")
  end
  -- Test mode, quit before the end (DT_LOVE_ESCAPE_AFTER): say what was left and removed.
  if test.on and test.phase ~= "quitting" then
    local c = counts()
    write_file(test.result, ("status=quit\naborted=%d\ndone=%d\nfiles=%d\ncleaned=%s\ndir=%s\n")
      :format(aborted, c.done, #rows, tostring(cleaned), tostring(dir_path or "")))
  end
  return false
end

-- LÖVE's own loop (love.run of 11.x), capped at 60 frames a second: a display with vsync
-- gives that anyway, and Xvfb (the tests) has none.
local FRAME = 1 / 60
function love.run()
  love.load(love.arg.parseGameArguments(arg), arg)
  love.timer.step()
  local next_frame = love.timer.getTime()
  return function()
    love.event.pump()
    for name, a, b, c, d, e, f in love.event.poll() do
      if name == "quit" and not love.quit() then return a or 0 end
      love.handlers[name](a, b, c, d, e, f)
    end
    love.update(love.timer.step())
    if love.graphics.isActive() then
      love.graphics.origin()
      love.graphics.clear(love.graphics.getBackgroundColor())
      love.draw()
      love.graphics.present()
    end
    next_frame = math.max(next_frame + FRAME, love.timer.getTime() - FRAME)
    love.timer.sleep(math.max(next_frame - love.timer.getTime(), 0.001))
  end
end

-- Test mode: an error becomes status=error in the result file and exit status 1, instead
-- of LÖVE's error screen (which would wait for a person to close it).
if test.on then
  function love.errorhandler(msg)
    local text = debug.traceback(tostring(msg), 2)
    io.stderr:write("examples/love: ", text, "\n")
    if dt then pcall(dt.abortAll) end
    pcall(clean_up)
    if test.result then
      pcall(write_file, test.result, "status=error\nmessage=" .. one_line(text) .. "\ndir="
        .. tostring(dir_path or "") .. "\n")
    end
    return function() return 1 end
  end
end
