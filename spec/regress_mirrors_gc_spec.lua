-- Regression, issue 13 (heap overflow under make asan at 5e0ac09): mirrors were read from the caller's table twice (read_options checks and sizes them,
-- copy_options copies them); a finalizer that runs in between (header_lines allocates) can
-- change them.
local dt = require "downloadtask"
local S = require "spec.support.servers"

describe("regression: mirrors and finalizers", function()
  it("a __gc that swaps mirrors[1] for a longer URL between the check and the copy", function()
    local ng = S.nginx()
    local short = ng.url("1k.bin")
    local long = "http://127.0.0.1/" .. string.rep("x", 100000)
    local m = { short }
    local flips = 0
    local function arm()
      setmetatable({}, { __gc = function()
        flips = flips + 1
        m[1] = (m[1] == short) and long or short
        arm() -- every cycle has one
      end })
    end
    arm()
    local hdr = {}
    for i = 1, 3000 do hdr["X-H" .. i] = ("v"):rep(50) end
    collectgarbage("setpause", 10)
    collectgarbage("setstepmul", 1000)
    local tasks = {}
    for i = 1, 100 do
      local ok, t = pcall(dt.downloadFile, { url = short, header = hdr, mirrors = m })
      if ok then tasks[#tasks + 1] = t; t:abort() end
    end
    collectgarbage("setpause", 200)
    collectgarbage("setstepmul", 100)
    print("\nG: flips " .. flips .. ", tasks " .. #tasks)
    for _, t in ipairs(tasks) do pcall(t.await, t) end
  end)
end)
