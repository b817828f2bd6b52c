package app_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"

	dto "github.com/prometheus/client_model/go"

	"github.com/portcullis-dev/portcullis/internal/testutil"
)

func TestBackendListsValidated(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ addr, want string }{
		{"127.0.0.1:7003,127.0.0.1:7013", ""},
		{"dns:///localhost:7003", ""},
		{"127.0.0.1:7003,10.0.0.9:7003", "gateway.backends.signer: 10.0.0.9:7003 is not a loopback address"},
		{"127.0.0.1:7003,signer", `gateway.backends.signer: "signer" is not host:port`},
	} {
		cfg, err := app.DevConfig(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		cfg.Gateway.Backends.Signer = tc.addr
		err = cfg.Validate()
		if (tc.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: %v, want %q", tc.addr, err, tc.want)
		}
	}
}

// TestSignerReplicas: the gateway balances over two signer replicas given as a list, and when
// one is stopped under load (it drains: NOT_SERVING, then finishes its calls) no token request
// fails.
func TestSignerReplicas(t *testing.T) {
	t.Parallel()
	cfg, err := app.DevConfig(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Gateway.Listen = "127.0.0.1:0"
	cfg.Authn.Listen, cfg.Authz.Listen = apptest.FreeAddr(t), apptest.FreeAddr(t)
	s1, s2 := apptest.FreeAddr(t), apptest.FreeAddr(t)
	cfg.Gateway.Backends.Authn, cfg.Gateway.Backends.Authz, cfg.Gateway.Backends.Signer = cfg.Authn.Listen, cfg.Authz.Listen, s1+","+s2
	apptest.Start(t, cfg, "authn")
	apptest.Start(t, cfg, "authz")
	c1, c2 := *cfg, *cfg
	c1.Signer.Listen, c2.Signer.Listen = s1, s2
	sig1 := app.New(&c1, slog.New(slog.DiscardHandler))
	ctx1, stop1 := context.WithCancel(context.Background())
	done1 := make(chan error, 1)
	go func() { done1 <- sig1.Run(ctx1, "signer") }()
	t.Cleanup(func() { stop1(); <-done1 })
	<-sig1.Ready
	sig2 := apptest.Start(t, &c2, "signer")
	gw := apptest.Start(t, cfg, "gateway")

	var ok, failed atomic.Int64
	var mu sync.Mutex
	var failures []string
	load, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for load.Err() == nil {
				req, _ := http.NewRequest("GET", "http://"+gw.GatewayAddr+"/token?service=registry.local&scope=repository:alice/app:pull", nil)
				req.SetBasicAuth("alice", "alice")
				resp, err := http.DefaultClient.Do(req)
				if err == nil && resp.StatusCode == 200 {
					ok.Add(1)
				} else {
					failed.Add(1)
					mu.Lock()
					if err != nil {
						failures = append(failures, err.Error())
					} else {
						failures = append(failures, resp.Status)
					}
					mu.Unlock()
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		}()
	}
	testutil.Eventually(t, 15*time.Second, "both replicas to sign", func() bool { return signs(t, sig1) > 10 && signs(t, sig2) > 10 })
	stop1() // replica 1 drains and exits while the load goes on
	if err := <-done1; err != nil {
		t.Fatalf("replica 1: %v", err)
	}
	done1 <- nil // for the cleanup
	before := ok.Load()
	testutil.Eventually(t, 15*time.Second, "tokens after replica 1 stopped", func() bool { return ok.Load() > before+200 })
	stopLoad()
	wg.Wait()
	if n := failed.Load(); n != 0 {
		t.Fatalf("%d of %d token requests failed while a signer replica stopped: %v", n, n+ok.Load(), failures[:min(len(failures), 5)])
	}
}

// signs is how many SignToken calls the app's gRPC server handled.
func signs(t *testing.T, a *app.App) float64 {
	t.Helper()
	mfs, err := a.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	n := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "portcullis_grpc_server_handled_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if hasLabel(m, "method", "SignToken") {
				n += m.GetCounter().GetValue()
			}
		}
	}
	return n
}

func hasLabel(m *dto.Metric, name, value string) bool {
	for _, l := range m.GetLabel() {
		if l.GetName() == name && l.GetValue() == value {
			return true
		}
	}
	return false
}
