package app_test

import (
	"context"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
)

// adminCalls call one method of each admin service.
var adminCalls = map[string]func(context.Context, *grpc.ClientConn, ...grpc.CallOption) error{
	"KeyAdminService": func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) error {
		_, err := signerv1.NewKeyAdminServiceClient(cc).ListKeyVersions(ctx, &signerv1.ListKeyVersionsRequest{}, o...)
		return err
	},
	"SessionAdminService": func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) error {
		_, err := authnv1.NewSessionAdminServiceClient(cc).ListSessions(ctx, &authnv1.ListSessionsRequest{}, o...)
		return err
	},
	"RobotAdminService": func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) error {
		_, err := authnv1.NewRobotAdminServiceClient(cc).ListRobots(ctx, &authnv1.ListRobotsRequest{}, o...)
		return err
	},
	"PersonalAccessTokenAdminService": func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) error {
		_, err := authnv1.NewPersonalAccessTokenAdminServiceClient(cc).ListPersonalAccessTokens(ctx,
			&authnv1.ListPersonalAccessTokensRequest{Owner: "alice"}, o...)
		return err
	},
	"PolicyAdminService": func(ctx context.Context, cc *grpc.ClientConn, o ...grpc.CallOption) error {
		_, err := authzv1.NewPolicyAdminServiceClient(cc).GetPolicyStatus(ctx, &authzv1.GetPolicyStatusRequest{}, o...)
		return err
	},
}

// Every admin service a target holds answers on its admin listener, and no other: the
// authz target used to open no admin listener at all, though compose publishes its port.
func TestAdminServicesPerTarget(t *testing.T) {
	t.Parallel()
	want := map[string][]string{
		"all":    {"KeyAdminService", "SessionAdminService", "RobotAdminService", "PersonalAccessTokenAdminService", "PolicyAdminService"},
		"authn":  {"SessionAdminService", "RobotAdminService", "PersonalAccessTokenAdminService"},
		"authz":  {"PolicyAdminService"},
		"signer": {"KeyAdminService"},
	}
	for target, services := range want {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			cfg := apptest.WithAdmin(t, apptest.SplitConfig(t))
			cfg.Authn.Backends = append(cfg.Authn.Backends, backend.Spec{Name: "robots", Type: "robot"})
			cfg.SSO.PAT.Enabled = true
			apptest.Start(t, cfg, target)
			cc := apptest.DialWith(t, cfg.Admin.Listen, insecure.NewCredentials())
			var got []string
			for name, call := range adminCalls {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				err := call(ctx, cc, grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret)))
				cancel()
				switch status.Code(err) {
				case codes.OK:
					got = append(got, name)
				case codes.Unimplemented:
				default:
					t.Errorf("%s on the %s admin listener: %v", name, target, err)
				}
			}
			for _, s := range services {
				if !contains(got, s) {
					t.Errorf("-target=%s: admin listener does not serve %s (serves %v)", target, s, got)
				}
			}
			if len(got) != len(services) {
				t.Errorf("-target=%s serves %v, want %v", target, got, services)
			}
			// Every service it serves refuses a caller without the bearer secret or with another.
			for _, name := range got {
				for _, opts := range [][]grpc.CallOption{nil, {grpc.PerRPCCredentials(apptest.Bearer("not-the-admin-secret-0123456789"))}} {
					ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
					err := adminCalls[name](ctx, cc, opts...)
					cancel()
					if status.Code(err) != codes.Unauthenticated {
						t.Errorf("-target=%s: %s with %d credential option(s): %v, want Unauthenticated", target, name, len(opts), err)
					}
				}
			}
		})
	}
}

func contains(l []string, s string) bool {
	for _, e := range l {
		if e == s {
			return true
		}
	}
	return false
}

// Exactly these gRPC services are on each listener of each target: what the modules
// registered, nothing kept in a list. A service on the wrong listener (the admin API on the
// services' port, a token service on the admin port) fails here.
func TestServicesPerListener(t *testing.T) {
	t.Parallel()
	const (
		health      = "grpc.health.v1.Health"
		authnSvc    = "portcullis.authn.v1.AuthnService"
		authzSvc    = "portcullis.authz.v1.AuthzService"
		signerSvc   = "portcullis.signer.v1.SignerService"
		keyAdmin    = "portcullis.signer.v1.KeyAdminService"
		sessAdmin   = "portcullis.authn.v1.SessionAdminService"
		robotAdmin  = "portcullis.authn.v1.RobotAdminService"
		patAdmin    = "portcullis.authn.v1.PersonalAccessTokenAdminService"
		policyAdmin = "portcullis.authz.v1.PolicyAdminService"
		deviceSvc   = "portcullis.authn.v1.DeviceAuthorizationService"
		accountSvc  = "portcullis.authn.v1.AccountService"
	)
	want := map[string]map[string][]string{
		"all": {
			"services":   {health, authnSvc, deviceSvc, accountSvc, authzSvc, signerSvc},
			"admin":      {health, keyAdmin, sessAdmin, robotAdmin, patAdmin, policyAdmin},
			"admin-rest": {health, keyAdmin, sessAdmin, robotAdmin, patAdmin, policyAdmin},
		},
		"authn": {"services": {health, authnSvc, deviceSvc, accountSvc}, "admin": {health, sessAdmin, robotAdmin, patAdmin},
			"admin-rest": {health, sessAdmin, robotAdmin, patAdmin}},
		"authz":   {"services": {health, authzSvc}, "admin": {health, policyAdmin}, "admin-rest": {health, policyAdmin}},
		"signer":  {"services": {health, signerSvc}, "admin": {health, keyAdmin}, "admin-rest": {health, keyAdmin}},
		"gateway": {},
	}
	for target, listeners := range want {
		t.Run(target, func(t *testing.T) {
			t.Parallel()
			cfg := apptest.WithAdmin(t, apptest.SplitConfig(t))
			cfg.Admin.HTTPListen = apptest.FreeAddr(t)
			cfg.Authn.Backends = append(cfg.Authn.Backends, backend.Spec{Name: "robots", Type: "robot"})
			cfg.SSO.PAT.Enabled = true
			a := apptest.Start(t, cfg, target)
			got := a.Served()
			for l := range listeners {
				slices.Sort(listeners[l])
			}
			if !reflect.DeepEqual(got, listeners) && !(len(got) == 0 && len(listeners) == 0) {
				t.Errorf("-target=%s serves\n  %v\nwant\n  %v", target, got, listeners)
			}
		})
	}
}
