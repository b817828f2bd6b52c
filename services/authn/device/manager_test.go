package device

import (
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/testutil"
)

func newClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC))
}

type fixture struct {
	st    *memStore
	clock *testutil.Clock
	m     *Manager
	logs  *testutil.Buffer
}

func newFixture(t *testing.T, o Options) *fixture {
	t.Helper()
	f := &fixture{st: newMemStore(), clock: newClock(), logs: &testutil.Buffer{}}
	o.Now = f.clock.Now
	o.Logger = slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f.m = NewManager(f.st, o)
	return f
}

var testStart = StartRequest{ClientID: "portcullis-cli", Service: "registry.example.com",
	Scopes: []string{"repository:app:pull"}, ClientAddr: "192.0.2.7:5555", UserAgent: "portcullis/1.0"}

func (f *fixture) start(t *testing.T) (string, Authorization) {
	t.Helper()
	code, a, err := f.m.Start(context.Background(), testStart)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	return code, a
}

var alice = Approver{Subject: "alice", Backend: "sso", Fingerprint: "fp1"}

func TestStart(t *testing.T) {
	f := newFixture(t, Options{})
	r := testStart
	r.UserAgent = strings.Repeat("ü", 200) // 400 bytes
	code, a, err := f.m.Start(context.Background(), r)
	if err != nil {
		t.Fatal(err)
	}
	rest, ok := strings.CutPrefix(code, "pcd_")
	if raw, err := base64.RawURLEncoding.DecodeString(rest); !ok || err != nil || len(raw) != 32 {
		t.Errorf("device code %q: want pcd_ and base64url of 32 bytes", code)
	}
	if a.DeviceCodeHash != HashCode(code) {
		t.Error("flow not stored under HashCode(device code)")
	}
	if _, ok := NormalizeUserCode(a.UserCode); !ok || len(a.UserCode) != 8 {
		t.Errorf("user code %q not normalized", a.UserCode)
	}
	now := f.clock.Now()
	if !a.CreatedAt.Equal(now) || !a.ExpiresAt.Equal(now.Add(10*time.Minute)) || a.Interval != 5*time.Second || a.State != Pending {
		t.Errorf("flow = %+v: want created now, 10m life, 5s interval, pending", a)
	}
	if len(a.UserAgent) != 256 || !strings.HasPrefix(r.UserAgent, a.UserAgent) {
		t.Errorf("user agent cut to %d bytes, want 256 at a rune boundary", len(a.UserAgent))
	}
	stored, err := f.st.ByUserCode(context.Background(), a.UserCode)
	if err != nil || stored.ClientID != r.ClientID || stored.Service != r.Service || stored.ClientAddr != r.ClientAddr {
		t.Errorf("stored %+v, %v", stored, err)
	}
	code2, b := f.start(t)
	if code2 == code || b.UserCode == a.UserCode {
		t.Error("two flows share a code")
	}
}

func TestStartValidation(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	for _, tc := range []struct {
		name    string
		edit    func(*StartRequest)
		wantMsg string
	}{
		{"ok at the limits", func(r *StartRequest) {
			r.ClientID, r.Service = long(128), long(255)
			r.Scopes = make([]string, 32)
			for i := range r.Scopes {
				r.Scopes[i] = long(512)
			}
		}, ""},
		{"no client id is allowed", func(r *StartRequest) { r.ClientID = "" }, ""},
		{"long client id", func(r *StartRequest) { r.ClientID = long(129) }, "client_id is longer than 128 bytes"},
		{"no service", func(r *StartRequest) { r.Service = "" }, "service is required"},
		{"long service", func(r *StartRequest) { r.Service = long(256) }, "service is longer than 255 bytes"},
		{"too many scopes", func(r *StartRequest) { r.Scopes = make([]string, 33) }, "more than 32 scopes"},
		{"long scope", func(r *StartRequest) { r.Scopes = []string{"a", long(513)} }, "a scope is longer than 512 bytes"},
		{"unknown service", func(r *StartRequest) { r.Service = "elsewhere.example.com" }, "unknown service"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{KnownService: func(s string) bool { return s != "elsewhere.example.com" }})
			r := testStart
			tc.edit(&r)
			_, _, err := f.m.Start(context.Background(), r)
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("Start: %v", err)
				}
				return
			}
			var ie *InvalidError
			if !errors.As(err, &ie) || ie.Msg != tc.wantMsg {
				t.Fatalf("Start = %v, want InvalidError %q", err, tc.wantMsg)
			}
			if f.st.len() != 0 {
				t.Error("a refused flow was stored")
			}
		})
	}
}

func TestStartRetriesCollisions(t *testing.T) {
	boom := errors.New("database down")
	for _, tc := range []struct {
		name    string
		errs    []error
		wantErr error
	}{
		{"first try", nil, nil},
		{"after collisions", []error{ErrExists, ErrExists, ErrExists, ErrExists}, nil},
		{"too many collisions", []error{ErrExists, ErrExists, ErrExists, ErrExists, ErrExists}, ErrExists},
		{"store failure is not retried", []error{boom, nil}, boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			f.st.createErrs = tc.errs
			_, _, err := f.m.Start(context.Background(), testStart)
			if !errors.Is(err, tc.wantErr) || (tc.wantErr == nil) != (err == nil) {
				t.Fatalf("Start = %v, want %v", err, tc.wantErr)
			}
			if want := map[bool]int{true: 1, false: 0}[err == nil]; f.st.len() != want {
				t.Errorf("%d flows stored, want %d", f.st.len(), want)
			}
		})
	}
}

func TestStartSweepsExpiredAtMostOncePerMinute(t *testing.T) {
	f := newFixture(t, Options{ExpiresIn: time.Minute})
	f.start(t)
	f.clock.Add(30 * time.Second)
	f.start(t)
	if f.st.sweeps != 1 || f.st.len() != 2 {
		t.Fatalf("after two starts in a minute: %d sweeps, %d flows; want 1, 2", f.st.sweeps, f.st.len())
	}
	f.clock.Add(31 * time.Second) // the first flow has expired, the second not yet
	f.start(t)
	if f.st.sweeps != 2 || f.st.len() != 2 {
		t.Fatalf("a minute later: %d sweeps, %d flows; want 2, 2", f.st.sweeps, f.st.len())
	}
}

type pollStep struct {
	advance time.Duration
	decide  *bool // decide (approve or not) as alice before polling
	client  string
	want    error // nil: the approved flow
}

func TestPollStateMachine(t *testing.T) {
	yes, no := true, false
	for _, tc := range []struct {
		name  string
		steps []pollStep
	}{
		{"pending, slow down, pending again", []pollStep{
			{want: ErrPending},
			{advance: time.Second, want: ErrSlowDown},
			// Every poll is recorded: 4.999s after the slow one is still too soon.
			{advance: 5*time.Second - time.Millisecond, want: ErrSlowDown},
			{advance: 5 * time.Second, want: ErrPending},
			{advance: 5 * time.Second, want: ErrPending},
		}},
		{"approved is handed over once", []pollStep{
			{want: ErrPending},
			{advance: 5 * time.Second, decide: &yes, want: nil},
			{advance: 5 * time.Second, want: ErrInvalidGrant},
		}},
		{"approved is not slowed down", []pollStep{
			{want: ErrPending},
			{advance: time.Second, decide: &yes, want: nil},
		}},
		{"denied is answered once, then forgotten", []pollStep{
			{decide: &no, want: ErrDenied},
			{advance: 5 * time.Second, want: ErrInvalidGrant},
		}},
		{"expired", []pollStep{
			{want: ErrPending},
			{advance: 10 * time.Minute, want: ErrExpired},
			{advance: 5 * time.Second, want: ErrInvalidGrant},
		}},
		{"just before expiry", []pollStep{
			{advance: 10*time.Minute - time.Microsecond, want: ErrPending},
		}},
		{"approved but expired", []pollStep{
			{decide: &yes, advance: 10 * time.Minute, want: ErrExpired},
		}},
		{"another client", []pollStep{
			{client: "other-cli", want: ErrInvalidGrant},
			{advance: 5 * time.Second, decide: &yes, client: "other-cli", want: ErrInvalidGrant},
			{advance: 5 * time.Second, want: nil},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, Options{})
			ctx := context.Background()
			code, started := f.start(t)
			for i, s := range tc.steps {
				if s.decide != nil {
					if _, err := f.m.Decide(ctx, FormatUserCode(started.UserCode), "198.51.100.1", *s.decide, alice); err != nil {
						t.Fatalf("step %d: Decide: %v", i, err)
					}
				}
				f.clock.Add(s.advance)
				client := s.client
				if client == "" {
					client = testStart.ClientID
				}
				a, err := f.m.Poll(ctx, code, client)
				if !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
					t.Fatalf("step %d: Poll = %v, want %v", i, err, s.want)
				}
				if err == nil && (a.State != Approved || a.Subject != "alice" || a.Backend != "sso" ||
					a.Fingerprint != "fp1" || a.Service != testStart.Service || a.DecidedAddr != "198.51.100.1") {
					t.Errorf("step %d: approved flow = %+v", i, a)
				}
			}
		})
	}
}

func TestPollBadCodes(t *testing.T) {
	f := newFixture(t, Options{})
	code, _ := f.start(t)
	for _, c := range []string{
		"",
		"pcd_",
		strings.TrimPrefix(code, "pcd_"),
		"pcx_" + strings.TrimPrefix(code, "pcd_"),
		code + "A",
		code[:len(code)-1],
		code[:len(code)-1] + "!",
		"pcd_" + base64.RawURLEncoding.EncodeToString(make([]byte, 32)), // well formed, unknown
	} {
		if _, err := f.m.Poll(context.Background(), c, testStart.ClientID); !errors.Is(err, ErrInvalidGrant) {
			t.Errorf("Poll(%q) = %v, want ErrInvalidGrant", c, err)
		}
	}
}

func TestPollApprovedExactlyOnce(t *testing.T) {
	f := newFixture(t, Options{})
	ctx := context.Background()
	code, a := f.start(t)
	if _, err := f.m.Decide(ctx, a.UserCode, "198.51.100.1", true, alice); err != nil {
		t.Fatal(err)
	}
	const pollers = 16
	var (
		wg         sync.WaitGroup
		mu         sync.Mutex
		wins, lose int
		others     []error
		ready      = make(chan struct{})
	)
	for range pollers {
		wg.Go(func() {
			<-ready
			_, err := f.m.Poll(ctx, code, testStart.ClientID)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				wins++
			case errors.Is(err, ErrInvalidGrant):
				lose++
			default:
				others = append(others, err)
			}
		})
	}
	close(ready)
	wg.Wait()
	if wins != 1 || lose != pollers-1 || len(others) > 0 {
		t.Fatalf("%d successes, %d invalid_grant, others %v; want 1, %d, none", wins, lose, others, pollers-1)
	}
}

func TestLookupAndDecide(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{MaxWrongCodes: 1000})
	_, a := f.start(t)
	typed := strings.ToLower(FormatUserCode(a.UserCode))

	got, err := f.m.Lookup(ctx, typed, "198.51.100.1")
	if err != nil || got.DeviceCodeHash != a.DeviceCodeHash || got.ClientAddr != testStart.ClientAddr {
		t.Fatalf("Lookup(%q) = %+v, %v", typed, got, err)
	}
	for _, c := range []string{"", "BCDF-GHJK", a.UserCode + "B", "AAAA-AAAA"} {
		if _, err := f.m.Lookup(ctx, c, "198.51.100.1"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Lookup(%q) = %v, want ErrNotFound", c, err)
		}
	}
	for _, approve := range []bool{true, false} {
		if _, err := f.m.Decide(ctx, typed, "198.51.100.1", approve, Approver{}); err == nil {
			t.Errorf("Decide(approve %v) without a subject: no error", approve)
		}
	}
	d, err := f.m.Decide(ctx, typed, "198.51.100.1", false, alice)
	if err != nil || d.State != Denied || d.Subject != "alice" || d.DecidedAddr != "198.51.100.1" || !d.DecidedAt.Equal(f.clock.Now()) {
		t.Fatalf("Decide deny = %+v, %v", d, err)
	}
	if _, err := f.m.Decide(ctx, typed, "198.51.100.1", true, alice); !errors.Is(err, ErrNotFound) {
		t.Errorf("Decide on a decided flow = %v, want ErrNotFound", err)
	}
	if _, err := f.m.Lookup(ctx, typed, "198.51.100.1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup of a decided flow = %v, want ErrNotFound", err)
	}

	_, b := f.start(t)
	f.clock.Add(10 * time.Minute)
	if _, err := f.m.Lookup(ctx, b.UserCode, "198.51.100.1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup of an expired flow = %v, want ErrNotFound", err)
	}
	if _, err := f.m.Decide(ctx, b.UserCode, "198.51.100.1", true, alice); !errors.Is(err, ErrNotFound) {
		t.Errorf("Decide on an expired flow = %v, want ErrNotFound", err)
	}
	if s, _ := f.st.ByUserCode(ctx, b.UserCode); s.State != Pending {
		t.Errorf("an expired flow was decided: %s", s.State)
	}
}

func TestWrongCodeRateLimit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{MaxWrongCodes: 3, WrongCodeWindow: 10 * time.Minute, ExpiresIn: time.Hour})
	_, a := f.start(t)

	wrong := func(addr string) {
		t.Helper()
		if _, err := f.m.Lookup(ctx, "BCDF-BCDF", addr); !errors.Is(err, ErrNotFound) {
			t.Fatalf("wrong code from %s = %v, want ErrNotFound", addr, err)
		}
	}
	lookup := func(addr string, want error) {
		t.Helper()
		if _, err := f.m.Lookup(ctx, a.UserCode, addr); !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Fatalf("Lookup from %s = %v, want %v", addr, err, want)
		}
	}

	wrong("192.0.2.1:1000")
	if _, err := f.m.Decide(ctx, "not a code", "192.0.2.1:1001", true, alice); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Decide with a malformed code = %v", err)
	}
	lookup("192.0.2.1", nil) // two wrong so far: the right code still works
	wrong("192.0.2.1:1002")  // third wrong: the limit
	lookup("192.0.2.1:1003", ErrRateLimited)
	if _, err := f.m.Decide(ctx, a.UserCode, "192.0.2.1", true, alice); !errors.Is(err, ErrRateLimited) {
		t.Fatalf("Decide from a limited address = %v, want ErrRateLimited", err)
	}
	lookup("192.0.2.2", nil)                   // another address is not affected
	lookup("::ffff:192.0.2.1", ErrRateLimited) // the same IPv4 address, mapped

	// IPv6 counts by /64.
	wrong("[2001:db8:1:1::1]:443")
	wrong("2001:db8:1:1::2")
	wrong("[2001:db8:1:1:ffff::3%eth0]:443")
	lookup("2001:db8:1:1::99", ErrRateLimited)
	lookup("2001:db8:1:2::1", nil)

	f.clock.Add(10*time.Minute - time.Second)
	lookup("192.0.2.1", ErrRateLimited)
	f.clock.Add(time.Second) // the window is over
	lookup("192.0.2.1", nil)
	lookup("2001:db8:1:1::1", nil)
	if s, _ := f.st.ByUserCode(ctx, a.UserCode); s.State != Pending {
		t.Errorf("a limited Decide decided the flow: %s", s.State)
	}
}

func TestLimiterBounded(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	l := newLimiter(1, time.Minute, 2)
	l.add("a", now)
	l.add("b", now.Add(time.Second))
	l.add("c", now.Add(2*time.Second)) // evicts a, whose window started first
	if l.limited("a", now.Add(3*time.Second)) || !l.limited("b", now.Add(3*time.Second)) || !l.limited("c", now.Add(3*time.Second)) {
		t.Error("want a forgotten, b and c limited")
	}
	if len(l.byKey) != 2 || l.order.Len() != 2 {
		t.Errorf("%d keys, %d in order; want 2", len(l.byKey), l.order.Len())
	}
	l.add("d", now.Add(time.Minute+time.Second)) // b's window is over: pruned, not evicting c
	if !l.limited("c", now.Add(time.Minute+time.Second)) || len(l.byKey) != 2 {
		t.Errorf("after pruning: c limited %v, %d keys", l.limited("c", now.Add(time.Minute+time.Second)), len(l.byKey))
	}
}

func TestLimiterKey(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":                 "192.0.2.1",
		"192.0.2.1:443":             "192.0.2.1",
		"::ffff:192.0.2.1":          "192.0.2.1",
		"[::ffff:192.0.2.1]:80":     "192.0.2.1",
		"2001:db8::1":               "2001:db8::/64",
		"[2001:db8::1]:443":         "2001:db8::/64",
		"fe80::1%eth0":              "fe80::/64",
		"":                          "",
		"unix:/run/portcullis.sock": "unix:/run/portcullis.sock",
	} {
		if got := limiterKey(in); got != want {
			t.Errorf("limiterKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestAuditLogs(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{})
	code, a := f.start(t)
	if _, err := f.m.Lookup(ctx, a.UserCode, "198.51.100.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Decide(ctx, a.UserCode, "198.51.100.1", true, alice); err != nil {
		t.Fatal(err)
	}
	if _, err := f.m.Poll(ctx, code, testStart.ClientID); err != nil {
		t.Fatal(err)
	}
	code2, b := f.start(t)
	if _, err := f.m.Decide(ctx, FormatUserCode(b.UserCode), "198.51.100.2", false, alice); err != nil {
		t.Fatal(err)
	}
	logs := f.logs.String()
	for _, want := range []string{
		`"msg":"device flow started","log_type":"audit","client_id":"portcullis-cli","service":"registry.example.com"`,
		`"msg":"device flow approved","log_type":"audit","subject":"alice"`,
		`"msg":"device flow denied","log_type":"audit","subject":"alice"`,
		`"remote_addr":"198.51.100.1","device_addr":"192.0.2.7:5555"`,
	} {
		if !strings.Contains(logs, want) {
			t.Errorf("logs lack %s:\n%s", want, logs)
		}
	}
	assertNoSecrets(t, logs, []string{code, code2}, []string{a.UserCode, b.UserCode})
}

// assertNoSecrets fails when logs hold a device code (or its random part) or a user code in
// any of its forms.
func assertNoSecrets(t *testing.T, logs string, deviceCodes, userCodes []string) {
	t.Helper()
	for _, c := range deviceCodes {
		if strings.Contains(logs, strings.TrimPrefix(c, "pcd_")) {
			t.Errorf("a device code is in the logs:\n%s", logs)
		}
	}
	for _, c := range userCodes {
		if strings.Contains(logs, c) || strings.Contains(logs, FormatUserCode(c)) {
			t.Errorf("a user code is in the logs:\n%s", logs)
		}
	}
}

// Starting needs no credential: an address that starts too many flows is held off until its
// window ends, and another address is not.
func TestStartRateLimit(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, Options{MaxStarts: 3, WrongCodeWindow: 10 * time.Minute})
	start := func(addr string, want error) {
		t.Helper()
		_, _, err := f.m.Start(ctx, StartRequest{ClientID: "cli", Service: "registry.local", ClientAddr: addr})
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Fatalf("Start from %s = %v, want %v", addr, err, want)
		}
	}
	for range 3 {
		start("192.0.2.1:4000", nil)
	}
	start("192.0.2.1:4001", ErrRateLimited)
	start("192.0.2.2", nil)
	f.clock.Add(10 * time.Minute)
	start("192.0.2.1", nil)
}
