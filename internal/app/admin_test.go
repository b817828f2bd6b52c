package app_test

import (
	"context"
	"log/slog"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
)

// The admin address used to serve the whole gRPC server in plaintext: anybody could mint a
// token or guess passwords there. Now it carries the admin API only, behind the secret.
func TestAdminListenServesOnlyTheAdminAPI(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	apptest.WithAdmin(t, cfg)
	apptest.Start(t, cfg, "all")
	cc := apptest.DialWith(t, cfg.Admin.Listen, insecure.NewCredentials())
	for _, cred := range []struct {
		name string
		opts []grpc.CallOption
	}{{"no credential", nil}, {"admin bearer", []grpc.CallOption{grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret))}}} {
		for name, call := range map[string]func(*grpc.ClientConn, ...grpc.CallOption) codes.Code{
			"SignToken": callSignToken, "Authenticate": apptest.CallAuthenticate, "Authorize": callAuthorize,
		} {
			if got := call(cc, cred.opts...); !apptest.Refused(got) {
				t.Errorf("%s on the admin address with %s: %v, want it refused", name, cred.name, got)
			}
		}
	}
	if got := apptest.ListKeys(cc); got != codes.Unauthenticated {
		t.Errorf("ListKeyVersions without the secret: %v", got)
	}
	if got := apptest.HealthCheck(cc); got != codes.Unauthenticated {
		t.Errorf("health without the secret: %v", got)
	}
	if got := apptest.ListKeys(cc, grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret))); got != codes.OK {
		t.Errorf("ListKeyVersions with the secret: %v", got)
	}
	if got := apptest.HealthCheck(cc, grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret))); got != codes.OK {
		t.Errorf("health with the secret: %v", got)
	}
}

// In the split deployment the signer runs the admin module on admin.listen; the signer's
// service address no longer serves the admin API.
func TestSplitSignerRunsTheAdminModule(t *testing.T) {
	t.Parallel()
	cfg := apptest.WithAdmin(t, apptest.SplitConfig(t))
	apptest.Start(t, cfg, "signer")
	adm := apptest.DialWith(t, cfg.Admin.Listen, insecure.NewCredentials())
	if got := apptest.ListKeys(adm, grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret))); got != codes.OK {
		t.Errorf("admin API on admin.listen: %v", got)
	}
	if got := callSignToken(adm, grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret))); !apptest.Refused(got) {
		t.Errorf("SignToken on admin.listen: %v", got)
	}
	svc := apptest.DialWith(t, cfg.Signer.Listen, insecure.NewCredentials())
	if got := apptest.ListKeys(svc, grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret))); got != codes.Unimplemented {
		t.Errorf("admin API on signer.listen: %v, want Unimplemented", got)
	}
}

// With internal_tls the admin listener wants an admin certificate as well as the secret.
func TestAdminListenWithMutualTLS(t *testing.T) {
	t.Parallel()
	pki := apptest.NewRolePKI(t)
	cfg := apptest.WithAdmin(t, apptest.SplitConfig(t))
	apptest.Start(t, pki.As(cfg, "signer"), "signer")
	secret := grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret))
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
		cc := apptest.DialWith(t, cfg.Admin.Listen, apptest.ClientCreds(t, pki[tc.role]))
		if got := apptest.ListKeys(cc, tc.opts...); got != tc.want {
			t.Errorf("%s certificate, secret %v: ListKeyVersions %v, want %v", tc.role, tc.opts != nil, got, tc.want)
		}
		if got := callSignToken(cc, tc.opts...); got != tc.signTo {
			t.Errorf("%s certificate: SignToken on the admin address %v, want %v", tc.role, got, tc.signTo)
		}
	}
	// Plaintext, even with the secret, does not get through.
	var plain credentials.TransportCredentials = insecure.NewCredentials()
	if got := apptest.ListKeys(apptest.DialWith(t, cfg.Admin.Listen, plain), secret); got != codes.Unavailable {
		t.Errorf("plaintext admin call: %v, want Unavailable", got)
	}
	// The admin's certificate cannot sign tokens on the signer's service address.
	if got := callSignToken(apptest.DialWith(t, cfg.Signer.Listen, apptest.ClientCreds(t, pki["admin"]))); got != codes.PermissionDenied {
		t.Errorf("admin certificate calling SignToken: %v, want PermissionDenied", got)
	}
}

func TestAdminSecretFile(t *testing.T) {
	t.Parallel()
	cfg, _ := app.DevConfig(t.TempDir())
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Admin.Listen = apptest.FreeAddr(t)
	cfg.Admin.TokenFile = apptest.WriteFile(t, "short", "tooshort\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // were the secret accepted, Run would start and return at once
	if err := app.New(cfg, slog.New(slog.DiscardHandler)).Run(ctx, "all"); err == nil {
		t.Fatal("a short admin secret was accepted")
	}
}
