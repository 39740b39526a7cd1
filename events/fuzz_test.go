package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthhq/berth/events"
)

// The seed corpora live in testdata/fuzz/<FuzzName>/ and run as ordinary
// tests; `go test -fuzz=FuzzName` explores from them.

// equateJSON compares non-empty raw JSON by value: re-encoding compacts it
// and escapes HTML characters, which changes the bytes but not the meaning.
var equateJSON = cmp.FilterValues(func(a, b json.RawMessage) bool { return len(a) > 0 && len(b) > 0 },
	cmp.Transformer("jsonValue", func(m json.RawMessage) any {
		dec := json.NewDecoder(bytes.NewReader(m))
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return "undecodable: " + string(m)
		}
		return v
	}))

// FuzzDecodeCommand: DecodeCommand never panics and fails only with the
// input classes; a command it accepts validates, and survives encoding and
// decoding unchanged.
func FuzzDecodeCommand(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte, subjectVerb string) {
		c, err := events.DecodeCommand(data, subjectVerb)
		if err != nil {
			if !errors.Is(err, events.ErrInvalid) && !errors.Is(err, events.ErrNotFound) {
				t.Fatalf("DecodeCommand error %v is neither invalid nor not found", err)
			}
			return
		}
		if err := c.Validate(); err != nil {
			t.Fatalf("accepted command does not validate: %v", err)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatalf("accepted command does not encode: %v", err)
		}
		if len(b) > events.MaxCommandSize {
			return // escaping can take a document at the limit over it
		}
		again, err := events.DecodeCommand(b, c.Verb)
		if err != nil {
			t.Fatalf("re-encoded command %s is refused: %v", b, err)
		}
		if diff := cmp.Diff(c, again, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("command changed through encoding (-decoded +re-decoded):\n%s", diff)
		}
	})
}

// FuzzDecodeEvent: DecodeEvent never panics and fails only with ErrInvalid;
// an event it accepts survives encoding and decoding unchanged.
func FuzzDecodeEvent(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := events.DecodeEvent(data)
		if err != nil {
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("DecodeEvent error %v is not ErrInvalid", err)
			}
			return
		}
		b, err := e.Marshal()
		if err != nil {
			t.Fatalf("accepted event does not encode: %v", err)
		}
		again, err := events.DecodeEvent(b)
		if err != nil {
			t.Fatalf("re-encoded event %s is refused: %v", b, err)
		}
		if diff := cmp.Diff(e, again, equateJSON); diff != "" {
			t.Fatalf("event changed through encoding (-decoded +re-decoded):\n%s", diff)
		}
		if b2, _ := again.Marshal(); !bytes.Equal(b, b2) {
			t.Fatalf("encoding is not stable:\n%s\n%s", b, b2)
		}
	})
}

// FuzzDecodeReply: DecodeReply never panics and fails only with ErrInvalid;
// a reply it accepts survives encoding and decoding unchanged, and its Err
// is nil exactly when it is ok.
func FuzzDecodeReply(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := events.DecodeReply(data)
		if err != nil {
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("DecodeReply error %v is not ErrInvalid", err)
			}
			return
		}
		if (r.Err() == nil) != r.OK {
			t.Fatalf("reply ok=%v has Err() = %v", r.OK, r.Err())
		}
		b, err := json.Marshal(r)
		if err != nil {
			t.Fatalf("accepted reply does not encode: %v", err)
		}
		again, err := events.DecodeReply(b)
		if err != nil {
			t.Fatalf("re-encoded reply %s is refused: %v", b, err)
		}
		if diff := cmp.Diff(r, again, equateJSON); diff != "" {
			t.Fatalf("reply changed through encoding (-decoded +re-decoded):\n%s", diff)
		}
	})
}

var knownPhases = []events.Phase{
	events.PhaseCreating, events.PhaseCreated, events.PhaseRunning, events.PhaseStopping,
	events.PhaseExited, events.PhaseRemoving, events.PhaseFailed, events.PhaseUnknown,
}

// FuzzApply folds a journal of newline-separated event documents. The fold
// never panics, refuses only with ErrWrongPhase or ErrInvalid and then
// leaves the state unchanged, keeps its records consistent, and a snapshot
// of the result restores to the same state. States are compared by their
// JSON encoding (which holds every exported field, maps sorted), because it
// is much cheaper than cmp and the fuzzer runs this body many times.
func FuzzApply(f *testing.F) {
	f.Fuzz(func(t *testing.T, journal []byte) {
		w := events.Window{MaxCount: 3, MaxAge: time.Hour}
		s := events.NewState(testNode, w)
		for i, doc := range bytes.Split(journal, []byte("\n")) {
			e, err := events.DecodeEvent(doc)
			if err != nil {
				continue
			}
			e.Seq = uint64(i + 1)
			before := encode(t, s)
			if err := s.Apply(&e); err != nil {
				if !errors.Is(err, events.ErrWrongPhase) && !errors.Is(err, events.ErrInvalid) {
					t.Fatalf("Apply(%s) error %v is neither wrong phase nor invalid", doc, err)
				}
				if after := encode(t, s); !bytes.Equal(before, after) {
					t.Fatalf("refused %s changed the state:\nbefore %s\nafter  %s", doc, before, after)
				}
				continue
			}
			if s.Seq != e.Seq {
				t.Fatalf("after %s seq %d, want %d", doc, s.Seq, e.Seq)
			}
			checkInvariants(t, s, w)
		}

		b := encode(t, s)
		restored := events.NewState(testNode, w)
		if err := json.Unmarshal(b, restored); err != nil {
			t.Fatalf("snapshot %s does not decode: %v", b, err)
		}
		if b2 := encode(t, restored); !bytes.Equal(b, b2) {
			t.Fatalf("snapshot restores a different state:\nfolded   %s\nrestored %s", b, b2)
		}
		for _, o := range s.Outcomes {
			if _, ok := restored.Outcome(o.ID); !ok {
				t.Fatalf("restored state lost outcome %q", o.ID)
			}
		}
	})
}

func encode(t *testing.T, s *events.State) []byte {
	t.Helper()
	b, err := json.Marshal(s)
	if err != nil {
		t.Fatalf("state does not encode: %v", err)
	}
	return b
}

func checkInvariants(t *testing.T, s *events.State, w events.Window) {
	t.Helper()
	for id, c := range s.Containers {
		if c.ID != id || !slices.Contains(knownPhases, c.Phase) {
			t.Fatalf("record %q = %+v", id, c)
		}
	}
	named := map[string]string{}
	for id, im := range s.Images {
		for _, r := range im.Refs {
			if other, dup := named[r]; dup || im.ID != id {
				t.Fatalf("image %q (id %q) and %q both named %q", id, im.ID, other, r)
			}
			named[r] = id
		}
	}
	if len(s.Outcomes) > w.MaxCount {
		t.Fatalf("%d outcomes kept, window is %d", len(s.Outcomes), w.MaxCount)
	}
	seen := map[string]bool{}
	for _, o := range s.Outcomes {
		got, ok := s.Outcome(o.ID)
		if seen[o.ID] || !ok || got.ID != o.ID || !got.At.Equal(o.At) {
			t.Fatalf("outcome %q: duplicate %v, Outcome = %+v, %v", o.ID, seen[o.ID], got, ok)
		}
		seen[o.ID] = true
	}
}
