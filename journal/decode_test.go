package journal

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthhq/berth/events"
)

// documents returns journal documents of every event type the tests use.
func documents(t testing.TB) [][]byte {
	t.Helper()
	evs := append(created("c1"), ran("c1")...)
	evs = append(evs,
		events.NewEvent(node, events.ContainerCreateFailed, "c2", "x", events.FailureData{Error: `open C:\data: "denied"`, Code: 500}),
		events.NewEvent(node, events.NodeStarted, node, "", events.NodeStartedData{Version: "1.0", Host: "winsim"}),
		events.NewEvent(node, events.ContainerUnknown, "c3", "", nil),
	)
	return marshalAll(t, evs)
}

// marshalAll returns the journal documents of evs.
func marshalAll(t testing.TB, evs []events.Event) [][]byte {
	t.Helper()
	docs := make([][]byte, 0, len(evs))
	for i := range evs {
		b, err := evs[i].Marshal()
		if err != nil {
			t.Fatal(err)
		}
		docs = append(docs, b)
	}
	return docs
}

// sameDecode checks that decodeEvent and events.DecodeEvent agree on b,
// and that the data decodeEvent decodes ahead is what the fold would
// decode itself.
func sameDecode(t *testing.T, b []byte) {
	t.Helper()
	want, wantErr := events.DecodeEvent(b)
	for _, withData := range []bool{false, true} {
		got, data, err := decodeEvent(b, new(interner), withData)
		if (err == nil) != (wantErr == nil) || (err != nil && err.Error() != wantErr.Error()) {
			t.Fatalf("decoding %s: error %v, DecodeEvent says %v", b, err, wantErr)
		}
		if err != nil {
			continue
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Fatalf("decoding %s differs from DecodeEvent (-want +got):\n%s", b, d)
		}
		wantData, _ := events.DecodeData(&want)
		if !withData {
			wantData = nil
		}
		if d := cmp.Diff(wantData, data); d != "" {
			t.Fatalf("data of %s differs from DecodeData's (-want +got):\n%s", b, d)
		}
	}
}

func TestDecodeMatchesDecodeEvent(t *testing.T) {
	for _, b := range documents(t) {
		if _, ok := fastDecode(b, nil); !ok {
			t.Errorf("the fast path refused a document as Marshal writes it: %s", b)
		}
		sameDecode(t, b)
	}
	doc := string(documents(t)[0])
	i := strings.Index(doc, `,"data":`)
	for name, b := range map[string]string{
		"data first":       "{" + doc[i+1:len(doc)-1] + "," + doc[1:i] + "}",
		"data not last":    doc[:len(doc)-1] + `,"berthcommand":"again"}`,
		"spaces":           " { " + strings.NewReplacer(`,"`, ` , "`, `":`, `" : `).Replace(doc[1:]) + " ",
		"escaped id":       strings.Replace(doc, `"id":"`, `"id":"\u0030`, 1),
		"upper-case key":   strings.Replace(doc, `"subject":`, `"SUBJECT":`, 1),
		"unknown field":    strings.Replace(doc, `"time":`, `"extra":[1,{"a":"}"}],"time":`, 1),
		"repeated key":     strings.Replace(doc, `"time":`, `"id":"other","time":`, 1),
		"null data":        doc[:strings.Index(doc, `"data":`)] + `"data":null}`,
		"number data":      doc[:strings.Index(doc, `"data":`)] + `"data": 12 }`,
		"string data":      doc[:strings.Index(doc, `"data":`)] + `"data":"a\"}"}`,
		"bad data":         doc[:strings.Index(doc, `"data":`)] + `"data":{"a":}}`,
		"trailing data":    doc + "{}",
		"wrong version":    strings.Replace(doc, `"1.0"`, `"0.3"`, 1),
		"unknown type":     strings.Replace(doc, `"berth.container.creating"`, `"berth.thing"`, 1),
		"negative schema":  strings.Replace(doc, `"berthschema":1`, `"berthschema":-1`, 1),
		"future schema":    strings.Replace(doc, `"berthschema":1`, `"berthschema":2`, 1),
		"fraction schema":  strings.Replace(doc, `"berthschema":1`, `"berthschema":1.0`, 1),
		"bad time":         strings.Replace(doc, `"time":"`, `"time":"x`, 1),
		"not json":         `{"specversion":"1.0",`,
		"empty object":     `{}`,
		"invalid utf-8":    strings.Replace(doc, `"source":"`, "\"source\":\"\xff", 1),
		"control in value": strings.Replace(doc, `"source":"`, "\"source\":\"\t", 1),
	} {
		t.Run(name, func(t *testing.T) { sameDecode(t, []byte(b)) })
	}
}

func FuzzDecode(f *testing.F) {
	for _, b := range documents(f) {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { sameDecode(t, b) })
}

// dataTypes are the event types whose data a replay decodes ahead, and one
// whose data it does not.
var dataTypes = []string{
	events.ContainerCreating, events.ContainerCreated, events.ContainerStarted, events.ContainerStopping,
	events.ContainerExited, events.ContainerCreateFailed, events.ContainerRemoveFailed, events.ContainerUnknown,
	events.ContainerExecStarted, events.ContainerExecExited, events.NodeCommandCompleted, events.ContainerStarting,
}

// sameData checks that decodeData decodes data of an event of type typ
// exactly as events.DecodeData does, and refuses what it refuses.
func sameData(t *testing.T, typ string, data []byte) {
	t.Helper()
	ev := events.Event{Type: typ, Data: data}
	want, _ := events.DecodeData(&ev)
	if d := cmp.Diff(want, decodeData(&ev)); d != "" {
		t.Fatalf("%s data %s decodes unlike DecodeData's (-want +got):\n%s", typ, data, d)
	}
}

// dataSeeds are data documents of every type decodeData decodes, as Marshal
// writes them and as encoding/json reads them differently from
// encoding/json/v2: keys in another case, repeated keys, invalid UTF-8,
// nulls, numbers with fractions or exponents, lone surrogates, raw JSON
// with spaces, unknown keys.
func dataSeeds(t testing.TB) (types []uint8, docs []string) {
	add := func(typ string, doc string) {
		types = append(types, uint8(slices.Index(dataTypes, typ)))
		docs = append(docs, doc)
	}
	for _, b := range documents(t) {
		ev, err := events.DecodeEvent(b)
		if err != nil {
			t.Fatal(err)
		}
		if len(ev.Data) > 0 && slices.Contains(dataTypes, ev.Type) {
			add(ev.Type, string(ev.Data))
		}
	}
	exit := events.Exit{Code: events.ExitCode(3), Reason: events.ReasonExited, FinishedAt: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Message: "bye"}
	for typ, v := range map[string]any{
		events.ContainerExited:       exit,
		events.ContainerExecStarted:  events.ExecStartedData{Exec: "x1", Command: []string{"cmd", "/c"}, Pid: 7, TTY: true},
		events.ContainerExecExited:   events.ExecExit{Exec: "x1", Code: events.ExitCode(1), Reason: events.ReasonClientLost, Frames: 9},
		events.ContainerRemoveFailed: events.FailureData{Error: "busy", Code: 409},
		events.NodeCommandCompleted: events.CommandCompletedData{Verb: events.VerbStop, Container: "c1",
			Reply: events.NewReply("k1", events.ContainerResult{Container: "c1", Phase: events.PhaseExited, Exit: &exit}, nil)},
	} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		add(typ, string(b))
	}
	for _, c := range []struct{ typ, doc string }{
		{events.ContainerStarted, `{"PID":4}`},
		{events.ContainerStarted, `{"pid":4,"pid":5}`},
		{events.ContainerStarted, `{"pid":4.0}`},
		{events.ContainerStarted, `{"pid":1e2}`},
		{events.ContainerStarted, `{"pid":-0}`},
		{events.ContainerStarted, `{"pid":null}`},
		{events.ContainerStarted, `{"pid":"4"}`},
		{events.ContainerStarted, `{"pid":4,"other":[1,{"a":null}]}`},
		{events.ContainerStarted, `null`},
		{events.ContainerStarted, `[]`},
		{events.ContainerStopping, `{"timeout":null}`},
		{events.ContainerStopping, `{"timeout":"\u0033\u0030s","kill":true}`},
		{events.ContainerStopping, `{"timeout":"30µs"}`},
		{events.ContainerStopping, `{"timeout":30}`},
		{events.ContainerStopping, `{"timeout":"30s","kill":null}`},
		{events.ContainerCreated, "{\"host_id\":\"a\xffb\"}"},
		{events.ContainerCreated, `{"host_id":"\ud800"}`},
		{events.ContainerCreated, `{"host_id":"\ud83d\ude00"}`},
		{events.ContainerCreated, `{"Host_ID":"a"}`},
		{events.ContainerCreated, `{"hostſid":"a"}`},
		{events.ContainerExited, `{"code":null,"reason":"killed","finished_at":null}`},
		{events.ContainerExited, `{"code":0,"finished_at":"2026-01-02T03:04:05+25:00"}`},
		{events.ContainerExited, `{"code":0,"finished_at":"2026-01-02T03:04:05,5Z"}`},
		{events.ContainerExited, `{"code":0,"finished_at":"2026-01-02T3:04:05Z"}`},
		{events.ContainerCreating, `{"spec":{"image":{"ref":"a"},"env":{"A":"1","A":"2"}},"owner":"berth"}`},
		{events.ContainerCreating, `{"spec":{"image":{"ref":"a"},"env":{},"ports":[],"command":{"args":null}},"owner":"b"}`},
		{events.ContainerCreating, `{"spec":{"resources":{"cpu":1e0,"memory":"512Mi"},"stop":{"timeout":"1m"}}}`},
		{events.ContainerCreating, `{"spec":{"resources":{"memory":1048576}}}`},
		{events.ContainerCreating, `{"spec":{"resources":{"memory":"\u0031Ki"}}}`},
		{events.ContainerCreating, `{"spec":null,"owner":null}`},
		{events.NodeCommandCompleted, `{"verb":"stop","reply":{"command":"k","ok":true,"result": { "a" : [1, 2] } }}`},
		{events.NodeCommandCompleted, `{"verb":"stop","reply":{"command":"k","ok":false,"result":null,"error":{"code":409,"kind":"conflict","message":"m"}}}`},
		{events.NodeCommandCompleted, `{"verb":"stop","reply":{"ok":true,"Result":"x"}}`},
		{events.ContainerExecStarted, `{"exec":"x","command":["a",null,"b"],"pid":1}`},
		{events.ContainerExecExited, `{"exec":"x","frames":18446744073709551615}`},
		{events.ContainerExecExited, `{"exec":"x","frames":18446744073709551616}`},
		{events.ContainerExecExited, `{"exec":"x","frames":-1}`},
		{events.ContainerUnknown, `{"error":"e","code":9223372036854775808}`},
		{events.ContainerStarting, `{"x":1}`},
	} {
		add(c.typ, c.doc)
	}
	return types, docs
}

func TestDecodeDataMatchesDecodeData(t *testing.T) {
	types, docs := dataSeeds(t)
	for i := range docs {
		sameData(t, dataTypes[types[i]], []byte(docs[i]))
	}
}

func FuzzDecodeData(f *testing.F) {
	types, docs := dataSeeds(f)
	for i := range docs {
		f.Add(types[i], []byte(docs[i]))
	}
	f.Fuzz(func(t *testing.T, typ uint8, data []byte) {
		sameData(t, dataTypes[int(typ)%len(dataTypes)], data)
	})
}
