package actors

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/rs/zerolog"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/netdriver"
)

// Journal is what the actors need of the event journal.
type Journal interface {
	// Append makes evs durable as one atomic batch and returns them with
	// their sequence numbers. Before it returns, the journal has handed the
	// events to Node.Durable.
	Append(ctx context.Context, evs ...events.Event) ([]events.Event, error)
	// ShouldSnapshot reports whether the fold at sequence seq is far enough
	// past the last snapshot to save a new one.
	ShouldSnapshot(seq uint64) bool
	// SaveSnapshot stores a copy of the fold that nothing else mutates.
	SaveSnapshot(ctx context.Context, st *events.State) error
}

// Config wires a node.
type Config struct {
	Node    string
	Owner   string // owner tag on every host object; "berth" by default
	Journal Journal
	Compute hcsdriver.Driver
	// Network, when set, gives containers endpoints on the node's network
	// once network.configure has configured it; nil turns networking off:
	// network.configure is refused and containers get no endpoint.
	Network netdriver.Driver
	// HostOps bounds concurrent host operations across all containers
	// (default 32).
	HostOps int
	// MaxContainers, when positive, bounds the containers the node holds
	// (created and not yet removed, creates in flight included): a create
	// or run beyond it is refused with a conflict (409) naming the limit.
	MaxContainers int
	// StopTimeout is the grace period of a stop that names none (default 10s).
	StopTimeout time.Duration
	// Output, when set, receives each init process's stdout and stderr as
	// they are produced; it must read until EOF. Unset, output is drained
	// and discarded.
	Output func(container, stream string, r io.Reader)
	// Exec, when set, serves the stdio of exec sessions; nil turns exec off
	// (exec commands are refused with 409).
	Exec ExecAttacher
	// MaxExecs bounds the exec sessions one container runs at once
	// (default DefaultMaxExecs).
	MaxExecs int
	// OnHostCall, when set, is called after each host operation with the
	// operation's name (container.list, container.create, container.open,
	// container.start, container.shutdown, container.terminate,
	// container.stats, container.exec, endpoint.list, endpoint.create,
	// endpoint.delete, network.get, network.ensure, image.pull, image.load,
	// layer.list, layer.remove, scratch.create, scratch.remove), how long the
	// host took and its error. It is called from many goroutines and must be
	// cheap.
	OnHostCall func(op string, took time.Duration, err error)
	// Images and Layers, when both set, give containers their image: a
	// create pulls the image its spec names according to its pull policy,
	// creates the container's scratch layer in Layers over the image's
	// layers, and runs the image's command unless the spec names one; a
	// remove deletes the scratch layer; the image verbs work. Unset,
	// containers are created without layers (their spec must name a
	// command) and the image verbs are refused with 503.
	Images ImagePuller
	Layers imagedriver.LayerStore
	// Platform is what the host runs: pulls choose the image that best
	// runs on it.
	Platform imagedriver.Platform
	// ClientEdition is true on a client edition of Windows, where a
	// container whose spec names no isolation gets Hyper-V isolation (on a
	// server, process isolation); see imagedriver.ChooseIsolation.
	ClientEdition bool
	// OnPullProgress, when set, receives each pull's progress, by the
	// pull's normalized reference, at most every ProgressInterval per pull.
	OnPullProgress func(ref string, u imagedriver.ProgressUpdate)
	// ReconcileTimeout bounds each action of Reconcile (default 1m).
	ReconcileTimeout time.Duration
	// OnReconcile, when set, is called after each action of Reconcile with
	// its kind and outcome (events.OutcomeOK, OutcomeError or
	// OutcomeTimeout). It is called from many goroutines and must be cheap.
	OnReconcile func(kind events.ActionKind, outcome string)
	Logger      zerolog.Logger
}

// Node is a running node actor and its containers. Its methods are safe for
// concurrent use.
type Node struct {
	cfg    Config
	sys    *actor.ActorSystem
	pid    *actor.PID
	hostOp chan struct{}   // semaphore bounding host operations
	ctx    context.Context // cancelled by Shutdown: ends ops and watchers
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the node starts
	booted bool           // set and read by the node actor only
	// reconciled is set once Reconcile has completed: from then on, a
	// container actor rebuilt after a panic reconciles its container itself.
	reconciled atomic.Bool

	net    *netState                 // the network actor's state; set by the node actor at boot
	netPID atomic.Pointer[actor.PID] // the network actor; nil while networking is off
	img    *imageState               // the image actor's state; set by the node actor at boot
	imgPID atomic.Pointer[actor.PID] // the image actor; nil while images are off
}

// New checks cfg and prepares a node; Start runs it. Between the two, the
// node can already be handed to the journal as its OnDurable callback.
// cfg.Journal may be nil here; Start supplies it.
func New(cfg Config) (*Node, error) {
	if err := events.ValidateNodeID(cfg.Node); err != nil {
		return nil, err
	}
	if cfg.Compute == nil {
		return nil, errors.New("actors: a compute driver is required")
	}
	if cfg.Owner == "" {
		cfg.Owner = "berth"
	}
	if cfg.HostOps <= 0 {
		cfg.HostOps = 32
	}
	if cfg.MaxExecs <= 0 {
		cfg.MaxExecs = DefaultMaxExecs
	}
	if cfg.StopTimeout <= 0 {
		cfg.StopTimeout = 10 * time.Second
	}
	if cfg.ReconcileTimeout <= 0 {
		cfg.ReconcileTimeout = time.Minute
	}
	n := &Node{cfg: cfg, hostOp: make(chan struct{}, cfg.HostOps)}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	zl := cfg.Logger.With().Str("component", "actor").Logger()
	n.sys = actor.NewActorSystem(actor.WithLoggerFactory(func(s *actor.ActorSystem) *slog.Logger {
		return slog.New(zerolog.NewSlogHandler(zl))
	}))
	return n, nil
}

// Start spawns the node actor on the fold st (the result of replay) and a
// container actor for every container in it. The node takes ownership of
// st. j, when not nil, replaces cfg.Journal. Call Reconcile next, before
// submitting commands: it reopens what the host still holds.
func (n *Node) Start(j Journal, st *events.State) error {
	if j != nil {
		n.cfg.Journal = j
	}
	if n.cfg.Journal == nil {
		return errors.New("actors: a journal is required")
	}
	props := actor.PropsFromProducer(func() actor.Actor { return &nodeActor{n: n, st: st} },
		actor.WithReceiverMiddleware(n.recoverPanics),
		actor.WithSupervisor(actor.NewOneForOneStrategy(10, 10*time.Second, func(any) actor.Directive { return actor.RestartDirective })),
		actor.WithGuardian(actor.NewOneForOneStrategy(100, time.Second, func(any) actor.Directive { return actor.RestartDirective })))
	pid, err := n.sys.Root.SpawnNamed(props, "node")
	if err != nil {
		return fmt.Errorf("spawning node actor: %w", err)
	}
	n.pid = pid
	// Children are spawned only now, so nothing is journaled (and handed
	// to Durable) before n.pid is set.
	n.sys.Root.Send(pid, &bootMsg{})
	return nil
}

// Durable hands events that the journal has made durable to the node, in
// stream order. The journal calls it from its writer (journal.Config.OnDurable).
func (n *Node) Durable(evs []events.Event) {
	n.sys.Root.Send(n.pid, &durableMsg{evs: evs})
}

// Submit hands a validated command to the node and returns a channel that
// yields its one reply. Commands submitted in sequence reach their
// containers in that sequence. A command id that was already handled is
// answered with the recorded reply; one that is still being handled is
// answered when it completes, without running twice.
func (n *Node) Submit(cmd events.Command) <-chan events.Reply {
	reply := make(chan events.Reply, 1)
	n.sys.Root.Send(n.pid, &submitMsg{cmd: cmd, reply: reply})
	return reply
}

// State returns a copy of the fold.
func (n *Node) State(ctx context.Context) (*events.State, error) {
	r, err := ask[*events.State](ctx, n, func(c chan result[*events.State]) any { return &stateReq{reply: c} })
	return r, err
}

// Inspect returns the fold's record of container id, or an ErrNotFound error.
func (n *Node) Inspect(ctx context.Context, id string) (events.Container, error) {
	return ask[events.Container](ctx, n, func(c chan result[events.Container]) any { return &inspectReq{id: id, reply: c} })
}

// Stats samples the resource usage of a running container.
func (n *Node) Stats(ctx context.Context, id string) (events.Stats, error) {
	return ask[events.Stats](ctx, n, func(c chan result[events.Stats]) any { return &statsReq{ctx: ctx, id: id, reply: c} })
}

// Wait blocks until container id has exited and returns how it ended. It
// returns at once for a container that has exited already.
func (n *Node) Wait(ctx context.Context, id string) (events.Exit, error) {
	return ask[events.Exit](ctx, n, func(c chan result[events.Exit]) any { return &waitReq{id: id, reply: c} })
}

// Shutdown stops every actor and waits for the goroutines the node started.
// Containers keep running on the host: a restarted agent adopts them.
func (n *Node) Shutdown(ctx context.Context) error {
	n.cancel()
	if err := n.sys.Root.PoisonFuture(n.pid).Wait(); err != nil && !errors.Is(err, actor.ErrDeadLetter) {
		return fmt.Errorf("stopping node actor: %w", err)
	}
	done := make(chan struct{})
	go func() { n.wg.Wait(); close(done) }()
	select {
	case <-done:
		n.sys.Shutdown()
		return nil
	case <-ctx.Done():
		return fmt.Errorf("waiting for host operations: %w", ctx.Err())
	}
}

type result[T any] struct {
	v   T
	err error
}

// ask sends the node actor the message msg builds around a reply channel
// and waits for the reply.
func ask[T any](ctx context.Context, n *Node, msg func(chan result[T]) any) (T, error) {
	c := make(chan result[T], 1)
	n.sys.Root.Send(n.pid, msg(c))
	r, err := await(ctx, n, c)
	if err != nil {
		return r.v, err
	}
	return r.v, r.err
}

// await waits for an actor's answer on c, for ctx, or for the node's
// shutdown: an actor that has stopped answers nothing, so a caller that
// waited on c alone would wait forever.
func await[V any](ctx context.Context, n *Node, c <-chan V) (V, error) {
	var zero V
	select {
	case v := <-c:
		return v, nil
	case <-ctx.Done():
		return zero, ctx.Err()
	case <-n.ctx.Done():
		return zero, fmt.Errorf("%w: agent shutting down", events.ErrUnavailable)
	}
}

// goOwned runs f in a goroutine the node waits for on Shutdown.
func (n *Node) goOwned(f func()) {
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		f()
	}()
}

// hostCall runs f, the host operation op, while holding one of the host
// operation slots, and reports it to Config.OnHostCall.
func (n *Node) hostCall(ctx context.Context, op string, f func() error) error {
	select {
	case n.hostOp <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	}
	defer func() { <-n.hostOp }()
	if n.cfg.OnHostCall == nil {
		return f()
	}
	start := time.Now()
	err := f()
	n.cfg.OnHostCall(op, time.Since(start), err)
	return err
}

// recoverPanics logs a panic with its stack at error level (protoactor logs
// it at info without one), answers the command that caused it with an
// internal error, and re-panics so that supervision rebuilds the actor.
func (n *Node) recoverPanics(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(c actor.ReceiverContext, env *actor.MessageEnvelope) {
		defer func() {
			r := recover()
			if r == nil {
				return
			}
			n.cfg.Logger.Error().Str("actor", c.Self().Id).Str("message", fmt.Sprintf("%T", env.Message)).
				Str("panic", fmt.Sprint(r)).Str("stack", string(debug.Stack())).Msg("actor panicked; rebuilding it from the fold")
			err := fmt.Errorf("%w: actor panicked: %v", events.ErrInternal, r)
			switch m := env.Message.(type) {
			case *submitMsg:
				m.reply <- events.NewReply(m.cmd.ID, nil, err)
			case *cmdMsg:
				n.sys.Root.Send(n.pid, &answer{id: m.cmd.ID, reply: events.NewReply(m.cmd.ID, nil, err)})
			case *leaseReq:
				m.reply <- result[*lease]{err: err}
			}
			panic(r)
		}()
		next(c, env)
	}
}
