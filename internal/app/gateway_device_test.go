package app_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/testenv/apptest"
)

// The device flow (portcullis login), back-channel logout and the account pages are on with
// sessions: the device flow's answer is a session. With sessions off, discovery does not name
// the device endpoint and the endpoints and pages answer 404.
func TestGatewayDeviceFlowFollowsSessions(t *testing.T) {
	t.Parallel()
	for _, on := range []bool{true, false} {
		cfg, err := app.DevConfig(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		cfg.Gateway.Listen = "127.0.0.1:0"
		cfg.Sessions.Enabled = &on
		a := apptest.Start(t, cfg, "all")
		base := "http://" + a.GatewayAddr
		code, body := apptest.Get(t, http.DefaultClient, base+"/.well-known/oauth-authorization-server", nil)
		if code != 200 || strings.Contains(body, `"device_authorization_endpoint":"`+a.PublicURL+`/device_authorization"`) != on ||
			strings.Contains(body, "grant-type:device_code") != on {
			t.Fatalf("sessions %v: discovery %d %s", on, code, body)
		}
		client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		for _, path := range []string{"/device", "/signin", "/static/style.css"} {
			if code, body := apptest.Get(t, client, base+path, nil); (code != 404) != on {
				t.Fatalf("sessions %v: GET %s = %d %.200s", on, path, code, body)
			}
		}
		if on {
			continue
		}
		for _, path := range []string{"/device_authorization", "/backchannel-logout"} {
			resp, err := http.Post(base+path, "application/x-www-form-urlencoded", strings.NewReader("client_id=x"))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 404 {
				t.Fatalf("sessions off: POST %s = %d, want 404", path, resp.StatusCode)
			}
		}
	}
}
