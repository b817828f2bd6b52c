// Package ldaptest starts a real, throwaway OpenLDAP server for tests: Debian's slapd
// (/usr/sbin/slapd, with ldapmodify from ldap-utils to seed it), on free loopback ports, with
// its configuration and data in a temporary directory, TLS from a test CA, stopped when the
// test ends. A machine without it fails the test loudly: a skipped directory test reads as a
// passed one.
//
// The directory holds the suffix entry (Suffix) and whatever the test adds. It loads the
// memberof overlay, so groupOfNames members get memberOf, and it refuses every operation
// except StartTLS on a connection without TLS, so a client that forgets StartTLS fails
// instead of sending passwords in the clear unnoticed. Passwords are readable by nobody:
// anonymous may bind with them, bound users may read everything else.
//
// StartWith(t, Options{PasswordPolicy: true}, seed) also runs the ppolicy overlay with a
// default policy (DefaultPolicyDN), for tests of password changes and locked accounts.
package ldaptest

import (
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/portcullis-dev/portcullis/internal/testenv/testpki"
	"github.com/portcullis-dev/portcullis/internal/testutil"
)

// Suffix is the directory's naming context; Start creates its entry.
const Suffix = "dc=example,dc=org"

// Where Debian's slapd and ldap-utils put their programs and modules.
const (
	slapdBin   = "/usr/sbin/slapd"
	modifyBin  = "ldapmodify"
	modulePath = "/usr/lib/ldap"
	schemaDir  = "/etc/ldap/schema"
)

const installHint = "install Debian's slapd and ldap-utils: scripts/install-tools.sh debian, or " +
	"DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends slapd ldap-utils"

// Server is one running slapd.
type Server struct {
	// URL is the plain LDAP address (ldap://127.0.0.1:port); StartTLS is required on it.
	URL string
	// LDAPSURL is the TLS-from-the-start address (ldaps://127.0.0.1:port).
	LDAPSURL string
	// CAFile is the PEM certificate of the CA that issued the server's certificate.
	CAFile string
	// RootDN and RootPassword are the directory manager, who bypasses access control.
	RootDN, RootPassword string

	dir, conf string
	ports     [2]int
	opts      Options

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
}

// DefaultPolicyDN is the password policy entry the ppolicy overlay applies to every entry that
// names no other in pwdPolicySubentry, when Options.PasswordPolicy is set.
const DefaultPolicyDN = "cn=default,ou=policies," + Suffix

// Options change what Start sets up.
type Options struct {
	// PasswordPolicy loads the ppolicy overlay with DefaultPolicyDN as its default policy:
	// pwdChangedTime is kept on every password change, and pwdMaxFailure wrong binds lock an
	// entry (pwdAccountLockedTime) for LockoutDuration (0: until an administrator unlocks it).
	PasswordPolicy  bool
	MaxFailure      int // default 3
	LockoutDuration time.Duration
}

// Start starts slapd, creates the Suffix entry, adds seed (LDIF of entries to add; "" for
// none) and registers the server's shutdown with t.Cleanup.
func Start(t testutil.T, seed string) *Server {
	t.Helper()
	return StartWith(t, Options{}, seed)
}

// StartWith is Start with options.
func StartWith(t testutil.T, o Options, seed string) *Server {
	t.Helper()
	if _, err := os.Stat(slapdBin); err != nil {
		t.Fatalf("ldaptest: no OpenLDAP server at %s (%v); %s", slapdBin, err, installHint)
	}
	if _, err := exec.LookPath(modifyBin); err != nil {
		t.Fatalf("ldaptest: %s not found (%v); %s", modifyBin, err, installHint)
	}
	dir := t.TempDir()
	pki := testpki.Write(t, dir)
	s := &Server{CAFile: pki.CA, RootDN: "cn=admin," + Suffix, RootPassword: randomString(t), dir: dir,
		conf: filepath.Join(dir, "slapd.conf"), opts: o}
	if err := os.Mkdir(filepath.Join(dir, "data"), 0o700); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	if err := os.WriteFile(s.conf, []byte(s.config(pki)), 0o600); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	t.Cleanup(func() { s.stop() })

	var lastErr error
	for range 3 { // a free port can be taken between probing and binding: retry with others
		for i := range s.ports {
			p, err := freePort()
			if err != nil {
				t.Fatalf("ldaptest: %v", err)
			}
			s.ports[i] = p
		}
		s.URL = fmt.Sprintf("ldap://127.0.0.1:%d", s.ports[0])
		s.LDAPSURL = fmt.Sprintf("ldaps://127.0.0.1:%d", s.ports[1])
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("ldaptest: slapd did not start: %v", lastErr)
	}
	s.Add(t, fmt.Sprintf("dn: %s\nobjectClass: dcObject\nobjectClass: organization\no: example\ndc: example\n", Suffix))
	if o.PasswordPolicy {
		maxFailure := o.MaxFailure
		if maxFailure == 0 {
			maxFailure = 3
		}
		s.Add(t, fmt.Sprintf(`dn: ou=policies,%s
objectClass: organizationalUnit
ou: policies

dn: %s
objectClass: pwdPolicy
objectClass: device
cn: default
pwdAttribute: userPassword
pwdLockout: TRUE
pwdMaxFailure: %d
pwdLockoutDuration: %d
`, Suffix, DefaultPolicyDN, maxFailure, int(o.LockoutDuration.Seconds())))
	}
	if strings.TrimSpace(seed) != "" {
		s.Add(t, seed)
	}
	return s
}

func (s *Server) config(pki testpki.Files) string {
	var b strings.Builder
	for _, sc := range []string{"core", "cosine", "inetorgperson", "nis"} {
		fmt.Fprintf(&b, "include %s/%s.schema\n", schemaDir, sc)
	}
	policy := ""
	if s.opts.PasswordPolicy {
		// OpenLDAP 2.5 builds the ppolicy schema into the overlay.
		policy = fmt.Sprintf("overlay ppolicy\nppolicy_default %q\n", DefaultPolicyDN)
	}
	fmt.Fprintf(&b, `modulepath %s
moduleload back_mdb
moduleload memberof
moduleload ppolicy
pidfile %s
argsfile %s
TLSCACertificateFile %s
TLSCertificateFile %s
TLSCertificateKeyFile %s
TLSVerifyClient never
security tls=1

database mdb
suffix %q
rootdn %q
rootpw %s
directory %s
maxsize 33554432
dbnosync
overlay memberof
%s
access to attrs=userPassword
	by anonymous auth
	by * none
access to *
	by users read
	by * none
`, modulePath, filepath.Join(s.dir, "slapd.pid"), filepath.Join(s.dir, "slapd.args"),
		pki.CA, pki.Cert, pki.Key, Suffix, s.RootDN, s.RootPassword, filepath.Join(s.dir, "data"), policy)
	return b.String()
}

// start runs slapd on s.ports and waits until it answers a StartTLS bind as the root DN.
func (s *Server) start() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	logPath := filepath.Join(s.dir, "slapd.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	defer logf.Close()
	// -d keeps slapd in the foreground (a child we can signal and wait for) and logs to
	// stderr; level "none" logs only what is always worth saying (why it did not start).
	// Running as root needs no -u.
	cmd := exec.Command(slapdBin, "-f", s.conf, "-h", s.URL+"/ "+s.LDAPSURL+"/", "-d", "none")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	s.cmd, s.exited, s.paused = cmd, exited, false

	deadline := time.Now().Add(30 * time.Second)
	for {
		err := s.ping()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			out, _ := os.ReadFile(logPath)
			s.cmd = nil
			return fmt.Errorf("slapd exited: %v\n%s", err, out)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			s.kill()
			out, _ := os.ReadFile(logPath)
			return fmt.Errorf("slapd not ready after 30s: %v\n%s", err, out)
		}
	}
}

// ping binds as the root DN over StartTLS, trusting only the test CA.
func (s *Server) ping() error {
	c, err := ldap.DialURL(s.URL, ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
	if err != nil {
		return err
	}
	defer c.Close()
	c.SetTimeout(2 * time.Second)
	if err := c.StartTLS(s.TLSConfig()); err != nil {
		return err
	}
	return c.Bind(s.RootDN, s.RootPassword)
}

// TLSConfig trusts the server's CA only.
func (s *Server) TLSConfig() *tls.Config {
	pool := x509.NewCertPool()
	if pem, err := os.ReadFile(s.CAFile); err == nil {
		pool.AppendCertsFromPEM(pem)
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// Add adds the entries in ldif (plain LDIF content records) as the root DN.
func (s *Server) Add(t testutil.T, ldif string) {
	t.Helper()
	s.modify(t, ldif, "-a")
}

// Modify applies ldif (LDIF change records: changetype add, modify, delete, modrdn) as
// the root DN.
func (s *Server) Modify(t testutil.T, ldif string) {
	t.Helper()
	s.modify(t, ldif)
}

func (s *Server) modify(t testutil.T, ldif string, extra ...string) {
	t.Helper()
	args := append([]string{"-x", "-ZZ", "-H", s.URL, "-D", s.RootDN, "-y", s.rootPasswordFile(t)}, extra...)
	cmd := exec.Command(modifyBin, args...)
	cmd.Stdin = strings.NewReader(ldif)
	// The CA comes from here; the environment overrides /etc/ldap/ldap.conf and ~/.ldaprc.
	cmd.Env = append(os.Environ(), "LDAPTLS_CACERT="+s.CAFile, "LDAPTLS_REQCERT=demand")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("ldaptest: ldapmodify: %v\n%s\nLDIF:\n%s", err, out, ldif)
	}
}

func (s *Server) rootPasswordFile(t testutil.T) string {
	t.Helper()
	p := filepath.Join(s.dir, "rootpw")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	// -y reads the file as is: no trailing newline.
	if err := os.WriteFile(p, []byte(s.RootPassword), 0o600); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	return p
}

// Stop shuts slapd down (its data stays), so a test can see the directory gone; Restart
// brings it back on the same ports.
func (s *Server) Stop(t testutil.T) {
	t.Helper()
	s.stop()
}

// Restart starts a stopped server again on the same ports with the same data.
func (s *Server) Restart(t testutil.T) {
	t.Helper()
	s.mu.Lock()
	running := s.cmd != nil
	s.mu.Unlock()
	if running {
		t.Fatalf("ldaptest: Restart of a server that is running")
	}
	var err error
	// The ports were just released; give the kernel a moment if one is still held.
	for range 20 {
		if err = s.start(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("ldaptest: slapd did not restart: %v", err)
}

// Pause freezes slapd (SIGSTOP): connections are accepted by the kernel but nothing answers,
// which is what a hung directory looks like. Resume undoes it.
func (s *Server) Pause(t testutil.T) {
	t.Helper()
	s.signal(t, syscall.SIGSTOP, true)
}

// Resume continues a paused slapd.
func (s *Server) Resume(t testutil.T) {
	t.Helper()
	s.signal(t, syscall.SIGCONT, false)
}

func (s *Server) signal(t testutil.T, sig syscall.Signal, paused bool) {
	t.Helper()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		t.Fatalf("ldaptest: slapd is not running")
	}
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	s.paused = paused
	// kill(2) only queues the signal; wait until every thread has stopped (or runs again),
	// so what the test does next meets the state it asked for.
	deadline := time.Now().Add(10 * time.Second)
	for stopped(s.cmd.Process.Pid) != paused {
		if time.Now().After(deadline) {
			t.Fatalf("ldaptest: slapd did not %s", map[bool]string{true: "stop", false: "continue"}[paused])
		}
		time.Sleep(time.Millisecond)
	}
}

// stopped reports whether every thread of pid is stopped by a signal, from /proc.
func stopped(pid int) bool {
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	if len(tasks) == 0 {
		return false
	}
	for _, f := range tasks {
		b, err := os.ReadFile(f)
		if err != nil {
			return false
		}
		// pid (comm) state ...: comm may hold spaces and parentheses, the state follows the last ')'.
		i := strings.LastIndexByte(string(b), ')')
		if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
			return false
		}
	}
	return true
}

func (s *Server) stop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd == nil {
		return
	}
	if s.paused {
		_ = s.cmd.Process.Signal(syscall.SIGCONT)
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(30 * time.Second):
		s.kill()
	}
	s.cmd = nil
}

// kill ends slapd at once; the caller holds s.mu.
func (s *Server) kill() {
	_ = s.cmd.Process.Kill()
	<-s.exited
	s.cmd = nil
}

// SSHA returns an OpenLDAP {SSHA} userPassword value for password, so seeded passwords are
// stored the way a real directory stores them rather than in the clear.
func SSHA(password string) string {
	salt := make([]byte, 8)
	_, _ = rand.Read(salt) // crypto/rand.Read does not fail
	h := sha1.New()
	h.Write([]byte(password))
	h.Write(salt)
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(h.Sum(nil), salt...))
}

// Line is one LDIF line "attr: value", base64-encoded ("attr:: …") when the value cannot be
// written as is (RFC 2849: leading space, colon or '<', trailing space, non-ASCII, line breaks).
func Line(attr, value string) string {
	if safe(value) {
		return attr + ": " + value + "\n"
	}
	return attr + ":: " + base64.StdEncoding.EncodeToString([]byte(value)) + "\n"
}

func safe(v string) bool {
	if v == "" {
		return true
	}
	if v[0] == ' ' || v[0] == ':' || v[0] == '<' || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c == 0 || c == '\n' || c == '\r' || c > 0x7e {
			return false
		}
	}
	return true
}

func randomString(t testutil.T) string {
	t.Helper()
	b := make([]byte, 18)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("ldaptest: %v", err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return strconv.Atoi(strings.TrimPrefix(l.Addr().String(), "127.0.0.1:"))
}
