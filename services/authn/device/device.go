// Package device keeps the OAuth 2.0 Device Authorization Grant's flows (RFC 8628) that
// `portcullis login` starts: a device code the CLI polls with (stored only as its SHA-256)
// and a short user code a person types on the approval page. A flow is pending until a
// signed-in person approves or denies it, and an approved flow is consumed by exactly one
// poll, which turns it into a refresh session.
//
// The Store interface is owned here; the state stores (services/authn/storage/…) implement it
// in the same database as sessions, so every authn replica sees every flow.
package device

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"
)

// State is where a flow is.
type State string

const (
	Pending  State = "pending"
	Approved State = "approved"
	Denied   State = "denied"
)

// Authorization is one device flow. Times are kept to the microsecond, as both SQL stores do.
type Authorization struct {
	// DeviceCodeHash is the SHA-256 of the device code; the code itself is never stored.
	DeviceCodeHash [32]byte
	// UserCode is the user code normalized: 8 upper-case letters of UserCodeAlphabet, no dash.
	UserCode string
	// ClientID, Service and Scopes are what the device asked for.
	ClientID, Service string
	Scopes            []string
	// ClientAddr and UserAgent are the starting device's, shown on the approval page.
	ClientAddr, UserAgent string
	CreatedAt, ExpiresAt  time.Time
	// Interval is the least time between two polls; LastPollAt is the last poll (zero: none).
	Interval   time.Duration
	LastPollAt time.Time
	State      State
	// Set when decided: who decided, from where, and (approved) the account's subject,
	// backend and credential fingerprint the session will be issued for.
	Subject, Backend, Fingerprint string
	DecidedAt                     time.Time
	DecidedAddr                   string
}

// Decision is what the approval page decided.
type Decision struct {
	Approve                       bool
	Subject, Backend, Fingerprint string
	At                            time.Time
	Addr                          string
}

var (
	// ErrNotFound: no flow with that device or user code.
	ErrNotFound = errors.New("device: not found")
	// ErrExists: a flow with that user code (or device code hash) is stored already.
	ErrExists = errors.New("device: user code in use")
	// ErrNotPending: Decide on a flow that was decided already.
	ErrNotPending = errors.New("device: flow already decided")
)

// Store persists flows. Implementations must be safe for concurrent use, by several processes
// sharing the database too.
type Store interface {
	// Create stores a new flow (ErrExists when its user code or device code hash is taken).
	Create(ctx context.Context, a Authorization) error
	// ByUserCode finds a flow by its normalized user code (ErrNotFound).
	ByUserCode(ctx context.Context, userCode string) (Authorization, error)
	// Poll finds a flow by device code hash, records a poll at `at` and returns the flow as
	// it was before this poll (its LastPollAt is the previous poll's) (ErrNotFound).
	Poll(ctx context.Context, h [32]byte, at time.Time) (Authorization, error)
	// Decide moves a pending flow, found by user code, to approved or denied and returns it
	// as decided; a flow not pending is ErrNotPending, none ErrNotFound.
	Decide(ctx context.Context, userCode string, d Decision) (Authorization, error)
	// Delete removes a flow by device code hash and returns it as it was; of concurrent
	// callers exactly one gets it, the others ErrNotFound. An approved flow is consumed so.
	Delete(ctx context.Context, h [32]byte) (Authorization, error)
	// DeleteExpired removes flows whose ExpiresAt is not after now and says how many.
	DeleteExpired(ctx context.Context, now time.Time) (int, error)
}

// HashCode is the SHA-256 under which a device code's flow is stored.
func HashCode(code string) [32]byte { return sha256.Sum256([]byte(code)) }
