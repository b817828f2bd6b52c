package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// benchT lets the test harnesses that start Vault, PostgreSQL and slapd run outside go test.
type benchT struct {
	dir      string
	n        int
	failed   bool
	cleanups []func()
}

// benchFatal is what a harness's Fatal panics with; withBenchT turns it into an error.
type benchFatal struct{ msg string }

// withBenchT runs f with a benchT and runs its cleanups afterwards (stopping the servers it
// started), also when a harness gave up on f.
func withBenchT(dir string, f func(*benchT) error) (err error) {
	bt := &benchT{dir: dir}
	defer func() {
		if r := recover(); r != nil {
			bf, ok := r.(benchFatal)
			if !ok {
				panic(r)
			}
			err = errors.New(bf.msg)
		}
		bt.cleanup()
	}()
	return f(bt)
}

func (b *benchT) Helper()                           {}
func (b *benchT) Fatal(args ...any)                 { b.fatal(fmt.Sprint(args...)) }
func (b *benchT) Fatalf(format string, args ...any) { b.fatal(fmt.Sprintf(format, args...)) }
func (b *benchT) Logf(format string, args ...any)   { fmt.Fprintf(os.Stderr, format+"\n", args...) }
func (b *benchT) Failed() bool                      { return b.failed }
func (b *benchT) Cleanup(f func())                  { b.cleanups = append(b.cleanups, f) }
func (b *benchT) TempDir() string {
	b.n++
	d := filepath.Join(b.dir, fmt.Sprintf("harness-%d", b.n))
	_ = os.MkdirAll(d, 0o700)
	return d
}

func (b *benchT) fatal(msg string) {
	b.failed = true // so the harness's cleanups show the server's log
	panic(benchFatal{msg})
}

func (b *benchT) cleanup() {
	for i := len(b.cleanups) - 1; i >= 0; i-- {
		b.cleanups[i]()
	}
	b.cleanups = nil
}
