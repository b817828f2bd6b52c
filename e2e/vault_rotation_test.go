//go:build e2e

package e2e

import (
	"crypto"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/keyid"
)

// retireAfter is how long a replaced version stays published: the config's signer.max_ttl
// (1h) plus the registry's 60 s leeway.
const retireAfter = time.Hour + 60*time.Second

// TestVaultRotation_Registry3_X5C starts a real Vault with the transit keys portcullis and
// portcullis-root, the x5c certifier (`portcullis keys certify`, its own Vault token and
// policy) making the root and a short-lived leaf, Portcullis all-in-one signing through Vault
// in x5c chain mode with a token that cannot sign with the root, and distribution registry
// 3.1.2 whose rootcertbundle holds the root certificate only. skopeo pushes and pulls as
// alice; then `portcullis keys rotate` runs twice: a new version due to sign does not until
// the certifier (one-shot the first time, a sidecar with -interval the second) has given it
// a leaf, then tokens carry the new kid and skopeo still works against the same, never
// restarted registry. Every token's leaf is short-lived. The admin API refuses a wrong or
// empty secret.
func TestVaultRotation_Registry3_X5C(t *testing.T) {
	t.Parallel()
	testVaultRotationX5C(t, registry3, "thumbprint")
}

// TestVaultRotation_Registry28_X5C is the x5c rotation with Debian's distribution 2.8
// (docker-registry), which has no jwks at all: every token after a rotation verifies only
// through its x5c chain to the root in the rootcertbundle. Key ids are in libtrust form.
func TestVaultRotation_Registry28_X5C(t *testing.T) {
	t.Parallel()
	testVaultRotationX5C(t, registry28, "libtrust")
}

func testVaultRotationX5C(t *testing.T, kind registryKind, kidMode keyid.Mode) {
	v := startVaultSigningKeys(t, true)
	vp := startVaultAllInOne(t, v, vaultPortcullisConfig{X5C: true, KIDMode: kidMode})

	// registry-config writes the root certificate alone: no signing key is in the bundle.
	trust := vp.registryTrust(t)
	bundle := readCertBundle(t, filepath.Join(trust, "rootcertbundle.pem"))
	if len(bundle) != 1 || !bundle[0].IsCA {
		t.Fatalf("rootcertbundle.pem in x5c mode: %d certificates (first is CA: %v), want the root CA alone",
			len(bundle), len(bundle) > 0 && bundle[0].IsCA)
	}
	root := bundle[0]
	set, maxAge := vp.gatewayJWKS(t)
	vp.checkJWKSMaxAge(t, maxAge)
	for _, k := range set.Keys {
		if pk, ok := root.PublicKey.(interface{ Equal(crypto.PublicKey) bool }); ok && pk.Equal(k.Key) {
			t.Fatalf("the root certificate's key is the JWKS key %s: the root must not sign tokens", k.KeyID)
		}
	}

	reg := startTrustedRegistry(t, kind, vp.portcullis, trust)
	regProc := reg.proc
	c := newClients(t)

	kt := vp.keys(t, "list")
	wantKeyStates(t, kt, map[int]string{1: "active"})
	tok := mustToken(t, vp.portcullis, "alice", "alice", "repository:alice/probe:pull")
	if tok.kid != kt[0].KeyID {
		t.Fatalf("token kid %s, want the active version's %s", tok.kid, kt[0].KeyID)
	}
	if kidMode == "libtrust" && !libtrustKID.MatchString(tok.kid) {
		t.Fatalf("token kid %q is not a libtrust key id (kid_mode: libtrust)", tok.kid)
	}
	checkX5CToken(t, vp, tok, root)
	skopeoPushPull(t, c, reg.registry, "rotation0")
	// An internal service verifying by the x5c chain against the root alone, all along.
	roots := x509.NewCertPool()
	roots.AddCert(root)
	load := startVerifyLoad(t, vp.portcullis, roots)

	t.Run("AdminRefused", func(t *testing.T) {
		dir := t.TempDir()
		for name, secret := range map[string]string{"wrong": "not-the-admin-secret-at-all\n", "empty": ""} {
			file := filepath.Join(dir, name)
			if err := os.WriteFile(file, []byte(secret), 0o600); err != nil {
				t.Fatal(err)
			}
			for _, verb := range []string{"list", "rotate"} {
				out, err := runPortcullis(t, "keys", verb, "-addr", vp.AdminAddr, "-admin-token-file", file)
				if err == nil {
					t.Fatalf("keys %s with the %s secret succeeded:\n%s", verb, name, out)
				}
				if !strings.Contains(out, "Unauthenticated") || strings.Contains(out, "VERSION") {
					t.Fatalf("keys %s with the %s secret: want an Unauthenticated error and no table, got:\n%s", verb, name, out)
				}
			}
		}
		logContains(t, vp.Procs["all"], "admin call refused")
		// A refused rotate rotated nothing.
		wantKeyStates(t, vp.keys(t, "list"), map[int]string{1: "active"})
	})

	rotations := time.Now()
	for i := 1; i <= 2; i++ {
		oldKID := tok.kid
		kt = vp.keys(t, "rotate")
		// The new version is published at once and signs only after the propagation delay.
		want := map[int]string{i: "active", i + 1: "published"}
		for j := 1; j < i; j++ {
			want[j] = "retiring"
		}
		wantKeyStates(t, kt, want)
		next, _ := kt.version(i + 1)
		if set, _ := vp.gatewayJWKS(t); !slices.Contains(jwksKIDs(set), next.KeyID) {
			t.Fatalf("rotation %d: the gateway's JWKS %v lacks the new version's kid %s", i, jwksKIDs(set), next.KeyID)
		}
		// Not certified: it has no ACTIVE FROM, since it signs only once it has a leaf.
		if next.ActiveFrom != "-" {
			t.Fatalf("rotation %d: uncertified version %d ACTIVE FROM %s, want - (it does not sign before its leaf)", i, i+1, next.ActiveFrom)
		}
		certifiedAt := time.Now().Truncate(time.Second)
		if i == 1 {
			// Past its activation time (and a refresh), a version without a leaf still does not
			// sign: the one before it goes on. However late this looks, the answer is the same.
			created, err := time.Parse(time.RFC3339, next.Created)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Until(created.Add(vp.Propagation + 2*time.Second)))
			if got := vp.tokenKID(t); got != oldKID {
				t.Fatalf("rotation %d: version %d signs (kid %s) before the certifier gave it a leaf", i, i+1, got)
			}
			kt := vp.keys(t, "list")
			wantKeyStates(t, kt, want)
			if r, _ := kt.version(i + 1); r.ActiveFrom != "-" {
				t.Fatalf("rotation %d: version %d is due but has no leaf; ACTIVE FROM %s, want -", i, i+1, r.ActiveFrom)
			}
			certifiedAt = time.Now().Truncate(time.Second)
			rows := vp.certify(t)
			if len(rows) != i+1 || rows[i].Version != i+1 || rows[i].Action != "issued" {
				t.Fatalf("rotation %d: keys certify %+v, want a leaf issued for version %d", i, rows, i+1)
			}
			// One vocabulary: certify reports what keys list will say.
			if rows[i].State != "active" || rows[i-1].State != "retiring" {
				t.Fatalf("rotation %d: keys certify says version %d %s and %d %s, want active and retiring (as keys list will)", i, i+1, rows[i].State, i, rows[i-1].State)
			}
		} else {
			// The certifier as a sidecar: it notices the new version by itself.
			sidecar := startProc(t, "certifier", portcullisBin(t), "keys", "certify", "-config", vp.Config,
				"-vault-token-file", vp.CertifierTokenFile, "-interval", "500ms")
			logContains(t, sidecar, fmt.Sprintf(`"msg":"x5c leaf certificate issued","component":"certifier","key":"portcullis","version":%d`, i+1))
		}

		took := vp.waitForKID(t, next.KeyID)
		t.Logf("rotation %d: tokens signed with version %d (kid %s) after %s", i, i+1, next.KeyID, took.Round(time.Millisecond))

		kt = vp.keys(t, "list")
		want = map[int]string{i + 1: "active"}
		for j := 1; j <= i; j++ {
			want[j] = "retiring"
		}
		wantKeyStates(t, kt, want)
		// A version that went on signing past its due time stays published that much longer.
		checkRetiresAt(t, kt, i, time.Since(rotations))
		// ACTIVE FROM is when the version really started signing: once certified.
		if r, _ := kt.version(i + 1); i == 1 {
			if from, err := time.Parse(time.RFC3339, r.ActiveFrom); err != nil || from.Before(certifiedAt) {
				t.Fatalf("rotation %d: version %d ACTIVE FROM %s, want when it was certified (not before %s)", i, i+1, r.ActiveFrom, certifiedAt.UTC().Format(time.RFC3339))
			}
		}

		tok = mustToken(t, vp.portcullis, "alice", "alice", "repository:alice/probe:pull")
		if tok.kid == oldKID || tok.kid != next.KeyID {
			t.Fatalf("rotation %d: token kid %s, want the new version's %s (was %s)", i, tok.kid, next.KeyID, oldKID)
		}
		checkX5CToken(t, vp, tok, root)
		if !reg.acceptsToken(t, tok) {
			t.Fatalf("rotation %d: %s refuses a token of the new version (kid %s) although its x5c chain ends at the trusted root",
				i, kind.name, tok.kid)
		}
		skopeoPushPull(t, c, reg.registry, fmt.Sprintf("rotation%d", i))
		if reg.proc != regProc || regProc.exited() {
			t.Fatalf("rotation %d: the registry was restarted or exited; x5c mode must not need that", i)
		}
	}
	// What was pushed under the first key is still there for a token of the third.
	if got := c.skopeoDigest(t, reg.Host+"/alice/rotation0:v1", "alice:alice"); got == "" {
		t.Fatal("skopeo inspect of the image pushed before the rotations reported no digest")
	}
	load.stop(t, 3)
}

// checkRetiresAt checks that each retiring version leaves the JWKS max_ttl + 60s after the
// version that replaced it became active, or up to late later when it went on signing after
// that (x5c: the new version waited for its leaf).
func checkRetiresAt(t testing.TB, kt keyTable, upTo int, late time.Duration) {
	t.Helper()
	for j := 1; j <= upTo; j++ {
		r, _ := kt.version(j)
		n, _ := kt.version(j + 1)
		retires, err1 := time.Parse(time.RFC3339, r.RetiresAt)
		from, err2 := time.Parse(time.RFC3339, n.ActiveFrom)
		if err1 != nil || err2 != nil {
			t.Fatalf("version %d RETIRES AT %q, version %d ACTIVE FROM %q: want times", j, r.RetiresAt, j+1, n.ActiveFrom)
		}
		if d := retires.Sub(from); d < retireAfter-time.Second || d > retireAfter+late+time.Second {
			t.Fatalf("version %d retires %s after version %d activated, want max_ttl + 60s = %s (+ up to %s)", j, d, j+1, retireAfter, late)
		}
	}
}

// TestVaultRotation_Registry3_JWKS rotates a Vault transit key (no x5c) in front of registry
// 3.1.2 that trusts the jwks.json `portcullis registry-config` writes, following the jwks
// procedure: rotate, which publishes the new version at once (gateway JWKS and a re-run
// registry-config); restart the registry with the new jwks.json before the version signs;
// then the version activates. skopeo works before and after activation, twice; a registry
// left on the first jwks.json refuses the new version's tokens. Meanwhile a pkg/verify
// client verifies a stream of tokens and must see no failure.
func TestVaultRotation_Registry3_JWKS(t *testing.T) {
	t.Parallel()
	// Long enough that the pre-activation steps (registry-config, a registry restart, a
	// skopeo round trip) surely finish before the new version signs; checked below.
	const propagation = 6 * time.Second
	v := startVaultSigningKeys(t, false)
	vp := startVaultAllInOne(t, v, vaultPortcullisConfig{Propagation: propagation, Refresh: time.Second})

	trust := vp.registryTrust(t)
	kt := vp.keys(t, "list")
	wantKeyStates(t, kt, map[int]string{1: "active"})
	if got := jwksKIDs(readJWKSFile(t, filepath.Join(trust, "jwks.json"))); !slices.Equal(got, []string{kt[0].KeyID}) {
		t.Fatalf("registry-config jwks.json kids %v, want [%s]", got, kt[0].KeyID)
	}
	reg := startTrustedRegistry(t, registry3, vp.portcullis, trust)
	// stale keeps the first trust files: it shows what skipping the restart would cost.
	stale := startTrustedRegistry(t, registry3, vp.portcullis, trust)
	c := newClients(t)
	skopeoPushPull(t, c, reg.registry, "jwks0")
	// An internal service verifying tokens with pkg/verify all along: no verification may
	// fail while versions are published, activated and left retiring.
	load := startVerifyLoad(t, vp.portcullis, nil)

	for i := 1; i <= 2; i++ {
		oldKID := vp.tokenKID(t)
		kt = vp.keys(t, "rotate")
		want := map[int]string{i: "active", i + 1: "published"}
		for j := 1; j < i; j++ {
			want[j] = "retiring"
		}
		wantKeyStates(t, kt, want)
		next, _ := kt.version(i + 1)
		var allKIDs []string
		for _, r := range kt {
			allKIDs = append(allKIDs, r.KeyID)
		}

		// Published at once: in the gateway's JWKS and in a re-run registry-config's jwks.json.
		set, maxAge := vp.gatewayJWKS(t)
		vp.checkJWKSMaxAge(t, maxAge)
		if got := jwksKIDs(set); !sameSet(got, allKIDs) {
			t.Fatalf("rotation %d: gateway JWKS kids %v, want every published version %v", i, got, allKIDs)
		}
		trust = vp.registryTrust(t)
		if got := jwksKIDs(readJWKSFile(t, filepath.Join(trust, "jwks.json"))); !sameSet(got, allKIDs) {
			t.Fatalf("rotation %d: registry-config jwks.json kids %v, want every published version %v", i, got, allKIDs)
		}
		reg.restart(t, vp.portcullis, trust)

		// Before activation: still the old key, and the restarted registry takes it.
		if got := vp.tokenKID(t); got != oldKID {
			t.Fatalf("rotation %d: version %d signs already (kid %s) before the pre-activation checks ran", i, i+1, got)
		}
		skopeoPushPull(t, c, reg.registry, fmt.Sprintf("jwks%d-before", i))
		if got := vp.tokenKID(t); got != oldKID {
			t.Fatalf("rotation %d: version %d activated during the pre-activation checks (propagation_delay %s too short for this machine)",
				i, i+1, propagation)
		}

		took := vp.waitForKID(t, next.KeyID)
		t.Logf("rotation %d: tokens signed with version %d (kid %s) after %s", i, i+1, next.KeyID, took.Round(time.Millisecond))
		want = map[int]string{i + 1: "active"}
		for j := 1; j <= i; j++ {
			want[j] = "retiring"
		}
		kt = vp.keys(t, "list")
		wantKeyStates(t, kt, want)
		checkRetiresAt(t, kt, i, 0)
		// The retiring versions stay published.
		if set, _ := vp.gatewayJWKS(t); !sameSet(jwksKIDs(set), allKIDs) {
			t.Fatalf("rotation %d: after activation the gateway JWKS kids are %v, want %v", i, jwksKIDs(set), allKIDs)
		}

		tok := mustToken(t, vp.portcullis, "alice", "alice", "repository:alice/probe:pull")
		if !reg.acceptsToken(t, tok) {
			t.Fatalf("rotation %d: the restarted registry refuses a token of the new version (kid %s)", i, tok.kid)
		}
		if stale.acceptsToken(t, tok) {
			t.Fatalf("rotation %d: a registry with the first jwks.json accepts a token of version %d (kid %s)", i, i+1, tok.kid)
		}
		skopeoPushPull(t, c, reg.registry, fmt.Sprintf("jwks%d-after", i))
	}
	if got := c.skopeoDigest(t, reg.Host+"/alice/jwks0:v1", "alice:alice"); got == "" {
		t.Fatal("skopeo inspect of the image pushed before the rotations reported no digest")
	}
	load.stop(t, 3)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}
