package static_test

import (
	"context"
	"testing"

	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/authntest"
	"github.com/portcullis-dev/portcullis/services/authn/static"
)

func TestConformance(t *testing.T) {
	authntest.Run(t, func(t *testing.T, users []authntest.User, deps authn.Deps) authn.Authenticator {
		cfg := &static.Config{}
		for _, u := range users {
			cfg.Users = append(cfg.Users, static.User{Name: u.Name, PasswordHash: u.Hash, Groups: u.Groups})
		}
		a, err := cfg.Open(context.Background(), deps)
		if err != nil {
			t.Fatal(err)
		}
		return a
	})
}

func TestImplementsResolver(t *testing.T) {
	t.Parallel()
	a, err := (&static.Config{}).Open(context.Background(), authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := a.(authn.Resolver); !ok {
		t.Fatal("static backend does not implement authn.Resolver: its users could never refresh")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cfg := &static.Config{Users: []static.User{{Name: ""}, {Name: "a", PasswordHash: "$apr1$x"}, {Name: "a", PasswordHash: "x"}}}
	if errs := cfg.Validate(); len(errs) != 5 {
		t.Fatalf("got %d problems, want 5: %v", len(errs), errs)
	}
}
