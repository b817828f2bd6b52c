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
