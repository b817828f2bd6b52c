// Package pats keeps personal access tokens: secrets a person creates for a tool that can hold
// only a user name and a password (a CI server, an imagePullSecret). The tool logs in as the
// person, with the person's subject as the user name and the token as the password. The secret
// ("pat_" and 256 random bits, base64url) is shown once and stored only as its SHA-256 (a
// 256-bit random secret needs no slow hash: it cannot be guessed, only stolen).
//
// A token always expires (at most Options.MaxTTL after creation), and may be narrowed to a
// list of scopes ("repository:alice/*:pull"): authz then grants the intersection of the
// policy's answer and the narrowing, never more than the owner gets. A login re-reads the
// owner in the authn backends (Options.Owner): an owner who is gone or disabled ends every
// one of their tokens.
//
// The Store interface is owned here; the state stores (services/authn/storage/…) implement
// it in the same database as sessions and robots. The Manager is what the pat backend
// (services/authn/backend/pat) and the admin API (AdminServer) share in one process.
package pats

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/internal/secret"

	"github.com/portcullis-dev/portcullis/pkg/scope"
)

const (
	// SecretPrefix starts every token, so the authn chain routes it to the pat backend
	// without a password check and secret scanners can recognize a leaked one.
	SecretPrefix = "pat_"
	// secretBytes is the secret's entropy: 256 bits.
	secretBytes = 32
	// idPrefix starts a token's public id.
	idPrefix = "pid_"
)

// Limits on what a token carries.
const (
	MaxNameLen     = 64
	MaxScopes      = 32
	MaxPerOwner    = 100
	MaxOwnerLen    = 256
	DefaultMaxTTL  = 2160 * time.Hour // 90 days
	minExpiresIn   = time.Second
	maxScopeLen    = 512
	maxIDLen       = 64
	maxSecretBytes = 128 // anything longer was not made here: refused before hashing
)

// PAT is one personal access token. Its secret is never stored: only the secret's SHA-256.
type PAT struct {
	ID         string   // public id ("pid_…"), what revocation names
	Owner      string   // the subject of the person it logs in as
	Name       string   // unique among the owner's tokens
	SecretHash [32]byte // SHA-256 of the secret
	// Scopes narrow the token; nil: whatever the owner gets.
	Scopes []scope.Scope
	// Times are kept to the microsecond, as both SQL stores do. A zero LastUsedAt was never
	// used. ExpiresAt is never zero.
	CreatedAt, ExpiresAt, LastUsedAt time.Time
}

// Expired says whether p is expired at now.
func (p PAT) Expired(now time.Time) bool { return !now.Before(p.ExpiresAt) }

var (
	// ErrNotFound: no token with that id or secret hash.
	ErrNotFound = errors.New("pats: not found")
	// ErrExists: the owner has a token of that name already.
	ErrExists = errors.New("pats: the owner has a token with this name")
	// ErrNoOwner: Options.Owner found no account that may log in under the owner's subject
	// (removed or disabled).
	ErrNoOwner = errors.New("pats: no such account, or it is disabled")
	// ErrRefused is a secret that does not log in: malformed, unknown, expired, presented
	// under another user name, or its owner's account ended. Why is in the audit log.
	ErrRefused = errors.New("pats: token refused")
	// ErrDisabled: personal access tokens are turned off (sso.pat.enabled).
	ErrDisabled = errors.New("pats: personal access tokens are disabled")
)

// InvalidError is a token the caller described wrongly. Its message is written for the caller
// and safe to return.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return "pats: " + e.Msg }

// Touch is one coalesced "last used" update.
type Touch struct {
	ID         string
	LastUsedAt time.Time
}

// Store persists tokens. Implementations must be safe for concurrent use, by several
// processes sharing the database too.
type Store interface {
	// Create stores p; a token of the owner's with p's name (or p's id or hash) makes it
	// ErrExists.
	Create(ctx context.Context, p PAT) error
	// ByHash finds a token by the SHA-256 of its secret (ErrNotFound).
	ByHash(ctx context.Context, h [32]byte) (PAT, error)
	// List returns the owner's tokens ordered by name (none: empty, no error).
	List(ctx context.Context, owner string) ([]PAT, error)
	// Delete removes a token by id and returns it as it was (ErrNotFound).
	Delete(ctx context.Context, id string) (PAT, error)
	// DeleteOwner removes every token of owner and says how many there were.
	DeleteOwner(ctx context.Context, owner string) (int, error)
	// Touch writes a batch of last uses by id; ids no longer stored are skipped, and a use
	// older than the stored one is ignored.
	Touch(ctx context.Context, ts []Touch) error
}

// HashSecret is the SHA-256 under which a secret's token is stored.
func HashSecret(secret string) [32]byte { return sha256.Sum256([]byte(secret)) }

// NewSecret returns a fresh secret: SecretPrefix + base64url(32 random bytes).
func NewSecret() (string, error) {
	k, err := secret.New(SecretPrefix, secretBytes)
	if err != nil {
		return "", fmt.Errorf("pats: secret: %w", err)
	}
	return k, nil
}

// LooksLikeSecret reports whether a password is meant as a token: it has the prefix. It is
// what the authn chain routes on, so a malformed token is still the pat backend's to refuse
// and never reaches bcrypt or a directory.
func LooksLikeSecret(s string) bool { return strings.HasPrefix(s, SecretPrefix) }

// WellFormed reports whether s is a secret NewSecret could have made, before any store read.
func WellFormed(s string) bool {
	return len(s) <= maxSecretBytes && secret.WellFormed(s, SecretPrefix, secretBytes)
}

func newID() (string, error) {
	id, err := secret.New(idPrefix, 16)
	if err != nil {
		return "", fmt.Errorf("pats: id: %w", err)
	}
	return id, nil
}

// ValidateName checks a token name (the rules of robot names, secret.NameProblem).
func ValidateName(name string) error {
	if p := secret.NameProblem(name, MaxNameLen); p != "" {
		return &InvalidError{p}
	}
	return nil
}

// ValidateOwner checks an owner subject: a user name that Basic authentication can carry
// (no ':', which ends the user name there, and no control characters). A subject under a
// backend's subject_prefix ("corp:alice") therefore cannot own a token.
func ValidateOwner(owner string) error {
	switch {
	case owner == "":
		return &InvalidError{"owner is required"}
	case len(owner) > MaxOwnerLen:
		return &InvalidError{fmt.Sprintf("owner is longer than %d bytes", MaxOwnerLen)}
	case strings.Contains(owner, ":"):
		return &InvalidError{`owner must not contain ":": a token logs in with its owner as the user name`}
	}
	for _, r := range owner {
		if r < 0x20 || r == 0x7f {
			return &InvalidError{"owner must not contain control characters"}
		}
	}
	return nil
}

// ParseScope reads one narrowing: type[(class)]:name-pattern:actions, e.g.
// "repository:alice/*:pull,push". The name is a path.Match pattern ("*" stays within one path
// component); the action "*" is any action.
func ParseScope(s string) (scope.Scope, error) {
	bad := func(why string) (scope.Scope, error) {
		return scope.Scope{}, &InvalidError{fmt.Sprintf("scope %q: %s", truncate(s), why)}
	}
	if len(s) > maxScopeLen {
		return bad(fmt.Sprintf("longer than %d bytes", maxScopeLen))
	}
	// Parse checks everything but the pattern: give it the name with each '*' as a letter
	// (the only wildcard; Parse refuses '?' and '['), then put the pattern back. The type and
	// the actions hold no ':', so the first and last ':' delimit the name.
	first, last := strings.IndexByte(s, ':'), strings.LastIndexByte(s, ':')
	if first < 0 || first == last {
		return bad("want type:name:actions")
	}
	name := s[first+1 : last]
	parsed, err := scope.Parse(s[:first+1] + strings.ReplaceAll(name, "*", "x") + s[last:])
	if err != nil {
		var pe *scope.ParseError
		if errors.As(err, &pe) {
			return bad(pe.Reason)
		}
		return bad("want type:name:actions")
	}
	parsed.Name = name
	if _, err := path.Match(parsed.Name, ""); err != nil { // what authz.Narrow matches with
		return bad("invalid name pattern")
	}
	return parsed, nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// ParseScopes reads a token's narrowing; none is nil (no narrowing).
func ParseScopes(in []string) ([]scope.Scope, error) {
	if len(in) > MaxScopes {
		return nil, &InvalidError{fmt.Sprintf("at most %d scopes", MaxScopes)}
	}
	var out []scope.Scope
	for _, s := range in {
		p, err := ParseScope(s)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, nil
}

// EncodeScopes and DecodeScopes are how the SQL stores keep a narrowing: a JSON list of
// scope strings (Scope.String, which ParseScope reads back), never null.
func EncodeScopes(ss []scope.Scope) string {
	l := make([]string, len(ss))
	for i, s := range ss {
		l[i] = s.String()
	}
	b, _ := json.Marshal(l) // cannot fail
	return string(b)
}

// DecodeScopes reads what EncodeScopes wrote; an empty list is nil.
func DecodeScopes(b []byte) ([]scope.Scope, error) {
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return nil, fmt.Errorf("pats: stored scopes: %w", err)
	}
	ss, err := ParseScopes(l)
	if err != nil {
		return nil, fmt.Errorf("pats: stored scopes: %w", err)
	}
	return ss, nil
}
