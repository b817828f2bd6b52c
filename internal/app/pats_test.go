package app_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// In the split deployment the token's narrowing travels from authn through the gateway to
// the authz process, which applies it after the policy: a narrowed token of alice's gets
// pull where the policy gives her pull and push.
func TestPATNarrowingAcrossTheSplitTargets(t *testing.T) {
	t.Parallel()
	cfg := apptest.WithAdmin(t, apptest.SplitConfig(t))
	cfg.SSO.PAT.Enabled = true
	// One admin listener, authn's: on one host each target would need its own address.
	others := *cfg
	others.Admin.Listen = ""
	apptest.Start(t, cfg, "authn")
	apptest.Start(t, &others, "authz")
	apptest.Start(t, &others, "signer")
	gw := apptest.Start(t, &others, "gateway")
	cc := apptest.DialWith(t, cfg.Admin.Listen, insecure.NewCredentials())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	created, err := authnv1.NewPersonalAccessTokenAdminServiceClient(cc).CreatePersonalAccessToken(ctx,
		&authnv1.CreatePersonalAccessTokenRequest{Owner: "alice", Name: "ci", ExpiresIn: durationpb.New(time.Hour),
			Scopes: []string{"repository:alice/*:pull"}}, grpc.PerRPCCredentials(apptest.Bearer(apptest.AdminSecret)))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ user, pass, want string }{
		{"alice", "alice", `[{"type":"repository","name":"alice/app","actions":["pull","push"]}]`},
		{"alice", created.GetSecret(), `[{"type":"repository","name":"alice/app","actions":["pull"]}]`},
	} {
		req, _ := http.NewRequest("GET", "http://"+gw.GatewayAddr+"/token?service=registry.local&scope=repository:alice/app:pull,push", nil)
		req.SetBasicAuth(c.user, c.pass)
		code, body := apptest.Send(t, req)
		var ans struct{ Token string }
		if code != 200 || json.Unmarshal(body, &ans) != nil {
			t.Fatalf("token for %s: %d %s", c.user, code, body)
		}
		parts := strings.Split(ans.Token, ".")
		payload, err := base64.RawURLEncoding.DecodeString(parts[1])
		if err != nil {
			t.Fatal(err)
		}
		var claims struct {
			Access json.RawMessage `json:"access"`
		}
		if err := json.Unmarshal(payload, &claims); err != nil || string(claims.Access) != c.want {
			t.Errorf("access with %s's %s = %s, want %s", c.user, map[bool]string{true: "token", false: "password"}[strings.HasPrefix(c.pass, "pat_")],
				claims.Access, c.want)
		}
	}
}
