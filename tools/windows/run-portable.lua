-- Runs the plain-Lua specs of spec/portable/ against real servers started here, on Linux
-- (issue 12): under wine with the Windows interpreters of build/windows/, or natively.
--
--   lua5.4 tools/windows/run-portable.lua TARGET...        (from the repository root)
--
-- TARGET is
--   linux   $PORTABLE_LUA (default lua5.4) with the module of $PORTABLE_CPATH (default ./?.so)
--   lua5.4  wine build/windows/lua5.4/lua.exe     with build/windows/lua5.4/downloadtask.dll
--   luajit  wine build/windows/luajit/luajit.exe  with build/windows/luajit/downloadtask.dll
-- For the wine targets the probe module (tools/windows/probe.c, built by `make windows`)
-- is checked first with tools/windows/probe.lua; while a target's downloadtask.dll does not
-- exist, only the probe runs and the runner says so (and fails when WINDOWS_REQUIRE_MODULE=1).
--
-- Each spec file gets its own empty directory; afterwards the directory must hold exactly
-- the files the spec declared (harness.lua's expect_file), checked here with lfs, so
-- names are compared as the bytes on disk. Environment: see spec/portable/harness.lua;
-- WINEPREFIX (default build/windows/wineprefix), PORTABLE_SPECS (space-separated files,
-- default every spec/portable/*.lua but harness.lua), PORTABLE_TIMEOUT (s per file, 300).
-- The servers (spec/support/servers.lua) and wine's server are stopped at the end,
-- whatever happened.
package.path = "./?.lua;" .. package.path
local S = require "spec.support.servers"
local lfs = require "lfs"
local socket = require "socket"

local ROOT = lfs.currentdir()
local WINEPREFIX = os.getenv("WINEPREFIX") or (ROOT .. "/build/windows/wineprefix")
local TIMEOUT = tonumber(os.getenv("PORTABLE_TIMEOUT") or "300")
local REQUIRE_MODULE = os.getenv("WINDOWS_REQUIRE_MODULE") == "1"
local quote = S.quote

local TARGETS = {
  linux = { exe = os.getenv("PORTABLE_LUA") or "lua5.4", cpath = os.getenv("PORTABLE_CPATH") or "./?.so" },
  ["lua5.4"] = { dir = "build/windows/lua5.4", exe = "lua.exe" },
  luajit = { dir = "build/windows/luajit", exe = "luajit.exe" },
}

local function abs(path)
  if path:sub(1, 1) == "/" then return path end
  return ROOT .. "/" .. path:gsub("^%./", "")
end

-- wine maps the Unix root to drive Z:
local function winpath(path) return "Z:" .. abs(path):gsub("/", "\\") end

local function exists(path) return lfs.attributes(path, "mode") ~= nil end

local function sha256_of(path)
  local p = assert(io.popen("sha256sum " .. quote(path)))
  local out = p:read("*a")
  p:close()
  return assert(out:match("^(%x+)"), "sha256sum " .. path)
end

-- The files of a spec's directory against its expect-files list; a list of problems.
local function check_files(dir)
  local problems, want = {}, {}
  local list = S.readfile(dir .. "/expect-files")
  if not list then return { "no expect-files written (did the spec finish?)" } end
  for line in list:gmatch("[^\n]+") do
    local name, size = line:match("^(.-)\t(%d+)$")
    if name then want[name] = tonumber(size) else problems[#problems + 1] = "bad line " .. ("%q"):format(line) end
  end
  for name in lfs.dir(dir) do
    if name ~= "." and name ~= ".." and name ~= "expect-files" then
      local size = lfs.attributes(dir .. "/" .. name, "size")
      if want[name] == nil then
        problems[#problems + 1] = ("unexpected file %q (%d bytes)"):format(name, size)
      elseif want[name] ~= size then
        problems[#problems + 1] = ("%q has %d bytes, expected %d"):format(name, size, want[name])
      end
      want[name] = nil
    end
  end
  for name in pairs(want) do problems[#problems + 1] = ("missing file %q"):format(name) end
  table.sort(problems)
  return problems
end

local servers
local function start_servers()
  if servers then return servers end
  local t0 = socket.gettime()
  local ng, tls = S.nginx(), S.nginx_tls()
  servers = {
    url = ng.url(""),
    https = ("https://localhost:%d/"):format(tls.valid.port),
    wronghost = ("https://localhost:%d/"):format(tls.wronghost.port),
    selfsigned = ("https://localhost:%d/"):format(tls.selfsigned.port),
    expired = ("https://localhost:%d/"):format(tls.expired.port),
    ca = tls.ca,
    closed = S.free_port(),
    sha1m = sha256_of(ng.root .. "/1m.bin"),
    sha100m = sha256_of(ng.root .. "/100m.bin"),
  }
  print(("run-portable: servers up in %.2f s: %s, %s"):format(socket.gettime() - t0, servers.url, servers.https))
  return servers
end

-- Runs one Lua file with the target's interpreter; returns ok, seconds, output.
local function run_file(target, t, file, dir)
  local srv = start_servers()
  local windows = t.dir ~= nil
  local p = windows and winpath or abs
  local env = {
    DT_PORTABLE_URL = srv.url, DT_PORTABLE_HTTPS_URL = srv.https, DT_PORTABLE_WRONGHOST_URL = srv.wronghost,
    DT_PORTABLE_CA = p(srv.ca), DT_PORTABLE_TMPDIR = p(dir), DT_PORTABLE_CLOSED_PORT = tostring(srv.closed),
    DT_PORTABLE_SHA256_1M = srv.sha1m, DT_PORTABLE_SHA256_100M = srv.sha100m, DT_PORTABLE_SELFSIGNED_URL = srv.selfsigned,
    DT_PORTABLE_EXPIRED_URL = srv.expired, DT_PORTABLE_WINE = windows and "1" or "0",
  }
  local cmd
  if windows then
    local cpath = winpath(t.dir) .. "\\?.dll"
    env.LUA_CPATH, env.LUA_CPATH_5_4 = cpath, cpath
    env.WINEPREFIX, env.WINEDEBUG = WINEPREFIX, "-all"
    cmd = "wine " .. quote(t.dir .. "/" .. t.exe)
  else
    env.LUA_CPATH, env.LUA_CPATH_5_4 = abs(t.cpath), abs(t.cpath)
    cmd = quote(t.exe)
  end
  local parts = { "env -u LUA_INIT -u LUA_INIT_5_4" }
  for k, v in pairs(env) do parts[#parts + 1] = k .. "=" .. quote(v) end
  local out = dir .. ".out"
  local line = ("%s timeout -k 5 %d %s %s >%s 2>&1 </dev/null"):format(table.concat(parts, " "), TIMEOUT,
    cmd, quote(file), quote(out))
  local t0 = socket.gettime()
  local ok = S.bash(line)
  local took = socket.gettime() - t0
  return ok, took, S.readfile(out) or ""
end

local totals = { files = 0, failed = {}, notbuilt = {} }

local function report(target, file, ok, took, output, dir)
  local problems = check_files(dir)
  local summary = output:match("(%d+ passed, %d+ failed)%s*$") or "no summary line"
  if #problems > 0 then ok = false end
  totals.files = totals.files + 1
  print(("run-portable: %-7s %-28s %-20s %6.2f s  %s"):format(target, file, summary, took, ok and "ok" or "FAILED"))
  if not ok then totals.failed[#totals.failed + 1] = target .. " " .. file end
  if not ok or file:match("probe%.lua$") then     -- the probe's notes are worth reading
    io.write((output:gsub("[^\n]+", "    %0")))
    for _, pr in ipairs(problems) do print("    files: " .. pr) end
  end
end

local function spec_files()
  local list = {}
  local given = os.getenv("PORTABLE_SPECS")
  if given and given ~= "" then
    for f in given:gmatch("%S+") do list[#list + 1] = f end
    return list
  end
  for name in lfs.dir("spec/portable") do
    if name:match("%.lua$") and name ~= "harness.lua" then list[#list + 1] = "spec/portable/" .. name end
  end
  table.sort(list)
  return list
end

local function run_one(name, t, file)
  local dir = S.tmpdir()
  local ok, took, out = run_file(name, t, file, dir)
  report(name, file, ok, took, out, dir)
end

local function run_target(name)
  local t = TARGETS[name]
  if not t then error("unknown target " .. name .. " (linux, lua5.4, luajit)") end
  if t.dir then
    for _, f in ipairs { t.exe, "probe.dll" } do
      if not exists(t.dir .. "/" .. f) then error(t.dir .. "/" .. f .. " is missing: run `make windows` first") end
    end
    run_one(name, t, "tools/windows/probe.lua")
    if not exists(t.dir .. "/downloadtask.dll") then
      totals.notbuilt[#totals.notbuilt + 1] = t.dir .. "/downloadtask.dll"
      print(("run-portable: %-7s %s is NOT BUILT yet: spec/portable/ was NOT run for it")
        :format(name, t.dir .. "/downloadtask.dll"))
      return
    end
  end
  for _, file in ipairs(spec_files()) do run_one(name, t, file) end
end

local function stop_wine()
  if exists(WINEPREFIX) then
    S.bash("WINEPREFIX=" .. quote(WINEPREFIX) .. " wineserver -k >/dev/null 2>&1")
  end
end

local ok, err = xpcall(function()
  if #arg == 0 then error("usage: lua5.4 tools/windows/run-portable.lua linux|lua5.4|luajit...") end
  -- run-specs.sh hands its runner busted's --cpath (the module is found through
  -- DT_TEST_CPATH, which it exports too)
  for _, name in ipairs(arg) do
    if not name:match("^%-%-cpath=") then run_target(name) end
  end
end, debug.traceback)
stop_wine()
S.stop_all()
if not ok then
  io.stderr:write("run-portable: ", tostring(err), "\n")
  os.exit(2)
end
print(("run-portable: %d files, %d failed%s"):format(totals.files, #totals.failed,
  #totals.failed > 0 and ": " .. table.concat(totals.failed, ", ") or ""))
if #totals.notbuilt > 0 then
  print("run-portable: NOT BUILT YET (the module is not ported to Windows): " .. table.concat(totals.notbuilt, ", "))
  print("run-portable: only the tool chain was checked (probe module: libcurl/Schannel under wine)")
end
os.exit((#totals.failed == 0 and not (REQUIRE_MODULE and #totals.notbuilt > 0)) and 0 or 1)
