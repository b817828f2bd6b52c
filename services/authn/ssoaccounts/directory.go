package ssoaccounts

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/portcullis-dev/portcullis/internal/identity"
	"github.com/portcullis-dev/portcullis/services/authn/sso"
)

var (
	// ErrEnded: the IdP said the account ended (or its refresh token can no longer be
	// opened, so nobody can ask); the account is deleted and Ended was called.
	ErrEnded = errors.New("ssoaccounts: account ended at the identity provider")
	// ErrUnavailable: the account is due for revalidation and the IdP (or the store) could not
	// answer. The account is kept and asked about again at the next use.
	ErrUnavailable = errors.New("ssoaccounts: identity provider unavailable")
)

// Reasons passed to DirectoryOptions.Ended.
const (
	// EndedAtIdP: the IdP refused the refresh token or the person no longer meets the claims.
	EndedAtIdP = "account_ended"
	// EndedUnsealable: the stored refresh token does not open (the encryption key changed),
	// so the account can never be revalidated again.
	EndedUnsealable = "refresh_token_unsealable"
)

// revalidateTimeout bounds one revalidation (the IdP call, the store writes, Ended). It runs
// detached from the caller's context: see revalidate.
const revalidateTimeout = 30 * time.Second

// Revalidator asks the IdP whether an account still lives; *sso.Provider is one.
type Revalidator interface {
	Revalidate(ctx context.Context, subject string, sealed []byte) (*sso.Revalidation, error)
}

// DirectoryOptions configure a Directory.
type DirectoryOptions struct {
	Store Store
	IdP   Revalidator
	// Interval is how long the IdP's word on an account holds (sso.revalidate_interval);
	// ≤ 0: sso.DefaultRevalidateInterval.
	Interval time.Duration
	Now      func() time.Time
	Logger   *slog.Logger
	// Ended is called once when the IdP says an account ended (reason EndedAtIdP or
	// EndedUnsealable), after the account is deleted: the host ends the person's registry
	// sessions, web sessions and personal access tokens there. nil: nothing more is done.
	Ended func(ctx context.Context, subject, reason string)
}

// Directory is the people known through the IdP: what the sso backend resolves a session's
// or a personal access token's owner with. An account the IdP vouched for within Interval is
// answered from the store alone; an older one is revalidated at the IdP first. Safe for
// concurrent use.
type Directory struct {
	o       DirectoryOptions
	flights singleflight.Group // keyed by subject
}

// NewDirectory returns a Directory over o.Store and o.IdP.
func NewDirectory(o DirectoryOptions) *Directory {
	if o.Interval <= 0 {
		o.Interval = sso.DefaultRevalidateInterval
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Ended == nil {
		o.Ended = func(context.Context, string, string) {}
	}
	return &Directory{o: o}
}

// Interval is the revalidation interval in use.
func (d *Directory) Interval() time.Duration { return d.o.Interval }

// Resolve is the person subject as the IdP last vouched for them. ErrNotFound: nobody of that
// subject signed in (or their account ended). ErrEnded: revalidation found the account ended
// just now. ErrUnavailable: the account is due and the IdP could not be asked.
//
// It fails closed: a person the IdP has not vouched for within Interval gets no new token
// while the IdP is down. The interval is the promise that an account ended at the IdP stops
// working here within it; handing out tokens on the old word would break that promise for as
// long as the IdP is unreachable, which is also when nobody can tell an outage from an IdP
// that is being kept from answering. Sessions are not ended: they work again once it answers.
func (d *Directory) Resolve(ctx context.Context, subject string) (identity.Identity, error) {
	a, err := d.get(ctx, subject)
	if err != nil {
		return identity.Identity{}, err
	}
	if d.fresh(a) {
		return a.identity(), nil
	}
	ch := d.flights.DoChan(subject, func() (any, error) {
		// Detached from the caller: a revalidation cut short after the IdP rotated the refresh
		// token, but before the new one is stored, would lose the account at the next one.
		// The callers that wait share its result.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), revalidateTimeout)
		defer cancel()
		return d.revalidate(fctx, subject)
	})
	select {
	case <-ctx.Done():
		return identity.Identity{}, ctx.Err()
	case r := <-ch:
		if r.Err != nil {
			return identity.Identity{}, r.Err
		}
		return r.Val.(identity.Identity), nil
	}
}

func (d *Directory) get(ctx context.Context, subject string) (Account, error) {
	a, err := d.o.Store.Get(ctx, subject)
	switch {
	case errors.Is(err, ErrNotFound):
		return Account{}, ErrNotFound
	case err != nil:
		return Account{}, fmt.Errorf("%w: account store: %w", ErrUnavailable, err)
	}
	return a, nil
}

func (d *Directory) fresh(a Account) bool {
	return d.o.Now().Before(a.RevalidatedAt.Add(d.o.Interval))
}

// revalidate asks the IdP about subject, one caller per subject at a time in this process.
func (d *Directory) revalidate(ctx context.Context, subject string) (identity.Identity, error) {
	// Read again: a revalidation that just finished (in this process or another) stored a
	// rotated refresh token, and the one read before would be refused as invalid_grant.
	a, err := d.get(ctx, subject)
	if err != nil {
		return identity.Identity{}, err
	}
	if d.fresh(a) {
		return a.identity(), nil
	}
	rv, err := d.o.IdP.Revalidate(ctx, subject, a.SealedRefreshToken)
	switch {
	case err == nil:
	case errors.Is(err, sso.ErrAccountEnded):
		return d.end(ctx, a, EndedAtIdP, err)
	case errors.Is(err, sso.ErrUnsealable):
		return d.end(ctx, a, EndedUnsealable, err)
	default:
		// sso.ErrUnavailable, or anything the IdP client did not classify: the account is
		// not known to have ended, so it is kept, and refused until the IdP answers.
		d.o.Logger.WarnContext(ctx, "sso: revalidation failed; the account gets no tokens until the IdP answers",
			"subject", subject, "error", err)
		return identity.Identity{}, fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if rv.Identity != nil {
		a.Groups, a.Labels = slices.Clone(rv.Identity.Groups), cloneLabels(rv.Identity.Labels)
	}
	if rv.SealedRefreshToken != nil {
		a.SealedRefreshToken = rv.SealedRefreshToken
	}
	a.RevalidatedAt = d.now()
	if err := d.o.Store.Put(ctx, a); err != nil {
		// The IdP vouched for the person, so this answer stands; but a rotated refresh token
		// is lost and the next revalidation will likely end the account.
		d.o.Logger.ErrorContext(ctx, "sso: storing a revalidated account failed", "subject", subject, "error", err)
	}
	return a.identity(), nil
}

// end deletes an account the IdP ended and tells the host, unless the account changed since
// it was read: a sign-in or another replica's revalidation stored a new refresh token, and the
// refusal was of the old one (rotated away), not of the person.
func (d *Directory) end(ctx context.Context, a Account, reason string, cause error) (identity.Identity, error) {
	cur, err := d.get(ctx, a.Subject)
	switch {
	case errors.Is(err, ErrNotFound):
		// Ended by someone else meanwhile; they called Ended.
		return identity.Identity{}, fmt.Errorf("%w: %w", ErrEnded, cause)
	case err != nil:
		return identity.Identity{}, err
	case !bytes.Equal(cur.SealedRefreshToken, a.SealedRefreshToken) && d.fresh(cur):
		return cur.identity(), nil
	}
	if err := d.o.Store.Delete(ctx, a.Subject); err != nil && !errors.Is(err, ErrNotFound) {
		// Ended anyway: the next use asks the IdP again and gets the same answer.
		d.o.Logger.ErrorContext(ctx, "sso: deleting an ended account failed", "subject", a.Subject, "error", err)
	}
	d.o.Logger.InfoContext(ctx, "sso: account ended at the IdP", "subject", a.Subject, "reason", reason, "error", cause)
	d.o.Ended(ctx, a.Subject, reason)
	return identity.Identity{}, fmt.Errorf("%w: %w", ErrEnded, cause)
}

// SignedIn records a successful sign-in: the account is created or refreshed with the IdP's
// identity and sealed refresh token, and counts as vouched for now. The identity returned is
// the one Resolve gives until the account changes (its Fingerprint included), for the host to
// issue sessions with.
func (d *Directory) SignedIn(ctx context.Context, in *sso.SignIn) (identity.Identity, error) {
	if in == nil || in.Identity.Subject == "" {
		return identity.Identity{}, errors.New("ssoaccounts: a sign-in without a subject")
	}
	now := d.now()
	a := Account{
		Subject: in.Identity.Subject, IDPSubject: in.IDPSubject,
		Groups: slices.Clone(in.Identity.Groups), Labels: cloneLabels(in.Identity.Labels),
		SealedRefreshToken: in.SealedRefreshToken,
		CreatedAt:          now, // the store keeps an existing account's
		RevalidatedAt:      now,
	}
	if err := d.o.Store.Put(ctx, a); err != nil {
		return identity.Identity{}, fmt.Errorf("%w: account store: %w", ErrUnavailable, err)
	}
	// Read back for CreatedAt as stored, which the fingerprint stands on.
	a, err := d.get(ctx, a.Subject)
	if err != nil {
		return identity.Identity{}, err
	}
	return a.identity(), nil
}

// Logout is the subjects a verified back-channel logout token names, for the host to end
// their SSO sessions: the accounts of the IdP subject it names (Store.ByIDPSubject), and the
// subjects whose web sessions carry the IdP session id it names (sidSubjects, the host's
// lookup; nil: sid is not looked up). When it names both, both are taken, so a logout never
// ends less than it asks. Sorted, without repeats. Accounts are kept: a logout ends sessions,
// not the person, and personal access tokens keep working.
func (d *Directory) Logout(ctx context.Context, l *sso.Logout, sidSubjects func(ctx context.Context, sid string) ([]string, error)) ([]string, error) {
	if l == nil {
		return nil, nil
	}
	var out []string
	if l.Subject != "" {
		as, err := d.o.Store.ByIDPSubject(ctx, l.Subject)
		if err != nil {
			return nil, fmt.Errorf("%w: account store: %w", ErrUnavailable, err)
		}
		for _, a := range as {
			out = append(out, a.Subject)
		}
	}
	if l.SessionID != "" && sidSubjects != nil {
		ss, err := sidSubjects(ctx, l.SessionID)
		if err != nil {
			return nil, fmt.Errorf("sessions of the IdP session: %w", err)
		}
		out = append(out, ss...)
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

func (d *Directory) now() time.Time { return d.o.Now().UTC().Truncate(time.Microsecond) }

// identity is the account as an identity of backend "sso".
func (a Account) identity() identity.Identity {
	return identity.Identity{
		Subject: a.Subject, Groups: slices.Clone(a.Groups), Labels: cloneLabels(a.Labels),
		Backend: sso.Backend, Fingerprint: Fingerprint(a),
	}
}

// Fingerprint stands for one life of an account: the same while it lives, another if it is
// deleted (ended) and created again, so the sessions of the old one end. It holds nothing
// secret.
func Fingerprint(a Account) string {
	h := sha256.New()
	h.Write([]byte("portcullis sso account\x00"))
	h.Write([]byte(a.Subject))
	h.Write([]byte{0})
	h.Write(binary.BigEndian.AppendUint64(nil, uint64(a.CreatedAt.UnixMicro())))
	return hex.EncodeToString(h.Sum(nil))
}

// cloneLabels copies labels and their values, so no caller shares the store's slices.
func cloneLabels(l map[string][]string) map[string][]string {
	if l == nil {
		return nil
	}
	out := make(map[string][]string, len(l))
	for k, v := range l {
		out[k] = slices.Clone(v)
	}
	return out
}
