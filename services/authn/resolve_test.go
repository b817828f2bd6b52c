package authn_test

import (
	"context"
	"errors"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
)

// liar resolves every subject to someone else.
type liar struct{ plain }

func (liar) CanResolve() bool { return true }

func (liar) Resolve(context.Context, string) (identity.Identity, error) {
	return identity.Identity{Subject: "root"}, nil
}

func TestChainResolve(t *testing.T) {
	t.Parallel()
	dir := &directory{groups: map[string][]string{"alice": {"developers"}}}
	down := &directory{down: true}
	c := authn.NewChain([]authn.Member{
		{Name: "dir", Backend: dir}, {Name: "plain", Backend: plain{}},
		{Name: "down", Backend: down}, {Name: "liar", Backend: liar{}},
	}, nil)
	cases := []struct {
		name, backend, subject string
		canResolve             bool
		wantErr                error
	}{
		{"known user", "dir", "alice", true, nil},
		{"user gone", "dir", "bob", true, authn.ErrNoMatch},
		// Sessions stay with the backend that vouched for them, even if another knows the name.
		{"other backend's user", "dir", "carol", true, authn.ErrNoMatch},
		{"backend cannot resolve", "plain", "carol", false, authn.ErrNoMatch},
		{"backend no longer configured", "ldap", "alice", false, authn.ErrNoMatch},
		{"backend down", "down", "alice", true, authn.ErrUnavailable},
		{"backend answers for another subject", "liar", "alice", true, authn.ErrNoMatch},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			if got := c.CanResolve(tc.backend); got != tc.canResolve {
				t.Fatalf("CanResolve(%q) = %v, want %v", tc.backend, got, tc.canResolve)
			}
			id, err := c.Resolve(context.Background(), tc.backend, tc.subject)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && (id.Subject != tc.subject || id.Backend != tc.backend || len(id.Groups) != 1) {
				t.Fatalf("identity = %+v", id)
			}
		})
	}
}

// disabledDir knows its users but says every account is disabled.
type disabledDir struct{ plain }

func (disabledDir) CanResolve() bool { return true }

func (disabledDir) Resolve(_ context.Context, s string) (identity.Identity, error) {
	if s == "dave" {
		return identity.Identity{}, authn.ErrAccountDisabled
	}
	return identity.Identity{}, authn.ErrNoMatch
}

// ResolvePerson finds a person in chain order among the password backends, as a login would.
func TestChainResolvePerson(t *testing.T) {
	t.Parallel()
	first := &directory{groups: map[string][]string{"alice": {"first"}}}
	second := &directory{groups: map[string][]string{"alice": {"second"}, "bob": {"second"}, "erin": {"x"}}}
	c := authn.NewChain([]authn.Member{
		{Name: "plain", Backend: plain{}}, {Name: "off", Backend: disabledDir{}},
		{Name: "corp", SubjectPrefix: "corp:", Backend: &directory{groups: map[string][]string{"carol": {"c"}}}},
		{Name: "first", Backend: first}, {Name: "down", Backend: &directory{down: true}},
		{Name: "second", Backend: second},
	}, nil)
	for _, tc := range []struct {
		subject, wantBackend, wantGroup string
		wantErr                         error
	}{
		{"alice", "first", "first", nil},           // the first that knows her decides
		{"dave", "", "", authn.ErrAccountDisabled}, // a disabled account is the answer
		{"bob", "", "", authn.ErrUnavailable},      // an outage before the backend that knows him ends the search
		{"corp:carol", "corp", "c", nil},           // a prefixed backend's user
		{"carol", "", "", authn.ErrUnavailable},    // unknown until the outage
		{"nobody", "", "", authn.ErrUnavailable},
	} {
		id, err := c.ResolvePerson(context.Background(), tc.subject)
		if !errors.Is(err, tc.wantErr) {
			t.Errorf("ResolvePerson(%q): %v, want %v", tc.subject, err, tc.wantErr)
			continue
		}
		if err == nil && (id.Subject != tc.subject || id.Backend != tc.wantBackend || id.Groups[0] != tc.wantGroup) {
			t.Errorf("ResolvePerson(%q) = %+v", tc.subject, id)
		}
	}
	// Without the outage, nobody knowing the subject is ErrNoMatch.
	c2 := authn.NewChain([]authn.Member{{Name: "first", Backend: first}, {Name: "second", Backend: second}}, nil)
	if _, err := c2.ResolvePerson(context.Background(), "nobody"); !errors.Is(err, authn.ErrNoMatch) {
		t.Errorf("ResolvePerson(nobody): %v, want ErrNoMatch", err)
	}
	if id, err := c2.ResolvePerson(context.Background(), "bob"); err != nil || id.Backend != "second" {
		t.Errorf("ResolvePerson(bob) = %+v, %v", id, err)
	}
}
