// Package robot is the robot account backend (`type: robot`): a machine logs in with the API
// key an administrator created for it (portcullis robots create), as
// `docker login -u <robot name> -p pcp_…`.
//
// The backend claims every password that starts with "pcp_" (authn.Backend.Claiming), so a
// key never reaches a password backend's bcrypt, and checks it against the robots in the
// shared state store (package robots): the key's SHA-256 looked up by an index and compared
// in constant time, the user name must be the robot's name, and a revoked or expired robot
// is refused. The identity is "robot:<name>" with the robot's groups and labels.
//
// Every login the cache does not answer reads the store, and the identity's ValidUntil is at
// most a second away, so the login cache never keeps a robot longer: a revocation made
// through any replica is effective on every replica within a second. The backend does not
// resolve: a robot's login gets no refresh token, and docker keeps the key itself.
package robot

import (
	"context"
	"errors"
	"fmt"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
)

// Config is the robot backend's `config:` block. It has no settings: the robots live in the
// authn state store (authn.store) and are managed through the admin API.
type Config struct{}

// Validate implements authn.BackendConfig.
func (c *Config) Validate() []error { return nil }

// Open implements authn.BackendConfig.
func (c *Config) Open(_ context.Context, deps authn.Deps) (authn.Backend, error) {
	if deps.Robots == nil {
		return nil, errors.New("robot: no robot store: the process opened no authn store (authn.store)")
	}
	return &backend{m: deps.Robots}, nil
}

type backend struct {
	authn.UnimplementedBackend
	m *robots.Manager
}

var _ authn.Backend = (*backend)(nil)

// SubjectNamespace implements authn.Backend: robots alone have "robot:" subjects.
func (b *backend) SubjectNamespace() string { return identity.RobotPrefix }

// Claiming implements authn.Backend: robot keys have a prefix of their own.
func (b *backend) Claiming() bool { return true }

// ClaimsCredential implements authn.Backend: every password with the key prefix is
// a robot's, malformed or not, so none reaches a password backend.
func (b *backend) ClaimsCredential(_ context.Context, c authn.Credentials) bool {
	return robots.LooksLikeKey(string(c.Password))
}

// Authenticate implements authn.Backend. A password without the prefix is ErrNoMatch;
// every refusal (malformed, unknown, revoked, expired key, or another robot's name) is
// ErrInvalidCredentials, the reason in the audit log; a store failure is ErrUnavailable.
func (b *backend) Authenticate(ctx context.Context, c authn.Credentials) (identity.Identity, error) {
	if !robots.LooksLikeKey(string(c.Password)) {
		return identity.Identity{}, authn.ErrNoMatch
	}
	r, validUntil, err := b.m.Check(ctx, c.Username, string(c.Password), c.RemoteAddr)
	switch {
	case errors.Is(err, robots.ErrRefused):
		return identity.Identity{}, fmt.Errorf("%w: %w", authn.ErrInvalidCredentials, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return identity.Identity{}, err
	case err != nil:
		return identity.Identity{}, fmt.Errorf("robot store: %w: %w", authn.ErrUnavailable, err)
	}
	return identity.Identity{Subject: r.Subject(), Groups: r.Groups, Labels: identity.SingleLabels(r.Labels), ValidUntil: validUntil}, nil
}
