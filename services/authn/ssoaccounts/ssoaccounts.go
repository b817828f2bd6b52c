// Package ssoaccounts keeps what Portcullis knows of each person who signed in with the
// company IdP: their subject and groups and labels as the IdP last said, the IdP's refresh
// token (sealed with sso.encryption_key_file, never stored in the clear) that revalidation
// uses, and when it last did. The sso backend re-reads people here, so their sessions and
// personal access tokens refresh without the IdP on every use, and end when the IdP says the
// account ended.
//
// The Store interface is owned here; the state stores (services/authn/storage/…) implement it.
package ssoaccounts

import (
	"context"
	"errors"
	"time"
)

// Account is one person known through the IdP. Times are kept to the microsecond.
type Account struct {
	// Subject is the Portcullis subject (the sso.subject claim's value); the key.
	Subject string
	// IDPSubject is the ID token's sub (a logout token names the person by it).
	IDPSubject string
	Groups     []string
	Labels     map[string][]string
	// SealedRefreshToken is the IdP's refresh token sealed by sso.Sealer for Subject; nil:
	// the IdP gave none.
	SealedRefreshToken []byte
	CreatedAt          time.Time
	// RevalidatedAt is when the IdP last vouched for the account (sign-in or revalidation).
	RevalidatedAt time.Time
}

// ErrNotFound: no account with that subject or IdP subject.
var ErrNotFound = errors.New("ssoaccounts: not found")

// Store persists accounts. Implementations must be safe for concurrent use, by several
// processes sharing the database too.
type Store interface {
	// Put stores a, replacing the account of the same subject (CreatedAt of the first is kept).
	Put(ctx context.Context, a Account) error
	// Get finds an account by subject (ErrNotFound).
	Get(ctx context.Context, subject string) (Account, error)
	// ByIDPSubject finds the accounts whose IDPSubject is sub (none: empty, no error).
	ByIDPSubject(ctx context.Context, sub string) ([]Account, error)
	// Delete removes the account of subject (ErrNotFound).
	Delete(ctx context.Context, subject string) error
}
