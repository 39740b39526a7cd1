package blocking

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCall_Returns(t *testing.T) {
	boom := errors.New("boom")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, c := range []context.Context{context.Background(), ctx} {
		v, err := Call(c, func() (int, error) { return 7, nil }, func(int) { t.Error("release called for a taken result") })
		if v != 7 || err != nil {
			t.Errorf("call = %d, %v; want 7, nil", v, err)
		}
		if err := Call0(c, func() error { return boom }); err != boom {
			t.Errorf("call0 = %v; want %v", err, boom)
		}
	}
}

func TestCall_DoneContextRunsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if err := Call0(ctx, func() error { ran = true; return nil }); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled", err)
	}
	if ran {
		t.Error("fn ran under a done context")
	}
}

// When ctx ends while fn is blocked, call returns at once; fn finishes later
// and its result goes to release, on the goroutine that ran fn.
func TestCall_AbandonedResultIsReleased(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	unblock := make(chan struct{})
	released := make(chan int)
	started := make(chan struct{})
	go func() { <-started; cancel() }()
	v, err := Call(ctx, func() (int, error) {
		close(started)
		<-unblock
		return 42, nil
	}, func(v int) { released <- v })
	if !errors.Is(err, context.Canceled) || v != 0 {
		t.Fatalf("call = %d, %v; want 0, context.Canceled", v, err)
	}
	close(unblock)
	if got := <-released; got != 42 {
		t.Errorf("released %d; want 42", got)
	}
}

// A failed call that nobody waits for has nothing to release.
func TestCall_AbandonedFailureIsDropped(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	unblock := make(chan struct{})
	started := make(chan struct{})
	var releases atomic.Int32
	go func() { <-started; cancel() }()
	_, err := Call(ctx, func() (int, error) {
		close(started)
		<-unblock
		return 1, errors.New("late failure")
	}, func(int) { releases.Add(1) })
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled", err)
	}
	close(unblock)
	goleak.VerifyNone(t) // the goroutine that ran fn has ended, release or not
	if n := releases.Load(); n != 0 {
		t.Errorf("release called %d times for a failed call", n)
	}
}
