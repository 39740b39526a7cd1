package actors_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/berthhq/berth/actors"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/netdriver"
)

// The reconciliation matrix, case by case: what the fold says, what the
// host holds, and the one action Plan must choose.
func TestPlanMatrix(t *testing.T) {
	running := hcsdriver.Info{ID: "c", Owner: "berth", State: hcsdriver.StateRunning}
	created := hcsdriver.Info{ID: "c", Owner: "berth", State: hcsdriver.StateCreated}
	stopped := hcsdriver.Info{ID: "c", Owner: "berth", State: hcsdriver.StateStopped, Stopped: true}
	alive := &actors.ObservedProcess{Pid: 42}
	exited3 := &actors.ObservedProcess{Pid: 42, Code: events.ExitCode(3)}
	ctr := func(p events.Phase, intent string) *events.Container {
		c := &events.Container{ID: "c", Phase: p, Intent: intent, Owner: "berth"}
		if p == events.PhaseRunning || p == events.PhaseStopping {
			c.Pid = 42
		}
		return c
	}
	exit := func(code *int, reason string) *events.Exit { return &events.Exit{Code: code, Reason: reason} }
	for _, tc := range []struct {
		name string
		c    *events.Container
		sys  *actors.ObservedSystem // nil: the host has no such system
		want *events.Action         // nil: nothing to do
	}{
		{"running on both: adopted", ctr(events.PhaseRunning, ""), &actors.ObservedSystem{Info: running, Init: alive},
			&events.Action{Kind: events.ActionAdopt, Pid: 42}},
		{"running, gone from the host: host_lost", ctr(events.PhaseRunning, ""), nil,
			&events.Action{Kind: events.ActionMarkExited, Exit: exit(nil, events.ReasonHostLost)}},
		{"running, init exited and the host has its code: that code", ctr(events.PhaseRunning, ""), &actors.ObservedSystem{Info: running, Init: exited3},
			&events.Action{Kind: events.ActionMarkExited, Exit: exit(events.ExitCode(3), events.ReasonExited)}},
		{"running, init gone with its code: exited without a code", ctr(events.PhaseRunning, ""), &actors.ObservedSystem{Info: running},
			&events.Action{Kind: events.ActionMarkExited, Exit: exit(nil, events.ReasonExited)}},
		{"running, system stopped and held: exited without a code", ctr(events.PhaseRunning, ""), &actors.ObservedSystem{Info: stopped},
			&events.Action{Kind: events.ActionMarkExited, Exit: exit(nil, events.ReasonExited)}},
		{"create interrupted at creating, system made: rolled back", ctr(events.PhaseCreating, events.ContainerCreating), &actors.ObservedSystem{Info: created},
			&events.Action{Kind: events.ActionRollBackCreate}},
		{"create interrupted at creating, nothing made: rolled back", ctr(events.PhaseCreating, events.ContainerCreating), nil,
			&events.Action{Kind: events.ActionRollBackCreate}},
		{"create interrupted at endpoint_creating: rolled back", ctr(events.PhaseCreating, events.ContainerEndpointCreating), nil,
			&events.Action{Kind: events.ActionRollBackCreate}},
		{"created on both: adopted", ctr(events.PhaseCreated, ""), &actors.ObservedSystem{Info: created},
			&events.Action{Kind: events.ActionAdopt}},
		{"created, gone: host_lost", ctr(events.PhaseCreated, ""), nil,
			&events.Action{Kind: events.ActionMarkExited, Exit: exit(nil, events.ReasonHostLost)}},
		{"created, stopped on the host: runtime error", ctr(events.PhaseCreated, ""), &actors.ObservedSystem{Info: stopped},
			&events.Action{Kind: events.ActionMarkExited, Exit: exit(nil, events.ReasonRuntimeError)}},
		{"start interrupted before the boot: adopted, the start runs again", ctr(events.PhaseCreated, events.ContainerStarting), &actors.ObservedSystem{Info: created},
			&events.Action{Kind: events.ActionAdopt}},
		{"start interrupted after the boot: aborted", ctr(events.PhaseCreated, events.ContainerStarting), &actors.ObservedSystem{Info: running},
			&events.Action{Kind: events.ActionAbortStart}},
		{"start interrupted, gone: host_lost", ctr(events.PhaseCreated, events.ContainerStarting), nil,
			&events.Action{Kind: events.ActionMarkExited, Exit: exit(nil, events.ReasonHostLost)}},
		{"stop interrupted: finished", ctr(events.PhaseStopping, events.ContainerStopping), &actors.ObservedSystem{Info: running, Init: alive},
			&events.Action{Kind: events.ActionFinishStop}},
		{"stop interrupted, system stopped: finished", ctr(events.PhaseStopping, events.ContainerStopping), &actors.ObservedSystem{Info: stopped},
			&events.Action{Kind: events.ActionFinishStop}},
		{"stop interrupted, gone: host_lost", ctr(events.PhaseStopping, events.ContainerStopping), nil,
			&events.Action{Kind: events.ActionMarkExited, Exit: exit(nil, events.ReasonHostLost)}},
		{"remove interrupted, system left: finished", ctr(events.PhaseRemoving, events.ContainerRemoving), &actors.ObservedSystem{Info: stopped},
			&events.Action{Kind: events.ActionFinishRemove}},
		{"remove interrupted, system gone: finished", ctr(events.PhaseRemoving, events.ContainerRemoving), nil,
			&events.Action{Kind: events.ActionFinishRemove}},
		{"exited, silo still runs: reaped", ctr(events.PhaseExited, ""), &actors.ObservedSystem{Info: running},
			&events.Action{Kind: events.ActionReapSystem, Object: "c"}},
		{"exited, nothing on the host: nothing", ctr(events.PhaseExited, ""), nil, nil},
		{"failed, nothing on the host: nothing", ctr(events.PhaseFailed, ""), nil, nil},
		{"unknown: never touched", ctr(events.PhaseUnknown, ""), &actors.ObservedSystem{Info: running}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := events.NewState("n1", events.DefaultWindow)
			st.Containers["c"] = tc.c
			obs := actors.Observed{Systems: map[string]actors.ObservedSystem{}}
			if tc.sys != nil {
				obs.Systems["c"] = *tc.sys
			}
			var want []events.Action
			if tc.want != nil {
				w := *tc.want
				w.Container = "c"
				want = append(want, w)
			}
			got := actors.Plan(st, obs)
			opts := cmp.Options{
				cmp.FilterPath(func(p cmp.Path) bool {
					n := p.Last().String()
					return n == ".Why" || n == ".Message"
				}, cmp.Ignore()),
			}
			if d := cmp.Diff(want, got, opts); d != "" {
				t.Errorf("plan (-want +got):\n%s", d)
			}
			for _, a := range got {
				if a.Why == "" {
					t.Errorf("%s has no reason", a.Kind)
				}
			}
		})
	}
}

// Host objects of ours that no live container owns are reaped; what a
// live container owns is kept.
func TestPlanReapsWhatNoContainerOwns(t *testing.T) {
	st := events.NewState("n1", events.DefaultWindow)
	st.Containers["web"] = &events.Container{ID: "web", Phase: events.PhaseRunning, Pid: 7,
		Endpoint: &events.Endpoint{Name: "berth-web", ID: "ep-web"}}
	st.Containers["old"] = &events.Container{ID: "old", Phase: events.PhaseFailed}
	st.Containers["db"] = &events.Container{ID: "db", Phase: events.PhaseExited, Scratch: &events.Scratch{}}
	obs := actors.Observed{
		Systems: map[string]actors.ObservedSystem{
			"web":    {Info: hcsdriver.Info{ID: "web", Owner: "berth", State: hcsdriver.StateRunning}, Init: &actors.ObservedProcess{Pid: 7}},
			"zombie": {Info: hcsdriver.Info{ID: "zombie", Owner: "berth", State: hcsdriver.StateRunning}},
		},
		Endpoints: []netdriver.Endpoint{{ID: "ep-stray", EndpointSpec: netdriver.EndpointSpec{Name: "berth-stray"}},
			{ID: "ep-web", EndpointSpec: netdriver.EndpointSpec{Name: "berth-web"}}},
		Scratch: []imagedriver.Scratch{
			{ContainerID: "db", Complete: true},
			{ContainerID: "old", Complete: true},
			{ContainerID: "ghost", Complete: true},
			{ContainerID: "half"},
		},
		Incomplete: []imagedriver.Layer{{ID: "sha256:bb"}},
	}
	var got []string
	for _, a := range actors.Plan(st, obs) {
		got = append(got, string(a.Kind)+" "+a.Container+" "+a.Object)
	}
	want := []string{
		"adopt web ",
		"reap_system  zombie",
		"reap_endpoint  ep-stray",
		"reap_scratch  ghost",
		"reap_scratch  half",
		"reap_scratch  old",
		"reap_layer  sha256:bb",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("plan (-want +got):\n%s", d)
	}
}

// Plan is a pure function: the same inputs give the same plan, whatever
// the order of maps and slices.
func TestPlanIsDeterministic(t *testing.T) {
	st := events.NewState("n1", events.DefaultWindow)
	obs := actors.Observed{Systems: map[string]actors.ObservedSystem{}}
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		st.Containers[id] = &events.Container{ID: id, Phase: events.PhaseRunning, Pid: 1}
		obs.Systems["z"+id] = actors.ObservedSystem{Info: hcsdriver.Info{ID: "z" + id, State: hcsdriver.StateRunning}}
	}
	first := actors.Plan(st, obs)
	for range 20 {
		if d := cmp.Diff(first, actors.Plan(st, obs)); d != "" {
			t.Fatalf("plans differ:\n%s", d)
		}
	}
}

// The node's network is created again when the journal says it was created
// and the host has no network of its name (or one with another id); it is
// left alone otherwise.
func TestPlanRecreatesALostNetwork(t *testing.T) {
	created := &events.Network{Phase: events.NetworkPhaseCreated, ID: "net-1"}
	created.Name = "berth-overlay"
	configured := &events.Network{Phase: events.NetworkPhaseConfigured}
	configured.Name = "berth-overlay"
	recreate := func(why string) []events.Action {
		return []events.Action{{Kind: events.ActionRecreateNetwork, Object: "berth-overlay", Why: why}}
	}
	for _, tc := range []struct {
		name string
		nw   *events.Network
		on   *actors.ObservedNetwork
		want []events.Action
	}{
		{"on the host with its id: nothing", created, &actors.ObservedNetwork{Name: "berth-overlay", ID: "net-1"}, nil},
		{"gone from the host: recreated", created, &actors.ObservedNetwork{Name: "berth-overlay"},
			recreate("created in the journal, gone from the host")},
		{"on the host with another id: recreated (adopted if its shape matches)", created, &actors.ObservedNetwork{Name: "berth-overlay", ID: "net-2"},
			recreate("the host's network of this name has another id")},
		{"not observed (no network driver): nothing", created, nil, nil},
		{"configured, never created: nothing (the network actor creates it)", configured, &actors.ObservedNetwork{Name: "berth-overlay"}, nil},
		{"no network: nothing", nil, nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := events.NewState("n1", events.DefaultWindow)
			st.Network = tc.nw
			got := actors.Plan(st, actors.Observed{Network: tc.on})
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("plan (-want +got):\n%s", diff)
			}
		})
	}
}
