package static_test

import (
	"context"
	"reflect"
	"testing"

	yaml "go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/backendtest"
	"github.com/portcullis-dev/portcullis/services/authn/backend/static"
)

func TestConformance(t *testing.T) {
	backendtest.Run(t, func(t *testing.T, users []backendtest.User, deps authn.Deps) authn.Backend {
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
	if !a.CanResolve() {
		t.Fatal("static backend cannot resolve: its users could never refresh")
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	cfg := &static.Config{Users: []static.User{{Name: ""}, {Name: "a", PasswordHash: "$apr1$x"}, {Name: "a", PasswordHash: "x"}}}
	if errs := cfg.Validate(); len(errs) != 5 {
		t.Fatalf("got %d problems, want 5: %v", len(errs), errs)
	}
}

// TestLabels: a static user's labels, several values each (docker_auth's users carry them,
// and migrate docker-auth moves such users here), reach the identity on login and on
// refresh; a label without a value or without a name is refused.
func TestLabels(t *testing.T) {
	t.Parallel()
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	var cfg static.Config
	if err := yaml.Unmarshal([]byte(`users:
  - name: vip
    password_hash: `+string(hash)+`
    groups: [dev]
    labels: {group: [dev, ops], project: [p1]}
`), &cfg); err != nil {
		t.Fatal(err)
	}
	a, err := cfg.Open(context.Background(), authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"group": {"dev", "ops"}, "project": {"p1"}}
	id, err := a.Authenticate(context.Background(), authn.Credentials{Username: "vip", Password: "pw"})
	if err != nil || !reflect.DeepEqual(id.Labels, want) {
		t.Fatalf("login: labels %v, %v; want %v", id.Labels, err, want)
	}
	id, err = a.Resolve(context.Background(), "vip")
	if err != nil || !reflect.DeepEqual(id.Labels, want) {
		t.Fatalf("resolve: labels %v, %v; want %v", id.Labels, err, want)
	}
	id.Labels["group"][0] = "changed"
	if again, _ := a.Resolve(context.Background(), "vip"); again.Labels["group"][0] != "dev" {
		t.Fatal("an identity shares its labels with the backend's user")
	}
	for _, bad := range []map[string][]string{{"group": {}}, {"": {"x"}}} {
		c := static.Config{Users: []static.User{{Name: "u", PasswordHash: string(hash), Labels: bad}}}
		if errs := c.Validate(); len(errs) != 1 {
			t.Errorf("labels %v: %v, want one problem", bad, errs)
		}
	}
}
