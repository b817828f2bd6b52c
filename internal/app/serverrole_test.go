package app_test

import (
	"context"
	"net"
	"net/http"
	"sync/atomic"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// impostor is an AuthnService that records what reaches it.
type impostor struct {
	authnv1.UnimplementedAuthnServiceServer
	passwords atomic.Int32
}

func (i *impostor) Authenticate(context.Context, *authnv1.AuthenticateRequest) (*authnv1.AuthenticateResponse, error) {
	i.passwords.Add(1)
	return nil, status.Error(codes.Unauthenticated, "no")
}

// Every internal certificate is valid for the same host names (localhost, 127.0.0.1), so the
// host name proves nothing about who answers. A compromised authz holding its own, genuine
// certificate and listening where the gateway looks for authn must not receive the passwords:
// the gateway checks that authn's certificate names the authn role.
func TestGatewayChecksTheServersRole(t *testing.T) {
	t.Parallel()
	pki := apptest.NewRolePKI(t)
	for _, tc := range []struct {
		serverRole string
		want       int32
	}{{"authz", 0}, {"signer", 0}, {"none", 0}, {"authn", 1}} {
		t.Run(tc.serverRole, func(t *testing.T) {
			t.Parallel()
			creds, err := pki[tc.serverRole].Server()
			if err != nil {
				t.Fatal(err)
			}
			fake := &impostor{}
			s := grpc.NewServer(grpc.Creds(creds))
			authnv1.RegisterAuthnServiceServer(s, fake)
			hs := health.NewServer()
			hs.SetServingStatus(authnv1.AuthnService_ServiceDesc.ServiceName, grpc_health_v1.HealthCheckResponse_SERVING)
			grpc_health_v1.RegisterHealthServer(s, hs)
			lis, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			go func() { _ = s.Serve(lis) }()
			t.Cleanup(s.Stop)

			cfg := apptest.SplitConfig(t)
			cfg.Gateway.Backends.Authn = lis.Addr().String()
			gw := apptest.Start(t, pki.As(cfg, "gateway"), "gateway")
			req, _ := http.NewRequest("GET", "http://"+gw.GatewayAddr+"/token?service=registry.local", nil)
			req.SetBasicAuth("alice", "alice-password")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if got := fake.passwords.Load(); got != tc.want {
				t.Fatalf("a server with a %s certificate got %d password(s), want %d (gateway answered %d)", tc.serverRole, got, tc.want, resp.StatusCode)
			}
		})
	}
}
