package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// fakeRegistry answers /v2/ as a registry would: with challenge (a WWW-Authenticate value)
// unless the request carries a Bearer token, or (basic) the Basic credentials alice:alice.
func fakeRegistry(t *testing.T, challenge string, basic bool) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); basic && ok && u == "alice" && p == "alice" {
			return
		}
		if challenge != "" {
			w.Header().Set("WWW-Authenticate", challenge)
			w.WriteHeader(http.StatusUnauthorized)
		}
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestTokenCommand: portcullis token follows a registry's Bearer challenge to a running
// Portcullis (GET with Basic, offline → refresh token, the refresh grant by POST), recognises
// a Basic challenge and an open registry, and says why a login is refused.
func TestTokenCommand(t *testing.T) {
	t.Parallel()
	cfg, err := DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	a := start(t, cfg, "all")
	bearer := fakeRegistry(t, `Bearer realm="http://`+a.GatewayAddr+`/token",service="registry.local"`, false)
	run := func(stdin string, args ...string) (string, string, error) {
		var out, errOut strings.Builder
		err := runToken(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
		return out.String(), errOut.String(), err
	}

	out, msg, err := run("alice\n", "-registry", bearer, "-u", "alice", "--password-stdin", "-scope", "repository:alice/app:pull,push", "-offline", "-decode")
	if err != nil {
		t.Fatalf("password login: %v\n%s", err, msg)
	}
	if tok := strings.TrimSpace(out); strings.Count(tok, ".") != 2 {
		t.Fatalf("stdout is not just a token: %q", out)
	}
	for _, want := range []string{"token by GET", "refresh token", "access: repository:alice/app:pull,push", "kid: ", "sub: alice", "without verifying"} {
		if !strings.Contains(msg, want) {
			t.Errorf("stderr lacks %q:\n%s", want, msg)
		}
	}
	i := strings.Index(msg, "-identity-token): ")
	if i < 0 {
		t.Fatalf("no refresh token in:\n%s", msg)
	}
	refresh := strings.Fields(msg[i+len("-identity-token): "):])[0]
	if _, msg, err := run("", "-registry", bearer, "-identity-token", refresh, "-scope", "repository:alice/app:pull"); err != nil || !strings.Contains(msg, "token by POST") {
		t.Fatalf("refresh grant: %v\n%s", err, msg)
	}
	if _, _, err := run("", "-registry", bearer, "-u", "alice", "-p", "wrong"); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong password: %v, want a 401", err)
	}
	if out, msg, err := run("", "-registry", bearer, "-scope", "repository:alice/app:pull"); err != nil || strings.TrimSpace(out) == "" {
		t.Fatalf("anonymous: %v\n%s", err, msg)
	}

	basic := fakeRegistry(t, `Basic realm="Amazon ECR"`, true)
	if _, msg, err := run("", "-registry", basic, "-u", "alice", "-p", "alice"); err != nil || !strings.Contains(msg, "Basic authentication") {
		t.Fatalf("Basic registry: %v\n%s", err, msg)
	}
	if _, _, err := run("", "-registry", basic, "-u", "alice", "-p", "nope"); err == nil {
		t.Fatal("Basic registry accepted a wrong password")
	}
	open := fakeRegistry(t, "", false)
	if out, msg, err := run("", "-registry", open); err != nil || out != "" || !strings.Contains(msg, "no authentication") {
		t.Fatalf("open registry: %q %v\n%s", out, err, msg)
	}
	if _, _, err := run("", "-u", "alice"); err == nil || !strings.Contains(err.Error(), "usage") {
		t.Fatalf("no -registry: %v", err)
	}
}
