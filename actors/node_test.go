package actors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/berthhq/berth/actors"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/journal"
	"github.com/berthhq/berth/winsim"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		// protoactor starts a throttle goroutine on the first dead letter; it ends by itself.
		goleak.IgnoreAnyFunction("github.com/asynkron/protoactor-go/actor.NewDeadLetter.NewThrottle.func4.1"))
}

const node = "n1"

// agent is one incarnation of berthd in a test: an embedded server, a
// journal and a node on a simulated host that outlives it.
type agent struct {
	t       testing.TB
	srv     *journal.Server
	j       *journal.Journal
	node    *actors.Node
	session *winsim.Session
	logs    *logSink
	stopped bool
}

// logSink collects error-level log lines, to check that panics are logged.
type logSink struct {
	mu    sync.Mutex
	lines []string
}

func (l *logSink) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, string(p))
	return len(p), nil
}

func (l *logSink) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// startAgent starts an agent on host with its journal in dir, with
// networking on host's network service; opts adjust its configuration.
func startAgent(t testing.TB, host *winsim.Host, dir string, opts ...func(*actors.Config)) *agent {
	t.Helper()
	ctx := context.Background()
	srv, err := journal.StartServer(ctx, journal.ServerOptions{DataDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	a := &agent{t: t, srv: srv, session: host.Compute(), logs: &logSink{}}
	log := zerolog.New(zerolog.MultiLevelWriter(zerolog.NewTestWriter(t), a.logs)).Level(zerolog.InfoLevel)
	cfg := actors.Config{Node: node, Compute: a.session, Network: host.Network(), StopTimeout: 2 * time.Second, Logger: log}
	for _, o := range opts {
		o(&cfg)
	}
	a.node, err = actors.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	a.j, err = journal.Open(ctx, nc, journal.Config{
		Subjects:  events.NewSubjects("", node),
		Window:    events.DefaultWindow,
		OnDurable: a.node.Durable,
		Logger:    log,
	})
	if err != nil {
		t.Fatal(err)
	}
	st, err := a.j.Boot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.node.Start(a.j, st); err != nil {
		t.Fatal(err)
	}
	if _, err := a.node.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		a.stop()
		nc.Close()
	})
	return a
}

// stop shuts the agent down the way berthd does; the host keeps running.
// Stopping twice is a no-op.
func (a *agent) stop() {
	a.t.Helper()
	if a.stopped {
		return
	}
	a.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.node.Shutdown(ctx); err != nil {
		a.t.Errorf("node shutdown: %v", err)
	}
	if err := a.j.Close(); err != nil {
		a.t.Errorf("journal close: %v", err)
	}
	a.srv.Shutdown()
	a.session.Abandon()
}

func (a *agent) do(cmd events.Command) events.Reply {
	a.t.Helper()
	if cmd.ID == "" {
		cmd.ID = events.NewID()
	}
	select {
	case r := <-a.node.Submit(cmd):
		return r
	case <-time.After(30 * time.Second):
		a.t.Fatalf("no reply to %s %s", cmd.Verb, cmd.Container)
		return events.Reply{}
	}
}

func (a *agent) ok(cmd events.Command) events.ContainerResult {
	a.t.Helper()
	r := a.do(cmd)
	if err := r.Err(); err != nil {
		a.t.Fatalf("%s %s: %v", cmd.Verb, cmd.Container, err)
	}
	var res events.ContainerResult
	if len(r.Result) > 0 {
		if err := json.Unmarshal(r.Result, &res); err != nil {
			a.t.Fatal(err)
		}
	}
	return res
}

func (a *agent) refused(cmd events.Command, class error) *events.ReplyError {
	a.t.Helper()
	r := a.do(cmd)
	err := r.Err()
	if !errors.Is(err, class) {
		a.t.Fatalf("%s %s: got %v, want an error of class %v", cmd.Verb, cmd.Container, err, class)
	}
	return r.Error
}

func (a *agent) wait(id string) events.Exit {
	a.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ex, err := a.node.Wait(ctx, id)
	if err != nil {
		a.t.Fatalf("wait %s: %v", id, err)
	}
	return ex
}

// history returns the container event types the journal holds for id.
func (a *agent) history(id string) []string {
	a.t.Helper()
	var types []string
	err := a.j.Replay(context.Background(), 1, a.j.LastSeq(), func(e *events.Event) error {
		if e.Kind() == events.KindContainer && e.Subject == id {
			types = append(types, e.Short())
		}
		return nil
	})
	if err != nil {
		a.t.Fatal(err)
	}
	return types
}

func spec(args ...string) *events.ContainerSpec {
	return &events.ContainerSpec{
		Image:   events.ImageSpec{Ref: "mcr.microsoft.com/windows/nanoserver:ltsc2022"},
		Command: events.CommandSpec{Entrypoint: args[:1], Args: args[1:]},
	}
}

func run(id string, args ...string) events.Command {
	return events.Command{Verb: events.VerbRun, Container: id, Spec: spec(args...)}
}

func verb(v, id string) events.Command { return events.Command{Verb: v, Container: id} }

func code(e events.Exit) string {
	if e.Code == nil {
		return "nil"
	}
	return fmt.Sprint(*e.Code)
}

func hostSystems(h *winsim.Host) map[string]string {
	m := map[string]string{}
	for _, s := range h.Snapshot().Systems {
		m[s.ID] = string(s.State)
	}
	return m
}

func TestLifecycle(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, host, t.TempDir())

	res := a.ok(events.Command{Verb: events.VerbCreate, Container: "web-1", Spec: spec("ping", "-t", "localhost")})
	if res.Phase != events.PhaseCreated {
		t.Fatalf("create: phase %s", res.Phase)
	}
	if got := hostSystems(host)["web-1"]; got != string(hcsdriver.StateCreated) {
		t.Fatalf("host state after create: %q", got)
	}
	a.ok(verb(events.VerbStart, "web-1"))
	c, err := a.node.Inspect(context.Background(), "web-1")
	if err != nil || c.Phase != events.PhaseRunning || c.Pid == 0 {
		t.Fatalf("inspect after start: %+v, %v", c, err)
	}
	st, err := a.node.Stats(context.Background(), "web-1")
	if err != nil || st.UptimeMicros == 0 && st.MemoryPrivateBytes == 0 {
		t.Fatalf("stats: %+v, %v", st, err)
	}
	res = a.ok(events.Command{Verb: events.VerbStop, Container: "web-1", Timeout: ptr(events.Duration(time.Second))})
	if res.Phase != events.PhaseExited {
		t.Fatalf("stop: phase %s", res.Phase)
	}
	ex := a.wait("web-1")
	if ex.Reason != events.ReasonExited || ex.Code == nil {
		t.Fatalf("exit after a graceful stop: %+v (code %s)", ex, code(ex))
	}
	a.ok(verb(events.VerbRemove, "web-1"))
	if _, ok := hostSystems(host)["web-1"]; ok {
		t.Fatalf("host still has web-1 after remove: %v", hostSystems(host))
	}
	want := []string{"container.creating", "container.created", "container.starting", "container.started",
		"container.stopping", "container.exited", "container.removing", "container.removed"}
	if d := cmp.Diff(want, a.history("web-1")); d != "" {
		t.Fatalf("journal (-want +got):\n%s", d)
	}
	if _, err := a.node.Inspect(context.Background(), "web-1"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("inspect after remove: %v", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestInitExitIsRecordedAndTheSiloStopped(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, host, t.TempDir())
	a.ok(run("once", "cmd", "/c", "echo hi & exit /b 3"))
	ex := a.wait("once")
	if ex.Reason != events.ReasonExited || ex.Code == nil || *ex.Code != 3 {
		t.Fatalf("exit: %+v code %s, want exited with 3", ex, code(ex))
	}
	// The silo does not stop with its init process; the agent must stop it.
	if got := hostSystems(host)["once"]; got != string(hcsdriver.StateStopped) {
		t.Fatalf("host state after the init process exited: %q, want Stopped", got)
	}
	a.ok(verb(events.VerbRemove, "once"))
}

func TestBadCommandsAndWrongPhases(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, host, t.TempDir())

	a.refused(verb(events.VerbStart, "ghost"), events.ErrNotFound)
	a.ok(run("c1", "ping", "-t", "localhost"))
	if e := a.refused(verb(events.VerbRemove, "c1"), events.ErrWrongPhase); e.Code != 409 {
		t.Fatalf("remove running: code %d", e.Code)
	}
	a.refused(verb(events.VerbStart, "c1"), events.ErrWrongPhase)
	a.refused(run("c1", "ping", "-t", "localhost"), events.ErrConflict)
	a.refused(run("c2", "no-such-program.exe"), events.ErrInvalid)
	a.refused(events.Command{Verb: events.VerbCreate, Container: "c3", Spec: &events.ContainerSpec{
		Image: events.ImageSpec{Ref: "img"}}}, events.ErrInvalid)
	a.ok(events.Command{Verb: events.VerbRemove, Container: "c1", Force: true})
	a.refused(verb(events.VerbStart, "c1"), events.ErrNotFound)
	// The agent still serves.
	a.ok(run("c4", "cmd", "/c", "exit /b 0"))
	if ex := a.wait("c4"); ex.Code == nil || *ex.Code != 0 {
		t.Fatalf("c4: %+v", ex)
	}
}

func TestRepeatedCommandIdRunsOnce(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, host, t.TempDir())
	cmd := run("dup", "ping", "-t", "localhost")
	cmd.ID = events.NewID()
	// Submitted twice at once and once after completion: one execution.
	r1, r2 := a.node.Submit(cmd), a.node.Submit(cmd)
	first, second := <-r1, <-r2
	third := a.do(cmd)
	if d := cmp.Diff(first, second); d != "" {
		t.Fatalf("concurrent repeat differs:\n%s", d)
	}
	if d := cmp.Diff(first, third); d != "" {
		t.Fatalf("later repeat differs:\n%s", d)
	}
	if n := count(a.history("dup"), "container.creating"); n != 1 {
		t.Fatalf("creating recorded %d times", n)
	}
}

func count(xs []string, x string) (n int) {
	for _, v := range xs {
		if v == x {
			n++
		}
	}
	return n
}

func TestKillDuringSlowCreateIsAppliedWhenItReturns(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, host, t.TempDir())
	release := host.Hang("create", "slow")
	runReply := a.node.Submit(func() events.Command { c := run("slow", "ping", "-t", "localhost"); c.ID = events.NewID(); return c }())
	killReply := a.node.Submit(events.Command{ID: events.NewID(), Verb: events.VerbKill, Container: "slow"})
	waitUntil(t, "create to reach the host", func() bool {
		c, err := a.node.Inspect(context.Background(), "slow")
		return err == nil && c.Phase == events.PhaseCreating
	})
	release()
	if r := <-runReply; r.Err() != nil {
		t.Fatalf("run: %v", r.Err())
	}
	if r := <-killReply; r.Err() != nil {
		t.Fatalf("kill: %v", r.Err())
	}
	ex := a.wait("slow")
	if ex.Reason != events.ReasonKilled {
		t.Fatalf("exit: %+v, want killed", ex)
	}
	if got := count(a.history("slow"), "container.started"); got != 1 {
		t.Fatalf("history %v", a.history("slow"))
	}
}

func TestStopEscalatesAndKillCutsAGracefulStopShort(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, host, t.TempDir())

	// A guest that ignores shutdown: the stop terminates it after its timeout.
	a.ok(run("stubborn", "ping", "-t", "localhost"))
	release := host.Hang("shutdown", "stubborn")
	defer release()
	a.ok(events.Command{Verb: events.VerbStop, Container: "stubborn", Timeout: ptr(events.Duration(200 * time.Millisecond))})
	if ex := a.wait("stubborn"); ex.Reason != events.ReasonKilled {
		t.Fatalf("stop past its timeout: %+v, want killed", ex)
	}

	// A kill during a long graceful stop terminates at once.
	a.ok(run("patient", "ping", "-t", "localhost"))
	release2 := host.Hang("shutdown", "patient")
	defer release2()
	stopReply := a.node.Submit(events.Command{ID: events.NewID(), Verb: events.VerbStop, Container: "patient",
		Timeout: ptr(events.Duration(time.Hour))})
	waitUntil(t, "the stop to begin", func() bool {
		c, err := a.node.Inspect(context.Background(), "patient")
		return err == nil && c.Phase == events.PhaseStopping
	})
	a.ok(verb(events.VerbKill, "patient"))
	if r := <-stopReply; r.Err() != nil {
		t.Fatalf("stop: %v", r.Err())
	}
	if ex := a.wait("patient"); ex.Reason != events.ReasonKilled {
		t.Fatalf("stop cut short by kill: %+v, want killed", ex)
	}
}

func TestPanicIsLoggedAnsweredAndTheActorRebuilt(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, host, t.TempDir())
	a.ok(run("p1", "ping", "-t", "localhost"))
	bad := events.NewID()
	actors.SetReceiveHook(func(_ string, msg any) {
		if id, ok := actors.CommandOf(msg); ok && id == bad {
			panic("injected")
		}
	})
	defer actors.SetReceiveHook(nil)
	r := a.do(events.Command{ID: bad, Verb: events.VerbStop, Container: "p1"})
	if !errors.Is(r.Err(), events.ErrInternal) {
		t.Fatalf("reply to the command that panicked: %v", r.Err())
	}
	found := false
	for _, l := range a.logs.all() {
		if strings.Contains(l, "actor panicked") && strings.Contains(l, "goroutine") {
			found = true
		}
	}
	if !found {
		t.Fatalf("no error log with a stack for the panic")
	}
	// The rebuilt actor knows the container from the fold and still owns it.
	res := a.ok(verb(events.VerbStop, "p1"))
	if res.Phase != events.PhaseExited {
		t.Fatalf("stop after rebuild: %+v", res)
	}
}

func TestRestartAdoptsRunningContainers(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	dir := t.TempDir()
	a := startAgent(t, host, dir)
	a.ok(run("keep", "ping", "-t", "localhost"))
	a.ok(run("gone", "ping", "-t", "localhost"))
	a.stop()

	// While the agent is down, the host loses one system.
	if err := host.CrashSystem("gone"); err != nil {
		t.Fatal(err)
	}
	b := startAgent(t, host, dir)
	if ex := b.wait("gone"); ex.Reason != events.ReasonHostLost || ex.Code != nil {
		t.Fatalf("gone: %+v, want host_lost without a code", ex)
	}
	c, err := b.node.Inspect(context.Background(), "keep")
	if err != nil || c.Phase != events.PhaseRunning {
		t.Fatalf("keep after restart: %+v %v", c, err)
	}
	// The adopted container is watched: its exit is seen and recorded. (The
	// fold says running from the start; adoption has reopened the init
	// process once the host counts a handle to it again.)
	waitUntil(t, "keep's init process to be reopened", func() bool {
		for _, s := range host.Snapshot().Systems {
			for _, p := range s.Processes {
				if s.ID == "keep" && p.Pid == s.InitPid && p.Handles > 0 {
					return true
				}
			}
		}
		return false
	})
	if err := host.ExitInit("keep", 7); err != nil {
		t.Fatal(err)
	}
	if ex := b.wait("keep"); ex.Code == nil || *ex.Code != 7 {
		t.Fatalf("keep: %+v code %s, want 7", ex, code(ex))
	}
}

func waitUntil(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestMaxContainersRefusesCreatesBeyondIt(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, host, t.TempDir(), func(c *actors.Config) { c.MaxContainers = 2 })
	a.ok(run("c1", "ping", "-t", "localhost"))
	a.ok(events.Command{Verb: events.VerbCreate, Container: "c2", Spec: spec("ping", "-t", "localhost")})
	e := a.refused(run("c3", "ping", "-t", "localhost"), events.ErrConflict)
	if e.Code != 409 || !strings.Contains(e.Message, "holds 2 containers, its limit (berthd --max-containers)") {
		t.Fatalf("third container: %+v", e)
	}
	if _, ok := hostSystems(host)["c3"]; ok {
		t.Fatal("the refused container reached the host")
	}
	// Commands for the containers it holds still run.
	a.ok(verb(events.VerbStart, "c2"))
	a.ok(events.Command{Verb: events.VerbRemove, Container: "c1", Force: true})
	// c1's actor retires after its removal; then there is room again.
	deadline := time.Now().Add(10 * time.Second)
	for {
		r := a.do(run("c3", "ping", "-t", "localhost"))
		if r.OK {
			break
		}
		if !errors.Is(r.Err(), events.ErrConflict) || time.Now().After(deadline) {
			t.Fatalf("c3 after c1 was removed: %v", r.Err())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A question to a node that has shut down is answered 503 at once: its
// actor is gone and would answer nothing.
func TestNode_QuestionsAfterShutdownAreRefused(t *testing.T) {
	a := startAgent(t, winsim.New(), t.TempDir())
	a.stop()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if _, err := a.node.State(ctx); !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("State after shutdown: %v, want ErrUnavailable", err)
	}
	if _, err := a.node.Reconcile(ctx); !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("Reconcile after shutdown: %v, want ErrUnavailable", err)
	}
}
