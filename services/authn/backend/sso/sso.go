// Package ssobackend is the backend of people who sign in with the company IdP (`type: sso`):
// it re-reads them in the account directory (ssoaccounts.Directory), so their registry
// sessions refresh, and their personal access tokens log in, without asking the IdP every
// time, and stop the moment the IdP says the account ended.
//
// Nobody logs in here with an IdP password: people sign in on the pages (package sso's
// authorization code flow), so Authenticate knows no credentials. The backend only resolves:
// a session whose Backend is this one's name, and the pat backend's owner lookup
// (authn.Chain.ResolvePerson), reach it. A subject_prefix works as for any backend: the chain
// takes it off before Resolve and puts it back after, so the directory holds bare subjects.
//
// How a person's state maps:
//
//	directory                    backend                    refresh grant / PAT login
//	ssoaccounts.ErrNotFound      authn.ErrNoMatch           session ends (account_removed)
//	ssoaccounts.ErrEnded         authn.ErrAccountDisabled   session ends (account_disabled)
//	ssoaccounts.ErrUnavailable   authn.ErrUnavailable       refused for now, session kept
package ssobackend

import (
	"context"
	"errors"
	"fmt"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
)

// Config is the sso backend's `config:` block. It has no settings: the IdP is the top-level
// sso block, and the accounts live in the authn state store.
type Config struct{}

// Validate implements authn.BackendConfig.
func (c *Config) Validate() []error { return nil }

// Open implements authn.BackendConfig.
func (c *Config) Open(_ context.Context, deps authn.Deps) (authn.Backend, error) {
	if deps.SSO == nil {
		return nil, errors.New("sso backend: the company IdP is not configured: set the sso block")
	}
	return &backend{d: deps.SSO}, nil
}

type backend struct {
	authn.UnimplementedBackend
	d *ssoaccounts.Directory
}

var _ authn.Backend = (*backend)(nil)

// Authenticate implements authn.Backend: no credential is an IdP person's here, so every
// login goes on to the next backend.
func (b *backend) Authenticate(context.Context, authn.Credentials) (identity.Identity, error) {
	return identity.Identity{}, authn.ErrNoMatch
}

// CanResolve implements authn.Backend.
func (b *backend) CanResolve() bool { return true }

// Resolve implements authn.Backend with the directory, which asks the IdP when the account is
// due for revalidation.
func (b *backend) Resolve(ctx context.Context, subject string) (identity.Identity, error) {
	id, err := b.d.Resolve(ctx, subject)
	switch {
	case err == nil:
		// The chain names the identity after this backend's chain member, as it does every
		// backend's, so a refreshed identity and its session say the same backend.
		id.Backend = ""
		return id, nil
	case errors.Is(err, ssoaccounts.ErrNotFound):
		return identity.Identity{}, authn.ErrNoMatch
	case errors.Is(err, ssoaccounts.ErrEnded):
		return identity.Identity{}, fmt.Errorf("%w: %w", authn.ErrAccountDisabled, err)
	case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return identity.Identity{}, err
	default: // ssoaccounts.ErrUnavailable, or anything else it could not tell
		return identity.Identity{}, fmt.Errorf("sso: %w: %w", authn.ErrUnavailable, err)
	}
}
