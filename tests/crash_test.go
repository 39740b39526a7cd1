package tests

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/imagedriver/dirlayer"
	"github.com/berthhq/berth/imagedriver/registry"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/winsim"
)

// rig is one node's agent on a simulated host that outlives it, with its
// journal in dir, so that the agent can be stopped, crashed and started
// again on both.
type rig struct {
	t       *testing.T
	dir     string
	host    *winsim.Host
	session *winsim.Session
	a       *agent.Agent
	nc      *nats.Conn
	client  *control.Client
}

func newRig(t *testing.T) *rig {
	r := &rig{t: t, dir: t.TempDir(), host: winsim.New()}
	t.Cleanup(func() { r.host.Close() })
	return r
}

// start starts an agent with networking; failpoint, when set, is its
// journal failpoint.
func (r *rig) start(failpoint func([]events.Event, bool)) {
	r.t.Helper()
	r.startWith(agent.Options{Network: r.host.Network(), Failpoint: failpoint})
}

// startWith starts an agent with o, on the rig's host and data directory.
func (r *rig) startWith(o agent.Options) {
	r.t.Helper()
	r.session = r.host.Compute()
	o.DataDir, o.Compute = r.dir, r.session
	if o.InboxAckWait == 0 {
		o.InboxAckWait = 300 * time.Millisecond
	}
	r.a = startAgent(r.t, o)
	var err error
	if r.nc, err = r.a.Server.Connect(); err != nil {
		r.t.Fatal(err)
	}
	if r.client, err = control.NewClient(r.nc, testNode, control.WithTimeout(20*time.Second)); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rig) stop() {
	r.t.Helper()
	r.nc.Close()
	stopAgent(r.t, r.a)
	r.session.Abandon()
}

// crash ends the agent as the death of its process would: NATS first, so
// nothing more is recorded or acknowledged, then its host handles. release
// lets the goroutines the crash caught go on (into errors), and the agent's
// remains are stopped.
func (r *rig) crash(release func()) {
	r.t.Helper()
	r.nc.Close()
	r.a.Conn.Close()
	r.a.Server.Shutdown()
	r.session.Abandon()
	release()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_ = r.a.Stop(ctx) // the journal and NATS are gone: errors are expected
}

func (r *rig) must(verb string, err error) {
	r.t.Helper()
	if err != nil {
		r.t.Fatalf("%s: %v", verb, err)
	}
}

// converged checks that the fold agrees with the host: each container in a
// settled phase, a live compute system exactly for created and running
// ones, and no system or endpoint that no container owns.
func converged(st *events.State, hs winsim.State) error {
	systems := map[string]winsim.SystemState{}
	for _, s := range hs.Systems {
		systems[s.ID] = s
	}
	for id, c := range st.Containers {
		s, has := systems[id]
		live := has && s.State != hcsdriver.StateStopped
		switch c.Phase {
		case events.PhaseCreated, events.PhaseRunning:
			if !live {
				return fmt.Errorf("container %s is %s in the fold, but the host has no live system", id, c.Phase)
			}
		case events.PhaseExited, events.PhaseFailed:
			if live {
				return fmt.Errorf("container %s is %s in the fold, but its system runs", id, c.Phase)
			}
		default:
			return fmt.Errorf("container %s left %s (intent %q)", id, c.Phase, c.Intent)
		}
	}
	for id := range systems {
		if st.Containers[id] == nil {
			return fmt.Errorf("host system %s has no container in the fold", id)
		}
	}
	owned := map[string]bool{}
	for _, c := range st.Containers {
		if c.Endpoint != nil {
			owned[c.Endpoint.Name] = true
		}
	}
	for _, ep := range hs.Endpoints {
		if !owned[ep.Name] {
			return fmt.Errorf("host endpoint %s has no container in the fold", ep.Name)
		}
	}
	return nil
}

// settled waits until the fold matches the host (an exit may still be
// on its way into the journal) and fails with the last difference.
func (r *rig) settled(ctx context.Context) {
	r.t.Helper()
	var last error
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		st, err := r.a.Node.State(ctx)
		if err != nil {
			r.t.Fatal(err)
		}
		if last = converged(st, r.host.Snapshot()); last == nil {
			return
		}
	}
	r.t.Fatalf("the fold does not match the host: %v", last)
}

// drained removes every container and checks that the host is empty:
// nothing berth created was leaked.
func (r *rig) drained(ctx context.Context) {
	r.t.Helper()
	st, err := r.client.State(ctx, 0)
	r.must("state", err)
	for id := range st.Containers {
		_, err := r.client.Remove(ctx, id, true)
		r.must("rm -f "+id, err)
	}
	hs := r.host.Snapshot()
	if len(hs.Systems) != 0 || len(hs.Endpoints) != 0 {
		r.t.Fatalf("after removing every container the host holds %d systems and %d endpoints: %+v %+v",
			len(hs.Systems), len(hs.Endpoints), hs.Systems, hs.Endpoints)
	}
}

// failAt returns a failpoint that holds the k-th append of command id's
// events, before it (durable false) or after it is durable, and reports
// the hold on hit; release lets it go.
func failAt(id string, k int, durable bool) (fp func([]events.Event, bool), hit <-chan []string, release func()) {
	h, rel := make(chan []string, 1), make(chan struct{})
	var (
		mu   sync.Mutex
		n    int
		held bool
	)
	fp = func(evs []events.Event, d bool) {
		if len(evs) == 0 || evs[0].Command != id {
			return
		}
		mu.Lock()
		i := n
		if d {
			n++
		}
		hold := i == k && d == durable && !held
		held = held || hold
		mu.Unlock()
		if hold {
			var types []string
			for _, e := range evs {
				types = append(types, e.Short())
			}
			h <- types
			<-rel
		}
	}
	return fp, h, sync.OnceFunc(func() { close(rel) })
}

// TestCrashAtEveryStep stops the agent abruptly at every intent and
// outcome of create, start, stop and remove, those of the scratch layer
// and the endpoint included, starts it again on the same host, layer
// folder and journal, and checks that the command got its
// outcome (the inbox delivered it again), the fold matches the host, and,
// once every container is removed, nothing is left on the host and no
// scratch layer in the store.
func TestCrashAtEveryStep(t *testing.T) {
	stopIn := time.Second
	spec := pingImage(t)
	for _, tc := range []struct {
		verb  string
		setup func(ctx context.Context, r *rig)
		cmd   events.Command
	}{
		{verb: "create", cmd: events.Command{Verb: events.VerbCreate, Container: "c", Spec: &spec}},
		{verb: "start", cmd: events.Command{Verb: events.VerbStart, Container: "c"},
			setup: func(ctx context.Context, r *rig) {
				_, err := r.client.Create(ctx, "c", spec)
				r.must("create", err)
			}},
		{verb: "stop", cmd: events.Command{Verb: events.VerbStop, Container: "c", Timeout: (*events.Duration)(&stopIn)},
			setup: func(ctx context.Context, r *rig) { _, err := r.client.Run(ctx, "c", spec); r.must("run", err) }},
		{verb: "remove", cmd: events.Command{Verb: events.VerbRemove, Container: "c", Force: true},
			setup: func(ctx context.Context, r *rig) { _, err := r.client.Run(ctx, "c", spec); r.must("run", err) }},
	} {
		t.Run(tc.verb, func(t *testing.T) {
			for k := 0; ; k++ {
				hits := 0
				for _, durable := range []bool{false, true} {
					name := fmt.Sprintf("append%d-%s", k, map[bool]string{false: "before", true: "after"}[durable])
					t.Run(name, func(t *testing.T) {
						if crashAt(t, tc.setup, tc.cmd, k, durable) {
							hits++
						}
					})
				}
				if hits == 0 || t.Failed() {
					if k < 2 {
						t.Fatalf("%s: only %d appends held", tc.verb, k)
					}
					return
				}
			}
		})
	}
}

// crashAt runs one crash scenario and reports whether the failpoint hit
// (false: the command has fewer appends).
func crashAt(t *testing.T, setup func(context.Context, *rig), cmd events.Command, k int, durable bool) bool {
	ctx := context.Background()
	r := newRig(t)
	cmd.ID = events.NewID()
	fp, hit, release := failAt(cmd.ID, k, durable)
	defer release()
	var store *dirlayer.Store // opened anew by each agent, as after a crash
	start := func(fp func([]events.Event, bool)) {
		var err error
		store, err = dirlayer.New(filepath.Join(r.dir, "layers"))
		r.must("layer store", err)
		r.startWith(agent.Options{Network: r.host.Network(), Failpoint: fp,
			Images: registry.New(registry.Options{TempDir: r.t.TempDir()}), Layers: store, Platform: pingPlatform})
	}
	start(fp)
	_, err := r.client.ConfigureNetwork(ctx, events.NetworkConfig{ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.1.0/24", Type: "nat"})
	r.must("network configure", err)
	if setup != nil {
		setup(ctx, r)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = r.client.Do(ctx, cmd) // answered, or cut off by the crash
	}()
	select {
	case held := <-hit:
		t.Logf("crash at %v (durable: %v)", held, durable)
		r.crash(release)
		<-done
	case <-done:
		r.stop()
		return false
	}

	start(nil)
	defer r.stop()
	waitFor(t, "the command's outcome", func() bool {
		st, err := r.a.Node.State(ctx)
		if err != nil {
			return false
		}
		_, ok := st.Outcome(cmd.ID)
		return ok
	})
	r.settled(ctx)
	r.drained(ctx)
	if left, err := store.ListScratch(ctx); err != nil || len(left) != 0 {
		t.Fatalf("after removing every container the layer store holds scratch layers %+v (%v)", left, err)
	}
	return true
}
