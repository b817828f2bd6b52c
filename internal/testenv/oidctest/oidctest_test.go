package oidctest_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
)

func get(t *testing.T, url string, out any) error {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	return json.NewDecoder(resp.Body).Decode(out)
}

// The tokens verify against the published keys, and the discovery document points at them.
func TestIssuerPublishesWhatItSignsWith(t *testing.T) {
	t.Parallel()
	iss := oidctest.Start(t)
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := get(t, iss.URL+"/.well-known/openid-configuration", &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Issuer != iss.URL || doc.JWKSURI != iss.JWKSURL {
		t.Fatalf("discovery = %+v", doc)
	}
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.ES384, jose.EdDSA} {
		if _, err := iss.Rotate(alg, false); err != nil {
			t.Fatal(err)
		}
		tok := iss.MustSign(t, iss.Claims("aud", time.Now(), time.Minute))
		var set jose.JSONWebKeySet
		if err := get(t, iss.JWKSURL, &set); err != nil {
			t.Fatal(err)
		}
		jws, err := jose.ParseSignedCompact(tok, []jose.SignatureAlgorithm{alg})
		if err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
		keys := set.Key(jws.Signatures[0].Header.KeyID)
		if len(set.Keys) != 1 || len(keys) != 1 {
			t.Fatalf("%s: published %d keys, %d with the token's kid", alg, len(set.Keys), len(keys))
		}
		if _, err := jws.Verify(&keys[0]); err != nil {
			t.Fatalf("%s: %v", alg, err)
		}
	}
}

func TestForgedTokensHaveTheirShape(t *testing.T) {
	t.Parallel()
	iss := oidctest.Start(t)
	claims := iss.Claims("aud", time.Now(), time.Minute)
	none, err := iss.Unsigned(claims)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(none, ".") || strings.Count(none, ".") != 2 {
		t.Fatalf("unsigned token %q", none)
	}
	hs, err := iss.HS256WithPublicKey(claims)
	if err != nil {
		t.Fatal(err)
	}
	pemBytes, err := iss.PublicKeyPEM()
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSignedCompact(hs, []jose.SignatureAlgorithm{jose.HS256})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := jws.Verify(pemBytes); err != nil {
		t.Fatalf("HS256 token does not verify with the public key PEM as secret: %v", err)
	}
}

func TestDownDropsConnections(t *testing.T) {
	t.Parallel()
	iss := oidctest.Start(t)
	iss.SetDown(true)
	if resp, err := http.Get(iss.JWKSURL); err == nil {
		resp.Body.Close()
		t.Fatalf("issuer down answered %s", resp.Status)
	}
	iss.SetDown(false)
	var set jose.JSONWebKeySet
	if err := get(t, iss.JWKSURL, &set); err != nil {
		t.Fatal(err)
	}
	if got := iss.JWKSRequests(); got != 2 {
		t.Fatalf("JWKSRequests = %d, want 2", got)
	}
}
