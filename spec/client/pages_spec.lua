-- The v2 call shapes that are not JSON in, JSON out: pagination iterators
-- (onecli.pagination), binary bodies and answers, server-sent events
-- (onecli.sse). No server: a recording transport answers from a queue.
-- (Against the stand-in: spec/client/v2_*_spec.lua.)
local onecli = require("onecli")
local sse = require("onecli.sse")

local KEY = "oc_" .. string.rep("5e", 32)
local JSON = { ["content-type"] = "application/json" }

local function recorder(answers)
  local t = { requests = {} }
  function t:request(req)
    self.requests[#self.requests + 1] = req
    local a = table.remove(answers, 1)
    assert(a, "no answer queued for " .. req.method .. " " .. req.url)
    return a[1], a[2] or JSON, a[3]
  end
  return t
end

local function new(answers, opts)
  local t = recorder(answers)
  local o = { transport = t, url = "http://h.test", api_key = KEY, max_retries = 0,
    getenv = function() return nil end }
  for k, v in pairs(opts or {}) do o[k] = v end
  return onecli.new(o), t
end

local function collect(iter)
  local out = {}
  for item, err in iter do
    out[#out + 1] = item == false and { false, err } or item
  end
  return out
end

local function err_of(fn, ...)
  local ok, e = pcall(fn, ...)
  assert.is_false(ok, "expected an error")
  return e
end

describe("cursor iterators", function()
  it("follow nextCursor page by page with the same query, and stop on null", function()
    local c, t = new({
      { 200, JSON, '{"data":[{"userId":"u1"},{"userId":"u2"}],"nextCursor":"c2"}' },
      { 200, JSON, '{"data":[{"userId":"u3"}],"nextCursor":"c3"}' },
      { 200, JSON, '{"data":[],"nextCursor":null}' },
    })
    local ids = {}
    for m in c.org.members:each({ q = "ann", limit = 2 }) do ids[#ids + 1] = m.userId end
    assert.are.same({ "u1", "u2", "u3" }, ids)
    assert.are.equal(3, #t.requests)
    assert.are.equal("http://h.test/v1/org/members?limit=2&q=ann", t.requests[1].url)
    assert.are.equal("http://h.test/v1/org/members?cursor=c2&limit=2&q=ann", t.requests[2].url)
    assert.are.equal("http://h.test/v1/org/members?cursor=c3&limit=2&q=ann", t.requests[3].url)
  end)

  it("start at the query's cursor, and leave the caller's query table alone", function()
    local c, t = new({ { 200, JSON, '{"data":[{"id":"g9"}],"nextCursor":null}' } })
    local q = { cursor = "start" }
    assert.are.same({ { id = "g9" } }, collect(c.org.groups:each(q)))
    assert.are.equal("http://h.test/v1/org/groups?cursor=start", t.requests[1].url)
    assert.are.same({ cursor = "start" }, q)
  end)

  it("yield nothing for an empty list (one request)", function()
    local c, t = new({ { 200, JSON, '{"data":[],"nextCursor":null}' } })
    assert.are.same({}, collect(c.org.groups:each()))
    assert.are.equal(1, #t.requests)
  end)

  it("put path parameters first: each_member, each_group", function()
    local c, t = new({
      { 200, JSON, '{"data":[{"userId":"u1"}],"nextCursor":null}' },
      { 200, JSON, '{"data":[{"id":"g1"}],"nextCursor":null}' },
    })
    assert.are.equal(1, #collect(c.org.groups:each_member("g/1", { limit = 5 })))
    assert.are.equal("http://h.test/v1/org/groups/g%2F1/members?limit=5", t.requests[1].url)
    assert.are.equal(1, #collect(c.org.members:each_group("u1")))
    assert.are.equal("http://h.test/v1/org/members/u1/groups", t.requests[2].url)
  end)

  it("raise the error of a failing page in the middle of the loop", function()
    local c = new({
      { 200, JSON, '{"data":[{"userId":"u1"}],"nextCursor":"c2"}' },
      { 500, JSON, '{"error":{"message":"boom","type":"api_error"}}' },
    })
    local seen = {}
    local e = err_of(function()
      for m in c.org.members:each() do seen[#seen + 1] = m.userId end
    end)
    assert.are.same({ "u1" }, seen)
    assert.is_true(onecli.is_error(e))
    assert.are.equal(500, e.status)
    assert.are.equal("boom", e.message)
  end)

  it("with raise = false give false, err once and stop", function()
    local c, t = new({
      { 200, JSON, '{"data":[{"userId":"u1"}],"nextCursor":"c2"}' },
      { 403, JSON, '{"error":{"message":"Members directory API requires a OneCLI Enterprise license.",'
        .. '"type":"enterprise_license_required"}}' },
    })
    local got = collect(c.org.members:each({}, { raise = false }))
    assert.are.equal(2, #got)
    assert.are.equal("u1", got[1].userId)
    assert.is_false(got[2][1])
    assert.are.equal("enterprise_license_required", got[2][2].type)
    assert.matches("ENTERPRISE_ENABLED", got[2][2].hint)
    assert.are.equal(2, #t.requests)
  end)

  it("end with a decode_error when the server gives back the same cursor", function()
    local c, t = new({
      { 200, JSON, '{"data":[{"userId":"u1"}],"nextCursor":"same"}' },
      { 200, JSON, '{"data":[{"userId":"u2"}],"nextCursor":"same"}' },
    })
    local e = err_of(function() for _ in c.org.members:each() do end end)
    assert.are.equal("decode_error", e.type)
    assert.matches("same cursor", e.message)
    assert.are.equal(2, #t.requests)
  end)

  it("end with a decode_error on a page without its list", function()
    local c = new({ { 200, JSON, '{"members":[]}' } })
    local e = err_of(function() for _ in c.org.members:each() do end end)
    assert.are.equal("decode_error", e.type)
    assert.matches("no data list", e.message)
  end)

  it("read a lone table of option names as the options, as the page call does", function()
    local c, t = new({ { 200, JSON, '{"data":[{"userId":"u1"}],"nextCursor":null}' } })
    assert.are.equal(1, #collect(c.org.members:each({ timeout = 5, project_id = "w1" })))
    assert.are.equal("http://h.test/v1/org/members", t.requests[1].url)
    assert.are.equal(5, t.requests[1].timeout)
    local msg = err_of(c.org.members.each, c.org.members, { callback = function() end })
    assert.matches("takes no callback", msg)
  end)

  it("check their arguments at the call, under the iterator's name", function()
    local c = new({})
    local msg = err_of(c.org.members.each, c.org.members, { bogus = 1 })
    assert.matches("^onecli: org%.members%.each: argument #1 %(query%): unknown query parameter 'bogus'", msg)
    msg = err_of(c.org.groups.each_member, c.org.groups, nil)
    assert.matches("^onecli: org%.groups%.each_member: argument #1 %(groupId%)", msg)
    msg = err_of(c.org.members.each, c.org.members, {}, { callback = function() end })
    assert.matches("takes no callback", msg)
    msg = err_of(c.org.members.each, {})
    assert.matches("call it with a colon", msg)
  end)
end)

describe("transcript iterators", function()
  it("follow nextSince while hasMore", function()
    local c, t = new({
      { 200, JSON, '{"events":[{"seq":1},{"seq":2}],"nextSince":2,"hasMore":true}' },
      { 200, JSON, '{"events":[{"seq":3}],"nextSince":3,"hasMore":false}' },
    })
    local seqs = {}
    for ev in c.conversations:each_event("conv1", { limit = 2 }) do seqs[#seqs + 1] = ev.seq end
    assert.are.same({ 1, 2, 3 }, seqs)
    assert.are.equal("http://h.test/v1/conversations/conv1/events?limit=2", t.requests[1].url)
    assert.are.equal("http://h.test/v1/conversations/conv1/events?limit=2&since=2", t.requests[2].url)
  end)

  it("stop on an empty transcript", function()
    local c = new({ { 200, JSON, '{"events":[],"nextSince":0,"hasMore":false}' } })
    assert.are.same({}, collect(c.conversations:each_event("conv1", { since = 0 })))
  end)

  it("refuse a hasMore page whose nextSince does not move", function()
    local c = new({ { 200, JSON, '{"events":[{"seq":5}],"nextSince":5,"hasMore":true}' } })
    local e = err_of(function()
      for _ in c.conversations:each_event("conv1", { since = 5 }) do end
    end)
    assert.are.equal("decode_error", e.type)
    assert.matches("same since", e.message)
  end)
end)

describe("binary bodies and answers", function()
  it("send the bytes as they are, as application/octet-stream", function()
    local png = "\137PNG\r\n\26\n\0\0\0\13IHDR"
    local c, t = new({ { 200, JSON, '{"imageUrl":"http://h.test/v1/agent-images/a1/k"}' } })
    assert.are.equal("http://h.test/v1/agent-images/a1/k", c.agents:set_image("a1", png).imageUrl)
    local req = t.requests[1]
    assert.are.equal("PUT", req.method)
    assert.are.equal(png, req.body)
    assert.are.equal("application/octet-stream", req.headers["Content-Type"])
  end)

  it("take the query after the bytes, and a Content-Type from the headers option", function()
    local c, t = new({ { 201, JSON, '{"id":"att1"}' } })
    c.conversations:upload_attachment("conv1", "a,b\n", { name = "data.csv" },
      { headers = { ["content-type"] = "text/csv" } })
    local req = t.requests[1]
    assert.are.equal("http://h.test/v1/conversations/conv1/attachments?name=data.csv", req.url)
    assert.are.equal("text/csv", req.headers["content-type"])
    assert.is_nil(req.headers["Content-Type"])
  end)

  it("refuse a body that is not a string", function()
    local c = new({})
    local msg = err_of(c.agents.set_image, c.agents, "a1", { 1, 2 })
    assert.matches("argument #2 %(body%): the body must be a string of bytes, got table", msg)
    msg = err_of(c.agents.set_image, c.agents, "a1")
    assert.matches("got nil", msg)
  end)

  it("return an attachment's bytes", function()
    local bytes = "\0\1\2\255"
    local c, t = new({ { 200, { ["content-type"] = "application/octet-stream" }, bytes } })
    assert.are.equal(bytes, c.conversations:get_attachment("conv1", "att1"))
    assert.are.equal("*/*", t.requests[1].headers.Accept)
  end)
end)

describe("server-sent events", function()
  it("stream returns the parsed events", function()
    local body = "event: transcript\nid: 1\ndata: {\"seq\":1,\"type\":\"message\"}\n\n"
      .. ": keep-alive\n\nevent: transcript\nid: 2\ndata: {\"seq\":2}\n\n"
    local c, t = new({ { 200, { ["content-type"] = "text/event-stream" }, body } })
    local events = c.conversations:stream("conv1", { since = 0 })
    assert.are.equal("text/event-stream", t.requests[1].headers.Accept)
    assert.are.equal("http://h.test/v1/conversations/conv1/stream?since=0", t.requests[1].url)
    assert.are.equal(2, #events)
    assert.are.same({ id = "1", event = "transcript", data = { seq = 1, type = "message" } }, events[1])
    assert.are.equal(2, events[2].data.seq)
  end)

  it("parse as the standard says: CRLF, multi-line data, kept ids, comments, defaults", function()
    local events = sse.parse("id: 7\r\ndata: a\r\ndata: b\r\n\r\n:comment\n\ndata:c\n\nevent: x\n\ndata: {bad\n\n"
      .. "data: unterminated")
    assert.are.equal(3, #events)
    assert.are.same({ id = "7", event = "message", data = "a\nb" }, events[1])
    assert.are.same({ id = "7", event = "message", data = "c" }, events[2])   -- the id carries over
    assert.are.same({ id = "7", event = "message", data = "{bad" }, events[3])
  end)
end)

describe("arrays inside the items of a list", function()
  it("are sent as arrays even when empty, without touching the caller's tables", function()
    local c, t = new({ { 200, JSON, '{"mode":"restricted","rules":[]}' } })
    local rule = { name = "Nobody yet", userIds = {}, groupIds = {}, providers = { "github" } }
    c.org.app_availability:set({ mode = "restricted", rules = { rule } })
    local body = t.requests[1].body
    assert.truthy(body:find('"userIds":[]', 1, true), body)
    assert.truthy(body:find('"groupIds":[]', 1, true), body)
    assert.truthy(body:find('"providers":["github"]', 1, true), body)
    assert.is_nil(getmetatable(rule.userIds))        -- the caller's table is not marked
  end)
end)
