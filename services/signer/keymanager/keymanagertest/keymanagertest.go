// Package keymanagertest is the conformance suite every key manager runs.
package keymanagertest

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/services/signer"
)

// Run checks what the signer relies on: the signing key is published, its algorithm fits
// its public key, tokens it signs verify against the JWKS (also many at once), it is a
// proper crypto.Signer (certificates can be made with it), and the key manager's other
// abilities agree with it (a version list, where there is one, shows it active; x5c roots
// come with a chain on the key; verifiers may cache the JWKS for some time).
func Run(t *testing.T, km signer.KeyManager) {
	t.Helper()
	ctx := context.Background()
	k, err := km.SigningKey(ctx)
	if err != nil {
		t.Fatalf("SigningKey: %v", err)
	}
	t.Run("algorithm fits the key", func(t *testing.T) {
		alg, err := signer.AlgorithmFor(k.Public())
		if err != nil || alg != k.Algorithm() || k.ID() == "" {
			t.Fatalf("alg %s (from key: %s, %v), id %q", k.Algorithm(), alg, err, k.ID())
		}
	})
	t.Run("signing key is published, ids unique", func(t *testing.T) {
		pubs, err := km.PublicKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		seen, found := map[string]bool{}, false
		for _, p := range pubs {
			if seen[p.ID] {
				t.Fatalf("kid %s published twice", p.ID)
			}
			seen[p.ID] = true
			if p.ID == k.ID() {
				found = true
				if !equalKeys(p.Key, k.Public()) {
					t.Fatal("published key differs from the signing key")
				}
			}
		}
		if !found {
			t.Fatalf("signing key %s is not published", k.ID())
		}
	})
	t.Run("abilities agree with the signing key", func(t *testing.T) {
		if ma := km.JWKSMaxAge(ctx); ma <= 0 {
			t.Fatalf("JWKSMaxAge = %v, want a positive duration", ma)
		}
		if roots := km.RootCertificates(ctx); len(roots) > 0 && len(k.Chain()) == 0 {
			t.Fatal("RootCertificates names x5c roots but the signing key carries no chain")
		}
		// Asked between two SigningKey calls, so a rotation taking effect meanwhile is no failure.
		before, _ := km.SigningKey(ctx)
		vs, err := km.KeyVersions(ctx)
		after, _ := km.SigningKey(ctx)
		switch {
		case errors.Is(err, signer.ErrUnsupported):
			return // a key that does not rotate: the admin API shows it as version 1
		case err != nil:
			t.Fatalf("KeyVersions: %v", err)
		}
		for _, v := range vs {
			if v.State == "active" && ((before != nil && v.ID == before.ID()) || (after != nil && v.ID == after.ID())) {
				return
			}
		}
		t.Fatalf("KeyVersions %+v shows no active version for the signing key", vs)
	})
	s := signer.New(signer.Options{Issuer: "keymanagertest", Audiences: []string{"a"}, MaxTTL: time.Hour}, km)
	jwks, err := s.JWKS(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatal(err)
	}
	verify := func(i int) error {
		tok, err := s.Sign(ctx, signer.Claims{Subject: "u", Audience: "a", TTL: time.Minute, JTI: fmt.Sprint(i)})
		if err != nil {
			return err
		}
		jws, err := jose.ParseSigned(tok.Raw, []jose.SignatureAlgorithm{k.Algorithm()})
		if err != nil {
			return err
		}
		keys := set.Key(jws.Signatures[0].Header.KeyID)
		if len(keys) != 1 {
			return fmt.Errorf("kid %q not in JWKS", jws.Signatures[0].Header.KeyID)
		}
		_, err = jws.Verify(keys[0].Key)
		return err
	}
	t.Run("token verifies against the JWKS", func(t *testing.T) {
		if err := verify(0); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("concurrent tokens all verify", func(t *testing.T) {
		var wg sync.WaitGroup
		errs := make(chan error, 64)
		for i := 0; i < 64; i++ {
			wg.Add(1)
			go func() { defer wg.Done(); errs <- verify(i) }()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
	})
	t.Run("is a crypto.Signer for certificates", func(t *testing.T) {
		p, err := signer.SelfSignedCertificatePEM(k, "keymanagertest", time.Now(), time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := pem.Decode(p)
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.CheckSignatureFrom(c); err != nil {
			t.Fatal(err)
		}
	})
}

func equalKeys(a, b crypto.PublicKey) bool {
	ea, ok := a.(interface{ Equal(x crypto.PublicKey) bool })
	return ok && ea.Equal(b)
}
