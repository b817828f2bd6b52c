package grpcdial

import (
	"net/url"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/resolver"

	"github.com/portcullis-dev/portcullis/internal/testutil"
)

func TestBackendTarget(t *testing.T) {
	t.Parallel()
	cases := []struct {
		addr, wantTarget string
		static, wantErr  bool
	}{
		{"127.0.0.1:7003", "127.0.0.1:7003", false, false},
		{"dns:///signer:7003", "portcullis-dns:///signer:7003", true, false},
		{"127.0.0.1:7003,127.0.0.1:7013", "portcullis-static:///replicas", true, false},
		{"127.0.0.1:7003, 127.0.0.1:7013", "portcullis-static:///replicas", true, false},
		{"127.0.0.1:7003,nope", "", false, true},
	}
	for _, tc := range cases {
		target, r, err := Target(tc.addr)
		if (err != nil) != tc.wantErr || target != tc.wantTarget || (r != nil) != tc.static {
			t.Errorf("Target(%q) = %q, %v, %v", tc.addr, target, r != nil, err)
		}
	}
}

// fakeCC records what a resolver reports.
type fakeCC struct {
	resolver.ClientConn
	mu     sync.Mutex
	states []resolver.State
}

func (f *fakeCC) UpdateState(s resolver.State) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.states = append(f.states, s)
	return nil
}

func (f *fakeCC) ReportError(error) {}

func (f *fakeCC) count() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.states)
}

// The dns:/// resolver looks the name up at once, again on ResolveNow (no sooner than its
// minimum interval), and every refresh.
func TestDNSResolver(t *testing.T) {
	t.Parallel()
	cc := &fakeCC{}
	b := &dnsBuilder{refresh: time.Hour, minInterval: 50 * time.Millisecond}
	r, err := b.Build(resolver.Target{URL: url.URL{Scheme: "portcullis-dns", Path: "/localhost:7003"}}, cc, resolver.BuildOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	testutil.Eventually(t, 5*time.Second, "the first lookup", func() bool { return cc.count() >= 1 })
	cc.mu.Lock()
	first := cc.states[0]
	cc.mu.Unlock()
	found := false
	for _, e := range first.Endpoints {
		found = found || e.Addresses[0].Addr == "127.0.0.1:7003"
	}
	if !found {
		t.Fatalf("localhost resolved to %+v", first.Endpoints)
	}
	r.ResolveNow(resolver.ResolveNowOptions{})
	testutil.Eventually(t, 5*time.Second, "the second lookup", func() bool { return cc.count() >= 2 })
	if _, err := b.Build(resolver.Target{URL: url.URL{Path: "/no-port"}}, cc, resolver.BuildOptions{}); err == nil {
		t.Error("a name without a port was accepted")
	}
}
