package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"runtime"
	"sync"
	"time"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/imagedriver"
)

// opEnv is what one operation may use: copies of the actor's fields, taken
// when the operation starts. Operations never touch the actor.
type opEnv struct {
	n        *Node
	id       string
	cmd      events.Command // Verb is an internal op name for internal operations
	rec      events.Container
	sys      hcsdriver.System
	proc     hcsdriver.Process
	initCode *int

	mu          sync.Mutex
	killed      bool               // a kill escalated this stop
	cancelGrace context.CancelFunc // ends the graceful part of a stop in flight
}

// escalate turns a graceful stop in flight into a terminate, at once.
func (e *opEnv) escalate() {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.killed = true
	if e.cancelGrace != nil {
		e.cancelGrace()
	}
}

func (e *opEnv) wasKilled() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.killed
}

// opResult is what an operation hands back to its actor.
type opResult struct {
	evs       []events.Event // durable events about the container, in order
	sys       hcsdriver.System
	proc      hcsdriver.Process // a new init process to watch
	closeSys  bool              // the system handle was closed
	closeProc bool              // the init process is gone
	answer    *answer           // the command's reply
	exec      *execRun          // an exec session started
}

func (e *opEnv) event(typ string, data any) events.Event {
	return events.NewEvent(e.n.cfg.Node, typ, e.id, e.cmd.ID, data)
}

// intent makes an intent event durable before the host call it announces.
func (e *opEnv) intent(ctx context.Context, r *opResult, typ string, data any) error {
	return e.record(ctx, r, e.event(typ, data))
}

// record makes evs durable as one batch and adds them to r.
func (e *opEnv) record(ctx context.Context, r *opResult, evs ...events.Event) error {
	evs, err := e.n.cfg.Journal.Append(ctx, evs...)
	if err != nil {
		return err
	}
	r.evs = append(r.evs, evs...)
	return nil
}

// finish records the operation's facts and, for a command, its outcome, in
// one atomic batch. When the journal refuses, the command is answered with
// 503 and nothing is recorded.
func (e *opEnv) finish(ctx context.Context, r *opResult, facts []events.Event, res any, err error) opResult {
	if r == nil {
		r = &opResult{}
	}
	batch := facts
	if e.cmd.ID != "" {
		batch = append(batch, completed(e.n.cfg.Node, e.cmd, res, err))
	}
	if len(batch) == 0 {
		return *r
	}
	evs, aerr := e.n.cfg.Journal.Append(ctx, batch...)
	if aerr != nil {
		e.n.cfg.Logger.Error().Err(aerr).Str("container", e.id).Str("verb", e.cmd.Verb).Msg("outcome not recorded")
		return e.abort(*r, aerr)
	}
	r.evs = append(r.evs, evs...)
	if e.cmd.ID != "" {
		var d events.CommandCompletedData
		_ = evs[len(evs)-1].Decode(&d) // encoded by completed above
		r.answer = &answer{id: e.cmd.ID, reply: d.Reply}
	}
	return *r
}

// abort answers a command whose intent or outcome could not be recorded.
func (e *opEnv) abort(r opResult, err error) opResult {
	if e.cmd.ID != "" {
		r.answer = &answer{id: e.cmd.ID, reply: events.NewReply(e.cmd.ID, nil, journalErr(err))}
	}
	return r
}

func (e *opEnv) result(phase events.Phase, exit *events.Exit) events.ContainerResult {
	return events.ContainerResult{Container: e.id, Phase: phase, Exit: exit}
}

// hostErr classifies a driver error for a reply, naming the operation.
func (e *opEnv) hostErr(op string, err error) error {
	return fmt.Errorf("%w: %s %s: %v", hcsdriver.Class(err), op, e.id, err)
}

func (e *opEnv) nothing(context.Context) opResult { return opResult{} }

func (e *opEnv) noop(ctx context.Context) opResult {
	return e.finish(ctx, nil, nil, e.result(e.rec.Phase, e.rec.Exit), nil)
}

func (e *opEnv) create(ctx context.Context) opResult {
	var r opResult
	ok, res, err := e.createSystem(ctx, &r)
	if !ok {
		return e.finish(ctx, &r, res, nil, err)
	}
	return e.finish(ctx, &r, res, e.result(events.PhaseCreated, nil), nil)
}

func (e *opEnv) run(ctx context.Context) opResult {
	var r opResult
	ok, res, err := e.createSystem(ctx, &r)
	if !ok {
		return e.finish(ctx, &r, res, nil, err)
	}
	e.sys = r.sys
	return e.startSystem(ctx, &r, res...)
}

// createSystem records the intent, attaches the container to the node's
// network and creates the compute system with its endpoint. It returns the
// outcome events still to be recorded. A failed create leaves nothing on
// the host: an endpoint it created is deleted again and its address
// released.
func (e *opEnv) createSystem(ctx context.Context, r *opResult) (ok bool, facts []events.Event, err error) {
	spec := e.cmd.Spec
	var img *events.Image
	if e.n.imagesOn() {
		// The image first: a create whose image cannot be had leaves no
		// record, as docker run leaves no container.
		im, err := e.n.ensureImage(ctx, spec.Image, e.cmd.Auth)
		if err != nil {
			return false, nil, err
		}
		defer e.n.releaseImage(im.ID)
		merged, err := withImage(*spec, spec.Image.Ref, im.Config)
		if err != nil {
			return false, nil, err
		}
		spec, img = &merged, &im
		e.cmd.Spec = spec // run starts what was created
	} else if len(spec.Command.Entrypoint)+len(spec.Command.Args) == 0 {
		return false, nil, fmt.Errorf("%w: spec.command: an entrypoint or args are required: this agent has no images to take a command from", events.ErrInvalid)
	}
	if iso, err := e.n.isolation(spec, img); err != nil {
		return false, nil, err
	} else if spec.Isolation != iso {
		chosen := *spec
		chosen.Isolation = iso // recorded in the intent: inspect shows how the container runs
		spec = &chosen
		e.cmd.Spec = spec
	}
	if ep := e.rec.Endpoint; ep != nil { // an earlier create failed and could not delete its endpoint
		if err := e.detach(ctx, r, ep); err != nil {
			return false, nil, err
		}
	}
	if e.rec.Scratch != nil { // nor its scratch layer
		if err := e.removeScratch(ctx, r); err != nil {
			return false, nil, err
		}
	}
	if err := e.intent(ctx, r, events.ContainerCreating, events.CreatingData{Spec: *spec, Owner: e.n.cfg.Owner}); err != nil {
		return false, nil, journalErr(err)
	}
	cfg := computeConfig(e.id, e.n.cfg.Owner, spec)
	if img != nil {
		sc, layers, err := e.createScratch(ctx, r, img, cfg.HyperV)
		if err != nil {
			return false, []events.Event{e.event(events.ContainerCreateFailed, failure(err))}, err
		}
		// A Hyper-V container's scratch is unmounted: VolumePath is "".
		cfg.Layers, cfg.VolumePath, cfg.LayerFolderPath = layers, sc.VolumePath, sc.Path
	}
	ep, err := e.attach(ctx, r)
	if err != nil {
		e.dropScratch(ctx, r, img != nil)
		return false, []events.Event{e.event(events.ContainerCreateFailed, failure(err))}, err
	}
	if ep != nil {
		cfg.Endpoints, cfg.DNSSearchList = []string{ep.ID}, ep.DNS.Search
		facts = append(facts, e.event(events.ContainerEndpointCreated, events.EndpointCreatedData{ID: ep.ID}))
	}
	var sys hcsdriver.System
	err = e.n.hostCall(ctx, "container.create", func() (err error) {
		sys, err = e.n.cfg.Compute.Create(ctx, e.id, cfg)
		return err
	})
	if err != nil {
		err = e.hostErr("create", err)
		if ep != nil {
			facts = e.rollBack(ctx, r, facts, ep)
		}
		e.dropScratch(ctx, r, img != nil && len(facts) == 0)
		return false, append(facts, e.event(events.ContainerCreateFailed, failure(err))), err
	}
	r.sys = sys
	return true, append(facts, e.event(events.ContainerCreated, events.CreatedData{HostID: sys.ID()})), nil
}

// dropScratch removes the scratch layer of a create that failed after
// making it, when made is true; one it cannot remove is left to the
// container's remove.
func (e *opEnv) dropScratch(ctx context.Context, r *opResult, made bool) {
	if !made {
		return
	}
	if err := e.removeScratch(ctx, r); err != nil {
		e.n.cfg.Logger.Warn().Err(err).Str("container", e.id).Msg("scratch layer of a failed create not removed; remove removes it")
	}
}

// rollBack deletes the endpoint of a create whose compute system was not
// created, after recording facts (its endpoint_created). It returns the
// facts still to be recorded: none, unless the endpoint could not be
// deleted, which leaves it to the container's remove.
func (e *opEnv) rollBack(ctx context.Context, r *opResult, facts []events.Event, ep *events.Endpoint) []events.Event {
	if err := e.record(ctx, r, facts...); err != nil {
		return facts // the create's outcome will not be recorded either
	}
	if err := e.detach(ctx, r, ep); err != nil {
		e.n.cfg.Logger.Warn().Err(err).Str("container", e.id).Msg("endpoint of a failed create not deleted; remove deletes it")
	}
	return nil
}

func (e *opEnv) start(ctx context.Context) opResult {
	var r opResult
	return e.startSystem(ctx, &r)
}

// startSystem boots the system and starts the init process. If either
// fails, the system is stopped again and the container has exited with a
// runtime error: no exit code is invented. The facts of the operation so
// far (a run's create outcome) are recorded in one batch with the start's
// intent.
func (e *opEnv) startSystem(ctx context.Context, r *opResult, facts ...events.Event) opResult {
	if err := e.record(ctx, r, append(facts, e.event(events.ContainerStarting, nil))...); err != nil {
		return e.abort(*r, err)
	}
	spec := e.rec.Spec
	if e.cmd.Spec != nil {
		spec = *e.cmd.Spec
	}
	sys := e.sys
	if sys == nil {
		err := fmt.Errorf("%w: container %s has no compute system handle", events.ErrUnavailable, e.id)
		return e.finish(ctx, r, []events.Event{e.exitEvent(nil, events.ReasonRuntimeError, err.Error())}, nil, err)
	}
	var proc hcsdriver.Process
	err := e.n.hostCall(ctx, "container.start", func() error {
		if err := sys.Start(ctx); err != nil {
			return e.hostErr("start", err)
		}
		p, err := sys.CreateProcess(ctx, initProcess(spec))
		if errors.Is(err, hcsdriver.ErrNotFound) {
			return fmt.Errorf("%w: spec.command: %q cannot be run in the container: %v", events.ErrInvalid,
				hcsdriver.CommandLine(append(spec.Command.Entrypoint, spec.Command.Args...)), err)
		}
		if err != nil {
			return e.hostErr("create init process of", err)
		}
		proc = p
		return nil
	})
	if err != nil {
		e.halt(ctx, 0)
		return e.finish(ctx, r, []events.Event{e.exitEvent(nil, events.ReasonRuntimeError, err.Error())}, nil, err)
	}
	e.drain(proc)
	r.proc = proc
	return e.finish(ctx, r, []events.Event{e.event(events.ContainerStarted, events.StartedData{Pid: proc.Pid()})},
		e.result(events.PhaseRunning, nil), nil)
}

// drain copies the init process's output to the configured sink, so that
// the process never blocks on a full pipe.
func (e *opEnv) drain(p hcsdriver.Process) {
	_, stdout, stderr, err := p.Stdio()
	if err != nil {
		e.n.cfg.Logger.Warn().Err(err).Str("container", e.id).Msg("init process output not available")
		return
	}
	for stream, rd := range map[string]io.ReadCloser{events.Stdout: stdout, events.Stderr: stderr} {
		if rd == nil {
			continue
		}
		id, sink := e.id, e.n.cfg.Output
		e.n.goOwned(func() {
			// On agent shutdown the container runs on, but its pipes end
			// here, just as when the agent process dies.
			stop := context.AfterFunc(e.n.ctx, func() { rd.Close() })
			defer stop()
			defer rd.Close()
			if sink != nil {
				sink(id, stream, rd)
			}
			_, _ = io.Copy(io.Discard, rd)
		})
	}
}

func (e *opEnv) stop(ctx context.Context) opResult {
	grace := e.n.cfg.StopTimeout
	switch {
	case e.cmd.Timeout != nil:
		grace = e.cmd.Timeout.Std()
	case e.rec.Spec.Stop.Timeout > 0:
		grace = e.rec.Spec.Stop.Timeout.Std()
	}
	return e.end(ctx, grace)
}

func (e *opEnv) kill(ctx context.Context) opResult { return e.end(ctx, 0) }

// end stops a running container: gracefully within grace (0: terminate at
// once), and records how it exited.
func (e *opEnv) end(ctx context.Context, grace time.Duration) opResult {
	var r opResult
	if err := e.intent(ctx, &r, events.ContainerStopping, events.StoppingData{Timeout: events.Duration(grace), Kill: grace == 0}); err != nil {
		return e.abort(r, err)
	}
	exit, err := e.stopSystem(ctx, grace)
	r.closeProc = true
	if err != nil {
		return e.finish(ctx, &r, nil, nil, err)
	}
	return e.finish(ctx, &r, []events.Event{exit}, e.result(events.PhaseExited, nil), nil)
}

// stopSystem halts the system and builds the exited event from the init
// process's exit code.
func (e *opEnv) stopSystem(ctx context.Context, grace time.Duration) (events.Event, error) {
	graceful, err := e.halt(ctx, grace)
	if err != nil {
		return events.Event{}, err
	}
	reason := events.ReasonExited
	if !graceful || e.wasKilled() {
		reason = events.ReasonKilled
	}
	return e.exitEvent(e.exitCode(ctx), reason, ""), nil
}

// halt stops the system: Shutdown and up to grace for it to complete, then
// Terminate. It reports whether the graceful path sufficed.
func (e *opEnv) halt(ctx context.Context, grace time.Duration) (graceful bool, err error) {
	sys, n := e.sys, e.n
	if sys == nil {
		return false, fmt.Errorf("%w: container %s has no compute system handle", events.ErrUnavailable, e.id)
	}
	if grace > 0 && e.graceful(ctx, grace) {
		return true, nil
	}
	err = n.hostCall(ctx, "container.terminate", func() error { return sys.Terminate(ctx) })
	if err != nil && !errors.Is(err, hcsdriver.ErrAlreadyStopped) {
		return false, e.hostErr("terminate", err)
	}
	if err := sys.Wait(ctx); err != nil && !errors.Is(err, hcsdriver.ErrUnexpectedExit) {
		return false, e.hostErr("wait for", err)
	}
	return false, nil
}

// graceful asks the system to shut down and waits up to grace for it; a
// kill (escalate) ends the wait early.
func (e *opEnv) graceful(ctx context.Context, grace time.Duration) bool {
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	e.mu.Lock()
	if e.killed {
		e.mu.Unlock()
		return false
	}
	e.cancelGrace = cancel
	e.mu.Unlock()
	sys := e.sys
	err := e.n.hostCall(gctx, "container.shutdown", func() error { return sys.Shutdown(gctx) })
	if err != nil && !errors.Is(err, hcsdriver.ErrAlreadyStopped) {
		return false
	}
	err = sys.Wait(gctx)
	return (err == nil || errors.Is(err, hcsdriver.ErrUnexpectedExit)) && !e.wasKilled()
}

// exitCode reads the init process's exit code once the system has stopped;
// nil when the platform does not know it.
func (e *opEnv) exitCode(ctx context.Context) *int {
	if e.initCode != nil {
		return e.initCode
	}
	if e.proc == nil {
		return nil
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if e.proc.Wait(wctx) != nil {
		return nil
	}
	if c, err := e.proc.ExitCode(); err == nil {
		return &c
	}
	return nil
}

func (e *opEnv) exitEvent(code *int, reason, msg string) events.Event {
	return e.event(events.ContainerExited, events.Exit{Code: code, Reason: reason, FinishedAt: time.Now().UTC(), Message: msg})
}

// reap handles an init process that ended by itself: the silo keeps
// running, so it is shut down, and the process's code is recorded.
func (e *opEnv) reap(ctx context.Context) opResult {
	var r opResult
	r.closeProc = true
	if _, err := e.halt(ctx, 30*time.Second); err != nil {
		e.n.cfg.Logger.Warn().Err(err).Str("container", e.id).Msg("silo not stopped after its init process exited")
	}
	msg := ""
	if e.initCode == nil {
		msg = "the platform did not report the init process's exit code"
	}
	return e.finish(ctx, &r, []events.Event{e.exitEvent(e.initCode, events.ReasonExited, msg)}, nil, nil)
}

func (e *opEnv) remove(ctx context.Context) opResult {
	var r opResult
	if e.rec.Phase == events.PhaseCreating {
		// A create whose roll back failed at the agent's start: roll it
		// back now (the fold allows removing only once it has failed).
		if err := e.dismantle(ctx, &r); err != nil {
			return e.finish(ctx, &r, nil, nil, err)
		}
		if err := e.record(ctx, &r, e.event(events.ContainerCreateFailed, events.FailureData{Error: "create interrupted; rolled back by remove"})); err != nil {
			return e.abort(r, err)
		}
	}
	if p := e.rec.Phase; p == events.PhaseRunning || p == events.PhaseStopping {
		if err := e.intent(ctx, &r, events.ContainerStopping, events.StoppingData{Kill: true}); err != nil {
			return e.abort(r, err)
		}
		exit, err := e.stopSystem(ctx, 0)
		r.closeProc = true
		if err != nil {
			return e.finish(ctx, &r, nil, nil, err)
		}
		if err := e.record(ctx, &r, exit); err != nil {
			return e.abort(r, err)
		}
	}
	if err := e.intent(ctx, &r, events.ContainerRemoving, nil); err != nil {
		return e.abort(r, err)
	}
	if err := e.dismantle(ctx, &r); err != nil {
		return e.finish(ctx, &r, []events.Event{e.event(events.ContainerRemoveFailed, failure(err))}, nil, err)
	}
	return e.finish(ctx, &r, []events.Event{e.event(events.ContainerRemoved, nil)}, e.result(events.PhaseRemoved, nil), nil)
}

// dismantle removes what the container holds on the host: its compute
// system first, then its endpoint and its scratch layer, which the host
// does not delete while a live system holds them.
func (e *opEnv) dismantle(ctx context.Context, r *opResult) error {
	if err := e.destroy(ctx); err != nil {
		return err
	}
	// What is gone is forgotten, so that dismantling again (a remove after
	// a roll back) does not record it gone twice.
	e.sys = nil
	r.sys, r.closeSys, r.closeProc = nil, true, true
	if ep := e.rec.Endpoint; ep != nil {
		if err := e.detach(ctx, r, ep); err != nil {
			return err
		}
		e.rec.Endpoint = nil
	}
	if e.rec.Scratch != nil {
		if err := e.removeScratch(ctx, r); err != nil {
			return err
		}
		e.rec.Scratch = nil
	}
	return nil
}

// destroy makes sure the compute system is gone: opened if needed, stopped
// if it was never started, and its handle closed (a stopped system leaves
// the host when its last handle closes).
func (e *opEnv) destroy(ctx context.Context) error {
	n := e.n
	if e.sys == nil {
		err := n.hostCall(ctx, "container.open", func() (err error) { e.sys, err = n.cfg.Compute.Open(ctx, e.id); return err })
		if errors.Is(err, hcsdriver.ErrNotFound) {
			return nil
		}
		if err != nil {
			return e.hostErr("open", err)
		}
	}
	info, err := e.sys.Properties(ctx)
	if err == nil && !info.Stopped {
		if _, err := e.halt(ctx, 0); err != nil {
			return err
		}
	}
	return e.sys.Close()
}

func failure(err error) events.FailureData {
	code, _ := events.CodeOf(err)
	return events.FailureData{Error: err.Error(), Code: code}
}

// isolation decides how a container of spec over img (nil without images)
// is isolated on this host; see imagedriver.ChooseIsolation. An image the
// host cannot run so is refused with 400, naming spec.isolation.
func (n *Node) isolation(spec *events.ContainerSpec, img *events.Image) (string, error) {
	var imageOS string
	if img != nil {
		if p, err := imagedriver.ParsePlatform(img.Platform); err == nil {
			imageOS = p.OSVersion
		}
	}
	host := imagedriver.Host{Platform: n.cfg.Platform, Client: n.cfg.ClientEdition}
	iso, err := imagedriver.ChooseIsolation(spec.Isolation, host, imageOS)
	if err != nil {
		return "", fmt.Errorf("%w: spec.isolation: %w", imagedriver.Class(err), err)
	}
	return string(iso), nil
}

// computeConfig maps a container spec onto a compute system config.
func computeConfig(id, owner string, spec *events.ContainerSpec) hcsdriver.Config {
	cfg := hcsdriver.Config{Owner: owner, HostName: spec.Hostname, HyperV: spec.Isolation == "hyperv"}
	if cfg.HostName == "" {
		cfg.HostName = id
		if len(id) > 15 { // NetBIOS limit Windows applies to computer names
			cfg.HostName = id[:15]
		}
	}
	if m := spec.Resources.Memory; m > 0 {
		cfg.MemoryMB = int64(math.Ceil(float64(m) / (1 << 20)))
	}
	if cpu := spec.Resources.CPU; cpu > 0 {
		cfg.ProcessorCount = uint32(math.Ceil(cpu))
		if host := runtime.NumCPU(); cpu < float64(host) {
			cfg.ProcessorMaximum = int64(math.Round(cpu / float64(host) * 10000))
		}
	}
	for _, m := range spec.Mounts {
		cfg.Mounts = append(cfg.Mounts, hcsdriver.Mount{HostPath: m.Source, ContainerPath: m.Target, ReadOnly: m.ReadOnly})
	}
	cfg.DNSSearchList = spec.Network.DNS.Search
	return cfg
}

// initProcess builds the init process of a container from its spec.
func initProcess(spec events.ContainerSpec) hcsdriver.ProcessConfig {
	return hcsdriver.ProcessConfig{
		CommandLine:      hcsdriver.CommandLine(append(append([]string{}, spec.Command.Entrypoint...), spec.Command.Args...)),
		User:             spec.User,
		WorkingDirectory: spec.Command.Workdir,
		Environment:      spec.Env,
		Stdout:           true,
		Stderr:           true,
	}
}
