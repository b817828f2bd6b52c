package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-dev/portcullis/services/authn/pats"
)

var _ pats.Store = patStore{}

// PATs is the personal access tokens in the same database (migration step 5), so every
// replica sharing it sees a creation or a revocation at its next read.
func (st *store) PATs() pats.Store { return patStore{st.pool} }

type patStore struct{ pool *pgxpool.Pool }

const patCols = `id, owner, name, secret_hash, scopes, created_at, expires_at, last_used_at`

// patReturn reads the JSON column as text: what DecodeScopes reads.
const patReturn = `id, owner, name, secret_hash, scopes::text, created_at, expires_at, last_used_at`

func scanPAT(r pgx.Row) (pats.PAT, error) {
	var (
		p            pats.PAT
		hash, scopes []byte
		used         *time.Time
	)
	if err := r.Scan(&p.ID, &p.Owner, &p.Name, &hash, &scopes, &p.CreatedAt, &p.ExpiresAt, &used); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
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
	p.CreatedAt, p.ExpiresAt, p.LastUsedAt = p.CreatedAt.UTC(), p.ExpiresAt.UTC(), fromNullTS(used)
	return p, nil
}

// Create inserts p; any unique index it collides with (id, hash, owner and name) inserts
// nothing, which is ErrExists. Two replicas creating one name at once: the second insert
// waits on the index for the first to commit and then inserts nothing.
func (s patStore) Create(ctx context.Context, p pats.PAT) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO pats (`+patCols+`) VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8) ON CONFLICT DO NOTHING`,
		p.ID, p.Owner, p.Name, p.SecretHash[:], pats.EncodeScopes(p.Scopes), ts(p.CreatedAt), ts(p.ExpiresAt), nullTS(p.LastUsedAt))
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return pats.ErrExists
	}
	return nil
}

func (s patStore) ByHash(ctx context.Context, h [32]byte) (pats.PAT, error) {
	return scanPAT(s.pool.QueryRow(ctx, `SELECT `+patReturn+` FROM pats WHERE secret_hash = $1`, h[:]))
}

func (s patStore) List(ctx context.Context, owner string) ([]pats.PAT, error) {
	rows, err := s.pool.Query(ctx, `SELECT `+patReturn+` FROM pats WHERE owner = $1 ORDER BY name`, owner)
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
	return scanPAT(s.pool.QueryRow(ctx, `DELETE FROM pats WHERE id = $1 RETURNING `+patReturn, id))
}

func (s patStore) DeleteOwner(ctx context.Context, owner string) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM pats WHERE owner = $1`, owner)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// Touch sends the whole batch in one round trip, in one transaction.
func (s patStore) Touch(ctx context.Context, tt []pats.Touch) error {
	if len(tt) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, t := range tt {
		b.Queue(`UPDATE pats SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)`, ts(t.LastUsedAt), t.ID)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
}
