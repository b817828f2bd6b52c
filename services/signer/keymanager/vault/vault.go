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
	"maps"
	"math/big"
	"slices"
	"strings"
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
	store   *certStore // x5c mode only: the certificates the certifier made
	// fallbacks records, in x5c mode, when a version last signed in place of a due version
	// that had no fresh leaf: it must then stay published past its scheduled retirement.
	fallbacks atomic.Pointer[map[int]time.Time]
	// reported is the last x5c condition logged (refresh goroutine only).
	reported string

	roundTrips, signatures prometheus.Counter
	batchSize              prometheus.Histogram

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// keyState is what the last successful read of the key said; signing never waits for Vault
// to say which version to use.
type keyState struct {
	versions  []Version
	keys      map[int]*versionKey
	root      *x509.Certificate // x5c mode
	problems  string            // x5c mode: stored leaves that were ignored, as logged
	certified map[int]time.Time // x5c mode: when each version was certified
}

type versionKey struct {
	m       *manager
	version int
	pub     crypto.PublicKey
	id      string
	chain   [][]byte // x5c: the leaf certificate, in x5c mode
	leaf    *x509.Certificate
}

// Vault does everything a key manager can, so neither type embeds the Unimplemented
// defaults: an ability added to signer.KeyManager or signer.Key must be written here before
// this builds.
var (
	_ signer.KeyManager = (*manager)(nil)
	_ signer.Key        = (*versionKey)(nil)
)

// Open logs in, reads the key (and in x5c mode the certificates the certifier stored),
// proves it may sign, and starts the refresh and batching loops. Every failure names the
// key, the path and the cause. In x5c mode it refuses a Vault identity that may sign with
// the root key: that belongs to the certifier alone.
func (c *Config) Open(ctx context.Context, deps signer.Deps) (signer.KeyManager, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("vault key: %w", errors.Join(errs...))
	}
	cfg := c.withDefaults()
	client, err := newClient(cfg, deps.WrapHTTP)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	m := &manager{cfg: cfg, t: newTransit(client, cfg, signerPolicy),
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
	if cfg.X5C != nil {
		if err := cfg.checkLeafValidity(deps.TokenLifetime); err != nil {
			return nil, fmt.Errorf("vault key %q: %w", cfg.Key, err)
		}
		if err := refuseRootSigner(ctx, client, cfg, m.log); err != nil {
			return nil, err
		}
		m.store = newCertStore(client, cfg, signerPolicy)
		m.initX5CMetrics(deps.Registerer)
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
	if err != nil {
		cancel()
		m.wg.Wait()
		return nil, fmt.Errorf("vault key %q: %w", cfg.Key, err)
	}
	if _, err = k.(*versionKey).SignContext(ctx, make([]byte, sha256.Size), crypto.SHA256); err != nil {
		cancel()
		m.wg.Wait()
		return nil, fmt.Errorf("vault key %q: test signature failed: %w", cfg.Key, err)
	}
	m.report(st)
	m.wg.Add(1)
	go func() { defer m.wg.Done(); m.refreshLoop(lctx) }()
	if authSecret != nil {
		m.wg.Add(1)
		go func() { defer m.wg.Done(); keepLoggedIn(lctx, client, cfg.Auth, authSecret, m.log) }()
	}
	return m, nil
}

// refuseRootSigner checks, where Vault lets a token ask about itself, that the serving
// identity cannot sign with the x5c root key.
func refuseRootSigner(ctx context.Context, c *api.Client, cfg Config, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(ctx, cfg.RequestTimeout.D())
	defer cancel()
	path := cfg.Mount + "/sign/" + cfg.X5C.RootKey
	caps, err := c.Sys().CapabilitiesSelfWithContext(ctx, path)
	if err != nil {
		// Without sys/capabilities-self the policy is hand-made; the shipped one grants it.
		log.Info("x5c: could not check that this Vault identity cannot sign with the root key", "path", path, "error", err)
		return nil
	}
	if slices.Contains(caps, "root") || slices.Contains(caps, "update") {
		return fmt.Errorf("vault key %q: the signer's Vault identity may sign with the x5c root key (%s: %v); only the certifier may (deploy/vault/portcullis-certifier.hcl): give the signer deploy/vault/portcullis.hcl",
			cfg.Key, path, caps)
	}
	return nil
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

// load reads the key (and in x5c mode the stored certificates) and builds the state; prev
// lets versions whose leaf did not change keep their key object.
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
	var certs *certSet
	if m.store != nil {
		pubs := map[int]crypto.PublicKey{}
		for _, v := range ki.Versions {
			pubs[v.Number] = v.Public
		}
		doc, _, err := m.store.read(ctx)
		if err != nil {
			return nil, fmt.Errorf("x5c certificate store: %w", err)
		}
		if certs, err = parseCerts(doc, m.store.where(), m.cfg, pubs); err != nil {
			return nil, err
		}
		if p := strings.Join(certs.problems, "; "); p != "" && (prev == nil || p != prev.problems) {
			m.log.Warn("x5c: unusable leaf certificates ignored", "store", m.store.where(), "problems", p)
		}
	}
	st := &keyState{keys: map[int]*versionKey{}}
	if certs != nil {
		st.root, st.problems, st.certified = certs.root, strings.Join(certs.problems, "; "), certs.certified
	}
	for _, v := range ki.Versions {
		st.versions = append(st.versions, v.Version)
		var leaf *x509.Certificate
		if certs != nil {
			leaf = certs.leaves[v.Number]
		}
		// A version keeps its key object until its leaf changes: the signer may cache per key.
		if prev != nil {
			if old, ok := prev.keys[v.Number]; ok && equalCerts(old.leaf, leaf) {
				st.keys[v.Number] = old
				continue
			}
		}
		id, err := m.cfg.KeyIDMode.KeyID(v.Public)
		if err != nil {
			return nil, fmt.Errorf("vault key %q version %d: %w", m.cfg.Key, v.Number, err)
		}
		vk := &versionKey{m: m, version: v.Number, pub: v.Public, id: id, leaf: leaf}
		if leaf != nil {
			vk.chain = [][]byte{leaf.Raw}
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
	m.report(st)
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

// slots is the schedule at now, and the index of the slot that signs (-1: none may). In
// x5c mode only a version whose leaf outlives a token signed now may sign (see certified).
func (m *manager) slots(st *keyState, now time.Time) ([]Slot, int, int) {
	if m.store == nil {
		slots := Schedule(st.versions, now, m.cfg.PropagationDelay.D(), m.retireAfter)
		i := slices.IndexFunc(slots, func(s Slot) bool { return s.State == StateActive })
		return slots, i, i
	}
	// In x5c mode a version activates once certified: ACTIVE FROM is when it really did.
	slots := ScheduleCertified(st.versions, now, m.cfg.PropagationDelay.D(), m.retireAfter, st.certified)
	until := now.Add(m.retireAfter)
	signing, due := certified(slots, func(n int) bool { return coversUntil(st.keys[n].leaf, now, until) })
	if fb := m.fallbacks.Load(); fb != nil {
		extendRetirement(slots, *fb, signing, now, m.retireAfter)
	}
	return slots, signing, due
}

// SigningKey returns the version the schedule makes active, pinned: Vault's "latest" is
// never used, because a freshly rotated version is not yet known to verifiers. In x5c mode
// a due version without a fresh leaf does not sign: the one before it goes on signing.
func (m *manager) SigningKey(context.Context) (signer.Key, error) {
	st := m.state.Load()
	now := m.now()
	slots, signing, due := m.slots(st, now)
	if signing < 0 {
		if m.store != nil {
			return nil, fmt.Errorf("x5c: no version of key %q has a leaf certificate valid until %s in %s: is `portcullis keys certify` running?",
				m.cfg.Key, now.Add(m.retireAfter).UTC().Format(time.RFC3339), m.store.where())
		}
		return nil, errors.New("no active key version")
	}
	if signing != due {
		m.noteFallback(slots[signing].Number, now)
	}
	return st.keys[slots[signing].Number], nil
}

// lastUseGranularity is how often noteFallback records a version's last use: the version
// may have signed up to that long after the recorded time.
const lastUseGranularity = time.Second

// noteFallback remembers that version n signed in place of the due version (rarely: only
// while the certifier is behind), at most once per lastUseGranularity.
func (m *manager) noteFallback(n int, now time.Time) {
	for {
		old := m.fallbacks.Load()
		var cur map[int]time.Time
		if old != nil {
			cur = *old
		}
		if t, ok := cur[n]; ok && now.Sub(t) < lastUseGranularity {
			return
		}
		next := maps.Clone(cur)
		if next == nil {
			next = map[int]time.Time{}
		}
		next[n] = now
		if m.fallbacks.CompareAndSwap(old, &next) {
			return
		}
	}
}

// certified adjusts the schedule to the leaves: when the due (scheduled active) version has
// no fresh leaf, the newest earlier version that has one signs instead and is active; the
// due one stays published until the certifier catches up. It returns the index of the
// slot that signs (-1 when none can) and of the due one.
func certified(slots []Slot, signable func(version int) bool) (signing, due int) {
	due = slices.IndexFunc(slots, func(s Slot) bool { return s.State == StateActive })
	signing = -1
	for i := due; i >= 0; i-- {
		if signable(slots[i].Number) {
			signing = i
			break
		}
	}
	if signing >= 0 && signing != due {
		slots[signing].State, slots[signing].RetiredAt = StateActive, time.Time{}
		// Not signing (yet, or any more): no ACTIVE FROM until it does.
		slots[due].State, slots[due].ActiveFrom = StatePublished, time.Time{}
	}
	return signing, due
}

// extendRetirement keeps a version that signed as a fallback published for a token
// lifetime (plus leeway) after it last did. lastSigned is recorded once per
// lastUseGranularity, so the last signature may be that much later than recorded: the
// bound adds it (without, a version was seen leaving the JWKS 59 s after max_ttl).
func extendRetirement(slots []Slot, lastSigned map[int]time.Time, signing int, now time.Time, retireAfter time.Duration) {
	for i := range slots {
		t, ok := lastSigned[slots[i].Number]
		if !ok || i == signing || (slots[i].State != StateRetiring && slots[i].State != StateRetired) {
			continue
		}
		if r := t.Add(retireAfter + lastUseGranularity); r.After(slots[i].RetiredAt) {
			slots[i].RetiredAt = r
			slots[i].State = StateRetired
			if now.Before(r) {
				slots[i].State = StateRetiring
			}
		}
	}
}

// PublicKeys lists the published, active and retiring versions.
func (m *manager) PublicKeys(context.Context) ([]signer.PublicKey, error) {
	st := m.state.Load()
	var out []signer.PublicKey
	slots, _, _ := m.slots(st, m.now())
	for _, s := range slots {
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
	if st := m.state.Load(); st.root != nil {
		return []*x509.Certificate{st.root}
	}
	return nil
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

// Healthy implements signer.KeyManager: Vault answered the latest call and, in x5c
// mode, some version has a leaf to sign with.
func (m *manager) Healthy(ctx context.Context) error {
	if !m.healthy.Load() {
		return errors.New("vault transit is not answering (unreachable, sealed or refusing)")
	}
	if m.store != nil {
		if _, err := m.SigningKey(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (k *versionKey) ID() string                         { return k.id }
func (k *versionKey) Algorithm() jose.SignatureAlgorithm { return k.m.alg }
func (k *versionKey) Public() crypto.PublicKey           { return k.pub }
func (k *versionKey) Chain() [][]byte                    { return k.chain }

// Sign implements crypto.Signer (used for certificates); tokens use SignJWS.
func (k *versionKey) Sign(_ io.Reader, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	ctx, cancel := context.WithTimeout(context.Background(), k.m.cfg.RequestTimeout.D())
	defer cancel()
	return k.SignContext(ctx, digest, opts)
}

// SignContext returns what crypto.Signer promises: ASN.1 for ECDSA, raw bytes for RSA and
// Ed25519 (for x509 and other non-JWS use).
func (k *versionKey) SignContext(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
	sig, err := k.SignJWS(ctx, digest, opts)
	if err != nil {
		return nil, err
	}
	return derSignature(k.pub, sig)
}

// SignJWS signs through transit with this version pinned, batched unless disabled, and
// returns the signature as JWS wants it: transit answers ECDSA as fixed-width r‖s
// (marshaling_algorithm=jws), which goes into the token as is, with no ASN.1 round trip.
func (k *versionKey) SignJWS(ctx context.Context, digest []byte, opts crypto.SignerOpts) ([]byte, error) {
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
	if err := checkJWSSignature(k.pub, sig); err != nil {
		return nil, fmt.Errorf("vault key %q: %w", k.m.cfg.Key, err)
	}
	return sig, nil
}

// checkJWSSignature checks a transit signature (JWS form) has the key's size.
func checkJWSSignature(pub crypto.PublicKey, sig []byte) error {
	switch pub := pub.(type) {
	case *ecdsa.PublicKey:
		if size := (pub.Curve.Params().BitSize + 7) / 8; len(sig) != 2*size {
			return fmt.Errorf("ECDSA signature of %d bytes, want %d", len(sig), 2*size)
		}
	case *rsa.PublicKey:
		if len(sig) != pub.Size() {
			return fmt.Errorf("RSA signature of %d bytes, want %d", len(sig), pub.Size())
		}
	case ed25519.PublicKey:
		if len(sig) != ed25519.SignatureSize {
			return fmt.Errorf("Ed25519 signature of %d bytes, want %d", len(sig), ed25519.SignatureSize)
		}
	}
	return nil
}

// derSignature turns a transit signature (JWS form) into crypto.Signer's: ECDSA becomes
// ASN.1 DER, the others are already raw.
func derSignature(pub crypto.PublicKey, sig []byte) ([]byte, error) {
	if err := checkJWSSignature(pub, sig); err != nil {
		return nil, err
	}
	if pub, ok := pub.(*ecdsa.PublicKey); ok {
		size := (pub.Curve.Params().BitSize + 7) / 8
		return asn1.Marshal(struct{ R, S *big.Int }{new(big.Int).SetBytes(sig[:size]), new(big.Int).SetBytes(sig[size:])})
	}
	return sig, nil
}

// KeyVersions implements signer.KeyManager.
func (m *manager) KeyVersions(context.Context) ([]signer.KeyVersion, error) {
	st := m.state.Load()
	var out []signer.KeyVersion
	slots, _, _ := m.slots(st, m.now())
	for _, s := range slots {
		id := ""
		if k, ok := st.keys[s.Number]; ok {
			id = k.id
		}
		out = append(out, signer.KeyVersion{Version: s.Number, ID: id, State: string(s.State), Created: s.Created, ActiveFrom: s.ActiveFrom, RetiresAt: s.RetiredAt})
	}
	return out, nil
}

func (m *manager) initX5CMetrics(reg prometheus.Registerer) {
	if reg == nil {
		return
	}
	signing := func() (*versionKey, bool) {
		st := m.state.Load()
		if st == nil {
			return nil, false
		}
		slots, i, due := m.slots(st, m.now())
		if i < 0 {
			return nil, false
		}
		return st.keys[slots[i].Number], i != due
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_signer_vault_x5c_leaf_expiry_timestamp_seconds",
			Help: "When the leaf certificate of the signing version expires (0: no version can sign); `portcullis keys certify` renews it at half its validity."},
			func() float64 {
				if k, _ := signing(); k != nil {
					return float64(k.leaf.NotAfter.Unix())
				}
				return 0
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "portcullis_signer_vault_x5c_fallback",
			Help: "1 while an older version signs because the due one has no fresh leaf certificate yet."},
			func() float64 {
				if _, fb := signing(); fb {
					return 1
				}
				return 0
			}),
	)
}

// report logs the x5c condition when it changes: a due version waiting for its leaf, a
// signing leaf that should have been renewed, or nothing able to sign.
func (m *manager) report(st *keyState) {
	if m.store == nil {
		return
	}
	now := m.now()
	slots, i, due := m.slots(st, now)
	var level slog.Level
	var msg string
	var attrs []any
	switch {
	case i < 0:
		level, msg = slog.LevelError, "x5c: no key version has a fresh leaf certificate; signing fails until `portcullis keys certify` runs"
	case i != due:
		level, msg = slog.LevelWarn, "x5c: the due key version has no fresh leaf certificate; the previous version signs until `portcullis keys certify` runs"
		attrs = []any{"due_version", slots[due].Number, "signing_version", slots[i].Number}
	default:
		leaf := st.keys[slots[i].Number].leaf
		attrs = []any{"signing_version", slots[i].Number, "not_after", leaf.NotAfter.UTC().Format(time.RFC3339)}
		level, msg = slog.LevelInfo, "x5c: signing with a fresh leaf certificate"
		if leaf.NotAfter.Sub(now) < m.cfg.X5C.LeafValidity.D()/4 {
			level, msg = slog.LevelWarn, "x5c: the signing version's leaf certificate is overdue for renewal: is `portcullis keys certify` running?"
		}
	}
	key := msg + fmt.Sprint(attrs...)
	if level == slog.LevelInfo {
		key = msg // a renewal of a healthy leaf is not news
	}
	if key == m.reported {
		return
	}
	m.reported = key
	m.log.Log(context.Background(), level, msg, append(attrs, "key", m.cfg.Key, "store", m.store.where())...)
}
