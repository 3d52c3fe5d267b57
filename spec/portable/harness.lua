-- A tiny test harness for the plain-Lua specs of spec/portable/ (issue 12). They run where
-- busted, a shell, /proc and luasocket are not: under wine with Windows' lua.exe and
-- luajit.exe, and on Linux with lua5.4. Lua 5.1 to 5.4 and LuaJIT; no 5.3+ operators.
--
--   local H = dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "harness.lua")
--   H.test("name", function() H.eq(1, 1) end)
--   H.run()                       -- prints "N passed, N failed", exits non-zero on failure
--
-- tools/windows/run-portable.lua starts the servers and passes, in the environment:
--   DT_PORTABLE_URL         http base URL of nginx's docroot (spec/support/servers.lua)
--   DT_PORTABLE_HTTPS_URL   https://localhost:<port>/ with a certificate from the test CA
--   DT_PORTABLE_WRONGHOST_URL  https://localhost:<port>/ whose certificate names another host
--   DT_PORTABLE_CA          that CA's PEM file (a path in the OS's own form)
--   DT_PORTABLE_TMPDIR      an empty directory for this spec file's downloads
--   DT_PORTABLE_CLOSED_PORT a loopback port nobody listens on
--   DT_PORTABLE_SELFSIGNED_URL, DT_PORTABLE_EXPIRED_URL  https://localhost:<port>/ with a
--                           self-signed certificate, and one from the CA that has expired
--   DT_PORTABLE_SHA256_1M   sha256 of the served 1m.bin
--   DT_PORTABLE_WINE        "1" when the spec runs under wine (for what wine cannot test)
-- Files the spec expects in DT_PORTABLE_TMPDIR afterwards go to its "expect-files" list
-- (H.expect_file): the runner checks from the Linux side that the directory holds exactly
-- those files with those sizes, so UTF-8 names are checked as bytes on disk, not through
-- the C library of the OS under test, and no temporary file may be left behind.

local H = {}

H.SEP = package.config:sub(1, 1)
H.WINDOWS = H.SEP == "\\"
-- this file's directory, as it was named to dofile (relative to the current directory)
H.HERE = debug.getinfo(1, "S").source:match("^@(.-)[^/\\]*$") or ""
H.pattern = dofile(H.HERE .. "../support/pattern.lua").pattern
H.SMALL_TXT = "hello downloadtask\n"
H.SMALL_SHA256 = "c3d28fb68b5a265dd802bddfc3f028093af6038a3692c4b0a4d54c8eff0765c4"

local function env(name)
  local v = os.getenv(name)
  if v == nil or v == "" then
    io.stderr:write(name, " is not set: run this through tools/windows/run-portable.lua\n")
    os.exit(2)
  end
  return v
end

local function joiner(base)
  if base:sub(-1) ~= "/" then base = base .. "/" end
  return function(path) return base .. (path or ""):gsub("^/", "") end
end

H.url = joiner(env("DT_PORTABLE_URL"))
H.https_url = joiner(env("DT_PORTABLE_HTTPS_URL"))
H.wronghost_url = joiner(env("DT_PORTABLE_WRONGHOST_URL"))
H.selfsigned_url = joiner(env("DT_PORTABLE_SELFSIGNED_URL"))
H.expired_url = joiner(env("DT_PORTABLE_EXPIRED_URL"))
H.WINE = os.getenv("DT_PORTABLE_WINE") == "1"
H.CA = env("DT_PORTABLE_CA")
H.TMPDIR = env("DT_PORTABLE_TMPDIR")
H.CLOSED_PORT = tonumber(env("DT_PORTABLE_CLOSED_PORT"))

-- A path in the spec's directory; names are UTF-8 bytes as given.
function H.path(name) return H.TMPDIR .. H.SEP .. name end

local expected = {}
-- Declares that `name` must be in DT_PORTABLE_TMPDIR with `size` bytes at the end.
function H.expect_file(name, size)
  expected[#expected + 1] = name .. "\t" .. size
end

function H.readfile(path)
  local f = io.open(path, "rb")
  if not f then return nil end
  local s = f:read("*a")
  f:close()
  return s
end

function H.writefile(path, s)
  local f = assert(io.open(path, "wb"))
  assert(f:write(s))
  assert(f:close())
end

local function show(v)
  return type(v) == "string" and ("%q"):format(#v > 200 and v:sub(1, 200) .. "..." or v) or tostring(v)
end

function H.eq(actual, want, what)
  if actual ~= want then
    error(("%sexpected %s, got %s"):format(what and what .. ": " or "", show(want), show(actual)), 2)
  end
end

function H.truthy(v, what)
  if not v then error((what or "expected a true value") .. ", got " .. show(v), 2) end
  return v
end

function H.fails(fn, pattern, what)
  local ok, err = pcall(fn)
  if ok then error((what or "expected an error") .. ", but the call returned", 2) end
  if pattern and not tostring(err):find(pattern) then
    error(("%serror %s does not match %s"):format(what and what .. ": " or "", show(err), show(pattern)), 2)
  end
end

-- Runs one download to its end with dt.run() and returns what `complete` received,
-- the kind of callback that fired first ("success"/"fail") and the task.
function H.download(dt, opts)
  local kind, result, completed = nil, nil, 0
  opts.success = function(r) kind = kind or "success"; result = r end
  opts.fail = function(r) kind = kind or "fail"; result = r end
  opts.complete = function(r)
    completed = completed + 1
    if r ~= result then error("complete received another table than success/fail") end
  end
  local task = dt.downloadFile(opts)
  dt.run()
  if completed ~= 1 then error("complete fired " .. completed .. " times") end
  return result, kind, task
end

-- Ends the running test as skipped, with the reason printed: for what cannot be tested
-- where the spec runs (say so in the reason), never for a failure.
function H.skip(reason) error({ skip = reason }, 0) end

local function handler(e)
  if type(e) == "table" and e.skip then return e end
  return debug.traceback(tostring(e), 2)
end

local tests = {}
function H.test(name, fn) tests[#tests + 1] = { name = name, fn = fn } end

function H.run()
  local passed, failed, skipped = 0, 0, 0
  for _, t in ipairs(tests) do
    local ok, err = xpcall(t.fn, handler)
    if ok then
      passed = passed + 1
      print("ok     " .. t.name)
    elseif type(err) == "table" then
      skipped = skipped + 1
      print("skip   " .. t.name .. ": " .. err.skip)
    else
      failed = failed + 1
      print("FAILED " .. t.name .. "\n  " .. tostring(err):gsub("\n", "\n  "))
    end
  end
  local f = io.open(H.path("expect-files"), "wb")
  if f then
    f:write(table.concat(expected, "\n"), #expected > 0 and "\n" or "")
    f:close()
  else
    failed = failed + 1
    print("FAILED writing " .. H.path("expect-files"))
  end
  if skipped > 0 then print(("%d skipped"):format(skipped)) end
  print(("%d passed, %d failed"):format(passed, failed))
  io.stdout:flush()
  os.exit(failed == 0 and 0 or 1)
end

return H
