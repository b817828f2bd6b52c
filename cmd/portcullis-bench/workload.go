package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
)

// benchWorkload measures workload identity logins all-in-one: GET /token with a CI job's JWT
// as the password, verified by an oidc backend (after htpasswd in the chain, which never sees
// a JWT) trusting an issuer this process runs (internal/testenv/oidctest, RS256). With the login cache on,
// each of the n tokens is verified once and then answered from the cache; with it off, every
// request checks a signature and the claims: the raw cost of a workload login. The issuer's
// keys are fetched by the first request and cached, as in production. The cache-off run is
// CPU-profiled when profiling is on.
func benchWorkload(bin, dir string, o options) ([]cpuProfile, error) {
	idp, err := oidctest.New()
	if err != nil {
		return nil, err
	}
	defer idp.Close()
	tokens, err := signWorkloadTokens(idp, o.workloadTokens, time.Now())
	if err != nil {
		return nil, err
	}
	fmt.Printf("\nWorkload identity (a CI job's JWT as the password: oidc backend after htpasswd in the chain, RS256, issuer keys cached),\n")
	fmt.Printf("all-in-one, %d tokens shared out, 1 scope; target >= 3,000 tokens/s\n", len(tokens))
	var profiles []cpuProfile
	for _, cold := range []bool{false, true} {
		sc := scenario{scopes: 1, cold: cold, oidcIssuer: idp.URL}
		name := "all-in-one workload JWT, login cache"
		prof := ""
		if cold {
			name = "all-in-one workload JWT, no cache: verify each"
			if o.profile {
				prof = filepath.Join(dir, "cpu-workload.pprof")
				name += " (CPU-profiled)"
				keep := ""
				if o.profileOut != "" {
					keep = strings.TrimSuffix(o.profileOut, ".pprof") + "-workload.pprof"
				}
				profiles = append(profiles, cpuProfile{"the all-in-one workload JWT run, login cache off", prof, keep})
			}
		}
		res, err := withServer(bin, dir, sc, prof, func(url string) (result, error) {
			return closedLoop(jwtGrant(url, tokens), o.conc, o.dur)
		})
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		res.print(name)
	}
	return profiles, nil
}

// Workload tokens are GitHub Actions job tokens in shape: the registered claims for the
// bench's service, the repository they come from, and sub "bench" so the default policy
// grants bench/... as it does the Basic user.
const (
	workloadRepo   = "myorg/app"
	workloadMaxAge = 2 * time.Hour
)

// workloadBackend is the authn backend entry trusting issuer, or "" without one.
func workloadBackend(issuer string) string {
	if issuer == "" {
		return ""
	}
	return fmt.Sprintf(`
    - name: ci
      type: oidc
      config:
        issuers:
          - {issuer: %q, audiences: [registry.local], algorithms: [RS256], max_token_age: %s,
             claims: {repository: "myorg/*"}, subject: sub, groups: [repository_owner],
             labels: {project: repository, ref: ref}}`, issuer, workloadMaxAge)
}

// signWorkloadTokens signs n distinct tokens issued at now, valid for an hour (far longer than
// a run). Each has its own jti: equal claims would sign to equal tokens (RS256 is
// deterministic), one entry for the login cache.
func signWorkloadTokens(idp *oidctest.Issuer, n int, now time.Time) ([]string, error) {
	if n < 1 {
		return nil, errors.New("at least one workload token is needed")
	}
	tokens := make([]string, n)
	for i := range tokens {
		c := idp.Claims("registry.local", now, time.Hour)
		c["sub"] = "bench"
		c["repository"] = workloadRepo
		c["repository_owner"] = "myorg"
		c["ref"] = "refs/heads/main"
		c["jti"] = fmt.Sprintf("bench-%d-%d", now.UnixNano(), i)
		tok, err := idp.Sign(c)
		if err != nil {
			return nil, err
		}
		tokens[i] = tok
	}
	return tokens, nil
}

// jwtGrant is `docker login -u ci -p "$JWT"` followed by a pull or push: GET /token with the
// job's token as the Basic password. Request i uses tokens[i%len(tokens)].
func jwtGrant(base string, tokens []string) grant {
	url := tokenURL(base, 1)
	headers := make([]string, len(tokens))
	for i, tok := range tokens {
		headers[i] = "Basic " + base64.StdEncoding.EncodeToString([]byte("ci:"+tok))
	}
	return func(c *http.Client, i int) (time.Duration, error) {
		req, _ := http.NewRequest("GET", url, nil)
		req.Header.Set("Authorization", headers[i%len(headers)])
		return timed(c, req, []byte(`"token"`))
	}
}
