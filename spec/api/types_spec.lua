-- The lua-language-server stubs (lua/downloadtask/types.lua, installed by the rock) against
-- the C sources (issue 16): every function of the luaL_Reg arrays, every field the module
-- and task set, every option options.c accepts, every configure setting and every field of the
-- result, error, profile, progress and headers tables dispatch.c builds must be declared in
-- the stubs, in the class where a user looks for it. The names are read from the sources,
-- so a name added to the C code without its stub fails here.
--
-- It only reads files, so it is the same under every Lua, the sanitizers and valgrind.

local function read(path) return assert(require("spec.support.servers").readfile(path)) end

local C = require "spec.support.csource"
local STUBS = "lua/downloadtask/types.lua"

-- The stubs, parsed: classes[name] = {fields = {name = "type and description"}, methods = set}, the module's functions,
-- every type name referenced in an annotation, and the aliases.
local function parse_stubs(text)
  local classes, aliases, refs, var_class = {}, {}, {}, {}
  local current
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    local class = line:match("^%-%-%-@class%s+([%w_.]+)")
    local field, ftype = line:match("^%-%-%-@field%s+([%w_]+)%??%s+(.*)$")
    local alias = line:match("^%-%-%-@alias%s+([%w_.]+)")
    if class then
      current = {fields = {}, methods = {}}
      classes[class] = current
    elseif field and current then
      current.fields[field] = ftype -- its type and description
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
  local n = {module = {}, methods = {}, task_fields = {},
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
  -- the options downloadFile accepts and configure's settings: options.c's two tables, each
  -- row {"name", K_KIND, ...}; the kinds are kept to check the stubs' types
  local options_c = read("src/options.c")
  local function rows(name)
    local list = {}
    for _, r in ipairs(C.option_rows(options_c, name)) do
      list[#list + 1] = r.name
      n.kinds[name .. "." .. r.name] = r.kind
      n.defaults[name .. "." .. r.name] = r.def
    end
    return list
  end
  n.kinds, n.defaults = {}, {}
  n.options = rows("OPTIONS")
  n.settings = rows("SETTINGS")
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
    assert.truthy(#names.options >= 20, "too few options found in options.c")
    assert.same({}, missing(names.options, classes["downloadtask.Options"].fields))
  end)

  -- what each kind of options.c's tables is in the stubs
  local LUA_TYPE = { K_STRING = { "^string%s" }, K_LONG = { "^integer%s" }, K_INT64 = { "^integer%s" },
    K_BOOL = { "^boolean%s" }, K_DATE = { "^integer|string%s" }, K_FUNCTION = { "^fun%(" },
    K_TABLE = { "^table<", "^[%w_.]+%[%]%s" } }
  local function typed(stub, kind)
    for _, p in ipairs(LUA_TYPE[kind]) do if stub:match(p) then return true end end
    return false
  end

  it("give each option and setting the type options.c reads, and its default", function()
    local wrong = {}
    for _, t in ipairs { { "OPTIONS", names.options, "downloadtask.Options" },
      { "SETTINGS", names.settings, "downloadtask.Settings" } } do
      local fields = classes[t[3]].fields
      for _, opt in ipairs(t[2]) do
        local kind, def, stub = names.kinds[t[1] .. "." .. opt], names.defaults[t[1] .. "." .. opt], fields[opt]
        if stub and not typed(stub, kind) then
          wrong[#wrong + 1] = ("%s: %s in options.c, declared %q"):format(opt, kind, stub:sub(1, 30))
        end
        -- downloadFile's defaults (configure's -1 means "unchanged")
        local want = kind == "K_BOOL" and "default false"
          or (kind == "K_LONG" or kind == "K_INT64") and def >= 0 and ("default " .. def)
        if stub and t[1] == "OPTIONS" and want and not stub:find(want, 1, true) then
          wrong[#wrong + 1] = ("%s: options.c's default is %s; the stub says %q"):format(opt, def, stub)
        end
      end
    end
    assert.same({}, wrong)
  end)

  -- the reference (LDoc comments): downloadFile's options in task.c ("@tfield[opt=D] type
  -- name"), configure's settings in module.c ("@tparam[opt=D] type settings.name")
  local REF_TYPE = { K_STRING = "string", K_LONG = "integer", K_INT64 = "integer", K_BOOL = "boolean",
    K_DATE = "integer|string", K_FUNCTION = "function", K_TABLE = { table = true, ["{string,...}"] = true } }

  it("the reference names each option and setting with the type options.c reads, and its default", function()
    local task_c, module_c = read("src/task.c"), read("src/module.c")
    local refs = {}
    -- the options: the @tfield lines before the result table's
    local opts = task_c:sub(1, assert(task_c:find("@tfield integer statusCode", 1, true)))
    for opt, def, ty, name in opts:gmatch("@tfield(%[?([^%]%s]*)%]?) (%S+) ([%w_]+)") do
      refs["OPTIONS." .. name] = { ty = ty, def = def:match("^opt=(.*)$") }
    end
    for _, def, ty, name in module_c:gmatch("@tparam(%[?([^%]%s]*)%]?) (%S+) settings%.([%w_]+)") do
      refs["SETTINGS." .. name] = { ty = ty }
    end
    local wrong = {}
    for _, t in ipairs { { "OPTIONS", names.options }, { "SETTINGS", names.settings } } do
      for _, opt in ipairs(t[2]) do
        local key = t[1] .. "." .. opt
        local kind, r, want = names.kinds[key], refs[key], REF_TYPE[names.kinds[key]]
        if not r then
          wrong[#wrong + 1] = key .. ": not in the reference"
        elseif not (type(want) == "table" and want[r.ty] or want == r.ty) then
          wrong[#wrong + 1] = ("%s: %s in options.c, %s in the reference"):format(key, kind, r.ty)
        elseif r.def and r.def ~= (kind == "K_BOOL" and "false" or tostring(names.defaults[key])) then
          wrong[#wrong + 1] = ("%s: default %s in options.c, opt=%s in the reference"):format(key,
            tostring(names.defaults[key]), r.def)
        end
      end
    end
    assert.same({}, wrong)
  end)

  it("declare every configure setting", function()
    assert.truthy(#names.settings >= 5, "too few settings found in options.c")
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
