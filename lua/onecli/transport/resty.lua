--- The OpenResty transport: HTTP/1.1 over nginx cosockets.
--
-- The libcurl transport of onecli.core blocks the whole nginx worker while
-- it waits; this one yields to nginx instead, so a worker keeps serving
-- other requests while an API call is in flight. The client picks it by
-- itself when it is created inside nginx (outside init_by_lua* and
-- init_worker_by_lua*); it can also be passed explicitly:
--
--   local onecli = require("onecli")
--   local client = onecli.new{
--     api_key = ...,
--     transport = require("onecli.transport.resty").new{ timeout = 10 },
--   }
--
-- It speaks HTTP/1.1 with keep-alive through nginx's connection pools
-- (sock:setkeepalive); the pool name carries the host, the port, TLS, the
-- TLS server name and the verification settings (and, with a backlog, the
-- pool's size and backlog), so a connection made without verification is
-- never handed to a client that verifies. A request marked fresh_connect
-- (every POST: see README, Retries) never gets a pooled connection (its
-- new one joins the pool afterwards); a request that finds its pooled
-- connection closed by the server is not sent again here: the error says
-- connection_reused and the retry loop retries it at once, counting it
-- as an attempt. Response bodies are capped at max_response_size.
-- Retries sleep with ngx.sleep (transport.sleep). JSON, the error
-- normalizer and the backoff arithmetic stay in onecli.core: pure
-- functions, safe inside nginx.
--
-- What nginx must provide:
--   * TLS verification is on unless insecure = true, and nginx verifies
--     against the `lua_ssl_trusted_certificate` directive only (OpenResty
--     does not read the system store by itself):
--         lua_ssl_trusted_certificate /etc/ssl/certs/ca-certificates.crt;
--         lua_ssl_verify_depth 5;
--     Without it every verified handshake fails with a tls_error. The
--     client's ca_file option cannot change what nginx trusts; Lua cannot
--     read the directive either, so declare it once (init_by_lua*):
--         require("onecli.transport.resty").configure{
--           trusted_certificate = "/etc/ssl/certs/ca-certificates.crt" }
--     ca_file is then accepted when it names that file, and refused with
--     a clear message otherwise. nginx checks the host name against the
--     certificate's DNS names only: a verified https URL needs a host
--     name, not an IP address.
--   * Host names are resolved by nginx's `resolver` directive (e.g.
--     `resolver 127.0.0.53;`, or your DNS server); nginx does not read
--     /etc/hosts. "localhost" is mapped to 127.0.0.1 here.
--   * Proxies are not supported: http_proxy / HTTPS_PROXY (and the rest
--     of libcurl's proxy variables) are ignored, and every call connects
--     straight to the URL's host. new() refuses proxy options (proxy,
--     http_proxy, https_proxy, no_proxy, proxy_opts), and when one of
--     those variables is visible to nginx (declared with nginx's `env`
--     directive) the first transport of a worker says once in the error
--     log that it is ignored. Where a proxy is required, call the API
--     outside nginx (libcurl honours the variables).
--   * Cosockets do not exist in init_by_lua*, init_worker_by_lua*,
--     set_by_lua*, header_filter_by_lua*, body_filter_by_lua*, log_by_lua*
--     and balancer_by_lua*: call the API from a content, access or
--     rewrite handler, or from an ngx.timer.at callback.
--
-- Options of new() (the client passes its own options through; the
-- others are ignored). Numbers are checked, and a bad value raises an
-- error that names the option.
--   timeout, connect_timeout   seconds (30, 10): defaults for requests
--                      that carry no timeout of their own. A request's
--                      timeout bounds the whole exchange; connect_timeout
--                      bounds each of: the TCP connect, the wait in the
--                      backlog queue (below) and the TLS handshake, each
--                      cut to what is left of the timeout.
--   send_timeout, read_timeout   seconds (> 0; unset by default): the
--                      longest a write may go without progress, or a read
--                      wait for more of the answer -- per operation, like
--                      lua-resty-http's set_timeouts(connect, send, read):
--                      an answer that keeps arriving, slowly, is not cut
--                      by read_timeout. Each is cut to what is left of
--                      the request's timeout (which the retry loop cuts
--                      to the call's deadline). Unset: one write or read
--                      may take all that is left of the timeout. The
--                      timeout_error they end in names them.
--   ca_file, insecure  see above; insecure = true skips verification.
--   ssl_server_name    a host name: the name sent with SNI, checked
--                      against the certificate and sent as the Host
--                      header of https requests, instead of the URL's
--                      host (connecting by IP address, or through another
--                      name, to a server known by this one). Plain http
--                      requests do not use it. It is part of the pool
--                      name: connections made for different names never
--                      mix.
--   user_agent         a product token appended to the User-Agent.
--   max_response_size  bytes (64 MiB).
--   pool_size          connections kept per pool (16).
--   keepalive_timeout  seconds an idle pooled connection is kept (60).
--   backlog            an integer >= 0 (unset by default). Unset, pool_size
--                      only limits the idle connections kept: busy ones
--                      are not counted, and concurrent calls open as many
--                      connections as they need. Set, a pool never has
--                      more than pool_size connections open, busy or idle
--                      (per nginx worker): a call that finds them all busy
--                      waits in a queue of at most `backlog` calls until
--                      one comes free, first come first served, for at
--                      most connect_timeout (a connection handed back to
--                      the pool is taken at once; one that was closed is
--                      replaced by a new connect, given connect_timeout
--                      anew). The queue is onecli.transport.resty_queue,
--                      not nginx's own (whose wake-ups get lost under
--                      load in lua-nginx-module 0.10.23; it is used only
--                      where ngx.semaphore is missing).
--                      A full queue is a connection_error
--                      (COULDNT_CONNECT, "too many waiting connect
--                      operations"), a wait that lasts too long a
--                      timeout_error (OPERATION_TIMEDOUT); either way
--                      request_sent = false, so even a POST is retried
--                      (with backoff). (nginx fixes a pool's size when
--                      the pool is made, so pool_size and backlog are
--                      part of its name.) A request marked fresh_connect
--                      closes the idle connections it passes over instead
--                      of setting them aside: held, they would take the
--                      places it waits for.
--
-- Every transport object has cosockets = true (the batch driver uses it to
-- tell this transport from the others).

-- luacheck: globals ngx
local ngx = ngx

local core = require("onecli.core")
local queue = require("onecli.transport.resty_queue")

local type, tostring, tonumber, pairs, ipairs, error, setmetatable, pcall =
      type, tostring, tonumber, pairs, ipairs, error, setmetatable, pcall
local concat, sort = table.concat, table.sort
local fmt, lower = string.format, string.lower
local floor, ceil, min, max, huge = math.floor, math.ceil, math.min, math.max, math.huge
local transport_error = core.transport_error

local _M = { _VERSION = core._VERSION }

local DEFAULT_TIMEOUT = 30
local DEFAULT_CONNECT_TIMEOUT = 10
local DEFAULT_MAX_RESPONSE = 64 * 1024 * 1024
local DEFAULT_POOL_SIZE = 16
local DEFAULT_KEEPALIVE_TIMEOUT = 60
local MAX_HEADER_BYTES = 100 * 1024     -- libcurl's limit for one response's headers
local READ_SIZE = 64 * 1024
local MAX_BACKLOG = 2147483647

-- Options of other HTTP clients that would ask for a proxy: refused.
local PROXY_OPTIONS = { "proxy", "http_proxy", "https_proxy", "no_proxy", "proxy_opts" }
-- libcurl's proxy variables (no_proxy alone asks for nothing)
local PROXY_VARIABLES = { "https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY",
                          "all_proxy", "ALL_PROXY" }

-- Phases where cosockets (and ngx.sleep) do not exist.
local NO_COSOCKET_PHASES = {
  init = true, init_worker = true, set = true, header_filter = true,
  body_filter = true, log = true, balancer = true, exit_worker = true,
}

-- Headers this transport writes itself.
local OWN_HEADERS = {
  host = true, ["content-length"] = true, connection = true,
  ["transfer-encoding"] = true, expect = true,
}

-- Methods that get "Content-Length: 0" when they carry no body (as libcurl
-- does for them).
local BODY_METHODS = { POST = true, PUT = true, PATCH = true }

-- The lua_ssl_trusted_certificate the application declared (configure).
local trusted_certificate

---------------------------------------------------------------------------
-- pure pieces (unit-tested outside nginx)

--- Splits an http(s) URL. Returns a table { scheme, tls, host, port,
-- target, host_header, connect_host, server_name } or nil, code, message
-- with libcurl's code names.
function _M.parse_url(url)
  if type(url) ~= "string" then
    return nil, "URL_MALFORMAT", "the URL must be a string"
  end
  local scheme, authority, target = url:match("^(%a[%w+.-]*)://([^/?#]*)(.*)$")
  if not scheme then
    return nil, "URL_MALFORMAT", "malformed URL"
  end
  scheme = lower(scheme)
  if scheme ~= "http" and scheme ~= "https" then
    return nil, "UNSUPPORTED_PROTOCOL", "protocol \"" .. scheme .. "\" not supported"
  end
  if authority == "" or authority:find("[@%s]") then
    return nil, "URL_MALFORMAT", "malformed URL: bad host part"
  end
  local host, rest
  if authority:sub(1, 1) == "[" then
    host, rest = authority:match("^(%[[%x:.]+%])(.*)$")
  else
    host, rest = authority:match("^([^:%[%]]+)(.*)$")
  end
  if not host then
    return nil, "URL_MALFORMAT", "malformed URL: bad host part"
  end
  local default_port = scheme == "https" and 443 or 80
  local port = default_port
  if rest ~= "" then
    local digits = rest:match("^:(%d+)$")
    port = tonumber(digits)
    if not port or port < 1 or port > 65535 then
      return nil, "URL_MALFORMAT", "malformed URL: bad port"
    end
  end
  host = lower(host)
  target = target:gsub("#.*$", "")
  if target == "" then
    target = "/"
  elseif target:sub(1, 1) == "?" then
    target = "/" .. target
  end
  if target:find("[%s%c]") then
    return nil, "URL_MALFORMAT", "malformed URL: white space in the path"
  end
  local connect_host = host == "localhost" and "127.0.0.1" or host
  return {
    scheme = scheme,
    tls = scheme == "https",
    host = host,
    port = port,
    target = target,
    host_header = port == default_port and host or (host .. ":" .. port),
    connect_host = connect_host,
    -- the name sent with SNI and checked against the certificate
    server_name = host:gsub("^%[(.*)%]$", "%1"),
  }
end

--- Checks the request headers (name -> value); returns an error message
-- for misuse, as the libcurl transport does, or nil.
local function check_headers(headers)
  if headers == nil then
    return nil
  end
  if type(headers) ~= "table" then
    return "request headers must be a table, got " .. type(headers)
  end
  for name, value in pairs(headers) do
    if type(name) ~= "string" then
      return "request header names must be strings"
    end
    if type(value) ~= "string" and type(value) ~= "number" then
      return fmt("request header '%s' must be a string, got %s", name, type(value))
    end
    if name == "" or name:find("[:\r\n \t]") then
      return fmt("request header name '%s' is not valid", name)
    end
    if tostring(value):find("[\r\n]") then
      return fmt("request header '%s' contains a line break", name)
    end
  end
  return nil
end
_M.check_headers = check_headers

--- The bytes of one HTTP/1.1 request. headers: name -> value (already
-- checked); a User-Agent among them replaces user_agent.
function _M.build_request(method, target, host_header, headers, body, user_agent)
  local names, ua = {}, user_agent
  for name in pairs(headers or {}) do
    local lname = lower(name)
    if lname == "user-agent" then
      ua = tostring(headers[name])
    elseif not OWN_HEADERS[lname] then
      names[#names + 1] = name
    end
  end
  sort(names)
  local lines = { method .. " " .. target .. " HTTP/1.1", "Host: " .. host_header }
  if ua and ua ~= "" then
    lines[#lines + 1] = "User-Agent: " .. ua
  end
  for _, name in ipairs(names) do
    lines[#lines + 1] = name .. ": " .. tostring(headers[name])
  end
  if body then
    lines[#lines + 1] = "Content-Length: " .. #body
  elseif BODY_METHODS[method] then
    lines[#lines + 1] = "Content-Length: 0"
  end
  lines[#lines + 1] = "Connection: keep-alive"
  return concat(lines, "\r\n") .. "\r\n\r\n" .. (body or "")
end

--- Parses a status line; returns version ("1.1"), status (integer) or nil.
function _M.parse_status_line(line)
  local major, minor, status, after = line:match("^HTTP/(%d)%.(%d) (%d%d%d)(.?)")
  if not major then
    major, status, after = line:match("^HTTP/(%d) (%d%d%d)(.?)")
    minor = "0"
  end
  if not major or (after ~= "" and after ~= " ") then
    return nil
  end
  return major .. "." .. minor, tonumber(status)
end

--- Adds one header line to headers (lower-cased names, repeated headers
-- joined with ", "); a line starting with white space continues the
-- previous header (obsolete folding). Returns the name it set, or nil.
function _M.add_header_line(headers, line, last)
  if line:find("^[ \t]") then
    if last and headers[last] then
      local more = line:match("^%s*(.-)%s*$")
      if more ~= "" then
        headers[last] = headers[last] .. " " .. more
      end
    end
    return last
  end
  local name, value = line:match("^([^:%s]+):%s*(.-)%s*$")
  if not name then
    return nil
  end
  name = lower(name)
  local old = headers[name]
  headers[name] = old and (old .. ", " .. value) or value
  return name
end

local function has_token(value, token)
  if not value then
    return false
  end
  for t in lower(value):gmatch("[^,%s]+") do
    if t == token then
      return true
    end
  end
  return false
end

--- How the body of a response is delimited: "none", "length", n,
-- "chunked" or "close"; or nil, message for an invalid Content-Length.
function _M.body_framing(method, status, headers)
  if method == "HEAD" or status == 204 or status == 304 or (status >= 100 and status < 200) then
    return "none"
  end
  local te = headers["transfer-encoding"]
  if te then
    if lower(te):match("chunked%s*$") then
      return "chunked"
    end
    return "close"
  end
  local cl = headers["content-length"]
  if cl then
    local n
    for v in cl:gmatch("[^,]+") do
      local digits = v:match("^%s*(%d+)%s*$")
      if not digits or #digits > 15 or (n and tonumber(digits) ~= n) then
        return nil, "invalid Content-Length: " .. cl
      end
      n = tonumber(digits)
    end
    if not n then
      return nil, "invalid Content-Length: " .. cl
    end
    return "length", n
  end
  return "close"
end

--- Whether the connection may be kept after a complete response.
function _M.keep_alive(version, status, headers, framing)
  if framing == "close" or status == 101 then
    return false
  end
  local connection = headers.connection
  if has_token(connection, "close") then
    return false
  end
  if version == "1.0" then
    return has_token(connection, "keep-alive")
  end
  return true
end

--- The size of a chunk from its size line ("1a2b;ext=1"), or nil.
function _M.parse_chunk_size(line)
  local hex = line:match("^%s*(%x+)%s*;") or line:match("^%s*(%x+)%s*$")
  if not hex or #hex > 12 then
    return nil
  end
  return tonumber(hex, 16)
end

--- libcurl's code name for a cosocket failure. op: "connect",
-- "handshake", "send" or "receive".
function _M.error_code(op, err)
  err = tostring(err)
  if err == "timeout" or err:find("timed out", 1, true) then
    return "OPERATION_TIMEDOUT"
  end
  if op == "connect" then
    if err:find("could not be resolved", 1, true) or err:find("no resolver", 1, true)
        or err:find("resolv", 1, true) then
      return "COULDNT_RESOLVE_HOST"
    end
    return "COULDNT_CONNECT"
  elseif op == "handshake" then
    -- verification failures: "18: self-signed certificate",
    -- "certificate host mismatch"
    if err:find("^%d+: ") or err:find("host mismatch", 1, true)
        or err:find("verif", 1, true) then
      return "PEER_FAILED_VERIFICATION"
    end
    return "SSL_CONNECT_ERROR"
  elseif op == "send" then
    return "SEND_ERROR"
  end
  return "RECV_ERROR"
end

-- Version of the lua-nginx-module as text: 10023 -> "0.10.23".
function _M.ngx_lua_version(v)
  v = tonumber(v)
  if not v then
    return "unknown"
  end
  return fmt("%d.%d.%d", floor(v / 1000000), floor(v / 1000) % 1000, v % 1000)
end

--- The User-Agent: the core's, naming ngx_lua instead of libcurl, plus the
-- application's product token.
function _M.user_agent(suffix, lua_version)
  local ua = core.user_agent:gsub("libcurl/%S+", function()
    return "ngx_lua/" .. _M.ngx_lua_version(lua_version)
  end)
  if suffix and suffix ~= "" then
    ua = ua .. " " .. suffix
  end
  return ua
end

---------------------------------------------------------------------------
-- reading a response from a socket
--
-- ctx: { sock = <cosocket or a stand-in with receive/settimeouts>,
--        deadline = <seconds>, now = function() -> seconds,
--        connect_ms = <ms>, max_response = <bytes>,
--        send_ms = <ms or nil>, read_ms = <ms or nil> }
-- Every read gets the time left until the deadline as its timeout, or
-- read_ms when that is shorter (and so for every write and send_ms).

local function remaining_ms(ctx)
  local left = ctx.deadline - ctx.now()
  if left <= 0 then
    return nil
  end
  return max(1, ceil(left * 1000))
end

-- The timeouts (connect, send, read) of the next operations when ms are
-- left; notes in ctx.cut which per-operation limits are the shorter ones.
local function set_timeouts(ctx, sock, ms)
  local send_ms, read_ms = ctx.send_ms, ctx.read_ms
  local cut = ctx.cut or {}
  ctx.cut = cut
  cut.send = send_ms ~= nil and send_ms < ms
  cut.read = read_ms ~= nil and read_ms < ms
  sock:settimeouts(min(ctx.connect_ms, ms), cut.send and send_ms or ms,
                   cut.read and read_ms or ms)
end

local function receive(ctx, pattern)
  local ms = remaining_ms(ctx)
  if not ms then
    if ctx.cut then
      ctx.cut.read = false      -- the request's timeout, not read_timeout
    end
    return nil, "timeout", ""
  end
  set_timeouts(ctx, ctx.sock, ms)
  return ctx.sock:receive(pattern)
end

-- A timeout: code, message. op ("send" or "read", or nil) names the
-- operation whose own limit (send_timeout, read_timeout) may have ended
-- it rather than the request's timeout.
local function timed_out(ctx, what, op)
  local msg = fmt("Operation timed out after %d milliseconds %s",
                  floor((ctx.now() - ctx.started) * 1000 + 0.5), what)
  local cut = ctx.cut
  if op and cut and cut[op] then
    msg = msg .. fmt(" (%s_timeout: no progress for %d milliseconds)", op, ctx[op .. "_ms"])
  end
  return "OPERATION_TIMEDOUT", msg
end

-- A failed read: returns code, message.
local function read_failure(ctx, err, what)
  if err == "timeout" then
    return timed_out(ctx, what, "read")
  end
  return "RECV_ERROR", "Recv failure: " .. tostring(err)
end

-- Reads n bytes into parts; returns true or nil, code, message.
local function read_exact(ctx, n, parts)
  while n > 0 do
    local k = min(n, READ_SIZE)
    local data, err, partial = receive(ctx, k)
    if not data then
      if ctx.listen and partial and partial ~= "" then
        parts[#parts + 1] = partial     -- the events that came before the timeout
      end
      if err == "closed" then
        return nil, "PARTIAL_FILE",
               fmt("transfer closed with %d bytes remaining to read", n - #(partial or ""))
      end
      return nil, read_failure(ctx, err, "while reading the response body")
    end
    parts[#parts + 1] = data
    n = n - #data
  end
  return true
end

local function too_large(ctx)
  return nil, "RESPONSE_TOO_LARGE",
         fmt("response body larger than max_response_size (%d bytes)", ctx.max_response)
end

-- One line of a chunked body: a chunk size, or the CRLF after a chunk.
local function receive_chunk_line(ctx)
  local line, err = receive(ctx, "*l")
  if line then
    return line
  end
  if err == "closed" then
    return nil, "RECV_ERROR", "transfer closed inside a chunked response"
  end
  return nil, read_failure(ctx, err, "while reading the response body")
end

local function read_chunked(ctx, parts)
  local total, header_bytes = 0, 0
  while true do
    local line, code, msg = receive_chunk_line(ctx)
    if not line then
      return nil, code, msg
    end
    local size = _M.parse_chunk_size(line)
    if not size then
      return nil, "RECV_ERROR", "invalid chunk size in a chunked response"
    end
    if size == 0 then
      -- trailers, up to the empty line
      repeat
        local err
        line, err = receive(ctx, "*l")
        if not line then
          if err == "closed" then
            return true     -- a missing final CRLF loses nothing
          end
          return nil, read_failure(ctx, err, "while reading the response trailers")
        end
        header_bytes = header_bytes + #line
        if header_bytes > MAX_HEADER_BYTES then
          return nil, "RECV_ERROR", "response trailers too large"
        end
      until line == ""
      return true
    end
    total = total + size
    if total > ctx.max_response then
      return too_large(ctx)
    end
    local ok
    ok, code, msg = read_exact(ctx, size, parts)
    if not ok then
      return nil, code, msg
    end
    line, code, msg = receive_chunk_line(ctx)
    if not line then
      return nil, code, msg
    end
    if line ~= "" then
      return nil, "RECV_ERROR", "a chunk is not followed by CRLF in a chunked response"
    end
  end
end

local function read_until_close(ctx, parts)
  local total = 0
  while true do
    local data, err, partial = receive(ctx, READ_SIZE)
    data = data or partial
    if data and data ~= "" then
      total = total + #data
      if total > ctx.max_response then
        return too_large(ctx)
      end
      parts[#parts + 1] = data
    end
    if err == "closed" then
      return true
    elseif err then
      return nil, read_failure(ctx, err, "while reading the response body")
    end
  end
end

-- Reads the status line and headers of one response. Returns version,
-- status, headers, or nil, code, message, got_any.
local function read_head(ctx)
  local line, err, partial = receive(ctx, "*l")
  if not line then
    local got_any = partial ~= nil and partial ~= ""
    if err == "closed" then
      if got_any then
        return nil, "RECV_ERROR", "transfer closed inside the status line", true
      end
      return nil, "GOT_NOTHING", "Empty reply from server", false
    end
    local code, msg = read_failure(ctx, err, "with 0 bytes received")
    return nil, code, msg, got_any
  end
  local version, status = _M.parse_status_line(line)
  if not version then
    return nil, "WEIRD_SERVER_REPLY",
           "Unsupported or malformed HTTP response: " .. line:sub(1, 80), true
  end
  local headers, last, bytes = {}, nil, #line
  while true do
    line, err = receive(ctx, "*l")
    if not line then
      if err == "closed" then
        return nil, "RECV_ERROR", "transfer closed inside the response headers", true
      end
      local code, msg = read_failure(ctx, err, "while reading the response headers")
      return nil, code, msg, true
    end
    if line == "" then
      break
    end
    bytes = bytes + #line + 2
    if bytes > MAX_HEADER_BYTES then
      return nil, "RECV_ERROR", "response headers larger than 100 KiB", true
    end
    last = _M.add_header_line(headers, line, last)
  end
  return version, status, headers
end

--- Reads one response. Returns status, headers, body, keep_alive; or nil,
-- code, message, got_any (whether any byte of a response came back).
function _M.read_response(ctx, method)
  local version, status, headers, got_any
  for _ = 1, 10 do          -- interim 1xx answers (100 Continue, ...) first
    version, status, headers, got_any = read_head(ctx)
    if not version then
      return nil, status, headers, got_any     -- code, message
    end
    if status >= 200 or status == 101 then
      break
    end
  end
  if status < 200 and status ~= 101 then
    return nil, "WEIRD_SERVER_REPLY", "too many interim (1xx) responses", true
  end
  local framing, length = _M.body_framing(method, status, headers)
  if not framing then
    return nil, "WEIRD_SERVER_REPLY", length, true
  end
  local parts, ok, code, msg = {}, true, nil, nil
  if framing == "length" then
    if length > ctx.max_response then
      ok, code, msg = too_large(ctx)
    else
      ok, code, msg = read_exact(ctx, length, parts)
    end
  elseif framing == "chunked" then
    ok, code, msg = read_chunked(ctx, parts)
  elseif framing == "close" then
    ok, code, msg = read_until_close(ctx, parts)
  end
  if not ok then
    -- a listening request (server-sent events): the timeout after a 2xx
    -- head ends the answer, and what came is its body
    if ctx.listen and code == "OPERATION_TIMEDOUT" and status >= 200 and status < 300 then
      return status, headers, concat(parts), false
    end
    return nil, code, msg, true
  end
  return status, headers, concat(parts), _M.keep_alive(version, status, headers, framing)
end

---------------------------------------------------------------------------
-- configuration

--- Declares nginx's lua_ssl_trusted_certificate (which Lua cannot read),
-- so that a client's ca_file can be checked against it:
--   require("onecli.transport.resty").configure{ trusted_certificate = path }
function _M.configure(opts)
  if type(opts) ~= "table" then
    error("onecli.transport.resty.configure: options must be a table", 2)
  end
  for k, v in pairs(opts) do
    if k ~= "trusted_certificate" then
      error("onecli.transport.resty.configure: unknown option '" .. tostring(k) .. "'", 2)
    end
    if v ~= false and type(v) ~= "string" then
      error("onecli.transport.resty.configure: trusted_certificate must be a path", 2)
    end
  end
  trusted_certificate = opts.trusted_certificate or nil
end

--- The declared lua_ssl_trusted_certificate, or nil.
function _M.trusted_certificate()
  return trusted_certificate
end

---------------------------------------------------------------------------
-- the transport

local Transport = {}
Transport.__index = Transport
Transport.__name = "onecli.RestyTransport"

function Transport.__tostring(self)
  return "onecli.RestyTransport" .. (self.closed and " (closed)" or "")
end

local function now()
  ngx.update_time()
  return ngx.now()
end

local function positive(opts, name, dflt)
  local v = opts[name]
  if v == nil then
    return dflt
  end
  if type(v) ~= "number" or v <= 0 or v ~= v then
    error(fmt("onecli.transport.resty.new: option '%s' must be a positive number", name), 3)
  end
  return v
end

-- A per-operation timeout in seconds: nil, or a finite number > 0.
local function seconds(opts, name)
  local v = opts[name]
  if v == nil then
    return nil
  end
  if type(v) ~= "number" or v ~= v or v <= 0 or v == huge then
    error(fmt("onecli.transport.resty.new: option '%s' must be a positive, finite number "
              .. "of seconds", name), 3)
  end
  return v
end

local function backlog_option(opts)
  local v = opts.backlog
  if v == nil then
    return nil
  end
  if type(v) ~= "number" or v ~= v or v < 0 or v > MAX_BACKLOG or floor(v) ~= v then
    error(fmt("onecli.transport.resty.new: option 'backlog' must be an integer from 0 to %d "
              .. "(how many calls may wait for a connection of a full pool)", MAX_BACKLOG), 3)
  end
  return floor(v)
end

local function server_name_option(opts)
  local v = opts.ssl_server_name
  if v == nil then
    return nil
  end
  if type(v) ~= "string" or #v > 253 or not v:find("^[%w_][%w_%-%.]*$")
      or not v:find("[%w_]$") or v:find("..", 1, true) then
    error("onecli.transport.resty.new: option 'ssl_server_name' must be a host name "
          .. "(letters, digits, '-', '_' and '.', at most 253 characters)", 3)
  end
  if v:find("^[%d%.]+$") then
    error("onecli.transport.resty.new: option 'ssl_server_name' must be a host name, not an "
          .. "IP address (nginx checks a certificate's DNS names only)", 3)
  end
  return lower(v)
end

-- Once per worker: a proxy variable that nginx lets through (`env`
-- directive) is ignored here; say so instead of connecting directly in
-- silence. The value is never logged (it may hold credentials).
local proxy_checked = false
local function warn_proxy_variables()
  if proxy_checked then
    return
  end
  proxy_checked = true
  for _, name in ipairs(PROXY_VARIABLES) do
    local v = os.getenv(name)
    if v and v ~= "" then
      if ngx.log and ngx.WARN then
        ngx.log(ngx.WARN, "onecli: the OpenResty transport does not use proxies: ", name,
                " is ignored, API calls connect straight to the API's host")
      end
      return
    end
  end
end

--- Creates a transport. See the top of this file for the options.
function _M.new(opts)
  opts = opts or {}
  if type(opts) ~= "table" then
    error("onecli.transport.resty.new: options must be a table", 2)
  end
  if not (ngx and ngx.socket and ngx.socket.tcp) then
    error("onecli.transport.resty.new: not running inside nginx (ngx.socket is missing)", 2)
  end
  for _, name in ipairs(PROXY_OPTIONS) do
    if opts[name] ~= nil then
      error(fmt("onecli.transport.resty.new: option '%s': the OpenResty transport does not "
                .. "support proxies (it connects straight to the URL's host); where a proxy "
                .. "is required, call the API outside nginx", name), 2)
    end
  end
  local insecure = opts.insecure == true
  local ca_file = opts.ca_file
  if ca_file ~= nil then
    if type(ca_file) ~= "string" then
      error("onecli.transport.resty.new: option 'ca_file' must be a string", 2)
    end
    if insecure then
      error("onecli.transport.resty.new: ca_file and insecure = true contradict each other", 2)
    end
    if trusted_certificate == nil then
      error("onecli.transport.resty.new: ca_file ('" .. ca_file .. "') cannot be applied "
            .. "inside nginx, which verifies with its lua_ssl_trusted_certificate directive; "
            .. "set that directive and declare the same path with "
            .. "require(\"onecli.transport.resty\").configure{ trusted_certificate = ... }, "
            .. "or drop ca_file", 2)
    end
    if ca_file ~= trusted_certificate then
      error("onecli.transport.resty.new: ca_file ('" .. ca_file .. "') is not nginx's "
            .. "lua_ssl_trusted_certificate ('" .. trusted_certificate .. "'); nginx "
            .. "verifies with the directive only: change the directive or drop ca_file", 2)
    end
  end
  local suffix = opts.user_agent
  if suffix ~= nil and (type(suffix) ~= "string" or suffix:find("[\r\n]")) then
    error("onecli.transport.resty.new: option 'user_agent' must be a one-line string", 2)
  end
  local pool_size = positive(opts, "pool_size", DEFAULT_POOL_SIZE)
  local t = setmetatable({
    cosockets = true,
    timeout = positive(opts, "timeout", DEFAULT_TIMEOUT),
    connect_timeout = positive(opts, "connect_timeout", DEFAULT_CONNECT_TIMEOUT),
    send_timeout = seconds(opts, "send_timeout"),
    read_timeout = seconds(opts, "read_timeout"),
    backlog = backlog_option(opts),
    ssl_server_name = server_name_option(opts),
    max_response = floor(positive(opts, "max_response_size", DEFAULT_MAX_RESPONSE)),
    pool_size = max(1, floor(pool_size)),
    keepalive_ms = floor(positive(opts, "keepalive_timeout", DEFAULT_KEEPALIVE_TIMEOUT) * 1000),
    insecure = insecure,
    ca_file = ca_file,
    user_agent = _M.user_agent(suffix, ngx.config and ngx.config.ngx_lua_version),
    sleep = ngx.sleep,
    closed = false,
  }, Transport)
  warn_proxy_variables()
  return t
end

--- Nothing to release: idle connections belong to nginx's pools. Later
-- requests raise, as with the libcurl transport. Idempotent.
function Transport:close()
  self.closed = true
end

function Transport:is_closed()
  return self.closed
end

-- The name sent with SNI and checked against the certificate.
function Transport:_server_name(u)
  return self.ssl_server_name or u.server_name
end

-- The pool of a URL: host, port, TLS and everything about verification;
-- with a backlog, the pool's size and backlog too (nginx fixes them when
-- it makes the pool: a pool of the same name made with other values
-- would not keep the limits asked for).
function Transport:_pool_name(u)
  local name = "onecli:" .. u.scheme .. "://" .. u.connect_host .. ":" .. u.port
  if u.tls then
    name = name .. ":" .. self:_server_name(u) .. (self.insecure and ":noverify" or ":verify")
           .. ":" .. (self.ca_file or trusted_certificate or "")
  end
  if self.backlog then
    name = name .. ":pool_size=" .. self.pool_size .. ":backlog=" .. self.backlog
  end
  return name
end

-- sock:sslhandshake, working around lua-resty-core (0.1.25 in Debian 12,
-- and later releases too): when a handshake completes at once (a local
-- peer) but the verification fails, it raises "assertion failed!" instead
-- of returning nil, err -- and with reused_session = false it would even
-- report success (lua-resty-core issues #499, #532). So the session
-- argument stays nil, and that assertion is the verification failure.
local function ssl_handshake(sock, server_name, verify)
  local ok, session, err = pcall(sock.sslhandshake, sock, nil, server_name, verify)
  if ok then
    return session, err
  end
  if tostring(session):find("assertion failed", 1, true) then
    return nil, "the certificate could not be verified (nginx's error log has the reason)"
  end
  error(session, 0)
end

-- Connects (or takes a pooled connection). Returns sock, reused, or nil,
-- code, message. With fresh, pooled connections are passed over until a
-- new one is made: set aside (and given back), or with a backlog closed
-- (held, they would count against the pool_size that the new one waits
-- for).
function Transport:_connect(u, ctx, fresh)
  local pool = self:_pool_name(u)
  local backlog = self.backlog
  local held = {}
  local sock, ok, err
  for attempt = 1, self.pool_size + 2 do
    local ms = remaining_ms(ctx)
    if not ms then
      err = "timeout"
      break
    end
    sock = ngx.socket.tcp()
    -- connect_timeout also bounds a wait in the backlog queue
    set_timeouts(ctx, sock, ms)
    -- past the pool's size something else fills it: a name of its own
    -- cannot match any pooled connection
    local own_pool = attempt > self.pool_size + 1
    local options
    if own_pool then
      options = { pool = pool .. ":fresh:" .. tostring(held) }
    elseif backlog and not ctx.queued then
      -- (nginx's own queue: only where resty_queue cannot work)
      options = { pool = pool, pool_size = self.pool_size, backlog = backlog }
    elseif backlog then
      options = { pool = pool, pool_size = self.pool_size }
    else
      options = { pool = pool }
    end
    ok, err = sock:connect(u.connect_host, u.port, options)
    ctx.no_keepalive = own_pool     -- never park a connection in a pool of its own
    if not ok then
      sock = nil
      break
    end
    if not fresh or (sock:getreusedtimes() or 0) == 0 then
      break
    end
    if backlog then
      sock:close()
    else
      held[#held + 1] = sock
    end
    sock = nil
  end
  for _, s in ipairs(held) do
    s:setkeepalive(self.keepalive_ms, self.pool_size)
  end
  if not sock then
    local code = _M.error_code("connect", err)
    if code == "OPERATION_TIMEDOUT" then
      local msg = fmt("Connection timed out after %d milliseconds",
                      floor((ctx.now() - ctx.started) * 1000 + 0.5))
      if backlog then
        msg = msg .. fmt(" (connect_timeout, which also bounds the wait for a free "
                         .. "connection of the pool: pool_size %d, backlog %d)",
                         self.pool_size, backlog)
      end
      return nil, code, msg
    elseif code == "COULDNT_RESOLVE_HOST" then
      return nil, code, fmt("Could not resolve host: %s (%s; nginx resolves names with "
                            .. "its resolver directive)", u.host, tostring(err))
    end
    local msg = fmt("Failed to connect to %s port %d: %s", u.host, u.port, tostring(err))
    if backlog and tostring(err):find("too many waiting", 1, true) then
      msg = msg .. fmt(" (pool_size %d, backlog %d: all the pool's connections are busy "
                       .. "and its queue of waiting calls is full)", self.pool_size, backlog)
    end
    return nil, code, msg
  end
  local reused = (sock:getreusedtimes() or 0) > 0
  if u.tls and not reused then
    local ms = remaining_ms(ctx)
    if not ms then
      sock:close()
      return nil, timed_out(ctx, "during the TLS handshake")
    end
    -- nginx bounds the handshake with the connect timeout
    set_timeouts(ctx, sock, ms)
    local session
    session, err = ssl_handshake(sock, self:_server_name(u), not self.insecure)
    if not session then
      sock:close()
      local code = _M.error_code("handshake", err)
      if code == "OPERATION_TIMEDOUT" then
        return nil, timed_out(ctx, "during the TLS handshake")
      elseif code == "PEER_FAILED_VERIFICATION" then
        local msg = "SSL certificate problem: " .. tostring(err)
        if not tostring(err):find("host mismatch", 1, true) then
          msg = msg .. " (nginx trusts the CAs of its lua_ssl_trusted_certificate directive "
                .. "only)"
        end
        return nil, code, msg
      end
      return nil, code, "TLS handshake failed: " .. tostring(err)
    end
  end
  return sock, reused
end

-- A call that got no place in the pool's queue ("full"), or waited too
-- long ("timeout"): code, message, nothing sent.
function Transport:_queue_failure(why, ctx, u)
  if why == "full" then
    return "COULDNT_CONNECT", fmt("Failed to connect to %s port %d: too many waiting connect "
      .. "operations (pool_size %d, backlog %d: all the pool's connections are busy and its "
      .. "queue of waiting calls is full)", u.host, u.port, self.pool_size, self.backlog), false
  end
  return "OPERATION_TIMEDOUT", fmt("Connection timed out after %d milliseconds (connect_timeout, "
    .. "which also bounds the wait for a free connection of the pool: pool_size %d, backlog %d)",
    floor((ctx.now() - ctx.started) * 1000 + 0.5), self.pool_size, self.backlog), false
end

-- One exchange on one connection. Returns status, headers, body; or nil,
-- code, message, request_sent, retry_on_fresh.
function Transport:_exchange(req, u, payload, ctx, fresh)
  local sock, reused, cmsg = self:_connect(u, ctx, fresh)
  if not sock then
    return nil, reused, cmsg, false, false     -- code, message: nothing was sent
  end
  ctx.sock = sock
  local ms = remaining_ms(ctx)
  if not ms then
    sock:close()
    local code, tmsg = timed_out(ctx, "before sending the request")
    return nil, code, tmsg, false, false
  end
  set_timeouts(ctx, sock, ms)
  local sent, err = sock:send(payload)
  if not sent then
    sock:close()
    local code = _M.error_code("send", err)
    if code == "OPERATION_TIMEDOUT" then
      local tcode, tmsg = timed_out(ctx, "while sending the request", "send")
      return nil, tcode, tmsg, true, false
    end
    -- a pooled connection the server had just closed
    return nil, code, "Failed sending data to the peer: " .. tostring(err), true, reused
  end
  local status, headers, body, keep = _M.read_response(ctx, req.method)
  if not status then
    sock:close()
    local code, rmsg, got_any = headers, body, keep
    local stale = reused and not got_any and (code == "GOT_NOTHING" or code == "RECV_ERROR")
    return nil, code, rmsg, true, stale
  end
  if keep and not ctx.no_keepalive then
    local ok = sock:setkeepalive(self.keepalive_ms, self.pool_size)
    if not ok then
      sock:close()
    end
  else
    sock:close()
  end
  return status, headers, body
end

--- Sends one request; returns status, headers, body or nil, err.
function Transport:request(req)
  if self.closed then
    error("onecli: the transport is closed", 2)
  end
  if type(req) ~= "table" then
    error("onecli: request needs a table", 2)
  end
  local phase = ngx.get_phase and ngx.get_phase()
  if NO_COSOCKET_PHASES[phase] then
    error("onecli: the OpenResty transport cannot run in nginx's " .. phase .. " phase "
          .. "(no cosockets there): call the API from a content, access or rewrite "
          .. "handler, or from an ngx.timer.at callback", 2)
  end
  local method, url, body = req.method, req.url, req.body
  if type(method) ~= "string" or type(url) ~= "string" then
    error("onecli: request needs 'method' and 'url'", 2)
  end
  if body ~= nil and type(body) ~= "string" then
    error("onecli: request body must be a string, got " .. type(body), 2)
  end
  if body and (method == "GET" or method == "HEAD") then
    error("onecli: a " .. method .. " request cannot have a body", 2)
  end
  local bad = check_headers(req.headers)
  if bad then
    error("onecli: " .. bad, 2)
  end
  local path = req.path or url
  local u, code, msg = _M.parse_url(url)
  if not u then
    return nil, transport_error(method, path, code, msg,
                                { secret = req.secret, request_sent = false })
  end
  local host_header = u.host_header
  if u.tls and self.ssl_server_name then
    -- the server the name stands for is the one addressed
    host_header = self.ssl_server_name .. (u.port == 443 and "" or (":" .. u.port))
  end
  local payload = _M.build_request(method, u.target, host_header, req.headers, body,
                                   self.user_agent)
  local timeout = tonumber(req.timeout) or self.timeout
  local connect_timeout = min(tonumber(req.connect_timeout) or self.connect_timeout, timeout)
  local started = now()
  local ctx = {
    now = now,
    started = started,
    deadline = started + timeout,
    connect_ms = max(1, ceil(connect_timeout * 1000)),
    send_ms = self.send_timeout and max(1, ceil(self.send_timeout * 1000)),
    read_ms = self.read_timeout and max(1, ceil(self.read_timeout * 1000)),
    max_response = self.max_response,
    listen = req.listen == true,
  }
  local fresh = req.fresh_connect == true
  local status, headers, rbody, wrote, stale
  local pool = self.backlog and queue.available() and self:_pool_name(u)
  if pool then
    -- at most pool_size calls of this worker hold a connection of the pool
    local waited, why = queue.acquire(pool, self.pool_size, self.backlog,
                                      min(ctx.connect_ms / 1000, ctx.deadline - now()), now)
    if waited then
      ctx.queued = true
      local ok
      ok, status, headers, rbody, wrote, stale = pcall(self._exchange, self, req, u, payload,
                                                       ctx, fresh)
      queue.release(pool)
      if not ok then
        error(status, 0)
      end
    else
      status, headers, rbody, wrote = nil, self:_queue_failure(why, ctx, u)
    end
  else
    status, headers, rbody, wrote, stale = self:_exchange(req, u, payload, ctx, fresh)
  end
  if not status then
    -- one decision for every transport: started writing = may have been sent
    local sent = core.request_sent(headers, { sends = wrote and 1 or 0 })
    local err = transport_error(method, path, headers, rbody,
                                { secret = req.secret, request_sent = sent })
    if headers == "RESPONSE_TOO_LARGE" then
      err.retryable = false
    end
    if stale then
      -- a pooled connection closed before answering: never re-sent here
      -- (the retry loop counts it as an attempt and retries it at once)
      err.connection_reused = true
    end
    return nil, err
  end
  return status, headers, rbody
end

_M.Transport = Transport

return _M
