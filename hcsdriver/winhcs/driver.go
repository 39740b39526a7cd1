//go:build windows

package winhcs

import (
	"cmp"
	"context"
	"errors"
	"github.com/berthhq/berth/internal/blocking"
	"io"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/Microsoft/hcsshim"

	"github.com/berthhq/berth/hcsdriver"
)

var (
	_ hcsdriver.Driver  = (*Driver)(nil)
	_ hcsdriver.System  = (*system)(nil)
	_ hcsdriver.Process = (*process)(nil)
)

// Driver is hcsdriver.Driver on the Host Compute Service. It is safe for
// concurrent use and holds no state of its own: compute systems live in HCS
// and outlive the process that created them.
//
// Every HCS call that can block runs on a goroutine of its own when the
// caller's context can end; when it ends first, the method returns ctx.Err()
// wrapped in an *hcsdriver.OpError and the HCS call runs on. A create or open
// that completes after its caller stopped waiting is undone (the new system is
// terminated, the opened handle closed), and so is a process created after
// its caller stopped waiting (it is killed).
type Driver struct {
	hostCPUs int
}

// New returns a driver for this host.
func New() *Driver { return &Driver{hostCPUs: runtime.NumCPU()} }

// Create creates compute system id from cfg (see BuildDocument). The system
// does not stop when its last handle closes.
func (d *Driver) Create(ctx context.Context, id string, cfg hcsdriver.Config) (hcsdriver.System, error) {
	doc, err := BuildDocument(id, cfg, d.hostCPUs)
	if err != nil {
		return nil, &hcsdriver.OpError{Op: "create", ID: id, Err: err}
	}
	c, err := blocking.Call(ctx, func() (hcsshim.Container, error) { return hcsshim.CreateContainer(id, doc.hcs()) }, discard)
	if err != nil {
		return nil, fail("create", id, err)
	}
	return newSystem(id, c, cfg.MemoryMB, false), nil
}

// Open opens a handle to compute system id. The handle cannot report a
// memory limit in Statistics: HCS v1 does not tell it.
func (d *Driver) Open(ctx context.Context, id string) (hcsdriver.System, error) {
	c, err := blocking.Call(ctx, func() (hcsshim.Container, error) { return hcsshim.OpenContainer(id) },
		func(c hcsshim.Container) { _ = c.Close() })
	if err != nil {
		return nil, fail("open", id, err)
	}
	return newSystem(id, c, 0, true), nil
}

// List returns the compute systems of type Container carrying owner tag
// owner (any owner for ""), sorted by id.
func (d *Driver) List(ctx context.Context, owner string) ([]hcsdriver.Info, error) {
	q := hcsshim.ComputeSystemQuery{Types: []string{"Container"}}
	if owner != "" {
		q.Owners = []string{owner}
	}
	props, err := blocking.Call(ctx, func() ([]hcsshim.ContainerProperties, error) { return hcsshim.GetContainers(q) }, nil)
	if err != nil {
		return nil, fail("list", owner, err)
	}
	infos := make([]hcsdriver.Info, 0, len(props))
	for _, p := range props {
		infos = append(infos, infoOf(p))
	}
	slices.SortFunc(infos, func(a, b hcsdriver.Info) int { return cmp.Compare(a.ID, b.ID) })
	return infos, nil
}

// discard undoes a create nobody waits for any more: terminate, wait a
// bounded time, close. Errors are dropped; the system carries the owner tag,
// so reconciliation finds anything left.
func discard(c hcsshim.Container) {
	if err := c.Terminate(); hcsshim.IsPending(err) {
		_ = c.WaitTimeout(time.Minute)
	}
	_ = c.Close()
}

func infoOf(p hcsshim.ContainerProperties) hcsdriver.Info {
	state := hcsdriver.State(p.State)
	if p.Stopped {
		state = hcsdriver.StateStopped
	}
	return hcsdriver.Info{ID: p.ID, Owner: p.Owner, State: state, Stopped: p.Stopped, ExitType: p.ExitType}
}

// system is a handle to one compute system. Its one goroutine, watch, waits
// for the system to stop and ends when it does or when the handle closes.
type system struct {
	id       string
	c        hcsshim.Container
	memoryMB int64         // the limit it was created with; 0 when opened
	waited   chan struct{} // closed when c.Wait returned: stopped, or handle closed
	waitErr  error         // c.Wait's result; read only after waited is closed

	mu      sync.Mutex // guards the fields below
	closed  bool
	started bool // false only for a system this handle created and has not started
}

func newSystem(id string, c hcsshim.Container, memoryMB int64, opened bool) *system {
	s := &system{id: id, c: c, memoryMB: memoryMB, waited: make(chan struct{}), started: opened}
	go s.watch()
	return s
}

func (s *system) watch() {
	s.waitErr = s.c.Wait()
	close(s.waited)
}

func (s *system) ID() string { return s.id }

// check returns an ErrClosed error for a closed handle.
func (s *system) check(op string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return &hcsdriver.OpError{Op: op, ID: s.id, Err: hcsdriver.ErrClosed}
	}
	return nil
}

// stopped reports whether HCS has told this handle that the system stopped.
func (s *system) stopped() bool {
	select {
	case <-s.waited:
		return true
	default:
		return false
	}
}

// Start fails with ErrInvalidState, without asking HCS, when the handle has
// seen the system stop: HCS cannot start a system twice.
func (s *system) Start(ctx context.Context) error {
	if err := s.check("start"); err != nil {
		return err
	}
	if s.stopped() {
		return &hcsdriver.OpError{Op: "start", ID: s.id, Err: hcsdriver.ErrInvalidState}
	}
	if err := blocking.Call0(ctx, s.c.Start); err != nil {
		return fail("start", s.id, err)
	}
	s.mu.Lock()
	s.started = true
	s.mu.Unlock()
	return nil
}

// Shutdown asks HCS to shut the system down; hcsshim's "pending" answer is
// success.
func (s *system) Shutdown(ctx context.Context) error { return s.stop(ctx, "shutdown", s.c.Shutdown) }

// Terminate asks HCS to stop the system at once; hcsshim's "pending" answer
// is success.
func (s *system) Terminate(ctx context.Context) error { return s.stop(ctx, "terminate", s.c.Terminate) }

func (s *system) stop(ctx context.Context, op string, request func() error) error {
	if err := s.check(op); err != nil {
		return err
	}
	if s.stopped() {
		return &hcsdriver.OpError{Op: op, ID: s.id, Err: hcsdriver.ErrAlreadyStopped}
	}
	err := blocking.Call0(ctx, request)
	if err == nil {
		return nil
	}
	if err = fail(op, s.id, err); errors.Is(err, errPending) {
		return nil
	}
	return err
}

// Wait waits for the handle's watcher to see the system stop. When ctx ends
// first it returns ctx.Err(); the watcher goes on waiting until the system
// stops or the handle closes.
func (s *system) Wait(ctx context.Context) error {
	if err := s.check("wait"); err != nil {
		return err
	}
	select {
	case <-s.waited:
		if s.waitErr != nil {
			return fail("wait", s.id, s.waitErr)
		}
		return nil
	case <-ctx.Done():
		return &hcsdriver.OpError{Op: "wait", ID: s.id, Err: ctx.Err()}
	}
}

func (s *system) Properties(ctx context.Context) (hcsdriver.Info, error) {
	if err := s.check("properties"); err != nil {
		return hcsdriver.Info{}, err
	}
	props, err := blocking.Call(ctx, func() ([]hcsshim.ContainerProperties, error) {
		return hcsshim.GetContainers(hcsshim.ComputeSystemQuery{IDs: []string{s.id}})
	}, nil)
	if err != nil {
		return hcsdriver.Info{}, fail("properties", s.id, err)
	}
	if len(props) == 0 {
		return hcsdriver.Info{}, &hcsdriver.OpError{Op: "properties", ID: s.id, Err: hcsdriver.ErrNotFound}
	}
	return infoOf(props[0]), nil
}

// running reports whether the system may be running as far as this handle
// knows: not stopped, and not created by this handle and left unstarted.
func (s *system) running() bool {
	s.mu.Lock()
	started := s.started
	s.mu.Unlock()
	return started && !s.stopped()
}

// Statistics fails with ErrInvalidState, without asking HCS, when the handle
// knows the system is not running.
func (s *system) Statistics(ctx context.Context) (hcsdriver.Stats, error) {
	if err := s.check(opStats); err != nil {
		return hcsdriver.Stats{}, err
	}
	if !s.running() {
		return hcsdriver.Stats{}, &hcsdriver.OpError{Op: opStats, ID: s.id, Err: hcsdriver.ErrInvalidState}
	}
	st, err := blocking.Call(ctx, s.c.Statistics, nil)
	if err != nil {
		return hcsdriver.Stats{}, fail(opStats, s.id, err)
	}
	return statsOf(sampleOf(st), s.memoryMB), nil
}

// CreateProcess starts a process from cfg (see BuildProcess). It fails with
// ErrInvalidState, without asking HCS, when the handle knows the system is
// not running.
func (s *system) CreateProcess(ctx context.Context, cfg hcsdriver.ProcessConfig) (hcsdriver.Process, error) {
	if err := s.check(opCreateProcess); err != nil {
		return nil, err
	}
	doc, err := BuildProcess(cfg)
	if err != nil {
		return nil, &hcsdriver.OpError{Op: opCreateProcess, ID: s.id, Err: err}
	}
	if !s.running() {
		return nil, &hcsdriver.OpError{Op: opCreateProcess, ID: s.id, Err: hcsdriver.ErrInvalidState}
	}
	p, err := blocking.Call(ctx, func() (hcsshim.Process, error) { return s.c.CreateProcess(doc.hcs()) },
		func(p hcsshim.Process) { _ = p.Kill(); _ = p.Close() })
	if err != nil {
		return nil, fail(opCreateProcess, s.id, err)
	}
	return newProcess(s.id, p, true), nil
}

// OpenProcess reopens process pid. The new handle has no stdio: the pipes
// belong to the handle that created the process.
func (s *system) OpenProcess(ctx context.Context, pid int) (hcsdriver.Process, error) {
	if err := s.check(opOpenProcess); err != nil {
		return nil, err
	}
	p, err := blocking.Call(ctx, func() (hcsshim.Process, error) { return s.c.OpenProcess(pid) },
		func(p hcsshim.Process) { _ = p.Close() })
	if err != nil {
		return nil, fail(opOpenProcess, s.id, err)
	}
	return newProcess(s.id, p, false), nil
}

// Close releases the handle and ends its watcher; the system runs on. It
// waits for HCS calls in flight on the handle.
func (s *system) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.mu.Unlock()
	if err := s.c.Close(); err != nil {
		return fail("close", s.id, err)
	}
	<-s.waited
	return nil
}

// process is a handle to one process. Its one goroutine, watch, waits for
// the process to exit and ends when it does or when the handle closes.
type process struct {
	id      string // compute system id
	p       hcsshim.Process
	waited  chan struct{} // closed when p.Wait returned: exited, or handle closed
	waitErr error         // p.Wait's result; read only after waited is closed

	mu         sync.Mutex // guards the fields below
	closed     bool
	stdioTaken bool // or never to be had: not the creating handle
}

// newProcess wraps p; creator says whether this handle created the process
// and so may hand out its pipes.
func newProcess(id string, p hcsshim.Process, creator bool) *process {
	pr := &process{id: id, p: p, waited: make(chan struct{}), stdioTaken: !creator}
	go pr.watch()
	return pr
}

func (pr *process) watch() {
	pr.waitErr = pr.p.Wait()
	close(pr.waited)
}

func (pr *process) Pid() int { return pr.p.Pid() }

func (pr *process) check(op string) error {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.closed {
		return &hcsdriver.OpError{Op: op, ID: pr.id, Err: hcsdriver.ErrClosed}
	}
	return nil
}

// Stdio hands over the pipes created with the process, once, to the handle
// that created it.
func (pr *process) Stdio() (io.WriteCloser, io.ReadCloser, io.ReadCloser, error) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	switch {
	case pr.closed:
		return nil, nil, nil, &hcsdriver.OpError{Op: "stdio", ID: pr.id, Err: hcsdriver.ErrClosed}
	case pr.stdioTaken:
		return nil, nil, nil, &hcsdriver.OpError{Op: "stdio", ID: pr.id, Err: hcsdriver.ErrInvalidState}
	}
	stdin, stdout, stderr, err := pr.p.Stdio()
	if err != nil {
		return nil, nil, nil, fail("stdio", pr.id, err)
	}
	pr.stdioTaken = true
	return stdin, stdout, stderr, nil
}

// Wait waits for the handle's watcher to see the process exit. When ctx ends
// first it returns ctx.Err(); the watcher goes on waiting until the process
// exits or the handle closes.
func (pr *process) Wait(ctx context.Context) error {
	if err := pr.check("wait_process"); err != nil {
		return err
	}
	select {
	case <-pr.waited:
		if pr.waitErr != nil {
			return fail("wait_process", pr.id, pr.waitErr)
		}
		return nil
	case <-ctx.Done():
		return &hcsdriver.OpError{Op: "wait_process", ID: pr.id, Err: ctx.Err()}
	}
}

func (pr *process) ExitCode() (int, error) {
	if err := pr.check("exit_code"); err != nil {
		return -1, err
	}
	code, err := pr.p.ExitCode()
	if err != nil {
		return -1, fail("exit_code", pr.id, err)
	}
	return code, nil
}

func (pr *process) Kill(ctx context.Context) error {
	if err := pr.check(opKill); err != nil {
		return err
	}
	if err := blocking.Call0(ctx, pr.p.Kill); err != nil {
		return fail(opKill, pr.id, err)
	}
	return nil
}

func (pr *process) ResizeConsole(ctx context.Context, width, height uint16) error {
	if err := pr.check("resize_console"); err != nil {
		return err
	}
	if err := blocking.Call0(ctx, func() error { return pr.p.ResizeConsole(width, height) }); err != nil {
		return fail("resize_console", pr.id, err)
	}
	return nil
}

func (pr *process) CloseStdin(ctx context.Context) error {
	if err := pr.check("close_stdin"); err != nil {
		return err
	}
	if err := blocking.Call0(ctx, pr.p.CloseStdin); err != nil {
		return fail("close_stdin", pr.id, err)
	}
	return nil
}

// Close releases the handle and ends its watcher; the process runs on. Pipes
// handed out by Stdio stay open: their owner closes them.
func (pr *process) Close() error {
	pr.mu.Lock()
	if pr.closed {
		pr.mu.Unlock()
		return nil
	}
	pr.closed = true
	pr.mu.Unlock()
	if err := pr.p.Close(); err != nil {
		return fail("close", pr.id, err)
	}
	<-pr.waited
	return nil
}
