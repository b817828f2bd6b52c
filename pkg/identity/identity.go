// Package identity holds the caller identity that authn establishes and authz judges.
package identity

// Identity is who a caller is. The zero value is not anonymous: use Anonymous().
type Identity struct {
	Subject   string
	Anonymous bool
	Groups    []string
	Labels    map[string]string
	// Backend names the authn backend that vouched for Subject.
	Backend string
}

// Anon returns the identity of a caller who sent no credentials.
func Anon() Identity { return Identity{Anonymous: true} }
