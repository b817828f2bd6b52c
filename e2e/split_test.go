//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-dev/portcullis/internal/testenv/testpki"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	commonv1 "github.com/portcullis-dev/portcullis/proto/portcullis/common/v1"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

// TestSplitMode_Registry3 starts Portcullis as four processes from one config file, with
// mutual TLS between them, each process presenting the certificate of its own role
// (spiffe://portcullis/<role>) — -target=authn, authz and signer, each serving gRPC on its
// own port, and -target=gateway dialing them — in front of distribution registry 3.1.2.
// skopeo pushes and pulls as alice and is refused on bob/…; the services refuse a plaintext
// client, a client without a certificate, a certificate from another CA and a valid
// certificate of the wrong role; then the signer process is killed: /readyz turns 503
// naming the signer and /token answers 503 with Retry-After; a restarted signer brings
// both back.
func TestSplitMode_Registry3(t *testing.T) {
	t.Parallel()
	pc := startSplit(t, portcullisConfig{})
	reg := startRegistry(t, registry3, pc)

	t.Run("Skopeo", func(t *testing.T) {
		skopeoPushPull(t, newClients(t), reg, "split")
	})

	// The services speak mutual TLS (internal_tls) and authorise each caller by the
	// identity in its certificate: only the gateway may authenticate, authorise and sign.
	t.Run("MutualTLS", func(t *testing.T) {
		splitMutualTLS(t, pc)
	})

	t.Run("SignerDown", func(t *testing.T) {
		if got := readyz(t, pc); !got.Ready || len(got.Services) != 3 {
			t.Fatalf("/readyz before the kill = %+v, want ready with 3 services", got)
		}
		tokenQuery := url.Values{"service": {service}, "scope": {"repository:alice/split:pull"}}

		signer := pc.Procs["signer"]
		signer.kill(t)
		waitUntil(t, "/readyz to answer 503 after the signer was killed", pc.allProcsBut("signer"),
			httpStatus(pc.URL+"/readyz", http.StatusServiceUnavailable))
		got := readyz(t, pc)
		want := map[string]string{"authn": "serving", "authz": "serving", "signer": "not serving"}
		if got.Ready || fmt.Sprint(got.Services) != fmt.Sprint(want) {
			t.Fatalf("/readyz with the signer down = %+v, want not ready with %v", got, want)
		}

		for _, user := range []string{"alice", ""} {
			a := getToken(t, pc, user, user, tokenQuery)
			if a.status != http.StatusServiceUnavailable {
				t.Fatalf("GET /token as %q with the signer down: status %d, want 503\n%s", user, a.status, a.body)
			}
			if ra := a.header.Get("Retry-After"); ra == "" {
				t.Fatalf("GET /token with the signer down: no Retry-After header")
			}
			if code, _ := a.errorBody(t); code != "temporarily_unavailable" {
				t.Fatalf("GET /token with the signer down: error %q, want temporarily_unavailable", code)
			}
		}
		// A client sees the outage as a failed push, not as a success.
		img := writeOCILayout(t, filepath.Join(t.TempDir(), "layout"), "latest", "pushed while the signer is down\n")
		out, err := newClients(t).run(t, "", "skopeo", skopeoCopyTo("oci:"+img.Dir+":latest",
			"docker://"+reg.Host+"/alice/split:down", "alice:alice")...)
		if err == nil {
			t.Fatalf("skopeo push with the signer down succeeded:\n%s", out)
		}

		// The same key file comes back with the same kid, so the registry trusts it again.
		pc.startTarget(t, "signer", "portcullis-signer-restarted")
		pc.waitReady(t)
		tok := mustToken(t, pc, "alice", "alice", "repository:alice/split:pull")
		if tok.claims.Access == nil || len(*tok.claims.Access) != 1 {
			t.Fatalf("token after the signer restarted: access %v, want alice/split pull", tok.claims.Access)
		}
		c := newClients(t)
		if got := c.skopeoDigest(t, reg.Host+"/alice/split:v1", "alice:alice"); got == "" {
			t.Fatal("skopeo inspect after the signer restarted reported no digest")
		}
	})
}

type readiness struct {
	Ready    bool              `json:"ready"`
	Services map[string]string `json:"services"`
}

func readyz(t testing.TB, pc *portcullis) readiness {
	t.Helper()
	a := do(t, mustRequest(t, http.MethodGet, pc.URL+"/readyz"))
	var r readiness
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatalf("/readyz (status %d) is not JSON: %v\n%s", a.status, err, a.body)
	}
	return r
}

func (pc *portcullis) allProcsBut(name string) []*proc {
	var ps []*proc
	for n, p := range pc.Procs {
		if n != name {
			ps = append(ps, p)
		}
	}
	return ps
}

// splitMutualTLS plays every kind of caller against the split services. Each refusal
// has a positive control with the same dialing code, so a refusal cannot come from a
// mistake in the test: the gateway's certificate is served, and a peer of the wrong role
// still gets the health service.
func splitMutualTLS(t *testing.T, pc *portcullis) {
	ca := pc.PKI.CA.File
	cert := func(role string) *testpki.Files {
		f := pc.PKI.Certs[role]
		return &f
	}
	// Certificates the servers must not take as the gateway: the gateway's identity
	// from another CA; the real CA's certificate with no identity, or with the gateway's
	// role in another trust domain.
	foreign := otherCA(t).Issue(t, "gateway", spiffeID("gateway"))
	noID := pc.PKI.CA.Issue(t, "no-identity")
	otherDomain := pc.PKI.CA.Issue(t, "other-domain", "spiffe://elsewhere/gateway")

	type caller struct {
		name string
		cc   func(addr string) *grpc.ClientConn
	}
	with := func(name string, f *testpki.Files) caller {
		return caller{name, func(addr string) *grpc.ClientConn { return grpcTLS(t, addr, ca, f) }}
	}
	plaintext := caller{"plaintext", func(addr string) *grpc.ClientConn {
		cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = cc.Close() })
		return cc
	}}
	noCert := with("CA-trusting client without a certificate", nil)
	foreignCA := caller{"gateway identity from another CA", func(addr string) *grpc.ClientConn {
		// It trusts the real CA, so only the server's verification of the client differs.
		return grpcTLS(t, addr, ca, &foreign)
	}}

	// calls are one valid request per service, the ones the gateway makes for a token.
	calls := map[string]func(cc *grpc.ClientConn) error{
		"authn": func(cc *grpc.ClientConn) error {
			_, err := authnv1.NewAuthnServiceClient(cc).Authenticate(rpcContext(t),
				&authnv1.AuthenticateRequest{Username: "alice", Password: "alice", Service: service})
			return err
		},
		"authz": func(cc *grpc.ClientConn) error {
			_, err := authzv1.NewAuthzServiceClient(cc).Authorize(rpcContext(t), &authzv1.AuthorizeRequest{
				Identity: &commonv1.Identity{Subject: "alice", Groups: []string{"developers"}}, Service: service,
				Requested: []*commonv1.Scope{{Type: "repository", Name: "alice/split", Actions: []string{"pull"}}}})
			return err
		},
		"signer": func(cc *grpc.ClientConn) error {
			resp, err := signerv1.NewSignerServiceClient(cc).SignToken(rpcContext(t), signRequest())
			if err == nil {
				verifyWithJWKS(t, pc, resp.GetToken())
			}
			return err
		},
	}
	targets := []string{"authn", "authz", "signer"}

	t.Run("GatewayServed", func(t *testing.T) {
		for _, target := range targets {
			if err := calls[target](with("gateway", cert("gateway")).cc(pc.GRPC[target])); err != nil {
				t.Fatalf("%s refused the gateway's certificate: %v", target, err)
			}
		}
	})

	// Without a certificate the CA vouches for, the handshake itself fails: the call
	// never reaches a handler (Unavailable), whatever identity check follows.
	t.Run("NoCertificateRefused", func(t *testing.T) {
		for _, c := range []caller{plaintext, noCert, foreignCA} {
			for _, target := range targets {
				err := calls[target](c.cc(pc.GRPC[target]))
				if status.Code(err) != codes.Unavailable {
					t.Errorf("%s calling %s: %v, want the connection refused (Unavailable)", c.name, target, err)
				}
			}
		}
	})

	// A valid certificate of the CA buys a connection, not every method: each service
	// answers only the gateway, so a compromised authn cannot mint a token, and nobody
	// but the gateway can try passwords at authn.
	t.Run("WrongIdentityRefused", func(t *testing.T) {
		callers := []caller{with("no identity", &noID), with("gateway role in another trust domain", &otherDomain)}
		for _, r := range roles {
			if r != "gateway" {
				callers = append(callers, with(r+" role", cert(r)))
			}
		}
		for _, c := range callers {
			for _, target := range targets {
				cc := c.cc(pc.GRPC[target])
				err := calls[target](cc)
				if code := status.Code(err); code != codes.PermissionDenied && code != codes.Unauthenticated {
					t.Errorf("%s calling %s: %v, want PermissionDenied", c.name, target, err)
				}
				if c.name != "authn role" {
					continue
				}
				// The control: the same connection passed the handshake and is served
				// the health service, which any verified peer may call.
				if _, err := grpc_health_v1.NewHealthClient(cc).Check(rpcContext(t), &grpc_health_v1.HealthCheckRequest{}); err != nil {
					t.Errorf("authn role's health check of %s: %v, want served", target, err)
				}
			}
		}
	})
}

// signRequest is a request the gateway could make for alice.
func signRequest() *signerv1.SignTokenRequest {
	return &signerv1.SignTokenRequest{Subject: "alice", Audience: service, Ttl: durationpb.New(time.Minute), Jti: "e2e-direct",
		Access: []*commonv1.Scope{{Type: "repository", Name: "alice/split", Actions: []string{"pull"}}}}
}
