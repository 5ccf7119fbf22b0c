-- The OpenResty transport without nginx: its pure pieces (URL, request
-- bytes, status line, headers, framing, chunks, error codes), the response
-- reader over a scripted socket, and request() over a fake `ngx` whose
-- cosockets are scripted (pools, fresh connections, stale pooled
-- connections, TLS flags, failures). The real thing is resty_spec.lua.
local core = require("onecli.core")

-- A scripted socket with the cosocket API. script: { response = bytes,
-- eof = "closed" | "timeout" | ..., reused = n, connect_err =,
-- handshake_err =, send_err = }.
local function fake_socket(script)
  script = script or {}
  local s = { buf = script.response or "", sent = {}, timeouts = {}, script = script }
  function s:settimeouts(c, snd, r) self.timeouts[#self.timeouts + 1] = { c, snd, r } end
  function s:connect(host, port, opts)
    self.host, self.port, self.pool = host, port, opts and opts.pool
    self.connect_opts = opts
    if script.connect_err then return nil, script.connect_err end
    return 1
  end
  function s.getreusedtimes() return script.reused or 0 end
  function s:sslhandshake(_, name, verify)
    self.handshake = { name = name, verify = verify }
    if script.handshake_raise then error(script.handshake_raise, 0) end
    if script.handshake_err then return nil, script.handshake_err end
    return true
  end
  function s:send(data)
    if script.send_err then return nil, script.send_err end
    self.sent[#self.sent + 1] = data
    return #data
  end
  function s:receive(pattern)
    if pattern == "*l" then
      local i = self.buf:find("\n", 1, true)
      if not i then
        local partial = self.buf
        self.buf = ""
        return nil, script.eof or "closed", partial
      end
      local line = self.buf:sub(1, i - 1):gsub("\r", "")
      self.buf = self.buf:sub(i + 1)
      return line
    end
    if #self.buf >= pattern then
      local data = self.buf:sub(1, pattern)
      self.buf = self.buf:sub(pattern + 1)
      return data
    end
    local partial = self.buf
    self.buf = ""
    return nil, script.eof or "closed", partial
  end
  function s:setkeepalive(idle, size)
    self.kept = { idle, size }
    return 1
  end
  function s:close()
    self.closed = true
    return 1
  end
  return s
end

local function reader_ctx(bytes, eof, max_response)
  return {
    sock = fake_socket({ response = bytes, eof = eof }),
    now = function() return 0 end, started = 0, deadline = 10, connect_ms = 1000,
    max_response = max_response or 1024 * 1024,
  }
end

-- The module loaded against a fake ngx; sockets are taken from `queue`.
local function with_fake_ngx(opts)
  opts = opts or {}
  local env = { queue = {}, made = {}, phase = opts.phase or "content", clock = 100, logs = {} }
  local fake = {
    socket = {
      tcp = function()
        local s = fake_socket(table.remove(env.queue, 1) or {})
        env.made[#env.made + 1] = s
        return s
      end,
    },
    get_phase = function() return env.phase end,
    now = function() return env.clock end,
    update_time = function() end,
    sleep = function(s) env.clock = env.clock + s end,
    config = { ngx_lua_version = 10023 },
    WARN = 5,
    log = function(level, ...) env.logs[#env.logs + 1] = { level, table.concat({ ... }) } end,
  }
  package.loaded["onecli.transport.resty"] = nil
  rawset(_G, "ngx", fake)
  local ok, m = pcall(require, "onecli.transport.resty")
  rawset(_G, "ngx", nil)
  package.loaded["onecli.transport.resty"] = nil
  assert(ok, m)
  env.ngx, env.resty = fake, m
  return env
end

local OK_RESPONSE = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n[]"

local function get_req(extra)
  local req = { method = "GET", url = "http://api.test:10254/v1/agents?x=1", path = "/v1/agents",
                headers = { Accept = "application/json", Authorization = "Bearer oc_secretkey1234" },
                timeout = 5, connect_timeout = 2, secret = "oc_secretkey1234" }
  for k, v in pairs(extra or {}) do req[k] = v end
  return req
end

describe("resty transport, pure pieces", function()
  local resty = require("onecli.transport.resty")

  it("loads outside nginx, but new() needs nginx", function()
    assert.is_table(resty)
    assert.has_error(function() resty.new() end,
      "onecli.transport.resty.new: not running inside nginx (ngx.socket is missing)")
  end)

  describe("parse_url", function()
    it("splits http and https URLs", function()
      local u = resty.parse_url("http://127.0.0.1:10254/v1/agents?a=1#frag")
      assert.are.same({ scheme = "http", tls = false, host = "127.0.0.1", port = 10254,
        target = "/v1/agents?a=1", host_header = "127.0.0.1:10254", connect_host = "127.0.0.1",
        server_name = "127.0.0.1" }, u)
      u = resty.parse_url("HTTPS://API.OneCLI.sh/v1")
      assert.are.equal("https", u.scheme)
      assert.is_true(u.tls)
      assert.are.equal(443, u.port)
      assert.are.equal("api.onecli.sh", u.host_header)
      assert.are.equal("api.onecli.sh", u.server_name)
    end)

    it("maps localhost to 127.0.0.1 but keeps the name for TLS", function()
      local u = resty.parse_url("https://localhost:8443")
      assert.are.equal("127.0.0.1", u.connect_host)
      assert.are.equal("localhost", u.server_name)
      assert.are.equal("localhost:8443", u.host_header)
      assert.are.equal("/", u.target)
    end)

    it("handles IPv6 literals and a bare query", function()
      local u = resty.parse_url("http://[::1]:8080?q=1")
      assert.are.equal("[::1]", u.connect_host)
      assert.are.equal("::1", u.server_name)
      assert.are.equal("[::1]:8080", u.host_header)
      assert.are.equal("/?q=1", u.target)
    end)

    it("rejects what libcurl rejects, with its codes", function()
      local cases = {
        { "ftp://host/x", "UNSUPPORTED_PROTOCOL" },
        { "not a url", "URL_MALFORMAT" },
        { "http:///x", "URL_MALFORMAT" },
        { "http://user@host/", "URL_MALFORMAT" },
        { "http://host:0/", "URL_MALFORMAT" },
        { "http://host:99999/", "URL_MALFORMAT" },
        { "http://host:x/", "URL_MALFORMAT" },
        { "http://host/a b", "URL_MALFORMAT" },
      }
      for _, c in ipairs(cases) do
        local u, code = resty.parse_url(c[1])
        assert.is_nil(u, c[1])
        assert.are.equal(c[2], code, c[1])
      end
    end)
  end)

  describe("build_request", function()
    it("writes Host, User-Agent, sorted headers, Content-Length and keep-alive", function()
      local bytes = resty.build_request("POST", "/v1/agents", "h:1",
        { ["X-B"] = "2", Accept = "application/json", ["Content-Type"] = "application/json" },
        '{"a":1}', "ua/1")
      assert.are.equal("POST /v1/agents HTTP/1.1\r\nHost: h:1\r\nUser-Agent: ua/1\r\n"
        .. "Accept: application/json\r\nContent-Type: application/json\r\nX-B: 2\r\n"
        .. "Content-Length: 7\r\nConnection: keep-alive\r\n\r\n{\"a\":1}", bytes)
    end)

    it("sends Content-Length: 0 for a POST without body, nothing for GET or DELETE", function()
      assert.matches("Content%-Length: 0\r\n", resty.build_request("POST", "/", "h", {}, nil, "u"))
      assert.matches("Content%-Length: 0\r\n", resty.build_request("PUT", "/", "h", nil, nil, "u"))
      assert.is_nil(resty.build_request("GET", "/", "h", {}, nil, "u"):find("Content-Length"))
      assert.is_nil(resty.build_request("DELETE", "/", "h", {}, nil, "u"):find("Content-Length"))
    end)

    it("lets a User-Agent header replace its own; drops framing headers", function()
      local bytes = resty.build_request("GET", "/", "h", { ["user-agent"] = "mine/2",
        Host = "evil", ["Content-Length"] = "99", Connection = "close",
        ["Transfer-Encoding"] = "chunked" }, nil, "ua/1")
      assert.are.equal("GET / HTTP/1.1\r\nHost: h\r\nUser-Agent: mine/2\r\n"
        .. "Connection: keep-alive\r\n\r\n", bytes)
    end)

    it("check_headers refuses what could split a request", function()
      assert.is_nil(resty.check_headers({ A = "b", N = 1 }))
      assert.matches("line break", resty.check_headers({ A = "b\r\nX: y" }))
      assert.matches("not valid", resty.check_headers({ ["A B"] = "b" }))
      assert.matches("not valid", resty.check_headers({ ["A:"] = "b" }))
      assert.matches("must be a string", resty.check_headers({ A = true }))
      assert.matches("names must be strings", resty.check_headers({ "x" }))
    end)
  end)

  describe("status line and headers", function()
    it("parses status lines", function()
      assert.are.same({ "1.1", 200 }, { resty.parse_status_line("HTTP/1.1 200 OK") })
      assert.are.same({ "1.0", 404 }, { resty.parse_status_line("HTTP/1.0 404") })
      assert.are.same({ "1.1", 503 }, { resty.parse_status_line("HTTP/1.1 503 Service Unavailable") })
      assert.are.same({ "2.0", 200 }, { resty.parse_status_line("HTTP/2 200") })
      assert.is_nil(resty.parse_status_line("HTTP/1.1 2000 OK"))
      assert.is_nil(resty.parse_status_line("<html>"))
      assert.is_nil(resty.parse_status_line("ICY 200 OK"))
    end)

    it("lower-cases names, joins repeats, trims, unfolds", function()
      local h, last = {}, nil
      for _, line in ipairs({ "Content-Type: application/json", "X-Multi: a", "x-multi:  b  ",
                              "X-Folded: one", "\t two", "garbage line", "Empty:" }) do
        last = resty.add_header_line(h, line, last)
      end
      assert.are.same({ ["content-type"] = "application/json", ["x-multi"] = "a, b",
                        ["x-folded"] = "one two", empty = "" }, h)
    end)
  end)

  describe("body framing and keep-alive", function()
    it("knows when there is no body", function()
      assert.are.equal("none", resty.body_framing("HEAD", 200, { ["content-length"] = "10" }))
      assert.are.equal("none", resty.body_framing("GET", 204, {}))
      assert.are.equal("none", resty.body_framing("GET", 304, { ["content-length"] = "10" }))
    end)

    it("prefers chunked, then Content-Length, else reads until close", function()
      assert.are.equal("chunked", resty.body_framing("GET", 200,
        { ["transfer-encoding"] = "gzip, Chunked", ["content-length"] = "3" }))
      assert.are.equal("close", resty.body_framing("GET", 200, { ["transfer-encoding"] = "gzip" }))
      assert.are.same({ "length", 12 }, { resty.body_framing("GET", 200, { ["content-length"] = "12" }) })
      assert.are.same({ "length", 7 },
        { resty.body_framing("GET", 200, { ["content-length"] = "7, 7" }) })
      assert.are.equal("close", resty.body_framing("GET", 200, {}))
    end)

    it("refuses invalid or conflicting Content-Length", function()
      for _, cl in ipairs({ "x", "-1", "7, 8", "", "1234567890123456" }) do
        local f, msg = resty.body_framing("GET", 200, { ["content-length"] = cl })
        assert.is_nil(f, cl)
        assert.matches("invalid Content%-Length", msg)
      end
    end)

    it("keeps HTTP/1.1 connections unless told otherwise", function()
      assert.is_true(resty.keep_alive("1.1", 200, {}, "length"))
      assert.is_false(resty.keep_alive("1.1", 200, { connection = "close" }, "length"))
      assert.is_false(resty.keep_alive("1.1", 200, { connection = "Upgrade, Close" }, "length"))
      assert.is_false(resty.keep_alive("1.1", 200, {}, "close"))
      assert.is_false(resty.keep_alive("1.0", 200, {}, "length"))
      assert.is_true(resty.keep_alive("1.0", 200, { connection = "Keep-Alive" }, "length"))
      assert.is_false(resty.keep_alive("1.1", 101, {}, "none"))
    end)

    it("parses chunk sizes", function()
      assert.are.equal(26, resty.parse_chunk_size("1a"))
      assert.are.equal(255, resty.parse_chunk_size("FF ; name=value"))
      assert.are.equal(0, resty.parse_chunk_size("0"))
      assert.is_nil(resty.parse_chunk_size("zz"))
      assert.is_nil(resty.parse_chunk_size(""))
      assert.is_nil(resty.parse_chunk_size("1234567890abc"))
    end)
  end)

  describe("error codes and User-Agent", function()
    it("maps cosocket errors to libcurl's names", function()
      local cases = {
        { "connect", "connection refused", "COULDNT_CONNECT" },
        { "connect", "timeout", "OPERATION_TIMEDOUT" },
        { "connect", "no resolver defined to resolve \"api.onecli.sh\"", "COULDNT_RESOLVE_HOST" },
        { "connect", "nope.invalid could not be resolved (3: Host not found)", "COULDNT_RESOLVE_HOST" },
        { "connect", "no route to host", "COULDNT_CONNECT" },
        { "handshake", "18: self-signed certificate", "PEER_FAILED_VERIFICATION" },
        { "handshake", "certificate host mismatch", "PEER_FAILED_VERIFICATION" },
        { "handshake", "handshake failed", "SSL_CONNECT_ERROR" },
        { "handshake", "timeout", "OPERATION_TIMEDOUT" },
        { "send", "closed", "SEND_ERROR" },
        { "send", "broken pipe", "SEND_ERROR" },
        { "receive", "connection reset by peer", "RECV_ERROR" },
      }
      for _, c in ipairs(cases) do
        assert.are.equal(c[3], resty.error_code(c[1], c[2]), c[1] .. ": " .. c[2])
      end
    end)

    it("names ngx_lua instead of libcurl", function()
      assert.are.equal("0.10.23", resty.ngx_lua_version(10023))
      assert.are.equal("1.2.3", resty.ngx_lua_version(1002003))
      local ua = resty.user_agent("app/2", 10023)
      assert.are.equal(core.user_agent:gsub("libcurl/%S+", "ngx_lua/0.10.23") .. " app/2", ua)
      assert.is_nil(ua:find("libcurl", 1, true))
      assert.are.equal(core.user_agent:gsub("libcurl/%S+", "ngx_lua/0.10.23"),
        resty.user_agent(nil, 10023))
    end)
  end)

  describe("configure", function()
    it("checks its options", function()
      assert.has_error(function() resty.configure("x") end)
      assert.has_error(function() resty.configure({ nope = 1 }) end)
      assert.has_error(function() resty.configure({ trusted_certificate = 3 }) end)
    end)
  end)
end)

describe("resty transport, reading responses", function()
  local resty = require("onecli.transport.resty")
  local read = resty.read_response

  it("reads a Content-Length body and keeps the connection", function()
    local status, headers, body, keep = read(reader_ctx(
      "HTTP/1.1 201 Created\r\nContent-Length: 5\r\nX-Request-Id: r1\r\n\r\nhello"), "POST")
    assert.are.equal(201, status)
    assert.are.equal("r1", headers["x-request-id"])
    assert.are.equal("hello", body)
    assert.is_true(keep)
  end)

  it("reads chunked bodies with extensions and trailers", function()
    local ctx = reader_ctx("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: t\r\n\r\n")
    local status, _, body, keep = read(ctx, "GET")
    assert.are.equal(200, status)
    assert.are.equal("hello world", body)
    assert.is_true(keep)
  end)

  it("reads until close when there is no framing, and does not keep", function()
    local status, _, body, keep = read(reader_ctx("HTTP/1.0 200 ok\r\nContent-type: text/html\r\n"
      .. "\r\n<HTML>page</HTML>\r\n"), "GET")
    assert.are.equal(200, status)
    assert.are.equal("<HTML>page</HTML>\r\n", body)
    assert.is_false(keep)
  end)

  it("skips interim 1xx answers", function()
    local status, _, body = read(reader_ctx("HTTP/1.1 100 Continue\r\n\r\n"
      .. "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}"), "POST")
    assert.are.equal(200, status)
    assert.are.equal("{}", body)
  end)

  it("reads no body after HEAD, 204 and 304", function()
    for _, c in ipairs({ { "HEAD", "200 OK" }, { "GET", "204 No Content" },
                         { "GET", "304 Not Modified" } }) do
      local ctx = reader_ctx("HTTP/1.1 " .. c[2] .. "\r\nContent-Length: 10\r\n\r\nNEXT")
      local status, _, body, keep = read(ctx, c[1])
      assert.is_number(status)
      assert.are.equal("", body)
      assert.is_true(keep)
      assert.are.equal("NEXT", ctx.sock.buf)   -- nothing more was read
    end
  end)

  it("says GOT_NOTHING for a closed connection, RECV_ERROR for a reset", function()
    local status, code, msg, got_any = read(reader_ctx(""), "GET")
    assert.is_nil(status)
    assert.are.equal("GOT_NOTHING", code)
    assert.are.equal("Empty reply from server", msg)
    assert.is_false(got_any)
    local _
    _, code, msg, got_any = read(reader_ctx("", "connection reset by peer"), "GET")
    assert.are.equal("RECV_ERROR", code)
    assert.matches("connection reset by peer", msg)
    assert.is_false(got_any)
  end)

  it("says OPERATION_TIMEDOUT on a read timeout, and when the deadline passed", function()
    local _, code = read(reader_ctx("HTTP/1.1 200 OK\r\n", "timeout"), "GET")
    assert.are.equal("OPERATION_TIMEDOUT", code)
    local ctx = reader_ctx(OK_RESPONSE)
    ctx.deadline = -1
    local _, code2, msg = read(ctx, "GET")
    assert.are.equal("OPERATION_TIMEDOUT", code2)
    assert.matches("^Operation timed out after %d+ milliseconds", msg)
  end)

  it("ends a listening request's 2xx body at the timeout (server-sent events), not other answers", function()
    local sse = "event: transcript\nid: 1\ndata: {}\n\n"
    local open = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. string.format("%x\r\n", #sse) .. sse .. "\r\n" .. "20\r\nevent: transcript\nid: 2"
    local ctx = reader_ctx(open, "timeout")
    ctx.listen = true
    local status, headers, body, keep = read(ctx, "GET")
    assert.are.equal(200, status)
    assert.are.equal("text/event-stream", headers["content-type"])
    assert.are.equal(sse .. "event: transcript\nid: 2", body)   -- the cut event too; the parser drops it
    assert.is_false(keep)
    local _, code = read(reader_ctx(open, "timeout"), "GET")         -- without listen
    assert.are.equal("OPERATION_TIMEDOUT", code)
    ctx = reader_ctx("HTTP/1.1 503 Service Unavailable\r\nContent-Length: 10\r\n\r\nab", "timeout")
    ctx.listen = true
    _, code = read(ctx, "GET")
    assert.are.equal("OPERATION_TIMEDOUT", code)
    ctx = reader_ctx("HTTP/1.1 200 OK\r\n", "timeout")                 -- the head did not end
    ctx.listen = true
    _, code = read(ctx, "GET")
    assert.are.equal("OPERATION_TIMEDOUT", code)
  end)

  it("reports truncated answers", function()
    local _, code, msg, got_any = read(reader_ctx("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"),
      "GET")
    assert.are.equal("PARTIAL_FILE", code)
    assert.are.equal("transfer closed with 7 bytes remaining to read", msg)
    assert.is_true(got_any)
    _, code = read(reader_ctx("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab"), "GET")
    assert.are.equal("PARTIAL_FILE", code)
    _, code = read(reader_ctx("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nabcde\r\n"),
      "GET")
    assert.are.equal("RECV_ERROR", code)
    _, code = read(reader_ctx("HTTP/1.1 200 OK\r\nContent-Le"), "GET")
    assert.are.equal("RECV_ERROR", code)
    _, code = read(reader_ctx("HTTP/1.1 2"), "GET")
    assert.are.equal("RECV_ERROR", code)
  end)

  it("refuses malformed answers", function()
    local _, code = read(reader_ctx("<html>oops</html>\r\n"), "GET")
    assert.are.equal("WEIRD_SERVER_REPLY", code)
    _, code = read(reader_ctx("HTTP/1.1 200 OK\r\nContent-Length: 1, 2\r\n\r\nab"), "GET")
    assert.are.equal("WEIRD_SERVER_REPLY", code)
    _, code = read(reader_ctx("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nxyz\r\n"), "GET")
    assert.are.equal("RECV_ERROR", code)
    _, code = read(reader_ctx("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nabXY"), "GET")
    assert.are.equal("RECV_ERROR", code)
    _, code = read(reader_ctx(("HTTP/1.1 100 Continue\r\n\r\n"):rep(11)), "GET")
    assert.are.equal("WEIRD_SERVER_REPLY", code)
    local huge = "HTTP/1.1 200 OK\r\n" .. ("X-Pad: " .. ("p"):rep(1000) .. "\r\n"):rep(110) .. "\r\n"
    _, code = read(reader_ctx(huge), "GET")
    assert.are.equal("RECV_ERROR", code)
  end)

  it("caps the body at max_response, whatever the framing", function()
    local _, code, msg = read(reader_ctx("HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world",
      nil, 10), "GET")
    assert.are.equal("RESPONSE_TOO_LARGE", code)
    assert.are.equal("response body larger than max_response_size (10 bytes)", msg)
    _, code = read(reader_ctx("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
      .. "6\r\nhello \r\n5\r\nworld\r\n0\r\n\r\n", nil, 10), "GET")
    assert.are.equal("RESPONSE_TOO_LARGE", code)
    _, code = read(reader_ctx("HTTP/1.0 200 OK\r\n\r\nhello world", nil, 10), "GET")
    assert.are.equal("RESPONSE_TOO_LARGE", code)
    local status, _, body = read(reader_ctx("HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789",
      nil, 10), "GET")
    assert.are.equal(200, status)
    assert.are.equal(10, #body)
  end)
end)

describe("resty transport, request() over a fake ngx", function()
  it("sends one request, parses the answer, and pools the connection", function()
    local env = with_fake_ngx()
    env.queue[1] = { response = OK_RESPONSE }
    local t = env.resty.new({ user_agent = "spec/1" })
    assert.are.equal(env.ngx.sleep, t.sleep)
    local status, headers, body = t:request(get_req())
    assert.are.equal(200, status)
    assert.are.equal("application/json", headers["content-type"])
    assert.are.equal("[]", body)
    local s = env.made[1]
    assert.are.equal("api.test", s.host)
    assert.are.equal(10254, s.port)
    assert.are.equal("onecli:http://api.test:10254", s.pool)
    assert.are.same({ 60000, 16 }, s.kept)
    assert.is_nil(s.closed)
    local sent = s.sent[1]
    assert.matches("^GET /v1/agents%?x=1 HTTP/1%.1\r\nHost: api%.test:10254\r\n", sent)
    assert.matches("\r\nUser%-Agent: lua%-onecli/%S+ .- ngx_lua/0%.10%.23 spec/1\r\n", sent)
    assert.matches("\r\nConnection: keep%-alive\r\n\r\n$", sent)
    -- connect timeout 2 s, the rest bounded by the 5 s of the request
    assert.are.same({ 2000, 5000, 5000 }, s.timeouts[1])
  end)

  it("uses the transport's timeouts when the request has none", function()
    local env = with_fake_ngx()
    env.queue[1] = { response = OK_RESPONSE }
    local t = env.resty.new({ timeout = 3, connect_timeout = 7 })
    local req = get_req()
    req.timeout, req.connect_timeout = nil, nil
    assert.are.equal(200, t:request(req))
    assert.are.same({ 3000, 3000, 3000 }, env.made[1].timeouts[1])
  end)

  it("closes instead of pooling when the server says close", function()
    local env = with_fake_ngx()
    env.queue[1] = { response = "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n" }
    assert.are.equal(200, env.resty.new():request(get_req()))
    assert.is_true(env.made[1].closed)
    assert.is_nil(env.made[1].kept)
  end)

  it("fresh_connect sets pooled connections aside and gives them back", function()
    local env = with_fake_ngx()
    env.queue = { { reused = 3 }, { reused = 1 }, { reused = 0, response = OK_RESPONSE } }
    local status = env.resty.new():request(get_req({ method = "POST", body = "{}",
                                                    fresh_connect = true }))
    assert.are.equal(200, status)
    assert.are.equal(3, #env.made)
    assert.are.same({}, env.made[1].sent)
    assert.are.same({}, env.made[2].sent)
    assert.is_table(env.made[1].kept)      -- back in the pool, unused
    assert.is_table(env.made[2].kept)
    assert.matches("^POST /v1/agents%?x=1 HTTP/1%.1\r\n", env.made[3].sent[1])
    assert.matches("\r\nContent%-Length: 2\r\n", env.made[3].sent[1])
  end)

  it("a request without fresh_connect takes the pooled connection", function()
    local env = with_fake_ngx()
    env.queue = { { reused = 4, response = OK_RESPONSE } }
    assert.are.equal(200, env.resty.new():request(get_req()))
    assert.are.equal(1, #env.made)
  end)

  it("never sends again by itself when a pooled connection was stale", function()
    -- the retry loop decides (and counts the attempt): see retry.lua
    local env = with_fake_ngx()
    env.queue = { { reused = 2, response = "" }, { reused = 0, response = OK_RESPONSE } }
    local status, err = env.resty.new():request(get_req())
    assert.is_nil(status)
    assert.are.equal("GOT_NOTHING", err.code)
    assert.is_true(err.connection_reused)
    assert.is_true(err.request_sent)
    assert.is_true(env.made[1].closed)
    assert.are.equal(1, #env.made)
  end)

  it("does not send again when a new connection got nothing", function()
    local env = with_fake_ngx()
    env.queue = { { reused = 0, response = "" }, { response = OK_RESPONSE } }
    local status, err = env.resty.new():request(get_req())
    assert.is_nil(status)
    assert.are.equal("GOT_NOTHING", err.code)
    assert.are.equal("connection_error", err.type)
    assert.is_true(err.request_sent)
    assert.are.equal(1, #env.made)
  end)

  it("turns connect failures into unsent connection errors", function()
    local env = with_fake_ngx()
    env.queue = { { connect_err = "connection refused" },
                  { connect_err = "no resolver defined to resolve \"api.test\"" },
                  { connect_err = "timeout" } }
    local t = env.resty.new()
    local _, err = t:request(get_req())
    assert.are.equal("COULDNT_CONNECT", err.code)
    assert.are.equal("connection_error", err.type)
    assert.is_false(err.request_sent)
    assert.is_true(err.retryable)
    assert.are.equal("Failed to connect to api.test port 10254: connection refused", err.message)
    assert.are.equal("GET", err.method)
    assert.are.equal("/v1/agents", err.path)
    _, err = t:request(get_req())
    assert.are.equal("COULDNT_RESOLVE_HOST", err.code)
    assert.is_false(err.request_sent)
    assert.matches("resolver", err.message)
    _, err = t:request(get_req())
    assert.are.equal("OPERATION_TIMEDOUT", err.code)
    assert.are.equal("timeout_error", err.type)
    assert.is_false(err.request_sent)
  end)

  it("a failed send is a sent SEND_ERROR", function()
    local env = with_fake_ngx()
    env.queue = { { send_err = "broken pipe" } }
    local _, err = env.resty.new():request(get_req({ method = "POST", fresh_connect = true }))
    assert.are.equal("SEND_ERROR", err.code)
    assert.is_true(err.request_sent)
    assert.is_true(env.made[1].closed)
  end)

  it("verifies TLS unless insecure, in separate pools, without handshaking again", function()
    local env = with_fake_ngx()
    env.queue = { { response = OK_RESPONSE }, { response = OK_RESPONSE },
                  { reused = 1, response = OK_RESPONSE } }
    local url = "https://localhost:8443/v1/agents"
    assert.are.equal(200, env.resty.new():request(get_req({ url = url })))
    assert.are.same({ name = "localhost", verify = true }, env.made[1].handshake)
    assert.are.equal("127.0.0.1", env.made[1].host)
    assert.are.equal(200, env.resty.new({ insecure = true }):request(get_req({ url = url })))
    assert.are.same({ name = "localhost", verify = false }, env.made[2].handshake)
    assert.are_not.equal(env.made[1].pool, env.made[2].pool)
    assert.matches(":verify:", env.made[1].pool)
    assert.matches(":noverify:", env.made[2].pool)
    assert.are.equal(200, env.resty.new():request(get_req({ url = url })))
    assert.is_nil(env.made[3].handshake)      -- a pooled TLS connection is ready
  end)

  it("a verification failure is an unsent, non-retryable tls_error", function()
    local env = with_fake_ngx()
    env.queue = { { handshake_err = "18: self-signed certificate" },
                  { handshake_err = "handshake failed" } }
    local t = env.resty.new()
    local _, err = t:request(get_req({ url = "https://api.test/v1/agents" }))
    assert.are.equal("tls_error", err.type)
    assert.are.equal("PEER_FAILED_VERIFICATION", err.code)
    assert.is_false(err.retryable)
    assert.is_false(err.request_sent)
    assert.matches("lua_ssl_trusted_certificate", err.message)
    assert.is_true(env.made[1].closed)
    _, err = t:request(get_req({ url = "https://api.test/v1/agents" }))
    assert.are.equal("SSL_CONNECT_ERROR", err.code)
    assert.are.equal("tls_error", err.type)
  end)

  it("takes lua-resty-core's assertion for the verification failure it is", function()
    local env = with_fake_ngx()
    env.queue = { { handshake_raise = "/usr/share/lua/5.1/resty/core/socket.lua:244: "
                    .. "assertion failed!" },
                  { handshake_raise = "no request found" } }
    local t = env.resty.new()
    local _, err = t:request(get_req({ url = "https://api.test/v1/agents" }))
    assert.are.equal("tls_error", err.type)
    assert.are.equal("PEER_FAILED_VERIFICATION", err.code)
    assert.is_false(err.request_sent)
    assert.matches("could not be verified", err.message)
    assert.is_true(env.made[1].closed)
    -- anything else is not hidden
    assert.has_error(function() t:request(get_req({ url = "https://api.test/v1/agents" })) end,
      "no request found")
  end)

  it("marks a too large body non-retryable", function()
    local env = with_fake_ngx()
    env.queue = { { response = "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" } }
    local _, err = env.resty.new({ max_response_size = 10 }):request(get_req())
    assert.are.equal("RESPONSE_TOO_LARGE", err.code)
    assert.is_false(err.retryable)
  end)

  it("never puts the key in an error", function()
    local env = with_fake_ngx()
    env.queue = { { response = "oc_secretkey1234 garbage\r\n" } }
    local _, err = env.resty.new():request(get_req())
    assert.are.equal("WEIRD_SERVER_REPLY", err.code)
    assert.is_nil(err.message:find("oc_secretkey1234", 1, true))
    assert.is_nil(tostring(err):find("oc_secretkey1234", 1, true))
  end)

  it("a bad URL is an unsent error with libcurl's code", function()
    local env = with_fake_ngx()
    local _, err = env.resty.new():request(get_req({ url = "ftp://x/y" }))
    assert.are.equal("UNSUPPORTED_PROTOCOL", err.code)
    assert.is_false(err.request_sent)
    assert.are.equal(0, #env.made)
  end)

  it("raises on misuse, like the libcurl transport", function()
    local env = with_fake_ngx()
    local t = env.resty.new()
    assert.has_error(function() t:request(get_req({ body = "x" })) end,
      "onecli: a GET request cannot have a body")
    assert.has_error(function() t:request(get_req({ headers = { ["X-A"] = "1\r\nX-B: 2" } })) end,
      "onecli: request header 'X-A' contains a line break")
    assert.has_error(function() t:request(get_req({ body = 1, method = "POST" })) end)
    assert.has_error(function() t:request({}) end, "onecli: request needs 'method' and 'url'")
    assert.has_error(function() env.resty.new({ timeout = -1 }) end)
    assert.has_error(function() env.resty.new({ user_agent = "a\nb" }) end)
    assert.has_error(function() env.resty.new({ ca_file = "/x.pem", insecure = true }) end)
  end)

  it("refuses the phases without cosockets", function()
    local env = with_fake_ngx({ phase = "log" })
    local t = env.resty.new()
    assert.has_error(function() t:request(get_req()) end,
      "onecli: the OpenResty transport cannot run in nginx's log phase (no cosockets there): "
      .. "call the API from a content, access or rewrite handler, or from an ngx.timer.at callback")
    env.phase = "timer"
    env.queue = { { response = OK_RESPONSE } }
    assert.are.equal(200, t:request(get_req()))
  end)

  it("close() is idempotent and later requests raise", function()
    local env = with_fake_ngx()
    local t = env.resty.new()
    assert.is_false(t:is_closed())
    t:close()
    t:close()
    assert.is_true(t:is_closed())
    assert.matches("closed", tostring(t))
    assert.has_error(function() t:request(get_req()) end, "onecli: the transport is closed")
  end)

  it("accepts ca_file only when it is the declared lua_ssl_trusted_certificate", function()
    local env = with_fake_ngx()
    local resty = env.resty
    local ok, msg = pcall(resty.new, { ca_file = "/etc/ca.pem" })
    assert.is_false(ok)
    assert.matches("lua_ssl_trusted_certificate", msg)
    resty.configure({ trusted_certificate = "/etc/ca.pem" })
    assert.are.equal("/etc/ca.pem", resty.trusted_certificate())
    assert.is_table(resty.new({ ca_file = "/etc/ca.pem" }))
    ok, msg = pcall(resty.new, { ca_file = "/other.pem" })
    assert.is_false(ok)
    assert.matches("is not nginx's lua_ssl_trusted_certificate %('/etc/ca%.pem'%)", msg)
    resty.configure({ trusted_certificate = false })
    assert.is_nil(resty.trusted_certificate())
  end)

  it("lets the client pick it inside nginx and sleep with ngx.sleep", function()
    local env = with_fake_ngx()
    env.queue = { { response = OK_RESPONSE } }
    package.loaded["onecli.transport.resty"] = env.resty
    rawset(_G, "ngx", env.ngx)
    local ok, c = pcall(require("onecli").new, { url = "http://api.test:10254",
      api_key = "oc_secretkey1234", getenv = function() end })
    rawset(_G, "ngx", nil)
    package.loaded["onecli.transport.resty"] = nil
    assert(ok, c)
    rawset(_G, "ngx", env.ngx)          -- the transport is chosen per call, by the phase
    local t = c:_transport_now()
    local sleep = c:_sleep_now(t)
    local agents, err = c.agents:list()
    rawset(_G, "ngx", nil)
    assert.are.equal(env.resty.Transport, getmetatable(t))
    assert.are.equal(env.ngx.sleep, sleep)
    assert.are.same({}, agents, tostring(err))
    c:close()
  end)
end)

describe("resty transport, lua-resty-http's options over a fake ngx", function()
  -- new(opts) must raise an error naming the option
  local function refuses(env, opts, name, pattern)
    local ok, msg = pcall(env.resty.new, opts)
    assert.is_false(ok, "accepted " .. name)
    assert.matches("option '" .. name .. "'", msg, 1, true)
    if pattern then
      assert.matches(pattern, msg)
    end
  end

  it("checks backlog, send_timeout, read_timeout and ssl_server_name, naming them", function()
    local env = with_fake_ngx()
    for _, v in ipairs({ -1, 1.5, "2", 0 / 0, math.huge, 2 ^ 31, true }) do
      refuses(env, { backlog = v }, "backlog", "integer from 0 to 2147483647")
    end
    for _, name in ipairs({ "send_timeout", "read_timeout" }) do
      for _, v in ipairs({ 0, -1, "1", 0 / 0, math.huge, -math.huge, {} }) do
        refuses(env, { [name] = v }, name, "positive, finite number of seconds")
      end
    end
    for _, v in ipairs({ 1, "", "a b", "a..b", "-a", "a.", "a:443", "a/b", "é.example",
                         ("a"):rep(254), "a\nb" }) do
      refuses(env, { ssl_server_name = v }, "ssl_server_name", "must be a host name")
    end
    refuses(env, { ssl_server_name = "10.0.0.5" }, "ssl_server_name", "not an IP address")
    -- accepted: integers (2.0 too), any positive seconds, host names (lower-cased)
    local t = env.resty.new({ backlog = 0, send_timeout = 0.001, read_timeout = 120,
                              ssl_server_name = "API.OneCLI.sh" })
    assert.are.equal(0, t.backlog)
    assert.are.equal(0.001, t.send_timeout)
    assert.are.equal(120, t.read_timeout)
    assert.are.equal("api.onecli.sh", t.ssl_server_name)
    assert.are.equal(2, env.resty.new({ backlog = 2.0 }).backlog)
    assert.is_table(env.resty.new({ ssl_server_name = "internal_api-2.corp" }))
    t = env.resty.new()
    assert.is_nil(t.backlog)
    assert.is_nil(t.send_timeout)
    assert.is_nil(t.read_timeout)
    assert.is_nil(t.ssl_server_name)
  end)

  it("refuses proxy options: a proxy would be ignored", function()
    local env = with_fake_ngx()
    for _, name in ipairs({ "proxy", "http_proxy", "https_proxy", "no_proxy", "proxy_opts" }) do
      refuses(env, { [name] = "http://proxy.test:3128" }, name, "does not support proxies")
    end
  end)

  it("says once, in nginx's error log, that a proxy variable is ignored", function()
    local getenv = os.getenv
    local ok, err = pcall(function()
      os.getenv = function(name)    -- luacheck: ignore
        if name == "HTTPS_PROXY" then return "http://user:pw@proxy.test:3128" end
      end
      local env = with_fake_ngx()
      env.resty.new()
      env.resty.new()
      assert.are.equal(1, #env.logs)
      assert.are.equal(env.ngx.WARN, env.logs[1][1])
      assert.matches("does not use proxies: HTTPS_PROXY is ignored", env.logs[1][2], 1, true)
      assert.is_nil(env.logs[1][2]:find("pw@", 1, true))      -- never the value
      os.getenv = function() end    -- luacheck: ignore
      env = with_fake_ngx()
      env.resty.new()
      assert.are.equal(0, #env.logs)
    end)
    os.getenv = getenv              -- luacheck: ignore
    assert(ok, err)
  end)

  it("marks every transport object with cosockets = true", function()
    local env = with_fake_ngx()
    assert.is_true(rawget(env.resty.new(), "cosockets"))
    assert.is_true(rawget(env.resty.new({ backlog = 1, insecure = true }), "cosockets"))
  end)

  it("passes pool_size and backlog to connect, in a pool named for them", function()
    local env = with_fake_ngx()
    env.queue = { { response = OK_RESPONSE }, { response = OK_RESPONSE } }
    assert.are.equal(200, env.resty.new({ pool_size = 2, backlog = 3 }):request(get_req()))
    local s = env.made[1]
    assert.are.same({ pool = "onecli:http://api.test:10254:pool_size=2:backlog=3",
                      pool_size = 2, backlog = 3 }, s.connect_opts)
    assert.are.same({ 60000, 2 }, s.kept)
    -- without a backlog: today's pool, and nginx makes it at setkeepalive
    assert.are.equal(200, env.resty.new({ pool_size = 2 }):request(get_req()))
    assert.are.same({ pool = "onecli:http://api.test:10254" }, env.made[2].connect_opts)
    assert.are.same({ 60000, 2 }, env.made[2].kept)
  end)

  it("a full backlog queue is an unsent connection_error", function()
    local env = with_fake_ngx()
    env.queue = { { connect_err = "too many waiting connect operations" } }
    local _, err = env.resty.new({ pool_size = 1, backlog = 0 }):request(
      get_req({ method = "POST", body = "{}", fresh_connect = true }))
    assert.are.equal("COULDNT_CONNECT", err.code)
    assert.are.equal("connection_error", err.type)
    assert.is_false(err.request_sent)
    assert.is_true(err.retryable)
    assert.is_nil(err.connection_reused)
    assert.are.equal("Failed to connect to api.test port 10254: too many waiting connect "
      .. "operations (pool_size 1, backlog 0: all the pool's connections are busy and its "
      .. "queue of waiting calls is full)", err.message)
    assert.are.same({}, env.made[1].sent)
  end)

  it("a wait in the backlog queue longer than connect_timeout is an unsent timeout_error",
     function()
    local env = with_fake_ngx()
    env.queue = { { connect_err = "timeout" } }
    local _, err = env.resty.new({ pool_size = 4, backlog = 8 }):request(
      get_req({ connect_timeout = 0.25 }))
    assert.are.equal("OPERATION_TIMEDOUT", err.code)
    assert.are.equal("timeout_error", err.type)
    assert.is_false(err.request_sent)
    assert.matches("^Connection timed out after %d+ milliseconds %(connect_timeout, which also "
      .. "bounds the wait for a free connection of the pool: pool_size 4, backlog 8%)$",
      err.message)
    -- the wait in the queue is nginx's connect timeout
    assert.are.equal(250, env.made[1].timeouts[1][1])
  end)

  it("with a backlog, fresh_connect closes the pooled connections it passes over", function()
    -- held, they would count against pool_size while the new one waits
    local env = with_fake_ngx()
    env.queue = { { reused = 2 }, { reused = 1 }, { reused = 0, response = OK_RESPONSE } }
    local status = env.resty.new({ pool_size = 2, backlog = 2 }):request(
      get_req({ method = "POST", body = "{}", fresh_connect = true }))
    assert.are.equal(200, status)
    assert.are.equal(3, #env.made)
    for i = 1, 2 do
      assert.is_true(env.made[i].closed)
      assert.is_nil(env.made[i].kept)
      assert.are.same({}, env.made[i].sent)
    end
    assert.matches("^POST ", env.made[3].sent[1])
    assert.are.same({ 60000, 2 }, env.made[3].kept)      -- joins the pool afterwards
    for i = 1, 3 do
      assert.are.same({ pool = "onecli:http://api.test:10254:pool_size=2:backlog=2",
                        pool_size = 2, backlog = 2 }, env.made[i].connect_opts)
    end
  end)

  it("ssl_server_name: SNI, the name verified and the Host header, in a pool of its own",
     function()
    local env = with_fake_ngx()
    for _ = 1, 5 do env.queue[#env.queue + 1] = { response = OK_RESPONSE } end
    local url = "https://10.0.0.5:8443/v1/agents"
    local named = env.resty.new({ ssl_server_name = "API.example.com" })
    assert.are.equal(200, named:request(get_req({ url = url })))
    local s = env.made[1]
    assert.are.equal("10.0.0.5", s.host)           -- connects to the URL's host
    assert.are.equal(8443, s.port)
    assert.are.same({ name = "api.example.com", verify = true }, s.handshake)
    assert.matches("^GET /v1/agents HTTP/1%.1\r\nHost: api%.example%.com:8443\r\n", s.sent[1])
    assert.are.equal("onecli:https://10.0.0.5:8443:api.example.com:verify:", s.pool)
    -- another name, or none: other pools
    assert.are.equal(200, env.resty.new({ ssl_server_name = "other.example.com" }):request(
      get_req({ url = url })))
    assert.are.equal("onecli:https://10.0.0.5:8443:other.example.com:verify:", env.made[2].pool)
    assert.are.same({ name = "other.example.com", verify = true }, env.made[2].handshake)
    assert.are.equal(200, env.resty.new():request(get_req({ url = url })))
    assert.are.equal("onecli:https://10.0.0.5:8443:10.0.0.5:verify:", env.made[3].pool)
    assert.matches("\r\nHost: 10%.0%.0%.5:8443\r\n", env.made[3].sent[1])
    -- the default port is not written in Host
    assert.are.equal(200, named:request(get_req({ url = "https://10.0.0.5/v1/agents" })))
    assert.matches("\r\nHost: api%.example%.com\r\n", env.made[4].sent[1])
    -- plain http has no TLS: neither the name nor its pool
    assert.are.equal(200, named:request(get_req({ url = "http://10.0.0.5:8080/v1/agents" })))
    assert.is_nil(env.made[5].handshake)
    assert.matches("\r\nHost: 10%.0%.0%.5:8080\r\n", env.made[5].sent[1])
    assert.are.equal("onecli:http://10.0.0.5:8080", env.made[5].pool)
  end)

  it("send_timeout and read_timeout bound each operation, cut to what is left", function()
    local env = with_fake_ngx()
    env.queue = { { response = OK_RESPONSE }, { response = OK_RESPONSE },
                  { response = OK_RESPONSE } }
    local t = env.resty.new({ send_timeout = 0.5, read_timeout = 1.5 })
    assert.are.equal(200, t:request(get_req()))      -- timeout 5, connect_timeout 2
    local timeouts = env.made[1].timeouts
    assert.is_true(#timeouts >= 3)                    -- connect, send, reads
    for _, v in ipairs(timeouts) do
      assert.are.same({ 2000, 500, 1500 }, v)
    end
    -- a request with less time left than read_timeout: what is left
    assert.are.equal(200, t:request(get_req({ timeout = 1, connect_timeout = 2 })))
    for _, v in ipairs(env.made[2].timeouts) do
      assert.are.same({ 1000, 500, 1000 }, v)
    end
    -- TLS: the handshake is bounded by the connect timeout
    assert.are.equal(200, t:request(get_req({ url = "https://api.test/v1/agents" })))
    assert.are.same({ 2000, 500, 1500 }, env.made[3].timeouts[2])
    assert.is_table(env.made[3].handshake)
  end)

  it("a read that outlasts read_timeout is a timeout_error that names it", function()
    local env = with_fake_ngx()
    local stalled = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"
    env.queue = { { response = stalled, eof = "timeout" }, { response = stalled, eof = "timeout" },
                  { response = stalled, eof = "timeout" } }
    local _, err = env.resty.new({ read_timeout = 0.3 }):request(get_req())
    assert.are.equal("OPERATION_TIMEDOUT", err.code)
    assert.are.equal("timeout_error", err.type)
    assert.is_true(err.request_sent)
    assert.is_true(err.retryable)
    assert.matches("^Operation timed out after %d+ milliseconds while reading the response body "
      .. "%(read_timeout: no progress for 300 milliseconds%)$", err.message)
    assert.is_true(env.made[1].closed)
    -- unset, or longer than the request's timeout: the timeout ended it
    _, err = env.resty.new():request(get_req())
    assert.are.equal("OPERATION_TIMEDOUT", err.code)
    assert.is_nil(err.message:find("read_timeout", 1, true))
    _, err = env.resty.new({ read_timeout = 60 }):request(get_req())
    assert.are.equal("OPERATION_TIMEDOUT", err.code)
    assert.is_nil(err.message:find("read_timeout", 1, true))
  end)

  it("a write that outlasts send_timeout is a sent timeout_error that names it", function()
    local env = with_fake_ngx()
    env.queue = { { send_err = "timeout" } }
    local _, err = env.resty.new({ send_timeout = 0.2 }):request(
      get_req({ method = "POST", body = "{}", fresh_connect = true }))
    assert.are.equal("OPERATION_TIMEDOUT", err.code)
    assert.are.equal("timeout_error", err.type)
    assert.is_true(err.request_sent)       -- part of it may have gone out
    assert.matches("while sending the request %(send_timeout: no progress for 200 milliseconds%)$",
      err.message)
    assert.is_true(env.made[1].closed)
  end)
end)
