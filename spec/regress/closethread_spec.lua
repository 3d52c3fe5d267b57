-- Regression, issue 10 ("to settle while there"): a coroutine waiting in await() that the
-- dispatcher resumed and that then died in an error kept its to-be-closed variables open
-- for good: Lua does not unwind a coroutine that dies in an error (coroutine.close does),
-- and the dispatcher resumes with lua_resume. It now closes them (lua_closethread, or
-- lua_resetthread before 5.4.6: compat.h). Lua 5.4 only: `<close>` does not exist before;
-- the chunks are compiled at run time so that the file loads everywhere.
local dt = require "downloadtask"
local S = require "spec.support.servers"

local is54 = _VERSION == "Lua 5.4" and not rawget(_G, "jit")

-- a coroutine that awaits a download, then raises `message`; its <close> variable counts
-- closings in `closed` and, with close_error, raises that from __close
local MAKER = [[
local dt, url, closed, message, close_error = ...
return function()
  local guard <close> = setmetatable({}, { __close = function(_, err)
    closed.n = closed.n + 1
    closed.err = err
    if close_error then error(close_error, 0) end
  end })
  local res = dt.downloadFile { url = url }:await()
  os.remove(res.tempFilePath)
  error(message, 0)
end
]]

local function poll_until_error()
  local deadline = os.time() + 10
  while os.time() < deadline do
    local ok, err = pcall(dt.poll, 20)
    if not ok then return err end
  end
end

describe("regression: a coroutine that dies after await", function()
  it("has its to-be-closed variables closed (coroutine.create and coroutine.wrap)", function()
    if not is54 then pending("Lua 5.4 only") return end
    local url = S.nginx().url("small.txt")
    for _, how in ipairs { "create", "wrap" } do
      local closed = { n = 0 }
      local body = assert(load(MAKER))(dt, url, closed, "boom after await")
      if how == "create" then
        assert(coroutine.resume(coroutine.create(body)))
      else
        coroutine.wrap(body)()
      end
      local err = poll_until_error()
      assert.matches("boom after await", tostring(err), 1, true)
      assert.are.equal(1, closed.n, how)
      assert.are.equal("boom after await", closed.err)
    end
    assert.are.equal(0, dt.poll(0))
  end)

  it("an error raised by a __close is the one that propagates (as coroutine.close)", function()
    if not is54 then pending("Lua 5.4 only") return end
    local closed = { n = 0 }
    local body = assert(load(MAKER))(dt, S.nginx().url("small.txt"), closed, "first", "from __close")
    assert(coroutine.resume(coroutine.create(body)))
    local err = poll_until_error()
    assert.matches("from __close", tostring(err), 1, true)
    assert.are.equal(1, closed.n)
    assert.are.equal(0, dt.poll(0))
  end)
end)
