package pats_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/pats/patstest"
)

func TestParseScope(t *testing.T) {
	for _, c := range []struct {
		in, want string // want "": refused
	}{
		{"repository:alice/*:pull", "repository:alice/*:pull"},
		{"repository:alice/app:pull,push,pull", "repository:alice/app:pull,push"},
		{"repository(plugin):x/*:*", "repository(plugin):x/*:*"},
		{"repository:localhost:5000/a/*:pull", "repository:localhost:5000/a/*:pull"},
		{"registry:catalog:*", "registry:catalog:*"},
		{"repository:alice/[:pull", ""}, // bad pattern
		{"repository:alice/?:pull", ""}, // '*' is the only wildcard
		{"repository:alice/*:pull*", ""},
		{"repository:alice/*:pu*ll", ""},
		{"repository:*:*", "repository:*:*"},
		{"repository:alice/App:pull", ""},
		{"repository:alice/*", ""},
		{"repository::pull", ""},
		{"repository:alice/*:", ""},
		{"repository:alice/* :pull", ""},
		{"", ""},
		{"repository:" + strings.Repeat("a", 600) + ":pull", ""},
	} {
		got, err := pats.ParseScope(c.in)
		switch {
		case c.want == "" && err == nil:
			t.Errorf("ParseScope(%q) = %v, want an error", c.in, got)
		case c.want != "" && err != nil:
			t.Errorf("ParseScope(%q): %v", c.in, err)
		case c.want != "" && got.String() != c.want:
			t.Errorf("ParseScope(%q) = %q, want %q", c.in, got.String(), c.want)
		}
		var inv *pats.InvalidError
		if err != nil && !errors.As(err, &inv) {
			t.Errorf("ParseScope(%q): %v is no InvalidError", c.in, err)
		}
	}
}

func TestWellFormed(t *testing.T) {
	s, err := pats.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		in   string
		want bool
	}{
		{s, true},
		{s[:len(s)-1], false},
		{s + "A", false},
		{"pcp_" + s[4:], false},
		{"PAT_" + s[4:], false},
		{s[:len(s)-1] + "=", false},
		{"pat_" + strings.Repeat("A", 1<<20), false},
	} {
		if got := pats.WellFormed(c.in); got != c.want {
			t.Errorf("WellFormed(%.20q…) = %v, want %v", c.in, got, c.want)
		}
	}
}

// people is an Owner resolver over a table: absent is ErrNoOwner; broken answers an outage.
type people struct {
	ids    map[string]identity.Identity
	broken error
}

func (p *people) owner(_ context.Context, subject string) (identity.Identity, error) {
	if p.broken != nil {
		return identity.Identity{}, p.broken
	}
	id, ok := p.ids[subject]
	if !ok {
		return identity.Identity{}, pats.ErrNoOwner
	}
	return id, nil
}

func newManager(t *testing.T, now *time.Time, pp *people) (*pats.Manager, *patstest.Memory) {
	t.Helper()
	st := patstest.NewMemory()
	m := pats.NewManager(st, pats.Options{Now: func() time.Time { return *now }, Owner: pp.owner, MaxTTL: 24 * time.Hour})
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	return m, st
}

func TestCreate(t *testing.T) {
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	pp := &people{ids: map[string]identity.Identity{"alice": {Subject: "alice"}}}
	m, _ := newManager(t, &now, pp)
	ctx := context.Background()
	for _, c := range []struct {
		name string
		spec pats.Spec
		want string // "" ok; else an error containing it
	}{
		{"ok", pats.Spec{Owner: "alice", Name: "ci", ExpiresIn: time.Hour, Scopes: []string{"repository:alice/*:pull"}}, ""},
		{"same name", pats.Spec{Owner: "alice", Name: "ci", ExpiresIn: time.Hour}, "name"},
		{"no expiry", pats.Spec{Owner: "alice", Name: "a", ExpiresIn: 0}, "expires_in is required"},
		{"over max_ttl", pats.Spec{Owner: "alice", Name: "a", ExpiresIn: 25 * time.Hour}, "at most 24h0m0s"},
		{"every problem at once", pats.Spec{Owner: "a:b", Name: "Bad", ExpiresIn: -time.Second, Scopes: []string{"x"}},
			`owner must not contain ":": a token logs in with its owner as the user name; name must be lower-case letters, digits, '.', '_' and '-', starting and ending with a letter or digit; expires_in must be at least 1s; scope "x"`},
		{"unknown owner", pats.Spec{Owner: "bob", Name: "a", ExpiresIn: time.Hour}, pats.ErrNoOwner.Error()},
	} {
		t.Run(c.name, func(t *testing.T) {
			secret, p, err := m.Create(ctx, c.spec)
			if c.want != "" {
				if err == nil || !strings.Contains(err.Error(), c.want) {
					t.Fatalf("Create: %v, want an error with %q", err, c.want)
				}
				return
			}
			if err != nil {
				t.Fatalf("Create: %v", err)
			}
			if !pats.WellFormed(secret) || p.SecretHash != pats.HashSecret(secret) || !p.ExpiresAt.Equal(now.Add(time.Hour)) {
				t.Errorf("Create = %q, %+v", secret, p)
			}
		})
	}
}

func TestLogin(t *testing.T) {
	ctx := context.Background()
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	pp := &people{ids: map[string]identity.Identity{
		"alice": {Subject: "alice", Groups: []string{"dev"}, Labels: map[string][]string{"team": {"a"}}, Backend: "ldap"},
		"bob":   {Subject: "bob"},
	}}
	m, st := newManager(t, &now, pp)
	alice, ap, err := m.Create(ctx, pats.Spec{Owner: "alice", Name: "ci", ExpiresIn: time.Hour, Scopes: []string{"repository:alice/*:pull"}})
	if err != nil {
		t.Fatal(err)
	}
	bob, _, err := m.Create(ctx, pats.Spec{Owner: "bob", Name: "ci", ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, user, secret string
		ok                 bool
	}{
		{"alice's token as alice", "alice", alice, true},
		{"alice's token as bob", "bob", alice, false},
		{"bob's token as alice", "alice", bob, false},
		{"truncated", "alice", alice[:len(alice)-2], false},
		{"wrong prefix", "alice", "pcp_" + alice[4:], false},
		{"one bit off", "alice", alice[:len(alice)-1] + string(alice[len(alice)-1]^1), false},
		{"1 MB", "alice", "pat_" + strings.Repeat("A", 1<<20), false},
		{"empty user", "", alice, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			id, until, err := m.Login(ctx, c.user, c.secret, "192.0.2.1:1")
			if !c.ok {
				if !errors.Is(err, pats.ErrRefused) {
					t.Errorf("Login: %v, want ErrRefused", err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			if id.Subject != "alice" || id.Backend != "pat" || id.PATName != "ci" || len(id.PATScopes) != 1 ||
				len(id.Groups) != 1 || id.Labels["team"][0] != "a" || !until.Equal(now.Add(time.Second)) {
				t.Errorf("Login = %+v until %v", id, until)
			}
		})
	}

	t.Run("backend outage is no refusal", func(t *testing.T) {
		pp.broken = errors.New("ldap down")
		defer func() { pp.broken = nil }()
		if _, _, err := m.Login(ctx, "alice", alice, ""); err == nil || errors.Is(err, pats.ErrRefused) {
			t.Errorf("Login: %v, want an outage", err)
		}
		if got, _ := st.List(ctx, "alice"); len(got) != 1 {
			t.Errorf("an outage deleted the tokens: %d left", len(got))
		}
	})
	t.Run("store outage", func(t *testing.T) {
		st.Fail(errors.New("disk"))
		defer st.Fail(nil)
		if _, _, err := m.Login(ctx, "alice", alice, ""); err == nil || errors.Is(err, pats.ErrRefused) {
			t.Errorf("Login: %v, want an outage", err)
		}
	})
	t.Run("expired", func(t *testing.T) {
		saved := now
		now = ap.ExpiresAt
		defer func() { now = saved }()
		if _, _, err := m.Login(ctx, "alice", alice, ""); !errors.Is(err, pats.ErrRefused) {
			t.Errorf("Login at expiry: %v, want ErrRefused", err)
		}
	})
	t.Run("revoked", func(t *testing.T) {
		s, p, err := m.Create(ctx, pats.Spec{Owner: "alice", Name: "short", ExpiresIn: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := m.Revoke(ctx, p.ID); err != nil {
			t.Fatal(err)
		}
		if _, _, err := m.Login(ctx, "alice", s, ""); !errors.Is(err, pats.ErrRefused) {
			t.Errorf("Login after Revoke: %v, want ErrRefused", err)
		}
		if _, err := m.Revoke(ctx, p.ID); !errors.Is(err, pats.ErrNotFound) {
			t.Errorf("Revoke again: %v, want ErrNotFound", err)
		}
	})
	t.Run("owner's account ended", func(t *testing.T) {
		delete(pp.ids, "alice")
		if _, _, err := m.Login(ctx, "alice", alice, ""); !errors.Is(err, pats.ErrRefused) {
			t.Errorf("Login: %v, want ErrRefused", err)
		}
		if got, _ := st.List(ctx, "alice"); len(got) != 0 {
			t.Errorf("%d of alice's tokens outlived her account", len(got))
		}
		// Coming back does not bring them back.
		pp.ids["alice"] = identity.Identity{Subject: "alice"}
		if _, _, err := m.Login(ctx, "alice", alice, ""); !errors.Is(err, pats.ErrRefused) {
			t.Errorf("Login after the account came back: %v, want ErrRefused", err)
		}
	})
}
