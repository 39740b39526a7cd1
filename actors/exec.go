package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
)

// ExecAttacher connects the stdio of exec processes to their clients
// (control.ExecHub, through a small adapter in the agent's wiring).
type ExecAttacher interface {
	// Attach serves p's stdio as exec session id. The channel yields how the
	// session ended, once; by then p is closed. On error p stays the
	// caller's.
	Attach(ctx context.Context, id string, p hcsdriver.Process, tty bool) (<-chan events.ExecExit, error)
	// Serves reports whether exec session id is attached and running.
	Serves(id string) bool
}

// DefaultMaxExecs is the exec sessions a container may run at once when
// Config.MaxExecs is 0.
const DefaultMaxExecs = 8

// execRun is an exec process the container actor started.
type execRun struct {
	id   string
	done <-chan events.ExecExit
}

// execEnded reports that an exec session ended.
type execEnded struct{ x events.ExecExit }

// applied hands the container actor its own events journaled outside an
// operation.
type applied struct{ evs []events.Event }

// planExec checks an exec against the node's configuration, the
// container's phase and its running sessions.
func (c *containerActor) planExec(e *opEnv, phase events.Phase) (func(context.Context) opResult, error) {
	switch {
	case c.n.cfg.Exec == nil:
		return nil, fmt.Errorf("%w: exec is turned off on node %s (berthd --exec=false)", events.ErrConflict, c.n.cfg.Node)
	case phase != events.PhaseRunning || c.sys == nil:
		return nil, fmt.Errorf("%w: container %s is %s: exec needs a running container", events.ErrWrongPhase, c.id, phase)
	case len(c.execs) >= c.n.cfg.MaxExecs:
		return nil, fmt.Errorf("%w: container %s runs %d exec sessions, the most it may (berthd --exec-max-per-container)", events.ErrConflict, c.id, len(c.execs))
	}
	return e.exec, nil
}

// exec starts the process of an exec command, hands its stdio to the
// attacher and records exec_started with the command's outcome.
func (e *opEnv) exec(ctx context.Context) opResult {
	spec := e.cmd.Exec
	cfg := hcsdriver.ProcessConfig{
		CommandLine: hcsdriver.CommandLine(spec.Command), User: spec.User, WorkingDirectory: spec.Workdir,
		Environment: spec.Env, Stdin: spec.Stdin, Stdout: true, Stderr: !spec.TTY, EmulateConsole: spec.TTY,
	}
	if spec.TTY {
		cfg.ConsoleWidth, cfg.ConsoleHeight = spec.Width, spec.Height
		if cfg.ConsoleWidth == 0 || cfg.ConsoleHeight == 0 {
			cfg.ConsoleWidth, cfg.ConsoleHeight = 80, 25
		}
	}
	var p hcsdriver.Process
	err := e.n.hostCall(ctx, "container.exec", func() (err error) { p, err = e.sys.CreateProcess(ctx, cfg); return err })
	switch {
	case errors.Is(err, hcsdriver.ErrNotFound):
		return e.finish(ctx, nil, nil, nil, fmt.Errorf("%w: exec.command: %q cannot be run in container %s: %v", events.ErrInvalid, cfg.CommandLine, e.id, err))
	case err != nil:
		return e.finish(ctx, nil, nil, nil, e.hostErr("exec in", err))
	}
	done, err := e.n.cfg.Exec.Attach(ctx, e.cmd.ID, p, spec.TTY)
	if err != nil {
		e.killExec(p)
		return e.finish(ctx, nil, nil, nil, fmt.Errorf("exec in %s: %w", e.id, err))
	}
	started := e.event(events.ContainerExecStarted, events.ExecStartedData{Exec: e.cmd.ID, Command: spec.Command, Pid: p.Pid(), TTY: spec.TTY})
	r := e.finish(ctx, nil, []events.Event{started}, events.ExecResult{Exec: e.cmd.ID, Container: e.id, Pid: p.Pid()}, nil)
	if len(r.evs) == 0 { // not recorded: the client is told 503 and gets no session
		e.killExec(p)
	}
	r.exec = &execRun{id: e.cmd.ID, done: done}
	return r
}

// killExec kills an exec process whose session is not served.
func (e *opEnv) killExec(p hcsdriver.Process) {
	ctx, cancel := context.WithTimeout(e.n.ctx, 30*time.Second)
	defer cancel()
	_ = p.Kill(ctx)
	_ = p.Close()
}

// watchExec tracks a started exec session until it ends.
func (c *containerActor) watchExec(ctx actor.Context, x *execRun) {
	if c.execs == nil {
		c.execs = map[string]bool{}
	}
	c.execs[x.id] = true
	self, n := ctx.Self(), c.n
	n.goOwned(func() {
		select {
		case end, ok := <-x.done:
			if ok {
				n.sys.Root.Send(self, &execEnded{x: end})
			}
		case <-n.ctx.Done():
		}
	})
}

// execEnded records the end of an exec session.
func (c *containerActor) execEnded(ctx actor.Context, m *execEnded) {
	delete(c.execs, m.x.Exec)
	self, n := ctx.Self(), c.n
	ev := events.NewEvent(n.cfg.Node, events.ContainerExecExited, c.id, m.x.Exec, m.x)
	n.goOwned(func() {
		evs, err := n.cfg.Journal.Append(n.ctx, ev)
		if err != nil {
			n.cfg.Logger.Warn().Err(err).Str("container", c.id).Str("exec", m.x.Exec).Msg("exec exit not recorded")
			return
		}
		n.sys.Root.Send(self, &applied{evs: evs})
	})
}

// endOrphanExecs kills the exec processes the fold says are running but
// no session serves, after an agent restart: their clients' streams ended
// with the old agent, and the platform cannot hand an exec's pipes to a new
// one. Each gets exec_exited with reason agent_stopped. (An actor rebuilt
// after a panic finds its sessions still served and leaves them.)
func (e *opEnv) endOrphanExecs(ctx context.Context, r *opResult) {
	for id, pid := range e.rec.Execs {
		if e.n.cfg.Exec != nil && e.n.cfg.Exec.Serves(id) {
			continue
		}
		x := events.ExecExit{Exec: id, Reason: events.ReasonAgentStopped, Message: "the agent restarted; the process had ended"}
		if code, killed := e.killOrphan(ctx, pid); killed {
			x.Code = code
			x.Message = "the agent restarted; an exec's stdio cannot be reattached, so its process was killed"
		}
		if err := e.record(ctx, r, events.NewEvent(e.n.cfg.Node, events.ContainerExecExited, e.id, id, x)); err != nil {
			e.n.cfg.Logger.Warn().Err(err).Str("container", e.id).Str("exec", id).Msg("exec exit not recorded")
		}
	}
}

// killOrphan kills process pid of the container and waits for it. It
// reports false when the process had already ended; the code is nil when
// the platform did not report it.
func (e *opEnv) killOrphan(ctx context.Context, pid int) (code *int, killed bool) {
	p, err := e.sys.OpenProcess(ctx, pid)
	if err != nil {
		return nil, false
	}
	defer p.Close()
	if err := p.Kill(ctx); err != nil {
		return nil, false
	}
	if p.Wait(ctx) == nil {
		if c, err := p.ExitCode(); err == nil {
			code = &c
		}
	}
	return code, true
}
