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
# The helpers are prefixed ci_ so this file can sit next to a copy of the default policy
# (same package: the allowed sets are unioned).
package portcullis.authz

# The backends whose labels this policy trusts, by the names portcullis.yaml gives them.
ci_backends := {"github-actions", "gitlab-ci", "kubernetes"}

ci_workload if {
	not input.identity.anonymous
	input.identity.subject != ""
	input.identity.backend in ci_backends
	input.identity.labels.project != ""
}

# The project's own namespace; the "/" keeps myorg/app from matching myorg/app2.
ci_own(name) if name == input.identity.labels.project

ci_own(name) if startswith(name, concat("", [input.identity.labels.project, "/"]))

ci_release if {
	input.identity.backend == "github-actions"
	input.identity.labels.ref == "refs/heads/main"
}

ci_release if {
	input.identity.backend == "github-actions"
	startswith(input.identity.labels.ref, "refs/tags/")
}

ci_release if {
	input.identity.backend == "gitlab-ci"
	input.identity.labels.protected == "true"
}

ci_release if {
	input.identity.backend == "kubernetes"
	input.identity.labels.serviceaccount == "builder"
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
