-- Replays every recorded exchange of captures/v2.0.1-routes (reference
-- §14: the v2.0.1 routes beyond the v1 surface) against a fresh v2
-- stand-in, unlicensed and without a runner like the recording server,
-- and compares status, header names, stable headers, exact error bodies
-- and the shape of success bodies.
--
-- Each capture is claimed by exactly one area file, spec/routes/<area>.lua,
-- which says what state it was recorded in (setup) or, with a reason, why
-- it is skipped; the first test checks that the claims and the files agree.
--
--   busted --lua=lua5.4 spec/routes_replay_spec.lua [--filter=skills-]
local json = require("onecli.standin.json")
local client = require("onecli.standin.client")
local launcher = require("onecli.standin.launcher")
local captures = require("support.captures")

local format = string.format

local LUA = rawget(_G, "jit") and "luajit" or "lua5.4"
local DIR = "v2.0.1-routes"
local AREAS = { "workspace", "enterprise", "hosted", "machine" }

-- What the recording server used that the stand-in replaces.
local RECORDED_WORKSPACE = "idpryhghxocgppgn"
local RECORDED_ORIGINS = { "http://127.0.0.1:10256", "http://127.0.0.1:10254" }

-- A 1x1 PNG of 69 bytes: what "<binary body: 69 bytes, a 1x1 PNG>" was.
local PNG_1X1 = "\137\80\78\71\13\10\26\10\0\0\0\13\73\72\68\82\0\0\0\1\0\0\0\1\8\2\0\0\0\144\119\83\222"
  .. "\0\0\0\12\73\68\65\84\120\1\99\248\207\192\0\0\3\1\1\0\219\125\46\188\0\0\0\0\73\69\78\68\174\66\96\130"
assert(#PNG_1X1 == 69)

------------------------------------------------------------------------------
-- Comparison (as spec/standin_spec.lua does for v1.41.0 and v2.0.1)
------------------------------------------------------------------------------

local UUID4 = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-4%x%x%x%-[89ab]%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local UUID = "^%x%x%x%x%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%-%x%x%x%x%x%x%x%x%x%x%x%x$"
local ISO = "^%d%d%d%d%-%d%d%-%d%dT%d%d:%d%d:%d%d%.%d%d%dZ$"

local function plain_escape(s) return (s:gsub("[%-%.%+%[%]%(%)%$%^%%%?%*]", "%%%0")) end

local function substitute(text, map)
  if not text then return text end
  for from, to in pairs(map) do text = text:gsub(plain_escape(from), (to:gsub("%%", "%%%%"))) end
  return text
end

-- Expected values that differ per run: uuids, timestamps, placeholders.
local function volatile_ok(expected, actual)
  if expected:match(UUID) then return type(actual) == "string" and actual:match(UUID) ~= nil end
  if expected:match(ISO) then return type(actual) == "string" and actual:match(ISO) ~= nil end
  local prefix = expected:match("^(.-)<[%u_]+>$")
  if prefix then
    return type(actual) == "string" and actual:sub(1, #prefix) == prefix
      and actual:sub(#prefix + 1):match("^%x+$") ~= nil
  end
  return nil
end

local VOLATILE_KEYS = { version = true }

local function shape_diff(expected, actual, path, key)
  local te, ta = json.typeof(expected), json.typeof(actual)
  if te ~= ta then return format("%s: expected %s, got %s", path, te, ta) end
  if te == "array" then
    if #expected ~= #actual then return format("%s: expected %d items, got %d", path, #expected, #actual) end
    for i = 1, #expected do
      local d = shape_diff(expected[i], actual[i], path .. "[" .. i .. "]")
      if d then return d end
    end
  elseif te == "object" then
    for k, v in pairs(expected) do
      local d = shape_diff(v, actual[k], path .. "." .. k, k)
      if d then return d end
    end
    for k in pairs(actual) do
      if expected[k] == nil then return format("%s: unexpected key %s", path, k) end
    end
  elseif te == "string" then
    if VOLATILE_KEYS[key] then return nil end
    local v = volatile_ok(expected, actual)
    if v == false then return format("%s: %q does not look like %q", path, actual, expected) end
    if v == nil and expected ~= actual then return format("%s: expected %q, got %q", path, expected, actual) end
  elseif expected ~= actual then
    return format("%s: expected %s, got %s", path, tostring(expected), tostring(actual))
  end
  return nil
end

local STABLE_HEADERS = {
  "content-type", "vary", "keep-alive", "connection", "transfer-encoding", "cache-control", "allow",
  "access-control-allow-credentials", "access-control-allow-headers", "access-control-allow-methods",
  "deprecation", "link", "x-content-type-options", "content-disposition",
}

local function header_names(headers)
  local names = {}
  for name in pairs(headers) do
    if name ~= "date" then names[#names + 1] = name end
  end
  table.sort(names)
  return table.concat(names, ",")
end

local function check_headers(cap, res)
  local exp = cap.response.headers
  assert.are.equal(header_names(exp), header_names(res.headers), "header names")
  for _, name in ipairs(STABLE_HEADERS) do
    if exp[name] then assert.are.equal(exp[name], res.headers[name], "header " .. name) end
  end
  if exp["x-request-id"] then
    assert.truthy((res.headers["x-request-id"] or ""):match(UUID4), "x-request-id is a uuid v4")
  end
end

local function check_body(cap, res, map)
  local expected_text = substitute(cap.response.body, map)
  local n = expected_text:match("^<binary body: (%d+) bytes")
  if n then
    assert.are.equal(tonumber(n), #res.body, "binary body length")
    return
  end
  local ctype = cap.response.headers["content-type"] or ""
  if not ctype:find("json", 1, true) then
    assert.are.equal(expected_text, res.body)
    return
  end
  local expected = assert(json.decode(expected_text), "capture body is JSON")
  local actual = json.decode(res.body)
  assert(actual ~= nil, "stand-in body is not JSON: " .. res.body)
  if cap.response.status >= 400 then
    assert(json.equal(expected, actual), format("error body\nexpected: %s\n     got: %s",
      json.encode(expected), res.body))
  else
    local diff = shape_diff(expected, actual, "$")
    assert(diff == nil, tostring(diff) .. "\n     got: " .. res.body)
  end
end

------------------------------------------------------------------------------
-- Replay
------------------------------------------------------------------------------

local ALL = captures.all({ DIR })
local BY_NAME = {}
for _, cap in ipairs(ALL) do BY_NAME[cap.name] = cap end

-- The request body as sent: recorded binary bodies are rebuilt, and
-- "<empty body>" is none.
local function request_body(body, map)
  if not body or body == "<empty body>" then return nil end
  local n, what = body:match("^<binary body: (%d+) bytes(.-)>$")
  if n then
    n = tonumber(n)
    if what:find("PNG", 1, true) then
      assert(n == #PNG_1X1, "a recorded PNG of another size")
      return PNG_1X1
    end
    return string.rep("\0", n)
  end
  return substitute(body, map)
end

local function send(srv, method, path, body, headers)
  headers = headers or { { "Authorization", "Bearer " .. srv.api_key } }
  local h = {}
  for i, x in ipairs(headers) do h[i] = x end
  local raw = body
  if body ~= nil and type(body) ~= "string" then
    raw = json.encode(body)
    h[#h + 1] = { "Content-Type", "application/json" }
  end
  local res = assert(client.request(srv.port, { method = method, path = path, headers = h, body = raw,
    timeout = 5 }))
  return res.status, json.decode(res.body), res
end

local function base_map(srv, info)
  local map = {
    ["$ONECLI_API_KEY"] = info.api_key, ["$KEY"] = info.api_key, ["$ORGKEY"] = info.org_key,
    [RECORDED_WORKSPACE] = info.project_id,
  }
  for _, origin in ipairs(RECORDED_ORIGINS) do map[origin] = srv.origin end
  return map
end

local function replay(srv, cap, map)
  local r = cap.request
  local headers = {}
  for name, value in pairs(r.headers) do headers[#headers + 1] = { name, substitute(value, map) } end
  local conn = assert(client.connect("127.0.0.1", srv.port, { timeout = 10 }))
  local res, err = conn:request({
    method = r.method, path = substitute(r.path, map), headers = headers, body = request_body(r.body, map),
  })
  conn:close()
  assert(res, "no response: " .. tostring(err))
  return res
end

local function load_areas()
  local claims, owner, errors = {}, {}, {}
  for _, area in ipairs(AREAS) do
    local ok, tbl = pcall(require, "routes." .. area)
    if not ok then
      errors[#errors + 1] = "spec/routes/" .. area .. ".lua: " .. tostring(tbl)
    else
      for name, entry in pairs(tbl) do
        if owner[name] then
          errors[#errors + 1] = format("%s is claimed by %s and %s", name, owner[name], area)
        end
        owner[name], claims[name] = area, entry
      end
    end
  end
  return claims, owner, errors
end

local CLAIMS, OWNER, LOAD_ERRORS = load_areas()

describe("the v2.0.1-routes captures", function()
  it("are many, and each is claimed by exactly one area file", function()
    assert.is_true(#ALL >= 228)
    local problems = {}
    for _, e in ipairs(LOAD_ERRORS) do problems[#problems + 1] = e end
    for _, cap in ipairs(ALL) do
      if not CLAIMS[cap.name] then problems[#problems + 1] = cap.name .. " is claimed by no area" end
    end
    for name, area in pairs(OWNER) do
      if not BY_NAME[name] then problems[#problems + 1] = format("%s (%s) is not a capture", name, area) end
    end
    table.sort(problems)
    assert.are.same({}, problems)
  end)
end)

describe("stand-in replays captures/" .. DIR, function()
  local srv

  setup(function()
    srv = launcher.start({ mode = "v2", lua = LUA, max_lifetime = 600 })
  end)

  teardown(function()
    if srv then srv:stop() end
  end)

  for _, cap in ipairs(ALL) do
    local entry = CLAIMS[cap.name]
    local key = DIR .. "/" .. cap.name
    if entry and entry.skip then
      pending(key .. " (skipped: " .. entry.skip .. ")")
    elseif entry then
      it(key, function()
        local info = srv:reset()
        local map = base_map(srv, info)
        if entry.setup then
          entry.setup({
            srv = srv, map = map, json = json,
            call = function(method, path, body, headers) return send(srv, method, path, body, headers) end,
            capture = function(name) return assert(BY_NAME[name], "no capture " .. name) end,
          })
        end
        local res = replay(srv, cap, map)
        assert.are.equal(cap.response.status, res.status, "status (body: " .. res.body:sub(1, 400) .. ")")
        check_headers(cap, res)
        check_body(cap, res, map)
      end)
    end
  end
end)
