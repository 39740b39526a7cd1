package journal

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/berthhq/berth/events"
)

// encodeJSONSnapshot encodes doc as berth wrote snapshots before schema 2:
// gzip-compressed JSON.
func encodeJSONSnapshot(t testing.TB, doc snapshotDoc) []byte {
	t.Helper()
	doc.Schema = snapshotJSON
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if err := json.NewEncoder(zw).Encode(doc); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// richEvents returns the events of containers in every phase the fold
// keeps, with the fields that are easy to lose in an encoding: an exit
// code 0 (a pointer to a zero), an exit without a code, running execs, a
// failure and an error reply.
func richEvents() []events.Event {
	var evs []events.Event
	add := func(typ, subject, cmd string, data any) {
		evs = append(evs, events.NewEvent(node, typ, subject, cmd, data))
	}
	evs = append(evs, created("zero")...)
	add(events.ContainerStarting, "zero", "s0", nil)
	add(events.ContainerStarted, "zero", "s0", events.StartedData{Pid: 7})
	add(events.ContainerExited, "zero", "", events.Exit{Code: events.ExitCode(0), Reason: events.ReasonExited, FinishedAt: time.Now().UTC()})
	evs = append(evs, created("lost")...)
	add(events.ContainerStarting, "lost", "s1", nil)
	add(events.ContainerStarted, "lost", "s1", events.StartedData{Pid: 8})
	add(events.ContainerExited, "lost", "", events.Exit{Reason: events.ReasonHostLost, Message: "gone"})
	evs = append(evs, created("busy")...)
	add(events.ContainerStarting, "busy", "s2", nil)
	add(events.ContainerStarted, "busy", "s2", events.StartedData{Pid: 9})
	add(events.ContainerExecStarted, "busy", "x1", events.ExecStartedData{Exec: "x1", Command: []string{"cmd"}, Pid: 10})
	add(events.ContainerExecStarted, "busy", "x2", events.ExecStartedData{Exec: "x2", Pid: 0})
	add(events.ContainerCreating, "bad", "c9", events.CreatingData{Spec: events.ContainerSpec{Image: events.ImageSpec{Ref: "x"}, Env: map[string]string{}}, Owner: "berth"})
	add(events.ContainerCreateFailed, "bad", "c9", events.FailureData{Error: "no such image", Code: 404})
	add(events.NodeCommandCompleted, "c9", "c9", events.CommandCompletedData{Verb: events.VerbCreate, Container: "bad",
		Reply: events.NewReply("c9", nil, fmt.Errorf("%w: no such image", events.ErrNotFound))})
	return evs
}

// recordedJournals returns the events of the journals recorded from real
// runs for the golden replay tests.
func recordedJournals(t testing.TB) map[string][]events.Event {
	t.Helper()
	files, err := filepath.Glob("../tests/testdata/replay/*/journal.jsonl")
	if err != nil || len(files) == 0 {
		t.Fatalf("no recorded journals: %v", err)
	}
	out := map[string][]events.Event{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			ev, err := events.DecodeEvent(sc.Bytes())
			if err != nil {
				t.Fatal(err)
			}
			out[filepath.Base(filepath.Dir(f))] = append(out[filepath.Base(filepath.Dir(f))], ev)
		}
	}
	return out
}

// TestSnapshotEncodingsAgree checks, at every sequence of recorded and
// synthetic journals, that a state decoded from either snapshot schema is
// the state that was encoded.
func TestSnapshotEncodingsAgree(t *testing.T) {
	journals := recordedJournals(t)
	journals["rich"] = richEvents()
	for name, evs := range journals {
		t.Run(name, func(t *testing.T) {
			st := events.NewState(node, events.DefaultWindow)
			for i := range evs {
				evs[i].Seq = uint64(i + 1)
				if err := st.Apply(&evs[i]); err != nil {
					t.Fatalf("event %d: %v", i+1, err)
				}
				doc := snapshotDoc{Seq: st.Seq, State: st}
				b, err := encodeSnapshot(doc)
				if err != nil {
					t.Fatal(err)
				}
				for schema, data := range map[int][]byte{snapshotCBOR: b, snapshotJSON: encodeJSONSnapshot(t, doc)} {
					got, err := decodeSnapshot(schema, data)
					if err != nil {
						t.Fatalf("schema %d at %d: %v", schema, st.Seq, err)
					}
					if got.Seq != st.Seq || got.Schema != schema {
						t.Fatalf("schema %d at %d: document says seq %d, schema %d", schema, st.Seq, got.Seq, got.Schema)
					}
					got.State.Window = st.Window
					if d := diffStates(st, got.State); d != "" {
						t.Fatalf("schema %d at %d: decoded state differs (-want +got):\n%s", schema, st.Seq, d)
					}
				}
			}
		})
	}
}

// storeSnapshot writes data as the node's snapshot of the given schema
// and sequence, past SaveSnapshot's encoding, in slot "a".
func storeSnapshot(t testing.TB, j *Journal, schema int, seq uint64, data []byte) {
	t.Helper()
	ctx := testCtx(t)
	if _, err := j.snaps.Put(ctx, chunkKey("a", 0), data); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	hb, err := json.Marshal(snapshotHead{Seq: seq, Schema: schema, Slot: "a", Chunks: 1, Size: len(data), SHA256: hex.EncodeToString(sum[:])})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := j.snaps.Put(ctx, headKey, hb); err != nil {
		t.Fatal(err)
	}
}

// TestSnapshotOfEverySchema checks what Boot makes of snapshots of each
// schema, readable or not: an older schema's is used, and one that
// cannot be read is skipped with a warning, Boot folding the journal from
// the start instead.
func TestSnapshotOfEverySchema(t *testing.T) {
	s := startServer(t, "")
	j := open(t, s, Config{})
	boot(t, j)
	appendAll(t, j, workload(6)...)
	mid, err := j.StateAt(testCtx(t), 9)
	if err != nil {
		t.Fatal(err)
	}
	good, err := encodeSnapshot(snapshotDoc{Seq: mid.Seq, State: mid})
	if err != nil {
		t.Fatal(err)
	}
	legacy := encodeJSONSnapshot(t, snapshotDoc{Seq: mid.Seq, State: mid})
	for _, c := range []struct {
		name   string
		schema int
		data   []byte
		used   bool
		why    string
	}{
		{"schema 2", snapshotCBOR, good, true, ""},
		{"schema 1, gzip JSON", snapshotJSON, legacy, true, ""},
		{"schema 1 head over schema 2 data", snapshotJSON, good, false, "does not decode"},
		{"schema 2 head over schema 1 data", snapshotCBOR, legacy, false, "does not decode"},
		{"schema 0", 0, good, false, "unknown snapshot schema 0"},
		{"newer schema", SnapshotSchema + 1, good, false, "is newer than this agent's"},
		{"truncated", snapshotCBOR, good[:len(good)/2], false, "does not decode"},
		{"zstd of JSON", snapshotCBOR, mustZstd(t, []byte(`{"seq":9,"schema":2,"state":{}}`)), false, "does not decode"},
	} {
		t.Run(c.name, func(t *testing.T) {
			storeSnapshot(t, j, c.schema, mid.Seq, c.data)
			var logs bytes.Buffer
			j2, err := Open(testCtx(t), connect(t, s), Config{Subjects: j.cfg.Subjects, Logger: zerolog.New(&logs)})
			if err != nil {
				t.Fatal(err)
			}
			defer j2.Close()
			got, err := j2.Boot(testCtx(t))
			if err != nil {
				t.Fatalf("boot: %v", err)
			}
			if d := diffStates(fullFold(t, j), got); d != "" {
				t.Fatalf("boot differs from a full fold (-want +got):\n%s", d)
			}
			bs := j2.BootStats()
			if used := bs.SnapshotSeq == mid.Seq; used != c.used {
				t.Fatalf("snapshot used: %v, want %v (stats %+v; log %s)", used, c.used, bs, logs.String())
			}
			if c.used && bs.TailEvents != int(j.LastSeq()-mid.Seq) {
				t.Fatalf("folded %d events after the snapshot, want %d", bs.TailEvents, j.LastSeq()-mid.Seq)
			}
			if !c.used && (!strings.Contains(logs.String(), "snapshot ignored") || !strings.Contains(logs.String(), c.why)) {
				t.Fatalf("the skipped snapshot was not logged with %q: %s", c.why, logs.String())
			}
		})
	}
}

func mustZstd(t testing.TB, b []byte) []byte {
	t.Helper()
	enc, err := zstdEnc()
	if err != nil {
		t.Fatal(err)
	}
	return enc.EncodeAll(b, nil)
}

// FuzzDecodeSnapshot feeds snapshot documents of either schema, as read
// from the bucket, to the decoder: it must not panic, and a document it
// accepts must encode and decode again to the same state.
func FuzzDecodeSnapshot(f *testing.F) {
	evs := richEvents()
	st := events.NewState(node, events.DefaultWindow)
	for i := range evs {
		evs[i].Seq = uint64(i + 1)
		if err := st.Apply(&evs[i]); err != nil {
			f.Fatal(err)
		}
	}
	doc := snapshotDoc{Seq: st.Seq, State: st}
	b, err := encodeSnapshot(doc)
	if err != nil {
		f.Fatal(err)
	}
	raw, err := snapEnc.Marshal(snapshotDoc{Seq: st.Seq, Schema: snapshotCBOR, State: st})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(snapshotCBOR, b)
	f.Add(snapshotCBOR, mustZstd(f, raw[:len(raw)/3]))
	f.Add(snapshotJSON, encodeJSONSnapshot(f, doc))
	f.Add(snapshotCBOR, []byte("garbage"))
	f.Fuzz(func(t *testing.T, schema int, data []byte) {
		got, err := decodeSnapshot(schema, data)
		if err != nil {
			return
		}
		again, err := encodeSnapshot(got)
		if err != nil {
			return // a state the decoder accepts need not encode (an invalid time)
		}
		back, err := decodeSnapshot(snapshotCBOR, again)
		if err != nil {
			t.Fatalf("a decoded document does not decode after encoding: %v", err)
		}
		if got.Seq != back.Seq {
			t.Fatalf("seq %d became %d", got.Seq, back.Seq)
		}
		if d := diffStates(got.State, back.State); d != "" {
			t.Fatalf("state changed through encoding (-first +second):\n%s", d)
		}
	})
}
