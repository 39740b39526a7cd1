package tests

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/berthhq/berth/actors"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/journal"
	"github.com/berthhq/berth/winsim"
)

// TestRandomSchedules runs seeded schedules of commands, host faults, host
// misfortunes (a crash of a system, an init process that ends) and agent
// crashes at random appends, including appends of reconciliation itself.
// A crashed agent's unanswered commands are submitted again to the next
// one, as the inbox would deliver them again. After each schedule, every
// command has a recorded outcome, the fold matches the host, and removing
// every container leaves the host empty. A failure names its seed; rerun
// one with -run 'TestRandomSchedules/group/seed=N$'.
func TestRandomSchedules(t *testing.T) {
	n := 500
	if testing.Short() {
		n = 50
	}
	ctx := context.Background()
	srv, err := journal.StartServer(ctx, journal.ServerOptions{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	// Schedules spend most of their time waiting (stops, group commits),
	// so a few run at once.
	slots := make(chan struct{}, 4)
	t.Run("group", func(t *testing.T) {
		for seed := range n {
			t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
				t.Parallel()
				slots <- struct{}{}
				defer func() { <-slots }()
				s := &schedule{t: t, rng: rand.New(rand.NewPCG(uint64(seed), 0x6265727468)), srv: srv,
					node: fmt.Sprintf("rand-%d", seed), host: winsim.New(), seen: map[string]bool{}}
				defer s.host.Close()
				s.run(ctx)
			})
		}
	})
}

var errCrashed = errors.New("agent crashed")

// crashJournal is the journal as one agent process sees it: once it has
// crashed (at an armed append, before or after that append is durable),
// nothing more reaches the journal.
type crashJournal struct {
	*journal.Journal
	mu      sync.Mutex
	left    int  // appends before the crash; -1: disarmed
	after   bool // crash once that append is durable
	crashed bool
	hit     chan struct{} // closed at the crash
	release chan struct{} // closed when the crash's caller may go on
	letGo   func()        // closes release once
}

func (c *crashJournal) Append(ctx context.Context, evs ...events.Event) ([]events.Event, error) {
	c.mu.Lock()
	if c.crashed {
		c.mu.Unlock()
		return nil, errCrashed
	}
	fire := c.left == 0
	if c.left >= 0 {
		c.left--
	}
	if fire && !c.after {
		c.crash()
		return nil, errCrashed
	}
	c.mu.Unlock()
	out, err := c.Journal.Append(ctx, evs...)
	if fire {
		c.mu.Lock()
		if c.crashed { // another append crashed first
			c.mu.Unlock()
			return nil, errCrashed
		}
		c.crash()
		return nil, errCrashed
	}
	return out, err
}

// crash marks the crash, unlocks c and waits for the release.
func (c *crashJournal) crash() {
	c.crashed = true
	close(c.hit)
	c.mu.Unlock()
	<-c.release
}

func (c *crashJournal) SaveSnapshot(ctx context.Context, st *events.State) error {
	c.mu.Lock()
	crashed := c.crashed
	c.mu.Unlock()
	if crashed {
		return errCrashed
	}
	return c.Journal.SaveSnapshot(ctx, st)
}

// schedule is one seeded run.
type schedule struct {
	t    *testing.T
	rng  *rand.Rand
	srv  *journal.Server
	node string
	host *winsim.Host

	// the running incarnation
	j       *crashJournal
	n       *actors.Node
	session *winsim.Session
	nc      *nats.Conn

	cmds []events.Command // every command submitted, in order
	seen map[string]bool  // command ids with a recorded outcome
	log  []string         // what the schedule did, for a failure
}

func (s *schedule) fatalf(format string, a ...any) {
	s.t.Helper()
	s.t.Fatalf("%s\nschedule:\n  %v", fmt.Sprintf(format, a...), s.log)
}

// start starts an agent incarnation, armed to crash at append k (before
// or after it is durable) when k >= 0. It reports false when the agent
// crashed while starting.
func (s *schedule) start(ctx context.Context, k int, after bool) bool {
	nc, err := s.srv.Connect()
	if err != nil {
		s.fatalf("connect: %v", err)
	}
	s.session = s.host.Compute()
	s.n, err = actors.New(actors.Config{Node: s.node, Compute: s.session, Network: s.host.Network(),
		StopTimeout: 200 * time.Millisecond, ReconcileTimeout: 10 * time.Second, HostOps: 4,
		Logger: zerolog.New(zerolog.NewTestWriter(s.t)).Level(zerolog.Disabled)})
	if err != nil {
		s.fatalf("node: %v", err)
	}
	jr, err := journal.Open(ctx, nc, journal.Config{Subjects: events.NewSubjects("", s.node), OnDurable: s.n.Durable,
		SnapshotEvery: 1 + s.rng.IntN(8), AttemptTimeout: 5 * time.Second, LogMaxBytes: 1 << 20})
	if err != nil {
		s.fatalf("journal: %v", err)
	}
	s.j = &crashJournal{Journal: jr, left: k, after: after, hit: make(chan struct{}), release: make(chan struct{})}
	s.j.letGo = sync.OnceFunc(func() { close(s.j.release) })
	st, err := jr.Boot(ctx)
	if err != nil {
		s.fatalf("boot: %v", err)
	}
	if err := s.n.Start(s.j, st); err != nil {
		s.fatalf("start: %v", err)
	}
	done := make(chan error, 1)
	go func() { _, err := s.n.Reconcile(ctx); done <- err }()
	select {
	case err := <-done:
		if err != nil && !errors.Is(err, errCrashed) {
			s.fatalf("reconcile: %v", err)
		}
		if err == nil {
			s.j.mu.Lock()
			crashed := s.j.crashed
			s.j.mu.Unlock()
			if !crashed {
				s.nc = nc
				return true
			}
		}
	case <-s.j.hit:
	}
	s.nc = nc
	s.log = append(s.log, "crash while reconciling")
	s.kill(ctx)
	<-done
	return false
}

// kill ends the incarnation that crashed: its host handles go, the calls
// the crash held go on into errors, and what is left of it stops.
func (s *schedule) kill(ctx context.Context) {
	s.session.Abandon()
	s.down(ctx)
}

// down stops the incarnation. An append it holds for a crash that fired
// meanwhile is let go (into an error): a crash during a stop is a stop.
func (s *schedule) down(ctx context.Context) {
	s.j.mu.Lock()
	s.j.left = -1
	s.j.mu.Unlock()
	s.j.letGo()
	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if err := s.n.Shutdown(sctx); err != nil {
		s.fatalf("shutdown: %v", err)
	}
	_ = s.j.Close()
	s.nc.Close()
}

// up starts incarnations until one has reconciled, maybe armed to crash,
// and submits again the commands that have no recorded outcome.
func (s *schedule) up(ctx context.Context) {
	for {
		k, after := -1, false
		if s.rng.IntN(5) == 0 {
			k, after = s.rng.IntN(4), s.rng.IntN(2) == 0
			s.log = append(s.log, fmt.Sprintf("arm crash at append %d after=%v", k, after))
		}
		if s.start(ctx, k, after) {
			break
		}
	}
	st, err := s.n.State(ctx)
	if err != nil {
		s.fatalf("state: %v", err)
	}
	for _, c := range s.cmds {
		if _, ok := st.Outcome(c.ID); ok {
			s.seen[c.ID] = true
		} else if !s.seen[c.ID] && !s.submit(ctx, c) {
			return
		}
	}
}

// submit hands cmd to the node and waits for its reply or a crash; on a
// crash it restarts the agent. It reports false after a crash.
func (s *schedule) submit(ctx context.Context, cmd events.Command) bool {
	reply := s.n.Submit(cmd)
	select {
	case r := <-reply:
		if s.crashed() {
			s.recover(ctx)
			return false
		}
		st, err := s.n.State(ctx)
		if err != nil {
			s.fatalf("state: %v", err)
		}
		if _, ok := st.Outcome(cmd.ID); ok {
			s.seen[cmd.ID] = true
		} else if r.OK {
			s.fatalf("command %s %s answered ok without a recorded outcome", cmd.Verb, cmd.Container)
		}
		return true
	case <-s.j.hit:
		s.recover(ctx)
		return false
	case <-time.After(20 * time.Second):
		s.fatalf("no reply to %s %s", cmd.Verb, cmd.Container)
	}
	return false
}

func (s *schedule) crashed() bool {
	select {
	case <-s.j.hit:
		return true
	default:
		return false
	}
}

// recover replaces a crashed incarnation with a new one.
func (s *schedule) recover(ctx context.Context) {
	s.log = append(s.log, "crash")
	s.kill(ctx)
	s.up(ctx)
}

func (s *schedule) command(verb, id string) events.Command {
	c := events.Command{ID: events.NewID(), Verb: verb, Container: id}
	switch verb {
	case events.VerbCreate, events.VerbRun:
		spec := pingSpec
		if s.rng.IntN(3) == 0 {
			spec.Command = events.CommandSpec{Entrypoint: []string{"cmd", "/c"}, Args: []string{"exit /b 3"}}
		}
		c.Spec = &spec
	case events.VerbStop:
		d := events.Duration(time.Duration(s.rng.IntN(300)) * time.Millisecond)
		c.Timeout = &d
	case events.VerbRemove:
		c.Force = s.rng.IntN(2) == 0
	}
	return c
}

func (s *schedule) run(ctx context.Context) {
	s.up(ctx)
	netCfg := events.NetworkConfig{ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.1.0/24", Type: "nat"}
	first := events.Command{ID: events.NewID(), Verb: events.VerbNetworkConfigure, Network: &netCfg}
	s.cmds = append(s.cmds, first)
	s.submit(ctx, first)
	ids := []string{"a", "b", "c"}
	verbs := []string{events.VerbRun, events.VerbRun, events.VerbCreate, events.VerbStart, events.VerbStop, events.VerbKill, events.VerbRemove}
	for range 5 {
		if s.crashed() { // an exit being recorded hit the armed append
			s.recover(ctx)
		}
		id := ids[s.rng.IntN(len(ids))]
		switch p := s.rng.IntN(20); {
		case p == 0:
			s.log = append(s.log, "restart")
			s.down(ctx)
			s.session.Abandon()
			s.up(ctx)
		case p == 1:
			s.log = append(s.log, "crash system "+id)
			_ = s.host.CrashSystem(id)
		case p == 2:
			s.log = append(s.log, "init of "+id+" exits")
			_ = s.host.ExitInit(id, 5)
		case p <= 4:
			op := []string{winsim.OpCreate, winsim.OpStart, winsim.OpTerminate, winsim.OpOpen, winsim.OpCreateEndpoint, winsim.OpDeleteEndpoint}[s.rng.IntN(6)]
			s.log = append(s.log, "fault "+op)
			s.host.Fail(op, "", 1, hcsdriver.ErrUnavailable)
		default:
			c := s.command(verbs[s.rng.IntN(len(verbs))], id)
			s.log = append(s.log, c.Verb+" "+id)
			s.cmds = append(s.cmds, c)
			if s.rng.IntN(5) == 0 { // crash somewhere in this command
				s.j.mu.Lock()
				if !s.j.crashed && s.j.left < 0 {
					s.j.left, s.j.after = s.rng.IntN(4), s.rng.IntN(2) == 0
				}
				s.j.mu.Unlock()
			}
			s.submit(ctx, c)
		}
	}
	// The end: a clean agent, every command answered, host and fold agree.
	s.host.ClearFaults()
	if s.crashed() {
		s.kill(ctx)
	} else {
		s.down(ctx)
		s.session.Abandon()
	}
	for {
		if s.start(ctx, -1, false) {
			break
		}
	}
	defer s.down(ctx)
	st, err := s.n.State(ctx)
	if err != nil {
		s.fatalf("state: %v", err)
	}
	for _, c := range s.cmds {
		if _, ok := st.Outcome(c.ID); !ok {
			s.submit(ctx, c)
		}
	}
	if st, err = s.n.State(ctx); err != nil {
		s.fatalf("state: %v", err)
	}
	for _, c := range s.cmds {
		if _, ok := st.Outcome(c.ID); !ok {
			s.fatalf("command %s %s has no recorded outcome", c.Verb, c.Container)
		}
	}
	var last error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(5 * time.Millisecond) {
		if st, err = s.n.State(ctx); err != nil {
			s.fatalf("state: %v", err)
		}
		if last = converged(st, s.host.Snapshot()); last == nil {
			break
		}
	}
	if last != nil {
		s.fatalf("the fold does not match the host: %v", last)
	}
	for id := range st.Containers {
		c := events.Command{ID: events.NewID(), Verb: events.VerbRemove, Container: id, Force: true}
		if r := <-s.n.Submit(c); !r.OK {
			s.fatalf("rm -f %s: %+v", id, r.Error)
		}
	}
	if hs := s.host.Snapshot(); len(hs.Systems) != 0 || len(hs.Endpoints) != 0 {
		s.fatalf("after removing every container the host holds %+v and %+v", hs.Systems, hs.Endpoints)
	}
}
