package ssoaccountstest_test

import (
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts/ssoaccountstest"
)

// The in-memory fake keeps the contract the SQL stores keep.
func TestMemory(t *testing.T) {
	t.Parallel()
	ssoaccountstest.Run(t, func(*testing.T) ssoaccounts.Store { return ssoaccountstest.NewMemory() })
}
