// Package identity holds the caller identity that authn establishes and authz judges.
package identity

import "time"

// Identity is who a caller is. The zero value is not anonymous: use Anonymous().
type Identity struct {
	Subject   string
	Anonymous bool
	Groups    []string
	Labels    map[string]string
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
}

// Anon returns the identity of a caller who sent no credentials.
func Anon() Identity { return Identity{Anonymous: true} }
