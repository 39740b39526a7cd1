// Package blocking bounds calls that take no context (HCS, HCN and layer
// calls on Windows) by a context, without losing what they return.
package blocking

import "context"

// Call runs fn, a platform call that takes no context and cannot be cancelled,
// so that ctx still bounds the wait for it. When ctx can end, fn runs on a
// goroutine of its own, which ends when fn returns. If ctx ends first, Call
// returns ctx.Err() at once and fn runs on to completion; release, when not
// nil, then receives what a successful fn returned, so that a handle nobody
// waits for any more is released. Exactly one of the caller and release sees
// a successful result. A ctx that is already done runs nothing.
func Call[T any](ctx context.Context, fn func() (T, error), release func(T)) (T, error) {
	var zero T
	if err := ctx.Err(); err != nil {
		return zero, err
	}
	if ctx.Done() == nil { // cannot end: no goroutine needed
		return fn()
	}
	type result struct {
		v   T
		err error
	}
	done := make(chan result) // unbuffered: a send succeeds only if the caller takes it
	go func() {
		v, err := fn()
		select {
		case done <- result{v, err}:
		case <-ctx.Done():
			if err == nil && release != nil {
				release(v)
			}
		}
	}()
	select {
	case r := <-done:
		return r.v, r.err
	case <-ctx.Done():
		return zero, ctx.Err()
	}
}

// Call0 is Call for a platform call with no result.
func Call0(ctx context.Context, fn func() error) error {
	_, err := Call(ctx, func() (struct{}, error) { return struct{}{}, fn() }, nil)
	return err
}
