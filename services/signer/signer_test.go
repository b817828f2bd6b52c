package signer_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/keyid"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/signer"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/local"
)

type memKey struct {
	*ecdsa.PrivateKey
	signer.UnimplementedKey
	id string
}

func (k memKey) ID() string                         { return k.id }
func (k memKey) Algorithm() jose.SignatureAlgorithm { return jose.ES256 }

type memKM struct {
	signer.UnimplementedKeyManager
	k signer.Key
}

func (m memKM) SigningKey(context.Context) (signer.Key, error) { return m.k, nil }
func (m memKM) PublicKeys(context.Context) ([]signer.PublicKey, error) {
	return []signer.PublicKey{{ID: m.k.ID(), Algorithm: m.k.Algorithm(), Key: m.k.Public()}}, nil
}

func TestSignProducesDistributionClaims(t *testing.T) {
	t.Parallel()
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Unix(1_800_000_000, 0)
	s := signer.New(signer.Options{Issuer: "portcullis", Audiences: []string{"registry.local"}, MaxTTL: time.Hour, NotBeforeSkew: 10 * time.Second, Now: func() time.Time { return now }},
		memKM{k: memKey{PrivateKey: pk, id: "kid-1"}})
	tok, err := s.Sign(context.Background(), signer.Claims{
		Subject: "alice", Audience: "registry.local", TTL: 5 * time.Minute, JTI: "j1",
		Access: []scope.Scope{{Type: "repository", Name: "alice/app", Actions: []string{"pull", "push"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(tok.Raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	if kid := jws.Signatures[0].Header.KeyID; kid != "kid-1" || tok.KeyID != "kid-1" {
		t.Fatalf("kid = %q", kid)
	}
	payload, err := jws.Verify(&pk.PublicKey)
	if err != nil {
		t.Fatalf("signature does not verify: %v", err)
	}
	var got map[string]any
	if err := json.Unmarshal(payload, &got); err != nil {
		t.Fatal(err)
	}
	want := map[string]any{"iss": "portcullis", "sub": "alice", "aud": "registry.local", "jti": "j1",
		"iat": float64(now.Unix()), "nbf": float64(now.Unix() - 10), "exp": float64(now.Unix() + 300)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("claim %s = %#v, want %#v", k, got[k], v)
		}
	}
	acc, _ := json.Marshal(got["access"])
	if string(acc) != `[{"actions":["pull","push"],"name":"alice/app","type":"repository"}]` {
		t.Errorf("access = %s", acc)
	}
}

func TestSignRefusesBadRequests(t *testing.T) {
	t.Parallel()
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pull := []scope.Scope{{Type: "repository", Name: "alice/app", Actions: []string{"pull"}}}
	tests := []struct {
		name      string
		audiences []string
		c         signer.Claims
		wantErr   string // "" means the token is signed
	}{
		{"served audience", []string{"a", "b"}, signer.Claims{Subject: "alice", Audience: "b", JTI: "j", TTL: time.Minute, Access: pull}, ""},
		{"anonymous without access", []string{"a"}, signer.Claims{Audience: "a", JTI: "j", TTL: time.Minute}, ""},
		{"audience not served", []string{"a", "b"}, signer.Claims{Subject: "alice", Audience: "evil.example", JTI: "j", TTL: time.Minute}, `audience "evil.example" is not one`},
		{"audience differs in case", []string{"registry.local"}, signer.Claims{Subject: "alice", Audience: "Registry.local", JTI: "j", TTL: time.Minute}, "is not one"},
		{"no audiences configured", nil, signer.Claims{Subject: "alice", Audience: "a", JTI: "j", TTL: time.Minute}, "is not one"},
		{"empty audiences configured", []string{}, signer.Claims{Subject: "alice", Audience: "a", JTI: "j", TTL: time.Minute}, "is not one"},
		{"empty subject with access", []string{"a"}, signer.Claims{Audience: "a", JTI: "j", TTL: time.Minute, Access: pull}, "needs a subject"},
		{"no audience", []string{"a"}, signer.Claims{Subject: "alice", JTI: "j", TTL: time.Minute}, "audience is required"},
		{"no jti", []string{"a"}, signer.Claims{Subject: "alice", Audience: "a", TTL: time.Minute}, "jti is required"},
		{"zero ttl", []string{"a"}, signer.Claims{Subject: "alice", Audience: "a", JTI: "j"}, "ttl must be positive"},
		{"ttl too big", []string{"a"}, signer.Claims{Subject: "alice", Audience: "a", JTI: "j", TTL: 2 * time.Hour}, "exceeds the maximum"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := signer.New(signer.Options{Issuer: "i", Audiences: tt.audiences, MaxTTL: time.Hour}, memKM{k: memKey{PrivateKey: pk, id: "k"}})
			tok, err := s.Sign(context.Background(), tt.c)
			if tt.wantErr == "" {
				if err != nil || tok.Raw == "" {
					t.Fatalf("Sign = %v, want a token", err)
				}
				return
			}
			if !errors.Is(err, signer.ErrInvalidRequest) || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Sign error = %v, want ErrInvalidRequest mentioning %q", err, tt.wantErr)
			}
			if tok.Raw != "" {
				t.Fatal("a refused request returned a token")
			}
		})
	}
}

// The allow-list is the signer's own copy: changing the caller's slice later changes nothing.
func TestSignAudiencesCopied(t *testing.T) {
	t.Parallel()
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	auds := []string{"a"}
	s := signer.New(signer.Options{Audiences: auds}, memKM{k: memKey{PrivateKey: pk, id: "k"}})
	auds[0] = "evil"
	if _, err := s.Sign(context.Background(), signer.Claims{Audience: "evil", JTI: "j", TTL: time.Minute}); !errors.Is(err, signer.ErrInvalidRequest) {
		t.Fatalf("Sign for an audience added after New = %v, want ErrInvalidRequest", err)
	}
}

func TestLocalKeyManager(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := context.Background()
	path := filepath.Join(dir, "key.pem")
	km, err := (&local.Config{Path: path}).Open(ctx, signer.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	k1, _ := km.SigningKey(ctx)
	if k1.Algorithm() != jose.ES256 {
		t.Fatalf("generated key alg = %s, want ES256", k1.Algorithm())
	}
	if fi := mustStat(t, path); fi&0o077 != 0 {
		t.Fatalf("key file mode %o is readable by others", fi)
	}
	// Reopening loads the same key, not a new one.
	km2, err := (&local.Config{Path: path}).Open(ctx, signer.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := km2.SigningKey(ctx)
	if k1.ID() != k2.ID() {
		t.Fatal("reopening generated a different key")
	}
	want, _ := keyid.Thumbprint(k1.Public())
	if k1.ID() != want {
		t.Fatalf("kid = %s, want thumbprint %s", k1.ID(), want)
	}
	km3, err := (&local.Config{Path: path, KeyIDMode: keyid.ModeLibtrust}).Open(ctx, signer.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	k3, _ := km3.SigningKey(ctx)
	if want, _ := keyid.Libtrust(k1.Public()); k3.ID() != want {
		t.Fatalf("libtrust kid = %s, want %s", k3.ID(), want)
	}

	rsaPath := filepath.Join(dir, "rsa.pem")
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	writePEM(t, rsaPath, "RSA PRIVATE KEY", x509.MarshalPKCS1PrivateKey(rk))
	kmR, err := (&local.Config{Path: rsaPath}).Open(ctx, signer.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	kR, _ := kmR.SigningKey(ctx)
	if kR.Algorithm() != jose.RS256 {
		t.Fatalf("RSA key alg = %s", kR.Algorithm())
	}
	// The RSA key signs tokens that verify.
	s := signer.New(signer.Options{Issuer: "i", Audiences: []string{"a"}}, kmR)
	tok, err := s.Sign(ctx, signer.Claims{Audience: "a", JTI: "j", TTL: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	jws, _ := jose.ParseSigned(tok.Raw, []jose.SignatureAlgorithm{jose.RS256})
	if _, err := jws.Verify(&rk.PublicKey); err != nil {
		t.Fatal(err)
	}

	bad := filepath.Join(dir, "bad.pem")
	writePEM(t, bad, "CERTIFICATE", []byte("x"))
	if _, err := (&local.Config{Path: bad}).Open(ctx, signer.Deps{}); err == nil {
		t.Fatal("a certificate was accepted as a key")
	}
	if errs := (&local.Config{KeyIDMode: "nope"}).Validate(); len(errs) != 2 {
		t.Fatalf("Validate = %v, want 2 problems", errs)
	}
}

func TestSelfSignedCertificate(t *testing.T) {
	t.Parallel()
	pk, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p, err := signer.SelfSignedCertificatePEM(memKey{PrivateKey: pk, id: "k"}, "portcullis", time.Now(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(p)
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.CheckSignatureFrom(c); err != nil {
		t.Fatal(err)
	}
	if !c.PublicKey.(*ecdsa.PublicKey).Equal(&pk.PublicKey) {
		t.Fatal("certificate is for another key")
	}
}
