package opa

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/pkg/scope"
	"github.com/portcullis-dev/portcullis/services/authz"
)

// TestACLDataAndIndexPublishedTogether reloads the ACL's data alone, back and forth, while
// decisions run. The compiled index names a rule by its position, so a decision that read
// the new data with the old index (or the reverse) would get another rule's actions. The two
// versions are built so that every mix shows: A grants alice pull (rule 0), B grants her
// push (rule 1); B's data read through A's index gives push,delete (B's rule 0), A's data
// read through B's index gives delete (A's rule 1).
func TestACLDataAndIndexPublishedTogether(t *testing.T) {
	rule := func(account string, actions ...string) any {
		acts := make([]any, len(actions))
		for i, a := range actions {
			acts[i] = a
		}
		m := map[string]any{"account": account}
		if account == "alice" {
			m["name"] = "app"
		}
		return map[string]any{"match": m, "actions": acts}
	}
	version := func(rules ...any) source {
		src, errs := Config{Dir: aclPolicyDir}.load()
		if len(errs) > 0 {
			t.Fatal(errs)
		}
		src.data = map[string]any{"acl": rules}
		return src
	}
	a := version(rule("alice", "pull"), rule("bob", "delete"))
	b := version(rule("bob", "push", "delete"), rule("alice", "push"))

	e := newEngine(Config{Dir: aclPolicyDir}, authz.Deps{})
	ctx := context.Background()
	if errs := e.apply(ctx, a); len(errs) > 0 {
		t.Fatal(errs)
	}
	req := authz.Request{Identity: identity.Identity{Subject: "alice"}, Service: "r",
		Requested: []scope.Scope{{Type: "repository", Name: "app", Actions: []string{"pull", "push", "delete"}}}}
	answer := func() string {
		d, err := e.Authorize(ctx, req)
		if err != nil {
			t.Errorf("Authorize: %v", err)
			return "error"
		}
		if len(d.Granted) == 0 {
			return ""
		}
		return strings.Join(d.Granted[0].Actions, ",")
	}
	if got := answer(); got != "pull" {
		t.Fatalf("version A grants %q, want pull", got)
	}
	if errs := e.apply(ctx, b); len(errs) > 0 {
		t.Fatal(errs)
	}
	if got := answer(); got != "push" {
		t.Fatalf("version B grants %q, want push", got)
	}

	var stop atomic.Bool
	var wg sync.WaitGroup
	var mu sync.Mutex
	seen := map[string]int{}
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				got := answer()
				mu.Lock()
				seen[got]++
				mu.Unlock()
			}
		}()
	}
	deadline := time.Now().Add(2 * time.Second)
	reloads := 0
	for ; time.Now().Before(deadline) || reloads < 200; reloads++ {
		src := a
		if reloads%2 == 1 {
			src = b
		}
		if errs := e.apply(ctx, src); len(errs) > 0 {
			t.Fatal(errs)
		}
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d data-only reloads; decisions: %v", reloads, seen)
	for got, n := range seen {
		if got != "pull" && got != "push" {
			t.Errorf("%d decision(s) granted %q: data and index from different versions", n, got)
		}
	}
}
