package app_test

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// The sign-in services authn gained (the device flow and a person's account) are the
// gateway's to call, like AuthnService: any other role's certificate is refused before the
// handler runs. The gateway's own calls get the handler's answer (here: an unknown device
// code, a web session token that is no one's), never PermissionDenied.
func TestSignInServicesAreTheGatewaysOnly(t *testing.T) {
	t.Parallel()
	cfg := apptest.SplitConfig(t)
	pki := apptest.NewRolePKI(t)
	apptest.Start(t, pki.As(cfg, "authn"), "authn")
	calls := map[string]func(*grpc.ClientConn) error{
		"PollDeviceAuthorization": func(cc *grpc.ClientConn) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := authnv1.NewDeviceAuthorizationServiceClient(cc).PollDeviceAuthorization(ctx,
				&authnv1.PollDeviceAuthorizationRequest{DeviceCode: "pcd_unknown", ClientId: "cli"})
			return err
		},
		"GetAccount": func(cc *grpc.ClientConn) error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_, err := authnv1.NewAccountServiceClient(cc).GetAccount(ctx, &authnv1.GetAccountRequest{WebSessionToken: "pcw_unknown"})
			return err
		},
	}
	for _, role := range []string{"gateway", "authn", "authz", "signer", "admin", "none"} {
		for name, call := range calls {
			got := status.Code(call(apptest.DialWith(t, cfg.Authn.Listen, apptest.ClientCreds(t, pki[role]))))
			if want := role != "gateway"; (got == codes.PermissionDenied) != want {
				t.Errorf("%s certificate calling %s: %v, want PermissionDenied %t", role, name, got, want)
			}
			if role == "gateway" && got != codes.Unauthenticated {
				t.Errorf("gateway calling %s: %v, want the handler's Unauthenticated", name, got)
			}
		}
	}
}
