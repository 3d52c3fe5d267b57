-- What specs read from the C sources themselves (types_spec, doc_spec): the options and
-- settings declared in src/options.c's tables.
local M = {}

-- The rows of the table `name` ("OPTIONS" or "SETTINGS") of options.c's text, in order:
-- { name =, kind = "K_STRING" ..., def = the default as a number }.
function M.option_rows(options_c, name)
  local body = assert(options_c:match(name .. "%[[%w_]*%]%s*=%s*(%b{})"), name .. " not found in options.c")
  local rows = {}
  for opt, kind, def in body:gmatch('{"([%w_]+)",%s*(K_[%u%d]+),%s*[^,]+,%s*[^,]+,%s*(%-?%d+)') do
    rows[#rows + 1] = { name = opt, kind = kind, def = tonumber(def) }
  end
  assert(#rows > 0, "no rows in options.c's " .. name)
  return rows
end

return M
