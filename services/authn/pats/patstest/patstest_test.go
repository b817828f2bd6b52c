package patstest_test

import (
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/pats/patstest"
)

// The in-memory fake keeps the contract the SQL stores keep.
func TestMemory(t *testing.T) {
	t.Parallel()
	patstest.Run(t, func(*testing.T) pats.Store { return patstest.NewMemory() })
}
