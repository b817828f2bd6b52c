package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-dev/portcullis/services/authn/device"
	"github.com/portcullis-dev/portcullis/services/authn/storage/internal/jsoncol"
)

var _ device.Store = deviceStore{}

// Devices is the device flows in the same database (migration step 6), so a flow started on
// one replica is polled and approved on any.
func (st *store) Devices() device.Store { return deviceStore{st.pool} }

type deviceStore struct{ pool *pgxpool.Pool }

const deviceCols = `device_code_hash, user_code, client_id, service, scopes, client_addr, user_agent, created_at, expires_at,
	interval_us, last_poll_at, state, subject, backend, fingerprint, decided_at, decided_addr`

// deviceReturn reads the JSON column as text (what jsoncol reads).
var deviceReturn = strings.Replace(deviceCols, "scopes", "scopes::text", 1)

func scanDevice(r pgx.Row) (device.Authorization, error) {
	var (
		a               device.Authorization
		hash, scopes    []byte
		interval        int64
		polled, decided *time.Time
		state           string
	)
	if err := r.Scan(&hash, &a.UserCode, &a.ClientID, &a.Service, &scopes, &a.ClientAddr, &a.UserAgent, &a.CreatedAt, &a.ExpiresAt,
		&interval, &polled, &state, &a.Subject, &a.Backend, &a.Fingerprint, &decided, &a.DecidedAddr); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
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
	a.CreatedAt, a.ExpiresAt, a.LastPollAt, a.DecidedAt = a.CreatedAt.UTC(), a.ExpiresAt.UTC(), fromNullTS(polled), fromNullTS(decided)
	a.Interval = time.Duration(interval) * time.Microsecond
	return a, nil
}

// Create inserts a; the unique device code hash and user code make a taken one insert
// nothing, which is ErrExists (a concurrent insert of the same one waits for the first to
// commit, then inserts nothing).
func (s deviceStore) Create(ctx context.Context, a device.Authorization) error {
	tag, err := s.pool.Exec(ctx, `INSERT INTO device_authorizations (`+deviceCols+`)
		VALUES ($1, $2, $3, $4, $5::text::jsonb, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) ON CONFLICT DO NOTHING`,
		a.DeviceCodeHash[:], a.UserCode, a.ClientID, a.Service, jsoncol.Strings(a.Scopes), a.ClientAddr, a.UserAgent,
		ts(a.CreatedAt), ts(a.ExpiresAt), a.Interval.Microseconds(), nullTS(a.LastPollAt), string(a.State),
		a.Subject, a.Backend, a.Fingerprint, nullTS(a.DecidedAt), a.DecidedAddr)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return device.ErrExists
	}
	return nil
}

func (s deviceStore) ByUserCode(ctx context.Context, userCode string) (device.Authorization, error) {
	return scanDevice(s.pool.QueryRow(ctx, `SELECT `+deviceReturn+` FROM device_authorizations WHERE user_code = $1`, userCode))
}

// pollQuery records a poll and returns the row as it was, in one statement: the subquery
// locks the row and reads its previous poll (a concurrent poll waits for the lock, then reads
// this one's), and RETURNING gives the rest, which a poll does not change.
var pollQuery = `UPDATE device_authorizations d SET last_poll_at = $2
	FROM (SELECT device_code_hash, last_poll_at FROM device_authorizations WHERE device_code_hash = $1 FOR UPDATE) old
	WHERE d.device_code_hash = old.device_code_hash
	RETURNING ` + strings.NewReplacer("scopes", "d.scopes::text", "last_poll_at", "old.last_poll_at", "device_code_hash", "d.device_code_hash").
	Replace(deviceCols)

func (s deviceStore) Poll(ctx context.Context, h [32]byte, at time.Time) (device.Authorization, error) {
	return scanDevice(s.pool.QueryRow(ctx, pollQuery, h[:], ts(at)))
}

// Decide updates only a pending flow, so of two deciders one wins; no row updated is then
// told apart (ErrNotPending or ErrNotFound) by a read.
func (s deviceStore) Decide(ctx context.Context, userCode string, d device.Decision) (device.Authorization, error) {
	state := device.Denied
	if d.Approve {
		state = device.Approved
	}
	a, err := scanDevice(s.pool.QueryRow(ctx, `UPDATE device_authorizations
		SET state = $1, subject = $2, backend = $3, fingerprint = $4, decided_at = $5, decided_addr = $6
		WHERE user_code = $7 AND state = 'pending' RETURNING `+deviceReturn,
		string(state), d.Subject, d.Backend, d.Fingerprint, nullTS(d.At), d.Addr, userCode))
	if !errors.Is(err, device.ErrNotFound) {
		return a, err
	}
	if _, err := s.ByUserCode(ctx, userCode); err != nil {
		return device.Authorization{}, err
	}
	return device.Authorization{}, device.ErrNotPending
}

// Delete gives the row to one caller: a concurrent DELETE waits on the row lock and then
// finds it gone.
func (s deviceStore) Delete(ctx context.Context, h [32]byte) (device.Authorization, error) {
	return scanDevice(s.pool.QueryRow(ctx, `DELETE FROM device_authorizations WHERE device_code_hash = $1 RETURNING `+deviceReturn, h[:]))
}

func (s deviceStore) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	return execCount(ctx, s.pool, `DELETE FROM device_authorizations WHERE expires_at <= $1`, ts(now))
}

// execCount runs a statement and says how many rows it changed.
func execCount(ctx context.Context, pool *pgxpool.Pool, q string, args ...any) (int, error) {
	tag, err := pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}
