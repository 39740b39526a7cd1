package winhcn

import (
	"context"
	"errors"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestCallReturnsResult(t *testing.T) {
	boom := errors.New("boom")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for _, c := range []context.Context{context.Background(), ctx} {
		v, err := call(c, func() (int, error) { return 7, nil }, func(int) { t.Error("release called for a taken result") })
		if v != 7 || err != nil {
			t.Errorf("call = %d, %v; want 7, nil", v, err)
		}
		if _, err := call(c, func() (int, error) { return 0, boom }, nil); err != boom {
			t.Errorf("call = %v; want %v", err, boom)
		}
	}
}

func TestCallDoneContextRunsNothing(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ran := false
	if _, err := call(ctx, func() (int, error) { ran = true; return 1, nil }, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v; want context.Canceled", err)
	}
	if ran {
		t.Error("fn ran under a done context")
	}
}

// When ctx ends while fn is blocked, call returns at once; fn finishes later
// and its result goes to release.
func TestCallReleasesAbandonedResult(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	unblock, started := make(chan struct{}), make(chan struct{})
	released := make(chan int)
	go func() { <-started; cancel() }()
	v, err := call(ctx, func() (int, error) {
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

// A failure nobody waits for has nothing to release; the goroutine still
// ends (goleak checks).
func TestCallDropsAbandonedFailure(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	unblock, started, finished := make(chan struct{}), make(chan struct{}), make(chan struct{})
	go func() { <-started; cancel() }()
	_, err := call(ctx, func() (int, error) {
		defer close(finished)
		close(started)
		<-unblock
		return 1, errors.New("late failure")
	}, func(int) { t.Error("release called for a failure") })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v; want context.Canceled", err)
	}
	close(unblock)
	<-finished
}
