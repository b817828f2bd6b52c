package devicetest_test

import (
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn/device"
	"github.com/portcullis-dev/portcullis/services/authn/device/devicetest"
)

// The in-memory fake keeps the contract the SQL stores keep.
func TestMemory(t *testing.T) {
	t.Parallel()
	devicetest.Run(t, func(*testing.T) device.Store { return devicetest.NewMemory() })
}
