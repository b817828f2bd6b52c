# Unit tests for the CI policy. Run them with
#   go test ./deploy/examples/ci
# or, with opa 1.x, opa test deploy/examples/ci/policy
package portcullis.authz_test

import data.portcullis.authz

# Identities as the oidc backends of portcullis.yaml map them.
github_main := {
	"subject": "github:repo:myorg/app:ref:refs/heads/main", "anonymous": false, "groups": ["myorg"],
	"labels": {"project": ["myorg/app"], "ref": ["refs/heads/main"], "workflow": ["image"]},
	"backend": "github-actions",
}

github_pr := object.union(github_main, {
	"subject": "github:repo:myorg/app:pull_request",
	"labels": {"project": ["myorg/app"], "ref": ["refs/pull/7/merge"], "workflow": ["image"]},
})

github_tag := object.union(github_main, {"labels": {"project": ["myorg/app"], "ref": ["refs/tags/v1.2.0"]}})

gitlab(protected) := {
	"subject": "gitlab:project_path:mygroup/app:ref_type:branch:ref:main", "anonymous": false,
	"groups": ["mygroup"], "labels": {"project": ["mygroup/app"], "ref": ["main"], "protected": [protected]},
	"backend": "gitlab-ci",
}

k8s(sa) := {
	"subject": concat("", ["k8s:system:serviceaccount:build-web:", sa]), "anonymous": false, "groups": [],
	"labels": {"project": ["build-web"], "serviceaccount": [sa]}, "backend": "kubernetes",
}

req(identity, scopes) := {
	"identity": identity, "service": "registry.example.com", "client_id": "docker",
	"remote_addr": "192.0.2.1", "scopes": scopes,
}

repo(name, actions) := {"type": "repository", "class": "", "name": name, "actions": actions}

allowed_for(identity, scopes) := allowed if {
	allowed := authz.allowed with input as req(identity, scopes)
}

pull_push(name) := {["repository", "", name, "pull"], ["repository", "", name, "push"]}

test_github_main_pushes_own_project if {
	allowed_for(github_main, [repo("myorg/app", ["pull", "push"])]) == pull_push("myorg/app")
	allowed_for(github_main, [repo("myorg/app/cache", ["pull", "push"])]) == pull_push("myorg/app/cache")
}

test_github_tag_pushes if {
	allowed_for(github_tag, [repo("myorg/app", ["push"])]) == {["repository", "", "myorg/app", "push"]}
}

test_github_pull_request_only_pulls if {
	allowed_for(github_pr, [repo("myorg/app", ["pull", "push"])]) == {["repository", "", "myorg/app", "pull"]}
}

test_other_projects_denied if {
	count(allowed_for(github_main, [
		repo("myorg/app2", ["pull", "push"]),
		repo("myorg/other", ["pull", "push"]),
		repo("myorg", ["pull", "push"]),
		repo("evil/myorg/app", ["pull", "push"]),
	])) == 0
}

test_library_pull_only if {
	allowed_for(gitlab("false"), [repo("library/alpine", ["pull", "push"])]) == {["repository", "", "library/alpine", "pull"]}
}

test_gitlab_protected_pushes if {
	allowed_for(gitlab("true"), [repo("mygroup/app", ["pull", "push"])]) == pull_push("mygroup/app")
}

test_gitlab_unprotected_only_pulls if {
	allowed_for(gitlab("false"), [repo("mygroup/app", ["pull", "push"])]) == {["repository", "", "mygroup/app", "pull"]}
}

test_kubernetes_builder_pushes_namespace if {
	allowed_for(k8s("builder"), [repo("build-web/alpine", ["pull", "push"])]) == pull_push("build-web/alpine")
}

test_kubernetes_other_service_account_only_pulls if {
	allowed_for(k8s("default"), [repo("build-web/alpine", ["pull", "push"])]) == {["repository", "", "build-web/alpine", "pull"]}
}

# Labels are only trusted from the workload backends: a password user whose directory entry
# carries the same labels gets nothing from these rules.
test_labels_from_other_backends_ignored if {
	ldap_user := object.union(github_main, {"subject": "alice", "backend": "people"})
	count(allowed_for(ldap_user, [repo("myorg/app", ["pull", "push"]), repo("library/alpine", ["pull"])])) == 0
}

test_missing_or_empty_project_gets_nothing if {
	# object.union merges nested objects, so the labels are replaced with object.remove first.
	unlabelled := object.remove(gitlab("true"), ["labels"])
	no_project := object.union(unlabelled, {"labels": {"protected": ["true"]}})
	empty_project := object.union(unlabelled, {"labels": {"project": [""], "protected": ["true"]}})
	count(allowed_for(no_project, [repo("mygroup/app", ["pull", "push"]), repo("library/alpine", ["pull"])])) == 0
	count(allowed_for(empty_project, [repo("/x", ["pull", "push"]), repo("library/alpine", ["pull"])])) == 0
}

# A label with several values (an array claim) names no one project: nothing is granted on it.
test_multi_valued_project_gets_nothing if {
	unlabelled := object.remove(github_main, ["labels"])
	two := object.union(unlabelled, {"labels": {"project": ["myorg/app", "other/app"], "ref": ["refs/heads/main"]}})
	count(allowed_for(two, [repo("myorg/app", ["pull", "push"]), repo("other/app", ["pull"]), repo("library/alpine", ["pull"])])) == 0
	one := object.union(unlabelled, {"labels": {"project": ["myorg/app"], "ref": ["refs/heads/main", "refs/tags/v1"]}})
	allowed_for(one, [repo("myorg/app", ["pull", "push"])]) == {["repository", "", "myorg/app", "pull"]}
}

test_anonymous_gets_nothing if {
	anon := object.union(github_main, {"anonymous": true})
	count(allowed_for(anon, [repo("myorg/app", ["pull"])])) == 0
}

test_no_delete_or_catalog if {
	count(allowed_for(github_main, [
		repo("myorg/app", ["delete", "*"]),
		{"type": "registry", "class": "", "name": "catalog", "actions": ["*"]},
	])) == 0
}

test_plugin_class_kept if {
	allowed_for(github_main, [{"type": "repository", "class": "plugin", "name": "myorg/app/p", "actions": ["pull"]}]) == {["repository", "plugin", "myorg/app/p", "pull"]}
}
