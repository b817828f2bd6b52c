//go:build e2e

package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testutil"
)

const (
	// loadWorkers request tokens concurrently during a fault, each for at most loadLimit.
	loadWorkers = 4
	loadLimit   = 30 * time.Second
	// hangLimit is what counts as a hung request: the signer bounds each Vault call by
	// request_timeout (800ms) and the gateway each backend call by backend_timeout (2s).
	// The slowest 503s are the requests Vault holds while it seals itself (Seal, or SIGTERM):
	// a few hundred milliseconds here, then every 503 takes a few milliseconds.
	hangLimit = 3 * time.Second
	// outageWindow is how long the load runs against the broken Vault.
	outageWindow = 2 * time.Second
)

// TestVaultFaults_GatewayAnswers503AndRecovers runs Portcullis all-in-one with its signing
// key in a real Vault and a bounded token load, then breaks Vault twice — sealed, then
// stopped. Token requests turn into fast 503s with Retry-After (none hangs), /readyz turns
// 503 naming the signer, and after Unseal / Restart tokens are issued and /readyz is 200 again
// without touching Portcullis.
func TestVaultFaults_GatewayAnswers503AndRecovers(t *testing.T) {
	t.Parallel()
	v := startVaultSigningKeys(t, false)
	vp := startVaultAllInOne(t, v, vaultPortcullisConfig{})
	before := vp.tokenKID(t)

	faults := []struct {
		name           string
		break_, repair func(testutil.T)
	}{
		{"Sealed", v.Seal, v.Unseal},
		{"Stopped", v.Stop, v.Restart},
	}
	for _, f := range faults {
		t.Run(f.name, func(t *testing.T) {
			load := startTokenLoad(vp.portcullis)
			defer load.stop()
			waitUntil(t, "the load to get a token", vp.allProcs(), load.seen(http.StatusOK, time.Time{}))

			broken := time.Now()
			f.break_(t)
			waitUntil(t, "a 503 after Vault was "+f.name, vp.allProcs(), load.seen(http.StatusServiceUnavailable, broken))
			first503 := load.first(http.StatusServiceUnavailable, broken).Sub(broken)
			time.Sleep(outageWindow)

			// Spoken to directly: 503, Retry-After: 1, the OAuth2 error, nothing internal.
			a := getToken(t, vp.portcullis, "alice", "alice", url.Values{"service": {service}, "scope": {"repository:alice/app:pull"}})
			if a.status != http.StatusServiceUnavailable || a.header.Get("Retry-After") != "1" {
				t.Fatalf("GET /token with Vault %s: status %d, Retry-After %q; want 503 and 1\n%s",
					f.name, a.status, a.header.Get("Retry-After"), a.body)
			}
			if code, desc := a.errorBody(t); code != "temporarily_unavailable" || mentionsAny(desc, "vault", "transit", "sealed") {
				t.Fatalf("GET /token with Vault %s: error %q %q, want temporarily_unavailable without backend detail", f.name, code, desc)
			}
			checkReadyzAnswers(t, vp)
			// Readiness follows the signer's ability to sign.
			waitUntil(t, "/readyz 503 naming the signer while Vault is "+f.name, vp.allProcs(), func() error {
				if r := readyz(t, vp.portcullis); r.Ready || r.Services["signer"] != "not serving" {
					return fmt.Errorf("/readyz = %+v", r)
				}
				return nil
			})

			repaired := time.Now()
			f.repair(t)
			waitUntil(t, "tokens again after Vault came back", vp.allProcs(), func() error {
				a := getToken(t, vp.portcullis, "alice", "alice", url.Values{"service": {service}, "scope": {"repository:alice/app:pull"}})
				if a.status != http.StatusOK {
					return fmt.Errorf("GET /token: status %d", a.status)
				}
				return nil
			})
			recovered := time.Since(repaired)
			waitUntil(t, "the load to get a token again", vp.allProcs(), load.seen(http.StatusOK, repaired))
			waitUntil(t, "/readyz 200 after Vault came back", vp.allProcs(), httpStatus(vp.URL+"/readyz", http.StatusOK))

			s := load.stop()
			t.Logf("Vault %s: %d requests (%d × 200, %d × 503, %d other); first 503 %s after the fault; "+
				"503 latency max %s (request started %s after the fault), mean %s; slowest request %s; tokens again %s after the repair",
				f.name, s.total, s.byStatus[200], s.byStatus[503], s.total-s.byStatus[200]-s.byStatus[503],
				first503.Round(time.Millisecond), s.max503.Round(time.Millisecond), s.max503At.Sub(broken).Round(time.Millisecond),
				s.mean503().Round(time.Millisecond),
				s.maxAll.Round(time.Millisecond), recovered.Round(time.Millisecond))
			for _, p := range s.problems {
				t.Error(p)
			}
			if s.byStatus[503] == 0 {
				t.Errorf("the load saw no 503 while Vault was %s", f.name)
			}
		})
	}
	// Vault came back with the same key: the same version signs.
	if after := vp.tokenKID(t); after != before {
		t.Fatalf("after the faults tokens carry kid %s, want the unchanged %s", after, before)
	}
}

// mentionsAny answers whether s names any of words, ignoring case.
func mentionsAny(s string, words ...string) bool {
	s = strings.ToLower(s)
	for _, w := range words {
		if strings.Contains(s, w) {
			return true
		}
	}
	return false
}

// checkReadyzAnswers checks /readyz answers (200 or 503, with a JSON body) and the
// process is still running.
func checkReadyzAnswers(t testing.TB, vp *vaultPortcullis) {
	t.Helper()
	a := do(t, mustRequest(t, http.MethodGet, vp.URL+"/readyz"))
	var r readiness
	if (a.status != http.StatusOK && a.status != http.StatusServiceUnavailable) || json.Unmarshal(a.body, &r) != nil {
		t.Fatalf("/readyz: status %d, want 200 or 503 with a JSON body\n%s", a.status, a.body)
	}
	t.Logf("/readyz: %d %s", a.status, a.body)
	if p := vp.Procs["all"]; p.exited() {
		t.Fatalf("portcullis exited: %v", p.err)
	}
}

// ---------------------------------------------------------------------------------------
// A bounded token load

type loadResult struct {
	start      time.Time
	latency    time.Duration
	status     int // 0: no answer
	retryAfter string
	code       string
	err        error
}

// tokenLoad is loadWorkers goroutines requesting tokens as alice until stopped or loadLimit.
type tokenLoad struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
	sum    loadSummary

	mu      sync.Mutex
	results []loadResult
}

type loadSummary struct {
	total    int
	byStatus map[int]int
	max503   time.Duration
	max503At time.Time // when the slowest 503's request started
	sum503   time.Duration
	maxAll   time.Duration
	problems []string
}

func (s loadSummary) mean503() time.Duration {
	if s.byStatus[503] == 0 {
		return 0
	}
	return s.sum503 / time.Duration(s.byStatus[503])
}

func startTokenLoad(pc *portcullis) *tokenLoad {
	ctx, cancel := context.WithTimeout(context.Background(), loadLimit)
	l := &tokenLoad{cancel: cancel}
	// Its own client: a hung request shows up as a long latency, up to 10s, not as the
	// suite's 5s client timeout.
	client := &http.Client{Timeout: 10 * time.Second}
	target := pc.URL + "/token?" + url.Values{"service": {service}, "scope": {"repository:alice/load:pull"}}.Encode()
	for range loadWorkers {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for ctx.Err() == nil {
				l.record(tokenRequest(ctx, client, target))
				select {
				case <-ctx.Done():
				case <-time.After(20 * time.Millisecond):
				}
			}
		}()
	}
	return l
}

func tokenRequest(ctx context.Context, client *http.Client, target string) loadResult {
	r := loadResult{start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		r.err = err
		return r
	}
	req.SetBasicAuth("alice", "alice")
	resp, err := client.Do(req)
	if err != nil {
		r.latency, r.err = time.Since(r.start), err
		if ctx.Err() != nil { // stopped while in flight: not the server's fault
			r.err = context.Canceled
		}
		return r
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	_ = resp.Body.Close()
	r.latency, r.status, r.retryAfter = time.Since(r.start), resp.StatusCode, resp.Header.Get("Retry-After")
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(body, &e) == nil {
		r.code = e.Error
	}
	return r
}

func (l *tokenLoad) record(r loadResult) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.results = append(l.results, r)
}

// first is when the earliest request started after since that got status; zero if none.
func (l *tokenLoad) first(status int, since time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first time.Time
	for _, r := range l.results {
		if r.status == status && !r.start.Before(since) && (first.IsZero() || r.start.Before(first)) {
			first = r.start
		}
	}
	return first
}

// seen is a waitUntil condition: some request started after since got status.
func (l *tokenLoad) seen(status int, since time.Time) func() error {
	return func() error {
		if l.first(status, since).IsZero() {
			return fmt.Errorf("no %d answer to a request started after %s yet", status, since.Format("15:04:05.000"))
		}
		return nil
	}
}

// stop ends the load (once) and summarises it: every answer is a 200 or a 503 with
// Retry-After: 1 and temporarily_unavailable, and none took hangLimit or more.
func (l *tokenLoad) stop() loadSummary {
	l.once.Do(func() {
		l.cancel()
		l.wg.Wait()
		s := loadSummary{byStatus: map[int]int{}}
		for _, r := range l.results {
			if r.err == context.Canceled {
				continue
			}
			s.total++
			s.byStatus[r.status]++
			s.maxAll = max(s.maxAll, r.latency)
			when := r.start.Format("15:04:05.000")
			switch {
			case r.err != nil:
				s.problems = append(s.problems, fmt.Sprintf("request at %s got no answer after %s: %v", when, r.latency, r.err))
			case r.latency >= hangLimit:
				s.problems = append(s.problems, fmt.Sprintf("request at %s took %s (status %d): a hang", when, r.latency, r.status))
			case r.status == http.StatusServiceUnavailable:
				if r.latency > s.max503 {
					s.max503, s.max503At = r.latency, r.start
				}
				s.sum503 += r.latency
				if r.retryAfter != "1" || r.code != "temporarily_unavailable" {
					s.problems = append(s.problems, fmt.Sprintf("503 at %s: Retry-After %q, error %q; want 1 and temporarily_unavailable",
						when, r.retryAfter, r.code))
				}
			case r.status != http.StatusOK:
				s.problems = append(s.problems, fmt.Sprintf("request at %s: status %d (error %q), want 200 or 503", when, r.status, r.code))
			}
		}
		if len(s.problems) > 10 {
			s.problems = append(s.problems[:10], fmt.Sprintf("… and %d more", len(s.problems)-10))
		}
		l.sum = s
	})
	return l.sum
}
