package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/robots"
)

var (
	_ robots.Provider = (*store)(nil)
	_ robots.Store    = robotStore{}
)

// RobotStore is the robot accounts in the same database (migration step 3).
func (st *store) RobotStore() robots.Store { return robotStore{st.db} }

type robotStore struct{ db *sql.DB }

const robotCols = `id, name, key_hash, group_names, labels, created_at, expires_at, last_used_at, revoked_at`

// nullUS stores a zero time as NULL: "never".
func nullUS(t time.Time) sql.NullInt64 {
	if t.IsZero() {
		return sql.NullInt64{}
	}
	return sql.NullInt64{Int64: us(t), Valid: true}
}

func fromNullUS(v sql.NullInt64) time.Time {
	if !v.Valid {
		return time.Time{}
	}
	return fromUS(v.Int64)
}

func scanRobot(r interface{ Scan(...any) error }) (robots.Robot, error) {
	var (
		rb                       robots.Robot
		hash, groups, labels     []byte
		created                  int64
		expires, used, revokedAt sql.NullInt64
	)
	if err := r.Scan(&rb.ID, &rb.Name, &hash, &groups, &labels, &created, &expires, &used, &revokedAt); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
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
	rb.CreatedAt, rb.ExpiresAt, rb.LastUsedAt, rb.RevokedAt = fromUS(created), fromNullUS(expires), fromNullUS(used), fromNullUS(revokedAt)
	return rb, nil
}

// Create replaces a revoked robot of the same name and inserts r in one transaction; the
// unique name makes a live one's name ErrExists (DO NOTHING inserts no row).
func (s robotStore) Create(ctx context.Context, r robots.Robot) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	if _, err := tx.ExecContext(ctx, `DELETE FROM robots WHERE name = ? AND revoked_at IS NOT NULL`, r.Name); err != nil {
		return err
	}
	res, err := tx.ExecContext(ctx, `INSERT INTO robots (`+robotCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		r.ID, r.Name, r.KeyHash[:], robots.EncodeGroups(r.Groups), robots.EncodeLabels(r.Labels),
		us(r.CreatedAt), nullUS(r.ExpiresAt), nullUS(r.LastUsedAt), nullUS(r.RevokedAt))
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return robots.ErrExists
	}
	return tx.Commit()
}

func (s robotStore) ByKeyHash(ctx context.Context, h [32]byte) (robots.Robot, error) {
	return scanRobot(s.db.QueryRowContext(ctx, `SELECT `+robotCols+` FROM robots WHERE key_hash = ?`, h[:]))
}

func (s robotStore) Get(ctx context.Context, name string) (robots.Robot, error) {
	return scanRobot(s.db.QueryRowContext(ctx, `SELECT `+robotCols+` FROM robots WHERE name = ?`, name))
}

func (s robotStore) List(ctx context.Context, o robots.ListOptions) ([]robots.Robot, string, error) {
	after, paged, err := robots.DecodePageToken(o.PageToken)
	if err != nil {
		return nil, "", err
	}
	size := robots.PageSize(o.PageSize)
	q, args := `SELECT `+robotCols+` FROM robots`, []any{}
	if paged {
		q += ` WHERE name > ?`
		args = append(args, after)
	}
	rows, err := s.db.QueryContext(ctx, q+` ORDER BY name LIMIT ?`, append(args, size+1)...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	return readRobotPage(rows, size)
}

// readRobotPage reads up to size robots; a row beyond them means another page follows.
func readRobotPage(rows *sql.Rows, size int) ([]robots.Robot, string, error) {
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

func (s robotStore) Revoke(ctx context.Context, name string, at time.Time) (robots.Robot, bool, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return robots.Robot{}, false, err
	}
	defer func() { _ = tx.Rollback() }()
	res, err := tx.ExecContext(ctx, `UPDATE robots SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL`, us(at), name)
	if err != nil {
		return robots.Robot{}, false, err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return robots.Robot{}, false, err
	}
	r, err := scanRobot(tx.QueryRowContext(ctx, `SELECT `+robotCols+` FROM robots WHERE name = ?`, name))
	if err != nil {
		return robots.Robot{}, false, err
	}
	return r, n > 0, tx.Commit()
}

func (s robotStore) Touch(ctx context.Context, ts []robots.Touch) error {
	return touchLastUsed(ctx, s.db, "robots", len(ts), func(i int) (string, time.Time) { return ts[i].ID, ts[i].LastUsedAt })
}
