package sso_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
)

// TestRevalidateAnswers: what each answer of the IdP's token endpoint to a refresh means for
// the session (the real IdP's invalid_grant is in TestHydra; these are the rest).
func TestRevalidateAnswers(t *testing.T) {
	t.Parallel()
	iss := oidctest.Start(t)
	clk := testutil.NewClock(time.Now())
	var mu sync.Mutex
	var status int
	var body map[string]any
	var gotForm []string
	p := openWithToken(t, iss, clk, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		user, pass, _ := r.BasicAuth()
		gotForm = append(gotForm, r.PostFormValue("grant_type")+" "+r.PostFormValue("refresh_token")+" "+user+":"+pass)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	})
	idt := func(more map[string]any) string {
		c := idClaims(iss, clk.Now(), more)
		delete(c, "nonce")
		return iss.MustSign(t, c)
	}
	const secretText = "refresh token rt-1 of client portcullis:s3cret is revoked"
	cases := []struct {
		name        string
		status      int
		body        map[string]any
		want        error
		notWant     error
		newToken    string // the refresh token sealed afterwards
		hasIdentity bool
	}{
		{name: "rotated with an ID token", status: 200, body: map[string]any{"refresh_token": "rt-2", "id_token": idt(nil)}, newToken: "rt-2", hasIdentity: true},
		{name: "not rotated", status: 200, body: map[string]any{"access_token": "x"}, newToken: "rt-1"},
		{name: "invalid_grant", status: 400, body: map[string]any{"error": "invalid_grant", "error_description": secretText}, want: sso.ErrAccountEnded, notWant: sso.ErrUnavailable},
		{name: "invalid_client", status: 401, body: map[string]any{"error": "invalid_client", "error_description": secretText}, want: sso.ErrUnavailable, notWant: sso.ErrAccountEnded},
		{name: "server error", status: 500, body: map[string]any{"error": "server_error", "error_description": secretText}, want: sso.ErrUnavailable, notWant: sso.ErrAccountEnded},
		{name: "rate limited", status: 429, body: map[string]any{}, want: sso.ErrUnavailable, notWant: sso.ErrAccountEnded},
		{name: "no longer meets the claims", status: 200, body: map[string]any{"refresh_token": "rt-2", "id_token": idt(map[string]any{"preferred_username": "robot:x"})}, want: sso.ErrAccountEnded},
		{name: "another subject", status: 200, body: map[string]any{"refresh_token": "rt-2", "id_token": idt(map[string]any{"preferred_username": "bob"})}, want: sso.ErrAccountEnded},
		{name: "an ID token failing a check keeps the rotated token", status: 200, body: map[string]any{"refresh_token": "rt-2", "id_token": idt(map[string]any{"aud": "api"})}, newToken: "rt-2"},
	}
	for _, tc := range cases {
		mu.Lock()
		status, body = tc.status, tc.body
		mu.Unlock()
		rv, err := p.Revalidate(context.Background(), "alice", p.Sealer().Seal("alice", "rt-1"))
		if tc.want != nil {
			if !errors.Is(err, tc.want) || (tc.notWant != nil && errors.Is(err, tc.notWant)) {
				t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			}
			if err != nil && (strings.Contains(err.Error(), "s3cret") || strings.Contains(err.Error(), "rt-1")) {
				t.Errorf("%s: the error echoes the IdP's text: %v", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if got, err := p.Sealer().Open("alice", rv.SealedRefreshToken); err != nil || got != tc.newToken {
			t.Errorf("%s: sealed %q (%v), want %q", tc.name, got, err, tc.newToken)
		}
		if (rv.Identity != nil) != tc.hasIdentity || (rv.Identity != nil && rv.Identity.Subject != "alice") {
			t.Errorf("%s: identity %+v", tc.name, rv.Identity)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(gotForm) == 0 || gotForm[0] != "refresh_token rt-1 portcullis:s3cret" {
		t.Fatalf("the IdP got %q", gotForm)
	}
	if _, err := p.Revalidate(context.Background(), "alice", []byte("junk")); !errors.Is(err, sso.ErrUnsealable) {
		t.Fatalf("junk sealed token: %v", err)
	}
}

// TestExchangeAnswers: the token endpoint's answers to a code.
func TestExchangeAnswers(t *testing.T) {
	t.Parallel()
	iss := oidctest.Start(t)
	clk := testutil.NewClock(time.Now())
	var mu sync.Mutex
	var status int
	var body map[string]any
	var form string
	p := openWithToken(t, iss, clk, func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		form = r.PostFormValue("grant_type") + " " + r.PostFormValue("code") + " " + r.PostFormValue("code_verifier") + " " + r.PostFormValue("redirect_uri")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(body)
	})
	req := sso.NewAuthRequest()
	c := idClaims(iss, clk.Now(), nil)
	c["nonce"] = req.Nonce
	good := iss.MustSign(t, c)
	cases := []struct {
		name   string
		status int
		body   map[string]any
		want   error
	}{
		{"signed in", 200, map[string]any{"id_token": good, "refresh_token": "rt-1"}, nil},
		{"no refresh token", 200, map[string]any{"id_token": good}, sso.ErrNoRefreshToken},
		{"no ID token", 200, map[string]any{"refresh_token": "rt-1"}, sso.ErrInvalidToken},
		{"code refused", 400, map[string]any{"error": "invalid_grant"}, sso.ErrExchange},
		{"IdP failing", 503, map[string]any{}, sso.ErrUnavailable},
	}
	for _, tc := range cases {
		mu.Lock()
		status, body = tc.status, tc.body
		mu.Unlock()
		in, err := p.Exchange(context.Background(), "the-code", req)
		if !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
			continue
		}
		if tc.want == nil {
			if rt, err := p.Sealer().Open("alice", in.SealedRefreshToken); err != nil || rt != "rt-1" || in.Identity.Backend != "sso" {
				t.Errorf("%s: %+v, %q, %v", tc.name, in, rt, err)
			}
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if want := "authorization_code the-code " + req.Verifier + " https://portcullis.example.com/sso/callback"; form != want {
		t.Fatalf("the IdP got %q, want %q", form, want)
	}
}
