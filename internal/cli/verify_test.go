package cli

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/app"

	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	"github.com/portcullis-dev/portcullis/pkg/verify"
)

// pkg/verify checks tokens of a running Portcullis through its discovery document and JWKS,
// as an internal service would.
func TestVerifyLibraryAgainstPortcullis(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	a := apptest.Start(t, cfg, "all")
	req, _ := http.NewRequest("GET", "http://"+a.GatewayAddr+"/token?service=registry.local&scope=repository:alice/app:push,pull", nil)
	req.SetBasicAuth("alice", "alice")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Token string `json:"token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.Token == "" {
		t.Fatalf("token: %v %+v", err, body)
	}
	v, err := verify.New(verify.Options{URL: "http://" + a.GatewayAddr, Audience: "registry.local"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := v.Verify(context.Background(), body.Token)
	if err != nil {
		t.Fatalf("verify: %v", err)
	}
	if c.Subject != "alice" || !c.Allows("repository", "alice/app", "push") || c.Allows("repository", "bob/app", "pull") {
		t.Fatalf("claims %+v", c)
	}
	other, _ := verify.New(verify.Options{URL: "http://" + a.GatewayAddr, Audience: "another-service"})
	if _, err := other.Verify(context.Background(), body.Token); !errors.Is(err, verify.ErrAudience) {
		t.Fatalf("a service the token is not for: %v, want ErrAudience", err)
	}
}
