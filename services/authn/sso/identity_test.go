package sso

import (
	"errors"
	"reflect"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn/internal/claims"
)

func TestIdentityMapping(t *testing.T) {
	t.Parallel()
	f := writeFiles(t)
	c := validConfig(f)
	c.Groups = claims.Strings{"groups", "roles"}
	c.Labels = map[string]string{"department": "department", "email": "email"}
	c.Claims = map[string]claims.Strings{"email_verified": {"true"}}
	p, err := New(c, Options{RedirectURL: "https://portcullis.example.com/sso/callback"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		claims  string
		want    identity.Identity
		wantErr error
	}{
		{
			name:   "groups array and string, labels",
			claims: `{"sub": "x1", "preferred_username": "alice", "email_verified": true, "groups": ["dev", "ops"], "roles": "admin", "department": "R&D", "email": "a@x"}`,
			want: identity.Identity{Subject: "alice", Backend: "sso", Groups: []string{"dev", "ops", "admin"},
				Labels: map[string][]string{"department": {"R&D"}, "email": {"a@x"}}},
		},
		{name: "no groups", claims: `{"preferred_username": "bob", "email_verified": "true"}`, want: identity.Identity{Subject: "bob", Backend: "sso"}},
		{name: "unverified email", claims: `{"preferred_username": "alice", "email_verified": false}`, wantErr: claims.ErrClaimMismatch},
		{name: "no subject claim", claims: `{"sub": "alice", "email_verified": true}`, wantErr: claims.ErrNoSubject},
		{name: "subject with a colon", claims: `{"preferred_username": "robot:ci", "email_verified": true}`, wantErr: identity.ErrNamespaceSep},
		{name: "system subject", claims: `{"preferred_username": "system:anonymous", "email_verified": true}`, wantErr: identity.ErrNamespaceSep},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			all, err := claims.Decode([]byte(tc.claims))
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.identity(all)
			if !errors.Is(err, tc.wantErr) || (err != nil && !errors.Is(err, ErrNotAllowed)) {
				t.Fatalf("error %v, want %v (and ErrNotAllowed)", err, tc.wantErr)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("identity %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	f := writeFiles(t)
	if _, err := New(validConfig(f), Options{}); err == nil {
		t.Fatal("no redirect URL accepted")
	}
	if _, err := New(Config{}, Options{RedirectURL: "https://x/cb"}); err == nil {
		t.Fatal("an empty config accepted")
	}
}

func TestAuthRequest(t *testing.T) {
	t.Parallel()
	a, b := NewAuthRequest(), NewAuthRequest()
	if len(a.State) != 43 || len(a.Nonce) != 43 || len(a.Verifier) != 43 || a.State == b.State || a.Nonce == a.State || a.Verifier == b.Verifier {
		t.Fatalf("requests %+v %+v", a, b)
	}
	if err := a.CheckState(a.State); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"", b.State, a.State + "x"} {
		if err := a.CheckState(s); !errors.Is(err, ErrState) {
			t.Errorf("CheckState(%q) = %v", s, err)
		}
	}
	if err := (AuthRequest{}).CheckState(""); !errors.Is(err, ErrState) {
		t.Error("an empty state matched an empty request")
	}
	// RFC 7636 appendix B.
	if got := (AuthRequest{Verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"}).Challenge(); got != "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM" {
		t.Fatalf("challenge %q", got)
	}
}
