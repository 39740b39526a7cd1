package actors

import (
	"cmp"
	"maps"
	"slices"
	"strings"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/netdriver"
)

// Observed is what the host holds of ours, as the drivers report it: the
// input of [Plan] besides the fold.
type Observed struct {
	// Systems are the compute systems carrying our owner tag, by id.
	Systems map[string]ObservedSystem `json:"systems"`
	// Endpoints are the endpoints named with our owner prefix
	// ("<owner>-"); none when the agent has no network driver.
	Endpoints []netdriver.Endpoint `json:"endpoints,omitempty"`
	// Scratch are the layer store's scratch layers and Incomplete its
	// layers without a completion marker; none when the agent has no layer
	// store.
	Scratch    []imagedriver.Scratch `json:"scratch,omitempty"`
	Incomplete []imagedriver.Layer   `json:"incomplete,omitempty"`
	// Network is the host's network of the name the fold's created network
	// has, with an empty ID when the host has none; nil when the fold has
	// no created network or the agent has no network driver.
	Network *ObservedNetwork `json:"network,omitempty"`
}

// ObservedNetwork is the host's view of the node's network.
type ObservedNetwork struct {
	Name string `json:"name"`
	ID   string `json:"id,omitempty"`
}

// ObservedSystem is one of our compute systems.
type ObservedSystem struct {
	hcsdriver.Info
	// Init is the init process the fold names for the container, when the
	// host still has it; nil when the container is not running in the fold
	// or the host no longer knows the process (an exited process nobody
	// holds is gone, with its code).
	Init *ObservedProcess `json:"init,omitempty"`
}

// ObservedProcess is an init process the host still has.
type ObservedProcess struct {
	Pid  int  `json:"pid"`
	Code *int `json:"code,omitempty"` // set once the process has exited
}

// Messages of the exits reconciliation records.
const (
	msgHostLost    = "the host no longer has the compute system"
	msgCodeLost    = "the init process ended while the agent was down; the platform keeps no exit code for it"
	msgStartCut    = "start interrupted by an agent restart after the system booted; its init process is unknown"
	msgNeverBooted = "the host stopped the compute system before it was started"
)

// Plan decides, from the fold st (what the journal believes) and obs (what
// the host holds), what reconciliation does: the network's re-creation when
// the host lost it, one action per container that needs one, then one per
// host object of ours that no live container owns.
// Objects without our owner tag are never in obs, so never in the plan.
// Plan is pure: the same inputs give the same actions, in the same order.
//
// An interrupted create is rolled back rather than forward: its command has
// no outcome yet, so the inbox delivers it again, and a create from a clean
// slate is the one path that is tested every day; rolling forward would
// need to know how far each host call got.
func Plan(st *events.State, obs Observed) []events.Action {
	var plan []events.Action
	if a, ok := planNetwork(st.Network, obs.Network); ok {
		plan = append(plan, a)
	}
	for _, id := range slices.Sorted(maps.Keys(st.Containers)) {
		if a, ok := planContainer(st.Containers[id], obs.Systems); ok {
			plan = append(plan, a)
		}
	}
	return append(plan, planReaps(st, obs)...)
}

// planNetwork decides about the node's network: the fold's network nw,
// created, must be the host's network of its name, seen as on.
func planNetwork(nw *events.Network, on *ObservedNetwork) (events.Action, bool) {
	if nw == nil || nw.Phase != events.NetworkPhaseCreated || on == nil || on.ID == nw.ID {
		return events.Action{}, false
	}
	why := "created in the journal, gone from the host"
	if on.ID != "" {
		why = "the host's network of this name has another id"
	}
	return events.Action{Kind: events.ActionRecreateNetwork, Object: nw.Name, Why: why}, true
}

// planContainer decides about one container of the fold.
func planContainer(c *events.Container, systems map[string]ObservedSystem) (events.Action, bool) {
	sys, has := systems[c.ID]
	live := has && !sys.Stopped
	act := func(k events.ActionKind, why string) (events.Action, bool) {
		return events.Action{Kind: k, Container: c.ID, Why: why}, true
	}
	exited := func(code *int, reason, msg, why string) (events.Action, bool) {
		a, _ := act(events.ActionMarkExited, why)
		a.Exit = &events.Exit{Code: code, Reason: reason, Message: msg}
		return a, true
	}
	switch c.Phase {
	case events.PhaseCreating:
		return act(events.ActionRollBackCreate, "create interrupted (last intent "+shortType(c.Intent)+")")
	case events.PhaseRemoving:
		return act(events.ActionFinishRemove, "remove interrupted")
	case events.PhaseCreated:
		switch {
		case !has:
			return exited(nil, events.ReasonHostLost, msgHostLost, "created in the journal, gone from the host")
		case c.Intent == events.ContainerStarting && sys.State != hcsdriver.StateCreated:
			return act(events.ActionAbortStart, "start interrupted after the system booted")
		case sys.Stopped:
			return exited(nil, events.ReasonRuntimeError, msgNeverBooted, "created in the journal, stopped on the host")
		}
		a, ok := act(events.ActionAdopt, "created in the journal and on the host")
		if c.Intent == events.ContainerStarting {
			a.Why = "start interrupted before the system booted"
		}
		return a, ok
	case events.PhaseRunning:
		switch {
		case !has:
			return exited(nil, events.ReasonHostLost, msgHostLost, "running in the journal, gone from the host")
		case sys.Init != nil && sys.Init.Code != nil:
			return exited(sys.Init.Code, events.ReasonExited, "", "the init process exited while the agent was down")
		case sys.Init == nil:
			return exited(nil, events.ReasonExited, msgCodeLost, "the host no longer has the init process")
		case !live:
			return exited(nil, events.ReasonHostLost, "the compute system stopped while the agent was down", "running in the journal, stopped on the host")
		}
		a, ok := act(events.ActionAdopt, "running in the journal and on the host")
		a.Pid = c.Pid
		return a, ok
	case events.PhaseStopping:
		if !has {
			return exited(nil, events.ReasonHostLost, msgHostLost, "stopping in the journal, gone from the host")
		}
		return act(events.ActionFinishStop, "stop interrupted")
	case events.PhaseExited, events.PhaseFailed:
		if live {
			a, ok := act(events.ActionReapSystem, string(c.Phase)+" in the journal, its compute system still runs")
			a.Object = c.ID
			return a, ok
		}
	}
	// unknown: kept for an operator, never touched.
	return events.Action{}, false
}

// planReaps lists the host objects of ours that no live container owns.
func planReaps(st *events.State, obs Observed) []events.Action {
	var plan []events.Action
	for _, id := range slices.Sorted(maps.Keys(obs.Systems)) {
		if _, known := st.Containers[id]; !known {
			plan = append(plan, events.Action{Kind: events.ActionReapSystem, Object: id, Why: "no container in the journal owns it"})
		}
	}
	owned := map[string]bool{}
	for _, c := range st.Containers {
		if c.Endpoint != nil {
			owned[c.Endpoint.Name] = true
		}
	}
	eps := slices.SortedFunc(slices.Values(obs.Endpoints), func(a, b netdriver.Endpoint) int { return cmp.Compare(a.Name, b.Name) })
	for _, ep := range eps {
		if !owned[ep.Name] {
			plan = append(plan, events.Action{Kind: events.ActionReapEndpoint, Object: ep.ID, Why: "endpoint " + ep.Name + ": no container in the journal owns it"})
		}
	}
	// A scratch layer a container's record names is that container's:
	// its remove, or the roll back of its create, deletes it.
	scratch := slices.SortedFunc(slices.Values(obs.Scratch), func(a, b imagedriver.Scratch) int { return cmp.Compare(a.ContainerID, b.ContainerID) })
	for _, s := range scratch {
		if c := st.Containers[s.ContainerID]; c == nil || c.Scratch == nil {
			plan = append(plan, events.Action{Kind: events.ActionReapScratch, Object: s.ContainerID, Why: "no container in the journal owns it"})
		}
	}
	layers := slices.SortedFunc(slices.Values(obs.Incomplete), func(a, b imagedriver.Layer) int { return cmp.Compare(a.ID, b.ID) })
	for _, l := range layers {
		plan = append(plan, events.Action{Kind: events.ActionReapLayer, Object: l.ID, Why: "layer folder without its completion marker"})
	}
	return plan
}

func shortType(t string) string {
	if t == "" {
		return "none"
	}
	return strings.TrimPrefix(t, events.TypePrefix)
}
