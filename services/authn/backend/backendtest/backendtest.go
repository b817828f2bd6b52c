// Package backendtest is the conformance suite every authn backend runs.
package backendtest

import (
	"context"
	"errors"
	"reflect"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/services/authn"
)

// User is a user the suite asks the backend to hold.
type User struct {
	Name     string
	Password string
	Hash     string // bcrypt of Password, filled in by Run
	Groups   []string
}

// Open builds the backend under test holding exactly users, with deps.
type Open func(t *testing.T, users []User, deps authn.Deps) authn.Backend

// Run checks the chain semantics every backend must keep: known user and right password
// → identity with groups; wrong password → ErrInvalidCredentials; unknown user → ErrNoMatch.
// A backend that verifies bcrypt hashes (BcryptCost above 0) must report the highest cost it
// holds and make its comparisons wait for Deps.Bcrypt. A backend that can re-read its users
// (CanResolve) must return from Resolve exactly what Authenticate returns for the right
// password, without any bcrypt work, and ErrNoMatch for users it does not know; one that
// cannot must answer ErrUnsupported (a Resolve written without CanResolve would leave its
// users without sessions).
func Run(t *testing.T, open Open) {
	t.Helper()
	users := []User{
		{Name: "alice", Password: "alice-pw", Groups: []string{"developers"}},
		{Name: "bob", Password: "s3cr:et with spaces"},
	}
	costs := []int{bcrypt.MinCost + 1, bcrypt.MinCost} // mixed, highest first: not just the last one seen
	for i := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(users[i].Password), costs[i])
		if err != nil {
			t.Fatal(err)
		}
		users[i].Hash = string(h)
	}
	lim := authn.NewBcryptLimiter(1, 0)
	a := open(t, users, authn.Deps{Bcrypt: lim})
	ctx := context.Background()
	cases := []struct {
		name, user, pass string
		wantErr          error
		wantGroups       []string
	}{
		{"right password", "alice", "alice-pw", nil, []string{"developers"}},
		{"password with colon and spaces", "bob", "s3cr:et with spaces", nil, nil},
		{"wrong password", "alice", "nope", authn.ErrInvalidCredentials, nil},
		{"empty password", "alice", "", authn.ErrInvalidCredentials, nil},
		{"unknown user", "mallory", "alice-pw", authn.ErrNoMatch, nil},
		{"case matters", "Alice", "alice-pw", authn.ErrNoMatch, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			id, err := a.Authenticate(ctx, authn.Credentials{Username: tc.user, Password: authn.Password(tc.pass)})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if id.Subject != tc.user || id.Anonymous {
				t.Fatalf("identity = %+v, want subject %q", id, tc.user)
			}
			if len(id.Groups) != len(tc.wantGroups) || (len(id.Groups) > 0 && id.Groups[0] != tc.wantGroups[0]) {
				t.Fatalf("groups = %v, want %v", id.Groups, tc.wantGroups)
			}
		})
	}
	if a.CanResolve() {
		runResolver(t, a, users, lim)
	} else {
		t.Run("Resolve answers ErrUnsupported without CanResolve", func(t *testing.T) {
			if _, err := a.Resolve(ctx, "alice"); !errors.Is(err, authn.ErrUnsupported) {
				t.Fatalf("Resolve err = %v, want ErrUnsupported: implement CanResolve too", err)
			}
		})
	}
	if a.Claiming() {
		t.Error("a password backend claims credentials by shape (Claiming): the chain would never ask it about passwords")
	}
	if a.BcryptCost(ctx) == 0 {
		return // not bcrypt-backed (a directory)
	}
	t.Run("reports the highest bcrypt cost", func(t *testing.T) {
		if got := a.BcryptCost(ctx); got != bcrypt.MinCost+1 {
			t.Fatalf("BcryptCost = %d, want %d (the chain pays it for unknown users)", got, bcrypt.MinCost+1)
		}
	})
	t.Run("bcrypt waits for Deps.Bcrypt", func(t *testing.T) {
		release := Hold(t, lim)
		defer release()
		_, err := a.Authenticate(ctx, authn.Credentials{Username: "alice", Password: "alice-pw"})
		if !errors.Is(err, authn.ErrBusy) {
			t.Fatalf("with the only slot taken and no queue: err = %v, want ErrBusy", err)
		}
		// An unknown user costs the backend nothing; the chain pays for it.
		_, err = a.Authenticate(ctx, authn.Credentials{Username: "mallory", Password: "x"})
		if !errors.Is(err, authn.ErrNoMatch) {
			t.Fatalf("unknown user: err = %v, want ErrNoMatch", err)
		}
	})
}

func runResolver(t *testing.T, a authn.Backend, users []User, lim *authn.BcryptLimiter) {
	ctx := context.Background()
	want := map[string]any{}
	for _, u := range users {
		id, err := a.Authenticate(ctx, authn.Credentials{Username: u.Name, Password: authn.Password(u.Password)})
		if err != nil {
			t.Fatalf("authenticate %s: %v", u.Name, err)
		}
		want[u.Name] = id
	}
	cases := []struct {
		name, subject string
		wantErr       error
	}{
		{"resolves a known user", "alice", nil},
		{"resolves a user without groups", "bob", nil},
		{"unknown user", "mallory", authn.ErrNoMatch},
		{"empty subject", "", authn.ErrNoMatch},
		{"case matters", "Alice", authn.ErrNoMatch},
	}
	for _, tc := range cases {
		t.Run("Resolve/"+tc.name, func(t *testing.T) {
			// Every bcrypt slot is taken: resolving must not need one (a refresh grant
			// checks no password, which is what makes it cheap).
			release := Hold(t, lim)
			defer release()
			id, err := a.Resolve(ctx, tc.subject)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				return
			}
			if !reflect.DeepEqual(id, want[tc.subject]) {
				t.Fatalf("Resolve = %+v, want what Authenticate returns: %+v", id, want[tc.subject])
			}
		})
	}
}

// Hold takes one of lim's slots until the returned function is called (at most once).
func Hold(t testing.TB, lim *authn.BcryptLimiter) (release func()) {
	t.Helper()
	held, rel, done := make(chan struct{}), make(chan struct{}), make(chan error, 1)
	go func() { done <- lim.Do(context.Background(), func() { close(held); <-rel }) }()
	select {
	case <-held:
	case err := <-done:
		t.Fatalf("could not take a slot: %v", err)
	}
	return func() {
		close(rel)
		if err := <-done; err != nil {
			t.Errorf("held slot: %v", err)
		}
	}
}
