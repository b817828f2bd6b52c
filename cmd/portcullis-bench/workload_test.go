package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
)

// The workload runs' oidc backend, as the server reads it from the bench's config file, accepts
// the tokens the bench signs: distinct, subject bench (whom the default policy grants
// bench/...), labels mapped.
func TestWorkloadBackendAcceptsBenchTokens(t *testing.T) {
	t.Parallel()
	idp := oidctest.Start(t)
	c := loadScenario(t, t.TempDir(), scenario{scopes: 1, oidcIssuer: idp.URL})
	bc, err := backend.Decode(backendSpec(t, c, "oidc"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := bc.Open(context.Background(), authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })

	tokens, err := signWorkloadTokens(idp, 4, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for i, tok := range tokens {
		if seen[tok] {
			t.Fatalf("token %d repeats an earlier one", i)
		}
		seen[tok] = true
		id, err := a.Authenticate(context.Background(), authn.Credentials{Username: "ci", Password: authn.Password(tok), Service: "registry.local"})
		if err != nil {
			t.Fatalf("token %d: %v", i, err)
		}
		if id.Subject != "bench" || !slices.Equal(id.Labels["project"], []string{workloadRepo}) {
			t.Fatalf("token %d: identity %+v, want subject bench, project %s", i, id, workloadRepo)
		}
	}
	if _, err := signWorkloadTokens(idp, 0, time.Now()); err == nil {
		t.Fatal("no tokens asked for: want an error")
	}
}

// The workload load is GET /token with Basic ci:<JWT>, cycling through the tokens; an answer
// without a token is an error.
func TestJWTGrant(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if r.Method != "GET" || r.URL.Path != "/token" || !ok || user != "ci" ||
			r.URL.Query().Get("service") != "registry.local" || len(r.URL.Query()["scope"]) != 1 {
			t.Errorf("%s %s, Basic %q (%t)", r.Method, r.URL, user, ok)
		}
		mu.Lock()
		got = append(got, pass)
		mu.Unlock()
		if pass == "refused.jwt.x" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		_, _ = w.Write([]byte(`{"token":"a","access_token":"a"}`))
	}))
	defer srv.Close()

	send := jwtGrant(srv.URL, []string{"a.jwt.x", "b.jwt.x", "refused.jwt.x"})
	for i, wantErr := range []bool{false, false, true, false} {
		if _, err := send(srv.Client(), i); (err != nil) != wantErr {
			t.Errorf("request %d: error %v, want error %t", i, err, wantErr)
		}
	}
	if want := "a.jwt.x b.jwt.x refused.jwt.x a.jwt.x"; strings.Join(got, " ") != want {
		t.Errorf("passwords sent %q, want %q", got, want)
	}
}

// The token exchange load is RFC 8693's form POSTed to /token, with the JWT as subject_token
// and no credentials besides, cycling through the tokens; an answer without an access token
// is an error.
func TestExchangeGrant(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != "POST" || r.URL.Path != "/token" || r.Header.Get("Content-Type") != "application/x-www-form-urlencoded" ||
			r.Header.Get("Authorization") != "" {
			t.Errorf("%s %s, Content-Type %q, Authorization %q", r.Method, r.URL, r.Header.Get("Content-Type"), r.Header.Get("Authorization"))
		}
		if err := r.ParseForm(); err != nil {
			t.Error(err)
		}
		f := r.PostForm
		if f.Get("grant_type") != "urn:ietf:params:oauth:grant-type:token-exchange" || f.Get("subject_token_type") != "urn:ietf:params:oauth:token-type:jwt" ||
			f.Get("service") != "registry.local" || f.Get("scope") != "repository:bench/app0:pull,push" {
			t.Errorf("form %v", f)
		}
		mu.Lock()
		got = append(got, f.Get("subject_token"))
		mu.Unlock()
		if f.Get("subject_token") == "refused.jwt.x" {
			w.WriteHeader(http.StatusBadRequest)
			_, _ = w.Write([]byte(`{"error":"invalid_grant"}`))
			return
		}
		_, _ = w.Write([]byte(`{"access_token":"a","token":"a"}`))
	}))
	defer srv.Close()

	send := exchangeGrant(srv.URL, []string{"a.jwt.x", "b.jwt.x", "refused.jwt.x"})
	for i, wantErr := range []bool{false, false, true, false} {
		if _, err := send(srv.Client(), i); (err != nil) != wantErr {
			t.Errorf("request %d: error %v, want error %t", i, err, wantErr)
		}
	}
	if want := "a.jwt.x b.jwt.x refused.jwt.x a.jwt.x"; strings.Join(got, " ") != want {
		t.Errorf("subject tokens sent %q, want %q", got, want)
	}
}
