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
]],
  license = "MIT",
  labels = { "onecli", "api", "http", "curl" },
}

dependencies = {
  "lua >= 5.1",
}

external_dependencies = {
  CURL = {
    header = "curl/curl.h",
    library = "curl",
  },
}

build = {
  type = "builtin",
  modules = {
    ["onecli"] = "lua/onecli/init.lua",
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
    ["onecli.pagination"] = "lua/onecli/pagination.lua",
    ["onecli.pipeline"] = "lua/onecli/pipeline.lua",
    ["onecli.retry"] = "lua/onecli/retry.lua",
    ["onecli.sse"] = "lua/onecli/sse.lua",
    ["onecli.transport.nvim"] = "lua/onecli/transport/nvim.lua",
    ["onecli.transport.resty"] = "lua/onecli/transport/resty.lua",
    ["onecli.transport.resty_queue"] = "lua/onecli/transport/resty_queue.lua",
    ["onecli.transport.uv"] = "lua/onecli/transport/uv.lua",
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
}
