// Package storage is authn's state store: the one database that keeps the sessions (refresh
// tokens), the robot accounts, the lockout's failure counts, people's personal access tokens,
// the device flows of `portcullis login`, the sign-in pages' browser sessions and the people
// known through the company IdP, so replicas sharing it agree on all of them. A store type
// (sqlite, postgres) implements Store whole; nothing is found by type assertion, so a store
// cannot silently lack a part.
//
// The config key is authn.store (sessions.store is its old name, still read with a warning).
package storage

import (
	"context"

	"github.com/portcullis-dev/portcullis/services/authn/device"
	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
	"github.com/portcullis-dev/portcullis/services/authn/websessions"
)

// Store hands out the stores kept in one database. Close closes the database, and with it
// all of them; the parts have no Close of their own worth calling.
type Store interface {
	Sessions() sessions.Store
	Robots() robots.Store
	Lockout() lockout.Store
	PATs() pats.Store
	Devices() device.Store
	WebSessions() websessions.Store
	SSOAccounts() ssoaccounts.Store
	Close(ctx context.Context) error
}

// Deps is what opening a store may use: its logger and clock.
type Deps = sessions.Deps

// Config is a store type's `config:` block.
type Config interface {
	// Validate reports every problem at once, touching nothing outside the process.
	Validate() []error
	// OpenStore opens (creating and migrating as needed) the database.
	OpenStore(ctx context.Context, deps Deps) (Store, error)
}
