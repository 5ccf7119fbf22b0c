-- Errors: branching on err.type and err.status, errors as values (nil, err)
-- or raised, and what misuse looks like. Against a v2 server.
--
--   ONECLI_URL=http://localhost:10256 ONECLI_API_KEY=oc_... lua5.4 examples/errors.lua
local onecli = require("onecli")

-- raise = false: every method returns nil, err instead of raising
local client = onecli.new({ raise = false })

-- What to tell a user, by type: branch on type and status, never on text.
local function advice(err)
  if err.type == "authentication_error" then
    return "check ONECLI_API_KEY (and ONECLI_PROJECT_ID with an organization key)"
  elseif err.type == "not_found_error" then
    return "it does not exist (any more)"
  elseif err.status == 410 then
    return "this server retired the route: " .. err.message
  elseif err.type == "invalid_request_error" or err.type == "validation_error" then
    return "fix the request: " .. err.message
  elseif err.retryable then
    return "temporary (" .. err.type .. "), try again later"
  end
  return "unexpected: " .. tostring(err)
end

-- 404 for a missing resource
local agent, err = client.agents:get("00000000-0000-0000-0000-000000000000")
assert(agent == nil)
print(("get a missing agent     -> %d %s: %s"):format(err.status, err.type, advice(err)))

-- 400 for invalid input; the server's message comes verbatim
local _, invalid = client.agents:create({ name = "Bad", identifier = "Not Valid!" })
print(("create a bad identifier -> %d %s: %s"):format(invalid.status, invalid.type, advice(invalid)))

-- 409 for a duplicate (agents:ensure settles that one for you)
local existing = client.agents:ensure({ name = "Errors demo", identifier = "errors-demo" })
local _, conflict = client.agents:create({ name = "Again", identifier = "errors-demo" })
print(("create a duplicate      -> %d %s: %s"):format(conflict.status, conflict.type, conflict.message))

-- 410 for a route v2 retired (v1 rules became organization policy)
local _, gone = client.rules:list()
print(("list v1 rules on v2     -> %d: %s"):format(gone.status, advice(gone)))

-- No HTTP answer at all: no status, and request_sent = false when the
-- request provably never left (so even a POST could be retried safely).
local offline = onecli.new({ url = "http://127.0.0.1:9", raise = false, max_retries = 0,
                             connect_timeout = 2 })
local _, down = offline:health()
print(("no server               -> %s (status %s, retryable %s, request sent %s)"):format(
  down.type, tostring(down.status), tostring(down.retryable), tostring(down.request_sent)))
offline:close()

-- tostring(err) is one line, with the request id of v2 servers; the API
-- key never appears in it
print("as one line: " .. tostring(conflict))

-- The default is to raise. pcall catches the error object...
local strict = onecli.new()
local ok, raised = pcall(strict.agents.get, strict.agents, "00000000-0000-0000-0000-000000000000")
assert(not ok and onecli.is_error(raised))
print("raised: " .. raised.type .. ", attempts " .. raised.attempts)

-- ...and onecli.try turns it into nil, err for one call
local agents, try_err = onecli.try(strict.agents.list, strict.agents)
print("onecli.try: " .. (agents and (#agents .. " agents") or try_err.type))

-- Misuse (a missing argument, a wrong type, an unknown option) raises a
-- plain message pointing at the caller, never an error object.
local ok2, msg = pcall(function() return strict.agents:get() end)
assert(not ok2 and not onecli.is_error(msg))
print("misuse: " .. msg)

client.agents:delete(existing.id)
client:close()
strict:close()
