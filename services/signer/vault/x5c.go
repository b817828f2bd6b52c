package vault

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"time"
)

// rootCA is the x5c mode's root: a self-signed certificate whose key is a second transit
// key. Each signing version gets a leaf certificate signed by it, through transit too, so
// no private key ever leaves Vault and registries trust only the root.
type rootCA struct {
	m    *manager
	key  *rootKey
	cert *x509.Certificate
}

// rootKey signs certificates with the root transit key's latest version, pinned at start.
type rootKey struct {
	m       *manager
	name    string
	keyType string
	version int
	pub     crypto.PublicKey
}

func (r *rootKey) Public() crypto.PublicKey { return r.pub }

func (r *rootKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.m.cfg.RequestTimeout.D())
	defer cancel()
	sigs, errs, err := r.m.t.sign(ctx, signRequest{key: r.name, version: r.version, keyType: r.keyType, inputs: [][]byte{digest}})
	if err != nil {
		return nil, err
	}
	if errs[0] != nil {
		return nil, errs[0]
	}
	vk := &versionKey{m: r.m, pub: r.pub}
	return vk.check(sigs[0])
}

// certValidity bounds root and leaf certificates; tokens live minutes, so this only needs to
// outlast any deployment's patience with renewing its rootcertbundle.
const certValidity = 20 * 365 * 24 * time.Hour

func newRootCA(ctx context.Context, m *manager) (*rootCA, error) {
	name := m.cfg.X5C.RootKey
	ki, err := m.t.read(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("x5c root key %q: %w", name, err)
	}
	if len(ki.Versions) == 0 || ki.Type == "ed25519" && m.cfg.KeyType != "ed25519" {
		return nil, fmt.Errorf("x5c root key %q: unusable (type %q, %d versions)", name, ki.Type, len(ki.Versions))
	}
	latest := ki.Versions[len(ki.Versions)-1]
	rk := &rootKey{m: m, name: name, keyType: ki.Type, version: latest.Number, pub: latest.Public}
	// Fields derive from the root key alone, so every replica builds an equivalent root:
	// same subject, key, validity and serial.
	pubDER, err := x509.MarshalPKIXPublicKey(latest.Public)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pubDER)
	tmpl := &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(sum[:16]),
		Subject:               pkix.Name{CommonName: m.cfg.X5C.CommonName},
		NotBefore:             latest.Created.Add(-time.Hour).UTC().Truncate(time.Second),
		NotAfter:              latest.Created.Add(certValidity).UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          sum[:20],
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, latest.Public, rk)
	if err != nil {
		return nil, fmt.Errorf("x5c root certificate via transit key %q: %w", name, err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return &rootCA{m: m, key: rk, cert: cert}, nil
}

func (r *rootCA) issue(_ context.Context, vk *versionKey, created time.Time) (*x509.Certificate, error) {
	pubDER, err := x509.MarshalPKIXPublicKey(vk.pub)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(append(pubDER, strconv.Itoa(vk.version)...))
	tmpl := &x509.Certificate{
		SerialNumber: new(big.Int).SetBytes(sum[:16]),
		Subject:      pkix.Name{CommonName: fmt.Sprintf("%s signing key v%d", r.m.cfg.Key, vk.version)},
		NotBefore:    created.Add(-time.Hour).UTC().Truncate(time.Second),
		NotAfter:     r.cert.NotAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, r.cert, vk.pub, r.key)
	if err != nil {
		return nil, fmt.Errorf("x5c leaf certificate for %q version %d: %w", r.m.cfg.Key, vk.version, err)
	}
	return x509.ParseCertificate(der)
}
