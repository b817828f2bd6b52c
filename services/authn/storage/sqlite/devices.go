package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/device"
	"github.com/portcullis-dev/portcullis/services/authn/storage/internal/jsoncol"
)

var _ device.Store = deviceStore{}

// Devices is the device flows in the same database (migration step 6).
func (st *store) Devices() device.Store { return deviceStore{st.db} }

type deviceStore struct{ db *sql.DB }

const deviceCols = `device_code_hash, user_code, client_id, service, scopes, client_addr, user_agent, created_at, expires_at,
	interval_us, last_poll_at, state, subject, backend, fingerprint, decided_at, decided_addr`

func scanDevice(r interface{ Scan(...any) error }) (device.Authorization, error) {
	var (
		a                          device.Authorization
		hash, scopes               []byte
		created, expires, interval int64
		polled, decided            sql.NullInt64
		state                      string
	)
	if err := r.Scan(&hash, &a.UserCode, &a.ClientID, &a.Service, &scopes, &a.ClientAddr, &a.UserAgent, &created, &expires,
		&interval, &polled, &state, &a.Subject, &a.Backend, &a.Fingerprint, &decided, &a.DecidedAddr); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return device.Authorization{}, device.ErrNotFound
		}
		return device.Authorization{}, err
	}
	if len(hash) != len(a.DeviceCodeHash) {
		return device.Authorization{}, fmt.Errorf("device flow %s: stored hash has %d bytes", a.UserCode, len(hash))
	}
	copy(a.DeviceCodeHash[:], hash)
	var err error
	if a.Scopes, err = jsoncol.DecodeStrings(scopes); err != nil {
		return device.Authorization{}, fmt.Errorf("device flow %s: %w", a.UserCode, err)
	}
	a.State = device.State(state)
	a.CreatedAt, a.ExpiresAt, a.LastPollAt, a.DecidedAt = fromUS(created), fromUS(expires), fromNullUS(polled), fromNullUS(decided)
	a.Interval = time.Duration(interval) * time.Microsecond
	return a, nil
}

// Create inserts a; the unique device code hash and user code make a taken one insert
// nothing, which is ErrExists.
func (s deviceStore) Create(ctx context.Context, a device.Authorization) error {
	res, err := s.db.ExecContext(ctx, `INSERT INTO device_authorizations (`+deviceCols+`)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING`,
		a.DeviceCodeHash[:], a.UserCode, a.ClientID, a.Service, jsoncol.Strings(a.Scopes), a.ClientAddr, a.UserAgent,
		us(a.CreatedAt), us(a.ExpiresAt), a.Interval.Microseconds(), nullUS(a.LastPollAt), string(a.State),
		a.Subject, a.Backend, a.Fingerprint, nullUS(a.DecidedAt), a.DecidedAddr)
	if err != nil {
		return err
	}
	if n, err := res.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return device.ErrExists
	}
	return nil
}

func (s deviceStore) ByUserCode(ctx context.Context, userCode string) (device.Authorization, error) {
	return scanDevice(s.db.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM device_authorizations WHERE user_code = ?`, userCode))
}

// Poll reads the flow and records the poll in one write transaction (BEGIN IMMEDIATE, see
// _txlock): SQLite's RETURNING gives only the row as updated, and two polls must not both
// read the same previous poll.
func (s deviceStore) Poll(ctx context.Context, h [32]byte, at time.Time) (device.Authorization, error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return device.Authorization{}, err
	}
	defer func() { _ = tx.Rollback() }()
	a, err := scanDevice(tx.QueryRowContext(ctx, `SELECT `+deviceCols+` FROM device_authorizations WHERE device_code_hash = ?`, h[:]))
	if err != nil {
		return device.Authorization{}, err
	}
	if _, err := tx.ExecContext(ctx, `UPDATE device_authorizations SET last_poll_at = ? WHERE device_code_hash = ?`, us(at), h[:]); err != nil {
		return device.Authorization{}, err
	}
	return a, tx.Commit()
}

// Decide updates only a pending flow, so of two deciders one wins; no row updated is then
// told apart (ErrNotPending or ErrNotFound) by a read.
func (s deviceStore) Decide(ctx context.Context, userCode string, d device.Decision) (device.Authorization, error) {
	state := device.Denied
	if d.Approve {
		state = device.Approved
	}
	a, err := scanDevice(s.db.QueryRowContext(ctx, `UPDATE device_authorizations
		SET state = ?, subject = ?, backend = ?, fingerprint = ?, decided_at = ?, decided_addr = ?
		WHERE user_code = ? AND state = 'pending' RETURNING `+deviceCols,
		string(state), d.Subject, d.Backend, d.Fingerprint, nullUS(d.At), d.Addr, userCode))
	if !errors.Is(err, device.ErrNotFound) {
		return a, err
	}
	if _, err := s.ByUserCode(ctx, userCode); err != nil {
		return device.Authorization{}, err
	}
	return device.Authorization{}, device.ErrNotPending
}

func (s deviceStore) Delete(ctx context.Context, h [32]byte) (device.Authorization, error) {
	return scanDevice(s.db.QueryRowContext(ctx, `DELETE FROM device_authorizations WHERE device_code_hash = ? RETURNING `+deviceCols, h[:]))
}

func (s deviceStore) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	return execCount(ctx, s.db, `DELETE FROM device_authorizations WHERE expires_at <= ?`, us(now))
}

// execCount runs a statement and says how many rows it changed.
func execCount(ctx context.Context, db *sql.DB, q string, args ...any) (int, error) {
	r, err := db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	return int(n), err
}
