package winsim

import (
	"cmp"
	"context"
	"io"
	"slices"

	"github.com/berthhq/berth/hcsdriver"
)

// Session is one client of the host's compute service, as one agent process
// is: every handle it opens belongs to it. It implements hcsdriver.Driver.
type Session struct {
	h *Host
	// guarded by h.mu:
	abandoned bool
	systems   map[*systemHandle]struct{}
	procs     map[*processHandle]struct{}
	pipes     map[*process]struct{} // running processes whose pipes Stdio handed to this session
}

var (
	_ hcsdriver.Driver  = (*Session)(nil)
	_ hcsdriver.System  = (*systemHandle)(nil)
	_ hcsdriver.Process = (*processHandle)(nil)
)

// Compute returns a new session on the host.
func (h *Host) Compute() *Session {
	return &Session{
		h:       h,
		systems: make(map[*systemHandle]struct{}),
		procs:   make(map[*processHandle]struct{}),
		pipes:   make(map[*process]struct{}),
	}
}

// Abandon models the death of the agent process that holds the session: every
// handle it holds is closed, and so are the pipes it was given, with no other
// effect on the host. Compute systems keep running; a stopped one that no
// other session holds is removed. Calls on the session and its handles then
// fail with hcsdriver.ErrClosed. Abandon is idempotent.
func (s *Session) Abandon() {
	h := s.h
	h.mu.Lock()
	defer h.unlock()
	s.abandoned = true
	for ph := range s.procs {
		ph.closeLocked()
	}
	for p := range s.pipes {
		p.closeHostEnds()
	}
	clear(s.pipes)
	for sh := range s.systems {
		sh.closeLocked()
	}
}

func (s *Session) host() *Host { return s.h }

func (s *Session) fail(op, id string, err error) error {
	if err == errHostClosed {
		err = hcsdriver.ErrUnavailable
	}
	return &hcsdriver.OpError{Op: op, ID: id, Err: err}
}

func (s *Session) usableLocked(op, id string) error {
	if err := s.h.aliveLocked(op, id); err != nil {
		return err
	}
	if s.abandoned {
		return &hcsdriver.OpError{Op: op, ID: id, Err: hcsdriver.ErrClosed}
	}
	return nil
}

// Create creates compute system id in state Created and returns a handle to
// it, attaching the endpoints cfg.Endpoints names. It fails with
// hcsdriver.ErrAlreadyExists when the id is taken, hcsdriver.ErrNotFound
// when no endpoint has one of the ids, and hcsdriver.ErrInvalidState when
// one of the endpoints was attached to a compute system before (see
// HCN).
func (s *Session) Create(ctx context.Context, id string, cfg hcsdriver.Config) (hcsdriver.System, error) {
	return do(ctx, s, OpCreate, id, func() (hcsdriver.System, error) {
		h := s.h
		if _, ok := h.systems[id]; ok {
			return nil, &hcsdriver.OpError{Op: OpCreate, ID: id, Err: hcsdriver.ErrAlreadyExists}
		}
		if err := h.attachEndpointsLocked(id, cfg.Endpoints); err != nil {
			return nil, &hcsdriver.OpError{Op: OpCreate, ID: id, Err: err}
		}
		sys := h.newSystem(id, cfg, h.clock.Now())
		h.systems[id] = sys
		sh := s.attachLocked(sys)
		h.changedLocked()
		return sh, nil
	}, closeLate)
}

// Open returns a new handle to compute system id, in whatever state it is.
func (s *Session) Open(ctx context.Context, id string) (hcsdriver.System, error) {
	return do(ctx, s, OpOpen, id, func() (hcsdriver.System, error) {
		h := s.h
		sys, ok := h.systems[id]
		if !ok {
			return nil, &hcsdriver.OpError{Op: OpOpen, ID: id, Err: hcsdriver.ErrNotFound}
		}
		return s.attachLocked(sys), nil
	}, closeLate)
}

func closeLate(sys hcsdriver.System) { sys.Close() }

// List returns the compute systems tagged with owner ("" for all), sorted by
// id, stopped ones still held by a handle included.
func (s *Session) List(ctx context.Context, owner string) ([]hcsdriver.Info, error) {
	return do(ctx, s, OpList, owner, func() ([]hcsdriver.Info, error) {
		infos := []hcsdriver.Info{}
		for _, sys := range s.h.systems {
			if owner == "" || sys.cfg.Owner == owner {
				infos = append(infos, sys.info())
			}
		}
		slices.SortFunc(infos, func(a, b hcsdriver.Info) int { return cmp.Compare(a.ID, b.ID) })
		return infos, nil
	}, nil)
}

func (h *Host) aliveLocked(op, id string) error {
	if h.closed {
		return &hcsdriver.OpError{Op: op, ID: id, Err: hcsdriver.ErrUnavailable}
	}
	return nil
}

// attachLocked returns a new handle of s on sys. A session abandoned while
// the call was under way gets a handle that is closed already.
func (s *Session) attachLocked(sys *system) *systemHandle {
	sh := &systemHandle{s: s, sys: sys, done: make(chan struct{})}
	if s.abandoned {
		sh.closed = true
		close(sh.done)
		return sh
	}
	sys.handles++
	s.systems[sh] = struct{}{}
	return sh
}

// systemHandle is a handle to one compute system.
type systemHandle struct {
	s    *Session
	sys  *system
	done chan struct{} // closed by Close
	// guarded by h.mu:
	closed bool
}

func (sh *systemHandle) ID() string { return sh.sys.id }

// checkLocked fails with ErrUnavailable on a closed host and ErrClosed on a
// closed handle.
func (sh *systemHandle) checkLocked(op string) error {
	if err := sh.s.h.aliveLocked(op, sh.sys.id); err != nil {
		return err
	}
	if sh.closed {
		return sh.opErr(op, hcsdriver.ErrClosed)
	}
	return nil
}

// call runs op through latency and faults after checking the handle, then
// apply under Host.mu.
func (sh *systemHandle) call(ctx context.Context, op string, apply func() error) error {
	_, err := handleCall(ctx, sh, op, func() (struct{}, error) { return struct{}{}, apply() }, nil)
	return err
}

// handleCall is call for operations with a result; late receives a result
// the caller stopped waiting for.
func handleCall[T any](ctx context.Context, sh *systemHandle, op string, apply func() (T, error), late func(T)) (T, error) {
	h := sh.s.h
	h.mu.Lock()
	err := sh.checkLocked(op)
	h.unlock()
	if err != nil {
		var zero T
		return zero, err
	}
	return do(ctx, sh.s, op, sh.sys.id, apply, late)
}

func (sh *systemHandle) opErr(op string, err error) error {
	return &hcsdriver.OpError{Op: op, ID: sh.sys.id, Err: err}
}

// Start boots a Created system.
func (sh *systemHandle) Start(ctx context.Context) error {
	return sh.call(ctx, OpStart, func() error {
		sys, h := sh.sys, sh.s.h
		if sys.state != hcsdriver.StateCreated {
			return sh.opErr(OpStart, hcsdriver.ErrInvalidState)
		}
		sys.state, sys.startedAt = hcsdriver.StateRunning, h.clock.Now()
		sys.storageRead += siloBootRead
		sys.commitPeak = max(sys.commitPeak, commitOf(siloWorkingSet))
		h.changedLocked()
		return nil
	})
}

// Shutdown ends every process with ExitCodeShutdown; the system reaches
// Stopped after Profile.Stopping. It fails with ErrAlreadyStopped on a stopped
// system, and returns nil when a shutdown is already under way.
func (sh *systemHandle) Shutdown(ctx context.Context) error {
	return sh.call(ctx, OpShutdown, func() error {
		if sh.sys.state == hcsdriver.StateStopped {
			return sh.opErr(OpShutdown, hcsdriver.ErrAlreadyStopped)
		}
		sh.s.h.stopLocked(sh.sys, ExitCodeShutdown, "", true)
		return nil
	})
}

// Terminate ends every process with ExitCodeKilled and stops the system at
// once. It fails with ErrAlreadyStopped on a stopped system.
func (sh *systemHandle) Terminate(ctx context.Context) error {
	return sh.call(ctx, OpTerminate, func() error {
		if sh.sys.state == hcsdriver.StateStopped {
			return sh.opErr(OpTerminate, hcsdriver.ErrAlreadyStopped)
		}
		sh.s.h.stopLocked(sh.sys, ExitCodeKilled, "", false)
		return nil
	})
}

// Wait blocks until the system has stopped. It returns an ErrUnexpectedExit
// error if the system crashed (Host.CrashSystem), ErrClosed if the handle is
// closed, ErrUnavailable if the host closes, or ctx.Err().
func (sh *systemHandle) Wait(ctx context.Context) error {
	h := sh.s.h
	h.mu.Lock()
	err := sh.checkLocked("wait")
	h.unlock()
	if err != nil {
		return err
	}
	select {
	case <-sh.sys.stopped:
		h.mu.Lock()
		crashed := sh.sys.exitType == ExitTypeUnexpected
		h.unlock()
		if crashed {
			return sh.opErr("wait", hcsdriver.ErrUnexpectedExit)
		}
		return nil
	case <-sh.done:
		return sh.opErr("wait", hcsdriver.ErrClosed)
	case <-h.quit:
		return sh.opErr("wait", hcsdriver.ErrUnavailable)
	case <-ctx.Done():
		return sh.opErr("wait", ctx.Err())
	}
}

// Properties reports the system's state.
func (sh *systemHandle) Properties(ctx context.Context) (hcsdriver.Info, error) {
	h := sh.s.h
	h.mu.Lock()
	defer h.unlock()
	if err := sh.checkLocked("properties"); err != nil {
		return hcsdriver.Info{}, err
	}
	return sh.sys.info(), nil
}

// Statistics reports simulated resource usage of a running system.
func (sh *systemHandle) Statistics(ctx context.Context) (hcsdriver.Stats, error) {
	return handleCall(ctx, sh, OpStats, func() (hcsdriver.Stats, error) {
		if sh.sys.state != hcsdriver.StateRunning {
			return hcsdriver.Stats{}, sh.opErr(OpStats, hcsdriver.ErrInvalidState)
		}
		return sh.s.h.statsLocked(sh.sys), nil
	}, nil)
}

// CreateProcess starts a guest process (see the package documentation for
// the command lines the guest understands). It fails with ErrInvalidState
// unless the system is running and not stopping, and with ErrNotFound when
// the executable does not exist.
func (sh *systemHandle) CreateProcess(ctx context.Context, cfg hcsdriver.ProcessConfig) (hcsdriver.Process, error) {
	return handleCall(ctx, sh, OpCreateProcess, func() (hcsdriver.Process, error) {
		return sh.s.h.createProcessLocked(sh, cfg)
	}, func(p hcsdriver.Process) { p.Close() })
}

// OpenProcess returns a new handle to a running process. The handle has no
// stdio: the pipes belong to the handle that created the process.
func (sh *systemHandle) OpenProcess(ctx context.Context, pid int) (hcsdriver.Process, error) {
	h := sh.s.h
	h.mu.Lock()
	defer h.unlock()
	if err := sh.checkLocked("open_process"); err != nil {
		return nil, err
	}
	p, ok := sh.sys.procs[pid]
	if !ok || p.exited {
		return nil, sh.opErr("open_process", hcsdriver.ErrNotFound)
	}
	return sh.s.attachProcessLocked(p, false), nil
}

// Close releases the handle. The system keeps running; a stopped system is
// removed from the host when its last handle closes.
func (sh *systemHandle) Close() error {
	h := sh.s.h
	h.mu.Lock()
	defer h.unlock()
	sh.closeLocked()
	return nil
}

func (sh *systemHandle) closeLocked() {
	if sh.closed {
		return
	}
	sh.closed = true
	close(sh.done)
	delete(sh.s.systems, sh)
	sh.sys.handles--
	if !sh.s.h.closed {
		sh.s.h.forgetIfUnusedLocked(sh.sys)
	}
}

func (s *Session) attachProcessLocked(p *process, creator bool) *processHandle {
	ph := &processHandle{s: s, p: p, creator: creator, done: make(chan struct{})}
	if s.abandoned {
		ph.closed = true
		close(ph.done)
		return ph
	}
	p.handles++
	s.procs[ph] = struct{}{}
	return ph
}

// processHandle is a handle to one guest process.
type processHandle struct {
	s       *Session
	p       *process
	creator bool          // the creating handle owns the pipes
	done    chan struct{} // closed by Close
	// guarded by h.mu:
	closed     bool
	stdioTaken bool
}

func (ph *processHandle) Pid() int { return ph.p.pid }

func (ph *processHandle) opErr(op string, err error) error {
	return &hcsdriver.OpError{Op: op, ID: ph.p.sys.id, Err: err}
}

func (ph *processHandle) checkLocked(op string) error {
	if err := ph.s.h.aliveLocked(op, ph.p.sys.id); err != nil {
		return err
	}
	if ph.closed {
		return ph.opErr(op, hcsdriver.ErrClosed)
	}
	return nil
}

// Stdio hands over the pipes requested at creation, once, to the creating
// handle; other calls fail with ErrInvalidState. With EmulateConsole stderr
// is merged into stdout and returned as nil.
func (ph *processHandle) Stdio() (io.WriteCloser, io.ReadCloser, io.ReadCloser, error) {
	h := ph.s.h
	h.mu.Lock()
	defer h.unlock()
	if err := ph.checkLocked("stdio"); err != nil {
		return nil, nil, nil, err
	}
	if !ph.creator || ph.stdioTaken {
		return nil, nil, nil, ph.opErr("stdio", hcsdriver.ErrInvalidState)
	}
	ph.stdioTaken = true
	if !ph.p.exited {
		ph.p.pipeOwner = ph.s
		ph.s.pipes[ph.p] = struct{}{}
	}
	var (
		in       io.WriteCloser
		out, err io.ReadCloser
	)
	if p := ph.p; p.hIn != nil {
		in = p.hIn
	}
	if p := ph.p; p.hOut != nil {
		out = p.hOut
	}
	if p := ph.p; p.hErr != nil {
		err = p.hErr
	}
	return in, out, err, nil
}

// Wait blocks until the process has exited.
func (ph *processHandle) Wait(ctx context.Context) error {
	h := ph.s.h
	h.mu.Lock()
	err := ph.checkLocked("wait_process")
	h.unlock()
	if err != nil {
		return err
	}
	select {
	case <-ph.p.done:
		return nil
	case <-ph.done:
		return ph.opErr("wait_process", hcsdriver.ErrClosed)
	case <-h.quit:
		return ph.opErr("wait_process", hcsdriver.ErrUnavailable)
	case <-ctx.Done():
		return ph.opErr("wait_process", ctx.Err())
	}
}

// ExitCode returns the exit code; before exit it fails with ErrInvalidState.
func (ph *processHandle) ExitCode() (int, error) {
	h := ph.s.h
	h.mu.Lock()
	defer h.unlock()
	if err := ph.checkLocked("exit_code"); err != nil {
		return -1, err
	}
	if !ph.p.exited {
		return -1, ph.opErr("exit_code", hcsdriver.ErrInvalidState)
	}
	return ph.p.exitCode, nil
}

// Kill ends the process with ExitCodeKilled.
func (ph *processHandle) Kill(ctx context.Context) error {
	h := ph.s.h
	h.mu.Lock()
	defer h.unlock()
	if err := ph.checkLocked("kill"); err != nil {
		return err
	}
	if ph.p.exited {
		return ph.opErr("kill", hcsdriver.ErrAlreadyStopped)
	}
	h.endProcessLocked(ph.p, ExitCodeKilled, h.clock.Now())
	return nil
}

// ResizeConsole records a new console size. It fails with ErrInvalidState
// for a process without EmulateConsole and with ErrAlreadyStopped after exit.
func (ph *processHandle) ResizeConsole(ctx context.Context, width, height uint16) error {
	h := ph.s.h
	h.mu.Lock()
	defer h.unlock()
	if err := ph.checkLocked("resize_console"); err != nil {
		return err
	}
	switch {
	case ph.p.exited:
		return ph.opErr("resize_console", hcsdriver.ErrAlreadyStopped)
	case !ph.p.cfg.EmulateConsole:
		return ph.opErr("resize_console", hcsdriver.ErrInvalidState)
	}
	ph.p.cfg.ConsoleWidth, ph.p.cfg.ConsoleHeight = width, height
	h.changedLocked()
	return nil
}

// CloseStdin closes the process's standard input; the guest reads EOF.
func (ph *processHandle) CloseStdin(ctx context.Context) error {
	h := ph.s.h
	h.mu.Lock()
	defer h.unlock()
	if err := ph.checkLocked("close_stdin"); err != nil {
		return err
	}
	if ph.p.hIn != nil {
		ph.p.hIn.Close()
	}
	return nil
}

// Close releases the handle without killing the process. Pipes not handed
// over by Stdio are closed.
func (ph *processHandle) Close() error {
	h := ph.s.h
	h.mu.Lock()
	defer h.unlock()
	ph.closeLocked()
	return nil
}

func (ph *processHandle) closeLocked() {
	if ph.closed {
		return
	}
	ph.closed = true
	close(ph.done)
	delete(ph.s.procs, ph)
	if ph.creator && !ph.stdioTaken {
		ph.p.closeHostEnds()
	}
	ph.p.handles--
	if !ph.s.h.closed {
		ph.s.h.dropProcessLocked(ph.p)
	}
}
