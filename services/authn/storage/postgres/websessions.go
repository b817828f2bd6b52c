package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/portcullis-dev/portcullis/services/authn/websessions"
)

var _ websessions.Store = webSessionStore{}

// WebSessions is the browser sessions in the same database (migration step 6), so a sign-in
// on one replica is seen, and a sign-out ends it, on all.
func (st *store) WebSessions() websessions.Store { return webSessionStore{st.pool} }

type webSessionStore struct{ pool *pgxpool.Pool }

const webSessionCols = `id, token_hash, subject, backend, fingerprint, idp_session_id, remote_addr, user_agent, created_at, expires_at`

func scanWebSession(r pgx.Row) (websessions.Session, error) {
	var (
		s    websessions.Session
		hash []byte
	)
	if err := r.Scan(&s.ID, &hash, &s.Subject, &s.Backend, &s.Fingerprint, &s.IDPSessionID, &s.RemoteAddr, &s.UserAgent, &s.CreatedAt, &s.ExpiresAt); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			return websessions.Session{}, websessions.ErrNotFound
		}
		return websessions.Session{}, err
	}
	if len(hash) != len(s.TokenHash) {
		return websessions.Session{}, fmt.Errorf("web session %s: stored token hash has %d bytes", s.ID, len(hash))
	}
	copy(s.TokenHash[:], hash)
	s.CreatedAt, s.ExpiresAt = s.CreatedAt.UTC(), s.ExpiresAt.UTC()
	return s, nil
}

// Create inserts s; a taken id or token hash fails on its unique index.
func (s webSessionStore) Create(ctx context.Context, ws websessions.Session) error {
	_, err := s.pool.Exec(ctx, `INSERT INTO web_sessions (`+webSessionCols+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
		ws.ID, ws.TokenHash[:], ws.Subject, ws.Backend, ws.Fingerprint, ws.IDPSessionID, ws.RemoteAddr, ws.UserAgent,
		ts(ws.CreatedAt), ts(ws.ExpiresAt))
	return err
}

func (s webSessionStore) ByTokenHash(ctx context.Context, h [32]byte) (websessions.Session, error) {
	return scanWebSession(s.pool.QueryRow(ctx, `SELECT `+webSessionCols+` FROM web_sessions WHERE token_hash = $1`, h[:]))
}

func (s webSessionStore) Delete(ctx context.Context, id string) error {
	n, err := execCount(ctx, s.pool, `DELETE FROM web_sessions WHERE id = $1`, id)
	if err != nil {
		return err
	}
	if n == 0 {
		return websessions.ErrNotFound
	}
	return nil
}

func (s webSessionStore) SubjectsByIDPSession(ctx context.Context, sid string) ([]string, error) {
	if sid == "" {
		return nil, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT DISTINCT subject FROM web_sessions WHERE idp_session_id = $1 ORDER BY subject`, sid)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

func (s webSessionStore) DeleteSubject(ctx context.Context, subject string) (int, error) {
	return execCount(ctx, s.pool, `DELETE FROM web_sessions WHERE subject = $1`, subject)
}

func (s webSessionStore) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	return execCount(ctx, s.pool, `DELETE FROM web_sessions WHERE expires_at <= $1`, ts(now))
}
