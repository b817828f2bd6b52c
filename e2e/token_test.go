//go:build e2e

package e2e

import (
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/gateway"
)

// TestTokenProtocol_AllInOne speaks the Docker token protocol to an all-in-one Portcullis
// (development defaults) over real HTTP, without a registry: the error answers a registry
// client relies on, the claims of anonymous and authenticated tokens, and JWKS verification.
func TestTokenProtocol_AllInOne(t *testing.T) {
	t.Parallel()
	pc := startAllInOneDev(t)

	t.Run("Errors", func(t *testing.T) {
		t.Parallel()
		aliceApp := "repository:alice/app:pull,push"
		tests := []struct {
			name       string
			user, pass string
			header     string // Authorization, instead of user/pass
			query      url.Values
			status     int
			code       string
			basic      bool // want WWW-Authenticate: Basic
		}{
			{name: "wrong password", user: "alice", pass: "wrong",
				query: url.Values{"service": {service}, "scope": {aliceApp}}, status: 401, code: "unauthorized", basic: true},
			{name: "unknown user", user: "mallory", pass: "mallory",
				query: url.Values{"service": {service}, "scope": {aliceApp}}, status: 401, code: "unauthorized", basic: true},
			{name: "not Basic", header: "Bearer abc.def.ghi",
				query: url.Values{"service": {service}, "scope": {aliceApp}}, status: 401, code: "unauthorized", basic: true},
			{name: "malformed scope", user: "alice", pass: "alice",
				query: url.Values{"service": {service}, "scope": {"repository:alice/App:pull"}}, status: 400, code: "invalid_scope"},
			{name: "scope without actions", user: "alice", pass: "alice",
				query: url.Values{"service": {service}, "scope": {"repository:alice/app"}}, status: 400, code: "invalid_scope"},
			{name: "missing service", user: "alice", pass: "alice",
				query: url.Values{"scope": {aliceApp}}, status: 400, code: "invalid_request"},
			{name: "unknown service", user: "alice", pass: "alice",
				query: url.Values{"service": {"other.registry"}, "scope": {aliceApp}}, status: 400, code: "invalid_request"},
			{name: "account mismatch", user: "alice", pass: "alice",
				query: url.Values{"service": {service}, "account": {"admin"}, "scope": {aliceApp}}, status: 400, code: "invalid_request"},
			{name: "account without credentials",
				query: url.Values{"service": {service}, "account": {"alice"}, "scope": {aliceApp}}, status: 400, code: "invalid_request"},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				t.Parallel()
				req := mustRequest(t, http.MethodGet, pc.URL+"/token?"+tt.query.Encode())
				if tt.user != "" {
					req.SetBasicAuth(tt.user, tt.pass)
				}
				if tt.header != "" {
					req.Header.Set("Authorization", tt.header)
				}
				a := do(t, req)
				if a.status != tt.status {
					t.Fatalf("status %d, want %d\n%s", a.status, tt.status, a.body)
				}
				if ct := a.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
					t.Fatalf("Content-Type %q, want application/json", ct)
				}
				code, desc := a.errorBody(t)
				if code != tt.code || desc == "" {
					t.Fatalf("error %q (%q), want %q with a description", code, desc, tt.code)
				}
				wa := a.header.Get("WWW-Authenticate")
				if tt.basic != strings.HasPrefix(wa, "Basic realm=") {
					t.Fatalf("WWW-Authenticate %q, want Basic challenge: %v", wa, tt.basic)
				}
				var fields map[string]any
				_ = json.Unmarshal(a.body, &fields)
				if _, ok := fields["token"]; ok {
					t.Fatalf("an error answer carries a token:\n%s", a.body)
				}
			})
		}
	})

	t.Run("Anonymous", func(t *testing.T) {
		t.Parallel()
		tok := mustToken(t, pc, "", "", "repository:library/base:pull", "repository:alice/app:pull")
		checkStandardClaims(t, tok)
		// The signer grants nothing to an empty subject; anonymous callers get one no login can have.
		if tok.claims.Subject != gateway.AnonymousSubject {
			t.Fatalf("anonymous token sub = %q, want %q", tok.claims.Subject, gateway.AnonymousSubject)
		}
		if tok.claims.Access == nil {
			t.Fatal("anonymous token has no access claim, want an empty list")
		}
		if len(*tok.claims.Access) != 0 {
			t.Fatalf("anonymous token grants %+v, want nothing", *tok.claims.Access)
		}
	})

	t.Run("Alice", func(t *testing.T) {
		t.Parallel()
		q := url.Values{"service": {service}, "account": {"alice"}, "scope": {
			"repository:alice/app:pull,push", "repository:bob/app:pull,push",
			"repository:library/base:pull,push", "registry:catalog:*",
		}}
		a := getToken(t, pc, "alice", "alice", q)
		if a.status != http.StatusOK {
			t.Fatalf("GET /token as alice with account=alice: status %d\n%s", a.status, a.body)
		}
		tok := mustToken(t, pc, "alice", "alice", q["scope"]...)
		checkStandardClaims(t, tok)
		if tok.claims.Subject != "alice" {
			t.Fatalf("sub = %q, want alice", tok.claims.Subject)
		}
		want := map[string][]string{"repository:alice/app": {"pull", "push"}, "repository:library/base": {"pull"}}
		checkAccess(t, tok, want)
	})

	t.Run("Admin", func(t *testing.T) {
		t.Parallel()
		tok := mustToken(t, pc, "admin", "admin", "registry:catalog:*", "repository:bob/app:pull,push,delete")
		checkAccess(t, tok, map[string][]string{"registry:catalog": {"*"}, "repository:bob/app": {"pull", "push", "delete"}})
	})

	t.Run("OAuth2PasswordGrant", func(t *testing.T) {
		t.Parallel()
		post := func(form url.Values) httpAnswer {
			req, err := http.NewRequest(http.MethodPost, pc.URL+"/token", strings.NewReader(form.Encode()))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			return do(t, req)
		}
		form := url.Values{"grant_type": {"password"}, "client_id": {"e2e"}, "username": {"alice"}, "password": {"alice"},
			"service": {service}, "scope": {"repository:alice/app:pull repository:bob/app:pull"}}
		a := post(form)
		if a.status != http.StatusOK {
			t.Fatalf("POST /token password grant: status %d\n%s", a.status, a.body)
		}
		var resp struct {
			AccessToken string `json:"access_token"`
			TokenType   string `json:"token_type"`
			Scope       string `json:"scope"`
			ExpiresIn   int64  `json:"expires_in"`
		}
		if err := json.Unmarshal(a.body, &resp); err != nil {
			t.Fatal(err)
		}
		if resp.TokenType != "Bearer" || resp.Scope != "repository:alice/app:pull" || resp.ExpiresIn < 60 {
			t.Fatalf("password grant answer %+v, want Bearer, scope repository:alice/app:pull, expires_in >= 60", resp)
		}
		verifyWithJWKS(t, pc, resp.AccessToken)

		form.Set("password", "wrong")
		a = post(form)
		if code, _ := a.errorBody(t); a.status != http.StatusBadRequest || code != "invalid_grant" {
			t.Fatalf("password grant with a wrong password: status %d error %q, want 400 invalid_grant", a.status, code)
		}
	})

	t.Run("JWKSAndDiscovery", func(t *testing.T) {
		t.Parallel()
		a := do(t, mustRequest(t, http.MethodGet, pc.URL+"/.well-known/jwks.json"))
		if ct := a.header.Get("Content-Type"); a.status != 200 || !strings.Contains(ct, "json") {
			t.Fatalf("GET jwks.json: status %d, Content-Type %q", a.status, ct)
		}
		var served jose.JSONWebKeySet
		if err := json.Unmarshal(a.body, &served); err != nil {
			t.Fatal(err)
		}
		if len(served.Keys) == 0 {
			t.Fatal("JWKS is empty")
		}
		for _, k := range served.Keys {
			if !k.IsPublic() {
				t.Fatalf("JWKS key %q is not a public key", k.KeyID)
			}
		}
		// The jwks.json `portcullis registry-config` writes for the registry is the served one.
		written, err := os.ReadFile(filepath.Join(pc.registryTrust(t), "jwks.json"))
		if err != nil {
			t.Fatal(err)
		}
		var file jose.JSONWebKeySet
		if err := json.Unmarshal(written, &file); err != nil {
			t.Fatal(err)
		}
		if kids(file) != kids(served) {
			t.Fatalf("registry-config wrote kids %s, the gateway serves %s", kids(file), kids(served))
		}
		tok := mustToken(t, pc, "alice", "alice", "repository:alice/app:pull")
		if !strings.Contains(kids(served), tok.kid) {
			t.Fatalf("token kid %q not among the served %s", tok.kid, kids(served))
		}

		a = do(t, mustRequest(t, http.MethodGet, pc.URL+"/.well-known/openid-configuration"))
		var disc struct {
			Issuer        string `json:"issuer"`
			JWKSURI       string `json:"jwks_uri"`
			TokenEndpoint string `json:"token_endpoint"`
		}
		if err := json.Unmarshal(a.body, &disc); err != nil || a.status != 200 {
			t.Fatalf("discovery: status %d, %v\n%s", a.status, err, a.body)
		}
		if disc.Issuer != issuer || disc.JWKSURI != pc.URL+"/.well-known/jwks.json" || disc.TokenEndpoint != pc.Realm {
			t.Fatalf("discovery = %+v, want issuer %s, jwks_uri %s/.well-known/jwks.json, token_endpoint %s", disc, issuer, pc.URL, pc.Realm)
		}
	})

	t.Run("Health", func(t *testing.T) {
		t.Parallel()
		for _, p := range []string{"/healthz", "/readyz"} {
			if err := httpStatus(pc.URL+p, http.StatusOK)(); err != nil {
				t.Fatal(err)
			}
		}
		if got := readyz(t, pc); !got.Ready {
			t.Fatalf("/readyz = %+v, want ready", got)
		}
	})
}

// checkStandardClaims checks what every token carries: issuer, audience, lifetime.
func checkStandardClaims(t *testing.T, tok token) {
	t.Helper()
	c := tok.claims
	if c.Issuer != issuer || c.Audience != service || c.ID == "" {
		t.Fatalf("iss %q aud %q jti %q, want %s, %s and a jti", c.Issuer, c.Audience, c.ID, issuer, service)
	}
	if tok.expiresIn < 60 {
		t.Fatalf("expires_in = %d, want at least 60", tok.expiresIn)
	}
	if c.Expiry-c.IssuedAt != tok.expiresIn {
		t.Fatalf("exp - iat = %d, expires_in = %d: want equal", c.Expiry-c.IssuedAt, tok.expiresIn)
	}
	if c.NotBefore > c.IssuedAt {
		t.Fatalf("nbf %d after iat %d", c.NotBefore, c.IssuedAt)
	}
	iat, err := time.Parse(time.RFC3339, tok.issuedAt)
	if err != nil || iat.Unix() != c.IssuedAt {
		t.Fatalf("issued_at %q (%v) does not match iat %d", tok.issuedAt, err, c.IssuedAt)
	}
	if d := time.Since(iat); d < -time.Minute || d > time.Minute {
		t.Fatalf("iat is %s away from now", d)
	}
}

// checkAccess compares the access claim with want (type:name → actions).
func checkAccess(t *testing.T, tok token, want map[string][]string) {
	t.Helper()
	if tok.claims.Access == nil {
		t.Fatal("token has no access claim")
	}
	got := map[string][]string{}
	for _, e := range *tok.claims.Access {
		acts := slices.Clone(e.Actions)
		slices.Sort(acts)
		got[e.Type+":"+e.Name] = acts
	}
	for k := range want {
		want[k] = slices.Sorted(slices.Values(want[k]))
	}
	if len(got) != len(want) {
		t.Fatalf("access = %v, want %v", got, want)
	}
	for k, w := range want {
		if !slices.Equal(got[k], w) {
			t.Fatalf("access = %v, want %v", got, want)
		}
	}
}

func kids(s jose.JSONWebKeySet) string {
	ks := make([]string, len(s.Keys))
	for i, k := range s.Keys {
		ks[i] = k.KeyID
	}
	slices.Sort(ks)
	return strings.Join(ks, ",")
}
