package vault

import (
	"bytes"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
)

// x5c mode keeps two identities apart. The certifier (Certifier, `portcullis keys certify`)
// signs with the root transit key: once a self-signed root certificate, and for every key
// version a short-lived leaf, renewed at half its validity. It stores them in one KV v2
// secret. The serving signer only reads that secret: its Vault token cannot certify a key,
// so a stolen one is worth at most one leaf's remaining validity.

const (
	// rootValidity bounds the root certificate. Registries pin it (rootcertbundle) and its
	// key never leaves Vault; what a compromise can reach is bounded by the leaves.
	rootValidity = 20 * 365 * 24 * time.Hour
	// leafBackdate tolerates a verifier whose clock runs behind the certifier's.
	leafBackdate = 10 * time.Minute
)

// certDoc is the KV secret's data.
type certDoc struct {
	// Key and RootKey name the transit keys, so two deployments cannot share a path by mistake.
	Key     string `json:"key"`
	RootKey string `json:"root_key"`
	// Root is the root certificate (PEM); Leaves the leaf certificate of each key version.
	Root   string            `json:"root"`
	Leaves map[string]string `json:"leaves"`
	// Certified is when each version's first leaf was issued (RFC 3339): no version signs
	// before that, so signers and the certifier date its activation from it. Versions
	// certified before this was recorded have a leaf and no entry.
	Certified map[string]string `json:"certified,omitempty"`
}

// certifiedTimes is when each version was certified, for ScheduleCertified: the recorded
// time, or the zero time for a version with a usable leaf (hasLeaf) and no record.
func certifiedTimes(d *certDoc, hasLeaf func(n int) bool) map[int]time.Time {
	out := map[int]time.Time{}
	if d == nil {
		return out
	}
	for v := range d.Leaves {
		if n, err := strconv.Atoi(v); err == nil && hasLeaf(n) {
			out[n] = time.Time{}
		}
	}
	for v, at := range d.Certified {
		n, err1 := strconv.Atoi(v)
		t, err2 := time.Parse(time.RFC3339Nano, at)
		if err1 == nil && err2 == nil {
			out[n] = t
		}
	}
	return out
}

// certStore is the KV v2 secret holding the certificates.
type certStore struct {
	c           *api.Client
	mount, path string
	timeout     time.Duration
	policy      policyHint
}

func newCertStore(c *api.Client, cfg Config, p policyHint) *certStore {
	return &certStore{c: c, mount: cfg.X5C.Store.Mount, path: cfg.X5C.Store.Path, timeout: cfg.RequestTimeout.D(), policy: p}
}

// where is the path an operator sees in policies and in the vault CLI.
func (s *certStore) where() string { return s.mount + "/data/" + s.path }

// read returns the stored document (nil when there is none) and the secret's KV version,
// for a check-and-set write.
func (s *certStore) read(ctx context.Context) (*certDoc, int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	sec, err := s.c.Logical().ReadWithContext(ctx, s.where())
	if err != nil {
		return nil, 0, s.policy.describe(err, "read", s.where())
	}
	if sec == nil || sec.Data == nil {
		return nil, 0, nil
	}
	version := 0
	if md, ok := sec.Data["metadata"].(map[string]any); ok {
		if n, ok := md["version"].(json.Number); ok {
			v, _ := n.Int64()
			version = int(v)
		}
	}
	data, ok := sec.Data["data"].(map[string]any)
	if !ok || data == nil { // the latest version was deleted
		return nil, version, nil
	}
	b, err := json.Marshal(data)
	if err != nil {
		return nil, 0, err
	}
	var d certDoc
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, 0, fmt.Errorf("%s: not an x5c certificate set: %v", s.where(), err)
	}
	return &d, version, nil
}

// errConflict: another certifier wrote the secret between our read and our write.
var errConflict = errors.New("x5c certificate store changed concurrently")

// write stores d if the secret is still at version cas (0: it must not exist).
func (s *certStore) write(ctx context.Context, d *certDoc, cas int) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	var data map[string]any
	if err := json.Unmarshal(b, &data); err != nil {
		return err
	}
	_, err = s.c.Logical().WriteWithContext(ctx, s.where(), map[string]any{"options": map[string]any{"cas": cas}, "data": data})
	var re *api.ResponseError
	if errors.As(err, &re) && re.StatusCode == 400 && strings.Contains(strings.Join(re.Errors, " "), "check-and-set") {
		return fmt.Errorf("%w: %s", errConflict, s.where())
	}
	if err != nil {
		return s.policy.describe(err, "write", s.where())
	}
	return nil
}

// certSet is a parsed, checked certDoc, as the serving signer uses it.
type certSet struct {
	root   *x509.Certificate
	leaves map[int]*x509.Certificate
	// certified is when each version was certified (see certifiedTimes).
	certified map[int]time.Time
	// problems are leaves present but unusable (not under the root, another key), for the log.
	problems []string
}

// parseCerts checks the stored document for cfg's keys; pubs are the signing key's
// versions. A leaf that does not chain to the root or certifies another key is left out.
func parseCerts(d *certDoc, where string, cfg Config, pubs map[int]crypto.PublicKey) (*certSet, error) {
	if d == nil || d.Root == "" {
		return nil, fmt.Errorf("x5c: no certificates at %s: run `portcullis keys certify -config FILE` with the certifier's Vault identity", where)
	}
	if d.Key != cfg.Key {
		return nil, fmt.Errorf("x5c: %s holds certificates for transit key %q, not %q: give each signing key its own x5c.store.path", where, d.Key, cfg.Key)
	}
	root, err := parseCertPEM(d.Root)
	if err != nil {
		return nil, fmt.Errorf("x5c: root certificate at %s: %w", where, err)
	}
	if !root.IsCA || root.CheckSignatureFrom(root) != nil {
		return nil, fmt.Errorf("x5c: root certificate at %s is not a self-signed CA", where)
	}
	cs := &certSet{root: root, leaves: map[int]*x509.Certificate{}}
	for v, p := range d.Leaves {
		n, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		pub, ok := pubs[n]
		if !ok {
			continue // a version Vault no longer has
		}
		leaf, err := parseCertPEM(p)
		if err == nil {
			err = checkLeaf(leaf, root, pub)
		}
		if err != nil {
			cs.problems = append(cs.problems, fmt.Sprintf("version %d: %v", n, err))
			continue
		}
		cs.leaves[n] = leaf
	}
	cs.certified = certifiedTimes(d, func(n int) bool { return cs.leaves[n] != nil })
	for n := range cs.certified {
		if _, ok := pubs[n]; !ok {
			delete(cs.certified, n)
		}
	}
	return cs, nil
}

func parseCertPEM(s string) (*x509.Certificate, error) {
	b, _ := pem.Decode([]byte(s))
	if b == nil || b.Type != "CERTIFICATE" {
		return nil, errors.New("no PEM certificate")
	}
	return x509.ParseCertificate(b.Bytes)
}

func certPEM(c *x509.Certificate) string {
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}))
}

// checkLeaf: leaf is signed by root and certifies pub.
func checkLeaf(leaf, root *x509.Certificate, pub crypto.PublicKey) error {
	if err := leaf.CheckSignatureFrom(root); err != nil {
		return fmt.Errorf("leaf certificate not signed by the root: %v", err)
	}
	if !sameKey(leaf.PublicKey, pub) {
		return errors.New("leaf certificate certifies another key than the transit version's")
	}
	return nil
}

func sameKey(a, b crypto.PublicKey) bool {
	k, ok := a.(interface{ Equal(crypto.PublicKey) bool })
	return ok && k.Equal(b)
}

// coversUntil: leaf is valid from now until at least until. A token signed now must verify
// until it expires (plus the registry's leeway), and registries check the chain's validity.
func coversUntil(leaf *x509.Certificate, now, until time.Time) bool {
	return leaf != nil && !now.Before(leaf.NotBefore) && !leaf.NotAfter.Before(until)
}

// needsRenewal: the certifier replaces a leaf once less than half of validity is left (or
// it is not valid yet): the signer then has the other half to pick up the new one, and the
// certifier as long to come back after an outage.
func needsRenewal(leaf *x509.Certificate, now time.Time, validity time.Duration) bool {
	return leaf == nil || now.Before(leaf.NotBefore) || leaf.NotAfter.Sub(now) < validity/2
}

// transitSigner is a crypto.Signer whose private key is one pinned version of a transit key;
// the certifier signs certificates with the root key through it.
type transitSigner struct {
	t       *transit
	name    string
	keyType string
	version int
	pub     crypto.PublicKey
}

func (r *transitSigner) Public() crypto.PublicKey { return r.pub }

func (r *transitSigner) Sign(_ io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), r.t.timeout)
	defer cancel()
	sigs, errs, err := r.t.sign(ctx, signRequest{key: r.name, version: r.version, keyType: r.keyType, inputs: [][]byte{digest}})
	if err != nil {
		return nil, err
	}
	if errs[0] != nil {
		return nil, errs[0]
	}
	return derSignature(r.pub, sigs[0])
}

// rootTemplate derives every field from the root key version alone, so a root made again
// (a lost secret) is equivalent: same subject, key, serial and validity.
func rootTemplate(commonName string, v keyVersion) (*x509.Certificate, error) {
	pubDER, err := x509.MarshalPKIXPublicKey(v.Public)
	if err != nil {
		return nil, err
	}
	sum := sha256.Sum256(pubDER)
	return &x509.Certificate{
		SerialNumber:          new(big.Int).SetBytes(sum[:16]),
		Subject:               pkix.Name{CommonName: commonName},
		NotBefore:             v.Created.Add(-time.Hour).UTC().Truncate(time.Second),
		NotAfter:              v.Created.Add(rootValidity).UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
		SubjectKeyId:          sum[:20],
	}, nil
}

// leafTemplate is a leaf for one key version, valid from a little before now for validity
// (never past the root).
func leafTemplate(key string, version int, now time.Time, validity time.Duration, root *x509.Certificate) (*x509.Certificate, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	notAfter := now.Add(validity).UTC().Truncate(time.Second)
	if notAfter.After(root.NotAfter) {
		notAfter = root.NotAfter
	}
	return &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: fmt.Sprintf("%s signing key v%d", key, version)},
		NotBefore:    now.Add(-leafBackdate).UTC().Truncate(time.Second),
		NotAfter:     notAfter,
		KeyUsage:     x509.KeyUsageDigitalSignature,
	}, nil
}

// createCert signs tmpl under parent with the root key through transit and parses it back.
func createCert(tmpl, parent *x509.Certificate, pub crypto.PublicKey, root *transitSigner) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, parent, pub, root)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificate(der)
}

// equalCerts compares two optional certificates by their DER.
func equalCerts(a, b *x509.Certificate) bool {
	if a == nil || b == nil {
		return a == b
	}
	return bytes.Equal(a.Raw, b.Raw)
}
