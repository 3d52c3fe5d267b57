-- Not a spec of its own (no _spec suffix): support_spec.lua runs it in a
-- nested busted to check that no server outlives a run. It starts both
-- servers, writes their pids and the run dir to $DT_FIXTURE_OUT, then ends
-- the way $DT_FIXTURE_MODE says: pass, fail, error, exit (os.exit without
-- closing the Lua state, so no finalizer runs: only run-specs.sh can clean up)
-- or hang (sleeps 30 s, for trying signals on run-specs.sh by hand).
local S = require "spec.support.servers"

describe("cleanup fixture", function()
  it("starts the servers and ends as told", function()
    local ng, f = S.nginx(), S.fault()
    S.writefile(os.getenv("DT_FIXTURE_OUT"),
      ("%d\n%d\n%s\n"):format(ng.pid, f.pid, ng.root:match("^(.*)/[^/]*$")))
    local mode = os.getenv("DT_FIXTURE_MODE")
    if mode == "fail" then assert.are.equal(1, 2) end
    if mode == "error" then error("fixture error") end
    if mode == "exit" then os.exit(3, false) end
    if mode == "hang" then require("socket").sleep(30) end   -- to test signals by hand
  end)
end)
