// Package postgres is the session store shared by several Portcullis replicas: PostgreSQL
// through pgx's connection pool.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
)

// Config is the postgres store's `config:` block. The DSN holds a password, so it is never
// logged nor echoed in an error; dsn_file keeps it out of the config file.
type Config struct {
	DSN     string `yaml:"dsn"`
	DSNFile string `yaml:"dsn_file"`
	// MaxConns bounds the pool (0: DefaultMaxConns).
	MaxConns int `yaml:"max_conns"`
}

// DefaultMaxConns is the pool size when max_conns is unset.
const DefaultMaxConns = 10

// Validate reports every problem at once; it reads no file and never shows the DSN.
func (c *Config) Validate() []error {
	var p config.Problems
	switch {
	case c.DSN == "" && c.DSNFile == "":
		p.Addf("dsn", "one of dsn or dsn_file is required")
	case c.DSN != "" && c.DSNFile != "":
		p.Addf("dsn", "set dsn or dsn_file, not both")
	case c.DSN != "":
		if _, err := pgxpool.ParseConfig(c.DSN); err != nil {
			p.Addf("dsn", "is not a valid PostgreSQL connection string (value not shown)")
		}
	}
	if c.MaxConns < 0 {
		p.Addf("max_conns", "must not be negative")
	}
	return p.Errs()
}

// Open connects, checks the server answers, and migrates the schema.
// OpenStore opens the database as the authn state store: every part of storage.Store.
func (c *Config) OpenStore(ctx context.Context, deps storage.Deps) (storage.Store, error) {
	st, err := c.open(ctx, deps)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// Open opens the database as a session store only (its tests and tools); the server uses
// OpenStore.
func (c *Config) Open(ctx context.Context, deps sessions.Deps) (sessions.Store, error) {
	st, err := c.open(ctx, deps)
	if err != nil {
		return nil, err
	}
	return st, nil
}

func (c *Config) open(ctx context.Context, deps sessions.Deps) (*store, error) {
	if errs := c.Validate(); len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	log := deps.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dsn := c.DSN
	if c.DSNFile != "" {
		b, err := os.ReadFile(c.DSNFile)
		if err != nil {
			return nil, fmt.Errorf("postgres session store: dsn_file: %w", err)
		}
		dsn = strings.TrimSpace(string(b))
	}
	pc, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message may quote the connection string; say only where it came from.
		return nil, errors.New("postgres session store: the DSN is not a valid PostgreSQL connection string (value not shown)")
	}
	pc.MaxConns = DefaultMaxConns
	if c.MaxConns > 0 {
		pc.MaxConns = int32(min(c.MaxConns, 1<<30))
	}
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("postgres session store: %w", err)
	}
	if err := migrate(ctx, pool, migrations); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres session store: %w", err)
	}
	log.Info("session store opened", "type", "postgres", "host", pc.ConnConfig.Host, "database", pc.ConnConfig.Database,
		"max_conns", pc.MaxConns, "schema_version", len(migrations))
	return &store{pool: pool}, nil
}

var (
	_ sessions.Store = (*store)(nil)
	_ storage.Store  = (*store)(nil)
	_ storage.Config = (*Config)(nil)
)

// Sessions is the store itself: the sessions table is where it began.
func (st *store) Sessions() sessions.Store { return st }

// Robots is RobotStore, under storage.Store's name.
func (st *store) Robots() robots.Store { return st.RobotStore() }

// Lockout is LockoutStore, under storage.Store's name.
func (st *store) Lockout() lockout.Store { return st.LockoutStore() }

type store struct {
	pool *pgxpool.Pool
}

// ts keeps the microsecond precision timestamptz has, in UTC, so values read back are equal.
func ts(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

const cols = `id, token_hash, subject, backend, service, client_id, created_at, last_used_at, last_remote_addr, idle_expires_at, expires_at, account_fingerprint`

func scan(r sessions.Row) (sessions.Session, error) {
	var (
		s    sessions.Session
		hash []byte
		fp   *string
	)
	if err := r.Scan(&s.ID, &hash, &s.Subject, &s.Backend, &s.Service, &s.ClientID, &s.CreatedAt, &s.LastUsedAt,
		&s.LastRemoteAddr, &s.IdleExpiresAt, &s.ExpiresAt, &fp); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return sessions.Session{}, sessions.ErrNotFound
		}
		return sessions.Session{}, err
	}
	if len(hash) != len(s.TokenHash) {
		return sessions.Session{}, fmt.Errorf("session %s: stored token hash has %d bytes", s.ID, len(hash))
	}
	copy(s.TokenHash[:], hash)
	s.CreatedAt, s.LastUsedAt, s.IdleExpiresAt, s.ExpiresAt = s.CreatedAt.UTC(), s.LastUsedAt.UTC(), s.IdleExpiresAt.UTC(), s.ExpiresAt.UTC()
	if fp != nil {
		s.Fingerprint, s.FingerprintSet = *fp, true
	}
	return s, nil
}

func (st *store) Create(ctx context.Context, s sessions.Session) error {
	var fp *string
	if s.FingerprintSet {
		fp = &s.Fingerprint
	}
	_, err := st.pool.Exec(ctx, `INSERT INTO sessions (`+cols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		s.ID, s.TokenHash[:], s.Subject, s.Backend, s.Service, s.ClientID,
		ts(s.CreatedAt), ts(s.LastUsedAt), s.LastRemoteAddr, ts(s.IdleExpiresAt), ts(s.ExpiresAt), fp)
	return err
}

func (st *store) RecordFingerprint(ctx context.Context, id, fingerprint string) error {
	_, err := st.pool.Exec(ctx, `UPDATE sessions SET account_fingerprint = $1 WHERE id = $2 AND account_fingerprint IS NULL`, fingerprint, id)
	return err
}

func (st *store) ByTokenHash(ctx context.Context, h [32]byte) (sessions.Session, error) {
	return scan(st.pool.QueryRow(ctx, `SELECT `+cols+` FROM sessions WHERE token_hash = $1`, h[:]))
}

func (st *store) Get(ctx context.Context, id string) (sessions.Session, error) {
	return scan(st.pool.QueryRow(ctx, `SELECT `+cols+` FROM sessions WHERE id = $1`, id))
}

func (st *store) List(ctx context.Context, o sessions.ListOptions) ([]sessions.Session, string, error) {
	q, args, err := sessions.ListQuery(o, cols, func(n int) string { return "$" + strconv.Itoa(n) }, ts)
	if err != nil {
		return nil, "", err
	}
	rows, err := st.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	return sessions.ReadPage(o, rows, scan)
}

// Touch sends the whole batch in one round trip, in one transaction.
func (st *store) Touch(ctx context.Context, tt []sessions.Touch) error {
	if len(tt) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, t := range tt {
		b.Queue(`UPDATE sessions SET last_used_at = $1, last_remote_addr = $2, idle_expires_at = $3
			WHERE id = $4 AND last_used_at <= $1`, ts(t.LastUsedAt), t.RemoteAddr, ts(t.IdleExpiresAt), t.ID)
	}
	return pgx.BeginFunc(ctx, st.pool, func(tx pgx.Tx) error {
		return tx.SendBatch(ctx, b).Close()
	})
}

func (st *store) Revoke(ctx context.Context, id string) error {
	n, err := st.exec(ctx, `DELETE FROM sessions WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return sessions.ErrNotFound
	}
	return nil
}

func (st *store) RevokeSubject(ctx context.Context, subject string) (int, error) {
	return st.exec(ctx, `DELETE FROM sessions WHERE subject = $1`, subject)
}

func (st *store) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	return st.exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1 OR idle_expires_at <= $1`, ts(now))
}

func (st *store) exec(ctx context.Context, q string, args ...any) (int, error) {
	tag, err := st.pool.Exec(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

func (st *store) Close(context.Context) error {
	st.pool.Close()
	return nil
}
