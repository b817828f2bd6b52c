package sso_test

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
)

func TestAuthCodeURL(t *testing.T) {
	t.Parallel()
	iss := oidctest.Start(t)
	p := openAt(t, iss, testutil.NewClock(time.Now()))
	req := sso.NewAuthRequest()
	raw, err := p.AuthCodeURL(context.Background(), req, url.Values{"login_hint": {"alice"}, "state": {"attacker"}, "code_challenge_method": {"plain"}})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != iss.URL+"/authorize" {
		t.Fatalf("endpoint %s", got)
	}
	q := u.Query()
	want := map[string]string{
		"response_type": "code", "client_id": "portcullis", "redirect_uri": "https://portcullis.example.com/sso/callback",
		"scope": "openid email profile offline_access", "state": req.State, "nonce": req.Nonce,
		"code_challenge": req.Challenge(), "code_challenge_method": "S256", "login_hint": "alice",
	}
	for k, v := range want {
		if q.Get(k) != v || len(q[k]) != 1 {
			t.Errorf("%s = %q, want %q", k, q[k], v)
		}
	}
	if len(q) != len(want) || strings.Contains(raw, req.Verifier) {
		t.Fatalf("query %v (the verifier must never be sent)", q)
	}
	if _, err := p.AuthCodeURL(context.Background(), sso.AuthRequest{State: "s", Nonce: "n", Verifier: "short"}, nil); err == nil {
		t.Fatal("a hand-made request with a short verifier was accepted")
	}
}

// FuzzVerifyLogoutToken: the back-channel endpoint takes a logout token from anyone. Whatever
// arrives, verification does not panic, and only the issuer's own token is accepted.
func FuzzVerifyLogoutToken(f *testing.F) {
	iss, err := oidctest.New()
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(iss.Close)
	clk := testutil.NewClock(time.Now())
	c := iss.Claims("portcullis", clk.Now(), time.Minute)
	c["sid"], c["jti"] = "sid-1", "jti-1"
	c["events"] = map[string]any{sso.BackChannelLogoutEvent: map[string]any{}}
	valid, err := iss.Sign(c)
	if err != nil {
		f.Fatal(err)
	}
	unsigned, _ := iss.Unsigned(c)
	confused, _ := iss.HS256WithPublicKey(c)
	for _, s := range []string{valid, unsigned, confused, "", "a.b.c", "e30.e30.", strings.Repeat("A", 70000)} {
		f.Add(s)
	}
	p := openAtF(f, iss, clk)
	f.Fuzz(func(t *testing.T, raw string) {
		lo, err := p.VerifyLogoutToken(context.Background(), raw)
		if err == nil && (raw != valid || lo.SessionID != "sid-1") {
			t.Fatalf("accepted %q as %+v", raw, lo)
		}
	})
}
