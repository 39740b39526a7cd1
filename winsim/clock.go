package winsim

import (
	"context"
	"slices"
	"sync"
	"time"
)

// Clock is the host's source of time: guests sleep on it, latency profiles
// and injected delays wait on it, and statistics are computed from it.
type Clock interface {
	Now() time.Time
	// At arranges for f to run once the clock has reached t, at once if t
	// has passed. f never runs in the goroutine that called At. stop
	// cancels the call and reports whether it did so before f started.
	At(t time.Time, f func()) (stop func() bool)
}

// WallClock is the real time. It is the default.
type WallClock struct{}

// Now returns time.Now().
func (WallClock) Now() time.Time { return time.Now() }

// At runs f in its own goroutine at t.
func (WallClock) At(t time.Time, f func()) func() bool {
	return time.AfterFunc(time.Until(t), f).Stop
}

// ManualClock is a Clock that moves only when told to, so that tests see
// guests, delays and statistics progress deterministically. The zero value is
// not usable; call NewManualClock.
type ManualClock struct {
	mu sync.Mutex
	// guarded by mu:
	now     time.Time
	seq     uint64
	timers  []*manualTimer
	changed chan struct{} // closed and replaced whenever timers changes
}

type manualTimer struct {
	at  time.Time
	seq uint64
	f   func()
}

// NewManualClock returns a clock that reads start until it is advanced.
func NewManualClock(start time.Time) *ManualClock {
	return &ManualClock{now: start, changed: make(chan struct{})}
}

// Now returns the clock's current time.
func (c *ManualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// At registers f to run when Advance reaches t. If t has passed already, f
// runs at once in a goroutine of its own.
func (c *ManualClock) At(t time.Time, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !t.After(c.now) {
		go f()
		return func() bool { return false }
	}
	c.seq++
	tm := &manualTimer{at: t, seq: c.seq, f: f}
	i, _ := slices.BinarySearchFunc(c.timers, tm, compareTimers)
	c.timers = slices.Insert(c.timers, i, tm)
	c.notifyLocked()
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.timers, tm)
		if i < 0 {
			return false
		}
		c.timers = slices.Delete(c.timers, i, i+1)
		c.notifyLocked()
		return true
	}
}

func compareTimers(a, b *manualTimer) int {
	if c := a.at.Compare(b.at); c != 0 {
		return c
	}
	return int(a.seq) - int(b.seq)
}

func (c *ManualClock) notifyLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}

// Advance moves the clock forward by d and runs, in time order and before it
// returns, every function that has come due. It returns at once for d <= 0.
func (c *ManualClock) Advance(d time.Duration) {
	c.mu.Lock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	var due []*manualTimer
	for len(c.timers) > 0 && !c.timers[0].at.After(c.now) {
		due = append(due, c.timers[0])
		c.timers = c.timers[1:]
	}
	if len(due) > 0 {
		c.notifyLocked()
	}
	c.mu.Unlock()
	for _, tm := range due {
		tm.f()
	}
}

// Timers returns how many functions are waiting for the clock.
func (c *ManualClock) Timers() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.timers)
}

// BlockUntil waits until at least n functions are waiting for the clock, so
// that a test advances it only once a guest or a delayed call is waiting. It
// returns ctx.Err() if ctx ends first.
func (c *ManualClock) BlockUntil(ctx context.Context, n int) error {
	for {
		c.mu.Lock()
		count, changed := len(c.timers), c.changed
		c.mu.Unlock()
		if count >= n {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}
