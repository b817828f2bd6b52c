package lockouttest_test

import (
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/lockout/lockouttest"
)

// The fake passes the suite the real stores pass, so tests using it test the real thing.
func TestMemory(t *testing.T) {
	t.Parallel()
	lockouttest.Run(t, func(*testing.T) lockout.Store { return lockouttest.NewMemory() })
}
