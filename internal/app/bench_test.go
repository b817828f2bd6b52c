package app_test

import (
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path/filepath"
	"runtime/metrics"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"
	"github.com/portcullis-dev/portcullis/internal/testutil"
)

// BenchmarkAllInOneToken is one warm Basic token (one scope) through the whole all-in-one
// process, default config (decision logs on, written to a file rather than standard output),
// over one kept-alive HTTP connection. Its allocations per token and, under callgrind, its
// instructions per token do not depend on how busy the machine is, unlike tokens/s.
func BenchmarkAllInOneToken(b *testing.B) {
	a := apptest.StartApp(b, app.New(benchConfig(b), slog.New(slog.DiscardHandler)), "all")
	benchTokens(b, a.GatewayAddr, true)
}

// BenchmarkAllInOneRefresh is BenchmarkAllInOneToken's token by the refresh grant (docker's
// path after docker login: POST /token with the session's refresh token, the session read
// from the default SQLite store), to compare with the Basic path call by call.
func BenchmarkAllInOneRefresh(b *testing.B) {
	a := apptest.StartApp(b, app.New(benchConfig(b), slog.New(slog.DiscardHandler)), "all")
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
	b.Cleanup(c.CloseIdleConnections)
	base := "http://" + a.GatewayAddr + "/token"
	refreshToken := apptest.OfflineLogin(b, a.GatewayAddr, "alice", "alice")
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refreshToken}, "client_id": {"bench"},
		"service": {"registry.local"}, "scope": {"repository:alice/app:pull"}}.Encode()
	token := func() {
		resp, err := c.Post(base, "application/x-www-form-urlencoded", strings.NewReader(form))
		drain(b, "refresh", resp, err)
	}
	for range 20 {
		token()
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		token()
	}
}

// BenchmarkNewConnAllInOne is BenchmarkAllInOneToken with a new HTTP connection per token, as
// docker clients (one process per pull or login) mostly come: every request runs on a fresh
// connection goroutine, whose stack starts small.
func BenchmarkNewConnAllInOne(b *testing.B) {
	a := apptest.StartApp(b, app.New(benchConfig(b), slog.New(slog.DiscardHandler)), "all")
	benchTokens(b, a.GatewayAddr, false)
}

// BenchmarkSplitToken is BenchmarkAllInOneToken through the split deployment's four
// processes, here four Apps in this process talking gRPC over loopback TCP: the figures are
// their sum.
func BenchmarkSplitToken(b *testing.B) {
	cfg := benchConfig(b)
	cfg.Authn.Listen, cfg.Authz.Listen, cfg.Signer.Listen = apptest.FreeAddr(b), apptest.FreeAddr(b), apptest.FreeAddr(b)
	cfg.Gateway.Backends.Authn, cfg.Gateway.Backends.Authz, cfg.Gateway.Backends.Signer = cfg.Authn.Listen, cfg.Authz.Listen, cfg.Signer.Listen
	for _, target := range []string{"authn", "authz", "signer"} {
		apptest.StartApp(b, app.New(cfg, slog.New(slog.DiscardHandler)), target)
	}
	gw := apptest.StartApp(b, app.New(cfg, slog.New(slog.DiscardHandler)), "gateway")
	benchTokens(b, gw.GatewayAddr, true)
}

func benchConfig(b *testing.B) *app.Config {
	b.Helper()
	dir := b.TempDir()
	cfg, err := app.DevConfig(dir)
	if err != nil {
		b.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Authz.OPA.DecisionLogs.File = filepath.Join(dir, "decisions.log")
	// Under callgrind a run lasts minutes: without this the 30 s credential cache expires and
	// a bcrypt verification lands in the figures, more of them in a longer run.
	cfg.Authn.Cache.TTL = config.Duration(time.Hour)
	return cfg
}

// benchTokens asks the gateway at addr for b.N tokens, one at a time, after a warm-up (the
// credential cache, the connection, the stacks).
func benchTokens(b *testing.B, addr string, keepAlive bool) {
	b.Helper()
	c := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1, DisableKeepAlives: !keepAlive}}
	b.Cleanup(c.CloseIdleConnections)
	req, err := http.NewRequest(http.MethodGet, "http://"+addr+"/token?service=registry.local&scope=repository:alice/app:pull", nil)
	if err != nil {
		b.Fatal(err)
	}
	req.SetBasicAuth("alice", "alice")
	token := func() {
		resp, err := c.Do(req)
		drain(b, "token", resp, err)
	}
	// Split, the gateway is ready before its connections to the services are (much before,
	// under callgrind): wait for the first token.
	testutil.WaitFor(b, 2*time.Minute, 50*time.Millisecond, "the first token", func() error {
		resp, err := c.Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("token: %d", resp.StatusCode)
		}
		return nil
	})
	for range 20 {
		token()
	}
	b.ReportAllocs()
	created := []metrics.Sample{{Name: "/sched/goroutines-created:goroutines"}}
	metrics.Read(created)
	before := created[0].Value.Uint64()
	b.ResetTimer()
	for range b.N {
		token()
	}
	b.StopTimer()
	// Each goroutine starts on a small stack that a deep handler grows by copying.
	metrics.Read(created)
	b.ReportMetric(float64(created[0].Value.Uint64()-before)/float64(b.N), "goroutines/op")
}

// drain reads and closes an answer, and fails b unless it is a 200.
func drain(b *testing.B, what string, resp *http.Response, err error) {
	b.Helper()
	if err != nil {
		b.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b.Fatalf("%s: %d", what, resp.StatusCode)
	}
}
