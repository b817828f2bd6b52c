//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/pkg/regclient"
)

const (
	tokenExchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
	tokenTypeJWT       = "urn:ietf:params:oauth:token-type:jwt"
	tokenTypeAccess    = "urn:ietf:params:oauth:token-type:access_token"
)

// TestTokenExchange_WorkloadJWT_Crane_Registry28 is a CI job that gets a registry token in one
// request, without docker login: the OAuth 2.0 token exchange (RFC 8693) at POST /token. It
// starts a test OIDC issuer (internal/testenv/oidctest) standing in for GitHub Actions, plus an
// untrusted one, all-in-one Portcullis whose oidc backend github-actions trusts the first
// (startOIDCAllInOne, the same config and CI policy as the workload identity suite), Debian's
// distribution 2.8 (docker-registry) trusting Portcullis's key, and crane. Then:
//
//   - the job's JWT exchanged at POST /token gives an RFC 8693 answer whose token verifies
//     against the JWKS, names the workload under the backend's subject_prefix and grants the
//     job's project; crane, holding only that token (docker config "registrytoken", no
//     login), pushes an image into the real registry and reads it back, and is refused a
//     push to another project;
//   - pkg/regclient follows the registry's own challenge and exchanges the JWT (what
//     `portcullis token -exchange` will do); its token pulls the pushed manifest over the
//     registry's HTTP API;
//   - an expired JWT, one for another audience, one from an untrusted issuer, an unsigned
//     one (alg none) and one naming a key the issuer does not publish are refused with
//     400 invalid_grant; a request carrying Basic credentials too and a 1 MB subject_token
//     get 400 invalid_request, never a 5xx;
//   - /.well-known/oauth-authorization-server lists the grant.
func TestTokenExchange_WorkloadJWT_Crane_Registry28(t *testing.T) {
	t.Parallel()
	idp := oidctest.Start(t)
	untrusted := oidctest.Start(t)
	pc := startOIDCAllInOneConfig(t, idp, portcullisConfig{KIDMode: "libtrust"})
	reg := startRegistry(t, registry28, pc)
	app := reg.Host + "/myorg/app"

	exchange := func(t *testing.T, jwt string, extra url.Values, scopes ...string) httpAnswer {
		t.Helper()
		form := url.Values{"grant_type": {tokenExchangeGrant}, "subject_token": {jwt}, "subject_token_type": {tokenTypeJWT},
			"service": {service}, "scope": {strings.Join(scopes, " ")}}
		for k, v := range extra {
			form[k] = v
		}
		return postToken(t, pc, form)
	}

	t.Run("CranePushesWithTheExchangedToken", func(t *testing.T) {
		release := ghToken(t, idp, "myorg/app", "refs/heads/main", nil)
		a := exchange(t, release, nil, "repository:myorg/app:pull,push", "repository:myorg/other:push")
		if a.status != http.StatusOK {
			t.Fatalf("token exchange: status %d\n%s", a.status, a.body)
		}
		var ans map[string]any
		if err := json.Unmarshal(a.body, &ans); err != nil {
			t.Fatal(err)
		}
		raw, _ := ans["access_token"].(string)
		if raw == "" || ans["token"] != raw || ans["issued_token_type"] != tokenTypeAccess || ans["token_type"] != "Bearer" ||
			ans["expires_in"] == nil || ans["refresh_token"] != nil || ans["scope"] != "repository:myorg/app:pull,push" {
			t.Fatalf("answer is not RFC 8693's (token, no refresh token, the narrowed scope):\n%s", a.body)
		}
		payload, _, _ := verifyWithJWKS(t, pc, raw)
		tok := token{raw: raw}
		if err := json.Unmarshal(payload, &tok.claims); err != nil {
			t.Fatal(err)
		}
		if want := "github:repo:myorg/app:ref:refs/heads/main"; tok.claims.Subject != want || tok.claims.Audience != service {
			t.Fatalf("sub %q aud %q, want %q for %s: the identity a docker login with the JWT gets", tok.claims.Subject, tok.claims.Audience, want, service)
		}
		checkAccess(t, tok, map[string][]string{"repository:myorg/app": {"pull", "push"}})

		// crane with the registry token alone: docker's config "registrytoken" is sent as the
		// bearer as it is, with no token request of crane's own.
		job := newClients(t)
		writeRegistryToken(t, job, reg.Host, raw)
		img := writeOCILayout(t, filepath.Join(t.TempDir(), "layout"), "latest", "pushed with an exchanged token\n")
		ref := app + ":exchanged"
		job.ok(t, "crane", "push", "--insecure", img.Dir, ref)
		if got := strings.TrimSpace(job.ok(t, "crane", "digest", "--insecure", ref)); got != img.ManifestDigest {
			t.Fatalf("crane digest %s = %q, want %s", ref, got, img.ManifestDigest)
		}
		job.refused(t, "crane", "push", "--insecure", img.Dir, reg.Host+"/myorg/other:v1")

		// What `portcullis token -exchange` does: the registry's challenge, then the exchange.
		client := &regclient.Client{HTTP: &http.Client{Timeout: clientTimeout}}
		ctx, cancel := context.WithTimeout(context.Background(), clientTimeout)
		defer cancel()
		chs, err := client.Ping(ctx, reg.URL)
		if err != nil {
			t.Fatal(err)
		}
		res, err := client.FetchToken(ctx, regclient.PreferredChallenge(chs), regclient.Request{
			SubjectToken: ghToken(t, idp, "myorg/app", "refs/heads/main", nil), Scopes: []string{"repository:myorg/app:pull"}})
		if err != nil {
			t.Fatalf("regclient token exchange: %v", err)
		}
		if res.Grant != "token_exchange" || res.IssuedTokenType != tokenTypeAccess || res.RefreshToken != "" || res.GrantedScope != "" {
			t.Fatalf("regclient result %+v", res)
		}
		req := mustRequest(t, http.MethodGet, reg.URL+"/v2/myorg/app/manifests/exchanged")
		req.Header.Set("Authorization", "Bearer "+res.Token)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json")
		if got := do(t, req); got.status != http.StatusOK || got.header.Get("Docker-Content-Digest") != img.ManifestDigest {
			t.Fatalf("GET the manifest with regclient's token: status %d, digest %q, want 200 %s\n%s",
				got.status, got.header.Get("Docker-Content-Digest"), img.ManifestDigest, got.body)
		}
	})

	t.Run("Refused", func(t *testing.T) {
		now := time.Now()
		for _, tc := range []struct {
			name      string
			jwt       string
			extra     url.Values
			basic     bool
			wantError string
		}{
			{name: "expired", jwt: ghToken(t, idp, "myorg/app", "refs/heads/main", func(c map[string]any) {
				c["iat"], c["nbf"], c["exp"] = now.Add(-10*time.Minute).Unix(), now.Add(-10*time.Minute).Unix(), now.Add(-5*time.Minute).Unix()
			}), wantError: "invalid_grant"},
			{name: "wrong audience", jwt: ghToken(t, idp, "myorg/app", "refs/heads/main", func(c map[string]any) { c["aud"] = "another-service" }), wantError: "invalid_grant"},
			{name: "untrusted issuer", jwt: ghToken(t, untrusted, "myorg/app", "refs/heads/main", nil), wantError: "invalid_grant"},
			{name: "key the issuer does not publish", jwt: signWithKID(t, idp, ghClaims(idp, "myorg/app", "refs/heads/main"), "not-published"), wantError: "invalid_grant"},
			{name: "alg none", jwt: unsigned(t, idp, ghClaims(idp, "myorg/app", "refs/heads/main")), wantError: "invalid_grant"},
			{name: "required claim mismatch", jwt: ghToken(t, idp, "evilorg/app", "refs/heads/main", func(c map[string]any) { c["repository_owner"] = "myorg" }), wantError: "invalid_grant"},
			{name: "Basic credentials too", jwt: ghToken(t, idp, "myorg/app", "refs/heads/main", nil), basic: true, wantError: "invalid_request"},
			{name: "1 MB subject_token", jwt: "eyJhbGciOiJSUzI1NiJ9." + strings.Repeat("A", 1<<20) + ".c2ln", wantError: "invalid_request"},
			{name: "actor_token", jwt: ghToken(t, idp, "myorg/app", "refs/heads/main", nil),
				extra: url.Values{"actor_token": {"x.y.z"}, "actor_token_type": {tokenTypeJWT}}, wantError: "invalid_request"},
			{name: "another service as audience", jwt: ghToken(t, idp, "myorg/app", "refs/heads/main", nil),
				extra: url.Values{"audience": {"elsewhere.local"}}, wantError: "invalid_target"},
		} {
			t.Run(strings.ReplaceAll(tc.name, " ", "_"), func(t *testing.T) {
				form := url.Values{"grant_type": {tokenExchangeGrant}, "subject_token": {tc.jwt}, "subject_token_type": {tokenTypeJWT},
					"service": {service}, "scope": {"repository:myorg/app:pull"}}
				for k, v := range tc.extra {
					form[k] = v
				}
				req, err := http.NewRequest(http.MethodPost, pc.URL+"/token", strings.NewReader(form.Encode()))
				if err != nil {
					t.Fatal(err)
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				if tc.basic {
					req.SetBasicAuth("alice", "alice")
				}
				a := do(t, req)
				if a.status != http.StatusBadRequest {
					t.Fatalf("status %d, want 400\n%s", a.status, a.body)
				}
				if code, desc := a.errorBody(t); code != tc.wantError || desc == "" {
					t.Fatalf("error %q (%q), want %s with a description", code, desc, tc.wantError)
				}
			})
		}
	})

	t.Run("Discovery", func(t *testing.T) {
		a := do(t, mustRequest(t, http.MethodGet, pc.URL+"/.well-known/oauth-authorization-server"))
		var md struct {
			TokenEndpoint string   `json:"token_endpoint"`
			Grants        []string `json:"grant_types_supported"`
		}
		if err := json.Unmarshal(a.body, &md); err != nil || a.status != http.StatusOK {
			t.Fatalf("metadata: status %d, %v\n%s", a.status, err, a.body)
		}
		if md.TokenEndpoint != pc.Realm || !contains(md.Grants, tokenExchangeGrant) {
			t.Fatalf("metadata %+v, want token_endpoint %s and the token exchange grant", md, pc.Realm)
		}
	})
}

// writeRegistryToken gives c's docker config a registry token for host: clients of
// go-containerregistry (crane) send it as the bearer without asking a token endpoint.
func writeRegistryToken(t *testing.T, c *clients, host, tok string) {
	t.Helper()
	data, err := json.Marshal(map[string]any{"auths": map[string]any{host: map[string]string{"registrytoken": tok}}})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dockerConfigFile(c), data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func unsigned(t *testing.T, idp *oidctest.Issuer, claims map[string]any) string {
	t.Helper()
	tok, err := idp.Unsigned(claims)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}
