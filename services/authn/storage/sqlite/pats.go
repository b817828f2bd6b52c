package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/pats"
)

var _ pats.Store = patStore{}

// PATs is the personal access tokens in the same database (migration step 5).
func (st *store) PATs() pats.Store { return patStore{st.db} }

type patStore struct{ db *sql.DB }

const patCols = `id, owner, name, secret_hash, scopes, created_at, expires_at, last_used_at`

func scanPAT(r interface{ Scan(...any) error }) (pats.PAT, error) {
	var (
		p                pats.PAT
		hash, scopes     []byte
		created, expires int64
		used             sql.NullInt64
	)
	if err := r.Scan(&p.ID, &p.Owner, &p.Name, &hash, &scopes, &created, &expires, &used); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return pats.PAT{}, pats.ErrNotFound
		}
		return pats.PAT{}, err
	}
	if len(hash) != len(p.SecretHash) {
		return pats.PAT{}, fmt.Errorf("personal access token %s: stored hash has %d bytes", p.ID, len(hash))
	}
	copy(p.SecretHash[:], hash)
	var err error
	if p.Scopes, err = pats.DecodeScopes(scopes); err != nil {
		return pats.PAT{}, fmt.Errorf("personal access token %s: %w", p.ID, err)
	}
	p.CreatedAt, p.ExpiresAt, p.LastUsedAt = fromUS(created), fromUS(expires), fromNullUS(used)
	return p, nil
}

// Create inserts p; any unique index it collides with (id, hash, owner and name) inserts
// nothing, which is ErrExists.
func (s patStore) Create(ctx context.Context, p pats.PAT) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO pats (`+patCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		p.ID, p.Owner, p.Name, p.SecretHash[:], pats.EncodeScopes(p.Scopes), us(p.CreatedAt), us(p.ExpiresAt), nullUS(p.LastUsedAt))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return pats.ErrExists
	}
	return nil
}

func (s patStore) ByHash(ctx context.Context, h [32]byte) (pats.PAT, error) {
	return scanPAT(s.db.QueryRowContext(ctx, `SELECT `+patCols+` FROM pats WHERE secret_hash = ?`, h[:]))
}

func (s patStore) List(ctx context.Context, owner string) ([]pats.PAT, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT `+patCols+` FROM pats WHERE owner = ? ORDER BY name`, owner)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []pats.PAT
	for rows.Next() {
		p, err := scanPAT(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func (s patStore) Delete(ctx context.Context, id string) (pats.PAT, error) {
	return scanPAT(s.db.QueryRowContext(ctx, `DELETE FROM pats WHERE id = ? RETURNING `+patCols, id))
}

func (s patStore) DeleteOwner(ctx context.Context, owner string) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM pats WHERE owner = ?`, owner)
	if err != nil {
		return 0, err
	}
	n, err := res.RowsAffected()
	return int(n), err
}

func (s patStore) Touch(ctx context.Context, ts []pats.Touch) error {
	return touchLastUsed(ctx, s.db, "pats", len(ts), func(i int) (string, time.Time) { return ts[i].ID, ts[i].LastUsedAt })
}
