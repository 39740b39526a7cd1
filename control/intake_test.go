package control_test

import (
	"bytes"
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/berthhq/berth/events"
)

func TestIntake_SubmitsInInboxOrder(t *testing.T) {
	h := newHarness(t, hconfig{})
	inbox, sub := h.replies()
	const n = 40
	var ids []string
	for i := range n {
		// Alternate containers and verbs so that order is visible across both.
		cmd := events.Command{ID: events.NewID(), Verb: events.VerbCreate, Container: "c" + strconv.Itoa(i), Spec: spec("img")}
		if i%2 == 1 {
			cmd = events.Command{ID: events.NewID(), Verb: events.VerbStart, Container: "c" + strconv.Itoa(i-1)}
		}
		ids = append(ids, cmd.ID)
		h.publish(cmd.Verb, cmd.ID, inbox, encode(t, cmd))
	}
	for range n {
		m := h.next(sub)
		r, err := events.DecodeReply(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if !r.OK {
			t.Errorf("command %s: %v", r.Command, r.Err())
		}
		if got := m.Header.Get(events.HeaderCommand); got != r.Command {
			t.Errorf("header %s = %q, body command %q", events.HeaderCommand, got, r.Command)
		}
	}
	got := h.agent.submitted()
	if len(got) != n {
		t.Fatalf("agent got %d commands, want %d", len(got), n)
	}
	for i, c := range got {
		if c.ID != ids[i] {
			t.Fatalf("command %d reached the agent as %s, want %s (inbox order)", i, c.ID, ids[i])
		}
	}
	h.inboxEmpties()
}

func TestIntake_MountsInsideRootsAndCommandSize(t *testing.T) {
	h := newHarness(t, hconfig{maxCommand: 4096})
	send := func(cmd events.Command) events.Reply {
		t.Helper()
		inbox, sub := h.replies()
		h.publish(cmd.Verb, cmd.ID, inbox, encode(t, cmd))
		r, err := events.DecodeReply(h.next(sub).Data)
		if err != nil {
			t.Fatal(err)
		}
		return r
	}
	ok := events.Command{ID: events.NewID(), Verb: events.VerbCreate, Container: "web-1", Spec: spec("img")}
	ok.Spec.Mounts = []events.Mount{{Source: `d:/DATA/app`, Target: `C:\app`, ReadOnly: true}}
	if r := send(ok); !r.OK {
		t.Fatalf("mount inside the root: %v", r.Err())
	}
	big := events.Command{ID: events.NewID(), Verb: events.VerbCreate, Container: "web-2", Spec: spec("img")}
	big.Spec.Labels = map[string]string{"x": strings.Repeat("a", 4096)}
	r := send(big)
	if r.OK || r.Error.Code != events.CodeInvalid || !strings.Contains(r.Error.Message, "more than this node's 4096 byte limit") {
		t.Fatalf("command over the node's size limit: %+v", r)
	}
	if got := h.agent.submitted(); len(got) != 1 || got[0].ID != ok.ID {
		t.Fatalf("agent got %+v, want only %s", got, ok.ID)
	}
}

func TestIntake_RefusesBadInput(t *testing.T) {
	h := newHarness(t, hconfig{})
	// Each case gets a fresh id: the inbox drops a repeated Nats-Msg-Id.
	valid := func(mut func(*events.Command)) func(string) []byte {
		return func(id string) []byte {
			c := events.Command{ID: id, Verb: events.VerbCreate, Container: "web-1", Spec: spec("img")}
			mut(&c)
			return encode(t, c)
		}
	}
	raw := func(format string) func(string) []byte {
		return func(id string) []byte { return []byte(strings.ReplaceAll(format, "ID", id)) }
	}
	huge := func(id string) []byte {
		b := []byte(`{"id":"` + id + `","verb":"create","container":"web-1","spec":{"image":{"ref":"img"},"labels":{"x":"`)
		b = append(b, bytes.Repeat([]byte("a"), events.MaxCommandSize)...)
		return append(b, `"}}}`...)
	}
	same := func(id string) string { return id }
	tests := []struct {
		name  string
		verb  string
		msgID func(string) string
		data  func(string) []byte
		code  int
		want  string // text the message must contain: the field at fault
	}{
		{"malformed", "create", same, raw(`{"id":`), events.CodeInvalid, "command"},
		{"empty body", "create", same, raw(``), events.CodeInvalid, "empty body"},
		{"unknown field", "create", same, raw(`{"id":"ID","verb":"create","container":"web-1","spec":{"image":{"ref":"i"}},"colour":"red"}`), events.CodeInvalid, `"colour"`},
		{"oversized", "create", same, huge, events.CodeInvalid, "byte limit"},
		{"unknown verb", "explode", same, raw(`{"id":"ID","container":"web-1"}`), events.CodeNotFound, `verb "explode"`},
		{"verb differs from subject", "start", same, valid(func(*events.Command) {}), events.CodeInvalid, "subject's verb"},
		{"invalid container id", "create", same, valid(func(c *events.Command) { c.Container = "Web_1" }), events.CodeInvalid, "container"},
		{"empty command id", "create", same, valid(func(c *events.Command) { c.ID = "" }), events.CodeInvalid, "id"},
		{"id differs from Nats-Msg-Id", "create", func(string) string { return events.NewID() }, valid(func(*events.Command) {}), events.CodeInvalid, "Nats-Msg-Id"},
		{"no Nats-Msg-Id", "create", func(string) string { return "" }, valid(func(*events.Command) {}), events.CodeInvalid, "Nats-Msg-Id"},
		{"missing spec", "create", same, valid(func(c *events.Command) { c.Spec = nil }), events.CodeInvalid, "spec"},
		{"invalid spec", "create", same, valid(func(c *events.Command) { c.Spec.Resources.Memory = 10 }), events.CodeInvalid, "spec.resources.memory"},
		{"mount outside the roots", "create", same, valid(func(c *events.Command) {
			c.Spec.Mounts = []events.Mount{{Source: mountRoot + `\app`, Target: `C:\app`}, {Source: `C:\Windows\System32`, Target: `C:\s`}}
		}), events.CodeInvalid, `spec.mounts[1].source: "C:\\Windows\\System32" is outside the allowed roots D:\data`},
		{"mount escaping a root", "create", same, valid(func(c *events.Command) {
			c.Spec.Mounts = []events.Mount{{Source: mountRoot + `\..\secrets`, Target: `C:\app`}}
		}), events.CodeInvalid, `spec.mounts[0].source: "D:\\data\\..\\secrets": ".." components are not allowed`},
		{"mount of a relative path", "create", same, valid(func(c *events.Command) {
			c.Spec.Mounts = []events.Mount{{Source: `data`, Target: `C:\app`}}
		}), events.CodeInvalid, `spec.mounts[0].source: "data" is not absolute`},
		{"timeout on start", "start", same, valid(func(c *events.Command) {
			c.Verb, c.Spec, c.Timeout = events.VerbStart, nil, new(events.Duration)
		}), events.CodeInvalid, "timeout"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			id := events.NewID()
			inbox, sub := h.replies()
			h.publish(tt.verb, tt.msgID(id), inbox, tt.data(id))
			m := h.next(sub)
			r, err := events.DecodeReply(m.Data)
			if err != nil {
				t.Fatal(err)
			}
			if r.OK || r.Error == nil || r.Error.Code != tt.code {
				t.Fatalf("reply %+v, want error code %d", r, tt.code)
			}
			if !strings.Contains(r.Error.Message, tt.want) {
				t.Errorf("message %q does not name %q", r.Error.Message, tt.want)
			}
			if got := m.Header.Get(micro.ErrorCodeHeader); got != strconv.Itoa(tt.code) {
				t.Errorf("%s = %q, want %d", micro.ErrorCodeHeader, got, tt.code)
			}
			if m.Header.Get(micro.ErrorHeader) == "" {
				t.Errorf("%s header missing", micro.ErrorHeader)
			}
		})
	}

	// Commands whose reply subjects are not allowed get no reply, but are
	// removed all the same; nothing reaches the journal.
	for _, replyTo := range []string{"$JS.API.STREAM.DELETE.X", h.subj.Event(events.KindContainer, "web-1"), h.subj.Command("kill"), "a.*"} {
		id := events.NewID()
		h.publish("create", id, replyTo, valid(func(*events.Command) {})(id))
	}

	// The intake kept serving, in order: the next valid command is the
	// first the agent sees, and nothing is left in the inbox.
	next := events.Command{ID: events.NewID(), Verb: events.VerbCreate, Container: "web-2", Spec: spec("img")}
	inbox, sub := h.replies()
	h.publish(next.Verb, next.ID, inbox, encode(t, next))
	if r, _ := events.DecodeReply(h.next(sub).Data); !r.OK {
		t.Fatalf("valid command after bad ones: %v", r.Err())
	}
	if got := h.agent.submitted(); len(got) != 1 || got[0].ID != next.ID {
		t.Fatalf("agent got %+v, want only %s", got, next.ID)
	}
	h.inboxEmpties()
	if stored, appended := h.streamMsgs(h.subj.EventStream()), h.j.LastSeq(); stored != appended {
		t.Errorf("the event stream holds %d messages; the journal appended %d", stored, appended)
	}
}

func TestIntake_ErrorReplyCarriesMicroHeaders(t *testing.T) {
	h := newHarness(t, hconfig{})
	ctx := context.Background()
	if _, err := h.client.Run(ctx, "web-1", *spec("img")); err != nil {
		t.Fatal(err)
	}
	cmd := events.Command{ID: events.NewID(), Verb: events.VerbStart, Container: "web-1"}
	inbox, sub := h.replies()
	h.publish(cmd.Verb, cmd.ID, inbox, encode(t, cmd))
	m := h.next(sub)
	if got := m.Header.Get(micro.ErrorCodeHeader); got != "409" {
		t.Fatalf("%s = %q, want 409", micro.ErrorCodeHeader, got)
	}
	if got := m.Header.Get(micro.ErrorHeader); !strings.Contains(got, "web-1 is running") {
		t.Errorf("%s = %q, want the agent's message", micro.ErrorHeader, got)
	}
	r, err := events.DecodeReply(m.Data)
	if err != nil {
		t.Fatal(err)
	}
	if r.Command != cmd.ID || !errors.Is(r.Err(), events.ErrWrongPhase) {
		t.Errorf("reply %+v, want wrong_phase for %s", r, cmd.ID)
	}
}

// A command whose reply has not arrived when the server stops stays in the
// inbox; it is delivered again with the same id, and the agent, which
// answers a repeated id, gets it.
func TestIntake_UnrepliedCommandIsDeliveredAgain(t *testing.T) {
	h := newHarness(t, hconfig{ackWait: 500 * time.Millisecond})
	h.agent.setHold(true)
	cmd := events.Command{ID: events.NewID(), Verb: events.VerbCreate, Container: "web-1", Spec: spec("img")}
	inbox, sub := h.replies()
	h.publish(cmd.Verb, cmd.ID, inbox, encode(t, cmd))
	h.agent.waitSubmit(t)

	ctx, cancel := context.WithCancel(context.Background())
	cancel() // give up on the held reply at once
	if err := h.srv.Stop(ctx); !errors.Is(err, context.Canceled) {
		t.Fatalf("Stop with a reply in flight = %v, want context.Canceled", err)
	}
	if p := h.streamMsgs(h.subj.CommandStream()); p != 1 {
		t.Fatalf("%d commands in the inbox after an abandoned reply, want 1", p)
	}

	h.agent.setHold(false)
	h.start()
	again := h.agent.waitSubmit(t)
	if again.ID != cmd.ID {
		t.Fatalf("redelivered command %s, want %s", again.ID, cmd.ID)
	}
	r, err := events.DecodeReply(h.next(sub).Data)
	if err != nil || !r.OK || r.Command != cmd.ID {
		t.Fatalf("reply after redelivery: %+v, %v", r, err)
	}
	// The held first submission answers from the recorded outcome.
	h.agent.release()
}

func TestIntake_BoundsCommandsInFlight(t *testing.T) {
	const limit, n = 2, 6
	h := newHarness(t, hconfig{maxInFlight: limit})
	h.agent.setHold(true)
	inbox, sub := h.replies()
	for i := range n {
		cmd := events.Command{ID: events.NewID(), Verb: events.VerbCreate, Container: "c" + strconv.Itoa(i), Spec: spec("img")}
		h.publish(cmd.Verb, cmd.ID, inbox, encode(t, cmd))
	}
	for range limit {
		h.agent.waitSubmit(t)
	}
	// Release one reply at a time; each frees a slot for the next command.
	for i := range n {
		h.agent.release()
		h.next(sub)
		if i+limit < n {
			h.agent.waitSubmit(t)
		}
	}
	h.agent.mu.Lock()
	maxOut := h.agent.maxOut
	h.agent.mu.Unlock()
	if maxOut != limit {
		t.Errorf("at most %d commands awaited replies at once, want %d", maxOut, limit)
	}
}
