-- A torture script (tools/torture.c; spec/regress/nomem_spec.lua): a memory error while
-- `require "downloadtask"` opens the module must leave a state that a second require
-- completes, and the module must then work.
local M = {}

function M.setup()
  local S = require "spec.support.servers"
  return ("return { url = %q }"):format(S.nginx().url("small.txt"))
end

function M.run()
  local dt = require "downloadtask"
  assert(type(dt.downloadFile) == "function")
end

function M.check(cfg)
  local dt = require "downloadtask"
  local status
  dt.downloadFile { url = cfg.url, filePath = cfg.dir .. "/small.txt",
    complete = function(res) status = res.statusCode or res.errMsg end }
  dt.run()
  assert(status == 200, "a download after the memory error: " .. tostring(status))
end

return M
