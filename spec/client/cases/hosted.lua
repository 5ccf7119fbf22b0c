-- Cases of spec/client/every_endpoint_spec.lua for the "hosted" area of
-- reference §14.4 and §14.8: agent images, models, the direct conversation,
-- channels, crons, memories, conversations, turns:abort and runners. They
-- run on the licensed v2 stand-in with a runner (ctx.hosted is its hosted
-- agent); none is an Enterprise route, and the v1 stand-ins serve none
-- (404: there ctx.hosted is nil and the BYO fixture agent stands in). The
-- server is shared between cases: identifiers and keys are unique per case.
local PNG = "\137\80\78\71\13\10\26\10\0\0\0\13\73\72\68\82\0\0\0\1\0\0\0\1\8\2\0\0\0\144\119\83\222"
  .. "\0\0\0\12\73\68\65\84\120\1\99\248\207\192\0\0\3\1\1\0\219\125\46\188\0\0\0\0\73\69\78\68\174\66\96\130"

return function(case, kit)
  local V2X, is = kit.V2X, kit.is
  local ABSENT = { absent = kit.V1 }

  local function v2(name, call, check)
    case(name, V2X, call, check, ABSENT)
  end

  -- The shared hosted agent, or a fresh one (identifier) where the case
  -- changes something that may exist once per agent.
  local function agent(ctx, identifier)
    if not ctx.hosted then return ctx.agent end
    if not identifier then return ctx.hosted end
    return ctx.client.agents:create({ name = "Case " .. identifier, identifier = identifier, kind = "hosted" }).id
  end

  local function cron(ctx, name)
    return ctx.client.agents.crons:create(agent(ctx), { name = name, prompt = "Report " .. name,
      schedule = "0 9 * * *", timezone = "UTC" })
  end

  local function memory(ctx, key)
    return ctx.client.agents.memories:create(agent(ctx), { key = key, content = "Notes of " .. key .. "." })
  end

  -- A memory with two revisions: returns agent id, memory id, the older revision id.
  local function revised(ctx, key)
    local m = memory(ctx, key)
    ctx.client.agents.memories:update(agent(ctx), m.id, { content = "Newer notes." })
    local revs = ctx.client.agents.memories:revisions(agent(ctx), m.id).revisions
    return agent(ctx), m.id, revs[#revs].id
  end

  local function conversation(ctx)
    return ctx.client.conversations:create({ agentId = agent(ctx) }).id
  end

  -- images, models, direct conversation
  v2("agents.set_image", function(ctx) return ctx.client.agents:set_image(agent(ctx), PNG) end,
    function(r) return r.imageUrl:match("/v1/agent%-images/[%x%-]+/%x+$") ~= nil end)
  v2("agents.delete_image", function(ctx)
    ctx.client.agents:set_image(agent(ctx), PNG)
    return ctx.client.agents:delete_image(agent(ctx))
  end, is.yes)
  v2("agents.models", function(ctx) return ctx.client.agents:models(agent(ctx)) end,
    function(r) return type(r.models) == "table" and type(r.selected) == "table" end)
  v2("agents.direct_conversation", function(ctx) return ctx.client.agents:direct_conversation(agent(ctx)) end,
    function(r, ctx) return r.direct == true and r.agentId == ctx.hosted end)

  -- channels
  v2("agents.channels.list", function(ctx) return ctx.client.agents.channels:list(agent(ctx)) end,
    function(r) return type(r.presences) == "table" and r.posture.transport == "socket" end)
  v2("agents.channels.manifest", function(ctx) return ctx.client.agents.channels:manifest(agent(ctx), "slack") end,
    function(r) return r.provider == "slack" and type(r.manifest) == "table" end)
  v2("agents.channels.create", function(ctx)
    return ctx.client.agents.channels:create(agent(ctx, "case-ch-create"), "slack")
  end, function(r) return r.transport == "socket" and type(r.presenceId) == "string" end)
  v2("agents.channels.complete", function(ctx)
    local id = agent(ctx, "case-ch-complete")
    ctx.client.agents.channels:create(id, "slack")
    return ctx.client.agents.channels:complete(id, "slack", { botToken = "xoxb-case", appId = "ACASE" })
  end, function(r) return r.status == "active" and r.appId == "ACASE" end)
  v2("agents.channels.delete", function(ctx)
    local id = agent(ctx, "case-ch-delete")
    ctx.client.agents.channels:create(id, "slack")
    return ctx.client.agents.channels:delete(id, "slack", { deleteRemote = false })
  end, is.yes)

  -- crons
  v2("agents.crons.list", function(ctx) return ctx.client.agents.crons:list(agent(ctx)) end,
    function(r) return type(r.crons) == "table" end)
  v2("agents.crons.create", function(ctx) return cron(ctx, "case-cron-create") end,
    function(r) return r.name == "case-cron-create" and r.enabled == true end)
  v2("agents.crons.update", function(ctx)
    return ctx.client.agents.crons:update(agent(ctx), cron(ctx, "case-cron-update").id, { enabled = false })
  end, function(r) return r.enabled == false end)
  v2("agents.crons.run", function(ctx)
    return ctx.client.agents.crons:run(agent(ctx), cron(ctx, "case-cron-run").id)
  end, function(r) return type(r.lastRunAt) == "string" end)
  v2("agents.crons.delete", function(ctx)
    return ctx.client.agents.crons:delete(agent(ctx), cron(ctx, "case-cron-delete").id)
  end, is.yes)

  -- memories
  v2("agents.memories.list", function(ctx) return ctx.client.agents.memories:list(agent(ctx)) end,
    function(r) return type(r.memories) == "table" end)
  v2("agents.memories.create", function(ctx) return memory(ctx, "case-mem-create") end,
    function(r) return r.key == "case-mem-create" end)
  v2("agents.memories.get", function(ctx)
    return ctx.client.agents.memories:get(agent(ctx), memory(ctx, "case-mem-get").id)
  end, function(r) return r.key == "case-mem-get" and type(r.latestRevision) == "table" end)
  v2("agents.memories.update", function(ctx)
    return ctx.client.agents.memories:update(agent(ctx), memory(ctx, "case-mem-update").id, { title = "Case" })
  end, function(r) return r.title == "Case" end)
  v2("agents.memories.delete", function(ctx)
    return ctx.client.agents.memories:delete(agent(ctx), memory(ctx, "case-mem-delete").id)
  end, is.yes)
  v2("agents.memories.revisions", function(ctx)
    return ctx.client.agents.memories:revisions(agent(ctx), memory(ctx, "case-mem-revisions").id)
  end, function(r) return #r.revisions == 1 end)
  v2("agents.memories.get_revision", function(ctx)
    local a, m, rev = revised(ctx, "case-mem-revision")
    return ctx.client.agents.memories:get_revision(a, m, rev)
  end, function(r) return r.content == "Notes of case-mem-revision." end)
  v2("agents.memories.restore_revision", function(ctx)
    local a, m, rev = revised(ctx, "case-mem-restore")
    return ctx.client.agents.memories:restore_revision(a, m, rev)
  end, function(r) return r.content == "Notes of case-mem-restore." end)
  v2("agents.memories.redact_revision", function(ctx)
    local a, m, rev = revised(ctx, "case-mem-redact")
    return ctx.client.agents.memories:redact_revision(a, m, rev)
  end, function(r) return r.redacted == true and r.content == "[redacted]" end)

  -- conversations
  v2("conversations.list", function(ctx) return ctx.client.conversations:list() end,
    function(r) return type(r.conversations) == "table" end)
  v2("conversations.create", function(ctx)
    return ctx.client.conversations:create({ agentId = agent(ctx), title = "Case" })
  end, function(r) return r.title == "Case" and r.direct == false end)
  v2("conversations.get", function(ctx) return ctx.client.conversations:get(conversation(ctx)) end,
    function(r, ctx) return r.agentId == ctx.hosted end)
  v2("conversations.events", function(ctx)
    local id = conversation(ctx)
    ctx.client.conversations:create_turn(id, "case events")
    return ctx.client.conversations:events(id, { limit = 2 })
  end, function(r) return #r.events == 2 and r.hasMore == true end)
  v2("conversations.stream", function(ctx)
    local id = conversation(ctx)
    ctx.client.conversations:create_turn(id, "case stream")
    return ctx.client.conversations:stream(id)
  end, function(r) return #r == 3 and r[1].event == "transcript" end)
  v2("conversations.upload_attachment", function(ctx)
    return ctx.client.conversations:upload_attachment(conversation(ctx), "case bytes", { name = "case.txt" })
  end, function(r) return r.name == "case.txt" and r.size == 10 end)
  v2("conversations.get_attachment", function(ctx)
    local id = conversation(ctx)
    local att = ctx.client.conversations:upload_attachment(id, "\0case\255", { name = "case.bin" })
    return ctx.client.conversations:get_attachment(id, att.id)
  end, function(r) return r == "\0case\255" end)
  v2("conversations.turns", function(ctx) return ctx.client.conversations:turns(conversation(ctx)) end,
    function(r) return type(r.turns) == "table" end)
  v2("conversations.create_turn", function(ctx)
    return ctx.client.conversations:create_turn(conversation(ctx), "case turn")
  end, function(r) return r.status == "completed" and r.message == "case turn" end)
  v2("conversations.send_message", function(ctx)
    return ctx.client.conversations:send_message(conversation(ctx), "case message")
  end, function(r) return r.kind == "turn" and r.turn.message == "case message" end)

  -- a turn is in flight only without a runner: the case takes it away briefly
  v2("turns.abort", function(ctx)
    local id = conversation(ctx)
    ctx.srv:instance({ runner = false })
    local ok, turn = pcall(ctx.client.conversations.create_turn, ctx.client.conversations, id, "case abort")
    ctx.srv:instance({ runner = true })
    if not ok then error(turn, 0) end
    return ctx.client.turns:abort(turn.id)
  end, function(r) return r.aborted == true end)

  v2("runners", function(ctx) return ctx.client:runners() end,
    function(r) return #r.runners == 1 and r.runners[1].online == true end)
end
