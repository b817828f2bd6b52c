package vault

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/config"
)

// The batcher hands each caller its own item's result, error included, and never sends
// more than maxSize items in one call.
func TestBatcherPerItemResultsAndBound(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var sizes []int
	release := make(chan struct{})
	b := &batcher{queue: make(chan *pending, 100), maxSize: 4, observe: func(int) {},
		call: func(_ context.Context, version int, inputs [][]byte) ([][]byte, []error, error) {
			<-release // hold the first call so the rest queue up behind it
			mu.Lock()
			sizes = append(sizes, len(inputs))
			mu.Unlock()
			sigs, errs := make([][]byte, len(inputs)), make([]error, len(inputs))
			for i, in := range inputs {
				if strings.HasPrefix(string(in), "bad") {
					errs[i] = fmt.Errorf("item %s refused", in)
					continue
				}
				sigs[i] = []byte(fmt.Sprintf("sig(%s,v%d)", in, version))
			}
			return sigs, errs, nil
		}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.run(ctx)
	var wg sync.WaitGroup
	results := make([]string, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			in := fmt.Sprintf("in%d", i)
			if i%3 == 0 {
				in = fmt.Sprintf("bad%d", i)
			}
			sig, err := b.sign(ctx, 7, []byte(in))
			if err != nil {
				results[i] = "error: " + err.Error()
				return
			}
			results[i] = string(sig)
		}()
	}
	close(release)
	wg.Wait()
	for i, r := range results {
		want := fmt.Sprintf("sig(in%d,v7)", i)
		if i%3 == 0 {
			want = fmt.Sprintf("error: item bad%d refused", i)
		}
		if r != want {
			t.Errorf("caller %d got %q, want %q", i, r, want)
		}
	}
	total := 0
	for _, n := range sizes {
		if n > 4 {
			t.Fatalf("a call carried %d items, max 4", n)
		}
		total += n
	}
	if total != 10 {
		t.Fatalf("calls carried %d items, want 10", total)
	}
}

func TestBatcherWholeCallFailureReachesEveryCaller(t *testing.T) {
	t.Parallel()
	down := errors.New("vault unreachable")
	b := &batcher{queue: make(chan *pending, 10), maxSize: 8, observe: func(int) {},
		call: func(context.Context, int, [][]byte) ([][]byte, []error, error) { return nil, nil, down }}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.run(ctx)
	if _, err := b.sign(ctx, 1, []byte("x")); !errors.Is(err, down) {
		t.Fatalf("err = %v", err)
	}
	gone, stop := context.WithCancel(ctx)
	stop()
	if _, err := b.sign(gone, 1, []byte("x")); err == nil {
		t.Fatal("a cancelled caller got a signature")
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name string
		cfg  Config
		want []string
	}{
		{"ok", Config{Key: "k"}, nil},
		{"everything wrong", Config{Address: "vault:8200", KeyType: "aes256-gcm96", Auth: AuthConfig{Method: "ldap"}},
			[]string{"address", "key:", "key_type", "auth.method"}},
		{"ed25519 cannot do libtrust", Config{Key: "k", KeyType: "ed25519", KeyIDMode: "libtrust"}, []string{"kid_mode"}},
		{"approle needs ids", Config{Key: "k", Auth: AuthConfig{Method: "approle"}}, []string{"auth.role_id", "auth.secret_id_file"}},
		{"kubernetes needs a role", Config{Key: "k", Auth: AuthConfig{Method: "kubernetes"}}, []string{"auth.role"}},
		{"refresh slower than propagation", Config{Key: "k", PropagationDelay: 1e9, RefreshInterval: 2e9}, []string{"refresh_interval"}},
		{"root key is the signing key", Config{Key: "k", X5C: &X5CConfig{RootKey: "k"}}, []string{"x5c.root_key"}},
		{"x5c ok with defaults", Config{Key: "k", X5C: &X5CConfig{RootKey: "r"}}, nil},
		{"x5c everything wrong", Config{Key: "k", X5C: &X5CConfig{LeafValidity: config.Duration(time.Minute), Store: StoreConfig{Mount: "/secret", Path: "a//b"}}},
			[]string{"x5c.root_key", "x5c.leaf_validity", "x5c.store.mount", "x5c.store.path"}},
		{"x5c store path escapes", Config{Key: "k", X5C: &X5CConfig{RootKey: "r", Store: StoreConfig{Path: "../sys/x"}}}, []string{"x5c.store.path"}},
		{"batch bounds", Config{Key: "k", Batch: BatchConfig{MaxSize: 5000, Concurrency: 100}}, []string{"batch.max_size", "batch.concurrency"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			errs := tc.cfg.Validate()
			if len(errs) != len(tc.want) {
				t.Fatalf("got %v, want %d problems", errs, len(tc.want))
			}
			for i, w := range tc.want {
				if !strings.HasPrefix(errs[i].Error(), w) {
					t.Errorf("problem %d = %q, want it about %q", i, errs[i], w)
				}
			}
		})
	}
}
