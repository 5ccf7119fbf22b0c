-- :OneCLI in a real `nvim --headless` (Debian's Neovim 0.7, LuaJIT) against
-- the local stand-in: lists, actions, completion, setup's checks, and
-- :OneCLI approvals watch against the stand-in's gateway queue. Each test
-- starts Neovim on spec/nvim/command_scenarios.lua with vim.ui.select and
-- vim.ui.input stubbed; the scenario writes what it observed to a file (a
-- Lua literal) and quits; the assertions are here, and what the stand-in
-- recorded (the gateway's decisions) is checked after Neovim exited. The
-- server's URL and key reach Neovim through the environment (an env file
-- sourced by the shell, so the key is on no command line).
local launcher = require("onecli.standin.launcher")
local onecli = require("onecli")
local nvim = require("support.nvim")

local ROOT = nvim.root()
local FILE = "spec/nvim/command_scenarios.lua"

if not nvim.available() then
  describe(":OneCLI", function()
    pending("nvim is not installed (apt-get install -y neovim)")
  end)
  return
end

describe(":OneCLI (nvim --headless)", function()
  local srv, runner, client
  local agents = {}

  -- Runs one scenario of command_scenarios.lua; returns its observations
  -- and Neovim's output.
  local function scenario(name)
    local obs, log = runner:scenario(FILE, name, {
      ONECLI_CONTROL_URL = srv.origin .. "/__control",
    })
    assert.is_nil(obs.key_in_observations)
    assert.are.same({}, obs.key_found or {}, "the API key was shown")
    return obs, log
  end

  local function approvals_by_url()
    local out = {}
    for _, a in ipairs(srv:approvals()) do
      out[a.url] = a
    end
    return out
  end

  local function has_line(lines, text)
    for _, l in ipairs(lines or {}) do
      if l:find(text, 1, true) then return l end
    end
    return nil
  end

  setup(function()
    srv = launcher.start({ mode = "v2" })
    runner = nvim.runner({ root = ROOT, srv = srv })
  end)

  teardown(function()
    if client then client:close() end
    if srv then srv:stop() end
    if runner then runner:cleanup() end
  end)

  before_each(function()
    srv:reset()
    srv:gateway_settings({ poll_hold = 1 })
    if client then client:close() end
    client = onecli.new({ url = srv.url, api_key = srv.api_key, getenv = function() end,
                          max_retries = 0 })
    agents = {}
    for _, name in ipairs({ "Alpha", "Bravo", "Charlie" }) do
      agents[name] = client.agents:create({ name = name, identifier = name:lower() })
    end
  end)

  it("lists the agents in a scratch buffer; renames, deletes (confirmed) and copies an id", function()
    local obs = scenario("agents")
    assert.is_true(obs.command_defined)
    assert.is_false(obs.loaded_before_use)     -- plugin/onecli.lua loads nothing
    assert.is_true(obs.returned_at_once)       -- the list came later, through the loop
    assert.equal("nofile", obs.buftype)
    assert.is_false(obs.modifiable)
    assert.is_true(obs.current_is_list)
    assert.equal(3, #obs.lines, table.concat(obs.lines, "\n"))
    for name, a in pairs(agents) do
      local line = has_line(obs.lines, a.id)
      assert.truthy(line, "no line with the id of " .. name)
      assert.truthy(line:find(name .. " (" .. name:lower() .. ")", 1, true), line)
    end
    -- renamed, through vim.ui.input with the old name proposed
    assert.equal("Alpha", obs.inputs[1].default)
    assert.truthy(has_line(obs.after_rename, agents.Alpha.id .. " Alpha Renamed (alpha)"),
                  table.concat(obs.after_rename, "\n"))
    assert.equal("Alpha Renamed", client.agents:get(agents.Alpha.id).name)
    -- deleted after "yes"; kept after "no"
    assert.is_nil(has_line(obs.after_delete, agents.Bravo.id))
    assert.truthy(has_line(obs.after_no, agents.Charlie.id))
    local ids = {}
    for _, a in ipairs(client.agents:list()) do ids[a.id] = true end
    assert.is_nil(ids[agents.Bravo.id])
    assert.is_true(ids[agents.Charlie.id])
    -- the confirmation and the actions offered
    local actions
    for _, p in ipairs(obs.prompts) do
      if p.prompt:find("agent Charlie", 1, true) and not p.prompt:find("Delete", 1, true) then
        actions = p.items
      end
    end
    assert.are.same({ "copy id", "rename", "delete" }, actions)
    assert.equal(agents.Charlie.id, obs.register)
    assert.truthy(obs.charlie_line:find(agents.Charlie.id, 1, true))
  end)

  it("lists through vim.ui.select with list = \"select\"; rules, health, errors, a wrong key", function()
    local secret = client.secrets:create({ name = "Token", type = "generic", value = "s3cr3t-value",
                                           hostPattern = "api.example.com",
                                           injectionConfig = { headerName = "X-Token" } })
    local obs = scenario("select")
    assert.equal(1, #obs.secret_items)
    assert.truthy(obs.secret_items[1]:find(secret.id, 1, true), obs.secret_items[1])
    assert.truthy(obs.secret_items[1]:find("Token [generic] api.example.com", 1, true))
    assert.equal("Token2", client.secrets:list()[1].name)
    -- v2: /rules is gone, the organization's policy rules are listed (none here)
    assert.truthy(obs.rules_note, "nothing said about rules")
    assert.truthy(obs.rules_note:find("no policy rules", 1, true), obs.rules_note)
    assert.truthy(obs.health:find(srv.url .. ": status ok, version", 1, true), obs.health)
    -- unknown subcommands name the valid ones
    assert.truthy(obs.unknown.msg:find("agents, secrets, rules, approvals, health", 1, true))
    assert.truthy(obs.unknown_approvals.msg:find("approvals watch, approvals stop", 1, true))
    assert.truthy(obs.usage)
    -- a rejected key: an error at ERROR level, without the key
    assert.truthy(obs.auth_error:find("onecli: 401 authentication_error", 1, true), obs.auth_error)
    assert.are.same({}, obs.wrong_key_found)
    assert.falsy(obs.auth_error:find(string.rep("5", 64), 1, true))
  end)

  it("completes the subcommands; setup checks its options", function()
    local obs = scenario("complete")
    assert.are.same({ "agents", "secrets", "rules", "approvals", "health" }, obs.top)
    assert.are.same({ "approvals" }, obs.prefix)
    assert.are.same({ "watch", "stop" }, obs.approvals)
    assert.are.same({ "watch" }, obs.approvals_w)
    assert.are.same({}, obs.third)
    assert.is_false(obs.loaded_after_completion)     -- completing loads no C core
    local e = obs.errors
    assert.matches("onecli.setup: unknown option 'bogus'", e.unknown, 1, true)
    assert.matches("option 'list' must be \"buffer\" or \"select\"", e.list, 1, true)
    assert.matches("option 'approvals.handler' must be a function, got string", e.handler, 1, true)
    assert.matches("unknown option 'approvals.colour'", e.approvals_unknown, 1, true)
    assert.matches("option 'transport'", e.transport, 1, true)
    assert.matches("onecli.setup: ", e.url, 1, true)
    assert.matches("option 'timeout' must be a positive number", e.timeout, 1, true)
    assert.matches("options must be a table", e.not_table, 1, true)
    assert.matches("option 'poll_interval'", e.poll, 1, true)
    assert.equal("no error", obs.ok)
    -- waiting for vim.ui.select inside run(): an error raised afterwards reaches done
    assert.equal("b", obs.picked)
    assert.is_false(obs.after_await.ok)
    assert.matches("raised after the answer", obs.after_await.err, 1, true)
  end)

  it("watches the gateway queue: shows each request, approve and deny reach the gateway, stops", function()
    local obs = scenario("watch")
    assert.is_true(obs.watching)
    assert.is_true(obs.twice)                -- watching twice says so
    -- the request is shown: agent, method, URL, body preview, time left
    local p = obs.approve_prompt
    assert.truthy(p, "no question for the first request")
    assert.equal("onecli.approval", p.kind)
    assert.are.same({ "approve", "deny", "decide later (leave it pending)" }, p.items)
    assert.truthy(p.prompt:find("POST https://api.github.com/repos/o/approve-me", 1, true), p.prompt)
    assert.truthy(p.prompt:find("Alpha (alpha)", 1, true), p.prompt)
    assert.truthy(p.prompt:match("expires in [23]m %d%ds"), p.prompt)
    local note = obs.approve_note
    assert.truthy(note, "the request's details were not shown")
    assert.truthy(note:find("agent:   Alpha (alpha)", 1, true), note)
    assert.truthy(note:match("time:    expires in [23]m %d%ds"), note)
    -- the body: one line, cut to preview_length (40)
    local body = note:match("body:    ([^\n]*)")
    assert.truthy(body, note)
    assert.equal('{"title": "a long title", "body": "xx...', body)
    -- credentials in a URL are not shown
    assert.truthy(obs.deny_prompt.prompt:find("DELETE https://api.github.com/repos/o/deny-me", 1, true))
    -- the editor's loop kept running while polls waited
    assert.is_true(obs.ticks_during >= obs.seconds_during * 10, obs.ticks_during .. " ticks in "
                   .. obs.seconds_during .. " s")
    -- stopping is prompt and says so, also with a question open
    assert.is_false(obs.watching_after_stop)
    assert.is_true(obs.stop_seconds < 0.5)
    assert.truthy(obs.stop_note:find("stopped watching approvals (1 approved, 1 denied)", 1, true),
                  obs.stop_note)
    assert.is_true(obs.stop_twice)
    assert.is_true(obs.watching_again)
    assert.is_false(obs.watching_after_leave)
    assert.truthy(obs.leave_note)

    -- what the gateway recorded
    local by_url = approvals_by_url()
    local approved = by_url["https://api.github.com/repos/o/approve-me"]
    assert.equal("approved", approved.state)
    assert.equal(1, approved.decisions)
    assert.equal("denied", by_url["https://user:pw@api.github.com/repos/o/deny-me"].state)
    assert.equal("pending", by_url["https://api.github.com/later-me"].state)
    local ignored = by_url["https://api.github.com/ignored-me"]
    assert.equal("pending", ignored.state)     -- the answer after stop decided nothing
    assert.equal(0, ignored.decisions)
  end)

  it("hands requests to approvals.handler when one is configured", function()
    local obs = scenario("handler")
    assert.equal(0, obs.prompts_count)        -- no vim.ui.select
    assert.equal(2, #obs.seen)
    local get = obs.seen[1].method == "GET" and obs.seen[1] or obs.seen[2]
    assert.equal("Alpha (alpha)", get.agent)
    assert.equal("https://example.com/get-me", get.url)
    assert.truthy(get.time_left:match("^expires in"))
    assert.is_true(get.expires_in > 100 and get.expires_in <= 181)
    local by_url = approvals_by_url()
    assert.equal("approved", by_url["https://example.com/get-me"].state)
    assert.equal("denied", by_url["https://example.com/post-me"].state)
  end)

  it("shows failures as errors, a failing watch's error once; setup defines :OneCLI without plugin/", function()
    local obs = scenario("failures")
    assert.is_false(obs.defined_before)
    assert.is_true(obs.defined_by_setup)
    assert.truthy(obs.agents_error:find("connection_error", 1, true), obs.agents_error)
    assert.falsy(obs.agents_error:find("stack traceback", 1, true), obs.agents_error)
    assert.equal(1, obs.watch_errors_shown)
    assert.truthy(obs.watch_error:find("connection_error", 1, true), obs.watch_error)
    assert.is_false(obs.watching_after_stop)
  end)

  it(":OneCLI approvals lists the pending requests and decides one from the list", function()
    local obs = scenario("pending")
    assert.equal(2, #obs.lines)
    local by_url = approvals_by_url()
    local one = by_url["https://example.com/listed-1"]
    local line = has_line(obs.lines, one.id)
    assert.truthy(line)
    assert.truthy(line:find("POST https://example.com/listed-1 by Alpha (alpha), expires in", 1, true), line)
    assert.equal("approved", one.state)
    assert.equal("pending", by_url["https://example.com/listed-2"].state)
  end)
end)
