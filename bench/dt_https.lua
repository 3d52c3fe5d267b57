-- One HTTPS download to a file with downloadtask (child process of bench/run.lua, issue 13).
--   lua5.4 bench/dt_https.lua URL DEST SIZE CAFILE
-- Prints the protocol libcurl negotiated (res.profile.protocol) for the bench to check.
local dt = require "downloadtask"
local url, dest, size, ca = arg[1], arg[2], math.tointeger(tonumber(arg[3])), arg[4]

local res, err
dt.downloadFile {
  url = url,
  filePath = dest,
  caFile = ca,
  success = function(r) res = r end,
  fail = function(e) err = e end,
}
dt.run()

if err then
  io.stderr:write("dt_https: ", err.errMsg, "\n")
  os.exit(1)
end
if res.statusCode ~= 200 or res.dataLength ~= size then
  io.stderr:write(("dt_https: status %d, %d bytes, expected %d\n"):format(res.statusCode, res.dataLength, size))
  os.exit(1)
end
print(("RESULT protocol=%s"):format(res.profile and res.profile.protocol or "none"))
