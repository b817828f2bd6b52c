package authn_test

import (
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
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend/backendtest"
	"github.com/portcullis-dev/portcullis/services/authn/backend/static"
)

type fake struct {
	authn.UnimplementedBackend
	user, pass string
	err        error
	calls      int
}

func (f *fake) Authenticate(_ context.Context, c authn.Credentials) (identity.Identity, error) {
	f.calls++
	if f.err != nil {
		return identity.Identity{}, f.err
	}
	if c.Username != f.user {
		return identity.Identity{}, authn.ErrNoMatch
	}
	if string(c.Password) != f.pass {
		return identity.Identity{}, authn.ErrInvalidCredentials
	}
	return identity.Identity{Subject: f.user}, nil
}

func TestChain(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		user, pass  string
		second      *fake
		wantErr     error
		wantBackend string
	}{
		{"first backend decides", "a", "pa", &fake{user: "b", pass: "pb"}, nil, "one"},
		{"falls through to second", "b", "pb", &fake{user: "b", pass: "pb"}, nil, "two"},
		{"wrong password ends chain", "a", "x", &fake{user: "a", pass: "x"}, authn.ErrInvalidCredentials, ""},
		{"nobody knows the user: deny", "z", "z", &fake{user: "b", pass: "pb"}, authn.ErrInvalidCredentials, ""},
		{"unavailable backend is not a deny", "b", "pb", &fake{err: authn.ErrUnavailable}, authn.ErrUnavailable, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := authn.NewChain([]authn.Member{{Name: "one", Backend: &fake{user: "a", pass: "pa"}}, {Name: "two", Backend: tc.second}}, nil)
			id, err := c.Authenticate(context.Background(), authn.Credentials{Username: tc.user, Password: authn.Password(tc.pass)})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && id.Backend != tc.wantBackend {
				t.Fatalf("backend = %q, want %q", id.Backend, tc.wantBackend)
			}
		})
	}
}

func TestCacheSkipsBackendOnlyForVerifiedCredentials(t *testing.T) {
	t.Parallel()
	now := time.Unix(1000, 0)
	f := &fake{user: "a", pass: "pa"}
	c := authn.NewCache(f, time.Minute, 10, func() time.Time { return now })
	ctx := context.Background()
	auth := func(u, p string) error {
		_, err := c.Authenticate(ctx, authn.Credentials{Username: u, Password: authn.Password(p)})
		return err
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(auth("a", "pa"))
	must(auth("a", "pa"))
	if f.calls != 1 {
		t.Fatalf("backend calls = %d, want 1 (second answer from cache)", f.calls)
	}
	if err := auth("a", "wrong"); !errors.Is(err, authn.ErrInvalidCredentials) {
		t.Fatalf("wrong password after cached success: %v", err)
	}
	_ = auth("a", "wrong")
	if f.calls != 3 {
		t.Fatalf("failures must not be cached: calls = %d, want 3", f.calls)
	}
	now = now.Add(2 * time.Minute)
	must(auth("a", "pa"))
	if f.calls != 4 {
		t.Fatalf("expired entry served: calls = %d", f.calls)
	}
	c.Purge()
	must(auth("a", "pa"))
	if f.calls != 5 {
		t.Fatalf("purged entry served: calls = %d", f.calls)
	}
	// A user/password split differently must not collide with a cached entry.
	f.user, f.pass = "ap", "a"
	if err := auth("ap", "a"); err != nil {
		t.Fatal(err)
	}
	if f.calls != 6 {
		t.Fatal("(a,pa) and (ap,a) share a cache key")
	}
}

func TestCacheBounded(t *testing.T) {
	t.Parallel()
	f := &fake{user: "a", pass: "pa"}
	c := authn.NewCache(f, time.Minute, 3, time.Now)
	for i := 0; i < 10; i++ {
		f.user = string(rune('a' + i))
		_, _ = c.Authenticate(context.Background(), authn.Credentials{Username: f.user, Password: "pa"})
	}
	if c.Len() > 3 {
		t.Fatalf("cache grew to %d entries, max 3", c.Len())
	}
}

// A password must not print however it reaches a formatter: alone, inside Credentials (by
// value or pointer), in a slice, with any verb (a wrong verb makes fmt print the raw value
// unless the type formats itself), as JSON, or through slog's text and JSON handlers.
// %p is left out: fmt prints a non-pointer's value for it without asking the type.
func TestPasswordNeverPrints(t *testing.T) {
	t.Parallel()
	const secret = "hunter2"
	p := authn.Password(secret)
	c := authn.Credentials{Username: "alice", Password: p}
	var out []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%X", "%d", "%U", "%c", "%t", "%e", "%g", "%b", "%o", "%T", "%10s", "%-8v", "%.3s"} {
		for _, arg := range []any{p, c, &c, []authn.Password{p}, struct{ P authn.Password }{p}} {
			out = append(out, verb+" "+fmt.Sprintf(verb, arg))
		}
	}
	out = append(out, p.String(), p.GoString(), p.LogValue().String(), fmt.Sprint(p), fmt.Sprintln(c), fmt.Errorf("login %v: %w", c, errors.New("x")).Error())
	for _, v := range []any{p, c, &c} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, string(b))
	}
	var logs strings.Builder
	for _, h := range []slog.Handler{slog.NewTextHandler(&logs, nil), slog.NewJSONHandler(&logs, nil)} {
		slog.New(h).Info("login", "password", p, "credentials", c, "ptr", &c, "any", slog.AnyValue(c))
	}
	out = append(out, logs.String())
	for _, s := range out {
		if strings.Contains(s, secret) {
			t.Errorf("password printed: %s", s)
		}
	}
}

func bcryptHash(t *testing.T, pw string, cost int) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte(pw), cost)
	if err != nil {
		t.Fatal(err)
	}
	return string(h)
}

func openStatic(t *testing.T, deps authn.Deps, users ...static.User) authn.Backend {
	t.Helper()
	a, err := (&static.Config{Users: users}).Open(context.Background(), deps)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// Response time must not tell who exists, with users hashed at different costs within a
// backend and across backends: every answer that involves bcrypt costs the work of one
// comparison at the chain's highest cost, which is what an unknown user pays. Work is counted
// by cost (bcrypt's work is 2^cost) through the comparison hook, not timed.
func TestEveryAnswerCostsTheChainsHighestBcryptWork(t *testing.T) {
	t.Parallel()
	const lo, mid, hi = bcrypt.MinCost, bcrypt.MinCost + 1, bcrypt.MinCost + 2
	lim := authn.NewBcryptLimiter(2, 8)
	var mu sync.Mutex
	work := 0
	authn.SetCompare(lim, func(hash, pw []byte) error {
		cost, err := bcrypt.Cost(hash)
		if err != nil {
			t.Errorf("comparison against a non-bcrypt hash: %v", err)
		}
		mu.Lock()
		work += 1 << cost
		mu.Unlock()
		return bcrypt.CompareHashAndPassword(hash, pw)
	})
	deps := authn.Deps{Bcrypt: lim}
	cheap := openStatic(t, deps, static.User{Name: "alice", PasswordHash: bcryptHash(t, "alice-pw", lo)})
	dear := openStatic(t, deps,
		static.User{Name: "bob", PasswordHash: bcryptHash(t, "bob-pw", hi)},
		static.User{Name: "carol", PasswordHash: bcryptHash(t, "carol-pw", mid)})
	ch := authn.NewChain([]authn.Member{{Name: "cheap", Backend: cheap}, {Name: "dear", Backend: dear}}, lim)
	cases := []struct {
		name, user, pass string
		wantErr          error
	}{
		{"unknown user", "mallory", "x", authn.ErrInvalidCredentials},
		{"cheapest hash, wrong password", "alice", "x", authn.ErrInvalidCredentials},
		{"cheapest hash, right password", "alice", "alice-pw", nil},
		{"dearest hash, wrong password", "bob", "x", authn.ErrInvalidCredentials},
		{"dearest hash, right password", "bob", "bob-pw", nil},
		{"middle hash in the second backend, wrong password", "carol", "x", authn.ErrInvalidCredentials},
		{"middle hash in the second backend, right password", "carol", "carol-pw", nil},
	}
	for _, tc := range cases { // sequential: they share the work counter
		mu.Lock()
		work = 0
		mu.Unlock()
		_, err := ch.Authenticate(context.Background(), authn.Credentials{Username: tc.user, Password: authn.Password(tc.pass)})
		if !errors.Is(err, tc.wantErr) {
			t.Fatalf("%s: err = %v, want %v", tc.name, err, tc.wantErr)
		}
		mu.Lock()
		got := work
		mu.Unlock()
		if got != 1<<hi {
			t.Errorf("%s: bcrypt work %d, want %d (one comparison at cost %d, what an unknown user pays)", tc.name, got, 1<<hi, hi)
		}
	}
}

// The unknown user's comparison is bcrypt work too: it waits for the limiter like any other.
func TestUnknownUsersComparisonWaitsForTheLimiter(t *testing.T) {
	t.Parallel()
	lim := authn.NewBcryptLimiter(1, 0)
	a := openStatic(t, authn.Deps{Bcrypt: lim}, static.User{Name: "alice", PasswordHash: bcryptHash(t, "pw", bcrypt.MinCost)})
	ch := authn.NewChain([]authn.Member{{Name: "s", Backend: a}}, lim)
	release := backendtest.Hold(t, lim)
	for _, user := range []string{"alice", "mallory"} {
		if _, err := ch.Authenticate(context.Background(), authn.Credentials{Username: user, Password: "x"}); !errors.Is(err, authn.ErrBusy) {
			t.Fatalf("%s with every slot taken: err = %v, want ErrBusy", user, err)
		}
	}
	release()
	if _, err := ch.Authenticate(context.Background(), authn.Credentials{Username: "mallory", Password: "x"}); !errors.Is(err, authn.ErrInvalidCredentials) {
		t.Fatalf("unknown user: err = %v", err)
	}
}

// claimer is a backend with credentials of its own shape: passwords starting with prefix.
type claimer struct {
	prefix string
	fake
}

func (c *claimer) Claiming() bool { return true }

func (c *claimer) ClaimsCredential(_ context.Context, cr authn.Credentials) bool {
	return strings.HasPrefix(string(cr.Password), c.prefix)
}

// countingLimiter is a limiter whose every bcrypt comparison is counted.
func countingLimiter() (*authn.BcryptLimiter, *atomic.Int32) {
	lim := authn.NewBcryptLimiter(1, 8)
	var n atomic.Int32
	authn.SetCompare(lim, func(hash, pw []byte) error {
		n.Add(1)
		return bcrypt.CompareHashAndPassword(hash, pw)
	})
	return lim, &n
}

// A claimed credential goes to the claiming backends only, and costs no bcrypt whatever the
// answer; any other credential never reaches them.
func TestChainRoutesClaimedCredentials(t *testing.T) {
	t.Parallel()
	const jwt = "eyJhbGciOiJSUzI1NiJ9.e30.c2ln"
	cases := []struct {
		name        string
		pass        string
		robots, ci  *claimer
		wantErr     error
		wantBackend string
		wantBcrypt  bool
	}{
		{"JWT accepted", jwt, &claimer{"pcp_", fake{user: "x"}}, &claimer{"eyJ", fake{user: "alice", pass: jwt}}, nil, "ci", false},
		{"JWT refused by its backend", jwt, &claimer{"pcp_", fake{user: "x"}}, &claimer{"eyJ", fake{user: "alice", pass: "other"}}, authn.ErrInvalidCredentials, "", false},
		{"JWT nobody accepts", jwt, &claimer{"pcp_", fake{user: "x"}}, &claimer{"eyJ", fake{user: "bob"}}, authn.ErrInvalidCredentials, "", false},
		{"JWT backend unavailable", jwt, &claimer{"pcp_", fake{}}, &claimer{"eyJ", fake{err: authn.ErrUnavailable}}, authn.ErrUnavailable, "", false},
		{"robot key with no backend accepting it", "pcp_0123456789", &claimer{"pcp_", fake{user: "robot"}}, &claimer{"eyJ", fake{}}, authn.ErrInvalidCredentials, "", false},
		{"robot key accepted", "pcp_0123456789", &claimer{"pcp_", fake{user: "alice", pass: "pcp_0123456789"}}, &claimer{"eyJ", fake{}}, nil, "robots", false},
		{"password", "pw", &claimer{"pcp_", fake{user: "alice", pass: "pw"}}, &claimer{"eyJ", fake{user: "alice", pass: "pw"}}, nil, "people", true},
		{"unknown user's password", "pw", &claimer{"pcp_", fake{user: "nobody", pass: "pw"}}, &claimer{"eyJ", fake{user: "nobody", pass: "pw"}}, authn.ErrInvalidCredentials, "", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lim, compares := countingLimiter()
			people := openStatic(t, authn.Deps{Bcrypt: lim}, static.User{Name: "alice", PasswordHash: bcryptHash(t, "pw", bcrypt.MinCost)})
			ch := authn.NewChain([]authn.Member{
				{Name: "people", Backend: people}, // first: claimed credentials must skip it
				{Name: "robots", Backend: tc.robots},
				{Name: "ci", Backend: tc.ci},
			}, lim)
			user := "alice"
			if tc.name == "unknown user's password" {
				user = "mallory"
			}
			id, err := ch.Authenticate(context.Background(), authn.Credentials{Username: user, Password: authn.Password(tc.pass)})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err == nil && id.Backend != tc.wantBackend {
				t.Fatalf("backend = %q, want %q", id.Backend, tc.wantBackend)
			}
			if got := compares.Load() > 0; got != tc.wantBcrypt {
				t.Fatalf("bcrypt comparisons: %d, want some: %v", compares.Load(), tc.wantBcrypt)
			}
			claimed := strings.HasPrefix(tc.pass, "pcp_") || strings.HasPrefix(tc.pass, "eyJ")
			if !claimed && tc.robots.calls+tc.ci.calls > 0 {
				t.Fatalf("a password reached claiming backends (%d, %d calls)", tc.robots.calls, tc.ci.calls)
			}
			if strings.HasPrefix(tc.pass, "pcp_") && tc.ci.calls > 0 || strings.HasPrefix(tc.pass, "eyJ") && tc.robots.calls > 0 {
				t.Fatal("a credential reached a backend that does not claim it")
			}
		})
	}
}

// Several backends may claim the same credential (one workload backend per group of
// issuers): they are asked in order, the first that knows it decides.
func TestChainClaimersInOrder(t *testing.T) {
	t.Parallel()
	first := &claimer{"eyJ", fake{user: "other"}}
	second := &claimer{"eyJ", fake{user: "ci", pass: "eyJx"}}
	third := &claimer{"eyJ", fake{user: "ci", pass: "eyJx"}}
	ch := authn.NewChain([]authn.Member{{Name: "a", Backend: first}, {Name: "b", Backend: second}, {Name: "c", Backend: third}}, nil)
	id, err := ch.Authenticate(context.Background(), authn.Credentials{Username: "ci", Password: "eyJx"})
	if err != nil || id.Backend != "b" {
		t.Fatalf("id = %+v, err = %v; want backend b", id, err)
	}
	if first.calls != 1 || third.calls != 0 {
		t.Fatalf("calls = %d, %d; want 1, 0", first.calls, third.calls)
	}
}

// A claimed credential nobody accepts is denied at once, even while bcrypt is saturated.
func TestClaimedCredentialDeniedWithoutWaitingForBcrypt(t *testing.T) {
	t.Parallel()
	lim := authn.NewBcryptLimiter(1, 0)
	a := openStatic(t, authn.Deps{Bcrypt: lim}, static.User{Name: "alice", PasswordHash: bcryptHash(t, "pw", bcrypt.MinCost)})
	ch := authn.NewChain([]authn.Member{{Name: "s", Backend: a}, {Name: "robots", Backend: &claimer{"pcp_", fake{user: "robot"}}}}, lim)
	defer backendtest.Hold(t, lim)()
	if _, err := ch.Authenticate(context.Background(), authn.Credentials{Username: "alice", Password: "pcp_guess"}); !errors.Is(err, authn.ErrInvalidCredentials) {
		t.Fatalf("err = %v, want ErrInvalidCredentials (not ErrBusy: no bcrypt for a claimed credential)", err)
	}
}

// A backend that checks passwords without bcrypt (a directory bind) refuses a wrong password
// in about a millisecond, while an unknown user pays a bcrypt comparison: the chain pays one
// for the directory's refusal too, so the time of a wrong password does not tell who exists.
func TestDirectoryRefusalCostsWhatAnUnknownUserCosts(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, user, pass string
		wantErr          error
		wantCompares     int32
	}{
		{"unknown user", "mallory", "x", authn.ErrInvalidCredentials, 1},
		{"directory user, wrong password", "dora", "x", authn.ErrInvalidCredentials, 1},
		{"directory user, right password", "dora", "dora-pw", nil, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			lim, compares := countingLimiter()
			dir := &fake{user: "dora", pass: "dora-pw"} // BcryptCost 0: like the LDAP backend
			ch := authn.NewChain([]authn.Member{{Name: "dir", Backend: dir}}, lim)
			_, err := ch.Authenticate(context.Background(), authn.Credentials{Username: tc.user, Password: authn.Password(tc.pass)})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if got := compares.Load(); got != tc.wantCompares {
				t.Fatalf("bcrypt comparisons = %d, want %d", got, tc.wantCompares)
			}
		})
	}
}
