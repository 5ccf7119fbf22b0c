-- lua-onecli as a Neovim plugin: defines :OneCLI (agents, secrets, rules,
-- approvals [watch|stop], health; see :OneCLI with no argument). Nothing
-- else happens at start-up: the library and its C core load on the first
-- :OneCLI. Configure with require("onecli").setup{...} (optional: the
-- environment's ONECLI_URL / ONECLI_API_KEY are used otherwise).

-- luacheck: globals vim

if vim.g.loaded_onecli then
  return
end
vim.g.loaded_onecli = 1

vim.api.nvim_create_user_command("OneCLI", function(o)
  require("onecli.nvim.command").run(o.fargs)
end, {
  nargs = "*",
  complete = function(arglead, cmdline, cursorpos)
    return require("onecli.nvim.command").complete(arglead, cmdline, cursorpos)
  end,
  desc = "OneCLI: agents, secrets, rules, approvals [watch|stop], health",
})
