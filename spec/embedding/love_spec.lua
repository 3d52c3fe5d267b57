-- LÖVE 11: examples/love, the asset manager, downloads eight files from the fault server's
-- throttled /bytes in a real window (under Xvfb), two at once, calling dt.poll() once a frame
-- in love.update; in test mode it clicks a queued row, presses P and takes a screenshot
-- mid-download. LÖVE runs LuaJIT, so the window always loads
-- build/luajit/downloadtask.so (made here when missing or stale), whatever Lua runs busted.
-- love, xvfb-run (xvfb) and xauth are required: `./dev deps` installs them; without them
-- this spec fails, it does not skip.
local S = require "spec.support.servers"
local lfs = require "lfs"
local socket = require "socket"

local ROOT = lfs.currentdir()
-- Eight files trickled at 128 KiB/s each, two at once: about 6 s in all, so the window is
-- mid-download for long enough to click, pause and take its screenshot.
local RATE = 128 * 1024
local FILES = {
  { "intro.ogg", 96 }, { "level1.pak", 160 }, { "level2.pak", 256 }, { "music.ogg", 128 },
  { "tiles.png", 192 }, { "sprites.png", 320 }, { "font.ttf", 224 }, { "shaders.zip", 64 },
}

local function quote(s)
  return "'" .. tostring(s):gsub("'", [['\'']]) .. "'"
end

-- Runs a shell command; returns its output (stdout and stderr) and exit status.
local function sh(cmd)
  local p = assert(io.popen("(" .. cmd .. ") 2>&1; echo \"rc=$?\""))
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return (out:gsub("rc=%d+%s*$", "")), rc
end

local function read_result(path)
  local text = S.readfile(path)
  if not text then return nil end
  local r = {}
  for k, v in text:gmatch("([%w_%.]+)=([^\n]*)") do r[k] = v end
  return r, text
end

local function be32(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- Starts the window in test mode on the eight files (extra: more NAME=value of the
-- environment); returns its result (a table), its exit status, a context for failures, the
-- screenshot's path, the XDG_DATA_HOME it had and the bytes in all.
local function run_window(extra)
  for _, tool in ipairs { "love", "xvfb-run", "Xvfb", "xauth", "timeout" } do
    local _, rc = sh("command -v " .. tool)
    assert(rc == 0, tool .. " not found: this spec needs the Debian packages love, xvfb "
      .. "and xauth (./dev deps installs them)")
  end
  local out, rc = sh(("cd %s && make -s build/luajit/downloadtask.so"):format(quote(ROOT)))
  assert(rc == 0, "make build/luajit/downloadtask.so failed:\n" .. out)

  local fault = S.fault()
  local args, total = {}, 0
  for i, f in ipairs(FILES) do
    local size = f[2] * 1024
    total = total + size
    args[i] = quote(("%s=%s"):format(f[1], fault.url(("bytes?n=%d&rate=%d"):format(size, RATE))))
  end

  local dir = S.tmpdir()
  local data = dir .. "/data"       -- XDG_DATA_HOME: LÖVE's save directory goes under it
  assert(lfs.mkdir(data))
  local shot, result = dir .. "/window.png", dir .. "/result.txt"
  -- timeout's own process group holds xvfb-run, Xvfb and love: all go when it fires. The
  -- window gives up by itself after 60 s (DT_LOVE_TIMEOUT) and writes why.
  local cmd = ("cd %s && %s XDG_DATA_HOME=%s DT_LOVE_TEST=1 DT_LOVE_RESULT=%s DT_LOVE_SCREENSHOT=%s "
    .. "DT_LOVE_TIMEOUT=60 DT_CPATH=%s timeout -k 5 90 xvfb-run -a -e %s -s %s love examples/love %s")
    :format(quote(ROOT), extra or "", quote(data), quote(result), quote(shot),
      quote(ROOT .. "/build/luajit/?.so"), quote(dir .. "/xvfb.log"),
      quote("-screen 0 800x600x24 -nolisten tcp"), table.concat(args, " "))
  local t0 = socket.gettime()
  local output, status = sh(cmd)
  local elapsed = socket.gettime() - t0
  local r, text = read_result(result)
  local context = ("\nexit status %s after %.1f s\n--- output of love:\n%s\n--- result file:\n%s"
    .. "\n--- xvfb-run errors:\n%s"):format(tostring(status), elapsed, output,
      tostring(text), tostring(S.readfile(dir .. "/xvfb.log")))
  assert(r, "the window wrote no result file" .. context)
  return r, status, context, shot, data, total, elapsed
end

describe("LÖVE example (examples/love)", function()
  it("is an asset manager: rows and bars, a click gives priority, P pauses, a screenshot mid-download", function()
    local r, status, context, shot, data, total, elapsed = run_window()
    assert(r.status == "done" and status == 0, "the downloads did not all succeed" .. context)

    -- every file arrived whole (its size on disk measured before the clean-up), and the
    -- overall count and bytes add up
    assert.are.equal(tostring(#FILES), r.files, context)
    assert.are.equal(tostring(#FILES), r.done, context)
    assert.are.equal("0", r.failed, context)
    assert.are.equal(tostring(total), r.bytes, context)
    assert.are.equal(tostring(total), r.expected, context)
    for i, f in ipairs(FILES) do
      local size = tostring(f[2] * 1024)
      assert.are.same({ f[1], "done", "200", size, size, size },
        { (r["file." .. i] or ""):match("^([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)|([^|]*)$") }, context)
    end

    -- the window removed its download directory, which was in the save directory under data/
    assert.are.equal("true", r.cleaned, context)
    assert.are.equal(data, r.dir:sub(1, #data), "the downloads went outside XDG_DATA_HOME" .. context)
    assert.is_nil(lfs.attributes(r.dir), "left behind: " .. r.dir)

    -- the click: the last queued file (the last row) started next, ahead of those queued before it
    local last = FILES[#FILES][1]
    assert.are.equal(last, r.priority_file, context)
    assert.are.equal(last, r.started_after_click, context)
    local starts = {}
    for name in r.starts:gmatch("[^,]+") do starts[#starts + 1] = name end
    assert.are.equal(#FILES, #starts, context)
    assert.are.equal(last, starts[3], context)

    -- the screenshot: a PNG (signature, IHDR first, IEND last) of the window's size, taken
    -- mid-download (some done, not all, part of the bytes)
    local png = assert(S.readfile(shot), "no screenshot at " .. shot .. context)
    assert(#png > 10 * 1024, "screenshot too small to show the list: " .. #png .. " bytes")
    assert.are.equal("\137PNG\r\n\26\n", png:sub(1, 8))
    assert.are.equal("IHDR", png:sub(13, 16))
    assert.are.equal("IEND", png:sub(-8, -5))
    assert.are.same({ 800, 600 }, { be32(png, 17), be32(png, 21) })
    assert.are.same({ "800", "600" }, { r.width, r.height }, context)
    local done_at_shot, bytes_at_shot = tonumber(r.done_at_shot), tonumber(r.bytes_at_shot)
    assert(done_at_shot and done_at_shot >= 1 and done_at_shot < #FILES,
      "the screenshot is not mid-download" .. context)
    assert(bytes_at_shot and bytes_at_shot > 0 and bytes_at_shot < total,
      "the screenshot is not mid-download" .. context)
    if r.pause_available == "1" then
      -- P paused every unfinished file: the screenshot shows them paused, none moved meanwhile
      assert.are.equal(tostring(#FILES - done_at_shot), r.paused_at_shot, context)
      assert.are.equal("0", r.running_at_shot, context)
      assert.are.equal("0", r.queued_at_shot, context)
      assert.are.equal("0", r.paused_bytes, context)
      assert.are.equal("ffcc33", r.overall_left, context)    -- the overall bar in pause colour
    else
      -- this build has no task:pause(): P says so, and the rest still wait in the queue
      assert.are.equal("pause: not available in this build", r.message_at_shot, context)
      assert.are.equal("0", r.paused_at_shot, context)
      assert(tonumber(r.queued_at_shot) >= 1, "nothing queued at the screenshot" .. context)
      assert.are.equal("3399ff", r.overall_left, context)    -- the overall bar in running colour
    end

    local max_ms = tonumber(r.max_update_ms)
    assert(max_ms and max_ms >= 0, "no max_update_ms in the result" .. context)
    print(("\nLÖVE asset manager: %d files, %s bytes in %s s over %s frames; pause %s; longest "
      .. "love.update %.3f ms (mean %s ms); love ran %.1f s; %s"):format(#FILES, r.bytes, r.seconds,
        r.updates, r.pause_available == "1" and "available" or "not in this build", max_ms,
        r.mean_update_ms, elapsed, r.renderer))
  end)

  it("removes its download directory when closed mid-download (Escape)", function()
    local r, status, context, _, data = run_window("DT_LOVE_ESCAPE_AFTER=1.2")
    assert.are.equal("quit", r.status, context)
    assert.are.equal(0, status, context)
    -- after 1.2 s at most the first files are done; the rest were aborted, running or queued
    local aborted, done = tonumber(r.aborted), tonumber(r.done)
    assert(aborted and aborted >= 1 and aborted + done == #FILES, "nothing left to abort" .. context)
    assert.are.equal("true", r.cleaned, context)
    assert.are.equal(data, r.dir:sub(1, #data), context)
    assert.is_nil(lfs.attributes(r.dir), "left behind: " .. r.dir)
  end)
end)
