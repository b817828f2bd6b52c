package authn

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/pkg/identity"
)

// Backend is a named member of the chain.
type Backend struct {
	Name string
	Authenticator
}

// Chain tries backends in order: the first that knows the user decides; a wrong password
// ends the chain; when nobody knows the user the answer is ErrInvalidCredentials (deny).
type Chain struct {
	backends []Backend

	mu    sync.Mutex
	dummy map[int][]byte // bcrypt cost → hash of a random password
}

var _ Authenticator = (*Chain)(nil)

// NewChain returns a chain over backends, tried in the given order.
func NewChain(backends []Backend) *Chain {
	return &Chain{backends: backends, dummy: map[int][]byte{}}
}

// Authenticate implements Authenticator.
func (c *Chain) Authenticate(ctx context.Context, cr Credentials) (identity.Identity, error) {
	for _, b := range c.backends {
		id, err := b.Authenticate(ctx, cr)
		switch {
		case err == nil:
			if id.Backend == "" {
				id.Backend = b.Name
			}
			return id, nil
		case errors.Is(err, ErrNoMatch):
			continue
		default:
			return identity.Identity{}, fmt.Errorf("backend %q: %w", b.Name, err)
		}
	}
	// Unknown user: spend one bcrypt comparison at the chain's highest cost so the answer
	// takes as long as a known user's wrong password and does not reveal who exists.
	_ = bcrypt.CompareHashAndPassword(c.dummyHash(ctx), []byte(cr.Password))
	return identity.Identity{}, ErrInvalidCredentials
}

func (c *Chain) dummyHash(ctx context.Context) []byte {
	cost := 0
	for _, b := range c.backends {
		if bc, ok := b.Authenticator.(BcryptCoster); ok {
			cost = max(cost, bc.BcryptCost(ctx))
		}
	}
	if cost == 0 { // no password backend: still do not answer instantly
		cost = bcrypt.DefaultCost
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.dummy[cost]
	if !ok {
		var err error
		h, err = bcrypt.GenerateFromPassword([]byte("portcullis-no-such-user"), cost)
		if err != nil { // only for an out-of-range cost, which CheckHash already refused
			h = []byte{}
		}
		c.dummy[cost] = h
	}
	return h
}

// Close closes every backend that holds resources.
func (c *Chain) Close(ctx context.Context) error {
	var errs []error
	for _, b := range c.backends {
		if cl, ok := b.Authenticator.(Closer); ok {
			errs = append(errs, cl.Close(ctx))
		}
	}
	return errors.Join(errs...)
}
