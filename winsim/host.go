package winsim

import (
	"cmp"
	"io"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/netdriver"
)

// Exit codes the host gives guest processes it ends.
const (
	// ExitCodeShutdown is the exit code of processes ended by a graceful
	// Shutdown of their compute system (ERROR_PROCESS_ABORTED, the code
	// Windows containers report after a stop).
	ExitCodeShutdown = 1067
	// ExitCodeKilled is the exit code of processes ended by Kill, by
	// Terminate of their compute system, or by a crash (TerminateProcess
	// with exit code 1, as HCS does).
	ExitCodeKilled = 1
)

// ExitTypeUnexpected is Info.ExitType of a compute system that crashed.
const ExitTypeUnexpected = "UnexpectedExit"

// firstPid is the first process id the host hands out; ids are multiples of
// four, as on Windows, and never reused.
const firstPid = 1000

// Host is one simulated Windows host. It owns every compute system, process,
// network and endpoint, and outlives the agents that use it through Compute
// and Network, as vmcompute and HNS outlive an agent. A Host is safe for
// concurrent use. Close stops every goroutine and timer it started.
//
// Lock order: Host.mu, then a ManualClock's lock. Pipes are closed under
// Host.mu (closing never blocks) but never read or written under it.
type Host struct {
	clock Clock
	dir   string        // "" keeps the state in memory only
	quit  chan struct{} // closed by Close
	wg    sync.WaitGroup

	mu sync.Mutex
	// guarded by mu:
	closed  bool
	systems map[string]*system
	nextPid int
	profile Profile
	faults  []*fault
	dirty   bool // the state changed since it was last saved
	saveErr error

	networks   map[string]netdriver.Network // by id
	endpoints  map[string]*endpoint         // by id
	netObjects int                          // network and endpoint ids handed out
}

// Option configures a Host.
type Option func(*Host)

// WithClock makes the host read time from c instead of the wall clock.
func WithClock(c Clock) Option { return func(h *Host) { h.clock = c } }

// WithProfile sets the host's initial latency profile (see SetLatency).
func WithProfile(p Profile) Option { return func(h *Host) { h.profile = p } }

// New returns an empty host that keeps its state in memory.
func New(opts ...Option) *Host {
	h := &Host{
		clock:     WallClock{},
		quit:      make(chan struct{}),
		systems:   make(map[string]*system),
		nextPid:   firstPid,
		networks:  make(map[string]netdriver.Network),
		endpoints: make(map[string]*endpoint),
	}
	for _, o := range opts {
		o(h)
	}
	return h
}

// system is one compute system. Every field is guarded by Host.mu.
type system struct {
	id        string
	cfg       hcsdriver.Config
	state     hcsdriver.State
	exitType  string
	createdAt time.Time
	startedAt time.Time
	stoppedAt time.Time
	stopAt    time.Time   // a graceful stop completes then
	stopTimer func() bool // cancels the graceful stop's completion
	handles   int         // open handles, across sessions
	procs     map[int]*process
	initPid   int
	// Usage of processes no longer in procs and of image loads, for
	// Statistics.
	cpuExited   time.Duration
	storageRead uint64
	commitPeak  uint64
	stopped     chan struct{} // closed when the system stops
}

// process is one guest process. Fields are guarded by Host.mu, except done
// and the pipes, which are set at creation and safe for concurrent use.
type process struct {
	sys        *system
	pid        int
	cfg        hcsdriver.ProcessConfig
	image      string
	workingSet uint64
	startedAt  time.Time
	exited     bool
	exitCode   int
	exitedAt   time.Time
	cpu        time.Duration // busy time of the guest so far
	handles    int
	done       chan struct{} // closed at exit

	// Guest ends of the pipes, closed at exit; nil when not requested.
	gIn        *io.PipeReader
	gOut, gErr *io.PipeWriter
	// Host ends, owned by the creating handle until Stdio hands them over.
	hIn        *io.PipeWriter
	hOut, hErr *io.PipeReader
	pipeOwner  *Session // the session Stdio handed them to, until exit
}

func (h *Host) newSystem(id string, cfg hcsdriver.Config, at time.Time) *system {
	return &system{
		id:        id,
		cfg:       cloneConfig(cfg),
		state:     hcsdriver.StateCreated,
		createdAt: at,
		procs:     make(map[int]*process),
		stopped:   make(chan struct{}),
	}
}

func (s *system) info() hcsdriver.Info {
	return hcsdriver.Info{
		ID:       s.id,
		Owner:    s.cfg.Owner,
		State:    s.state,
		Stopped:  s.state == hcsdriver.StateStopped,
		ExitType: s.exitType,
	}
}

// endProcessLocked makes p exit with code at time at, unless it has exited
// already. It closes the guest ends of p's pipes, so that readers see EOF and
// a guest blocked on a pipe wakes.
func (h *Host) endProcessLocked(p *process, code int, at time.Time) {
	if p.exited {
		return
	}
	p.exited, p.exitCode, p.exitedAt = true, code, at
	close(p.done)
	p.closeGuestEnds()
	if p.pipeOwner != nil {
		delete(p.pipeOwner.pipes, p)
		p.pipeOwner = nil
	}
	p.sys.cpuExited += p.cpu
	h.dropProcessLocked(p)
	h.changedLocked()
}

// dropProcessLocked forgets an exited process nobody holds a handle to.
func (h *Host) dropProcessLocked(p *process) {
	if p.exited && p.handles == 0 && p.sys.procs[p.pid] == p {
		delete(p.sys.procs, p.pid)
	}
}

// stopLocked ends every process of s with code, then, unless graceful
// stopping takes time, marks s Stopped.
func (h *Host) stopLocked(s *system, code int, exitType string, graceful bool) {
	now := h.clock.Now()
	for _, pid := range slices.Sorted(maps.Keys(s.procs)) {
		h.endProcessLocked(s.procs[pid], code, now)
	}
	if graceful && h.profile.Stopping > 0 && s.state == hcsdriver.StateRunning {
		if s.stopAt.IsZero() {
			h.scheduleStopLocked(s, now.Add(h.profile.Stopping))
		}
		h.changedLocked()
		return
	}
	h.markStoppedLocked(s, exitType, now)
}

func (h *Host) scheduleStopLocked(s *system, at time.Time) {
	s.stopAt = at
	s.stopTimer = h.clock.At(at, func() {
		h.mu.Lock()
		defer h.unlock()
		if !h.closed && s.state != hcsdriver.StateStopped && s.stopAt.Equal(at) {
			h.markStoppedLocked(s, "", at)
		}
	})
}

func (h *Host) markStoppedLocked(s *system, exitType string, at time.Time) {
	if s.stopTimer != nil {
		s.stopTimer()
		s.stopTimer = nil
	}
	s.state, s.exitType, s.stoppedAt, s.stopAt = hcsdriver.StateStopped, exitType, at, time.Time{}
	close(s.stopped)
	h.forgetIfUnusedLocked(s)
	h.changedLocked()
}

// forgetIfUnusedLocked removes a stopped system nobody holds a handle to,
// as HCS does.
func (h *Host) forgetIfUnusedLocked(s *system) {
	if s.state == hcsdriver.StateStopped && s.handles == 0 && h.systems[s.id] == s {
		delete(h.systems, s.id)
		h.changedLocked()
	}
}

// Close stops every guest, timer and pending call of the host, without
// changing its state: a host opened from a directory keeps what it last
// saved, and its guests run on when it is opened again. Calls on the host's
// sessions then fail with hcsdriver.ErrUnavailable, and pipe readers see EOF.
// Close returns the first error met while saving state, and nil when called
// again.
func (h *Host) Close() error {
	h.mu.Lock()
	if h.closed {
		h.unlock()
		return nil
	}
	h.closed = true
	close(h.quit)
	for _, s := range h.systems {
		if s.stopTimer != nil {
			s.stopTimer()
		}
		for _, p := range s.procs {
			p.closeGuestEnds()
		}
	}
	err := h.saveErr
	h.mu.Unlock()
	h.wg.Wait()
	return err
}

// closeGuestEnds closes the guest's ends of the pipes: readers of stdout and
// stderr see EOF, writers to stdin get io.ErrClosedPipe.
func (p *process) closeGuestEnds() {
	if p.gIn != nil {
		p.gIn.Close()
	}
	if p.gOut != nil {
		p.gOut.Close()
	}
	if p.gErr != nil {
		p.gErr.Close()
	}
}

// closeHostEnds closes the host's ends of the pipes, as the death of the
// process holding them would: the guest's writes then fail and its stdin
// reads see EOF.
func (p *process) closeHostEnds() {
	if p.hIn != nil {
		p.hIn.Close()
	}
	if p.hOut != nil {
		p.hOut.Close()
	}
	if p.hErr != nil {
		p.hErr.Close()
	}
}

// State is the whole host as plain data, for cmp.Diff in tests and for the
// state file.
type State struct {
	NextPid int           `json:"next_pid"`
	Systems []SystemState `json:"systems"`
	// Networks and Endpoints are sorted by name; nil when there are none.
	Networks  []netdriver.Network `json:"networks,omitempty"`
	Endpoints []EndpointState     `json:"endpoints,omitempty"`
	// NetObjects counts the network and endpoint ids handed out.
	NetObjects int `json:"net_objects,omitempty"`
}

// SystemState is one compute system as plain data.
type SystemState struct {
	ID       string           `json:"id"`
	Config   hcsdriver.Config `json:"config"`
	State    hcsdriver.State  `json:"state"`
	ExitType string           `json:"exit_type,omitempty"`
	// Handles counts open handles across sessions; a state file always
	// holds 0 here once loaded.
	Handles   int       `json:"handles"`
	CreatedAt time.Time `json:"created_at"`
	StartedAt time.Time `json:"started_at,omitzero"`
	// StopAt is when a graceful stop under way completes.
	StopAt      time.Time      `json:"stop_at,omitzero"`
	StoppedAt   time.Time      `json:"stopped_at,omitzero"`
	InitPid     int            `json:"init_pid,omitempty"`
	CPUExited   time.Duration  `json:"cpu_exited,omitempty"`
	StorageRead uint64         `json:"storage_read,omitempty"`
	CommitPeak  uint64         `json:"commit_peak,omitempty"`
	Processes   []ProcessState `json:"processes,omitempty"`
}

// ProcessState is one guest process as plain data. Exited processes are
// listed only while a handle to them is open.
type ProcessState struct {
	Pid       int                     `json:"pid"`
	Config    hcsdriver.ProcessConfig `json:"config"`
	Image     string                  `json:"image"`
	StartedAt time.Time               `json:"started_at"`
	Exited    bool                    `json:"exited,omitempty"`
	ExitCode  int                     `json:"exit_code,omitempty"`
	ExitedAt  time.Time               `json:"exited_at,omitzero"`
	Handles   int                     `json:"handles"`
	CPU       time.Duration           `json:"cpu,omitempty"`
}

// Snapshot returns a copy of the host's whole state, systems sorted by id,
// processes by pid, networks and endpoints by name.
func (h *Host) Snapshot() State {
	h.mu.Lock()
	defer h.unlock()
	return h.stateLocked()
}

func (h *Host) stateLocked() State {
	st := State{NextPid: h.nextPid, Systems: []SystemState{}}
	for _, s := range h.systems {
		ss := SystemState{
			ID: s.id, Config: cloneConfig(s.cfg), State: s.state, ExitType: s.exitType,
			Handles: s.handles, CreatedAt: s.createdAt, StartedAt: s.startedAt,
			StopAt: s.stopAt, StoppedAt: s.stoppedAt, InitPid: s.initPid,
			CPUExited: s.cpuExited, StorageRead: s.storageRead, CommitPeak: s.commitPeak,
		}
		for _, p := range s.procs {
			ss.Processes = append(ss.Processes, ProcessState{
				Pid: p.pid, Config: cloneProcessConfig(p.cfg), Image: p.image,
				StartedAt: p.startedAt, Exited: p.exited, ExitCode: p.exitCode,
				ExitedAt: p.exitedAt, Handles: p.handles, CPU: p.cpu,
			})
		}
		slices.SortFunc(ss.Processes, func(a, b ProcessState) int { return cmp.Compare(a.Pid, b.Pid) })
		st.Systems = append(st.Systems, ss)
	}
	slices.SortFunc(st.Systems, func(a, b SystemState) int { return cmp.Compare(a.ID, b.ID) })
	h.netStateLocked(&st)
	return st
}

func cloneConfig(c hcsdriver.Config) hcsdriver.Config {
	c.Layers = slices.Clone(c.Layers)
	c.Endpoints = slices.Clone(c.Endpoints)
	c.Mounts = slices.Clone(c.Mounts)
	c.DNSSearchList = slices.Clone(c.DNSSearchList)
	return c
}

func cloneProcessConfig(c hcsdriver.ProcessConfig) hcsdriver.ProcessConfig {
	c.Environment = maps.Clone(c.Environment)
	return c
}
