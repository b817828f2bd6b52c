package main

import "testing"

// A harness giving up (Fatalf) ends the bench section with its message as an error, and the
// servers it started are still stopped; a panic of another kind is not swallowed.
func TestWithBenchT(t *testing.T) {
	t.Parallel()
	var stopped []string
	err := withBenchT(t.TempDir(), func(bt *benchT) error {
		bt.Cleanup(func() { stopped = append(stopped, "first") })
		bt.Cleanup(func() { stopped = append(stopped, "second") })
		bt.Fatalf("pgtest: %s", "no PostgreSQL server found")
		return nil
	})
	if err == nil || err.Error() != "pgtest: no PostgreSQL server found" {
		t.Errorf("err = %v", err)
	}
	if len(stopped) != 2 || stopped[0] != "second" || stopped[1] != "first" {
		t.Errorf("cleanups ran %v; want second, first", stopped)
	}
	defer func() {
		if r := recover(); r != "boom" {
			t.Errorf("recovered %v; want the panic to go on", r)
		}
	}()
	_ = withBenchT(t.TempDir(), func(*benchT) error { panic("boom") })
}
