-- `make doc` (LDoc, config.ld) builds the HTML reference, and every public name of the
-- sources is documented in it: the functions of every luaL_Reg array of module.c and
-- task.c, the fields they set (await, version) and the `state` field, every downloadFile
-- option options.c accepts, every configure setting, every result field dispatch.c builds,
-- and every errno of dt.h. The names are read from the C sources, so a function or option
-- added without its doc comment fails here.
--
-- It never loads the module and only runs make and ldoc, so it is the same under every Lua,
-- and under the sanitizers and valgrind (their children run unchecked).

local C = require "spec.support.csource"
local function read(path) return assert(require("spec.support.servers").readfile(path)) end

-- Runs a shell command; returns its output (stdout and stderr) and its exit status.
-- (The status is read from the output: os.execute and close() differ between 5.1 and 5.2+.)
local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>&1; echo \"rc=$?\""))
  local out = p:read("*a")
  p:close()
  local rc = tonumber(out:match("rc=(%d+)%s*$"))
  return out:gsub("rc=%d+%s*$", ""), rc
end

local function add(set, list, name)
  if not set[name] then
    set[name] = true
    list[#list + 1] = name
  end
end

-- The names a C source makes public, grouped by what documents them.
local function public_names()
  local module_c, task_c = read("src/module.c"), read("src/task.c")
  local names = {funcs = {}, options = {}, settings = {}, fields = {}, errnos = {}}
  local seen = {}
  for k in pairs(names) do seen[k] = {} end
  for _, src in ipairs{module_c, task_c} do
    for body in src:gmatch("luaL_Reg%s+[%w_]+%s*%[%]%s*=%s*(%b{})") do
      for name in body:gmatch("{%s*\"([^\"]+)\"") do add(seen.funcs, names.funcs, name) end
    end
    -- lua_setfield(L, -2, "await"), "version"; the metatable's own __index is no API
    for name in src:gmatch("lua_setfield%(L,%s*%-?%d+,%s*\"([%w_]+)\"%)") do
      if name ~= "__index" then add(seen.funcs, names.funcs, name) end
    end
  end
  -- task.state, read by __index
  for name in task_c:gmatch("strcmp%(k,%s*\"([%w_]+)\"%)") do add(seen.funcs, names.funcs, name) end
  local options_c = read("src/options.c")    -- downloadFile's options, read and checked
  for _, r in ipairs(C.option_rows(options_c, "OPTIONS")) do add(seen.options, names.options, r.name) end
  for _, r in ipairs(C.option_rows(options_c, "SETTINGS")) do add(seen.settings, names.settings, r.name) end
  -- the result, error, profile, progress and headers tables the dispatcher builds
  local dispatch_c = read("src/dispatch.c")
  for name in dispatch_c:gmatch("set_%a+%(L,%s*\"([%w_]+)\"") do add(seen.fields, names.fields, name) end
  for name in dispatch_c:gmatch("lua_setfield%(L,%s*%-?%d+,%s*\"([%w_]+)\"%)") do
    if not name:match("^__") then add(seen.fields, names.fields, name) end
  end
  for code in read("src/dt.h"):gmatch("DT_ERR_[%w_]+%s*=%s*(%d+)") do add(seen.errnos, names.errnos, code) end
  return names
end

-- The HTML of one documented item: from its anchor to the next one.
local function item(html, name)
  local from = html:find('<a name = "' .. name .. '"></a>', 1, true)
  if not from then return nil end
  local to = html:find('<a name', from + 1, true) or #html
  return html:sub(from, to)
end

local function parameter(name)
  return '<span class="parameter">' .. name .. "</span>"
end

describe("make doc", function()
  local dir, html, out, rc

  setup(function()
    local p = assert(io.popen("mktemp -d \"${TMPDIR:-/tmp}/dt-doc.XXXXXX\""))
    dir = p:read("*l")
    p:close()   -- closed now, not at some collection in a later spec that counts descriptors
    out, rc = sh(("make -s doc DOC_DIR=%q"):format(dir))
    local f = io.open(dir .. "/index.html", "rb")
    if f then
      html = f:read("*a")
      f:close()
    end
  end)

  teardown(function()
    if dir and dir:match("dt%-doc%.") then sh(("rm -rf %q"):format(dir)) end
  end)

  it("builds DOC_DIR/index.html without a warning", function()
    assert.equals(0, rc, out)
    assert.truthy(html, "no index.html in " .. dir .. ":\n" .. out)
    assert.matches("make doc: " .. dir .. "/index.html", out, 1, true)
    assert.not_matches("warning", out:lower(), 1, true)
  end)

  it("documents every function and method of the luaL_Reg arrays, await, state and version", function()
    assert.truthy(html, out)
    local names, missing = public_names(), {}
    assert.truthy(#names.funcs >= 14, "too few names found in the sources")
    for _, name in ipairs(names.funcs) do
      local documented = item(html, name) or item(html, "DownloadTask:" .. name)
        or item(html, "DownloadTask." .. name)
        -- __gc is no call of the API: the DownloadTask description says what it does
        or (name == "__gc" and html:find("__gc", 1, true))
      if not documented then missing[#missing + 1] = name end
    end
    assert.same({}, missing)
  end)

  it("lists every downloadFile option task.c accepts in the options table", function()
    assert.truthy(html, out)
    local options, missing = assert(item(html, "options"), "no options table"), {}
    local names = public_names().options
    assert.truthy(#names >= 20, "too few options found in task.c")
    for _, name in ipairs(names) do
      if not options:find(parameter(name), 1, true) then missing[#missing + 1] = name end
    end
    assert.same({}, missing)
  end)

  it("lists every configure setting under configure", function()
    assert.truthy(html, out)
    local configure, missing = assert(item(html, "configure"), "configure not documented"), {}
    for _, name in ipairs(public_names().settings) do
      if not configure:find(parameter(name), 1, true) then missing[#missing + 1] = name end
    end
    assert.same({}, missing)
  end)

  it("lists every result, error, profile and event field, and every errno", function()
    assert.truthy(html, out)
    local names, missing = public_names(), {}
    assert.truthy(#names.fields >= 30, "too few result fields found in dispatch.c")
    for _, name in ipairs(names.fields) do
      if not html:find(parameter(name), 1, true) then missing[#missing + 1] = name end
    end
    local errno = assert(item(html, "errno"), "no errno table")
    for _, code in ipairs(names.errnos) do
      if not errno:find(parameter(code), 1, true) then missing[#missing + 1] = "errno " .. code end
    end
    assert.same({}, missing)
  end)

  it("fails with a clear message when ldoc is missing", function()
    local msg, code = sh("make -s doc LDOC=/nonexistent/ldoc DOC_DIR=" .. dir .. "/none")
    assert.not_equals(0, code)
    assert.matches("ldoc' not found; install Debian's lua-ldoc", msg, 1, true)
  end)
end)
