package events

// Reconciliation event types (DESIGN §7). The actions that change a
// container are recorded as that container's own events (exited,
// create_failed, removed, ...); node.reaped records the removal of a host
// object no container owns, and node.reconciled closes a reconciliation.
const (
	NodeReaped     = "berth.node.reaped"     // ReapedData
	NodeReconciled = "berth.node.reconciled" // ReconciledData
)

// ActionKind names what reconciliation does about one container or host
// object.
type ActionKind string

// Action kinds, one per case of the reconciliation matrix.
const (
	// ActionAdopt reopens a live compute system (and its init process, when
	// the container runs) and watches it again.
	ActionAdopt ActionKind = "adopt"
	// ActionMarkExited records the exit of a container whose init process
	// or compute system ended while the agent was down: with the real code
	// when the host still has it, reason host_lost when the host no longer
	// has the system. A silo that outlived its init process is shut down.
	ActionMarkExited ActionKind = "mark_exited"
	// ActionFinishStop terminates a system whose stop was interrupted and
	// records its exit.
	ActionFinishStop ActionKind = "finish_stop"
	// ActionFinishRemove deletes what an interrupted remove left (system,
	// endpoint) and records the removal.
	ActionFinishRemove ActionKind = "finish_remove"
	// ActionRollBackCreate deletes what an interrupted create acquired
	// (system, endpoint, address) and records create_failed; a redelivered
	// create command then runs from a clean slate.
	ActionRollBackCreate ActionKind = "roll_back_create"
	// ActionAbortStart stops a system whose start was interrupted after it
	// booted (its init process is unknown) and records a runtime error.
	ActionAbortStart ActionKind = "abort_start"
	// ActionRecreateNetwork creates the node's network again (or adopts the
	// host's network of its name) when the journal says it was created but
	// the host no longer has it, as after a host reboot; containers created
	// afterwards get their endpoints on it.
	ActionRecreateNetwork ActionKind = "recreate_network"
	// ActionReapSystem terminates and releases a compute system carrying
	// our owner tag that no live container owns.
	ActionReapSystem ActionKind = "reap_system"
	// ActionReapEndpoint deletes an endpoint named with our owner prefix
	// that no container owns.
	ActionReapEndpoint ActionKind = "reap_endpoint"
	// ActionReapScratch deletes a scratch layer that no live container owns,
	// or whose creation was cut short.
	ActionReapScratch ActionKind = "reap_scratch"
	// ActionReapLayer deletes an image layer folder without its completion
	// marker (an import cut short).
	ActionReapLayer ActionKind = "reap_layer"
)

// Action is one step of a reconciliation plan.
type Action struct {
	Kind ActionKind `json:"kind"`
	// Container is the container the action is about ("" for a host object
	// no container owns).
	Container string `json:"container,omitempty"`
	// Object is the host object a reap removes: a compute system id, an
	// endpoint id, a scratch layer's container id or a layer's chain id;
	// for recreate_network, the network's name.
	Object string `json:"object,omitempty"`
	// Pid is the init process an adopt reopens (0: the container is not
	// running).
	Pid int `json:"pid,omitempty"`
	// Exit is what mark_exited records.
	Exit *Exit `json:"exit,omitempty"`
	// Why says which observation led to the action.
	Why string `json:"why"`
}

// Outcomes of an executed action.
const (
	OutcomeOK      = "ok"
	OutcomeError   = "error"
	OutcomeTimeout = "timeout"
)

// ActionResult is an action and how its execution ended.
type ActionResult struct {
	Action
	Outcome string `json:"outcome"`
	Error   string `json:"error,omitempty"`
}

// ReapedData is the payload of node.reaped.
type ReapedData struct {
	Action
	Error string `json:"error,omitempty"` // set when the host refused
}

// ReconciledData is the payload of node.reconciled: what reconciliation did
// after the agent's start.
type ReconciledData struct {
	// Summary counts the actions by "<kind>/<outcome>".
	Summary map[string]int `json:"summary"`
	// Actions are the actions other than successful adoptions, in plan
	// order, at most MaxReconciledActions of them (the container's own
	// events record each one anyway); Omitted counts those left out.
	Actions []ActionResult `json:"actions,omitempty"`
	Omitted int            `json:"omitted,omitempty"`
	Took    Duration       `json:"took"`
}

// MaxReconciledActions bounds ReconciledData.Actions, so that the event
// stays small on a node with many containers.
const MaxReconciledActions = 500
