package app_test

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/admin"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	"github.com/portcullis-dev/portcullis/internal/grpctls"
	"github.com/portcullis-dev/portcullis/internal/testenv/testpki"
)

// The admin REST API in front of the admin gRPC services: refused without the bearer, the
// session operations and keys with it, JSON errors for bad routes, the OpenAPI document.
func TestAdminHTTP(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	apptest.WithAdmin(t, cfg)
	cfg.Admin.HTTPListen = "127.0.0.1:0"
	a := apptest.Start(t, cfg, "all")
	if a.AdminHTTPAddr == "" {
		t.Fatal("AdminHTTPAddr is not set")
	}
	good := "Bearer " + apptest.AdminSecret
	rtAlice := apptest.OfflineLogin(t, a.GatewayAddr, "alice", "alice")
	apptest.OfflineLogin(t, a.GatewayAddr, "admin", "admin")
	apptest.OfflineLogin(t, a.GatewayAddr, "admin", "admin")

	for _, tc := range []struct {
		name, method, path, authz, body string
		want                            int
	}{
		{"no credential", "GET", "/v1/sessions", "", "", 401},
		{"wrong bearer", "GET", "/v1/sessions", "Bearer not-the-secret-at-all", "", 401},
		{"basic instead of bearer", "GET", "/v1/keys", "Basic YWRtaW46YWRtaW4=", "", 401},
		{"no credential on revoke", "DELETE", "/v1/users/alice/sessions", "", "", 401},
		{"no credential on rotate", "POST", "/v1/keys:rotate", "", "{}", 401},
		{"unknown route", "GET", "/v1/nothing", good, "", 404},
		{"unknown session", "GET", "/v1/sessions/nosuchsession", good, "", 404},
		{"wrong method", "PUT", "/v1/keys", good, "", 405},
		{"huge body", "POST", "/v1/keys:rotate", good, "{\"x\":\"" + strings.Repeat("a", 1<<20) + "\"}", 413},
		{"malformed JSON body", "POST", "/v1/keys:rotate", good, "{", 400},
		{"body of the wrong type", "POST", "/v1/keys:rotate", good, "[1,2]", 400},
		{"unknown field in the body", "POST", "/v1/keys:rotate", good, `{"nosuch":1}`, 400},
		{"page_size not a number", "GET", "/v1/sessions?page_size=many", good, "", 400},
		{"negative page_size", "GET", "/v1/sessions?page_size=-1", good, "", 400},
		{"forged page_token", "GET", "/v1/sessions?page_token=AAAA", good, "", 400},
		{"unknown query parameter", "GET", "/v1/sessions?nosuch=1", good, "", 400},
		{"list keys", "GET", "/v1/keys", good, "", 200},
	} {
		code, body, hdr := apptest.AdminHTTP(t, a.AdminHTTPAddr, tc.method, tc.path, tc.authz, tc.body)
		if code != tc.want {
			t.Errorf("%s: %s %s = %d %v, want %d", tc.name, tc.method, tc.path, code, body, tc.want)
			continue
		}
		if code >= 400 {
			if _, ok := body["message"].(string); !ok {
				t.Errorf("%s: error body has no message: %v", tc.name, body)
			}
		}
		if code == 401 && !strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer") {
			t.Errorf("%s: 401 without a Bearer challenge", tc.name)
		}
	}

	// List alice's sessions, show one, revoke it: her refresh token stops working.
	code, body, _ := apptest.AdminHTTP(t, a.AdminHTTPAddr, "GET", "/v1/sessions?subject=alice&page_size=10", good, "")
	list, _ := body["sessions"].([]any)
	if code != 200 || len(list) != 1 {
		t.Fatalf("list alice's sessions: %d %v, want one", code, body)
	}
	id, _ := list[0].(map[string]any)["id"].(string)
	if code, body, _ = apptest.AdminHTTP(t, a.AdminHTTPAddr, "GET", "/v1/sessions/"+id, good, ""); code != 200 {
		t.Fatalf("show session: %d %v", code, body)
	}
	if code, _ := apptest.Refresh(t, a.GatewayAddr, rtAlice); code != 200 {
		t.Fatalf("refresh before revocation: %d", code)
	}
	if code, body, _ = apptest.AdminHTTP(t, a.AdminHTTPAddr, "DELETE", "/v1/sessions/"+id, good, ""); code != 200 {
		t.Fatalf("revoke session: %d %v", code, body)
	}
	if code, ans := apptest.Refresh(t, a.GatewayAddr, rtAlice); code == 200 {
		t.Fatalf("refresh after revocation through the REST API: %d %v", code, ans)
	}
	code, body, _ = apptest.AdminHTTP(t, a.AdminHTTPAddr, "DELETE", "/v1/users/admin/sessions", good, "")
	if code != 200 || body["revoked"] != float64(2) {
		t.Fatalf("revoke admin's sessions: %d %v, want revoked 2", code, body)
	}
	if code, body, _ = apptest.AdminHTTP(t, a.AdminHTTPAddr, "GET", "/v1/sessions", good, ""); code != 200 || len(body["sessions"].([]any)) != 0 {
		t.Fatalf("list after revocations: %d %v, want none", code, body)
	}
	// The development key manager cannot rotate: the route reaches the service, which says so.
	if code, body, _ = apptest.AdminHTTP(t, a.AdminHTTPAddr, "POST", "/v1/keys:rotate", good, ""); code != 400 || body["code"] != float64(9) {
		t.Fatalf("rotate: %d %v, want 400 FailedPrecondition from the key manager", code, body)
	}

	// The OpenAPI document is served and names every route.
	code, doc, _ := apptest.AdminHTTP(t, a.AdminHTTPAddr, "GET", "/v1/openapi.json", "", "")
	paths, _ := doc["paths"].(map[string]any)
	if code != 200 || doc["swagger"] != "2.0" {
		t.Fatalf("openapi.json: %d %v", code, doc)
	}
	for _, p := range []string{"/v1/sessions", "/v1/sessions/{id}", "/v1/users/{subject}/sessions", "/v1/keys", "/v1/keys:rotate"} {
		if paths[p] == nil {
			t.Errorf("openapi.json has no path %s", p)
		}
	}
}

func TestAdminHTTPListenConfig(t *testing.T) {
	t.Parallel()
	base, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name      string
		set       func(*app.Config)
		wantError string // "" means valid
	}{
		{"loopback", func(c *app.Config) { c.Admin.HTTPListen, c.Admin.TokenFile = "127.0.0.1:7090", "/run/secrets/admin" }, ""},
		{"network without opt-in", func(c *app.Config) { c.Admin.HTTPListen, c.Admin.TokenFile = "0.0.0.0:7090", "/run/secrets/admin" }, "admin.http_listen: 0.0.0.0:7090 is not a loopback address"},
		{"network with insecure_plaintext_grpc", func(c *app.Config) {
			c.Admin.HTTPListen, c.Admin.TokenFile, c.InsecurePlaintextGRPC = "0.0.0.0:7090", "/run/secrets/admin", true
		}, ""},
		{"no credential", func(c *app.Config) { c.Admin.HTTPListen = "127.0.0.1:7090" }, "admin.http_listen: set admin.token_file"},
		{"internal_tls on loopback", func(c *app.Config) {
			c.Admin.HTTPListen, c.Admin.TokenFile = "127.0.0.1:7090", "/run/secrets/admin"
			c.InternalTLS = grpctls.Config{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}
		}, ""},
		{"internal_tls on the network", func(c *app.Config) {
			c.Admin.HTTPListen, c.Admin.TokenFile = "0.0.0.0:7090", "/run/secrets/admin"
			c.InternalTLS = grpctls.Config{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}
		}, ""},
		{"internal_tls without credential", func(c *app.Config) {
			c.Admin.HTTPListen = "0.0.0.0:7090"
			c.InternalTLS = grpctls.Config{CertFile: "c.pem", KeyFile: "k.pem", CAFile: "ca.pem"}
		}, "admin.http_listen: set admin.token_file"},
	} {
		c := *base
		tc.set(&c)
		err := c.Validate()
		switch {
		case tc.wantError == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.wantError != "" && (err == nil || !strings.Contains(err.Error(), tc.wantError)):
			t.Errorf("%s: %v, want %q", tc.name, err, tc.wantError)
		}
	}
}

// httpsClient trusts the CA in caFile and presents cert (none when nil).
func httpsClient(t *testing.T, caFile string, cert *tls.Certificate) *http.Client {
	t.Helper()
	caPEM, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(caPEM) {
		t.Fatal("no CA certificate in " + caFile)
	}
	tc := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13}
	if cert != nil {
		tc.Certificates = []tls.Certificate{*cert}
	}
	tr := &http.Transport{TLSClientConfig: tc}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func loadCert(t *testing.T, certFile, keyFile string) *tls.Certificate {
	t.Helper()
	c, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		t.Fatal(err)
	}
	return &c
}

// With internal_tls the admin REST API is HTTPS and wants an admin client certificate as well
// as the bearer secret; the OpenAPI document stays public.
func TestAdminHTTPWithMutualTLS(t *testing.T) {
	t.Parallel()
	pki := apptest.NewRolePKI(t)
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	apptest.WithAdmin(t, cfg)
	cfg.Admin.HTTPListen = "127.0.0.1:0"
	cfg = pki.As(cfg, grpctls.RoleSigner)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a := apptest.Start(t, cfg, "all")
	base := "https://" + a.AdminHTTPAddr
	apptest.OfflineLogin(t, a.GatewayAddr, "alice", "alice")
	good := "Bearer " + apptest.AdminSecret
	client := func(role string) *http.Client {
		if role == "" {
			return httpsClient(t, pki[grpctls.RoleAdmin].CAFile, nil)
		}
		return httpsClient(t, pki[role].CAFile, loadCert(t, pki[role].CertFile, pki[role].KeyFile))
	}

	for _, tc := range []struct {
		name, cert, path, authz string
		want                    int
		wantCode                float64 // gRPC code in the error body
	}{
		{"admin certificate and bearer: keys", grpctls.RoleAdmin, "/v1/keys", good, 200, 0},
		{"admin certificate, no bearer", grpctls.RoleAdmin, "/v1/keys", "", 401, 16},
		{"admin certificate, wrong bearer", grpctls.RoleAdmin, "/v1/sessions", "Bearer not-the-secret-at-all", 401, 16},
		{"no certificate, bearer", "", "/v1/keys", good, 401, 16},
		{"no certificate, bearer, sessions", "", "/v1/sessions", good, 401, 16},
		{"gateway certificate, bearer", grpctls.RoleGateway, "/v1/keys", good, 403, 7},
		{"signer certificate, bearer", grpctls.RoleSigner, "/v1/sessions", good, 403, 7},
		{"certificate naming no identity, bearer", "none", "/v1/keys", good, 403, 7},
		{"no certificate: unknown route", "", "/v1/nothing", good, 401, 16},
	} {
		code, body, hdr := apptest.AdminHTTPVia(t, client(tc.cert), base, "GET", tc.path, tc.authz, "")
		if code != tc.want {
			t.Errorf("%s: GET %s = %d %v, want %d", tc.name, tc.path, code, body, tc.want)
			continue
		}
		if code >= 400 {
			if _, ok := body["message"].(string); !ok || body["code"] != tc.wantCode {
				t.Errorf("%s: error body %v, want code %v and a message", tc.name, body, tc.wantCode)
			}
		}
		// The bearer check's 401 challenges for the bearer; the certificate's does not.
		if bearerChallenge := strings.HasPrefix(hdr.Get("WWW-Authenticate"), "Bearer"); code == 401 && bearerChallenge != (tc.cert != "") {
			t.Errorf("%s: WWW-Authenticate %q", tc.name, hdr.Get("WWW-Authenticate"))
		}
	}

	// The admin reaches the sessions through the REST API.
	code, body, _ := apptest.AdminHTTPVia(t, client(grpctls.RoleAdmin), base, "GET", "/v1/sessions?subject=alice", good, "")
	if list, _ := body["sessions"].([]any); code != 200 || len(list) != 1 {
		t.Fatalf("list alice's sessions: %d %v, want one", code, body)
	}

	// The OpenAPI document needs no certificate.
	code, doc, _ := apptest.AdminHTTPVia(t, client(""), base, "GET", "/v1/openapi.json", "", "")
	if code != 200 || doc["swagger"] != "2.0" {
		t.Fatalf("openapi.json without a certificate: %d %v", code, doc)
	}

	// A certificate the internal CA did not sign, even one naming the admin, fails the
	// handshake: the listener verifies every certificate it is given.
	other := testpki.NewCA(t, t.TempDir()).Issue(t, "admin", "spiffe://portcullis/admin")
	req, _ := http.NewRequest("GET", base+"/v1/keys", nil)
	req.Header.Set("Authorization", good)
	if resp, err := httpsClient(t, pki[grpctls.RoleAdmin].CAFile, loadCert(t, other.Cert, other.Key)).Do(req); err == nil {
		resp.Body.Close()
		t.Errorf("another CA's admin certificate: %d, want the handshake refused", resp.StatusCode)
	}

	// Plain HTTP to the HTTPS port gets Go's 400 from the TLS listener, never the API.
	req, _ = http.NewRequest("GET", "http://"+a.AdminHTTPAddr+"/v1/keys", nil)
	req.Header.Set("Authorization", good)
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusBadRequest {
			t.Errorf("plain HTTP to the admin REST API: %d, want 400", resp.StatusCode)
		}
	}
}

// Every refusal of the certificate check is an audit line naming the caller and the reason,
// never the credential.
func TestRequireAdminCertAudits(t *testing.T) {
	t.Parallel()
	ca := testpki.NewCA(t, t.TempDir())
	verified := func(name string, uris ...string) *tls.ConnectionState {
		f := ca.Issue(t, name, uris...)
		c, err := x509.ParseCertificate(loadCert(t, f.Cert, f.Key).Certificate[0])
		if err != nil {
			t.Fatal(err)
		}
		return &tls.ConnectionState{PeerCertificates: []*x509.Certificate{c}, VerifiedChains: [][]*x509.Certificate{{c}}}
	}
	for _, tc := range []struct {
		name, method, path string
		state              *tls.ConnectionState
		want               int
		wantLog            string // "" means no refusal logged
	}{
		{"admin", "GET", "/v1/keys", verified("admin", "spiffe://example.org/admin"), 200, ""},
		{"no certificate", "GET", "/v1/keys", nil, 401, "no verified client certificate"},
		{"unverified", "GET", "/v1/keys", &tls.ConnectionState{PeerCertificates: verified("unverified", "spiffe://example.org/admin").PeerCertificates}, 401, "no verified client certificate"},
		{"gateway", "DELETE", "/v1/sessions/x", verified("gateway", "spiffe://example.org/gateway"), 403, "spiffe://example.org/gateway"},
		{"admin of another trust domain", "GET", "/v1/keys", verified("other", "spiffe://portcullis/admin"), 403, "role not allowed"},
		{"openapi", "GET", "/v1/openapi.json", nil, 200, ""},
		{"openapi by POST", "POST", "/v1/openapi.json", nil, 401, "no verified client certificate"},
	} {
		var logs bytes.Buffer
		h := admin.RequireCert(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(200) }),
			"example.org", slog.New(slog.NewJSONHandler(&logs, nil)))
		r := httptest.NewRequest(tc.method, tc.path, nil)
		r.Header.Set("Authorization", "Bearer "+apptest.AdminSecret)
		r.TLS = tc.state
		w := httptest.NewRecorder()
		h.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, w.Code, tc.want)
		}
		line := logs.String()
		switch {
		case tc.wantLog == "" && line != "":
			t.Errorf("%s: logged %s", tc.name, line)
		case tc.wantLog != "" && (!strings.Contains(line, `"level":"WARN"`) || !strings.Contains(line, tc.wantLog) ||
			!strings.Contains(line, tc.path) || !strings.Contains(line, `"log_type":"audit"`)):
			t.Errorf("%s: audit line %q, want a WARN naming %q and the path", tc.name, line, tc.wantLog)
		case strings.Contains(line, apptest.AdminSecret):
			t.Errorf("%s: the credential is logged: %s", tc.name, line)
		}
		if tc.want >= 400 {
			var body admin.ErrorBody
			if err := json.NewDecoder(w.Body).Decode(&body); err != nil || body.Message == "" {
				t.Errorf("%s: error body %v %+v", tc.name, err, body)
			}
		}
	}
}
