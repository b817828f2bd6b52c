package sso

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/internal/jwks"

	jose "github.com/go-jose/go-jose/v4"
)

const (
	// keysMaxAge: cached keys older than this are refetched before a check, so a key the IdP
	// withdrew stops working; while the IdP is unreachable the cached ones keep working.
	keysMaxAge = 15 * time.Minute
	// keysMinGap: the least time between two fetches, however many tokens with unknown kids
	// arrive (an attacker's made-up kids must not make us hammer the IdP).
	keysMinGap = 10 * time.Second
)

// keySet is the IdP's JWKS, cached; refetched when stale or when a token names a kid it does
// not hold, never twice within keysMinGap.
type keySet struct {
	p *Provider

	fetchMu sync.Mutex // one fetch at a time; waiters then see its result
	mu      sync.Mutex
	keys    []jose.JSONWebKey
	fetched time.Time // last success
	tried   time.Time // last attempt
}

// verify checks jws's one signature (alg already allowed) against the IdP's keys.
func (ks *keySet) verify(ctx context.Context, jwksURI string, jws *jose.JSONWebSignature) ([]byte, error) {
	sig := jws.Signatures[0].Header
	keys, stale := ks.cached()
	var err error
	if stale {
		err = ks.refresh(ctx, jwksURI, keys) // on failure the cached keys still serve
		keys, _ = ks.cached()
	}
	payload, known, ok := jwks.Verify(keys, jws, sig.KeyID, sig.Algorithm)
	switch {
	case ok:
		return payload, nil
	case known:
		return nil, tokenErr("bad signature")
	}
	if !stale {
		err = ks.refresh(ctx, jwksURI, keys)
	} else if err == nil {
		return nil, tokenErr("unknown signing key") // the keys were fetched just now
	}
	if err != nil {
		if errors.Is(err, errRateLimited) && len(keys) > 0 {
			return nil, tokenErr("unknown signing key")
		}
		return nil, fmt.Errorf("%w: the IdP's keys: %w", ErrUnavailable, err)
	}
	keys, _ = ks.cached()
	if payload, _, ok := jwks.Verify(keys, jws, sig.KeyID, sig.Algorithm); ok {
		return payload, nil
	}
	return nil, tokenErr("unknown signing key")
}

var errRateLimited = errors.New("keys fetched too recently to fetch again")

func (ks *keySet) cached() ([]jose.JSONWebKey, bool) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	return ks.keys, len(ks.keys) > 0 && ks.p.now().Sub(ks.fetched) >= keysMaxAge
}

// refresh fetches the keys unless another caller did since had was read, or the last attempt
// was within keysMinGap.
func (ks *keySet) refresh(ctx context.Context, jwksURI string, had []jose.JSONWebKey) error {
	ks.fetchMu.Lock()
	defer ks.fetchMu.Unlock()
	ks.mu.Lock()
	changed := len(ks.keys) != len(had) || (len(had) > 0 && &ks.keys[0] != &had[0])
	tooSoon := !ks.tried.IsZero() && ks.p.now().Sub(ks.tried) < keysMinGap
	if !tooSoon {
		ks.tried = ks.p.now()
	}
	ks.mu.Unlock()
	if changed {
		return nil
	}
	if tooSoon {
		return errRateLimited
	}
	body, err := ks.p.get(ctx, jwksURI)
	if err != nil {
		ks.p.log.WarnContext(ctx, "sso: fetching the IdP's keys failed", "error", err)
		return err
	}
	keys, err := jwks.Parse(body)
	if err != nil {
		ks.p.log.WarnContext(ctx, "sso: the IdP's key set is unusable", "error", err)
		return err
	}
	ks.mu.Lock()
	ks.keys, ks.fetched = keys, ks.p.now()
	ks.mu.Unlock()
	return nil
}
