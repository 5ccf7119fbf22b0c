-- Running a plain luv loop in the specs (luv_spec, agent_gateway_spec).
--
--   local loop = require("support.luv")   -- only where luv is installed
--   loop.run_until(function() return done end, 10)
local uv = require("luv")

local _M = {}

--- Runs the loop until done() or `seconds` have passed (a guard against a
-- hang), lets closing handles close, and fails the test unless done().
function _M.run_until(done, seconds)
  local guard, expired = uv.new_timer(), false
  uv.update_time()      -- (the loop may not have run for a while)
  guard:start(math.floor(seconds * 1000), 0, function() expired = true end)
  while not done() and not expired do
    uv.run("once")
  end
  guard:close()
  uv.run("nowait")      -- let closing handles close
  assert(done(), "the loop did not finish in " .. seconds .. " s")
end

return _M
