package vault

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"sync"
	"sync/atomic"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/hashicorp/vault/api"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/services/signer"
)

// registryLeeway is how long past exp a distribution registry still accepts a token.
const registryLeeway = 60 * time.Second

type manager struct {
	cfg         Config
	t           *transit
	log         *slog.Logger
	now         func() time.Time
	retireAfter time.Duration
	alg         jose.SignatureAlgorithm

	state atomic.Pointer[keyState]
	// healthy is the outcome of the latest call to Vault, for readiness; a change to
	// unhealthy wakes the refresh loop, which then probes every second.
	healthy atomic.Bool
	wake    chan struct{}
	refresh chan chan error // on-demand refreshes
	batch   *batcher
	root    *rootCA // x5c mode only

	roundTrips, signatures prometheus.Counter
	batchSize              prometheus.Histogram

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// keyState is what the last successful read of the key said; signing never waits for Vault
// to say which version to use.
type keyState struct {
	versions []Version
	keys     map[int]*versionKey
}

type versionKey struct {
	m       *manager
	version int
	pub     crypto.PublicKey
	id      string
	chain   [][]byte // x5c: the leaf certificate, in x5c mode
	leaf    *x509.Certificate
}

var (
	_ signer.KeyManager    = (*manager)(nil)
	_ signer.MaxAger       = (*manager)(nil)
	_ signer.Key           = (*versionKey)(nil)
	_ signer.ContextSigner = (*versionKey)(nil)
)

// Open logs in, reads the key (and the root key in x5c mode), proves it may sign, and
// starts the refresh and batching loops. Every failure names the key, the path and the cause.
func (c *Config) Open(ctx context.Context, deps signer.Deps) (signer.KeyManager, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("vault key: %w", errors.Join(errs...))
	}
	cfg := c.withDefaults()
	client, err := newClient(cfg)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	m := &manager{cfg: cfg, t: &transit{c: client, mount: cfg.Mount, timeout: cfg.RequestTimeout.D()},
		log: deps.Logger, now: deps.Now, retireAfter: deps.TokenLifetime + registryLeeway, refresh: make(chan chan error), wake: make(chan struct{}, 1)}
	if m.log == nil {
		m.log = slog.New(slog.DiscardHandler)
	}
	if m.now == nil {
		m.now = time.Now
	}
	m.alg = map[string]jose.SignatureAlgorithm{"ecdsa-p256": jose.ES256, "rsa-2048": jose.RS256, "rsa-4096": jose.RS256, "ed25519": jose.EdDSA}[cfg.KeyType]
	m.initMetrics(deps.Registerer)

	authSecret, err := login(ctx, client, cfg.Auth)
	if err != nil {
		return nil, fmt.Errorf("vault %s: %w", client.Address(), err)
	}
	if cfg.X5C != nil { // before the key is read, so each version gets its leaf certificate
		if m.root, err = newRootCA(ctx, m); err != nil {
			return nil, err
		}
	}
	st, err := m.load(ctx, nil)
	if err != nil {
		return nil, err
	}
	m.state.Store(st)

	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	m.cancel = cancel
	if !cfg.Batch.Disabled {
		m.batch = &batcher{queue: make(chan *pending, 4096), maxSize: cfg.Batch.MaxSize, call: m.signBatch, observe: m.observe}
		for i := 0; i < cfg.Batch.Concurrency; i++ {
			m.wg.Add(1)
			go func() { defer m.wg.Done(); m.batch.run(lctx) }()
		}
	}
	// Prove the policy lets us sign before we take traffic.
	k, err := m.SigningKey(ctx)
	if err == nil {
		_, err = k.(*versionKey).SignContext(ctx, make([]byte, sha256.Size), crypto.SHA256)
	}
	if err != nil {
		cancel()
		m.wg.Wait()
		return nil, fmt.Errorf("vault key %q: test signature failed: %w", cfg.Key, err)
	}
	m.wg.Add(1)
	go func() { defer m.wg.Done(); m.refreshLoop(lctx) }()
	if authSecret != nil {
		m.wg.Add(1)
		go func() { defer m.wg.Done(); m.renewLoop(lctx, client, authSecret) }()
	}
	return m, nil
}

func (m *manager) initMetrics(reg prometheus.Registerer) {
	m.roundTrips = prometheus.NewCounter(prometheus.CounterOpts{Name: "portcullis_signer_vault_round_trips_total", Help: "Vault transit sign calls."})
	m.signatures = prometheus.NewCounter(prometheus.CounterOpts{Name: "portcullis_signer_vault_signatures_total", Help: "Signatures made through Vault transit; divided by round trips: signs per round trip."})
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{Name: "portcullis_signer_vault_signs_per_round_trip", Help: "Signatures per Vault transit call.",
		Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256}})
	if reg != nil {
		reg.MustRegister(m.roundTrips, m.signatures, m.batchSize)
	}
}

func (m *manager) observe(n int) {
	m.roundTrips.Inc()
	m.signatures.Add(float64(n))
	m.batchSize.Observe(float64(n))
}

// load reads the key and builds the state; prev lets unchanged versions keep their certificates.
func (m *manager) load(ctx context.Context, prev *keyState) (*keyState, error) {
	ki, err := m.t.read(ctx, m.cfg.Key)
	if err != nil {
		return nil, fmt.Errorf("vault key %q: %w", m.cfg.Key, err)
	}
	if ki.Type != m.cfg.KeyType {
		return nil, fmt.Errorf("vault key %q at %s/keys/%s is of type %q, but key_type is %q", m.cfg.Key, m.cfg.Mount, m.cfg.Key, ki.Type, m.cfg.KeyType)
	}
	if len(ki.Versions) == 0 {
		return nil, fmt.Errorf("vault key %q at %s/keys/%s has no versions", m.cfg.Key, m.cfg.Mount, m.cfg.Key)
	}
	st := &keyState{keys: map[int]*versionKey{}}
	for _, v := range ki.Versions {
		st.versions = append(st.versions, v.Version)
		if prev != nil {
			if old, ok := prev.keys[v.Number]; ok && (m.root == nil || old.leaf != nil) {
				st.keys[v.Number] = old
				continue
			}
		}
		id, err := m.cfg.KeyIDMode.KeyID(v.Public)
		if err != nil {
			return nil, fmt.Errorf("vault key %q version %d: %w", m.cfg.Key, v.Number, err)
		}
		vk := &versionKey{m: m, version: v.Number, pub: v.Public, id: id}
		if m.root != nil {
			if vk.leaf, err = m.root.issue(ctx, vk, v.Created); err != nil {
				return nil, err
			}
			vk.chain = [][]byte{vk.leaf.Raw}
		}
		st.keys[v.Number] = vk
	}
	return st, nil
}

func (m *manager) refreshLoop(ctx context.Context) {
	for {
		// While Vault is failing, probe every second so readiness recovers without traffic.
		every := m.cfg.RefreshInterval.D()
		if !m.healthy.Load() {
			every = min(every, time.Second)
		}
		var reply chan error
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		case <-m.wake:
		case reply = <-m.refresh:
		}
		err := m.reload(ctx)
		if err != nil {
			m.log.Warn("vault key refresh failed; keeping the versions read before", "key", m.cfg.Key, "error", err)
		}
		if reply != nil {
			reply <- err
		}
	}
}

func (m *manager) reload(ctx context.Context) error {
	prev := m.state.Load()
	st, err := m.load(ctx, prev)
	m.record(err)
	if err != nil {
		return err
	}
	if len(st.versions) != len(prev.versions) {
		m.log.Info("vault key versions changed", "key", m.cfg.Key, "versions", len(st.versions))
	}
	m.state.Store(st)
	return nil
}

// Refresh re-reads the key now (after a rotation, or when asked by an admin).
func (m *manager) Refresh(ctx context.Context) error {
	reply := make(chan error, 1)
	select {
	case m.refresh <- reply:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-reply:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// renewLoop keeps the Vault token alive; when it can no longer be renewed, log in again.
func (m *manager) renewLoop(ctx context.Context, c *api.Client, secret *api.Secret) {
	for ctx.Err() == nil {
		w, err := c.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret})
		if err != nil {
			m.log.Warn("vault token renewal unavailable", "error", err)
			return
		}
		go w.Start()
		select {
		case <-ctx.Done():
			w.Stop()
			return
		case err := <-w.DoneCh():
			if err != nil {
				m.log.Warn("vault token renewal stopped", "error", err)
			}
		}
		for ctx.Err() == nil {
			s, err := login(ctx, c, m.cfg.Auth)
			if err == nil && s != nil {
				secret = s
				break
			}
			if err == nil { // a token we cannot renew: nothing more to do
				return
			}
			m.log.Warn("vault login failed; retrying", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
	}
}

func (m *manager) slots(st *keyState) []Slot {
	return Schedule(st.versions, m.now(), m.cfg.PropagationDelay.D(), m.retireAfter)
}

// SigningKey returns the version the schedule makes active, pinned: Vault's "latest" is
// never used, because a freshly rotated version is not yet known to verifiers.
func (m *manager) SigningKey(context.Context) (signer.Key, error) {
	st := m.state.Load()
	for _, s := range m.slots(st) {
		if s.State == StateActive {
			return st.keys[s.Number], nil
		}
	}
	return nil, errors.New("no active key version")
}

// PublicKeys lists the published, active and retiring versions.
func (m *manager) PublicKeys(context.Context) ([]signer.PublicKey, error) {
	st := m.state.Load()
	var out []signer.PublicKey
	for _, s := range m.slots(st) {
		if s.State == StateRetired {
			continue
		}
		k := st.keys[s.Number]
		pk := signer.PublicKey{ID: k.id, Algorithm: m.alg, Key: k.pub}
		if k.leaf != nil {
			pk.Certificates = []*x509.Certificate{k.leaf}
		}
		out = append(out, pk)
	}
	return out, nil
}

// JWKSMaxAge keeps verifier caches well inside the propagation delay.
func (m *manager) JWKSMaxAge(context.Context) time.Duration {
	return (m.cfg.PropagationDelay.D() - m.cfg.RefreshInterval.D()) / 2
}

// Rotate makes Vault create a new version; it signs only after the propagation delay.
func (m *manager) Rotate(ctx context.Context) error {
	if err := m.t.rotate(ctx, m.cfg.Key); err != nil {
		return err
	}
	return m.Refresh(ctx)
}

// RootCertificates is the x5c mode's trust anchor, for registries' rootcertbundle.
func (m *manager) RootCertificates(context.Context) []*x509.Certificate {
	if m.root == nil {
		return nil
	}
	return []*x509.Certificate{m.root.cert}
}

// Close stops the loops.
func (m *manager) Close(context.Context) error {
	m.cancel()
	m.wg.Wait()
	return nil
}

func (m *manager) signBatch(ctx context.Context, version int, inputs [][]byte) ([][]byte, []error, error) {
	sigs, errs, err := m.t.sign(ctx, signRequest{key: m.cfg.Key, version: version, keyType: m.cfg.KeyType, inputs: inputs})
	m.record(err)
	return sigs, errs, err
}

// record notes whether Vault answered. A caller that gave up says nothing about Vault.
func (m *manager) record(err error) {
	if errors.Is(err, context.Canceled) {
		return
	}
	if was := m.healthy.Swap(err == nil); was && err != nil {
		select {
		case m.wake <- struct{}{}:
		default:
		}
	}
}

// Healthy implements signer.HealthChecker: Vault answered the latest call.
func (m *manager) Healthy(context.Context) error {
	if !m.healthy.Load() {
		return errors.New("vault transit is not answering (unreachable, sealed or refusing)")
	}
	return nil
}

func (k *versionKey) ID() string                         { return k.id }
func (k *versionKey) Algorithm() jose.SignatureAlgorithm { return k.m.alg }
func (k *versionKey) Public() crypto.PublicKey           { return k.pub }
func (k *versionKey) Chain() [][]byte                    { return k.chain }

// Sign implements crypto.Signer (used for certificates); tokens use SignContext.
func (k *versionKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), k.m.cfg.RequestTimeout.D())
	defer cancel()
	return k.SignContext(ctx, digest, opts)
}

// SignContext signs through transit with this version pinned, batched unless disabled, and
// returns what crypto.Signer promises: ASN.1 for ECDSA, raw bytes for RSA and Ed25519.
func (k *versionKey) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	if _, ok := k.pub.(ed25519.PublicKey); !ok && opts.HashFunc() != crypto.SHA256 {
		return nil, fmt.Errorf("vault key %q: only SHA-256 digests are signed, got %v", k.m.cfg.Key, opts.HashFunc())
	}
	// One deadline for queueing and the call together: when Vault hangs, a request waiting
	// behind a stuck batch must still fail within request_timeout, not twice that.
	ctx, cancel := context.WithTimeout(ctx, k.m.cfg.RequestTimeout.D())
	defer cancel()
	var sig []byte
	var err error
	if k.m.batch != nil {
		sig, err = k.m.batch.sign(ctx, k.version, digest)
	} else {
		var sigs [][]byte
		var errs []error
		sigs, errs, err = k.m.signBatch(ctx, k.version, [][]byte{digest})
		k.m.observe(1)
		if err == nil {
			sig, err = sigs[0], errs[0]
		}
	}
	if err != nil {
		return nil, err
	}
	return k.check(sig)
}

// check verifies the signature's length for the key and re-encodes ECDSA as ASN.1.
func (k *versionKey) check(sig []byte) ([]byte, error) {
	switch pub := k.pub.(type) {
	case *ecdsa.PublicKey:
		size := (pub.Curve.Params().BitSize + 7) / 8
		if len(sig) != 2*size {
			return nil, fmt.Errorf("vault key %q: ECDSA signature of %d bytes, want %d", k.m.cfg.Key, len(sig), 2*size)
		}
		return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])})
	case *rsa.PublicKey:
		if len(sig) != pub.Size() {
			return nil, fmt.Errorf("vault key %q: RSA signature of %d bytes, want %d", k.m.cfg.Key, len(sig), pub.Size())
		}
	case ed25519.PublicKey:
		if len(sig) != ed25519.SignatureSize {
			return nil, fmt.Errorf("vault key %q: Ed25519 signature of %d bytes", k.m.cfg.Key, len(sig))
		}
	}
	return sig, nil
}

// KeyVersions implements signer.VersionLister.
func (m *manager) KeyVersions(context.Context) ([]signer.KeyVersion, error) {
	st := m.state.Load()
	var out []signer.KeyVersion
	for _, s := range m.slots(st) {
		id := ""
		if k, ok := st.keys[s.Number]; ok {
			id = k.id
		}
		out = append(out, signer.KeyVersion{Version: s.Number, ID: id, State: string(s.State), Created: s.Created, ActiveFrom: s.ActiveFrom, RetiresAt: s.RetiredAt})
	}
	return out, nil
}
