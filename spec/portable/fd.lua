-- dt.fd(): readable while events wait, so that a host with its own event loop (luv,
-- cqueues, a game engine's) waits on it and then calls poll(0). A descriptor on POSIX, a
-- SOCKET on Windows. Plain Lua (see harness.lua); the wait itself needs LuaJIT's FFI:
-- select() from ws2_32 on Windows (sockets only: the reason dt.fd() is one there), poll()
-- elsewhere. Plain Lua 5.x cannot wait on a descriptor, and says so with a skip.
local H = dofile((arg and arg[0] or ""):match("^(.-)[^/\\]*$") .. "harness.lua")
local dt = require "downloadtask"

local ffi
do
  local ok, f = pcall(require, "ffi")
  if ok then ffi = f end
end

-- wait(fd, ms): > 0 when readable within ms, 0 when not, < 0 on error
local wait
if ffi and H.WINDOWS then
  ffi.cdef [[
  typedef struct { unsigned int fd_count; uintptr_t fd_array[64]; } dt_fd_set;
  typedef struct { long tv_sec; long tv_usec; } dt_timeval;
  int select(int n, dt_fd_set *r, dt_fd_set *w, dt_fd_set *e, const dt_timeval *t);
  ]]
  local ws2 = ffi.load("ws2_32")
  wait = function(fd, ms)
    local set = ffi.new("dt_fd_set")
    set.fd_count = 1
    set.fd_array[0] = fd
    local tv = ffi.new("dt_timeval", math.floor(ms / 1000), (ms % 1000) * 1000)
    return ws2.select(0, set, nil, nil, tv)
  end
elseif ffi then
  ffi.cdef [[
  struct dt_pollfd { int fd; short events, revents; };
  int poll(struct dt_pollfd *p, unsigned long n, int ms);
  ]]
  wait = function(fd, ms)
    local p = ffi.new("struct dt_pollfd[1]")
    p[0].fd = fd
    p[0].events = 1 -- POLLIN
    return ffi.C.poll(p, 1, ms)
  end
end

H.test("dt.fd() is a non-negative integer, the same every time", function()
  local fd = dt.fd()
  H.eq(type(fd), "number", "type")
  H.eq(fd, math.floor(fd), "an integer")
  H.truthy(fd >= 0, "non-negative")
  H.eq(dt.fd(), fd, "a second call")
end)

H.test("a host waits on dt.fd(), then poll(0) delivers; idle, it is not readable", function()
  if not wait then H.skip("waiting on a descriptor needs LuaJIT's FFI (select/poll); this is " .. _VERSION) end
  local fd = dt.fd()
  dt.poll(0) -- nothing left over from an earlier test
  local done, wakes, rounds = nil, 0, 0
  dt.downloadFile {
    url = H.url("small.txt"), filePath = H.path("fd.txt"),
    success = function() done = true end,
    fail = function(e) done = e end,
  }
  while done == nil do
    local n = wait(fd, 5000)
    H.truthy(n >= 0, "select/poll failed")
    H.truthy(n > 0, "no wake-up within 5 s while a download ran")
    wakes = wakes + 1
    dt.poll(0)
    rounds = rounds + 1
    H.truthy(rounds < 100, "more than 100 wake-ups for one small download")
  end
  H.eq(done, true, "the download's end")
  H.truthy(wakes >= 1, "at least one wake-up")
  H.eq(wait(fd, 200), 0, "readable with nothing to deliver")
  H.expect_file("fd.txt", #H.SMALL_TXT)
end)

H.run()
