package websessionstest_test

import (
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn/websessions"
	"github.com/portcullis-dev/portcullis/services/authn/websessions/websessionstest"
)

// The in-memory fake keeps the contract the SQL stores keep.
func TestMemory(t *testing.T) {
	t.Parallel()
	websessionstest.Run(t, func(*testing.T) websessions.Store { return websessionstest.NewMemory() })
}
