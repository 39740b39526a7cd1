package tests

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthhq/berth/actors"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/imagedriver/dirlayer"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/netdriver"
)

// The reconciliation matrix end to end: each case sets the host up while
// the agent is down and checks what the next agent makes of it. The
// interrupted create, start, stop and remove are TestCrashAtEveryStep's.

func TestReconcileAdoptsARunningContainer(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.start(nil)
	_, err := r.client.Run(ctx, "keep", pingSpec)
	r.must("run", err)
	r.stop()

	r.start(nil)
	defer r.stop()
	c, err := r.client.Inspect(ctx, "keep")
	if err != nil || c.Phase != events.PhaseRunning {
		t.Fatalf("keep after restart: %+v %v", c, err)
	}
	rec := reconciled(t, r)
	if rec.Summary["adopt/ok"] != 1 {
		t.Fatalf("summary %v, want one adopt", rec.Summary)
	}
	// Adopted means watched: the init process's exit is seen and recorded.
	r.must("exit", r.host.ExitInit("keep", 7))
	waitFor(t, "keep's exit", func() bool {
		c, err := r.client.Inspect(ctx, "keep")
		return err == nil && c.Phase == events.PhaseExited && c.Exit.Code != nil && *c.Exit.Code == 7
	})
	r.settled(ctx)
}

func TestReconcileMarksAVanishedContainerHostLost(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.start(nil)
	_, err := r.client.Run(ctx, "gone", pingSpec)
	r.must("run", err)
	r.stop()
	r.must("crash", r.host.CrashSystem("gone")) // stopped and unheld: the host forgets it

	r.start(nil)
	defer r.stop()
	c, err := r.client.Inspect(ctx, "gone")
	if err != nil || c.Phase != events.PhaseExited || c.Exit.Reason != events.ReasonHostLost || c.Exit.Code != nil {
		t.Fatalf("gone after restart: %+v %v, want exited host_lost without a code", c, err)
	}
	r.settled(ctx)
	r.drained(ctx)
}

// A host reboot takes the network, its endpoints and the compute systems
// with it: the next agent creates the network again, so that new containers
// get endpoints, and marks the lost container host_lost.
func TestReconcileRecreatesALostNetwork(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.start(nil)
	_, err := r.client.ConfigureNetwork(ctx, events.NetworkConfig{ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.1.0/24", Type: "nat"})
	r.must("network configure", err)
	_, err = r.client.Run(ctx, "before", pingSpec)
	r.must("run", err)
	st, err := r.client.State(ctx, 0)
	r.must("state", err)
	old := st.Network.ID
	r.stop()

	r.must("crash", r.host.CrashSystem("before"))
	hcn := r.host.Network()
	eps, err := hcn.ListEndpoints(ctx, "berth-")
	r.must("list endpoints", err)
	for _, ep := range eps {
		r.must("delete endpoint", hcn.DeleteEndpoint(ctx, ep.ID))
	}
	r.must("delete network", hcn.DeleteNetwork(ctx, st.Network.Name))

	r.start(nil)
	defer r.stop()
	if rec := reconciled(t, r); rec.Summary["recreate_network/ok"] != 1 || rec.Summary["mark_exited/ok"] != 1 {
		t.Fatalf("summary %v, want the network recreated and one container marked exited", rec.Summary)
	}
	nw, err := hcn.GetNetwork(ctx, st.Network.Name)
	r.must("network after restart", err)
	if st, err = r.client.State(ctx, 0); err != nil || st.Network.ID != nw.ID || nw.ID == old {
		t.Fatalf("the fold's network id %q (%v), the host's %q, before %q: want the new host id", st.Network.ID, err, nw.ID, old)
	}
	c, err := r.client.Run(ctx, "after", pingSpec)
	r.must("run after the reboot", err)
	if got, err := r.client.Inspect(ctx, c.Container); err != nil || got.Endpoint == nil {
		t.Fatalf("after: %+v %v, want an endpoint", got, err)
	}
	_, err = r.client.Remove(ctx, "before", false)
	r.must("remove the lost container", err)
	r.settled(ctx)
}

func TestReconcileRecordsAnExitWhileTheAgentWasDown(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.start(nil)
	_, err := r.client.Run(ctx, "done", pingSpec)
	r.must("run", err)
	r.stop()
	// The init process ends; the silo runs on, as on Windows. Nobody held
	// the process, so the host has forgotten it and its code.
	r.must("exit", r.host.ExitInit("done", 3))

	r.start(nil)
	defer r.stop()
	c, err := r.client.Inspect(ctx, "done")
	if err != nil || c.Phase != events.PhaseExited || c.Exit.Reason != events.ReasonExited || c.Exit.Code != nil ||
		!strings.Contains(c.Exit.Message, "no exit code") {
		t.Fatalf("done after restart: %+v %v, want exited without an invented code", c, err)
	}
	r.settled(ctx) // the silo was shut down
	r.drained(ctx)
}

// What carries our owner tag and no live container owns is reaped; what
// does not carry it is never touched.
func TestReconcileReapsOursAndLeavesOthersAlone(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	layers := filepath.Join(r.dir, "layers")
	store, err := dirlayer.New(layers)
	r.must("layer store", err)
	r.start(nil)
	_, err = r.client.ConfigureNetwork(ctx, events.NetworkConfig{ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.1.0/24", Type: "nat"})
	r.must("network configure", err)
	_, err = r.client.Run(ctx, "web", pingSpec)
	r.must("run", err)
	r.stop()

	// While the agent is down, objects appear that no journal knows of.
	hcs, hcn := r.host.Compute(), r.host.Network()
	defer hcs.Abandon()
	for id, owner := range map[string]string{"zombie": "berth", "foreign": "other"} {
		sys, err := hcs.Create(ctx, id, hcsdriver.Config{Owner: owner})
		r.must("create "+id, err)
		r.must("start "+id, sys.Start(ctx))
	}
	nw, err := hcn.GetNetwork(ctx, "berth-overlay")
	r.must("network", err)
	for name, ip := range map[string]string{"berth-stray": "10.200.1.200", "other-web": "10.200.1.201"} {
		_, err := hcn.CreateEndpoint(ctx, netdriver.EndpointSpec{Name: name, Network: nw.ID,
			IP: netip.MustParseAddr(ip), PrefixLen: 24, Gateway: nw.Gateway})
		r.must("endpoint "+name, err)
	}
	// A scratch layer whose creation was cut short, and a layer folder
	// without its completion marker, as a crash leaves them.
	halfLayer := strings.Repeat("ab", 32)
	for _, dir := range []string{filepath.Join(layers, "scratch", "ghost", "Files"), filepath.Join(layers, "layers", halfLayer)} {
		r.must("leftover", os.MkdirAll(dir, 0o755))
	}

	r.startWith(agent.Options{Network: r.host.Network(), Layers: store})
	defer r.stop()

	rec := reconciled(t, r)
	want := map[string]int{"adopt/ok": 1, "reap_system/ok": 1, "reap_endpoint/ok": 1, "reap_scratch/ok": 1, "reap_layer/ok": 1}
	if d := cmp.Diff(want, rec.Summary); d != "" {
		t.Errorf("summary (-want +got):\n%s", d)
	}
	hs := r.host.Snapshot()
	var systems, endpoints []string
	for _, s := range hs.Systems {
		if s.State != hcsdriver.StateStopped {
			systems = append(systems, s.ID)
		}
	}
	for _, ep := range hs.Endpoints {
		endpoints = append(endpoints, ep.Name)
	}
	if d := cmp.Diff([]string{"foreign", "web"}, systems, cmpopts.SortSlices(func(a, b string) bool { return a < b })); d != "" {
		t.Errorf("live systems (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"berth-web", "other-web"}, endpoints, cmpopts.SortSlices(func(a, b string) bool { return a < b })); d != "" {
		t.Errorf("endpoints (-want +got):\n%s", d)
	}
	h, err := store.ListScratch(ctx)
	if err != nil || len(h) != 0 {
		t.Errorf("scratch layers left: %+v %v", h, err)
	}
	l, err := store.List(ctx)
	if err != nil || len(l) != 0 {
		t.Errorf("layers left: %+v %v", l, err)
	}
	// Each reap is in the journal.
	var reaped []string
	replay(t, r, func(e *events.Event) {
		if e.Type == events.NodeReaped {
			var d events.ReapedData
			r.must("decode", e.Decode(&d))
			reaped = append(reaped, string(d.Kind)+" "+d.Object)
		}
	})
	if len(reaped) != 4 {
		t.Errorf("node.reaped events: %v, want 4", reaped)
	}
}

// The fold a restarted agent builds from a snapshot and the tail equals
// the fold of the whole journal, and so does its plan.
func TestReconcileFoldIsTheSameWithOrWithoutSnapshots(t *testing.T) {
	ctx := context.Background()
	r := newRig(t)
	r.startWith(agent.Options{SnapshotEvery: 3})
	for _, id := range []string{"a", "b", "c"} {
		_, err := r.client.Run(ctx, id, pingSpec)
		r.must("run", err)
	}
	_, err := r.client.Stop(ctx, "b", nil)
	r.must("stop", err)
	r.stop()

	r.startWith(agent.Options{SnapshotEvery: 3})
	defer r.stop()
	if bs := r.a.Journal.BootStats(); bs.SnapshotSeq == 0 {
		t.Fatalf("boot used no snapshot (%+v): the comparison below would test nothing", bs)
	}
	booted, err := r.a.Node.State(ctx)
	r.must("state", err)
	full := events.NewState(testNode, events.DefaultWindow)
	replay(t, r, func(e *events.Event) {
		if e.Seq <= booted.Seq {
			r.must("fold", full.Apply(e))
		}
	})
	if d := cmp.Diff(full, booted, cmpopts.IgnoreUnexported(events.State{})); d != "" {
		t.Fatalf("fold from snapshot and tail differs from the full fold (-full +booted):\n%s", d)
	}
	obs, err := r.a.Node.Observe(ctx, full)
	r.must("observe", err)
	if d := cmp.Diff(actors.Plan(full, obs), actors.Plan(booted, obs)); d != "" {
		t.Fatalf("plans differ:\n%s", d)
	}
}

// reconciled returns the payload of the journal's last node.reconciled.
func reconciled(t *testing.T, r *rig) events.ReconciledData {
	t.Helper()
	var d events.ReconciledData
	found := false
	replay(t, r, func(e *events.Event) {
		if e.Type == events.NodeReconciled {
			found = true
			d = events.ReconciledData{}
			r.must("decode", e.Decode(&d))
		}
	})
	if !found {
		t.Fatal("no node.reconciled in the journal")
	}
	return d
}

func replay(t *testing.T, r *rig, fn func(*events.Event)) {
	t.Helper()
	err := r.a.Journal.Replay(context.Background(), 1, 0, func(e *events.Event) error { fn(e); return nil })
	r.must("replay", err)
}
