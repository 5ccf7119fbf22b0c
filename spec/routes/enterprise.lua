-- Capture claims of the "enterprise" area for spec/routes_replay_spec.lua:
-- the Enterprise directory and access routers (reference §14.9), SSO
-- lookup, provision claims and team provisions. The recording server had
-- no Enterprise licence: every exchange is the licence 403, answered before
-- authentication, so each replays on a freshly reset server.
local names = {
  "apps-dropbox-folders", "auth-sso-lookup", "provisions-claim", "team-provisions-create",
  "org-app-availability-get", "org-app-availability-put",
  "org-domains-create", "org-domains-delete", "org-domains-list", "org-domains-verify",
  "org-groups-create", "org-groups-delete", "org-groups-get", "org-groups-list", "org-groups-member-add",
  "org-groups-member-remove", "org-groups-members-list", "org-groups-members-replace", "org-groups-patch",
  "org-members-create", "org-members-delete", "org-members-groups", "org-members-list", "org-members-list-no-auth",
  "org-members-patch", "org-members-unknown-subpath",
  "org-role-mappings-create", "org-role-mappings-delete", "org-role-mappings-list", "org-role-mappings-patch",
  "org-role-mappings-preview", "org-role-mappings-reorder",
  "org-scim-tokens-create", "org-scim-tokens-delete", "org-scim-tokens-list",
  "org-sso-connections-create", "org-sso-connections-delete", "org-sso-connections-list",
  "org-sso-connections-patch", "org-sso-connections-test", "org-sso-enforcement-get", "org-sso-enforcement-patch",
  "workspaces-access-get", "workspaces-access-put",
}

local claims = {}
for _, name in ipairs(names) do claims[name] = {} end
return claims
