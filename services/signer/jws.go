package signer

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/asn1"
	"fmt"
	"math/big"

	jose "github.com/go-jose/go-jose/v4"
)

// opaque adapts a Key (any crypto.Signer: file, Vault, HSM) to go-jose, which needs raw
// r‖s signatures for ECDSA where crypto.Signer returns ASN.1.
type opaque struct {
	ctx context.Context // the request's: a Vault-backed key must not outlive it
	key Key
	pub *jose.JSONWebKey
}

var _ jose.OpaqueSigner = (*opaque)(nil)

func publicJWK(k Key) *jose.JSONWebKey {
	return &jose.JSONWebKey{Key: k.Public(), KeyID: k.ID(), Algorithm: string(k.Algorithm()), Use: "sig"}
}

func (o *opaque) Public() *jose.JSONWebKey { return o.pub }
func (o *opaque) Algs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{o.key.Algorithm()}
}

func (o *opaque) SignPayload(payload []byte, alg jose.SignatureAlgorithm) ([]byte, error) {
	var digest []byte
	var opts crypto.SignerOpts
	switch alg {
	case jose.ES256, jose.RS256:
		d := sha256.Sum256(payload)
		digest, opts = d[:], crypto.SHA256
	case jose.ES384:
		d := sha512.Sum384(payload)
		digest, opts = d[:], crypto.SHA384
	case jose.EdDSA:
		digest, opts = payload, crypto.Hash(0)
	default:
		return nil, fmt.Errorf("unsupported algorithm %s", alg)
	}
	var sig []byte
	var err error
	if cs, ok := o.key.(ContextSigner); ok {
		sig, err = cs.SignContext(o.ctx, digest, opts)
	} else {
		sig, err = o.key.Sign(rand.Reader, digest, opts)
	}
	if err != nil {
		return nil, err
	}
	if pub, ok := o.key.Public().(*ecdsa.PublicKey); ok && (alg == jose.ES256 || alg == jose.ES384) {
		return ecdsaRaw(sig, (pub.Curve.Params().BitSize+7)/8)
	}
	return sig, nil
}

// ecdsaRaw turns an ASN.1 ECDSA signature into JWS's fixed-width r‖s.
func ecdsaRaw(der []byte, size int) ([]byte, error) {
	var s struct{ R, S *big.Int }
	rest, err := asn1.Unmarshal(der, &s)
	if err != nil || len(rest) > 0 || s.R == nil || s.S == nil {
		return nil, fmt.Errorf("malformed ECDSA signature")
	}
	if s.R.Sign() <= 0 || s.S.Sign() <= 0 || len(s.R.Bytes()) > size || len(s.S.Bytes()) > size {
		return nil, fmt.Errorf("ECDSA signature out of range")
	}
	out := make([]byte, 2*size)
	s.R.FillBytes(out[:size])
	s.S.FillBytes(out[size:])
	return out, nil
}
