package signer

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/pkg/scope"
)

// Options are the signer's validated runtime settings.
type Options struct {
	Issuer string
	// Audiences are the services (aud) this signer issues tokens for; any other audience is
	// refused, and an empty list refuses every one. The caller (the gateway) checks the
	// service too, but the signer must not certify a token for a registry it does not serve
	// whoever asks.
	Audiences []string
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

// Signer signs tokens with the key manager's current key. It is safe for concurrent use and
// takes no lock on the signing path.
type Signer struct {
	opt       Options
	audiences map[string]struct{}
	km        KeyManager
	headers   headerCache
}

// New returns a signer.
func New(opt Options, km KeyManager) *Signer {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	aud := make(map[string]struct{}, len(opt.Audiences))
	for _, a := range opt.Audiences {
		aud[a] = struct{}{}
	}
	return &Signer{opt: opt, audiences: aud, km: km}
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
	if err := s.check(c); err != nil {
		return Token{}, err
	}
	k, err := s.km.SigningKey(ctx)
	if err != nil {
		return Token{}, fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	h, err := s.headers.get(k)
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
	enc := base64.RawURLEncoding
	// One buffer for header.payload.signature; 2×66 bytes covers an ES384 signature, a larger
	// (RSA) one grows it once.
	buf := make([]byte, 0, len(h.prefix)+enc.EncodedLen(len(payload))+1+enc.EncodedLen(132))
	buf = append(buf, h.prefix...)
	buf = enc.AppendEncode(buf, payload)
	sig, err := signJWS(ctx, k, h, buf)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			return Token{}, err
		}
		return Token{}, fmt.Errorf("%w: sign: %v", ErrUnavailable, err)
	}
	buf = append(buf, '.')
	buf = enc.AppendEncode(buf, sig)
	return Token{Raw: string(buf), IssuedAt: now, ExpiresAt: exp, KeyID: k.ID()}, nil
}

// check refuses what the signer must never sign, whoever the caller is.
func (s *Signer) check(c Claims) error {
	_, served := s.audiences[c.Audience]
	switch {
	case c.Audience == "":
		return fmt.Errorf("%w: audience is required", ErrInvalidRequest)
	case !served:
		return fmt.Errorf("%w: audience %q is not one this signer issues tokens for (signer.audiences)", ErrInvalidRequest, c.Audience)
	case c.Subject == "" && len(c.Access) > 0:
		return fmt.Errorf("%w: a token that grants access needs a subject", ErrInvalidRequest)
	case c.JTI == "":
		return fmt.Errorf("%w: jti is required", ErrInvalidRequest)
	case c.TTL <= 0:
		return fmt.Errorf("%w: ttl must be positive", ErrInvalidRequest)
	case s.opt.MaxTTL > 0 && c.TTL > s.opt.MaxTTL:
		return fmt.Errorf("%w: ttl %s exceeds the maximum %s", ErrInvalidRequest, c.TTL, s.opt.MaxTTL)
	}
	return nil
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

// JWKSMaxAge is how long verifiers may cache the JWKS (DefaultJWKSMaxAge for a key manager
// that does not rotate).
func (s *Signer) JWKSMaxAge(ctx context.Context) time.Duration { return s.km.JWKSMaxAge(ctx) }
