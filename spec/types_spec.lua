-- The lua-language-server stubs (lua/downloadtask/types.lua, installed by the rock) against
-- the C sources (issue 16): every function of the luaL_Reg arrays, every field the module
-- and task set, every option options.c accepts, every configure setting and every field of the
-- result, error, profile, progress and headers tables dispatch.c builds must be declared in
-- the stubs, in the class where a user looks for it. The names are read from the sources,
-- so a name added to the C code without its stub fails here.
--
-- It only reads files, so it is the same under every Lua, the sanitizers and valgrind.

local function read(path) return assert(require("spec.support.servers").readfile(path)) end

local STUBS = "lua/downloadtask/types.lua"

-- The stubs, parsed: classes[name] = {fields = set, methods = set}, the module's functions,
-- every type name referenced in an annotation, and the aliases.
local function parse_stubs(text)
  local classes, aliases, refs, var_class = {}, {}, {}, {}
  local current
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local class = line:match("^%-%-%-@class%s+([%w_.]+)")
    local field = line:match("^%-%-%-@field%s+([%w_]+)%??%s")
    local alias = line:match("^%-%-%-@alias%s+([%w_.]+)")
    if class then
      current = {fields = {}, methods = {}}
      classes[class] = current
    elseif field and current then
      current.fields[field] = true
    elseif alias then
      aliases[alias] = true
    elseif not line:match("^%-%-%-") then
      -- `local dt = {}` right after a ---@class names the table the class describes
      local var = line:match("^local%s+([%w_]+)%s*=%s*{}")
      if var and current then var_class[var] = current end
      current = nil
    end
    -- function dt.name(...) / function DownloadTask:name(...)
    local var, sep, name = line:match("^function%s+([%w_]+)([.:])([%w_]+)%(")
    if var then
      local c = assert(var_class[var], "function of an undeclared table: " .. line)
      c.methods[name] = sep
    end
    if line:match("^%-%-%-@") then
      for ref in line:gmatch("downloadtask%.[%w_]+") do refs[ref] = true end
    end
  end
  return classes, aliases, refs
end

-- The public names of the C sources, grouped by the class that must declare them.
local function source_names()
  local module_c, task_c, dispatch_c = read("src/module.c"), read("src/task.c"), read("src/dispatch.c")
  local n = {module = {}, methods = {}, task_fields = {}, options = {}, settings = {},
    result = {}, error = {}, profile = {}, events = {}}
  local function regs(src, into)
    for body in src:gmatch("luaL_Reg%s+[%w_]+%s*%[%]%s*=%s*(%b{})") do
      for name in body:gmatch("{%s*\"([^\"]+)\"") do
        if not name:match("^__") then into[#into + 1] = name end  -- metamethods: no API names
      end
    end
    for name in src:gmatch("lua_setfield%(L,%s*%-?%d+,%s*\"([%w_]+)\"%)") do
      if not name:match("^__") then into[#into + 1] = name end
    end
  end
  regs(module_c, n.module)         -- downloadFile, poll, ..., version
  regs(task_c, n.methods)          -- abort, on/off listeners, await
  for name in task_c:gmatch("strcmp%(k,%s*\"([%w_]+)\"%)") do n.task_fields[#n.task_fields + 1] = name end
  -- the options downloadFile accepts: OPTION_NAMES up to FIRST_UNIMPLEMENTED (names reserved
  -- for later raise "not implemented" and are not in the stubs yet)
  local options_c = read("src/options.c")    -- downloadFile's options, read and checked
  local list = assert(options_c:match("OPTION_NAMES%[%]%s*=%s*(%b{})"), "OPTION_NAMES not found in options.c")
  local implemented = tonumber(options_c:match("#define%s+FIRST_UNIMPLEMENTED%s+(%d+)")) or math.huge
  for name in list:gmatch("\"([^\"]+)\"") do
    if #n.options < implemented then n.options[#n.options + 1] = name end
  end
  local settings = assert(module_c:match("names%[%]%s*=%s*(%b{})"), "configure's names not found in module.c")
  for name in settings:gmatch("\"([^\"]+)\"") do n.settings[#n.settings + 1] = name end
  -- dispatch.c: each table-building function's fields; the rest are the event tables
  local function fields(body, into)
    for name in body:gmatch("set_%a+%(L,%s*\"([%w_]+)\"") do into[#into + 1] = name end
    for name in body:gmatch("lua_setfield%(L,%s*%-?%d+,%s*\"([%w_]+)\"%)") do
      if not name:match("^__") then into[#into + 1] = name end
    end
  end
  local rest = dispatch_c
  for fn, key in pairs {push_result = "result", push_error = "error", push_profile = "profile"} do
    local from, to = dispatch_c:find("\nstatic [%w_ ]-%f[%w_]" .. fn .. "%(.-\n}\n")
    assert(from, fn .. " not found in dispatch.c")
    fields(dispatch_c:sub(from, to), n[key])
    rest = rest:gsub(dispatch_c:sub(from, to):gsub("%p", "%%%0"), "")
  end
  fields(rest, n.events)
  return n
end

local function missing(names, set)
  local out = {}
  for _, name in ipairs(names) do
    if not set[name] then out[#out + 1] = name end
  end
  return out
end

describe("lua-language-server stubs", function()
  local text = read(STUBS)
  local classes, aliases, refs = parse_stubs(text)
  local names = source_names()

  it("are a ---@meta file named after the module, and valid Lua", function()
    assert.matches("^%-%-%-@meta downloadtask\n", text)
    local chunk = assert(loadstring or load)(text, "=" .. STUBS)
    assert.equals("function", type(chunk))
  end)

  it("declare every class they reference", function()
    local undeclared = {}
    for ref in pairs(refs) do
      if not classes[ref] and not aliases[ref] then undeclared[#undeclared + 1] = ref end
    end
    table.sort(undeclared)
    assert.same({}, undeclared)
    for _, c in ipairs { "downloadtask", "downloadtask.Options", "downloadtask.Result", "downloadtask.Error",
      "downloadtask.Profile", "downloadtask.ProgressEvent", "downloadtask.HeadersEvent",
      "downloadtask.DownloadTask", "downloadtask.Settings" } do
      assert.truthy(classes[c], c)
    end
  end)

  it("declare every module function and field of module.c", function()
    assert.truthy(#names.module >= 6, "too few names found in module.c")
    local m, set = classes.downloadtask, {}
    for k, sep in pairs(m.methods) do if sep == "." then set[k] = true end end
    for k in pairs(m.fields) do set[k] = true end
    assert.same({}, missing(names.module, set))
  end)

  it("declare every DownloadTask method and field of task.c as a method or field", function()
    assert.truthy(#names.methods >= 6, "too few methods found in task.c")
    local c, set = classes["downloadtask.DownloadTask"], {}
    for k, sep in pairs(c.methods) do if sep == ":" then set[k] = true end end
    assert.same({}, missing(names.methods, set))
    assert.same({}, missing(names.task_fields, c.fields))
  end)

  it("declare every downloadFile option task.c accepts", function()
    assert.truthy(#names.options >= 20, "too few options found in task.c")
    assert.same({}, missing(names.options, classes["downloadtask.Options"].fields))
  end)

  it("declare every configure setting", function()
    assert.truthy(#names.settings >= 5, "too few settings found in module.c")
    assert.same({}, missing(names.settings, classes["downloadtask.Settings"].fields))
  end)

  it("declare every field of the result, error, profile and event tables of dispatch.c", function()
    assert.truthy(#names.result >= 8 and #names.error >= 2 and #names.profile >= 20,
      "too few result fields found in dispatch.c")
    assert.same({}, missing(names.result, classes["downloadtask.Result"].fields))
    assert.same({}, missing(names.error, classes["downloadtask.Error"].fields))
    assert.same({}, missing(names.profile, classes["downloadtask.Profile"].fields))
    local events = {}
    for _, c in ipairs { "downloadtask.ProgressEvent", "downloadtask.HeadersEvent" } do
      for k in pairs(classes[c].fields) do events[k] = true end
    end
    assert.truthy(#names.events >= 5, "too few event fields found in dispatch.c")
    assert.same({}, missing(names.events, events))
  end)
end)
