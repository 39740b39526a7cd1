package winhcn

import "context"

// call runs fn, a sequence of HCN calls that take no context and cannot be
// cancelled, so that ctx still bounds the wait for it. A ctx that is already
// done runs nothing. Otherwise fn runs on a goroutine of its own, which ends
// when fn returns. If ctx ends first, call returns ctx.Err() at once and fn
// runs on to completion; release, when not nil, then receives what a
// successful fn returned, so that an object nobody waits for is undone.
// Exactly one of the caller and release sees a successful result.
func call[T any](ctx context.Context, fn func() (T, error), release func(T)) (T, error) {
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
