package winsim

import (
	"fmt"

	"github.com/berthhq/berth/hcsdriver"
)

// The methods here play the guest and the host's misfortunes in tests. Each
// fails with an error matching hcsdriver.ErrNotFound when the system or
// process does not exist (or has exited), and hcsdriver.ErrUnavailable once
// the host is closed.

// CrashSystem makes a running or created system stop unexpectedly: its
// processes end with ExitCodeKilled, its ExitType becomes
// ExitTypeUnexpected, and Wait returns an hcsdriver.ErrUnexpectedExit error.
// It fails with hcsdriver.ErrAlreadyStopped on a stopped system.
func (h *Host) CrashSystem(id string) error {
	h.mu.Lock()
	defer h.unlock()
	s, err := h.lookupLocked("crash", id)
	if err != nil {
		return err
	}
	if s.state == hcsdriver.StateStopped {
		return &hcsdriver.OpError{Op: "crash", ID: id, Err: hcsdriver.ErrAlreadyStopped}
	}
	h.stopLocked(s, ExitCodeKilled, ExitTypeUnexpected, false)
	return nil
}

// ExitProcess makes process pid of system id exit with code, as if the
// program had ended by itself. The system keeps running.
func (h *Host) ExitProcess(id string, pid, code int) error {
	h.mu.Lock()
	defer h.unlock()
	s, err := h.lookupLocked("exit_process", id)
	if err != nil {
		return err
	}
	return h.exitProcessLocked(s, pid, code)
}

// ExitInit makes the init process of system id (the first process created
// in it) exit with code. The silo keeps running, as on Windows.
func (h *Host) ExitInit(id string, code int) error {
	h.mu.Lock()
	defer h.unlock()
	s, err := h.lookupLocked("exit_process", id)
	if err != nil {
		return err
	}
	return h.exitProcessLocked(s, s.initPid, code)
}

func (h *Host) exitProcessLocked(s *system, pid, code int) error {
	p, ok := s.procs[pid]
	if !ok || p.exited {
		return &hcsdriver.OpError{Op: "exit_process", ID: s.id, Err: fmt.Errorf("pid %d: %w", pid, hcsdriver.ErrNotFound)}
	}
	h.endProcessLocked(p, code, h.clock.Now())
	return nil
}

func (h *Host) lookupLocked(op, id string) (*system, error) {
	if err := h.aliveLocked(op, id); err != nil {
		return nil, err
	}
	s, ok := h.systems[id]
	if !ok {
		return nil, &hcsdriver.OpError{Op: op, ID: id, Err: hcsdriver.ErrNotFound}
	}
	return s, nil
}
