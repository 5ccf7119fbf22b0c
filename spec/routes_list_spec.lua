-- The endpoint table against the list of routes kept beside the stand-in
-- (spec/routes/wrapped.lua): a route missing from the table, or one the
-- list does not name, fails; and every v2.0.1 route of reference §14 that
-- the client wraps is served by the v2 stand-in (not by a catch-all, a
-- tombstone or the unknown-route answer).
local onecli = require("onecli")
local routes = require("routes.wrapped")
local api = require("onecli.standin.api")

local function row(name, method, path, base)
  return name .. " " .. method .. " " .. (base == "gateway" and "gateway:" or "") .. path
end

describe("the endpoint table and the stand-in's route list", function()
  it("name the same routes", function()
    local listed, in_table = {}, {}
    for _, group in ipairs({ routes.section14, routes.before }) do
      for _, r in ipairs(group) do
        local method, path = r[2]:match("^(%u+) (.+)$")
        local key = row(r[1], method, path:gsub("^gateway:", ""), path:find("^gateway:") and "gateway")
        assert.is_nil(listed[key], "listed twice: " .. key)
        listed[key] = true
      end
    end
    for _, ep in ipairs(onecli.endpoints) do
      in_table[row(ep.name, ep.method, ep.path, ep.base)] = true
    end
    local missing, extra = {}, {}
    for key in pairs(listed) do
      if not in_table[key] then missing[#missing + 1] = key end
    end
    for key in pairs(in_table) do
      if not listed[key] then extra[#extra + 1] = key end
    end
    table.sort(missing)
    table.sort(extra)
    assert.are.same({}, missing, "listed beside the stand-in but not in the endpoint table")
    assert.are.same({}, extra, "in the endpoint table but not listed beside the stand-in")
  end)

  it("has the 98 routes of reference §14 marked \"wrap: yes\"", function()
    assert.are.equal(98, #routes.section14)
  end)

  it("are all served by the v2 stand-in, licensed and with a runner", function()
    local app = api.new({ mode = "v2", licensed = true, runner = true, api_key = "oc_" .. ("1"):rep(64),
      org_key = "oc_org_" .. ("2"):rep(64), project_id = "standinprojectaa" })
    local unserved = {}
    for _, r in ipairs(routes.section14) do
      local method, path = r[2]:match("^(%u+) (.+)$")
      local concrete = path:gsub("{[%w_]+}", "x1")
      local route = app:match(method, concrete)
      if not route or route.gone or route.pattern:find("%*") then
        unserved[#unserved + 1] = r[1] .. " " .. r[2]
      end
    end
    assert.are.same({}, unserved)
  end)
end)
