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
}

// Anon returns the identity of a caller who sent no credentials.
func Anon() Identity { return Identity{Anonymous: true} }
