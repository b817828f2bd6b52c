package oidc

import (
	"context"
	"crypto"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/internal/jwks"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/services/authn"
)

// errRateLimited: the keys were asked for too recently to ask again.
var errRateLimited = errors.New("key set fetched too recently to fetch again")

// keySet is one issuer's published keys, cached. It fetches them when a token names a key it
// does not hold (an issuer rotating keys) and, in the background, when the cached set is
// older than maxAge (so withdrawn keys stop working); never twice within minGap, however many
// tokens with unknown key IDs arrive. A failed fetch keeps the keys it had, so an unreachable
// issuer's tokens still verify against them.
type keySet struct {
	issuer  string
	jwksURL string // configured; empty: discovered
	client  *http.Client
	timeout time.Duration
	minGap  time.Duration
	maxAge  time.Duration
	now     func() time.Time
	log     *slog.Logger
	bg      context.Context // ends when the backend closes
	run     *runner
	// withdrawn is called when a fetch finds a key gone that the cache held, so logins
	// verified with it are not served from the login cache any longer (authn.Deps.Changed).
	withdrawn func()

	mu         sync.Mutex
	keys       []jose.JSONWebKey
	fetchedAt  time.Time // last successful fetch
	triedAt    time.Time // last fetch started
	fetching   *fetch
	discovered string // jwks_uri from discovery, once known
}

type fetch struct {
	done chan struct{}
	err  error // written before done closes
}

// verify checks jws's one signature, made with alg, against the issuer's keys and returns the
// payload. Its errors wrap authn.ErrInvalidCredentials or, when the keys could not be had,
// authn.ErrUnavailable.
func (ks *keySet) verify(ctx context.Context, jws *jose.JSONWebSignature, alg string) ([]byte, error) {
	kid := jws.Signatures[0].Header.KeyID
	keys, stale := ks.cached()
	if stale {
		_, _ = ks.start() // refresh behind this check; it uses what is cached
	}
	payload, known, ok := jwks.Verify(keys, jws, kid, alg)
	switch {
	case ok:
		return payload, nil
	case known:
		// The key is one we hold: the signature is wrong, and fetching keys would not help.
		return nil, fmt.Errorf("%w: bad signature", authn.ErrInvalidCredentials)
	}
	if err := ks.refresh(ctx); err != nil {
		switch {
		case errors.Is(err, errRateLimited) && len(keys) > 0:
			// We looked moments ago and the issuer did not publish this key.
			return nil, fmt.Errorf("%w: unknown signing key", authn.ErrInvalidCredentials)
		case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
		}
		// Without the issuer's current keys we cannot tell a forgery from a rotated key.
		return nil, fmt.Errorf("%w: keys of issuer %q: %w", authn.ErrUnavailable, ks.issuer, err)
	}
	keys, _ = ks.cached()
	if payload, _, ok := jwks.Verify(keys, jws, kid, alg); ok {
		return payload, nil
	}
	return nil, fmt.Errorf("%w: unknown signing key", authn.ErrInvalidCredentials)
}

// cached returns the keys held and whether they are due for a refresh.
func (ks *keySet) cached() ([]jose.JSONWebKey, bool) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	stale := len(ks.keys) > 0 && ks.now().Sub(ks.fetchedAt) >= ks.maxAge
	return ks.keys, stale
}

// refresh waits for a fetch: the one under way, or a new one if the rate limit allows it.
func (ks *keySet) refresh(ctx context.Context) error {
	f, err := ks.start()
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-f.done:
		return f.err
	}
}

// start returns the fetch under way, or starts one unless the last started within minGap.
// The fetch runs on the backend's context, not a caller's, so callers that stop waiting do not
// cancel it for the others.
func (ks *keySet) start() (*fetch, error) {
	ks.mu.Lock()
	defer ks.mu.Unlock()
	if ks.fetching != nil {
		return ks.fetching, nil
	}
	now := ks.now()
	if !ks.triedAt.IsZero() && now.Sub(ks.triedAt) < ks.minGap {
		return nil, errRateLimited
	}
	f := &fetch{done: make(chan struct{})}
	started := ks.run.Go(func() {
		keys, err := ks.fetchKeys()
		ks.mu.Lock()
		var gone bool
		if err == nil {
			gone = anyMissing(ks.keys, keys)
			ks.keys, ks.fetchedAt = keys, ks.now()
		}
		ks.fetching = nil
		held := len(ks.keys)
		ks.mu.Unlock()
		if err != nil {
			ks.log.Warn("fetching workload identity issuer keys failed", "issuer", ks.issuer, "cached_keys", held, "error", err)
		} else {
			ks.log.Debug("fetched workload identity issuer keys", "issuer", ks.issuer, "keys", len(keys))
		}
		if gone && ks.withdrawn != nil {
			ks.log.Info("workload identity issuer withdrew a key", "issuer", ks.issuer)
			ks.withdrawn()
		}
		f.err = err
		close(f.done)
	})
	if !started {
		return nil, errClosed
	}
	ks.triedAt, ks.fetching = now, f
	return f, nil
}

var errClosed = errors.New("backend closed")

// runner runs the backend's goroutines and waits for them at Close; none starts after.
type runner struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go runs f in a goroutine unless Close has begun; it reports whether it did.
func (r *runner) Go(f func()) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		f()
	}()
	return true
}

// Close lets no new goroutine start and waits for the running ones.
func (r *runner) Close() {
	r.mu.Lock()
	r.closed = true
	r.mu.Unlock()
	r.wg.Wait()
}

func (ks *keySet) fetchKeys() ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(ks.bg, ks.timeout)
	defer cancel()
	u := ks.jwksURL
	if u == "" {
		ks.mu.Lock()
		u = ks.discovered
		ks.mu.Unlock()
	}
	if u == "" {
		var err error
		if u, err = ks.discover(ctx); err != nil {
			return nil, err
		}
		ks.mu.Lock()
		ks.discovered = u
		ks.mu.Unlock()
	}
	body, err := ks.get(ctx, u)
	if err != nil {
		return nil, err
	}
	return jwks.Parse(body)
}

// discover reads the issuer's OpenID Connect discovery document for its jwks_uri. The
// document must name the issuer exactly, as OpenID Connect Discovery 1.0 §4.3 requires.
func (ks *keySet) discover(ctx context.Context) (string, error) {
	body, err := ks.get(ctx, strings.TrimSuffix(ks.issuer, "/")+"/.well-known/openid-configuration")
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	var doc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if err := json.Unmarshal(body, &doc); err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	if doc.Issuer != ks.issuer {
		return "", fmt.Errorf("discovery document names issuer %q, want %q", doc.Issuer, ks.issuer)
	}
	if err := checkURL(doc.JWKSURI); err != nil {
		return "", fmt.Errorf("discovery: jwks_uri: %w", err)
	}
	return doc.JWKSURI, nil
}

func (ks *keySet) get(ctx context.Context, u string) ([]byte, error) {
	return jwks.Get(ctx, ks.client, u)
}

// anyMissing reports whether a key of old is not in cur, comparing the keys themselves (by
// thumbprint), not their IDs.
func anyMissing(old, cur []jose.JSONWebKey) bool {
	have := map[string]bool{}
	for i := range cur {
		if tp, err := cur[i].Thumbprint(crypto.SHA256); err == nil {
			have[string(tp)] = true
		}
	}
	for i := range old {
		if tp, err := old[i].Thumbprint(crypto.SHA256); err != nil || !have[string(tp)] {
			return true
		}
	}
	return false
}
