package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis-dev/portcullis/internal/testenv/pgtest"
)

// benchRefresh measures the refresh grant, all-in-one, with the session store in SQLite and
// in a PostgreSQL server started on this machine: closed-loop throughput compared with the
// warm Basic run (basic tokens/s), and latency at a fixed rate on PostgreSQL. The runs
// compared with the Basic one run without the profiler, as it does; with profiling on, one
// more run per store is CPU-profiled, kept apart as the warm group keeps its own.
func benchRefresh(bin, dir string, o options, basic float64) ([]cpuProfile, error) {
	var profiles []cpuProfile
	err := withBenchT(dir, func(bt *benchT) error {
		pg := pgtest.StartServer(bt)
		version, err := pgVersion(pg.NewDatabase(bt))
		if err != nil {
			return err
		}
		fmt.Printf("\nRefresh grant (docker's path after docker login: refresh token, no bcrypt), all-in-one, %d refresh tokens shared out, 1 pull scope;\n", o.refreshTokens)
		fmt.Printf("PostgreSQL %s on this machine (pgtest: fsync off); refresh/basic is tokens/s against the all-in-one warm 1-scope Basic run (%.0f/s)\n", version, basic)
		for _, st := range []struct{ name, dsn string }{{"SQLite", ""}, {"PostgreSQL", pg.NewDatabase(bt)}} {
			sc := scenario{scopes: 1, pgDSN: st.dsn}
			name := fmt.Sprintf("all-in-one refresh, %s sessions", st.name)
			closed := func(prof string) (result, error) {
				return withServerAt(bin, dir, sc, prof, func(s server) (result, error) {
					return refreshRun(s, o.refreshTokens, st.dsn != "", pg, func(send grant) (result, error) {
						return closedLoop(send, o.conc, o.dur)
					})
				})
			}
			res, err := closed("")
			if err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
			ratio := "refresh/basic = -"
			if basic > 0 {
				ratio = fmt.Sprintf("refresh/basic = %.0f%%", 100*res.rate()/basic)
			}
			res.print(name, ratio)
			if !o.profile {
				continue
			}
			prof := filepath.Join(dir, "cpu-refresh-"+strings.ToLower(st.name)+".pprof")
			keep := ""
			if o.profileOut != "" {
				keep = strings.TrimSuffix(o.profileOut, ".pprof") + "-refresh-" + strings.ToLower(st.name) + ".pprof"
			}
			profiles = append(profiles, cpuProfile{"the all-in-one refresh-grant run, " + st.name + " sessions", prof, keep})
			if res, err = closed(prof); err != nil {
				return fmt.Errorf("%s (CPU-profiled): %w", name, err)
			}
			res.print(name + " (CPU-profiled)")
		}
		sc := scenario{scopes: 1, pgDSN: pg.NewDatabase(bt)}
		res, err := withServerAt(bin, dir, sc, "", func(s server) (result, error) {
			return refreshRun(s, o.refreshTokens, true, pg, func(send grant) (result, error) {
				return fixedRate(send, o.refreshRate, o.dur)
			})
		})
		if err != nil {
			return fmt.Errorf("refresh @%d/s: %w", o.refreshRate, err)
		}
		res.print(fmt.Sprintf("all-in-one refresh, PostgreSQL sessions @%d/s", o.refreshRate))
		return nil
	})
	return profiles, err
}

// refreshRun logs in n times for refresh tokens, then runs load over them; CPU time is
// counted during the load only (the first login pays bcrypt), and with onPG the PostgreSQL
// server's too.
func refreshRun(s server, n int, onPG bool, pg *pgtest.Server, load func(grant) (result, error)) (result, error) {
	tokens, err := offlineLogins(s.url, n)
	if err != nil {
		return result{}, err
	}
	var db0 time.Duration
	if onPG {
		db0 = serverCPU(pg.PID())
	}
	res, err := s.measure(func() (result, error) { return load(refreshGrant(s.url, tokens)) })
	if onPG {
		res.peer, res.peerCPU = "PostgreSQL", serverCPU(pg.PID())-db0
	}
	return res, err
}

// refreshGrant is what a docker client sends once logged in: POST /token with the identity
// token (a refresh token) and no password. Request i uses tokens[i%len(tokens)], each token
// its own repository.
func refreshGrant(base string, tokens []string) grant {
	forms := make([]string, len(tokens))
	for i, tok := range tokens {
		forms[i] = refreshForm(tok, fmt.Sprintf("repository:bench/app%d:pull", i))
	}
	return func(c *http.Client, i int) (time.Duration, error) {
		req, _ := http.NewRequest("POST", base+"/token", strings.NewReader(forms[i%len(forms)]))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		return timed(c, req, []byte(`"access_token"`))
	}
}

// refreshForm is the docker daemon's refresh request (distribution's registry/client/auth).
func refreshForm(token, scope string) string {
	return url.Values{"grant_type": {"refresh_token"}, "refresh_token": {token}, "client_id": {"docker"},
		"service": {"registry.local"}, "scope": {scope}}.Encode()
}

// offlineLogins is `docker login` n times over: GET /token?offline_token=true with the
// password, each answered with a refresh token of its own (a session row of its own).
func offlineLogins(base string, n int) ([]string, error) {
	c := newClient(1)
	tokens := make([]string, 0, n)
	for range n {
		req, _ := http.NewRequest("GET", base+"/token?service=registry.local&offline_token=true&client_id=bench", nil)
		req.Header.Set("Authorization", auth)
		resp, err := c.Do(req)
		if err != nil {
			return nil, err
		}
		var body struct {
			RefreshToken string `json:"refresh_token"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		switch {
		case resp.StatusCode != 200:
			return nil, fmt.Errorf("offline login: status %d", resp.StatusCode)
		case err != nil:
			return nil, fmt.Errorf("offline login: %w", err)
		case body.RefreshToken == "":
			return nil, errors.New("offline login: no refresh_token in the answer (sessions disabled?)")
		}
		tokens = append(tokens, body.RefreshToken)
	}
	return tokens, nil
}

func pgVersion(dsn string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return "", err
	}
	defer c.Close(ctx)
	var v string
	err = c.QueryRow(ctx, "SHOW server_version").Scan(&v)
	return v, err
}
