package journal

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/berthhq/berth/events"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const node = "n1"

// testCtx is a context that ends with the test, bounded so that a hang
// fails the test instead of the whole run.
func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func testLogger(t testing.TB) zerolog.Logger {
	return zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
}

// startServer starts an embedded server on dir (a fresh one when dir is
// "") and shuts it down when the test ends.
func startServer(t testing.TB, dir string) *Server {
	t.Helper()
	if dir == "" {
		dir = t.TempDir()
	}
	s, err := StartServer(testCtx(t), ServerOptions{DataDir: dir, SyncAlways: true, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	return s
}

func connect(t testing.TB, s *Server) *nats.Conn {
	t.Helper()
	nc, err := s.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// open opens the journal of node on a new connection to s and closes both
// when the test ends.
func open(t testing.TB, s *Server, cfg Config) *Journal {
	t.Helper()
	nc := connect(t, s)
	if cfg.Subjects.Node == "" {
		cfg.Subjects = events.NewSubjects("", node)
	}
	cfg.Logger = testLogger(t)
	j, err := Open(testCtx(t), nc, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	return j
}

func boot(t testing.TB, j *Journal) *events.State {
	t.Helper()
	st, err := j.Boot(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func spec(id string) events.ContainerSpec {
	return events.ContainerSpec{
		Image:     events.ImageSpec{Ref: "mcr.microsoft.com/windows/nanoserver:ltsc2022", PullPolicy: "if_not_present"},
		Command:   events.CommandSpec{Entrypoint: []string{"cmd", "/c"}, Args: []string{"echo " + id}, Workdir: `C:\app`},
		Env:       map[string]string{"MODE": "prod", "NAME": id, "TOKEN": rand.Text()},
		Hostname:  "h-" + id,
		Resources: events.Resources{CPU: 1.5, Memory: 512 << 20},
		Network:   events.NetworkSpec{Mode: "overlay", DNS: events.DNSSpec{Servers: []string{"10.200.0.2"}, Domain: "service.local"}},
		Ports:     []events.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
		Labels:    map[string]string{"service": "web"},
		Stop:      events.StopSpec{Timeout: events.Duration(30 * time.Second)},
	}
}

// completed is the node event recording command cmd's outcome.
func completed(cmd, verb, id string, phase events.Phase) events.Event {
	return events.NewEvent(node, events.NodeCommandCompleted, cmd, cmd, events.CommandCompletedData{
		Verb: verb, Container: id, Reply: events.NewReply(cmd, events.ContainerResult{Container: id, Phase: phase}, nil),
	})
}

// created returns the events of creating container id: the intent, the
// outcome and the command's recorded outcome.
func created(id string) []events.Event {
	cmd := events.NewID()
	return []events.Event{
		events.NewEvent(node, events.ContainerCreating, id, cmd, events.CreatingData{Spec: spec(id), Owner: "berth"}),
		events.NewEvent(node, events.ContainerCreated, id, cmd, events.CreatedData{HostID: "berth-" + id}),
		completed(cmd, events.VerbCreate, id, events.PhaseCreated),
	}
}

// ran returns the events of starting, stopping and removing a created
// container id.
func ran(id string) []events.Event {
	cmd := events.NewID()
	return []events.Event{
		events.NewEvent(node, events.ContainerStarting, id, cmd, nil),
		events.NewEvent(node, events.ContainerStarted, id, cmd, events.StartedData{Pid: 4}),
		events.NewEvent(node, events.ContainerStopping, id, cmd, events.StoppingData{Timeout: events.Duration(time.Second)}),
		events.NewEvent(node, events.ContainerExited, id, cmd, events.Exit{Code: events.ExitCode(0), Reason: events.ReasonExited, FinishedAt: time.Now().UTC()}),
		events.NewEvent(node, events.ContainerRemoving, id, cmd, nil),
		events.NewEvent(node, events.ContainerRemoved, id, cmd, nil),
	}
}

// appendAll appends each group of events with its own Append call and
// returns what the journal returned, in order.
func appendAll(t testing.TB, j *Journal, groups ...[]events.Event) []events.Event {
	t.Helper()
	var out []events.Event
	for _, g := range groups {
		got, err := j.Append(testCtx(t), g...)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, got...)
	}
	return out
}

// fold folds evs into a fresh state, failing the test on a refusal.
func fold(t testing.TB, evs []events.Event) *events.State {
	t.Helper()
	st := events.NewState(node, events.DefaultWindow)
	for i := range evs {
		if err := st.Apply(&evs[i]); err != nil {
			t.Fatalf("fold of event %d: %v", evs[i].Seq, err)
		}
	}
	return st
}

// workload returns the events of n containers: all created, every other
// one then run and removed.
func workload(n int) [][]events.Event {
	var groups [][]events.Event
	for i := range n {
		groups = append(groups, created(fmt.Sprintf("c%d", i)))
	}
	for i := 0; i < n; i += 2 {
		groups = append(groups, ran(fmt.Sprintf("c%d", i)))
	}
	return groups
}

func diffStates(want, got *events.State) string {
	return cmp.Diff(want, got, cmpopts.IgnoreUnexported(events.State{}))
}

// streamMsgs returns how many messages the event stream holds.
func streamMsgs(t testing.TB, j *Journal) uint64 {
	t.Helper()
	info, err := j.evt.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

// rawJS returns a JetStream context on a new connection to s.
func rawJS(t testing.TB, s *Server) jetstream.JetStream {
	t.Helper()
	js, err := jetstream.New(connect(t, s))
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// waitFor polls cond until it holds or the test's context ends.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	ctx := testCtx(t)
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatalf("gave up waiting for %s", what)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
