package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/portcullis-dev/portcullis/services/authn/websessions"
)

var _ websessions.Store = webSessionStore{}

// WebSessions is the browser sessions in the same database (migration step 6).
func (st *store) WebSessions() websessions.Store { return webSessionStore{st.db} }

type webSessionStore struct{ db *sql.DB }

const webSessionCols = `id, token_hash, subject, backend, fingerprint, idp_session_id, remote_addr, user_agent, created_at, expires_at`

func scanWebSession(r interface{ Scan(...any) error }) (websessions.Session, error) {
	var (
		s                websessions.Session
		hash             []byte
		created, expires int64
	)
	if err := r.Scan(&s.ID, &hash, &s.Subject, &s.Backend, &s.Fingerprint, &s.IDPSessionID, &s.RemoteAddr, &s.UserAgent, &created, &expires); err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return websessions.Session{}, websessions.ErrNotFound
		}
		return websessions.Session{}, err
	}
	if len(hash) != len(s.TokenHash) {
		return websessions.Session{}, fmt.Errorf("web session %s: stored token hash has %d bytes", s.ID, len(hash))
	}
	copy(s.TokenHash[:], hash)
	s.CreatedAt, s.ExpiresAt = fromUS(created), fromUS(expires)
	return s, nil
}

// Create inserts s; a taken id or token hash fails on its unique index.
func (s webSessionStore) Create(ctx context.Context, ws websessions.Session) error {
	_, err := s.db.ExecContext(ctx, `INSERT INTO web_sessions (`+webSessionCols+`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		ws.ID, ws.TokenHash[:], ws.Subject, ws.Backend, ws.Fingerprint, ws.IDPSessionID, ws.RemoteAddr, ws.UserAgent,
		us(ws.CreatedAt), us(ws.ExpiresAt))
	return err
}

func (s webSessionStore) ByTokenHash(ctx context.Context, h [32]byte) (websessions.Session, error) {
	return scanWebSession(s.db.QueryRowContext(ctx, `SELECT `+webSessionCols+` FROM web_sessions WHERE token_hash = ?`, h[:]))
}

func (s webSessionStore) Delete(ctx context.Context, id string) error {
	n, err := execCount(ctx, s.db, `DELETE FROM web_sessions WHERE id = ?`, id)
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
	rows, err := s.db.QueryContext(ctx, `SELECT DISTINCT subject FROM web_sessions WHERE idp_session_id = ? ORDER BY subject`, sid)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var sub string
		if err := rows.Scan(&sub); err != nil {
			return nil, err
		}
		out = append(out, sub)
	}
	return out, rows.Err()
}

func (s webSessionStore) DeleteSubject(ctx context.Context, subject string) (int, error) {
	return execCount(ctx, s.db, `DELETE FROM web_sessions WHERE subject = ?`, subject)
}

func (s webSessionStore) DeleteExpired(ctx context.Context, now time.Time) (int, error) {
	return execCount(ctx, s.db, `DELETE FROM web_sessions WHERE expires_at <= ?`, us(now))
}
