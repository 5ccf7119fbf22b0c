-- busted output handler: busted's stock TAP, plus the name of each skipped
-- test.
--
--   busted -o .ci/busted-tap.lua
--
-- Stock busted prints a pending test as `ok N - # SKIP <message>`: when the
-- test called pending("reason"), its name is not on the line. This handler
-- runs the stock one unchanged and, after each such line, adds a TAP
-- comment naming the test:
--
--   ok 12 - # SKIP spec/support/net.lua:76: to-be-closed variables are Lua 5.4 only
--   # skipped test: core.new_transport is closed by <close> on Lua 5.4
--
-- .ci/tap-summary.lua reads it to list skipped tests by name.
return function(options)
  local busted = require("busted")
  local tap = require("busted.outputHandlers.TAP")(options)

  -- subscribed after the stock handler, so it runs after the "ok" line
  busted.subscribe({ "test", "end" }, function(element, _, status)
    if status == "pending" then
      local name = tap.getFullName(element):gsub("%s*\n%s*", " ")
      io.write("# skipped test: " .. name .. "\n")
      io.flush()
    end
    return nil, true
  end, { predicate = tap.cancelOnPending })

  return tap
end
