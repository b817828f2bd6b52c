package lockout_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/backendtest"
	"github.com/portcullis-dev/portcullis/services/authn/backend/static"
	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/lockout/lockouttest"
)

func newClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2026, 5, 1, 9, 0, 0, 0, time.UTC))
}

// users is the backend under the lockout: it knows alice/right and counts its calls. An
// unknown user is ErrInvalidCredentials, as the chain answers.
type users struct {
	calls atomic.Int32
	err   error // answered instead, when set
}

func (u *users) Authenticate(_ context.Context, c authn.Credentials) (identity.Identity, error) {
	u.calls.Add(1)
	if u.err != nil {
		return identity.Identity{}, u.err
	}
	if c.Username == "alice" && c.Password == "right" {
		return identity.Identity{Subject: "alice"}, nil
	}
	return identity.Identity{}, authn.ErrInvalidCredentials
}

type env struct {
	clk     *testutil.Clock
	st      *lockouttest.Memory
	inner   *users
	l       *lockout.Lockout
	auth    authn.Authenticator // Guard(inner)
	log     *bytes.Buffer
	logMu   *sync.Mutex
	locked  map[string]int
	refused map[string]int
	storeEr int
	mu      sync.Mutex
}

var (
	acctPolicy = lockout.Policy{MaxFailures: 3, BaseDelay: time.Second, MaxDelay: 8 * time.Second, Window: time.Minute}
	addrPolicy = lockout.Policy{MaxFailures: 10, BaseDelay: time.Second, MaxDelay: 8 * time.Second, Window: time.Minute}
)

type lockedBuf struct {
	mu *sync.Mutex
	b  *bytes.Buffer
}

func (w lockedBuf) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func newEnv(t *testing.T, st *lockouttest.Memory) *env {
	t.Helper()
	if st == nil {
		st = lockouttest.NewMemory()
	}
	e := &env{clk: newClock(), st: st, inner: &users{}, log: &bytes.Buffer{}, logMu: &sync.Mutex{},
		locked: map[string]int{}, refused: map[string]int{}}
	l, err := lockout.New(lockout.Options{Store: st, AccountAddress: acctPolicy, Address: addrPolicy, Now: e.clk.Now,
		Logger:     slog.New(slog.NewJSONHandler(lockedBuf{e.logMu, e.log}, nil)),
		Locked:     func(k string) { e.mu.Lock(); e.locked[k]++; e.mu.Unlock() },
		Refused:    func(k string) { e.mu.Lock(); e.refused[k]++; e.mu.Unlock() },
		StoreError: func() { e.mu.Lock(); e.storeEr++; e.mu.Unlock() },
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	e.l, e.auth = l, l.Guard(e.inner)
	return e
}

func cred(user, pass, addr string) authn.Credentials {
	return authn.Credentials{Username: user, Password: authn.Password(pass), RemoteAddr: addr, Service: "registry.local", ClientID: "docker"}
}

// try authenticates and names the outcome: "ok", "wrong", "locked <retry>" or the error.
func (e *env) try(t *testing.T, a authn.Authenticator, c authn.Credentials) string {
	t.Helper()
	_, err := a.Authenticate(context.Background(), c)
	var le *authn.LockedError
	switch {
	case err == nil:
		return "ok"
	case errors.Is(err, authn.ErrInvalidCredentials):
		return "wrong"
	case errors.As(err, &le):
		if !errors.Is(err, authn.ErrLocked) {
			t.Fatalf("LockedError is not ErrLocked")
		}
		return fmt.Sprintf("locked %s", le.RetryAfter)
	default:
		return err.Error()
	}
}

// step is one attempt (or a clock move, when wait is set) and what it must answer.
type step struct {
	wait       time.Duration
	user, pass string
	addr       string
	want       string
}

func run(t *testing.T, e *env, a authn.Authenticator, steps []step) {
	t.Helper()
	for i, s := range steps {
		if s.wait > 0 {
			e.clk.Add(s.wait)
			continue
		}
		if got := e.try(t, a, cred(s.user, s.pass, s.addr)); got != s.want {
			t.Fatalf("step %d (%s/%s from %s): %s, want %s", i, s.user, s.pass, s.addr, got, s.want)
		}
	}
}

const (
	addrA = "192.0.2.1"
	addrB = "198.51.100.2"
)

func wrong(addr string) step           { return step{user: "alice", pass: "nope", addr: addr, want: "wrong"} }
func right(addr string) step           { return step{user: "alice", pass: "right", addr: addr, want: "ok"} }
func lockedFor(d time.Duration) string { return "locked " + d.String() }
func wait(d time.Duration) step        { return step{wait: d} }

func TestLockout(t *testing.T) {
	t.Parallel()
	locked := func(addr string, pass string, d time.Duration) step {
		return step{user: "alice", pass: pass, addr: addr, want: lockedFor(d)}
	}
	cases := []struct {
		name       string
		steps      []step
		wantCalls  int32
		wantLocked map[string]int
	}{
		{name: "below the threshold nothing is locked",
			steps:     []step{wrong(addrA), wrong(addrA), right(addrA)},
			wantCalls: 3},
		{name: "the threshold locks, even the right password, without asking the backend",
			steps: []step{wrong(addrA), wrong(addrA), wrong(addrA),
				locked(addrA, "right", time.Second), locked(addrA, "nope", time.Second),
				wait(400 * time.Millisecond), locked(addrA, "right", 600*time.Millisecond)},
			wantCalls: 3, wantLocked: map[string]int{lockout.KindAccountAddress: 1}},
		{name: "another address is not locked out",
			steps:     []step{wrong(addrA), wrong(addrA), wrong(addrA), locked(addrA, "right", time.Second), right(addrB), wrong(addrB)},
			wantCalls: 5, wantLocked: map[string]int{lockout.KindAccountAddress: 1}},
		{name: "back-off doubles per failure after the lock, up to the cap",
			steps: []step{wrong(addrA), wrong(addrA), wrong(addrA), // 1s
				wait(time.Second), wrong(addrA), locked(addrA, "nope", 2*time.Second),
				wait(2 * time.Second), wrong(addrA), locked(addrA, "nope", 4*time.Second),
				wait(4 * time.Second), wrong(addrA), locked(addrA, "nope", 8*time.Second),
				wait(8 * time.Second), wrong(addrA), locked(addrA, "nope", 8*time.Second), // capped
				wait(8 * time.Second), right(addrA), // a success ends it
				wrong(addrA), wrong(addrA)}, // counting from one again
			wantCalls: 10},
		{name: "failures older than the window are forgotten",
			steps:     []step{wrong(addrA), wrong(addrA), wait(time.Minute), wrong(addrA), wrong(addrA), right(addrA)},
			wantCalls: 5},
		{name: "a success clears the (account, address) count",
			steps:     []step{wrong(addrA), wrong(addrA), right(addrA), wrong(addrA), wrong(addrA), right(addrA)},
			wantCalls: 6},
		{name: "an unknown user counts like a known one",
			steps: []step{{user: "mallory", pass: "x", addr: addrA, want: "wrong"}, {user: "mallory", pass: "y", addr: addrA, want: "wrong"},
				{user: "mallory", pass: "z", addr: addrA, want: "wrong"}, {user: "mallory", pass: "w", addr: addrA, want: lockedFor(time.Second)},
				right(addrA)},
			wantCalls: 4, wantLocked: map[string]int{lockout.KindAccountAddress: 1}},
		{name: "account names are counted without case",
			steps: []step{wrong(addrA), {user: "Alice", pass: "x", addr: addrA, want: "wrong"}, {user: "ALICE", pass: "x", addr: addrA, want: "wrong"},
				locked(addrA, "right", time.Second)},
			wantCalls: 3, wantLocked: map[string]int{lockout.KindAccountAddress: 1}},
		{name: "an IPv6 client is counted by its /64",
			steps: []step{wrong("2001:db8::1"), wrong("2001:db8::2"), wrong("[2001:db8::3]:5000"),
				locked("2001:db8::ffff", "right", time.Second), right("2001:db8:0:1::1")},
			wantCalls: 4, wantLocked: map[string]int{lockout.KindAccountAddress: 1}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, nil)
			run(t, e, e.auth, tc.steps)
			if got := e.inner.calls.Load(); got != tc.wantCalls {
				t.Errorf("backend called %d times, want %d", got, tc.wantCalls)
			}
			e.mu.Lock()
			defer e.mu.Unlock()
			for _, k := range []string{lockout.KindAccountAddress, lockout.KindAddress} {
				if tc.wantLocked != nil && e.locked[k] != tc.wantLocked[k] {
					t.Errorf("locks of %s: %d, want %d", k, e.locked[k], tc.wantLocked[k])
				}
			}
		})
	}
}

// The address count catches one address spraying many accounts, and locks the address for
// every account (and a known one's right password) while other addresses go on.
func TestAddressLockIsIndependentOfAccount(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	for i := range addrPolicy.MaxFailures {
		if got := e.try(t, e.auth, cred(fmt.Sprintf("user%d", i), "guess", addrA)); got != "wrong" {
			t.Fatalf("attempt %d: %s", i, got)
		}
	}
	run(t, e, e.auth, []step{
		{user: "someone-new", pass: "x", addr: addrA, want: lockedFor(time.Second)},
		{user: "alice", pass: "right", addr: addrA, want: lockedFor(time.Second)},
		right(addrB),
		wait(time.Second),
		right(addrA), // the address lock ended; a success does not clear the address count…
		{user: "bob", pass: "x", addr: addrA, want: "wrong"}, // …so the next failure locks it again, for longer
		{user: "carol", pass: "x", addr: addrA, want: lockedFor(2 * time.Second)},
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.locked[lockout.KindAddress] != 2 || e.locked[lockout.KindAccountAddress] != 0 || e.refused[lockout.KindAddress] != 3 {
		t.Fatalf("locked %v refused %v", e.locked, e.refused)
	}
}

// A locked caller costs no backend call and no bcrypt: the real chain is behind the guard,
// and its limiter's only slot is held, so any bcrypt work would answer ErrBusy instead.
func TestLockedCallerCostsNoBcrypt(t *testing.T) {
	t.Parallel()
	h, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	lim := authn.NewBcryptLimiter(1, 0)
	be, err := (&static.Config{Users: []static.User{{Name: "alice", PasswordHash: string(h)}}}).Open(context.Background(), authn.Deps{Bcrypt: lim})
	if err != nil {
		t.Fatal(err)
	}
	counting := &countingAuth{next: authn.NewChain([]authn.Member{{Name: "static", Backend: be}}, lim)}
	e := newEnv(t, nil)
	guarded := e.l.Guard(counting)
	for range acctPolicy.MaxFailures {
		if got := e.try(t, guarded, cred("alice", "nope", addrA)); got != "wrong" {
			t.Fatal(got)
		}
	}
	release := backendtest.Hold(t, lim)
	defer release()
	for _, pass := range []string{"right", "nope"} {
		if got := e.try(t, guarded, cred("alice", pass, addrA)); got != lockedFor(time.Second) {
			t.Fatalf("locked caller with %q: %s", pass, got)
		}
	}
	if _, err := guarded.Authenticate(context.Background(), cred("alice", "right", addrB)); !errors.Is(err, authn.ErrBusy) {
		t.Fatalf("unlocked caller while bcrypt is held: %v, want ErrBusy (it does reach bcrypt)", err)
	}
	if n := counting.calls.Load(); n != int32(acctPolicy.MaxFailures)+1 {
		t.Fatalf("chain called %d times, want %d", n, acctPolicy.MaxFailures+1)
	}
}

type countingAuth struct {
	calls atomic.Int32
	next  authn.Authenticator
}

func (c *countingAuth) Authenticate(ctx context.Context, cr authn.Credentials) (identity.Identity, error) {
	c.calls.Add(1)
	return c.next.Authenticate(ctx, cr)
}

// Gate → Cache → Guard: a warm cache hit reads no store; a locked caller presenting the
// password its real user's login cached is refused all the same (else the cache would tell
// its guesses right from wrong while every wrong one is refused).
func TestGateInFrontOfCache(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	cache := authn.NewCache(e.l.Guard(e.inner), time.Hour, 100, e.clk.Now)
	auth := e.l.Gate(cache)
	run(t, e, auth, []step{right(addrB)}) // cached now
	reads := e.st.Calls()
	run(t, e, auth, []step{right(addrB), right(addrA), right(addrB)})
	if e.st.Calls() != reads || e.inner.calls.Load() != 1 {
		t.Fatalf("warm hits: %d store calls, %d backend calls; want none", e.st.Calls()-reads, e.inner.calls.Load()-1)
	}
	run(t, e, auth, []step{wrong(addrA), wrong(addrA), wrong(addrA),
		{user: "alice", pass: "right", addr: addrA, want: lockedFor(time.Second)}, // cached, refused
		right(addrB)})
	reads = e.st.Calls()
	run(t, e, auth, []step{{user: "alice", pass: "nope", addr: addrA, want: lockedFor(time.Second)}})
	if e.st.Calls() != reads {
		t.Fatal("a lock this process knows cost a store read")
	}
	run(t, e, auth, []step{wait(time.Second), right(addrA)})
}

// Replicas share the store: a lock set through one is enforced by the other, which never
// saw the failures.
func TestReplicasShareLocks(t *testing.T) {
	t.Parallel()
	st := lockouttest.NewMemory()
	a, b := newEnv(t, st), newEnv(t, st)
	b.clk = a.clk
	run(t, a, a.auth, []step{wrong(addrA), wrong(addrA)})
	run(t, b, b.auth, []step{wrong(addrA), {user: "alice", pass: "right", addr: addrA, want: lockedFor(time.Second)}})
	run(t, a, a.auth, []step{{user: "alice", pass: "right", addr: addrA, want: lockedFor(time.Second)}})
}

// Only a wrong password or an unknown user counts: a backend that cannot answer, a full
// bcrypt queue or a canceled request says nothing about the caller's guess.
func TestOnlyCredentialFailuresCount(t *testing.T) {
	t.Parallel()
	for _, err := range []error{authn.ErrUnavailable, authn.ErrBusy, context.DeadlineExceeded, errors.New("boom")} {
		e := newEnv(t, nil)
		e.inner.err = fmt.Errorf("backend %q: %w", "x", err)
		for range acctPolicy.MaxFailures + 1 {
			if _, got := e.auth.Authenticate(context.Background(), cred("alice", "nope", addrA)); !errors.Is(got, err) {
				t.Fatalf("%v: got %v", err, got)
			}
		}
		if n := e.inner.calls.Load(); n != int32(acctPolicy.MaxFailures)+1 {
			t.Fatalf("%v: %d backend calls; the caller was locked", err, n)
		}
	}
}

// A store that fails leaves logins working (open, not closed), counted in StoreError.
func TestStoreDownFailsOpen(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	e.st.Fail(errors.New("database is down"))
	run(t, e, e.auth, []step{wrong(addrA), wrong(addrA), wrong(addrA), wrong(addrA), right(addrA)})
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.storeEr == 0 || !strings.Contains(e.log.String(), "database is down") {
		t.Fatalf("store errors %d, log:\n%s", e.storeEr, e.log.String())
	}
}

// The audit trail: one event when a key locks, one per refusal; never a password.
func TestAuditEvents(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	run(t, e, e.auth, []step{wrong(addrA), wrong(addrA), wrong(addrA), {user: "alice", pass: "right", addr: addrA, want: lockedFor(time.Second)}})
	e.logMu.Lock()
	out := e.log.String()
	e.logMu.Unlock()
	if strings.Contains(out, "nope") || strings.Contains(out, "right") {
		t.Fatalf("a password reached the log:\n%s", out)
	}
	var got []string
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		if m["log_type"] != "audit" || m["username"] != "alice" || m["remote_addr"] != addrA || m["client_id"] != "docker" ||
			m["key_address"] != addrA {
			t.Fatalf("event lacks its fields: %v", m)
		}
		got = append(got, fmt.Sprintf("%s/%s/%s", m["msg"], m["result"], m["key"]))
	}
	want := []string{"login locked/locked/account_address", "login refused/refused/account_address"}
	if strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("audit events %v, want %v", got, want)
	}
}

func TestGCDeletesExpired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	run(t, e, e.auth, []step{wrong(addrA)})
	if n, err := e.l.GC(context.Background()); err != nil || n != 0 {
		t.Fatalf("GC = %d, %v; nothing expired yet", n, err)
	}
	e.clk.Add(acctPolicy.Window)
	if n, err := e.l.GC(context.Background()); err != nil || n != 2 {
		t.Fatalf("GC = %d, %v; want both keys gone", n, err)
	}
}

func TestNewRefusesBadPolicies(t *testing.T) {
	t.Parallel()
	_, err := lockout.New(lockout.Options{Store: lockouttest.NewMemory(),
		AccountAddress: lockout.Policy{MaxFailures: 0, BaseDelay: time.Second, MaxDelay: time.Millisecond, Window: time.Minute},
		Address:        lockout.Policy{MaxFailures: 1, BaseDelay: 0, MaxDelay: time.Second}})
	for _, want := range []string{"account_address: max failures", "account_address: max delay 1ms is below", "address: base delay", "address: window"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New = %v, want %q", err, want)
		}
	}
}

func TestPolicyDelay(t *testing.T) {
	t.Parallel()
	p := lockout.Policy{MaxFailures: 20, BaseDelay: time.Second, MaxDelay: 15 * time.Minute, Window: 15 * time.Minute}
	for _, tc := range []struct {
		failures int
		want     time.Duration
	}{{0, 0}, {19, 0}, {20, time.Second}, {21, 2 * time.Second}, {29, 512 * time.Second}, {30, 15 * time.Minute}, {1 << 30, 15 * time.Minute}} {
		if got := p.Delay(tc.failures); got != tc.want {
			t.Errorf("Delay(%d) = %s, want %s", tc.failures, got, tc.want)
		}
	}
	if got := (lockout.Policy{BaseDelay: time.Hour, MaxDelay: 1 << 62}).MaxShift(); got > 62 {
		t.Errorf("MaxShift = %d", got)
	}
}

func TestClientAddr(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"192.0.2.1":              "192.0.2.1",
		"192.0.2.1:4242":         "192.0.2.1",
		"::ffff:192.0.2.1":       "192.0.2.1",
		"2001:db8:1:2:3:4:5:6":   "2001:db8:1:2::/64",
		"[2001:db8:1:2::9]:5000": "2001:db8:1:2::/64",
		"fe80::1%eth0":           "fe80::/64",
		"":                       "",
		"bufconn":                "bufconn",
		strings.Repeat("x", 300): strings.Repeat("x", 128),
	} {
		if got := lockout.ClientAddr(in); got != want {
			t.Errorf("ClientAddr(%.20q) = %q, want %q", in, got, want)
		}
	}
}

// A memo full of live locks (many locked addresses) takes no more, and the guard still
// refuses from the store what it could not remember.
func TestFullMemoStillRefuses(t *testing.T) {
	t.Parallel()
	clk, st := newClock(), lockouttest.NewMemory()
	inner := &users{}
	l, err := lockout.New(lockout.Options{Store: st, AccountAddress: acctPolicy, Address: addrPolicy, Now: clk.Now, MemoSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	g := l.Guard(inner)
	e := &env{clk: clk}
	for _, addr := range []string{addrA, addrB} {
		for range acctPolicy.MaxFailures {
			if got := e.try(t, g, cred("alice", "nope", addr)); got != "wrong" {
				t.Fatal(got)
			}
		}
	}
	reads := st.Calls()
	for _, addr := range []string{addrA, addrB} {
		if got := e.try(t, g, cred("alice", "right", addr)); got != lockedFor(time.Second) {
			t.Fatalf("%s: %s", addr, got)
		}
	}
	if n := st.Calls() - reads; n != 1 {
		t.Fatalf("%d store reads; want one (for the lock the memo had no room for)", n)
	}
}

// slow is a backend that takes a while for every check, as bcrypt under load does, so that
// concurrent guesses are all in flight at once.
type slow struct {
	users
	d time.Duration
}

func (s *slow) Authenticate(ctx context.Context, c authn.Credentials) (identity.Identity, error) {
	time.Sleep(s.d)
	return s.users.Authenticate(ctx, c)
}

// 200 wrong passwords for one account from one address, all at once, against a slow backend,
// through two replicas sharing the store: no more than the threshold reach the backend (a
// check-then-count guard let every one of them through), and every other one is refused as
// locked with a time to retry, never busy.
func TestConcurrentGuessesBounded(t *testing.T) {
	t.Parallel()
	st := lockouttest.NewMemory()
	a, b := newEnv(t, st), newEnv(t, st)
	b.clk = a.clk
	inner := &slow{d: 20 * time.Millisecond}
	guards := []authn.Authenticator{a.l.Guard(inner), b.l.Guard(inner)}
	const n = 200
	var wg sync.WaitGroup
	var wrongs, locks atomic.Int32
	others := make(chan string, n)
	start := make(chan struct{})
	for i := range n {
		wg.Go(func() {
			<-start
			_, err := guards[i%2].Authenticate(context.Background(), cred("alice", fmt.Sprintf("guess%d", i), addrA))
			var le *authn.LockedError
			switch {
			case errors.Is(err, authn.ErrInvalidCredentials):
				wrongs.Add(1)
			case errors.As(err, &le) && le.RetryAfter > 0:
				locks.Add(1)
			default:
				others <- fmt.Sprint(err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(others)
	for o := range others {
		t.Errorf("answer %s, want invalid credentials or locked", o)
	}
	if got := inner.calls.Load(); got > int32(acctPolicy.MaxFailures) {
		t.Errorf("%d guesses reached the backend, want at most %d", got, acctPolicy.MaxFailures)
	}
	if wrongs.Load()+locks.Load() != n || locks.Load() < n-int32(acctPolicy.MaxFailures) {
		t.Errorf("%d wrong, %d locked", wrongs.Load(), locks.Load())
	}
}

// newEnvWith is newEnv with options changed by opt.
func newEnvWith(t *testing.T, opt func(*lockout.Options)) *env {
	t.Helper()
	st := lockouttest.NewMemory()
	e := &env{clk: newClock(), st: st, inner: &users{}, log: &bytes.Buffer{}, logMu: &sync.Mutex{},
		locked: map[string]int{}, refused: map[string]int{}}
	o := lockout.Options{Store: st, AccountAddress: acctPolicy, Address: addrPolicy, Now: e.clk.Now,
		Logger:     slog.New(slog.NewJSONHandler(lockedBuf{e.logMu, e.log}, nil)),
		Locked:     func(k string) { e.mu.Lock(); e.locked[k]++; e.mu.Unlock() },
		Refused:    func(k string) { e.mu.Lock(); e.refused[k]++; e.mu.Unlock() },
		StoreError: func() { e.mu.Lock(); e.storeEr++; e.mu.Unlock() },
	}
	opt(&o)
	l, err := lockout.New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(context.Background()) })
	e.l, e.auth = l, l.Guard(e.inner)
	return e
}

func (e *env) events(t *testing.T) []map[string]any {
	t.Helper()
	e.logMu.Lock()
	defer e.logMu.Unlock()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(e.log.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// An IPv6 attacker rotating through the /64s of its /56 (or /48) is caught by the wider
// prefix's count, and the audit event names the prefix that locked.
func TestIPv6Prefixes(t *testing.T) {
	t.Parallel()
	p56 := lockout.Policy{MaxFailures: 20, BaseDelay: time.Second, MaxDelay: 8 * time.Second, Window: time.Minute}
	p48 := p56
	p48.MaxFailures = 40
	e := newEnvWith(t, func(o *lockout.Options) {
		o.Prefixes = []lockout.PrefixPolicy{{Bits: 56, Policy: p56}, {Bits: 48, Policy: p48}}
	})
	// 20 failures, two from each of ten /64s of 2001:db8:0:100::/56, each a new account:
	// no (account, address) key and no /64 reaches its threshold.
	for i := range 20 {
		addr := fmt.Sprintf("2001:db8:0:1%02x::%d", i/2, i%2+1)
		if got := e.try(t, e.auth, cred(fmt.Sprintf("user%d", i), "guess", addr)); got != "wrong" {
			t.Fatalf("attempt %d from %s: %s", i, addr, got)
		}
	}
	run(t, e, e.auth, []step{
		{user: "alice", pass: "right", addr: "2001:db8:0:1ff::1", want: lockedFor(time.Second)}, // same /56
		right("2001:db8:0:200::1"), // another /56 of the /48
	})
	var locked []string
	for _, m := range e.events(t) {
		if m["msg"] == "login locked" {
			locked = append(locked, fmt.Sprintf("%s %s", m["key"], m["key_address"]))
		}
	}
	if strings.Join(locked, ",") != "prefix 2001:db8:0:100::/56" {
		t.Fatalf("locks %q, want the /56", locked)
	}
	// Twenty more from other /56s of the /48 lock the /48.
	for i := range 20 {
		addr := fmt.Sprintf("2001:db8:0:%x00::1", i+2)
		if got := e.try(t, e.auth, cred(fmt.Sprintf("other%d", i), "guess", addr)); got != "wrong" {
			t.Fatalf("attempt %d from %s: %s", i, addr, got)
		}
	}
	run(t, e, e.auth, []step{
		{user: "alice", pass: "right", addr: "2001:db8:0:ff00::1", want: lockedFor(time.Second)},
		right("2001:db8:1::1"), // another /48
		right(addrA),           // IPv4 has no prefixes
	})
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.locked[lockout.KindPrefix] != 2 || e.locked[lockout.KindAddress] != 0 || e.refused[lockout.KindPrefix] != 2 {
		t.Fatalf("locked %v refused %v", e.locked, e.refused)
	}
}

func TestNewRefusesBadPrefixes(t *testing.T) {
	t.Parallel()
	_, err := lockout.New(lockout.Options{Store: lockouttest.NewMemory(), AccountAddress: acctPolicy, Address: addrPolicy,
		Prefixes: []lockout.PrefixPolicy{{Bits: 64, Policy: addrPolicy}, {Bits: 48}}})
	for _, want := range []string{"prefix /64: an IPv6 prefix must be shorter", "prefix /48: max failures"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("New = %v, want %q", err, want)
		}
	}
}

// robotKey is an unguessable credential, as the chain's claiming backends tell them apart.
func robotKey(_ context.Context, cr authn.Credentials) bool {
	return strings.HasPrefix(string(cr.Password), "pcp_")
}

type keys struct{ users }

func (k *keys) Authenticate(ctx context.Context, c authn.Credentials) (identity.Identity, error) {
	if c.Password == "pcp_right" {
		k.calls.Add(1)
		return identity.Identity{Subject: "robot:" + c.Username}, nil
	}
	return k.users.Authenticate(ctx, c)
}

// Behind a proxy the gateway does not trust every client has one address. Wrong passwords
// lock it, but a robot key (unguessable) still logs in; wrong keys count toward the address
// (they lock it for passwords) and are never refused themselves.
func TestUnguessableNeverHeldOffByALock(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(o *lockout.Options) { o.Unguessable = robotKey })
	inner := &keys{}
	g := e.l.Guard(inner)
	auth := e.l.Gate(authn.NewCache(g, time.Hour, 100, e.clk.Now))
	for i := range addrPolicy.MaxFailures {
		if got := e.try(t, auth, cred(fmt.Sprintf("user%d", i), "guess", addrA)); got != "wrong" {
			t.Fatalf("attempt %d: %s", i, got)
		}
	}
	run(t, e, auth, []step{
		{user: "alice", pass: "right", addr: addrA, want: lockedFor(time.Second)},
		{user: "ci", pass: "pcp_right", addr: addrA, want: "ok"},
		{user: "ci", pass: "pcp_right", addr: addrA, want: "ok"}, // cached, through the gate
		{user: "ci", pass: "pcp_wrong", addr: addrA, want: "wrong"},
	})
	// Wrong keys from a fresh address count toward it: they lock it for passwords.
	for i := range addrPolicy.MaxFailures {
		if got := e.try(t, auth, cred("ci", fmt.Sprintf("pcp_guess%d", i), addrB)); got != "wrong" {
			t.Fatalf("key %d: %s", i, got)
		}
	}
	run(t, e, auth, []step{
		{user: "bob", pass: "x", addr: addrB, want: lockedFor(time.Second)},
		{user: "ci", pass: "pcp_right", addr: addrB, want: "ok"},
	})
}

// patKey is an account-bound unguessable credential: a personal access token.
func patKey(_ context.Context, cr authn.Credentials) bool {
	return strings.HasPrefix(string(cr.Password), "pat_")
}

type tokens struct{ users }

func (k *tokens) Authenticate(ctx context.Context, c authn.Credentials) (identity.Identity, error) {
	if c.Password == "pat_right" {
		k.calls.Add(1)
		return identity.Identity{Subject: c.Username}, nil
	}
	return k.users.Authenticate(ctx, c)
}

// A personal access token speaks for a person: wrong ones count toward, and a lock on, the
// person's (account, address) key like wrong passwords; but an address lock (a proxy's
// address, sprayed with passwords) never holds a right one off.
func TestAccountBoundTokens(t *testing.T) {
	t.Parallel()
	e := newEnvWith(t, func(o *lockout.Options) {
		o.Unguessable = func(ctx context.Context, cr authn.Credentials) bool { return robotKey(ctx, cr) || patKey(ctx, cr) }
		o.AccountBound = patKey
	})
	g := e.l.Guard(&tokens{})
	auth := e.l.Gate(authn.NewCache(g, time.Hour, 100, e.clk.Now))
	// The address locked by sprayed passwords: a right token still logs in.
	for i := range addrPolicy.MaxFailures {
		if got := e.try(t, auth, cred(fmt.Sprintf("user%d", i), "guess", addrA)); got != "wrong" {
			t.Fatalf("attempt %d: %s", i, got)
		}
	}
	run(t, e, auth, []step{
		{user: "carol", pass: "right", addr: addrA, want: lockedFor(time.Second)},
		{user: "alice", pass: "pat_right", addr: addrA, want: "ok"},
	})
	// Wrong tokens for bob from a fresh address lock bob's (account, address) key, for his
	// tokens and his password alike, as wrong passwords would.
	steps := []step{}
	for i := range acctPolicy.MaxFailures {
		steps = append(steps, step{user: "bob", pass: fmt.Sprintf("pat_guess%d", i), addr: addrB, want: "wrong"})
	}
	steps = append(steps,
		step{user: "bob", pass: "pat_right", addr: addrB, want: lockedFor(time.Second)},
		step{user: "bob", pass: "right", addr: addrB, want: lockedFor(time.Second)},
		step{user: "alice", pass: "pat_right", addr: addrB, want: "ok"}, // another account: not held off
		wait(time.Second),
		step{user: "bob", pass: "pat_right", addr: addrB, want: "ok"},
	)
	run(t, e, auth, steps)
	// Wrong passwords lock the account's key for its tokens too.
	run(t, e, auth, []step{
		{user: "dave", pass: "nope", addr: addrB, want: "wrong"},
		{user: "dave", pass: "nope", addr: addrB, want: "wrong"},
		{user: "dave", pass: "nope", addr: addrB, want: "wrong"},
		{user: "dave", pass: "pat_right", addr: addrB, want: lockedFor(time.Second)},
	})
}

// A check that comes back busy (the bcrypt queue was full) after its key locked, through
// failures elsewhere while it waited, is answered as locked, with when to retry.
func TestBusyWhileLockedIsLocked(t *testing.T) {
	t.Parallel()
	e := newEnv(t, nil)
	proceed, entered := make(chan struct{}), make(chan struct{})
	busy := authFunc(func(ctx context.Context, cr authn.Credentials) (identity.Identity, error) {
		close(entered)
		<-proceed
		return identity.Identity{}, authn.ErrBusy
	})
	g := e.l.Guard(busy)
	errc := make(chan error, 1)
	go func() {
		_, err := g.Authenticate(context.Background(), cred("alice", "nope", addrA))
		errc <- err
	}()
	<-entered
	for range addrPolicy.MaxFailures { // another replica's failures on the address
		if _, err := e.st.RecordFailure(context.Background(), "addr:"+addrA, e.clk.Now(), addrPolicy); err != nil {
			t.Fatal(err)
		}
	}
	close(proceed)
	err := <-errc
	// Its own attempt is taken back; the others' ten failures after it had lengthened the lock
	// to 2s (the eleventh count), which stays.
	var le *authn.LockedError
	if !errors.As(err, &le) || le.RetryAfter != 2*time.Second {
		t.Fatalf("busy while locked: %v, want locked for 2s", err)
	}
	// Not locked: busy stays busy, and the attempt is taken back.
	e2 := newEnv(t, nil)
	e2.inner.err = authn.ErrBusy
	for range acctPolicy.MaxFailures + 1 {
		if _, err := e2.auth.Authenticate(context.Background(), cred("alice", "nope", addrA)); !errors.Is(err, authn.ErrBusy) {
			t.Fatalf("busy: %v", err)
		}
	}
}

// With trusted_proxies empty, most failures from one private address log a warning, once a
// minute at most; public addresses, few failures, or the option off, none.
func TestWarnSharedAddress(t *testing.T) {
	t.Parallel()
	warnings := func(e *env) int {
		n := 0
		for _, m := range e.events(t) {
			if m["level"] == "WARN" && strings.Contains(fmt.Sprint(m["msg"]), "trusted_proxies") {
				n++
			}
		}
		return n
	}
	fail := func(e *env, n int, addr string) {
		for i := range n {
			e.try(t, e.auth, cred(fmt.Sprintf("u%d", i), "x", addr))
		}
	}
	e := newEnvWith(t, func(o *lockout.Options) {
		o.WarnSharedAddress = true
		o.Address.MaxFailures = 1000
	})
	fail(e, 10, "10.1.2.3:5000")
	fail(e, 9, addrB)
	if n := warnings(e); n != 0 {
		t.Fatalf("%d warnings after 19 failures", n)
	}
	fail(e, 30, "10.1.2.3")
	if n := warnings(e); n != 1 {
		t.Fatalf("%d warnings, want 1 (at most once a minute)", n)
	}
	e.clk.Add(time.Minute)
	fail(e, 25, "10.1.2.3")
	if n := warnings(e); n != 2 {
		t.Fatalf("%d warnings a minute later, want 2", n)
	}
	for _, m := range e.events(t) {
		if m["level"] == "WARN" && m["address"] != "10.1.2.3" {
			t.Fatalf("warning names %v", m["address"])
		}
	}
	pub := newEnvWith(t, func(o *lockout.Options) { o.WarnSharedAddress = true; o.Address.MaxFailures = 1000 })
	fail(pub, 50, addrB)
	off := newEnvWith(t, func(o *lockout.Options) { o.Address.MaxFailures = 1000 })
	fail(off, 50, "10.1.2.3")
	if warnings(pub)+warnings(off) != 0 {
		t.Fatal("warned for a public address, or with the option off")
	}
}

type authFunc func(ctx context.Context, cr authn.Credentials) (identity.Identity, error)

func (f authFunc) Authenticate(ctx context.Context, cr authn.Credentials) (identity.Identity, error) {
	return f(ctx, cr)
}

// workload is a backend whose credentials are JWT-shaped and may come as subject tokens (a
// token exchange), as the oidc backend's: it accepts eyJ.right.sig.
type workload struct {
	authn.UnimplementedBackend
	calls atomic.Int32
}

func (w *workload) Authenticate(_ context.Context, c authn.Credentials) (identity.Identity, error) {
	w.calls.Add(1)
	if c.Password == "eyJ.right.sig" {
		return identity.Identity{Subject: "job"}, nil
	}
	return identity.Identity{}, authn.ErrInvalidCredentials
}
func (w *workload) Claiming() bool             { return true }
func (w *workload) AcceptsSubjectTokens() bool { return true }
func (w *workload) ClaimsCredential(_ context.Context, c authn.Credentials) bool {
	return strings.HasPrefix(string(c.Password), "eyJ")
}

// A workload JWT exchanged as a subject token is as unguessable as one sent as a password
// (the chain's Claimed, as the application wires it): an address locked by wrong passwords
// does not hold it off, and wrong ones count toward the address.
func TestSubjectTokensNeverHeldOffByALock(t *testing.T) {
	t.Parallel()
	h, err := bcrypt.GenerateFromPassword([]byte("right"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	people, err := (&static.Config{Users: []static.User{{Name: "alice", PasswordHash: string(h)}}}).Open(context.Background(), authn.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	ch := authn.NewChain([]authn.Member{{Name: "users", Backend: people}, {Name: "ci", Backend: &workload{}}}, nil)
	e := newEnvWith(t, func(o *lockout.Options) { o.Unguessable = ch.Claimed })
	auth := e.l.Gate(authn.NewCache(e.l.Guard(ch), time.Hour, 100, e.clk.Now))
	exchange := func(tok, addr string) string {
		return e.try(t, auth, authn.Credentials{Kind: authn.KindSubjectToken, Password: authn.Password(tok), RemoteAddr: addr, Service: "registry.local"})
	}
	for i := range addrPolicy.MaxFailures {
		if got := e.try(t, auth, cred(fmt.Sprintf("user%d", i), "guess", addrA)); got != "wrong" {
			t.Fatalf("attempt %d: %s", i, got)
		}
	}
	if got := e.try(t, auth, cred("alice", "right", addrA)); got != lockedFor(time.Second) {
		t.Fatalf("a password from the locked address: %s", got)
	}
	for i, want := range []string{"ok", "ok", "wrong"} { // the second from the cache, through the gate
		tok := "eyJ.right.sig"
		if want == "wrong" {
			tok = "eyJ.wrong.sig"
		}
		if got := exchange(tok, addrA); got != want {
			t.Fatalf("subject token %d from the locked address: %s, want %s", i, got, want)
		}
	}
	for i := range addrPolicy.MaxFailures {
		if got := exchange(fmt.Sprintf("eyJ.guess%d.sig", i), addrB); got != "wrong" {
			t.Fatalf("subject token guess %d: %s", i, got)
		}
	}
	if got := e.try(t, auth, cred("bob", "x", addrB)); got != lockedFor(time.Second) {
		t.Fatalf("wrong subject tokens did not count toward the address: a password from it is %s", got)
	}
}
