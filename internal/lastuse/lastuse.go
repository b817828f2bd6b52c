// Package lastuse keeps "last used" updates in memory and writes them in batches, so that a
// request that uses a session or a robot key costs a read and no write. Updates are keyed
// (one pending value per session or robot); a batch whose write fails is put back, except
// where a newer update arrived meanwhile, and written at the next tick.
package lastuse

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Options configure a Writer.
type Options[V any] struct {
	// Write stores a batch; it is called from one goroutine at a time.
	Write func(ctx context.Context, batch []V) error
	// Interval between writes.
	Interval time.Duration
	// OnTick, if set, runs after each tick's write (sessions delete expired ones there).
	OnTick func(ctx context.Context)
	// What names the values in log lines and errors ("session", "robot").
	What   string
	Logger *slog.Logger
}

// Writer holds pending values and writes them every Interval until Close.
type Writer[V any] struct {
	o    Options[V]
	stop chan struct{}
	done chan struct{}
	once sync.Once

	mu      sync.Mutex
	pending map[string]V
}

// New starts the loop that writes pending values.
func New[V any](o Options[V]) *Writer[V] {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	w := &Writer[V]{o: o, stop: make(chan struct{}), done: make(chan struct{}), pending: map[string]V{}}
	go w.loop()
	return w
}

// Update runs f on the pending value of key (ok false when there is none) under the Writer's
// lock; when f returns store, its value becomes the pending one. The lock lets a caller read
// an unwritten use and decide on it in one step.
func (w *Writer[V]) Update(key string, f func(pending V, ok bool) (v V, store bool)) {
	w.mu.Lock()
	defer w.mu.Unlock()
	old, ok := w.pending[key]
	if v, store := f(old, ok); store {
		w.pending[key] = v
	}
}

// Flush writes the pending values now, as the loop does on its tick.
func (w *Writer[V]) Flush(ctx context.Context) error {
	w.mu.Lock()
	if len(w.pending) == 0 {
		w.mu.Unlock()
		return nil
	}
	batch, keys := make([]V, 0, len(w.pending)), make([]string, 0, len(w.pending))
	for k, v := range w.pending {
		batch, keys = append(batch, v), append(keys, k)
	}
	w.pending = map[string]V{}
	w.mu.Unlock()

	err := w.o.Write(ctx, batch)
	if err == nil {
		return nil
	}
	w.mu.Lock()
	for i, k := range keys {
		if _, newer := w.pending[k]; !newer {
			w.pending[k] = batch[i]
		}
	}
	w.mu.Unlock()
	return fmt.Errorf("%s last uses: %w", w.o.What, err)
}

// Close stops the loop and writes what is still pending. Safe to call more than once.
func (w *Writer[V]) Close(ctx context.Context) error {
	w.once.Do(func() { close(w.stop) })
	<-w.done
	return w.Flush(ctx)
}

func (w *Writer[V]) loop() {
	defer close(w.done)
	tk := time.NewTicker(w.o.Interval)
	defer tk.Stop()
	for {
		select {
		case <-w.stop:
			return
		case <-tk.C:
			ctx, cancel := context.WithTimeout(context.Background(), 10*w.o.Interval+5*time.Second)
			if err := w.Flush(ctx); err != nil {
				w.o.Logger.Warn("writing last-use times failed; will retry", "what", w.o.What, "err", err)
			}
			if w.o.OnTick != nil {
				w.o.OnTick(ctx)
			}
			cancel()
		}
	}
}
