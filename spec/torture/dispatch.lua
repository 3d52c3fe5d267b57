-- A torture script (tools/torture.c; spec/regress/nomem_spec.lua): a memory error raised
-- while run() delivers (building an event or result table, calling a listener) reaches
-- the caller; afterwards run(), poll() and await() must work again and every task must
-- be delivered to its end.
local M = {}
-- opened when the script is loaded, before the allocations fail (require.lua is about that)
local dt = require "downloadtask"

function M.setup()
  local S = require "spec.support.servers"
  local ng = S.nginx()
  return ("return { url = %q, missing = %q }"):format(ng.url("1k.bin"), ng.url("missing"))
end

-- sized before the run, so that marking allocates nothing
local created, ended = { false, false, false }, { false, false, false }

function M.run(cfg)
  dt.configure { progressInterval = 0, tempDir = cfg.tmp }
  for i, url in ipairs { cfg.url, cfg.missing, cfg.url } do
    local t = dt.downloadFile { url = url, filePath = cfg.dir .. "/f" .. i,
      success = function(res) if res.tempFilePath then os.remove(res.tempFilePath) end end,
      complete = function() ended[i] = true end }
    created[i] = true
    t:onHeadersReceived(function() end)
    t:onProgressUpdate(function() end)
  end
  dt.run()
end

function M.check(cfg)
  dt.run()
  for i = 1, 3 do
    assert(ended[i] or not created[i], "download " .. i .. " never completed")
  end
  local t = dt.downloadFile { url = cfg.url, filePath = cfg.dir .. "/after" }
  local res = t:await()
  assert(res and res.statusCode == 200, "await after the memory error")
end

return M
