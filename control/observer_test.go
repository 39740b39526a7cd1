package control_test

import (
	"context"
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
