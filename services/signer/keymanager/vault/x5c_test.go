package vault

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/asn1"
	"math/big"
	"strings"
	"testing"
	"time"
)

func TestCertifiedFallsBackToTheLastCertifiedVersion(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	P, R := 10*time.Minute, 6*time.Minute
	vs := []Version{{1, t0}, {2, t0.Add(time.Hour)}, {3, t0.Add(2 * time.Hour)}}
	now := t0.Add(2*time.Hour + P) // version 3 is due
	cases := []struct {
		name        string
		signable    []int
		wantSigning int // version; 0: none
		wantStates  []State
	}{
		{"due version certified", []int{1, 2, 3}, 3, []State{StateRetired, StateRetiring, StateActive}},
		{"due version uncertified: previous signs", []int{1, 2}, 2, []State{StateRetired, StateActive, StatePublished}},
		{"only the oldest certified", []int{1}, 1, []State{StateActive, StateRetiring, StatePublished}},
		{"nothing certified: nothing signs", []int{}, 0, []State{StateRetired, StateRetiring, StateActive}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			slots := Schedule(vs, now, P, R)
			ok := map[int]bool{}
			for _, n := range tc.signable {
				ok[n] = true
			}
			signing, due := certified(slots, func(n int) bool { return ok[n] })
			if due != 2 {
				t.Fatalf("due index %d, want 2", due)
			}
			got := 0
			if signing >= 0 {
				got = slots[signing].Number
			}
			if got != tc.wantSigning {
				t.Fatalf("signing version %d, want %d", got, tc.wantSigning)
			}
			for i, s := range slots {
				if s.State != tc.wantStates[i] {
					t.Errorf("version %d: %s, want %s", s.Number, s.State, tc.wantStates[i])
				}
			}
			if signing >= 0 && !slots[signing].RetiredAt.IsZero() {
				t.Errorf("the signing version has a retirement time %s", slots[signing].RetiredAt)
			}
		})
	}
}

// A version that signed as a fallback stays published for a token lifetime after it last
// did, although the schedule retired it long ago. Last use is recorded at most once a
// second, so the version may have signed up to a second after the recorded time: the bound
// adds that second.
func TestExtendRetirementAfterFallback(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	P, R := 10*time.Minute, 61*time.Minute
	vs := []Version{{1, t0}, {2, t0.Add(time.Hour)}}
	recorded := t0.Add(5 * time.Hour) // version 1's last recorded signature; version 2 certified since
	// Unrecorded signatures up to a second later are possible: the last token may be signed
	// at recorded + 999ms and verify until R after that.
	lastToken := recorded.Add(time.Second - time.Millisecond)
	want := recorded.Add(R + time.Second)
	for _, tc := range []struct {
		now  time.Time
		want State
	}{
		{recorded.Add(R - time.Second), StateRetiring},
		{lastToken.Add(R - time.Millisecond), StateRetiring}, // a token signed at lastToken still verifies
		{want, StateRetired},
	} {
		slots := Schedule(vs, tc.now, P, R)
		extendRetirement(slots, map[int]time.Time{1: recorded}, 1, tc.now, R)
		if slots[0].State != tc.want || !slots[0].RetiredAt.Equal(want) {
			t.Errorf("at %s: version 1 %s retiring at %s, want %s at %s", tc.now, slots[0].State, slots[0].RetiredAt, tc.want, want)
		}
	}
}

func TestLeafValidityAndRenewal(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	validity := 24 * time.Hour
	rootKey, root := testRoot(t, t0)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl, err := leafTemplate("portcullis", 3, t0, validity, root)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, root, leafKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ := x509.ParseCertificate(der)
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d > validity+leafBackdate {
		t.Fatalf("leaf valid for %s, want at most leaf_validity %s + %s backdating", d, validity, leafBackdate)
	}
	if !strings.Contains(leaf.Subject.CommonName, "v3") {
		t.Errorf("leaf subject %q does not name the version", leaf.Subject.CommonName)
	}
	if err := checkLeaf(leaf, root, leafKey.Public()); err != nil {
		t.Fatal(err)
	}
	other, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if checkLeaf(leaf, root, other.Public()) == nil {
		t.Fatal("a leaf certifying another key was accepted")
	}
	_, otherRoot := testRoot(t, t0)
	if checkLeaf(leaf, otherRoot, leafKey.Public()) == nil {
		t.Fatal("a leaf under another root was accepted")
	}

	for _, tc := range []struct {
		at    time.Duration
		renew bool
	}{
		{0, false},
		{validity/2 - time.Minute, false},
		{validity/2 + time.Minute, true},
		{validity + time.Hour, true},
		{-time.Hour, true}, // not valid yet
	} {
		if got := needsRenewal(leaf, t0.Add(tc.at), validity); got != tc.renew {
			t.Errorf("needsRenewal at t0%+v = %v, want %v", tc.at, got, tc.renew)
		}
	}
	if !needsRenewal(nil, t0, validity) {
		t.Error("a missing leaf needs no renewal")
	}

	// The signer signs only while the leaf outlives the token (+ leeway).
	ttl := time.Hour + registryLeeway
	for _, tc := range []struct {
		at   time.Duration
		sign bool
	}{
		{0, true},
		{validity - ttl, true},
		{validity - ttl + time.Second, false},
		{-time.Hour, false},
	} {
		now := t0.Add(tc.at)
		if got := coversUntil(leaf, now, now.Add(ttl)); got != tc.sign {
			t.Errorf("coversUntil at t0%+v = %v, want %v", tc.at, got, tc.sign)
		}
	}
}

func testRoot(t *testing.T, created time.Time) (crypto.Signer, *x509.Certificate) {
	t.Helper()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl, err := rootTemplate("test root", keyVersion{Version: Version{Number: 1, Created: created}, Public: k.Public()})
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, k.Public(), k)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := x509.ParseCertificate(der)
	return k, c
}

func TestParseCertsChecksWhatTheStoreHolds(t *testing.T) {
	t.Parallel()
	t0 := time.Now()
	rootKey, root := testRoot(t, t0)
	k1, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafPEM := func(pub crypto.PublicKey, v int, signer crypto.Signer, parent *x509.Certificate) string {
		tmpl, _ := leafTemplate("k", v, t0, time.Hour, parent)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := x509.ParseCertificate(der)
		return certPEM(c)
	}
	otherKey, otherRoot := testRoot(t, t0)
	cfg := Config{Key: "k"}
	pubs := map[int]crypto.PublicKey{1: k1.Public(), 2: k2.Public()}
	doc := &certDoc{Key: "k", Root: certPEM(root), Leaves: map[string]string{
		"1": leafPEM(k1.Public(), 1, rootKey, root),
		"2": leafPEM(k2.Public(), 2, otherKey, otherRoot), // under another root
		"3": leafPEM(k1.Public(), 3, rootKey, root),       // a version Vault does not have
	}}
	cs, err := parseCerts(doc, "secret/data/x", cfg, pubs)
	if err != nil {
		t.Fatal(err)
	}
	if cs.leaves[1] == nil || cs.leaves[2] != nil || cs.leaves[3] != nil || len(cs.problems) != 1 || !strings.HasPrefix(cs.problems[0], "version 2") {
		t.Fatalf("leaves %v, problems %q: want version 1 only, version 2 reported", cs.leaves, cs.problems)
	}
	for name, tc := range map[string]struct {
		doc  *certDoc
		want string
	}{
		"no secret":    {nil, "portcullis keys certify"},
		"no root":      {&certDoc{Key: "k"}, "portcullis keys certify"},
		"another key":  {&certDoc{Key: "other", Root: certPEM(root)}, `"other"`},
		"leaf as root": {&certDoc{Key: "k", Root: doc.Leaves["1"]}, "not a self-signed CA"},
	} {
		if _, err := parseCerts(tc.doc, "secret/data/x", cfg, pubs); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: error %v, want one mentioning %s", name, err, tc.want)
		}
	}
}

func TestDERSignature(t *testing.T) {
	t.Parallel()
	k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	digest := make([]byte, 32)
	asn, _ := ecdsa.SignASN1(rand.Reader, k, digest)
	raw := jwsFromASN1(t, asn) // as transit answers with marshaling_algorithm=jws
	der, err := derSignature(k.Public(), raw)
	if err != nil {
		t.Fatal(err)
	}
	if !ecdsa.VerifyASN1(&k.PublicKey, digest, der) {
		t.Fatal("the DER signature does not verify")
	}
	if _, err := derSignature(k.Public(), raw[:63]); err == nil {
		t.Fatal("a short signature was accepted")
	}
}

func jwsFromASN1(t *testing.T, asn []byte) []byte {
	t.Helper()
	var s struct{ R, S *big.Int }
	if _, err := asn1.Unmarshal(asn, &s); err != nil {
		t.Fatal(err)
	}
	out := make([]byte, 64)
	s.R.FillBytes(out[:32])
	s.S.FillBytes(out[32:])
	return out
}

func TestSameIdentity(t *testing.T) {
	t.Parallel()
	cases := []struct {
		signer, certifier AuthConfig
		same              bool
	}{
		{AuthConfig{Method: "token", TokenFile: "/a"}, AuthConfig{Method: "token", TokenFile: "/a"}, true},
		{AuthConfig{Method: "token", TokenFile: "/a"}, AuthConfig{Method: "token", TokenFile: "/b"}, false},
		{AuthConfig{Method: "token"}, AuthConfig{Method: "token"}, false}, // $VAULT_TOKEN: each process its own
		{AuthConfig{Method: "approle", RoleID: "r"}, AuthConfig{Method: "approle", RoleID: "r"}, true},
		{AuthConfig{Method: "approle", RoleID: "r"}, AuthConfig{Method: "approle", RoleID: "c"}, false},
		{AuthConfig{Method: "kubernetes", Role: "signer"}, AuthConfig{Method: "kubernetes", Role: "signer"}, true},
		{AuthConfig{Method: "kubernetes", Role: "signer"}, AuthConfig{Method: "token", TokenFile: "/a"}, false},
	}
	for i, tc := range cases {
		if got := sameIdentity(tc.signer, tc.certifier); got != tc.same {
			t.Errorf("case %d: sameIdentity = %v, want %v", i, got, tc.same)
		}
	}
}
