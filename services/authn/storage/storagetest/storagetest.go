// Package storagetest is the conformance suite every storage.Store runs: the sessions,
// robots, lockout, personal access token, device flow, web session and SSO account suites,
// each on a store of its own.
package storagetest

import (
	"context"
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn/device"
	"github.com/portcullis-dev/portcullis/services/authn/device/devicetest"
	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/lockout/lockouttest"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/pats/patstest"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/robots/robotstest"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/sessions/storetest"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts/ssoaccountstest"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
	"github.com/portcullis-dev/portcullis/services/authn/websessions"
	"github.com/portcullis-dev/portcullis/services/authn/websessions/websessionstest"
)

// Run runs every part's suite. open must return a new, empty store for each call; Run closes
// it when the test ends.
func Run(t *testing.T, open func(t *testing.T) storage.Store) {
	t.Helper()
	// mk closes the store at cleanup; the sessions suite closes its store itself.
	mk := func(t *testing.T) storage.Store {
		t.Helper()
		st := open(t)
		t.Cleanup(func() {
			if err := st.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return st
	}
	t.Run("Sessions", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) sessions.Store { return open(t).Sessions() })
	})
	t.Run("Robots", func(t *testing.T) {
		robotstest.Run(t, func(t *testing.T) robots.Store { return mk(t).Robots() })
	})
	t.Run("Lockout", func(t *testing.T) {
		lockouttest.Run(t, func(t *testing.T) lockout.Store { return mk(t).Lockout() })
	})
	t.Run("PATs", func(t *testing.T) {
		patstest.Run(t, func(t *testing.T) pats.Store { return mk(t).PATs() })
	})
	t.Run("Devices", func(t *testing.T) {
		devicetest.Run(t, func(t *testing.T) device.Store { return mk(t).Devices() })
	})
	t.Run("WebSessions", func(t *testing.T) {
		websessionstest.Run(t, func(t *testing.T) websessions.Store { return mk(t).WebSessions() })
	})
	t.Run("SSOAccounts", func(t *testing.T) {
		ssoaccountstest.Run(t, func(t *testing.T) ssoaccounts.Store { return mk(t).SSOAccounts() })
	})
}
