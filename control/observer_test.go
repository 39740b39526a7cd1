package control_test

import (
	"bytes"
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/events"
)

type observation struct {
	verb string
	code int
	took time.Duration
}

type chanObserver chan observation

func (o chanObserver) ObserveCommand(verb string, code int, took time.Duration) {
	o <- observation{verb, code, took}
}

func (o chanObserver) next(t *testing.T) observation {
	t.Helper()
	select {
	case ob := <-o:
		return ob
	case <-time.After(10 * time.Second):
		t.Fatal("no command observed")
		return observation{}
	}
}

// TestObserverSeesEveryAnswer checks that the observer is told of commands
// the agent answers and of commands the intake refuses, with the reply's
// code, and that a refused message's verb outside events.Verbs is reported
// as "unknown".
func TestObserverSeesEveryAnswer(t *testing.T) {
	obs := make(chanObserver, 8)
	h := newHarness(t, hconfig{observer: obs})
	ctx := context.Background()
	if !h.srv.Consuming() {
		t.Error("Consuming is false after Start")
	}

	if _, err := h.client.Create(ctx, "web-1", *spec("img")); err != nil {
		t.Fatal(err)
	}
	if ob := obs.next(t); ob.verb != events.VerbCreate || ob.code != events.CodeOK || ob.took <= 0 {
		t.Errorf("create observed as %+v, want create 200 with a duration", ob)
	}
	if _, err := h.client.Create(ctx, "web-1", *spec("img")); err == nil {
		t.Fatal("second create of web-1: no error")
	}
	if ob := obs.next(t); ob.verb != events.VerbCreate || ob.code == events.CodeOK {
		t.Errorf("refused create observed as %+v, want create with an error code", ob)
	}

	id := events.NewID()
	inbox, sub := h.replies()
	h.publish("explode", id, inbox, []byte(`{"id":"`+id+`","container":"web-1"}`))
	h.next(sub)
	if ob := obs.next(t); ob.verb != "unknown" || ob.code != events.CodeNotFound {
		t.Errorf("unknown verb observed as %+v, want unknown 404", ob)
	}

	if err := h.srv.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if h.srv.Consuming() {
		t.Error("Consuming is true after Stop")
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) lines() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, l := range bytes.Split(s.b.Bytes(), []byte("\n")) {
		var m map[string]any
		if json.Unmarshal(l, &m) == nil {
			out = append(out, m)
		}
	}
	return out
}

// TestIntake_LogsCommandsWithTheSeedsSpanNames checks the line each
// answered command leaves: the seed runtime's span name and fields.
func TestIntake_LogsCommandsWithTheSeedsSpanNames(t *testing.T) {
	var buf syncBuffer
	h := newHarness(t, hconfig{logTo: &buf})
	ctx := context.Background()
	if _, err := h.client.Create(ctx, "web-1", *spec("mcr.microsoft.com/windows/nanoserver:ltsc2022")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Remove(ctx, "web-1", false); err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string]any{
		"container.create": {"container.id": "web-1", "container.image.name": "mcr.microsoft.com/windows/nanoserver:ltsc2022", "code": 200.0},
		"container.remove": {"container.id": "web-1", "code": 200.0},
	}
	for _, l := range buf.lines() {
		span, _ := l[events.LogSpan].(string)
		fields, ok := want[span]
		if !ok || l["message"] != "command answered" {
			continue
		}
		for k, v := range fields {
			if l[k] != v {
				t.Errorf("%s line: %s = %v, want %v (%v)", span, k, l[k], v, l)
			}
		}
		if _, ok := l["took"]; !ok {
			t.Errorf("%s line without took: %v", span, l)
		}
		delete(want, span)
	}
	if len(want) != 0 {
		t.Errorf("no command line for %v", want)
	}
}

// gateObserver reports each call on entered, then holds it until release
// yields.
type gateObserver struct{ entered, release chan struct{} }

func (o gateObserver) ObserveCommand(string, int, time.Duration) {
	o.entered <- struct{}{}
	<-o.release
}

// TestObserverIsToldBeforeTheReply checks, for a command the agent answers
// and for one the intake refuses, that the command's log line is written
// before the observer is told, and that no reply is published while it is
// being told: a client holding a reply finds the command counted and
// logged (a scrape or a log read right after a reply used to miss it).
func TestObserverIsToldBeforeTheReply(t *testing.T) {
	obs := gateObserver{entered: make(chan struct{}), release: make(chan struct{})}
	var buf syncBuffer
	h := newHarness(t, hconfig{observer: obs, logTo: &buf})
	t.Cleanup(func() { close(obs.release) }) // runs before the harness stops
	inbox, sub := h.replies()

	create := events.Command{ID: events.NewID(), Verb: events.VerbCreate, Container: "web-1", Spec: spec("img")}
	unknown := events.NewID()
	for _, tt := range []struct {
		name, verb, id string
		data           []byte
	}{
		{"answered", create.Verb, create.ID, encode(t, create)},
		{"refused", "explode", unknown, []byte(`{"id":"` + unknown + `","container":"web-1"}`)},
	} {
		h.publish(tt.verb, tt.id, inbox, tt.data)
		select {
		case <-obs.entered:
		case <-time.After(10 * time.Second):
			t.Fatalf("%s: the observer was not told", tt.name)
		}
		// A reply published before now has reached the server (agent's
		// flush) and then the client's subscription (client's flush).
		if err := h.nc.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := h.cnc.Flush(); err != nil {
			t.Fatal(err)
		}
		logged := false
		for _, l := range buf.lines() {
			logged = logged || l["command"] == tt.id
		}
		if !logged {
			t.Errorf("%s: no log line for the command when the observer is told", tt.name)
		}
		if n, _, err := sub.Pending(); err != nil || n != 0 {
			t.Errorf("%s: %d replies pending (%v) while the observer is being told, want 0", tt.name, n, err)
		}
		obs.release <- struct{}{}
		if r, err := events.DecodeReply(h.next(sub).Data); err != nil || r.Command != tt.id {
			t.Errorf("%s: reply %+v (%v), want the reply to %s", tt.name, r, err, tt.id)
		}
	}
}
