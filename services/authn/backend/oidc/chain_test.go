package oidc_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/backendtest"
	"github.com/portcullis-dev/portcullis/services/authn/backend/oidc"
	"github.com/portcullis-dev/portcullis/services/authn/backend/static"
)

// In a chain with a password backend, workload tokens, good and bad, cost no bcrypt: they
// are checked while the only bcrypt slot is taken and nobody may queue, so any bcrypt work,
// a backend's or the chain's unknown-user comparison, would be turned away (Busy).
func TestChainSendsTokensPastBcrypt(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	lim := authn.NewBcryptLimiter(1, 0)
	var turnedAway atomic.Int32
	lim.Busy = func() { turnedAway.Add(1) }
	h, err := bcrypt.GenerateFromPassword([]byte("alice-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	deps := authn.Deps{Bcrypt: lim, Now: clk.Now}
	people, err := (&static.Config{Users: []static.User{{Name: "alice", PasswordHash: string(h)}}}).Open(context.Background(), deps)
	if err != nil {
		t.Fatal(err)
	}
	workloads, err := (&oidc.Config{Issuers: []oidc.Issuer{githubIssuer(iss)}}).Open(context.Background(), deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = workloads.Close(context.Background()) })
	// The password backend first: a JWT must not reach it even so.
	ch := authn.NewChain([]authn.Member{{Name: "people", Backend: people}, {Name: "ci", SubjectPrefix: "github:", Backend: workloads}}, lim)
	auth := func(user, pw string) error {
		_, err := ch.Authenticate(context.Background(), authn.Credentials{Username: user, Password: authn.Password(pw)})
		return err
	}

	release := backendtest.Hold(t, lim)
	good := iss.MustSign(t, githubClaims(iss, clk.Now()))
	id, err := ch.Authenticate(context.Background(), authn.Credentials{Username: "alice", Password: authn.Password(good)})
	if err != nil {
		t.Fatalf("valid token while bcrypt is saturated: %v", err)
	}
	if id.Backend != "ci" || id.Subject != "github:repo:myorg/app:ref:refs/heads/main" {
		t.Fatalf("identity = %+v, want subject from the token and backend ci", id)
	}
	stranger := oidctest.Start(t)
	for name, tok := range map[string]string{
		"wrong audience":  iss.MustSign(t, with(githubClaims(iss, clk.Now()), "aud", "elsewhere")),
		"unknown issuer":  stranger.MustSign(t, githubClaims(stranger, clk.Now())),
		"unsigned":        must(iss.Unsigned(githubClaims(iss, clk.Now()))),
		"HS256 forgery":   must(iss.HS256WithPublicKey(githubClaims(iss, clk.Now()))),
		"garbage payload": "eyJhbGciOiJSUzI1NiJ9.bm90IGpzb24.c2ln",
	} {
		if err := auth("alice", tok); !errors.Is(err, authn.ErrInvalidCredentials) {
			t.Errorf("%s: err = %v, want ErrInvalidCredentials without waiting for bcrypt", name, err)
		}
	}
	if n := turnedAway.Load(); n != 0 {
		t.Fatalf("tokens asked for bcrypt %d times, want never", n)
	}
	// A password still goes to bcrypt, and is turned away: the test can see bcrypt work.
	for _, user := range []string{"alice", "mallory"} {
		if err := auth(user, "alice-pw"); !errors.Is(err, authn.ErrBusy) {
			t.Fatalf("password of %s while bcrypt is saturated: err = %v, want ErrBusy", user, err)
		}
	}
	release()
	if err := auth("alice", "alice-pw"); err != nil {
		t.Fatalf("password user: %v", err)
	}
}

// The login cache keeps a token's identity no longer than the token is valid, however long
// its TTL.
func TestCacheEndsWithTheToken(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	a := open(t, clk, githubIssuer(iss))
	ch := authn.NewChain([]authn.Member{{Name: "ci", SubjectPrefix: "github:", Backend: a}}, nil)
	c := authn.NewCache(ch, time.Hour, 100, clk.Now)
	var misses atomic.Int32
	c.Miss = func() { misses.Add(1) }
	tok := iss.MustSign(t, githubClaims(iss, clk.Now())) // exp in 10 minutes
	cr := authn.Credentials{Username: "ci", Password: authn.Password(tok)}
	for range 2 {
		if _, err := c.Authenticate(context.Background(), cr); err != nil {
			t.Fatal(err)
		}
	}
	if misses.Load() != 1 {
		t.Fatalf("misses = %d, want 1 (the second login from the cache)", misses.Load())
	}
	clk.Add(10*time.Minute - time.Second)
	if _, err := c.Authenticate(context.Background(), cr); err != nil || misses.Load() != 1 {
		t.Fatalf("a second before exp: err = %v, misses = %d, want a hit", err, misses.Load())
	}
	clk.Add(time.Second)
	if _, err := c.Authenticate(context.Background(), cr); !errors.Is(err, authn.ErrInvalidCredentials) {
		t.Fatalf("at exp, within the cache TTL: err = %v, want ErrInvalidCredentials", err)
	}
}

func must(s string, err error) string {
	if err != nil {
		panic(err)
	}
	return s
}

// A workload JWT exchanged as a subject token (RFC 8693, no user name) gets the identity the
// same JWT gets as a docker login password, and is refused by the same rules: audience,
// issuer, signature, expiry, max_token_age, required claims, a subject with ':' without a
// subject_prefix.
func TestChainExchangesSubjectTokens(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	deps := authn.Deps{Now: clk.Now}
	workloads, err := (&oidc.Config{Issuers: []oidc.Issuer{githubIssuer(iss)}}).Open(context.Background(), deps)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = workloads.Close(context.Background()) })
	if !workloads.AcceptsSubjectTokens() {
		t.Fatal("the oidc backend does not accept subject tokens")
	}
	prefixed := authn.NewChain([]authn.Member{{Name: "ci", SubjectPrefix: "github:", Backend: workloads}}, nil)
	bare := authn.NewChain([]authn.Member{{Name: "ci", Backend: workloads}}, nil)
	exchange := func(ch *authn.Chain, tok string) (string, error) {
		id, err := ch.Authenticate(context.Background(), authn.Credentials{Kind: authn.KindSubjectToken, Password: authn.Password(tok)})
		return id.Subject, err
	}

	good := iss.MustSign(t, githubClaims(iss, clk.Now()))
	asPassword, err := prefixed.Authenticate(context.Background(), authn.Credentials{Username: "ci", Password: authn.Password(good)})
	if err != nil {
		t.Fatal(err)
	}
	if sub, err := exchange(prefixed, good); err != nil || sub != asPassword.Subject {
		t.Fatalf("exchange: subject %q, err %v; want %q as for the docker login", sub, err, asPassword.Subject)
	}
	stranger := oidctest.Start(t)
	old := githubClaims(iss, clk.Now().Add(-2*time.Hour))
	old["exp"] = clk.Now().Add(time.Hour).Unix()
	for name, tc := range map[string]struct {
		ch  *authn.Chain
		tok string
	}{
		"wrong audience":              {prefixed, iss.MustSign(t, with(githubClaims(iss, clk.Now()), "aud", "elsewhere"))},
		"unknown issuer":              {prefixed, stranger.MustSign(t, githubClaims(stranger, clk.Now()))},
		"alg none":                    {prefixed, must(iss.Unsigned(githubClaims(iss, clk.Now())))},
		"HS256 forgery":               {prefixed, must(iss.HS256WithPublicKey(githubClaims(iss, clk.Now())))},
		"expired":                     {prefixed, iss.MustSign(t, githubClaims(iss, clk.Now().Add(-time.Hour)))},
		"older than max_token_age":    {prefixed, iss.MustSign(t, old)},
		"required claim":              {prefixed, iss.MustSign(t, with(githubClaims(iss, clk.Now()), "repository", "evilorg/app"))},
		"subject with ':' unprefixed": {bare, good},
	} {
		if _, err := exchange(tc.ch, tc.tok); !errors.Is(err, authn.ErrInvalidCredentials) {
			t.Errorf("%s: err = %v, want ErrInvalidCredentials", name, err)
		}
	}
}
