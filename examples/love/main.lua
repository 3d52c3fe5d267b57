-- A LÖVE 11 window that downloads one file with downloadtask and draws a progress bar, the
-- percentage and the speed. The download runs on the module's own thread; the game calls
-- dt.poll() (poll(0): it never waits) once a frame in love.update, and the listeners run there.
--
--   make build/luajit/downloadtask.so        # LÖVE runs LuaJIT 2.1: the LuaJIT build
--   love examples/love URL [FILE]            # or DT_LOVE_URL=URL DT_LOVE_DEST=FILE love examples/love
--
-- URL must be on the loopback (127.x.x.x, localhost, [::1]); the example follows no redirect
-- and uses no proxy, so it never leaves this machine. Without FILE the body goes to a
-- temporary file, removed once downloaded. Escape closes the window (aborting the download).
-- DT_CPATH: a package.cpath template for the module; default <repo>/build/luajit/?.so, found
-- from this directory.
--
-- Test mode (spec/love_spec.lua): DT_LOVE_TEST=1 and
--   DT_LOVE_RESULT=path      written last: key=value lines (status, statusCode, bytes,
--                            max_update_ms, updates, width, height, bar_left, bar_right, ...)
--   DT_LOVE_SCREENSHOT=path  PNG of the window, taken in the frame in which the download ended
--   DT_LOVE_TIMEOUT=seconds  give up (abort, status=timeout) after this long; default 60
-- It times every love.update while the download runs, then writes the screenshot and the
-- result and quits: exit status 0 when the download succeeded with a 2xx, else 1. An error
-- anywhere is written to the result (status=error) instead of LÖVE's error screen.

local function getenv(name)
  local v = os.getenv(name)
  if v and v ~= "" then return v end
end

local test = {
  on = getenv("DT_LOVE_TEST") == "1",
  result = getenv("DT_LOVE_RESULT"),
  screenshot = getenv("DT_LOVE_SCREENSHOT"),
  timeout = tonumber(getenv("DT_LOVE_TIMEOUT") or "60") or 60,
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

local BAR = { x = 20, y = 64, w = 600, h = 28 }
-- Colours that are whole multiples of 1/255, so a screenshot holds exactly these values.
local BAR_COLOR = { 51 / 255, 204 / 255, 102 / 255 }    -- #33cc66
local TRACK_COLOR = { 68 / 255, 68 / 255, 68 / 255 }    -- #444444
local ERROR_COLOR = { 1, 0.4, 0.4 }
local FAILED_BAR_COLOR = { 204 / 255, 68 / 255, 68 / 255 } -- #cc4444

local url, dest
local task
local ui = {
  state = "starting",      -- connecting, downloading, done, failed, timeout, error, usage
  message = nil,
  progress = 0,            -- the last progress event
  written = 0,
  total = -1,
  speed = nil,             -- bytes/s over the last second, then the average once done
}
local samples = {}         -- { time, bytes } of the progress events of the last second
local started_at, ended_at, response
local timing = { max_ms = 0, sum_ms = 0, updates = 0, measuring = false }
local frames = 0
local exit_status = 1

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

local function result_text(status, extra)
  local lines = {
    "status=" .. status,
    "statusCode=" .. (response and response.statusCode or ""),
    "bytes=" .. (response and ("%d"):format(response.dataLength) or ""),
    "expected=" .. ("%d"):format(ui.total),
    ("max_update_ms=%.4f"):format(timing.max_ms),
    ("mean_update_ms=%.4f"):format(timing.updates > 0 and timing.sum_ms / timing.updates or 0),
    "updates=" .. timing.updates,
    "frames=" .. frames,
    ("seconds=%.3f"):format(started_at and ended_at and ended_at - started_at or 0),
    "lua=" .. (jit and jit.version or _VERSION),
    "module=" .. (dt and dt.version or ""),
    "renderer=" .. one_line(table.concat({ pcall(love.graphics.getRendererInfo) }, " ", 2)),
    "message=" .. one_line(ui.message or ""),
  }
  for _, kv in ipairs(extra or {}) do lines[#lines + 1] = kv end
  return table.concat(lines, "\n") .. "\n"
end

-- The download ended (or never started): remember how, for the screen and for test mode.
local function finish(state, message)
  if ended_at then return end
  ended_at = love.timer.getTime()
  ui.state, ui.message = state, message
  exit_status = state == "done" and 0 or 1
end

local function on_progress(p)
  local now = love.timer.getTime()
  ui.progress, ui.written, ui.total = p.progress, p.totalBytesWritten, p.totalBytesExpectedToWrite
  samples[#samples + 1] = { now, p.totalBytesWritten }
  while #samples > 2 and now - samples[2][1] >= 1 do table.remove(samples, 1) end
  local first = samples[1]
  if now > first[1] then ui.speed = (p.totalBytesWritten - first[2]) / (now - first[1]) end
end

local function start()
  started_at = love.timer.getTime()
  ui.state = "connecting"
  task = dt.downloadFile {
    url = url,
    filePath = dest,
    maxRedirects = 0,     -- a 3xx is the answer: no redirect to another host
    proxy = "",           -- and no proxy from http_proxy & co.
    success = function(res)
      response = res
      if res.tempFilePath then os.remove(res.tempFilePath) end
      if res.statusCode >= 200 and res.statusCode < 300 then
        ui.written, ui.progress = res.dataLength, 100
        if ui.total < 0 then ui.total = res.dataLength end
        finish("done", ("saved to %s"):format(res.filePath or "a temporary file (removed)"))
        ui.speed = res.dataLength / math.max(ended_at - started_at, 1e-3)
      else
        finish("failed", ("HTTP %d: nothing saved"):format(res.statusCode))
      end
    end,
    fail = function(err)
      finish("failed", ("%s (errno %d)"):format(err.errMsg, err.errno))
    end,
  }
  task:onHeadersReceived(function(h)
    ui.state = "downloading"
    ui.total = tonumber(h.header["content-length"] or "") or -1
  end)
  task:onProgressUpdate(on_progress)
  timing.measuring = true
end

function love.load(args)
  love.graphics.setBackgroundColor(0.1, 0.1, 0.12)
  if test.on and not (test.result and test.screenshot) then
    error("DT_LOVE_TEST=1 needs DT_LOVE_RESULT and DT_LOVE_SCREENSHOT (paths to write)")
  end
  url = args[1] or getenv("DT_LOVE_URL")
  dest = args[2] or getenv("DT_LOVE_DEST")
  if not dt then
    finish("error", load_error)
  elseif not url then
    finish("usage", "usage: love examples/love URL [FILE]  (or DT_LOVE_URL, DT_LOVE_DEST)")
  elseif not is_loopback(url) then
    finish("error", "refused " .. url .. ": this example downloads only from the loopback "
      .. "(127.x.x.x, localhost, [::1])")
  else
    start()
  end
end

-- Test mode: once the download has ended, capture the frame about to be drawn, write it and
-- the result, and quit. The callback runs when that frame is presented.
local function test_step()
  if not ended_at and started_at and love.timer.getTime() - started_at > test.timeout then
    task:abort()
    finish("timeout", ("no end after %g s"):format(test.timeout))
  end
  if ended_at and not test.capturing then
    test.capturing = true
    love.graphics.captureScreenshot(function(image)
      write_file(test.screenshot, image:encode("png"):getString())
      local w, h = image:getDimensions()
      local function hex(x, y)
        local r, g, b = image:getPixel(x, y)
        return ("%02x%02x%02x"):format(math.floor(r * 255 + 0.5), math.floor(g * 255 + 0.5),
          math.floor(b * 255 + 0.5))
      end
      local mid = BAR.y + math.floor(BAR.h / 2)
      write_file(test.result, result_text(ui.state, {
        "width=" .. w, "height=" .. h,
        "bar_left=" .. hex(BAR.x + 2, mid), "bar_right=" .. hex(BAR.x + BAR.w - 3, mid),
        "screenshot=" .. test.screenshot,
      }))
      love.event.quit(exit_status)
    end)
  end
end

function love.update()
  local t0 = love.timer.getTime()
  if task and not ended_at then
    dt.poll()             -- delivers headers, progress and the result; returns at once
  end
  if timing.measuring then
    local ms = (love.timer.getTime() - t0) * 1000
    timing.updates = timing.updates + 1
    timing.sum_ms = timing.sum_ms + ms
    if ms > timing.max_ms then timing.max_ms = ms end
    if ended_at then timing.measuring = false end
  end
  if test.on then test_step() end
end

function love.draw()
  frames = frames + 1
  local g = love.graphics
  g.setColor(1, 1, 1)
  g.print(url and ("GET " .. url) or "downloadtask " .. (dt and dt.version or ""), BAR.x, 16)
  g.setColor(0.7, 0.7, 0.7)
  g.print(dest and ("to  " .. dest) or "to  a temporary file", BAR.x, 36)

  local fraction = 0
  if ui.state == "done" then
    fraction = 1
  elseif ui.total > 0 then
    fraction = math.min(ui.written / ui.total, 1)
  end
  g.setColor(TRACK_COLOR)
  g.rectangle("fill", BAR.x, BAR.y, BAR.w, BAR.h)
  g.setColor((ended_at and ui.state ~= "done") and FAILED_BAR_COLOR or BAR_COLOR)
  g.rectangle("fill", BAR.x, BAR.y, math.floor(BAR.w * fraction + 0.5), BAR.h)
  g.setColor(1, 1, 1)
  g.printf(("%d%%"):format(ui.progress), BAR.x, BAR.y + 7, BAR.w, "center")

  g.print(("%s / %s    %s    %s"):format(human(ui.written), ui.total >= 0 and human(ui.total) or "?",
    ui.speed and human(ui.speed) .. "/s" or "-- /s", ui.state), BAR.x, 104)
  g.setColor(0.6, 0.6, 0.6)
  g.print(("longest love.update while downloading: %.3f ms (%d updates)"):format(timing.max_ms,
    timing.updates), BAR.x, 128)
  if ui.message then
    if ui.state == "done" then g.setColor(0.7, 0.9, 0.7) else g.setColor(ERROR_COLOR) end
    g.printf(ui.message, BAR.x, 156, BAR.w)
  end
end

function love.keypressed(key)
  if key == "escape" then love.event.quit() end
end

function love.quit()
  if task and not ended_at then task:abort() end
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
    if test.result then
      ui.message = text
      pcall(write_file, test.result, result_text("error"))
    end
    return function() return 1 end
  end
end
