// Package testutil holds the helpers every test suite in this module shares: a clock the test
// moves by hand, one polling helper, and T, the part of testing.TB the harnesses use.
//
// It must not import "testing": the harnesses that take a T (pgtest, ldaptest, vaulttest,
// testpki) are linked into the bench binary too. Production code never imports it.
package testutil

// T is the part of testing.TB the helpers and harnesses use, so a benchmark (or the bench
// binary, which has no *testing.T) can start a server too.
type T interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
	TempDir() string
	Cleanup(func())
	Failed() bool
}
