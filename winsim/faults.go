package winsim

import (
	"context"
	"errors"
	"sync"
	"time"
)

// Compute operation names, as used by Fail, Delay, Hang, Profile and in
// hcsdriver.OpError.Op. The id a fault matches is the compute system id; for
// OpList it is the owner filter.
const (
	OpCreate        = "create"
	OpStart         = "start"
	OpShutdown      = "shutdown"
	OpTerminate     = "terminate"
	OpOpen          = "open"
	OpList          = "list"
	OpCreateProcess = "create_process"
	OpStats         = "stats"
)

// Network operation names, one per netdriver.Driver method, as used by Fail,
// Delay, Hang, Profile and in error messages. The id a fault matches is the
// network name for the network operations, the endpoint name for
// OpCreateEndpoint and OpGetEndpoint, the endpoint id for OpDeleteEndpoint
// and the name prefix for OpListEndpoints.
const (
	OpEnsureNetwork  = "ensure_network"
	OpGetNetwork     = "get_network"
	OpDeleteNetwork  = "delete_network"
	OpCreateEndpoint = "create_endpoint"
	OpGetEndpoint    = "get_endpoint"
	OpListEndpoints  = "list_endpoints"
	OpDeleteEndpoint = "delete_endpoint"
)

// Profile is a latency profile: how long each operation takes on the host,
// applied to every call.
type Profile struct {
	Create, Start, Shutdown, Terminate, Open, List, CreateProcess, Stats time.Duration
	// Stopping is how long a graceful shutdown takes after Shutdown has
	// returned: processes end at once, and the system reaches Stopped this
	// much later. Zero stops the system before Shutdown returns.
	Stopping time.Duration

	EnsureNetwork, GetNetwork, DeleteNetwork                   time.Duration
	CreateEndpoint, GetEndpoint, ListEndpoints, DeleteEndpoint time.Duration
}

func (p Profile) latency(op string) time.Duration {
	switch op {
	case OpCreate:
		return p.Create
	case OpStart:
		return p.Start
	case OpShutdown:
		return p.Shutdown
	case OpTerminate:
		return p.Terminate
	case OpOpen:
		return p.Open
	case OpList:
		return p.List
	case OpCreateProcess:
		return p.CreateProcess
	case OpStats:
		return p.Stats
	case OpEnsureNetwork:
		return p.EnsureNetwork
	case OpGetNetwork:
		return p.GetNetwork
	case OpDeleteNetwork:
		return p.DeleteNetwork
	case OpCreateEndpoint:
		return p.CreateEndpoint
	case OpGetEndpoint:
		return p.GetEndpoint
	case OpListEndpoints:
		return p.ListEndpoints
	case OpDeleteEndpoint:
		return p.DeleteEndpoint
	}
	return 0
}

// SetLatency replaces the host's latency profile. Calls already waiting keep
// the latency they started with.
func (h *Host) SetLatency(p Profile) {
	h.mu.Lock()
	defer h.unlock()
	h.profile = p
}

// fault is one injected fault rule. Fields are guarded by Host.mu, except
// hang (closed once by release) and held.
type fault struct {
	op, id string // id "" matches any
	fails  int    // calls left to fail with err
	err    error
	delay  time.Duration
	hang   chan struct{}
	held   sync.WaitGroup // calls held by hang
}

func (f *fault) matches(op, id string) bool {
	return f.op == op && (f.id == "" || f.id == id)
}

// Fail makes the next n calls of op on id ("" for any; see the Op constants
// for what id names) fail with err, wrapped in an *hcsdriver.OpError for a
// compute operation and in an error naming op and id for a network one. The
// failure comes after the call's latency and delays, and nothing changes on
// the host.
func (h *Host) Fail(op, id string, n int, err error) {
	h.mu.Lock()
	defer h.unlock()
	h.faults = append(h.faults, &fault{op: op, id: id, fails: n, err: err})
}

// Delay adds d to every call of op on id ("" for any) until undo is called.
func (h *Host) Delay(op, id string, d time.Duration) (undo func()) {
	f := &fault{op: op, id: id, delay: d}
	h.mu.Lock()
	defer h.unlock()
	h.faults = append(h.faults, f)
	return func() { h.removeFault(f) }
}

// Hang holds every call of op on id ("" for any) that starts before release
// is called. release lets them proceed and returns once each has taken
// effect on the host (a held call waits out its latency first, so on a
// ManualClock advance the clock before releasing). A caller whose context
// ends while held gets ctx.Err(), but the operation still takes effect when
// released, as an HCS call the caller stopped waiting for does.
func (h *Host) Hang(op, id string) (release func()) {
	f := &fault{op: op, id: id, hang: make(chan struct{})}
	h.mu.Lock()
	defer h.unlock()
	h.faults = append(h.faults, f)
	var once sync.Once
	return func() {
		once.Do(func() {
			h.removeFault(f) // no call joins f.held after this
			close(f.hang)
			f.held.Wait()
		})
	}
}

// ClearFaults removes every Fail and Delay rule. Hung calls stay held until
// their release is called.
func (h *Host) ClearFaults() {
	h.mu.Lock()
	defer h.unlock()
	kept := h.faults[:0]
	for _, f := range h.faults {
		if f.hang != nil {
			kept = append(kept, f)
		}
	}
	h.faults = kept
}

func (h *Host) removeFault(f *fault) {
	h.mu.Lock()
	defer h.unlock()
	for i, g := range h.faults {
		if g == f {
			h.faults = append(h.faults[:i], h.faults[i+1:]...)
			return
		}
	}
}

// admission is what the fault rules and the latency profile decide for one
// call as it starts.
type admission struct {
	wait time.Duration
	hang []*fault
	err  error // injected failure
}

func (h *Host) admitLocked(op, id string) admission {
	a := admission{wait: h.profile.latency(op)}
	for _, f := range h.faults {
		if !f.matches(op, id) {
			continue
		}
		a.wait += f.delay
		if f.hang != nil {
			f.held.Add(1)
			a.hang = append(a.hang, f)
		}
		if f.fails > 0 && a.err == nil {
			f.fails--
			a.err = f.err
		}
	}
	return a
}

// service is what do needs of the compute or the network service.
type service interface {
	host() *Host
	// usableLocked fails a call that must not start.
	usableLocked(op, id string) error
	// fail describes the failure of call op on id with err: an injected
	// fault, ctx.Err(), or errHostClosed.
	fail(op, id string, err error) error
}

// errHostClosed stands for the host's closing in service.fail; each service
// reports it as its own ErrUnavailable.
var errHostClosed = errors.New("host closed")

// pending is a call that waits on the host's clock or on a hang. The caller
// may stop waiting; the operation then completes without it and late
// releases what it produced.
type pending[T any] struct {
	mu     sync.Mutex
	gaveUp bool
	done   chan struct{}
	res    T
	err    error
}

// do runs one driver call: it checks that the service and the host are
// usable, applies latency and faults, and then runs apply under Host.mu,
// unless the host has closed meanwhile. If ctx ends while the call waits, do
// returns ctx.Err() and the operation carries on; late, if not nil, then
// receives its successful result (to release a handle nobody will use).
func do[T any](ctx context.Context, svc service, op, id string, apply func() (T, error), late func(T)) (T, error) {
	var zero T
	h := svc.host()
	h.mu.Lock()
	if err := svc.usableLocked(op, id); err != nil {
		h.unlock()
		return zero, err
	}
	a := h.admitLocked(op, id)
	start := h.clock.Now()
	run := func() (T, error) {
		h.mu.Lock()
		defer h.unlock()
		if h.closed {
			return zero, svc.fail(op, id, errHostClosed)
		}
		return apply()
	}
	if a.wait <= 0 && len(a.hang) == 0 {
		h.unlock()
		if a.err != nil {
			return zero, svc.fail(op, id, a.err)
		}
		return run()
	}
	p := &pending[T]{done: make(chan struct{})}
	h.wg.Add(1)
	h.unlock()
	go func() {
		defer h.wg.Done()
		defer func() { // after apply, so that release sees the effect
			for _, f := range a.hang {
				f.held.Done()
			}
		}()
		err := h.hold(start.Add(a.wait), a.hang)
		if err == nil {
			err = a.err
		}
		if err != nil {
			p.finish(zero, svc.fail(op, id, err), nil)
			return
		}
		r, err := run()
		p.finish(r, err, late)
	}()
	select {
	case <-p.done:
		return p.res, p.err
	case <-ctx.Done():
		p.mu.Lock()
		defer p.mu.Unlock()
		select {
		case <-p.done:
			return p.res, p.err
		default:
			p.gaveUp = true
			return zero, svc.fail(op, id, ctx.Err())
		}
	}
}

func (p *pending[T]) finish(r T, err error, late func(T)) {
	p.mu.Lock()
	gaveUp := p.gaveUp
	if !gaveUp {
		p.res, p.err = r, err
		close(p.done)
	}
	p.mu.Unlock()
	if gaveUp && err == nil && late != nil {
		late(r)
	}
}

// hold waits until the clock reaches until and every hang is released. It
// fails with errHostClosed if the host closes first.
func (h *Host) hold(until time.Time, hangs []*fault) error {
	if until.After(h.clock.Now()) {
		fired := make(chan struct{})
		stop := h.clock.At(until, func() { close(fired) })
		select {
		case <-fired:
		case <-h.quit:
			stop()
			return errHostClosed
		}
	}
	for _, f := range hangs {
		select {
		case <-f.hang:
		case <-h.quit:
			return errHostClosed
		}
	}
	return nil
}
