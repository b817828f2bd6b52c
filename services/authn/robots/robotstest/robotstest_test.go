package robotstest_test

import (
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/robots/robotstest"
)

// The in-memory fake other tests use keeps the contract the SQL stores keep.
func TestMemory(t *testing.T) {
	t.Parallel()
	robotstest.Run(t, func(*testing.T) robots.Store { return robotstest.NewMemory() })
}
