package vault

import (
	"context"
	"crypto"
	"crypto/subtle"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/vault/api"

	"github.com/portcullis-dev/portcullis/internal/config"
)

// CertifierDeps are what a Certifier uses.
type CertifierDeps struct {
	// Auth is the certifier's own Vault identity (deploy/vault/portcullis-certifier.hcl), never
	// the serving signer's: only the certifier may sign with the root key. Method defaults to
	// token ($VAULT_TOKEN without TokenFile).
	Auth AuthConfig
	// TokenLifetime is signer.max_ttl: a replaced version needs its leaf that long after it
	// stops signing, and a leaf must outlive a token by that much.
	TokenLifetime time.Duration
	// Interval is how often a long-running certifier runs a pass (0: it runs once). Passes
	// must come at most a quarter of x5c.leaf_validity apart, so a missed one or two still
	// leave the signers a fresh leaf (renewal starts at half the validity).
	Interval time.Duration
	Logger   *slog.Logger
	Now      func() time.Time
}

// Certifier makes the x5c certificates: the root once, and a short-lived leaf for every key
// version that is published, active or retiring and lacks a fresh one. It writes them to
// the KV secret x5c.store, from which every serving signer reads them.
type Certifier struct {
	cfg         Config
	t           *transit
	store       *certStore
	log         *slog.Logger
	now         func() time.Time
	retireAfter time.Duration

	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// CertifiedLeaf is what a pass did for one key version.
type CertifiedLeaf struct {
	Version int
	// State is the version's state as the signers show it (`portcullis keys list`) once
	// they have read what this pass wrote: one vocabulary for both commands.
	State State
	// Action: "issued" (had none), "renewed" (less than half its validity left), "kept",
	// or "none" (retired: signs nothing, needs nothing).
	Action      string
	Certificate *x509.Certificate // nil when the version has none
}

// CertifyReport is what one pass found and did.
type CertifyReport struct {
	Root        *x509.Certificate
	RootCreated bool
	Leaves      []CertifiedLeaf
	// Written: the KV secret was updated.
	Written bool
}

// OpenCertifier logs in to Vault with deps.Auth. The certifier uses the key manager's
// address, TLS, keys and x5c settings, never its credentials.
func (c *Config) OpenCertifier(ctx context.Context, deps CertifierDeps) (*Certifier, error) {
	var p config.Problems
	p.AddErrs("", c.Validate())
	if c.X5C == nil {
		p.Addf("x5c", "is not set: only x5c mode has certificates to make")
	}
	auth := deps.Auth
	if auth.Method == "" {
		auth.Method = "token"
	}
	auth.validate(&p, "certifier auth ")
	if err := p.Err(); err != nil {
		return nil, fmt.Errorf("vault certifier: %w", err)
	}
	cfg := c.withDefaults()
	if err := cfg.checkLeafValidity(deps.TokenLifetime); err != nil {
		return nil, fmt.Errorf("vault certifier: %w", err)
	}
	if limit := cfg.X5C.LeafValidity.D() / 4; deps.Interval < 0 || deps.Interval > limit {
		return nil, fmt.Errorf("vault certifier: interval %s must be between 0 and a quarter of x5c.leaf_validity %s (%s)", deps.Interval, cfg.X5C.LeafValidity.D(), limit)
	}
	if sameIdentity(cfg.Auth, auth) {
		return nil, errors.New("vault certifier: " + certifierIdentityHint)
	}
	client, err := newClient(cfg, nil)
	if err != nil {
		return nil, fmt.Errorf("vault: %w", err)
	}
	ce := &Certifier{cfg: cfg, t: newTransit(client, cfg, certifierPolicy), store: newCertStore(client, cfg, certifierPolicy),
		log: deps.Logger, now: deps.Now, retireAfter: deps.TokenLifetime + registryLeeway}
	if ce.log == nil {
		ce.log = slog.New(slog.DiscardHandler)
	}
	if ce.now == nil {
		ce.now = time.Now
	}
	secret, err := login(ctx, client, auth)
	if err != nil {
		return nil, fmt.Errorf("vault %s: certifier %w", client.Address(), err)
	}
	if err := ce.refuseSignerIdentity(ctx, client); err != nil {
		return nil, err
	}
	lctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	ce.cancel = cancel
	if secret != nil { // a sidecar runs for days: keep its token alive
		ce.wg.Add(1)
		go func() { defer ce.wg.Done(); keepLoggedIn(lctx, client, auth, secret, ce.log) }()
	}
	return ce, nil
}

// certifierIdentityHint is what the certifier says when it was given the signer's identity.
const certifierIdentityHint = "its Vault identity is the serving signer's (signer.key.config.auth); the certifier needs its own identity, " +
	"the only one allowed to sign with the x5c root key: a token or AppRole holding deploy/vault/portcullis-certifier.hcl " +
	"(deploy/vault/bootstrap.sh writes certifier-token, certifier-role-id and certifier-secret-id), given with -vault-token-file " +
	"or -vault-auth-method approle"

// vaultIdentity is what auth/token/lookup-self says about a token.
type vaultIdentity struct {
	Accessor, EntityID string
	// Policies without "default", which every token has; sorted.
	Policies []string
}

// lookupSelf asks Vault who the client's token is (nil when Vault does not tell: a token
// without the default policy may not look itself up).
func lookupSelf(ctx context.Context, c *api.Client, timeout time.Duration) *vaultIdentity {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	s, err := c.Auth().Token().LookupSelfWithContext(ctx)
	if err != nil || s == nil || s.Data == nil {
		return nil
	}
	id := &vaultIdentity{}
	id.Accessor, _ = s.Data["accessor"].(string)
	id.EntityID, _ = s.Data["entity_id"].(string)
	// Identity policies (from the entity's groups) are part of what the token may do.
	for _, key := range []string{"policies", "identity_policies"} {
		ps, _ := s.Data[key].([]any)
		for _, p := range ps {
			if p, ok := p.(string); ok && p != "default" && !slices.Contains(id.Policies, p) {
				id.Policies = append(id.Policies, p)
			}
		}
	}
	slices.Sort(id.Policies)
	return id
}

// sameVaultIdentity says how certifier and signer, as Vault sees them, are one identity:
// the same token (a copy under another file name has the same accessor), the same entity
// (two logins of one AppRole or Kubernetes role), or the same policies (another token made
// for the signer). Empty when they differ.
func sameVaultIdentity(signer, certifier vaultIdentity) string {
	switch {
	case signer.Accessor != "" && signer.Accessor == certifier.Accessor:
		return "the same token (accessor " + signer.Accessor + ")"
	case signer.EntityID != "" && signer.EntityID == certifier.EntityID:
		return "the same Vault entity " + signer.EntityID
	case len(signer.Policies) > 0 && slices.Equal(signer.Policies, certifier.Policies):
		return "the same policies " + strings.Join(signer.Policies, ",")
	}
	return ""
}

// refuseSignerIdentity refuses a certifier identity that is the serving signer's (see
// compareWithSigner) or that may not sign with the root key, which the signer's never may.
func (ce *Certifier) refuseSignerIdentity(ctx context.Context, client *api.Client) error {
	if err := ce.compareWithSigner(ctx, client); err != nil {
		return err
	}
	// Whatever the signer logs in with, its identity cannot sign with the root key (the
	// signer refuses to start otherwise); an identity that cannot is not the certifier's.
	path := ce.cfg.Mount + "/sign/" + ce.cfg.X5C.RootKey
	cctx, cancel := context.WithTimeout(ctx, ce.cfg.RequestTimeout.D())
	caps, err := client.Sys().CapabilitiesSelfWithContext(cctx, path)
	cancel()
	if err == nil && !slices.Contains(caps, "update") && !slices.Contains(caps, "root") {
		return fmt.Errorf("vault certifier: its Vault identity may not sign with the x5c root key (%s: %v), so it is not the certifier's "+
			"(is it the signer's?); the certifier needs its own identity: a token or AppRole holding deploy/vault/portcullis-certifier.hcl "+
			"(deploy/vault/bootstrap.sh writes certifier-token, certifier-role-id and certifier-secret-id)", path, caps)
	}
	return nil
}

// compareWithSigner compares, through auth/token/lookup-self, the certifier's Vault identity
// with the serving signer's, where the signer's token file is readable here: file names and
// role ids alone miss a copy of the signer's token under another name. The signer's AppRole
// or Kubernetes login is never performed here (it would use up a secret id); those compare
// by role (sameIdentity) and by the root-key capability.
func (ce *Certifier) compareWithSigner(ctx context.Context, client *api.Client) error {
	a := ce.cfg.Auth
	if a.Method != "token" || a.TokenFile == "" {
		return nil
	}
	b, err := os.ReadFile(a.TokenFile)
	signerToken := strings.TrimSpace(string(b))
	if err != nil || signerToken == "" {
		return nil // the signer's secret is not on this machine
	}
	if subtle.ConstantTimeCompare([]byte(signerToken), []byte(client.Token())) == 1 {
		return fmt.Errorf("vault certifier: %s (the certifier's token is the signer's)", certifierIdentityHint)
	}
	me := lookupSelf(ctx, client, ce.cfg.RequestTimeout.D())
	if me == nil {
		ce.log.Info("x5c certifier: Vault does not say who its token is (auth/token/lookup-self); not compared with the signer's")
		return nil
	}
	sc, err := newClient(ce.cfg, nil)
	if err != nil {
		return fmt.Errorf("vault: %w", err)
	}
	sc.SetToken(signerToken)
	signer := lookupSelf(ctx, sc, ce.cfg.RequestTimeout.D())
	if signer == nil {
		return nil
	}
	if how := sameVaultIdentity(*signer, *me); how != "" {
		return fmt.Errorf("vault certifier: %s (Vault says: %s)", certifierIdentityHint, how)
	}
	return nil
}

// sameIdentity: the certifier was given the serving signer's credentials.
func sameIdentity(signer, certifier AuthConfig) bool {
	if signer.Method != certifier.Method {
		return false
	}
	switch signer.Method {
	case "approle":
		return signer.RoleID == certifier.RoleID
	case "kubernetes":
		return signer.Role == certifier.Role && signer.MountPath == certifier.MountPath
	default:
		return signer.TokenFile != "" && signer.TokenFile == certifier.TokenFile
	}
}

// Close stops the token renewal.
func (ce *Certifier) Close(context.Context) error {
	ce.cancel()
	ce.wg.Wait()
	return nil
}

// Certify runs one pass: the root if missing, then a leaf for every version that needs one.
// It writes the secret only when something changed, with check-and-set, and starts over
// once if another certifier wrote in between.
func (ce *Certifier) Certify(ctx context.Context) (CertifyReport, error) {
	r, err := ce.certify(ctx)
	if errors.Is(err, errConflict) {
		r, err = ce.certify(ctx)
	}
	return r, err
}

func (ce *Certifier) certify(ctx context.Context) (CertifyReport, error) {
	var rep CertifyReport
	cfg := ce.cfg
	now := ce.now()
	ki, err := ce.readKey(ctx, cfg.Key)
	if err != nil {
		return rep, err
	}
	if ki.Type != cfg.KeyType {
		return rep, fmt.Errorf("vault key %q is of type %q, but key_type is %q", cfg.Key, ki.Type, cfg.KeyType)
	}
	rk, err := ce.readKey(ctx, cfg.X5C.RootKey)
	if err != nil {
		return rep, err
	}
	if len(rk.Versions) == 0 || rk.Type == "ed25519" && cfg.KeyType != "ed25519" {
		return rep, fmt.Errorf("x5c root key %q: unusable (type %q, %d versions)", cfg.X5C.RootKey, rk.Type, len(rk.Versions))
	}
	old, casVersion, err := ce.store.read(ctx)
	if err != nil {
		return rep, fmt.Errorf("x5c certificate store: %w", err)
	}
	if old == nil {
		old = &certDoc{}
	}
	if old.Key != "" && old.Key != cfg.Key {
		return rep, fmt.Errorf("x5c: %s holds certificates for transit key %q, not %q: give each signing key its own x5c.store.path", ce.store.where(), old.Key, cfg.Key)
	}
	doc := &certDoc{Key: cfg.Key, RootKey: cfg.X5C.RootKey, Root: old.Root, Leaves: maps.Clone(old.Leaves), Certified: maps.Clone(old.Certified)}
	if doc.Leaves == nil {
		doc.Leaves = map[string]string{}
	}
	if doc.Certified == nil {
		doc.Certified = map[string]string{}
	}

	root, rootVersion := storedRoot(old.Root, rk.Versions)
	if root == nil {
		if old.Root != "" {
			ce.log.Warn("x5c: the stored root certificate is not one of the root key's versions; making a new root, which registries must be given (portcullis registry-config)",
				"root_key", cfg.X5C.RootKey, "store", ce.store.where())
		}
		rootVersion = rk.Versions[len(rk.Versions)-1]
		tmpl, err := rootTemplate(cfg.X5C.CommonName, rootVersion)
		if err != nil {
			return rep, err
		}
		if root, err = createCert(tmpl, tmpl, rootVersion.Public, ce.rootSigner(rk.Type, rootVersion)); err != nil {
			return rep, fmt.Errorf("x5c root certificate via transit key %q: %w", cfg.X5C.RootKey, err)
		}
		doc.Root, rep.RootCreated = certPEM(root), true
	}
	rep.Root = root
	rs := ce.rootSigner(rk.Type, rootVersion)

	versions := make([]Version, len(ki.Versions))
	pubs := map[int]crypto.PublicKey{}
	for i, v := range ki.Versions {
		versions[i], pubs[v.Number] = v.Version, v.Public
	}
	validity := cfg.X5C.LeafValidity.D()
	usable := func(d *certDoc) func(int) bool {
		return func(n int) bool {
			l, err := parseCertPEM(d.Leaves[strconv.Itoa(n)])
			return err == nil && pubs[n] != nil && checkLeaf(l, root, pubs[n]) == nil
		}
	}
	// The signers' schedule (ScheduleCertified), from what the store held before this pass.
	for _, s := range ScheduleCertified(versions, now, cfg.PropagationDelay.D(), ce.retireAfter, certifiedTimes(old, usable(old))) {
		name := strconv.Itoa(s.Number)
		var leaf *x509.Certificate
		if p, ok := doc.Leaves[name]; ok {
			if l, err := parseCertPEM(p); err == nil && checkLeaf(l, root, pubs[s.Number]) == nil {
				leaf = l
			}
		}
		cl := CertifiedLeaf{Version: s.Number, State: s.State, Certificate: leaf, Action: "kept"}
		switch {
		case s.State == StateRetired:
			// It signs nothing and its tokens have expired; so will its leaf.
			cl.Action = "none"
			if leaf == nil || now.After(leaf.NotAfter) {
				delete(doc.Leaves, name)
			}
		case needsRenewal(leaf, now, validity):
			cl.Action = "renewed"
			if leaf == nil {
				cl.Action = "issued"
			}
			tmpl, err := leafTemplate(cfg.Key, s.Number, now, validity, root)
			if err != nil {
				return rep, err
			}
			if leaf, err = createCert(tmpl, root, pubs[s.Number], rs); err != nil {
				return rep, fmt.Errorf("x5c leaf certificate for %q version %d: %w", cfg.Key, s.Number, err)
			}
			cl.Certificate, doc.Leaves[name] = leaf, certPEM(leaf)
			// The version may sign from now on: record when, once. A version certified
			// before this was recorded keeps no entry (it was signing already).
			if _, ok := doc.Certified[name]; !ok && cl.Action == "issued" {
				doc.Certified[name] = now.UTC().Format(time.RFC3339Nano)
			}
		}
		rep.Leaves = append(rep.Leaves, cl)
	}
	for name := range doc.Leaves { // versions Vault no longer has
		if n, err := strconv.Atoi(name); err != nil || pubs[n] == nil {
			delete(doc.Leaves, name)
		}
	}
	for name := range doc.Certified { // versions without a leaf any more: retired or gone
		if _, ok := doc.Leaves[name]; !ok {
			delete(doc.Certified, name)
		}
	}
	// States as the signers will show them (`portcullis keys list`) once they read this.
	after := ScheduleCertified(versions, now, cfg.PropagationDelay.D(), ce.retireAfter, certifiedTimes(doc, usable(doc)))
	for i := range rep.Leaves {
		for _, s := range after {
			if s.Number == rep.Leaves[i].Version {
				rep.Leaves[i].State = s.State
			}
		}
	}
	if reflect.DeepEqual(doc, &certDoc{Key: old.Key, RootKey: old.RootKey, Root: old.Root, Leaves: nonNil(old.Leaves), Certified: nonNil(old.Certified)}) {
		return rep, nil
	}
	if err := ce.store.write(ctx, doc, casVersion); err != nil {
		return rep, err
	}
	rep.Written = true
	for _, l := range rep.Leaves {
		if l.Action == "issued" || l.Action == "renewed" {
			ce.log.Info("x5c leaf certificate "+l.Action, "key", cfg.Key, "version", l.Version, "not_after", l.Certificate.NotAfter)
		}
	}
	return rep, nil
}

func nonNil(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// readKey reads a transit key and refuses one whose private half may leave Vault: certifying
// it would vouch for a key someone may hold outside.
func (ce *Certifier) readKey(ctx context.Context, name string) (*keyInfo, error) {
	ki, err := ce.t.read(ctx, name)
	if err != nil {
		return nil, fmt.Errorf("vault key %q: %w", name, err)
	}
	if ki.Exportable || ki.PlaintextBackup {
		return nil, fmt.Errorf("vault key %q is exportable or allows plaintext backup: its private key can leave Vault, so it is not certified", name)
	}
	return ki, nil
}

func (ce *Certifier) rootSigner(typ string, v keyVersion) *transitSigner {
	return &transitSigner{t: ce.t, name: ce.cfg.X5C.RootKey, keyType: typ, version: v.Number, pub: v.Public}
}

// storedRoot is the stored root certificate and the root key version it belongs to, or nil
// when there is none or it is not of any version of the root key.
func storedRoot(p string, versions []keyVersion) (*x509.Certificate, keyVersion) {
	if p == "" {
		return nil, keyVersion{}
	}
	c, err := parseCertPEM(p)
	if err != nil || !c.IsCA || c.CheckSignatureFrom(c) != nil {
		return nil, keyVersion{}
	}
	i := slices.IndexFunc(versions, func(v keyVersion) bool { return sameKey(c.PublicKey, v.Public) })
	if i < 0 {
		return nil, keyVersion{}
	}
	return c, versions[i]
}

// keepLoggedIn renews the Vault token while it can and logs in again when it cannot.
func keepLoggedIn(ctx context.Context, c *api.Client, auth AuthConfig, secret *api.Secret, log *slog.Logger) {
	for ctx.Err() == nil {
		w, err := c.NewLifetimeWatcher(&api.LifetimeWatcherInput{Secret: secret})
		if err != nil {
			log.Warn("vault token renewal unavailable", "error", err)
			return
		}
		go w.Start()
		select {
		case <-ctx.Done():
			w.Stop()
			return
		case err := <-w.DoneCh():
			if err != nil {
				log.Warn("vault token renewal stopped", "error", err)
			}
		}
		for ctx.Err() == nil {
			s, err := login(ctx, c, auth)
			if err == nil && s != nil {
				secret = s
				break
			}
			if err == nil { // a token we cannot renew: nothing more to do
				return
			}
			log.Warn("vault login failed; retrying", "error", err)
			select {
			case <-ctx.Done():
			case <-time.After(5 * time.Second):
			}
		}
	}
}
