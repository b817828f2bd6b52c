package sessions_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
)

const (
	idleTTL = 24 * time.Hour
	maxTTL  = 72 * time.Hour
	svc     = "registry.example"
)

// counting records the Touch batches and store reads that reach the real store.
type counting struct {
	sessions.Store
	mu      sync.Mutex
	touches [][]sessions.Touch
	reads   int
	touched chan struct{} // gets a value per Touch call, when not nil
	failing bool
}

func (c *counting) Touch(ctx context.Context, ts []sessions.Touch) error {
	c.mu.Lock()
	c.touches = append(c.touches, ts)
	failing := c.failing
	c.mu.Unlock()
	if c.touched != nil {
		c.touched <- struct{}{}
	}
	if failing {
		return errors.New("database down")
	}
	return c.Store.Touch(ctx, ts)
}

func (c *counting) ByTokenHash(ctx context.Context, h [32]byte) (sessions.Session, error) {
	c.mu.Lock()
	c.reads++
	c.mu.Unlock()
	return c.Store.ByTokenHash(ctx, h)
}

func (c *counting) batches() [][]sessions.Touch {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([][]sessions.Touch(nil), c.touches...)
}

type env struct {
	m     *sessions.Manager
	st    *counting
	clock *testutil.Clock
	path  string
}

// newEnv builds a Manager over a real SQLite store whose flush loop never ticks during the test
// (FlushInterval is long), so every write of last use is the test's own Flush or Close.
func newEnv(t *testing.T) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sessions.db")
	raw, err := (&sqlite.Config{Path: path}).Open(context.Background(), sessions.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: &counting{Store: raw}, clock: testutil.NewClock(time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)), path: path}
	e.m = sessions.NewManager(e.st, sessions.Options{IdleTTL: idleTTL, MaxTTL: maxTTL, Now: e.clock.Now, FlushInterval: time.Hour})
	t.Cleanup(func() {
		_ = e.m.Close(context.Background())
		_ = raw.Close(context.Background())
	})
	return e
}

func (e *env) issue(t *testing.T, subject string) (string, sessions.Session) {
	t.Helper()
	tok, s, err := e.m.Issue(context.Background(), subject, "htpasswd", "h1:fp", svc, "docker", "192.0.2.1:1000")
	if err != nil {
		t.Fatal(err)
	}
	return tok, s
}

func (e *env) lookup(tok, service string) (sessions.Session, error) {
	return e.m.Lookup(context.Background(), tok, service, "containerd-client", "192.0.2.9:2000")
}

func TestIssue(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok, s := e.issue(t, "alice")
	body, ok := strings.CutPrefix(tok, "pcr_")
	raw, err := base64.RawURLEncoding.DecodeString(body)
	if !ok || err != nil || len(raw) != 32 {
		t.Fatalf("token %q: want pcr_ + base64url of 32 bytes", tok)
	}
	if s.TokenHash != sha256.Sum256([]byte(tok)) || !strings.HasPrefix(s.ID, "ses_") || strings.Contains(tok, s.ID[4:]) {
		t.Fatalf("session %+v does not match token", s)
	}
	now := e.clock.Now()
	if !s.CreatedAt.Equal(now) || !s.IdleExpiresAt.Equal(now.Add(idleTTL)) || !s.ExpiresAt.Equal(now.Add(maxTTL)) ||
		s.Subject != "alice" || s.Backend != "htpasswd" || s.Service != svc || s.ClientID != "docker" || s.LastRemoteAddr != "192.0.2.1:1000" {
		t.Fatalf("session %+v", s)
	}
	stored, err := e.st.Get(context.Background(), s.ID)
	if err != nil || stored.TokenHash != s.TokenHash {
		t.Fatalf("stored: %+v, %v", stored, err)
	}
	tok2, s2 := e.issue(t, "alice")
	if tok2 == tok || s2.ID == s.ID {
		t.Fatal("two sessions share a token or id")
	}
	// The token itself is nowhere in the database files, only its hash.
	if err := e.m.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(e.path + "*")
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(tok)) || bytes.Contains(b, []byte(body)) {
			t.Errorf("%s holds the raw refresh token", f)
		}
	}
}

func TestLookupRefuses(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok, _ := e.issue(t, "alice")
	other := "pcr_" + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	for _, tc := range []struct{ name, token, service string }{
		{"empty", "", svc},
		{"prefix only", "pcr_", svc},
		{"no prefix", strings.TrimPrefix(tok, "pcr_"), svc},
		{"other prefix", "xyz_" + strings.TrimPrefix(tok, "pcr_"), svc},
		{"truncated", tok[:len(tok)-1], svc},
		{"extended", tok + "A", svc},
		{"not base64url", tok[:len(tok)-1] + "+", svc},
		{"unknown", other, svc},
		{"other service", tok, "other.example"},
		{"empty service", tok, ""},
	} {
		if _, err := e.lookup(tc.token, tc.service); !errors.Is(err, sessions.ErrInvalidToken) {
			t.Errorf("%s: Lookup = %v, want ErrInvalidToken", tc.name, err)
		}
	}
	s, err := e.lookup(tok, svc)
	if err != nil || s.Subject != "alice" || s.LastRemoteAddr != "192.0.2.9:2000" {
		t.Fatalf("Lookup = %+v, %v", s, err)
	}
}

func TestLookupIdleAndAbsoluteExpiry(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		steps []time.Duration // clock advances, a lookup after each
		ok    []bool
	}{
		{"idle within TTL", []time.Duration{idleTTL - time.Second}, []bool{true}},
		{"idle exactly at TTL", []time.Duration{idleTTL}, []bool{false}},
		{"use extends idle", []time.Duration{idleTTL - time.Hour, idleTTL - time.Hour, idleTTL - time.Hour}, []bool{true, true, true}},
		{"idle after a use", []time.Duration{time.Hour, idleTTL}, []bool{true, false}},
		{"absolute expiry despite use", []time.Duration{23 * time.Hour, 23 * time.Hour, 23 * time.Hour, 3*time.Hour - time.Second, time.Second}, []bool{true, true, true, true, false}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			for _, flush := range []bool{false, true} { // pending in memory, and written to the store
				e := newEnv(t)
				tok, _ := e.issue(t, "alice")
				for i, d := range tc.steps {
					e.clock.Add(d)
					_, err := e.lookup(tok, svc)
					if (err == nil) != tc.ok[i] {
						t.Fatalf("flush=%v step %d (+%v): Lookup = %v, want ok=%v", flush, i, d, err, tc.ok[i])
					}
					if err != nil && !errors.Is(err, sessions.ErrInvalidToken) {
						t.Fatalf("step %d: %v, want ErrInvalidToken", i, err)
					}
					if flush {
						if err := e.m.Flush(context.Background()); err != nil {
							t.Fatal(err)
						}
					}
				}
			}
		})
	}
}

// N lookups of one session cost N reads and no write; the flush writes one batch with the last
// use; Close flushes what is left.
func TestTouchCoalescing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	a, sa := e.issue(t, "alice")
	b, sb := e.issue(t, "bob")
	const n = 50
	for i := range n {
		e.clock.Add(time.Second)
		if _, err := e.lookup(a, svc); err != nil {
			t.Fatal(err)
		}
		if i%10 == 0 {
			if _, err := e.lookup(b, svc); err != nil {
				t.Fatal(err)
			}
		}
	}
	if got := e.st.batches(); len(got) != 0 {
		t.Fatalf("%d Touch calls before any flush, want 0 (no write per lookup)", len(got))
	}
	if e.st.reads != n+5 {
		t.Errorf("%d store reads, want %d (every lookup reads the store)", e.st.reads, n+5)
	}
	if err := e.m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := e.st.batches()
	if len(got) != 1 || len(got[0]) != 2 {
		t.Fatalf("Touch batches %v, want one batch of 2", got)
	}
	stored, err := e.st.Get(ctx, sa.ID)
	if err != nil || !stored.LastUsedAt.Equal(e.clock.Now()) || !stored.IdleExpiresAt.Equal(e.clock.Now().Add(idleTTL)) || stored.LastRemoteAddr != "192.0.2.9:2000" {
		t.Fatalf("stored after flush: %+v, %v", stored, err)
	}
	if err := e.m.Flush(ctx); err != nil || len(e.st.batches()) != 1 {
		t.Fatalf("an empty flush wrote: %v, %d batches", err, len(e.st.batches()))
	}

	e.clock.Add(time.Minute)
	if _, err := e.lookup(b, svc); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Close(ctx); err != nil {
		t.Fatal(err)
	}
	if err := e.m.Close(ctx); err != nil { // idempotent
		t.Fatal(err)
	}
	got = e.st.batches()
	if len(got) != 2 || len(got[1]) != 1 || got[1][0].ID != sb.ID {
		t.Fatalf("Close did not flush bob's use: %v", got)
	}
	stored, err = e.st.Get(ctx, sb.ID)
	if err != nil || !stored.LastUsedAt.Equal(e.clock.Now()) {
		t.Fatalf("bob after Close: %+v, %v", stored, err)
	}
}

// A failed flush keeps the uses for the next one.
func TestFlushRetries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	a, sa := e.issue(t, "alice")
	e.clock.Add(time.Hour)
	if _, err := e.lookup(a, svc); err != nil {
		t.Fatal(err)
	}
	e.st.mu.Lock()
	e.st.failing = true
	e.st.mu.Unlock()
	if err := e.m.Flush(ctx); err == nil {
		t.Fatal("flush into a failing store reported success")
	}
	e.st.mu.Lock()
	e.st.failing = false
	e.st.mu.Unlock()
	if err := e.m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	stored, err := e.st.Get(ctx, sa.ID)
	if err != nil || !stored.LastUsedAt.Equal(e.clock.Now()) {
		t.Fatalf("after retry: %+v, %v", stored, err)
	}
}

// A revocation through the store (the admin API, or another replica) is refused at once.
func TestRevokeEffectiveAtOnce(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	a, sa := e.issue(t, "alice")
	b, _ := e.issue(t, "alice")
	for _, tok := range []string{a, b} {
		if _, err := e.lookup(tok, svc); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.m.Store().Revoke(ctx, sa.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := e.lookup(a, svc); !errors.Is(err, sessions.ErrInvalidToken) {
		t.Fatalf("revoked session: Lookup = %v, want ErrInvalidToken", err)
	}
	if _, err := e.lookup(b, svc); err != nil {
		t.Fatalf("the other session: %v", err)
	}
	if n, err := e.m.Store().RevokeSubject(ctx, "alice"); err != nil || n != 1 {
		t.Fatalf("RevokeSubject = %d, %v", n, err)
	}
	if _, err := e.lookup(b, svc); !errors.Is(err, sessions.ErrInvalidToken) {
		t.Fatalf("after RevokeSubject: Lookup = %v, want ErrInvalidToken", err)
	}
	// Pending uses of revoked sessions are flushed harmlessly: nothing comes back.
	if err := e.m.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if ss, _, err := e.m.Store().List(ctx, sessions.ListOptions{}); err != nil || len(ss) != 0 {
		t.Fatalf("sessions after revoking all and flushing: %v, %v", ss, err)
	}
}

// A store failure is not an invalid token: the caller answers "unavailable", not "log in again".
func TestLookupStoreDown(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	e := newEnv(t)
	tok, _ := e.issue(t, "alice")
	if err := e.st.Store.Close(ctx); err != nil {
		t.Fatal(err)
	}
	_, err := e.lookup(tok, svc)
	if err == nil || errors.Is(err, sessions.ErrInvalidToken) {
		t.Fatalf("Lookup with the store closed = %v, want a store error", err)
	}
}

// The background loop flushes on its own (here every millisecond; the test waits for the event,
// it does not time it).
func TestBackgroundFlush(t *testing.T) {
	t.Parallel()
	raw, err := (&sqlite.Config{Path: filepath.Join(t.TempDir(), "s.db")}).Open(context.Background(), sessions.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close(context.Background())
	st := &counting{Store: raw, touched: make(chan struct{}, 100)}
	m := sessions.NewManager(st, sessions.Options{FlushInterval: time.Millisecond})
	defer m.Close(context.Background())
	tok, _, err := m.Issue(context.Background(), "alice", "static", "h1:fp", svc, "docker", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Lookup(context.Background(), tok, svc, "docker", ""); err != nil {
		t.Fatal(err)
	}
	select {
	case <-st.touched:
	case <-time.After(time.Minute):
		t.Fatal("the background loop never flushed")
	}
}

// lyingStore answers every ByTokenHash with the session of one fixed hash, as a store whose
// index or query were broken would: the manager must not take its word for the match.
type lyingStore struct {
	sessions.Store
	always [32]byte
}

func (l lyingStore) ByTokenHash(ctx context.Context, _ [32]byte) (sessions.Session, error) {
	return l.Store.ByTokenHash(ctx, l.always)
}

// TestLookupRechecksTheStoredHash: the constant-time re-compare after the store's lookup is
// what refuses a token the store matched to another token's session.
func TestLookupRechecksTheStoredHash(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	tok, s := e.issue(t, "alice")
	m := sessions.NewManager(lyingStore{Store: e.st, always: s.TokenHash}, sessions.Options{Now: e.clock.Now, FlushInterval: time.Hour})
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	if got, err := m.Lookup(context.Background(), tok, svc, "docker", ""); err != nil || got.ID != s.ID {
		t.Fatalf("Lookup of the session's own token = %+v, %v", got, err)
	}
	other := "pcr_" + base64.RawURLEncoding.EncodeToString(make([]byte, 32))
	if got, err := m.Lookup(context.Background(), other, svc, "docker", ""); !errors.Is(err, sessions.ErrInvalidToken) {
		t.Fatalf("Lookup of another token that the store matched to alice's session = %+v, %v; want ErrInvalidToken", got, err)
	}
}

// IssueUntil ends a session at the earlier of its own limit and MaxTTL; the idle expiry never
// passes the absolute one.
func TestIssueUntil(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name            string
		ttl, wantExpiry time.Duration
	}{
		{"shorter than MaxTTL", 48 * time.Hour, 48 * time.Hour},
		{"shorter than the idle TTL", time.Hour, time.Hour},
		{"zero is MaxTTL", 0, maxTTL},
		{"negative is MaxTTL", -time.Hour, maxTTL},
		{"longer is capped at MaxTTL", 10 * maxTTL, maxTTL},
		{"exactly MaxTTL", maxTTL, maxTTL},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			now := e.clock.Now()
			tok, s, err := e.m.IssueUntil(context.Background(), "alice", "sso", "fp", svc, "docker", "192.0.2.1:1000", tc.ttl)
			if err != nil {
				t.Fatal(err)
			}
			if !s.ExpiresAt.Equal(now.Add(tc.wantExpiry)) || !s.IdleExpiresAt.Equal(now.Add(min(idleTTL, tc.wantExpiry))) {
				t.Fatalf("expires %v idle %v, want %v and %v", s.ExpiresAt.Sub(now), s.IdleExpiresAt.Sub(now), tc.wantExpiry, min(idleTTL, tc.wantExpiry))
			}
			if s.Backend != "sso" || s.Fingerprint != "fp" || !s.FingerprintSet {
				t.Fatalf("session %+v", s)
			}
			if stored, err := e.st.Get(context.Background(), s.ID); err != nil || !stored.ExpiresAt.Equal(s.ExpiresAt) {
				t.Fatalf("stored: %+v, %v", stored, err)
			}
			// Used every half idle TTL, the session lives up to its limit and not past it.
			for left := tc.wantExpiry - time.Second; left > 0; {
				d := min(left, idleTTL/2)
				e.clock.Add(d)
				left -= d
				if _, err := e.lookup(tok, svc); err != nil {
					t.Fatalf("%v before the end: Lookup = %v", left+time.Second, err)
				}
			}
			e.clock.Add(time.Second)
			if _, err := e.lookup(tok, svc); !errors.Is(err, sessions.ErrInvalidToken) {
				t.Fatalf("at the end: Lookup = %v, want ErrInvalidToken", err)
			}
		})
	}
}
