//go:build e2e

package e2e

import (
	"regexp"
	"testing"
)

// libtrustKID is the shape of a docker/libtrust key ID: twelve groups of four base32 chars.
var libtrustKID = regexp.MustCompile(`^[A-Z2-7]{4}(:[A-Z2-7]{4}){11}$`)

// TestRegistry28_RootCertBundle_Libtrust starts Portcullis from a config file with
// signer.key.config.kid_mode: libtrust, and Debian's distribution 2.8 (docker-registry)
// trusting it through the rootcertbundle alone (2.8 has no jwks); then the same client
// suite as for 3.x: skopeo, crane, oras and the catalog.
func TestRegistry28_RootCertBundle_Libtrust(t *testing.T) {
	t.Parallel()
	pc := startAllInOneConfig(t, portcullisConfig{KIDMode: "libtrust"})
	reg := startRegistry(t, registry28, pc)

	tok := mustToken(t, pc, "alice", "alice", "repository:alice/app:pull,push")
	if !libtrustKID.MatchString(tok.kid) {
		t.Fatalf("token kid %q is not a libtrust key id (kid_mode: libtrust)", tok.kid)
	}

	clientSuite(t, pc, reg)
}
