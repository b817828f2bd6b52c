// Package pat is the personal access token backend (`type: pat`): a tool logs in as a person
// with a token made for them (portcullis pats create), as `docker login -u <owner> -p pat_…`.
// It is in the chain whenever sso.pat.enabled is set (added as "pat" when no backend of this
// type is listed).
//
// The backend claims every password that starts with "pat_" (authn.Backend.Claiming), so a
// token never reaches bcrypt or a directory bind, and checks it with the pats.Manager: the
// token's SHA-256 looked up by an index and compared in constant time, the user name must be
// the owner's, an expired token is refused, and the owner is re-read in the password
// backends (the chain's ResolvePerson, as a session refresh re-reads its user): the identity
// carries the owner's current groups and labels, and an owner who is gone or disabled is
// refused and loses every token. The identity's Backend is "pat", with the token's name and
// narrowing (identity.PATName, PATScopes); authz applies the narrowing.
//
// The identity's ValidUntil is at most a second away, so the login cache never keeps a token
// longer than that: a revocation is effective on every replica within a second. The backend
// does not resolve: a token's login gets no refresh token, and docker keeps the token itself.
package pat

import (
	"context"
	"errors"
	"fmt"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
)

// Config is the pat backend's `config:` block. It has no settings: the tokens live in the
// authn state store, and sso.pat sets their limits.
type Config struct{}

// Validate implements authn.BackendConfig.
func (c *Config) Validate() []error { return nil }

// Open implements authn.BackendConfig.
func (c *Config) Open(_ context.Context, deps authn.Deps) (authn.Backend, error) {
	if deps.PATs == nil {
		return nil, errors.New("pat: personal access tokens are off: set sso.pat.enabled")
	}
	return &backend{m: deps.PATs}, nil
}

type backend struct {
	authn.UnimplementedBackend
	m *pats.Manager
}

var _ authn.Backend = (*backend)(nil)

// Claiming implements authn.Backend: tokens have a prefix of their own.
func (b *backend) Claiming() bool { return true }

// ClaimsCredential implements authn.Backend: every password with the prefix is a token's,
// malformed or not, so none reaches a password backend.
func (b *backend) ClaimsCredential(_ context.Context, c authn.Credentials) bool {
	return pats.LooksLikeSecret(string(c.Password))
}

// Authenticate implements authn.Backend. A password without the prefix is ErrNoMatch; every
// refusal is ErrInvalidCredentials, the reason in the audit log; a store or owner lookup
// failure is ErrUnavailable.
func (b *backend) Authenticate(ctx context.Context, c authn.Credentials) (identity.Identity, error) {
	if c.Kind != authn.KindPassword || !pats.LooksLikeSecret(string(c.Password)) {
		return identity.Identity{}, authn.ErrNoMatch
	}
	id, _, err := b.m.Login(ctx, c.Username, string(c.Password), c.RemoteAddr)
	switch {
	case errors.Is(err, pats.ErrRefused):
		return identity.Identity{}, fmt.Errorf("%w: %w", authn.ErrInvalidCredentials, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return identity.Identity{}, err
	case err != nil:
		return identity.Identity{}, fmt.Errorf("personal access tokens: %w: %w", authn.ErrUnavailable, err)
	}
	return id, nil
}

// Owners adapts a person resolver (the chain's ResolvePerson) to pats.Options.Owner: a
// person no backend knows, or one whose account is disabled, is pats.ErrNoOwner.
func Owners(resolve func(ctx context.Context, subject string) (identity.Identity, error)) func(context.Context, string) (identity.Identity, error) {
	return func(ctx context.Context, subject string) (identity.Identity, error) {
		id, err := resolve(ctx, subject)
		if errors.Is(err, authn.ErrNoMatch) || errors.Is(err, authn.ErrInvalidCredentials) {
			return identity.Identity{}, fmt.Errorf("%w: %w", pats.ErrNoOwner, err)
		}
		return id, err
	}
}
