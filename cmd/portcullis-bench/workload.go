package main

import (
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/testenv/oidctest"
	"github.com/portcullis-dev/portcullis/services/authn/backend/oidc"
)

// benchWorkload measures workload identity logins all-in-one: GET /token with a CI job's JWT
// as the password, verified by an oidc backend (after htpasswd in the chain, which never sees
// a JWT) trusting an issuer this process runs (internal/testenv/oidctest, RS256). With the login cache on,
// each of the n tokens is verified once and then answered from the cache; with it off, every
// request checks a signature and the claims: the raw cost of a workload login. The issuer's
// keys are fetched by the first request and cached, as in production. The cache-off run is
// CPU-profiled when profiling is on. Then the same JWTs exchanged for tokens (RFC 8693, POST
// /token, login cache on), compared with the warm Basic run (warmBasic tokens/s).
func benchWorkload(bin, dir string, o options, warmBasic float64) ([]cpuProfile, error) {
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
	sc := scenario{scopes: 1, oidcIssuer: idp.URL}
	const name = "all-in-one token exchange (RFC 8693), login cache"
	res, err := withServer(bin, dir, sc, "", func(url string) (result, error) {
		return closedLoop(exchangeGrant(url, tokens), o.conc, o.dur)
	})
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	res.print(name, ratio(res.rate(), warmBasic, "of warm Basic"))
	return profiles, nil
}

// Workload tokens are GitHub Actions job tokens in shape: the registered claims for the
// bench's service, the repository they come from, and sub "bench" so the default policy
// grants bench/... as it does the Basic user.
const (
	workloadRepo   = "myorg/app"
	workloadMaxAge = 2 * time.Hour
)

// workloadBackend is the config of the oidc backend trusting issuer's CI job tokens.
func workloadBackend(issuer string) *oidc.Config {
	return &oidc.Config{Issuers: []oidc.Issuer{{
		Issuer:      issuer,
		Audiences:   []string{"registry.local"},
		Algorithms:  []string{"RS256"},
		MaxTokenAge: config.Duration(workloadMaxAge),
		Claims:      map[string]oidc.Strings{"repository": {"myorg/*"}},
		Subject:     "sub",
		Groups:      oidc.Strings{"repository_owner"},
		Labels:      map[string]string{"project": "repository", "ref": "ref"},
	}}}
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

// exchangeGrant is a CI job getting its registry token in one request, without docker login:
// POST /token with the token exchange grant (RFC 8693) and the job's JWT as subject_token.
// Request i exchanges tokens[i%len(tokens)]; an answer without an access token is an error.
func exchangeGrant(base string, tokens []string) grant {
	forms := make([]string, len(tokens))
	for i, tok := range tokens {
		forms[i] = url.Values{
			"grant_type":         {"urn:ietf:params:oauth:grant-type:token-exchange"},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"},
			"subject_token":      {tok},
			"service":            {"registry.local"},
			"scope":              {"repository:bench/app0:pull,push"},
		}.Encode()
	}
	return func(c *http.Client, i int) (time.Duration, error) {
		req, _ := http.NewRequest("POST", base+"/token", strings.NewReader(forms[i%len(forms)]))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return timed(c, req, []byte(`"access_token"`))
	}
}
