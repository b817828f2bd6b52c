package oidc_test

import (
	"context"
	"errors"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/oidc"
)

// FuzzAuthenticate feeds client-chosen passwords to the backend: it must never panic, never
// accept anything but the one token the issuer signed, and leave alone (ErrNoMatch) what it
// does not claim.
//
//	go test -run=NONE -fuzz=FuzzAuthenticate -fuzztime=30s ./services/authn/backend/oidc
func FuzzAuthenticate(f *testing.F) {
	clk := newClock()
	iss := oidctest.Start(f)
	a, err := (&oidc.Config{Issuers: []oidc.Issuer{githubIssuer(iss)}}).Open(context.Background(), authn.Deps{Now: clk.Now})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { _ = a.Close(context.Background()) })
	good := iss.MustSign(f, githubClaims(iss, clk.Now()))
	none, _ := iss.Unsigned(githubClaims(iss, clk.Now()))
	hs, _ := iss.HS256WithPublicKey(githubClaims(iss, clk.Now()))
	for _, s := range []string{good, none, hs, good + "x", "eyJhbGciOiJub25lIn0.e30.", "a.b.c", "", "pcp_x"} {
		f.Add(s)
	}
	cl := a
	f.Fuzz(func(t *testing.T, pw string) {
		cr := authn.Credentials{Username: "u", Password: authn.Password(pw)}
		_, err := a.Authenticate(context.Background(), cr)
		switch {
		case err == nil && pw != good:
			t.Fatalf("accepted %q", pw)
		case !cl.ClaimsCredential(context.Background(), cr) && !errors.Is(err, authn.ErrNoMatch):
			t.Fatalf("unclaimed %q: err = %v, want ErrNoMatch", pw, err)
		}
	})
}
