//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path/filepath"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
)

// TestSplitMode_Registry3 starts Portcullis as four processes from one config file, with
// mutual TLS between them —
// -target=authn, authz and signer, each serving gRPC on its own port, and -target=gateway
// dialing them — in front of distribution registry 3.1.2. skopeo pushes and pulls as alice
// and is refused on bob/…; then the signer process is killed: /readyz turns 503 naming
// the signer and /token answers 503 with Retry-After; a restarted signer brings both back.
func TestSplitMode_Registry3(t *testing.T) {
	t.Parallel()
	pc := startSplit(t, portcullisConfig{})
	reg := startRegistry(t, registry3, pc)

	t.Run("Skopeo", func(t *testing.T) {
		skopeoPushPull(t, newClients(t), reg, "split")
	})

	// The services speak mutual TLS (internal_tls): a plaintext client reaches nothing,
	// in particular not authn, where passwords go.
	t.Run("PlaintextRefused", func(t *testing.T) {
		cc, err := grpc.NewClient(pc.GRPC["authn"], grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer cc.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := authnv1.NewAuthnServiceClient(cc).Authenticate(ctx, &authnv1.AuthenticateRequest{Username: "alice", Password: "alice"}); err == nil {
			t.Fatal("authn answered a plaintext client")
		}
	})

	t.Run("SignerDown", func(t *testing.T) {
		if got := readyz(t, pc); !got.Ready || len(got.Services) != 3 {
			t.Fatalf("/readyz before the kill = %+v, want ready with 3 services", got)
		}
		tokenQuery := url.Values{"service": {service}, "scope": {"repository:alice/split:pull"}}

		signer := pc.Procs["signer"]
		signer.kill(t)
		waitUntil(t, "/readyz to answer 503 after the signer was killed", pc.allProcsBut("signer"),
			httpStatus(pc.URL+"/readyz", http.StatusServiceUnavailable))
		got := readyz(t, pc)
		want := map[string]string{"authn": "serving", "authz": "serving", "signer": "not serving"}
		if got.Ready || fmt.Sprint(got.Services) != fmt.Sprint(want) {
			t.Fatalf("/readyz with the signer down = %+v, want not ready with %v", got, want)
		}

		for _, user := range []string{"alice", ""} {
			a := getToken(t, pc, user, user, tokenQuery)
			if a.status != http.StatusServiceUnavailable {
				t.Fatalf("GET /token as %q with the signer down: status %d, want 503\n%s", user, a.status, a.body)
			}
			if ra := a.header.Get("Retry-After"); ra == "" {
				t.Fatalf("GET /token with the signer down: no Retry-After header")
			}
			if code, _ := a.errorBody(t); code != "temporarily_unavailable" {
				t.Fatalf("GET /token with the signer down: error %q, want temporarily_unavailable", code)
			}
		}
		// A client sees the outage as a failed push, not as a success.
		img := writeOCILayout(t, filepath.Join(t.TempDir(), "layout"), "latest", "pushed while the signer is down\n")
		out, err := newClients(t).run(t, "", "skopeo", skopeoCopyTo("oci:"+img.Dir+":latest",
			"docker://"+reg.Host+"/alice/split:down", "alice:alice")...)
		if err == nil {
			t.Fatalf("skopeo push with the signer down succeeded:\n%s", out)
		}

		// The same key file comes back with the same kid, so the registry trusts it again.
		pc.Procs["signer"] = startProc(t, "portcullis-signer-restarted", portcullisBin(t),
			"-config", pc.Config, "-target=signer")
		pc.waitReady(t)
		tok := mustToken(t, pc, "alice", "alice", "repository:alice/split:pull")
		if tok.claims.Access == nil || len(*tok.claims.Access) != 1 {
			t.Fatalf("token after the signer restarted: access %v, want alice/split pull", tok.claims.Access)
		}
		c := newClients(t)
		if got := c.skopeoDigest(t, reg.Host+"/alice/split:v1", "alice:alice"); got == "" {
			t.Fatal("skopeo inspect after the signer restarted reported no digest")
		}
	})
}

type readiness struct {
	Ready    bool              `json:"ready"`
	Services map[string]string `json:"services"`
}

func readyz(t testing.TB, pc *portcullis) readiness {
	t.Helper()
	a := do(t, mustRequest(t, http.MethodGet, pc.URL+"/readyz"))
	var r readiness
	if err := json.Unmarshal(a.body, &r); err != nil {
		t.Fatalf("/readyz (status %d) is not JSON: %v\n%s", a.status, err, a.body)
	}
	return r
}

func (pc *portcullis) allProcsBut(name string) []*proc {
	var ps []*proc
	for n, p := range pc.Procs {
		if n != name {
			ps = append(ps, p)
		}
	}
	return ps
}
