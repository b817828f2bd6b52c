//go:build e2e

package e2e

import (
	"fmt"
	"testing"

	"github.com/portcullis-dev/portcullis/pkg/testpki"
)

// writeInternalPKI writes a CA and a certificate for 127.0.0.1 into dir and returns the
// config's internal_tls section.
func writeInternalPKI(t testing.TB, dir string) string {
	t.Helper()
	f := testpki.Write(t, dir)
	return fmt.Sprintf("internal_tls:\n  cert_file: %s\n  key_file: %s\n  ca_file: %s\n", f.Cert, f.Key, f.CA)
}
