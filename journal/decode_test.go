package journal

import (
	"strings"
	"testing"

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
	var docs [][]byte
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
		got, data, err := decodeEvent(b, interner{}, withData)
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
	for name, b := range map[string]string{
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
