package authn

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"golang.org/x/crypto/bcrypt"

	"github.com/portcullis-dev/portcullis/internal/identity"
)

// Member is a named backend in the chain.
type Member struct {
	Name string
	// SubjectPrefix (config subject_prefix, e.g. "corp:"; identity.CheckSubjectPrefix) is put
	// before every subject the backend vouches for, so its users have a namespace of their
	// own; the policy sees the prefixed subject. Empty: subjects stay bare and must not hold ':'.
	SubjectPrefix string
	Backend
}

// Chain tries backends in order: the first that knows the user decides; a wrong password
// ends the chain; when nobody knows the user the answer is ErrInvalidCredentials (deny).
//
// A credential some backend claims (Backend.Claiming: a workload JWT, a prefixed API key) is
// tried on the claiming backends only, with the same rules, and denied without bcrypt work when
// none of them accepts it; the other backends are tried on every other credential.
//
// Every answer that involves bcrypt costs the same work, so response time does not tell who
// exists: an unknown user pays one comparison at the highest cost any backend holds, and a
// known user whose hash is cheaper has its comparison topped up to that (in Compare, under
// the same limiter slot).
type Chain struct {
	backends   []Member
	unclaiming []Member // password backends: not Claiming
	lim        *BcryptLimiter

	mu    sync.Mutex
	dummy map[int][]byte // bcrypt cost → hash of a fixed password nobody has
}

var _ Authenticator = (*Chain)(nil)

// NewChain returns a chain over backends, tried in the given order. lim bounds the chain's
// own bcrypt work (nil: unlimited); pass the limiter the backends got in Deps.Bcrypt.
func NewChain(backends []Member, lim *BcryptLimiter) *Chain {
	c := &Chain{backends: backends, lim: lim, dummy: map[int][]byte{}}
	for _, b := range backends {
		if !b.Claiming() {
			c.unclaiming = append(c.unclaiming, b)
		}
	}
	return c
}

// Authenticate implements Authenticator.
func (c *Chain) Authenticate(ctx context.Context, cr Credentials) (identity.Identity, error) {
	if cr.Kind == KindSubjectToken {
		// Never a password check, whatever the token looks like: no user name came with it,
		// so there is no user to hide behind bcrypt work either.
		id, decided, err := try(ctx, c.claimers(ctx, cr), cr)
		if !decided {
			return identity.Identity{}, ErrInvalidCredentials
		}
		return id, err
	}
	if claimed := c.claimers(ctx, cr); len(claimed) > 0 {
		id, decided, err := try(ctx, claimed, cr)
		if !decided {
			// Nobody accepts a credential of this shape; bcrypt work would hide nothing.
			return identity.Identity{}, ErrInvalidCredentials
		}
		return id, err
	}
	cost := c.maxCost(ctx)
	ctx = context.WithValue(ctx, equaliserKey{}, &equaliser{chain: c, floor: cost})
	id, by, err := tryFrom(ctx, c.unclaiming, cr)
	if by != nil {
		if bcryptBacked := by.BcryptCost(ctx) > 0; bcryptBacked || !errors.Is(err, ErrInvalidCredentials) ||
			errors.Is(err, ErrSubjectRefused) { // the password was right: nothing to hide
			return id, err
		}
		// A directory refused the password after a bind of a millisecond or so; an unknown
		// user pays a bcrypt comparison. Pay it here too, or the time of a wrong password
		// would tell which names the directory holds.
	}
	// Unknown user: what a known user's wrong password costs. Under load it waits (or is
	// turned away) like a known user's check, which keeps the two indistinguishable there too.
	if err := c.lim.Do(ctx, func() {
		_ = c.lim.comparer()(c.dummyHash(cost), []byte(cr.Password))
	}); err != nil {
		return identity.Identity{}, err
	}
	if by != nil {
		// The directory's own refusal, so the audit event can tell a disabled account
		// (ErrAccountDisabled) from a wrong password; callers see the same answer.
		return identity.Identity{}, err
	}
	return identity.Identity{}, ErrInvalidCredentials
}

// try asks backends in order; decided is false when every one of them said ErrNoMatch.
func try(ctx context.Context, backends []Member, cr Credentials) (_ identity.Identity, decided bool, _ error) {
	id, by, err := tryFrom(ctx, backends, cr)
	return id, by != nil, err
}

// tryFrom asks backends in order and returns the one that decided (nil when every one of them
// said ErrNoMatch).
func tryFrom(ctx context.Context, backends []Member, cr Credentials) (identity.Identity, *Member, error) {
	for i, b := range backends {
		id, err := b.Authenticate(ctx, cr)
		switch {
		case err == nil:
			if id, err = b.qualify(id); err != nil {
				return identity.Identity{}, &backends[i], err
			}
			if id.Backend == "" {
				id.Backend = b.Name
			}
			return id, &backends[i], nil
		case errors.Is(err, ErrNoMatch):
			continue
		default:
			return identity.Identity{}, &backends[i], fmt.Errorf("backend %q: %w", b.Name, err)
		}
	}
	return identity.Identity{}, nil, nil
}

// Claimed says whether a backend claims cr by its shape (a robot key, a workload JWT): a
// credential nobody can guess, which the lockout never holds off (see package lockout).
func (c *Chain) Claimed(ctx context.Context, cr Credentials) bool {
	return len(c.claimers(ctx, cr)) > 0
}

// claimers are the backends that claim cr, in chain order; for a subject token, only those
// that accept subject tokens.
func (c *Chain) claimers(ctx context.Context, cr Credentials) []Member {
	var out []Member
	for _, b := range c.backends {
		if cr.Kind == KindSubjectToken && !b.AcceptsSubjectTokens() {
			continue
		}
		if b.Claiming() && b.ClaimsCredential(ctx, cr) {
			out = append(out, b)
		}
	}
	return out
}

// maxCost is the highest bcrypt cost any password backend holds, asked per request because a
// reloaded file may change it.
func (c *Chain) maxCost(ctx context.Context) int {
	cost := 0
	for _, b := range c.unclaiming {
		cost = max(cost, b.BcryptCost(ctx))
	}
	if cost == 0 { // no password backend: still do not answer instantly
		cost = bcrypt.DefaultCost
	}
	return cost
}

func (c *Chain) dummyHash(cost int) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.dummy[cost]
	if !ok {
		var err error
		h, err = bcrypt.GenerateFromPassword([]byte("portcullis-no-such-user"), cost)
		if err != nil { // only for an out-of-range cost, which CheckHash already refused
			h = []byte{}
		}
		c.dummy[cost] = h
	}
	return h
}

// Close closes every backend.
func (c *Chain) Close(ctx context.Context) error {
	var errs []error
	for _, b := range c.backends {
		errs = append(errs, b.Close(ctx))
	}
	return errors.Join(errs...)
}

// Resolve re-reads subject in the backend named backend (a session's Identity.Backend).
// A backend no longer in the chain, or one that cannot resolve, knows nobody:
// ErrNoMatch, so a session from an old configuration ends rather than moving elsewhere.
func (c *Chain) Resolve(ctx context.Context, backend, subject string) (identity.Identity, error) {
	b, ok := c.backend(backend)
	if !ok {
		return identity.Identity{}, ErrNoMatch
	}
	if !b.CanResolve() {
		return identity.Identity{}, ErrNoMatch
	}
	// The backend knows its users by their names without the prefix. A subject without it
	// is not this backend's (a session from before the prefix was configured ends).
	bare, ok := strings.CutPrefix(subject, b.SubjectPrefix)
	if !ok || bare == "" {
		return identity.Identity{}, ErrNoMatch
	}
	id, err := b.Backend.Resolve(ctx, bare)
	switch {
	case errors.Is(err, ErrNoMatch), errors.Is(err, ErrUnsupported):
		return identity.Identity{}, ErrNoMatch
	case err != nil:
		return identity.Identity{}, fmt.Errorf("backend %q: %w", b.Name, err)
	}
	if id.Subject != bare { // a backend must not turn one session's user into another
		return identity.Identity{}, ErrNoMatch
	}
	if id, err = b.qualify(id); err != nil {
		return identity.Identity{}, ErrNoMatch
	}
	if id.Backend == "" {
		id.Backend = b.Name
	}
	return id, nil
}

// ResolvePerson re-reads a person by subject alone, in the password backends that can
// resolve, in chain order, as a login would find them: the first that knows the subject
// decides (its answer, ErrAccountDisabled included, is the answer); an error from one ends
// the search as a login's would; nobody knowing it is ErrNoMatch. The personal access token
// backend asks it for a token's owner, whose backend it does not record: a token outlives no
// change of configuration that would give its owner another account either.
func (c *Chain) ResolvePerson(ctx context.Context, subject string) (identity.Identity, error) {
	for _, b := range c.unclaiming {
		if !b.CanResolve() {
			continue
		}
		id, err := c.Resolve(ctx, b.Name, subject)
		if errors.Is(err, ErrNoMatch) {
			continue
		}
		return id, err
	}
	return identity.Identity{}, ErrNoMatch
}

// CanResolve reports whether the backend named backend can re-read its users, that is
// whether a session vouched for by it could ever be refreshed.
func (c *Chain) CanResolve(backend string) bool {
	b, ok := c.backend(backend)
	return ok && b.CanResolve()
}

// qualify puts the subject id a backend vouched for into the backend's namespace, or refuses
// it (ErrSubjectRefused, as a wrong password): a backend with its own namespace (robots) must
// stay in it; a backend with a subject_prefix gets it put in front (after it ':' may appear,
// as in GitHub's "repo:org/app:ref:…"); any other subject must be bare, so that no user,
// directory attribute or token claim can name a robot, the anonymous caller or another
// backend's prefixed user.
func (b Member) qualify(id identity.Identity) (identity.Identity, error) {
	refuse := func() (identity.Identity, error) {
		return identity.Identity{}, fmt.Errorf("backend %q: %w: %w", b.Name, ErrInvalidCredentials, ErrSubjectRefused)
	}
	if id.Subject == "" {
		return refuse()
	}
	if ns := b.SubjectNamespace(); ns != "" {
		rest, in := strings.CutPrefix(id.Subject, ns)
		if !in || rest == "" || identity.CheckBareName(rest) != nil {
			return refuse()
		}
		return id, nil
	}
	if b.SubjectPrefix != "" {
		id.Subject = b.SubjectPrefix + id.Subject
		return id, nil
	}
	if identity.CheckBareName(id.Subject) != nil {
		return refuse()
	}
	return id, nil
}

func (c *Chain) backend(name string) (Member, bool) {
	for _, b := range c.backends {
		if b.Name == name {
			return b, true
		}
	}
	return Member{}, false
}

// PersonBackend reports whether the backend named backend is one people sign in to with a
// password and that can re-read them: not claiming (no robot keys, personal access tokens or
// workload JWTs), no namespace of its own, and resolvable. Only such an identity may open the
// account pages, whose web session re-reads the person on every call.
func (c *Chain) PersonBackend(backend string) bool {
	b, ok := c.backend(backend)
	return ok && !b.Claiming() && b.SubjectNamespace() == "" && b.CanResolve()
}
