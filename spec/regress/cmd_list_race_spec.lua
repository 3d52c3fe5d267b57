-- Regression (found by make torture, which hung in ~2 % of its runs without any
-- allocation failing): a download submitted right after another one was aborted could stay
-- "queued" forever.
--
-- engine.c's take_commands() takes the command list under the mutex, links it through
-- x->next_taken and walks it after unlocking. A transfer aborted at once is published
-- (DT_EV_ABORTED) during that walk and lands on the ready list; engine_take() on the Lua
-- thread, in a poll() at that moment, relinks the ready list through the same
-- x->next_taken. The engine thread's walk then follows the ready list: the commands after
-- the aborted transfer are never carried out (the next download is never queued in the
-- engine: its task stays "queued" and run() never returns), and unref_taken() drops
-- references it does not hold (a transfer freed too early, another one leaked).
-- TSan reports the unsynchronised read of next_taken (make tsan).
local dt = require "downloadtask"
local S = require "spec.support.servers"
local socket = require "socket"

describe("regression: the command list and the ready list share no link", function()
  it("a download submitted right after an abort always starts and ends", function()
    local ng = S.nginx()
    local dir = S.tmpdir()
    local stuck
    for i = 1, 500 do
      local aborted = dt.downloadFile { url = ng.url("1k.bin") }
      aborted:abort()
      local t = dt.downloadFile { url = ng.url("small.txt"), filePath = dir .. "/f" .. i }
      -- poll(0) in a loop: the Lua thread takes the ready list while the engine thread
      -- walks the commands it took
      local deadline = socket.gettime() + 5
      while (t.state == "queued" or t.state == "running") and socket.gettime() < deadline do
        dt.poll(0)
      end
      if t.state ~= "done" then
        stuck = ("iteration %d: the download after the abort is %s after 5 s"):format(i, t.state)
        break
      end
    end
    assert.is_nil(stuck)
    -- what the engine could not lose must still end
    local deadline = socket.gettime() + 5
    while dt.poll(10) > 0 and socket.gettime() < deadline do end
    assert.are.equal(0, dt.poll(0))
  end)
end)
