package sqlite

import (
	"context"
	"database/sql"
	"strings"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/lockout"
)

var (
	_ lockout.Provider = (*store)(nil)
	_ lockout.Store    = lockoutStore{}
)

// LockoutStore is the lockout's state in the same database (migration step 2).
func (st *store) LockoutStore() lockout.Store { return lockoutStore{st.db, st.lockoutGet} }

type lockoutStore struct {
	db *sql.DB
	// get holds prepared reads for one and two keys: every password check the login cache
	// does not answer reads (account, address) and (address), and parsing that query each
	// time was most of the lockout's cost.
	get map[int]*sql.Stmt
}

// lockoutGetQuery reads the entries of n keys.
func lockoutGetQuery(n int) string {
	return `SELECT key, failures, window_start, locked_until, expires_at FROM login_failures
		WHERE key IN (?` + strings.Repeat(`, ?`, n-1) + `)`
}

// prepareLockout prepares the reads lockoutStore.get holds.
func prepareLockout(ctx context.Context, db *sql.DB) (map[int]*sql.Stmt, error) {
	out := map[int]*sql.Stmt{}
	for _, n := range []int{1, 2} {
		st, err := db.PrepareContext(ctx, lockoutGetQuery(n))
		if err != nil {
			for _, s := range out {
				_ = s.Close()
			}
			return nil, err
		}
		out[n] = st
	}
	return out, nil
}

// upsertFailure is lockout.Policy.Next as one statement, so concurrent failures each count.
// Parameters (times and durations in µs): ?1 key, ?2 now, ?3 max failures, ?4 base delay,
// ?5 max delay, ?6 window, ?7 the policy's MaxShift (caps the doubling's exponent). In the
// update every expression reads the row as it was, so the new count is spelled out where it
// is used.
var upsertFailure = func() string {
	const (
		reset       = `(?2 >= login_failures.expires_at)`
		failures    = `(CASE WHEN ` + reset + ` THEN 1 ELSE login_failures.failures + 1 END)`
		windowStart = `(CASE WHEN ` + reset + ` THEN ?2 ELSE login_failures.window_start END)`
		prevLock    = `(CASE WHEN ` + reset + ` THEN ?2 ELSE login_failures.locked_until END)`
		lockedUntil = `(CASE WHEN ` + failures + ` >= ?3 THEN MAX(` + prevLock + `, ?2 + MIN(?4 << MIN(` + failures + ` - ?3, ?7), ?5)) ELSE ` + prevLock + ` END)`
		firstLock   = `(CASE WHEN 1 >= ?3 THEN ?2 + MIN(?4, ?5) ELSE ?2 END)`
	)
	return `INSERT INTO login_failures (key, failures, window_start, locked_until, expires_at, updated_at)
		VALUES (?1, 1, ?2, ` + firstLock + `, ` + firstLock + ` + ?6, ?2)
		ON CONFLICT (key) DO UPDATE SET
			failures = ` + failures + `,
			window_start = ` + windowStart + `,
			locked_until = ` + lockedUntil + `,
			expires_at = MAX(` + windowStart + `, ` + lockedUntil + `) + ?6,
			updated_at = ?2`
}()

const lockoutReturning = ` RETURNING failures, window_start, locked_until, expires_at`

// recordFailure counts whatever the row holds; attemptFailure counts only a row that is not
// locked (lockout.Entry.LockedAt), and returns no row for a locked one.
var (
	recordFailure  = upsertFailure + lockoutReturning
	attemptFailure = upsertFailure + `
		WHERE NOT (login_failures.locked_until > ?2 AND login_failures.locked_until > login_failures.window_start)` +
		lockoutReturning
)

// releaseAttempt is lockout.Policy.Release as one statement. Parameters (µs): ?1 key, ?2 now,
// ?3 max failures, ?4 the attempt's window start, ?5 the attempt's lock end.
const releaseAttempt = `UPDATE login_failures SET
		failures = failures - 1,
		locked_until = CASE WHEN locked_until > ?2 AND locked_until > window_start
			AND (failures - 1 < ?3 OR locked_until = ?5) THEN window_start ELSE locked_until END,
		updated_at = ?2
	WHERE key = ?1 AND window_start = ?4 AND expires_at > ?2 AND failures >= 1`

func (s lockoutStore) Attempt(ctx context.Context, key string, now time.Time, p lockout.Policy) (lockout.Entry, bool, error) {
	try := func(ctx context.Context) (lockout.Entry, error) { return s.record(ctx, attemptFailure, key, now, p) }
	return lockout.AttemptOrRead(ctx, key, try, s.Get, sql.ErrNoRows)
}

func (s lockoutStore) Release(ctx context.Context, key string, mine lockout.Entry, now time.Time, p lockout.Policy) error {
	_, err := s.db.ExecContext(ctx, releaseAttempt, key, us(now), p.MaxFailures, us(mine.WindowStart), us(mine.LockedUntil))
	return err
}

func (s lockoutStore) record(ctx context.Context, query, key string, now time.Time, p lockout.Policy) (lockout.Entry, error) {
	e := lockout.Entry{Key: key}
	var ws, lu, exp int64
	err := s.db.QueryRowContext(ctx, query, key, us(now), p.MaxFailures, p.BaseDelay.Microseconds(),
		p.MaxDelay.Microseconds(), p.Window.Microseconds(), p.MaxShift()).Scan(&e.Failures, &ws, &lu, &exp)
	if err != nil {
		return lockout.Entry{}, err
	}
	e.WindowStart, e.LockedUntil, e.ExpiresAt = fromUS(ws), fromUS(lu), fromUS(exp)
	return e, nil
}

func (s lockoutStore) RecordFailure(ctx context.Context, key string, now time.Time, p lockout.Policy) (lockout.Entry, error) {
	return s.record(ctx, recordFailure, key, now, p)
}

func (s lockoutStore) Get(ctx context.Context, keys []string) ([]lockout.Entry, error) {
	if len(keys) == 0 {
		return nil, nil
	}
	args := make([]any, len(keys))
	for i, k := range keys {
		args[i] = k
	}
	var rows *sql.Rows
	var err error
	if st, ok := s.get[len(keys)]; ok {
		rows, err = st.QueryContext(ctx, args...)
	} else {
		rows, err = s.db.QueryContext(ctx, lockoutGetQuery(len(keys)), args...)
	}
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []lockout.Entry
	for rows.Next() {
		var e lockout.Entry
		var ws, lu, exp int64
		if err := rows.Scan(&e.Key, &e.Failures, &ws, &lu, &exp); err != nil {
			return nil, err
		}
		e.WindowStart, e.LockedUntil, e.ExpiresAt = fromUS(ws), fromUS(lu), fromUS(exp)
		out = append(out, e)
	}
	return out, rows.Err()
}

func (s lockoutStore) Reset(ctx context.Context, key string) error {
	_, err := s.db.ExecContext(ctx, `DELETE FROM login_failures WHERE key = ?`, key)
	return err
}

func (s lockoutStore) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	r, err := s.db.ExecContext(ctx, `DELETE FROM login_failures WHERE expires_at <= ?`, us(now))
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	return int(n), err
}
