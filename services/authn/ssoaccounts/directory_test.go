package ssoaccounts_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/internal/testutil"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts/ssoaccountstest"
)

// memory is the shared in-memory store, with a peek for the tests.
type memory struct{ *ssoaccountstest.Memory }

func (s memory) has(subject string) (ssoaccounts.Account, bool) {
	a, err := s.Get(context.Background(), subject)
	return a, err == nil
}

// idp is a Revalidator that answers with err, or vouches with groups and a rotated token.
type idp struct {
	mu     sync.Mutex
	calls  atomic.Int32
	sealed [][]byte // the tokens it was asked with
	err    error
	groups []string // nil: no ID token with the refresh
	rotate bool
	gate   chan struct{} // when set, each call waits for it
	before func()        // runs inside each call, before the answer
}

func (p *idp) Revalidate(ctx context.Context, subject string, sealed []byte) (*sso.Revalidation, error) {
	n := p.calls.Add(1)
	p.mu.Lock()
	p.sealed = append(p.sealed, sealed)
	p.mu.Unlock()
	if p.gate != nil {
		<-p.gate
	}
	if p.before != nil {
		p.before()
	}
	if p.err != nil {
		return nil, p.err
	}
	out := &sso.Revalidation{SealedRefreshToken: sealed}
	if p.rotate {
		out.SealedRefreshToken = fmt.Appendf(nil, "sealed-%d", n)
	}
	if p.groups != nil {
		out.Identity = &identity.Identity{Subject: subject, Groups: p.groups, Labels: map[string][]string{"team": {"new"}}, Backend: sso.Backend}
	}
	return out, nil
}

// answer is what an idp says.
type answer struct {
	err    error
	groups []string
	rotate bool
}

type ended struct {
	mu    sync.Mutex
	calls []string // subject/reason
}

func (e *ended) record(_ context.Context, subject, reason string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls = append(e.calls, subject+"/"+reason)
}

func (e *ended) got() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return slices.Clone(e.calls)
}

const interval = time.Hour

var start = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

type env struct {
	d     *ssoaccounts.Directory
	st    memory
	idp   *idp
	clock *testutil.Clock
	ended *ended
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{st: memory{ssoaccountstest.NewMemory()}, idp: &idp{}, clock: testutil.NewClock(start), ended: &ended{}}
	e.d = ssoaccounts.NewDirectory(ssoaccounts.DirectoryOptions{
		Store: e.st, IdP: e.idp, Interval: interval, Now: e.clock.Now, Ended: e.ended.record,
	})
	return e
}

// signIn signs alice in now, with groups dev and the token "sealed-0".
func (e *env) signIn(t *testing.T, subject string) identity.Identity {
	t.Helper()
	id, err := e.d.SignedIn(context.Background(), &sso.SignIn{
		Identity:   identity.Identity{Subject: subject, Groups: []string{"dev"}, Labels: map[string][]string{"team": {"old"}}, Backend: sso.Backend},
		IDPSubject: "idp-" + subject, SessionID: "sid-" + subject, SealedRefreshToken: []byte("sealed-0"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestResolve(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		after   time.Duration // since the sign-in
		answer  answer
		wantErr error
		// After the call:
		wantCalls  int32
		wantGroups []string // of the identity returned and the account kept
		wantSealed string   // the account's token; "" with the account gone
		wantEnded  []string
	}{
		{name: "inside the interval: the IdP is not asked", after: interval - time.Second,
			answer:     answer{err: errors.New("must not be called")},
			wantGroups: []string{"dev"}, wantSealed: "sealed-0"},
		{name: "at the interval: revalidated, groups and token updated", after: interval,
			answer:    answer{groups: []string{"ops"}, rotate: true},
			wantCalls: 1, wantGroups: []string{"ops"}, wantSealed: "sealed-1"},
		{name: "revalidated without an ID token: groups kept", after: 3 * interval,
			answer:    answer{rotate: true},
			wantCalls: 1, wantGroups: []string{"dev"}, wantSealed: "sealed-1"},
		{name: "revalidated without rotation: token kept", after: interval,
			answer:    answer{groups: []string{"ops"}},
			wantCalls: 1, wantGroups: []string{"ops"}, wantSealed: "sealed-0"},
		{name: "ended at the IdP", after: interval,
			answer:  answer{err: fmt.Errorf("%w: invalid_grant", sso.ErrAccountEnded)},
			wantErr: ssoaccounts.ErrEnded, wantCalls: 1, wantEnded: []string{"alice/" + ssoaccounts.EndedAtIdP}},
		{name: "token does not open", after: interval,
			answer:  answer{err: sso.ErrUnsealable},
			wantErr: ssoaccounts.ErrEnded, wantCalls: 1, wantEnded: []string{"alice/" + ssoaccounts.EndedUnsealable}},
		{name: "IdP unavailable: refused, account kept", after: interval,
			answer:  answer{err: fmt.Errorf("%w: 503", sso.ErrUnavailable)},
			wantErr: ssoaccounts.ErrUnavailable, wantCalls: 1, wantGroups: []string{"dev"}, wantSealed: "sealed-0"},
		{name: "an unclassified IdP error counts as unavailable", after: interval,
			answer:  answer{err: errors.New("surprise")},
			wantErr: ssoaccounts.ErrUnavailable, wantCalls: 1, wantGroups: []string{"dev"}, wantSealed: "sealed-0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			signedIn := e.signIn(t, "alice")
			e.idp.err, e.idp.groups, e.idp.rotate = tc.answer.err, tc.answer.groups, tc.answer.rotate
			e.clock.Add(tc.after)
			id, err := e.d.Resolve(context.Background(), "alice")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Resolve: %v, want %v", err, tc.wantErr)
			}
			if got := e.idp.calls.Load(); got != tc.wantCalls {
				t.Errorf("IdP asked %d times, want %d", got, tc.wantCalls)
			}
			if got := e.ended.got(); !slices.Equal(got, tc.wantEnded) {
				t.Errorf("Ended: %v, want %v", got, tc.wantEnded)
			}
			if tc.wantCalls > 0 && string(e.idp.sealed[0]) != "sealed-0" {
				t.Errorf("IdP asked with %q, want the stored token", e.idp.sealed[0])
			}
			a, ok := e.st.has("alice")
			if tc.wantSealed == "" {
				if ok {
					t.Errorf("account kept: %+v", a)
				}
				if _, err := e.d.Resolve(context.Background(), "alice"); !errors.Is(err, ssoaccounts.ErrNotFound) {
					t.Errorf("Resolve after the end: %v, want ErrNotFound", err)
				}
				return
			}
			if !ok || string(a.SealedRefreshToken) != tc.wantSealed || !slices.Equal(a.Groups, tc.wantGroups) {
				t.Fatalf("account %+v, want groups %v token %q", a, tc.wantGroups, tc.wantSealed)
			}
			if err != nil {
				if !a.RevalidatedAt.Equal(start) {
					t.Errorf("RevalidatedAt moved to %v without the IdP's word", a.RevalidatedAt)
				}
				return
			}
			if want := map[bool]time.Time{false: start, true: e.clock.Now()}[tc.wantCalls > 0]; !a.RevalidatedAt.Equal(want) {
				t.Errorf("RevalidatedAt %v, want %v", a.RevalidatedAt, want)
			}
			if id.Subject != "alice" || id.Backend != sso.Backend || !slices.Equal(id.Groups, tc.wantGroups) ||
				id.Fingerprint != signedIn.Fingerprint || id.Fingerprint == "" {
				t.Errorf("identity %+v, want alice of sso with groups %v and the sign-in's fingerprint %q", id, tc.wantGroups, signedIn.Fingerprint)
			}
			if tc.wantCalls == 0 {
				return
			}
			// Vouched for again now: the next use inside the interval does not ask.
			before := e.idp.calls.Load()
			e.clock.Add(interval - time.Second)
			if _, err := e.d.Resolve(context.Background(), "alice"); err != nil || e.idp.calls.Load() != before {
				t.Errorf("inside the new interval: %v, %d IdP calls", err, e.idp.calls.Load()-before)
			}
		})
	}
}

func TestResolveUnknownAndStoreDown(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	if _, err := e.d.Resolve(context.Background(), "nobody"); !errors.Is(err, ssoaccounts.ErrNotFound) {
		t.Errorf("unknown: %v, want ErrNotFound", err)
	}
	e.signIn(t, "alice")
	e.st.Fail(errors.New("database down"))
	if _, err := e.d.Resolve(context.Background(), "alice"); !errors.Is(err, ssoaccounts.ErrUnavailable) || errors.Is(err, ssoaccounts.ErrNotFound) {
		t.Errorf("store down: %v, want ErrUnavailable", err)
	}
	if e.idp.calls.Load() != 0 {
		t.Error("the IdP was asked")
	}
}

// Many uses at once after the interval cost one IdP call, and all get its answer; a caller
// that gives up does not cut the revalidation short (the rotated token would be lost).
func TestResolveConcurrent(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		err     error
		wantErr error
	}{
		{"vouched for", nil, nil},
		{"ended", sso.ErrAccountEnded, ssoaccounts.ErrEnded},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t)
			e.signIn(t, "alice")
			e.idp.err, e.idp.rotate, e.idp.groups = tc.err, true, []string{"ops"}
			e.idp.gate = make(chan struct{})
			e.clock.Add(interval)

			// One caller gives up while the IdP is asked.
			gaveUp, cancel := context.WithCancel(context.Background())
			first := make(chan error, 1)
			go func() {
				_, err := e.d.Resolve(gaveUp, "alice")
				first <- err
			}()
			testutil.Eventually(t, 5*time.Second, "the IdP is asked", func() bool { return e.idp.calls.Load() == 1 })
			cancel()
			if err := <-first; !errors.Is(err, context.Canceled) {
				t.Fatalf("the caller that gave up: %v", err)
			}

			const n = 20
			var wg sync.WaitGroup
			errs := make(chan error, n)
			var started atomic.Int32
			for range n {
				wg.Go(func() {
					started.Add(1)
					id, err := e.d.Resolve(context.Background(), "alice")
					if err == nil && !slices.Equal(id.Groups, []string{"ops"}) {
						err = fmt.Errorf("groups %v", id.Groups)
					}
					errs <- err
				})
			}
			testutil.Eventually(t, 5*time.Second, "callers started", func() bool { return started.Load() == n })
			time.Sleep(50 * time.Millisecond) // let them reach the flight; a late one finds the outcome stored
			close(e.idp.gate)
			wg.Wait()
			close(errs)
			for err := range errs {
				if !errors.Is(err, tc.wantErr) && (tc.wantErr == nil || !errors.Is(err, ssoaccounts.ErrNotFound)) {
					t.Errorf("Resolve: %v, want %v", err, tc.wantErr)
				}
			}
			if got := e.idp.calls.Load(); got != 1 {
				t.Errorf("IdP asked %d times, want 1", got)
			}
			if got := len(e.ended.got()); (tc.err != nil) != (got == 1) || got > 1 {
				t.Errorf("Ended called %d times", got)
			}
			if a, ok := e.st.has("alice"); tc.err == nil && (!ok || string(a.SealedRefreshToken) != "sealed-1") {
				t.Errorf("rotated token not stored: %+v", a)
			}
		})
	}
}

// A refusal of a token that was rotated away meanwhile (a sign-in, another replica's
// revalidation) does not end the account.
func TestEndedButRotatedMeanwhile(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.signIn(t, "alice")
	e.clock.Add(interval)
	e.idp.err = sso.ErrAccountEnded
	e.idp.before = func() {
		a, _ := e.st.has("alice")
		a.SealedRefreshToken, a.RevalidatedAt, a.Groups = []byte("sealed-other"), e.clock.Now(), []string{"ops"}
		_ = e.st.Put(context.Background(), a)
	}
	id, err := e.d.Resolve(context.Background(), "alice")
	if err != nil || !slices.Equal(id.Groups, []string{"ops"}) {
		t.Fatalf("Resolve: %+v, %v; want the account as stored meanwhile", id, err)
	}
	if _, ok := e.st.has("alice"); !ok || len(e.ended.got()) != 0 {
		t.Errorf("account deleted or Ended called: %v", e.ended.got())
	}
}

func TestSignedIn(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	id := e.signIn(t, "alice")
	if id.Subject != "alice" || id.Backend != sso.Backend || !slices.Equal(id.Groups, []string{"dev"}) || id.Labels["team"][0] != "old" || len(id.Fingerprint) != 64 {
		t.Fatalf("identity %+v", id)
	}
	a, _ := e.st.has("alice")
	if a.IDPSubject != "idp-alice" || string(a.SealedRefreshToken) != "sealed-0" || !a.CreatedAt.Equal(start) || !a.RevalidatedAt.Equal(start) {
		t.Fatalf("account %+v", a)
	}
	if got, err := e.d.Resolve(context.Background(), "alice"); err != nil || !reflect.DeepEqual(got, id) {
		t.Fatalf("Resolve = %+v, %v; want what SignedIn gave: %+v", got, err, id)
	}

	// A later sign-in vouches again and keeps the account's life (and sessions).
	e.clock.Add(interval + time.Minute)
	again := e.signIn(t, "alice")
	if again.Fingerprint != id.Fingerprint {
		t.Error("a second sign-in changed the fingerprint: the first sign-in's sessions would end")
	}
	if _, err := e.d.Resolve(context.Background(), "alice"); err != nil || e.idp.calls.Load() != 0 {
		t.Errorf("just signed in: %v, %d IdP calls", err, e.idp.calls.Load())
	}

	// Ended, then signed in again: another life, so sessions of the first do not come back.
	e.clock.Add(interval)
	e.idp.err = sso.ErrAccountEnded
	if _, err := e.d.Resolve(context.Background(), "alice"); !errors.Is(err, ssoaccounts.ErrEnded) {
		t.Fatalf("Resolve: %v", err)
	}
	e.clock.Add(time.Second)
	if reborn := e.signIn(t, "alice"); reborn.Fingerprint == id.Fingerprint {
		t.Error("an account created again has the old fingerprint")
	}
	if e.signIn(t, "bob").Fingerprint == id.Fingerprint {
		t.Error("two people share a fingerprint")
	}

	if _, err := e.d.SignedIn(context.Background(), &sso.SignIn{}); err == nil {
		t.Error("a sign-in without a subject was stored")
	}
	e.st.Fail(errors.New("database down"))
	if _, err := e.d.SignedIn(context.Background(), &sso.SignIn{Identity: identity.Identity{Subject: "carol"}}); !errors.Is(err, ssoaccounts.ErrUnavailable) {
		t.Errorf("store down: %v", err)
	}
}

func TestLogout(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	e.signIn(t, "alice")
	e.signIn(t, "bob")
	// A second account of the same IdP person (another subject claim value, say).
	if _, err := e.d.SignedIn(context.Background(), &sso.SignIn{Identity: identity.Identity{Subject: "alice2"}, IDPSubject: "idp-alice"}); err != nil {
		t.Fatal(err)
	}
	sids := func(_ context.Context, sid string) ([]string, error) {
		switch sid {
		case "sid-bob":
			return []string{"bob", "bob"}, nil
		case "broken":
			return nil, errors.New("database down")
		}
		return nil, nil
	}
	for _, tc := range []struct {
		name    string
		l       *sso.Logout
		lookup  func(context.Context, string) ([]string, error)
		want    []string
		wantErr bool
	}{
		{"by IdP subject", &sso.Logout{Subject: "idp-alice"}, sids, []string{"alice", "alice2"}, false},
		{"by sid", &sso.Logout{SessionID: "sid-bob"}, sids, []string{"bob"}, false},
		{"both", &sso.Logout{Subject: "idp-alice", SessionID: "sid-bob"}, sids, []string{"alice", "alice2", "bob"}, false},
		{"unknown subject", &sso.Logout{Subject: "idp-nobody"}, sids, nil, false},
		{"unknown sid", &sso.Logout{SessionID: "sid-nobody"}, sids, nil, false},
		{"sid without a lookup", &sso.Logout{SessionID: "sid-bob"}, nil, nil, false},
		{"lookup fails", &sso.Logout{Subject: "idp-alice", SessionID: "broken"}, sids, nil, true},
		{"nil", nil, sids, nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := e.d.Logout(context.Background(), tc.l, tc.lookup)
			if (err != nil) != tc.wantErr || !slices.Equal(got, tc.want) {
				t.Fatalf("Logout = %v, %v; want %v (error %v)", got, err, tc.want, tc.wantErr)
			}
		})
	}
	// A logout ends sessions, not accounts.
	for _, s := range []string{"alice", "alice2", "bob"} {
		if _, ok := e.st.has(s); !ok {
			t.Errorf("%s's account deleted by a logout", s)
		}
	}
	e.st.Fail(errors.New("database down"))
	if _, err := e.d.Logout(context.Background(), &sso.Logout{Subject: "idp-alice"}, sids); !errors.Is(err, ssoaccounts.ErrUnavailable) {
		t.Errorf("store down: %v", err)
	}
}
