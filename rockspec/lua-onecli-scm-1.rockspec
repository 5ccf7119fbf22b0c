rockspec_format = "3.0"
package = "lua-onecli"
version = "scm-1"

source = {
  url = "git+https://github.com/lua-onecli/lua-onecli.git",
}

description = {
  summary = "Lua client for the OneCLI API, with a C core on libcurl",
  detailed = [[
lua-onecli wraps the OneCLI management API (agents, secrets, policy rules,
app connections, user API keys): a C core does HTTP with libcurl (keep-alive,
timeouts, TLS verification, many transfers at once over a multi handle), its
own JSON codec (exact 64-bit integers, [] and {} kept apart) and error
normalization; a thin Lua layer returns plain
tables, raises structured errors, retries what is safe to retry and runs
batches of calls concurrently. Lua 5.1, 5.3, 5.4 and LuaJIT.
A testing kit comes with it: onecli.testing and the onecli-standin command
run a OneCLI stand-in server for users' own tests (they need LuaSocket,
which is not a dependency of the rock: the library never loads it).
]],
  homepage = "https://github.com/lua-onecli/lua-onecli",
  license = "MIT",
  labels = { "onecli", "api", "http", "curl" },
}

-- No other rock: the core has its own JSON codec. LuaSocket, which only
-- onecli.testing and onecli-standin use, is left out on purpose (no rock
-- has optional dependencies): install lua-socket (Debian) or luasocket.
dependencies = {
  "lua >= 5.1",
}

-- Only the library is checked, not the header: LuaRocks 3.8 looks for
-- headers in <prefix>/include alone, and Debian keeps curl/curl.h in the
-- multiarch /usr/include/<triplet>, where the compiler finds it by itself
-- (libcurl.so, which the check finds in lib/<triplet>, comes with the same
-- -dev package). CURL_INCDIR= and CURL_DIR= still override.
external_dependencies = {
  CURL = {
    library = "curl",
  },
}

build = {
  type = "builtin",
  modules = {
    ["onecli"] = "lua/onecli/init.lua",
    ["onecli.agent"] = "lua/onecli/agent.lua",
    ["onecli.agent_run"] = "lua/onecli/agent_run.lua",
    ["onecli.gateway_agent"] = "lua/onecli/gateway_agent.lua",
    ["onecli.approvals"] = "lua/onecli/approvals.lua",
    ["onecli.batch"] = "lua/onecli/batch.lua",
    ["onecli.batch_async"] = "lua/onecli/batch_async.lua",
    ["onecli.batch_threads"] = "lua/onecli/batch_threads.lua",
    ["onecli.client"] = "lua/onecli/client.lua",
    ["onecli.config"] = "lua/onecli/config.lua",
    ["onecli.dispatch"] = "lua/onecli/dispatch.lua",
    ["onecli.endpoints"] = "lua/onecli/endpoints.lua",
    ["onecli.handle"] = "lua/onecli/handle.lua",
    ["onecli.health"] = "lua/onecli/health.lua",
    ["onecli.helpers"] = "lua/onecli/helpers.lua",
    ["onecli.keys"] = "lua/onecli/keys.lua",
    ["onecli.meta"] = "lua/onecli/meta.lua",
    ["onecli.methods"] = "lua/onecli/methods.lua",
    ["onecli.nginx"] = "lua/onecli/nginx.lua",
    ["onecli.nvim"] = "lua/onecli/nvim/init.lua",
    ["onecli.nvim.approvals"] = "lua/onecli/nvim/approvals.lua",
    ["onecli.nvim.command"] = "lua/onecli/nvim/command.lua",
    ["onecli.nvim.ui"] = "lua/onecli/nvim/ui.lua",
    ["onecli.observe"] = "lua/onecli/observe.lua",
    ["onecli.pagination"] = "lua/onecli/pagination.lua",
    ["onecli.pipeline"] = "lua/onecli/pipeline.lua",
    ["onecli.retry"] = "lua/onecli/retry.lua",
    ["onecli.sse"] = "lua/onecli/sse.lua",
    ["onecli.testing"] = "lua/onecli/testing.lua",
    ["onecli.transport.nvim"] = "lua/onecli/transport/nvim.lua",
    ["onecli.transport.resty"] = "lua/onecli/transport/resty.lua",
    ["onecli.transport.resty_queue"] = "lua/onecli/transport/resty_queue.lua",
    ["onecli.transport.uv"] = "lua/onecli/transport/uv.lua",
    -- the stand-in server behind onecli.testing and onecli-standin (needs
    -- LuaSocket, which the library itself never loads)
    ["onecli.standin.access"] = "lua/onecli/standin/access.lua",
    ["onecli.standin.account"] = "lua/onecli/standin/account.lua",
    ["onecli.standin.agents"] = "lua/onecli/standin/agents.lua",
    ["onecli.standin.api"] = "lua/onecli/standin/api.lua",
    ["onecli.standin.approvals"] = "lua/onecli/standin/approvals.lua",
    ["onecli.standin.apps"] = "lua/onecli/standin/apps.lua",
    ["onecli.standin.blocklist"] = "lua/onecli/standin/blocklist.lua",
    ["onecli.standin.catalog"] = "lua/onecli/standin/catalog.lua",
    ["onecli.standin.channels"] = "lua/onecli/standin/channels.lua",
    ["onecli.standin.cli"] = "lua/onecli/standin/cli.lua",
    ["onecli.standin.client"] = "lua/onecli/standin/client.lua",
    ["onecli.standin.control"] = "lua/onecli/standin/control.lua",
    ["onecli.standin.discovery"] = "lua/onecli/standin/discovery.lua",
    ["onecli.standin.engine"] = "lua/onecli/standin/engine.lua",
    ["onecli.standin.enterprise"] = "lua/onecli/standin/enterprise.lua",
    ["onecli.standin.gateway"] = "lua/onecli/standin/gateway.lua",
    ["onecli.standin.hosted"] = "lua/onecli/standin/hosted.lua",
    ["onecli.standin.http"] = "lua/onecli/standin/http.lua",
    ["onecli.standin.invitations"] = "lua/onecli/standin/invitations.lua",
    ["onecli.standin.json"] = "lua/onecli/standin/json.lua",
    ["onecli.standin.launcher"] = "lua/onecli/standin/launcher.lua",
    ["onecli.standin.machine"] = "lua/onecli/standin/machine.lua",
    ["onecli.standin.org"] = "lua/onecli/standin/org.lua",
    ["onecli.standin.pages"] = "lua/onecli/standin/pages.lua",
    ["onecli.standin.partner"] = "lua/onecli/standin/partner.lua",
    ["onecli.standin.policy"] = "lua/onecli/standin/policy.lua",
    ["onecli.standin.process"] = "lua/onecli/standin/process.lua",
    ["onecli.standin.proxy"] = "lua/onecli/standin/proxy.lua",
    ["onecli.standin.reflect"] = "lua/onecli/standin/reflect.lua",
    ["onecli.standin.reply"] = "lua/onecli/standin/reply.lua",
    ["onecli.standin.rules"] = "lua/onecli/standin/rules.lua",
    ["onecli.standin.secrets"] = "lua/onecli/standin/secrets.lua",
    ["onecli.standin.server"] = "lua/onecli/standin/server.lua",
    ["onecli.standin.setup"] = "lua/onecli/standin/setup.lua",
    ["onecli.standin.skills"] = "lua/onecli/standin/skills.lua",
    ["onecli.standin.socket"] = "lua/onecli/standin/socket.lua",
    ["onecli.standin.store"] = "lua/onecli/standin/store.lua",
    ["onecli.standin.upstream"] = "lua/onecli/standin/upstream.lua",
    ["onecli.standin.util"] = "lua/onecli/standin/util.lua",
    ["onecli.standin.validate"] = "lua/onecli/standin/validate.lua",
    ["onecli.core"] = {
      sources = {
        "csrc/core.c",
        "csrc/json.c",
        "csrc/jsondec.c",
        "csrc/jsonenc.c",
        "csrc/errors.c",
        "csrc/backoff.c",
        "csrc/url.c",
        "csrc/http.c",
        "csrc/transport.c",
        "csrc/multi.c",
      },
      libraries = { "curl" },
      incdirs = { "$(CURL_INCDIR)" },
      libdirs = { "$(CURL_LIBDIR)" },
    },
  },
  install = {
    bin = {
      ["onecli-standin"] = "bin/onecli-standin",
    },
  },
}
