//go:build e2e

package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/app"
	"github.com/portcullis-dev/portcullis/internal/keyid"
	"github.com/portcullis-dev/portcullis/internal/testenv/pgtest"
	"github.com/portcullis-dev/portcullis/services/authn/storage/postgres"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager"
	"github.com/portcullis-dev/portcullis/services/signer/keymanager/local"
)

// revocationDeadline is the protocol requirement: a session revoked through one
// replica is refused at every other replica within this long.
const revocationDeadline = time.Second

// revocationPoll is how often a replica is asked while a revocation propagates.
const revocationPoll = 20 * time.Millisecond

// replica is one all-in-one Portcullis process of a replicated deployment, with its own
// gRPC admin listener and, optionally, the admin REST API.
type replica struct {
	*sessionsPortcullis
	name string
	// AdminHTTP is admin.http_listen's base URL; empty when the replica has none.
	AdminHTTP string
}

// startReplica runs `portcullis -config FILE -target=all` named name, with the authn store
// and the signer key given, its own admin.listen (and admin.http_listen when
// withHTTP). The htpasswd file and the policy are the suite's usual ones, so every replica
// knows the same users under the same backend name.
// users is the htpasswd file the replica serves instead of its own ("": its own): replicas
// serve the same file, hashes included, since a session records a fingerprint of its user's
// hash and a refresh at a replica holding another hash would end it.
func startReplica(t *testing.T, name string, store app.StoreSpec, key keymanager.Spec, users string, withHTTP bool) *replica {
	t.Helper()
	tokenFile := filepath.Join(t.TempDir(), "admin-secret")
	if err := os.WriteFile(tokenFile, []byte(sessionsAdminSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	admin := app.AdminConfig{TokenFile: tokenFile, Listen: addr}
	httpAddr := ""
	if withHTTP {
		httpAddr = fmt.Sprintf("127.0.0.1:%d", freePort(t))
		admin.HTTPListen = httpAddr
	}
	pc, _ := writePortcullisConfig(t, portcullisConfig{Store: store, Key: key, Admin: admin})
	if users != "" {
		data, err := os.ReadFile(users)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(pc.Dir, "htpasswd"), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	pc.Procs["all"] = startProc(t, name, portcullisBin(t), "-config", pc.Config, "-target=all")
	pc.waitReady(t)
	waitUntil(t, name+" admin API listening on "+addr, pc.allProcs(), tcpListening(addr))
	r := &replica{sessionsPortcullis: &sessionsPortcullis{portcullis: pc, AdminAddr: addr, AdminTokenFile: tokenFile}, name: name}
	if withHTTP {
		waitUntil(t, name+" admin REST API listening on "+httpAddr, pc.allProcs(), tcpListening(httpAddr))
		r.AdminHTTP = "http://" + httpAddr
	}
	return r
}

// adminREST sends method path to the replica's admin REST API with the admin bearer, and
// decodes the JSON answer into out. It fails the test unless the status is 200.
func (r *replica) adminREST(t *testing.T, method, path string, out any) {
	t.Helper()
	if r.AdminHTTP == "" {
		t.Fatalf("%s has no admin.http_listen", r.name)
	}
	req := mustRequest(t, method, r.AdminHTTP+path)
	req.Header.Set("Authorization", "Bearer "+sessionsAdminSecret)
	a := do(t, req)
	t.Logf("%s: %s %s -> %d %s", r.name, method, path, a.status, strings.TrimSpace(string(a.body)))
	if a.status != http.StatusOK {
		t.Fatalf("%s: %s %s: status %d, want 200\n%s", r.name, method, path, a.status, a.body)
	}
	if err := json.Unmarshal(a.body, out); err != nil {
		t.Fatalf("%s: %s %s: answer is not JSON: %v\n%s", r.name, method, path, err, a.body)
	}
}

// offlineLogin is docker's login: GET /token with Basic and offline_token=true. It returns
// the refresh token.
func (r *replica) offlineLogin(t *testing.T) string {
	t.Helper()
	a := getToken(t, r.portcullis, "alice", "alice", url.Values{"service": {service}, "offline_token": {"true"},
		"client_id": {"docker"}, "account": {"alice"}})
	ta := decodeTokenAnswer(t, a)
	if a.status != http.StatusOK || !strings.HasPrefix(ta.RefreshToken, "pcr_") {
		t.Fatalf("offline login at %s: status %d, want 200 with a pcr_ refresh_token\n%s", r.name, a.status, a.body)
	}
	return ta.RefreshToken
}

// refreshOK does the refresh grant at the replica and returns the access token, checked
// against the JWKS of verifier (another replica: they share the signing key).
func (r *replica) refreshOK(t *testing.T, rt string, verifier *replica) string {
	t.Helper()
	a := refreshPOST(t, r.portcullis, rt, "docker")
	ta := decodeTokenAnswer(t, a)
	if a.status != http.StatusOK || ta.AccessToken == "" || ta.RefreshToken != rt {
		t.Fatalf("refresh grant at %s: status %d, want 200 with access_token and the same refresh_token\n%s", r.name, a.status, a.body)
	}
	if claims, _, _ := verifyWithJWKS(t, verifier.portcullis, ta.AccessToken); !strings.Contains(string(claims), `"sub":"alice"`) {
		t.Fatalf("token refreshed at %s is not alice's: %s", r.name, claims)
	}
	return ta.AccessToken
}

// refusedGrant asks the replica for a refresh once: refused reports a 400 invalid_grant; a
// 200 means the revocation has not reached it; any other answer fails the test.
func (r *replica) refusedGrant(t *testing.T, rt string) (refused bool) {
	t.Helper()
	a := refreshPOST(t, r.portcullis, rt, "docker")
	switch {
	case a.status == http.StatusOK:
		return false
	case a.status == http.StatusBadRequest && decodeTokenAnswer(t, a).Error == "invalid_grant":
		return true
	default:
		t.Fatalf("refresh grant at %s: status %d, want 200 (not yet revoked) or 400 invalid_grant\n%s", r.name, a.status, a.body)
		return false
	}
}

// awaitRevoked polls the replica with refresh grants for every token in rts, every
// revocationPoll, from revokedAt (when the revocation through the other replica returned),
// and fails unless each is refused with 400 invalid_grant within revocationDeadline.
func (r *replica) awaitRevoked(t *testing.T, revokedAt time.Time, rts ...string) {
	t.Helper()
	took := make([]time.Duration, len(rts))
	pending := len(rts)
	polls := 0
	for {
		polls++
		for i, rt := range rts {
			if took[i] != 0 {
				continue
			}
			if r.refusedGrant(t, rt) {
				took[i] = time.Since(revokedAt)
				pending--
			}
		}
		if pending == 0 {
			break
		}
		if time.Since(revokedAt) > revocationDeadline {
			t.Fatalf("%s still grants refreshes %s after the revocation returned (%d polls; refused so far: %v)",
				r.name, time.Since(revokedAt).Round(time.Millisecond), polls, took)
		}
		time.Sleep(revocationPoll)
	}
	for i, d := range took {
		t.Logf("%s refused session %d of %d %s after the revocation returned (%d polls)", r.name, i+1, len(rts), d.Round(time.Microsecond), polls)
		if d > revocationDeadline {
			t.Fatalf("%s refused a revoked session only after %s, want within %s", r.name, d, revocationDeadline)
		}
	}
}

// TestSessionsReplicas_PostgreSQL_TwoGateways runs two all-in-one Portcullis processes (A
// and B, real `bin/portcullis` processes) on one real PostgreSQL database (Debian's server,
// started by internal/testenv/pgtest): the same htpasswd file, policy and signing key file, each with
// its own admin listener, A also with the admin REST API (admin.http_listen). A refresh
// token from a login at A is refreshed at B, and B's use shows up in A's `sessions list`
// once B flushes its last uses. A session revoked through A's REST API, and all of a user's
// sessions revoked through A, are refused at B with 400 invalid_grant within 1 s of the
// revocation returning (issue 7), and at A; a new login at B then works again.
func TestSessionsReplicas_PostgreSQL_TwoGateways(t *testing.T) {
	t.Parallel()
	dsn := pgtest.StartServer(t).NewDatabase(t)
	store := storeSpec(t, &postgres.Config{DSN: dsn})
	// One key file for both, as replicas share their key: A generates it (with O_EXCL), B,
	// started once A is ready, reads it. A token either signs verifies with the other's JWKS.
	key := keySpec(t, &local.Config{Path: filepath.Join(t.TempDir(), "signing-key.pem"), KeyIDMode: keyid.ModeThumbprint})
	a := startReplica(t, "portcullis-A", store, key, "", true)
	b := startReplica(t, "portcullis-B", store, key, filepath.Join(a.Dir, "htpasswd"), false)

	// Log in at A, refresh at B: the session lives in the shared store.
	rt := a.offlineLogin(t)
	ss := a.listSessions(t, "alice")
	if len(ss) != 1 {
		t.Fatalf("A's sessions after the login at A: %+v, want one", ss)
	}
	id := ss[0].ID
	loginUse, err := time.Parse(time.RFC3339Nano, ss[0].LastUsedAt)
	if err != nil {
		t.Fatalf("last_used_at %q: %v", ss[0].LastUsedAt, err)
	}
	if got := b.listSessions(t, "alice"); len(got) != 1 || got[0].ID != id {
		t.Fatalf("B's sessions: %+v, want A's session %s (one store)", got, id)
	}
	b.refreshOK(t, rt, a)
	refreshedAt := time.Now()

	// B's use reaches the store at its next flush (once a second), and only then can A list
	// it: A itself has not seen the session since the login.
	var seen []e2eSession
	waitUntil(t, "B's refresh to show as alice's last use in A's sessions list", []*proc{a.Procs["all"], b.Procs["all"]}, func() error {
		seen = a.listSessions(t, "alice")
		if len(seen) != 1 || seen[0].ID != id {
			return fmt.Errorf("A lists %+v, want only session %s", seen, id)
		}
		used, err := time.Parse(time.RFC3339Nano, seen[0].LastUsedAt)
		if err != nil {
			return fmt.Errorf("last_used_at %q: %v", seen[0].LastUsedAt, err)
		}
		if !used.After(loginUse) {
			return fmt.Errorf("last_used_at %s, not after the login's %s yet", used, loginUse)
		}
		return nil
	})
	t.Logf("A lists session %s last used %s (login %s), %s after B's refresh", id, seen[0].LastUsedAt,
		loginUse.Format(time.RFC3339Nano), time.Since(refreshedAt).Round(time.Millisecond))
	a.refreshOK(t, rt, b)

	// The REST API on A shows the same session.
	var list struct {
		Sessions []struct {
			ID      string `json:"id"`
			Subject string `json:"subject"`
		} `json:"sessions"`
	}
	a.adminREST(t, http.MethodGet, "/v1/sessions?subject=alice", &list)
	if len(list.Sessions) != 1 || list.Sessions[0].ID != id || list.Sessions[0].Subject != "alice" {
		t.Fatalf("GET /v1/sessions?subject=alice at A: %+v, want session %s", list.Sessions, id)
	}

	// Revoke that session through A's REST API; B must refuse it within 1 s, and so must A.
	b.refreshOK(t, rt, a)
	var empty struct{}
	a.adminREST(t, http.MethodDelete, "/v1/sessions/"+url.PathEscape(id), &empty)
	revokedAt := time.Now()
	b.awaitRevoked(t, revokedAt, rt)
	if !a.refusedGrant(t, rt) {
		t.Fatal("A still grants a refresh of the session revoked through A")
	}
	if g := refreshWithBasic(t, b.portcullis, rt); g.status != http.StatusUnauthorized {
		t.Fatalf("GET refresh (Basic) at B after revoke: status %d, want 401\n%s", g.status, g.body)
	}

	// Two sessions from logins at B; revoke all of alice's through A: B refuses both.
	rt1, rt2 := b.offlineLogin(t), b.offlineLogin(t)
	if rt1 == rt2 || rt1 == rt || rt2 == rt {
		t.Fatal("two logins returned the same refresh token (or the revoked one)")
	}
	if got := a.listSessions(t, "alice"); len(got) != 2 {
		t.Fatalf("A's sessions after two logins at B: %+v, want two", got)
	}
	b.refreshOK(t, rt1, a)
	b.refreshOK(t, rt2, a)
	var revoked struct {
		Revoked int `json:"revoked"`
	}
	a.adminREST(t, http.MethodDelete, "/v1/users/alice/sessions", &revoked)
	revokedAt = time.Now()
	b.awaitRevoked(t, revokedAt, rt1, rt2)
	if revoked.Revoked != 2 {
		t.Fatalf("DELETE /v1/users/alice/sessions at A revoked %d, want 2", revoked.Revoked)
	}
	for _, r := range []string{rt1, rt2} {
		if !a.refusedGrant(t, r) {
			t.Fatal("A still grants a refresh of a session of alice revoked through A")
		}
	}
	if got := b.listSessions(t, "alice"); len(got) != 0 {
		t.Fatalf("B's sessions after revoking alice's through A: %+v, want none", got)
	}

	// A new login at B works again, at both replicas; the CLI against A's gRPC admin
	// listener ends it too.
	rt3 := b.offlineLogin(t)
	if rt3 == rt1 || rt3 == rt2 || rt3 == rt {
		t.Fatal("the new login got a revoked refresh token back")
	}
	b.refreshOK(t, rt3, a)
	a.refreshOK(t, rt3, b)
	if out := a.sessionsCLI(t, "revoke", "-user", "alice"); !strings.Contains(out, "revoked 1 session") {
		t.Fatalf("portcullis sessions revoke -user alice against A:\n%s", out)
	}
	b.awaitRevoked(t, time.Now(), rt3)
}
