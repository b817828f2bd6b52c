package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
	"github.com/portcullis-dev/portcullis/services/authn/storage/internal/jsoncol"
)

var _ ssoaccounts.Store = ssoAccountStore{}

// SSOAccounts is the people known through the IdP in the same database (migration step 6).
func (st *store) SSOAccounts() ssoaccounts.Store { return ssoAccountStore{st.pool} }

type ssoAccountStore struct{ pool *pgxpool.Pool }

const ssoAccountCols = `subject, idp_subject, group_names, labels, sealed_refresh_token, created_at, revalidated_at`

// ssoAccountReturn reads the JSON columns as text (what jsoncol reads).
const ssoAccountReturn = `subject, idp_subject, group_names::text, labels::text, sealed_refresh_token, created_at, revalidated_at`

func scanSSOAccount(r pgx.Row) (ssoaccounts.Account, error) {
	var (
		a                   ssoaccounts.Account
		groups, labels, tok []byte
	)
	if err := r.Scan(&a.Subject, &a.IDPSubject, &groups, &labels, &tok, &a.CreatedAt, &a.RevalidatedAt); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return ssoaccounts.Account{}, ssoaccounts.ErrNotFound
		}
		return ssoaccounts.Account{}, err
	}
	var err error
	if a.Groups, err = jsoncol.DecodeStrings(groups); err != nil {
		return ssoaccounts.Account{}, fmt.Errorf("sso account %s: groups: %w", a.Subject, err)
	}
	if a.Labels, err = jsoncol.DecodeLabels(labels); err != nil {
		return ssoaccounts.Account{}, fmt.Errorf("sso account %s: %w", a.Subject, err)
	}
	if len(tok) > 0 {
		a.SealedRefreshToken = tok
	}
	a.CreatedAt, a.RevalidatedAt = a.CreatedAt.UTC(), a.RevalidatedAt.UTC()
	return a, nil
}

// sealedToken stores an empty token as NULL: none.
func sealedToken(b []byte) []byte {
	if len(b) == 0 {
		return nil
	}
	return b
}

// Put inserts a or replaces every column but created_at of the subject's row, in one
// statement (two replicas putting one subject at once: the second waits, then updates).
func (s ssoAccountStore) Put(ctx context.Context, a ssoaccounts.Account) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO sso_accounts (`+ssoAccountCols+`) VALUES ($1, $2, $3::text::jsonb, $4::text::jsonb, $5, $6, $7)
		ON CONFLICT (subject) DO UPDATE SET idp_subject = excluded.idp_subject, group_names = excluded.group_names,
			labels = excluded.labels, sealed_refresh_token = excluded.sealed_refresh_token, revalidated_at = excluded.revalidated_at`,
		a.Subject, a.IDPSubject, jsoncol.Strings(a.Groups), jsoncol.Labels(a.Labels), sealedToken(a.SealedRefreshToken),
		ts(a.CreatedAt), ts(a.RevalidatedAt))
	return err
}

func (s ssoAccountStore) Get(ctx context.Context, subject string) (ssoaccounts.Account, error) {
	return scanSSOAccount(s.pool.QueryRow(ctx, `SELECT `+ssoAccountReturn+` FROM sso_accounts WHERE subject = $1`, subject))
}

func (s ssoAccountStore) ByIDPSubject(ctx context.Context, sub string) ([]ssoaccounts.Account, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+ssoAccountReturn+` FROM sso_accounts WHERE idp_subject = $1 ORDER BY subject`, sub)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []ssoaccounts.Account
	for rows.Next() {
		a, err := scanSSOAccount(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

func (s ssoAccountStore) Delete(ctx context.Context, subject string) error {
	n, err := execCount(ctx, s.pool, `DELETE FROM sso_accounts WHERE subject = $1`, subject)
	if err != nil {
		return err
	}
	if n == 0 {
		return ssoaccounts.ErrNotFound
	}
	return nil
}
