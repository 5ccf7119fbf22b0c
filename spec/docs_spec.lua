-- docs/api.md and lua/onecli/meta.lua are generated from the endpoint table
-- by docs/generate.lua: they must be what the generator produces now, name
-- every endpoint, and say only what the code does.
local net = require("support.net")
local onecli = require("onecli")
local client_mod = require("onecli.client")

local function read(path)
  return assert(net.read_file(path), "cannot read " .. path)
end

-- Where two texts first differ, as a short message (never the whole file).
local function first_difference(want, got)
  local i = 1
  local wlines, glines = {}, {}
  for l in (want .. "\n"):gmatch("(.-)\n") do wlines[#wlines + 1] = l end
  for l in (got .. "\n"):gmatch("(.-)\n") do glines[#glines + 1] = l end
  while wlines[i] == glines[i] and (wlines[i] or glines[i]) do
    i = i + 1
  end
  return ("line %d: generated %q, committed %q"):format(i, tostring(wlines[i]), tostring(glines[i]))
end

-- The keys of an option table ({ name = "type", ... }) as a set.
local function key_set(t)
  local keys = {}
  for k in pairs(t) do
    keys[k] = true
  end
  return keys
end

-- The text of one "### heading" section of docs/api.md.
local function section(md, heading)
  local start = assert(md:find("\n### " .. heading .. "\n", 1, true), "no section " .. heading)
  local stop = md:find("\n##", start + 1, true) or #md
  return md:sub(start, stop)
end

-- The LuaLS stub of one method in meta.lua: its comment block and line.
local function stub_of(meta, fn)
  local lines = {}
  for l in meta:gmatch("([^\n]*)\n") do
    lines[#lines + 1] = l
  end
  for i, l in ipairs(lines) do
    if l:sub(1, #fn + 10) == "function " .. fn .. "(" then
      local from = i
      while from > 1 and lines[from - 1]:sub(1, 3) == "---" do
        from = from - 1
      end
      return table.concat(lines, "\n", from, i)
    end
  end
  error("meta.lua lacks " .. fn)
end

local function set_of(list)
  local s = {}
  for _, o in ipairs(list) do
    s[o[1]] = true
  end
  return s
end

describe("generated docs", function()
  local gen, files, api_md, meta

  setup(function()
    gen = assert(loadfile("docs/generate.lua"))("docs.generate")
    files = gen.build(onecli.endpoints)
    api_md = read(gen.API_PATH)
    meta = read(gen.META_PATH)
  end)

  it("docs/api.md is what docs/generate.lua produces (run lua5.4 docs/generate.lua)", function()
    local want = files[gen.API_PATH]
    assert(api_md == want, "docs/api.md is stale: " .. first_difference(want, api_md))
  end)

  it("lua/onecli/meta.lua is what docs/generate.lua produces", function()
    local want = files[gen.META_PATH]
    assert(meta == want, "lua/onecli/meta.lua is stale: " .. first_difference(want, meta))
  end)

  it("names every endpoint in both files", function()
    assert.is_true(#onecli.endpoints > 100)
    for _, ep in ipairs(onecli.endpoints) do
      local ns, method = gen.split_name(ep.name)
      local heading = (ns == "" and "client:" or ("client." .. ns .. ":")) .. method
      assert(api_md:find("\n### " .. heading .. "\n", 1, true), "api.md lacks " .. heading)
      assert(api_md:find("\n" .. gen.call_form(ep) .. "\n", 1, true), "api.md lacks the call form of " .. ep.name)
      assert(api_md:find("`" .. gen.route(ep) .. "`", 1, true), "api.md lacks the route of " .. ep.name)
      local stub = (ns == "" and "Client" or ("onecli_" .. ns:gsub("%.", "_"))) .. ":" .. method .. "("
      assert(meta:find("\nfunction " .. stub, 1, true), "meta.lua lacks " .. stub)
      assert(meta:find("Endpoint `" .. ep.name .. "`", 1, true), "meta.lua lacks " .. ep.name)
    end
  end)

  it("generates a call form that matches what the method accepts", function()
    local ep = client_mod.endpoint
    assert.are.equal("client.agents:get(agentId [, opts])", gen.call_form(ep["agents.get"]))
    assert.are.equal("client:health([opts])", gen.call_form(ep["health"]))
    assert.are.equal("client.connections:list([query [, opts]])", gen.call_form(ep["connections.list"]))
    assert.are.equal("client.agents:rename(agentId, body [, opts])", gen.call_form(ep["agents.rename"]))
    assert.are.equal("client.agents:rename(agentId, name [, opts])", gen.call_form(ep["agents.rename"], true))
    assert.are.equal("client.team:provision([body [, opts]])", gen.call_form(ep["team.provision"]))
    assert.are.equal("client.org.secrets:update(secretId, body [, opts])",
                     gen.call_form(ep["org.secrets.update"]))
    assert.are.equal("GET {gateway}/v1/approvals/pending", gen.route(ep["approvals.pending"]))
  end)

  it("documents binary bodies and answers, event streams and their types", function()
    local ep = client_mod.endpoint
    assert.are.equal("client.agents:set_image(agentId, bytes [, opts])", gen.call_form(ep["agents.set_image"]))
    assert.are.equal("client.conversations:upload_attachment(conversationId, bytes [, query [, opts]])",
                     gen.call_form(ep["conversations.upload_attachment"]))
    -- the call forms are what the methods accept
    local path, body, query = client_mod.parse_args(ep["conversations.upload_attachment"], 4,
      { "c1", "\0\1bytes", { name = "a.png" }, { timeout = 5 } })
    assert.are.equal("/conversations/c1/attachments", path)
    assert.are.equal("\0\1bytes", body)
    assert.are.equal("name=a.png", query)
    assert.has_error(function() client_mod.parse_args(ep["agents.set_image"], 2, { "a1", { x = 1 } }) end)

    local upload = section(api_md, "client.conversations:upload_attachment")
    assert.truthy(upload:find("- **Body**: required string of bytes", 1, true))
    assert.truthy(upload:find("`application/octet-stream`", 1, true))
    assert.truthy(upload:find("- **Query**: `{ name = }`", 1, true))
    assert.truthy(section(api_md, "client.agents:set_image"):find("- **Body**: required string of bytes", 1, true))
    assert.truthy(section(api_md, "client.conversations:get_attachment")
      :find("- **Returns**: string: the response body's bytes", 1, true))
    assert.truthy(section(api_md, "client.conversations:stream"):find("- **Returns**: `SseEvent[]`", 1, true))

    local s = stub_of(meta, "onecli_conversations:upload_attachment")
    assert.truthy(s:find("\n---@param bytes string ", 1, true))
    assert.truthy(s:find("\n---@param query? { name?: ", 1, true))
    assert.truthy(s:find("upload_attachment(conversationId, bytes, query, opts)", 1, true))
    assert.truthy(stub_of(meta, "onecli_agents:set_image"):find("set_image(agentId, bytes, opts)", 1, true))
    assert.truthy(stub_of(meta, "onecli_conversations:get_attachment"):find("\n---@return string result", 1, true))
    assert.truthy(stub_of(meta, "onecli_conversations:stream")
      :find("\n---@return onecli.SseEvent[] result", 1, true))
    assert(meta:find("\n---@class onecli.SseEvent\n", 1, true), "no class onecli.SseEvent")
    -- a lone table of options where the query goes: said once, in the reading guide
    assert.truthy(api_md:find("a table whose keys are all option names is taken as the options", 1, true))
  end)

  it("documents the iterator of every paginated list, after its page call", function()
    local ep = client_mod.endpoint
    assert.are.equal("client.org.members:each([query [, opts]])", gen.iterator_form(ep["org.members.list"]))
    assert.are.equal("client.org.groups:each_member(groupId [, query [, opts]])",
                     gen.iterator_form(ep["org.groups.members"]))
    assert.are.equal("client.conversations:each_event(conversationId [, query [, opts]])",
                     gen.iterator_form(ep["conversations.events"]))
    local client = onecli.new({ url = "http://127.0.0.1:9", api_key = "oc_docs_spec" })
    local n = 0
    for _, e in ipairs(onecli.endpoints) do
      if e.each then
        n = n + 1
        local ns = gen.split_name(e.name)
        local obj = client
        for part in ns:gmatch("[%w_]+") do
          obj = obj[part]
        end
        assert(type(obj[e.each]) == "function", "client." .. ns .. ":" .. e.each .. " does not exist")
        local page_h = "client." .. ns .. ":" .. select(2, gen.split_name(e.name))
        local h = "client." .. ns .. ":" .. e.each
        -- its own entry, right after the page call's
        local page_at = assert(api_md:find("\n### " .. page_h .. "\n", 1, true))
        local at = api_md:find("\n### " .. h .. "\n", 1, true)
        assert(at, "api.md lacks " .. h)
        assert.are.equal(at, api_md:find("\n### ", page_at + 1, true), h .. " does not follow " .. page_h)
        local text = section(api_md, h)
        assert(text:find("\n" .. gen.iterator_form(e) .. "\n", 1, true), "no call form for " .. h)
        for _, says in ipairs({ "raise = false", "`false, err` once", "`callback`", "`limit` is the page size",
                                e.paginate == "cursor" and "`nextCursor`" or "`nextSince`" }) do
          assert(text:find(says, 1, true), h .. " does not mention " .. says)
        end
        -- the namespace's table lists it; the page call's Returns names the page and links it
        assert(api_md:find("| [`:" .. e.each .. "`](#" .. gen.slug(h) .. ") |", 1, true), "no row for " .. h)
        local page = section(api_md, page_h)
        assert(page:find("](#" .. gen.slug(h) .. ")", 1, true), page_h .. " does not link " .. h)
        assert(page:find(e.paginate == "cursor" and "nextCursor: string|null" or "nextSince: integer", 1, true))
        -- meta.lua: a method returning an iterator function
        local s = stub_of(meta, "onecli_" .. ns:gsub("%.", "_") .. ":" .. e.each)
        assert(s:find("Iterator of endpoint `" .. e.name .. "`", 1, true))
        assert(s:find("\n%-%-%-@return fun%(%): [%w_.]+|false|nil, onecli%.Error%? "), "no iterator type for " .. h)
      end
    end
    assert.is_true(n >= 5)
    assert.truthy(stub_of(meta, "onecli_org_members:each"):find("fun(): onecli.Member|false|nil", 1, true))
    client:close()
  end)

  it("meta.lua compiles, and loading it changes nothing", function()
    local chunk = assert(loadfile(gen.META_PATH))
    local before = onecli.new
    local stubs = chunk()
    assert.is_table(stubs)
    assert.is_function(stubs.new)
    assert.are.equal(before, require("onecli").new)
    assert.is_table(require("onecli.meta"))
  end)

  it("meta.lua declares the client, its options, the error and the object shapes", function()
    for _, class in ipairs({ "onecli", "onecli.Client", "onecli.Options", "onecli.CallOptions",
                             "onecli.Error", "onecli.ApprovalRunner", "onecli.Batch" }) do
      assert(meta:find("\n---@class " .. class .. "\n", 1, true), "no class " .. class)
    end
    for _, obj in ipairs(gen.OBJECTS) do
      assert(meta:find("\n---@class onecli." .. obj[1] .. "\n", 1, true), "no class for " .. obj[1])
    end
    for _, shape in ipairs({ "Agent", "Secret", "SecretCreated", "Rule", "Connection", "App", "User",
                             "BlocklistHostState", "PermissionDefinition", "ContainerConfig",
                             "GranularAccessEntry", "PendingApproval", "Grants", "Workspace" }) do
      assert(meta:find("\n---@class onecli." .. shape .. "\n", 1, true), "no class for " .. shape)
    end
    -- every namespace is a class and a field of its parent
    local client = onecli.new({ url = "http://127.0.0.1:9", api_key = "oc_docs_spec" })
    for _, ep in ipairs(onecli.endpoints) do
      local ns = gen.split_name(ep.name)
      if ns ~= "" then
        assert(meta:find("\n---@class onecli." .. ns .. "\n", 1, true), "no class onecli." .. ns)
        local parent, child = ns:match("^(.+)%.([%w_]+)$")
        if parent then
          assert(meta:find("\n---@field " .. child .. " onecli." .. ns .. "\n", 1, true))
        else
          assert(meta:find("\n---@field " .. ns .. " onecli." .. ns .. "\n", 1, true))
        end
      end
    end
    for _, a in ipairs(gen.ALIASES) do
      assert.are.equal(client[a[2]], client[a[1]])
      assert(meta:find("\n---@field " .. a[1] .. " onecli." .. a[2] .. " ", 1, true))
    end
    client:close()
  end)

  it("every error field the core sets is documented", function()
    local err = require("onecli.core").normalize("GET", "/v1/agents", 429,
      { ["retry-after"] = "3", ["x-request-id"] = "req_1" },
      '{"error":{"message":"Slow down","type":"rate_limit_error","code":"rate_limited"}}')
    for k in pairs(err) do
      assert(meta:find("\n---@field " .. k .. " ", 1, true), "onecli.Error lacks " .. k)
    end
  end)

  it("documents exactly the client's and the calls' options", function()
    local config = require("onecli.config")
    assert.are.same(key_set(config.CLIENT_OPTIONS), set_of(gen.CLIENT_OPTIONS))
    assert.are.same(key_set(config.CALL_OPTIONS), set_of(gen.CALL_OPTIONS))
    local samples = {
      project_id = "proj_1", workspace_id = "ws_1", timeout = 5, connect_timeout = 2,
      max_retries = 1, deadline = 9,
      headers = { ["X-Test"] = "1" }, raise = false, callback = function() end,
      meta = true, on_request = function() end, on_response = function() end,
    }
    local ep = client_mod.endpoint["secrets.list"]
    for _, o in ipairs(gen.CALL_OPTIONS) do
      local v = samples[o[1]]
      assert(v ~= nil, "no sample for " .. o[1])
      local ok, msg = pcall(client_mod.parse_args, ep, 1, { { [o[1]] = v } })
      assert(ok, msg)
    end
    assert.has_error(function() client_mod.parse_args(ep, 1, { { bogus = true } }) end)
  end)

  it("every shape named in RETURNS is an object shape, for an existing endpoint", function()
    local known = {}
    for _, obj in ipairs(gen.OBJECTS) do
      known[obj[1]] = true
    end
    for name, shape in pairs(gen.RETURNS) do
      assert(client_mod.endpoint[name], "RETURNS names no endpoint: " .. name)
      for n in shape:gmatch("onecli%.([%w_]+)") do
        assert(known[n] or n == "null", "unknown shape " .. n .. " for " .. name)
      end
    end
    for _, obj in ipairs(gen.OBJECTS) do
      for _, f in ipairs(obj[3]) do
        for n in f[2]:gmatch("onecli%.([%w_]+)") do
          assert(known[n] or n == "null", "unknown shape " .. n .. " in " .. obj[1])
        end
      end
    end
  end)

  it("the hand-written helpers it documents exist", function()
    local client = onecli.new({ url = "http://127.0.0.1:9", api_key = "oc_docs_spec" })
    local names = {
      "client.agents.ensure", "client.approvals.runner", "client.approvals.run", "client.batch",
      "client.batch_start",
      "client.request", "client.close", "client.has_api_key", "client.gateway_origin",
      "client.container_config", "onecli.docker_args", "onecli.try", "onecli.array",
      "onecli.is_error", "onecli.setup", "onecli.docker_command", "onecli.shell_quote",
      "client.gateway_env", "client.run", "client.gateway_proxy", "client.as_agent",
      "onecli.env_list", "onecli.env_command",
    }
    local roots = { client = client, onecli = onecli }
    local things = {}
    for _, name in ipairs(names) do
      local v = roots[name:match("^%a+")]
      for part in name:gmatch("%.([%w_]+)") do
        v = v and v[part]
      end
      assert(type(v) == "function", name .. " is documented but missing")
      things[name] = true
    end
    assert.is_not_nil(onecli.null)
    assert.are.equal("[]", onecli.json_encode(onecli.empty_array))
    for _, helper in ipairs(gen.HELPERS) do
      if helper.check ~= "transports" then
        assert(things[helper.check], "HELPERS names an unchecked helper: " .. helper.check)
      end
    end
    for _, mod in ipairs({ "onecli.transport.resty", "onecli.transport.nvim",
                             "onecli.transport.uv", "onecli.handle" }) do
      local f = io.open("lua/" .. mod:gsub("%.", "/") .. ".lua")
      assert(f, mod .. " is documented but missing")
      f:close()
    end
    client:close()
  end)

  it("has no dangling links inside docs/api.md", function()
    local anchors = {}
    for heading in api_md:gmatch("\n#+ ([^\n]+)") do
      anchors[gen.slug(heading)] = true
    end
    for target in api_md:gmatch("%]%(#([^)]+)%)") do
      assert(anchors[target], "docs/api.md links to a missing #" .. target)
    end
  end)
end)
