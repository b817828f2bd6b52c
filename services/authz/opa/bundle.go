package opa

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/bundle"
	"github.com/open-policy-agent/opa/v1/download"
	"github.com/open-policy-agent/opa/v1/keys"
	"github.com/open-policy-agent/opa/v1/logging"
	"github.com/open-policy-agent/opa/v1/plugins/rest"

	"github.com/portcullis-dev/portcullis/internal/config"
)

// BundleConfig is an OPA bundle: a local .tar.gz (Path, watched) or one served over HTTP
// (URL, polled with If-None-Match, so an unchanged bundle costs a 304).
type BundleConfig struct {
	Path string `yaml:"path"`
	URL  string `yaml:"url"`
	// Polling bounds the delay between polls of URL (defaults 10s and 20s; at least 1s).
	Polling struct {
		MinDelay config.Duration `yaml:"min_delay"`
		MaxDelay config.Duration `yaml:"max_delay"`
	} `yaml:"polling"`
	// BearerTokenFile holds a token sent to the bundle server as Authorization: Bearer. It
	// is read for every request (a rotated token is picked up) and sent over https only: an
	// http:// url with a token file is refused.
	BearerTokenFile string `yaml:"bearer_token_file"`
	// Verification, when set, makes signed bundles mandatory: a bundle without a valid
	// .signatures.json from this key is refused.
	Verification *VerificationConfig `yaml:"verification"`
	// Insecure allows an http:// url without verification: anyone on the path to the bundle
	// server could then serve the policy. Refused without it; logged as a WARN with it.
	Insecure bool `yaml:"insecure"`
}

// VerificationConfig is the key bundles must be signed with (`opa build --signing-key`).
type VerificationConfig struct {
	// PublicKeyFile is a PEM public key (RS*, PS*, ES*), or the shared secret for HS*.
	PublicKeyFile string `yaml:"public_key_file"`
	// KeyID is the key's name; the signature's keyid must match (default "portcullis").
	KeyID string `yaml:"key_id"`
	// Algorithm defaults to RS256.
	Algorithm string `yaml:"algorithm"`
	// Scope, when set, must equal the signature's scope claim.
	Scope string `yaml:"scope"`
}

var verifyAlgorithms = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "HS256", "HS384", "HS512"}

func (b *BundleConfig) validate() []error {
	var errs []error
	switch {
	case b.Path == "" && b.URL == "":
		errs = append(errs, errors.New("bundle: give path (a local .tar.gz) or url (a bundle server)"))
	case b.Path != "" && b.URL != "":
		errs = append(errs, errors.New("bundle: path and url exclude each other"))
	}
	if b.URL != "" {
		if u, err := url.Parse(b.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			errs = append(errs, fmt.Errorf("bundle.url %q is not an http(s) URL", b.URL))
		} else if u.Scheme == "http" {
			if b.Verification == nil && !b.Insecure {
				errs = append(errs, fmt.Errorf("bundle.url %s is plain http without verification: anyone on the path could serve the policy; "+
					"use https, sign the bundles (verification), or set insecure: true on this bundle", b.URL))
			}
			if b.BearerTokenFile != "" {
				errs = append(errs, fmt.Errorf("bundle.bearer_token_file is never sent over plain http (bundle.url %s): use https", b.URL))
			}
		}
	}
	minD, maxD := b.Polling.MinDelay.D(), b.Polling.MaxDelay.D()
	if (minD != 0 && minD < 1e9) || (maxD != 0 && maxD < 1e9) {
		errs = append(errs, errors.New("bundle.polling: delays must be at least 1s"))
	}
	if minD != 0 && maxD != 0 && maxD < minD {
		errs = append(errs, errors.New("bundle.polling.max_delay must not be below min_delay"))
	}
	if b.BearerTokenFile != "" {
		if _, err := os.ReadFile(b.BearerTokenFile); err != nil {
			errs = append(errs, fmt.Errorf("bundle.bearer_token_file: %w", err))
		}
	}
	if v := b.Verification; v != nil {
		if v.PublicKeyFile == "" {
			errs = append(errs, errors.New("bundle.verification.public_key_file is required"))
		} else if _, err := os.ReadFile(v.PublicKeyFile); err != nil {
			errs = append(errs, fmt.Errorf("bundle.verification.public_key_file: %w", err))
		}
		if v.Algorithm != "" && !slices.Contains(verifyAlgorithms, v.Algorithm) {
			errs = append(errs, fmt.Errorf("bundle.verification.algorithm %q: want one of %s", v.Algorithm, strings.Join(verifyAlgorithms, ", ")))
		}
	}
	return errs
}

// verification is OPA's verification config for the settings; nil when none is set.
func (b *BundleConfig) verification() (*bundle.VerificationConfig, error) {
	v := b.Verification
	if v == nil {
		return nil, nil
	}
	key, err := os.ReadFile(v.PublicKeyFile)
	if err != nil {
		return nil, fmt.Errorf("bundle.verification.public_key_file: %w", err)
	}
	id, alg := v.KeyID, v.Algorithm
	if id == "" {
		id = "portcullis"
	}
	if alg == "" {
		alg = "RS256"
	}
	return bundle.NewVerificationConfig(map[string]*keys.Config{id: {Key: string(key), Algorithm: alg}}, id, v.Scope, nil), nil
}

// readFile reads and verifies the local bundle.
func (b *BundleConfig) readFile() (source, error) {
	vc, err := b.verification()
	if err != nil {
		return source{}, err
	}
	f, err := os.Open(b.Path)
	if err != nil {
		return source{}, fmt.Errorf("bundle: %w", err)
	}
	defer f.Close()
	r := bundle.NewReader(f).WithRegoVersion(ast.RegoV1).WithSizeLimitBytes(maxBundleBytes)
	if vc != nil {
		r = r.WithBundleVerificationConfig(vc)
	}
	bu, err := r.Read()
	if err != nil {
		return source{}, fmt.Errorf("bundle %s: %w", b.Path, err)
	}
	return bundleSource(b.Path, &bu, "")
}

// maxBundleBytes bounds what a bundle may unpack to: a policy is text, and a bundle
// server should not be able to fill the memory of every authz replica.
const maxBundleBytes = 64 << 20

// downloader is OPA's bundle downloader for URL.
func (b *BundleConfig) downloader(cb func(context.Context, download.Update) error) (*download.Downloader, error) {
	u, err := url.Parse(b.URL)
	if err != nil {
		return nil, err
	}
	if b.BearerTokenFile != "" && u.Scheme != "https" {
		return nil, fmt.Errorf("bundle.bearer_token_file is never sent over plain http (bundle.url %s)", b.URL)
	}
	// Our own auth plugin makes the client: OPA's bearer plugin lets Go carry the token
	// through a redirect to the same host on plain http.
	restCfg := map[string]any{"url": u.Scheme + "://" + u.Host, "credentials": map[string]any{"plugin": bundleAuthPluginName}}
	raw, err := json.Marshal(restCfg)
	if err != nil {
		return nil, err
	}
	auth := &bundleAuth{tokenFile: b.BearerTokenFile}
	client, err := rest.New(raw, nil, rest.Logger(logging.NewNoOpLogger()), rest.AuthPluginLookup(func(name string) rest.HTTPAuthPlugin {
		if name == bundleAuthPluginName {
			return auth
		}
		return nil
	}))
	if err != nil {
		return nil, fmt.Errorf("bundle server client: %w", err)
	}
	minD, maxD := int64(b.Polling.MinDelay.D().Seconds()), int64(b.Polling.MaxDelay.D().Seconds())
	if minD == 0 {
		minD = 10
	}
	if maxD == 0 {
		maxD = max(20, minD)
	}
	dc := download.Config{}
	dc.Polling.MinDelaySeconds, dc.Polling.MaxDelaySeconds = &minD, &maxD
	if err := dc.ValidateAndInjectDefaults(); err != nil {
		return nil, fmt.Errorf("bundle.polling: %w", err)
	}
	vc, err := b.verification()
	if err != nil {
		return nil, err
	}
	path := strings.TrimPrefix(u.RequestURI(), "/")
	d := download.New(dc, client, path).WithCallback(cb).
		WithBundleParserOpts(ast.ParserOptions{RegoVersion: ast.RegoV1}).WithSizeLimitBytes(maxBundleBytes)
	if vc != nil {
		d = d.WithBundleVerificationConfig(vc)
	}
	return d, nil
}

const bundleAuthPluginName = "portcullis"

// bundleAuth is the bundle server client's auth plugin: a bearer token read from its file
// for every request and attached over https only, and a client that follows a redirect only
// on the same host and port and never from https to plain http — the bundle is the policy,
// and the token opens the bundle server.
type bundleAuth struct {
	tokenFile string
}

var _ rest.HTTPAuthPlugin = (*bundleAuth)(nil)

func (a *bundleAuth) NewClient(c rest.Config) (*http.Client, error) {
	tlsCfg, err := rest.DefaultTLSConfig(c)
	if err != nil {
		return nil, err
	}
	var timeout int64
	if c.ResponseHeaderTimeoutSeconds != nil {
		timeout = *c.ResponseHeaderTimeoutSeconds
	}
	hc := rest.DefaultRoundTripperClient(tlsCfg, timeout)
	hc.CheckRedirect = func(req *http.Request, via []*http.Request) error {
		from, to := via[0].URL, req.URL
		switch {
		case strings.EqualFold(from.Scheme, "https") && !strings.EqualFold(to.Scheme, "https"):
			return fmt.Errorf("refused the redirect from %s to %s: it leaves https", from.Redacted(), to.Redacted())
		case !strings.EqualFold(from.Host, to.Host):
			return fmt.Errorf("refused the redirect from %s to %s: another host", from.Redacted(), to.Redacted())
		case len(via) >= 10:
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}
	return hc, nil
}

func (a *bundleAuth) Prepare(req *http.Request) error {
	if a.tokenFile == "" || !strings.EqualFold(req.URL.Scheme, "https") {
		return nil
	}
	tok, err := os.ReadFile(a.tokenFile)
	if err != nil {
		return fmt.Errorf("bundle.bearer_token_file: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(tok)))
	return nil
}

// bundleSource turns a read bundle into a source: its modules (not its tests) and data.
// The revision is the manifest's, else the ETag, else a digest of the content.
func bundleSource(shown string, b *bundle.Bundle, etag string) (source, error) {
	src := source{shown: shown, data: b.Data, rev: b.Manifest.Revision}
	if src.rev == "" && etag != "" {
		src.rev = "etag:" + etag
	}
	for _, m := range b.Modules {
		if strings.HasSuffix(m.Path, "_test.rego") {
			continue
		}
		if m.Parsed == nil {
			return source{}, fmt.Errorf("bundle %s: module %s was not parsed", shown, m.Path)
		}
		src.modules = append(src.modules, m.Parsed)
		src.raw = append(src.raw, m.Path, string(m.Raw))
	}
	if len(src.modules) == 0 {
		return source{}, fmt.Errorf("bundle %s: no policy modules", shown)
	}
	return src, nil
}

// modulesDigest identifies the policy's modules: the same digest means only data changed.
func (s source) modulesDigest() string {
	h := sha256.New()
	for _, r := range s.raw {
		fmt.Fprintf(h, "%d:%s", len(r), r)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// revision names this version of the policy.
func (s source) revision() string {
	if s.rev != "" {
		return s.rev
	}
	h := sha256.New()
	h.Write([]byte(s.modulesDigest()))
	data, _ := json.Marshal(s.data) // map keys are sorted: a stable encoding
	h.Write(data)
	return "sha256:" + hex.EncodeToString(h.Sum(nil))[:16]
}
