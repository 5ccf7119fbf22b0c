--- The approvals handler loop.
--
--   local runner = client.approvals:runner(function(request, runner)
--     if request.method == "GET" then return "approve" end
--     return "deny"               -- or nil: leave it for a human
--   end, { max_polls = 10 })
--   runner:run()                  -- or runner:step() from an event loop
--
-- Pending requests come from the gateway's long poll (GET
-- /v1/approvals/pending, held up to ~30 s when nothing is pending). The
-- handler is called once per request; what it returns is submitted
-- ("approve"/"deny", true/false; nil leaves the request undecided). A
-- request is never handed to the handler again while it is in flight, nor
-- after it was left undecided (it is excluded from the next polls until it
-- expires). A handler that raises gets the request again on a later poll;
-- its failure goes to on_error(err, request) and to the client's log (at
-- "error"; to stderr, ngx.log or Neovim's log file when the client logs
-- nothing and there is no on_error), naming the request: id, method, URL
-- without its query, agent.
-- Failures back off exponentially. stop() ends the loop after the current
-- step (a poll that is already waiting finishes first).

local core = require("onecli.core")
local client_mod = require("onecli.client")
local observe = require("onecli.observe")
local keys = require("onecli.keys")

local type, pairs, ipairs, pcall, error, tostring, tonumber, setmetatable =
      type, pairs, ipairs, pcall, error, tostring, tonumber, setmetatable
local concat, sort = table.concat, table.sort

local _M = { _VERSION = core._VERSION }

local Runner = {}
Runner.__index = Runner
Runner.__name = "onecli.ApprovalRunner"

local DECISIONS = { approve = "approve", deny = "deny", [true] = "approve", [false] = "deny" }
local OPTIONS = {
  max_polls = "number", stop = "function", on_error = "function",
  project_id = "string", backoff_base = "number", backoff_max = "number",
}

function _M.runner(ns, handler, opts)
  if type(handler) ~= "function" then
    error("onecli: approvals.runner: handler must be a function", 2)
  end
  opts = opts or {}
  if type(opts) ~= "table" then
    error("onecli: approvals.runner: options must be a table", 2)
  end
  for k, v in pairs(opts) do
    if OPTIONS[k] == nil then
      error("onecli: approvals.runner: unknown option '" .. tostring(k) .. "'", 2)
    elseif type(v) ~= OPTIONS[k] then
      error("onecli: approvals.runner: option '" .. k .. "' must be a " .. OPTIONS[k], 2)
    end
  end
  local client = ns._client
  return setmetatable({
    client = client,
    handler = handler,
    opts = opts,
    in_flight = {},      -- id -> true while the handler or the decision runs
    skipped = {},        -- id -> expiresAt: left undecided, excluded from polls
    failures = 0,
    stopped = false,
    stats = { polls = 0, handled = 0, approved = 0, denied = 0, skipped = 0,
              expired = 0, errors = 0 },
  }, Runner)
end

function Runner:stop()
  self.stopped = true
end

-- Stopped by stop() or the stop option (max_polls aside).
function Runner:_stopped()
  return self.stopped or (self.opts.stop ~= nil and self.opts.stop() and true) or false
end

function Runner:done()
  if self:_stopped() then
    return true
  end
  return self.opts.max_polls ~= nil and self.stats.polls >= self.opts.max_polls
end

-- A request in a log line: its id, method, URL without the query (an
-- agent's URL may carry a token there) and agent; never its body.
local function describe(request)
  if type(request) ~= "table" then
    return "a request"
  end
  local url = type(request.url) == "string" and request.url or "?"
  local bare = url:match("^([^?#]*)")
  if bare ~= url then
    bare = bare .. "?..."
  end
  local agent = type(request.agent) == "table" and request.agent or {}
  local who = agent.name or agent.identifier or agent.externalId or agent.id
  return ("request %s (%s %s%s)"):format(tostring(request.id), tostring(request.method or "?"),
    bare, who and (", agent " .. tostring(who)) or "")
end

-- Counts a failure, hands it to on_error, and logs it: a failing handler
-- (or a decision the gateway refused) at "error" (through the host's
-- default sink when the client logs nothing: never silent), a failed poll
-- at "warn".
function Runner:_error(err, request)
  self.stats.errors = self.stats.errors + 1
  if self.opts.on_error then
    self.opts.on_error(err, request)
  end
  local client = self.client
  if request == nil then
    observe.log(client, "warn", "onecli: approvals: polling failed: " .. tostring(err))
    return
  end
  local line = "onecli: approvals: handling " .. describe(request) .. " failed: " .. tostring(err)
  if client._logger then
    observe.log(client, "error", line)
  elseif not self.opts.on_error then
    observe.default_sink()(core.redact(line:sub(1, 2048), keys.get(client)), "error")
  end
end

function Runner:_backoff()
  self.failures = self.failures + 1
  local delay = core.backoff(self.failures, {
    base = self.opts.backoff_base or self.client.backoff_base,
    max = self.opts.backoff_max or self.client.backoff_max,
  })
  self.client:_sleep_now()(delay)
end

-- ids to leave out of the next poll
function Runner:_exclude()
  local ids = {}
  local now = os.time()
  for id in pairs(self.in_flight) do
    ids[#ids + 1] = id
  end
  for id, expires in pairs(self.skipped) do
    if type(expires) == "number" and expires < now then
      self.skipped[id] = nil        -- expired on the gateway too: forget it
    else
      ids[#ids + 1] = id
    end
  end
  sort(ids)
  return #ids > 0 and concat(ids, ",") or nil
end

local function epoch(iso)
  local y, mo, d, h, mi, s = tostring(iso):match("^(%d+)-(%d+)-(%d+)T(%d+):(%d+):(%d+)")
  if not y then
    return true
  end
  -- os.time reads the fields as local time; correct by the local offset
  local t = os.time({ year = tonumber(y), month = tonumber(mo), day = tonumber(d),
                     hour = tonumber(h), min = tonumber(mi), sec = tonumber(s) })
  local utc = os.time(os.date("!*t", t))
  return t + (t - utc)
end

-- Hands one request to the handler and submits the decision.
function Runner:_handle(request)
  local id = request.id
  self.in_flight[id] = true
  self.stats.handled = self.stats.handled + 1
  local ok, answer = pcall(self.handler, request, self)
  if not ok then
    self.in_flight[id] = nil        -- not decided: a later poll hands it again
    self:_error(answer, request)
    return
  end
  local decision = DECISIONS[answer]
  if answer == nil then
    self.skipped[id] = epoch(request.expiresAt)
    self.stats.skipped = self.stats.skipped + 1
  elseif not decision then
    self.skipped[id] = epoch(request.expiresAt)
    self:_error("onecli: approvals handler returned " .. tostring(answer)
                .. ' (expected "approve", "deny", true, false or nil)', request)
  else
    local res, err = self.client.approvals:decide(id, decision,
      { raise = false, project_id = self.opts.project_id })
    if res then
      self.stats[decision == "approve" and "approved" or "denied"] =
        self.stats[decision == "approve" and "approved" or "denied"] + 1
    elseif err.status == 410 or err.status == 404 then
      self.stats.expired = self.stats.expired + 1   -- expired or already gone
    else
      self:_error(err, request)
      self.in_flight[id] = nil
      return
    end
  end
  self.in_flight[id] = nil
end

--- One poll and the handling of what it returned. Returns true when the
-- runner is done.
function Runner:step()
  if self:done() then
    return true
  end
  self.stats.polls = self.stats.polls + 1
  local query = {}
  local exclude = self:_exclude()
  if exclude then
    query.exclude = exclude
  end
  local res, err = self.client.approvals:pending(query,
    { raise = false, project_id = self.opts.project_id })
  if not res then
    self:_error(err)
    self:_backoff()
    return self:done()
  end
  self.failures = 0
  local failed_before = self.stats.errors
  for _, request in ipairs(type(res) == "table" and res.requests or {}) do
    -- (the last poll that max_polls allows is still handled)
    if self:_stopped() then
      break
    end
    if type(request) == "table" and request.id and not self.in_flight[request.id]
        and not self.skipped[request.id] then
      self:_handle(request)
    end
  end
  if self.stats.errors > failed_before then
    self:_backoff()
  end
  return self:done()
end

--- Polls and handles until stopped; returns the stats.
function Runner:run()
  while not self:step() do -- luacheck: ignore 542
  end
  return self.stats
end

client_mod.extend("approvals", "runner", _M.runner)
client_mod.extend("approvals", "run", function(ns, handler, opts)
  return _M.runner(ns, handler, opts):run()
end)

return _M
