# Tests of the docker_auth ACL semantics. Expected results are docker_auth's behaviour
# (auth_server/authz/acl.go), written down; run with `portcullis policy test deploy/policies/acl`.
package portcullis.authz_test

import data.portcullis.authz

user(name) := {"subject": name, "anonymous": false, "groups": [], "labels": {}, "backend": "htpasswd"}

labelled(name, labels) := object.union(user(name), {"labels": labels})

anon := {"subject": "", "anonymous": true, "groups": [], "labels": {}, "backend": ""}

req(id, scopes) := {"identity": id, "service": "registry.example.com", "client_id": "docker", "remote_addr": "192.0.2.1", "scopes": scopes}

from(id, ip, scopes) := object.union(req(id, scopes), {"remote_addr": ip})

repo(name, actions) := {"type": "repository", "class": "", "name": name, "actions": actions}

catalog := {"type": "registry", "class": "", "name": "catalog", "actions": ["*"]}

# granted lists the actions given on name.
granted(r, acl, name) := [a |
	some s in r.scopes
	s.name == name
	some a in s.actions
	[s.type, s.class, s.name, a] in authz.allowed with input as r with data.acl as acl
]

test_first_match_wins_even_if_a_later_rule_grants_more if {
	acl := [
		{"match": {"account": "alice"}, "actions": ["pull"]},
		{"match": {"account": "alice"}, "actions": ["*"]},
	]
	granted(req(user("alice"), [repo("x/y", ["pull", "push"])]), acl, "x/y") == ["pull"]
}

test_empty_actions_is_an_explicit_deny_that_stops_the_search if {
	acl := [
		{"match": {"account": "test", "name": "test-*"}, "actions": ["*"]},
		{"match": {"account": "test"}, "actions": []},
		{"match": {"account": "/.+/"}, "actions": ["pull"]},
	]
	granted(req(user("test"), [repo("test-app", ["pull", "push"])]), acl, "test-app") == ["pull", "push"]
	granted(req(user("test"), [repo("other", ["pull"])]), acl, "other") == []
	granted(req(user("bob"), [repo("other", ["pull"])]), acl, "other") == ["pull"]
}

test_no_match_denies if {
	acl := [{"match": {"account": "admin"}, "actions": ["*"]}]
	granted(req(user("alice"), [repo("x", ["pull"])]), acl, "x") == []
}

test_star_grants_what_was_asked_list_intersects if {
	acl := [
		{"match": {"account": "admin"}, "actions": ["*"]},
		{"match": {"account": "dev"}, "actions": ["pull", "delete"]},
	]
	granted(req(user("admin"), [repo("x", ["pull", "push", "delete"])]), acl, "x") == ["pull", "push", "delete"]
	granted(req(user("dev"), [repo("x", ["push", "delete", "pull"])]), acl, "x") == ["delete", "pull"]
}

test_catalog_needs_star if {
	acl := [
		{"match": {"account": "admin", "type": "registry"}, "actions": ["*"]},
		{"match": {"account": "/.+/", "type": "registry"}, "actions": ["pull"]},
	]
	granted(req(user("admin"), [catalog]), acl, "catalog") == ["*"]
	granted(req(user("bob"), [catalog]), acl, "catalog") == []
}

test_regexp_is_unanchored if {
	acl := [{"match": {"account": "/admin/"}, "actions": ["*"]}]

	# docker_auth uses regexp.Match: "/admin/" matches anywhere in the account.
	granted(req(user("badminton"), [repo("x", ["pull"])]), acl, "x") == ["pull"]
	granted(req(user("bob"), [repo("x", ["pull"])]), acl, "x") == []
}

test_anchored_regexp if {
	acl := [{"match": {"account": "/^admin$/"}, "actions": ["*"]}]
	granted(req(user("badminton"), [repo("x", ["pull"])]), acl, "x") == []
	granted(req(user("admin"), [repo("x", ["pull"])]), acl, "x") == ["pull"]
}

test_glob_star_does_not_cross_slash if {
	acl := [{"match": {"name": "team/*"}, "actions": ["pull"]}]
	granted(req(user("a"), [repo("team/app", ["pull"])]), acl, "team/app") == ["pull"]
	granted(req(user("a"), [repo("team/app/sub", ["pull"])]), acl, "team/app/sub") == []
	granted(req(user("a"), [repo("team", ["pull"])]), acl, "team") == []
}

test_glob_question_mark_and_class if {
	acl := [{"match": {"name": "app-?/[a-c]*"}, "actions": ["pull"]}]
	granted(req(user("a"), [repo("app-1/beta", ["pull"])]), acl, "app-1/beta") == ["pull"]
	granted(req(user("a"), [repo("app-12/beta", ["pull"])]), acl, "app-12/beta") == []
	granted(req(user("a"), [repo("app-1/delta", ["pull"])]), acl, "app-1/delta") == []
}

test_braces_are_literal_as_in_path_match if {
	acl := [{"match": {"name": "{a,b}/x"}, "actions": ["pull"]}]
	granted(req(user("u"), [repo("a/x", ["pull"])]), acl, "a/x") == []
}

test_account_placeholder if {
	acl := [{"match": {"account": "/.+/", "name": "${account}/*"}, "actions": ["*"]}]
	granted(req(user("alice"), [repo("alice/app", ["pull", "push"])]), acl, "alice/app") == ["pull", "push"]
	granted(req(user("alice"), [repo("bob/app", ["pull"])]), acl, "bob/app") == []

	# anonymous: account "" does not match /.+/
	granted(req(anon, [repo("/app", ["pull"])]), acl, "/app") == []
}

test_placeholder_is_regex_quoted if {
	acl := [{"match": {"name": "/^${account}-ci$/"}, "actions": ["pull"]}]

	# "a.b" is quoted: its dot matches only a dot.
	granted(req(user("a.b"), [repo("a.b-ci", ["pull"])]), acl, "a.b-ci") == ["pull"]
	granted(req(user("a.b"), [repo("axb-ci", ["pull"])]), acl, "axb-ci") == []
}

test_capture_group if {
	acl := [{"match": {"account": "/^(.+)@example.com$/", "name": "${account:1}/*"}, "actions": ["*"]}]
	granted(req(user("alice@example.com"), [repo("alice/app", ["push"])]), acl, "alice/app") == ["push"]
	granted(req(user("alice@example.com"), [repo("bob/app", ["push"])]), acl, "bob/app") == []
	granted(req(user("alice@other.com"), [repo("alice/app", ["push"])]), acl, "alice/app") == []
}

test_type_and_service if {
	acl := [
		{"match": {"type": "repository", "service": "registry.example.com", "name": "pub/*"}, "actions": ["pull"]},
		{"match": {"service": "other"}, "actions": ["*"]},
	]
	granted(req(user("u"), [repo("pub/x", ["pull", "push"])]), acl, "pub/x") == ["pull"]
	granted(req(user("u"), [repo("priv/x", ["pull"])]), acl, "priv/x") == []
}

test_ip_address_and_cidr if {
	acl := [
		{"match": {"ip": "127.0.0.0/8"}, "actions": ["*"]},
		{"match": {"ip": "::1"}, "actions": ["*"]},
		{"match": {"ip": "192.0.2.7"}, "actions": ["pull"]},
	]
	granted(from(anon, "127.1.2.3", [repo("x", ["push"])]), acl, "x") == ["push"]
	granted(from(anon, "::1", [repo("x", ["push"])]), acl, "x") == ["push"]
	granted(from(anon, "[::1]:5000", [repo("x", ["push"])]), acl, "x") == ["push"]
	granted(from(anon, "192.0.2.7:41000", [repo("x", ["pull", "push"])]), acl, "x") == ["pull"]
	granted(from(anon, "192.0.2.8", [repo("x", ["pull"])]), acl, "x") == []
	granted(from(anon, "", [repo("x", ["pull"])]), acl, "x") == []
}

test_labels_match_each_value if {
	acl := [
		{"match": {"labels": {"group": "VIP"}}, "actions": ["push"]},
		{"match": {"labels": {"group": "/trainee|dev/"}}, "actions": ["pull", "push"]},
	]
	granted(req(labelled("a", {"group": ["staff", "VIP"]}), [repo("x", ["push", "pull"])]), acl, "x") == ["push"]
	granted(req(labelled("b", {"group": "developers"}), [repo("x", ["push", "pull"])]), acl, "x") == ["push", "pull"]
	granted(req(labelled("c", {"group": ["staff"]}), [repo("x", ["pull"])]), acl, "x") == []
	granted(req(user("d"), [repo("x", ["pull"])]), acl, "x") == []
}

test_labels_placeholder_each_value if {
	acl := [{"match": {"name": "${labels:project}/*"}, "actions": ["push", "pull"]}]
	id := labelled("a", {"project": ["alpha", "beta"]})
	granted(req(id, [repo("alpha/x", ["pull"])]), acl, "alpha/x") == ["pull"]
	granted(req(id, [repo("beta/x", ["push"])]), acl, "beta/x") == ["push"]
	granted(req(id, [repo("gamma/x", ["push"])]), acl, "gamma/x") == []
	granted(req(user("b"), [repo("alpha/x", ["pull"])]), acl, "alpha/x") == []
}

test_two_label_placeholders if {
	acl := [{"match": {"name": "${labels:project}-${labels:tier}/*"}, "actions": ["pull"]}]
	id := labelled("a", {"project": ["alpha", "beta"], "tier": ["dev", "prod"]})
	granted(req(id, [repo("beta-prod/x", ["pull"])]), acl, "beta-prod/x") == ["pull"]
	granted(req(id, [repo("beta-test/x", ["pull"])]), acl, "beta-test/x") == []
}

# Every substituted value is regex-quoted: a label value "*" (an OIDC claim a CI user chose)
# or ".+" matches itself only, in a glob and in a regexp; so does a capture group.
test_substituted_values_are_quoted if {
	acl := [
		{"match": {"name": "${labels:workflow}/*"}, "actions": ["pull"]},
		{"match": {"name": "/^${labels:team}\\/x$/"}, "actions": ["pull"]},
		{"match": {"account": "/^ci-(.+)$/", "name": "${account:1}/*"}, "actions": ["pull"]},
	]
	granted(req(labelled("a", {"workflow": ["*"]}), [repo("pay/app", ["pull"])]), acl, "pay/app") == []
	granted(req(labelled("a", {"team": [".+"]}), [repo("pay/x", ["pull"])]), acl, "pay/x") == []
	granted(req(labelled("a", {"team": ["p.y"]}), [repo("pay/x", ["pull"])]), acl, "pay/x") == []
	granted(req(labelled("a", {"team": ["p.y"]}), [repo("p.y/x", ["pull"])]), acl, "p.y/x") == ["pull"]
	granted(req(user("ci-*"), [repo("pay/app", ["pull"])]), acl, "pay/app") == []
	granted(req(user("ci-pay"), [repo("pay/app", ["pull"])]), acl, "pay/app") == ["pull"]
}

# Permutations of two multi-valued labels, one value of each a wildcard.
test_two_label_placeholders_with_a_wildcard_value if {
	acl := [{"match": {"name": "${labels:project}-${labels:tier}/*"}, "actions": ["pull"]}]
	id := labelled("a", {"project": ["alpha", "*"], "tier": ["*", "prod"]})
	granted(req(id, [repo("alpha-prod/x", ["pull"])]), acl, "alpha-prod/x") == ["pull"]
	granted(req(id, [repo("alpha-dev/x", ["pull"])]), acl, "alpha-dev/x") == []
	granted(req(id, [repo("beta-prod/x", ["pull"])]), acl, "beta-prod/x") == []
}

test_anonymous_account_is_empty if {
	acl := [
		{"match": {"account": "", "name": "hello-world"}, "actions": ["pull"]},
		{"match": {"account": "/.+/"}, "actions": ["pull"]},
	]
	granted(req(anon, [repo("hello-world", ["pull", "push"])]), acl, "hello-world") == ["pull"]
	granted(req(anon, [repo("other", ["pull"])]), acl, "other") == []
}

test_each_scope_decided_on_its_own if {
	acl := [
		{"match": {"name": "a/*"}, "actions": ["pull"]},
		{"match": {"name": "b/*"}, "actions": ["push"]},
	]
	r := req(user("u"), [repo("a/x", ["pull", "push"]), repo("b/x", ["pull", "push"])])
	granted(r, acl, "a/x") == ["pull"]
	granted(r, acl, "b/x") == ["push"]
}

test_class_is_copied if {
	acl := [{"match": {"name": "p/*"}, "actions": ["pull"]}]
	r := req(user("u"), [{"type": "repository", "class": "plugin", "name": "p/x", "actions": ["pull"]}])
	["repository", "plugin", "p/x", "pull"] in authz.allowed with input as r with data.acl as acl
}

test_reasons_for_denied_actions if {
	acl := [{"match": {"account": "u", "name": "a/*"}, "actions": ["pull"], "comment": "read only"}]
	r := req(user("u"), [repo("a/x", ["pull", "push"]), repo("b/x", ["pull"])])
	reasons := authz.reasons with input as r with data.acl as acl
	{"type": "repository", "class": "", "name": "a/x", "action": "push", "reason": "rule 0 (read only) matches and does not list this action"} in reasons
	{"type": "repository", "class": "", "name": "b/x", "action": "pull", "reason": "no ACL rule matches: denied by default"} in reasons
	count(reasons) == 2
}

test_shipped_example_data if {
	# The example data.yaml, as loaded with this policy.
	r := req(user("alice"), [repo("alice/app", ["pull", "push"]), repo("library/nginx", ["pull", "push"]), catalog])
	allowed := authz.allowed with input as r
	["repository", "", "alice/app", "push"] in allowed
	["repository", "", "library/nginx", "pull"] in allowed
	not ["repository", "", "library/nginx", "push"] in allowed
	not ["registry", "", "catalog", "*"] in allowed
}
