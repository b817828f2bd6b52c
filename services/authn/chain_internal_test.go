package authn

import (
	"context"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/pkg/identity"
)

type costly struct{ cost int }

func (costly) Authenticate(context.Context, Credentials) (identity.Identity, error) {
	return identity.Identity{}, ErrNoMatch
}
func (c costly) BcryptCost(context.Context) int { return c.cost }

// Unknown users must cost what a known user's wrong password costs: one bcrypt comparison
// at the highest cost any backend holds. (Timing itself is measured by make bench.)
func TestUnknownUserPaysBcryptAtTheBackendsCost(t *testing.T) {
	t.Parallel()
	for _, costs := range [][]int{{4}, {4, 6}, {6, 4}} {
		var bs []Backend
		want := 0
		for _, c := range costs {
			bs = append(bs, Backend{Name: "b", Authenticator: costly{c}})
			want = max(want, c)
		}
		ch := NewChain(bs)
		if _, err := ch.Authenticate(context.Background(), Credentials{Username: "nobody", Password: "x"}); err != ErrInvalidCredentials {
			t.Fatalf("err = %v", err)
		}
		got, err := bcrypt.Cost(ch.dummy[want])
		if err != nil || got != want || len(ch.dummy) != 1 {
			t.Fatalf("costs %v: dummy hashes %v, want one at cost %d", costs, ch.dummy, want)
		}
	}
}
