package robot_test

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	yaml "go.yaml.in/yaml/v3"
	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
	"github.com/portcullis-dev/portcullis/services/authn/backend/backendtest"
	"github.com/portcullis-dev/portcullis/services/authn/backend/robot"
	"github.com/portcullis-dev/portcullis/services/authn/backend/static"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/robots/robotstest"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/storage/sqlite"
)

func newClock() *testutil.Clock {
	return testutil.NewClock(time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC))
}

// open is the backend over a Manager on st, with clk.
func open(t *testing.T, st robots.Store, clk *testutil.Clock) (authn.Backend, *robots.Manager) {
	t.Helper()
	m := robots.NewManager(st, robots.Options{Now: clk.Now})
	t.Cleanup(func() { _ = m.Close(context.Background()) })
	a, err := (&robot.Config{}).Open(context.Background(), authn.Deps{Robots: m, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	return a, m
}

func creds(user, key string) authn.Credentials {
	return authn.Credentials{Username: user, Password: authn.Password(key), RemoteAddr: "192.0.2.1:5000"}
}

// The backend against the SQLite store: a good key is its robot's identity; a wrong,
// expired or revoked one, or another robot's name, is ErrInvalidCredentials.
func TestAuthenticate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	st, err := (&sqlite.Config{Path: filepath.Join(t.TempDir(), "state.db")}).Open(ctx, sessions.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close(ctx) })
	clk := newClock()
	a, m := open(t, st.(robots.Provider).RobotStore(), clk)
	create := func(spec robots.Spec) string {
		key, _, err := m.Create(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	good := create(robots.Spec{Name: "ci", Groups: []string{"ci", "pushers"}, Labels: map[string]string{"team": "platform"}})
	other := create(robots.Spec{Name: "mirror"})
	expiring := create(robots.Spec{Name: "temp", ExpiresIn: time.Hour})
	revoked := create(robots.Spec{Name: "gone"})
	if _, _, err := m.Revoke(ctx, "gone"); err != nil {
		t.Fatal(err)
	}
	unknown, _ := robots.NewKey()

	id, err := a.Authenticate(ctx, creds("ci", good))
	if err != nil {
		t.Fatalf("good key: %v", err)
	}
	if id.Subject != "robot:ci" || id.Anonymous || len(id.Groups) != 2 || id.Groups[1] != "pushers" || !slices.Equal(id.Labels["team"], []string{"platform"}) ||
		!id.ValidUntil.Equal(clk.Now().Add(time.Second)) {
		t.Fatalf("identity = %+v", id)
	}
	if id, err := a.Authenticate(ctx, creds("temp", expiring)); err != nil || id.Subject != "robot:temp" {
		t.Fatalf("a key expiring in an hour: %+v, %v", id, err)
	}
	clk.Add(time.Hour)
	for _, tc := range []struct {
		name string
		cr   authn.Credentials
		want error
	}{
		{"wrong key", creds("ci", unknown), authn.ErrInvalidCredentials},
		{"key of another robot", creds("ci", other), authn.ErrInvalidCredentials},
		{"malformed key", creds("ci", "pcp_"+strings.Repeat("x", 10)), authn.ErrInvalidCredentials},
		{"expired", creds("temp", expiring), authn.ErrInvalidCredentials},
		{"revoked", creds("gone", revoked), authn.ErrInvalidCredentials},
		{"a password is not a robot's", creds("ci", "alice-pw"), authn.ErrNoMatch},
	} {
		if _, err := a.Authenticate(ctx, tc.cr); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	if _, err := a.Authenticate(ctx, creds("ci", good)); err != nil {
		t.Fatalf("good key an hour later: %v", err)
	}
}

func TestClaimsCredential(t *testing.T) {
	t.Parallel()
	a, _ := open(t, robotstest.NewMemory(), newClock())
	cl, ok := a, a.Claiming()
	if !ok {
		t.Fatal("the robot backend does not claim credentials")
	}
	key, _ := robots.NewKey()
	for _, tc := range []struct {
		pw   string
		want bool
	}{{key, true}, {"pcp_malformed", true}, {"pcr_" + key[4:], false}, {"alice-pw", false}, {"", false}, {"eyJhbGciOiJSUzI1NiJ9.e30.sig", false}} {
		if got := cl.ClaimsCredential(context.Background(), creds("ci", tc.pw)); got != tc.want {
			t.Errorf("ClaimsCredential(%q) = %v, want %v", tc.pw, got, tc.want)
		}
	}
}

// In a chain with a password backend, robot keys, good and bad, cost no bcrypt: they are
// checked while the only bcrypt slot is taken and nobody may queue, so any bcrypt work
// would be turned away (Busy).
func TestChainSendsKeysPastBcrypt(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	lim := authn.NewBcryptLimiter(1, 0)
	var turnedAway atomic.Int32
	lim.Busy = func() { turnedAway.Add(1) }
	h, err := bcrypt.GenerateFromPassword([]byte("alice-pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	people, err := (&static.Config{Users: []static.User{{Name: "ci", PasswordHash: string(h)}}}).Open(ctx, authn.Deps{Bcrypt: lim, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	st := robotstest.NewMemory()
	machines, m := open(t, st, clk)
	key, _, err := m.Create(ctx, robots.Spec{Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	// The password backend first, and it has a user named like the robot: a key must not
	// reach it even so.
	ch := authn.NewChain([]authn.Member{{Name: "people", Backend: people}, {Name: "robots", Backend: machines}}, lim)
	release := backendtest.Hold(t, lim)
	id, err := ch.Authenticate(ctx, creds("ci", key))
	if err != nil || id.Subject != "robot:ci" || id.Backend != "robots" {
		t.Fatalf("good key while bcrypt is saturated: %+v, %v", id, err)
	}
	unknown, _ := robots.NewKey()
	for name, pw := range map[string]string{"unknown key": unknown, "malformed key": "pcp_x"} {
		if _, err := ch.Authenticate(ctx, creds("ci", pw)); !errors.Is(err, authn.ErrInvalidCredentials) {
			t.Errorf("%s: %v, want ErrInvalidCredentials without bcrypt", name, err)
		}
	}
	if n := turnedAway.Load(); n != 0 {
		t.Fatalf("%d bcrypt comparisons were attempted for robot keys", n)
	}
	// A password still goes to the password backend, which now needs the slot.
	if _, err := ch.Authenticate(ctx, creds("ci", "alice-pw")); !errors.Is(err, authn.ErrBusy) {
		t.Fatalf("a password while bcrypt is saturated: %v, want ErrBusy", err)
	}
	release()
	if id, err := ch.Authenticate(ctx, creds("ci", "alice-pw")); err != nil || id.Subject != "ci" {
		t.Fatalf("the password user: %+v, %v", id, err)
	}
}

// The login cache keeps a robot's login for at most a second however long its TTL, so a
// revocation (here straight in the store, as another replica would make it) is refused
// within a second; the backend itself sees it at the next call.
func TestRevocationWithinASecond(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	st := robotstest.NewMemory()
	a, m := open(t, st, clk)
	key, _, err := m.Create(ctx, robots.Spec{Name: "ci", ExpiresIn: 24 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := authn.NewCache(authn.NewChain([]authn.Member{{Name: "robots", Backend: a}}, nil), time.Hour, 100, clk.Now)
	var misses atomic.Int32
	c.Miss = func() { misses.Add(1) }
	for range 3 {
		if _, err := c.Authenticate(ctx, creds("ci", key)); err != nil {
			t.Fatal(err)
		}
	}
	if misses.Load() != 1 {
		t.Fatalf("misses = %d, want 1 (within the second, from the cache)", misses.Load())
	}
	if _, _, err := st.Revoke(ctx, "ci", clk.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Authenticate(ctx, creds("ci", key)); !errors.Is(err, authn.ErrInvalidCredentials) {
		t.Fatalf("the backend right after the revocation: %v, want refused", err)
	}
	clk.Add(time.Second)
	if _, err := c.Authenticate(ctx, creds("ci", key)); !errors.Is(err, authn.ErrInvalidCredentials) {
		t.Fatalf("through the cache a second after the revocation: %v, want refused", err)
	}
}

// The cache never keeps a robot past its expiry, even within the second.
func TestCacheEndsAtExpiry(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	clk := newClock()
	a, m := open(t, robotstest.NewMemory(), clk)
	key, _, err := m.Create(ctx, robots.Spec{Name: "ci", ExpiresIn: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	c := authn.NewCache(authn.NewChain([]authn.Member{{Name: "robots", Backend: a}}, nil), time.Hour, 100, clk.Now)
	clk.Add(time.Hour - 100*time.Millisecond)
	if _, err := c.Authenticate(ctx, creds("ci", key)); err != nil {
		t.Fatal(err)
	}
	clk.Add(100 * time.Millisecond)
	if _, err := c.Authenticate(ctx, creds("ci", key)); !errors.Is(err, authn.ErrInvalidCredentials) {
		t.Fatalf("at expiry, 100ms after a cached login: %v, want refused", err)
	}
}

func TestStoreDownIsUnavailable(t *testing.T) {
	t.Parallel()
	st := robotstest.NewMemory()
	a, m := open(t, st, newClock())
	key, _, err := m.Create(context.Background(), robots.Spec{Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	st.Fail(errors.New("database is locked"))
	if _, err := a.Authenticate(context.Background(), creds("ci", key)); !errors.Is(err, authn.ErrUnavailable) || errors.Is(err, authn.ErrInvalidCredentials) {
		t.Fatalf("store down: %v, want ErrUnavailable", err)
	}
}

func TestOpenAndConfig(t *testing.T) {
	t.Parallel()
	if _, err := (&robot.Config{}).Open(context.Background(), authn.Deps{}); err == nil || !strings.Contains(err.Error(), "authn.store") {
		t.Fatalf("Open without a store: %v, want an error naming sessions.store", err)
	}
	for _, tc := range []struct {
		doc  string
		want string // "" = decodes
	}{
		{"name: robots\ntype: robot\n", ""},
		{"name: robots\ntype: robot\nconfig: {}\n", ""},
		{"name: robots\ntype: robot\nconfig: {ttl: 1s}\n", "ttl"},
	} {
		var s backend.Spec
		if err := yaml.Unmarshal([]byte(tc.doc), &s); err != nil {
			t.Fatal(err)
		}
		bc, err := backend.Decode(s)
		switch {
		case tc.want == "" && (err != nil || len(bc.Validate()) != 0):
			t.Errorf("%q: %v", tc.doc, err)
		case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%q: %v, want an error about %q", tc.doc, err, tc.want)
		}
	}
}
