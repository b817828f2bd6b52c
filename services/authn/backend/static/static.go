// Package static authenticates users listed in the config file itself, with bcrypt hashes.
package static

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
)

// User is one configured user.
type User struct {
	Name         string   `yaml:"name"`
	PasswordHash string   `yaml:"password_hash"`
	Groups       []string `yaml:"groups"`
	// Labels are attributes policies match, each with one or more values
	// (`labels: {group: [dev, ops]}`), as docker_auth's static users carry them.
	Labels map[string][]string `yaml:"labels"`
}

// Config lists the users.
type Config struct {
	Users []User `yaml:"users"`
}

// Validate reports every problem at once.
func (c *Config) Validate() []error {
	var p config.Problems
	seen := map[string]bool{}
	for i, u := range c.Users {
		path := fmt.Sprintf("users[%d]", i)
		if u.Name == "" {
			p.Addf(path+".name", "is required")
		} else if err := identity.CheckBareName(u.Name); err != nil {
			// robot:ci would pass for the robot "ci" (see identity.CheckBareName).
			p.Addf(path+".name", "%q %v", u.Name, err)
		}
		if seen[u.Name] {
			p.Addf(path+".name", "user %q is listed twice", u.Name)
		}
		seen[u.Name] = true
		if err := authn.CheckHash(u.PasswordHash); err != nil {
			p.Addf(path+".password_hash", "%v", err)
		}
		for _, k := range slices.Sorted(maps.Keys(u.Labels)) {
			switch vs := u.Labels[k]; {
			case k == "":
				p.Addf(path+".labels", "a label needs a name")
			case len(vs) == 0:
				p.Addf(path+".labels."+k, "give at least one value (a label is never present without one)")
			}
		}
	}
	return p.Errs()
}

type backend struct {
	authn.UnimplementedBackend
	users   map[string]authn.User
	maxCost int
	bcrypt  *authn.BcryptLimiter
}

var _ authn.Backend = (*backend)(nil)

// Open builds the backend.
func (c *Config) Open(_ context.Context, deps authn.Deps) (authn.Backend, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("static: %w", errs[0])
	}
	b := &backend{users: map[string]authn.User{}, bcrypt: deps.Bcrypt}
	for _, u := range c.Users {
		b.users[u.Name] = authn.User{Name: u.Name, Hash: u.PasswordHash, Groups: u.Groups, Labels: u.Labels}
		b.maxCost = max(b.maxCost, authn.HashCost(u.PasswordHash))
	}
	return b, nil
}

func (b *backend) Authenticate(ctx context.Context, cr authn.Credentials) (identity.Identity, error) {
	u, ok := b.users[cr.Username]
	return authn.Verify(ctx, b.bcrypt, u, ok, cr)
}

// Resolve implements authn.Backend.
func (b *backend) Resolve(_ context.Context, subject string) (identity.Identity, error) {
	u, ok := b.users[subject]
	return authn.Resolve(u, ok)
}

// CanResolve implements authn.Backend: the config names every user.
func (b *backend) CanResolve() bool { return true }

// BcryptCost implements authn.Backend.
func (b *backend) BcryptCost(context.Context) int { return b.maxCost }
