package main

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

const testAdminSecret = "s3cret-admin-token-for-tests"

// withAdmin is cfg with an admin API on a free loopback port.
func withAdmin(t *testing.T, cfg *Config) *Config {
	t.Helper()
	cfg.Admin.Listen = freeAddr(t)
	cfg.Admin.TokenFile = writeFile(t, "admin-token", testAdminSecret+"\n")
	return cfg
}

// bearer returns a call option presenting the admin secret.
type bearer string

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + string(b)}, nil
}
func (bearer) RequireTransportSecurity() bool { return false }

func listKeys(cc *grpc.ClientConn, opts ...grpc.CallOption) codes.Code {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := signerv1.NewKeyAdminServiceClient(cc).ListKeyVersions(ctx, &signerv1.ListKeyVersionsRequest{}, opts...)
	return status.Code(err)
}

func healthCheck(cc *grpc.ClientConn, opts ...grpc.CallOption) codes.Code {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := grpc_health_v1.NewHealthClient(cc).Check(ctx, &grpc_health_v1.HealthCheckRequest{}, opts...)
	return status.Code(err)
}

// refused: the admin address does not serve the method, or does not let this caller call it.
func refused(c codes.Code) bool {
	return c == codes.Unimplemented || c == codes.PermissionDenied || c == codes.Unauthenticated
}

// The admin address used to serve the whole gRPC server in plaintext: anybody could mint a
// token or guess passwords there. Now it carries the admin API only, behind the secret.
func TestAdminListenServesOnlyTheAdminAPI(t *testing.T) {
	t.Parallel()
	cfg, err := DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	withAdmin(t, cfg)
	start(t, cfg, "all")
	cc := dialWith(t, cfg.Admin.Listen, insecure.NewCredentials())
	for _, cred := range []struct {
		name string
		opts []grpc.CallOption
	}{{"no credential", nil}, {"admin bearer", []grpc.CallOption{grpc.PerRPCCredentials(bearer(testAdminSecret))}}} {
		for name, call := range map[string]func(*grpc.ClientConn, ...grpc.CallOption) codes.Code{
			"SignToken": callSignToken, "Authenticate": callAuthenticate, "Authorize": callAuthorize,
		} {
			if got := call(cc, cred.opts...); !refused(got) {
				t.Errorf("%s on the admin address with %s: %v, want it refused", name, cred.name, got)
			}
		}
	}
	if got := listKeys(cc); got != codes.Unauthenticated {
		t.Errorf("ListKeyVersions without the secret: %v", got)
	}
	if got := healthCheck(cc); got != codes.Unauthenticated {
		t.Errorf("health without the secret: %v", got)
	}
	if got := listKeys(cc, grpc.PerRPCCredentials(bearer(testAdminSecret))); got != codes.OK {
		t.Errorf("ListKeyVersions with the secret: %v", got)
	}
	if got := healthCheck(cc, grpc.PerRPCCredentials(bearer(testAdminSecret))); got != codes.OK {
		t.Errorf("health with the secret: %v", got)
	}
}

// In the split deployment the signer runs the admin module on admin.listen; the signer's
// service address no longer serves the admin API.
func TestSplitSignerRunsTheAdminModule(t *testing.T) {
	t.Parallel()
	cfg := withAdmin(t, splitConfig(t))
	start(t, cfg, "signer")
	adm := dialWith(t, cfg.Admin.Listen, insecure.NewCredentials())
	if got := listKeys(adm, grpc.PerRPCCredentials(bearer(testAdminSecret))); got != codes.OK {
		t.Errorf("admin API on admin.listen: %v", got)
	}
	if got := callSignToken(adm, grpc.PerRPCCredentials(bearer(testAdminSecret))); !refused(got) {
		t.Errorf("SignToken on admin.listen: %v", got)
	}
	svc := dialWith(t, cfg.Signer.Listen, insecure.NewCredentials())
	if got := listKeys(svc, grpc.PerRPCCredentials(bearer(testAdminSecret))); got != codes.Unimplemented {
		t.Errorf("admin API on signer.listen: %v, want Unimplemented", got)
	}
}

// With internal_tls the admin listener wants an admin certificate as well as the secret.
func TestAdminListenWithMutualTLS(t *testing.T) {
	t.Parallel()
	pki := newRolePKI(t)
	cfg := withAdmin(t, splitConfig(t))
	start(t, pki.as(cfg, "signer"), "signer")
	secret := grpc.PerRPCCredentials(bearer(testAdminSecret))
	for _, tc := range []struct {
		role   string
		opts   []grpc.CallOption
		want   codes.Code
		signTo codes.Code
	}{
		{"admin", []grpc.CallOption{secret}, codes.OK, codes.Unimplemented},
		{"admin", nil, codes.Unauthenticated, codes.Unimplemented},
		{"gateway", []grpc.CallOption{secret}, codes.PermissionDenied, codes.Unimplemented},
		{"signer", []grpc.CallOption{secret}, codes.PermissionDenied, codes.Unimplemented},
	} {
		cc := dialWith(t, cfg.Admin.Listen, clientCreds(t, pki[tc.role]))
		if got := listKeys(cc, tc.opts...); got != tc.want {
			t.Errorf("%s certificate, secret %v: ListKeyVersions %v, want %v", tc.role, tc.opts != nil, got, tc.want)
		}
		if got := callSignToken(cc, tc.opts...); got != tc.signTo {
			t.Errorf("%s certificate: SignToken on the admin address %v, want %v", tc.role, got, tc.signTo)
		}
	}
	// Plaintext, even with the secret, does not get through.
	var plain credentials.TransportCredentials = insecure.NewCredentials()
	if got := listKeys(dialWith(t, cfg.Admin.Listen, plain), secret); got != codes.Unavailable {
		t.Errorf("plaintext admin call: %v, want Unavailable", got)
	}
	// The admin's certificate cannot sign tokens on the signer's service address.
	if got := callSignToken(dialWith(t, cfg.Signer.Listen, clientCreds(t, pki["admin"]))); got != codes.PermissionDenied {
		t.Errorf("admin certificate calling SignToken: %v, want PermissionDenied", got)
	}
}

func TestAdminSecretFile(t *testing.T) {
	t.Parallel()
	cfg, _ := DevConfig(t.TempDir())
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = freeAddr(t)
	cfg.Admin.TokenFile = writeFile(t, "short", "tooshort\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // were the secret accepted, Run would start and return at once
	if err := NewApp(cfg, slog.New(slog.DiscardHandler)).Run(ctx, "all"); err == nil {
		t.Fatal("a short admin secret was accepted")
	}
}
