package app

import (
	"context"
	"fmt"
	"os"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/portcullis-dev/portcullis/internal/admin"
	"github.com/portcullis-dev/portcullis/internal/identity"
	authnv1 "github.com/portcullis-dev/portcullis/proto/portcullis/authn/v1"
	"github.com/portcullis-dev/portcullis/services/authn"
	"github.com/portcullis-dev/portcullis/services/authn/backend"
	"github.com/portcullis-dev/portcullis/services/authn/backend/pat"
	ssobackend "github.com/portcullis-dev/portcullis/services/authn/backend/sso"
	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
)

func (a *App) startAuthn(ctx context.Context) error {
	c := a.cfg.Authn
	lim := authn.NewBcryptLimiter(c.Bcrypt.MaxConcurrent, c.Bcrypt.MaxQueue)
	turnedAway := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authn_bcrypt_turned_away_total",
		Help: "Password checks not done because the bcrypt queue was full (busy) or the caller's deadline passed while waiting (expired).",
	}, []string{"reason"})
	a.reg.MustRegister(turnedAway)
	lim.Busy, lim.Expired = turnedAway.WithLabelValues("busy").Inc, turnedAway.WithLabelValues("expired").Inc
	var cache *authn.Cache
	deps := authn.Deps{Logger: a.log.With("component", "authn"), Now: a.now, Bcrypt: lim, Changed: func() {
		if cache != nil {
			cache.Purge()
		}
	}}
	// The state store first: the robot backend reads its robots there.
	var st storage.Store
	var ch *authn.Chain
	if a.cfg.StoreUsed() {
		var err error
		if st, err = a.openStore(ctx); err != nil {
			return fmt.Errorf("authn store: %w", err)
		}
		a.closers = append(a.closers, st.Close) // closed after what uses it (LIFO)
		if a.cfg.robotsUsed() {
			if deps.Robots, err = a.newRobots(st.Robots()); err != nil {
				return err
			}
		}
		if a.cfg.SSO.PAT.Enabled {
			// A token's owner is re-read through the chain, built below from backends that
			// need the manager first: the resolver reaches it once it exists.
			deps.PATs = a.newPATs(st.PATs(), func(ctx context.Context, subject string) (identity.Identity, error) {
				if ch == nil {
					return identity.Identity{}, authn.ErrUnavailable
				}
				return ch.ResolvePerson(ctx, subject)
			})
		}
	}
	// The IdP's people: the sso backend resolves them in the directory (sso.issuer needs
	// sessions, so the store is open).
	var ss *ssoParts
	if a.cfg.SSO.On() && st != nil {
		var err error
		if ss, err = a.newSSO(st); err != nil {
			return err
		}
		deps.SSO = ss.directory
	}
	var chain []authn.Member
	backends := c.Backends
	if a.cfg.SSO.PAT.Enabled && !a.cfg.patListed() {
		spec, err := backend.NewSpec(pats.Backend, &pat.Config{})
		if err != nil {
			return err
		}
		backends = append(slices.Clone(backends), spec)
	}
	if ss != nil && !a.cfg.ssoListed() {
		spec, err := backend.NewSpec(sso.Backend, &ssobackend.Config{})
		if err != nil {
			return err
		}
		backends = append(slices.Clone(backends), spec)
	}
	for _, spec := range backends {
		bc, err := backend.Decode(spec)
		if err != nil {
			return fmt.Errorf("backend %q: %w", spec.Name, err)
		}
		b, err := bc.Open(ctx, deps)
		if err != nil {
			return fmt.Errorf("backend %q: %w", spec.Name, err)
		}
		chain = append(chain, authn.Member{Name: spec.Name, SubjectPrefix: spec.SubjectPrefix, Backend: b})
	}
	ch = authn.NewChain(chain, lim)
	a.closers = append(a.closers, ch.Close)
	opts := authn.ServerOptions{Resolver: ch}
	var lk *lockout.Lockout
	if st != nil {
		if a.cfg.Sessions.On() {
			opts.Sessions, opts.SessionEvent = a.newSessions(st.Sessions()), a.sessionEvent
			opts.SessionEnded = a.sessionEnded
		}
		if c.Lockout.On() {
			var err error
			if lk, err = a.newLockout(st.Lockout(), ch); err != nil {
				return err
			}
			opts.InvalidRefreshToken = lk.InvalidUnguessable
		}
	}
	// Gate → Cache → Guard → Chain: a locked caller is refused before bcrypt or a directory
	// bind; a warm cache hit reads no store, and the gate keeps a locked caller off it.
	var auth authn.Authenticator = ch
	if lk != nil {
		auth = lk.Guard(ch)
	}
	guarded := auth // the pages' password sign-in: a login, without the cache
	if !c.Cache.Disabled {
		cache = authn.NewCache(auth, c.Cache.TTL.D(), c.Cache.MaxEntries, a.now)
		lookups := prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "portcullis_authn_cache_lookups_total",
			Help: "Verified-credential cache lookups by result (hit, miss).",
		}, []string{"result"})
		a.reg.MustRegister(lookups)
		hit, miss := lookups.WithLabelValues("hit"), lookups.WithLabelValues("miss")
		cache.Hit, cache.Miss = hit.Inc, miss.Inc
		auth = cache
		if lk != nil {
			auth = lk.Gate(cache)
		}
	}
	srv := authn.NewServer(auth, a.log.With("component", "authn"), opts)
	a.register("authn", &authnv1.AuthnService_ServiceDesc, srv)
	if st != nil && opts.Sessions != nil {
		a.startAccount(st, ch, guarded, deps.PATs, ss)
	}
	adminLog := a.log.With("component", "admin")
	if a.sessions != nil {
		sa := authn.NewSessionAdminServer(a.sessions, adminLog)
		sa.SessionEvent = a.sessionEvent
		a.adminServices = append(a.adminServices, admin.Service{Desc: &authnv1.SessionAdminService_ServiceDesc, Impl: sa,
			REST: authnv1.RegisterSessionAdminServiceHandler})
	}
	if a.robots != nil {
		a.adminServices = append(a.adminServices, admin.Service{Desc: &authnv1.RobotAdminService_ServiceDesc,
			Impl: robots.NewAdminServer(a.robots, adminLog), REST: authnv1.RegisterRobotAdminServiceHandler})
	}
	if deps.PATs != nil {
		a.adminServices = append(a.adminServices, admin.Service{Desc: &authnv1.PersonalAccessTokenAdminService_ServiceDesc,
			Impl: pats.NewAdminServer(deps.PATs, adminLog), REST: authnv1.RegisterPersonalAccessTokenAdminServiceHandler})
	}
	return nil
}

// openStore opens authn's state store: sessions, robot accounts and the lockout's counts.
func (a *App) openStore(ctx context.Context) (storage.Store, error) {
	spec, err := a.cfg.AuthnStore()
	if err != nil {
		return nil, err
	}
	if a.cfg.storeSpec().Type == "" { // the default SQLite file: its directory may not exist yet
		dir := a.cfg.dataDir
		if dir == "" {
			dir = DefaultDataDir
		}
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, err
		}
	}
	sc, err := decodeStore(spec)
	if err != nil {
		return nil, err
	}
	return sc.OpenStore(ctx, storage.Deps{Logger: a.log.With("component", "sessions"), Now: a.now})
}

// newSessions makes the session manager over st; shutdown closes it (flushing the last-used
// times it holds) before the store.
func (a *App) newSessions(st sessions.Store) *sessions.Manager {
	c := a.cfg.Sessions
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authn_session_events_total",
		Help: "Sessions (refresh tokens) by event: created, refreshed, refused or revoked.",
	}, []string{"event"})
	a.reg.MustRegister(events)
	for _, e := range []string{authn.EventCreated, authn.EventRefreshed, authn.EventRefused, authn.EventRevoked} {
		events.WithLabelValues(e) // every series from the start, at 0
	}
	a.sessionEvent = func(e string) { events.WithLabelValues(e).Inc() }
	ended := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authn_sessions_ended_total",
		Help: "Sessions a refresh ended because the account changed since login, by reason: account_changed (new password), account_disabled or account_removed.",
	}, []string{"reason"})
	a.reg.MustRegister(ended)
	for _, r := range []string{authn.EndedAccountChanged, authn.EndedAccountDisabled, authn.EndedAccountRemoved} {
		ended.WithLabelValues(r) // every series from the start, at 0
	}
	a.sessionEnded = func(r string) { ended.WithLabelValues(r).Inc() }
	m := sessions.NewManager(st, sessions.Options{IdleTTL: c.IdleTTL.D(), MaxTTL: c.MaxTTL.D(), Now: a.now,
		Logger: a.log.With("component", "sessions")})
	a.closers = append(a.closers, m.Close)
	a.sessions = m
	return m
}

// newRobots makes the robot accounts' manager over st's database, with its metrics; the robot
// backend and the admin API share it. Shutdown closes it (writing the last-use times it holds)
// before the store.
func (a *App) newRobots(st robots.Store) (*robots.Manager, error) {
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authn_robot_events_total",
		Help: "Robot account events: created, revoked, or refused (a robot key that did not log in).",
	}, []string{"event"})
	a.reg.MustRegister(events)
	for _, e := range []string{robots.EventCreated, robots.EventRevoked, robots.EventRefused} {
		events.WithLabelValues(e) // every series from the start, at 0
	}
	m := robots.NewManager(st, robots.Options{Now: a.now, Logger: a.log.With("component", "authn"),
		Event: func(e string) { events.WithLabelValues(e).Inc() }})
	a.closers = append(a.closers, m.Close)
	a.robots = m
	return m, nil
}

// newPATs makes the personal access tokens' manager over st's database, with its metrics; the
// pat backend and the admin API share it. Shutdown closes it (writing the last-use times it
// holds) before the store.
func (a *App) newPATs(st pats.Store, owner func(context.Context, string) (identity.Identity, error)) *pats.Manager {
	events := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authn_pat_events_total",
		Help: "Personal access token events: created, revoked, refused (a token that did not log in), or owner_ended (an owner's tokens deleted because the account ended).",
	}, []string{"event"})
	a.reg.MustRegister(events)
	for _, e := range []string{pats.EventCreated, pats.EventRevoked, pats.EventRefused, pats.EventOwnerEnded} {
		events.WithLabelValues(e) // every series from the start, at 0
	}
	m := pats.NewManager(st, pats.Options{Now: a.now, Logger: a.log.With("component", "authn"), MaxTTL: a.cfg.SSO.PAT.MaxTTL.D(),
		Owner: pat.Owners(owner), Event: func(e string) { events.WithLabelValues(e).Inc() }})
	a.closers = append(a.closers, m.Close)
	return m
}

// newLockout makes the lockout over st's database, with its metrics; shutdown stops its GC
// loop before the store closes.
func (a *App) newLockout(st lockout.Store, ch *authn.Chain) (*lockout.Lockout, error) {
	locked := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authn_lockouts_total",
		Help: "Locks set (or lengthened) after too many failed logins, by key: account_address, address (IPv4, IPv6 /64) or prefix (a wider IPv6 network).",
	}, []string{"key"})
	refused := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "portcullis_authn_lockout_refused_total",
		Help: "Logins refused without a credential check because the caller was locked out, by key.",
	}, []string{"key"})
	storeErrors := prometheus.NewCounter(prometheus.CounterOpts{
		Name: "portcullis_authn_lockout_store_errors_total",
		Help: "Lockout store reads and writes that failed; meanwhile logins go on without the lockout.",
	})
	acct, addr := a.cfg.Authn.Lockout.policies()
	lk, err := lockout.New(lockout.Options{Store: st, AccountAddress: acct, Address: addr,
		Prefixes: a.cfg.Authn.Lockout.prefixes(), Now: a.now,
		// Robot keys, personal access tokens and workload JWTs cannot be guessed: a lock on
		// their address (every client's, behind a proxy the gateway does not trust) must not
		// keep them out. A personal access token speaks for a person, though: it counts
		// toward, and is held off by, the person's (account, address) key like a password.
		Unguessable: ch.Claimed,
		AccountBound: func(ctx context.Context, cr authn.Credentials) bool {
			return a.cfg.SSO.PAT.Enabled && ch.Claimed(ctx, cr) && pats.LooksLikeSecret(string(cr.Password))
		},
		// The gateway reads this config too (one file for every target): with no trusted
		// proxy, a proxy in front makes one address of every client; say so when it shows.
		WarnSharedAddress: len(a.cfg.Gateway.TrustedProxies) == 0,
		Logger:            a.log.With("component", "authn"),
		Locked:            func(k string) { locked.WithLabelValues(k).Inc() },
		Refused:           func(k string) { refused.WithLabelValues(k).Inc() },
		StoreError:        storeErrors.Inc,
	})
	if err != nil {
		return nil, err
	}
	a.closers = append(a.closers, lk.Close)
	a.reg.MustRegister(locked, refused, storeErrors)
	for _, k := range lockout.Kinds {
		locked.WithLabelValues(k) // every series from the start, at 0
		refused.WithLabelValues(k)
	}
	return lk, nil
}
