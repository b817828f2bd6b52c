package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func start(t *testing.T, cfg *Config, target string) *App {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	a := NewApp(cfg, slog.New(slog.DiscardHandler))
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

// tokenAndVerify fetches a token as alice and checks it against the served JWKS.
func tokenAndVerify(t *testing.T, gw string) map[string]any {
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

func TestAllInOne(t *testing.T) {
	t.Parallel()
	cfg, err := DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	a := start(t, cfg, "all")
	tokenAndVerify(t, a.GatewayAddr)
}

func TestSplitTargetsBehaveLikeAllInOne(t *testing.T) {
	t.Parallel()
	cfg, err := DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Authn.Listen, cfg.Authz.Listen, cfg.Signer.Listen = freeAddr(t), freeAddr(t), freeAddr(t)
	cfg.Gateway.Backends.Authn, cfg.Gateway.Backends.Authz, cfg.Gateway.Backends.Signer = cfg.Authn.Listen, cfg.Authz.Listen, cfg.Signer.Listen
	for _, target := range []string{"authn", "authz", "signer"} {
		start(t, cfg, target)
	}
	gw := start(t, cfg, "gateway")
	claims := tokenAndVerify(t, gw.GatewayAddr)
	if claims["sub"] != "alice" || claims["aud"] != "registry.local" {
		t.Fatalf("claims %v", claims)
	}
	resp, err := http.Get("http://" + gw.GatewayAddr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("readyz %d %s", resp.StatusCode, b)
	}
}

func TestUnknownTarget(t *testing.T) {
	t.Parallel()
	cfg, _ := DevConfig(t.TempDir())
	err := NewApp(cfg, slog.New(slog.DiscardHandler)).Run(context.Background(), "everything")
	if err == nil || err.Error() != fmt.Sprintf("unknown target %q (want all, gateway, authn, authz or signer)", "everything") {
		t.Fatalf("err = %v", err)
	}
}
