// Package agent assembles one berth agent: NATS (embedded or external), the
// journal, replay, the node's actors on a compute driver, and the NATS API.
// berthd runs it with its flags; end-to-end tests and benchmarks run it in
// process on the simulated host, so that they exercise the same wiring.
package agent

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/berthhq/berth/actors"
	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/internal/metrics"
	"github.com/berthhq/berth/journal"
	"github.com/berthhq/berth/netdriver"
)

// Options configures an agent.
type Options struct {
	Node    string
	Prefix  string // subject prefix; events.DefaultPrefix when empty
	Owner   string // owner tag; "berth" when empty
	DataDir string // embedded NATS keeps its store in DataDir/nats
	// Listen (empty: no listener) and Credentials configure the embedded
	// server's listener, which requires authentication: Credentials, else
	// User and Password. NATSURL selects an external server instead, which
	// the agent signs in to with Credentials' agent seed, else User and
	// Password when Password is set.
	Listen, User, Password string
	Credentials            *journal.Credentials
	NATSURL                string
	// TLS is the external server's CA and the agent's client certificate,
	// or the embedded listener's certificate and the CA its clients'
	// certificates must be signed by.
	TLS      journal.TLSFiles
	Replicas int // stream replicas; 1 embedded, 3 external when 0
	// Host names the compute host in node.started ("hcs" or "winsim").
	Host    string
	Compute hcsdriver.Driver
	// Network serves the node's network and container endpoints; nil
	// turns networking off (see actors.Config.Network).
	Network netdriver.Driver
	// Images pulls into Layers the images of the platform the host runs;
	// both nil turn images off (see actors.Config.Images).
	Images        actors.ImagePuller
	Layers        imagedriver.LayerStore
	Platform      imagedriver.Platform
	ClientEdition bool // see actors.Config.ClientEdition
	HostOps       int
	StopTimeout   time.Duration
	SnapshotEvery int
	// InboxAckWait is how long a delivered command may stay unanswered
	// before the inbox delivers it again (journal.Config.InboxAckWait).
	InboxAckWait time.Duration
	// OnReconcile, when set, is told of each reconcile action's kind and
	// outcome (actors.Config.OnReconcile).
	OnReconcile func(kind events.ActionKind, outcome string)
	// Failpoint is for crash tests: when set, it is called before each
	// append of the node's actors (durable false) and after it succeeds
	// (durable true), with the events, and may block to hold the agent at
	// that step.
	Failpoint func(evs []events.Event, durable bool)
	// ExecOff turns exec off; MaxExecs bounds a container's exec sessions
	// (actors.DefaultMaxExecs when 0) and ExecIdle is how long a session
	// waits for word from its client (control.DefaultExecIdle when 0).
	ExecOff  bool
	MaxExecs int
	ExecIdle time.Duration
	// LogMaxBytes and LogMaxAge bound the node's log stream (the journal's
	// defaults when 0).
	LogMaxBytes int64
	LogMaxAge   time.Duration
	// LogRate bounds each container's output in bytes/s (journal.Config.LogRate).
	LogRate int
	// MaxContainers bounds the containers of the node (actors.Config);
	// MountRoots and MaxCommandSize are checked at intake (control.Options).
	MaxContainers  int
	MountRoots     []string
	MaxCommandSize int
	// Metrics, when set, receives the agent's measurements: commands, journal
	// batches, host operations, and containers by phase.
	Metrics *metrics.Metrics
	Logger  zerolog.Logger
}

// Agent is a running agent.
type Agent struct {
	Node     *actors.Node
	Journal  *journal.Journal
	Server   *journal.Server // nil in external mode
	Conn     *nats.Conn      // the agent's own connection
	Subjects events.Subjects

	api      *control.Server
	execs    *control.ExecHub // nil when exec is off
	closed   bool
	stopping atomic.Bool
}

// Start runs an agent until Stop. It returns once the agent consumes
// commands. On error everything it started is stopped again.
func Start(ctx context.Context, o Options) (a *Agent, err error) {
	if err := events.ValidateNodeID(o.Node); err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	if o.Owner == "" {
		o.Owner = "berth"
	}
	log := o.Logger
	a = &Agent{Subjects: events.NewSubjects(o.Prefix, o.Node)}
	started := a // a is nil once a failing return has run
	defer func() {
		if err != nil {
			started.Stop(context.Background())
		}
		if errors.Is(err, journal.ErrFenced) {
			err = fmt.Errorf("node %s: %w: %w", o.Node, ErrFenced, err)
		}
	}()
	if err := a.connect(ctx, &o); err != nil {
		return nil, err
	}
	// Output is called only for containers started after Node.Start, when
	// the journal is open.
	output := func(container, stream string, r io.Reader) { a.Journal.Logs().Copy(container, stream, r) }
	cfg := actors.Config{
		Node: o.Node, Owner: o.Owner, Compute: o.Compute, Network: o.Network, HostOps: o.HostOps,
		StopTimeout: o.StopTimeout, MaxContainers: o.MaxContainers, Output: output, MaxExecs: o.MaxExecs, Logger: log,
		Images: o.Images, Layers: o.Layers, Platform: o.Platform, ClientEdition: o.ClientEdition, OnPullProgress: a.publishProgress,
		OnReconcile: o.OnReconcile,
	}
	if !o.ExecOff {
		if a.execs, err = control.NewExecHub(a.Conn, a.Subjects, o.ExecIdle, log); err != nil {
			return nil, err
		}
		cfg.Exec = execAttacher{a.execs}
	}
	if o.Metrics != nil {
		cfg.OnHostCall = o.Metrics.ObserveHostCall
		cfg.OnReconcile = func(kind events.ActionKind, outcome string) {
			o.Metrics.ObserveReconcile(kind, outcome)
			if o.OnReconcile != nil {
				o.OnReconcile(kind, outcome)
			}
		}
	}
	a.Node, err = actors.New(cfg)
	if err != nil {
		return nil, err
	}
	jcfg := journal.Config{
		Subjects: a.Subjects, Replicas: o.Replicas, SnapshotEvery: o.SnapshotEvery,
		Window: events.DefaultWindow, OnDurable: a.Node.Durable, InboxAckWait: o.InboxAckWait,
		LogMaxBytes: o.LogMaxBytes, LogMaxAge: o.LogMaxAge, LogRate: o.LogRate, Logger: log,
	}
	if o.Metrics != nil {
		jcfg.OnCommit = o.Metrics.ObserveCommit
		jcfg.OnLogDrop = o.Metrics.ObserveLogDrop
	}
	a.Journal, err = journal.Open(ctx, a.Conn, jcfg)
	if err != nil {
		return nil, fmt.Errorf("opening the journal: %w", err)
	}
	bootStart := time.Now()
	st, err := a.Journal.Boot(ctx)
	if err != nil {
		return nil, fmt.Errorf("replaying the journal: %w", err)
	}
	log.Info().Uint64("seq", st.Seq).Int("containers", len(st.Containers)).Dur("took", time.Since(bootStart)).Msg("journal replayed")
	var j actors.Journal = a.Journal
	if o.Failpoint != nil {
		j = failpointJournal{a.Journal, o.Failpoint}
	}
	if err := a.Node.Start(j, st); err != nil {
		return nil, err
	}
	if _, err := a.Journal.Append(ctx, events.NewEvent(o.Node, events.NodeStarted, o.Node, "",
		events.NodeStartedData{Version: control.Version, Host: o.Host, Owner: o.Owner})); err != nil {
		return nil, fmt.Errorf("recording the start: %w", err)
	}
	// Commands are consumed only once the host and the fold agree.
	rec, err := a.Node.Reconcile(ctx)
	if err != nil {
		return nil, fmt.Errorf("reconciling with the host: %w", err)
	}
	log.Info().Interface("summary", rec.Summary).Dur("took", rec.Took.Std()).Msg("reconciled with the host")
	inbox, err := a.Journal.Inbox(ctx)
	if err != nil {
		return nil, fmt.Errorf("opening the command inbox: %w", err)
	}
	copts := control.Options{
		Conn: a.Conn, Subjects: a.Subjects, Agent: a.Node, Inbox: inbox, History: a.Journal, Planner: a.Node, Logger: log,
		MountRoots: o.MountRoots, MaxCommandSize: o.MaxCommandSize,
	}
	if o.Metrics != nil {
		copts.Observer = o.Metrics
		o.Metrics.WatchContainers(a.state)
	}
	a.api, err = control.NewServer(copts)
	if err != nil {
		return nil, err
	}
	if err := a.api.Start(ctx); err != nil {
		a.api = nil
		return nil, fmt.Errorf("starting the API: %w", err)
	}
	log.Info().Str("commands", a.Subjects.Commands()).Str("events", a.Subjects.Events()).
		Str("api", a.Subjects.APIGroup()+".>").Msg("berthd ready")
	return a, nil
}

// failpointJournal calls a failpoint around each append.
type failpointJournal struct {
	*journal.Journal
	at func(evs []events.Event, durable bool)
}

func (f failpointJournal) Append(ctx context.Context, evs ...events.Event) ([]events.Event, error) {
	f.at(evs, false)
	out, err := f.Journal.Append(ctx, evs...)
	if err == nil {
		f.at(out, true)
	}
	return out, err
}

func (a *Agent) connect(ctx context.Context, o *Options) error {
	if o.NATSURL != "" {
		if o.Replicas == 0 {
			o.Replicas = 3
		}
		opts, err := o.TLS.ClientOptions()
		if err != nil {
			return err
		}
		switch {
		case o.Credentials != nil:
			sign, err := o.Credentials.AgentOption()
			if err != nil {
				return err
			}
			opts = append(opts, sign)
		case o.Password != "":
			opts = append(opts, nats.UserInfo(o.User, o.Password))
		}
		nc, err := journal.Connect(ctx, o.NATSURL, opts...)
		if err != nil {
			return fmt.Errorf("connecting to %s: %w", o.NATSURL, err)
		}
		a.Conn = nc
		return nil
	}
	so := journal.ServerOptions{
		DataDir: filepath.Join(o.DataDir, "nats"), Listen: o.Listen, Credentials: o.Credentials, Subjects: a.Subjects,
		TLS: o.TLS, SyncAlways: true, Logger: o.Logger,
	}
	if o.Credentials == nil {
		so.User, so.Password = o.User, o.Password
	}
	s, err := journal.StartServer(ctx, so)
	if err != nil {
		return fmt.Errorf("starting embedded NATS: %w", err)
	}
	a.Server = s
	if a.Conn, err = s.Connect(); err != nil {
		return fmt.Errorf("connecting to embedded NATS: %w", err)
	}
	if u := s.ClientURL(); u != "" {
		o.Logger.Info().Str("url", u).Bool("nkeys", o.Credentials != nil).Bool("tls", !o.TLS.IsZero()).Msg("embedded NATS listening")
	}
	return nil
}

// publishProgress publishes a pull's progress on
// <prefix>.progress.<node>.img.<RefToken(ref)>; a message that cannot go
// out is dropped: progress is not persisted.
func (a *Agent) publishProgress(ref string, u imagedriver.ProgressUpdate) {
	p := events.ImageProgress{Ref: ref, Layers: make([]events.LayerProgress, len(u.Layers))}
	for i, l := range u.Layers {
		p.Layers[i] = events.LayerProgress{Digest: l.Digest, Current: l.Current, Total: l.Total, State: string(l.State)}
	}
	b, err := json.Marshal(p)
	if err == nil {
		_ = a.Conn.Publish(a.Subjects.Progress(events.KindImage, events.RefToken(ref)), b)
	}
}

// ErrFenced: another agent for the same node wrote to the node's journal,
// so this agent's view is stale; it must stop.
var ErrFenced = errors.New("another agent for this node is writing its journal; this agent stops: run one agent per node")

// Fenced returns a channel that is closed when the journal fences this
// agent: another agent for the same node has written to the journal since
// this one read it. The agent then refuses every write; its owner should
// Stop it and report FenceError.
func (a *Agent) Fenced() <-chan struct{} { return a.Journal.Failed() }

// FenceError describes the fence, naming the node; nil while not fenced.
func (a *Agent) FenceError() error {
	err := a.Journal.Err()
	if err == nil {
		return nil
	}
	return fmt.Errorf("node %s: %w (%v)", a.Subjects.Node, ErrFenced, err)
}

// Ready reports whether the agent consumes commands: Start has returned,
// Stop has not been called, and the command intake works. It is safe to
// call from any goroutine.
func (a *Agent) Ready() bool {
	return !a.stopping.Load() && a.api != nil && a.api.Consuming()
}

// state is the node's fold, refused at once from the moment Stop is called.
func (a *Agent) state(ctx context.Context) (*events.State, error) {
	if a.stopping.Load() {
		return nil, fmt.Errorf("%w: agent stopping", events.ErrUnavailable)
	}
	return a.Node.State(ctx)
}

// Stop stops taking commands, lets the replies in flight go out, stops the
// actors and closes the journal and NATS. Containers keep running on the
// host. Stop is idempotent.
func (a *Agent) Stop(ctx context.Context) error {
	if a.closed {
		return nil
	}
	a.closed = true
	a.stopping.Store(true)
	var errs []error
	if a.api != nil {
		errs = append(errs, a.api.Stop(ctx))
	}
	if a.execs != nil {
		// Exec streams cannot outlive the agent: their processes are killed,
		// and their ends recorded while the actors still run.
		errs = append(errs, a.execs.Close(ctx))
	}
	if a.Node != nil {
		errs = append(errs, a.Node.Shutdown(ctx))
	}
	if a.Journal != nil {
		// The containers' last lines: their pipes closed with the actors.
		fctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		errs = append(errs, a.Journal.Logs().Flush(fctx), a.Journal.Close())
		cancel()
	}
	if a.Conn != nil {
		errs = append(errs, a.Conn.Drain())
	}
	if a.Server != nil {
		a.Server.Shutdown()
	}
	return errors.Join(errs...)
}

// execAttacher lets the actors hand exec processes to the exec hub.
type execAttacher struct{ h *control.ExecHub }

func (x execAttacher) Attach(ctx context.Context, id string, p hcsdriver.Process, tty bool) (<-chan events.ExecExit, error) {
	return x.h.Attach(ctx, id, p, tty)
}

func (x execAttacher) Serves(id string) bool { return x.h.Serves(id) }
