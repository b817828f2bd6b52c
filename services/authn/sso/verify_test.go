package sso_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
)

// withEndpoints adds the authorization and token endpoints oidctest's discovery document
// lacks (it is a workload issuer); everything else goes to the issuer as it is.
// token, when set, answers the token endpoint.
type withEndpoints struct {
	iss   *oidctest.Issuer
	token http.HandlerFunc
}

func (w withEndpoints) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.URL.Path == "/token" && w.token != nil {
		rec := httptest.NewRecorder()
		w.token(rec, req)
		return rec.Result(), nil
	}
	res, err := http.DefaultTransport.RoundTrip(req)
	if err != nil || req.URL.Path != "/.well-known/openid-configuration" || res.StatusCode != http.StatusOK {
		return res, err
	}
	defer res.Body.Close()
	var doc map[string]any
	if err := json.NewDecoder(res.Body).Decode(&doc); err != nil {
		return nil, err
	}
	doc["authorization_endpoint"] = w.iss.URL + "/authorize"
	doc["token_endpoint"] = w.iss.URL + "/token"
	b, _ := json.Marshal(doc)
	res.Body = io.NopCloser(bytes.NewReader(b))
	res.ContentLength = int64(len(b))
	res.Header.Del("Content-Length")
	return res, nil
}

func openAt(t *testing.T, iss *oidctest.Issuer, clk *testutil.Clock) *sso.Provider {
	t.Helper()
	return openAtF(t, iss, clk)
}

// openAtF opens a provider for iss's tokens (client portcullis) at clk's time.
func openAtF(t testing.TB, iss *oidctest.Issuer, clk *testutil.Clock) *sso.Provider {
	t.Helper()
	return openWithToken(t, iss, clk, nil)
}

// openWithToken is openAtF with token answering the token endpoint.
func openWithToken(t testing.TB, iss *oidctest.Issuer, clk *testutil.Clock, token http.HandlerFunc) *sso.Provider {
	t.Helper()
	dir := t.TempDir()
	key := make([]byte, sso.KeySize)
	_, _ = rand.Read(key)
	for name, b := range map[string][]byte{"key": key, "secret": []byte("s3cret")} {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	p, err := sso.New(sso.Config{
		Issuer: iss.URL, ClientID: "portcullis", ClientSecretFile: filepath.Join(dir, "secret"),
		Subject: "preferred_username", EncryptionKeyFile: filepath.Join(dir, "key"),
	}, sso.Options{RedirectURL: "https://portcullis.example.com/sso/callback", Now: clk.Now,
		HTTPClient: &http.Client{Transport: withEndpoints{iss, token}, Timeout: 10 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func idClaims(iss *oidctest.Issuer, now time.Time, more map[string]any) map[string]any {
	c := iss.Claims("portcullis", now, 5*time.Minute)
	c["sub"], c["preferred_username"], c["nonce"], c["sid"] = "idp-alice", "alice", "n0nce", "sid-1"
	for k, v := range more {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func TestVerifyIDToken(t *testing.T) {
	t.Parallel()
	iss := oidctest.Start(t)
	clk := testutil.NewClock(time.Now())
	p := openAt(t, iss, clk)
	now := clk.Now()
	sign := func(more map[string]any) string { return iss.MustSign(t, idClaims(iss, now, more)) }
	unsigned, err := iss.Unsigned(idClaims(iss, now, nil))
	if err != nil {
		t.Fatal(err)
	}
	confused, err := iss.HS256WithPublicKey(idClaims(iss, now, nil))
	if err != nil {
		t.Fatal(err)
	}
	const badAlg = "malformed, or signed with an algorithm the IdP does not list"
	cases := []struct {
		name, raw, nonce, reason string
	}{
		{"valid", sign(nil), "n0nce", ""},
		{"valid, several audiences with our azp", sign(map[string]any{"aud": []string{"portcullis", "api"}, "azp": "portcullis"}), "n0nce", ""},
		{"refresh: no nonce asked", sign(map[string]any{"nonce": nil}), "", ""},
		{"alg none", unsigned, "n0nce", badAlg},
		{"HS256 with the public key", confused, "n0nce", badAlg},
		{"other issuer", sign(map[string]any{"iss": "https://evil.example.com"}), "n0nce", "iss is not the issuer"},
		{"other audience", sign(map[string]any{"aud": "api"}), "n0nce", "aud is not our client"},
		{"several audiences, no azp", sign(map[string]any{"aud": []string{"portcullis", "api"}}), "n0nce", "several audiences and no azp"},
		{"azp another client", sign(map[string]any{"azp": "api"}), "n0nce", "azp is another client"},
		{"no nonce", sign(map[string]any{"nonce": nil}), "n0nce", "nonce mismatch"},
		{"wrong nonce", sign(nil), "other", "nonce mismatch"},
		{"expired", sign(map[string]any{"exp": now.Add(-time.Second).Unix()}), "n0nce", "expired"},
		{"no exp", sign(map[string]any{"exp": nil}), "n0nce", "no exp"},
		{"no iat", sign(map[string]any{"iat": nil}), "n0nce", "no iat"},
		{"iat in the future beyond the skew", sign(map[string]any{"iat": now.Add(2 * time.Minute).Unix()}), "n0nce", "issued in the future (iat)"},
		{"iat within the skew", sign(map[string]any{"iat": now.Add(30 * time.Second).Unix()}), "n0nce", ""},
		{"iat too old", sign(map[string]any{"iat": now.Add(-time.Hour).Unix()}), "n0nce", "issued too long ago (iat)"},
		{"no sub", sign(map[string]any{"sub": nil}), "n0nce", "no sub"},
		{"unknown kid", func() string {
			s, _ := iss.SignWithKID(idClaims(iss, now, nil), "made-up")
			return s
		}(), "n0nce", "unknown signing key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := p.VerifyIDToken(context.Background(), tc.raw, tc.nonce)
			if tc.reason == "" {
				if err != nil || id.Identity.Subject != "alice" || id.Subject != "idp-alice" || id.SessionID != "sid-1" {
					t.Fatalf("%+v, %v", id, err)
				}
				return
			}
			var te *sso.TokenError
			if !errors.As(err, &te) || te.Reason != tc.reason || !errors.Is(err, sso.ErrInvalidToken) {
				t.Fatalf("%v, want %q", err, tc.reason)
			}
		})
	}
}

// TestKeysCachedAndRefreshedBounded: keys are fetched once and cached; a token naming an
// unknown kid refetches them at most once per 10s however many arrive; a rotated key is found
// by that refetch; an unreachable IdP leaves the cached keys working.
func TestKeysCachedAndRefreshedBounded(t *testing.T) {
	t.Parallel()
	iss := oidctest.Start(t)
	clk := testutil.NewClock(time.Now())
	p := openAt(t, iss, clk)
	ctx := context.Background()
	verify := func(raw string) error { _, err := p.VerifyIDToken(ctx, raw, ""); return err }
	token := func() string { return iss.MustSign(t, idClaims(iss, clk.Now(), nil)) }
	unknown := func() string {
		s, err := iss.SignWithKID(idClaims(iss, clk.Now(), nil), "made-up")
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if err := verify(token()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if err := verify(token()); err != nil {
			t.Fatal(err)
		}
	}
	if n := iss.JWKSRequests(); n != 1 {
		t.Fatalf("%d key set requests for 4 tokens, want 1", n)
	}
	for range 5 {
		if err := verify(unknown()); !errors.Is(err, sso.ErrInvalidToken) {
			t.Fatalf("unknown kid: %v", err)
		}
	}
	if n := iss.JWKSRequests(); n != 1 {
		t.Fatalf("%d key set requests after unknown kids within 10s of a fetch, want 1", n)
	}
	clk.Add(11 * time.Second)
	for range 5 {
		_ = verify(unknown())
	}
	if n := iss.JWKSRequests(); n != 2 {
		t.Fatalf("%d key set requests after a burst of unknown kids, want 2", n)
	}
	clk.Add(11 * time.Second)
	if _, err := iss.Rotate("RS256", true); err != nil {
		t.Fatal(err)
	}
	if err := verify(token()); err != nil {
		t.Fatalf("a rotated key: %v", err)
	}
	if n := iss.JWKSRequests(); n != 3 {
		t.Fatalf("%d key set requests after a rotation, want 3", n)
	}
	iss.SetDown(true)
	clk.Add(20 * time.Minute) // cached keys now stale: the refetch fails, they still serve
	if err := verify(token()); err != nil {
		t.Fatalf("IdP down, cached key: %v", err)
	}
	clk.Add(11 * time.Second)
	if err := verify(unknown()); !errors.Is(err, sso.ErrUnavailable) {
		t.Fatalf("IdP down, unknown kid: %v, want ErrUnavailable", err)
	}

	// An algorithm the IdP starts listing is followed once discovery is re-read (hourly).
	iss.SetDown(false)
	if _, err := iss.Rotate("ES256", true); err != nil {
		t.Fatal(err)
	}
	clk.Add(time.Hour)
	if err := verify(token()); err != nil {
		t.Fatalf("an ES256 key the IdP now lists: %v", err)
	}
}

func TestVerifyLogoutToken(t *testing.T) {
	t.Parallel()
	iss := oidctest.Start(t)
	clk := testutil.NewClock(time.Now())
	p := openAt(t, iss, clk)
	now := clk.Now()
	jti := 0
	sign := func(more map[string]any) string {
		jti++
		c := iss.Claims("portcullis", now, 2*time.Minute)
		c["sub"], c["sid"], c["jti"] = "idp-alice", "sid-1", strings.Repeat("j", jti)
		c["events"] = map[string]any{sso.BackChannelLogoutEvent: map[string]any{}}
		for k, v := range more {
			if v == nil {
				delete(c, k)
			} else {
				c[k] = v
			}
		}
		return iss.MustSign(t, c)
	}
	cases := []struct {
		name, raw string
		want      *sso.Logout
		reason    string
	}{
		{"sub and sid", sign(nil), &sso.Logout{Subject: "idp-alice", SessionID: "sid-1"}, ""},
		{"sid only", sign(map[string]any{"sub": nil}), &sso.Logout{SessionID: "sid-1"}, ""},
		{"sub only", sign(map[string]any{"sid": nil}), &sso.Logout{Subject: "idp-alice"}, ""},
		{"neither", sign(map[string]any{"sub": nil, "sid": nil}), nil, "neither sub nor sid"},
		{"no events", sign(map[string]any{"events": nil}), nil, "no back-channel logout event"},
		{"another event", sign(map[string]any{"events": map[string]any{"http://example.com/other": map[string]any{}}}), nil, "no back-channel logout event"},
		{"event not an object", sign(map[string]any{"events": map[string]any{sso.BackChannelLogoutEvent: "yes"}}), nil, "no back-channel logout event"},
		{"a nonce (an ID token)", sign(map[string]any{"nonce": "n"}), nil, "a logout token carries no nonce"},
		{"no jti", sign(map[string]any{"jti": nil}), nil, "no jti"},
		{"no iat", sign(map[string]any{"iat": nil}), nil, "no iat"},
		{"expired", sign(map[string]any{"exp": now.Add(-time.Second).Unix()}), nil, "expired"},
		{"other audience", sign(map[string]any{"aud": "api"}), nil, "aud is not our client"},
		{"other issuer", sign(map[string]any{"iss": "https://evil.example.com"}), nil, "iss is not the issuer"},
	}
	for _, tc := range cases {
		got, err := p.VerifyLogoutToken(context.Background(), tc.raw)
		if tc.reason == "" {
			if err != nil || *got != *tc.want {
				t.Errorf("%s: %+v, %v; want %+v", tc.name, got, err, tc.want)
			}
			continue
		}
		var te *sso.TokenError
		if !errors.As(err, &te) || te.Reason != tc.reason {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.reason)
		}
	}
	raw := sign(nil)
	if _, err := p.VerifyLogoutToken(context.Background(), raw); err != nil {
		t.Fatal(err)
	}
	if _, err := p.VerifyLogoutToken(context.Background(), raw); !errors.Is(err, sso.ErrInvalidToken) {
		t.Fatalf("replayed logout token: %v", err)
	}
}
