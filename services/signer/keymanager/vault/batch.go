package vault

import (
	"context"
	"fmt"

	"go.opentelemetry.io/otel/trace"
)

// batcher coalesces concurrent sign requests into transit batch_input calls. A worker takes
// whatever is queued the moment it is free (up to maxSize): no timer, so a lone request goes
// out at once and a busy signer fills its batches while the previous calls are in flight.
type batcher struct {
	queue   chan *pending
	maxSize int
	call    func(ctx context.Context, version int, inputs [][]byte) ([][]byte, []error, error)
	// observe is told the size of every round trip (metrics).
	observe func(n int)
}

type pending struct {
	ctx     context.Context
	version int
	input   []byte
	done    chan result
}

type result struct {
	sig []byte
	err error
}

func (b *batcher) run(ctx context.Context) {
	for {
		var first *pending
		select {
		case <-ctx.Done():
			return
		case first = <-b.queue:
		}
		batch := []*pending{first}
	fill:
		for len(batch) < b.maxSize {
			select {
			case p := <-b.queue:
				batch = append(batch, p)
			default:
				break fill
			}
		}
		b.flush(ctx, batch)
	}
}

func (b *batcher) flush(ctx context.Context, batch []*pending) {
	// key_version applies to the whole call: during a rotation a batch may mix versions.
	byVersion := map[int][]*pending{}
	var order []int
	for _, p := range batch {
		if p.ctx.Err() != nil { // caller gave up: do not spend a signature on it
			p.done <- result{err: p.ctx.Err()}
			continue
		}
		if _, ok := byVersion[p.version]; !ok {
			order = append(order, p.version)
		}
		byVersion[p.version] = append(byVersion[p.version], p)
	}
	for _, v := range order {
		group := byVersion[v]
		inputs := make([][]byte, len(group))
		for i, p := range group {
			inputs[i] = p.input
		}
		// The round trip joins the trace of the first request it serves (tracing is a no-op
		// when off): one Vault span under one token request, not a trace of its own.
		callCtx := trace.ContextWithSpanContext(ctx, trace.SpanContextFromContext(group[0].ctx))
		sigs, errs, err := b.call(callCtx, v, inputs)
		b.observe(len(group))
		for i, p := range group {
			switch {
			case err != nil:
				p.done <- result{err: err}
			case errs[i] != nil:
				p.done <- result{err: errs[i]}
			default:
				p.done <- result{sig: sigs[i]}
			}
		}
	}
}

// sign queues one request and waits for its result or the caller's deadline.
func (b *batcher) sign(ctx context.Context, version int, input []byte) ([]byte, error) {
	p := &pending{ctx: ctx, version: version, input: input, done: make(chan result, 1)}
	select {
	case b.queue <- p:
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", errVaultDown, ctx.Err())
	}
	select {
	case r := <-p.done:
		return r.sig, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %v", errVaultDown, ctx.Err())
	}
}
