package oidc_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/oidc"
)

const aud = "registry.example.com"

func newClock() *testutil.Clock { return testutil.NewClock(time.Unix(1_750_000_000, 0)) }

// githubIssuer trusts iss like GitHub Actions: tokens for aud from myorg's repositories on
// main, mapped to labels.
func githubIssuer(iss *oidctest.Issuer) oidc.Issuer {
	return oidc.Issuer{
		Issuer:      iss.URL,
		Audiences:   []string{"other.example.com", aud},
		MaxTokenAge: config.Duration(time.Hour),
		Claims: map[string]oidc.Strings{
			"repository": {"myorg/*"},
			"ref":        {"refs/heads/main", "refs/tags/v*"},
		},
		Subject: "sub",
		Groups:  oidc.Strings{"repository_owner", "teams"},
		Labels:  map[string]string{"repository": "repository", "ref": "ref", "workflow": "workflow", "run": "run_number", "teams": "teams"},
	}
}

// githubClaims are a GitHub Actions token's claims (the ones the tests look at).
func githubClaims(iss *oidctest.Issuer, now time.Time) map[string]any {
	c := iss.Claims(aud, now, 10*time.Minute)
	maps.Copy(c, map[string]any{
		"sub":              "repo:myorg/app:ref:refs/heads/main",
		"repository":       "myorg/app",
		"repository_owner": "myorg",
		"ref":              "refs/heads/main",
		"workflow":         "release",
		"run_number":       42,
		"teams":            []any{"builders", "myorg"},
	})
	return c
}

func openBench(b *testing.B, clk *testutil.Clock, iss *oidctest.Issuer) authn.Backend {
	b.Helper()
	a, err := (&oidc.Config{Issuers: []oidc.Issuer{githubIssuer(iss)}}).Open(context.Background(), authn.Deps{Now: clk.Now})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = a.Close(context.Background()) })
	return a
}

func open(t *testing.T, clk *testutil.Clock, issuers ...oidc.Issuer) authn.Backend {
	t.Helper()
	return openConfig(t, clk, &oidc.Config{Issuers: issuers})
}

func openConfig(t *testing.T, clk *testutil.Clock, c *oidc.Config) authn.Backend {
	t.Helper()
	a, err := c.Open(context.Background(), authn.Deps{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	return a
}

func login(a authn.Authenticator, token string) (err error) {
	_, err = a.Authenticate(context.Background(), authn.Credentials{Username: "ci", Password: authn.Password(token)})
	return err
}

func with(c map[string]any, kv ...any) map[string]any {
	out := maps.Clone(c)
	for i := 0; i < len(kv); i += 2 {
		if kv[i+1] == nil {
			delete(out, kv[i].(string))
			continue
		}
		out[kv[i].(string)] = kv[i+1]
	}
	return out
}

func TestValidTokenMapsSubjectGroupsAndLabels(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	a := open(t, clk, githubIssuer(iss))
	claims := githubClaims(iss, clk.Now().Add(-30*time.Minute))
	claims["exp"] = clk.Now().Add(24 * time.Hour).Unix() // far off: max_token_age decides
	id, err := a.Authenticate(context.Background(), authn.Credentials{Username: "whatever", Password: authn.Password(iss.MustSign(t, claims))})
	if err != nil {
		t.Fatal(err)
	}
	if id.Subject != "repo:myorg/app:ref:refs/heads/main" || id.Anonymous || id.Backend != "" {
		t.Fatalf("identity = %+v", id)
	}
	if want := []string{"myorg", "builders"}; !slices.Equal(id.Groups, want) {
		t.Fatalf("groups = %v, want %v (deduplicated, in claim order)", id.Groups, want)
	}
	// An array claim gives the label every element, in claim order.
	wantLabels := map[string][]string{"repository": {"myorg/app"}, "ref": {"refs/heads/main"}, "workflow": {"release"}, "run": {"42"}, "teams": {"builders", "myorg"}}
	if !reflect.DeepEqual(id.Labels, wantLabels) {
		t.Fatalf("labels = %v, want %v", id.Labels, wantLabels)
	}
	// iat was 30 minutes ago and max_token_age is an hour: that ends it, not the far exp.
	if want := clk.Now().Add(30 * time.Minute); !id.ValidUntil.Equal(want) {
		t.Fatalf("ValidUntil = %v, want %v", id.ValidUntil, want)
	}
	short := githubClaims(iss, clk.Now())
	id, err = a.Authenticate(context.Background(), authn.Credentials{Username: "x", Password: authn.Password(iss.MustSign(t, short))})
	if err != nil {
		t.Fatal(err)
	}
	if want := clk.Now().Add(10 * time.Minute); !id.ValidUntil.Equal(want) {
		t.Fatalf("ValidUntil = %v, want the token's exp %v", id.ValidUntil, want)
	}
}

func TestRefusals(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	other := oidctest.Start(t)
	a := open(t, clk, githubIssuer(iss))
	now := clk.Now()
	good := githubClaims(iss, now)
	if err := login(a, iss.MustSign(t, good)); err != nil {
		t.Fatalf("the good token: %v", err)
	}
	signed := func(c map[string]any) func(t *testing.T) string {
		return func(t *testing.T) string { return iss.MustSign(t, c) }
	}
	cases := []struct {
		name   string
		token  func(t *testing.T) string
		reason string
	}{
		{"expired", signed(with(good, "iat", now.Add(-20*time.Minute).Unix(), "exp", now.Add(-time.Second).Unix())), "expired"},
		{"expires this very second", signed(with(good, "exp", now.Unix())), "expired"},
		{"no exp", signed(with(good, "exp", nil)), "no exp"},
		{"not valid yet", signed(with(good, "nbf", now.Add(5*time.Minute).Unix())), "nbf"},
		{"issued in the future", signed(with(good, "iat", now.Add(5*time.Minute).Unix(), "nbf", nil)), "iat"},
		{"too old though exp is far off", signed(with(good, "iat", now.Add(-61*time.Minute).Unix(), "exp", now.Add(365*24*time.Hour).Unix())), "max_token_age"},
		{"no iat", signed(with(good, "iat", nil)), "no iat"},
		{"wrong audience", signed(with(good, "aud", "sts.amazonaws.com")), "audience"},
		{"no audience", signed(with(good, "aud", nil)), "audience"},
		{"audience list without ours", signed(with(good, "aud", []any{"a", "b"})), "audience"},
		{"claim mismatch: equality", signed(with(good, "ref", "refs/heads/feature")), "claim ref"},
		{"claim mismatch: glob", signed(with(good, "repository", "evilorg/app")), "claim repository"},
		{"glob star does not cross /", signed(with(good, "repository", "myorg/app/x")), "claim repository"},
		{"glob prefix is not a match", signed(with(good, "repository", "myorg2/app")), "claim repository"},
		{"required claim missing", signed(with(good, "ref", nil)), "claim ref"},
		{"required claim not a string", signed(with(good, "ref", map[string]any{"x": "refs/heads/main"})), "claim ref"},
		{"subject claim missing", signed(with(good, "sub", nil)), "subject"},
		{"subject claim empty", signed(with(good, "sub", "")), "subject"},
		{"alg none", func(t *testing.T) string {
			tok, err := iss.Unsigned(good)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, "algorithm"},
		{"HS256 signed with the public key", func(t *testing.T) string {
			tok, err := iss.HS256WithPublicKey(good)
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}, "algorithm"},
		{"signed by another issuer's key, naming ours", func(t *testing.T) string {
			return other.MustSign(t, good) // other's kid is unknown to iss: refetch, still unknown
		}, "unknown signing key"},
		{"payload changed after signing", func(t *testing.T) string {
			parts := strings.Split(iss.MustSign(t, good), ".")
			parts[1] = base64.RawURLEncoding.EncodeToString(mustJSON(t, with(good, "repository", "myorg/other")))
			return strings.Join(parts, ".")
		}, "bad signature"},
		{"signature of another token", func(t *testing.T) string {
			a := strings.Split(iss.MustSign(t, good), ".")
			b := strings.Split(iss.MustSign(t, with(good, "ref", "refs/tags/v1")), ".")
			return a[0] + "." + b[1] + "." + a[2]
		}, "bad signature"},
		{"two signatures' worth of segments", func(t *testing.T) string {
			return iss.MustSign(t, good) + ".AAAA"
		}, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := login(a, tc.token(t))
			if tc.reason == "" { // not a JWT at all: not this backend's
				if !errors.Is(err, authn.ErrNoMatch) {
					t.Fatalf("err = %v, want ErrNoMatch", err)
				}
				return
			}
			if !errors.Is(err, authn.ErrInvalidCredentials) {
				t.Fatalf("err = %v, want ErrInvalidCredentials", err)
			}
			if !strings.Contains(err.Error(), tc.reason) {
				t.Fatalf("err = %v, want reason %q (refused for the wrong reason?)", err, tc.reason)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// Tokens a little ahead of our clock (the issuer's runs fast) are accepted; expiry gets no
// such leeway.
func TestClockSkewOnlyForFreshTokens(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	a := open(t, clk, githubIssuer(iss))
	ahead := githubClaims(iss, clk.Now().Add(30*time.Second))
	if err := login(a, iss.MustSign(t, ahead)); err != nil {
		t.Fatalf("token issued 30s ahead of our clock: %v", err)
	}
}

func TestUnknownIssuerIsNotThisBackends(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss, stranger := oidctest.Start(t), oidctest.Start(t)
	a := open(t, clk, githubIssuer(iss))
	err := login(a, stranger.MustSign(t, githubClaims(stranger, clk.Now())))
	if !errors.Is(err, authn.ErrNoMatch) {
		t.Fatalf("err = %v, want ErrNoMatch (another workload backend may trust it)", err)
	}
	if stranger.JWKSRequests()+stranger.DiscoveryRequests() != 0 {
		t.Fatal("a token naming an untrusted issuer made us contact that issuer")
	}
}

func TestAlgorithms(t *testing.T) {
	t.Parallel()
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.RS512, jose.PS256, jose.ES256, jose.ES384, jose.ES512, jose.EdDSA} {
		t.Run(string(alg), func(t *testing.T) {
			t.Parallel()
			clk := newClock()
			iss := oidctest.Start(t)
			if _, err := iss.Rotate(alg, false); err != nil {
				t.Fatal(err)
			}
			a := open(t, clk, githubIssuer(iss))
			if err := login(a, iss.MustSign(t, githubClaims(iss, clk.Now()))); err != nil {
				t.Fatalf("default algorithms: %v", err)
			}
			only := githubIssuer(iss)
			only.Algorithms = []string{"RS384"}
			b := open(t, clk, only)
			err := login(b, iss.MustSign(t, githubClaims(iss, clk.Now())))
			if !errors.Is(err, authn.ErrInvalidCredentials) || !strings.Contains(err.Error(), "algorithm") {
				t.Fatalf("%s with only RS384 allowed: err = %v", alg, err)
			}
		})
	}
}

// GitLab sends booleans as strings ("ref_protected": "false"); a pattern matches either form.
func TestGitLabStringBooleans(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	a := open(t, clk, oidc.Issuer{
		Issuer:    iss.URL,
		Audiences: []string{aud},
		Claims:    map[string]oidc.Strings{"ref_protected": {"true"}, "project_path": {"mygroup/*"}, "ref_type": {"branch", "tag"}},
		Subject:   "sub",
		Labels:    map[string]string{"project": "project_path", "protected": "ref_protected", "environment_protected": "environment_protected", "pipeline": "pipeline_id"},
	})
	gitlab := func(protected, envProtected any) string {
		c := iss.Claims(aud, clk.Now(), 5*time.Minute)
		maps.Copy(c, map[string]any{
			"sub":                   "project_path:mygroup/app:ref_type:branch:ref:main",
			"project_path":          "mygroup/app",
			"ref_type":              "branch",
			"ref_protected":         protected,
			"environment_protected": envProtected,
			"pipeline_id":           "1234567",
		})
		return iss.MustSign(t, c)
	}
	for _, tc := range []struct {
		name           string
		protected, env any
		wantErr        bool
		wantLabel      string
	}{
		{"string true", "true", "false", false, "false"},
		{"JSON true", true, false, false, "false"},
		{"string false", "false", "false", true, ""},
		{"JSON false", false, true, true, ""},
	} {
		id, err := a.Authenticate(context.Background(), authn.Credentials{Username: "gitlab-ci-token", Password: authn.Password(gitlab(tc.protected, tc.env))})
		if tc.wantErr {
			if !errors.Is(err, authn.ErrInvalidCredentials) {
				t.Fatalf("%s: err = %v, want ErrInvalidCredentials", tc.name, err)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		want := map[string][]string{"project": {"mygroup/app"}, "protected": {"true"}, "environment_protected": {tc.wantLabel}, "pipeline": {"1234567"}}
		if !reflect.DeepEqual(id.Labels, want) {
			t.Fatalf("%s: labels = %v, want %v", tc.name, id.Labels, want)
		}
	}
}

// Kubernetes puts its claims under "kubernetes.io", a name with a dot in it.
func TestKubernetesNestedClaims(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	a := open(t, clk, oidc.Issuer{
		Issuer:      iss.URL,
		Audiences:   []string{aud},
		MaxTokenAge: config.Duration(2 * time.Hour),
		Claims:      map[string]oidc.Strings{"kubernetes.io.namespace": {"ci", "ci-*"}},
		Subject:     "sub",
		Groups:      oidc.Strings{"kubernetes.io.namespace"},
		Labels:      map[string]string{"namespace": "kubernetes.io.namespace", "serviceaccount": "kubernetes.io.serviceaccount.name", "pod": "kubernetes.io.pod.name"},
	})
	k8s := func(ns string) map[string]any {
		c := iss.Claims(aud, clk.Now(), 365*24*time.Hour) // an extended token
		c["sub"] = "system:serviceaccount:" + ns + ":builder"
		c["kubernetes.io"] = map[string]any{
			"namespace":      ns,
			"serviceaccount": map[string]any{"name": "builder", "uid": "c4b5e2d0"},
			"pod":            map[string]any{"name": "build-7f9c", "uid": "0a1b"},
		}
		return c
	}
	id, err := a.Authenticate(context.Background(), authn.Credentials{Username: "k8s", Password: authn.Password(iss.MustSign(t, k8s("ci-team-a")))})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{"namespace": {"ci-team-a"}, "serviceaccount": {"builder"}, "pod": {"build-7f9c"}}
	if !reflect.DeepEqual(id.Labels, want) || !slices.Equal(id.Groups, []string{"ci-team-a"}) || id.Subject != "system:serviceaccount:ci-team-a:builder" {
		t.Fatalf("identity = %+v", id)
	}
	if want := clk.Now().Add(2 * time.Hour); !id.ValidUntil.Equal(want) {
		t.Fatalf("ValidUntil = %v, want %v (max_token_age, not the year-long exp)", id.ValidUntil, want)
	}
	if err := login(a, iss.MustSign(t, k8s("default"))); !errors.Is(err, authn.ErrInvalidCredentials) {
		t.Fatalf("namespace default: err = %v", err)
	}
	clk.Add(2*time.Hour + time.Second)
	if err := login(a, iss.MustSign(t, k8s("ci"))); err != nil {
		t.Fatalf("a token minted now: %v", err)
	}
}

func TestKeyRotationAndUnknownKIDRateLimit(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	a := openConfig(t, clk, &oidc.Config{Issuers: []oidc.Issuer{githubIssuer(iss)}, JWKSMinRefreshInterval: config.Duration(10 * time.Second)})
	if err := login(a, iss.MustSign(t, githubClaims(iss, clk.Now()))); err != nil {
		t.Fatal(err)
	}
	if iss.DiscoveryRequests() != 1 || iss.JWKSRequests() != 1 {
		t.Fatalf("first login: %d discovery and %d JWKS requests, want 1 and 1", iss.DiscoveryRequests(), iss.JWKSRequests())
	}
	// A burst of tokens naming keys nobody publishes, right after a fetch: no fetch at all.
	burst := func() {
		var wg sync.WaitGroup
		for range 50 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				tok, err := iss.SignWithKID(githubClaims(iss, clk.Now()), randomKID())
				if err != nil {
					t.Error(err)
					return
				}
				if err := login(a, tok); !errors.Is(err, authn.ErrInvalidCredentials) {
					t.Errorf("unknown kid: err = %v, want ErrInvalidCredentials", err)
				}
			}()
		}
		wg.Wait()
	}
	burst()
	if got := iss.JWKSRequests(); got != 1 {
		t.Fatalf("a burst of unknown kids within the rate limit made %d JWKS requests, want none", got-1)
	}
	// Once the interval has passed, the next burst makes exactly one.
	clk.Add(10 * time.Second)
	burst()
	if got := iss.JWKSRequests(); got != 2 {
		t.Fatalf("a burst of unknown kids after the interval made %d JWKS requests, want 1", got-1)
	}
	// The issuer rotates; the first token with the new key fetches it.
	if _, err := iss.Rotate(jose.ES256, false); err != nil {
		t.Fatal(err)
	}
	clk.Add(10 * time.Second)
	if err := login(a, iss.MustSign(t, githubClaims(iss, clk.Now()))); err != nil {
		t.Fatalf("token signed with the rotated key: %v", err)
	}
	if got := iss.JWKSRequests(); got != 3 {
		t.Fatalf("rotation: %d JWKS requests, want 3", got)
	}
	if got := iss.DiscoveryRequests(); got != 1 {
		t.Fatalf("discovery requested %d times, want once", got)
	}
}

// A key the issuer withdraws stops working once the cache is old enough to refetch, without
// waiting on the refetch: it happens behind the check that noticed the age.
func TestWithdrawnKeyStopsWorkingAfterRefreshInterval(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	var changed atomic.Int32
	a, err := (&oidc.Config{Issuers: []oidc.Issuer{githubIssuer(iss)}, JWKSRefreshInterval: config.Duration(time.Minute)}).
		Open(context.Background(), authn.Deps{Now: clk.Now, Changed: func() { changed.Add(1) }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = a.Close(context.Background()) })
	tokOld := iss.MustSign(t, githubClaims(iss, clk.Now().Add(30*time.Second)))
	if err := login(a, tokOld); err != nil {
		t.Fatal(err)
	}
	if _, err := iss.Rotate(jose.RS256, false); err != nil {
		t.Fatal(err)
	}
	clk.Add(59 * time.Second)
	if err := login(a, tokOld); err != nil {
		t.Fatalf("cached key before the refresh interval: %v", err)
	}
	if iss.JWKSRequests() != 1 {
		t.Fatal("keys refetched before the refresh interval")
	}
	clk.Add(time.Second)
	// This check starts the refetch and is answered from the cache.
	if err := login(a, tokOld); err != nil {
		t.Fatalf("check that started the background refresh: %v", err)
	}
	testutil.Eventually(t, 5*time.Second, "the withdrawn key refused", func() bool { return errors.Is(login(a, tokOld), authn.ErrInvalidCredentials) })
	if got := iss.JWKSRequests(); got != 2 {
		t.Fatalf("%d JWKS requests, want 2", got)
	}
	// The login cache may hold identities verified with the withdrawn key: it is told.
	testutil.Eventually(t, 5*time.Second, "Deps.Changed called", func() bool { return changed.Load() >= 1 })
	if changed.Load() != 1 {
		t.Fatalf("Deps.Changed called %d times, want once for the withdrawn key", changed.Load())
	}
	if err := login(a, iss.MustSign(t, githubClaims(iss, clk.Now()))); err != nil {
		t.Fatalf("the new key: %v", err)
	}
}

func TestIssuerDown(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	a := openConfig(t, clk, &oidc.Config{Issuers: []oidc.Issuer{githubIssuer(iss)}, JWKSRefreshInterval: config.Duration(time.Minute)})

	// Down before we ever had a key: unavailable, not a wrong password.
	iss.SetDown(true)
	tok := iss.MustSign(t, githubClaims(iss, clk.Now()))
	if err := login(a, tok); !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("issuer down, no key: err = %v, want ErrUnavailable", err)
	}
	tries := iss.DiscoveryRequests()
	if err := login(a, tok); !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("issuer down, no key, again: err = %v, want ErrUnavailable", err)
	}
	if iss.DiscoveryRequests() != tries {
		t.Fatal("a down issuer was asked again within the rate limit")
	}

	// Back up: the keys are fetched once the rate limit allows.
	iss.SetDown(false)
	clk.Add(10 * time.Second)
	if err := login(a, tok); err != nil {
		t.Fatalf("issuer back: %v", err)
	}

	// Down again with the key cached: tokens still verify, even past the refresh interval.
	iss.SetDown(true)
	clk.Add(time.Hour)
	for range 3 {
		if err := login(a, iss.MustSign(t, githubClaims(iss, clk.Now()))); err != nil {
			t.Fatalf("issuer down, key cached: %v", err)
		}
		clk.Add(11 * time.Second)
	}
	// A key we do not hold while the issuer is down: we cannot tell a forgery from a
	// rotation, so unavailable rather than a wrong password.
	clk.Add(time.Minute)
	unknown, err := iss.SignWithKID(githubClaims(iss, clk.Now()), randomKID())
	if err != nil {
		t.Fatal(err)
	}
	if err := login(a, unknown); !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("unknown kid, issuer down: err = %v, want ErrUnavailable", err)
	}
}

func TestJWKSURLSkipsDiscoveryAndDiscoveryMustNameTheIssuer(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	ic := githubIssuer(iss)
	ic.JWKSURL = iss.JWKSURL
	a := open(t, clk, ic)
	if err := login(a, iss.MustSign(t, githubClaims(iss, clk.Now()))); err != nil {
		t.Fatal(err)
	}
	if iss.DiscoveryRequests() != 0 {
		t.Fatal("discovery requested although jwks_url is set")
	}
	// Trusting "<url>/" while discovery says "<url>": a different issuer, so no keys.
	ic = githubIssuer(iss)
	ic.Issuer = iss.URL + "/"
	b := open(t, clk, ic)
	c := githubClaims(iss, clk.Now())
	c["iss"] = ic.Issuer
	if err := login(b, iss.MustSign(t, c)); !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("discovery naming another issuer: err = %v, want ErrUnavailable", err)
	}
}

func TestClaimsCredential(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	a := open(t, clk, githubIssuer(iss))
	cl, ok := a, a.Claiming()
	if !ok {
		t.Fatal("backend does not claim JWTs: they would reach bcrypt")
	}
	good := iss.MustSign(t, githubClaims(iss, clk.Now()))
	none, _ := iss.Unsigned(githubClaims(iss, clk.Now()))
	hdr := func(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
	for _, tc := range []struct {
		pw   string
		want bool
	}{
		{good, true},
		{none, true},
		{oidctest.Start(t).MustSign(t, map[string]any{"iss": "https://elsewhere"}), true}, // any issuer: never bcrypt
		{hdr(`{"alg":"RS256"}`) + ".e30.sig", true},
		{"hunter2", false},
		{"pcp_abcdef", false},
		{"a.b.c", false},                           // header is not JSON
		{hdr(`{"typ":"JWT"}`) + ".e30.sig", false}, // no alg
		{hdr(`{"alg":5}`) + ".e30.sig", false},     // alg not a string
		{hdr(`["alg"]`) + ".e30.sig", false},
		{hdr(`{"alg":"RS256"}`) + "..sig", false},
		{hdr(`{"alg":"RS256"}`) + ".e30", false},
		{hdr(`{"alg":"RS256"}`) + ".e30.sig.more", false},
		{hdr(`{"alg":"RS256"}`) + ".e3+0.sig", false},
		{hdr(`{"alg":"RS256"}`) + "=.e30.sig", false},
		{"", false},
	} {
		if got := cl.ClaimsCredential(context.Background(), authn.Credentials{Username: "u", Password: authn.Password(tc.pw)}); got != tc.want {
			t.Errorf("ClaimsCredential(%.40q) = %v, want %v", tc.pw, got, tc.want)
		}
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	t.Parallel()
	c := &oidc.Config{
		Timeout: config.Duration(-1),
		Issuers: []oidc.Issuer{
			{}, // issuer, audiences, subject
			{
				Issuer:      "http://ci.example.com",
				JWKSURL:     "ftp://ci.example.com/keys",
				Audiences:   []string{""},
				Algorithms:  []string{"none", "HS256", "RS1024", "ES256"},
				MaxTokenAge: config.Duration(-time.Second),
				Claims:      map[string]oidc.Strings{"a..b": {"x"}, "ref": {"[unterminated"}, "empty": {}},
				Subject:     ".sub",
				Groups:      oidc.Strings{"groups."},
				Labels:      map[string]string{"": "x", "l": ""},
			},
			{Issuer: "https://a.example.com", Audiences: []string{aud}, Subject: "sub"},
			{Issuer: "https://a.example.com", Audiences: []string{aud}, Subject: "sub"},
		},
	}
	errs := c.Validate()
	var all []string
	for _, e := range errs {
		all = append(all, e.Error())
	}
	text := strings.Join(all, "\n")
	for _, want := range []string{
		"timeout: must not be negative",
		"issuers[0].issuer: is required",
		"issuers[0].audiences: at least one audience",
		"issuers[0].subject: is required",
		"issuers[1].issuer: \"http://ci.example.com\" must use https",
		"issuers[1].jwks_url",
		"issuers[1].audiences: an audience must not be empty",
		`"none" is not allowed`,
		`"HS256" is not allowed`,
		`unknown algorithm "RS1024"`,
		"issuers[1].max_token_age",
		`"a..b": claim path "a..b" has an empty segment`,
		`bad pattern "[unterminated"`,
		"claims.empty: needs at least one pattern",
		"issuers[1].subject",
		"issuers[1].groups",
		"a label name must not be empty",
		"issuers[1].labels.l",
		`issuers[3].issuer: "https://a.example.com" is listed twice`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("Validate missed %q; got:\n%s", want, text)
		}
	}
	if len(errs) != 19 {
		t.Errorf("got %d problems, want 19:\n%s", len(errs), text)
	}
	if errs := (&oidc.Config{}).Validate(); len(errs) != 1 {
		t.Errorf("empty config: %v, want one problem (no issuers)", errs)
	}
	ok := &oidc.Config{Issuers: []oidc.Issuer{{Issuer: "http://127.0.0.1:8080", Audiences: []string{aud}, Subject: "sub", Algorithms: []string{"EdDSA", "PS512"}}}}
	if errs := ok.Validate(); len(errs) != 0 {
		t.Errorf("loopback http issuer: %v", errs)
	}
	if _, err := (&oidc.Config{}).Open(context.Background(), authn.Deps{}); err == nil {
		t.Error("Open accepted an invalid config")
	}
}

func TestYAMLTakesOnePatternOrAList(t *testing.T) {
	t.Parallel()
	var c oidc.Config
	err := config.Strict([]byte(`
issuers:
  - issuer: https://token.actions.githubusercontent.com
    audiences: [registry.example.com]
    max_token_age: 1h
    claims:
      repository: myorg/*
      ref: [refs/heads/main, refs/tags/*]
    subject: sub
    groups: repository_owner
    labels: {repository: repository}
`), &c)
	if err != nil {
		t.Fatal(err)
	}
	is := c.Issuers[0]
	if !slices.Equal(is.Claims["repository"], []string{"myorg/*"}) || !slices.Equal(is.Claims["ref"], []string{"refs/heads/main", "refs/tags/*"}) ||
		!slices.Equal(is.Groups, []string{"repository_owner"}) || is.MaxTokenAge.D() != time.Hour {
		t.Fatalf("decoded %+v", is)
	}
	if errs := c.Validate(); len(errs) != 0 {
		t.Fatal(errs)
	}
	if err := config.Strict([]byte("issuers: [{claims: {ref: {a: b}}}]"), &c); err == nil {
		t.Fatal("a mapping as a claim pattern was accepted")
	}
}

func randomKID() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("kid-%x", b)
}

// After Close no fetch starts: a token that needs keys is unavailable, not a hang or a panic.
func TestClosed(t *testing.T) {
	t.Parallel()
	clk := newClock()
	iss := oidctest.Start(t)
	a, err := (&oidc.Config{Issuers: []oidc.Issuer{githubIssuer(iss)}}).Open(context.Background(), authn.Deps{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := login(a, iss.MustSign(t, githubClaims(iss, clk.Now()))); !errors.Is(err, authn.ErrUnavailable) {
		t.Fatalf("err = %v, want ErrUnavailable", err)
	}
	if iss.JWKSRequests()+iss.DiscoveryRequests() != 0 {
		t.Fatal("a closed backend fetched keys")
	}
}
