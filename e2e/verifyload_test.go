//go:build e2e

package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/pkg/regclient"
	"github.com/portcullis-dev/portcullis/pkg/verify"
)

// verifyLoad is a client loop that gets tokens from a running Portcullis and verifies each
// with pkg/verify, as an internal service would, with the library's default cache and
// refresh settings: it counts what failed to come or to verify, and which kids it saw.
type verifyLoad struct {
	cancel context.CancelFunc
	done   chan struct{}

	mu       sync.Mutex
	verified int
	failures []string
	kids     map[string]int
}

// With roots, tokens carrying an x5c chain are verified by the chain (x5c mode).
func startVerifyLoad(t *testing.T, pc *portcullis, roots *x509.CertPool) *verifyLoad {
	t.Helper()
	v, err := verify.New(verify.Options{URL: pc.URL, Audience: service, HTTPClient: httpClient, Roots: roots})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	l := &verifyLoad{cancel: cancel, done: make(chan struct{}), kids: map[string]int{}}
	query := url.Values{"service": {service}, "scope": {"repository:alice/app:pull"}}.Encode()
	go func() {
		defer close(l.done)
		for ctx.Err() == nil {
			raw, err := fetchTokenQuiet(ctx, pc.URL+"/token?"+query)
			if err == nil {
				var c *verify.Claims
				if c, err = v.Verify(ctx, raw); err == nil && !c.Allows("repository", "alice/app", "pull") {
					err = fmt.Errorf("verified token does not allow the pull it was issued for: %+v", c.Access)
				}
			}
			if ctx.Err() != nil {
				return
			}
			l.mu.Lock()
			if err != nil {
				l.failures = append(l.failures, time.Now().Format("15:04:05.000")+" "+err.Error())
			} else {
				l.verified++
				if info, derr := regclient.Decode(raw); derr == nil {
					l.kids[info.KeyID]++
				}
			}
			l.mu.Unlock()
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return l
}

func fetchTokenQuiet(ctx context.Context, target string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		return "", err
	}
	req.SetBasicAuth("alice", "alice")
	resp, err := httpClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET /token: %d %s", resp.StatusCode, body)
	}
	var tr struct {
		Token string `json:"token"`
	}
	if err := json.Unmarshal(body, &tr); err != nil {
		return "", err
	}
	return tr.Token, nil
}

// stop ends the loop and fails the test if any token failed to come or to verify, or if
// fewer than wantKids key ids signed them.
func (l *verifyLoad) stop(t *testing.T, wantKids int) {
	t.Helper()
	l.cancel()
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	t.Logf("pkg/verify under load: %d tokens verified, %d failures, kids %v", l.verified, len(l.failures), l.kids)
	for i, f := range l.failures {
		if i == 10 {
			t.Errorf("… and %d more", len(l.failures)-10)
			break
		}
		t.Errorf("verification failure: %s", f)
	}
	if len(l.kids) < wantKids {
		t.Errorf("tokens were signed by %d key(s), want %d: the load did not span the rotations", len(l.kids), wantKids)
	}
}
