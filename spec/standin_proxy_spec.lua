-- The stand-in gateway's forward proxy (onecli.standin.proxy), end to end on
-- 127.0.0.1: a launched stand-in (v2 and v1), an upstream echo server
-- (onecli.standin.upstream), curl as a child process and raw luasocket
-- requests. The agent's token comes from the container config, as a client
-- gets it. No assertion message ever contains the token or the secret.
local launcher = require("onecli.standin.launcher")
local upstream = require("onecli.standin.upstream")
local client = require("onecli.standin.client")
local json = require("onecli.standin.json")
local socket = require("socket")

-- the interpreter of the stand-in and the upstream (the suite's convention)
local LUA = rawget(_G, "jit") and "luajit" or "lua5.4"
local SECRET = "sk-upstream-" .. string.rep("5ec2", 8)
local IDENTIFIER = "proxy-agent"

local function b64(s)
  local alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
  local out = {}
  for i = 1, #s, 3 do
    local a, b, c = s:byte(i, i + 2)
    local n = a * 65536 + (b or 0) * 256 + (c or 0)
    local quad = {}
    for j = 3, 0, -1 do
      local k = math.floor(n / 64 ^ j) % 64
      quad[#quad + 1] = alphabet:sub(k + 1, k + 1)
    end
    if not b then quad[3], quad[4] = "=", "=" elseif not c then quad[4] = "=" end
    out[#out + 1] = table.concat(quad)
  end
  return table.concat(out)
end

local function sh(cmd)
  local p = assert(io.popen(cmd .. " 2>/dev/null", "r"))
  local out = p:read("*a")
  p:close()
  return out
end

local function has_curl()
  return sh("command -v curl") ~= ""
end

-- curl -i output -> status, headers (lower-case map), body of the last
-- answer (skipping CONNECT's 200 and 100 Continue).
local function parse_curl(out)
  local head, body
  repeat
    head, body = out:match("^(.-)\r?\n\r?\n(.*)$")
    if not head then return nil, {}, out end
    local interim = head:match("^HTTP/%d[%.%d]* 1%d%d") or head:match("^HTTP/%d[%.%d]* 200 Connection [Ee]stablished")
    if interim then out = body end
  until not interim
  local status = tonumber(head:match("^HTTP/%d[%.%d]* (%d%d%d)"))
  local headers = {}
  for name, value in head:gmatch("\n([^:\r\n]+):%s*([^\r\n]*)") do headers[name:lower()] = value end
  return status, headers, body
end

local function decode(body)
  return json.decode(body or "")
end

for _, mode in ipairs({ "v2", "v1" }) do
  describe("stand-in gateway proxy (" .. mode .. ")", function()
    local srv, up, token, agent, secret_id, rules, auth

    -- An API call as a client makes it; returns status, decoded body.
    local function api(method, path, body)
      local headers = { { "Authorization", "Bearer " .. srv.api_key } }
      if body ~= nil then headers[#headers + 1] = { "Content-Type", "application/json" } end
      local res = assert(srv:raw(method, "/v1" .. path, headers, body ~= nil and json.encode(body) or nil))
      return res.status, decode(res.body), res
    end

    local function created(method, path, body)
      local status, data = api(method, path, body)
      assert(status >= 200 and status < 300, method .. " " .. path .. ": " .. tostring(status))
      return data
    end

    -- A request to the gateway's approvals API (origin-form).
    local function gateway_api(method, path, body)
      local headers = { { "Authorization", "Bearer " .. srv.api_key } }
      if body ~= nil then headers[#headers + 1] = { "Content-Type", "application/json" } end
      local res = assert(client.request(srv.gateway_port, { method = method, path = path, headers = headers,
        body = body and json.encode(body), timeout = 10 }))
      return res.status, decode(res.body), res
    end

    local function gw_connect()
      return assert(client.connect("127.0.0.1", srv.gateway_port, { timeout = 10 }))
    end

    -- One proxied request on its own connection (raw luasocket).
    local function proxied(method, path, opts)
      opts = opts or {}
      local headers = { { "Host", "127.0.0.1:" .. up.port } }
      if opts.auth ~= false then headers[#headers + 1] = { "Proxy-Authorization", opts.auth or auth } end
      for _, h in ipairs(opts.headers or {}) do headers[#headers + 1] = h end
      local conn = gw_connect()
      local res, err = conn:request({ method = method, path = opts.url or (up.url .. path), headers = headers,
        body = opts.body, chunked = opts.chunked, keepalive = false, timeout = opts.timeout or 10 })
      conn:close()
      assert(res, "proxied request failed: " .. tostring(err))
      return res
    end

    local function curl(args)
      -- (an ASan run preloads the sanitizer runtime: curl does not get it,
      -- a preloaded curl can hang past its --max-time)
      local out = sh("env -u LD_PRELOAD curl -s -i --max-time 10 " .. args)
      if os.getenv("DEBUG_PROXY_SPEC") then io.stderr:write((out:gsub("aoc_%x+", "<token>")), "\n") end
      return parse_curl(out)
    end

    local function proxy_url(t)
      return "http://x:" .. (t or token) .. "@127.0.0.1:" .. srv.gateway_port
    end


    local function log_entry(pred)
      local found
      for _, e in ipairs(srv:requests()) do
        if e.proxied and pred(e) then found = e end
      end
      return found
    end

    local function pending_for(path)
      local status, data = gateway_api("GET", "/v1/approvals/pending")
      assert.are.equal(200, status)
      for _, a in ipairs(data.requests) do
        if a.path == path then return a, data end
      end
      return nil, data
    end

    setup(function()
      srv = launcher.start({ mode = mode, lua = LUA, quiet = false, max_lifetime = 240 })
      up = upstream.start({ lua = LUA, max_lifetime = 240 })
      srv:gateway_settings({ poll_hold = 1 })   -- an origin-form poll with nothing pending
      agent = created("POST", "/agents", { name = "Proxy Agent", identifier = IDENTIFIER })
      local _, cfg = api("GET", "/container-config?agent=" .. IDENTIFIER)
      local proxy = cfg.env.HTTPS_PROXY
      token = proxy:match("^http://x:(aoc_%x+)@")
      assert(token and #token == 68, "container config HTTPS_PROXY has no agent token")
      -- the stand-in's container config names its own gateway (not host.docker.internal)
      assert.is_true(proxy:sub(-#("@127.0.0.1:" .. srv.gateway_port)) == "@127.0.0.1:" .. srv.gateway_port)
      auth = "Basic " .. b64("x:" .. token)
      secret_id = created("POST", "/secrets", { name = "Upstream key", type = "generic", value = SECRET,
        hostPattern = "127.0.0.1",
        injectionConfig = { headerName = "X-Upstream-Key", valueFormat = "Key {value}" } }).id
      if mode == "v2" then
        created("PUT", "/agents/" .. agent.id .. "/grants/secrets/" .. secret_id)
        rules = {
          block = created("POST", "/org/policy/rules", { name = "No blocked paths", action = "block",
            targets = { { kind = "network", hostPattern = "127.0.0.1", pathPattern = "/blocked/*" } } }).logicalId,
          review = created("POST", "/org/policy/rules", { name = "Review held paths", action = "allow",
            requireApproval = true,
            targets = { { kind = "network", hostPattern = "127.0.0.1", pathPattern = "/held/*" } } }).logicalId,
        }
        created("POST", "/org/policy/publish")
      else
        rules = {
          block = created("POST", "/rules", { name = "No blocked paths", hostPattern = "127.0.0.1",
            pathPattern = "/blocked/*", action = "block", enabled = true }).id,
          review = created("POST", "/rules", { name = "Review held paths", hostPattern = "127.0.0.1",
            pathPattern = "/held/*", action = "manual_approval", enabled = true }).id,
        }
      end
    end)

    teardown(function()
      if up then up:stop() end
      if srv then srv:stop() end
    end)

    describe("authentication", function()
      it("answers 407 with Proxy-Authenticate and a JSON error without a token", function()
        local res = proxied("GET", "/no-auth", { auth = false })
        assert.are.equal(407, res.status)
        assert.are.equal('Basic realm="OneCLI Gateway"', res.headers["proxy-authenticate"])
        assert.are.equal("invalid_agent_token", res.headers["x-onecli-gateway-error"])
        local body = decode(res.body)
        assert.are.equal("invalid_agent_token", body.error)
        assert.are.equal("string", type(body.message))
        assert.is_nil(up:saw("/no-auth"))
      end)

      it("answers 407 for an unknown token and for a key that is not an agent token", function()
        for _, cred in ipairs({ "x:aoc_" .. string.rep("0", 64), "x:" .. srv.api_key, "x:" }) do
          local res = proxied("GET", "/bad-auth", { auth = "Basic " .. b64(cred) })
          assert.are.equal(407, res.status)
          assert.are.equal("invalid_agent_token", decode(res.body).error)
        end
        local res = proxied("GET", "/bad-auth", { auth = "Bearer " .. token })
        assert.are.equal(407, res.status)
        assert.is_nil(up:saw("/bad-auth"))
      end)

      it("forwards with the agent's token (curl -x, any user name)", function()
        if not has_curl() then pending("curl is not installed") return end
        local status, headers, body = curl("-x " .. proxy_url() .. " '" .. up.url .. "/hello?q=1'")
        assert.are.equal(200, status)
        assert.are.equal("echo", headers["x-upstream"])
        local echo = decode(body)
        assert.are.equal("GET", echo.method)
        assert.are.equal("/hello", echo.path)
        assert.are.equal("q=1", echo.query)
        local res = proxied("GET", "/any-user", { auth = "Basic " .. b64("someone:" .. token) })
        assert.are.equal(200, res.status)
      end)

      it("keeps serving the approvals API on the same port (origin-form)", function()
        local status, data = gateway_api("GET", "/v1/approvals/pending?exclude=" .. string.rep("z", 8))
        assert.are.equal(200, status)
        assert.are.equal("table", type(data.requests))
      end)
    end)

    describe("forwarding", function()
      it("injects the agent's secret for a matching host; the client never sends it", function()
        if not has_curl() then pending("curl is not installed") return end
        local status, _, body = curl("-x " .. proxy_url() .. " " .. up.url .. "/inject")
        assert.are.equal(200, status)
        assert.is_true(decode(body).headers["x-upstream-key"] == "Key " .. SECRET, "secret not injected")
        local entry = log_entry(function(e) return e.path == "/inject" end)
        assert.are.same({ "X-Upstream-Key" }, entry.injected)
        assert.are.equal("forwarded", entry.decision)
        assert.are.equal(200, entry.status)
        assert.are.equal(agent.id, entry.agentId)
        assert.are.equal(up.url .. "/inject", entry.url)
        assert.is_true(entry.gateway)
      end)

      it("replaces a client's own header of the injected name; other hosts get nothing", function()
        local res = proxied("GET", "/replace", { headers = { { "X-Upstream-Key", "mine" } } })
        assert.is_true(decode(res.body).headers["x-upstream-key"] == "Key " .. SECRET, "header not replaced")
        res = proxied("GET", nil, { url = "http://localhost:" .. up.port .. "/other-host" })
        assert.are.equal(200, res.status)
        assert.is_nil(decode(res.body).headers["x-upstream-key"])
      end)

      it("drops hop-by-hop and Proxy-* headers both ways", function()
        local res = proxied("GET", "/hop", { headers = {
          { "Connection", "keep-alive, X-Hop" }, { "X-Hop", "1" }, { "Keep-Alive", "300" },
          { "Proxy-Connection", "keep-alive" }, { "TE", "trailers" }, { "Proxy-Extra", "1" }, { "X-Kept", "yes" },
        } })
        assert.are.equal(200, res.status)
        local seen = decode(res.body).headers
        for _, name in ipairs({ "x-hop", "keep-alive", "proxy-connection", "te", "proxy-extra",
          "proxy-authorization" }) do
          assert.is_nil(seen[name], name)
        end
        assert.are.equal("yes", seen["x-kept"])
        assert.are.equal("127.0.0.1:" .. up.port, seen.host)
        -- the upstream's answer: /hop adds Connection: X-Hop, X-Hop, Keep-Alive, Proxy-Authenticate
        for _, name in ipairs({ "x-hop", "keep-alive", "proxy-authenticate" }) do
          assert.is_nil(res.headers[name], name)
        end
        assert.are.equal("echo", res.headers["x-upstream"])
      end)

      it("forwards bodies (Content-Length and chunked) and relays statuses", function()
        local body = '{"n":' .. string.rep("1", 300) .. "}"
        for _, chunked in ipairs({ false, true }) do
          local res = proxied("POST", "/body", { body = body, chunked = chunked or nil,
            headers = { { "Content-Type", "application/json" } } })
          assert.are.equal(200, res.status)
          local echo = decode(res.body)
          assert.are.equal(body, echo.body)
          assert.are.equal(tostring(#body), echo.headers["content-length"])
          assert.is_nil(echo.headers["transfer-encoding"])
        end
        local res = proxied("DELETE", "/status/404")
        assert.are.equal(404, res.status)
        assert.are.equal("DELETE", decode(res.body).method)
        res = proxied("GET", "/status/204")
        assert.are.equal(204, res.status)
        res = proxied("GET", "/chunked")
        assert.are.equal(200, res.status)
        assert.are.equal("/chunked", decode(res.body).path)
      end)

      it("keeps the client's connection open across proxied requests", function()
        local conn = gw_connect()
        for i = 1, 3 do
          local res = assert(conn:request({ method = "GET", path = up.url .. "/keep/" .. i,
            headers = { { "Proxy-Authorization", auth } } }))
          assert.are.equal(200, res.status)
          assert.are.equal("/keep/" .. i, decode(res.body).path)
        end
        -- an approvals call on the same connection still works
        local res = assert(conn:request({ method = "GET", path = "/v1/approvals/pending?exclude=a",
          headers = { { "Authorization", "Bearer " .. srv.api_key } } }))
        assert.are.equal(200, res.status)
        conn:close()
      end)

      it("answers 502 upstream_unreachable for a closed port, 504 upstream_timeout for a slow one", function()
        local probe = assert(socket.bind("127.0.0.1", 0))
        local _, closed_port = probe:getsockname()
        probe:close()
        local res = proxied("GET", nil, { url = "http://127.0.0.1:" .. closed_port .. "/x" })
        assert.are.equal(502, res.status)
        assert.are.equal("upstream_unreachable", res.headers["x-onecli-gateway-error"])
        assert.are.equal("upstream_unreachable", decode(res.body).error)
        srv:gateway_settings({ upstream_timeout = 0.5 })
        local ok, err = pcall(function()
          local t0 = socket.gettime()
          local slow = proxied("GET", "/delay/3")
          assert.are.equal(504, slow.status)
          assert.are.equal("upstream_timeout", decode(slow.body).error)
          assert.is_true(socket.gettime() - t0 < 2.5)
        end)
        srv:gateway_settings({ upstream_timeout = 60 })
        assert(ok, err)
      end)

      it("refuses a target it cannot forward", function()
        local res = proxied("GET", nil, { url = "ftp://127.0.0.1:" .. up.port .. "/x" })
        assert.are.equal(400, res.status)
        assert.are.equal("unsupported_scheme", decode(res.body).error)
      end)
    end)

    describe("CONNECT", function()
      it("tunnels curl --proxytunnel to an http upstream, with nothing injected", function()
        if not has_curl() then pending("curl is not installed") return end
        local status, _, body = curl("--proxytunnel -x " .. proxy_url() .. " " .. up.url .. "/tunnel")
        assert.are.equal(200, status)
        local echo = decode(body)
        assert.are.equal("/tunnel", echo.path)
        assert.is_nil(echo.headers["proxy-authorization"])
        assert.is_nil(echo.headers["x-upstream-key"])
        local entry = log_entry(function(e) return e.method == "CONNECT" end)
        assert.are.equal("tunnel", entry.decision)
        assert.are.equal("127.0.0.1:" .. up.port, entry.url)
      end)

      it("tunnels raw bytes both ways, and refuses a CONNECT without a token", function()
        local conn = gw_connect()
        assert(conn:send_raw("CONNECT 127.0.0.1:" .. up.port .. " HTTP/1.1\r\nHost: 127.0.0.1:" .. up.port
          .. "\r\nProxy-Authorization: " .. auth .. "\r\n\r\n"))
        local head = assert(conn:read_head(socket.gettime() + 10))
        assert.are.equal(200, head.status)
        local res = assert(conn:request({ method = "POST", path = "/raw-tunnel", body = "through",
          headers = { { "Host", "127.0.0.1:" .. up.port } } }))
        assert.are.equal(200, res.status)
        assert.are.equal("through", decode(res.body).body)
        conn:close()

        conn = gw_connect()
        assert(conn:send_raw("CONNECT 127.0.0.1:" .. up.port .. " HTTP/1.1\r\nHost: x\r\n\r\n"))
        res = assert(conn:read_response("CONNECT", 10))
        assert.are.equal(407, res.status)
        assert.are.equal('Basic realm="OneCLI Gateway"', res.headers["proxy-authenticate"])
        assert.are.equal("invalid_agent_token", res.headers["x-onecli-gateway-error"])
        conn:close()
      end)
    end)

    describe("policy", function()
      it("blocks a request a block rule matches (403 blocked_by_policy)", function()
        if not has_curl() then pending("curl is not installed") return end
        local status, headers, body = curl("-x " .. proxy_url() .. " " .. up.url .. "/blocked/thing")
        assert.are.equal(403, status)
        assert.are.equal("blocked_by_policy", headers["x-onecli-gateway-error"])
        local err = decode(body)
        assert.are.equal("blocked_by_policy", err.error)
        assert.are.equal(rules.block, err.ruleId)
        assert.are.equal("string", type(err.message))
        assert.is_nil(up:saw("/blocked/thing"))
        assert.are.equal("blocked", log_entry(function(e) return e.path == "/blocked/thing" end).decision)
      end)

      it("holds a manual_approval request, hands it to a waiting poll, and forwards it once approved", function()
        -- a long poll is waiting before the request arrives
        srv:gateway_settings({ poll_hold = 5 })
        local poll = gw_connect()
        assert(poll:send_raw(client.build_request({ method = "GET", path = "/v1/approvals/pending",
          headers = { { "Authorization", "Bearer " .. srv.api_key } } }, "127.0.0.1")))
        local t0 = socket.gettime()
        local conn = gw_connect()
        assert(conn:send_raw(client.build_request({ method = "POST", path = up.url .. "/held/charge?amount=5",
          headers = { { "Proxy-Authorization", auth }, { "Content-Type", "application/json" },
            { "Authorization", "Bearer client-side" } }, body = '{"amount":5}' }, "127.0.0.1:" .. up.port)))
        local polled = assert(poll:read_response("GET", 10))
        poll:close()
        srv:gateway_settings({ poll_hold = 1 })
        assert.is_true(socket.gettime() - t0 < 3, "the waiting poll was not woken")
        local list = decode(polled.body).requests
        assert.are.equal(1, #list)
        local a = list[1]
        assert.are.equal("POST", a.method)
        assert.are.equal(up.url .. "/held/charge?amount=5", a.url)
        assert.are.equal("/held/charge", a.path)
        assert.are.equal('{"amount":5}', a.bodyPreview)
        assert.are.equal(agent.id, a.agent.id)
        assert.are.equal(IDENTIFIER, a.agent.externalId)
        assert.is_nil(a.headers["proxy-authorization"])
        assert.is_nil(a.headers.authorization)
        assert.is_nil(a.headers["x-upstream-key"])
        assert.are.equal("application/json", a.headers["content-type"])
        assert.are.equal("string", type(a.expiresAt))
        assert.is_nil(up:saw("/held/charge"))
        assert.are.equal("held", log_entry(function(e) return e.path == "/held/charge" end).decision)

        local status = gateway_api("POST", "/v1/approvals/" .. a.id .. "/decision", { decision = "approve" })
        assert.are.equal(200, status)
        local res = assert(conn:read_response("POST", 10))
        conn:close()
        assert.are.equal(200, res.status)
        local echo = decode(res.body)
        assert.are.equal("/held/charge", echo.path)
        assert.are.equal('{"amount":5}', echo.body)
        assert.is_true(echo.headers["x-upstream-key"] == "Key " .. SECRET, "secret not injected after approval")
        local entry = log_entry(function(e) return e.path == "/held/charge" end)
        assert.are.equal("forwarded", entry.decision)
        assert.are.equal(a.id, entry.approvalId)
        assert.are.equal(rules.review, entry.ruleId)
      end)

      it("answers 403 approval_denied when the request is denied", function()
        local conn = gw_connect()
        assert(conn:send_raw(client.build_request({ method = "GET", path = up.url .. "/held/deny-me",
          headers = { { "Proxy-Authorization", auth } } }, "127.0.0.1:" .. up.port)))
        local a
        assert.is_true(require("onecli.standin.process").wait_until(5, function()
          a = pending_for("/held/deny-me")
          return a ~= nil
        end))
        assert.are.equal(200, (gateway_api("POST", "/v1/approvals/" .. a.id .. "/decision", { decision = "deny" })))
        local res = assert(conn:read_response("GET", 10))
        conn:close()
        assert.are.equal(403, res.status)
        assert.are.equal("approval_denied", res.headers["x-onecli-gateway-error"])
        local err = decode(res.body)
        assert.are.equal("approval_denied", err.error)
        assert.are.equal(a.id, err.approvalId)
        assert.is_nil(up:saw("/held/deny-me"))
        assert.are.equal("denied", log_entry(function(e) return e.path == "/held/deny-me" end).decision)
      end)

      it("answers 403 approval_expired when nobody decides in approval_timeout", function()
        srv:gateway_settings({ approval_timeout = 1 })
        local ok, failure = pcall(function()
          local t0 = socket.gettime()
          local conn = gw_connect()
          assert(conn:send_raw(client.build_request({ method = "GET", path = up.url .. "/held/expire-me",
            headers = { { "Proxy-Authorization", auth } } }, "127.0.0.1:" .. up.port)))
          local a, data
          require("onecli.standin.process").wait_until(3, function()
            a, data = pending_for("/held/expire-me")
            return a ~= nil
          end)
          assert.is_truthy(a)
          assert.are.equal(1, data.timeoutSeconds)
          local res = assert(conn:read_response("GET", 6))
          conn:close()
          assert.are.equal(403, res.status)
          assert.are.equal("approval_expired", res.headers["x-onecli-gateway-error"])
          local err = decode(res.body)
          assert.are.equal("approval_expired", err.error)
          assert.are.equal(a.id, err.approvalId)
          local waited = socket.gettime() - t0
          assert.is_true(waited >= 0.9 and waited < 4)
          -- too late to decide
          assert.are.equal(410, (gateway_api("POST", "/v1/approvals/" .. a.id .. "/decision",
            { decision = "approve" })))
        end)
        srv:gateway_settings({ approval_timeout = 180 })
        assert(ok, failure)
        assert.is_nil(up:saw("/held/expire-me"))
      end)
    end)

    it("never shows the agent's token or the injected value in the request log, approvals or output", function()
      -- its own proxied request, with the token and an injected value, so
      -- that the scan below has something to find whatever ran before it
      -- (the suite shuffles tests within a file)
      local res = proxied("GET", "/scanned")
      assert.are.equal(200, res.status)
      assert.is_truthy(up:saw("/scanned"))
      local log = srv:requests()
      local proxied_entries = {}
      for _, e in ipairs(log) do
        if e.proxied then proxied_entries[#proxied_entries + 1] = e end
      end
      local everything = json.encode(log) .. json.encode(srv:approvals())
      assert.is_nil(everything:find(token, 1, true), "token in /__control")
      -- (the secret's value is in the logged POST /v1/secrets body, as a client sent it)
      local gateway_side = json.encode(proxied_entries) .. json.encode(srv:approvals())
      assert.is_nil(gateway_side:find(SECRET, 1, true), "secret in /__control")
      assert.is_truthy(gateway_side:find('"proxy-authorization":"[redacted]"', 1, true))
      local f = assert(io.open(srv.err_file, "rb"))
      local printed = f:read("*a")
      f:close()
      assert.is_truthy(printed:find("gateway proxy", 1, true), "the stand-in logged no proxy line")
      assert.is_nil(printed:find(token, 1, true), "token in the stand-in's output")
      assert.is_nil(printed:find(SECRET, 1, true), "secret in the stand-in's output")
      -- what reached the upstream: the injected value (on purpose), never the token
      local seen = json.encode(up:requests())
      assert.is_nil(seen:find(token, 1, true), "token reached the upstream")
      assert.is_nil(seen:find("proxy-authorization", 1, true))
    end)
  end)
end
