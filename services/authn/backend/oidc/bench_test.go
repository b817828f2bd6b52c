package oidc_test

import (
	"context"
	"testing"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/services/authn"
)

// BenchmarkAuthenticate is one workload login with the issuer's keys cached: parse, verify,
// check claims, map. No login cache in front.
func BenchmarkAuthenticate(b *testing.B) {
	for _, alg := range []jose.SignatureAlgorithm{jose.RS256, jose.ES256, jose.EdDSA} {
		b.Run(string(alg), func(b *testing.B) {
			clk := newClock()
			iss := oidctest.Start(b)
			if _, err := iss.Rotate(alg, false); err != nil {
				b.Fatal(err)
			}
			a := openBench(b, clk, iss)
			cr := authn.Credentials{Username: "ci", Password: authn.Password(iss.MustSign(b, githubClaims(iss, clk.Now())))}
			if _, err := a.Authenticate(context.Background(), cr); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := a.Authenticate(context.Background(), cr); err != nil {
						b.Error(err)
						return
					}
				}
			})
		})
	}
}
