package keyid

import (
	"bytes"
	"crypto"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"math/big"
	"regexp"
	"strings"
	"testing"
)

// rfc7638Key is the RSA key of RFC 7638 §3.1.
func rfc7638Key(t *testing.T) *rsa.PublicKey {
	t.Helper()
	n, err := base64.RawURLEncoding.DecodeString("0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw")
	if err != nil {
		t.Fatal(err)
	}
	return &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: 65537}
}

// rfc8037Key is the Ed25519 key of RFC 8037 Appendix A.
func rfc8037Key(t *testing.T) ed25519.PublicKey {
	t.Helper()
	x, err := base64.RawURLEncoding.DecodeString("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if err != nil {
		t.Fatal(err)
	}
	return ed25519.PublicKey(x)
}

// ecKey derives a key from a fixed scalar so golden values stay stable.
func ecKey(t *testing.T, curve elliptic.Curve, scalar byte) *ecdsa.PublicKey {
	t.Helper()
	d := make([]byte, (curve.Params().BitSize+7)/8)
	for i := range d {
		d[i] = scalar
	}
	d[0] = 0x01 // below every curve order
	priv, err := ecdsa.ParseRawPrivateKey(curve, d)
	if err != nil {
		t.Fatal(err)
	}
	return &priv.PublicKey
}

func TestThumbprint(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		key  crypto.PublicKey
		want string
	}{
		{"RFC 7638 RSA", rfc7638Key(t), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"},
		{"RFC 8037 Ed25519", rfc8037Key(t), "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"},
		{"P-256", ecKey(t, elliptic.P256(), 0x42), manualECThumbprint(ecKey(t, elliptic.P256(), 0x42))},
		{"P-384", ecKey(t, elliptic.P384(), 0x42), manualECThumbprint(ecKey(t, elliptic.P384(), 0x42))},
		{"P-521", ecKey(t, elliptic.P521(), 0x42), manualECThumbprint(ecKey(t, elliptic.P521(), 0x42))},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Thumbprint(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("Thumbprint = %q, want %q", got, tt.want)
			}
		})
	}
}

// manualECThumbprint builds the RFC 7638 input by hand, coordinates padded to
// the field size as RFC 7518 §6.2.1.2 requires.
func manualECThumbprint(k *ecdsa.PublicKey) string {
	size := (k.Curve.Params().BitSize + 7) / 8
	enc := func(v *big.Int) string {
		return base64.RawURLEncoding.EncodeToString(v.FillBytes(make([]byte, size)))
	}
	in := fmt.Sprintf(`{"crv":%q,"kty":"EC","x":%q,"y":%q}`, k.Curve.Params().Name, enc(k.X), enc(k.Y))
	sum := sha256.Sum256([]byte(in))
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

// A coordinate with a leading zero byte is where implementations that use
// big.Int.Bytes unpadded (distribution 3.x's GetJWKThumbprint among them)
// disagree with RFC 7638; ours must pad.
func TestThumbprintPadsECCoordinates(t *testing.T) {
	t.Parallel()
	for s := 1; s < 4096; s++ {
		k := ecKeyFromInt(t, int64(s))
		if k.X.BitLen() > 248 {
			continue
		}
		got, err := Thumbprint(k)
		if err != nil {
			t.Fatal(err)
		}
		if want := manualECThumbprint(k); got != want {
			t.Fatalf("scalar %d: Thumbprint = %q, want %q", s, got, want)
		}
		return
	}
	t.Fatal("no P-256 key with a short X coordinate found")
}

func ecKeyFromInt(t *testing.T, d int64) *ecdsa.PublicKey {
	t.Helper()
	priv, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), big.NewInt(d).FillBytes(make([]byte, 32)))
	if err != nil {
		t.Fatal(err)
	}
	return &priv.PublicKey
}

var libtrustRE = regexp.MustCompile(`^[A-Z2-7]{4}(?::[A-Z2-7]{4}){11}$`)

func TestLibtrust(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		key  crypto.PublicKey
		want string // golden; also computed with Python's cryptography (OpenSSL) DER
	}{
		{"P-256", ecKey(t, elliptic.P256(), 0x42), "G3VM:YWFO:OG4O:C6SZ:YZ3E:53P5:ZEME:XQF4:U7I7:WTIT:MSUZ:KUCJ"},
		{"P-384", ecKey(t, elliptic.P384(), 0x42), "2UGS:OKPN:T5EX:GGN3:RMRN:GLZC:IYTN:ONGO:GGY4:X3GS:YEMV:JRGZ"},
		{"RSA", rfc7638Key(t), "VUZD:EDHW:YWLN:RBFQ:KOA3:UVZ2:XKG5:2V2J:WTPI:6SRD:U6PZ:VCO5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := Libtrust(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			if !libtrustRE.MatchString(got) {
				t.Fatalf("Libtrust = %q, want 12 ':'-separated groups of 4 base32 characters", got)
			}
			// Decoding back proves the ID is the first 30 bytes of SHA-256
			// over the PKIX DER, independently of how it was encoded.
			raw, err := base32.StdEncoding.DecodeString(strings.ReplaceAll(got, ":", ""))
			if err != nil {
				t.Fatalf("decode %q: %v", got, err)
			}
			der, err := x509.MarshalPKIXPublicKey(tt.key)
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(der)
			if !bytes.Equal(raw, sum[:30]) {
				t.Fatalf("Libtrust = %q decodes to %x, want %x", got, raw, sum[:30])
			}
			if got != tt.want {
				t.Fatalf("Libtrust = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestUnsupportedKeys(t *testing.T) {
	t.Parallel()
	p224 := ecKey(t, elliptic.P224(), 0x42)
	offCurve := *ecKey(t, elliptic.P256(), 0x42)
	offCurve.Y = new(big.Int).Add(offCurve.Y, big.NewInt(1))
	xdh, err := ecdh.X25519().NewPrivateKey(bytes.Repeat([]byte{1}, 32))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		key  crypto.PublicKey
	}{
		{"nil", nil},
		{"nil ECDSA", (*ecdsa.PublicKey)(nil)},
		{"empty ECDSA", &ecdsa.PublicKey{}},
		{"ECDSA without point", &ecdsa.PublicKey{Curve: elliptic.P256()}},
		{"P-224", p224},
		{"off-curve point", &offCurve},
		{"nil RSA", (*rsa.PublicKey)(nil)},
		{"RSA without modulus", &rsa.PublicKey{E: 65537}},
		{"RSA without exponent", &rsa.PublicKey{N: big.NewInt(12345)}},
		{"short Ed25519", ed25519.PublicKey{1, 2, 3}},
		{"X25519", xdh.PublicKey()},
		{"ECDSA value, not pointer", *ecKey(t, elliptic.P256(), 0x42)},
		{"private key", ed25519.NewKeyFromSeed(bytes.Repeat([]byte{1}, 32))},
	}
	for _, tt := range tests {
		for _, m := range []Mode{ModeThumbprint, ModeLibtrust} {
			t.Run(tt.name+"/"+string(m), func(t *testing.T) {
				t.Parallel()
				got, err := m.KeyID(tt.key)
				if !errors.Is(err, ErrUnsupportedKey) {
					t.Fatalf("KeyID = %q, %v; want ErrUnsupportedKey", got, err)
				}
			})
		}
	}
}

func TestLibtrustRefusesEd25519(t *testing.T) {
	t.Parallel()
	if got, err := Libtrust(rfc8037Key(t)); !errors.Is(err, ErrUnsupportedKey) {
		t.Fatalf("Libtrust(Ed25519) = %q, %v; want ErrUnsupportedKey", got, err)
	}
}

func TestMode(t *testing.T) {
	t.Parallel()
	key := ecKey(t, elliptic.P256(), 0x42)
	thumb, err := Thumbprint(key)
	if err != nil {
		t.Fatal(err)
	}
	lt, err := Libtrust(key)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		mode Mode
		want string // empty when the mode is invalid
	}{
		{ModeThumbprint, thumb},
		{ModeLibtrust, lt},
		{"", ""},
		{"Thumbprint", ""},
		{"jwk", ""},
	}
	for _, tt := range tests {
		t.Run(string(tt.mode), func(t *testing.T) {
			t.Parallel()
			verr := tt.mode.Validate()
			got, kerr := tt.mode.KeyID(key)
			if tt.want == "" {
				if verr == nil || kerr == nil {
					t.Fatalf("Validate = %v, KeyID = %q, %v; want errors", verr, got, kerr)
				}
				return
			}
			if verr != nil || kerr != nil {
				t.Fatalf("Validate = %v, KeyID error %v", verr, kerr)
			}
			if got != tt.want {
				t.Fatalf("KeyID = %q, want %q", got, tt.want)
			}
		})
	}
}
