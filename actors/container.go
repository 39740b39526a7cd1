package actors

import (
	"context"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
)

// containerActor owns one container: its record, its compute system handle
// and its init process. All fields are touched only on the actor's
// goroutine; operations get copies.
type containerActor struct {
	n  *Node
	id string

	ready    bool              // the record has arrived from the node
	rec      *events.Container // nil while the container does not exist
	received uint64            // commands received from the node

	queue   []events.Command
	busy    uint64 // id of the operation in flight, 0 when idle
	busyOp  string
	lastOp  uint64
	urgent  *events.Command // a kill waiting for the operation in flight
	stopEnv *opEnv          // the stop in flight, which a kill can escalate

	early   []any           // queries that arrived before the record
	actions []*reconcileMsg // reconcile actions queued, in queue order

	sys       hcsdriver.System
	proc      hcsdriver.Process
	initCode  *int // exit code of the init process, once it has ended
	initEnded bool
	endLife   context.CancelFunc // stops the init watcher
	waiters   []chan result[events.Exit]
	execs     map[string]bool // exec sessions running
}

func newContainer(n *Node, id string) actor.Actor { return &containerActor{n: n, id: id} }

// receiveHook, when set by a test, runs before each message a container
// actor, or the network or image actor (container ""), handles.
var receiveHook atomic.Pointer[func(container string, msg any)]

func (c *containerActor) Receive(ctx actor.Context) {
	if hook := receiveHook.Load(); hook != nil {
		(*hook)(c.id, ctx.Message())
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		// Fetch the record from the fold: on first spawn and after a panic
		// alike, the fold is the truth.
		ctx.Request(ctx.Parent(), &recordReq{id: c.id})
	case *recordRes:
		c.ready, c.rec = true, m.rec
		if c.rec != nil && c.sys == nil && c.busy == 0 && c.n.reconciled.Load() {
			// Rebuilt after a panic: the old actor's handles are closed.
			c.reconcileFirst(&reconcileMsg{})
		}
		for _, r := range c.early {
			c.request(r)
		}
		c.early = nil
		c.pump(ctx)
	case *reconcileMsg:
		c.reconcileFirst(m)
		c.pump(ctx)
	case *cmdMsg:
		c.received++
		c.enqueue(ctx, m.cmd)
	case *opDone:
		c.done(ctx, m)
	case *initExited:
		if m.proc != c.proc {
			return // a watcher of an earlier process
		}
		// Reap before anything queued, unless an operation is in flight
		// (a stop or kill reads the code itself; reap then finds the
		// container exited and does nothing).
		c.initCode, c.initEnded = m.code, true
		c.queue = append([]events.Command{{Verb: opReap}}, c.queue...)
		c.pump(ctx)
	case *execEnded:
		c.execEnded(ctx, m)
	case *applied:
		for i := range m.evs {
			c.apply(&m.evs[i])
		}
	case *statsReq, *waitReq:
		if !c.ready {
			c.early = append(c.early, m)
			return
		}
		c.request(m)
	case *actor.Stopping:
		c.endWatch()
		if c.sys != nil {
			_ = c.sys.Close() // the system keeps running; a later agent reopens it
		}
		for _, w := range c.waiters {
			w <- result[events.Exit]{err: fmt.Errorf("%w: agent shutting down", events.ErrUnavailable)}
		}
	}
}

// Internal operations share the command queue so that they run in order
// with commands; they carry no command id and record no outcome.
const (
	opReconcile = "_reconcile" // carry out a reconcile action (Node.Reconcile)
	opReap      = "_reap"      // the init process exited: shut the silo down, record the exit
)

// reconcileFirst queues a reconcile action ahead of every command: the
// container must agree with the host before it takes commands. A message
// without done (an actor rebuilt after a panic) plans its own action.
func (c *containerActor) reconcileFirst(m *reconcileMsg) {
	c.actions = append([]*reconcileMsg{m}, c.actions...)
	c.queue = append([]events.Command{{Verb: opReconcile}}, c.queue...)
}

func (c *containerActor) enqueue(ctx actor.Context, cmd events.Command) {
	if cmd.Verb == events.VerbKill && c.busy != 0 && c.urgent == nil {
		switch c.busyOp {
		case events.VerbCreate, events.VerbRun, events.VerbStart, opReconcile:
			c.urgent = &cmd // applied as soon as the operation returns
			return
		case events.VerbStop:
			// Escalate the graceful stop in flight now.
			c.stopEnv.escalate()
			cmd.Force = true // marks a kill absorbed by the stop
			c.urgent = &cmd
			return
		}
	}
	c.queue = append(c.queue, cmd)
	c.pump(ctx)
}

// pump starts the next operation if none is in flight.
func (c *containerActor) pump(ctx actor.Context) {
	if !c.ready || c.busy != 0 {
		return
	}
	var cmd events.Command
	switch {
	case c.urgent != nil:
		cmd, c.urgent = *c.urgent, nil
	case len(c.queue) > 0:
		cmd, c.queue = c.queue[0], c.queue[1:]
	default:
		if c.rec == nil && c.received > 0 {
			ctx.Send(ctx.Parent(), &retired{id: c.id, received: c.received})
		}
		return
	}
	env := c.env(cmd)
	run, err := c.plan(env)
	if err != nil {
		run = func(ctx context.Context) opResult { return env.finish(ctx, nil, nil, nil, err) }
	}
	c.lastOp++
	c.busy, c.busyOp = c.lastOp, cmd.Verb
	if cmd.Verb == events.VerbStop {
		c.stopEnv = env
	}
	op, self, n := c.busy, ctx.Self(), c.n
	n.goOwned(func() { n.sys.Root.Send(self, &opDone{op: op, res: run(n.ctx)}) })
}

func (c *containerActor) env(cmd events.Command) *opEnv {
	e := &opEnv{n: c.n, id: c.id, cmd: cmd, sys: c.sys, proc: c.proc, initCode: c.initCode}
	if c.rec != nil {
		e.rec = *c.rec.Clone() // the operation's goroutine reads it while the actor applies events
	}
	return e
}

// plan checks the verb against the phase and picks the operation.
func (c *containerActor) plan(e *opEnv) (func(context.Context) opResult, error) {
	cmd, phase := e.cmd, events.Phase("")
	if c.rec != nil {
		phase = c.rec.Phase
	}
	wrong := func(format string, a ...any) error {
		return fmt.Errorf("%w: container %s is %s: %s", events.ErrWrongPhase, c.id, phase, fmt.Sprintf(format, a...))
	}
	switch cmd.Verb {
	case opReconcile:
		m := c.actions[0]
		c.actions = c.actions[1:]
		var a *events.Action
		if m.done != nil {
			a = &m.action
		}
		return func(ctx context.Context) opResult {
			r, err := e.reconcile(ctx, a)
			switch {
			case m.done != nil:
				m.done <- err // Reconcile logs it
			case err != nil:
				c.n.cfg.Logger.Warn().Err(err).Str("container", e.id).Msg("container not reconciled")
			}
			return r
		}, nil
	case opReap:
		if phase != events.PhaseRunning || !c.initEnded {
			return e.nothing, nil
		}
		return e.reap, nil
	case events.VerbCreate, events.VerbRun:
		if phase != "" && phase != events.PhaseFailed {
			return nil, fmt.Errorf("%w: container %s already exists (%s)", events.ErrConflict, c.id, phase)
		}
		if cmd.Verb == events.VerbRun {
			return e.run, nil
		}
		return e.create, nil
	}
	if phase == "" {
		return nil, notFound(c.id)
	}
	switch cmd.Verb {
	case events.VerbStart:
		switch phase {
		case events.PhaseCreated:
			return e.start, nil
		case events.PhaseRunning:
			return nil, wrong("already running")
		case events.PhaseExited:
			return nil, wrong("remove it and run it again")
		}
		return nil, wrong("only a created container can be started")
	case events.VerbStop:
		switch phase {
		case events.PhaseRunning, events.PhaseStopping:
			return e.stop, nil
		case events.PhaseCreated, events.PhaseExited, events.PhaseFailed:
			return e.noop, nil // stopping what does not run succeeds, as in docker
		}
		return nil, wrong("it cannot be stopped now")
	case events.VerbKill:
		switch {
		case cmd.Force: // absorbed by a stop in flight, which it escalated
			return e.noop, nil
		case phase == events.PhaseRunning || phase == events.PhaseStopping:
			return e.kill, nil
		}
		return nil, wrong("it is not running")
	case events.VerbExec:
		return c.planExec(e, phase)
	case events.VerbRemove:
		if (phase == events.PhaseRunning || phase == events.PhaseStopping) && !cmd.Force {
			return nil, wrong("stop it first, or remove it with force")
		}
		return e.remove, nil
	}
	return nil, fmt.Errorf("%w: verb %q", events.ErrInvalid, cmd.Verb)
}

// done installs an operation's result.
func (c *containerActor) done(ctx actor.Context, m *opDone) {
	r := m.res
	if m.op == c.busy {
		c.busy, c.busyOp, c.stopEnv = 0, "", nil
	}
	if r.closeSys && c.sys != nil {
		_ = c.sys.Close()
		c.sys = nil
	}
	if r.sys != nil {
		c.sys = r.sys
	}
	if r.proc != nil || r.closeProc || r.closeSys {
		c.endWatch()
		if c.proc != nil && c.proc != r.proc {
			_ = c.proc.Close()
		}
		c.proc, c.initCode, c.initEnded = r.proc, nil, false
		if r.proc != nil {
			c.watch(ctx, r.proc)
		}
	}
	for i := range r.evs {
		c.apply(&r.evs[i])
	}
	if r.exec != nil {
		c.watchExec(ctx, r.exec)
	}
	if r.answer != nil {
		ctx.Send(ctx.Parent(), r.answer)
	}
	c.pump(ctx)
}

// apply folds one of this container's own durable events into the local
// record. The node folds the same events; sequence numbers make applying
// twice harmless.
func (c *containerActor) apply(e *events.Event) {
	if e.Kind() != events.KindContainer || (c.rec != nil && e.Seq <= c.rec.Seq) {
		return
	}
	st := events.RecordView(c.id, c.rec)
	if err := st.Apply(e); err != nil {
		c.n.cfg.Logger.Error().Err(err).Str("container", c.id).Msg("own event refused by the local record")
		return
	}
	had := c.rec != nil
	c.rec = st.Containers[c.id]
	if c.rec != nil && c.rec.Phase == events.PhaseExited && c.rec.Exit != nil {
		for _, w := range c.waiters {
			w <- result[events.Exit]{v: *c.rec.Exit}
		}
		c.waiters = nil
	}
	if c.rec == nil && had {
		for _, w := range c.waiters {
			w <- result[events.Exit]{err: notFound(c.id)}
		}
		c.waiters = nil
	}
}

// watch starts the goroutine that reports the init process's exit.
func (c *containerActor) watch(ctx actor.Context, p hcsdriver.Process) {
	life, end := context.WithCancel(c.n.ctx)
	c.endLife = end
	self, n := ctx.Self(), c.n
	n.goOwned(func() {
		if p.Wait(life) != nil {
			return // the container's life ended first: the actor no longer watches
		}
		var code *int
		if v, err := p.ExitCode(); err == nil {
			code = &v
		}
		n.sys.Root.Send(self, &initExited{proc: p, code: code})
	})
}

func (c *containerActor) endWatch() {
	if c.endLife != nil {
		c.endLife()
		c.endLife = nil
	}
}

// request answers a query about the container.
func (c *containerActor) request(msg any) {
	switch m := msg.(type) {
	case *statsReq:
		c.stats(m)
	case *waitReq:
		// The node checked that the container exists and has not exited;
		// this record may lag the fold by an operation in flight.
		if c.rec != nil && c.rec.Phase == events.PhaseExited && c.rec.Exit != nil {
			m.reply <- result[events.Exit]{v: *c.rec.Exit}
			return
		}
		c.waiters = append(c.waiters, m.reply)
	}
}

func (c *containerActor) stats(m *statsReq) {
	if c.rec == nil {
		m.reply <- result[events.Stats]{err: notFound(c.id)}
		return
	}
	if c.rec.Phase != events.PhaseRunning || c.sys == nil {
		m.reply <- result[events.Stats]{err: fmt.Errorf("%w: container %s is %s, not running", events.ErrWrongPhase, c.id, c.rec.Phase)}
		return
	}
	sys, n, id := c.sys, c.n, c.id
	n.goOwned(func() {
		sctx, cancel := context.WithTimeout(m.ctx, 30*time.Second)
		defer cancel()
		var st events.Stats
		err := n.hostCall(sctx, "container.stats", func() (err error) { st, err = sys.Statistics(sctx); return err })
		if err != nil {
			err = fmt.Errorf("%w: statistics of %s: %v", hcsdriver.Class(err), id, err)
		}
		m.reply <- result[events.Stats]{v: st, err: err}
	})
}
