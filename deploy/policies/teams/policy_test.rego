# Tests of the teams policy; run with `portcullis policy test deploy/policies/teams`.
package portcullis.authz_test

import data.portcullis.authz

teams := {
	"namespaces": {
		"payments": {"owners": {"payments-devs": "writer", "payments-leads": "admin", "sre": "reader"}},
		"web": {"owners": {"web-devs": "writer"}},
	},
	"mirrors": ["dockerhub"],
	"grants": [
		{"group": "auditors", "namespace": "payments", "role": "reader", "expires": "2026-12-31T00:00:00Z"},
		{"user": "ann", "namespace": "web", "role": "admin", "expires": "2026-06-01T00:00:00Z"},
		{"user": "bo", "namespace": "web", "role": "reader"},
	],
}

# 2026-03-01, 2026-09-01 and 2027-01-15 (00:00:00Z) in nanoseconds.
march := 1772323200000000000

september := 1788220800000000000

next_january := 1799971200000000000

member(name, groups) := {"subject": name, "anonymous": false, "groups": groups, "labels": {}, "backend": "ldap"}

anon := {"subject": "", "anonymous": true, "groups": [], "labels": {}, "backend": ""}

repo(name, actions) := {"type": "repository", "class": "", "name": name, "actions": actions}

req(id, scopes) := {"identity": id, "service": "r", "client_id": "", "remote_addr": "", "scopes": scopes}

granted(id, name, actions, now) := [a |
	some a in actions
	["repository", "", name, a] in authz.allowed with input as req(id, [repo(name, actions)]) with data.teams as teams with time.now_ns as now
]

all := ["pull", "push", "delete"]

test_roles if {
	granted(member("r", ["sre"]), "payments/api", all, march) == ["pull"]
	granted(member("w", ["payments-devs"]), "payments/api", all, march) == ["pull", "push"]
	granted(member("a", ["payments-leads"]), "payments/api", all, march) == ["pull", "push", "delete"]
}

test_two_groups_union if {
	granted(member("x", ["sre", "web-devs"]), "web/site", all, march) == ["pull", "push"]
	granted(member("x", ["sre", "web-devs"]), "payments/api", all, march) == ["pull"]
}

test_no_role_no_access if {
	granted(member("x", ["web-devs"]), "payments/api", all, march) == []
	granted(member("x", ["payments-devs"]), "unknown/app", all, march) == []
}

test_time_bound_group_grant if {
	granted(member("z", ["auditors"]), "payments/api", all, march) == ["pull"]
	granted(member("z", ["auditors"]), "payments/api", all, next_january) == []
}

test_time_bound_user_grant if {
	granted(member("ann", []), "web/site", all, march) == ["pull", "push", "delete"]
	granted(member("ann", []), "web/site", all, september) == []
}

test_grant_without_expiry if {
	granted(member("bo", []), "web/site", all, september) == ["pull"]
}

test_mirror_pull_only if {
	granted(member("x", []), "dockerhub/library/nginx", all, march) == ["pull"]
	granted(member("a", ["payments-leads"]), "dockerhub/x", ["push"], march) == []
}

test_anonymous_gets_nothing if {
	granted(anon, "dockerhub/x", ["pull"], march) == []
	granted(anon, "payments/api", ["pull"], march) == []
}

test_catalog_refused if {
	r := req(member("a", ["payments-leads"]), [{"type": "registry", "class": "", "name": "catalog", "actions": ["*"]}])
	count(authz.allowed) == 0 with input as r with data.teams as teams with time.now_ns as march
}

test_class_copied if {
	r := req(member("w", ["payments-devs"]), [{"type": "repository", "class": "plugin", "name": "payments/p", "actions": ["pull"]}])
	["repository", "plugin", "payments/p", "pull"] in authz.allowed with input as r with data.teams as teams with time.now_ns as march
}

test_reasons if {
	r := req(member("ann", ["payments-devs"]), [repo("payments/api", ["delete"]), repo("web/site", ["pull"]), repo("dockerhub/x", ["push"])])
	reasons := authz.reasons with input as r with data.teams as teams with time.now_ns as september
	{"type": "repository", "class": "", "name": "payments/api", "action": "delete", "reason": "your roles in payments (writer) do not include delete"} in reasons
	{"type": "repository", "class": "", "name": "web/site", "action": "pull", "reason": "you have no role in namespace web (your grant expired at 2026-06-01T00:00:00Z)"} in reasons
	{"type": "repository", "class": "", "name": "dockerhub/x", "action": "push", "reason": "dockerhub is a pull-only mirror namespace"} in reasons
}

# Every reason, each denied action with exactly one: a scope's own reason (anonymous, the
# catalog, no namespace, no role) for each of its actions, or the action's.
test_reasons_exactly if {
	r := req(member("ann", ["payments-devs"]), [
		repo("payments/api", ["pull", "delete"]),
		repo("web/site", ["pull", "push"]),
		repo("dockerhub/x", ["pull", "push"]),
		repo("solo", ["pull"]),
		{"type": "registry", "class": "", "name": "catalog", "actions": ["*"]},
	])
	reasons := authz.reasons with input as r with data.teams as teams with time.now_ns as september
	reasons == {
		{"type": "repository", "class": "", "name": "payments/api", "action": "delete", "reason": "your roles in payments (writer) do not include delete"},
		{"type": "repository", "class": "", "name": "web/site", "action": "pull", "reason": "you have no role in namespace web (your grant expired at 2026-06-01T00:00:00Z)"},
		{"type": "repository", "class": "", "name": "web/site", "action": "push", "reason": "you have no role in namespace web (your grant expired at 2026-06-01T00:00:00Z)"},
		{"type": "repository", "class": "", "name": "dockerhub/x", "action": "push", "reason": "dockerhub is a pull-only mirror namespace"},
		{"type": "repository", "class": "", "name": "solo", "action": "pull", "reason": "a repository name outside any namespace (no \"/\")"},
		{"type": "registry", "class": "", "name": "catalog", "action": "*", "reason": "only repositories are granted (the catalog is not)"},
	}
	anonymous := authz.reasons with input as req(anon, [repo("payments/api", ["pull"]), repo("dockerhub/x", ["pull"])]) with data.teams as teams with time.now_ns as september
	anonymous == {
		{"type": "repository", "class": "", "name": "payments/api", "action": "pull", "reason": "anonymous callers get nothing"},
		{"type": "repository", "class": "", "name": "dockerhub/x", "action": "pull", "reason": "anonymous callers get nothing"},
	}
}

test_shipped_example_data if {
	r := req(member("x", ["payments-devs"]), [repo("payments/api", ["pull", "push"])])
	["repository", "", "payments/api", "push"] in authz.allowed with input as r with time.now_ns as march
}

# The same name or group from two backends is two different callers: a grant or a group
# list may say which backend it trusts (identity.backend, the name in authn.backends).
teams_by_backend := object.union(teams, {
	"group_backends": ["ldap"],
	"grants": [{"user": "ann", "backend": "ldap", "namespace": "web", "role": "writer"}],
})

from(id, backend) := object.union(id, {"backend": backend})

granted_by_backend(id, name) := [a |
	some a in all
	["repository", "", name, a] in authz.allowed with input as req(id, [repo(name, all)]) with data.teams as teams_by_backend with time.now_ns as march
]

test_backend_scoped_grants_and_groups if {
	granted_by_backend(member("ann", []), "web/site") == ["pull", "push"]
	granted_by_backend(from(member("ann", []), "htpasswd"), "web/site") == []
	granted_by_backend(member("w", ["payments-devs"]), "payments/api") == ["pull", "push"]

	# A CI token whose claims map to the group payments-devs gets no team role.
	granted_by_backend(from(member("github:repo:x", ["payments-devs"]), "github-actions"), "payments/api") == []
}
