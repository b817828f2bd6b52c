package pat_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/pat"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/pats/patstest"
)

// people is a password backend that counts the passwords it is asked about and resolves
// its users; disabled ones are ErrAccountDisabled.
type people struct {
	authn.UnimplementedBackend
	users    map[string][]string // user → groups
	disabled map[string]bool
	asked    atomic.Int32
}

func (p *people) Authenticate(_ context.Context, c authn.Credentials) (identity.Identity, error) {
	p.asked.Add(1)
	return identity.Identity{}, authn.ErrNoMatch
}

func (p *people) CanResolve() bool { return true }

func (p *people) Resolve(_ context.Context, s string) (identity.Identity, error) {
	if p.disabled[s] {
		return identity.Identity{}, authn.ErrAccountDisabled
	}
	g, ok := p.users[s]
	if !ok {
		return identity.Identity{}, authn.ErrNoMatch
	}
	return identity.Identity{Subject: s, Groups: g, Labels: map[string][]string{"team": {"t-" + s}}}, nil
}

func TestChainLogin(t *testing.T) {
	ctx := context.Background()
	pp := &people{users: map[string][]string{"alice": {"dev"}, "bob": {"ops"}, "dave": nil}, disabled: map[string]bool{}}
	var ch *authn.Chain
	m := pats.NewManager(patstest.NewMemory(), pats.Options{Owner: pat.Owners(func(ctx context.Context, s string) (identity.Identity, error) {
		return ch.ResolvePerson(ctx, s)
	})})
	t.Cleanup(func() { _ = m.Close(ctx) })
	b, err := (&pat.Config{}).Open(ctx, authn.Deps{PATs: m})
	if err != nil {
		t.Fatal(err)
	}
	ch = authn.NewChain([]authn.Member{{Name: "ldap", Backend: pp}, {Name: "tokens", Backend: b}}, nil)
	mk := func(owner string) string {
		s, _, err := m.Create(ctx, pats.Spec{Owner: owner, Name: "ci", ExpiresIn: time.Hour, Scopes: []string{"repository:" + owner + "/*:pull"}})
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	alice, bob, dave := mk("alice"), mk("bob"), mk("dave")
	if _, _, err := m.Create(ctx, pats.Spec{Owner: "nobody", Name: "ci", ExpiresIn: time.Hour}); !errors.Is(err, pats.ErrNoOwner) {
		t.Fatalf("Create for an unknown owner: %v, want ErrNoOwner", err)
	}
	pp.disabled["dave"] = true

	for _, c := range []struct {
		name, user, password string
		kind                 authn.CredentialKind
		wantErr              error
	}{
		{"alice", "alice", alice, authn.KindPassword, nil},
		{"another user's token", "bob", alice, authn.KindPassword, authn.ErrInvalidCredentials},
		{"bob's token as alice", "alice", bob, authn.KindPassword, authn.ErrInvalidCredentials},
		{"truncated", "alice", alice[:20], authn.KindPassword, authn.ErrInvalidCredentials},
		{"1 MB", "alice", "pat_" + strings.Repeat("x", 1<<20), authn.KindPassword, authn.ErrInvalidCredentials},
		{"disabled owner", "dave", dave, authn.KindPassword, authn.ErrInvalidCredentials},
		// A token is no subject token: an exchange cannot turn it into a login.
		{"as a subject token", "", alice, authn.KindSubjectToken, authn.ErrInvalidCredentials},
	} {
		t.Run(c.name, func(t *testing.T) {
			pp.asked.Store(0)
			id, err := ch.Authenticate(ctx, authn.Credentials{Username: c.user, Password: authn.Password(c.password), Kind: c.kind})
			if !errors.Is(err, c.wantErr) {
				t.Fatalf("Authenticate: %v, want %v", err, c.wantErr)
			}
			if n := pp.asked.Load(); n != 0 {
				t.Errorf("a token reached the password backend %d times", n)
			}
			if err != nil {
				return
			}
			if id.Subject != "alice" || id.Backend != "pat" || id.PATName != "ci" || id.Groups[0] != "dev" ||
				id.Labels["team"][0] != "t-alice" || len(id.PATScopes) != 1 || id.ValidUntil.IsZero() {
				t.Errorf("identity = %+v", id)
			}
		})
	}
	if got, _ := m.List(ctx, "dave"); len(got) != 0 {
		t.Errorf("the disabled owner keeps %d tokens", len(got))
	}
	if !ch.Claimed(ctx, authn.Credentials{Username: "alice", Password: "pat_anything"}) {
		t.Error("the chain does not treat a token as unguessable")
	}
	// The group change reaches the next login: the owner is re-read every time.
	pp.users["alice"] = []string{"admins"}
	if id, err := ch.Authenticate(ctx, authn.Credentials{Username: "alice", Password: authn.Password(alice)}); err != nil || id.Groups[0] != "admins" {
		t.Errorf("after a group change: %+v, %v", id, err)
	}
	// The owner removed: refused, and the token is gone.
	delete(pp.users, "alice")
	if _, err := ch.Authenticate(ctx, authn.Credentials{Username: "alice", Password: authn.Password(alice)}); !errors.Is(err, authn.ErrInvalidCredentials) {
		t.Errorf("after removal: %v", err)
	}
	if got, _ := m.List(ctx, "alice"); len(got) != 0 {
		t.Errorf("the removed owner keeps %d tokens", len(got))
	}
}

func TestOpenWithoutTokens(t *testing.T) {
	if _, err := (&pat.Config{}).Open(context.Background(), authn.Deps{}); err == nil || !strings.Contains(err.Error(), "sso.pat.enabled") {
		t.Errorf("Open without a manager: %v", err)
	}
}
