package actors

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/netdriver"
)

// containerActions are the actions a container's actor carries out; the
// others (reaps) the node carries out itself.
var containerActions = []events.ActionKind{events.ActionAdopt, events.ActionMarkExited, events.ActionFinishStop,
	events.ActionFinishRemove, events.ActionRollBackCreate, events.ActionAbortStart}

// Observe gathers what the host holds of ours through the drivers: the
// compute systems with our owner tag (and, for each container the fold st
// says runs, its init process), the endpoints named with our owner prefix,
// and the layer store's scratch and image layers. It opens handles only to
// look and closes them again.
func (n *Node) Observe(ctx context.Context, st *events.State) (Observed, error) {
	obs := Observed{Systems: map[string]ObservedSystem{}}
	var infos []hcsdriver.Info
	err := n.hostCall(ctx, "container.list", func() (err error) { infos, err = n.cfg.Compute.List(ctx, n.cfg.Owner); return err })
	if err != nil {
		return obs, fmt.Errorf("listing compute systems: %w", err)
	}
	var (
		mu sync.Mutex
		g  errgroup.Group
	)
	g.SetLimit(n.cfg.HostOps)
	for _, info := range infos {
		c := st.Containers[info.ID]
		if c == nil || c.Pid == 0 || info.Stopped || (c.Phase != events.PhaseRunning && c.Phase != events.PhaseStopping) {
			mu.Lock() // the goroutines started above write to the map too
			obs.Systems[info.ID] = ObservedSystem{Info: info}
			mu.Unlock()
			continue
		}
		g.Go(func() error {
			p, err := n.observeInit(ctx, info.ID, c.Pid)
			mu.Lock()
			defer mu.Unlock()
			obs.Systems[info.ID] = ObservedSystem{Info: info, Init: p}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return obs, err
	}
	if drv := n.cfg.Network; drv != nil {
		err := n.hostCall(ctx, "endpoint.list", func() (err error) {
			obs.Endpoints, err = drv.ListEndpoints(ctx, n.cfg.Owner+"-")
			return err
		})
		if err != nil {
			return obs, fmt.Errorf("listing endpoints: %w", err)
		}
		if nw := st.Network; nw != nil && nw.Phase == events.NetworkPhaseCreated {
			on, err := n.observeNetwork(ctx, nw.Name)
			if err != nil {
				return obs, err
			}
			obs.Network = on
		}
	}
	if ls := n.cfg.Layers; ls != nil {
		var h imagedriver.Holdings
		err := n.hostCall(ctx, "layer.list", func() (err error) { h, err = imagedriver.Observe(ctx, ls); return err })
		if err != nil {
			return obs, err
		}
		obs.Scratch, obs.Incomplete = h.Scratches, h.Incomplete
	}
	return obs, nil
}

// observeNetwork looks up the host's network named name.
func (n *Node) observeNetwork(ctx context.Context, name string) (*ObservedNetwork, error) {
	var nw netdriver.Network
	err := n.hostCall(ctx, "network.get", func() (err error) { nw, err = n.cfg.Network.GetNetwork(ctx, name); return err })
	switch {
	case errors.Is(err, netdriver.ErrNotFound):
		return &ObservedNetwork{Name: name}, nil
	case err != nil:
		return nil, fmt.Errorf("looking up network %s: %w", name, err)
	}
	return &ObservedNetwork{Name: name, ID: nw.ID}, nil
}

// observeInit looks at init process pid of system id: nil when the host
// no longer has it (or the system), its code when it has exited.
func (n *Node) observeInit(ctx context.Context, id string, pid int) (*ObservedProcess, error) {
	var p *ObservedProcess
	err := n.hostCall(ctx, "container.open", func() error {
		sys, err := n.cfg.Compute.Open(ctx, id)
		if err != nil {
			return err
		}
		defer sys.Close()
		proc, err := sys.OpenProcess(ctx, pid)
		if err != nil {
			return err
		}
		defer proc.Close()
		p = &ObservedProcess{Pid: pid}
		if code, err := proc.ExitCode(); err == nil {
			p.Code = &code
		}
		return nil
	})
	if errors.Is(err, hcsdriver.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("observing init process %d of %s: %w", pid, id, err)
	}
	return p, nil
}

// Plan observes the host and returns what reconciliation would do now,
// without doing it. On a node that has reconciled, every live container
// shows as adopt: what a restart would do.
func (n *Node) Plan(ctx context.Context) ([]events.Action, error) {
	st, err := n.State(ctx)
	if err != nil {
		return nil, err
	}
	obs, err := n.Observe(ctx, st)
	if err != nil {
		return nil, err
	}
	return Plan(st, obs), nil
}

// Reconcile brings the host and the fold into agreement after Start
// (DESIGN §7): it observes the host, plans, and executes the plan, each
// container's action through its actor, with at most Config.HostOps
// actions at a time and Config.ReconcileTimeout for each. Container actions
// run first, then reaps of compute systems, then of endpoints and layers
// (an endpoint or scratch layer is released only once no system holds it).
// Every action is journaled, and a node.reconciled event closes the
// reconciliation. Call it once, before any command is submitted; it
// returns the node.reconciled payload. An action that fails or times out
// does not fail Reconcile: it is reported in the summary, and the next
// start plans it again.
func (n *Node) Reconcile(ctx context.Context) (events.ReconciledData, error) {
	start := time.Now()
	st, err := n.State(ctx)
	if err != nil {
		return events.ReconciledData{}, err
	}
	obs, err := n.observeRetrying(ctx, st)
	if err != nil {
		return events.ReconciledData{}, fmt.Errorf("observing the host: %w", err)
	}
	plan := Plan(st, obs)
	results := make([]events.ActionResult, len(plan))
	for _, stage := range [][]events.ActionKind{
		append([]events.ActionKind{events.ActionRecreateNetwork}, containerActions...),
		{events.ActionReapSystem},
		{events.ActionReapEndpoint, events.ActionReapScratch, events.ActionReapLayer},
	} {
		var g errgroup.Group
		g.SetLimit(n.cfg.HostOps)
		for i, a := range plan {
			if !slices.Contains(stage, a.Kind) {
				continue
			}
			g.Go(func() error {
				results[i] = n.execute(ctx, a)
				if n.cfg.OnReconcile != nil {
					n.cfg.OnReconcile(a.Kind, results[i].Outcome)
				}
				return nil
			})
		}
		_ = g.Wait()
	}
	d := events.ReconciledData{Summary: map[string]int{}, Took: events.Duration(time.Since(start))}
	for _, r := range results {
		d.Summary[string(r.Kind)+"/"+r.Outcome]++
		switch {
		case r.Kind == events.ActionAdopt && r.Outcome == events.OutcomeOK:
		case len(d.Actions) < events.MaxReconciledActions:
			d.Actions = append(d.Actions, r)
		default:
			d.Omitted++
		}
	}
	if _, err := n.cfg.Journal.Append(ctx, events.NewEvent(n.cfg.Node, events.NodeReconciled, n.cfg.Node, "", d)); err != nil {
		return d, fmt.Errorf("recording the reconciliation: %w", err)
	}
	n.reconciled.Store(true)
	return d, nil
}

// observeRetrying observes the host, trying again for a while when the
// host is unavailable: a host service that is still starting must not make
// the agent give up.
func (n *Node) observeRetrying(ctx context.Context, st *events.State) (Observed, error) {
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		obs, err := n.Observe(ctx, st)
		transient := errors.Is(hcsdriver.Class(err), events.ErrUnavailable) || errors.Is(netdriver.Class(err), events.ErrUnavailable)
		if err == nil || attempt == 6 || !transient {
			return obs, err
		}
		n.cfg.Logger.Warn().Err(err).Int("attempt", attempt).Msg("host not observed; trying again")
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return obs, ctx.Err()
		}
		wait *= 2
	}
}

// answered waits for an actor's answer on done, and returns it or why it
// did not come.
func answered(ctx context.Context, n *Node, done <-chan error) error {
	aerr, err := await(ctx, n, done)
	if err != nil {
		return err
	}
	return aerr
}

// execute runs one action within the per-item timeout.
func (n *Node) execute(ctx context.Context, a events.Action) events.ActionResult {
	ictx, cancel := context.WithTimeout(ctx, n.cfg.ReconcileTimeout)
	defer cancel()
	var err error
	done := make(chan error, 1) // an actor's answer
	switch {
	case slices.Contains(containerActions, a.Kind):
		n.sys.Root.Send(n.pid, &reconcileMsg{action: a, done: done})
		err = answered(ictx, n, done)
	case a.Kind == events.ActionRecreateNetwork:
		n.sys.Root.Send(n.netPID.Load(), &renewNetwork{done: done})
		err = answered(ictx, n, done)
	default:
		err = n.reap(ictx, a)
	}
	r := events.ActionResult{Action: a, Outcome: events.OutcomeOK}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		r.Outcome, r.Error = events.OutcomeTimeout, fmt.Sprintf("not done within %s", n.cfg.ReconcileTimeout)
	case err != nil:
		r.Outcome, r.Error = events.OutcomeError, err.Error()
	}
	if err != nil {
		n.cfg.Logger.Warn().Err(err).Str("action", string(a.Kind)).Str("container", a.Container).Str("object", a.Object).Msg("reconcile action failed; the next start plans it again")
	}
	return r
}

// reap removes a host object no live container owns, and records it.
func (n *Node) reap(ctx context.Context, a events.Action) error {
	var err error
	switch a.Kind {
	case events.ActionReapSystem:
		err = n.reapSystem(ctx, a.Object)
	case events.ActionReapEndpoint:
		err = n.hostCall(ctx, "endpoint.delete", func() error { return n.cfg.Network.DeleteEndpoint(ctx, a.Object) })
		if errors.Is(err, netdriver.ErrNotFound) {
			err = nil
		}
	case events.ActionReapScratch:
		err = n.hostCall(ctx, "scratch.remove", func() error { return n.cfg.Layers.RemoveScratch(ctx, a.Object) })
		if errors.Is(err, imagedriver.ErrNotFound) {
			err = nil
		}
	case events.ActionReapLayer:
		err = n.hostCall(ctx, "layer.remove", func() error { return n.cfg.Layers.Remove(ctx, a.Object) })
		if errors.Is(err, imagedriver.ErrNotFound) {
			err = nil
		}
	default:
		return fmt.Errorf("%w: action %s is not a reap", events.ErrInternal, a.Kind)
	}
	d := events.ReapedData{Action: a}
	if err != nil {
		d.Error = err.Error()
	}
	if _, aerr := n.cfg.Journal.Append(ctx, events.NewEvent(n.cfg.Node, events.NodeReaped, n.cfg.Node, "", d)); aerr != nil {
		return errors.Join(err, fmt.Errorf("recording the reap: %w", aerr))
	}
	return err
}

// reapSystem terminates compute system id and closes it, so the host
// forgets it.
func (n *Node) reapSystem(ctx context.Context, id string) error {
	return n.hostCall(ctx, "container.terminate", func() error {
		sys, err := n.cfg.Compute.Open(ctx, id)
		if errors.Is(err, hcsdriver.ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		defer sys.Close()
		if err := sys.Terminate(ctx); err != nil && !errors.Is(err, hcsdriver.ErrAlreadyStopped) {
			return err
		}
		if err := sys.Wait(ctx); err != nil && !errors.Is(err, hcsdriver.ErrUnexpectedExit) {
			return err
		}
		return nil
	})
}

// reconcile carries out a container's action: the container's own events
// record what it did. With a nil action (an actor rebuilt after a panic)
// it observes the container and plans its action first.
func (e *opEnv) reconcile(ctx context.Context, a *events.Action) (opResult, error) {
	n := e.n
	ctx, cancel := context.WithTimeout(ctx, n.cfg.ReconcileTimeout)
	defer cancel()
	if a == nil {
		planned, ok, err := e.replan(ctx)
		if err != nil || !ok {
			return opResult{}, err
		}
		a = &planned
	}
	var r opResult
	err := n.hostCall(ctx, "container.open", func() (err error) { e.sys, err = n.cfg.Compute.Open(ctx, e.id); return err })
	lost := errors.Is(err, hcsdriver.ErrNotFound)
	if err != nil && !lost {
		return r, e.hostErr("open", err)
	}
	r.sys = e.sys
	record := func(evs ...events.Event) (opResult, error) {
		if err := e.record(ctx, &r, evs...); err != nil {
			return r, fmt.Errorf("recording %s of %s: %w", a.Kind, e.id, err)
		}
		return r, nil
	}
	switch a.Kind {
	case events.ActionRollBackCreate:
		msg := "create interrupted by an agent restart; rolled back"
		if err := e.dismantle(ctx, &r); err != nil {
			return r, err // still creating: the next start tries again
		}
		return record(e.event(events.ContainerCreateFailed, events.FailureData{Error: msg}))
	case events.ActionFinishRemove:
		if err := e.dismantle(ctx, &r); err != nil {
			_, rerr := record(e.event(events.ContainerRemoveFailed, failure(err)))
			return r, errors.Join(err, rerr)
		}
		return record(e.event(events.ContainerRemoved, nil))
	}
	if lost {
		return record(e.exitEvent(nil, events.ReasonHostLost, msgHostLost))
	}
	switch a.Kind {
	case events.ActionAdopt:
		e.endOrphanExecs(ctx, &r)
		if a.Pid == 0 {
			return r, nil
		}
		p, err := e.sys.OpenProcess(ctx, a.Pid)
		if err != nil { // ended since it was observed; its code is lost
			if _, err := e.halt(ctx, 30*time.Second); err != nil {
				return r, err
			}
			return record(e.exitEvent(nil, events.ReasonExited, msgCodeLost))
		}
		r.proc = p
		return r, nil
	case events.ActionMarkExited:
		if info, err := e.sys.Properties(ctx); err == nil && !info.Stopped {
			if _, err := e.halt(ctx, 30*time.Second); err != nil {
				return r, err
			}
		}
		ex := *a.Exit
		ex.FinishedAt = time.Now().UTC()
		return record(e.event(events.ContainerExited, ex))
	case events.ActionFinishStop:
		if info, err := e.sys.Properties(ctx); err == nil && info.Stopped {
			return record(e.exitEvent(nil, events.ReasonExited, "the stop completed while the agent was down"))
		}
		exit, err := e.stopSystem(ctx, 0)
		if err != nil {
			return r, err
		}
		return record(exit)
	case events.ActionAbortStart:
		if _, err := e.halt(ctx, 0); err != nil {
			return r, err
		}
		return record(e.exitEvent(nil, events.ReasonRuntimeError, msgStartCut))
	}
	return r, fmt.Errorf("%w: action %s is not a container's", events.ErrInternal, a.Kind)
}

// replan observes this container alone and plans its action, for an actor
// rebuilt after a panic. It reports false when there is nothing to do.
func (e *opEnv) replan(ctx context.Context) (events.Action, bool, error) {
	n, obs := e.n, Observed{Systems: map[string]ObservedSystem{}}
	var info hcsdriver.Info
	err := n.hostCall(ctx, "container.open", func() error {
		sys, err := n.cfg.Compute.Open(ctx, e.id)
		if err != nil {
			return err
		}
		defer sys.Close()
		info, err = sys.Properties(ctx)
		return err
	})
	switch {
	case errors.Is(err, hcsdriver.ErrNotFound):
	case err != nil:
		return events.Action{}, false, e.hostErr("open", err)
	default:
		s := ObservedSystem{Info: info}
		if e.rec.Pid != 0 && !info.Stopped {
			if s.Init, err = n.observeInit(ctx, e.id, e.rec.Pid); err != nil {
				return events.Action{}, false, err
			}
		}
		obs.Systems[e.id] = s
	}
	a, ok := planContainer(&e.rec, obs.Systems)
	if a.Kind == events.ActionReapSystem {
		return a, false, nil // a reap is left to the next start
	}
	return a, ok, nil
}
