# Unit tests for the default policy. Run them with
#   go test ./services/authz/opa -run TestRegoPolicyTests
package portcullis.authz_test

import data.portcullis.authz

alice := {"subject": "alice", "anonymous": false, "groups": ["devs"], "labels": {}, "backend": "htpasswd"}

root := {"subject": "root", "anonymous": false, "groups": ["devs", "admins"], "labels": {}, "backend": "htpasswd"}

anonymous := {"subject": "", "anonymous": true, "groups": [], "labels": {}, "backend": ""}

req(identity, scopes) := {
	"identity": identity,
	"service": "registry.example.com",
	"client_id": "docker",
	"remote_addr": "192.0.2.1:5000",
	"scopes": scopes,
}

repo(name, actions) := {"type": "repository", "class": "", "name": name, "actions": actions}

catalog := {"type": "registry", "class": "", "name": "catalog", "actions": ["*"]}

allowed_for(identity, scopes) := allowed if {
	allowed := authz.allowed with input as req(identity, scopes)
}

# --- admins ---

test_admin_gets_catalog if {
	allowed_for(root, [catalog]) == {["registry", "", "catalog", "*"]}
}

test_admin_gets_every_requested_action if {
	allowed_for(root, [repo("alice/app", ["pull", "push", "delete", "*"])]) == {
		["repository", "", "alice/app", "pull"],
		["repository", "", "alice/app", "push"],
		["repository", "", "alice/app", "delete"],
		["repository", "", "alice/app", "*"],
	}
}

test_admin_gets_only_requested_actions if {
	allowed_for(root, [repo("x/y", ["pull"])]) == {["repository", "", "x/y", "pull"]}
}

test_anonymous_in_admins_group_gets_nothing if {
	anon_admin := object.union(anonymous, {"groups": ["admins"]})
	count(allowed_for(anon_admin, [catalog, repo("library/x", ["pull"])])) == 0
}

test_user_without_admins_group_gets_no_catalog if {
	count(allowed_for(alice, [catalog])) == 0
}

# --- own namespace ---

test_user_pull_push_own_repo if {
	allowed_for(alice, [repo("alice/app", ["pull", "push"])]) == {
		["repository", "", "alice/app", "pull"],
		["repository", "", "alice/app", "push"],
	}
}

test_user_own_nested_repo if {
	allowed_for(alice, [repo("alice/team/app", ["push"])]) == {["repository", "", "alice/team/app", "push"]}
}

test_user_deletes_own_repo_but_gets_no_wildcard if {
	allowed_for(alice, [repo("alice/app", ["delete", "*"])]) == {["repository", "", "alice/app", "delete"]}
}

test_user_deletes_own_nested_repo if {
	allowed_for(alice, [repo("alice/team/app", ["delete"])]) == {["repository", "", "alice/team/app", "delete"]}
}

test_user_no_access_to_other_users_repo if {
	count(allowed_for(alice, [repo("bob/app", ["pull", "push", "delete"])])) == 0
}

test_user_deletes_nothing_in_library if {
	count(allowed_for(alice, [repo("library/alpine", ["delete"])])) == 0
}

test_anonymous_deletes_nothing if {
	count(allowed_for(anonymous, [repo("alice/app", ["delete"]), repo("library/alpine", ["delete"])])) == 0
}

test_user_prefix_is_not_namespace if {
	count(allowed_for(alice, [
		repo("alice2/x", ["pull", "push"]),
		repo("alicex/y", ["pull", "push"]),
		repo("alice", ["pull", "push"]),
		repo("xalice/y", ["pull", "push"]),
	])) == 0
}

test_own_namespace_only_for_repositories if {
	count(allowed_for(alice, [{"type": "plugin", "class": "", "name": "alice/app", "actions": ["pull"]}])) == 0
}

test_user_named_library_cannot_push_library if {
	library_user := object.union(alice, {"subject": "library"})
	allowed_for(library_user, [repo("library/alpine", ["pull", "push"])]) == {["repository", "", "library/alpine", "pull"]}
}

test_empty_subject_gets_nothing if {
	nobody := object.union(alice, {"subject": ""})
	count(allowed_for(nobody, [repo("/app", ["pull"]), repo("library/alpine", ["pull"])])) == 0
}

# --- library ---

test_user_pulls_library if {
	allowed_for(alice, [repo("library/alpine", ["pull", "push", "delete"])]) == {["repository", "", "library/alpine", "pull"]}
}

test_library_prefix_is_not_namespace if {
	count(allowed_for(alice, [repo("library2/alpine", ["pull"]), repo("library", ["pull"])])) == 0
}

# --- anonymous ---

test_anonymous_gets_nothing if {
	count(allowed_for(anonymous, [
		repo("library/alpine", ["pull"]),
		repo("alice/app", ["pull"]),
		catalog,
	])) == 0
}

test_anonymous_with_subject_gets_nothing if {
	count(allowed_for(object.union(anonymous, {"subject": "alice"}), [repo("alice/app", ["pull"])])) == 0
}

# --- several scopes in one evaluation ---

test_mixed_scopes if {
	allowed_for(alice, [
		repo("library/alpine", ["pull"]),
		repo("bob/app", ["pull"]),
		repo("alice/app", ["push"]),
	]) == {
		["repository", "", "library/alpine", "pull"],
		["repository", "", "alice/app", "push"],
	}
}

# --- class is part of the key ---
# The default rules ignore the class, but each grant names the class of the scope it
# grants, so a plugin scope and a plain one with the same name are decided apart.

plugin(name, actions) := {"type": "repository", "class": "plugin", "name": name, "actions": actions}

test_class_kept_apart if {
	allowed_for(alice, [plugin("alice/p", ["push"]), repo("library/p", ["pull"])]) == {
		["repository", "plugin", "alice/p", "push"],
		["repository", "", "library/p", "pull"],
	}
}

test_same_name_with_and_without_class if {
	allowed_for(alice, [plugin("alice/p", ["pull"]), repo("alice/p", ["pull"])]) == {
		["repository", "plugin", "alice/p", "pull"],
		["repository", "", "alice/p", "pull"],
	}
}
