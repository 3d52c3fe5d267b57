-- LÖVE 11: examples/love downloads from nginx in a real window (under Xvfb), calling
-- dt.poll() once a frame in love.update. LÖVE runs LuaJIT, so the window always loads
-- build/luajit/downloadtask.so (made here when missing or stale), whatever Lua runs busted.
-- love, xvfb-run (xvfb) and xauth are required: `./dev deps` installs them; without them
-- this spec fails, it does not skip.
local S = require "spec.support.servers"
local P = require "spec.support.pattern"
local lfs = require "lfs"
local socket = require "socket"

local ROOT = lfs.currentdir()
local SIZE = 40 * 1024 * 1024     -- through nginx's /slow/ (25 MiB/s): about 1.6 s, ~100 frames
local NAME = "love-40m.bin"

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
  for k, v in text:gmatch("([%w_]+)=([^\n]*)") do r[k] = v end
  return r, text
end

local function be32(s, i)
  local a, b, c, d = s:byte(i, i + 3)
  return ((a * 256 + b) * 256 + c) * 256 + d
end

describe("LÖVE example (examples/love)", function()
  it("downloads in a window, polling once a frame, and leaves a complete file and a screenshot", function()
    for _, tool in ipairs { "love", "xvfb-run", "Xvfb", "xauth", "timeout" } do
      local _, rc = sh("command -v " .. tool)
      assert(rc == 0, tool .. " not found: this spec needs the Debian packages love, xvfb "
        .. "and xauth (./dev deps installs them)")
    end
    local out, rc = sh(("cd %s && make -s build/luajit/downloadtask.so"):format(quote(ROOT)))
    assert(rc == 0, "make build/luajit/downloadtask.so failed:\n" .. out)

    local ng = S.nginx()
    local f = assert(io.open(ng.root .. "/" .. NAME, "wb"))
    P.each(0, SIZE, 4 * 1024 * 1024, function(chunk) assert(f:write(chunk)) end)
    assert(f:close())

    local dir = S.tmpdir()
    local dest, shot, result = dir .. "/" .. NAME, dir .. "/window.png", dir .. "/result.txt"
    -- timeout's own process group holds xvfb-run, Xvfb and love: all go when it fires. The
    -- window gives up by itself after 60 s (DT_LOVE_TIMEOUT) and writes why.
    local cmd = ("cd %s && DT_LOVE_TEST=1 DT_LOVE_RESULT=%s DT_LOVE_SCREENSHOT=%s DT_LOVE_TIMEOUT=60 "
      .. "DT_CPATH=%s timeout -k 5 90 xvfb-run -a -e %s -s %s love examples/love %s %s")
      :format(quote(ROOT), quote(result), quote(shot), quote(ROOT .. "/build/luajit/?.so"),
        quote(dir .. "/xvfb.log"), quote("-screen 0 800x600x24 -nolisten tcp"), quote(ng.url("slow/" .. NAME)),
        quote(dest))
    local t0 = socket.gettime()
    local output, status = sh(cmd)
    local elapsed = socket.gettime() - t0
    local r, text = read_result(result)
    local context = ("\nexit status %s after %.1f s\n--- output of love:\n%s\n--- result file:\n%s"
      .. "\n--- xvfb-run errors:\n%s"):format(tostring(status), elapsed, output,
        tostring(text), tostring(S.readfile(dir .. "/xvfb.log")))

    assert(r, "the window wrote no result file" .. context)
    assert(r.status == "done" and status == 0, "the download did not succeed" .. context)
    assert.are.equal("200", r.statusCode, context)
    assert.are.equal(tostring(SIZE), r.bytes, context)

    -- the file: complete and byte for byte what nginx served
    assert.are.equal(SIZE, S.filesize(dest))
    assert.is_true(S.file_matches_pattern(dest, SIZE), "the downloaded file differs from the served one")
    for _, name in ipairs(S.listdir(dir)) do
      assert.is_nil(name:match("%.part$") or name:match("%.tmp$"), "left behind: " .. name)
    end

    -- the screenshot: a PNG (signature, IHDR first, IEND last) of the window's size
    local png = assert(S.readfile(shot), "no screenshot at " .. shot .. context)
    assert.is_true(#png > 8 + 25 + 12, "screenshot too small: " .. #png .. " bytes")
    assert.are.equal("\137PNG\r\n\26\n", png:sub(1, 8))
    assert.are.equal("IHDR", png:sub(13, 16))
    assert.are.equal("IEND", png:sub(-8, -5))
    local width, height = be32(png, 17), be32(png, 21)
    assert.are.equal(tonumber(r.width), width)
    assert.are.equal(tonumber(r.height), height)
    assert.are.same({ 640, 240 }, { width, height })
    -- taken in the frame in which the download ended: the bar is full
    assert.are.equal("33cc66", r.bar_left, context)
    assert.are.equal("33cc66", r.bar_right, context)

    -- love.update was timed on every frame while the download ran, over several frames
    local max_ms = tonumber(r.max_update_ms)
    assert(max_ms and max_ms >= 0, "no max_update_ms in the result" .. context)
    local updates = tonumber(r.updates)
    assert(updates and updates >= 3, "the download spanned fewer than 3 frames" .. context)
    print(("\nLÖVE: %s in %s s over %d frames; longest love.update %.3f ms (mean %s ms); "
      .. "love ran %.1f s; %s"):format(r.bytes, r.seconds, updates, max_ms, r.mean_update_ms,
        elapsed, r.renderer))
  end)
end)
