package postgres

import (
	"context"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-dev/portcullis/services/authn/lockout"
)

var (
	_ lockout.Provider = (*store)(nil)
	_ lockout.Store    = lockoutStore{}
)

// LockoutStore is the lockout's state in the same database (migration step 2), so every
// replica sharing it sees the same counts.
func (st *store) LockoutStore() lockout.Store { return lockoutStore{st.pool} }

type lockoutStore struct{ pool *pgxpool.Pool }

// upsertFailure is lockout.Policy.Next as one statement: the row lock of INSERT … ON CONFLICT
// makes concurrent failures, from any replica, each count. Parameters: $1 key, $2 now,
// $3 max failures, $4 base delay, $5 max delay, $6 window (durations in µs), $7 the policy's
// MaxShift (caps the doubling's exponent). In the update every expression reads the row as it
// was, so the new count is spelled out where it is used.
var upsertFailure = func() string {
	const (
		now         = `$2::timestamptz`
		us          = ` * interval '1 microsecond'`
		reset       = `(` + now + ` >= login_failures.expires_at)`
		failures    = `(CASE WHEN ` + reset + ` THEN 1 ELSE login_failures.failures + 1 END)`
		windowStart = `(CASE WHEN ` + reset + ` THEN ` + now + ` ELSE login_failures.window_start END)`
		prevLock    = `(CASE WHEN ` + reset + ` THEN ` + now + ` ELSE login_failures.locked_until END)`
		lockedUntil = `(CASE WHEN ` + failures + ` >= $3::integer THEN GREATEST(` + prevLock + `, ` + now +
			` + LEAST($4::bigint << LEAST(` + failures + ` - $3::integer, $7::integer), $5::bigint)` + us + `) ELSE ` + prevLock + ` END)`
		firstLock = `(CASE WHEN 1 >= $3::integer THEN ` + now + ` + LEAST($4::bigint, $5::bigint)` + us + ` ELSE ` + now + ` END)`
	)
	return `INSERT INTO login_failures (key, failures, window_start, locked_until, expires_at, updated_at)
		VALUES ($1, 1, ` + now + `, ` + firstLock + `, ` + firstLock + ` + $6::bigint` + us + `, ` + now + `)
		ON CONFLICT (key) DO UPDATE SET
			failures = ` + failures + `,
			window_start = ` + windowStart + `,
			locked_until = ` + lockedUntil + `,
			expires_at = GREATEST(` + windowStart + `, ` + lockedUntil + `) + $6::bigint` + us + `,
			updated_at = ` + now
}()

const lockoutReturning = ` RETURNING failures, window_start, locked_until, expires_at`

// recordFailure counts whatever the row holds; attemptFailure counts only a row that is not
// locked (lockout.Entry.LockedAt), and returns no row for a locked one. Under READ COMMITTED
// the WHERE of ON CONFLICT DO UPDATE sees the row as the last concurrent writer left it.
var (
	recordFailure  = upsertFailure + lockoutReturning
	attemptFailure = upsertFailure + `
		WHERE NOT (login_failures.locked_until > $2::timestamptz AND login_failures.locked_until > login_failures.window_start)` +
		lockoutReturning
)

// releaseAttempt is lockout.Policy.Release as one statement: $1 key, $2 now, $3 max failures,
// $4 the attempt's window start, $5 the attempt's lock end.
const releaseAttempt = `UPDATE login_failures SET
		failures = failures - 1,
		locked_until = CASE WHEN locked_until > $2::timestamptz AND locked_until > window_start
			AND (failures - 1 < $3::integer OR locked_until = $5::timestamptz) THEN window_start ELSE locked_until END,
		updated_at = $2::timestamptz
	WHERE key = $1 AND window_start = $4::timestamptz AND expires_at > $2::timestamptz AND failures >= 1`

func (s lockoutStore) Attempt(ctx context.Context, key string, now time.Time, p lockout.Policy) (lockout.Entry, bool, error) {
	try := func(ctx context.Context) (lockout.Entry, error) { return s.record(ctx, attemptFailure, key, now, p) }
	return lockout.AttemptOrRead(ctx, key, try, s.Get, pgx.ErrNoRows)
}

func (s lockoutStore) Release(ctx context.Context, key string, mine lockout.Entry, now time.Time, p lockout.Policy) error {
	_, err := s.pool.Exec(ctx, releaseAttempt, key, ts(now), p.MaxFailures, ts(mine.WindowStart), ts(mine.LockedUntil))
	return err
}

func (s lockoutStore) RecordFailure(ctx context.Context, key string, now time.Time, p lockout.Policy) (lockout.Entry, error) {
	return s.record(ctx, recordFailure, key, now, p)
}

func (s lockoutStore) record(ctx context.Context, query, key string, now time.Time, p lockout.Policy) (lockout.Entry, error) {
	e := lockout.Entry{Key: key}
	err := s.pool.QueryRow(ctx, query, key, ts(now), p.MaxFailures, p.BaseDelay.Microseconds(),
		p.MaxDelay.Microseconds(), p.Window.Microseconds(), p.MaxShift()).Scan(&e.Failures, &e.WindowStart, &e.LockedUntil, &e.ExpiresAt)
	if err != nil {
		return lockout.Entry{}, err
	}
	e.WindowStart, e.LockedUntil, e.ExpiresAt = e.WindowStart.UTC(), e.LockedUntil.UTC(), e.ExpiresAt.UTC()
	return e, nil
}

func (s lockoutStore) Get(ctx context.Context, keys []string) ([]lockout.Entry, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT key, failures, window_start, locked_until, expires_at FROM login_failures
		WHERE key = ANY($1)`, keys)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []lockout.Entry
	for rows.Next() {
		var e lockout.Entry
		if err := rows.Scan(&e.Key, &e.Failures, &e.WindowStart, &e.LockedUntil, &e.ExpiresAt); err != nil {
			return nil, err
		}
		e.WindowStart, e.LockedUntil, e.ExpiresAt = e.WindowStart.UTC(), e.LockedUntil.UTC(), e.ExpiresAt.UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s lockoutStore) Reset(ctx context.Context, key string) error {
	_, err := s.pool.Exec(ctx, `DELETE FROM login_failures WHERE key = $1`, key)
	return err
}

func (s lockoutStore) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM login_failures WHERE expires_at <= $1`, ts(now))
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
