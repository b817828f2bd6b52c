// Package authntest is the conformance suite every authn backend runs.
package authntest

import (
	"context"
	"errors"
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

// Open builds the backend under test holding exactly users.
type Open func(t *testing.T, users []User) authn.Authenticator

// Run checks the chain semantics every backend must keep: known user and right password
// → identity with groups; wrong password → ErrInvalidCredentials; unknown user → ErrNoMatch.
func Run(t *testing.T, open Open) {
	t.Helper()
	users := []User{
		{Name: "alice", Password: "alice-pw", Groups: []string{"developers"}},
		{Name: "bob", Password: "s3cr:et with spaces"},
	}
	for i := range users {
		h, err := bcrypt.GenerateFromPassword([]byte(users[i].Password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		users[i].Hash = string(h)
	}
	a := open(t, users)
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
}
