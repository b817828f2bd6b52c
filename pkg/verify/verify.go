// Package verify checks Portcullis tokens in other services: the signing keys come from the
// JWKS that Portcullis's discovery document names, cached as its Cache-Control says and
// fetched again (at most once per MinRefreshInterval) when a token names a key id the cache
// does not hold — which is how a key rotation reaches a verifier. Only the algorithms allowed
// are accepted (never none or HS*), keys named inside a token (jwk, jku, x5u headers) are
// never used, and iss, aud, exp, nbf and iat are checked with a leeway.
//
// Public API: other programs import this package, so its exported names change only in a
// way that keeps their code compiling (Portcullis's own internals live under internal/).
package verify

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Sentinel errors; Verify wraps one of them.
var (
	ErrMalformed   = errors.New("verify: malformed token")
	ErrAlgorithm   = errors.New("verify: algorithm not allowed")
	ErrUnknownKey  = errors.New("verify: token signed by an unknown key")
	ErrSignature   = errors.New("verify: bad signature")
	ErrExpired     = errors.New("verify: token expired")
	ErrNotYetValid = errors.New("verify: token not yet valid")
	ErrIssuer      = errors.New("verify: wrong issuer")
	ErrAudience    = errors.New("verify: wrong audience")
	// ErrChain: the token's x5c chain does not lead to a configured root.
	ErrChain = errors.New("verify: x5c chain not trusted")
	// ErrUnavailable: the keys could not be fetched and none are cached.
	ErrUnavailable = errors.New("verify: signing keys unavailable")
)

// DefaultAlgorithms are the asymmetric algorithms Portcullis signs with.
var DefaultAlgorithms = []jose.SignatureAlgorithm{jose.ES256, jose.ES384, jose.ES512, jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512, jose.EdDSA}

// Options configure a Verifier.
type Options struct {
	// URL is Portcullis's public URL (gateway.public_url); the discovery document is at
	// URL/.well-known/openid-configuration.
	URL string
	// Audience is this service's name: tokens must be for it (required).
	Audience string
	// Issuer overrides the expected iss (default: the discovery document's issuer).
	Issuer string
	// Algorithms allowed (default DefaultAlgorithms); HS* and none are refused whatever is set.
	Algorithms []jose.SignatureAlgorithm
	// Leeway for exp, nbf and iat (default 30s).
	Leeway time.Duration
	// Roots, when set, verify tokens that carry an x5c certificate chain (Portcullis's x5c
	// mode): the chain must lead to one of them and the leaf's key signs. Tokens without x5c
	// are still verified against the JWKS.
	Roots *x509.CertPool
	// MinRefreshInterval bounds fetches caused by unknown key ids (default 10s).
	MinRefreshInterval time.Duration
	// HTTPClient fetches the discovery document and the JWKS. The Verifier uses a copy that
	// refuses redirects leaving https or going to another host or port: whoever answers
	// the redirect would choose the keys (the client's own redirect policy runs after).
	HTTPClient *http.Client
	Now        func() time.Time
	Logger     *slog.Logger
}

// Claims are a verified token's claims.
type Claims struct {
	Subject, Issuer, ID string
	Audience            []string
	Expiry, IssuedAt    time.Time
	Access              []Access
}

// Access is one entry of the token's access list.
type Access struct {
	Type    string   `json:"type"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Allows reports whether the token grants action on the resource typ:name.
func (c *Claims) Allows(typ, name, action string) bool {
	for _, a := range c.Access {
		if a.Type != typ || a.Name != name {
			continue
		}
		for _, act := range a.Actions {
			if act == action || act == "*" {
				return true
			}
		}
	}
	return false
}

// Verifier verifies tokens; safe for concurrent use.
type Verifier struct {
	o    Options
	algs []jose.SignatureAlgorithm

	mu        sync.Mutex
	keys      jose.JSONWebKeySet
	issuer    string
	fetchedAt time.Time
	expiresAt time.Time
	fetching  chan struct{} // closed when the fetch in flight ends
	// fetchErr is why the last fetch failed, for ErrUnavailable's message; nil after one
	// that worked.
	fetchErr error
}

// New returns a Verifier; it fetches the keys when first needed.
func New(o Options) (*Verifier, error) {
	if o.URL == "" || o.Audience == "" {
		return nil, errors.New("verify: URL and Audience are required")
	}
	if o.Leeway <= 0 {
		o.Leeway = 30 * time.Second
	}
	if o.MinRefreshInterval <= 0 {
		o.MinRefreshInterval = 10 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	o.HTTPClient = sameOriginRedirects(o.HTTPClient)
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	algs := o.Algorithms
	if len(algs) == 0 {
		algs = DefaultAlgorithms
	}
	var allowed []jose.SignatureAlgorithm
	for _, a := range algs {
		if !strings.HasPrefix(string(a), "HS") && a != "none" {
			allowed = append(allowed, a)
		}
	}
	if len(allowed) == 0 {
		return nil, errors.New("verify: no asymmetric algorithm allowed")
	}
	return &Verifier{o: o, algs: allowed}, nil
}

// Verify checks raw and returns its claims.
func (v *Verifier) Verify(ctx context.Context, raw string) (*Claims, error) {
	tok, err := jwt.ParseSigned(raw, v.algs)
	if err != nil {
		if strings.Contains(err.Error(), "unexpected signature algorithm") {
			return nil, fmt.Errorf("%w: %v", ErrAlgorithm, err)
		}
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if len(tok.Headers) != 1 {
		return nil, ErrMalformed
	}
	key, issuer, err := v.signingKey(ctx, tok.Headers[0])
	if err != nil {
		return nil, err
	}
	var reg jwt.Claims
	var priv struct {
		Access []Access `json:"access"`
	}
	if err := tok.Claims(key.Key, &reg, &priv); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSignature, err)
	}
	if v.o.Issuer != "" {
		issuer = v.o.Issuer
	}
	err = reg.ValidateWithLeeway(jwt.Expected{Issuer: issuer, AnyAudience: jwt.Audience{v.o.Audience}, Time: v.o.Now()}, v.o.Leeway)
	switch {
	case errors.Is(err, jwt.ErrExpired):
		return nil, ErrExpired
	case errors.Is(err, jwt.ErrNotValidYet), errors.Is(err, jwt.ErrIssuedInTheFuture):
		return nil, ErrNotYetValid
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return nil, ErrIssuer
	case errors.Is(err, jwt.ErrInvalidAudience):
		return nil, ErrAudience
	case err != nil:
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	if reg.Expiry == nil {
		return nil, fmt.Errorf("%w: no exp", ErrMalformed)
	}
	c := &Claims{Subject: reg.Subject, Issuer: reg.Issuer, ID: reg.ID, Audience: reg.Audience,
		Expiry: reg.Expiry.Time(), Access: priv.Access}
	if reg.IssuedAt != nil {
		c.IssuedAt = reg.IssuedAt.Time()
	}
	return c, nil
}

// signingKey picks the key that must have signed: the x5c leaf's when roots are configured
// and the token carries a chain, else the JWKS key named by kid.
func (v *Verifier) signingKey(ctx context.Context, h jose.Header) (jose.JSONWebKey, string, error) {
	if v.o.Roots == nil {
		return v.key(ctx, h.KeyID)
	}
	chains, err := h.Certificates(x509.VerifyOptions{Roots: v.o.Roots, CurrentTime: v.o.Now(),
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
	if errors.Is(err, jose.ErrMissingX5cHeader) {
		return v.key(ctx, h.KeyID)
	}
	if err != nil {
		return jose.JSONWebKey{}, "", fmt.Errorf("%w: %v", ErrChain, err)
	}
	issuer := v.o.Issuer
	if issuer == "" {
		// The issuer still comes from the discovery document; any cached copy will do.
		if _, issuer, err = v.key(ctx, ""); err != nil && !errors.Is(err, ErrUnknownKey) {
			return jose.JSONWebKey{}, "", err
		}
		v.mu.Lock()
		issuer = v.issuer
		v.mu.Unlock()
	}
	return jose.JSONWebKey{Key: chains[0][0].PublicKey}, issuer, nil
}

// key finds kid in the cached keys, fetching them when the cache is stale or lacks kid (the
// latter at most once per MinRefreshInterval). Cached keys keep working while Portcullis is
// unreachable.
func (v *Verifier) key(ctx context.Context, kid string) (jose.JSONWebKey, string, error) {
	for attempt := 0; ; attempt++ {
		v.mu.Lock()
		now := v.o.Now()
		ks := v.keys.Key(kid)
		stale := now.After(v.expiresAt)
		mayFetch := now.Sub(v.fetchedAt) >= v.o.MinRefreshInterval || v.fetchedAt.IsZero()
		if len(ks) > 0 && (!stale || attempt > 0) {
			k, iss := ks[0], v.issuer
			v.mu.Unlock()
			return k, iss, nil
		}
		if attempt > 0 || (!mayFetch && !stale) {
			noKeys, why := len(v.keys.Keys) == 0, v.fetchErr
			v.mu.Unlock()
			if noKeys {
				if why != nil {
					return jose.JSONWebKey{}, "", fmt.Errorf("%w: %v", ErrUnavailable, why)
				}
				return jose.JSONWebKey{}, "", ErrUnavailable
			}
			return jose.JSONWebKey{}, "", fmt.Errorf("%w: kid %q", ErrUnknownKey, kid)
		}
		if v.fetching != nil { // someone else fetches: wait for it
			ch := v.fetching
			v.mu.Unlock()
			select {
			case <-ch:
			case <-ctx.Done():
				return jose.JSONWebKey{}, "", ctx.Err()
			}
			continue
		}
		ch := make(chan struct{})
		v.fetching = ch
		v.mu.Unlock()
		keys, iss, maxAge, err := v.fetch(ctx)
		v.mu.Lock()
		v.fetching = nil
		v.fetchedAt = v.o.Now()
		v.fetchErr = err
		if err == nil {
			v.keys, v.issuer, v.expiresAt = keys, iss, v.fetchedAt.Add(maxAge)
		} else {
			v.o.Logger.WarnContext(ctx, "fetching Portcullis signing keys failed; using the cached ones", "err", err)
		}
		v.mu.Unlock()
		close(ch)
	}
}

// fetch reads the discovery document, then the JWKS it names; maxAge is the JWKS's
// Cache-Control max-age, kept between 1 second and 1 day (5 minutes without one). A short
// max-age is honoured: Portcullis in Vault mode sets it below the key propagation delay, so
// a verifier holds a new key before any token is signed with it.
func (v *Verifier) fetch(ctx context.Context) (jose.JSONWebKeySet, string, time.Duration, error) {
	var disc struct {
		Issuer  string `json:"issuer"`
		JWKSURI string `json:"jwks_uri"`
	}
	if _, err := v.getJSON(ctx, strings.TrimSuffix(v.o.URL, "/")+"/.well-known/openid-configuration", &disc); err != nil {
		return jose.JSONWebKeySet{}, "", 0, err
	}
	if disc.JWKSURI == "" {
		return jose.JSONWebKeySet{}, "", 0, errors.New("discovery document names no jwks_uri")
	}
	var set jose.JSONWebKeySet
	hdr, err := v.getJSON(ctx, disc.JWKSURI, &set)
	if err != nil {
		return jose.JSONWebKeySet{}, "", 0, err
	}
	return set, disc.Issuer, maxAge(hdr.Get("Cache-Control")), nil
}

func (v *Verifier) getJSON(ctx context.Context, url string, out any) (http.Header, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := v.o.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out); err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	return resp.Header, nil
}

// sameOriginRedirects returns a copy of hc that follows a redirect only on the same host and
// port, and never from https to http. The rule is pkg/regclient's KeepCredentials, kept here
// so that this package stays free of the registry client's dependencies.
func sameOriginRedirects(hc *http.Client) *http.Client {
	cp := *hc
	prev := hc.CheckRedirect
	cp.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		from, to := via[0].URL, req.URL
		switch {
		case strings.EqualFold(from.Scheme, "https") && !strings.EqualFold(to.Scheme, "https"):
			return fmt.Errorf("refused the redirect from %s to %s: it leaves https", from.Redacted(), to.Redacted())
		case !strings.EqualFold(from.Hostname(), to.Hostname()) || port(from) != port(to):
			return fmt.Errorf("refused the redirect from %s to %s: another host", from.Redacted(), to.Redacted())
		case prev != nil:
			return prev(req, via)
		case len(via) >= 10:
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return &cp
}

func port(u *url.URL) string {
	if p := u.Port(); p != "" {
		return p
	}
	if strings.EqualFold(u.Scheme, "https") {
		return "443"
	}
	return "80"
}

func maxAge(cc string) time.Duration {
	for _, d := range strings.Split(cc, ",") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(strings.ToLower(d)), "max-age="); ok {
			if n, err := strconv.Atoi(v); err == nil {
				return min(max(time.Duration(n)*time.Second, time.Second), 24*time.Hour)
			}
		}
	}
	return 5 * time.Minute
}
