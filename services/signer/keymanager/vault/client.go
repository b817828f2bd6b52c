package vault

import (
	"context"
	"crypto"
	"crypto/ed25519"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
)

// transit is the slice of Vault's transit API the key manager uses.
type transit struct {
	c       *api.Client
	mount   string
	timeout time.Duration
	// policy is whose Vault identity calls: a refusal names the policy file it needs.
	policy policyHint
}

func newTransit(c *api.Client, cfg Config, p policyHint) *transit {
	return &transit{c: c, mount: cfg.Mount, timeout: cfg.RequestTimeout.D(), policy: p}
}

// policyHint is the identity making Vault calls, for the text of a permission denied.
type policyHint int

const (
	signerPolicy policyHint = iota
	certifierPolicy
)

// denied says what to check when Vault refuses verb on path.
func (p policyHint) denied(verb string) string {
	switch {
	case verb == "rotate":
		// portcullis.hcl deliberately lacks rotate: rotation through Portcullis is opt-in.
		return "rotating through Portcullis needs deploy/vault/portcullis-rotate.hcl attached to the signer's Vault identity, token and AppRole alike " +
			"(deploy/vault/bootstrap.sh does it with PORTCULLIS_VAULT_ROTATE=1); or rotate in Vault itself"
	case p == certifierPolicy:
		return "check the certifier's Vault policy, see deploy/vault/portcullis-certifier.hcl"
	default:
		return "check the Vault policy, see deploy/vault/portcullis.hcl"
	}
}

// keyInfo is a transit key as read from <mount>/keys/<name>.
type keyInfo struct {
	Type     string
	Versions []keyVersion
	// Exportable or PlaintextBackup: the private key may leave Vault.
	Exportable, PlaintextBackup bool
}

type keyVersion struct {
	Version
	Public crypto.PublicKey
}

// newClient is the Vault client; wrap (may be nil) wraps its transport, for tracing.
func newClient(c Config, wrap func(http.RoundTripper) http.RoundTripper) (*api.Client, error) {
	vc := api.DefaultConfig() // reads VAULT_ADDR and friends
	if vc.Error != nil {
		return nil, vc.Error
	}
	if c.Address != "" {
		vc.Address = c.Address
	}
	if c.TLS.CAFile != "" || c.TLS.ServerName != "" {
		if err := vc.ConfigureTLS(&api.TLSConfig{CACert: c.TLS.CAFile, TLSServerName: c.TLS.ServerName}); err != nil {
			return nil, fmt.Errorf("vault TLS: %w", err)
		}
	}
	// Bounded, no hidden retries: a slow Vault must turn into Unavailable within a second.
	vc.Timeout = c.RequestTimeout.D()
	vc.MaxRetries = 0
	if t, ok := vc.HttpClient.Transport.(*http.Transport); ok {
		t.MaxIdleConnsPerHost = 64
	}
	if wrap != nil {
		vc.HttpClient.Transport = wrap(vc.HttpClient.Transport)
	}
	return api.NewClient(vc)
}

// login authenticates and returns the auth secret to keep renewed, or nil when there is
// nothing to renew.
func login(ctx context.Context, c *api.Client, a AuthConfig) (*api.Secret, error) {
	switch a.Method {
	case "approle":
		opts := []approle.LoginOption{}
		if a.MountPath != "" {
			opts = append(opts, approle.WithMountPath(a.MountPath))
		}
		auth, err := approle.NewAppRoleAuth(a.RoleID, &approle.SecretID{FromFile: a.SecretIDFile}, opts...)
		if err != nil {
			return nil, fmt.Errorf("approle: %w", err)
		}
		c.ClearToken()
		s, err := c.Auth().Login(ctx, auth)
		if err != nil {
			return nil, fmt.Errorf("approle login: %w", err)
		}
		return s, nil
	case "kubernetes":
		// Read on every login: projected service account tokens are rotated by the kubelet.
		// Trimmed, because a hand-made token file often ends in a newline.
		path := a.ServiceAccountTokenFile
		if path == "" {
			path = "/var/run/secrets/kubernetes.io/serviceaccount/token"
		}
		jwt, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("kubernetes service account token: %w", err)
		}
		opts := []kubernetes.LoginOption{kubernetes.WithServiceAccountToken(strings.TrimSpace(string(jwt)))}
		if a.MountPath != "" {
			opts = append(opts, kubernetes.WithMountPath(a.MountPath))
		}
		auth, err := kubernetes.NewKubernetesAuth(a.Role, opts...)
		if err != nil {
			return nil, fmt.Errorf("kubernetes auth: %w", err)
		}
		c.ClearToken()
		s, err := c.Auth().Login(ctx, auth)
		if err != nil {
			return nil, fmt.Errorf("kubernetes login: %w", err)
		}
		return s, nil
	default:
		if a.TokenFile != "" {
			b, err := os.ReadFile(a.TokenFile)
			if err != nil {
				return nil, fmt.Errorf("token file: %w", err)
			}
			c.SetToken(strings.TrimSpace(string(b)))
		}
		if c.Token() == "" {
			return nil, errors.New("no Vault token: set auth.token_file or VAULT_TOKEN")
		}
		s, err := c.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			// A least-privilege token may lack lookup-self (it comes with the default policy);
			// the startup test signature tells whether the token works at all.
			return nil, nil
		}
		if ok, _ := s.TokenIsRenewable(); !ok {
			return nil, nil
		}
		// LookupSelf answers in Data; the watcher wants an Auth secret.
		ttl, _ := s.TokenTTL()
		return &api.Secret{Auth: &api.SecretAuth{ClientToken: c.Token(), Renewable: true, LeaseDuration: int(ttl.Seconds())}}, nil
	}
}

func (t *transit) read(ctx context.Context, name string) (*keyInfo, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	path := t.mount + "/keys/" + name
	s, err := t.c.Logical().ReadWithContext(ctx, path)
	if err != nil {
		return nil, t.policy.describe(err, "read", path)
	}
	if s == nil || s.Data == nil {
		return nil, fmt.Errorf("transit key %q not found at %s (create it: vault write -f %s/keys/%s type=ecdsa-p256)", name, path, t.mount, name)
	}
	ki := &keyInfo{}
	ki.Type, _ = s.Data["type"].(string)
	ki.Exportable, _ = s.Data["exportable"].(bool)
	ki.PlaintextBackup, _ = s.Data["allow_plaintext_backup"].(bool)
	keys, _ := s.Data["keys"].(map[string]any)
	for v, raw := range keys {
		n, err := strconv.Atoi(v)
		if err != nil {
			continue
		}
		m, ok := raw.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%s: version %s has no public key: is %q a signing key type?", path, v, ki.Type)
		}
		created, err := time.Parse(time.RFC3339Nano, fmt.Sprint(m["creation_time"]))
		if err != nil {
			return nil, fmt.Errorf("%s: version %s: bad creation_time", path, v)
		}
		pub, err := parsePublic(ki.Type, fmt.Sprint(m["public_key"]))
		if err != nil {
			return nil, fmt.Errorf("%s: version %s: %w", path, v, err)
		}
		ki.Versions = append(ki.Versions, keyVersion{Version: Version{Number: n, Created: created}, Public: pub})
	}
	sort.Slice(ki.Versions, func(i, j int) bool { return ki.Versions[i].Number < ki.Versions[j].Number })
	return ki, nil
}

func parsePublic(typ, s string) (crypto.PublicKey, error) {
	if typ == "ed25519" {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil || len(b) != ed25519.PublicKeySize {
			return nil, errors.New("malformed ed25519 public key")
		}
		return ed25519.PublicKey(b), nil
	}
	block, _ := pem.Decode([]byte(s))
	if block == nil {
		return nil, fmt.Errorf("no PEM public key for key type %q", typ)
	}
	return x509.ParsePKIXPublicKey(block.Bytes)
}

// signRequest is one transit sign call, single or batched; every input uses one version.
type signRequest struct {
	key     string
	version int
	keyType string
	inputs  [][]byte // digests (prehashed) or, for ed25519, messages
}

// sign returns one signature or error per input, in order.
func (t *transit) sign(ctx context.Context, r signRequest) ([][]byte, []error, error) {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	path := t.mount + "/sign/" + r.key
	body := map[string]any{"key_version": r.version, "marshaling_algorithm": "jws"}
	switch r.keyType {
	case "ed25519":
	case "rsa-2048", "rsa-4096":
		body["hash_algorithm"], body["prehashed"], body["signature_algorithm"] = "sha2-256", true, "pkcs1v15"
	default:
		body["hash_algorithm"], body["prehashed"] = "sha2-256", true
	}
	if len(r.inputs) == 1 {
		body["input"] = base64.StdEncoding.EncodeToString(r.inputs[0])
	} else {
		batch := make([]map[string]any, len(r.inputs))
		for i, in := range r.inputs {
			batch[i] = map[string]any{"input": base64.StdEncoding.EncodeToString(in)}
		}
		body["batch_input"] = batch
	}
	s, err := t.c.Logical().WriteWithContext(ctx, path, body)
	if err != nil {
		return nil, nil, t.policy.describe(err, "sign with", path)
	}
	if s == nil || s.Data == nil {
		return nil, nil, fmt.Errorf("%s: empty answer", path)
	}
	sigs := make([][]byte, len(r.inputs))
	errs := make([]error, len(r.inputs))
	if len(r.inputs) == 1 {
		sigs[0], errs[0] = decodeSig(fmt.Sprint(s.Data["signature"]), r.version)
		return sigs, errs, nil
	}
	results, _ := s.Data["batch_results"].([]any)
	if len(results) != len(r.inputs) {
		return nil, nil, fmt.Errorf("%s: %d batch results for %d inputs", path, len(results), len(r.inputs))
	}
	for i, raw := range results {
		m, _ := raw.(map[string]any)
		if e, _ := m["error"].(string); e != "" {
			errs[i] = fmt.Errorf("%s: item %d: %s", path, i, e)
			continue
		}
		sigs[i], errs[i] = decodeSig(fmt.Sprint(m["signature"]), r.version)
	}
	return sigs, errs, nil
}

// decodeSig checks a "vault:vN:<base64url>" signature came from the pinned version.
func decodeSig(s string, version int) ([]byte, error) {
	prefix := "vault:v" + strconv.Itoa(version) + ":"
	if !strings.HasPrefix(s, prefix) {
		return nil, fmt.Errorf("signature not made with pinned version %d", version)
	}
	b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(s[len(prefix):], "="))
	if err != nil {
		return nil, errors.New("malformed signature encoding")
	}
	return b, nil
}

func (t *transit) rotate(ctx context.Context, name string) error {
	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()
	path := t.mount + "/keys/" + name + "/rotate"
	if _, err := t.c.Logical().WriteWithContext(ctx, path, nil); err != nil {
		return t.policy.describe(err, "rotate", path)
	}
	return nil
}

// errVaultDown marks errors where Vault could not be asked (network, sealed, timeout).
var errVaultDown = errors.New("vault unavailable")

// describe names the path and the cause; it never includes the token.
func (p policyHint) describe(err error, verb, path string) error {
	var re *api.ResponseError
	if errors.As(err, &re) {
		switch re.StatusCode {
		case http.StatusForbidden:
			return fmt.Errorf("vault denied %s %s: permission denied (%s)", verb, path, p.denied(verb))
		case http.StatusNotFound:
			return fmt.Errorf("vault: %s not found", path)
		case http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout:
			return fmt.Errorf("%w: %s %s: HTTP %d (sealed or overloaded)", errVaultDown, verb, path, re.StatusCode)
		}
		return fmt.Errorf("vault: %s %s: HTTP %d: %s", verb, path, re.StatusCode, strings.Join(re.Errors, "; "))
	}
	return fmt.Errorf("%w: %s %s: %v", errVaultDown, verb, path, err)
}
