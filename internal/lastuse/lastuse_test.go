package lastuse_test

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/portcullis-dev/portcullis/internal/lastuse"
)

type use struct {
	id string
	at int
}

// store records batches; fail makes the next write fail.
type store struct {
	mu      sync.Mutex
	batches [][]use
	fail    bool
}

func (s *store) write(_ context.Context, b []use) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		s.fail = false
		return errors.New("down")
	}
	slices.SortFunc(b, func(x, y use) int { return x.at - y.at })
	s.batches = append(s.batches, b)
	return nil
}

func newer(id string, at int) func(use, bool) (use, bool) {
	return func(p use, ok bool) (use, bool) {
		if ok && p.at > at {
			return p, false
		}
		return use{id, at}, true
	}
}

func TestWriter(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name      string
		steps     func(w *lastuse.Writer[use], s *store)
		wantLast  []use // the last batch written
		wantCount int   // batches written
	}{
		{"one batch per flush, newest per key", func(w *lastuse.Writer[use], s *store) {
			w.Update("a", newer("a", 1))
			w.Update("a", newer("a", 3))
			w.Update("a", newer("a", 2)) // older than the pending one: ignored
			w.Update("b", newer("b", 4))
			_ = w.Flush(context.Background())
		}, []use{{"a", 3}, {"b", 4}}, 1},
		{"nothing pending writes nothing", func(w *lastuse.Writer[use], s *store) {
			_ = w.Flush(context.Background())
		}, nil, 0},
		{"a failed batch is put back, a newer use wins", func(w *lastuse.Writer[use], s *store) {
			w.Update("a", newer("a", 1))
			w.Update("b", newer("b", 2))
			s.fail = true
			if err := w.Flush(context.Background()); err == nil {
				panic("flush did not fail")
			}
			w.Update("b", newer("b", 5))
			_ = w.Flush(context.Background())
		}, []use{{"a", 1}, {"b", 5}}, 1},
		{"close writes what is pending", func(w *lastuse.Writer[use], s *store) {
			w.Update("c", newer("c", 7))
			_ = w.Close(context.Background())
			_ = w.Close(context.Background()) // twice is fine
		}, []use{{"c", 7}}, 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := &store{}
			w := lastuse.New(lastuse.Options[use]{Write: s.write, Interval: time.Hour, What: "test"})
			defer w.Close(context.Background())
			tc.steps(w, s)
			s.mu.Lock()
			defer s.mu.Unlock()
			if len(s.batches) != tc.wantCount {
				t.Fatalf("%d batches %v, want %d", len(s.batches), s.batches, tc.wantCount)
			}
			if tc.wantCount > 0 && !slices.Equal(s.batches[len(s.batches)-1], tc.wantLast) {
				t.Fatalf("last batch %v, want %v", s.batches[len(s.batches)-1], tc.wantLast)
			}
		})
	}
}

// The loop writes on its tick and runs OnTick after.
func TestWriterTicks(t *testing.T) {
	t.Parallel()
	s := &store{}
	ticked := make(chan struct{}, 1)
	w := lastuse.New(lastuse.Options[use]{Write: s.write, Interval: 10 * time.Millisecond, What: "test",
		OnTick: func(context.Context) {
			select {
			case ticked <- struct{}{}:
			default:
			}
		}})
	defer w.Close(context.Background())
	w.Update("a", newer("a", 1))
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		n := len(s.batches)
		s.mu.Unlock()
		if n == 1 {
			break
		}
		select {
		case <-deadline:
			t.Fatal("the loop never wrote")
		case <-time.After(5 * time.Millisecond):
		}
	}
	select {
	case <-ticked:
	case <-deadline:
		t.Fatal("OnTick never ran")
	}
}
