package authn_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
)

type fake struct {
	user, pass string
	err        error
	calls      int
}

func (f *fake) Authenticate(_ context.Context, c authn.Credentials) (identity.Identity, error) {
	f.calls++
	if f.err != nil {
		return identity.Identity{}, f.err
	}
	if c.Username != f.user {
		return identity.Identity{}, authn.ErrNoMatch
	}
	if string(c.Password) != f.pass {
		return identity.Identity{}, authn.ErrInvalidCredentials
	}
	return identity.Identity{Subject: f.user}, nil
}

func TestChain(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		user, pass  string
		second      *fake
		wantErr     error
		wantBackend string
	}{
		{"first backend decides", "a", "pa", &fake{user: "b", pass: "pb"}, nil, "one"},
		{"falls through to second", "b", "pb", &fake{user: "b", pass: "pb"}, nil, "two"},
		{"wrong password ends chain", "a", "x", &fake{user: "a", pass: "x"}, authn.ErrInvalidCredentials, ""},
		{"nobody knows the user: deny", "z", "z", &fake{user: "b", pass: "pb"}, authn.ErrInvalidCredentials, ""},
		{"unavailable backend is not a deny", "b", "pb", &fake{err: authn.ErrUnavailable}, authn.ErrUnavailable, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := authn.NewChain([]authn.Backend{{Name: "one", Authenticator: &fake{user: "a", pass: "pa"}}, {Name: "two", Authenticator: tc.second}})
			id, err := c.Authenticate(context.Background(), authn.Credentials{Username: tc.user, Password: authn.Password(tc.pass)})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && id.Backend != tc.wantBackend {
				t.Fatalf("backend = %q, want %q", id.Backend, tc.wantBackend)
			}
		})
	}
}

func TestCacheSkipsBackendOnlyForVerifiedCredentials(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	f := &fake{user: "a", pass: "pa"}
	c := authn.NewCache(f, time.Minute, 10, func() time.Time { return now })
	ctx := context.Background()
	auth := func(u, p string) error {
		_, err := c.Authenticate(ctx, authn.Credentials{Username: u, Password: authn.Password(p)})
		return err
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(auth("a", "pa"))
	must(auth("a", "pa"))
	if f.calls != 1 {
		t.Fatalf("backend calls = %d, want 1 (second answer from cache)", f.calls)
	}
	if err := auth("a", "wrong"); !errors.Is(err, authn.ErrInvalidCredentials) {
		t.Fatalf("wrong password after cached success: %v", err)
	}
	_ = auth("a", "wrong")
	if f.calls != 3 {
		t.Fatalf("failures must not be cached: calls = %d, want 3", f.calls)
	}
	now = now.Add(2 * time.Minute)
	must(auth("a", "pa"))
	if f.calls != 4 {
		t.Fatalf("expired entry served: calls = %d", f.calls)
	}
	c.Purge()
	must(auth("a", "pa"))
	if f.calls != 5 {
		t.Fatalf("purged entry served: calls = %d", f.calls)
	}
	// A user/password split differently must not collide with a cached entry.
	f.user, f.pass = "ap", "a"
	if err := auth("ap", "a"); err != nil {
		t.Fatal(err)
	}
	if f.calls != 6 {
		t.Fatal("(a,pa) and (ap,a) share a cache key")
	}
}

func TestCacheBounded(t *testing.T) {
	t.Parallel()
	f := &fake{user: "a", pass: "pa"}
	c := authn.NewCache(f, time.Minute, 3, time.Now)
	for i := 0; i < 10; i++ {
		f.user = string(rune('a' + i))
		_, _ = c.Authenticate(context.Background(), authn.Credentials{Username: f.user, Password: "pa"})
	}
	if c.Len() > 3 {
		t.Fatalf("cache grew to %d entries, max 3", c.Len())
	}
}

func TestPasswordNeverPrints(t *testing.T) {
	t.Parallel()
	p := authn.Password("hunter2")
	for _, s := range []string{p.String(), p.GoString(), p.LogValue().String()} {
		if s != "***" {
			t.Fatalf("password printed as %q", s)
		}
	}
}
