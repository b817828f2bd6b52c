package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/portcullis-dev/portcullis/services/authn/ssoaccounts"
	"github.com/portcullis-dev/portcullis/services/authn/storage/internal/jsoncol"
)

var _ ssoaccounts.Store = ssoAccountStore{}

// SSOAccounts is the people known through the IdP in the same database (migration step 6).
func (st *store) SSOAccounts() ssoaccounts.Store { return ssoAccountStore{st.db} }

type ssoAccountStore struct{ db *sql.DB }

const ssoAccountCols = `subject, idp_subject, group_names, labels, sealed_refresh_token, created_at, revalidated_at`

func scanSSOAccount(r interface{ Scan(...any) error }) (ssoaccounts.Account, error) {
	var (
		a                    ssoaccounts.Account
		groups, labels, tok  []byte
		created, revalidated int64
	)
	if err := r.Scan(&a.Subject, &a.IDPSubject, &groups, &labels, &tok, &created, &revalidated); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
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
	a.CreatedAt, a.RevalidatedAt = fromUS(created), fromUS(revalidated)
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
// statement.
func (s ssoAccountStore) Put(ctx context.Context, a ssoaccounts.Account) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO sso_accounts (`+ssoAccountCols+`) VALUES (?, ?, ?, ?, ?, ?, ?)
		ON CONFLICT (subject) DO UPDATE SET idp_subject = excluded.idp_subject, group_names = excluded.group_names,
			labels = excluded.labels, sealed_refresh_token = excluded.sealed_refresh_token, revalidated_at = excluded.revalidated_at`,
		a.Subject, a.IDPSubject, jsoncol.Strings(a.Groups), jsoncol.Labels(a.Labels), sealedToken(a.SealedRefreshToken),
		us(a.CreatedAt), us(a.RevalidatedAt))
	return err
}

func (s ssoAccountStore) Get(ctx context.Context, subject string) (ssoaccounts.Account, error) {
	return scanSSOAccount(s.db.QueryRowContext(ctx, `SELECT `+ssoAccountCols+` FROM sso_accounts WHERE subject = ?`, subject))
}

func (s ssoAccountStore) ByIDPSubject(ctx context.Context, sub string) ([]ssoaccounts.Account, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+ssoAccountCols+` FROM sso_accounts WHERE idp_subject = ? ORDER BY subject`, sub)
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
	n, err := execCount(ctx, s.db, `DELETE FROM sso_accounts WHERE subject = ?`, subject)
	if err != nil {
		return err
	}
	if n == 0 {
		return ssoaccounts.ErrNotFound
	}
	return nil
}
