package signer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/pkg/scope"
)

// Options are the signer's validated runtime settings.
type Options struct {
	Issuer string
	// MaxTTL caps what a caller may ask for.
	MaxTTL time.Duration
	// NotBeforeSkew backdates nbf so a verifier whose clock is a little behind accepts the token.
	NotBeforeSkew time.Duration
	Now           func() time.Time
}

// Claims are what a caller asks to be signed.
type Claims struct {
	Subject  string
	Audience string
	Access   []scope.Scope
	TTL      time.Duration
	JTI      string
}

// Token is a signed token.
type Token struct {
	Raw       string
	IssuedAt  time.Time
	ExpiresAt time.Time
	KeyID     string
}

// Signer signs tokens with the key manager's current key.
type Signer struct {
	opt Options
	km  KeyManager

	mu   sync.Mutex
	jwks map[string]*jose.JSONWebKey // by kid: the public half go-jose needs per signature
}

// New returns a signer.
func New(opt Options, km KeyManager) *Signer {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Signer{opt: opt, km: km, jwks: map[string]*jose.JSONWebKey{}}
}

// Issuer is the iss claim.
func (s *Signer) Issuer() string { return s.opt.Issuer }

// The distribution token's claim set. aud is one string: registry 2.8 cannot parse an array.
type claimSet struct {
	Issuer    string        `json:"iss"`
	Subject   string        `json:"sub"`
	Audience  string        `json:"aud"`
	Expiry    int64         `json:"exp"`
	NotBefore int64         `json:"nbf"`
	IssuedAt  int64         `json:"iat"`
	ID        string        `json:"jti"`
	Access    []accessEntry `json:"access"`
}

type accessEntry struct {
	Type    string   `json:"type"`
	Class   string   `json:"class,omitempty"`
	Name    string   `json:"name"`
	Actions []string `json:"actions"`
}

// Sign builds and signs a token.
func (s *Signer) Sign(ctx context.Context, c Claims) (Token, error) {
	switch {
	case c.Audience == "":
		return Token{}, fmt.Errorf("%w: audience is required", ErrInvalidRequest)
	case c.JTI == "":
		return Token{}, fmt.Errorf("%w: jti is required", ErrInvalidRequest)
	case c.TTL <= 0:
		return Token{}, fmt.Errorf("%w: ttl must be positive", ErrInvalidRequest)
	case s.opt.MaxTTL > 0 && c.TTL > s.opt.MaxTTL:
		return Token{}, fmt.Errorf("%w: ttl %s exceeds the maximum %s", ErrInvalidRequest, c.TTL, s.opt.MaxTTL)
	}
	js, kid, err := s.joseSigner(ctx)
	if err != nil {
		return Token{}, err
	}
	now := s.opt.Now().Truncate(time.Second)
	exp := now.Add(c.TTL)
	cs := claimSet{
		Issuer: s.opt.Issuer, Subject: c.Subject, Audience: c.Audience,
		Expiry: exp.Unix(), NotBefore: now.Add(-s.opt.NotBeforeSkew).Unix(), IssuedAt: now.Unix(),
		ID: c.JTI, Access: make([]accessEntry, 0, len(c.Access)),
	}
	for _, a := range c.Access {
		cs.Access = append(cs.Access, accessEntry{Type: a.Type, Class: a.Class, Name: a.Name, Actions: a.Actions})
	}
	payload, err := json.Marshal(cs)
	if err != nil {
		return Token{}, fmt.Errorf("marshal claims: %w", err)
	}
	jws, err := js.Sign(payload)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return Token{}, err
		}
		return Token{}, fmt.Errorf("%w: sign: %v", ErrUnavailable, err)
	}
	raw, err := jws.CompactSerialize()
	if err != nil {
		return Token{}, fmt.Errorf("serialize: %w", err)
	}
	return Token{Raw: raw, IssuedAt: now, ExpiresAt: exp, KeyID: kid}, nil
}

// joseSigner builds the go-jose signer for this request: the key may change between calls
// (rotation) and a network-backed key must sign within this request's deadline.
func (s *Signer) joseSigner(ctx context.Context) (jose.Signer, string, error) {
	k, err := s.km.SigningKey(ctx)
	if err != nil {
		return nil, "", fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	s.mu.Lock()
	pub, ok := s.jwks[k.ID()]
	if !ok {
		pub = publicJWK(k)
		s.jwks[k.ID()] = pub
	}
	s.mu.Unlock()
	opts := (&jose.SignerOptions{}).WithType("JWT")
	if c, ok := k.(Chainer); ok {
		chain := c.Chain()
		x5c := make([]string, len(chain))
		for i, der := range chain {
			x5c[i] = base64.StdEncoding.EncodeToString(der)
		}
		opts = opts.WithHeader("x5c", x5c)
	}
	js, err := jose.NewSigner(jose.SigningKey{Algorithm: k.Algorithm(), Key: &opaque{ctx: ctx, key: k, pub: pub}}, opts)
	if err != nil {
		return nil, "", fmt.Errorf("signer for key %s: %w", k.ID(), err)
	}
	return js, k.ID(), nil
}

// JWKS returns the JSON Web Key Set of every key verifiers should trust.
func (s *Signer) JWKS(ctx context.Context) ([]byte, error) {
	pubs, err := s.km.PublicKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	set := jose.JSONWebKeySet{Keys: make([]jose.JSONWebKey, 0, len(pubs))}
	for _, p := range pubs {
		set.Keys = append(set.Keys, jose.JSONWebKey{Key: p.Key, KeyID: p.ID, Algorithm: string(p.Algorithm), Use: "sig", Certificates: p.Certificates})
	}
	return json.Marshal(set)
}

// JWKSMaxAge is how long verifiers may cache the JWKS (default one minute).
func (s *Signer) JWKSMaxAge(ctx context.Context) time.Duration {
	if m, ok := s.km.(MaxAger); ok {
		return m.JWKSMaxAge(ctx)
	}
	return time.Minute
}
