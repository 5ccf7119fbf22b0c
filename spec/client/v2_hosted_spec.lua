-- The "hosted" methods of reference §14.4 and §14.8 against the v2
-- stand-in (licensed, with a runner): hosted agent creation, agents:list's
-- include, images (binary round trip), models, the direct conversation,
-- channels, crons, memories with revisions, conversations (transcript
-- pages, each_event, the event stream, attachments, turns, messages),
-- turns:abort and client:runners(). Every test starts from a reset server.
local onecli = require("onecli")
local sclient = require("onecli.standin.client")
local launcher = require("onecli.standin.launcher")
local api = require("support.api")

local raised = api.raised
local LUA = rawget(_G, "jit") and "luajit" or "lua5.4"

local PNG = "\137\80\78\71\13\10\26\10\0\0\0\13\73\72\68\82\0\0\0\1\0\0\0\1\8\2\0\0\0\144\119\83\222"
  .. "\0\0\0\12\73\68\65\84\120\1\99\248\207\192\0\0\3\1\1\0\219\125\46\188\0\0\0\0\73\69\78\68\174\66\96\130"

local srv, client, org

local function new_client(opts)
  opts.max_retries = 0
  return api.client(srv, opts)
end

-- status, type, message and retryable of a raised error
local function check_error(err, status, kind, message, retryable)
  assert.are.equal(status, err.status)
  assert.are.equal(kind, err.type)
  if message then assert.are.equal(message, err.message) end
  assert.are.equal(retryable or false, err.retryable)
end

local function unprocessable(message, fn, ...)
  check_error(raised(fn, ...), 422, "validation_error", message)
end

local function not_found(message, fn, ...)
  check_error(raised(fn, ...), 404, "not_found_error", message)
end

local function hosted_agent(identifier)
  return client.agents:create({ name = "Hosted " .. identifier, identifier = identifier, kind = "hosted" }).id
end

local function byo_agent(identifier)
  return client.agents:create({ name = "BYO " .. identifier, identifier = identifier }).id
end

-- A raw GET without credentials (the public avatar URL).
local function fetch(url)
  local path = url:match("^https?://[^/]+(/.*)$")
  return assert(sclient.request(srv.port, { method = "GET", path = path, timeout = 5 }))
end

local function types_of(events)
  local out = {}
  for i, e in ipairs(events) do out[i] = e.type or e.data.type end
  return out
end

describe("v2 hosted methods", function()
  setup(function()
    srv = launcher.start({ mode = "v2", lua = LUA, licensed = true, runner = true })
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  before_each(function()
    srv:reset()
    client = new_client({ api_key = srv.api_key })
    org = new_client({ api_key = srv.org_key, project_id = srv.project_id })
  end)

  describe("agents", function()
    it("creates a hosted agent when a runner is registered", function()
      local a = client.agents:create({ name = "Helper", identifier = "helper", kind = "hosted",
        instructions = "Be brief." })
      assert.are.equal("hosted", a.kind)
      assert.are.equal("claude-code", a.harness)
      assert.are.equal("Be brief.", a.instructions)
      assert.are.equal(onecli.null, a.model)
      assert.are.same({}, a.llmKeys)
      local got = client.agents:get(a.id)
      assert.are.equal("hosted", got.kind)
      assert.are.equal(onecli.null, got.imageUrl)
    end)

    it("refuses a hosted agent without a runner, and hosted fields on a BYO agent", function()
      srv:instance({ runner = false })
      unprocessable("No runner is available to host this agent. Start a runner and try again.",
        client.agents.create, client.agents, { name = "H", identifier = "h", kind = "hosted" })
      local err = raised(client.agents.create, client.agents, { name = "B", identifier = "b", harness = "claude-code" })
      check_error(err, 400, "invalid_request_error", "harness is only valid for hosted agents")
    end)

    it("changes instructions, model and effort of hosted agents only", function()
      local id = hosted_agent("patchable")
      client.agents:update(id, { model = "claude-opus-4-1", effort = "high" })
      local m = client.agents:models(id)
      assert.are.equal("claude-opus-4-1", m.selected.model)
      assert.are.equal("high", m.selected.effort)
      assert.is_true(m.selected.overridden)
      local byo = byo_agent("plain")
      local err = raised(client.agents.update, client.agents, byo, { instructions = "Be brief." })
      check_error(err, 400, "invalid_request_error", "instructions, model and effort are only valid for hosted agents")
    end)

    it("lists agents with a grants summary, and refuses other includes", function()
      local id = byo_agent("summed")
      local secret = client.secrets:create({ name = "Tok", type = "generic", value = "tok_123456789",
        hostPattern = "api.example.com", injectionConfig = { headerName = "X-Token" } })
      client.agents:grant_secret(id, secret.id)
      local list = client.agents:list({ include = "grants-summary" })
      assert.are.equal(1, #list)
      assert.are.equal("grants", list[1].grantsSummary.mode)
      assert.are.equal(1, list[1].grantsSummary.total)
      assert.are.equal(secret.id, list[1].grantsSummary.entries[1].id)
      assert.is_nil(client.agents:list()[1].grantsSummary)
      unprocessable("Unknown include: secrets", client.agents.list, client.agents, { include = "secrets" })
    end)
  end)

  describe("images", function()
    it("uploads bytes, serves them at the public URL, and deletes them", function()
      local id = byo_agent("pictured")
      local url = client.agents:set_image(id, PNG).imageUrl
      assert.truthy(url:match("^http://127%.0%.0%.1:%d+/v1/agent%-images/" .. id:gsub("%-", "%%-") .. "/%x+$"))
      assert.are.equal(32, #url:match("/(%x+)$"))
      local res = fetch(url)
      assert.are.equal(200, res.status)
      assert.are.equal(PNG, res.body)
      assert.are.equal("image/png", res.headers["content-type"])
      assert.are.equal("nosniff", res.headers["x-content-type-options"])
      assert.are.equal("public, max-age=3600", res.headers["cache-control"])
      assert.are.equal(url, client.agents:get(id).imageUrl)
      assert.are.equal(url, client.agents:list()[1].imageUrl)

      local again = client.agents:set_image(id, "GIF89a" .. string.rep("\0", 20)).imageUrl
      assert.are_not.equal(url, again)
      assert.are.equal(404, fetch(url).status)
      assert.are.equal("image/gif", fetch(again).headers["content-type"])

      assert.is_true(client.agents:delete_image(id))
      assert.are.equal(404, fetch(again).status)
      assert.are.equal(onecli.null, client.agents:get(id).imageUrl)
    end)

    it("refuses empty, unknown-format and orphan uploads", function()
      local id = byo_agent("unpictured")
      unprocessable("The image is empty.", client.agents.set_image, client.agents, id, "")
      unprocessable("The image must be a PNG, JPEG, WebP, or GIF.", client.agents.set_image, client.agents, id,
        '<svg xmlns="http://www.w3.org/2000/svg"/>')
      local missing = "00000000-0000-0000-0000-000000000000"
      not_found("Agent not found", client.agents.set_image, client.agents, missing, PNG)
      not_found("Agent not found", client.agents.delete_image, client.agents, missing)
    end)
  end)

  describe("models and the direct conversation", function()
    it("reports no provider until a model key exists, then the provider's models", function()
      local id = hosted_agent("modelled")
      local m = client.agents:models(id)
      assert.are.equal(onecli.null, m.provider)
      assert.are.same({}, m.models)
      client.secrets:create({ name = "Claude", type = "anthropic", value = "sk-ant-api03-abcdefghijklmnop",
        hostPattern = "api.anthropic.com" })
      m = client.agents:models(id)
      assert.are.equal("anthropic", m.provider)
      assert.are.equal("workspace", m.providerScope)
      assert.is_true(#m.models > 0)
      assert.are.equal(m.defaults.model, m.selected.model)
      assert.is_false(m.selected.overridden)
      assert.is_false(m.degraded)
    end)

    it("answers the same direct conversation every time", function()
      local id = hosted_agent("direct")
      local c1 = client.agents:direct_conversation(id)
      local c2 = client.agents:direct_conversation(id)
      assert.are.equal(c1.id, c2.id)
      assert.is_true(c1.direct)
      assert.are.equal(id, c1.agentId)
    end)

    it("needs a hosted agent", function()
      local byo = byo_agent("plain")
      unprocessable("Only hosted agents run a platform-chosen model", client.agents.models, client.agents, byo)
      unprocessable("Only hosted agents can hold conversations", client.agents.direct_conversation,
        client.agents, byo)
      not_found("Agent not found", client.agents.models, client.agents, "00000000-0000-0000-0000-000000000000")
    end)
  end)

  describe("channels", function()
    it("attaches, completes and detaches a Slack app", function()
      local id = hosted_agent("slacker")
      local list = client.agents.channels:list(id)
      assert.are.same({}, list.presences)
      assert.are.equal("slack", list.orgIntegrations[1].provider)
      assert.is_false(list.adapter.online)
      local man = client.agents.channels:manifest(id, "slack")
      assert.are.equal("Hosted slacker", man.manifest.display_information.name)

      local made = client.agents.channels:create(id, "slack")
      assert.are.equal("socket", made.transport)
      assert.are.equal(onecli.null, made.installUrl)
      assert.truthy(made.settingsUrl:match("/agents/" .. id:gsub("%-", "%%-") .. "/channels$"))
      check_error(raised(client.agents.channels.create, client.agents.channels, id, "slack"), 409,
        "invalid_request_error", "This agent already has a Slack app. Detach it first.")

      unprocessable("Invalid input: expected string, received undefined", client.agents.channels.complete,
        client.agents.channels, id, "slack", {})
      local p = client.agents.channels:complete(id, "slack", { botToken = "xoxb-1", appId = "A123" })
      assert.are.equal(made.presenceId, p.id)
      assert.are.equal("active", p.status)
      assert.are.equal("slack", client.agents:get(id).channels[1].provider)

      assert.is_true(client.agents.channels:delete(id, "slack", { deleteRemote = false }))
      not_found("No Slack app attached", client.agents.channels.delete, client.agents.channels, id, "slack")
    end)

    it("knows only slack, and only hosted agents", function()
      local id = hosted_agent("teams")
      not_found("Unknown channel provider", client.agents.channels.manifest, client.agents.channels, id, "teams")
      local byo = byo_agent("plain")
      unprocessable("Only hosted agents can join channels", client.agents.channels.list, client.agents.channels, byo)
      unprocessable("Only hosted agents can join channels", client.agents.channels.create, client.agents.channels,
        byo, "slack")
    end)
  end)

  describe("crons", function()
    local function daily(name)
      return { name = name, prompt = "Summarize the day", schedule = "0 9 * * 1-5", timezone = "Europe/Berlin" }
    end

    it("creates, lists, changes, runs and deletes a schedule", function()
      local id = hosted_agent("scheduled")
      local cron = client.agents.crons:create(id, daily("Daily"))
      assert.are.equal("Daily", cron.name)
      assert.is_true(cron.enabled)
      assert.are.equal(client.agents:direct_conversation(id).id, cron.conversationId)
      assert.are.equal(cron.id, client.agents.crons:list(id).crons[1].id)

      local paused = client.agents.crons:update(id, cron.id, { enabled = false, schedule = "@hourly" })
      assert.is_false(paused.enabled)
      assert.are.equal("@hourly", paused.schedule)
      unprocessable("This schedule is paused", client.agents.crons.run, client.agents.crons, id, cron.id)
      client.agents.crons:update(id, cron.id, { enabled = true })
      local ran = client.agents.crons:run(id, cron.id)
      assert.is_string(ran.lastRunAt)
      local turns = client.conversations:turns(cron.conversationId).turns
      assert.are.equal("cron", turns[1].source)
      assert.are.equal("Summarize the day", turns[1].message)

      assert.is_true(client.agents.crons:delete(id, cron.id))
      not_found("Schedule not found", client.agents.crons.delete, client.agents.crons, id, cron.id)
      not_found("Schedule not found", client.agents.crons.update, client.agents.crons, id, cron.id, { name = "X" })
    end)

    it("validates the body, the timezone and the expression", function()
      local id = hosted_agent("validated")
      local c = client.agents.crons
      local body = daily("Bad")
      body.timezone = nil
      unprocessable("Invalid input: expected string, received undefined", c.create, c, id, body)
      body = daily("Bad")
      body.extra = true
      unprocessable('Unrecognized key: "extra"', c.create, c, id, body)
      body = daily("Bad")
      body.timezone = "Mars/Olympus"
      unprocessable('Unknown timezone "Mars/Olympus". Use an IANA zone name like "America/Los_Angeles"',
        c.create, c, id, body)
      body.timezone = "UTC"
      body.schedule = "61 * * * *"
      local err = raised(c.create, c, id, body)
      check_error(err, 422, "validation_error")
      assert.truthy(err.message:match("^Invalid schedule expression: "))
      body.schedule = "0 9 * *"
      assert.truthy(raised(c.create, c, id, body).message:match("^Invalid schedule expression: "))
      body.schedule = "0 0 31 2 *"
      unprocessable("This schedule never fires. Check the expression", c.create, c, id, body)
      body.schedule = "*/15 8-18 * JAN,FEB mon-fri"
      assert.are.equal(body.schedule, c:create(id, body).schedule)
      unprocessable("Nothing to update", c.update, c, id, "00000000-0000-0000-0000-000000000000", {})
    end)

    it("needs a hosted agent", function()
      local byo = byo_agent("plain")
      local c = client.agents.crons
      unprocessable("Only hosted agents can hold schedules", c.list, c, byo)
      unprocessable("Only hosted agents can hold conversations", c.create, c, byo,
        { name = "D", prompt = "P", schedule = "0 9 * * *", timezone = "UTC" })
      not_found("Agent not found", c.list, c, "00000000-0000-0000-0000-000000000000")
      assert.are.same({}, org.agents.crons:list(hosted_agent("org-listed")).crons)
    end)
  end)

  describe("memories", function()
    it("keeps revisions, restores and redacts old ones", function()
      local id = hosted_agent("remembering")
      local m = client.agents.memories
      local mem = m:create(id, { key = "deploy-notes", content = "Deploy from main.", title = "Deploys" })
      assert.are.equal("deploy-notes", mem.key)
      assert.are.equal("Deploy from main.", mem.content)
      check_error(raised(m.create, m, id, { key = "deploy-notes", content = "x" }), 409, "invalid_request_error",
        'A memory named "deploy-notes" already exists')

      local index = m:list(id).memories
      assert.are.equal(1, #index)
      assert.is_nil(index[1].content)
      assert.are.equal(mem.id, m:list(id, { q = "main" }).memories[1].id)
      assert.are.same({}, m:list(id, { q = "kubernetes" }).memories)

      local changed = m:update(id, mem.id, { content = "Deploy from release.", title = onecli.null })
      assert.are.equal("Deploy from release.", changed.content)
      assert.are.equal(onecli.null, changed.title)
      local got = m:get(id, mem.id)
      assert.are.equal("Deploy from release.", got.latestRevision.content)
      local revs = m:revisions(id, mem.id).revisions
      assert.are.equal(2, #revs)
      local current, old = revs[1], revs[2]
      assert.are.equal("Deploy from main.", m:get_revision(id, mem.id, old.id).content)

      unprocessable("This is already the current version", m.restore_revision, m, id, mem.id, current.id)
      assert.are.equal("Deploy from main.", m:restore_revision(id, mem.id, old.id).content)
      unprocessable("This is the current version: edit or delete the memory first, then redact the old revision",
        m.redact_revision, m, id, mem.id, m:revisions(id, mem.id).revisions[1].id)
      local redacted = m:redact_revision(id, mem.id, old.id)
      assert.are.equal("[redacted]", redacted.content)
      unprocessable("Already redacted", m.redact_revision, m, id, mem.id, old.id)
      unprocessable("This revision was redacted: its content is gone", m.restore_revision, m, id, mem.id, old.id)
      not_found("Revision not found", m.get_revision, m, id, mem.id, "00000000-0000-0000-0000-000000000000")

      assert.is_true(m:delete(id, mem.id))
      not_found("Memory not found", m.get, m, id, mem.id)
    end)

    it("validates bodies before the agent, and needs a hosted agent", function()
      local byo = byo_agent("plain")
      local m = client.agents.memories
      unprocessable('Keys are lowercase words separated by single hyphens, like "deploy-notes"', m.create, m, byo,
        { key = "Deploy Notes", content = "x" })
      unprocessable("Nothing to update", m.update, m, byo, "00000000-0000-0000-0000-000000000000", {})
      unprocessable("Only hosted agents have memory", m.create, m, byo, { key = "deploy-notes", content = "x" })
      unprocessable("Only hosted agents have memory", m.list, m, byo, { q = "deploy" })
    end)
  end)

  describe("conversations", function()
    it("creates, lists and reads conversations", function()
      local a, b = hosted_agent("talker-a"), hosted_agent("talker-b")
      local c1 = client.conversations:create({ agentId = a, title = "First" })
      local c2 = client.conversations:create({ agentId = b, source = "watch" })
      assert.are.equal("First", c1.title)
      assert.are.equal("web", c1.source)
      assert.is_false(c1.direct)
      local all = client.conversations:list().conversations
      assert.are.equal(c2.id, all[1].id)
      assert.are.equal(c1.id, all[2].id)
      local only = client.conversations:list({ agentId = a }).conversations
      assert.are.equal(1, #only)
      assert.are.equal(c1.id, client.conversations:get(c1.id).id)
    end)

    it("refuses bad bodies, BYO and unknown agents, unknown conversations", function()
      local cs = client.conversations
      unprocessable("Invalid input: expected string, received undefined", cs.create, cs, {})
      unprocessable("Only hosted agents can hold conversations", cs.create, cs, { agentId = byo_agent("plain") })
      not_found("Agent not found", cs.create, cs, { agentId = "00000000-0000-0000-0000-000000000000" })
      local missing = "00000000-0000-0000-0000-000000000000"
      for _, name in ipairs({ "get", "events", "turns", "stream" }) do
        not_found("Conversation not found", cs[name], cs, missing)
      end
      not_found("Conversation not found", cs.create_turn, cs, missing, "hello")
      not_found("Conversation not found", cs.send_message, cs, missing, "hello")
      not_found("Conversation not found", cs.upload_attachment, cs, missing, "hello", { name = "a.txt" })
      unprocessable("message or attachments required", cs.create_turn, cs, missing, { message = "" })
      unprocessable("Too small: expected number to be >=1", cs.events, cs, missing, { limit = 0 })
      unprocessable("Too big: expected number to be <=500", cs.events, cs, missing, { limit = 501 })
      not_found("Turn not found", client.turns.abort, client.turns, missing)
    end)

    it("runs turns at once with a runner and pages the transcript", function()
      local conv = client.conversations:create({ agentId = hosted_agent("echo") })
      local turn = client.conversations:create_turn(conv.id, "hello")
      assert.are.equal("completed", turn.status)
      assert.are.equal("hello", turn.message)
      local msg = client.conversations:send_message(conv.id, { message = "again" })
      assert.are.equal("turn", msg.kind)
      assert.are.equal("completed", msg.turn.status)
      assert.are.equal(2, #client.conversations:turns(conv.id).turns)

      local page = client.conversations:events(conv.id)
      assert.are.equal(6, #page.events)
      assert.is_false(page.hasMore)
      assert.are.equal(6, page.nextSince)
      assert.are.same({ "user_message", "assistant_message", "turn_completed" }, { page.events[1].type,
        page.events[2].type, page.events[3].type })
      assert.are.equal("echo: hello", page.events[2].payload.text)
      assert.are.equal(turn.id, page.events[1].turnId)

      page = client.conversations:events(conv.id, { since = 1, limit = 2 })
      assert.are.same({ 2, 3 }, { page.events[1].seq, page.events[2].seq })
      assert.is_true(page.hasMore)
      assert.are.equal(3, page.nextSince)

      local seqs = {}
      for e in client.conversations:each_event(conv.id, { limit = 2 }) do seqs[#seqs + 1] = e.seq end
      assert.are.same({ 1, 2, 3, 4, 5, 6 }, seqs)
      seqs = {}
      for e in client.conversations:each_event(conv.id, { since = 4, limit = 500 }) do seqs[#seqs + 1] = e.seq end
      assert.are.same({ 5, 6 }, seqs)
    end)

    it("iterates an empty transcript without a step", function()
      local conv = client.conversations:create({ agentId = hosted_agent("quiet") })
      local n = 0
      for _ in client.conversations:each_event(conv.id, { limit = 2 }) do n = n + 1 end
      assert.are.equal(0, n)
      assert.are.same({}, client.conversations:stream(conv.id))
    end)

    it("raises when a later transcript page fails, or hands back the error once", function()
      local conv = client.conversations:create({ agentId = hosted_agent("faulty") })
      client.conversations:create_turn(conv.id, "one")
      local path = "/v1/conversations/" .. conv.id .. "/events"
      local seen = 0
      local err = raised(function()
        for _ in client.conversations:each_event(conv.id, { limit = 2 }) do
          seen = seen + 1
          if seen == 1 then srv:fault({ kind = "status", status = 500, path = path }) end
        end
      end)
      assert.are.equal(2, seen)
      check_error(err, 500, "api_error", nil, true)

      local steps = {}
      for e, e2 in client.conversations:each_event(conv.id, { limit = 2 }, { raise = false }) do
        steps[#steps + 1] = { e, e2 }
        if #steps == 1 then srv:fault({ kind = "status", status = 503, path = path }) end
        assert.is_true(#steps <= 3)
      end
      assert.are.equal(3, #steps)
      assert.is_false(steps[3][1])
      assert.are.equal(503, steps[3][2].status)
      assert.is_true(steps[3][2].retryable)
    end)

    it("streams the transcript as server-sent events", function()
      local conv = client.conversations:create({ agentId = hosted_agent("streamer") })
      client.conversations:create_turn(conv.id, "hi")
      local events = client.conversations:stream(conv.id)
      assert.are.equal(3, #events)
      for i, e in ipairs(events) do
        assert.are.equal("transcript", e.event)
        assert.are.equal(tostring(i), tostring(e.id))
        assert.are.equal(i, e.data.seq)
      end
      assert.are.same({ "user_message", "assistant_message", "turn_completed" }, types_of(events))
      assert.are.equal("echo: hi", events[2].data.payload.text)
      local later = client.conversations:stream(conv.id, { since = 2 })
      assert.are.equal(1, #later)
      assert.are.equal("turn_completed", later[1].data.type)
      local res = assert(sclient.request(srv.port, { method = "GET", timeout = 5,
        path = "/v1/conversations/" .. conv.id .. "/stream",
        headers = { { "Authorization", "Bearer " .. srv.api_key }, { "Last-Event-ID", "1" } } }))
      assert.are.equal(200, res.status)
      assert.are.equal("text/event-stream", res.headers["content-type"])
      assert.truthy(res.body:find("^event: transcript\nid: 2\ndata: {"))
      assert.is_nil(res.body:find("id: 1\n", 1, true))
    end)

    it("listens to an open stream for the call's timeout and returns what came", function()
      local conv = client.conversations:create({ agentId = hosted_agent("listener") })
      client.conversations:create_turn(conv.id, "first")
      srv:instance({ runner = false })             -- the next turn stays in flight
      client.conversations:create_turn(conv.id, "second")
      -- the server keeps the stream open (as a live one does): the timeout
      -- ends the answer, it is not a timeout error
      local events = client.conversations:stream(conv.id, nil, { timeout = 1 })
      assert.are.same({ "user_message", "assistant_message", "turn_completed", "user_message" },
        types_of(events))
      assert.are.equal("second", events[4].data.payload.text)
      -- the same through libcurl's multi driver (client:batch)
      local results, failed = client:batch({ { "conversations.stream", conv.id, { since = 3 }, { timeout = 1 } } })
      assert.are.equal(0, failed, tostring(results[1]))
      assert.are.equal(1, #results[1])
      assert.are.equal("4", results[1][1].id)
      -- a JSON call that times out is still a timeout error
      srv:fault({ kind = "hang", path = "/v1/conversations/" .. conv.id, count = 1 })
      local err = raised(client.conversations.get, client.conversations, conv.id, { timeout = 0.5 })
      assert.are.equal("timeout_error", err.type)
    end)

    it("uploads attachments byte for byte and binds them to a turn", function()
      local conv = client.conversations:create({ agentId = hosted_agent("filer") })
      local bytes = {}
      for i = 0, 255 do bytes[#bytes + 1] = string.char(i) end
      bytes = table.concat(bytes):rep(3)
      local att = client.conversations:upload_attachment(conv.id, bytes, { name = "all-bytes.bin" })
      assert.are.equal("all-bytes.bin", att.name)
      assert.are.equal(#bytes, att.size)
      assert.are.equal("application/octet-stream", att.contentType)
      assert.are.equal("pending", att.status)
      assert.are.equal(bytes, client.conversations:get_attachment(conv.id, att.id))

      local text = client.conversations:upload_attachment(conv.id, "hello", { name = "a.txt" },
        { headers = { ["Content-Type"] = "text/plain" } })
      assert.are.equal("text/plain", text.contentType)

      local turn = client.conversations:create_turn(conv.id, { attachmentIds = { att.id } })
      assert.are.equal(att.id, turn.attachments[1].id)
      assert.are.equal("bound", turn.attachments[1].status)

      local cs = client.conversations
      unprocessable("The file is empty.", cs.upload_attachment, cs, conv.id, "", { name = "a.txt" })
      unprocessable("A file name is required (?name=)", cs.upload_attachment, cs, conv.id, "x")
      not_found("Attachment not found", cs.get_attachment, cs, conv.id, "00000000-0000-0000-0000-000000000000")
    end)

    it("queues turns without a runner: one at a time, follow-ups, abort", function()
      local conv = client.conversations:create({ agentId = hosted_agent("waiting") })
      srv:instance({ runner = false })
      local turn = client.conversations:create_turn(conv.id, "first")
      assert.are.equal("queued", turn.status)
      check_error(raised(client.conversations.create_turn, client.conversations, conv.id, "second"), 409,
        "invalid_request_error", "This conversation already has a turn in progress")
      local follow = client.conversations:send_message(conv.id, "steer")
      assert.are.equal("followUp", follow.kind)
      assert.are.equal(turn.id, follow.turn.id)

      local res = client.turns:abort(turn.id)
      assert.is_true(res.aborted)
      assert.is_false(res.delivered)
      assert.are.equal("aborted", client.conversations:turns(conv.id).turns[1].status)
      check_error(raised(client.turns.abort, client.turns, turn.id), 409, "invalid_request_error",
        "This turn has already finished")
      assert.are.equal("turn", client.conversations:send_message(conv.id, "next").kind)
    end)
  end)

  describe("runners", function()
    it("lists the one runner while the instance has it, with any key", function()
      local list = client:runners().runners
      assert.are.equal(1, #list)
      assert.is_true(list[1].online)
      assert.are.equal(0, list[1].sandboxCount)
      hosted_agent("sandboxed")
      assert.are.equal(1, client:runners().runners[1].sandboxCount)
      local orgonly = new_client({ api_key = srv.org_key })
      assert.are.equal(1, #orgonly:runners().runners)
      srv:instance({ runner = false })
      assert.are.same({}, org:runners().runners)
    end)
  end)

  describe("on v1", function()
    it("does not exist", function()
      local v1 = launcher.start({ mode = "v1", lua = LUA })
      finally(function() v1:stop() end)
      local c = api.client(v1, { api_key = v1.api_key, max_retries = 0 })
      local err = raised(c.conversations.list, c.conversations)
      check_error(err, 404, "invalid_request_error")
    end)
  end)
end)
