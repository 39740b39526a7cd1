package events

import (
	"bytes"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"
)

// Container is the fold's record of one container.
type Container struct {
	ID        string        `json:"id"`
	Phase     Phase         `json:"phase"`
	Spec      ContainerSpec `json:"spec"`
	Owner     string        `json:"owner"`
	HostID    string        `json:"host_id,omitempty"`
	CreatedAt time.Time     `json:"created_at"`
	StartedAt time.Time     `json:"started_at,omitzero"`
	Pid       int           `json:"pid,omitempty"`
	Exit      *Exit         `json:"exit,omitempty"`
	// Intent is the type of the last intent event that has no outcome yet
	// ("" when none): the host operation that may have been interrupted.
	Intent string `json:"intent,omitempty"`
	// Error is the message of the last failed operation.
	Error string `json:"error,omitempty"`
	// Endpoint is the container's endpoint on the node's network, from
	// its endpoint_creating until the endpoint is deleted. A created
	// container without one has no network: its spec asked for network
	// mode none, or the node had no network when it was created.
	Endpoint *Endpoint `json:"endpoint,omitempty"`
	// Image is the id of the image the container was created from, from
	// its scratch_creating on ("" for a container created without one);
	// Scratch is its scratch layer, from scratch_creating until
	// scratch_removed.
	Image   string   `json:"image,omitempty"`
	Scratch *Scratch `json:"scratch,omitempty"`
	// Execs maps the exec sessions running in the container to their
	// process ids, from exec_started to exec_exited.
	Execs map[string]int `json:"execs,omitempty"`
	// Seq is the journal sequence of the last event applied to this record.
	Seq uint64 `json:"seq"`
}

// Outcome is a handled command kept in the idempotency window.
type Outcome struct {
	ID        string    `json:"id"`
	Verb      string    `json:"verb"`
	Container string    `json:"container,omitempty"`
	Reply     Reply     `json:"reply"`
	At        time.Time `json:"at"`
}

// Window bounds how many handled command outcomes the fold keeps, by count
// and by age. It must be longer than the command inbox's redelivery horizon.
type Window struct {
	MaxCount int           `json:"max_count"`
	MaxAge   time.Duration `json:"max_age"`
}

// DefaultWindow keeps the last 100,000 outcomes, for at most 48 hours.
var DefaultWindow = Window{MaxCount: 100_000, MaxAge: 48 * time.Hour}

// State is the fold of a node's journal. Apply is its only mutator.
type State struct {
	Node       string                `json:"node"`
	Seq        uint64                `json:"seq"` // last journal sequence applied
	Containers map[string]*Container `json:"containers"`
	// Network is the node's network, nil until network.configured.
	Network *Network `json:"network,omitempty"`
	// Images are the images on the node, by id (manifest digest).
	Images map[string]*Image `json:"images,omitempty"`
	// Outcomes holds handled commands, oldest first; Window bounds it.
	Outcomes []Outcome `json:"outcomes"`
	Window   Window    `json:"-"`

	outcomeIdx map[string]int // command id -> index in Outcomes + dropped
	dropped    int            // outcomes evicted from the front since the index was built
	outcomeBuf []Outcome      // the array Outcomes slides along; see appendOutcome
	recordView bool           // see RecordView
}

// NewState returns the empty fold for node, keeping outcomes within w.
func NewState(node string, w Window) *State {
	return &State{Node: node, Containers: map[string]*Container{}, Window: w}
}

// Outcome returns the recorded reply to command id, if it is still in the window.
func (s *State) Outcome(id string) (Outcome, bool) {
	s.index()
	i, ok := s.outcomeIdx[id]
	if !ok {
		return Outcome{}, false
	}
	return s.Outcomes[i-s.dropped], true
}

func (s *State) index() {
	if s.outcomeIdx != nil {
		return
	}
	s.outcomeIdx = make(map[string]int, len(s.Outcomes))
	s.dropped = 0
	for i, o := range s.Outcomes {
		s.outcomeIdx[o.ID] = i
	}
}

// Apply folds one event into the state. An event whose transition the
// current phase forbids is refused with an ErrWrongPhase error and leaves
// the state unchanged; an event with a payload that does not decode is
// refused with ErrInvalid. Events of kinds this fold does not track are
// accepted and only advance Seq.
func (s *State) Apply(e *Event) error { return s.apply(e, nil) }

// apply is Apply with e's data decoded ahead (see ApplyDecoded).
func (s *State) apply(e *Event, pre any) error {
	var err error
	switch e.Kind() {
	case KindContainer:
		err = s.applyContainer(e, pre)
	case KindNode:
		err = s.applyNode(e, pre)
	case KindNetwork:
		err = s.applyNetwork(e)
	case KindImage:
		err = s.applyImage(e)
	}
	if err != nil {
		return err
	}
	if e.Seq > s.Seq {
		s.Seq = e.Seq
	}
	return nil
}

func (s *State) applyNode(e *Event, pre any) error {
	if e.Type != NodeCommandCompleted {
		return nil
	}
	d, err := decodeAs[CommandCompletedData](e, pre)
	if err != nil {
		return err
	}
	s.index()
	if _, dup := s.outcomeIdx[e.Subject]; dup {
		return nil // first outcome wins; a repeat cannot change history
	}
	s.appendOutcome(Outcome{ID: e.Subject, Verb: d.Verb, Container: d.Container, Reply: d.Reply, At: e.Time})
	s.outcomeIdx[e.Subject] = len(s.Outcomes) - 1 + s.dropped
	s.evict(e.Time)
	return nil
}

// appendOutcome appends o to Outcomes. Once the window is full, each new
// outcome evicts the oldest, and Outcomes slides along its array; plain
// append would copy the window into a new array each time it reached the
// array's end, allocating as much as it copies. appendOutcome gives the
// window an array of twice its length and moves it back to the front when
// it reaches the end: one copy per window's length of outcomes, and no
// allocation.
func (s *State) appendOutcome(o Outcome) {
	if n := len(s.Outcomes); n > 0 && n == cap(s.Outcomes) {
		if cap(s.outcomeBuf) < 2*n {
			s.outcomeBuf = make([]Outcome, 2*n)
		}
		copy(s.outcomeBuf, s.Outcomes)
		clear(s.outcomeBuf[n:])
		s.Outcomes = s.outcomeBuf[:n]
	}
	s.Outcomes = append(s.Outcomes, o)
}

// evict drops outcomes beyond the window, oldest first.
func (s *State) evict(now time.Time) {
	n := 0
	for n < len(s.Outcomes) {
		o := s.Outcomes[n]
		over := s.Window.MaxCount > 0 && len(s.Outcomes)-n > s.Window.MaxCount
		old := s.Window.MaxAge > 0 && now.Sub(o.At) > s.Window.MaxAge
		if !over && !old {
			break
		}
		delete(s.outcomeIdx, o.ID)
		n++
	}
	if n > 0 {
		// Reslice rather than copy: copying the whole window on every
		// eviction made each command cost O(window) once the window was
		// full. appendOutcome moves the live outcomes back to the front
		// when the array runs out.
		clear(s.Outcomes[:n]) // let go of what they hold until then
		s.Outcomes = s.Outcomes[n:]
		s.dropped += n
	}
}

// transition describes when a container event is allowed and what it does.
type transition struct {
	from   []Phase // allowed phases; nil means "the container must not exist (or is failed)"
	to     Phase   // "" keeps the phase
	intent bool    // the event is an intent: it opens Container.Intent
	// nested: the event is an outcome of an intent nested in the phase's
	// own (an endpoint's, inside a create or a remove), so Intent returns
	// to the phase's intent.
	nested bool
}

var transitions = map[string]transition{
	ContainerCreating:     {from: nil, to: PhaseCreating, intent: true},
	ContainerCreated:      {from: []Phase{PhaseCreating}, to: PhaseCreated},
	ContainerCreateFailed: {from: []Phase{PhaseCreating}, to: PhaseFailed},
	ContainerStarting:     {from: []Phase{PhaseCreated}, intent: true},
	ContainerStarted:      {from: []Phase{PhaseCreated}, to: PhaseRunning},
	ContainerStopping:     {from: []Phase{PhaseCreated, PhaseRunning, PhaseStopping}, to: PhaseStopping, intent: true},
	ContainerExited:       {from: []Phase{PhaseCreated, PhaseRunning, PhaseStopping, PhaseUnknown}, to: PhaseExited},
	ContainerRemoving:     {from: []Phase{PhaseCreated, PhaseExited, PhaseFailed, PhaseRemoving, PhaseUnknown}, to: PhaseRemoving, intent: true},
	ContainerRemoved:      {from: []Phase{PhaseRemoving}, to: PhaseRemoved},
	ContainerRemoveFailed: {from: []Phase{PhaseRemoving}},
	ContainerUnknown:      {from: []Phase{PhaseCreating, PhaseCreated, PhaseRunning, PhaseStopping, PhaseExited, PhaseRemoving, PhaseUnknown}, to: PhaseUnknown},

	ContainerEndpointCreating:     {from: []Phase{PhaseCreating}, intent: true},
	ContainerEndpointCreated:      {from: []Phase{PhaseCreating}, nested: true},
	ContainerEndpointCreateFailed: {from: []Phase{PhaseCreating}, nested: true},
	ContainerEndpointDeleted:      {from: []Phase{PhaseCreating, PhaseFailed, PhaseRemoving}, nested: true},

	ContainerScratchCreating:     {from: []Phase{PhaseCreating}, intent: true},
	ContainerScratchCreated:      {from: []Phase{PhaseCreating}, nested: true},
	ContainerScratchCreateFailed: {from: []Phase{PhaseCreating}, nested: true},
	ContainerScratchRemoved:      {from: []Phase{PhaseCreating, PhaseFailed, PhaseRemoving}, nested: true},
}

// phaseIntents are the intents a phase stands for while it lasts.
var phaseIntents = map[Phase]string{PhaseCreating: ContainerCreating, PhaseRemoving: ContainerRemoving}

// Allowed reports whether an event of type typ may be applied to a
// container in phase p (p is "" when the container does not exist).
func Allowed(typ string, p Phase) bool {
	t, ok := transitions[typ]
	return ok && t.allows(p)
}

// allows reports whether t may be applied to a container in phase p.
func (t transition) allows(p Phase) bool {
	if t.from == nil {
		return p == "" || p == PhaseFailed || p == PhaseRemoved
	}
	return slices.Contains(t.from, p)
}

func (s *State) applyContainer(e *Event, pre any) error {
	if e.Type == ContainerExecStarted || e.Type == ContainerExecExited {
		return s.applyExec(e, pre)
	}
	t, known := transitions[e.Type]
	if !known {
		return fmt.Errorf("%w: event %s: unknown container event type %q", ErrInvalid, e.ID, e.Type)
	}
	c := s.Containers[e.Subject]
	var phase Phase
	if c != nil {
		phase = c.Phase
	}
	if !t.allows(phase) {
		if phase == "" {
			return fmt.Errorf("%w: %s for container %s, which does not exist", ErrWrongPhase, e.Short(), e.Subject)
		}
		return fmt.Errorf("%w: %s for container %s in phase %s", ErrWrongPhase, e.Short(), e.Subject, phase)
	}
	// Decode before mutating, so a bad payload leaves the state unchanged.
	var (
		creating *CreatingData
		created  *CreatedData
		started  *StartedData
		exit     *Exit
		failure  *FailureData
		err      error
	)
	switch e.Type {
	case ContainerCreating:
		creating, err = decodeAs[CreatingData](e, pre)
	case ContainerCreated:
		created, err = decodeAs[CreatedData](e, pre)
	case ContainerStarted:
		started, err = decodeAs[StartedData](e, pre)
	case ContainerStopping:
		_, err = decodeAs[StoppingData](e, pre)
	case ContainerExited:
		exit, err = decodeAs[Exit](e, pre)
	case ContainerCreateFailed, ContainerRemoveFailed, ContainerUnknown:
		failure, err = decodeAs[FailureData](e, pre)
	}
	if err != nil {
		return err
	}
	// A record leaves the fold, or is replaced, only without an endpoint
	// or a scratch layer, and a container is created only once they are.
	switch {
	case c == nil || c.Scratch == nil:
	case e.Type == ContainerCreating || e.Type == ContainerRemoved:
		return fmt.Errorf("%w: %s for container %s, which still holds a scratch layer", ErrWrongPhase, e.Short(), e.Subject)
	case e.Type == ContainerCreated && c.Scratch.Path == "":
		return fmt.Errorf("%w: %s for container %s, whose scratch layer is not created", ErrWrongPhase, e.Short(), e.Subject)
	}
	switch {
	case c == nil || c.Endpoint == nil:
	case e.Type == ContainerCreating || e.Type == ContainerRemoved:
		return fmt.Errorf("%w: %s for container %s, which still holds endpoint %s", ErrWrongPhase, e.Short(), e.Subject, c.Endpoint.Name)
	case e.Type == ContainerCreated && c.Endpoint.ID == "":
		return fmt.Errorf("%w: %s for container %s, whose endpoint %s is not created", ErrWrongPhase, e.Short(), e.Subject, c.Endpoint.Name)
	}
	if strings.HasPrefix(e.Type, endpointPrefix) {
		if err := s.applyEndpoint(e, c); err != nil {
			return err
		}
	}
	if strings.HasPrefix(e.Type, scratchPrefix) {
		if err := applyScratch(e, c); err != nil {
			return err
		}
	}

	if e.Type == ContainerCreating {
		c = &Container{ID: e.Subject, Spec: creating.Spec, Owner: creating.Owner, CreatedAt: e.Time}
		s.Containers[e.Subject] = c
	}
	if t.to != "" {
		c.Phase = t.to
	}
	c.Intent = ""
	switch {
	case t.intent:
		c.Intent = e.Type
	case t.nested:
		c.Intent = phaseIntents[c.Phase]
	}
	c.Seq = e.Seq
	switch e.Type {
	case ContainerCreated:
		c.HostID, c.Error = created.HostID, ""
	case ContainerStarting:
		c.Exit, c.Error = nil, ""
	case ContainerStarted:
		c.Pid, c.StartedAt = started.Pid, e.Time
	case ContainerExited:
		c.Exit, c.Pid = exit, 0
		c.Execs = nil // an exec process does not outlive its compute system
	case ContainerCreateFailed, ContainerRemoveFailed, ContainerUnknown:
		c.Error = failure.Error
	case ContainerRemoved:
		delete(s.Containers, e.Subject)
	}
	return nil
}

// applyExec folds an exec event. An exec starts only in a running
// container; its exit may be recorded in any phase, even after the
// container's record has left the fold (a forced remove ends its execs).
// Neither changes the container's phase or intent.
func (s *State) applyExec(e *Event, pre any) error {
	c := s.Containers[e.Subject]
	if e.Type == ContainerExecStarted {
		d, err := decodeAs[ExecStartedData](e, pre)
		if err != nil {
			return err
		}
		if c == nil || c.Phase != PhaseRunning {
			return fmt.Errorf("%w: %s for container %s, which is not running", ErrWrongPhase, e.Short(), e.Subject)
		}
		if c.Execs == nil {
			c.Execs = map[string]int{}
		}
		c.Execs[d.Exec] = d.Pid
		c.Seq = e.Seq
		return nil
	}
	x, err := decodeAs[ExecExit](e, pre)
	if err != nil {
		return err
	}
	if c != nil {
		delete(c.Execs, x.Exec)
		if len(c.Execs) == 0 {
			c.Execs = nil
		}
		c.Seq = e.Seq
	}
	return nil
}

// Clone returns a deep copy of the state, for handing a consistent view to
// another goroutine (a snapshot writer, a query).
func (s *State) Clone() *State {
	n := &State{Node: s.Node, Seq: s.Seq, Window: s.Window, recordView: s.recordView,
		Containers: make(map[string]*Container, len(s.Containers)),
		Outcomes:   append([]Outcome(nil), s.Outcomes...)}
	for i, o := range n.Outcomes {
		n.Outcomes[i].Reply = o.Reply.clone()
	}
	for id, c := range s.Containers {
		n.Containers[id] = c.Clone()
	}
	if s.Network != nil {
		n.Network = s.Network.clone()
	}
	if s.Images != nil {
		n.Images = make(map[string]*Image, len(s.Images))
		for id, im := range s.Images {
			n.Images[id] = im.clone()
		}
	}
	return n
}

// Clone returns a deep copy of c, which shares nothing with c: a record
// handed to another goroutine while the fold goes on changing c.
func (c *Container) Clone() *Container {
	cc := *c
	cc.Spec = c.Spec.clone()
	if c.Exit != nil {
		ex := *c.Exit
		if ex.Code != nil {
			ex.Code = ExitCode(*ex.Code)
		}
		cc.Exit = &ex
	}
	cc.Endpoint = c.Endpoint.clone()
	cc.Scratch = c.Scratch.clone()
	cc.Execs = maps.Clone(c.Execs)
	return &cc
}

func (r Reply) clone() Reply {
	r.Result = bytes.Clone(r.Result)
	if r.Error != nil {
		e := *r.Error
		r.Error = &e
	}
	return r
}

func (s ContainerSpec) clone() ContainerSpec {
	s.Command.Entrypoint = slices.Clone(s.Command.Entrypoint)
	s.Command.Args = slices.Clone(s.Command.Args)
	s.Env = maps.Clone(s.Env)
	s.Network.DNS = s.Network.DNS.clone()
	s.Ports = slices.Clone(s.Ports)
	s.Mounts = slices.Clone(s.Mounts)
	s.Labels = maps.Clone(s.Labels)
	return s
}
