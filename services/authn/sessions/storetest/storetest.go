// Package storetest is the conformance suite every sessions.Store backend runs:
// storetest.Run(t, open).
package storetest

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/sessions"
)

// Run runs the suite. open must return a new, empty store for each call; Run closes it.
func Run(t *testing.T, open func(t *testing.T) sessions.Store) {
	t.Helper()
	mk := func(t *testing.T) sessions.Store {
		t.Helper()
		st := open(t)
		t.Cleanup(func() {
			if err := st.Close(context.Background()); err != nil {
				t.Errorf("Close: %v", err)
			}
		})
		return st
	}
	for _, tc := range []struct {
		name string
		fn   func(t *testing.T, st sessions.Store)
	}{
		{"CreateGet", testCreateGet},
		{"ByTokenHash", testByTokenHash},
		{"NotFound", testNotFound},
		{"ListPagination", testListPagination},
		{"ListFilter", testListFilter},
		{"ListBadPageToken", testListBadPageToken},
		{"Touch", testTouch},
		{"Revoke", testRevoke},
		{"RevokeSubject", testRevokeSubject},
		{"DeleteExpired", testDeleteExpired},
		{"Fingerprint", testFingerprint},
		{"Concurrency", testConcurrency},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, mk(t))
		})
	}
}

// base is a fixed instant with sub-microsecond noise stripped: stores keep microseconds.
var base = time.Date(2026, 3, 1, 12, 0, 0, 123456000, time.UTC)

func session(i int, subject string, created time.Time) sessions.Session {
	return sessions.Session{
		ID:             fmt.Sprintf("ses_%04d", i),
		TokenHash:      sha256.Sum256(fmt.Appendf(nil, "pcr_token_%d", i)),
		Subject:        subject,
		Backend:        "htpasswd",
		Service:        "registry.example",
		ClientID:       "docker",
		CreatedAt:      created,
		LastUsedAt:     created,
		LastRemoteAddr: "192.0.2.1:4242",
		IdleExpiresAt:  created.Add(24 * time.Hour),
		ExpiresAt:      created.Add(72 * time.Hour),
		Fingerprint:    fmt.Sprintf("h1:fingerprint-%d", i),
		FingerprintSet: true,
	}
}

func create(t *testing.T, st sessions.Store, ss ...sessions.Session) {
	t.Helper()
	for _, s := range ss {
		if err := st.Create(context.Background(), s); err != nil {
			t.Fatalf("Create(%s): %v", s.ID, err)
		}
	}
}

func equal(t *testing.T, what string, got, want sessions.Session) {
	t.Helper()
	same := got.ID == want.ID && got.TokenHash == want.TokenHash && got.Subject == want.Subject &&
		got.Backend == want.Backend && got.Service == want.Service && got.ClientID == want.ClientID &&
		got.LastRemoteAddr == want.LastRemoteAddr && got.CreatedAt.Equal(want.CreatedAt) &&
		got.LastUsedAt.Equal(want.LastUsedAt) && got.IdleExpiresAt.Equal(want.IdleExpiresAt) && got.ExpiresAt.Equal(want.ExpiresAt) &&
		got.Fingerprint == want.Fingerprint && got.FingerprintSet == want.FingerprintSet
	if !same {
		t.Fatalf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

func testCreateGet(t *testing.T, st sessions.Store) {
	s := session(1, "alice", base)
	s.ClientID = "containerd-client"
	s.LastRemoteAddr = "[2001:db8::1]:5000"
	create(t, st, s)
	got, err := st.Get(context.Background(), s.ID)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "Get", got, s)
	if got.CreatedAt.Location() != time.UTC {
		t.Errorf("times come back in %v, want UTC", got.CreatedAt.Location())
	}
	dup := session(1, "bob", base)
	dup.TokenHash[0] ^= 1
	if err := st.Create(context.Background(), dup); err == nil {
		t.Error("a second session with the same id was accepted")
	}
	dupHash := session(2, "bob", base)
	dupHash.TokenHash = s.TokenHash
	if err := st.Create(context.Background(), dupHash); err == nil {
		t.Error("a second session with the same token hash was accepted")
	}
}

func testByTokenHash(t *testing.T, st sessions.Store) {
	a, b := session(1, "alice", base), session(2, "bob", base)
	create(t, st, a, b)
	for _, want := range []sessions.Session{a, b} {
		got, err := st.ByTokenHash(context.Background(), want.TokenHash)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "ByTokenHash", got, want)
	}
}

func testNotFound(t *testing.T, st sessions.Store) {
	create(t, st, session(1, "alice", base))
	ctx := context.Background()
	if _, err := st.Get(ctx, "ses_nope"); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
	}
	if _, err := st.ByTokenHash(ctx, sha256.Sum256([]byte("pcr_other"))); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("ByTokenHash(unknown) = %v, want ErrNotFound", err)
	}
	if err := st.Revoke(ctx, "ses_nope"); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Revoke(unknown) = %v, want ErrNotFound", err)
	}
	if n, err := st.RevokeSubject(ctx, "nobody"); err != nil || n != 0 {
		t.Errorf("RevokeSubject(unknown) = %d, %v; want 0, nil", n, err)
	}
	ss, next, err := st.List(ctx, sessions.ListOptions{Subject: "nobody"})
	if err != nil || len(ss) != 0 || next != "" {
		t.Errorf("List(unknown subject) = %v, %q, %v; want empty", ss, next, err)
	}
}

// listAll pages through List and returns the ids in the order seen.
func listAll(t *testing.T, st sessions.Store, subject string, size int) (ids []string, pages int) {
	t.Helper()
	o := sessions.ListOptions{Subject: subject, PageSize: size}
	for {
		ss, next, err := st.List(context.Background(), o)
		if err != nil {
			t.Fatalf("List(%+v): %v", o, err)
		}
		if len(ss) > size {
			t.Fatalf("List returned %d sessions for page size %d", len(ss), size)
		}
		pages++
		for _, s := range ss {
			ids = append(ids, s.ID)
		}
		if next == "" {
			return ids, pages
		}
		if pages > 100 {
			t.Fatal("List does not end")
		}
		o.PageToken = next
	}
}

func testListPagination(t *testing.T, st sessions.Store) {
	// Created out of id order, several at the same instant: the order is (created_at, id).
	create(t, st,
		session(5, "alice", base.Add(2*time.Second)),
		session(3, "bob", base),
		session(1, "alice", base),
		session(7, "alice", base.Add(time.Second)),
		session(2, "alice", base),
		session(6, "bob", base.Add(time.Second)),
		session(4, "alice", base.Add(2*time.Second)),
	)
	want := []string{"ses_0001", "ses_0002", "ses_0003", "ses_0006", "ses_0007", "ses_0004", "ses_0005"}
	for _, size := range []int{1, 2, 3, 7, 50} {
		ids, pages := listAll(t, st, "", size)
		if !slices.Equal(ids, want) {
			t.Errorf("page size %d: %v, want %v", size, ids, want)
		}
		if wantPages := max(1, (len(want)+size-1)/size); pages != wantPages && pages != wantPages+1 {
			t.Errorf("page size %d: %d pages, want %d", size, pages, wantPages)
		}
	}
	// A page token stays valid while sessions are added before and after its position.
	ss, next, err := st.List(context.Background(), sessions.ListOptions{PageSize: 3})
	if err != nil || len(ss) != 3 || next == "" {
		t.Fatalf("first page: %d sessions, next %q, %v", len(ss), next, err)
	}
	create(t, st, session(8, "carol", base.Add(-time.Hour)), session(9, "carol", base.Add(time.Hour)))
	ss, _, err = st.List(context.Background(), sessions.ListOptions{PageSize: 50, PageToken: next})
	if err != nil {
		t.Fatal(err)
	}
	var rest []string
	for _, s := range ss {
		rest = append(rest, s.ID)
	}
	if w := []string{"ses_0006", "ses_0007", "ses_0004", "ses_0005", "ses_0009"}; !slices.Equal(rest, w) {
		t.Errorf("after adding sessions: %v, want %v", rest, w)
	}
}

func testListFilter(t *testing.T, st sessions.Store) {
	for i := range 6 {
		sub := "alice"
		if i%2 == 1 {
			sub = "bob"
		}
		create(t, st, session(i, sub, base.Add(time.Duration(i)*time.Minute)))
	}
	ids, _ := listAll(t, st, "bob", 2)
	if w := []string{"ses_0001", "ses_0003", "ses_0005"}; !slices.Equal(ids, w) {
		t.Errorf("bob's sessions: %v, want %v", ids, w)
	}
	ss, _, err := st.List(context.Background(), sessions.ListOptions{Subject: "alice"})
	if err != nil || len(ss) != 3 {
		t.Fatalf("alice's sessions: %v, %v", ss, err)
	}
	equal(t, "listed", ss[0], session(0, "alice", base))
}

func testListBadPageToken(t *testing.T, st sessions.Store) {
	for i := range 3 {
		create(t, st, session(i, "alice", base.Add(time.Duration(i)*time.Second)))
	}
	_, next, err := st.List(context.Background(), sessions.ListOptions{Subject: "alice", PageSize: 1})
	if err != nil || next == "" {
		t.Fatalf("List: next %q, %v", next, err)
	}
	for _, tc := range []struct{ name, subject, token string }{
		{"garbage", "alice", "not a token!"},
		{"base64 of garbage", "alice", "bm9wZQ"},
		{"truncated", "alice", next[:len(next)/2]},
		{"other subject", "bob", next},
		{"subject dropped", "", next},
	} {
		_, _, err := st.List(context.Background(), sessions.ListOptions{Subject: tc.subject, PageToken: tc.token})
		if !errors.Is(err, sessions.ErrBadPageToken) {
			t.Errorf("%s: List = %v, want ErrBadPageToken", tc.name, err)
		}
	}
}

func testTouch(t *testing.T, st sessions.Store) {
	ctx := context.Background()
	a, b, c := session(1, "alice", base), session(2, "alice", base), session(3, "bob", base)
	create(t, st, a, b, c)
	if err := st.Touch(ctx, nil); err != nil {
		t.Fatalf("empty Touch: %v", err)
	}
	later := base.Add(time.Hour)
	err := st.Touch(ctx, []sessions.Touch{
		{ID: a.ID, LastUsedAt: later, RemoteAddr: "198.51.100.7:1", IdleExpiresAt: later.Add(24 * time.Hour)},
		{ID: b.ID, LastUsedAt: later.Add(time.Minute), RemoteAddr: "198.51.100.8:2", IdleExpiresAt: later.Add(25 * time.Hour)},
		{ID: "ses_gone", LastUsedAt: later, RemoteAddr: "x", IdleExpiresAt: later}, // revoked meanwhile: skipped
	})
	if err != nil {
		t.Fatalf("Touch: %v", err)
	}
	wantA := a
	wantA.LastUsedAt, wantA.LastRemoteAddr, wantA.IdleExpiresAt = later, "198.51.100.7:1", later.Add(24*time.Hour)
	wantB := b
	wantB.LastUsedAt, wantB.LastRemoteAddr, wantB.IdleExpiresAt = later.Add(time.Minute), "198.51.100.8:2", later.Add(25*time.Hour)
	for _, w := range []sessions.Session{wantA, wantB, c} {
		got, err := st.Get(ctx, w.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "after Touch", got, w)
	}
	if _, err := st.Get(ctx, "ses_gone"); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Touch created a session: %v", err)
	}
	// A late batch (another replica's older use) does not move last use back in time.
	err = st.Touch(ctx, []sessions.Touch{{ID: a.ID, LastUsedAt: base.Add(time.Minute), RemoteAddr: "old", IdleExpiresAt: base.Add(time.Hour)}})
	if err != nil {
		t.Fatal(err)
	}
	got, err := st.Get(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	equal(t, "after an older Touch", got, wantA)
}

func testRevoke(t *testing.T, st sessions.Store) {
	ctx := context.Background()
	a, b := session(1, "alice", base), session(2, "alice", base)
	create(t, st, a, b)
	if err := st.Revoke(ctx, a.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Get(ctx, a.ID); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("Get(revoked) = %v, want ErrNotFound", err)
	}
	if _, err := st.ByTokenHash(ctx, a.TokenHash); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("ByTokenHash(revoked) = %v, want ErrNotFound", err)
	}
	if err := st.Revoke(ctx, a.ID); !errors.Is(err, sessions.ErrNotFound) {
		t.Errorf("second Revoke = %v, want ErrNotFound", err)
	}
	if _, err := st.ByTokenHash(ctx, b.TokenHash); err != nil {
		t.Errorf("the other session went too: %v", err)
	}
}

func testRevokeSubject(t *testing.T, st sessions.Store) {
	ctx := context.Background()
	create(t, st, session(1, "alice", base), session(2, "bob", base), session(3, "alice", base), session(4, "alice2", base))
	n, err := st.RevokeSubject(ctx, "alice")
	if err != nil || n != 2 {
		t.Fatalf("RevokeSubject = %d, %v; want 2", n, err)
	}
	ids, _ := listAll(t, st, "", 10)
	if w := []string{"ses_0002", "ses_0004"}; !slices.Equal(ids, w) {
		t.Errorf("left: %v, want %v", ids, w)
	}
}

func testDeleteExpired(t *testing.T, st sessions.Store) {
	ctx := context.Background()
	now := base.Add(48 * time.Hour)
	alive := session(1, "alice", base)
	alive.IdleExpiresAt = now.Add(time.Second)
	idle := session(2, "alice", base) // idle expiry passed (24h), absolute not
	absolute := session(3, "alice", base)
	absolute.IdleExpiresAt, absolute.ExpiresAt = now.Add(time.Hour), now
	create(t, st, alive, idle, absolute)
	n, err := st.DeleteExpired(ctx, now)
	if err != nil || n != 2 {
		t.Fatalf("DeleteExpired = %d, %v; want 2", n, err)
	}
	ids, _ := listAll(t, st, "", 10)
	if !slices.Equal(ids, []string{alive.ID}) {
		t.Errorf("left: %v, want only %s", ids, alive.ID)
	}
}

func testConcurrency(t *testing.T, st sessions.Store) {
	ctx := context.Background()
	const workers, each = 8, 10
	var wg sync.WaitGroup
	errs := make(chan error, workers*each*3)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				s := session(w*each+i, fmt.Sprintf("user%d", w%2), base.Add(time.Duration(i)*time.Millisecond))
				if err := st.Create(ctx, s); err != nil {
					errs <- fmt.Errorf("Create: %w", err)
					continue
				}
				if _, err := st.ByTokenHash(ctx, s.TokenHash); err != nil {
					errs <- fmt.Errorf("ByTokenHash: %w", err)
				}
				t := base.Add(time.Hour + time.Duration(i)*time.Second)
				if err := st.Touch(ctx, []sessions.Touch{{ID: s.ID, LastUsedAt: t, RemoteAddr: "r", IdleExpiresAt: t.Add(time.Hour)}}); err != nil {
					errs <- fmt.Errorf("Touch: %w", err)
				}
				if _, _, err := st.List(ctx, sessions.ListOptions{Subject: s.Subject, PageSize: 5}); err != nil {
					errs <- fmt.Errorf("List: %w", err)
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	ids, _ := listAll(t, st, "", 1000)
	if len(ids) != workers*each {
		t.Errorf("%d sessions stored, want %d", len(ids), workers*each)
	}
	if n, err := st.RevokeSubject(ctx, "user0"); err != nil || n != workers*each/2 {
		t.Errorf("RevokeSubject = %d, %v; want %d", n, err, workers*each/2)
	}
}

// testFingerprint: a session keeps the fingerprint it was created with, an empty one
// included, and tells "recorded as empty" from "never recorded" (a session from before
// fingerprints). RecordFingerprint fills in only the latter, once.
func testFingerprint(t *testing.T, st sessions.Store) {
	ctx := context.Background()
	set, empty, unset := session(1, "alice", base), session(2, "alice", base), session(3, "alice", base)
	empty.Fingerprint = ""
	unset.Fingerprint, unset.FingerprintSet = "", false
	create(t, st, set, empty, unset)
	for _, want := range []sessions.Session{set, empty, unset} {
		got, err := st.Get(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "Get", got, want)
		got, err = st.ByTokenHash(ctx, want.TokenHash)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "ByTokenHash", got, want)
	}
	ids, _ := listAll(t, st, "alice", 10)
	if len(ids) != 3 {
		t.Fatalf("List = %v", ids)
	}
	ss, _, err := st.List(ctx, sessions.ListOptions{Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []sessions.Session{set, empty, unset} {
		equal(t, "List", ss[i], want)
	}

	for _, s := range []sessions.Session{set, empty, unset} {
		if err := st.RecordFingerprint(ctx, s.ID, "h1:recorded"); err != nil {
			t.Fatalf("RecordFingerprint(%s): %v", s.ID, err)
		}
	}
	unset.Fingerprint, unset.FingerprintSet = "h1:recorded", true
	for _, want := range []sessions.Session{set, empty, unset} {
		got, err := st.Get(ctx, want.ID)
		if err != nil {
			t.Fatal(err)
		}
		equal(t, "Get after RecordFingerprint", got, want)
	}
	if err := st.RecordFingerprint(ctx, unset.ID, "h1:again"); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Get(ctx, unset.ID); got.Fingerprint != "h1:recorded" {
		t.Fatalf("a second RecordFingerprint replaced the recorded fingerprint: %q", got.Fingerprint)
	}
	if err := st.RecordFingerprint(ctx, "ses_missing", "h1:x"); err != nil {
		t.Fatalf("RecordFingerprint of a missing session: %v, want nil", err)
	}
}
