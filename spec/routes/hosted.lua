-- Capture claims of the "hosted" area for spec/routes_replay_spec.lua:
-- agent images, models, the direct conversation, agent channels, crons,
-- memories, conversations, turn abort, runners, and the agent routes §14.4
-- changed (include=grants-summary, hosted creation, BYO-only PATCH fields,
-- the agent-groups tombstone). The recording server had no runner, so every
-- agent there is BYO; the setups create the recorded agents and map their ids.

-- The two BYO agents the recordings name.
local REC = {
  { id = "ef675b4e-c876-48f0-821e-b553d8f5a40a", name = "Capture Extra", identifier = "capture-extra" },
  { id = "9e7b79d6-9632-44b6-abd9-a9e8ed097e28", name = "Capture Other", identifier = "capture-other" },
}

-- What "<binary body: 69 bytes, a 1x1 PNG>" was (the harness sends the same).
local PNG_1X1 = "\137\80\78\71\13\10\26\10\0\0\0\13\73\72\68\82\0\0\0\1\0\0\0\1\8\2\0\0\0\144\119\83\222"
  .. "\0\0\0\12\73\68\65\84\120\1\99\248\207\192\0\0\3\1\1\0\219\125\46\188\0\0\0\0\73\69\78\68\174\66\96\130"

local function make_agent(t, rec)
  local status, made = t.call("POST", "/v1/agents", { name = rec.name, identifier = rec.identifier })
  assert(status == 201, "agent setup: " .. status)
  t.map[rec.id] = made.id
  return made.id
end

-- Creates the recorded agents the capture's request names.
local function agents_of(name)
  return function(t)
    local path = t.capture(name).request.path
    for _, rec in ipairs(REC) do
      if path:find(rec.id, 1, true) then make_agent(t, rec) end
    end
  end
end

-- An agent with an uploaded avatar; maps <IMAGE_KEY> to its key.
local function with_image(t)
  local id = make_agent(t, REC[1])
  local status, res = t.call("PUT", "/v1/agents/" .. id .. "/image", PNG_1X1)
  assert(status == 200, "image setup: " .. status)
  t.map["<IMAGE_KEY>"] = res.imageUrl:match("/(%x+)$")
  return id
end

local claims = {
  ["agent-images-get"] = { setup = with_image },
  ["agent-images-get-wrong-key"] = { setup = with_image },
  ["agent-images-get-after-delete"] = { setup = function(t)
    local id = with_image(t)
    assert(t.call("DELETE", "/v1/agents/" .. id .. "/image") == 204, "image delete setup")
  end },
  ["agents-image-delete"] = { setup = with_image },
  ["agents-list-include-grants-summary"] = { setup = function(t) make_agent(t, REC[1]) end },
  ["agents-image-put-empty"] = { setup = function(t) make_agent(t, REC[1]) end },
  ["agents-image-put-too-large"] = { setup = function(t) make_agent(t, REC[1]) end },
  ["agents-create-byo-with-harness"] = {},
  ["agents-create-hosted-no-runner"] = {},
}

-- Everything else replays on a fresh server holding the agents it names.
local NAMES = {
  "agents-channels-complete-invalid", "agents-channels-create-byo", "agents-channels-delete-byo",
  "agents-channels-list-byo", "agents-channels-manifest-byo", "agents-channels-unknown-provider",
  "agents-conversations-direct-byo",
  "agents-crons-create-byo", "agents-crons-create-invalid", "agents-crons-delete-byo", "agents-crons-list-byo",
  "agents-crons-list-not-found", "agents-crons-list-org-key-no-workspace", "agents-crons-patch-empty",
  "agents-crons-run-byo", "agents-groups-removed",
  "agents-image-put", "agents-image-put-not-found", "agents-image-put-svg", "agents-list-include-unknown",
  "agents-memories-create-bad-key", "agents-memories-create-byo", "agents-memories-delete-byo",
  "agents-memories-get-byo", "agents-memories-list-byo", "agents-memories-patch-byo", "agents-memories-patch-empty",
  "agents-memories-revision-get-byo", "agents-memories-revision-redact-byo",
  "agents-memories-revision-restore-byo", "agents-memories-revisions-byo", "agents-memories-search-byo",
  "agents-models-byo", "agents-models-not-found", "agents-update-byo-instructions",
  "conversations-attachments-get-not-found", "conversations-attachments-not-found", "conversations-create-byo",
  "conversations-create-missing-agent", "conversations-events-bad-limit", "conversations-events-not-found",
  "conversations-get-not-found", "conversations-list", "conversations-messages-not-found",
  "conversations-stream-not-found", "conversations-turns-create-empty", "conversations-turns-create-not-found",
  "conversations-turns-list-not-found",
  "runners-list", "turns-abort-not-found",
}

for _, name in ipairs(NAMES) do
  assert(not claims[name], name .. " claimed twice")
  claims[name] = { setup = agents_of(name) }
end

-- conversations-create-byo names the agent in its body, not its path.
claims["conversations-create-byo"] = { setup = function(t) make_agent(t, REC[1]) end }

return claims
