// Package pgtest starts a real, throwaway PostgreSQL server for tests: Debian's postgresql
// package (/usr/lib/postgresql/<version>/bin), on a free loopback port, with its data directory
// in a temporary directory, stopped when the test ends. A machine without it fails the test
// loudly: a skipped database test reads as a passed one.
package pgtest

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/portcullis-dev/portcullis/internal/testutil"
)

// Server is one running PostgreSQL; each NewDatabase gives a test its own database on it.
type Server struct {
	Port int
	n    atomic.Int64
	pid  int
}

// PID is the postmaster's process id; the backends are its children, so the bench can add up
// the server's CPU time.
func (s *Server) PID() int { return s.pid }

// Start starts a server and returns the DSN of a fresh database on it.
func Start(t testutil.T) string {
	t.Helper()
	return StartServer(t).NewDatabase(t)
}

// StartServer starts PostgreSQL as its own superuser "postgres" (trust auth on 127.0.0.1 only)
// and registers its shutdown with t.Cleanup. When the test runs as root, the server runs as the
// `postgres` OS user, since PostgreSQL refuses to run as root.
func StartServer(t testutil.T) *Server {
	t.Helper()
	bin, err := findBin(pgRoot)
	if err != nil {
		t.Fatalf("pgtest: %v (install Debian's postgresql package: scripts/install-tools.sh debian, or apt-get install postgresql)", err)
	}
	var cred *syscall.Credential
	dir := ""
	if os.Geteuid() == 0 {
		u, err := user.Lookup("postgres")
		if err != nil {
			t.Fatalf("pgtest: running as root needs the postgres OS user (from the postgresql package): %v", err)
		}
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
		// t.TempDir's parents are private to root, so the postgres user could not reach a
		// directory under them; use a private directory of its own in the system temp dir.
		dir, err = os.MkdirTemp("", "pgtest-")
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		t.Cleanup(func() { _ = os.RemoveAll(dir) })
		if err := os.Chown(dir, uid, gid); err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	} else {
		dir = t.TempDir()
	}
	data := filepath.Join(dir, "data")
	run := func(name string, args ...string) {
		cmd := exec.Command(filepath.Join(bin, name), args...)
		cmd.Env = append(os.Environ(), "LC_ALL=C")
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("pgtest: %s: %v\n%s", name, err, out)
		}
	}
	run("initdb", "-D", data, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync", "--no-instructions")

	var lastErr error
	for range 3 { // the free port can be taken between probing and binding: retry with another
		port, err := freePort()
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
		s := &Server{Port: port}
		if lastErr = s.start(t, bin, dir, data, cred); lastErr == nil {
			return s
		}
	}
	t.Fatalf("pgtest: PostgreSQL did not start: %v", lastErr)
	return nil
}

func (s *Server) start(t testutil.T, bin, dir, data string, cred *syscall.Credential) error {
	logPath := filepath.Join(dir, fmt.Sprintf("postgres-%d.log", s.Port))
	logf, err := os.Create(logPath)
	if err != nil {
		return err
	}
	defer logf.Close()
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-p", strconv.Itoa(s.Port),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "unix_socket_directories=", // TCP only: no socket file in a shared directory
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", // throwaway data
		"-c", "max_connections=200",
	)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Setpgid: true}
	if err := cmd.Start(); err != nil {
		return err
	}
	s.pid = cmd.Process.Pid
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGINT) // fast shutdown
		select {
		case <-exited:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
	}

	// Wait until it accepts connections (or dies: then its log says why).
	deadline := time.Now().Add(60 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		c, err := pgx.Connect(ctx, s.dsn("postgres"))
		cancel()
		if err == nil {
			_ = c.Close(context.Background())
			break
		}
		select {
		case <-exited:
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres exited at start:\n%s", b)
		default:
		}
		if time.Now().After(deadline) {
			stop()
			b, _ := os.ReadFile(logPath)
			return fmt.Errorf("postgres not ready after 60s: %v\n%s", err, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Cleanup(func() {
		stop()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("pgtest: server log:\n%s", b)
		}
	})
	return nil
}

// NewDatabase creates an empty database and returns its DSN.
func (s *Server) NewDatabase(t testutil.T) string {
	t.Helper()
	name := fmt.Sprintf("test_%d", s.n.Add(1))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, s.dsn("postgres"))
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	defer c.Close(context.Background())
	if _, err := c.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("pgtest: create database: %v", err)
	}
	return s.dsn(name)
}

func (s *Server) dsn(db string) string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/%s?sslmode=disable", s.Port, db)
}

// pgRoot is where Debian's postgresql packages put each major version's programs.
const pgRoot = "/usr/lib/postgresql"

// findBin returns the bin directory of the newest PostgreSQL major version under root.
func findBin(root string) (string, error) {
	dirs, _ := filepath.Glob(filepath.Join(root, "*", "bin"))
	type v struct {
		n   int
		dir string
	}
	var found []v
	for _, d := range dirs {
		n, err := strconv.Atoi(filepath.Base(filepath.Dir(d)))
		if err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "initdb")); err != nil {
			continue
		}
		found = append(found, v{n, d})
	}
	if len(found) == 0 {
		return "", fmt.Errorf("no PostgreSQL server found under %s", filepath.Join(root, "*", "bin"))
	}
	slices.SortFunc(found, func(a, b v) int { return b.n - a.n })
	return found[0].dir, nil
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
