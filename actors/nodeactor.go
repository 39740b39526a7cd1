package actors

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/berthhq/berth/events"
)

// nodeActor owns the fold and the container actors.
type nodeActor struct {
	n  *Node
	st *events.State // shared with rebuilt instances: the fold survives a panic

	children map[string]*child
	pending  map[string]*pendingCmd // commands in flight, by id
	spawned  uint64                 // container actors spawned, for unique names
	snapping bool
}

// pendingCmd is a command in flight and the submitters waiting for it.
type pendingCmd struct {
	waiters []chan events.Reply
	// local: the node records the outcome itself and answers when it is
	// durable; otherwise the container actor answers.
	local bool
}

type child struct {
	pid  *actor.PID
	sent uint64 // commands forwarded
}

func (a *nodeActor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.children = map[string]*child{}
		a.pending = map[string]*pendingCmd{}
		if a.n.booted {
			a.spawnAll(ctx) // rebuilt after a panic: the old children were stopped
		}
	case *bootMsg:
		a.n.booted = true
		a.spawnAll(ctx)
	case *submitMsg:
		a.submit(ctx, m)
	case *durableMsg:
		a.durable(ctx, m.evs)
	case *answer:
		a.resolve(m.id, m.reply)
	case *stateReq:
		m.reply <- result[*events.State]{v: a.st.Clone()}
	case *inspectReq:
		if c, ok := a.st.Containers[m.id]; ok {
			m.reply <- result[events.Container]{v: *c.Clone()}
		} else {
			m.reply <- result[events.Container]{err: notFound(m.id)}
		}
	case *reconcileMsg:
		ch, ok := a.children[m.action.Container]
		if !ok {
			ch = a.spawn(ctx, m.action.Container)
		}
		ctx.Send(ch.pid, m)
	case *statsReq:
		if ch, ok := a.children[m.id]; ok {
			ctx.Send(ch.pid, m)
		} else {
			m.reply <- result[events.Stats]{err: notFound(m.id)}
		}
	case *waitReq:
		c, known := a.st.Containers[m.id]
		ch, ok := a.children[m.id]
		switch {
		case known && c.Phase == events.PhaseExited && c.Exit != nil:
			m.reply <- result[events.Exit]{v: *c.Exit}
		case known && ok:
			ctx.Send(ch.pid, m)
		default:
			m.reply <- result[events.Exit]{err: notFound(m.id)}
		}
	case *imagesReq:
		m.reply <- result[imageView]{v: viewOf(a.st)}
	case *recordReq:
		var rec *events.Container
		if c, ok := a.st.Containers[m.id]; ok {
			rec = c.Clone()
		}
		ctx.Respond(&recordRes{rec: rec})
	case *retired:
		// Stop the child only if it has seen every command sent to it, so
		// no command is lost in a stopping mailbox.
		if ch, ok := a.children[m.id]; ok && ch.sent == m.received {
			if _, exists := a.st.Containers[m.id]; !exists {
				delete(a.children, m.id)
				ctx.Stop(ch.pid)
			}
		}
	case *snapshotDone:
		a.snapping = false
		if m.err != nil {
			a.n.cfg.Logger.Warn().Err(m.err).Msg("snapshot not saved; replay will read more events at the next start")
		}
	}
}

// spawnAll spawns the network actor, then a container actor for every
// container in the fold.
func (a *nodeActor) spawnAll(ctx actor.Context) {
	if n := a.n; n.cfg.Network != nil {
		if n.net == nil {
			n.net = newNetState(a.st, n)
		}
		props := actor.PropsFromProducer(func() actor.Actor { return &networkActor{n: n, s: n.net} },
			actor.WithReceiverMiddleware(n.recoverPanics))
		pid, err := ctx.SpawnNamed(props, "network")
		if err != nil {
			panic(fmt.Sprintf("spawning the network actor: %v", err))
		}
		n.netPID.Store(pid)
	}
	if n := a.n; n.imagesOn() {
		if n.img == nil {
			n.img = newImageState()
		}
		props := actor.PropsFromProducer(func() actor.Actor { return &imageActor{n: n, imageState: n.img} },
			actor.WithReceiverMiddleware(n.recoverPanics))
		pid, err := ctx.SpawnNamed(props, "image")
		if err != nil {
			panic(fmt.Sprintf("spawning the image actor: %v", err))
		}
		n.imgPID.Store(pid)
	}
	for id := range a.st.Containers {
		a.spawn(ctx, id)
	}
}

func notFound(id string) error { return fmt.Errorf("%w: container %s", events.ErrNotFound, id) }

func (a *nodeActor) spawn(ctx actor.Context, id string) *child {
	props := actor.PropsFromProducer(func() actor.Actor { return newContainer(a.n, id) },
		actor.WithReceiverMiddleware(a.n.recoverPanics))
	// A retired child keeps its name until it has finished stopping, so
	// every incarnation gets a name of its own.
	a.spawned++
	pid, err := ctx.SpawnNamed(props, fmt.Sprintf("ctr-%s-%d", id, a.spawned))
	if err != nil {
		panic(fmt.Sprintf("spawning container actor %s: %v", id, err))
	}
	ch := &child{pid: pid}
	a.children[id] = ch
	return ch
}

func (a *nodeActor) submit(ctx actor.Context, m *submitMsg) {
	id := m.cmd.ID
	if o, ok := a.st.Outcome(id); ok {
		m.reply <- o.Reply
		return
	}
	if p, ok := a.pending[id]; ok {
		p.waiters = append(p.waiters, m.reply)
		return
	}
	p := &pendingCmd{waiters: []chan events.Reply{m.reply}}
	a.pending[id] = p
	if m.cmd.Verb == events.VerbNetworkConfigure {
		if pid := a.n.netPID.Load(); pid != nil {
			ctx.Send(pid, &cmdMsg{cmd: m.cmd})
			return
		}
		p.local = true
		a.recordOutcome(ctx, m.cmd, fmt.Errorf("%w: networking is off on this agent: it has no network driver", events.ErrUnavailable))
		return
	}
	if events.IsImageVerb(m.cmd.Verb) {
		if pid := a.n.imgPID.Load(); pid != nil {
			ctx.Send(pid, &cmdMsg{cmd: m.cmd})
			return
		}
		p.local = true
		a.recordOutcome(ctx, m.cmd, fmt.Errorf("%w: images are off on this agent: it has no image puller or layer store", events.ErrUnavailable))
		return
	}
	ch, ok := a.children[m.cmd.Container]
	if !ok {
		if m.cmd.Verb != events.VerbCreate && m.cmd.Verb != events.VerbRun {
			p.local = true
			a.recordOutcome(ctx, m.cmd, notFound(m.cmd.Container))
			return
		}
		if max := a.n.cfg.MaxContainers; max > 0 && len(a.children) >= max {
			p.local = true
			a.recordOutcome(ctx, m.cmd, fmt.Errorf("%w: node %s holds %d containers, its limit (berthd --max-containers); remove one first", events.ErrConflict, a.n.cfg.Node, len(a.children)))
			return
		}
		ch = a.spawn(ctx, m.cmd.Container)
	}
	ch.sent++
	ctx.Send(ch.pid, &cmdMsg{cmd: m.cmd})
}

// recordOutcome journals the outcome of a command that reached no container.
func (a *nodeActor) recordOutcome(ctx actor.Context, cmd events.Command, err error) {
	n, self := a.n, ctx.Self()
	ev := completed(n.cfg.Node, cmd, nil, err)
	n.goOwned(func() {
		if _, aerr := n.cfg.Journal.Append(n.ctx, ev); aerr != nil {
			n.sys.Root.Send(self, &answer{id: cmd.ID, reply: events.NewReply(cmd.ID, nil, journalErr(aerr))})
		}
	})
}

func (a *nodeActor) durable(ctx actor.Context, evs []events.Event) {
	for i := range evs {
		e := &evs[i]
		if e.Seq != 0 && e.Seq <= a.st.Seq {
			continue // already folded (a snapshot or a replay covered it)
		}
		if err := a.st.Apply(e); err != nil {
			// The journal holds it, so the fold must not disagree with the
			// journal silently: this is a bug in the writer of the event.
			a.n.cfg.Logger.Error().Err(err).Uint64("seq", e.Seq).Str("type", e.Type).Msg("durable event refused by the fold")
			continue
		}
		if p, ok := a.pending[e.Subject]; ok && p.local && e.Type == events.NodeCommandCompleted {
			if o, ok := a.st.Outcome(e.Subject); ok {
				a.resolve(e.Subject, o.Reply)
			}
		}
	}
	if !a.snapping && a.n.cfg.Journal.ShouldSnapshot(a.st.Seq) {
		a.snapshot(ctx)
	}
}

func (a *nodeActor) snapshot(ctx actor.Context) {
	a.snapping = true
	st, n, self := a.st.Clone(), a.n, ctx.Self()
	n.goOwned(func() {
		sctx, cancel := context.WithTimeout(n.ctx, time.Minute)
		defer cancel()
		n.sys.Root.Send(self, &snapshotDone{err: n.cfg.Journal.SaveSnapshot(sctx, st)})
	})
}

func (a *nodeActor) resolve(id string, r events.Reply) {
	if p, ok := a.pending[id]; ok {
		for _, w := range p.waiters {
			w <- r
		}
		delete(a.pending, id)
	}
}

// completed builds the node.command_completed event for cmd.
func completed(node string, cmd events.Command, res any, err error) events.Event {
	return events.NewEvent(node, events.NodeCommandCompleted, cmd.ID, cmd.ID, events.CommandCompletedData{
		Verb: cmd.Verb, Container: cmd.Container, Reply: events.NewReply(cmd.ID, res, err)})
}

// journalErr classifies an append failure for a reply: the command's outcome
// is not recorded, so it may be retried.
func journalErr(err error) error {
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: agent shutting down: %v", events.ErrUnavailable, err)
	}
	return fmt.Errorf("%w: journal: %v", events.ErrUnavailable, err)
}
