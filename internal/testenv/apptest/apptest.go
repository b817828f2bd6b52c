// Package apptest starts Portcullis processes (app.App) for tests and talks to them the way
// clients do: the helpers the app and cli tests share.
package apptest

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/grpctls"
	"github.com/portcullis-dev/portcullis/internal/testenv/testpki"
)

// AdminSecret is the admin bearer secret WithAdmin configures.
const AdminSecret = "s3cret-admin-token-for-tests"

// WithAdmin is cfg with an admin API on a free loopback port.
func WithAdmin(t *testing.T, cfg *app.Config) *app.Config {
	t.Helper()
	cfg.Admin.Listen = FreeAddr(t)
	cfg.Admin.TokenFile = WriteFile(t, "admin-token", AdminSecret+"\n")
	return cfg
}

// Bearer is a call option presenting the admin secret.
type Bearer string

func (b Bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}

func (Bearer) RequireTransportSecurity() bool { return false }

func ListKeys(cc *grpc.ClientConn, opts ...grpc.CallOption) codes.Code {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := signerv1.NewKeyAdminServiceClient(cc).ListKeyVersions(ctx, &signerv1.ListKeyVersionsRequest{}, opts...)
	return status.Code(err)
}

func HealthCheck(cc *grpc.ClientConn, opts ...grpc.CallOption) codes.Code {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := grpc_health_v1.NewHealthClient(cc).Check(ctx, &grpc_health_v1.HealthCheckRequest{}, opts...)
	return status.Code(err)
}

// Refused: the admin address does not serve the method, or does not let this caller call it.
func Refused(c codes.Code) bool {
	return c == codes.Unimplemented || c == codes.PermissionDenied || c == codes.Unauthenticated
}

// AdminHTTP sends method path to the admin REST API with an optional Authorization header
// and returns the status, the body decoded as JSON (failing the test if it is not) and the
// response headers.
func AdminHTTP(t *testing.T, addr, method, path, authz, body string) (int, map[string]any, http.Header) {
	t.Helper()
	return AdminHTTPVia(t, http.DefaultClient, "http://"+addr, method, path, authz, body)
}

// adminHTTPVia is adminHTTP through client to base (scheme and address).
func AdminHTTPVia(t *testing.T, client *http.Client, base, method, path, authz, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatalf("%s %s: %d, body is not JSON: %v", method, path, resp.StatusCode, err)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s %s: Content-Type %q", method, path, ct)
	}
	return resp.StatusCode, m, resp.Header
}

func FreeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func Start(t *testing.T, cfg *app.Config, target string) *app.App {
	t.Helper()
	return StartApp(t, app.New(cfg, slog.New(slog.DiscardHandler)), target)
}

// StartApp runs a prepared App (a test may have set its clock) until the test or benchmark
// ends.
func StartApp(t testing.TB, a *app.App, target string) *app.App {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx, target) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("%s: %v", target, err)
		}
	})
	select {
	case <-a.Ready:
	case err := <-done:
		t.Fatalf("%s did not start: %v", target, err)
	case <-time.After(10 * time.Second):
		t.Fatalf("%s did not start", target)
	}
	return a
}

func Get(t *testing.T, c *http.Client, url string, hdr map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		if k == "Host" {
			req.Host = v
		} else {
			req.Header.Set(k, v)
		}
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func WriteFile(t *testing.T, name, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// ValidDoc is a config that passes Validate; the cases below change one thing in it.
const ValidDoc = `gateway:
  services: [registry.example]
  public_url: https://auth.example
authn:
  backends:
    - name: s
      type: static
      config: {users: []}
signer:
  key: {type: local, config: {path: /nonexistent/k.pem}}
`

func LoadValidate(t *testing.T, body string) error {
	t.Helper()
	c, err := app.Load(WriteFile(t, "c.yaml", body), false)
	if err != nil {
		return err
	}
	return c.Validate()
}

// RolePKI is one CA and a certificate per role (spiffe://portcullis/<role>), plus "none", a
// certificate from the same CA naming no identity.
type RolePKI map[string]grpctls.Config

func NewRolePKI(t *testing.T) RolePKI {
	t.Helper()
	ca := testpki.NewCA(t, t.TempDir())
	p := RolePKI{}
	for _, role := range []string{grpctls.RoleGateway, grpctls.RoleAuthn, grpctls.RoleAuthz, grpctls.RoleSigner, grpctls.RoleAdmin, "none"} {
		var uris []string
		if role != "none" {
			uris = []string{"spiffe://portcullis/" + role}
		}
		f := ca.Issue(t, role, uris...)
		p[role] = grpctls.Config{CertFile: f.Cert, KeyFile: f.Key, CAFile: f.CA}
	}
	return p
}

// As is cfg run with role's certificate, as -internal-tls.cert-file/-key-file would set it.
func (p RolePKI) As(cfg *app.Config, role string) *app.Config {
	c := *cfg
	c.InternalTLS = p[role]
	return &c
}

// SplitConfig is the development config for four processes on loopback ports.
func SplitConfig(t *testing.T) *app.Config {
	t.Helper()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Authn.Listen, cfg.Authz.Listen, cfg.Signer.Listen = FreeAddr(t), FreeAddr(t), FreeAddr(t)
	cfg.Gateway.Backends.Authn, cfg.Gateway.Backends.Authz, cfg.Gateway.Backends.Signer = cfg.Authn.Listen, cfg.Authz.Listen, cfg.Signer.Listen
	return cfg
}

func DialWith(t *testing.T, addr string, creds credentials.TransportCredentials) *grpc.ClientConn {
	t.Helper()
	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cc.Close() })
	return cc
}

func ClientCreds(t *testing.T, c grpctls.Config) credentials.TransportCredentials {
	t.Helper()
	// Any service's certificate: these tests are about what the servers let callers do.
	creds, err := c.Client(grpctls.RoleAuthn, grpctls.RoleAuthz, grpctls.RoleSigner)
	if err != nil {
		t.Fatal(err)
	}
	return creds
}

// The calls a caller could make on the services' methods, each answering its status code.
func CallAuthenticate(cc *grpc.ClientConn, opts ...grpc.CallOption) codes.Code {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := authnv1.NewAuthnServiceClient(cc).Authenticate(ctx, &authnv1.AuthenticateRequest{Username: "alice", Password: "alice", Service: "registry.local"}, opts...)
	return status.Code(err)
}

// OfflineLogin is docker login: GET /token?offline_token=true with Basic; it returns the
// refresh token of the answer.
func OfflineLogin(t testing.TB, gw, user, pass string) string {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+gw+"/token?service=registry.local&offline_token=true&client_id=docker&account="+user, nil)
	req.SetBasicAuth(user, pass)
	status, body := Send(t, req)
	var a struct {
		RefreshToken string `json:"refresh_token"`
	}
	if err := json.Unmarshal(body, &a); err != nil || status != 200 || !strings.HasPrefix(a.RefreshToken, "pcr_") {
		t.Fatalf("offline login: %d %v %s", status, err, body)
	}
	return a.RefreshToken
}

// Refresh is docker's refresh grant: POST /token grant_type=refresh_token.
func Refresh(t *testing.T, gw, rt string) (int, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"docker"},
		"service": {"registry.local"}, "scope": {"repository:alice/app:pull,push"}}
	req, _ := http.NewRequest("POST", "http://"+gw+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, body := Send(t, req)
	var m map[string]any
	if err := json.Unmarshal(body, &m); err != nil {
		t.Fatalf("refresh answer is not JSON (%d): %s", status, body)
	}
	return status, m
}

func Send(t testing.TB, req *http.Request) (int, []byte) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TokenAndVerify fetches a token as alice and checks it against the served JWKS.
func TokenAndVerify(t *testing.T, gw string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest("GET", "http://"+gw+"/token?service=registry.local&scope=repository:alice/app:push,pull&scope=repository:bob/app:pull", nil)
	req.SetBasicAuth("alice", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token     string `json:"token"`
		ExpiresIn int    `json:"expires_in"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 200 {
		t.Fatalf("token: %d %v", resp.StatusCode, err)
	}
	jr, err := http.Get("http://" + gw + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer jr.Body.Close()
	var set jose.JSONWebKeySet
	if err := json.NewDecoder(jr.Body).Decode(&set); err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(body.Token, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatal(err)
	}
	keys := set.Key(jws.Signatures[0].Header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q not in JWKS", jws.Signatures[0].Header.KeyID)
	}
	payload, err := jws.Verify(keys[0].Key)
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	_ = json.Unmarshal(payload, &claims)
	acc, _ := json.Marshal(claims["access"])
	if want := `[{"actions":["push","pull"],"name":"alice/app","type":"repository"}]`; string(acc) != want {
		t.Fatalf("access = %s, want %s", acc, want)
	}
	return claims
}
