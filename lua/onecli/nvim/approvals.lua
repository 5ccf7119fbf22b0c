--- Gateway approvals in the editor: `:OneCLI approvals` (the pending
-- requests, to approve or deny one by one) and `:OneCLI approvals watch`
-- (the approvals handler loop, client.approvals:runner, in the background).
--
-- The watch runs the runner inside require("onecli.transport.nvim").run,
-- on a client of its own: each long poll of the gateway waits without
-- blocking the editor, and stopping closes that client, which ends a poll
-- in flight at once. For each pending request it shows the agent, the
-- method and URL, a one-line preview of the body and the time left before
-- the request expires (reference §6.14), then asks through vim.ui.select
-- (approve / deny / decide later), or hands the request to the configured
-- approvals.handler. The handler's coroutine waits for the answer; the
-- runner submits it. "decide later" leaves the request pending on the
-- gateway (the watch does not ask again for it).
--
-- It stops on :OneCLI approvals stop, when setup() is called again, and
-- on VimLeavePre; watching twice says so.

-- luacheck: globals vim

local type, tostring, pcall, require, ipairs, rawget = type, tostring, pcall, require, ipairs, rawget
local fmt, concat = string.format, table.concat

local config = require("onecli.nvim")
local ui = require("onecli.nvim.ui")

local _M = {}

local DEFAULT_PREVIEW = 120
local DEFAULT_LIST_TIMEOUT = 5
local ERROR_REPEAT = 60        -- seconds before the same polling error is shown again
local AUGROUP = "onecli.nvim.approvals"

--- The answers offered for a request, as vim.ui.select items.
_M.CHOICES = { "approve", "deny", "later" }
local LABELS = {
  approve = "approve",
  deny = "deny",
  later = "decide later (leave it pending)",
}

---@class onecli.nvim.ApprovalInfo
---@field id string the approval request's id
---@field agent string the agent: "name (identifier)", or its id
---@field method string the HTTP method the agent used
---@field url string the URL it asked for (without user:password@)
---@field body? string a one-line preview of the body, if it had one
---@field expires_in? number seconds left before the gateway denies it (nil if unknown)
---@field time_left string "expires in 2m 05s", "expired" or "expiry unknown"
---@field prompt string the one-line question vim.ui.select asks
---@field lines string[] everything above, one line each

--- What a pending request shows (see onecli.nvim.ApprovalInfo).
---@param request table a PendingApproval (reference §6.14)
---@param preview_length? integer
---@return onecli.nvim.ApprovalInfo
function _M.describe(request, preview_length)
  local s = ui.str
  local agent = type(request.agent) == "table" and request.agent or {}
  local ident = s(agent.externalId) or s(agent.identifier)
  local who = s(agent.name) and (s(agent.name) .. (ident and (" (" .. ident .. ")") or ""))
              or ident or s(agent.id) or "an unknown agent"
  who = ui.one_line(who, 120)
  local method = ui.one_line(s(request.method) or "?", 16)
  local url = ui.one_line(ui.display_url(s(request.url) or s(request.path) or "?"), 300)
  local body = s(request.bodyPreview)
  if body then
    body = ui.one_line(body, preview_length or DEFAULT_PREVIEW)
  end
  local time_left, left = ui.time_left(request.expiresAt)
  local id = ui.one_line(s(request.id) or "?", 80)
  local lines = {
    "approval request " .. id,
    "agent:   " .. who,
    "request: " .. method .. " " .. url,
  }
  if body then
    lines[#lines + 1] = "body:    " .. body
  end
  lines[#lines + 1] = "time:    " .. time_left
  return {
    id = id, agent = who, method = method, url = url, body = body,
    expires_in = left, time_left = time_left, lines = lines,
    prompt = fmt("Approve %s %s for %s? (%s)", method, url, who, time_left),
  }
end

local function notify(msg, level)
  config.notify(msg, level)
end

local function approvals_options()
  return config.options().approvals
end

---------------------------------------------------------------------------
-- :OneCLI approvals: the pending requests now

-- Approve, deny or copy the id of one listed request (in a coroutine).
local function list_actions(request)
  local info = _M.describe(request, approvals_options().preview_length)
  notify(concat(info.lines, "\n"))
  local action = ui.select({ "approve", "deny", "copy id" },
                           { prompt = info.prompt, kind = "onecli.approval" })
  if action == "copy id" then
    notify(fmt("copied %s to %s", info.id, ui.copy(request.id)))
  elseif action == "approve" or action == "deny" then
    local _, err = config.client().approvals:decide(request.id, action,
      { raise = false, project_id = approvals_options().project_id })
    if err then
      config.error(err, fmt("%s %s %s", action == "approve" and "approving" or "denying",
                            info.method, info.url))
      return
    end
    notify(fmt("%s %s %s", action == "approve" and "approved" or "denied", info.method, info.url))
  end
end

--- Lists the pending approval requests (must run inside
-- onecli.transport.nvim.run: it waits up to approvals.list_timeout seconds
-- for one to come). Returns the requests shown, or nil, err.
---@return table[]? requests
---@return any err
function _M.list()
  local o = approvals_options()
  local wait = o.list_timeout or DEFAULT_LIST_TIMEOUT
  local res, err = config.client().approvals:pending({}, {
    raise = false, timeout = wait, max_retries = 0, project_id = o.project_id,
  })
  local requests
  if err and err.type == "timeout_error" then
    requests = {}         -- the gateway held the poll: nothing is pending
  elseif err then
    config.error(err, "listing pending approvals")
    return nil, err
  else
    requests = type(res) == "table" and type(res.requests) == "table" and res.requests or {}
  end
  if #requests == 0 then
    notify("no pending approval requests")
    return requests
  end
  local lines = {}
  for i, r in ipairs(requests) do
    local info = _M.describe(r, o.preview_length)
    lines[i] = fmt("%s %s %s by %s, %s", info.id, info.method, info.url, info.agent, info.time_left)
  end
  local function act(request)
    require("onecli.transport.nvim").run(function() list_actions(request) end, function(ok, e)
      if not ok then config.error(e) end
    end)
  end
  if config.options().list == "select" then
    local line_of = {}
    for i, r in ipairs(requests) do
      line_of[r] = lines[i]
    end
    local request = ui.select(requests, {
      prompt = "OneCLI pending approvals", kind = "onecli.approvals",
      format_item = function(r) return line_of[r] or "?" end,
    })
    if request then
      list_actions(request)
    end
  else
    ui.scratch("onecli://approvals", lines, function(lnum)
      if requests[lnum] then act(requests[lnum]) end
    end)
  end
  return requests
end

---------------------------------------------------------------------------
-- :OneCLI approvals watch

local watcher = nil      -- the running watch, if any

--- Whether a watch runs.
---@return boolean
function _M.is_watching()
  return watcher ~= nil
end

--- The running watch's counts (polls, handled, approved, denied, skipped,
-- expired, errors), or nil.
---@return table?
function _M.stats()
  return watcher and watcher.runner and watcher.runner.stats or nil
end

-- After a decision was handed to the runner: what became of it (the
-- runner's stop hook runs once the decision call is over).
local function report_outcome(w)
  local o = w.outcome
  if not o then
    return
  end
  w.outcome = nil
  local st = w.runner.stats
  local what = o.info.method .. " " .. o.info.url
  if st.approved > o.approved then
    notify("approved " .. what)
  elseif st.denied > o.denied then
    notify("denied " .. what)
  elseif st.expired > o.expired then
    notify(what .. ": the request expired (or was decided elsewhere) before the decision",
           vim.log.levels.WARN)
  end                    -- else: on_error has shown the failure
end

-- The runner's handler: shows the request and waits for the answer.
local function handler_for(w, o)
  return function(request)
    if w.stopped then
      return nil
    end
    local info = _M.describe(request, o.preview_length)
    local decision
    if o.handler then
      decision = ui.await(function(done)
        w.cancel = done
        local answer = o.handler(request, done, info)
        if answer ~= nil then
          done(answer)
        end
      end)
    else
      notify(concat(info.lines, "\n"))
      local choice = ui.await(function(done)
        w.cancel = done
        vim.ui.select(_M.CHOICES, {
          prompt = info.prompt,
          kind = "onecli.approval",
          format_item = function(c) return LABELS[c] or tostring(c) end,
        }, done)
      end)
      if choice == "approve" or choice == "deny" then
        decision = choice
      end
    end
    w.cancel = nil
    if w.stopped then
      return nil
    end
    if decision == nil then
      notify(fmt("left %s %s undecided (%s)", info.method, info.url, info.time_left))
    else
      local st = w.runner.stats
      w.outcome = { info = info, approved = st.approved, denied = st.denied, expired = st.expired }
    end
    return decision
  end
end

local function on_error_for(w)
  return function(err)
    if w.stopped then
      return         -- the poll in flight failed because we stopped it
    end
    local msg = config.redact(err)
    local now = os.time()
    if msg ~= w.last_error or now - (w.last_error_at or 0) >= ERROR_REPEAT then
      w.last_error, w.last_error_at = msg, now
      config.error(msg, "approvals")
    end
  end
end

--- Starts watching the gateway's pending requests in the background.
-- Returns true when it started (false: already watching, or the client
-- could not be made).
---@return boolean
function _M.watch()
  if watcher then
    notify("already watching approvals (:OneCLI approvals stop ends it)", vim.log.levels.WARN)
    return false
  end
  if _VERSION == "Lua 5.1" and rawget(_G, "jit") == nil then
    -- the runner calls the handler inside pcall, and the handler waits
    -- for the answer by yielding: PUC Lua 5.1 cannot yield across pcall
    notify("watching approvals needs a Neovim built with LuaJIT", vim.log.levels.ERROR)
    return false
  end
  local o = approvals_options()
  local ok, client = pcall(config.new_client)
  if not ok then
    config.error(client, "watching approvals")
    return false
  end
  local w = { client = client, stopped = false }
  local runner_opts = {
    on_error = on_error_for(w),
    stop = function()
      report_outcome(w)
      return w.stopped
    end,
    project_id = o.project_id,
    backoff_base = o.backoff_base,
    backoff_max = o.backoff_max,
  }
  local made, runner = pcall(client.approvals.runner, client.approvals, handler_for(w, o), runner_opts)
  if not made then
    client:close()
    config.error(runner, "watching approvals")
    return false
  end
  w.runner = runner
  watcher = w
  local group = vim.api.nvim_create_augroup(AUGROUP, { clear = true })
  vim.api.nvim_create_autocmd("VimLeavePre", {
    group = group,
    desc = "OneCLI: stop watching approvals",
    callback = function()
      if watcher then
        _M.stop("Neovim is exiting")
      end
    end,
  })
  notify("watching approval requests (:OneCLI approvals stop ends it)")
  require("onecli.transport.nvim").run(function()
    return runner:run()
  end, function(done_ok, err)
    if not done_ok and not w.stopped then
      config.error(err, "the approvals watch failed")
    end
    if watcher == w then       -- ended by itself (not by stop)
      watcher = nil
      pcall(vim.api.nvim_del_augroup_by_name, AUGROUP)
    end
    w.stopped = true
    client:close()
  end)
  return true
end

--- Stops the watch: a question open is left unanswered (the request stays
-- pending), a poll in flight is ended. Returns false if none ran.
---@param reason? string said in the message
---@return boolean
function _M.stop(reason)
  local w = watcher
  if not w then
    notify("not watching approvals")
    return false
  end
  watcher = nil
  w.stopped = true
  w.runner:stop()
  pcall(vim.api.nvim_del_augroup_by_name, AUGROUP)
  if w.cancel then
    w.cancel(nil)
  end
  w.client:close()
  local st = w.runner.stats
  notify(fmt("stopped watching approvals (%d approved, %d denied)%s", st.approved, st.denied,
             reason and ("; " .. reason) or ""))
  return true
end

return _M
