-- /secrets routes (reference §6.3, messages §9.3). The organization's
-- secrets (/org/secrets*, onecli.standin.org) use the `scoped` handlers.
local json = require("onecli.standin.json")
local util = require("onecli.standin.util")
local reply = require("onecli.standin.reply")
local store = require("onecli.standin.store")
local v = require("onecli.standin.validate")

local obj, array, null, typeof = json.obj, json.array, json.null, json.typeof
local ipairs, pairs, next, concat, rep, format = ipairs, pairs, next, table.concat, string.rep, string.format

local ORG = "organization"

local function holder(ctx, scope)
  if scope == ORG then return ctx.org end
  return ctx.state
end

local GENERIC_MSG = "Header name, parameter name, or URL path template is required for generic secrets"
local PATH_VALUE_MSG = "Secret value can't contain / ? # % whitespace or control characters "
  .. "when injected into the URL path"

local TYPE_LABELS = { anthropic = "Anthropic API Key", openai = "OpenAI", generic = "Generic Secret" }

------------------------------------------------------------------------------
-- hostPattern rules (v1.39+)
------------------------------------------------------------------------------

local MULTI_LABEL_SUFFIXES = {
  ["co.uk"] = true, ["org.uk"] = true, ["com.au"] = true, ["co.jp"] = true, ["com.br"] = true,
  ["amazonaws.com"] = true, ["s3.amazonaws.com"] = true, ["cloudfront.net"] = true,
  ["github.io"] = true, ["githubusercontent.com"] = true, ["herokuapp.com"] = true,
  ["vercel.app"] = true, ["netlify.app"] = true, ["pages.dev"] = true, ["workers.dev"] = true,
  ["appspot.com"] = true, ["azurewebsites.net"] = true, ["blogspot.com"] = true,
  ["firebaseapp.com"] = true, ["web.app"] = true, ["fly.dev"] = true, ["onrender.com"] = true,
}

local function wildcard_ok(s)
  return not s:find("*", 1, true) or s:match("^%*%.[^*]+$") ~= nil
end

local function not_public_suffix(s)
  local rest = s:match("^%*%.(.+)$")
  if not rest then return true end
  rest = rest:lower()
  return rest:find(".", 1, true) ~= nil and not MULTI_LABEL_SUFFIXES[rest]
end

local function host_pattern()
  return v.string():trim():min(1, "Host pattern is required"):max(1000)
    :refine(function(s) return not s:find("://", 1, true) end,
      "Enter a hostname, not a URL (remove http:// or https://)")
    :refine(function(s) return not s:find("/", 1, true) end,
      "Enter a hostname only, not a path (use the path pattern field for paths)")
    :refine(function(s) return not s:find("%s") end, "Host pattern must not contain spaces")
    :refine(wildcard_ok, "Wildcards are only allowed as a leading subdomain, e.g. *.example.com")
    :refine(not_public_suffix,
      "A wildcard can't cover a public suffix like *.com; use a specific domain, e.g. *.example.com")
end

------------------------------------------------------------------------------
-- injectionConfig: exactly one variant, unknown keys rejected
------------------------------------------------------------------------------

-- Rough check of a JavaScript regular expression.
local function valid_regex(s)
  local depth, in_class, i, prev = 0, false, 1, nil
  while i <= #s do
    local c = s:sub(i, i)
    if c == "\\" then
      if i == #s then return false end
      i, prev = i + 1, "atom"
    elseif in_class then
      if c == "]" then in_class, prev = false, "atom" end
    elseif c == "[" then
      in_class = true
    elseif c == "(" then
      depth, prev = depth + 1, "open"
    elseif c == ")" then
      depth = depth - 1
      if depth < 0 then return false end
      prev = "atom"
    elseif c == "|" then
      prev = "open"
    elseif c:match("[*+?{]") and (prev == nil or prev == "open") then
      return false
    else
      prev = "atom"
    end
    i = i + 1
  end
  return depth == 0 and not in_class
end

local function count_value(s)
  local _, n = s:gsub("{value}", "")
  return n
end

local VARIANTS = {
  { "headerName", v.object({
    { "headerName", v.string():trim():min(1) },
    { "valueFormat", v.string():optional() },
  }, { strict = true }) },
  { "paramName", v.object({
    { "paramName", v.string():trim():min(1) },
    { "paramFormat", v.string():optional() },
  }, { strict = true }) },
  { "pathTemplate", v.object({
    { "pathTemplate", v.string()
      :refine(function(s) return s:sub(1, 1) == "/" end, "Path template must start with /")
      :refine(function(s) return count_value(s) == 1 end, "Path template must contain {value} exactly once") },
  }, { strict = true }) },
  { "pathRegex", v.object({
    { "pathRegex", v.string():min(1):refine(valid_regex, "Invalid regular expression") },
    { "pathReplacement", v.string()
      :refine(function(s) return count_value(s) >= 1 end, "Replacement must include {value} (where the secret goes)") },
  }, { strict = true }) },
}

local function normalize_injection(c)
  if c.headerName then return obj("headerName", c.headerName, "valueFormat", c.valueFormat or "{value}") end
  if c.paramName then return obj("paramName", c.paramName, "paramFormat", c.paramFormat or "{value}") end
  if c.pathTemplate then return obj("pathTemplate", c.pathTemplate) end
  return obj("pathRegex", c.pathRegex, "pathReplacement", c.pathReplacement)
end

local function parse_injection(value)
  if typeof(value) ~= "object" then return false, "Invalid input" end
  for _, variant in ipairs(VARIANTS) do
    if value[variant[1]] ~= nil then
      local ok, res = variant[2]:parse(value)
      if not ok then return false, res end
      return true, normalize_injection(res)
    end
  end
  return false, "Invalid input"
end

local function injection() return v.custom(parse_injection, "object"):optional():nullable() end

local function op_ref()
  return v.string():refine(function(s) return s:match("^op://[^/]+/[^/]+/[^/].*$") ~= nil end,
    "Must be a 1Password reference (op://vault/item/field)")
end

local OP_DISPLAY = v.object({ { "vault", v.string() }, { "item", v.string() }, { "field", v.string() } })

local CREATE = v.object({
  { "name", v.string():trim():min(1):max(255) },
  { "type", v.enum({ "anthropic", "openai", "generic" }) },
  { "valueSource", v.enum({ "inline", "onepassword" }):optional() },
  { "value", v.string():max(10000):optional() },
  { "opRef", op_ref():optional() },
  { "opDisplay", OP_DISPLAY:optional() },
  { "hostPattern", host_pattern() },
  { "pathPattern", v.string():max(1000):optional():nullable() },
  { "injectionConfig", injection() },
})

local PATCH = v.object({
  { "name", v.string():trim():min(1):max(255):optional() },
  { "valueSource", v.enum({ "inline", "onepassword" }):optional() },
  { "value", v.string():max(10000):optional() },
  { "opRef", op_ref():optional() },
  { "opDisplay", OP_DISPLAY:optional() },
  { "hostPattern", host_pattern():optional() },
  { "pathPattern", v.string():max(1000):optional():nullable() },
  { "injectionConfig", injection() },
})

------------------------------------------------------------------------------
-- Values, previews, metadata
------------------------------------------------------------------------------

local BULLET = "\226\128\162" -- U+2022

local function preview(value)
  local chars = util.uchars(value)
  if #chars <= 8 then return rep(BULLET, #chars) end
  return concat(chars, "", 1, 4) .. rep(BULLET, 8) .. concat(chars, "", #chars - 3, #chars)
end

local function is_path_injection(c)
  return c ~= nil and c ~= null and (c.pathTemplate ~= nil or c.pathRegex ~= nil)
end

-- openai: raw key, {"auth_mode":"apikey","OPENAI_API_KEY":…} (unwrapped) or a
-- Codex auth.json with OAuth tokens. Returns value, host, metadata.
local function openai_value(value)
  local doc = json.decode(value)
  if typeof(doc) == "object" then
    if doc.auth_mode == "apikey" and typeof(doc.OPENAI_API_KEY) == "string" then
      return doc.OPENAI_API_KEY, "api.openai.com", obj("authMode", "api-key")
    end
    if typeof(doc.tokens) == "object" then
      local account = typeof(doc.tokens.account_id) == "string" and doc.tokens.account_id or nil
      return value, "chatgpt.com", obj("authMode", "oauth", "accountId", account)
    end
  end
  return value, "api.openai.com", obj("authMode", "api-key")
end

local function derive(secret)
  if secret.value_source == "onepassword" then
    if secret.type == "anthropic" then secret.host_pattern = "api.anthropic.com" end
    if secret.type == "openai" then secret.host_pattern = "api.openai.com" end
    local auth = secret.type ~= "generic" and "api-key" or nil
    secret.metadata = (auth or secret.op_display) and obj("authMode", auth, "opDisplay", secret.op_display) or nil
  elseif secret.type == "anthropic" then
    local oauth = secret.value:sub(1, 10) == "sk-ant-oat"
    secret.metadata = obj("authMode", oauth and "oauth" or "api-key")
  elseif secret.type == "openai" then
    secret.value, secret.host_pattern, secret.metadata = openai_value(secret.value)
  else
    secret.metadata = nil
  end
end

local function scope_name(secret, mode)
  if secret.scope == ORG then return "organization" end
  return mode == "v1" and "project" or "workspace"
end

local function list_item(s, mode)
  return obj("id", s.id, "name", s.name, "type", s.type, "valueSource", s.value_source,
    "opRef", s.op_ref or null, "hostPattern", s.host_pattern, "pathPattern", s.path_pattern or null,
    "injectionConfig", s.injection or null, "metadata", s.metadata or null, "scope", scope_name(s, mode),
    "createdAt", s.created_at, "typeLabel", TYPE_LABELS[s.type])
end

local function clean_path(p)
  if p == nil or p == null or p == "" then return nil end
  return p
end

------------------------------------------------------------------------------
-- Handlers
------------------------------------------------------------------------------

-- A project lists its own secrets and the organization's.
local function list(ctx, scope)
  local secrets
  if scope == ORG then
    secrets = store.newest_first(ctx.org.secrets)
  else
    secrets = store.with_org(ctx.state, "secrets")
  end
  local out = array()
  for _, s in ipairs(secrets) do out[#out + 1] = list_item(s, ctx.mode) end
  return reply.ok(out)
end

-- Object-level refinements, then service rules. Returns an error reply or nil.
local function check_create(body)
  local source = body.valueSource or "inline"
  if source == "inline" and (body.value == nil or body.value == "") then
    return reply.flat(400, "Secret value is required")
  end
  if source == "onepassword" and body.opRef == nil then return reply.flat(400, "Select a 1Password field") end
  local inj = body.injectionConfig
  if body.type == "generic" and (inj == nil or inj == null) then return reply.bad_request(GENERIC_MSG) end
  if body.type == "generic" and source == "inline" and is_path_injection(inj)
    and body.value:find("[/?#%%%s%c]") then
    return reply.bad_request(PATH_VALUE_MSG)
  end
  return nil
end

local function create(ctx, scope)
  local ok, body = CREATE:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  local source = body.valueSource or "inline"
  if scope == ORG and source == "onepassword" then
    return reply.bad_request(format("1Password is only available for %s-scoped secrets",
      ctx.mode == "v1" and "project" or "workspace"))
  end
  local err = check_create(body)
  if err then return err end
  local h = holder(ctx, scope)
  local secret = {
    id = util.uuid4(), seq = store.next_seq(h), created_at = util.iso(), scope = scope == ORG and ORG or nil,
    name = body.name, type = body.type, value_source = source,
    value = source == "inline" and body.value or nil,
    op_ref = source == "onepassword" and body.opRef or nil, op_display = body.opDisplay,
    host_pattern = body.hostPattern, path_pattern = clean_path(body.pathPattern),
    injection = body.type == "generic" and body.injectionConfig or nil,
  }
  derive(secret)
  h.secrets[#h.secrets + 1] = secret
  return reply.created(obj("id", secret.id, "name", secret.name, "type", secret.type,
    "valueSource", secret.value_source, "opRef", secret.op_ref or null, "hostPattern", secret.host_pattern,
    "pathPattern", secret.path_pattern or null, "createdAt", secret.created_at,
    "preview", secret.value and preview(secret.value) or nil,
    "attachedAgents", ctx.mode == "v2" and array() or nil))
end

-- Service-level PATCH rules; returns an error reply or the list of updates.
local function collect_updates(secret, body)
  local updates = {}
  if body.name ~= nil then updates.name = body.name end
  if body.value ~= nil then
    if body.value == "" then return nil, reply.bad_request("Secret value is required") end
    updates.value = body.value
  end
  if body.valueSource ~= nil then updates.value_source = body.valueSource end
  if body.opRef ~= nil then updates.op_ref = body.opRef end
  if body.opDisplay ~= nil then updates.op_display = body.opDisplay end
  if body.hostPattern ~= nil then updates.host_pattern = body.hostPattern end
  if body.pathPattern ~= nil then updates.path_pattern = body.pathPattern end
  if body.injectionConfig ~= nil and secret.type == "generic" then
    if body.injectionConfig == null then return nil, reply.bad_request(GENERIC_MSG) end
    updates.injection = body.injectionConfig
  end
  if next(updates) == nil then return nil, reply.bad_request("No fields to update") end
  local source = updates.value_source or secret.value_source
  if source == "inline" and not (updates.value or secret.value) then
    return nil, reply.bad_request("Secret value is required")
  end
  if source == "onepassword" and not (updates.op_ref or secret.op_ref) then
    return nil, reply.bad_request("Select a 1Password field")
  end
  return updates
end

local function patch(ctx, scope)
  local ok, body = PATCH:parse(ctx.body)
  if not ok then return reply.flat(400, body) end
  if #json.keys(body) == 0 then return reply.flat(400, "At least one field must be provided") end
  local secret = store.find(holder(ctx, scope).secrets, ctx.params.id)
  if not secret then return reply.not_found("Secret not found") end
  local updates, err = collect_updates(secret, body)
  if not updates then return err end
  for k, val in pairs(updates) do secret[k] = val end
  if updates.path_pattern ~= nil then secret.path_pattern = clean_path(updates.path_pattern) end
  if secret.value_source == "onepassword" then secret.value = nil else secret.op_ref = nil end
  if updates.value or updates.value_source then derive(secret) end
  return reply.success()
end

local function delete(ctx, scope)
  if not store.remove(holder(ctx, scope).secrets, ctx.params.id) then return reply.not_found("Secret not found") end
  store.remove_everywhere(ctx.org, "secret_ids", ctx.params.id)
  return reply.no_content()
end

local function project(fn) return function(ctx) return fn(ctx, nil) end end

local routes = {
  { method = "GET", pattern = "/secrets", auth = "project", handler = project(list), body = false },
  { method = "POST", pattern = "/secrets", auth = "project", handler = project(create) },
  { method = "PATCH", pattern = "/secrets/:id", auth = "project", handler = project(patch) },
  { method = "DELETE", pattern = "/secrets/:id", auth = "project", handler = project(delete), body = false },
}

routes.scoped = { list = list, create = create, patch = patch, delete = delete }

return routes
