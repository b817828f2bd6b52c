// Package authn checks credentials against a chain of pluggable backends
// (htpasswd, static users, later LDAP, OIDC, robots) and caches verified ones.
package authn

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn/pats"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
)

// Sentinel errors. The gRPC boundary maps them to codes in toStatus.
var (
	// ErrInvalidCredentials ends the chain: the backend knows the user and the password is wrong.
	ErrInvalidCredentials = errors.New("authn: invalid credentials")
	// ErrNoMatch means a backend does not know the user; the next backend is tried.
	ErrNoMatch = errors.New("authn: no backend knows this user")
	// ErrUnavailable means a backend could not be asked (LDAP down, file unreadable).
	ErrUnavailable = errors.New("authn: backend unavailable")
	// ErrAccountDisabled means the backend knows the user and their account may not log in
	// (disabled, locked by the directory's password policy). It is an ErrInvalidCredentials, so
	// callers see a wrong password; the audit log and a refresh grant tell it apart.
	ErrAccountDisabled = fmt.Errorf("%w: account disabled", ErrInvalidCredentials)
	// ErrBusy means too many callers already wait for bcrypt work; the caller should retry later.
	ErrBusy = errors.New("authn: too many password checks in progress")
	// ErrSubjectRefused: a backend vouched for a subject that could pass for another
	// namespace's ("robot:ci", "system:anonymous"); the chain wraps it in
	// ErrInvalidCredentials, so the login is refused and the audit event says why.
	ErrSubjectRefused = errors.New(`authn: subject holds ":" outside a subject_prefix`)
	// ErrUnsupported: the backend cannot do what was asked (UnimplementedBackend's Resolve).
	// The chain turns it into ErrNoMatch, so a session ends rather than moving to another
	// backend.
	ErrUnsupported = errors.New("authn: not supported by this backend")
)

// Password is a secret that never prints.
type Password string

func (Password) String() string                 { return "***" }
func (Password) GoString() string               { return "***" }
func (Password) LogValue() slog.Value           { return slog.StringValue("***") }
func (p Password) MarshalText() ([]byte, error) { return []byte("***"), nil }

// Format makes every verb print "***": fmt prints a value it cannot format with the verb
// given (%d of a string) raw, without calling String.
func (Password) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "***") }

// Credentials is what a caller presented.
type Credentials struct {
	Username string
	// Password is the password, or with Kind SubjectToken the subject token.
	Password   Password
	Service    string
	ClientID   string
	RemoteAddr string
	// Kind says what Password holds. A subject token reaches only backends that accept
	// subject tokens (Backend.AcceptsSubjectTokens), so an exchange cannot be turned into a
	// password guess, a robot key check or any other login that needs a user name.
	Kind CredentialKind
}

// CredentialKind is what a caller presented: a user name and password (the zero value, every
// login of the Docker token protocol), or a subject token alone.
type CredentialKind uint8

const (
	// KindPassword is a user name and a password (or a JWT or key in its place).
	KindPassword CredentialKind = iota
	// KindSubjectToken is the subject_token of an RFC 8693 token exchange; Username is empty.
	KindSubjectToken
)

// Authenticator is one backend, or a chain of them.
type Authenticator interface {
	// Authenticate returns ErrNoMatch when the user is unknown to this backend,
	// ErrInvalidCredentials when the password is wrong, ErrUnavailable when it cannot tell.
	Authenticate(ctx context.Context, c Credentials) (identity.Identity, error)
}

// Backend is what every backend implements: Authenticate and each ability the chain may ask
// of it. It is one closed interface: a backend embeds UnimplementedBackend for the abilities
// it lacks (ErrUnsupported or a neutral answer), the chain calls methods and never discovers
// an ability by type assertion, and so a wrapper that implements Backend cannot lose an
// ability without the build failing or its author writing so.
type Backend interface {
	Authenticator

	// Resolve re-reads a user the backend vouched for earlier, without a password, so a
	// refresh grant sees the user's current groups and labels. It answers ErrNoMatch when the
	// user is gone, ErrAccountDisabled when the account may no longer log in, and
	// ErrUnavailable when it cannot tell; the identity's Fingerprint must be the one
	// Authenticate gives while the credential is unchanged. Default: ErrUnsupported.
	Resolve(ctx context.Context, subject string) (identity.Identity, error)
	// CanResolve says whether Resolve works: sessions are only issued for backends whose
	// users can be re-read. Default: false.
	CanResolve() bool

	// BcryptCost is, for a backend that verifies bcrypt hashes, the highest cost it holds, so
	// the chain can spend the same time on unknown users. Default: 0, no bcrypt hashes (a
	// directory's refusal is then topped up with a bcrypt comparison by the chain).
	BcryptCost(ctx context.Context) int

	// Claiming says whether the backend's credentials have a shape of their own (a workload
	// JWT as the password, a prefixed API key). The chain asks only the claiming backends
	// that claim a credential (ClaimsCredential) about it, and never asks a claiming backend
	// about a credential it does not claim, so a JWT never reaches a password backend's bcrypt
	// and a password never reaches a JWT verifier. A claimed credential that no claiming
	// backend accepts is denied without the bcrypt work an unknown user pays: its shape, not a
	// user lookup, decided the route, so there is no user to hide. Default: false.
	Claiming() bool
	// ClaimsCredential looks at c's shape only; it must be cheap and must not fail. Asked of
	// claiming backends only. Default: false.
	ClaimsCredential(ctx context.Context, c Credentials) bool
	// AcceptsSubjectTokens says whether the credentials the backend claims may also come as
	// the subject token of a token exchange (Credentials.Kind KindSubjectToken), with no user
	// name: a workload JWT names its caller by itself, a robot key does not. The chain sends a
	// subject token only to claiming backends that say so and that claim it. Default: false.
	AcceptsSubjectTokens() bool

	// SubjectNamespace is, for a backend whose subjects carry a namespace of their own (the
	// robot backend's "robot:"), that namespace. The chain accepts from it only subjects in
	// that namespace, and from every other backend only subjects without ':'
	// (identity.CheckBareName) unless the backend has a subject_prefix; so no user, directory
	// entry or token claim can produce a robot's or the anonymous caller's subject. Such a
	// backend takes no subject_prefix. Default: "", none.
	SubjectNamespace() string

	// Close stops the backend's goroutines and connections. Default: nil.
	Close(ctx context.Context) error
}

// UnimplementedBackend gives a Backend its default abilities: a password backend without
// bcrypt, sessions or namespace. Embed it by value and override what the backend can do.
type UnimplementedBackend struct{}

// Resolve answers ErrUnsupported.
func (UnimplementedBackend) Resolve(context.Context, string) (identity.Identity, error) {
	return identity.Identity{}, ErrUnsupported
}

// CanResolve answers false.
func (UnimplementedBackend) CanResolve() bool { return false }

// BcryptCost answers 0: no bcrypt hashes.
func (UnimplementedBackend) BcryptCost(context.Context) int { return 0 }

// Claiming answers false: a password backend.
func (UnimplementedBackend) Claiming() bool { return false }

// ClaimsCredential answers false.
func (UnimplementedBackend) ClaimsCredential(context.Context, Credentials) bool { return false }

// AcceptsSubjectTokens answers false: no token exchange.
func (UnimplementedBackend) AcceptsSubjectTokens() bool { return false }

// SubjectNamespace answers "": no namespace of its own.
func (UnimplementedBackend) SubjectNamespace() string { return "" }

// Close answers nil: nothing to stop.
func (UnimplementedBackend) Close(context.Context) error { return nil }

// Deps are what a backend may use; backends get nothing from package state.
type Deps struct {
	Logger *slog.Logger
	Now    func() time.Time
	// Changed must be called when the backend's user data changes (file reload), so
	// cached verifications made against the old data are dropped.
	Changed func()
	// Bcrypt bounds the backend's bcrypt comparisons (nil: unlimited); one limiter is shared
	// by every backend and the chain, so together they never take more than its slots.
	Bcrypt *BcryptLimiter
	// Robots are the robot accounts kept in the shared state store (the session store's
	// database), for the robot backend; nil when this process opened none. Package robots
	// does not import authn, so the field costs no import cycle.
	Robots *robots.Manager
	// PATs are people's personal access tokens kept in the shared state store, for the pat
	// backend; nil when sso.pat.enabled is off. Package pats does not import authn either.
	PATs *pats.Manager
	// SSO is the people known through the company IdP, for the sso backend; nil when sso is
	// not configured. Package ssoaccounts does not import authn either.
	SSO *ssoaccounts.Directory
}

// BackendConfig is one backend type's configuration; see package backends for the list.
type BackendConfig interface {
	Validate() []error
	Open(ctx context.Context, deps Deps) (Backend, error)
}
