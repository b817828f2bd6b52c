// Package sqlite is the embedded session store: one SQLite file (pure Go, modernc.org/sqlite),
// the default when nothing else is configured.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" database/sql driver

	"github.com/portcullis-dev/portcullis/internal/config"
	"github.com/portcullis-dev/portcullis/services/authn/lockout"
	"github.com/portcullis-dev/portcullis/services/authn/robots"
	"github.com/portcullis-dev/portcullis/services/authn/sessions"
	"github.com/portcullis-dev/portcullis/services/authn/storage"
)

// Config is the sqlite store's `config:` block.
type Config struct {
	// Path of the database file; created (mode 0600) when missing. Its directory must exist.
	Path string `yaml:"path"`
}

// Validate reports every problem at once; it touches no file.
func (c *Config) Validate() []error {
	var p config.Problems
	switch {
	case c.Path == "":
		p.Addf("path", "is required")
	case c.Path == ":memory:" || strings.HasPrefix(c.Path, "file:"):
		// An in-memory database is one per pooled connection; a URI would bypass our settings.
		p.Addf("path", "must be a file path, not %q", c.Path)
	case strings.ContainsRune(c.Path, '?'):
		p.Addf("path", "must not contain '?'")
	}
	return p.Errs()
}

// maxConns bounds the pool: WAL lets readers run beside the one writer, and more connections
// than this only queue on SQLite's write lock.
const maxConns = 4

// busyTimeout is how long a writer waits for the write lock before SQLITE_BUSY.
const busyTimeout = 5 * time.Second

// Open opens (creating if needed) and migrates the database.
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
	// Create the file ourselves so it is private to this user; SQLite would use 0644.
	f, err := os.OpenFile(c.Path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("sqlite session store: %w", err)
	}
	_ = f.Close()
	// _txlock=immediate: write transactions take the write lock at BEGIN, so two writers wait
	// on busy_timeout instead of one failing with SQLITE_BUSY when upgrading a read lock.
	dsn := filepath.Clean(c.Path) + "?_txlock=immediate" +
		fmt.Sprintf("&_pragma=busy_timeout(%d)", busyTimeout.Milliseconds()) +
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(NORMAL)&_pragma=foreign_keys(1)"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite session store %s: %w", c.Path, err)
	}
	db.SetMaxOpenConns(maxConns)
	db.SetMaxIdleConns(maxConns)
	db.SetConnMaxIdleTime(5 * time.Minute)
	if err := migrate(ctx, db, migrations); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite session store %s: %w", c.Path, err)
	}
	log.Info("session store opened", "type", "sqlite", "path", c.Path, "schema_version", len(migrations))
	// Every refresh grant looks its token up: prepared once, it skips SQLite's parse and plan
	// (about a sixth of the refresh path's CPU when prepared per query).
	byHash, err := db.PrepareContext(ctx, `SELECT `+cols+` FROM sessions WHERE token_hash = ?`)
	if err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("sqlite session store %s: %w", c.Path, err)
	}
	lockoutGet, err := prepareLockout(ctx, db)
	if err != nil {
		_ = byHash.Close()
		_ = db.Close()
		return nil, fmt.Errorf("sqlite session store %s: %w", c.Path, err)
	}
	return &store{db: db, byHash: byHash, lockoutGet: lockoutGet}, nil
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
	db         *sql.DB
	byHash     *sql.Stmt
	lockoutGet map[int]*sql.Stmt
}

// Times are stored as unix microseconds (INTEGER), the precision the PostgreSQL store keeps too.
func us(t time.Time) int64 { return t.UnixMicro() }

func fromUS(v int64) time.Time { return time.UnixMicro(v).UTC() }

// touchLastUsed moves the last-used time of table's rows forward, never back (two replicas
// flush in any order), in one transaction. at gives row i's id and time.
func touchLastUsed(ctx context.Context, db *sql.DB, table string, n int, at func(i int) (id string, t time.Time)) error {
	if n == 0 {
		return nil
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, `UPDATE `+table+` SET last_used_at = ?1 WHERE id = ?2 AND (last_used_at IS NULL OR last_used_at < ?1)`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for i := range n {
		id, t := at(i)
		if _, err := stmt.ExecContext(ctx, us(t), id); err != nil {
			return err
		}
	}
	return tx.Commit()
}

const cols = `id, token_hash, subject, backend, service, client_id, created_at, last_used_at, last_remote_addr, idle_expires_at, expires_at, account_fingerprint`

func scan(r sessions.Row) (sessions.Session, error) {
	var (
		s                            sessions.Session
		hash                         []byte
		created, used, idle, expires int64
		fp                           sql.NullString
	)
	if err := r.Scan(&s.ID, &hash, &s.Subject, &s.Backend, &s.Service, &s.ClientID, &created, &used, &s.LastRemoteAddr, &idle, &expires, &fp); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return sessions.Session{}, sessions.ErrNotFound
		}
		return sessions.Session{}, err
	}
	if len(hash) != len(s.TokenHash) {
		return sessions.Session{}, fmt.Errorf("session %s: stored token hash has %d bytes", s.ID, len(hash))
	}
	copy(s.TokenHash[:], hash)
	s.CreatedAt, s.LastUsedAt, s.IdleExpiresAt, s.ExpiresAt = fromUS(created), fromUS(used), fromUS(idle), fromUS(expires)
	s.Fingerprint, s.FingerprintSet = fp.String, fp.Valid
	return s, nil
}

func (st *store) Create(ctx context.Context, s sessions.Session) error {
	_, err := st.db.ExecContext(ctx, `INSERT INTO sessions (`+cols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		s.ID, s.TokenHash[:], s.Subject, s.Backend, s.Service, s.ClientID,
		us(s.CreatedAt), us(s.LastUsedAt), s.LastRemoteAddr, us(s.IdleExpiresAt), us(s.ExpiresAt),
		sql.NullString{String: s.Fingerprint, Valid: s.FingerprintSet})
	return err
}

func (st *store) RecordFingerprint(ctx context.Context, id, fingerprint string) error {
	_, err := st.db.ExecContext(ctx, `UPDATE sessions SET account_fingerprint = ? WHERE id = ? AND account_fingerprint IS NULL`, fingerprint, id)
	return err
}

func (st *store) ByTokenHash(ctx context.Context, h [32]byte) (sessions.Session, error) {
	return scan(st.byHash.QueryRowContext(ctx, h[:]))
}

func (st *store) Get(ctx context.Context, id string) (sessions.Session, error) {
	return scan(st.db.QueryRowContext(ctx, `SELECT `+cols+` FROM sessions WHERE id = ?`, id))
}

func (st *store) List(ctx context.Context, o sessions.ListOptions) ([]sessions.Session, string, error) {
	q, args, err := sessions.ListQuery(o, cols, func(int) string { return "?" }, us)
	if err != nil {
		return nil, "", err
	}
	rows, err := st.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, "", err
	}
	defer rows.Close()
	return sessions.ReadPage(o, rows, scan)
}

func (st *store) Touch(ctx context.Context, ts []sessions.Touch) error {
	if len(ts) == 0 {
		return nil
	}
	tx, err := st.db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	stmt, err := tx.PrepareContext(ctx, `UPDATE sessions SET last_used_at = ?, last_remote_addr = ?, idle_expires_at = ?
		WHERE id = ? AND last_used_at <= ?`)
	if err != nil {
		return err
	}
	defer stmt.Close()
	for _, t := range ts {
		if _, err := stmt.ExecContext(ctx, us(t.LastUsedAt), t.RemoteAddr, us(t.IdleExpiresAt), t.ID, us(t.LastUsedAt)); err != nil {
			return err
		}
	}
	return tx.Commit()
}

func (st *store) Revoke(ctx context.Context, id string) error {
	r, err := st.db.ExecContext(ctx, `DELETE FROM sessions WHERE id = ?`, id)
	if err != nil {
		return err
	}
	if n, err := r.RowsAffected(); err != nil {
		return err
	} else if n == 0 {
		return sessions.ErrNotFound
	}
	return nil
}

func (st *store) RevokeSubject(ctx context.Context, subject string) (int, error) {
	return st.exec(ctx, `DELETE FROM sessions WHERE subject = ?`, subject)
}

func (st *store) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	return st.exec(ctx, `DELETE FROM sessions WHERE expires_at <= ? OR idle_expires_at <= ?`, us(now), us(now))
}

func (st *store) exec(ctx context.Context, q string, args ...any) (int, error) {
	r, err := st.db.ExecContext(ctx, q, args...)
	if err != nil {
		return 0, err
	}
	n, err := r.RowsAffected()
	return int(n), err
}

func (st *store) Close(context.Context) error {
	errs := []error{st.byHash.Close()}
	for _, s := range st.lockoutGet {
		errs = append(errs, s.Close())
	}
	return errors.Join(append(errs, st.db.Close())...)
}
