-- make chaos: a seeded random tester of the module's promises (issue 11; docs/maintainers.md
-- "Reliability", "make chaos"). Cases are drawn from a seeded generator
-- (tools/chaos/lib.lua): a server behaviour of spec/support/faultserver.lua,
-- nginx or https nginx; options; a kind of destination; a host fault. Several
-- run at once in this process; write failures (ulimit -f), SIGKILL and
-- lua_close with downloads in flight run in child processes. After every case
-- the oracle (lib.check) checks the invariants; a failing case prints its seed,
-- its number and a line to replay it alone.
--
--   lua5.4 tools/chaos/run.lua [--cpath=T] [--seed=S] [--n=N] [--seconds=T] [--case=K]
--                              [--par=P] [--verbose]          (from the repository root)
--
-- make chaos runs it through spec/support/run-specs.sh (as BUSTED), which stops the
-- servers whatever happens and passes $DT_TEST_CPATH as --cpath. Exits 1 when a case failed.
local args = { cpath = "./?.so", seconds = 60, par = 6 }
for _, a in ipairs(arg) do
  local k, v = a:match("^%-%-(%w+)=(.*)$")
  if k then args[k] = v
  elseif a == "--verbose" or a == "-v" then args.verbose = true
  else io.stderr:write("chaos: unknown argument ", a, "\n"); os.exit(2) end
end
package.path = "./?.lua;" .. package.path
package.cpath = args.cpath .. ";" .. package.cpath

local L = require "tools.chaos.lib"
local S = require "spec.support.servers"
local socket = require "socket"
local lfs = require "lfs"
local dt = require "downloadtask"

local now = socket.gettime
local SEED_TEXT = args.seed and args.seed ~= "" and args.seed or tostring(os.time())
local SEED = L.parse_seed(SEED_TEXT)
local N = math.tointeger(tonumber(args.n or ""))
local SECONDS = tonumber(args.seconds) or 60
local ONLY = math.tointeger(tonumber(args.case or ""))
local PAR = ONLY and 1 or math.tointeger(tonumber(args.par)) or 6
local CASE_LIMIT = 45           -- s a case may take before it counts as hung
local SETTLE = 0.15             -- s of further polling after a case ended: nothing more may come
local DRAIN_EVERY = 25          -- cases between descriptor checks (everything ended)
local quote = S.quote

print(("chaos: seed %s%s, %s, module %s"):format(SEED_TEXT,
  SEED_TEXT ~= tostring(SEED) and " (" .. SEED .. ")" or "",
  ONLY and "case " .. ONLY or (N and N .. " cases or " or "") .. SECONDS .. " s", args.cpath))
io.stdout:flush()

------------------------------------------------------------------------------
-- Servers, directories, module settings.

local fault, ng, tls = S.fault(), S.nginx(), S.nginx_tls()
local bases = {
  fault = ("http://127.0.0.1:%d"):format(fault.port),
  nginx = ("http://127.0.0.1:%d"):format(ng.port),
}
for _, v in ipairs(S.TLS_VARIANTS) do bases["tls_" .. v] = ("https://127.0.0.1:%d"):format(tls[v].port) end
local url = L.url_maker(bases)

local root = S.tmpdir()
local tempdir = root .. "/tmp"
assert(lfs.mkdir(tempdir))
dt.configure { tempDir = tempdir, maxConcurrent = 8, progressInterval = 20 }

local IS_ROOT = (io.popen("id -u"):read("l")) == "0"
local CAN_MOUNT = false
if IS_ROOT then
  local d = root .. "/mount-probe"
  lfs.mkdir(d)
  CAN_MOUNT = S.bash("mount -t tmpfs -o size=16k tmpfs " .. quote(d) .. " 2>/dev/null && umount " .. quote(d))
  lfs.rmdir(d)
end
local mounts = {}
local function umount_all()
  for d in pairs(mounts) do S.bash("umount -l " .. quote(d) .. " 2>/dev/null") end
  mounts = {}
end
-- also when this state closes on an error: a mount would keep run-specs.sh from removing the dir
local _sentinel = setmetatable({}, { __gc = umount_all })

-- `durable` only when this build accepts it
local DURABLE_OK
do
  local ok, t = pcall(dt.downloadFile, { url = "http://127.0.0.1:1/", durable = true })
  DURABLE_OK = ok
  if ok then t:abort() end
  dt.run()
end

local function fds()
  local sockets, others = 0, 0
  for name in lfs.dir("/proc/self/fd") do
    if name ~= "." and name ~= ".." then
      local target = lfs.symlinkattributes("/proc/self/fd/" .. name, "target") or ""
      if target:match("^socket:") then sockets = sockets + 1 else others = others + 1 end
    end
  end
  return others - 1, sockets
end

local function env_for(c, dest)
  return { dt = dt, url = url, ca = tls.ca, durable_ok = DURABLE_OK, now = now, dest = dest,
    sleep = socket.sleep }
end

-- warm-up, so the engine's own descriptors exist before the baseline
do
  local t = dt.downloadFile { url = bases.nginx .. "/1k.bin" }
  local res = t:await()
  if res and res.tempFilePath then os.remove(res.tempFilePath) end
end
local FD_BASE, SOCK_BASE = fds()

------------------------------------------------------------------------------
-- Cases: prepare the destination, start, watch, check, clean up.

local failures, done_cases, skipped = 0, 0, 0
local poll                  -- dt.poll with the listeners' deliberate errors caught (below)
local stats = {}

local function report(c, violations, st)
  failures = failures + 1
  print(("FAIL seed=%s case=%d: %s"):format(SEED_TEXT, c.k, table.concat(violations, "; ")))
  print(("  replay: make chaos SEED=%s CASE=%d"):format(SEED_TEXT, c.k))
  print("  case: " .. L.describe(c, url))
  for _, rec in ipairs(st.recs or {}) do
    local r = rec.res or rec.err
    if r then
      print(("  task%d: %s status=%s errno=%s dataLength=%s attempts=%s %s"):format(rec.i,
        rec.res and "success" or "fail", tostring(r.statusCode), tostring(r.errno),
        tostring(r.dataLength), tostring(r.attempts), tostring(r.errMsg)))
    end
  end
  io.stdout:flush()
end

local function mkfifo(path) return S.bash("mkfifo " .. quote(path)) end

local function prepare(c)
  local st = { recs = {}, c = c }
  local dir = ("%s/c%d"):format(root, c.k)
  assert(lfs.mkdir(dir))
  st.dir, st.cleanup = dir, { dir }
  if c.kind == "diskfull" or c.kind == "rodir" then
    if not CAN_MOUNT then return nil, "needs root and mount" end
    local size = c.kind == "diskfull" and c.tmpfs_kb .. "k" or "64k"
    assert(S.bash(("mount -t tmpfs -o size=%s,mode=0755 tmpfs %s"):format(size, quote(dir))))
    mounts[dir] = true
  end
  local dest = dir .. "/" .. c.name
  if c.dest == "nodir" then dest = dir .. "/missing/" .. c.name end
  st.dest_path, st.content_path = dest, dest
  if c.dest == "none" then st.dest_path, st.content_path = nil, nil end
  if c.dest == "existing" then
    L.write(dest, c.old)
  elseif c.dest == "symlink" then
    local out = dir .. "-out"
    assert(lfs.mkdir(out))
    st.cleanup[#st.cleanup + 1] = out
    local target = out .. "/target.bin"
    L.write(target, c.old)
    assert(lfs.link(target, dest, true))
    st.content_path, st.link_target_name = target, target
  elseif c.dest == "fifo" or c.dest == "fifo_reader" then
    assert(mkfifo(dest))
    st.content_path = nil
    if c.dest == "fifo_reader" then
      local out = dir .. "-out"
      assert(lfs.mkdir(out))
      st.cleanup[#st.cleanup + 1] = out
      st.reader_out = out .. "/read"
      -- a reader waiting on the FIFO, gone after 20 s at most
      S.bash(S.CLOSE_FDS .. ("(timeout 20 cat %s > %s; touch %s.done) </dev/null >/dev/null 2>&1 &")
        :format(quote(dest), quote(st.reader_out), quote(st.reader_out)))
    end
  end
  if c.kind == "rodir" then
    assert(S.bash("mount -o remount,ro " .. quote(dir)))
  end
  if st.dest_path then
    local a = lfs.symlinkattributes(st.dest_path)
    st.old_kind = a and a.mode
    st.old = st.content_path and L.read(st.content_path)
  end
  return st
end

local CHILD = "tools/chaos/child.lua"

local function start(c)
  local st, why = prepare(c)
  if not st then return nil, why end
  st.t0 = now()
  if c.kind == "ulimit" or c.kind == "kill" or c.kind == "close" then
    st.child_out = st.dir .. "-child"
    st.cleanup[#st.cleanup + 1] = st.child_out
    assert(lfs.mkdir(st.child_out))
    -- The file-size limit holds in the child's subshell only; its records come out
    -- through a pipe (stdout), which the limit does not touch.
    local limit = c.kind == "ulimit" and ("ulimit -f %d; trap '' XFSZ; "):format(c.limit_blocks) or ""
    local o = quote(st.child_out)
    local cmd = ("%s cd %s && ( (%s exec %s %s --cpath=%s --seed=%d --case=%d --dest=%s --durable=%s "
      .. "--bases=%s --ca=%s 2>%s/stderr; ) | cat > %s/rec; echo ${PIPESTATUS[0]} > %s/rc.tmp; mv %s/rc.tmp %s/rc) "
      .. "</dev/null >/dev/null 2>&1 &")
      :format(S.CLOSE_FDS, quote(lfs.currentdir()), limit, S.LUA, CHILD, quote(S.MODULE_CPATH),
        c.seed, c.k, quote(st.dest_path or ""), tostring(DURABLE_OK),
        quote(L.serialize(bases)), quote(tls.ca), o, o, o, o, o)
    assert(S.bash(cmd))
    st.child = true
  else
    local env = env_for(c, st.dest_path)
    st.env = env
    for i = 1, #c.tasks do st.recs[i] = L.start_task(env, c, i) end
  end
  return st
end

local function ended(c, st)
  if st.child then
    if not st.child_rc then
      local rc = L.read(st.child_out .. "/rc")
      if not rc then return false end
      st.child_rc = tonumber(rc)
      if c.kind == "kill" then
        -- the next download into that directory must sweep a dead process's temp files
        st.sweep = L.start_task({ dt = dt, url = url, now = now, dest = st.dir .. "/sweep.bin" },
          { tasks = { { s = { server = "fault", path = "/bytes?n=10", accept = { { len = 10 } } },
            o = {}, fault = "none" } }, dest = "absent" }, 1)
      end
    end
    if st.sweep and not st.sweep.ended then return false end
    -- kill -9, then the same download with resume: it continues what the dead process
    -- left (a segmented part: every range its info file records), and a success must be
    -- a whole body, never a splice
    local t1 = c.tasks[1]
    if c.kind == "kill" and t1.o.resume and st.dest_path and not st.resumer then
      st.after = L.snapshot(st.dir)        -- what the kill left is what the oracle judges
      st.frozen, st.frozen_content = true, st.content_path and L.read(st.content_path)
      st.resumer = L.start_task({ dt = dt, url = url, now = now, dest = st.dest_path, ca = tls.ca,
        durable_ok = DURABLE_OK }, { tasks = { { s = t1.s, o = t1.o, fault = "none" } }, dest = c.dest }, 1)
    end
    if st.resumer and not st.resumer.ended then return false end
    return true
  end
  for _, rec in ipairs(st.recs) do
    if not rec.ended then return false end
    if rec.co and coroutine.status(rec.co) ~= "dead" then return false end
  end
  return true
end

local function cleanup(st)
  for _, d in ipairs(st.cleanup) do
    if mounts[d] then
      S.bash("umount " .. quote(d) .. " 2>/dev/null || umount -l " .. quote(d))
      mounts[d] = nil
    end
  end
  for _, d in ipairs(st.cleanup) do S.bash("rm -rf " .. quote(d)) end
end

local function finish(c, st)
  local violations = {}
  if st.child then
    local rc, stderr = st.child_rc, L.read(st.child_out .. "/stderr") or ""
    local chunk = L.read(st.child_out .. "/rec")
    local recs = chunk and load("return " .. chunk)
    recs = recs and recs()
    if recs then st.recs = recs end
    st.partial = c.kind ~= "ulimit"     -- tasks still in flight when the process ended
    if not recs then
      violations[#violations + 1] = ("child exited %s without its records: %s")
        :format(tostring(rc), stderr:sub(1, 300))
    elseif c.kind == "ulimit" and rc ~= 0 then
      violations[#violations + 1] = ("child exited %s: %s"):format(tostring(rc), stderr:sub(1, 300))
    elseif c.kind == "close" and rc ~= 0 then
      violations[#violations + 1] = ("child (os.exit(0, true) mid-download) exited %s: %s")
        :format(tostring(rc), stderr:sub(1, 300))
    elseif c.kind == "kill" and rc ~= 137 then
      violations[#violations + 1] = ("child to be killed exited %s: %s"):format(tostring(rc), stderr:sub(1, 300))
    end
    if st.sweep then
      st.extra_allowed = { ["sweep.bin"] = true }
      if not (st.sweep.res and st.sweep.res.filePath) then
        violations[#violations + 1] = "the download after the killed process failed: "
          .. tostring(st.sweep.err and st.sweep.err.errMsg)
      end
    end
  end
  if st.reader_out then
    -- the FIFO's reader: give it the end of file if nothing wrote, then read what it got
    local deadline = now() + 2
    while not L.read(st.reader_out .. ".done") and now() < deadline do
      poll(10)
      if lfs.symlinkattributes(st.dest_path, "mode") == "named pipe" then
        S.bash("timeout 1 bash -c " .. quote(": > " .. quote(st.dest_path)) .. " 2>/dev/null")
      end
    end
    st.reader_got = L.read(st.reader_out)
  end
  for _, rec in ipairs(st.recs) do
    if rec.task then rec.state = rec.task.state end
    -- a success into a FIFO: the reader got the body
    if rec.res and rec.res.filePath and st.reader_out and rec.file_at_success == nil then
      rec.file_at_success = st.reader_got
    end
  end
  st.after = st.after or L.snapshot(st.dir)
  for _, v in ipairs(L.check(c, st)) do violations[#violations + 1] = v end
  if st.resumer then
    local rr, s, o = st.resumer, c.tasks[1].s, c.tasks[1].o
    if rr.res and rr.res.filePath then
      local got, ok = L.read(st.dest_path), false
      for _, b in ipairs(s.accept) do ok = ok or got == L.body_bytes(b) end
      if s.accept_416 and got == L.body_bytes(s.accept_416) then ok = true end
      if not ok then
        violations[#violations + 1] = ("the resume after kill -9 succeeded with a wrong file (%d bytes; segments %s)")
          :format(got and #got or -1, tostring(rr.res.segments))
      end
    elseif s.what == "ranges" or s.what == "trickle" then
      -- nothing in these options may make it fail, but a wrong sha256 and the limits
      local benign = not o.maxFileSize and not o.timeout and not o.stallTimeout
        and (not o.sha256 or o.sha256:lower() ~= ("ab"):rep(32))
      if benign then
        violations[#violations + 1] = "the resume after kill -9 failed: " .. tostring(rr.err and rr.err.errMsg)
      end
    end
  end
  done_cases = done_cases + 1
  stats[c.kind] = (stats[c.kind] or 0) + 1
  if #violations > 0 then report(c, violations, st)
  elseif args.verbose then
    print(("ok case=%d %.2fs %s"):format(c.k, now() - st.t0, L.describe(c, url)))
  end
  cleanup(st)
end

------------------------------------------------------------------------------
-- The loop.

local poll_errors = 0
function poll(ms)
  local ok, e = pcall(dt.poll, ms)
  if not ok then
    if e == L.RAISE or tostring(e):find("attempt to yield", 1, true)
        or tostring(e):find("deliberate listener error", 1, true) then
      return
    end
    poll_errors = poll_errors + 1
    failures = failures + 1
    print("FAIL poll raised an unexpected error: " .. tostring(e))
  end
end

local active = {}          -- list of { c =, st =, ended_at = }
local next_k = ONLY or 1
local started_at = now()
local since_drain = 0

local function more()
  if ONLY then return next_k == ONLY end
  if N and next_k > N then return false end
  return now() - started_at < SECONDS
end

local function check_fds(where)
  -- wait a moment: a connection closing on the engine thread
  local deadline = now() + 2
  local others, sockets
  repeat
    poll(20)
    collectgarbage()
    others, sockets = fds()
  until (others == FD_BASE) or now() > deadline
  if others < FD_BASE then FD_BASE = others end   -- fewer is no leak
  if others ~= FD_BASE then
    failures = failures + 1
    print(("FAIL descriptors: %d (not sockets) %s, %d before; seed=%s, cases up to %d")
      :format(others, where, FD_BASE, SEED_TEXT, next_k - 1))
    FD_BASE = others
  end
  if sockets > SOCK_BASE + 4 * 8 + 4 then
    failures = failures + 1
    print(("FAIL descriptors: %d sockets %s (libcurl's cache holds at most %d)")
      :format(sockets, where, 4 * 8))
  end
end

while true do
  while #active < PAR and more() do
    local c = L.gen(SEED, next_k)
    next_k = next_k + 1
    since_drain = since_drain + 1
    local st, why = start(c)
    if st then
      active[#active + 1] = { c = c, st = st }
    else
      skipped = skipped + 1
      if args.verbose then print(("skip case=%d: %s"):format(c.k, why)) end
      S.bash("rm -rf " .. quote(("%s/c%d"):format(root, c.k)))
    end
    if since_drain >= DRAIN_EVERY then break end
  end
  if #active == 0 then
    if since_drain >= DRAIN_EVERY then
      check_fds("after case " .. (next_k - 1))
      since_drain = 0
    end
    if not more() then break end
  end
  poll(10)
  local t = now()
  for i = #active, 1, -1 do
    local a = active[i]
    for _, rec in ipairs(a.st.recs) do
      if not a.st.child then L.tick(a.st.env, a.c, rec) end
    end
    if not a.ended_at and ended(a.c, a.st) then a.ended_at = t end
    if a.ended_at and t - a.ended_at >= SETTLE then
      table.remove(active, i)
      finish(a.c, a.st)
    elseif not a.ended_at and t - a.st.t0 > CASE_LIMIT then
      table.remove(active, i)
      local v = { ("case did not end within %d s"):format(CASE_LIMIT) }
      for _, rec in ipairs(a.st.recs) do
        v[#v + 1] = ("task%d events [%s] state %s"):format(rec.i, table.concat(rec.events, ","),
          rec.task and rec.task.state or "-")
        if rec.task then rec.task:abort() end
      end
      report(a.c, v, a.st)
      cleanup(a.st)
    end
  end
end
check_fds("at the end")
repeat local ok, left = pcall(dt.poll, 10) until ok and left == 0
umount_all()

local kinds = {}
for k, n in pairs(stats) do kinds[#kinds + 1] = k .. "=" .. n end
table.sort(kinds)
print(("chaos: seed %s: %d cases in %.0f s (%s), %d skipped, %d failure(s)"):format(SEED_TEXT,
  done_cases, now() - started_at, table.concat(kinds, " "), skipped, failures))
os.exit(failures == 0 and 0 or 1, true)
