// Package htpasswd authenticates against an Apache htpasswd file of bcrypt hashes,
// reloaded when the file changes.
package htpasswd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn"
)

// Config configures the htpasswd backend.
type Config struct {
	// Path of the htpasswd file (htpasswd -B: bcrypt only).
	Path string `yaml:"path"`
	// Groups maps a group name to its members; htpasswd itself has no groups.
	Groups map[string][]string `yaml:"groups"`
	// ReloadInterval is how often the file is checked for changes (default 2s).
	ReloadInterval config.Duration `yaml:"reload_interval"`
}

// Validate reports every problem without touching the file system.
func (c *Config) Validate() []error {
	var p config.Problems
	if c.Path == "" {
		p.Addf("path", "is required")
	}
	if c.ReloadInterval < 0 {
		p.Addf("reload_interval", "must not be negative")
	}
	for g, users := range c.Groups {
		if g == "" {
			p.Addf("groups", "group name must not be empty")
		}
		for _, u := range users {
			if u == "" {
				p.Addf("groups."+g, "member name must not be empty")
			} else if err := identity.CheckBareName(u); err != nil {
				p.Addf("groups."+g, "member %q %v", u, err)
			}
		}
	}
	return p.Errs()
}

type table struct {
	users            map[string]authn.User
	minCost, maxCost int
}

type fileStamp struct {
	mod  time.Time
	size int64
	ino  uint64
}

type backend struct {
	authn.UnimplementedBackend
	path   string
	groups map[string][]string // user → groups
	log    *slog.Logger
	deps   authn.Deps

	tab    atomic.Pointer[table]
	mu     sync.Mutex // serialises reloads
	stamp  fileStamp
	cancel context.CancelFunc
	done   chan struct{}
}

var _ authn.Backend = (*backend)(nil)

// Open loads the file (failing on any bad line) and starts watching it.
func (c *Config) Open(ctx context.Context, deps authn.Deps) (authn.Backend, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("htpasswd: %w", errs[0])
	}
	b := &backend{path: c.Path, groups: map[string][]string{}, log: deps.Logger, deps: deps, done: make(chan struct{})}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	for g, users := range c.Groups {
		for _, u := range users {
			b.groups[u] = append(b.groups[u], g)
		}
	}
	for u := range b.groups {
		slices.Sort(b.groups[u])
	}
	if _, err := b.reload(); err != nil {
		return nil, err
	}
	interval := c.ReloadInterval.D()
	if interval == 0 {
		interval = 2 * time.Second
	}
	wctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.cancel = cancel
	go b.watch(wctx, interval)
	return b, nil
}

func (b *backend) watch(ctx context.Context, every time.Duration) {
	defer close(b.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			changed, err := b.reload()
			if err != nil {
				// Keep serving the last good file: a half-written edit must not lock everyone out.
				b.log.Error("htpasswd reload failed; keeping previous users", "path", b.path, "error", err)
				continue
			}
			if changed {
				b.log.Info("htpasswd reloaded", "path", b.path, "users", len(b.tab.Load().users))
				if b.deps.Changed != nil {
					b.deps.Changed()
				}
			}
		}
	}
}

// reload re-reads the file when its stamp changed; it reports whether it did.
func (b *backend) reload() (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	fi, err := os.Stat(b.path)
	if err != nil {
		return false, fmt.Errorf("htpasswd: %w", err)
	}
	st := fileStamp{mod: fi.ModTime(), size: fi.Size(), ino: inode(fi)}
	if b.tab.Load() != nil && st == b.stamp {
		return false, nil
	}
	data, err := os.ReadFile(b.path)
	if err != nil {
		return false, fmt.Errorf("htpasswd: %w", err)
	}
	t, err := parse(data, b.groups)
	if err != nil {
		return false, fmt.Errorf("htpasswd %s: %w", b.path, err)
	}
	b.tab.Store(t)
	b.stamp = st
	if t.minCost != t.maxCost {
		// Safe (the chain tops cheaper checks up to the highest cost), but the cheap hashes buy
		// no speed and are weaker than they need to be: worth rehashing.
		b.log.Warn("htpasswd users have mixed bcrypt costs; every check pays the highest",
			"path", b.path, "min_cost", t.minCost, "max_cost", t.maxCost)
	}
	return true, nil
}

func parse(data []byte, groups map[string][]string) (*table, error) {
	t := &table{users: map[string]authn.User{}}
	var problems []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		name, hash, ok := strings.Cut(line, ":")
		if !ok || name == "" {
			problems = append(problems, fmt.Sprintf("line %d: expected user:hash", n))
			continue
		}
		// The name ends at the first ':', so "robot:ci:$2y$…" reads as user "robot" with the
		// hash "ci:$2y$…". No bcrypt hash holds ':': say what is wrong instead of blaming it.
		if strings.Contains(hash, ":") {
			problems = append(problems, fmt.Sprintf(`line %d: a user name must not contain ":" (it separates subject namespaces such as robot:)`, n))
			continue
		}
		// Never echo the hash: it is a secret too.
		if err := authn.CheckHash(hash); err != nil {
			problems = append(problems, fmt.Sprintf("line %d (user %q): %v", n, name, err))
			continue
		}
		if _, dup := t.users[name]; dup {
			problems = append(problems, fmt.Sprintf("line %d: user %q appears twice", n, name))
			continue
		}
		t.users[name] = authn.User{Name: name, Hash: hash, Groups: groups[name]}
		cost := authn.HashCost(hash)
		t.maxCost = max(t.maxCost, cost)
		if t.minCost == 0 || cost < t.minCost {
			t.minCost = cost
		}
	}
	if err := sc.Err(); err != nil {
		problems = append(problems, err.Error())
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s", strings.Join(problems, "; "))
	}
	return t, nil
}

// Authenticate implements authn.Authenticator.
func (b *backend) Authenticate(ctx context.Context, cr authn.Credentials) (identity.Identity, error) {
	u, ok := b.tab.Load().users[cr.Username]
	return authn.Verify(ctx, b.deps.Bcrypt, u, ok, cr)
}

// Resolve implements authn.Backend from the file as last reloaded: a user removed from it
// is gone once the watcher has seen the change.
func (b *backend) Resolve(_ context.Context, subject string) (identity.Identity, error) {
	u, ok := b.tab.Load().users[subject]
	return authn.Resolve(u, ok)
}

// CanResolve implements authn.Backend: the file names every user.
func (b *backend) CanResolve() bool { return true }

// BcryptCost implements authn.Backend.
func (b *backend) BcryptCost(context.Context) int { return b.tab.Load().maxCost }

// Close stops the watcher.
func (b *backend) Close(context.Context) error {
	b.cancel()
	<-b.done
	return nil
}
