// Package websessions keeps the browser sessions of the sign-in pages: who signed in (with the
// company IdP or a password), from where, until when. The cookie holds the token ("pcw_" and
// 256 random bits); the store holds only its SHA-256. A web session is not a registry session:
// it cannot refresh a registry token, and a registry refresh token cannot open the pages.
//
// The Store interface is owned here; the state stores (services/authn/storage/…) implement it.
package websessions

import (
	"context"
	"crypto/sha256"
	"errors"
	"time"
)

// Session is one browser session. Times are kept to the microsecond.
type Session struct {
	ID        string   // public id ("wss_…"); not secret
	TokenHash [32]byte // SHA-256 of the cookie's token
	// Subject, Backend and Fingerprint are the account's at sign-in (Backend "sso" for the IdP).
	Subject, Backend, Fingerprint string
	// IDPSessionID is the IdP's session id (the ID token's sid), "" without one: a
	// back-channel logout naming it ends this session.
	IDPSessionID          string
	RemoteAddr, UserAgent string
	CreatedAt, ExpiresAt  time.Time
}

// ErrNotFound: no session with that id or token hash.
var ErrNotFound = errors.New("websessions: not found")

// Store persists web sessions. Implementations must be safe for concurrent use, by several
// processes sharing the database too.
type Store interface {
	// Create stores s (an id or token hash already stored is an error).
	Create(ctx context.Context, s Session) error
	// ByTokenHash finds a session by its token's SHA-256 (ErrNotFound); expiry is the
	// caller's to check.
	ByTokenHash(ctx context.Context, h [32]byte) (Session, error)
	// Delete removes one session by id (ErrNotFound).
	Delete(ctx context.Context, id string) error
	// SubjectsByIDPSession names the subjects with a session from the IdP session sid
	// (IDPSessionID), sorted, each once (none: empty, no error). A back-channel logout token
	// may name only the sid (Hydra's do).
	SubjectsByIDPSession(ctx context.Context, sid string) ([]string, error)
	// DeleteSubject removes every session of subject and says how many there were.
	DeleteSubject(ctx context.Context, subject string) (int, error)
	// DeleteExpired removes sessions whose ExpiresAt is not after now and says how many.
	DeleteExpired(ctx context.Context, now time.Time) (int, error)
}

// HashToken is the SHA-256 under which a token's session is stored.
func HashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }
