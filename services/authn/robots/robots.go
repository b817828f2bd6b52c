// Package robots keeps robot accounts: named machine identities (a CI pipeline, a mirroring
// job) that log in with an API key instead of a person's password. The key ("pcp_" and 256
// random bits, base64url) is shown once when the robot is created and stored only as its
// SHA-256, like a refresh token. The robot's identity subject is "robot:<name>": a Basic-auth
// user name, and so an htpasswd or static user, cannot contain ':', so no password user can
// pass for a robot, and policies can tell robots by the prefix (or by the backend name).
//
// The Store interface is owned here; the session stores (sqlite, postgres) implement it in
// the same database (Provider), so replicas sharing one PostgreSQL share robots too. The
// Manager is what the robot backend (services/authn/backend/robot) and the admin API share in one
// process; the admin API is AdminServer.
package robots

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/portcullis-dev/portcullis/services/authn/internal/secret"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn/internal/page"
)

const (
	// KeyPrefix starts every robot key, so the authn chain routes it to the robot backend
	// without a password check and secret scanners can recognize a leaked one.
	KeyPrefix = "pcp_"
	// SubjectPrefix starts every robot's identity subject; no other backend may give one
	// (authn.Backend.SubjectNamespace).
	SubjectPrefix = identity.RobotPrefix
	// keyBytes is the key's entropy: 256 bits.
	keyBytes = 32
	// idPrefix starts a robot's public id.
	idPrefix = "rob_"
)

// Limits on what a robot carries; tokens and policy input hold all of it.
const (
	MaxNameLen    = 64
	MaxGroups     = 64
	MaxLabels     = 64
	MaxValueLen   = 256 // a group name, a label name or a label value
	MaxExpiresIn  = 10 * 366 * 24 * time.Hour
	minExpiresIn  = time.Second
	DefaultPage   = 50
	MaxPage       = 500
	maxTokenBytes = 512 // a page token; anything longer was not made here
)

// Robot is one robot account. Its key is never stored: only the key's SHA-256.
type Robot struct {
	ID      string   // public id ("rob_…"); a robot created again under a revoked one's name gets a new one
	Name    string   // unique among robots that are not revoked
	KeyHash [32]byte // SHA-256 of the key
	Groups  []string
	Labels  map[string]string
	// Times are kept to the microsecond, as both SQL stores do. A zero ExpiresAt never
	// expires; a zero LastUsedAt was never used; a zero RevokedAt is not revoked.
	CreatedAt, ExpiresAt, LastUsedAt, RevokedAt time.Time
}

// Subject is the robot's identity subject.
func (r Robot) Subject() string { return SubjectPrefix + r.Name }

// State is what a robot is at now.
type State int

const (
	StateActive State = iota + 1
	StateExpired
	StateRevoked
)

func (s State) String() string {
	switch s {
	case StateActive:
		return "active"
	case StateExpired:
		return "expired"
	case StateRevoked:
		return "revoked"
	}
	return "unknown"
}

// StateAt is r's state at now: revoked wins over expired.
func (r Robot) StateAt(now time.Time) State {
	switch {
	case !r.RevokedAt.IsZero():
		return StateRevoked
	case !r.ExpiresAt.IsZero() && !now.Before(r.ExpiresAt):
		return StateExpired
	}
	return StateActive
}

var (
	// ErrNotFound: no robot with that name or key hash.
	ErrNotFound = errors.New("robots: not found")
	// ErrExists: a robot that is not revoked already has the name.
	ErrExists = errors.New("robots: a robot with this name exists")
	// ErrBadPageToken: a List page token this store did not hand out.
	ErrBadPageToken = errors.New("robots: invalid page token")
)

// InvalidError is a robot the caller described wrongly (name, groups, labels, expiry). Its
// message is written for the caller and safe to return.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return "robots: " + e.Msg }

// ListOptions page List.
type ListOptions struct {
	PageSize  int
	PageToken string
}

// Touch is one coalesced "last used" update.
type Touch struct {
	ID         string
	LastUsedAt time.Time
}

// Store persists robots. Implementations must be safe for concurrent use, by several
// processes sharing the database too.
type Store interface {
	// Create stores r. A robot that is not revoked and has r's name makes it ErrExists; a
	// revoked one with that name is replaced, atomically.
	Create(ctx context.Context, r Robot) error
	// ByKeyHash finds a robot, revoked or not, by the SHA-256 of its key (ErrNotFound).
	ByKeyHash(ctx context.Context, h [32]byte) (Robot, error)
	// Get finds a robot, revoked or not, by name (ErrNotFound).
	Get(ctx context.Context, name string) (Robot, error)
	// List returns robots ordered by name; next is "" on the last page. A page token not
	// made by this List is ErrBadPageToken. PageSize is already within [1, MaxPage].
	List(ctx context.Context, o ListOptions) (rs []Robot, next string, err error)
	// Revoke sets the robot's RevokedAt to at unless it is revoked already, and returns the
	// robot as stored afterwards; revoked says whether this call revoked it (ErrNotFound).
	Revoke(ctx context.Context, name string, at time.Time) (r Robot, revoked bool, err error)
	// Touch writes a batch of last uses by robot id; ids no longer stored are skipped, and a
	// use older than the stored one is ignored.
	Touch(ctx context.Context, ts []Touch) error
}

// Provider is a store backend that keeps robots in its own database beside what it is for:
// the session stores (sqlite, postgres) do.
type Provider interface {
	RobotStore() Store
}

// HashKey is the SHA-256 under which a key's robot is stored.
func HashKey(key string) [32]byte { return sha256.Sum256([]byte(key)) }

// NewKey returns a fresh key: KeyPrefix + base64url(32 random bytes).
func NewKey() (string, error) {
	k, err := secret.New(KeyPrefix, keyBytes)
	if err != nil {
		return "", fmt.Errorf("robots: key: %w", err)
	}
	return k, nil
}

// LooksLikeKey reports whether a password is meant as a robot key: it has the prefix. It is
// what the authn chain routes on, so a malformed key is still a robot's to refuse.
func LooksLikeKey(s string) bool { return strings.HasPrefix(s, KeyPrefix) }

// WellFormed reports whether s is a key NewKey could have made, before any store read.
func WellFormed(s string) bool { return secret.WellFormed(s, KeyPrefix, keyBytes) }

func newID() (string, error) {
	id, err := secret.New(idPrefix, 16)
	if err != nil {
		return "", fmt.Errorf("robots: id: %w", err)
	}
	return id, nil
}

// ValidateName checks a robot name (secret.NameProblem's rules).
func ValidateName(name string) error {
	if p := secret.NameProblem(name, MaxNameLen); p != "" {
		return &InvalidError{p}
	}
	return nil
}

// validateValue checks a group name, label name or label value: printable, bounded.
func validateValue(what, v string, empty bool) error {
	switch {
	case v == "" && !empty:
		return &InvalidError{what + " must not be empty"}
	case len(v) > MaxValueLen:
		return &InvalidError{fmt.Sprintf("%s is longer than %d bytes", what, MaxValueLen)}
	case !utf8.ValidString(v):
		return &InvalidError{what + " is not UTF-8"}
	}
	for _, r := range v {
		if !unicode.IsPrint(r) {
			return &InvalidError{what + " must be printable characters"}
		}
	}
	return nil
}

// Spec is what an administrator asks for in a new robot.
type Spec struct {
	Name   string
	Groups []string
	Labels map[string]string
	// ExpiresIn ends the key that long after creation; 0: never.
	ExpiresIn time.Duration
}

// Validate reports the first problem of s.
func (s Spec) Validate() error {
	if err := ValidateName(s.Name); err != nil {
		return err
	}
	if len(s.Groups) > MaxGroups {
		return &InvalidError{fmt.Sprintf("at most %d groups", MaxGroups)}
	}
	seen := map[string]bool{}
	for _, g := range s.Groups {
		if err := validateValue("a group name", g, false); err != nil {
			return err
		}
		if seen[g] {
			return &InvalidError{fmt.Sprintf("group %q is given twice", g)}
		}
		seen[g] = true
	}
	if len(s.Labels) > MaxLabels {
		return &InvalidError{fmt.Sprintf("at most %d labels", MaxLabels)}
	}
	for k, v := range s.Labels {
		if err := validateValue("a label name", k, false); err != nil {
			return err
		}
		if err := validateValue("label "+k+"'s value", v, true); err != nil {
			return err
		}
	}
	switch {
	case s.ExpiresIn < 0:
		return &InvalidError{"expires_in must not be negative"}
	case s.ExpiresIn > 0 && s.ExpiresIn < minExpiresIn:
		return &InvalidError{"expires_in must be at least 1s"}
	case s.ExpiresIn > MaxExpiresIn:
		return &InvalidError{"expires_in must be at most ten years"}
	}
	return nil
}

// PageSize normalizes a requested page size: 0 is DefaultPage, more than MaxPage is MaxPage
// (AIP-158: coerced, not refused). Negative sizes are the caller's to refuse.
func PageSize(n int) int { return page.Size(n, DefaultPage, MaxPage) }

// pageToken is the name after which the next page starts; opaque to clients, not secret.
type pageToken struct {
	After string `json:"a"`
}

// EncodePageToken is the page token that continues after the robot named last.
func EncodePageToken(last string) string {
	return page.EncodeToken(pageToken{After: last})
}

// DecodePageToken reads a page token: ok is false for the first page (empty token).
func DecodePageToken(tok string) (after string, ok bool, err error) {
	if tok == "" {
		return "", false, nil
	}
	var p pageToken
	if !page.DecodeToken(tok, maxTokenBytes, &p) || p.After == "" {
		return "", false, ErrBadPageToken
	}
	return p.After, true, nil
}

// EncodeGroups and EncodeLabels are how the SQL stores keep the lists: JSON, never null.
func EncodeGroups(g []string) string {
	if g == nil {
		g = []string{}
	}
	b, _ := json.Marshal(g) // cannot fail
	return string(b)
}

func EncodeLabels(l map[string]string) string {
	if l == nil {
		l = map[string]string{}
	}
	b, _ := json.Marshal(l) // cannot fail
	return string(b)
}

// DecodeGroupsLabels reads what EncodeGroups and EncodeLabels wrote; empty ones become nil,
// so a robot reads back as it was created.
func DecodeGroupsLabels(groups, labels []byte) ([]string, map[string]string, error) {
	var g []string
	var l map[string]string
	if err := json.Unmarshal(groups, &g); err != nil {
		return nil, nil, fmt.Errorf("robots: stored groups: %w", err)
	}
	if err := json.Unmarshal(labels, &l); err != nil {
		return nil, nil, fmt.Errorf("robots: stored labels: %w", err)
	}
	if len(g) == 0 {
		g = nil
	}
	if len(l) == 0 {
		l = nil
	}
	return g, l, nil
}
