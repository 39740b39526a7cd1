package events_test

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthhq/berth/events"
)

func TestEvent_RoundTrip(t *testing.T) {
	data := events.CreatingData{Spec: fullSpec(), Owner: "berth"}
	before := time.Now()
	e := events.NewEvent(testNode, events.ContainerCreating, ctr, "cmd-7", data)
	after := time.Now()

	if e.SpecVersion != "1.0" || e.Source != "berth/"+testNode || e.Type != events.ContainerCreating ||
		e.Subject != ctr || e.Command != "cmd-7" || e.Schema != events.SchemaVersion || e.ContentType != "application/json" {
		t.Errorf("NewEvent = %+v", e)
	}
	if !uuidV7.MatchString(e.ID) {
		t.Errorf("event id %q is not a UUIDv7", e.ID)
	}
	if e.Time.Location() != time.UTC || e.Time.Before(before.Add(-time.Millisecond)) || e.Time.After(after) {
		t.Errorf("event time %v, want UTC within [%v, %v]", e.Time, before, after)
	}

	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	// The document is CloudEvents structured mode with berth's extensions.
	var doc map[string]any
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"specversion", "id", "source", "type", "subject", "time", "datacontenttype", "berthcommand", "berthschema", "data"} {
		if _, ok := doc[k]; !ok {
			t.Errorf("document %s lacks %q", b, k)
		}
	}
	if len(doc) != 10 {
		t.Errorf("document %s has %d members, want 10", b, len(doc))
	}

	e.Seq = 42 // set by the journal, not part of the document
	got, err := events.DecodeEvent(b)
	if err != nil {
		t.Fatalf("DecodeEvent = %v", err)
	}
	if got.Seq != 0 {
		t.Errorf("decoded Seq %d, want 0: Seq is not in the document", got.Seq)
	}
	got.Seq = e.Seq
	if diff := cmp.Diff(e, got); diff != "" {
		t.Errorf("round trip (-sent +decoded):\n%s", diff)
	}
	var gotData events.CreatingData
	if err := got.Decode(&gotData); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(data, gotData); diff != "" {
		t.Errorf("payload round trip (-sent +decoded):\n%s", diff)
	}
	if got.Kind() != events.KindContainer || got.Short() != "container.creating" {
		t.Errorf("Kind %q Short %q", got.Kind(), got.Short())
	}
}

func TestNewEvent_NoData(t *testing.T) {
	e := events.NewEvent(testNode, events.ContainerRemoving, ctr, "", nil)
	b, err := e.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), `"data"`) || strings.Contains(string(b), `"berthcommand"`) {
		t.Errorf("document %s carries data or a command it does not have", b)
	}
	got, err := events.DecodeEvent(b)
	if err != nil {
		t.Fatal(err)
	}
	var v events.FailureData
	if err := got.Decode(&v); err != nil || v != (events.FailureData{}) {
		t.Errorf("Decode of an event without data = %+v, %v; want the zero value", v, err)
	}
}

func TestNewEvent_PanicsOnUnencodableData(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("NewEvent with a channel payload did not panic")
		}
	}()
	events.NewEvent(testNode, events.ContainerCreated, ctr, "", make(chan int))
}

func TestKindOf(t *testing.T) {
	for typ, want := range map[string]string{
		events.ContainerCreating:     events.KindContainer,
		events.ContainerUnknown:      events.KindContainer,
		"berth.container.future":     events.KindContainer,
		events.NodeStarted:           events.KindNode,
		events.NodeCommandCompleted:  events.KindNode,
		"berth.image.pulled":         events.KindImage,
		"berth.network.created":      events.KindNetwork,
		"berth.container":            events.KindContainer,
		"berth.volume.created":       "",
		"berth.ctr.started":          "",
		"other.container.created":    "",
		"container.created":          "",
		"berth.Container.created":    "",
		"":                           "",
		"berth.":                     "",
		"xberth.container.created":   "",
		"berth.containers.created":   "",
		"berth.networkx.created":     "",
		"berth.node":                 events.KindNode,
		"berth.image.tagged.extra.x": events.KindImage,
	} {
		if got := events.KindOf(typ); got != want {
			t.Errorf("KindOf(%q) = %q, want %q", typ, got, want)
		}
	}
}

func TestDecodeEvent_Refused(t *testing.T) {
	valid := events.NewEvent(testNode, events.ContainerStarted, ctr, "c", events.StartedData{Pid: 1})
	tests := []struct {
		name    string
		edit    func(m map[string]any)
		raw     string // used instead of the edited document when set
		wantMsg string
	}{
		{name: "not json", raw: `{"specversion":`, wantMsg: "event:"},
		{name: "not an object", raw: `[]`, wantMsg: "event:"},
		{name: "empty", raw: ``, wantMsg: "event:"},
		{name: "wrong specversion", edit: func(m map[string]any) { m["specversion"] = "0.3" }, wantMsg: `specversion "0.3"`},
		{name: "no specversion", edit: func(m map[string]any) { delete(m, "specversion") }, wantMsg: `specversion ""`},
		{name: "empty id", edit: func(m map[string]any) { m["id"] = "" }, wantMsg: "empty id"},
		{name: "unknown type", edit: func(m map[string]any) { m["type"] = "com.example.started" }, wantMsg: `unknown type "com.example.started"`},
		{name: "no type", edit: func(m map[string]any) { delete(m, "type") }, wantMsg: `unknown type ""`},
		{name: "empty subject", edit: func(m map[string]any) { m["subject"] = "" }, wantMsg: "empty subject"},
		{name: "newer schema", edit: func(m map[string]any) { m["berthschema"] = events.SchemaVersion + 1 }, wantMsg: "schema 2 is newer"},
		{name: "bad time", edit: func(m map[string]any) { m["time"] = "yesterday" }, wantMsg: "event:"},
		{name: "data not json", raw: `{"specversion":"1.0","id":"x","type":"berth.node.started","subject":"n","data":}`, wantMsg: "event:"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := []byte(tc.raw)
			if tc.edit != nil {
				var m map[string]any
				raw, _ := valid.Marshal()
				if err := json.Unmarshal(raw, &m); err != nil {
					t.Fatal(err)
				}
				tc.edit(m)
				b, _ = json.Marshal(m)
			}
			_, err := events.DecodeEvent(b)
			if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("DecodeEvent(%s) = %v, want an ErrInvalid error containing %q", b, err, tc.wantMsg)
			}
		})
	}
	// Older schemas, unknown members and a missing time are accepted.
	for _, doc := range []string{
		`{"specversion":"1.0","id":"x","source":"berth/n1","type":"berth.node.started","subject":"n1","berthschema":0}`,
		`{"specversion":"1.0","id":"x","type":"berth.image.pulled","subject":"sha256:a","futureext":true}`,
	} {
		if _, err := events.DecodeEvent([]byte(doc)); err != nil {
			t.Errorf("DecodeEvent(%s) = %v, want nil", doc, err)
		}
	}
}

func TestSubjects(t *testing.T) {
	s := events.NewSubjects("", "n1")
	p := events.NewSubjects("acme.berth", "win-07")
	for _, tc := range []struct{ got, want string }{
		{s.Command(events.VerbCreate), "berth.cmd.n1.create"},
		{s.Commands(), "berth.cmd.n1.>"},
		{s.Event(events.KindContainer, ctr), "berth.evt.n1.ctr.web-rep-1"},
		{s.Events(), "berth.evt.n1.>"},
		{s.EventsOf(events.KindImage, ""), "berth.evt.n1.img.*"},
		{s.EventsOf(events.KindNetwork, "overlay"), "berth.evt.n1.net.overlay"},
		{s.Log(ctr, events.Stderr), "berth.log.n1.web-rep-1.stderr"},
		{s.Logs(ctr), "berth.log.n1.web-rep-1.>"},
		{s.Logs(""), "berth.log.n1.*.>"},
		{s.Progress(events.KindImage, "abc"), "berth.progress.n1.img.abc"},
		{s.Exec("e1", "resize"), "berth.exec.n1.e1.resize"},
		{s.API("ps"), "berth.api.n1.ps"},
		{s.APIGroup(), "berth.api.n1"},
		{s.CommandStream(), "BERTH_CMD_n1"},
		{s.EventStream(), "BERTH_EVT_n1"},
		{s.LogStream(), "BERTH_LOG_n1"},
		{s.SnapshotBucket(), "BERTH_SNAP_n1"},
		{s.ServiceName(), "berth"},
		{p.Command(events.VerbStop), "acme.berth.cmd.win-07.stop"},
		{p.EventStream(), "ACME_BERTH_EVT_win-07"},
		{p.SnapshotBucket(), "ACME_BERTH_SNAP_win-07"},
		{p.ServiceName(), "acme_berth"}, // micro service names allow no dots
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}
