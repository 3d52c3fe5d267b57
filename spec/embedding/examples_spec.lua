-- The examples clean up what they are given (issue 16): each non-interactive example
-- (examples/*.lua and README's first example; the LÖVE one is spec/embedding/love_spec.lua's) runs
-- as a child Lua against the specs' servers with TMPDIR pointed at a fresh directory, with
-- 2xx, 404 and refused URLs, and that directory must be empty afterwards. Also checks
-- README's `proxy = ""`: no proxy, whatever the proxy variables say.

local S = require "spec.support.servers"
local q = S.quote

-- Runs a shell command; returns its output (stdout and stderr) and its exit status.
local sh = require("spec.support.servers").run

-- Runs `lua args...` with TMPDIR set to a fresh directory and the module under test; returns
-- its output, its status and the names left in that directory.
local function run(args, env)
  local tmp = S.tmpdir()
  local out, rc = sh(("cd %s && %s TMPDIR=%s LUA_CPATH=%s %s %s </dev/null")
    :format(q(S.SUPPORT_DIR .. "/../.."), env or "", q(tmp), q(S.MODULE_CPATH .. ";;"), S.LUA, args))
  return out, rc, S.listdir(tmp)
end

local function has_luv()
  local _, rc = sh(S.LUA .. [[ -e 'require "luv"']])
  return rc == 0
end

describe("examples", function()
  local ng, ok_url, missing_url, refused_url

  setup(function()
    ng = S.nginx()
    ok_url, missing_url = ng.url("1m.bin"), ng.url("no-such-file")
    refused_url = ("http://127.0.0.1:%d/x"):format(S.free_port())
  end)

  it("progress.lua leaves nothing in TMPDIR: a 2xx and a 404 to a FILE, a 2xx and a 404 without", function()
    local dir = S.tmpdir()
    local out, rc, left = run(("examples/progress.lua %s %s"):format(q(ok_url), q(dir .. "/a.bin")))
    assert.equals(0, rc, out)
    assert.matches("200 OK", out, 1, true)
    assert.same({}, left)
    assert.is_true(S.file_matches_pattern(dir .. "/a.bin", 1024 * 1024))
    out, rc, left = run(("examples/progress.lua %s %s"):format(q(missing_url), q(dir .. "/b.bin")))
    assert.equals(0, rc, out)
    assert.matches("404 (not a success status)", out, 1, true)
    assert.same({}, left)
    assert.same({ "a.bin" }, S.listdir(dir))
    for _, url in ipairs { ok_url, missing_url } do
      out, rc, left = run(("examples/progress.lua %s"):format(q(url)))
      assert.equals(0, rc, out)
      assert.same({}, left)
    end
    out, rc, left = run(("examples/progress.lua %s"):format(q(refused_url)))
    assert.equals(1, rc, out)
    assert.matches("failed: downloadFile:fail", out, 1, true)
    assert.same({}, left)
  end)

  it("coroutines.lua leaves nothing in TMPDIR", function()
    local out, rc, left = run(("examples/coroutines.lua %s %s %s"):format(q(ok_url), q(missing_url), q(refused_url)))
    assert.equals(0, rc, out)
    assert.matches("#1 .* 200, 1048576 bytes", out)
    assert.matches("#2 .* 404", out)
    assert.matches("all done", out, 1, true)
    assert.same({}, left)
  end)

  it("luv.lua leaves nothing in TMPDIR", function()
    if not has_luv() then
      pending("luv (Debian lua-luv) is not installed for " .. S.LUA)
      return
    end
    local out, rc, left = run(("examples/luv.lua %s %s %s"):format(q(ok_url), q(missing_url), q(refused_url)))
    assert.equals(0, rc, out)
    assert.matches("all done", out, 1, true)
    assert.same({}, left)
  end)

  it("README's first example leaves nothing in TMPDIR after a 404", function()
    local readme = S.readfile(S.SUPPORT_DIR .. "/../../README.md")
    local code = assert(readme:match("```lua\n(.-)```"), "no Lua block in README.md")
    assert.matches('url = "http://127.0.0.1:8080/pack.zip"', code, 1, true)
    local dir = S.tmpdir()
    code = code:gsub('"http://127%.0%.0%.1:8080/pack%.zip"', ("%q"):format(missing_url))
      :gsub('"cache/pack%.zip"', ("%q"):format(dir .. "/pack.zip"))
    local file = dir .. "/example.lua"
    S.writefile(file, code)
    local out, rc, left = run(q(file))
    assert.equals(0, rc, out)
    assert.matches("404", out, 1, true)
    assert.same({}, left)
    assert.same({ "example.lua" }, S.listdir(dir))
  end)

  it("./dev example's runner (with-local-server.lua progress.lua) leaves nothing in TMPDIR", function()
    -- its own nginx and run directory go under TMPDIR (DT_TEST_TMPDIR would put them in
    -- this run's); DT_TEST_PIDFILE stays, so run-specs.sh stops that nginx whatever happens
    local out, rc, left = run("examples/with-local-server.lua examples/progress.lua",
      ("env -u DT_TEST_TMPDIR DT_CPATH=%s"):format(q(S.MODULE_CPATH)))
    assert.equals(0, rc, out)
    assert.matches("200 OK: 100.0 MiB", out, 1, true)
    assert.same({}, left)
  end)
end)

describe('proxy = ""', function()
  it("ignores http_proxy, HTTP_PROXY and all_proxy (a proxy there would refuse the connection)", function()
    local ng = S.nginx()
    local proxy = ("http://127.0.0.1:%d"):format(S.free_port())
    local script = ([[
      local dt = require "downloadtask"
      local function get(p)
        local res, err = dt.downloadFile{ url = %q, proxy = p }:await()
        if res then os.remove(res.tempFilePath); return res.statusCode end
        return err.errMsg
      end
      print("without:", get(nil))
      print("empty:", get(""))
    ]]):format(ng.url("small.txt"))
    local out, rc = sh(("http_proxy=%s HTTP_PROXY=%s all_proxy=%s no_proxy= LUA_CPATH=%s %s -e %s")
      :format(proxy, proxy, proxy, q(S.MODULE_CPATH .. ";;"), S.LUA, q(script)))
    assert.equals(0, rc, out)
    -- the variables are in effect (the refused proxy fails the first download) ...
    assert.matches("without:%s+downloadFile:fail", out)
    -- ... and "" turns them off
    assert.matches("empty:%s+200", out)
  end)
end)
