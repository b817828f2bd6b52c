package main

import (
	"context"
	"encoding/json"
	"slices"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
)

// The unavoidable work is a token's work only if the default policy grants the bench's
// request what it asks for, and the signature is over a token like the server's.
func TestUnavoidableWorkIsATokensWork(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, err := newUnavoidableWork(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	d, err := u.decide(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Granted) != 1 || d.Granted[0].String() != benchScope(0) {
		t.Fatalf("the default policy granted %v; want %s", d.Granted, benchScope(0))
	}
	if d.DecisionID == "" {
		t.Error("no decision id (the token's jti)")
	}
	tok, err := u.sign(ctx, d)
	if err != nil {
		t.Fatal(err)
	}
	jws, err := jose.ParseSigned(tok.Raw, []jose.SignatureAlgorithm{jose.ES256})
	if err != nil {
		t.Fatalf("token %q: %v", tok.Raw, err)
	}
	var claims struct {
		Sub    string `json:"sub"`
		Aud    string `json:"aud"`
		JTI    string `json:"jti"`
		Access []struct {
			Type, Name string
			Actions    []string
		} `json:"access"`
	}
	if err := json.Unmarshal(jws.UnsafePayloadWithoutVerification(), &claims); err != nil {
		t.Fatal(err)
	}
	if claims.Sub != benchUser || claims.Aud != benchService || claims.JTI != d.DecisionID || len(claims.Access) != 1 ||
		claims.Access[0].Name != "bench/app0" || !slices.Equal(claims.Access[0].Actions, []string{"pull", "push"}) {
		t.Errorf("claims %+v", claims)
	}
	if err := u.token(ctx); err != nil {
		t.Error(err)
	}
}

// A request the default policy denies is refused as unavoidable work rather than measured.
func TestUnavoidableWorkRefusesADenial(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	u, err := newUnavoidableWork(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer u.close()
	u.req.Identity.Subject, u.req.Identity.Groups = "alice", []string{"developers"}
	if _, err := u.decide(ctx); err == nil {
		t.Error("alice (not an admin) was granted bench/app0, or the denial was not reported")
	}
}

func TestCPUPerOp(t *testing.T) {
	t.Parallel()
	var sink []byte
	per, allocs, err := cpuPerOp(func() error {
		sink = make([]byte, 1024)
		for i := range sink {
			sink[i] = byte(i)
		}
		return nil
	}, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	if per <= 0 || per > 10*time.Millisecond {
		t.Errorf("per op %s", per)
	}
	if allocs.mallocs < 0.9 || allocs.bytes < 1000 {
		t.Errorf("allocations per op %+v; want one of 1KB", allocs)
	}
}
