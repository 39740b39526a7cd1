package control_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/journal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const node = "n1"

// harness is a real embedded NATS server with the node's journal, a fake
// agent writing to that journal, the control server and a client on a
// second connection.
type harness struct {
	t      testing.TB
	ns     *journal.Server
	nc     *nats.Conn // the agent's connection
	cnc    *nats.Conn // the client's connection
	js     jetstream.JetStream
	j      *journal.Journal
	agent  *fakeAgent
	srv    *control.Server
	client *control.Client
	subj   events.Subjects
	opts   control.Options
}

// hconfig varies a harness.
type hconfig struct {
	ackWait     time.Duration // journal inbox ack wait
	maxInFlight int
	noInbox     bool // queries only
	noHistory   bool
	observer    control.Observer
	maxCommand  int       // control.Options.MaxCommandSize
	logTo       io.Writer // also receives the server's log
}

// mountRoot is the one folder a harness's containers may mount from.
const mountRoot = `D:\data`

func newHarness(t testing.TB, cfg hconfig) *harness {
	t.Helper()
	ctx := context.Background()
	h := &harness{t: t, subj: events.NewSubjects("", node)}
	ns, err := journal.StartServer(ctx, journal.ServerOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	h.ns = ns
	t.Cleanup(ns.Shutdown)
	if h.nc, err = ns.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.nc.Close)
	if h.cnc, err = ns.Connect(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.cnc.Close)
	if h.js, err = jetstream.New(h.cnc); err != nil {
		t.Fatal(err)
	}
	if h.j, err = journal.Open(ctx, h.nc, journal.Config{Subjects: h.subj, InboxAckWait: cfg.ackWait}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = h.j.Close() })
	st, err := h.j.Boot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.agent = newFakeAgent(h.j, st)
	h.opts = control.Options{Conn: h.nc, Subjects: h.subj, Agent: h.agent, MaxInFlight: cfg.maxInFlight,
		Observer: cfg.observer, MountRoots: []string{mountRoot}, MaxCommandSize: cfg.maxCommand}
	var logw io.Writer = zerolog.NewTestWriter(t)
	if cfg.logTo != nil {
		logw = io.MultiWriter(logw, cfg.logTo)
	}
	h.opts.Logger = zerolog.New(logw).Level(zerolog.InfoLevel)
	if !cfg.noInbox {
		if h.opts.Inbox, err = h.j.Inbox(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if !cfg.noHistory {
		h.opts.History = h.j
	}
	h.start()
	if h.client, err = control.NewClient(h.cnc, node, control.WithTimeout(10*time.Second)); err != nil {
		t.Fatal(err)
	}
	return h
}

// start starts a control server with h.opts.
func (h *harness) start() {
	h.t.Helper()
	srv, err := control.NewServer(h.opts)
	if err != nil {
		h.t.Fatal(err)
	}
	if err := srv.Start(context.Background()); err != nil {
		h.t.Fatal(err)
	}
	h.srv = srv
	h.t.Cleanup(func() { _ = srv.Stop(context.Background()) })
}

// publish sends a raw command message, as any publisher could.
func (h *harness) publish(verb, msgID, replyTo string, data []byte) {
	h.t.Helper()
	msg := nats.NewMsg(h.subj.Command(verb))
	msg.Data = data
	if replyTo != "" {
		msg.Header.Set(events.HeaderReplyTo, replyTo)
	}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	if _, err := h.js.PublishMsg(context.Background(), msg, opts...); err != nil {
		h.t.Fatalf("publish %s: %v", verb, err)
	}
}

// replies subscribes to a fresh inbox for command replies.
func (h *harness) replies() (string, *nats.Subscription) {
	h.t.Helper()
	inbox := h.cnc.NewRespInbox()
	sub, err := h.cnc.SubscribeSync(inbox)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { _ = sub.Unsubscribe() })
	return inbox, sub
}

// next waits for the next message on sub.
func (h *harness) next(sub *nats.Subscription) *nats.Msg {
	h.t.Helper()
	m, err := sub.NextMsg(10 * time.Second)
	if err != nil {
		h.t.Fatalf("waiting for a reply: %v", err)
	}
	return m
}

// streamMsgs returns the number of messages in a stream.
func (h *harness) streamMsgs(name string) uint64 {
	h.t.Helper()
	st, err := h.js.Stream(context.Background(), name)
	if err != nil {
		h.t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		h.t.Fatal(err)
	}
	return info.State.Msgs
}

// inboxEmpties waits until the command stream is empty: acknowledgements
// and terminations reach the stream after the replies do.
func (h *harness) inboxEmpties() {
	h.t.Helper()
	h.inboxHolds(0)
}

// inboxHolds waits until the command stream holds n commands.
func (h *harness) inboxHolds(n uint64) {
	h.t.Helper()
	for start := time.Now(); h.streamMsgs(h.subj.CommandStream()) != n; time.Sleep(5 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			h.t.Fatalf("the inbox holds %d commands, want %d", h.streamMsgs(h.subj.CommandStream()), n)
		}
	}
}

func encode(t testing.TB, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func spec(image string) *events.ContainerSpec {
	return &events.ContainerSpec{Image: events.ImageSpec{Ref: image}}
}

// fakeAgent is a small node: it checks each command against the fold,
// appends the events it implies to the real journal and applies them. It
// answers a command id it has already handled with the recorded outcome.
// While held, it keeps replies back until release.
type fakeAgent struct {
	j *journal.Journal

	mu          sync.Mutex
	st          *events.State
	got         []events.Command
	gotCh       chan events.Command
	hold        bool
	held        []func()
	outstanding int // submitted, reply not sent yet
	maxOut      int
}

func newFakeAgent(j *journal.Journal, st *events.State) *fakeAgent {
	return &fakeAgent{j: j, st: st, gotCh: make(chan events.Command, 1024)}
}

func (a *fakeAgent) Submit(cmd events.Command) <-chan events.Reply {
	ch := make(chan events.Reply, 1)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, cmd)
	a.gotCh <- cmd
	a.outstanding++
	a.maxOut = max(a.maxOut, a.outstanding)
	reply := func() {
		r := a.exec(cmd)
		a.outstanding--
		ch <- r
	}
	if a.hold {
		a.held = append(a.held, reply)
		return ch
	}
	reply()
	return ch
}

// setHold holds replies back, or stops holding them.
func (a *fakeAgent) setHold(on bool) {
	a.mu.Lock()
	a.hold = on
	a.mu.Unlock()
}

// release sends the oldest held reply.
func (a *fakeAgent) release() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.held[0]()
	a.held = a.held[1:]
}

func (a *fakeAgent) submitted() []events.Command {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]events.Command(nil), a.got...)
}

// waitSubmit waits for the next command the agent receives.
func (a *fakeAgent) waitSubmit(t testing.TB) events.Command {
	t.Helper()
	select {
	case c := <-a.gotCh:
		return c
	case <-time.After(10 * time.Second):
		t.Fatal("no command reached the agent")
	}
	return events.Command{}
}

// exec runs cmd against the fold; a.mu is held.
func (a *fakeAgent) exec(cmd events.Command) events.Reply {
	if o, ok := a.st.Outcome(cmd.ID); ok {
		return o.Reply
	}
	var (
		evs []events.Event
		res any
		err error
	)
	if cmd.Verb == events.VerbNetworkConfigure {
		evs, res, err = a.configure(cmd)
	} else {
		evs, res, err = a.plan(cmd)
	}
	r := events.NewReply(cmd.ID, res, err)
	evs = append(evs, events.NewEvent(node, events.NodeCommandCompleted, cmd.ID, cmd.ID,
		events.CommandCompletedData{Verb: cmd.Verb, Container: cmd.Container, Reply: r}))
	durable, aErr := a.j.Append(context.Background(), evs...)
	if aErr != nil {
		return events.NewReply(cmd.ID, nil, fmt.Errorf("%w: journal: %w", events.ErrUnavailable, aErr))
	}
	for i := range durable {
		if err := a.st.Apply(&durable[i]); err != nil {
			return events.NewReply(cmd.ID, nil, fmt.Errorf("%w: fold: %w", events.ErrInternal, err))
		}
	}
	return r
}

// plan returns the events a command implies, or why it cannot run.
func (a *fakeAgent) plan(cmd events.Command) ([]events.Event, events.ContainerResult, error) {
	id := cmd.Container
	res := events.ContainerResult{Container: id}
	ev := func(typ string, data any) events.Event { return events.NewEvent(node, typ, id, cmd.ID, data) }
	c := a.st.Containers[id]
	var phase events.Phase
	if c != nil {
		phase = c.Phase
	}
	var evs []events.Event
	switch cmd.Verb {
	case events.VerbCreate, events.VerbRun:
		if c != nil && phase != events.PhaseFailed {
			return nil, res, fmt.Errorf("%w: container %s already exists", events.ErrConflict, id)
		}
		evs = append(evs, ev(events.ContainerCreating, events.CreatingData{Spec: *cmd.Spec, Owner: "berth"}),
			ev(events.ContainerCreated, events.CreatedData{HostID: id}))
		res.Phase = events.PhaseCreated
		if cmd.Verb == events.VerbRun {
			evs = append(evs, ev(events.ContainerStarting, nil), ev(events.ContainerStarted, events.StartedData{Pid: 4}))
			res.Phase = events.PhaseRunning
		}
	case events.VerbStart:
		if c == nil {
			return nil, res, fmt.Errorf("%w: container %s", events.ErrNotFound, id)
		}
		if phase != events.PhaseCreated {
			return nil, res, fmt.Errorf("%w: container %s is %s", events.ErrWrongPhase, id, phase)
		}
		evs = append(evs, ev(events.ContainerStarting, nil), ev(events.ContainerStarted, events.StartedData{Pid: 4}))
		res.Phase = events.PhaseRunning
	case events.VerbStop, events.VerbKill:
		if c == nil {
			return nil, res, fmt.Errorf("%w: container %s", events.ErrNotFound, id)
		}
		if phase != events.PhaseRunning {
			return nil, res, fmt.Errorf("%w: container %s is %s", events.ErrWrongPhase, id, phase)
		}
		evs, res.Exit = a.stop(ev, cmd.Verb == events.VerbKill)
		res.Phase = events.PhaseExited
	case events.VerbRemove:
		if c == nil {
			return nil, res, fmt.Errorf("%w: container %s", events.ErrNotFound, id)
		}
		if phase == events.PhaseRunning {
			if !cmd.Force {
				return nil, res, fmt.Errorf("%w: container %s is running: stop it first, or remove it with force", events.ErrWrongPhase, id)
			}
			evs, _ = a.stop(ev, true)
		}
		evs = append(evs, ev(events.ContainerRemoving, nil), ev(events.ContainerRemoved, nil))
		res.Phase = events.PhaseRemoved
	}
	return evs, res, nil
}

// configure records a network configuration as the agent does: named
// berth-overlay, with the slice's first address as its gateway.
func (a *fakeAgent) configure(cmd events.Command) ([]events.Event, events.NetworkConfiguredData, error) {
	d := events.NetworkConfiguredData{Name: "berth-overlay", NetworkConfig: *cmd.Network,
		Gateway: netip.MustParsePrefix(cmd.Network.NodeSlice).Addr().Next().String()}
	return []events.Event{events.NewEvent(node, events.NetworkConfigured, d.Name, cmd.ID, d)}, d, nil
}

func (a *fakeAgent) stop(ev func(string, any) events.Event, kill bool) ([]events.Event, *events.Exit) {
	exit := &events.Exit{Code: events.ExitCode(0), Reason: events.ReasonExited, FinishedAt: time.Now().UTC()}
	if kill {
		exit.Code, exit.Reason = events.ExitCode(137), events.ReasonKilled
	}
	return []events.Event{ev(events.ContainerStopping, events.StoppingData{Kill: kill}), ev(events.ContainerExited, exit)}, exit
}

func (a *fakeAgent) State(context.Context) (*events.State, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.Clone(), nil
}

func (a *fakeAgent) Inspect(_ context.Context, id string) (events.Container, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.st.Containers[id]
	if !ok {
		return events.Container{}, fmt.Errorf("%w: container %s", events.ErrNotFound, id)
	}
	return *c, nil
}

func (a *fakeAgent) Stats(_ context.Context, id string) (events.Stats, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	c, ok := a.st.Containers[id]
	switch {
	case !ok:
		return events.Stats{}, fmt.Errorf("%w: container %s", events.ErrNotFound, id)
	case c.Phase != events.PhaseRunning:
		return events.Stats{}, fmt.Errorf("%w: container %s is %s", events.ErrWrongPhase, id, c.Phase)
	}
	return events.Stats{Timestamp: time.Now().UTC(), StartedAt: c.StartedAt, CPUTotalMicros: 1500, MemoryPrivateBytes: 64 << 20}, nil
}
