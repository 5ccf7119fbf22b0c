-- Run by spec/nvim/command_spec.lua inside `nvim --headless` (Neovim's
-- LuaJIT), not by busted: drives :OneCLI with vim.ui.select and
-- vim.ui.input stubbed. Environment:
--   ONECLI_NVIM_ROOT      the repository root
--   ONECLI_NVIM_OUT       where to write the observations (a Lua literal)
--   ONECLI_NVIM_SCENARIO  which scenario to run (see SCENARIOS below)
--   ONECLI_URL, ONECLI_API_KEY   the stand-in server (read by onecli.new)
--   ONECLI_CONTROL_URL    the stand-in's control API (origin .. "/__control")
--   ONECLI_CLOSED_URL     a URL on a port nothing listens on
-- Every scenario records what it sees in `obs`; then the file is written
-- and Neovim quits. Each wait is bounded, and a watchdog quits after 45 s
-- whatever happens. The API key is never written to the observations:
-- only whether it was found in a buffer, a message or a notification.

-- luacheck: globals vim

local observe = dofile(os.getenv("ONECLI_NVIM_ROOT") .. "/spec/nvim/observe.lua")
local obs, finish, root = observe.obs, observe.finish, observe.root
local control_url = os.getenv("ONECLI_CONTROL_URL")

local uv = vim.loop
local WATCHDOG_SECONDS = 45
local WAIT_MS = 15000

-- Runs the loop until pred() is true; raises after ms (default 15 s).
local function wait_until(what, pred, ms)
  if not vim.wait(ms or WAIT_MS, pred, 10) then
    error("timed out waiting for " .. what, 2)
  end
end

---------------------------------------------------------------------------
-- what the user sees: notifications (vim.notify still shows them, so
-- they reach :messages too), and the stubbed vim.ui.select / vim.ui.input

local notes = {}
obs.notes = notes
local original_notify = vim.notify
vim.notify = function(msg, level, opts)
  notes[#notes + 1] = { msg = tostring(msg), level = level }
  return original_notify(msg, level, opts)
end

local function find_note(text, level)
  for _, n in ipairs(notes) do
    if n.msg:find(text, 1, true) and (level == nil or n.level == level) then
      return n
    end
  end
  return nil
end

local function wait_note(text, level, ms)
  wait_until("a notification with '" .. text .. "'", function()
    return find_note(text, level) ~= nil
  end, ms)
  return find_note(text, level)
end

-- vim.ui.select: each call is recorded (prompt, kind, the items as shown)
-- and answered by the first of `answers` whose `match` is in the prompt:
-- { match = "...", pick = function(items, shown) -> item, async = bool }.
-- An async answer comes 20 ms later (as a floating picker's would); an
-- answer of `false` never comes (the callback is kept in obs_prompts).
local prompts = {}
obs.prompts = prompts
local answers = {}
local pending_callbacks = {}
vim.ui.select = function(items, opts, on_choice)
  opts = opts or {}
  local shown = {}
  for i, item in ipairs(items) do
    shown[i] = opts.format_item and opts.format_item(item) or tostring(item)
  end
  prompts[#prompts + 1] = { prompt = opts.prompt, kind = opts.kind, items = shown }
  for i, a in ipairs(answers) do
    if tostring(opts.prompt or ""):find(a.match, 1, true) then
      if a.once then
        table.remove(answers, i)
      end
      if a.never then
        pending_callbacks[#pending_callbacks + 1] = { items = items, cb = on_choice }
        return
      end
      local choice = a.pick(items, shown)
      if a.async then
        vim.defer_fn(function() on_choice(choice) end, 20)
      else
        on_choice(choice)
      end
      return
    end
  end
  on_choice(nil)      -- nothing matched: cancelled
end

local inputs = {}
obs.inputs = inputs
local input_answers = {}
vim.ui.input = function(opts, on_confirm)
  inputs[#inputs + 1] = { prompt = opts.prompt, default = opts.default }
  local answer = table.remove(input_answers, 1)
  vim.defer_fn(function() on_confirm(answer) end, 20)
end

local function item_named(name)
  return function(items)
    for _, x in ipairs(items) do
      if x == name then return x end
    end
    return nil
  end
end

local function answer(match, pick, extra)
  local a = { match = match, pick = type(pick) == "string" and item_named(pick) or pick }
  for k, v in pairs(extra or {}) do a[k] = v end
  answers[#answers + 1] = a
end

local function prompt_with(text)
  for _, p in ipairs(prompts) do
    if tostring(p.prompt or ""):find(text, 1, true) then
      return p
    end
  end
  return nil
end

-- Lines of the buffer named name (nil if there is none).
local function buffer_lines(name)
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_valid(buf) and vim.api.nvim_buf_get_name(buf) == name then
      return vim.api.nvim_buf_get_lines(buf, 0, -1, false), buf
    end
  end
  return nil
end

-- Whether the key shows in any buffer, in :messages or in a notification.
local function scan_for_key(key)
  local found = {}
  if not key or key == "" then
    return found
  end
  for _, buf in ipairs(vim.api.nvim_list_bufs()) do
    if vim.api.nvim_buf_is_loaded(buf) then
      local text = table.concat(vim.api.nvim_buf_get_lines(buf, 0, -1, false), "\n")
      if text:find(key, 1, true) or vim.api.nvim_buf_get_name(buf):find(key, 1, true) then
        found[#found + 1] = "buffer " .. buf
      end
    end
  end
  if vim.fn.execute("messages"):find(key, 1, true) then
    found[#found + 1] = ":messages"
  end
  for _, n in ipairs(notes) do
    if n.msg:find(key, 1, true) then
      found[#found + 1] = "notification"
      break
    end
  end
  for _, p in ipairs(prompts) do
    if tostring(p.prompt):find(key, 1, true) then
      found[#found + 1] = "prompt"
      break
    end
  end
  return found
end

local function load_plugin()
  vim.cmd("source " .. vim.fn.fnameescape(root .. "/plugin/onecli.lua"))
  vim.cmd("source " .. vim.fn.fnameescape(root .. "/plugin/onecli.lua"))   -- guarded
  obs.command_defined = vim.fn.exists(":OneCLI") == 2
  obs.loaded_before_use = package.loaded["onecli.nvim.command"] ~= nil
    or package.loaded["onecli.core"] ~= nil
end

-- The stand-in's control API, from inside Neovim (a client of its own).
local control
local function enqueue(body)
  control = control or require("onecli.transport.nvim").client{
    url = control_url, getenv = function() end, max_retries = 0,
  }
  local done, result, failure = false, nil, nil
  control:request("POST", "/approvals", { body = body, callback = function(res, err)
    result, failure, done = res, err, true
  end })
  wait_until("the control API", function() return done end)
  assert(result, "enqueue failed: " .. tostring(failure))
  return result
end

local SCENARIOS = {}

---------------------------------------------------------------------------
-- :OneCLI agents in a scratch buffer; rename, delete and copy id from it

function SCENARIOS.agents()
  load_plugin()
  require("onecli").setup{ url = os.getenv("ONECLI_URL"), max_retries = 0 }
  vim.cmd("OneCLI agents")
  obs.returned_at_once = buffer_lines("onecli://agents") == nil
  wait_until("the agents buffer", function() return buffer_lines("onecli://agents") ~= nil end)
  local lines, buf = buffer_lines("onecli://agents")
  obs.lines = lines
  obs.buftype = vim.bo[buf].buftype
  obs.modifiable = vim.bo[buf].modifiable
  obs.current_is_list = vim.api.nvim_get_current_buf() == buf

  local function line_of(text)
    for i, l in ipairs(buffer_lines("onecli://agents") or {}) do
      if l:find(text, 1, true) then return i end
    end
    return nil
  end

  -- <CR> on Alpha: rename it (the actions menu answers later, as a picker would)
  answer("agent Alpha", "rename", { async = true, once = true })
  input_answers[1] = "Alpha Renamed"
  vim.api.nvim_win_set_cursor(0, { assert(line_of("Alpha")), 0 })
  vim.cmd("normal \r")
  wait_note("renamed agent Alpha")
  wait_until("the refreshed list", function() return line_of("Alpha Renamed") ~= nil end)
  obs.after_rename = buffer_lines("onecli://agents")

  -- <CR> on Bravo: delete, confirmed
  answer("agent Bravo", "delete", { once = true })
  answer("Delete agent Bravo", "yes", { async = true, once = true })
  vim.api.nvim_win_set_cursor(0, { assert(line_of("Bravo")), 0 })
  vim.cmd("normal \r")
  wait_note("deleted agent Bravo")
  wait_until("Bravo gone from the list", function() return line_of("Bravo") == nil end)
  obs.after_delete = buffer_lines("onecli://agents")

  -- <CR> on Charlie: delete, but answer no
  answer("agent Charlie", "delete", { once = true })
  answer("Delete agent Charlie", "no", { once = true })
  vim.api.nvim_win_set_cursor(0, { assert(line_of("Charlie")), 0 })
  vim.cmd("normal \r")
  wait_until("the confirmation", function() return prompt_with("Delete agent Charlie") ~= nil end)
  vim.wait(300, function() return false end, 10)
  obs.after_no = buffer_lines("onecli://agents")

  -- copy id
  answer("agent Charlie", "copy id", { once = true })
  vim.cmd("normal \r")
  wait_note("copied ")
  obs.register = vim.fn.getreg('"')
  obs.charlie_line = (buffer_lines("onecli://agents") or {})[line_of("Charlie")]
  obs.key_found = scan_for_key(os.getenv("ONECLI_API_KEY"))
  finish()
end

---------------------------------------------------------------------------
-- lists through vim.ui.select, secrets and rules, health, errors

function SCENARIOS.select()
  load_plugin()
  require("onecli").setup{ list = "select", max_retries = 0 }
  answer("OneCLI secrets", function(items, shown)
    obs.secret_items = shown
    return items[1]
  end, { once = true })
  answer("secret Token", "rename", { once = true, async = true })
  input_answers[1] = "Token2"
  vim.cmd("OneCLI secrets")
  wait_note("renamed secret Token")

  -- v2 answers 410 on /rules: the organization's policy rules are listed
  vim.cmd("OneCLI rules")
  wait_until("the rules answer", function()
    return find_note("no policy rules") ~= nil or prompt_with("OneCLI policy rules") ~= nil
      or find_note("listing rules") ~= nil
  end)
  obs.rules_note = (find_note("rules") or {}).msg

  vim.cmd("OneCLI health")
  obs.health = wait_note("status ok").msg

  -- an ERROR notification inside a command is an error of the command
  obs.bogus_raised = not pcall(vim.cmd, "OneCLI bogus")
  obs.unknown = find_note("unknown subcommand 'bogus'", vim.log.levels.ERROR)
  pcall(vim.cmd, "OneCLI approvals bogus")
  obs.unknown_approvals = find_note("unknown subcommand 'approvals bogus'", vim.log.levels.ERROR)
  vim.cmd("OneCLI")
  obs.usage = find_note("usage: :OneCLI")

  -- a wrong key: the error is shown, the key is not
  local wrong = "oc_" .. string.rep("5", 64)
  observe.keys[#observe.keys + 1] = wrong
  require("onecli").setup{ api_key = wrong, max_retries = 0 }
  vim.cmd("OneCLI agents")
  obs.auth_error = wait_note("authentication_error", vim.log.levels.ERROR).msg
  obs.key_found = scan_for_key(os.getenv("ONECLI_API_KEY"))
  obs.wrong_key_found = scan_for_key(wrong)
  finish()
end

---------------------------------------------------------------------------
-- completion and setup's checks

function SCENARIOS.complete()
  load_plugin()
  obs.top = vim.fn.getcompletion("OneCLI ", "cmdline")
  obs.prefix = vim.fn.getcompletion("OneCLI ap", "cmdline")
  obs.approvals = vim.fn.getcompletion("OneCLI approvals ", "cmdline")
  obs.approvals_w = vim.fn.getcompletion("OneCLI approvals w", "cmdline")
  obs.third = vim.fn.getcompletion("OneCLI approvals watch ", "cmdline")
  obs.loaded_after_completion = package.loaded["onecli.core"] ~= nil
  local function setup_error(opts)
    local ok, err = pcall(require("onecli").setup, opts)
    return ok and "no error" or tostring(err)
  end
  obs.errors = {
    unknown = setup_error({ bogus = 1 }),
    list = setup_error({ list = "window" }),
    handler = setup_error({ approvals = { handler = "approve" } }),
    approvals_unknown = setup_error({ approvals = { colour = "red" } }),
    transport = setup_error({ transport = {} }),
    url = setup_error({ url = "ftp://x" }),
    timeout = setup_error({ timeout = -1 }),
    not_table = setup_error("x"),
    poll = setup_error({ poll_interval = 0 }),
  }
  -- an error raised after waiting for the user reaches run's `done`
  answer("pick one", "b", { async = true })
  local ui = require("onecli.nvim.ui")
  require("onecli.transport.nvim").run(function()
    obs.picked = ui.select({ "a", "b" }, { prompt = "pick one" })
    error("raised after the answer")
  end, function(ok, err)
    obs.after_await = { ok = ok, err = tostring(err) }
  end)
  wait_until("run's done", function() return obs.after_await ~= nil end)
  obs.ok = setup_error({ url = os.getenv("ONECLI_URL"), timeout = 20,
                         approvals = { preview_length = 10 } })
  finish()
end

---------------------------------------------------------------------------
-- :OneCLI approvals watch against the gateway queue

function SCENARIOS.watch()
  load_plugin()
  require("onecli").setup{ max_retries = 0, approvals = { preview_length = 40 } }
  local a = require("onecli.nvim.approvals")
  -- a 10 ms timer: the editor's loop keeps running while the poll waits
  local ticks = 0
  local ticker = uv.new_timer()
  ticker:start(10, 10, function() ticks = ticks + 1 end)

  answer("approve-me", "approve", { async = true })
  answer("deny-me", "deny")
  answer("later-me", "later", { async = true })
  answer("ignored-me", nil, { never = true })

  vim.cmd("OneCLI approvals watch")
  obs.watching = a.is_watching()
  wait_until("a first poll", function() return ((a.stats() or {}).polls or 0) >= 1 end)
  local t0 = uv.hrtime()
  local ticks0 = ticks
  vim.cmd("OneCLI approvals watch")
  obs.twice = find_note("already watching") ~= nil

  -- queued while the long poll waits
  enqueue({ method = "POST", url = "https://api.github.com/repos/o/approve-me", agent = "alpha",
            body = '{"title": "a long title",\n "body": "' .. string.rep("x", 200) .. '"}' })
  wait_note("approved POST https://api.github.com/repos/o/approve-me")
  obs.approve_prompt = prompt_with("approve-me")
  obs.approve_note = (find_note("request: POST https://api.github.com/repos/o/approve-me") or {}).msg
  obs.ticks_during = ticks - ticks0
  obs.seconds_during = (uv.hrtime() - t0) / 1e9

  enqueue({ method = "DELETE", url = "https://user:pw@api.github.com/repos/o/deny-me", agent = "alpha" })
  wait_note("denied DELETE https://api.github.com/repos/o/deny-me")
  obs.deny_prompt = prompt_with("deny-me")

  enqueue({ method = "PUT", url = "https://api.github.com/later-me" })
  wait_note("left PUT https://api.github.com/later-me undecided")

  -- a question nobody answers when the watch stops
  enqueue({ method = "PATCH", url = "https://api.github.com/ignored-me" })
  wait_until("the unanswered question", function() return prompt_with("ignored-me") ~= nil end)
  local stopped_at = uv.hrtime()
  vim.cmd("OneCLI approvals stop")
  obs.stop_seconds = (uv.hrtime() - stopped_at) / 1e9
  obs.watching_after_stop = a.is_watching()
  obs.stop_note = (find_note("stopped watching approvals") or {}).msg
  -- the late answer decides nothing
  for _, p in ipairs(pending_callbacks) do p.cb("approve") end
  vim.wait(500, function() return false end, 10)
  vim.cmd("OneCLI approvals stop")
  obs.stop_twice = find_note("not watching approvals") ~= nil

  -- again, then Neovim exits: VimLeavePre stops it
  vim.cmd("OneCLI approvals watch")
  obs.watching_again = a.is_watching()
  wait_until("a poll of the second watch", function() return ((a.stats() or {}).polls or 0) >= 1 end)
  vim.cmd("doautocmd VimLeavePre")
  obs.watching_after_leave = a.is_watching()
  obs.leave_note = (find_note("Neovim is exiting") or {}).msg
  ticker:stop()
  ticker:close()
  obs.key_found = scan_for_key(os.getenv("ONECLI_API_KEY"))
  finish()
end

-- approvals.handler decides instead of vim.ui.select
function SCENARIOS.handler()
  load_plugin()
  local seen = {}
  obs.seen = seen
  require("onecli").setup{ max_retries = 0, approvals = {
    handler = function(request, decide, info)
      seen[#seen + 1] = { id = request.id, agent = info.agent, method = info.method, url = info.url,
                          time_left = info.time_left, expires_in = info.expires_in, body = info.body }
      if request.method == "GET" then
        vim.defer_fn(function() decide("approve") end, 20)    -- later
      else
        return false                                          -- at once: deny
      end
    end,
  } }
  vim.cmd("OneCLI approvals watch")
  enqueue({ method = "GET", url = "https://example.com/get-me", agent = "alpha" })
  enqueue({ method = "POST", url = "https://example.com/post-me", body = "hello" })
  wait_note("approved GET https://example.com/get-me")
  wait_note("denied POST https://example.com/post-me")
  obs.prompts_count = #prompts
  vim.cmd("OneCLI approvals stop")
  obs.key_found = scan_for_key(os.getenv("ONECLI_API_KEY"))
  finish()
end

-- :OneCLI approvals lists the pending ones; approve one from the list
function SCENARIOS.pending()
  load_plugin()
  require("onecli").setup{ max_retries = 0, approvals = { list_timeout = 2 } }
  vim.cmd("OneCLI approvals")
  wait_note("no pending approval requests")
  enqueue({ method = "POST", url = "https://example.com/listed-1", agent = "alpha" })
  enqueue({ method = "GET", url = "https://example.com/listed-2" })
  vim.cmd("OneCLI approvals")
  wait_until("the approvals buffer", function() return buffer_lines("onecli://approvals") ~= nil end)
  obs.lines = buffer_lines("onecli://approvals")
  answer("listed-1", "approve", { async = true, once = true })
  for i, l in ipairs(obs.lines) do
    if l:find("listed-1", 1, true) then
      vim.api.nvim_win_set_cursor(0, { i, 0 })
    end
  end
  vim.cmd("normal \r")
  wait_note("approved POST https://example.com/listed-1")
  obs.key_found = scan_for_key(os.getenv("ONECLI_API_KEY"))
  finish()
end

-- no plugin/ loaded: setup defines :OneCLI; a server that does not answer
function SCENARIOS.failures()
  obs.defined_before = vim.fn.exists(":OneCLI") == 2
  require("onecli").setup{ url = os.getenv("ONECLI_CLOSED_URL"), max_retries = 0,
                           connect_timeout = 2,
                           approvals = { backoff_base = 0.05, backoff_max = 0.1 } }
  obs.defined_by_setup = vim.fn.exists(":OneCLI") == 2
  vim.cmd("OneCLI agents")
  obs.agents_error = wait_note("listing agents: ", vim.log.levels.ERROR).msg
  local a = require("onecli.nvim.approvals")
  vim.cmd("OneCLI approvals watch")
  wait_until("three failed polls", function() return ((a.stats() or {}).errors or 0) >= 3 end)
  local shown = 0
  for _, n in ipairs(notes) do
    if n.msg:find("OneCLI: approvals: ", 1, true) then shown = shown + 1 end
  end
  obs.watch_errors_shown = shown
  obs.watch_error = (find_note("OneCLI: approvals: ") or {}).msg
  vim.cmd("OneCLI approvals stop")
  obs.watching_after_stop = a.is_watching()
  obs.key_found = scan_for_key(os.getenv("ONECLI_API_KEY"))
  finish()
end

observe.main(SCENARIOS, WATCHDOG_SECONDS)
