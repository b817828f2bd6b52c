//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/portcullis-dev/portcullis/internal/app"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	authzv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authz/v1"
	commonv1 "github.com/portcullis-dev/portcullis/proto/portcullis/common/v1"
	signerv1 "github.com/portcullis-dev/portcullis/proto/portcullis/signer/v1"
)

// adminSecret is the admin bearer secret of TestAdminListener_AllInOne.
const adminSecret = "e2e-admin-listener-secret-0123456789"

// TestAdminListener_AllInOne runs `portcullis -config FILE -target=all` with admin.listen
// and admin.token_file, and plays a caller of the admin address: it is served the admin
// API with the bearer secret (`portcullis keys list`, whose key id is the one tokens carry),
// and refused everything else — SignToken (a token for anyone), Authenticate (password
// guessing around the gateway) and Authorize — with the bearer secret or without. The
// gateway's Prometheus metrics are on gateway.metrics_listen, not on the token port.
func TestAdminListener_AllInOne(t *testing.T) {
	t.Parallel()
	secrets := t.TempDir()
	tokenFile := filepath.Join(secrets, "admin-secret")
	if err := os.WriteFile(tokenFile, []byte(adminSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	pc := startAllInOneConfig(t, portcullisConfig{
		Admin: app.AdminConfig{TokenFile: tokenFile, Listen: addr},
	})
	waitUntil(t, "admin API listening on "+addr, pc.allProcs(), tcpListening(addr))

	cc, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cc.Close() })

	t.Run("KeysList", func(t *testing.T) {
		out, err := runPortcullis(t, "keys", "list", "-addr", addr, "-admin-token-file", tokenFile)
		if err != nil {
			t.Fatalf("portcullis keys list on the admin address: %v\n%s", err, out)
		}
		kt := parseKeyTable(t, out)
		tok := mustToken(t, pc, "alice", "alice", "repository:alice/app:pull")
		if len(kt) != 1 || kt[0].State != "active" || kt[0].KeyID != tok.kid {
			t.Fatalf("keys list = %s, want one active key %s (the kid tokens carry)", kt, tok.kid)
		}
	})

	t.Run("AdminAPIWantsTheBearer", func(t *testing.T) {
		for name, md := range map[string]metadata.MD{
			"no credential":    nil,
			"wrong secret":     metadata.Pairs("authorization", "Bearer not-the-admin-secret-at-all"),
			"no Bearer prefix": metadata.Pairs("authorization", adminSecret),
		} {
			ctx := metadata.NewOutgoingContext(rpcContext(t), md)
			_, err := signerv1.NewKeyAdminServiceClient(cc).ListKeyVersions(ctx, &signerv1.ListKeyVersionsRequest{})
			if code := status.Code(err); code != codes.Unauthenticated && code != codes.PermissionDenied {
				t.Errorf("ListKeyVersions with %s: %v, want Unauthenticated", name, err)
			}
		}
	})

	// Each is a valid request: served, it would succeed.
	calls := map[string]func(ctx context.Context) error{
		"SignerService/SignToken": func(ctx context.Context) error {
			_, err := signerv1.NewSignerServiceClient(cc).SignToken(ctx, signRequest())
			return err
		},
		"AuthnService/Authenticate": func(ctx context.Context) error {
			_, err := authnv1.NewAuthnServiceClient(cc).Authenticate(ctx,
				&authnv1.AuthenticateRequest{Username: "alice", Password: "alice", Service: service})
			return err
		},
		"AuthzService/Authorize": func(ctx context.Context) error {
			_, err := authzv1.NewAuthzServiceClient(cc).Authorize(ctx, &authzv1.AuthorizeRequest{
				Identity: &commonv1.Identity{Subject: "admin", Groups: []string{"admins"}}, Service: service,
				Requested: []*commonv1.Scope{{Type: "registry", Name: "catalog", Actions: []string{"*"}}}})
			return err
		},
	}
	for name, call := range calls {
		t.Run("Refuses"+strings.ReplaceAll(name, "/", "."), func(t *testing.T) {
			for cred, md := range map[string]metadata.MD{
				"without the admin bearer": nil,
				"with the admin bearer":    metadata.Pairs("authorization", "Bearer "+adminSecret),
			} {
				err := call(metadata.NewOutgoingContext(rpcContext(t), md))
				switch status.Code(err) {
				case codes.Unimplemented, codes.PermissionDenied, codes.Unauthenticated:
				default:
					t.Errorf("%s on the admin address %s: %v, want Unimplemented (not served there)", name, cred, err)
				}
			}
		})
	}

	t.Run("MetricsListen", func(t *testing.T) {
		mustToken(t, pc, "alice", "alice", "repository:alice/app:pull")
		if a := do(t, mustRequest(t, http.MethodGet, pc.URL+"/metrics")); a.status != http.StatusNotFound {
			t.Errorf("GET /metrics on the token port: status %d, want 404\n%.300s", a.status, a.body)
		}
		resp, err := httpClient.Get(pc.MetricsURL)
		if err != nil {
			t.Fatalf("GET %s: %v", pc.MetricsURL, err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "portcullis_token_requests_total") {
			t.Fatalf("GET %s: status %d, want 200 with portcullis_token_requests_total\n%.500s", pc.MetricsURL, resp.StatusCode, body)
		}
	})
}
