//go:build e2e

// These tests start a real Vault server (internal/testenv/vaulttest): built by scripts/install-tools.sh
// vault and run by `make e2e`. Without a vault binary they fail.
package vault_test

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	oteltrace "go.opentelemetry.io/otel/trace"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/keyid"
	"github.com/portcullis-dev/portcullis/internal/testenv/vaulttest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/signer"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/keymanagertest"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/vault"
)

func tokenFile(t *testing.T, token string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(p, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func open(t *testing.T, c *vault.Config, deps signer.Deps) signer.KeyManager {
	t.Helper()
	km, err := c.Open(context.Background(), deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = km.Close(context.Background()) })
	return km
}

// shippedPolicy reads a policy of deploy/vault, written for the key names portcullis and
// portcullis-root and the x5c store secret/portcullis/x5c.
func shippedPolicy(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile("../../../../deploy/vault/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// x5cKeys creates the transit keys the shipped policies name and returns a config for them.
func x5cKeys(t *testing.T, v *vaulttest.Server) vault.Config {
	t.Helper()
	v.CreateKey(t, "portcullis", "ecdsa-p256")
	v.CreateKey(t, "portcullis-root", "ecdsa-p256")
	return vault.Config{Address: v.Addr, Key: "portcullis", X5C: &vault.X5CConfig{RootKey: "portcullis-root"}}
}

// servingToken and certifierToken hold exactly the shipped policies of the two identities.
func servingToken(t *testing.T, v *vaulttest.Server) string {
	return v.TokenWithPolicy(t, "portcullis-signer", shippedPolicy(t, "portcullis.hcl"))
}

func certifierToken(t *testing.T, v *vaulttest.Server) string {
	return v.TokenWithPolicy(t, "portcullis-certifier", shippedPolicy(t, "portcullis-certifier.hcl"))
}

// certify runs one certifier pass with the certifier's own token.
func certify(t *testing.T, c vault.Config, token string, deps vault.CertifierDeps) vault.CertifyReport {
	t.Helper()
	deps.Auth = vault.AuthConfig{TokenFile: tokenFile(t, token)}
	ce, err := c.OpenCertifier(context.Background(), deps)
	if err != nil {
		t.Fatal(err)
	}
	defer ce.Close(context.Background())
	rep, err := ce.Certify(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

type refresher interface{ Refresh(context.Context) error }

func TestVault_Conformance(t *testing.T) {
	v := vaulttest.Start(t)
	cases := []struct {
		name, typ string
		batch     bool
		mode      keyid.Mode
	}{
		{"ecdsa-p256 batched", "ecdsa-p256", true, keyid.ModeThumbprint},
		{"ecdsa-p256 unbatched libtrust", "ecdsa-p256", false, keyid.ModeLibtrust},
		{"rsa-2048", "rsa-2048", true, keyid.ModeThumbprint},
		{"ed25519", "ed25519", true, keyid.ModeThumbprint},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			key := "k" + string(rune('a'+i))
			v.CreateKey(t, key, tc.typ)
			pol, _ := os.ReadFile("../../../../deploy/vault/portcullis.hcl")
			pol = []byte(strings.ReplaceAll(strings.ReplaceAll(string(pol), "transit/sign/portcullis", "transit/sign/"+key), "transit/keys/portcullis", "transit/keys/"+key))
			tok := v.TokenWithPolicy(t, "p-"+key, string(pol))
			km := open(t, &vault.Config{Address: v.Addr, Key: key, KeyType: tc.typ, KeyIDMode: tc.mode,
				Auth: vault.AuthConfig{TokenFile: tokenFile(t, tok)}, Batch: vault.BatchConfig{Disabled: !tc.batch}}, signer.Deps{})
			keymanagertest.Run(t, km)
		})
	}
}

func TestVault_StartupErrorsNameKeyPathAndCause(t *testing.T) {
	v := vaulttest.Start(t)
	v.CreateKey(t, "ec", "ecdsa-p256")
	noSign := v.TokenWithPolicy(t, "read-only", `path "transit/keys/ec" { capabilities = ["read"] }`)
	cases := []struct {
		name string
		cfg  vault.Config
		want []string
	}{
		{"missing key", vault.Config{Key: "nope", Auth: vault.AuthConfig{TokenFile: tokenFile(t, v.RootToken)}}, []string{`"nope"`, "transit/keys/nope"}},
		{"wrong type", vault.Config{Key: "ec", KeyType: "rsa-2048", Auth: vault.AuthConfig{TokenFile: tokenFile(t, v.RootToken)}}, []string{`"ec"`, "ecdsa-p256", "rsa-2048"}},
		{"denied by policy", vault.Config{Key: "ec", Auth: vault.AuthConfig{TokenFile: tokenFile(t, noSign)}}, []string{`"ec"`, "transit/sign/ec", "denied"}},
		{"bad token", vault.Config{Key: "ec", Auth: vault.AuthConfig{TokenFile: tokenFile(t, "hvs.nonsense")}}, []string{"transit/keys/ec", "denied"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Address = v.Addr
			_, err := tc.cfg.Open(context.Background(), signer.Deps{})
			if err == nil {
				t.Fatal("Open succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if strings.Contains(err.Error(), v.RootToken) || strings.Contains(err.Error(), noSign) {
				t.Fatalf("error leaks a token: %v", err)
			}
		})
	}
}

// Rotation is driven by Vault's creation_time and an injected clock: no sleeping.
func TestVault_RotationPublishesThenActivates(t *testing.T) {
	v := vaulttest.Start(t)
	v.CreateKey(t, "rot", "ecdsa-p256")
	var mu sync.Mutex
	offset := time.Duration(0)
	now := func() time.Time { mu.Lock(); defer mu.Unlock(); return time.Now().Add(offset) }
	advance := func(d time.Duration) { mu.Lock(); offset += d; mu.Unlock() }
	P, ttl := 10*time.Minute, 5*time.Minute
	km := open(t, &vault.Config{Address: v.Addr, Key: "rot", PropagationDelay: config.Duration(P),
		Auth: vault.AuthConfig{TokenFile: tokenFile(t, v.RootToken)}}, signer.Deps{Now: now, TokenLifetime: ttl})
	ctx := context.Background()
	kid := func() string {
		k, err := km.SigningKey(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return k.ID()
	}
	published := func() []string {
		pubs, _ := km.PublicKeys(ctx)
		var ids []string
		for _, p := range pubs {
			ids = append(ids, p.ID)
		}
		return ids
	}
	k1 := kid()
	if err := km.Rotate(ctx); err != nil {
		t.Fatal(err)
	}
	if kid() != k1 {
		t.Fatal("a freshly rotated version signs before verifiers could know it")
	}
	if ids := published(); len(ids) != 2 {
		t.Fatalf("after rotation JWKS has %v, want both versions", ids)
	}
	advance(P + time.Second)
	k2 := kid()
	if k2 == k1 {
		t.Fatal("new version did not activate after the propagation delay")
	}
	if ids := published(); len(ids) != 2 {
		t.Fatalf("retiring version left the JWKS early: %v", ids)
	}
	advance(ttl + 61*time.Second)
	if ids := published(); len(ids) != 1 || ids[0] != k2 {
		t.Fatalf("after token lifetime + leeway JWKS has %v, want only %s", ids, k2)
	}
	if ma := km.JWKSMaxAge(ctx); ma <= 0 || ma >= P {
		t.Fatalf("JWKS max-age %s not within the propagation delay %s", ma, P)
	}
	vs, _ := km.KeyVersions(ctx)
	if len(vs) != 2 || vs[0].State != "retired" || vs[1].State != "active" {
		t.Fatalf("versions %+v", vs)
	}
}

func TestVault_BatchingCoalescesConcurrentSigns(t *testing.T) {
	v := vaulttest.Start(t)
	v.CreateKey(t, "b", "ecdsa-p256")
	reg := prometheus.NewRegistry()
	km := open(t, &vault.Config{Address: v.Addr, Key: "b", Batch: vault.BatchConfig{Concurrency: 1},
		Auth: vault.AuthConfig{TokenFile: tokenFile(t, v.RootToken)}}, signer.Deps{Registerer: reg})
	s := signer.New(signer.Options{Issuer: "t", Audiences: []string{"a"}}, km)
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for i := 0; i < 400; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.Sign(context.Background(), signer.Claims{Audience: "a", JTI: "j", TTL: time.Minute})
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	trips, sigs := counter(t, reg, "portcullis_signer_vault_round_trips_total"), counter(t, reg, "portcullis_signer_vault_signatures_total")
	t.Logf("%v signatures in %v round trips", sigs, trips)
	if sigs != 401 || trips >= sigs { // +1: the startup test signature
		t.Fatalf("%v signatures in %v round trips: concurrent signs were not coalesced", sigs, trips)
	}
}

func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			var sum float64
			for _, m := range mf.GetMetric() {
				sum += m.GetCounter().GetValue()
			}
			return sum
		}
	}
	t.Fatalf("metric %s not found", name)
	return 0
}

// Sealed or stopped Vault: signing fails fast (no hang) and recovers by itself.
func TestVault_SealedAndStoppedVaultRecovers(t *testing.T) {
	v := vaulttest.Start(t)
	v.CreateKey(t, "f", "ecdsa-p256")
	km := open(t, &vault.Config{Address: v.Addr, Key: "f", Auth: vault.AuthConfig{TokenFile: tokenFile(t, v.RootToken)}}, signer.Deps{})
	s := signer.New(signer.Options{Issuer: "t", Audiences: []string{"a"}}, km)
	sign := func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		defer cancel()
		_, err := s.Sign(ctx, signer.Claims{Audience: "a", JTI: "j", TTL: time.Minute})
		return err
	}
	if err := sign(); err != nil {
		t.Fatal(err)
	}
	for _, fault := range []struct {
		name         string
		break_, heal func(testutil.T)
	}{
		{"sealed", v.Seal, v.Unseal},
		{"stopped", v.Stop, v.Restart},
	} {
		fault.break_(t)
		err := sign()
		if err == nil {
			t.Fatalf("%s Vault: signing succeeded", fault.name)
		}
		if !strings.Contains(err.Error(), "unavailable") {
			t.Fatalf("%s Vault: error %v is not an unavailability", fault.name, err)
		}
		fault.heal(t)
		if err := sign(); err != nil {
			t.Fatalf("after %s Vault came back: %v", fault.name, err)
		}
	}
}

func TestVault_X5CChainVerifiesAgainstRootOnly(t *testing.T) {
	v := vaulttest.Start(t)
	cfg := x5cKeys(t, v)
	cfg.PropagationDelay = config.Duration(time.Minute)
	clk := testutil.NewRealClock()
	certTok := certifierToken(t, v)
	rep := certify(t, cfg, certTok, vault.CertifierDeps{Now: clk.Now})
	if !rep.RootCreated || len(rep.Leaves) != 1 || rep.Leaves[0].Action != "issued" {
		t.Fatalf("first pass: %+v", rep)
	}
	cfg.Auth = vault.AuthConfig{TokenFile: tokenFile(t, servingToken(t, v))}
	km := open(t, &cfg, signer.Deps{Now: clk.Now})
	roots := km.RootCertificates(context.Background())
	if len(roots) != 1 || !roots[0].Equal(rep.Root) {
		t.Fatalf("roots %v, want the certifier's", roots)
	}
	pool := x509.NewCertPool()
	pool.AddCert(roots[0])
	s := signer.New(signer.Options{Issuer: "t", Audiences: []string{"a"}}, km)
	verify := func() string {
		tok, err := s.Sign(context.Background(), signer.Claims{Audience: "a", JTI: "j", TTL: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		jws, err := jose.ParseSigned(tok.Raw, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		chains, err := jws.Signatures[0].Protected.Certificates(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}, CurrentTime: clk.Now()})
		if err != nil {
			t.Fatalf("x5c chain does not verify against the root: %v", err)
		}
		if _, err := jws.Verify(chains[0][0].PublicKey); err != nil {
			t.Fatal(err)
		}
		return tok.KeyID
	}
	first := verify()
	v.Rotate(t, "portcullis")
	if err := km.(refresher).Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Minute + time.Second) // version 2 is due, but has no leaf yet
	if again := verify(); again != first {
		t.Fatal("a version without a leaf certificate signed")
	}
	vs, _ := km.KeyVersions(context.Background())
	if len(vs) != 2 || vs[0].State != "active" || vs[1].State != "published" {
		t.Fatalf("while version 2 waits for its leaf: versions %+v, want 1 active and 2 published", vs)
	}
	rep = certify(t, cfg, certTok, vault.CertifierDeps{Now: clk.Now})
	if rep.RootCreated || len(rep.Leaves) != 2 || rep.Leaves[1].Action != "issued" {
		t.Fatalf("pass after rotation: %+v", rep)
	}
	if err := km.(refresher).Refresh(context.Background()); err != nil {
		t.Fatal(err)
	}
	if second := verify(); second == first {
		t.Fatal("the certified version did not take over")
	}
	jwks, _ := signer.New(signer.Options{}, km).JWKS(context.Background())
	var set jose.JSONWebKeySet
	_ = json.Unmarshal(jwks, &set)
	if len(set.Keys) != 2 || len(set.Keys[0].Certificates) != 1 || len(set.Keys[1].Certificates) != 1 {
		t.Fatalf("JWKS keys do not each carry their x5c certificate: %s", jwks)
	}
}

// The identity that serves tokens cannot certify: the shipped signer policy denies signing
// with the root key and writing the certificates, and the signer refuses to start with an
// identity that could. The certifier's policy does both, and cannot sign tokens.
func TestVault_X5CServingIdentityCannotSignWithRoot(t *testing.T) {
	v := vaulttest.Start(t)
	cfg := x5cKeys(t, v)
	serving, certifier := servingToken(t, v), certifierToken(t, v)
	digest := map[string]any{"input": base64.StdEncoding.EncodeToString(make([]byte, 32)), "prehashed": true, "hash_algorithm": "sha2-256"}
	kv := map[string]any{"data": map[string]any{"key": "portcullis", "root": "forged"}}
	call := func(token, verb, path string, body map[string]any) error {
		c := v.Client(t)
		c.SetToken(token)
		var err error
		if verb == "read" {
			_, err = c.Logical().Read(path)
		} else {
			_, err = c.Logical().Write(path, body)
		}
		return err
	}
	denied := func(err error) bool {
		var re *api.ResponseError
		return errors.As(err, &re) && re.StatusCode == http.StatusForbidden
	}
	for _, tc := range []struct {
		who, token, verb, path string
		body                   map[string]any
		allowed                bool
	}{
		{"signer", serving, "write", "transit/sign/portcullis-root", digest, false},
		{"signer", serving, "write", "secret/data/portcullis/x5c", kv, false},
		{"signer", serving, "write", "transit/keys/portcullis-root/rotate", nil, false},
		{"signer", serving, "write", "transit/sign/portcullis", digest, true},
		{"signer", serving, "read", "secret/data/portcullis/x5c", nil, true},
		{"certifier", certifier, "write", "transit/sign/portcullis", digest, false},
		{"certifier", certifier, "write", "transit/sign/portcullis-root", digest, true},
		{"certifier", certifier, "write", "secret/data/portcullis/x5c", kv, true},
	} {
		err := call(tc.token, tc.verb, tc.path, tc.body)
		switch {
		case tc.allowed && err != nil:
			t.Errorf("%s: %s %s: %v, want allowed", tc.who, tc.verb, tc.path, err)
		case !tc.allowed && !denied(err):
			t.Errorf("%s: %s %s: %v, want permission denied", tc.who, tc.verb, tc.path, err)
		}
	}
	if _, err := v.Client(t).Logical().Delete("secret/metadata/portcullis/x5c"); err != nil {
		t.Fatal(err)
	}

	// Nothing certified yet: the signer says what to run.
	withServing := cfg
	withServing.Auth = vault.AuthConfig{TokenFile: tokenFile(t, serving)}
	if _, err := withServing.Open(context.Background(), signer.Deps{}); err == nil || !strings.Contains(err.Error(), "portcullis keys certify") {
		t.Fatalf("x5c signer without certificates: %v, want an error naming `portcullis keys certify`", err)
	}
	certify(t, cfg, certifier, vault.CertifierDeps{})
	keymanagertest.Run(t, open(t, &withServing, signer.Deps{}))

	// An identity that may sign with the root is refused, even though everything else works.
	for name, tok := range map[string]string{
		"root token":          v.RootToken,
		"signer + root grant": v.TokenWithPolicy(t, "too-much", shippedPolicy(t, "portcullis.hcl")+`path "transit/sign/portcullis-root" { capabilities = ["update"] }`),
	} {
		c := cfg
		c.Auth = vault.AuthConfig{TokenFile: tokenFile(t, tok)}
		if _, err := c.Open(context.Background(), signer.Deps{}); err == nil || !strings.Contains(err.Error(), "portcullis-root") {
			t.Errorf("%s: x5c signer that may sign with the root: %v, want a refusal naming the root key", name, err)
		}
	}
	// The certifier refuses the signer's credentials.
	withServing.Auth.Method = "token"
	if _, err := withServing.OpenCertifier(context.Background(), vault.CertifierDeps{Auth: withServing.Auth}); err == nil || !strings.Contains(err.Error(), "own identity") {
		t.Fatalf("certifier with the signer's token file: %v", err)
	}
}

// The certifier compares Vault identities, not file names: a copy of the signer's token
// under another name (same accessor), and another token made with the signer's policies,
// are refused with the certifier's own hint; the certifier's own token is taken.
func TestVault_CertifierRefusesTheSignersVaultIdentity(t *testing.T) {
	v := vaulttest.Start(t)
	cfg := x5cKeys(t, v)
	serving := servingToken(t, v)
	cfg.Auth = vault.AuthConfig{TokenFile: tokenFile(t, serving)}
	for name, tok := range map[string]string{
		"a renamed copy of the signer's token":     serving,
		"another token with the signer's policies": v.TokenWithPolicy(t, "portcullis-signer", shippedPolicy(t, "portcullis.hcl")),
	} {
		_, err := cfg.OpenCertifier(context.Background(), vault.CertifierDeps{Auth: vault.AuthConfig{TokenFile: tokenFile(t, tok)}})
		if err == nil || !strings.Contains(err.Error(), "own identity") || !strings.Contains(err.Error(), "portcullis-certifier.hcl") {
			t.Errorf("certifier given %s: %v, want a refusal naming its own policy", name, err)
		}
	}
	certify(t, cfg, certifierToken(t, v), vault.CertifierDeps{})
}

// Leaves are short-lived and renewed at half their validity, before they expire, with no
// change to the root; a signer whose leaf is about to expire stops signing with it until a
// renewed one arrives. Time is injected: nothing sleeps.
func TestVault_X5CLeafShortLivedAndRenewedBeforeExpiry(t *testing.T) {
	v := vaulttest.Start(t)
	cfg := x5cKeys(t, v)
	validity, ttl := time.Hour, 5*time.Minute
	cfg.X5C.LeafValidity = config.Duration(validity)
	clk := testutil.NewRealClock()
	certTok := certifierToken(t, v)
	deps := vault.CertifierDeps{Now: clk.Now, TokenLifetime: ttl}
	rep := certify(t, cfg, certTok, deps)
	root, l1 := rep.Root, rep.Leaves[0].Certificate
	if d := l1.NotAfter.Sub(l1.NotBefore); d > validity+15*time.Minute {
		t.Fatalf("leaf valid for %s (%s to %s), want about x5c.leaf_validity %s", d, l1.NotBefore, l1.NotAfter, validity)
	}
	if l1.NotAfter.Sub(clk.Now()) > validity {
		t.Fatalf("leaf valid until %s, more than leaf_validity after now", l1.NotAfter)
	}

	serving := cfg
	serving.Auth = vault.AuthConfig{TokenFile: tokenFile(t, servingToken(t, v))}
	km := open(t, &serving, signer.Deps{Now: clk.Now, TokenLifetime: ttl})
	s := signer.New(signer.Options{Issuer: "t", Audiences: []string{"a"}, Now: clk.Now}, km)
	leafOf := func() (*x509.Certificate, error) {
		tok, err := s.Sign(context.Background(), signer.Claims{Audience: "a", JTI: "j", TTL: ttl})
		if err != nil {
			return nil, err
		}
		jws, err := jose.ParseSigned(tok.Raw, []jose.SignatureAlgorithm{jose.ES256})
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AddCert(root)
		chains, err := jws.Signatures[0].Protected.Certificates(x509.VerifyOptions{Roots: pool, CurrentTime: clk.Now().Add(ttl),
			KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			t.Fatalf("the token's chain does not verify until the token expires: %v", err)
		}
		return chains[0][0], nil
	}
	refresh := func() {
		if err := km.(refresher).Refresh(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	if l, err := leafOf(); err != nil || !l.Equal(l1) {
		t.Fatalf("token leaf %v (%v), want the certified one", l, err)
	}

	clk.Add(validity/2 - time.Minute) // more than half left: kept
	if rep := certify(t, cfg, certTok, deps); rep.Written || rep.Leaves[0].Action != "kept" {
		t.Fatalf("pass with more than half the validity left: %+v", rep)
	}
	clk.Add(2 * time.Minute) // less than half left: renewed, well before expiry
	rep = certify(t, cfg, certTok, deps)
	l2 := rep.Leaves[0].Certificate
	if !rep.Written || rep.Leaves[0].Action != "renewed" || rep.RootCreated || !l2.NotAfter.After(l1.NotAfter) || !clk.Now().Before(l1.NotAfter) {
		t.Fatalf("renewal pass: %+v (old leaf until %s, now %s)", rep, l1.NotAfter, clk.Now())
	}
	refresh()
	if l, err := leafOf(); err != nil || !l.Equal(l2) {
		t.Fatalf("after renewal the token carries %v (%v), want the renewed leaf", l, err)
	}

	// No certifier for a long while: once the leaf would expire before a token does, the
	// signer stops signing and says why.
	clk.Add(l2.NotAfter.Sub(clk.Now()) - ttl - 2*time.Minute) // it must outlive ttl + 60s leeway
	if _, err := leafOf(); err != nil {
		t.Fatalf("leaf still outlives a token: %v", err)
	}
	clk.Add(2 * time.Minute)
	if _, err := leafOf(); err == nil || !strings.Contains(err.Error(), "unavailable") {
		t.Fatalf("signed with a leaf that expires before the token: %v", err)
	}
	if err := km.Healthy(context.Background()); err == nil || !strings.Contains(err.Error(), "certify") {
		t.Fatalf("health with no usable leaf: %v", err)
	}
	certify(t, cfg, certTok, deps)
	refresh()
	if _, err := leafOf(); err != nil {
		t.Fatalf("after the certifier came back: %v", err)
	}
}

// A lost certificate secret is rebuilt with an equivalent root: registries configured with
// the first root accept leaves under the second.
func TestVault_X5CRootIsDeterministic(t *testing.T) {
	v := vaulttest.Start(t)
	cfg := x5cKeys(t, v)
	certTok := certifierToken(t, v)
	first := certify(t, cfg, certTok, vault.CertifierDeps{}).Root
	if again := certify(t, cfg, certTok, vault.CertifierDeps{}); again.RootCreated || !again.Root.Equal(first) || again.Written {
		t.Fatalf("second pass: %+v, want the stored root kept and nothing written", again)
	}
	if _, err := v.Client(t).Logical().Delete("secret/metadata/portcullis/x5c"); err != nil {
		t.Fatal(err)
	}
	rep := certify(t, cfg, certTok, vault.CertifierDeps{})
	if !rep.RootCreated {
		t.Fatal("no root made after the secret was lost")
	}
	pool := x509.NewCertPool()
	pool.AddCert(first)
	if _, err := rep.Leaves[0].Certificate.Verify(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}}); err != nil {
		t.Fatalf("a leaf under the rebuilt root does not verify against the first root: %v", err)
	}
}

// Tokens take transit's JWS signature as is; crypto.Signer callers still get ASN.1.
func TestVault_JWSSignatureWithoutASN1RoundTrip(t *testing.T) {
	v := vaulttest.Start(t)
	v.CreateKey(t, "jws", "ecdsa-p256")
	km := open(t, &vault.Config{Address: v.Addr, Key: "jws", Auth: vault.AuthConfig{TokenFile: tokenFile(t, v.RootToken)}}, signer.Deps{})
	k, err := km.SigningKey(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	pub := k.Public().(*ecdsa.PublicKey)
	digest := sha256.Sum256([]byte("payload"))
	raw, err := k.SignJWS(context.Background(), digest[:], crypto.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	if len(raw) != 64 || !ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(raw[:32]), new(big.Int).SetBytes(raw[32:])) {
		t.Fatalf("SignJWS gave %d bytes that are not a valid r‖s", len(raw))
	}
	der, err := k.Sign(nil, digest[:], crypto.SHA256)
	if err != nil || !ecdsa.VerifyASN1(pub, digest[:], der) {
		t.Fatalf("crypto.Signer signature is not valid ASN.1 ECDSA: %v", err)
	}
}

func TestVault_AppRoleLogin(t *testing.T) {
	v := vaulttest.Start(t)
	v.CreateKey(t, "portcullis", "ecdsa-p256")
	c := v.Client(t)
	if err := c.Sys().EnableAuthWithOptions("approle", &api.EnableAuthOptions{Type: "approle"}); err != nil {
		t.Fatal(err)
	}
	pol, _ := os.ReadFile("../../../../deploy/vault/portcullis.hcl")
	if err := c.Sys().PutPolicy("portcullis-signer", string(pol)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("auth/approle/role/signer", map[string]any{"token_policies": "portcullis-signer", "token_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	rid, err := c.Logical().Read("auth/approle/role/signer/role-id")
	if err != nil {
		t.Fatal(err)
	}
	sid, err := c.Logical().Write("auth/approle/role/signer/secret-id", nil)
	if err != nil {
		t.Fatal(err)
	}
	km := open(t, &vault.Config{Address: v.Addr, Key: "portcullis", Auth: vault.AuthConfig{Method: "approle",
		RoleID: rid.Data["role_id"].(string), SecretIDFile: tokenFile(t, sid.Data["secret_id"].(string))}}, signer.Deps{})
	keymanagertest.Run(t, km)
}

func TestVault_TLSWithCABundle(t *testing.T) {
	v := vaulttest.StartTLS(t)
	v.CreateKey(t, "tls", "ecdsa-p256")
	cfg := vault.Config{Address: v.Addr, Key: "tls", Auth: vault.AuthConfig{TokenFile: tokenFile(t, v.RootToken)}}
	t.Setenv("VAULT_CACERT", "") // the machine's settings must not make this pass
	if _, err := cfg.Open(context.Background(), signer.Deps{}); err == nil || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("Vault's certificate was accepted without its CA: %v", err)
	}
	cfg.TLS.CAFile = v.CAFile
	keymanagertest.Run(t, open(t, &cfg, signer.Deps{}))
}

// A short-lived renewable token keeps working past its first TTL: the signer renews it.
func TestVault_RenewsItsToken(t *testing.T) {
	v := vaulttest.Start(t)
	v.CreateKey(t, "ren", "ecdsa-p256")
	sec, err := v.Client(t).Auth().Token().Create(&api.TokenCreateRequest{TTL: "3s", ExplicitMaxTTL: "5m", Renewable: boolPtr(true)})
	if err != nil {
		t.Fatal(err)
	}
	km := open(t, &vault.Config{Address: v.Addr, Key: "ren", Auth: vault.AuthConfig{TokenFile: tokenFile(t, sec.Auth.ClientToken)}}, signer.Deps{})
	s := signer.New(signer.Options{Issuer: "t", Audiences: []string{"a"}}, km)
	time.Sleep(6 * time.Second) // two TTLs: without renewal the token is gone
	if _, err := s.Sign(context.Background(), signer.Claims{Audience: "a", JTI: "j", TTL: time.Minute}); err != nil {
		t.Fatalf("signing after the token's first TTL: %v", err)
	}
}

func boolPtr(b bool) *bool { return &b }

// Kubernetes login against the real Vault. Vault's kubernetes auth verifies the service
// account token by calling the cluster's TokenReview API; no cluster runs here, so a small
// TokenReview endpoint answers for it. Vault and Portcullis's login code are real.
func TestVault_KubernetesLogin(t *testing.T) {
	v := vaulttest.Start(t)
	v.CreateKey(t, "portcullis", "ecdsa-p256")
	claims := map[string]any{
		"iss": "kubernetes/serviceaccount", "sub": "system:serviceaccount:registry:portcullis",
		"kubernetes.io/serviceaccount/namespace":            "registry",
		"kubernetes.io/serviceaccount/service-account.name": "portcullis",
		"kubernetes.io/serviceaccount/service-account.uid":  "uid-1",
	}
	payload, _ := json.Marshal(claims)
	sa := "eyJhbGciOiJSUzI1NiJ9." + base64.RawURLEncoding.EncodeToString(payload) + ".c2ln"
	var reviews atomic.Int32
	k8s := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tr struct {
			Spec struct{ Token string } `json:"spec"`
		}
		_ = json.NewDecoder(r.Body).Decode(&tr)
		reviews.Add(1)
		ok := r.URL.Path == "/apis/authentication.k8s.io/v1/tokenreviews" && tr.Spec.Token == sa
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
			"status": map[string]any{"authenticated": ok, "user": map[string]any{"username": "system:serviceaccount:registry:portcullis", "uid": "uid-1"}}})
	}))
	t.Cleanup(k8s.Close)
	c := v.Client(t)
	if err := c.Sys().EnableAuthWithOptions("kubernetes", &api.EnableAuthOptions{Type: "kubernetes"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("auth/kubernetes/config", map[string]any{"kubernetes_host": k8s.URL, "disable_local_ca_jwt": true,
		"kubernetes_ca_cert": string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: k8s.Certificate().Raw}))}); err != nil {
		t.Fatal(err)
	}
	pol, _ := os.ReadFile("../../../../deploy/vault/portcullis.hcl")
	if err := c.Sys().PutPolicy("portcullis-signer", string(pol)); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Logical().Write("auth/kubernetes/role/signer", map[string]any{"bound_service_account_names": "portcullis",
		"bound_service_account_namespaces": "registry", "token_policies": "portcullis-signer", "token_ttl": "1h"}); err != nil {
		t.Fatal(err)
	}
	km := open(t, &vault.Config{Address: v.Addr, Key: "portcullis", Auth: vault.AuthConfig{Method: "kubernetes", Role: "signer",
		ServiceAccountTokenFile: tokenFile(t, sa)}}, signer.Deps{})
	keymanagertest.Run(t, km)
	if reviews.Load() == 0 {
		t.Fatal("Vault never reviewed the service account token")
	}
	// A token the cluster does not vouch for is refused at startup.
	_, err := (&vault.Config{Address: v.Addr, Key: "portcullis", Auth: vault.AuthConfig{Method: "kubernetes", Role: "signer",
		ServiceAccountTokenFile: tokenFile(t, sa+"x")}}).Open(context.Background(), signer.Deps{})
	if err == nil || !strings.Contains(err.Error(), "kubernetes login") {
		t.Fatalf("unvouched service account accepted: %v", err)
	}
}

// deploy/vault/bootstrap.sh prepares a Vault whose tokens and AppRoles Portcullis can use:
// the certifier's certify, the signer's sign, and the signer's cannot certify. Rotation
// through Portcullis is opt-in (PORTCULLIS_VAULT_ROTATE=1) and one model: the signer's token
// and AppRole can both rotate, or neither can, and the refusal names portcullis-rotate.hcl.
func TestVault_BootstrapScript(t *testing.T) {
	v := vaulttest.Start(t)
	out := t.TempDir()
	bootstrap := func(rotate string) {
		t.Helper()
		cmd := exec.Command("bash", "../../../../deploy/vault/bootstrap.sh", out)
		cmd.Env = append(os.Environ(), "VAULT_ADDR="+v.Addr, "VAULT_TOKEN="+v.RootToken, "PORTCULLIS_VAULT_ROTATE="+rotate,
			"PATH="+filepath.Dir(vaulttest.Binary(t))+":"+os.Getenv("PATH"))
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("bootstrap.sh (PORTCULLIS_VAULT_ROTATE=%q): %v\n%s", rotate, err, b)
		}
	}
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(out, name))
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(string(b))
	}
	base := vault.Config{Address: v.Addr, Key: "portcullis", X5C: &vault.X5CConfig{RootKey: "portcullis-root"}}
	// The signer logs in with a token or with the AppRole of the README's example.
	identities := func() map[string]vault.AuthConfig {
		return map[string]vault.AuthConfig{
			"token":   {TokenFile: filepath.Join(out, "signer-token")},
			"AppRole": {Method: "approle", RoleID: read("role-id"), SecretIDFile: filepath.Join(out, "secret-id")},
		}
	}
	for run, rotate := range []string{"", "", "1"} { // a second run finds everything in place
		bootstrap(rotate)
		if run == 0 {
			certifierRole := vault.CertifierDeps{Auth: vault.AuthConfig{Method: "approle", RoleID: read("certifier-role-id"), SecretIDFile: filepath.Join(out, "certifier-secret-id")}}
			ce, err := base.OpenCertifier(context.Background(), certifierRole)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := ce.Certify(context.Background()); err != nil {
				t.Fatalf("the bootstrap certifier AppRole cannot certify: %v", err)
			}
			ce.Close(context.Background())
			certify(t, base, read("certifier-token"), vault.CertifierDeps{})
		}
		for name, auth := range identities() {
			c := base
			c.Auth = auth
			km := open(t, &c, signer.Deps{})
			keymanagertest.Run(t, km)
			err := km.Rotate(context.Background())
			switch {
			case rotate == "" && err == nil:
				t.Fatalf("run %d without PORTCULLIS_VAULT_ROTATE: the signer's %s rotated the key", run+1, name)
			case rotate == "" && !strings.Contains(err.Error(), "deploy/vault/portcullis-rotate.hcl"):
				t.Fatalf("run %d: the signer's %s refused rotation: %v; want the hint to name deploy/vault/portcullis-rotate.hcl", run+1, name, err)
			case rotate != "" && err != nil:
				t.Fatalf("with PORTCULLIS_VAULT_ROTATE=1 the signer's %s cannot rotate: %v", name, err)
			}
		}
	}
	c := v.Client(t)
	c.SetToken(read("signer-token"))
	_, err := c.Logical().Write("transit/sign/portcullis-root", map[string]any{"input": base64.StdEncoding.EncodeToString(make([]byte, 32)), "prehashed": true})
	var re *api.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusForbidden {
		t.Fatalf("the bootstrap signer token signing with the root key: %v, want permission denied", err)
	}
}

func TestVault_TokenFromEnvironment(t *testing.T) {
	v := vaulttest.Start(t)
	v.CreateKey(t, "env", "ecdsa-p256")
	t.Setenv("VAULT_TOKEN", v.RootToken)
	t.Setenv("VAULT_ADDR", v.Addr)
	keymanagertest.Run(t, open(t, &vault.Config{Key: "env"}, signer.Deps{}))
	t.Setenv("VAULT_TOKEN", "")
	if _, err := (&vault.Config{Key: "env"}).Open(context.Background(), signer.Deps{}); err == nil || !strings.Contains(err.Error(), "VAULT_TOKEN") {
		t.Fatalf("no token anywhere: %v, want an error naming token_file and VAULT_TOKEN", err)
	}
}

// A hung Vault (frozen, connections accepted, no answers) must not hang token requests:
// every concurrent signer fails within the request timeout, queued ones included.
func TestVault_HungVaultFailsFast(t *testing.T) {
	v := vaulttest.Start(t)
	v.CreateKey(t, "hung", "ecdsa-p256")
	km := open(t, &vault.Config{Address: v.Addr, Key: "hung", RequestTimeout: config.Duration(500 * time.Millisecond),
		Batch: vault.BatchConfig{Concurrency: 1}, Auth: vault.AuthConfig{TokenFile: tokenFile(t, v.RootToken)}}, signer.Deps{})
	s := signer.New(signer.Options{Issuer: "t", Audiences: []string{"a"}}, km)
	sign := func() (time.Duration, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		start := time.Now()
		_, err := s.Sign(ctx, signer.Claims{Audience: "a", JTI: "j", TTL: time.Minute})
		return time.Since(start), err
	}
	v.Pause(t)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var slowest time.Duration
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := sign()
			mu.Lock()
			defer mu.Unlock()
			slowest = max(slowest, d)
			if err == nil {
				t.Error("a frozen Vault signed")
			}
		}()
	}
	wg.Wait()
	v.Resume(t)
	t.Logf("slowest failure with Vault frozen: %s (request_timeout 500ms)", slowest)
	if slowest > 3*time.Second { // a hang guard, not a latency target
		t.Fatalf("a request waited %s on a frozen Vault", slowest)
	}
	testutil.WaitFor(t, 30*time.Second, 100*time.Millisecond, "recovery after Vault resumed", func() error {
		_, err := sign()
		return err
	})
}

// Every replica reads the same certificates: a registry that trusts the root accepts
// tokens from any replica.
func TestVault_X5CReplicasShareTheRoot(t *testing.T) {
	v := vaulttest.Start(t)
	cfg := x5cKeys(t, v)
	certify(t, cfg, certifierToken(t, v), vault.CertifierDeps{})
	cfg.Auth = vault.AuthConfig{TokenFile: tokenFile(t, servingToken(t, v))}
	a, b := open(t, &cfg, signer.Deps{}), open(t, &cfg, signer.Deps{})
	rootOfA := a.RootCertificates(context.Background())[0]
	pool := x509.NewCertPool()
	pool.AddCert(rootOfA)
	tok, err := signer.New(signer.Options{Issuer: "t", Audiences: []string{"a"}}, b).Sign(context.Background(), signer.Claims{Audience: "a", JTI: "j", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(tok.Raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	chains, err := jws.Signatures[0].Protected.Certificates(x509.VerifyOptions{Roots: pool, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if err != nil {
		t.Fatalf("replica B's x5c does not verify against replica A's root: %v", err)
	}
	if _, err := jws.Verify(chains[0][0].PublicKey); err != nil {
		t.Fatal(err)
	}
}

// Readiness follows Vault, and comes back without any token traffic: while failing, the
// signer probes Vault every second.
func TestVault_HealthFollowsVaultWithoutTraffic(t *testing.T) {
	v := vaulttest.Start(t)
	v.CreateKey(t, "h", "ecdsa-p256")
	km := open(t, &vault.Config{Address: v.Addr, Key: "h", PropagationDelay: config.Duration(time.Hour),
		Auth: vault.AuthConfig{TokenFile: tokenFile(t, v.RootToken)}}, signer.Deps{})
	hc := km
	if err := hc.Healthy(context.Background()); err != nil {
		t.Fatalf("healthy after start: %v", err)
	}
	v.Seal(t)
	if err := km.(interface{ Refresh(context.Context) error }).Refresh(context.Background()); err == nil {
		t.Fatal("refresh succeeded against a sealed Vault")
	}
	if hc.Healthy(context.Background()) == nil {
		t.Fatal("healthy while Vault is sealed")
	}
	v.Unseal(t)
	// The refresh interval is 1m: only the probe can make it healthy within 15s.
	testutil.WaitFor(t, 15*time.Second, 100*time.Millisecond, "healthy after Vault was unsealed, with no traffic", func() error {
		return hc.Healthy(context.Background())
	})
}

// With tracing, a sign goes to Vault inside the caller's trace: the HTTP client span of the
// transit call is a child of the span the signing request carried, batched or not.
func TestVault_TracedSignJoinsTheCallersTrace(t *testing.T) {
	v := vaulttest.Start(t)
	v.CreateKey(t, "tr", "ecdsa-p256")
	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	wrap := func(rt http.RoundTripper) http.RoundTripper {
		return otelhttp.NewTransport(rt, otelhttp.WithTracerProvider(tp))
	}
	km := open(t, &vault.Config{Address: v.Addr, Key: "tr", Auth: vault.AuthConfig{TokenFile: tokenFile(t, v.RootToken)}}, signer.Deps{WrapHTTP: wrap})
	s := signer.New(signer.Options{Issuer: "t", Audiences: []string{"a"}}, km)
	exp.Reset() // startup calls
	ctx, parent := tp.Tracer("test").Start(context.Background(), "token request")
	if _, err := s.Sign(ctx, signer.Claims{Audience: "a", JTI: "j", TTL: time.Minute}); err != nil {
		t.Fatal(err)
	}
	parent.End()
	var vaultSpans int
	for _, sp := range exp.GetSpans() {
		if sp.SpanKind != oteltrace.SpanKindClient {
			continue
		}
		vaultSpans++
		if sp.Parent.SpanID() != parent.SpanContext().SpanID() || sp.SpanContext.TraceID() != parent.SpanContext().TraceID() {
			t.Errorf("Vault span %q is not under the request's span (parent %s)", sp.Name, sp.Parent.SpanID())
		}
	}
	if vaultSpans == 0 {
		t.Fatalf("no Vault client span; spans: %v", exp.GetSpans())
	}
}
