package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-dev/portcullis/services/authn/robots"
)

var (
	_ robots.Provider = (*store)(nil)
	_ robots.Store    = robotStore{}
)

// RobotStore is the robot accounts in the same database (migration step 3), so every
// replica sharing it sees a creation or a revocation at its next read.
func (st *store) RobotStore() robots.Store { return robotStore{st.pool} }

type robotStore struct{ pool *pgxpool.Pool }

const robotCols = `id, name, key_hash, group_names, labels, created_at, expires_at, last_used_at, revoked_at`

// nullTS stores a zero time as NULL: "never".
func nullTS(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	v := ts(t)
	return &v
}

func fromNullTS(t *time.Time) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.UTC()
}

func scanRobot(r pgx.Row) (robots.Robot, error) {
	var (
		rb                       robots.Robot
		hash, groups, labels     []byte
		expires, used, revokedAt *time.Time
	)
	if err := r.Scan(&rb.ID, &rb.Name, &hash, &groups, &labels, &rb.CreatedAt, &expires, &used, &revokedAt); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return robots.Robot{}, robots.ErrNotFound
		}
		return robots.Robot{}, err
	}
	if len(hash) != len(rb.KeyHash) {
		return robots.Robot{}, fmt.Errorf("robot %s: stored key hash has %d bytes", rb.ID, len(hash))
	}
	copy(rb.KeyHash[:], hash)
	var err error
	if rb.Groups, rb.Labels, err = robots.DecodeGroupsLabels(groups, labels); err != nil {
		return robots.Robot{}, fmt.Errorf("robot %s: %w", rb.ID, err)
	}
	rb.CreatedAt, rb.ExpiresAt, rb.LastUsedAt, rb.RevokedAt = rb.CreatedAt.UTC(), fromNullTS(expires), fromNullTS(used), fromNullTS(revokedAt)
	return rb, nil
}

// Create replaces a revoked robot of the same name and inserts r in one transaction. Two
// replicas creating one name at once: the second insert waits on the unique index for the
// first to commit and then inserts nothing (DO NOTHING), which is ErrExists.
func (s robotStore) Create(ctx context.Context, r robots.Robot) error {
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `DELETE FROM robots WHERE name = $1 AND revoked_at IS NOT NULL`, r.Name); err != nil {
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO robots (`+robotCols+`) VALUES ($1, $2, $3, $4::text::jsonb, $5::text::jsonb, $6, $7, $8, $9)
			ON CONFLICT DO NOTHING`,
			r.ID, r.Name, r.KeyHash[:], robots.EncodeGroups(r.Groups), robots.EncodeLabels(r.Labels),
			ts(r.CreatedAt), nullTS(r.ExpiresAt), nullTS(r.LastUsedAt), nullTS(r.RevokedAt))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return robots.ErrExists
		}
		return nil
	})
}

// selectRobot reads the JSON columns as text: what DecodeGroupsLabels reads.
const selectRobot = `SELECT id, name, key_hash, group_names::text, labels::text, created_at, expires_at, last_used_at, revoked_at FROM robots`

func (s robotStore) ByKeyHash(ctx context.Context, h [32]byte) (robots.Robot, error) {
	return scanRobot(s.pool.QueryRow(ctx, selectRobot+` WHERE key_hash = $1`, h[:]))
}

func (s robotStore) Get(ctx context.Context, name string) (robots.Robot, error) {
	return scanRobot(s.pool.QueryRow(ctx, selectRobot+` WHERE name = $1`, name))
}

func (s robotStore) List(ctx context.Context, o robots.ListOptions) ([]robots.Robot, string, error) {
	after, paged, err := robots.DecodePageToken(o.PageToken)
	if err != nil {
		return nil, "", err
	}
	size := robots.PageSize(o.PageSize)
	var rows pgx.Rows
	if paged {
		rows, err = s.pool.Query(ctx, selectRobot+` WHERE name > $1 ORDER BY name LIMIT $2`, after, size+1)
	} else {
		rows, err = s.pool.Query(ctx, selectRobot+` ORDER BY name LIMIT $1`, size+1)
	}
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	var out []robots.Robot
	for rows.Next() {
		r, err := scanRobot(rows)
		if err != nil {
			return nil, "", err
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, "", err
	}
	if len(out) <= size {
		return out, "", nil
	}
	return out[:size], robots.EncodePageToken(out[size-1].Name), nil
}

func (s robotStore) Revoke(ctx context.Context, name string, at time.Time) (r robots.Robot, revoked bool, err error) {
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE robots SET revoked_at = $1 WHERE name = $2 AND revoked_at IS NULL`, ts(at), name)
		if err != nil {
			return err
		}
		revoked = tag.RowsAffected() > 0
		r, err = scanRobot(tx.QueryRow(ctx, selectRobot+` WHERE name = $1`, name))
		return err
	})
	if err != nil {
		return robots.Robot{}, false, err
	}
	return r, revoked, nil
}

// Touch sends the whole batch in one round trip, in one transaction.
func (s robotStore) Touch(ctx context.Context, tt []robots.Touch) error {
	if len(tt) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, t := range tt {
		b.Queue(`UPDATE robots SET last_used_at = $1 WHERE id = $2 AND (last_used_at IS NULL OR last_used_at < $1)`, ts(t.LastUsedAt), t.ID)
	}
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
}
