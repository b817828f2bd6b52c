package signer

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"fmt"
	"math/big"
	"testing"

	jose "github.com/go-jose/go-jose/v4"
	"golang.org/x/crypto/cryptobyte"
	cbasn1 "golang.org/x/crypto/cryptobyte/asn1"
)

// The header cache reuses an entry per kid and stays bounded however many keys it sees.
func TestHeaderCacheBounded(t *testing.T) {
	t.Parallel()
	pk, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := func(id string) Key { return &staticKey{Signer: pk, id: id, alg: jose.ES256} }
	var c headerCache
	first, err := c.get(key("a"))
	if err != nil {
		t.Fatal(err)
	}
	if again, _ := c.get(key("a")); again != first {
		t.Fatal("the same kid built a new header")
	}
	for i := range 3 * maxCachedKeys {
		if _, err := c.get(key(fmt.Sprint("k", i))); err != nil {
			t.Fatal(err)
		}
		if n := len(*c.m.Load()); n > maxCachedKeys {
			t.Fatalf("cache holds %d keys, want at most %d", n, maxCachedKeys)
		}
	}
}

func TestECDSARaw(t *testing.T) {
	t.Parallel()
	der := func(r, s []byte) []byte {
		var b cryptobyte.Builder
		b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
			b.AddASN1(cbasn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(r) })
			b.AddASN1(cbasn1.INTEGER, func(b *cryptobyte.Builder) { b.AddBytes(s) })
		})
		return b.BytesOrPanic()
	}
	pad := func(n int, v ...byte) []byte { return append(make([]byte, n-len(v)), v...) }
	big32 := append([]byte{0x00}, bytes.Repeat([]byte{0xff}, 32)...) // 2^256-1: positive, 33 bytes of DER
	tests := []struct {
		name string
		der  []byte
		want []byte // nil: refused
	}{
		{"small values padded", der([]byte{1}, []byte{0x7f}), append(pad(32, 1), pad(32, 0x7f)...)},
		{"leading zero of a high bit dropped", der(big32, []byte{2}), append(bytes.Repeat([]byte{0xff}, 32), pad(32, 2)...)},
		{"zero r", der([]byte{0}, []byte{1}), nil},
		{"negative s", der([]byte{1}, []byte{0x80}), nil},
		{"not minimal", der([]byte{0, 1}, []byte{1}), nil},
		{"too long", der(append([]byte{1}, make([]byte, 32)...), []byte{1}), nil},
		{"trailing bytes", append(der([]byte{1}, []byte{1}), 0), nil},
		{"three integers", func() []byte {
			var b cryptobyte.Builder
			b.AddASN1(cbasn1.SEQUENCE, func(b *cryptobyte.Builder) {
				for range 3 {
					b.AddASN1(cbasn1.INTEGER, func(b *cryptobyte.Builder) { b.AddUint8(1) })
				}
			})
			return b.BytesOrPanic()
		}(), nil},
		{"empty", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := ecdsaRaw(tt.der, 32)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("ecdsaRaw = %x, want an error", got)
				}
				return
			}
			if err != nil || !bytes.Equal(got, tt.want) {
				t.Fatalf("ecdsaRaw = %x, %v; want %x", got, err, tt.want)
			}
		})
	}
	// Real signatures verify in JWS form.
	pk, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	digest := make([]byte, 48)
	for range 50 {
		sig, err := ecdsa.SignASN1(rand.Reader, pk, digest)
		if err != nil {
			t.Fatal(err)
		}
		raw, err := ecdsaRaw(sig, 48)
		if err != nil {
			t.Fatal(err)
		}
		r, s := new(big.Int).SetBytes(raw[:48]), new(big.Int).SetBytes(raw[48:])
		if !ecdsa.Verify(&pk.PublicKey, digest, r, s) {
			t.Fatal("r‖s does not verify")
		}
	}
}
