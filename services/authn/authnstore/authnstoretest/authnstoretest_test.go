package authnstoretest_test

import (
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn/authnstore"
	"github.com/portcullis-dev/portcullis/services/authn/authnstore/authnstoretest"
)

// The in-memory fake keeps the contract the SQL stores keep.
func TestMemory(t *testing.T) {
	t.Parallel()
	authnstoretest.Run(t, func(*testing.T) authnstore.Store { return authnstoretest.NewMemory() })
}
