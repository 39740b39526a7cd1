package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthhq/berth/events"
)

const (
	testNode = "n1"
	ctr      = "web-rep-1"
)

var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// ignoreIndex leaves out the State's private lookup index, which Outcome
// builds lazily and which is not part of the fold's value.
var ignoreIndex = cmpopts.IgnoreUnexported(events.State{})

// wantUnchanged fails the test when a refused event changed the state.
func wantUnchanged(t *testing.T, before, after *events.State) {
	t.Helper()
	if d := cmp.Diff(before, after, ignoreIndex); d != "" {
		t.Errorf("a refused event changed the state (-before +after):\n%s", d)
	}
}

// event builds an event as the journal would hand it to the fold: journal
// sequence seq, time t0+seq seconds.
func event(typ, subject string, seq uint64, data any) *events.Event {
	e := events.NewEvent(testNode, typ, subject, fmt.Sprintf("cmd-%d", seq), data)
	e.Seq = seq
	e.Time = t0.Add(time.Duration(seq) * time.Second)
	return &e
}

func fullSpec() events.ContainerSpec {
	return events.ContainerSpec{
		Image:     events.ImageSpec{Ref: "mcr.microsoft.com/windows/nanoserver:ltsc2022", PullPolicy: "if_not_present"},
		Command:   events.CommandSpec{Entrypoint: []string{"cmd", "/c"}, Args: []string{"echo hi"}, Workdir: `C:\app`},
		Env:       map[string]string{"MODE": "prod"},
		User:      "ContainerUser",
		Hostname:  "web-1",
		Resources: events.Resources{CPU: 1.5, Memory: 512 << 20},
		Isolation: "process",
		Network: events.NetworkSpec{Mode: "overlay", IP: "10.200.0.18",
			DNS: events.DNSSpec{Servers: []string{"10.200.0.2"}, Domain: "service.local", Search: []string{"service.local"}}},
		Ports:  []events.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}},
		Mounts: []events.Mount{{Source: `D:\data`, Target: `C:\data`, ReadOnly: true}},
		Labels: map[string]string{"service": "web"},
		Stop:   events.StopSpec{Timeout: events.Duration(30 * time.Second)},
	}
}

// phaseNone stands for "the container does not exist": as a starting point
// it means no record, as a result it means the record was deleted.
const phaseNone events.Phase = ""

var allPhases = []events.Phase{
	phaseNone, events.PhaseCreating, events.PhaseCreated, events.PhaseRunning, events.PhaseStopping,
	events.PhaseExited, events.PhaseRemoving, events.PhaseRemoved, events.PhaseFailed, events.PhaseUnknown,
}

// stateIn returns a state holding one container in phase p (none for
// phaseNone), with every field set, so a test sees which fields an event
// keeps, sets and clears.
func stateIn(p events.Phase) *events.State {
	s := events.NewState(testNode, events.DefaultWindow)
	s.Seq = 10
	if p != phaseNone {
		s.Containers[ctr] = &events.Container{
			ID: ctr, Phase: p, Spec: fullSpec(), Owner: "berth", HostID: "old-host-id",
			CreatedAt: t0, StartedAt: t0.Add(time.Second), Pid: 7,
			Exit:   &events.Exit{Code: events.ExitCode(1), Reason: events.ReasonKilled, FinishedAt: t0.Add(2 * time.Second)},
			Intent: "berth.container.earlier_intent", Error: "earlier error", Seq: 10,
		}
	}
	return s
}

// transitions is DESIGN §3 written out: for each container event type, the
// phases it is allowed in and the phase it leaves the container in, and what
// it does to the record's other fields. Every phase not listed refuses it.
var transitions = []struct {
	typ    string
	data   any
	to     map[events.Phase]events.Phase
	intent bool                                       // opens Container.Intent; every other event clears it
	edit   func(c *events.Container, e *events.Event) // expected changes besides Phase, Intent and Seq
}{
	{
		typ:  events.ContainerCreating,
		data: events.CreatingData{Spec: fullSpec(), Owner: "berth"},
		to: map[events.Phase]events.Phase{
			phaseNone: events.PhaseCreating, events.PhaseRemoved: events.PhaseCreating, events.PhaseFailed: events.PhaseCreating,
		},
		intent: true,
		edit: func(c *events.Container, e *events.Event) { // a fresh record
			*c = events.Container{ID: ctr, Spec: fullSpec(), Owner: "berth", CreatedAt: e.Time}
		},
	},
	{
		typ:  events.ContainerCreated,
		data: events.CreatedData{HostID: "berth-web-rep-1"},
		to:   map[events.Phase]events.Phase{events.PhaseCreating: events.PhaseCreated},
		edit: func(c *events.Container, _ *events.Event) { c.HostID, c.Error = "berth-web-rep-1", "" },
	},
	{
		typ:  events.ContainerCreateFailed,
		data: events.FailureData{Error: "image not found", Code: events.CodeNotFound},
		to:   map[events.Phase]events.Phase{events.PhaseCreating: events.PhaseFailed},
		edit: func(c *events.Container, _ *events.Event) { c.Error = "image not found" },
	},
	{
		typ:    events.ContainerStarting,
		to:     map[events.Phase]events.Phase{events.PhaseCreated: events.PhaseCreated},
		intent: true,
		edit:   func(c *events.Container, _ *events.Event) { c.Exit, c.Error = nil, "" },
	},
	{
		typ:  events.ContainerStarted,
		data: events.StartedData{Pid: 4242},
		to:   map[events.Phase]events.Phase{events.PhaseCreated: events.PhaseRunning},
		edit: func(c *events.Container, e *events.Event) { c.Pid, c.StartedAt = 4242, e.Time },
	},
	{
		typ:  events.ContainerStopping,
		data: events.StoppingData{Timeout: events.Duration(10 * time.Second)},
		to: map[events.Phase]events.Phase{
			events.PhaseCreated: events.PhaseStopping, events.PhaseRunning: events.PhaseStopping, events.PhaseStopping: events.PhaseStopping,
		},
		intent: true,
	},
	{
		typ:  events.ContainerExited,
		data: events.Exit{Code: events.ExitCode(3), Reason: events.ReasonExited, FinishedAt: t0.Add(time.Hour)},
		to: map[events.Phase]events.Phase{
			events.PhaseCreated: events.PhaseExited, events.PhaseRunning: events.PhaseExited,
			events.PhaseStopping: events.PhaseExited, events.PhaseUnknown: events.PhaseExited,
		},
		edit: func(c *events.Container, _ *events.Event) {
			c.Exit = &events.Exit{Code: events.ExitCode(3), Reason: events.ReasonExited, FinishedAt: t0.Add(time.Hour)}
			c.Pid = 0
		},
	},
	{
		typ: events.ContainerRemoving,
		to: map[events.Phase]events.Phase{
			events.PhaseCreated: events.PhaseRemoving, events.PhaseExited: events.PhaseRemoving, events.PhaseFailed: events.PhaseRemoving,
			events.PhaseRemoving: events.PhaseRemoving, events.PhaseUnknown: events.PhaseRemoving,
		},
		intent: true,
	},
	{
		typ: events.ContainerRemoved,
		to:  map[events.Phase]events.Phase{events.PhaseRemoving: phaseNone},
	},
	{
		typ:  events.ContainerRemoveFailed,
		data: events.FailureData{Error: "access denied"},
		to:   map[events.Phase]events.Phase{events.PhaseRemoving: events.PhaseRemoving},
		edit: func(c *events.Container, _ *events.Event) { c.Error = "access denied" },
	},
	{
		typ:  events.ContainerUnknown,
		data: events.FailureData{Error: "compute system state unreadable"},
		to: map[events.Phase]events.Phase{
			events.PhaseCreating: events.PhaseUnknown, events.PhaseCreated: events.PhaseUnknown, events.PhaseRunning: events.PhaseUnknown,
			events.PhaseStopping: events.PhaseUnknown, events.PhaseExited: events.PhaseUnknown, events.PhaseRemoving: events.PhaseUnknown,
			events.PhaseUnknown: events.PhaseUnknown,
		},
		edit: func(c *events.Container, _ *events.Event) { c.Error = "compute system state unreadable" },
	},
}

// TestApply_Transitions applies every container event type in every phase
// (and to a container that does not exist).
func TestApply_Transitions(t *testing.T) {
	for _, tr := range transitions {
		for _, from := range allPhases {
			name := fmt.Sprintf("%s/from_%s", strings.TrimPrefix(tr.typ, "berth.container."), from)
			if from == phaseNone {
				name = strings.TrimPrefix(tr.typ, "berth.container.") + "/absent"
			}
			t.Run(name, func(t *testing.T) {
				to, allowed := tr.to[from]
				if got := events.Allowed(tr.typ, from); got != allowed {
					t.Fatalf("Allowed(%s, %q) = %v, want %v", tr.typ, from, got, allowed)
				}
				s := stateIn(from)
				before := s.Clone()
				e := event(tr.typ, ctr, 11, tr.data)
				err := s.Apply(e)

				if !allowed {
					if !errors.Is(err, events.ErrWrongPhase) {
						t.Fatalf("Apply = %v, want an ErrWrongPhase error", err)
					}
					wantMsg := "in phase " + string(from)
					if from == phaseNone {
						wantMsg = "does not exist"
					}
					if !strings.Contains(err.Error(), wantMsg) || !strings.Contains(err.Error(), ctr) {
						t.Errorf("Apply error %q does not name the container and %q", err, wantMsg)
					}
					wantUnchanged(t, before, s)
					return
				}

				if err != nil {
					t.Fatalf("Apply = %v, want nil", err)
				}
				want := before.Clone()
				want.Seq = e.Seq
				if to == phaseNone {
					delete(want.Containers, ctr)
				} else {
					c := want.Containers[ctr]
					if c == nil {
						c = &events.Container{}
						want.Containers[ctr] = c
					}
					if tr.edit != nil {
						tr.edit(c, e)
					}
					c.Phase, c.Seq, c.Intent = to, e.Seq, ""
					if tr.intent {
						c.Intent = tr.typ
					}
				}
				if diff := cmp.Diff(want, s, ignoreIndex); diff != "" {
					t.Errorf("state after %s (-want +got):\n%s", tr.typ, diff)
				}
			})
		}
	}
}

func TestAllowed_NotContainerEvents(t *testing.T) {
	for _, typ := range []string{events.NodeStarted, events.NodeCommandCompleted, "berth.container.paused", "berth.image.pulled", ""} {
		for _, p := range allPhases {
			if events.Allowed(typ, p) {
				t.Errorf("Allowed(%q, %q) = true, want false", typ, p)
			}
		}
	}
}

// TestApply_Lifecycle follows one container through the journal of a whole
// life, a re-create after removal and a re-create after a failed create.
func TestApply_Lifecycle(t *testing.T) {
	steps := []struct {
		typ        string
		data       any
		wantPhase  events.Phase // phaseNone: the record is gone
		wantIntent string
	}{
		{events.ContainerCreating, events.CreatingData{Spec: fullSpec(), Owner: "berth"}, events.PhaseCreating, events.ContainerCreating},
		{events.ContainerCreated, events.CreatedData{HostID: "h1"}, events.PhaseCreated, ""},
		{events.ContainerStarting, nil, events.PhaseCreated, events.ContainerStarting},
		{events.ContainerStarted, events.StartedData{Pid: 10}, events.PhaseRunning, ""},
		{events.ContainerStopping, events.StoppingData{Timeout: events.Duration(time.Second)}, events.PhaseStopping, events.ContainerStopping},
		{events.ContainerStopping, events.StoppingData{Kill: true}, events.PhaseStopping, events.ContainerStopping},
		{events.ContainerExited, events.Exit{Code: events.ExitCode(0), Reason: events.ReasonExited}, events.PhaseExited, ""},
		{events.ContainerRemoving, nil, events.PhaseRemoving, events.ContainerRemoving},
		{events.ContainerRemoveFailed, events.FailureData{Error: "busy"}, events.PhaseRemoving, ""},
		{events.ContainerRemoving, nil, events.PhaseRemoving, events.ContainerRemoving},
		{events.ContainerRemoved, nil, phaseNone, ""},
		{events.ContainerCreating, events.CreatingData{Spec: fullSpec(), Owner: "berth"}, events.PhaseCreating, events.ContainerCreating},
		{events.ContainerCreateFailed, events.FailureData{Error: "no such image"}, events.PhaseFailed, ""},
		{events.ContainerCreating, events.CreatingData{Spec: fullSpec(), Owner: "berth"}, events.PhaseCreating, events.ContainerCreating},
		{events.ContainerUnknown, events.FailureData{Error: "gone quiet"}, events.PhaseUnknown, ""},
		{events.ContainerExited, events.Exit{Reason: events.ReasonHostLost}, events.PhaseExited, ""},
	}
	s := events.NewState(testNode, events.DefaultWindow)
	for i, st := range steps {
		e := event(st.typ, ctr, uint64(i+1), st.data)
		if err := s.Apply(e); err != nil {
			t.Fatalf("step %d: Apply(%s) = %v", i, e.Short(), err)
		}
		c := s.Containers[ctr]
		switch {
		case st.wantPhase == phaseNone && c != nil:
			t.Fatalf("step %d: after %s the record is still there: %+v", i, e.Short(), c)
		case st.wantPhase == phaseNone:
		case c == nil:
			t.Fatalf("step %d: after %s there is no record", i, e.Short())
		case c.Phase != st.wantPhase || c.Intent != st.wantIntent:
			t.Fatalf("step %d: after %s phase %q intent %q, want %q %q", i, e.Short(), c.Phase, c.Intent, st.wantPhase, st.wantIntent)
		}
		if s.Seq != e.Seq {
			t.Fatalf("step %d: state seq %d, want %d", i, s.Seq, e.Seq)
		}
	}
	// The re-created container starts afresh: nothing of the failed one remains.
	if c := s.Containers[ctr]; c.Error != "gone quiet" || c.HostID != "" || !c.CreatedAt.Equal(t0.Add(14*time.Second)) {
		t.Errorf("record after re-create = %+v, want a fresh record", c)
	}
}

// TestApply_ExitCodeNeverInvented checks that an exit without a code keeps
// a nil code, in the fold and through a snapshot, and that code 0 stays 0.
func TestApply_ExitCodeNeverInvented(t *testing.T) {
	for _, tc := range []struct {
		name string
		data json.RawMessage
		want *int
	}{
		{"code absent", json.RawMessage(`{"reason":"host_lost","finished_at":"2025-03-01T12:00:00Z"}`), nil},
		{"code null", json.RawMessage(`{"code":null,"reason":"runtime_error","finished_at":"2025-03-01T12:00:00Z"}`), nil},
		{"code zero", json.RawMessage(`{"code":0,"reason":"exited","finished_at":"2025-03-01T12:00:00Z"}`), events.ExitCode(0)},
		{"code negative", json.RawMessage(`{"code":-1073741510,"reason":"killed","finished_at":"2025-03-01T12:00:00Z"}`), events.ExitCode(-1073741510)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := stateIn(events.PhaseRunning)
			e := event(events.ContainerExited, ctr, 11, nil)
			e.Data = tc.data
			if err := s.Apply(e); err != nil {
				t.Fatal(err)
			}
			b, err := json.Marshal(s)
			if err != nil {
				t.Fatal(err)
			}
			restored := events.NewState(testNode, events.DefaultWindow)
			if err := json.Unmarshal(b, restored); err != nil {
				t.Fatal(err)
			}
			for name, st := range map[string]*events.State{"fold": s, "snapshot": restored} {
				if got := st.Containers[ctr].Exit.Code; !cmp.Equal(got, tc.want) {
					t.Errorf("%s: exit code %v, want %v", name, fmtCode(got), fmtCode(tc.want))
				}
			}
		})
	}
}

func fmtCode(c *int) string {
	if c == nil {
		return "nil"
	}
	return fmt.Sprint(*c)
}

// TestApply_BadPayload sends, for every event type with a payload, data that
// does not decode, in a phase that allows the event.
func TestApply_BadPayload(t *testing.T) {
	cases := []struct {
		typ     string
		subject string
		phase   events.Phase
	}{
		{events.ContainerCreating, ctr, phaseNone},
		{events.ContainerCreated, ctr, events.PhaseCreating},
		{events.ContainerCreateFailed, ctr, events.PhaseCreating},
		{events.ContainerStarted, ctr, events.PhaseCreated},
		{events.ContainerStopping, ctr, events.PhaseRunning},
		{events.ContainerExited, ctr, events.PhaseRunning},
		{events.ContainerRemoveFailed, ctr, events.PhaseRemoving},
		{events.ContainerUnknown, ctr, events.PhaseRunning},
		{events.NodeCommandCompleted, "cmd-1", phaseNone},
	}
	for _, tc := range cases {
		for _, data := range []string{`[1]`, `"text"`, `{"pid":"x","host_id":1,"spec":3,"error":false,"code":"3","timeout":5,"verb":7}`} {
			t.Run(strings.TrimPrefix(tc.typ, "berth.")+"/"+data, func(t *testing.T) {
				s := stateIn(tc.phase)
				before := s.Clone()
				e := event(tc.typ, tc.subject, 11, nil)
				e.Data = json.RawMessage(data)
				err := s.Apply(e)
				if !errors.Is(err, events.ErrInvalid) {
					t.Fatalf("Apply = %v, want an ErrInvalid error", err)
				}
				if !strings.Contains(err.Error(), tc.typ) {
					t.Errorf("Apply error %q does not name the event type", err)
				}
				wantUnchanged(t, before, s)
			})
		}
	}
}

func TestApply_UnknownContainerType(t *testing.T) {
	s := stateIn(events.PhaseRunning)
	before := s.Clone()
	err := s.Apply(event("berth.container.paused", ctr, 11, nil))
	if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), "berth.container.paused") {
		t.Fatalf("Apply = %v, want an ErrInvalid error naming the type", err)
	}
	if diff := cmp.Diff(before, s, ignoreIndex); diff != "" {
		t.Errorf("state changed (-before +after):\n%s", diff)
	}
}

// TestApply_Seq checks that Seq follows accepted events only, never goes
// back, and that events that change nothing else still advance it.
func TestApply_Seq(t *testing.T) {
	s := stateIn(events.PhaseRunning)
	before := s.Clone()
	for _, e := range []*events.Event{
		event(events.NodeStarted, testNode, 11, events.NodeStartedData{Version: "v1", Host: "winsim", Owner: "berth"}),
		event(events.ImagePullFailed, "x", 12, events.ImagePullFailedData{Ref: "x", Error: "not found"}),
		event("berth.image.pull_failed", "x", 13, nil),
	} {
		if err := s.Apply(e); err != nil {
			t.Fatalf("Apply(%s) = %v", e.Short(), err)
		}
		if s.Seq != e.Seq {
			t.Fatalf("after %s seq %d, want %d", e.Short(), s.Seq, e.Seq)
		}
	}
	before.Seq = 13
	if diff := cmp.Diff(before, s, ignoreIndex); diff != "" {
		t.Errorf("untracked events changed more than seq (-want +got):\n%s", diff)
	}
	if err := s.Apply(event(events.ContainerCreated, ctr, 14, events.CreatedData{})); err == nil {
		t.Fatal("created on a running container was accepted")
	}
	if s.Seq != 13 {
		t.Errorf("a refused event moved seq to %d", s.Seq)
	}
	if err := s.Apply(event(events.NodeStarted, testNode, 5, nil)); err != nil {
		t.Fatal(err)
	}
	if s.Seq != 13 {
		t.Errorf("an event with an older seq moved seq back to %d", s.Seq)
	}
}

// completed builds the node.command_completed event for command id at t0+seq seconds.
func completed(id string, seq uint64, verb string) *events.Event {
	reply := events.NewReply(id, events.ContainerResult{Container: ctr, Phase: events.PhaseCreated}, nil)
	if verb == events.VerbStop {
		reply = events.NewReply(id, nil, fmt.Errorf("%w: container %s is not running", events.ErrWrongPhase, ctr))
	}
	return event(events.NodeCommandCompleted, id, seq, events.CommandCompletedData{Verb: verb, Container: ctr, Reply: reply})
}

func TestOutcome_Recorded(t *testing.T) {
	s := events.NewState(testNode, events.DefaultWindow)
	if _, ok := s.Outcome("cmd-a"); ok {
		t.Fatal("Outcome on an empty state found something")
	}
	for i, e := range []*events.Event{completed("cmd-a", 1, events.VerbCreate), completed("cmd-b", 2, events.VerbStop)} {
		if err := s.Apply(e); err != nil {
			t.Fatalf("Apply %d: %v", i, err)
		}
	}
	got, ok := s.Outcome("cmd-a")
	want := events.Outcome{ID: "cmd-a", Verb: events.VerbCreate, Container: ctr, At: t0.Add(time.Second),
		Reply: events.NewReply("cmd-a", events.ContainerResult{Container: ctr, Phase: events.PhaseCreated}, nil)}
	if !ok {
		t.Fatal("Outcome(cmd-a) not found")
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Outcome(cmd-a) (-want +got):\n%s", diff)
	}
	got, ok = s.Outcome("cmd-b")
	if !ok || !errors.Is(got.Reply.Err(), events.ErrWrongPhase) {
		t.Errorf("Outcome(cmd-b) = %+v, %v; want a recorded wrong-phase reply", got, ok)
	}
	if _, ok := s.Outcome("cmd-c"); ok {
		t.Error("Outcome(cmd-c) found a command that never completed")
	}
}

func TestOutcome_DuplicateKeepsFirst(t *testing.T) {
	s := events.NewState(testNode, events.DefaultWindow)
	if err := s.Apply(completed("cmd-a", 1, events.VerbCreate)); err != nil {
		t.Fatal(err)
	}
	first, _ := s.Outcome("cmd-a")
	if err := s.Apply(completed("cmd-a", 2, events.VerbStop)); err != nil {
		t.Fatalf("a repeated outcome was refused: %v", err)
	}
	got, _ := s.Outcome("cmd-a")
	if diff := cmp.Diff(first, got); diff != "" {
		t.Errorf("a repeat changed the outcome (-first +got):\n%s", diff)
	}
	if len(s.Outcomes) != 1 || s.Seq != 2 {
		t.Errorf("after a repeat: %d outcomes, seq %d; want 1 outcome, seq 2", len(s.Outcomes), s.Seq)
	}
}

// outcomeIDs lists the ids Outcome answers for, among ids.
func outcomeIDs(s *events.State, ids []string) []string {
	var in []string
	for _, id := range ids {
		if o, ok := s.Outcome(id); ok {
			if o.ID != id {
				panic(fmt.Sprintf("Outcome(%s) returned the outcome of %s", id, o.ID))
			}
			in = append(in, id)
		}
	}
	return in
}

func TestOutcome_EvictByCount(t *testing.T) {
	s := events.NewState(testNode, events.Window{MaxCount: 3})
	var ids []string
	for i := range 20 { // the window moves back to the front of its array
		id := fmt.Sprintf("cmd-%d", i)
		ids = append(ids, id)
		if err := s.Apply(completed(id, uint64(i+1), events.VerbStart)); err != nil {
			t.Fatal(err)
		}
		lo := max(0, i-2)
		if diff := cmp.Diff(ids[lo:], outcomeIDs(s, ids)); diff != "" {
			t.Fatalf("after %d outcomes, ids in the window (-want +got):\n%s", i+1, diff)
		}
		var kept []string
		for _, o := range s.Outcomes {
			kept = append(kept, o.ID)
		}
		if diff := cmp.Diff(ids[lo:], kept); diff != "" {
			t.Fatalf("after %d outcomes, Outcomes (-want +got):\n%s", i+1, diff)
		}
	}
}

func TestOutcome_EvictByAge(t *testing.T) {
	s := events.NewState(testNode, events.Window{MaxAge: time.Hour})
	at := func(id string, d time.Duration) *events.Event {
		e := completed(id, 1, events.VerbStart)
		e.Time = t0.Add(d)
		return e
	}
	ids := []string{"a", "b", "c", "d", "e"}
	steps := []struct {
		e    *events.Event
		want []string
	}{
		{at("a", 0), []string{"a"}},
		{at("b", 30*time.Minute), []string{"a", "b"}},
		{at("c", time.Hour), []string{"a", "b", "c"}},                 // a is exactly MaxAge old: kept
		{at("d", time.Hour+time.Nanosecond), []string{"b", "c", "d"}}, // a is older than MaxAge
		{at("e", 5*time.Hour), []string{"e"}},                         // everything older goes at once
	}
	for i, st := range steps {
		if err := s.Apply(st.e); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(st.want, outcomeIDs(s, ids)); diff != "" {
			t.Fatalf("step %d: ids in the window (-want +got):\n%s", i, diff)
		}
	}
}

// TestState_SnapshotRoundTrip encodes a state as a snapshot would, restores
// it, and checks that the restored state answers Outcome the same and folds
// the same journal tail into the same results.
func TestState_SnapshotRoundTrip(t *testing.T) {
	// Events are one second apart: the count bounds the window in the head,
	// the age in the tail, whose outcomes come ten seconds later.
	w := events.Window{MaxCount: 4, MaxAge: 5 * time.Second}
	s := events.NewState(testNode, w)
	var ids []string
	seq := uint64(0)
	next := func() uint64 { seq++; return seq }
	head := []*events.Event{
		event(events.ContainerCreating, "a", next(), events.CreatingData{Spec: fullSpec(), Owner: "berth"}),
		event(events.ContainerCreated, "a", next(), events.CreatedData{HostID: "ha"}),
		event(events.ContainerCreating, "b", next(), events.CreatingData{Spec: events.ContainerSpec{Image: events.ImageSpec{Ref: "busybox"}}, Owner: "berth"}),
		event(events.ContainerCreateFailed, "b", next(), events.FailureData{Error: "pull denied"}),
		event(events.ContainerStarting, "a", next(), nil),
		event(events.ContainerStarted, "a", next(), events.StartedData{Pid: 99}),
		event(events.ContainerCreating, "c", next(), events.CreatingData{Spec: fullSpec(), Owner: "berth"}),
		event(events.ContainerExited, "a", next(), events.Exit{Reason: events.ReasonHostLost, FinishedAt: t0}),
	}
	for range 7 {
		id := fmt.Sprintf("cmd-%d", len(ids))
		ids = append(ids, id)
		head = append(head, completed(id, next(), events.VerbCreate))
	}
	for _, e := range head {
		if err := s.Apply(e); err != nil {
			t.Fatalf("Apply(%s %s) = %v", e.Short(), e.Subject, err)
		}
	}

	b, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	restored := events.NewState(testNode, w)
	if err := json.Unmarshal(b, restored); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(s, restored, ignoreIndex); diff != "" {
		t.Fatalf("restored state differs (-folded +restored):\n%s", diff)
	}
	if got, want := outcomeIDs(restored, ids), ids[3:]; !cmp.Equal(got, want) {
		t.Fatalf("restored window %v, want %v", got, want)
	}

	tail := []*events.Event{
		completed(ids[len(ids)-1], next(), events.VerbStop), // a repeat: keeps the first outcome
		event(events.ContainerRemoving, "a", next(), nil),
		event(events.ContainerCreated, "b", next(), events.CreatedData{}), // refused: b has failed
		event(events.ContainerRemoved, "a", next(), nil),
	}
	for range 6 {
		id := fmt.Sprintf("cmd-%d", len(ids))
		ids = append(ids, id)
		e := completed(id, next(), events.VerbStart)
		e.Time = e.Time.Add(10 * time.Second)
		tail = append(tail, e)
	}
	for _, e := range tail {
		errS, errR := s.Apply(e), restored.Apply(e)
		if fmt.Sprint(errS) != fmt.Sprint(errR) {
			t.Fatalf("Apply(%s %s): folded %v, restored %v", e.Short(), e.Subject, errS, errR)
		}
		if diff := cmp.Diff(s, restored, ignoreIndex); diff != "" {
			t.Fatalf("after %s %s (-folded +restored):\n%s", e.Short(), e.Subject, diff)
		}
		for _, id := range ids {
			fromS, okS := s.Outcome(id)
			fromR, okR := restored.Outcome(id)
			if okS != okR || !cmp.Equal(fromS, fromR) {
				t.Fatalf("after %s: Outcome(%s) folded %v %+v, restored %v %+v", e.Short(), id, okS, fromS, okR, fromR)
			}
		}
	}
}

func TestState_CloneIsDeep(t *testing.T) {
	s := events.NewState(testNode, events.DefaultWindow)
	for _, e := range []*events.Event{
		event(events.ContainerCreating, ctr, 1, events.CreatingData{Spec: fullSpec(), Owner: "berth"}),
		event(events.ContainerCreated, ctr, 2, events.CreatedData{HostID: "h"}),
		event(events.ContainerExited, ctr, 3, events.Exit{Code: events.ExitCode(2), Reason: events.ReasonExited}),
		completed("cmd-ok", 4, events.VerbCreate),
		completed("cmd-err", 5, events.VerbStop),
	} {
		if err := s.Apply(e); err != nil {
			t.Fatal(err)
		}
	}
	original, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}

	c := s.Clone()
	if diff := cmp.Diff(s, c, ignoreIndex); diff != "" {
		t.Fatalf("clone differs (-state +clone):\n%s", diff)
	}
	if c.Window != s.Window {
		t.Errorf("clone window %+v, want %+v", c.Window, s.Window)
	}
	// Write through every reference the clone holds.
	r := c.Containers[ctr]
	r.Phase = events.PhaseUnknown
	*r.Exit.Code = 99
	r.Exit.Reason = "changed"
	sp := &r.Spec
	sp.Command.Entrypoint[0], sp.Command.Args[0] = "x", "x"
	sp.Env["MODE"], sp.Labels["service"] = "x", "x"
	sp.Network.DNS.Servers[0], sp.Network.DNS.Search[0] = "x", "x"
	sp.Ports[0].HostPort, sp.Mounts[0].Source = 1, "x"
	c.Outcomes[0].Reply.Result[0] = 'X'
	c.Outcomes[1].Reply.Error.Message = "changed"
	c.Outcomes[0].Verb = "changed"
	c.Containers["other"] = &events.Container{}
	if err := c.Apply(completed("cmd-new", 6, events.VerbCreate)); err != nil {
		t.Fatal(err)
	}

	after, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(original) {
		t.Errorf("writing to the clone changed the original:\nbefore %s\nafter  %s", original, after)
	}
	if _, ok := s.Outcome("cmd-new"); ok {
		t.Error("an outcome applied to the clone shows in the original")
	}
	if o, ok := c.Outcome("cmd-err"); !ok || o.Reply.Error.Message != "changed" {
		t.Errorf("clone Outcome(cmd-err) = %+v, %v", o, ok)
	}
}
