package app_test

import (
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"
)

// -target=all reaches its services in-process; over bufconn it goes through real gRPC, the
// wire path this test keeps covered. Both give a token, are ready, and count the same gRPC
// calls under the same labels.
func TestAllInOneInprocAndOverBufconn(t *testing.T) {
	t.Parallel()
	handled := map[string][]string{}
	for _, mode := range []string{"in-process", "bufconn"} {
		cfg, err := app.DevConfig(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		cfg.Gateway.Listen = "127.0.0.1:0"
		a := app.New(cfg, slog.New(slog.DiscardHandler))
		if mode == "bufconn" {
			a.OverBufconn()
		}
		apptest.StartApp(t, a, "all")
		claims := apptest.TokenAndVerify(t, a.GatewayAddr)
		if claims["sub"] != "alice" {
			t.Errorf("%s: claims %v", mode, claims)
		}
		if code, body := apptest.Get(t, http.DefaultClient, "http://"+a.GatewayAddr+"/readyz", nil); code != http.StatusOK {
			t.Errorf("%s: readyz %d %s", mode, code, body)
		}
		mfs, err := a.Registry().Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() != "portcullis_grpc_server_handled_total" {
				continue
			}
			for _, m := range mf.GetMetric() {
				var labels []string
				for _, l := range m.GetLabel() {
					labels = append(labels, l.GetName()+"="+l.GetValue())
				}
				handled[mode] = append(handled[mode], fmt.Sprintf("{%s} %v", strings.Join(labels, ","), m.GetCounter().GetValue()))
			}
		}
		slices.Sort(handled[mode])
	}
	if len(handled["bufconn"]) == 0 || !slices.Equal(handled["in-process"], handled["bufconn"]) {
		t.Errorf("gRPC calls counted:\n in-process: %v\n bufconn:    %v", handled["in-process"], handled["bufconn"])
	}
}
