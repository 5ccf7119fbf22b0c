-- GET /instance (reference §14.3): what a client can learn without a key —
-- the edition, the Enterprise licence and whether hosted agents can run.
-- The stand-in is a self-hosted ("onprem") server; `entitled` follows the
-- licence switch, both runner flags the runner switch (onecli.standin.api).
local json = require("onecli.standin.json")
local reply = require("onecli.standin.reply")

local obj = json.obj

local function instance(ctx)
  local app = ctx.app
  return reply.ok(obj("edition", "onprem", "entitled", app.licensed, "version", app.version or "unknown",
    "runners", obj("registered", app.runner, "online", app.runner)))
end

return {
  { mode = "v2", method = "GET", pattern = "/instance", auth = "none", handler = instance, body = false },
}
