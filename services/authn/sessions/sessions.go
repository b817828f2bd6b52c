// Package sessions keeps refresh-token sessions: what a refresh token stands for (subject,
// backend, service), how long it lives, and when it was last used. The Store interface is owned
// here; its backends live in the sqlite and postgres subpackages, listed in package stores.
package sessions

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/internal/page"
)

// Session is one refresh token's server-side state. The token itself is never stored: only its
// SHA-256, so a leaked database does not hand out working tokens.
type Session struct {
	ID                                  string   // public id ("ses_…"); not secret
	TokenHash                           [32]byte // SHA-256 of the refresh token
	Subject, Backend, Service, ClientID string
	CreatedAt, LastUsedAt               time.Time
	LastRemoteAddr                      string
	IdleExpiresAt, ExpiresAt            time.Time
	// Fingerprint is the account's credential fingerprint at login (identity.Fingerprint):
	// a refresh whose user's fingerprint differs ends the session. FingerprintSet is false
	// for sessions issued before Portcullis recorded fingerprints; their first refresh
	// records the current one. A set Fingerprint may be "" (the backend has none to give).
	Fingerprint    string
	FingerprintSet bool
}

var (
	// ErrNotFound: no session with that id or token hash.
	ErrNotFound = errors.New("sessions: not found")
	// ErrInvalidToken: a refresh token that is malformed, unknown, expired, or for another service.
	// One error for all of them so a caller cannot tell a guessed token from a revoked one.
	ErrInvalidToken = errors.New("sessions: invalid refresh token")
	// ErrBadPageToken: a List page token this store did not hand out (or for another filter).
	ErrBadPageToken = errors.New("sessions: invalid page token")
)

// SchemaTooNewError is returned by a store's Open when the database was migrated by a newer
// Portcullis than this one: running on would risk corrupting data the newer schema relies on.
type SchemaTooNewError struct {
	Have, Known int
}

func (e *SchemaTooNewError) Error() string {
	return fmt.Sprintf("sessions: database schema version %d is newer than this binary knows (%d); upgrade Portcullis or use another database", e.Have, e.Known)
}

// ListOptions filters and pages List. An empty Subject lists every session.
type ListOptions struct {
	Subject   string
	PageSize  int
	PageToken string
}

// Touch is one coalesced "last used" update.
type Touch struct {
	ID            string
	LastUsedAt    time.Time
	RemoteAddr    string
	IdleExpiresAt time.Time
}

// Store persists sessions. Implementations must be safe for concurrent use.
type Store interface {
	Create(ctx context.Context, s Session) error
	// ByTokenHash finds a session by the SHA-256 of its token (ErrNotFound).
	ByTokenHash(ctx context.Context, h [32]byte) (Session, error)
	// Get finds a session by id (ErrNotFound).
	Get(ctx context.Context, id string) (Session, error)
	// List returns sessions ordered by (CreatedAt, ID); next is "" on the last page.
	// A page token not made by this List is ErrBadPageToken.
	List(ctx context.Context, o ListOptions) (ss []Session, next string, err error)
	// Touch writes a batch of last-used updates; ids no longer stored are skipped, and an
	// update older than the stored last use is ignored.
	Touch(ctx context.Context, ts []Touch) error
	// Revoke deletes one session (ErrNotFound).
	Revoke(ctx context.Context, id string) error
	// RevokeSubject deletes every session of a subject and says how many there were.
	RevokeSubject(ctx context.Context, subject string) (int, error)
	// RecordFingerprint sets the fingerprint of a session that has none (FingerprintSet
	// false); a session that has one, or no session with that id, is left as it is.
	RecordFingerprint(ctx context.Context, id, fingerprint string) error
	// DeleteExpired deletes sessions past their idle or absolute expiry at now.
	DeleteExpired(ctx context.Context, now time.Time) (int, error)
	Close(ctx context.Context) error
}

// Deps are what a store backend gets from its host process.
type Deps struct {
	Logger *slog.Logger
	Now    func() time.Time
}

// StoreConfig is one store type's configuration; see package stores for the list.
type StoreConfig interface {
	Validate() []error
	Open(ctx context.Context, deps Deps) (Store, error)
}

// Page sizes of Store.List when the caller leaves it unset, and the most it returns.
const (
	DefaultPageSize = 50
	MaxPageSize     = 1000
)

// PageSize normalizes ListOptions.PageSize for a store.
func PageSize(n int) int { return page.Size(n, DefaultPageSize, MaxPageSize) }

// pageToken is the position after which the next page starts. It carries the subject filter so
// a token cannot be replayed against another filter. It is opaque to clients but not secret.
type pageToken struct {
	CreatedAt int64  `json:"c"` // unix microseconds, the precision both stores keep
	ID        string `json:"i"`
	Subject   string `json:"s,omitempty"`
}

// EncodePageToken makes the page token that continues after s under the filter o.
func EncodePageToken(o ListOptions, s Session) string {
	return page.EncodeToken(pageToken{CreatedAt: s.CreatedAt.UnixMicro(), ID: s.ID, Subject: o.Subject})
}

// DecodePageToken reads o.PageToken: ok is false for the first page; a token that is malformed
// or made for another subject filter is ErrBadPageToken.
func DecodePageToken(o ListOptions) (createdAt time.Time, id string, ok bool, err error) {
	if o.PageToken == "" {
		return time.Time{}, "", false, nil
	}
	var p pageToken
	if !page.DecodeToken(o.PageToken, 0, &p) || p.ID == "" || p.Subject != o.Subject {
		return time.Time{}, "", false, ErrBadPageToken
	}
	return time.UnixMicro(p.CreatedAt).UTC(), p.ID, true, nil
}

// Row is one result row as database/sql and pgx both present it.
type Row interface {
	Scan(dest ...any) error
}

// Rows is a result set as database/sql and pgx both present it.
type Rows interface {
	Row
	Next() bool
	Err() error
}

// ListQuery is the query of one List page for the SQL stores: cols of the sessions table in
// (created_at, id) order, limited to one row more than the page so ReadPage can tell whether
// another follows. The stores differ only in placeholders (ph gives the n-th, counted from 1)
// and in what a time column holds (at).
func ListQuery[T any](o ListOptions, cols string, ph func(n int) string, at func(time.Time) T) (query string, args []any, err error) {
	after, afterID, paged, err := DecodePageToken(o)
	if err != nil {
		return "", nil, err
	}
	arg := func(v any) string {
		args = append(args, v)
		return ph(len(args))
	}
	query = `SELECT ` + cols + ` FROM sessions WHERE 1=1`
	if o.Subject != "" {
		query += ` AND subject = ` + arg(o.Subject)
	}
	if paged {
		query += ` AND (created_at, id) > (` + arg(at(after)) + `, ` + arg(afterID) + `)`
	}
	query += ` ORDER BY created_at, id LIMIT ` + arg(PageSize(o.PageSize)+1)
	return query, args, nil
}

// ReadPage reads the result of a ListQuery into a List page and the token of the next one.
func ReadPage(o ListOptions, rows Rows, scan func(Row) (Session, error)) ([]Session, string, error) {
	var out []Session
	for rows.Next() {
		s, err := scan(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	size := PageSize(o.PageSize)
	if len(out) <= size {
		return out, "", nil
	}
	out = out[:size]
	return out, EncodePageToken(o, out[size-1]), nil
}

// HashToken is the SHA-256 under which a refresh token's session is stored.
func HashToken(token string) [32]byte { return sha256.Sum256([]byte(token)) }
