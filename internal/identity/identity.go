// Package identity holds the caller identity that authn establishes and authz judges.
package identity

import (
	"time"

	"github.com/portcullis-dev/portcullis/pkg/scope"
)

// Identity is who a caller is. The zero value is not anonymous: use Anonymous().
type Identity struct {
	Subject   string
	Anonymous bool
	Groups    []string
	// Labels are attributes a backend vouches for, each with one or more values (an LDAP
	// attribute or an OIDC claim may hold several); a label is never present without a value.
	Labels map[string][]string
	// Backend names the authn backend that vouched for Subject.
	Backend string
	// ValidUntil is when the credential behind this identity stops proving it (a workload
	// JWT's exp); zero: the credential does not expire by itself (a password). Whatever
	// remembers a verification (the login cache) must not use it past this time.
	ValidUntil time.Time
	// Fingerprint stands for the account's credential as the backend holds it now: a digest of
	// a password file's hash, a directory's password-change time. It changes when the password
	// does, and is never the secret itself. A session records it at login and a refresh whose
	// user's fingerprint differs is refused. "" when the backend has nothing to record. It
	// stays inside authn: it is not part of the identity sent to other services.
	Fingerprint string
	// PATName is, for a login with a personal access token (Backend "pat"), the token's name;
	// Subject, Groups and Labels are then its owner's.
	PATName string
	// PATScopes narrow a personal access token: when not empty, authz grants nothing outside
	// them whatever the policy says. A name is a pattern whose only wildcard, "*",
	// matches within one path component; the action "*" is any action.
	PATScopes []scope.Scope
}

// Anon returns the identity of a caller who sent no credentials.
func Anon() Identity { return Identity{Anonymous: true} }

// FirstLabels is each label's first value: what a reader of single-valued labels (the
// proto's old labels field, a replica from before multi-valued labels) sees.
func FirstLabels(labels map[string][]string) map[string]string {
	if len(labels) == 0 {
		return nil
	}
	out := make(map[string]string, len(labels))
	for k, vs := range labels {
		if len(vs) > 0 {
			out[k] = vs[0]
		}
	}
	return out
}

// SingleLabels makes one-valued labels (a robot's, kept single-valued by its API) multi-valued.
func SingleLabels(labels map[string]string) map[string][]string {
	if len(labels) == 0 {
		return nil
	}
	out := make(map[string][]string, len(labels))
	for k, v := range labels {
		out[k] = []string{v}
	}
	return out
}
