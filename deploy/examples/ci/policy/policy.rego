# CI and build-pod access keyed on the labels the oidc backends map from workload tokens
# (deploy/examples/ci/portcullis.yaml). See deploy/policies/README.md for the contract.
#
#   - a workload identity may pull its own project's repositories (<project> and
#     <project>/...) and library/...;
#   - it may also push them when it builds a release: main or a tag on GitHub, a protected
#     ref on GitLab, the "builder" service account in Kubernetes;
#   - nothing else, and nothing at all for identities from other backends, whatever labels
#     they carry.
#
# Labels are arrays of values (input.identity.labels.project == ["myorg/app"]). These rules
# read a label only when it holds exactly one value (ci_label): the claims they map are
# strings, and a label that arrived with several values is not trusted to name one project.
#
# The helpers are prefixed ci_ so this file can sit next to a copy of the default policy
# (same package: the allowed sets are unioned).
package portcullis.authz

# The backends whose labels this policy trusts, by the names portcullis.yaml gives them.
ci_backends := {"github-actions", "gitlab-ci", "kubernetes"}

# ci_label(k) is label k's value when it has exactly one; undefined otherwise.
ci_label(k) := v if [v] := input.identity.labels[k]

ci_workload if {
	not input.identity.anonymous
	input.identity.subject != ""
	input.identity.backend in ci_backends
	ci_label("project") != ""
}

# The project's own namespace; the "/" keeps myorg/app from matching myorg/app2.
ci_own(name) if name == ci_label("project")

ci_own(name) if startswith(name, concat("", [ci_label("project"), "/"]))

ci_release if {
	input.identity.backend == "github-actions"
	ci_label("ref") == "refs/heads/main"
}

ci_release if {
	input.identity.backend == "github-actions"
	startswith(ci_label("ref"), "refs/tags/")
}

ci_release if {
	input.identity.backend == "gitlab-ci"
	ci_label("protected") == "true"
}

ci_release if {
	input.identity.backend == "kubernetes"
	ci_label("serviceaccount") == "builder"
}

allowed contains ["repository", s.class, s.name, "pull"] if {
	ci_workload
	some s in input.scopes
	s.type == "repository"
	ci_own(s.name)
	"pull" in s.actions
}

allowed contains ["repository", s.class, s.name, "push"] if {
	ci_workload
	ci_release
	some s in input.scopes
	s.type == "repository"
	ci_own(s.name)
	"push" in s.actions
}

allowed contains ["repository", s.class, s.name, "pull"] if {
	ci_workload
	some s in input.scopes
	s.type == "repository"
	startswith(s.name, "library/")
	"pull" in s.actions
}
