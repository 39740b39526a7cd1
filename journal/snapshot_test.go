package journal

import (
	"fmt"
	"testing"

	"github.com/berthhq/berth/events"
)

// fullFold folds the whole journal without a snapshot.
func fullFold(t *testing.T, j *Journal) *events.State {
	t.Helper()
	st := events.NewState(node, events.DefaultWindow)
	if err := j.Replay(testCtx(t), 1, 0, st.Apply); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestSnapshotPlusTail(t *testing.T) {
	s := startServer(t, "")
	j := open(t, s, Config{SnapshotEvery: 10})
	boot(t, j)
	if j.ShouldSnapshot(9) || !j.ShouldSnapshot(10) {
		t.Fatal("ShouldSnapshot does not follow SnapshotEvery from sequence 0")
	}
	head := appendAll(t, j, workload(10)...)
	mid, err := j.StateAt(testCtx(t), j.LastSeq())
	if err != nil {
		t.Fatal(err)
	}
	if err := j.SaveSnapshot(testCtx(t), mid); err != nil {
		t.Fatal(err)
	}
	if j.ShouldSnapshot(mid.Seq+9) || !j.ShouldSnapshot(mid.Seq+10) {
		t.Fatal("ShouldSnapshot does not count from the saved snapshot")
	}
	var tail [][]events.Event
	for i := range 5 {
		tail = append(tail, created(fmt.Sprintf("d%d", i)), ran(fmt.Sprintf("c%d", 2*i+1)))
	}
	appendAll(t, j, tail...)

	j2 := open(t, s, Config{})
	got := boot(t, j2)
	if j2.snapSeq.Load() != mid.Seq {
		t.Fatalf("Boot did not start from the snapshot at %d (newest snapshot seen: %d)", mid.Seq, j2.snapSeq.Load())
	}
	want := fullFold(t, j2)
	if d := diffStates(want, got); d != "" {
		t.Fatalf("snapshot + tail differs from a full replay (-want +got):\n%s", d)
	}
	// The outcome index of a decoded snapshot works, for answers and for
	// further folding.
	cmd := head[2]
	if o, ok := got.Outcome(cmd.Subject); !ok || o.Verb != events.VerbCreate || o.Container != "c0" {
		t.Fatalf("Outcome(%s) after a snapshot = %+v, %v", cmd.Subject, o, ok)
	}
	more := appendAll(t, j2, created("e1"))
	for i := range more {
		if err := got.Apply(&more[i]); err != nil {
			t.Fatal(err)
		}
	}
	if o, ok := got.Outcome(more[2].Subject); !ok || o.Container != "e1" {
		t.Fatalf("Outcome of a command folded after the snapshot = %+v, %v", o, ok)
	}
	if _, ok := got.Outcome(cmd.Subject); !ok {
		t.Fatal("an outcome from the snapshot was lost")
	}
	// StateAt before the snapshot folds from the start.
	early, err := j2.StateAt(testCtx(t), 3)
	if err != nil || early.Seq != 3 || len(early.Containers) != 1 {
		t.Fatalf("StateAt(3) with a later snapshot = %+v, %v", early, err)
	}
	// A state no newer than the stored snapshot is not written.
	if err := j2.SaveSnapshot(testCtx(t), early); err != nil {
		t.Fatal(err)
	}
	if st, err := j2.loadSnapshot(testCtx(t), j2.LastSeq(), new(BootStats)); err != nil || st.Seq != mid.Seq {
		t.Fatalf("an older state replaced the snapshot: %v, %v", st, err)
	}
}

func TestLargeSnapshot(t *testing.T) {
	const containers = 10_000
	s := startServer(t, "")
	j := open(t, s, Config{})
	boot(t, j)
	j.chunkSize = 256 << 10 // a state larger than this needs several chunks
	st := events.NewState(node, events.DefaultWindow)
	seq := uint64(0)
	for i := range containers {
		for _, ev := range created(fmt.Sprintf("c%05d", i)) {
			seq++
			ev.Seq = seq
			if err := st.Apply(&ev); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := j.SaveSnapshot(testCtx(t), st); err != nil {
		t.Fatal(err)
	}
	h, _, err := j.snapshotHead(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d containers: %d compressed bytes in %d chunks", containers, h.Size, h.Chunks)
	if want := (h.Size + j.chunkSize - 1) / j.chunkSize; h.Chunks != want || want < 2 {
		t.Fatalf("a %d byte snapshot was stored in %d chunks, want %d (at least 2)", h.Size, h.Chunks, want)
	}
	got, err := j.loadSnapshot(testCtx(t), seq, new(BootStats))
	if err != nil {
		t.Fatal(err)
	}
	if got == nil {
		t.Fatal("the snapshot was not loaded")
	}
	if d := diffStates(st, got); d != "" {
		t.Fatalf("loaded snapshot differs (-want +got):\n%s", d)
	}
	if _, ok := got.Outcome(st.Outcomes[containers/2].ID); !ok {
		t.Fatal("outcome lookup fails on the loaded snapshot")
	}
}

func TestSnapshotTornOrStale(t *testing.T) {
	s := startServer(t, "")
	j := open(t, s, Config{})
	boot(t, j)
	appendAll(t, j, workload(4)...)
	first, err := j.StateAt(testCtx(t), 6)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.SaveSnapshot(testCtx(t), first); err != nil {
		t.Fatal(err)
	}
	load := func() *events.State {
		t.Helper()
		st, err := j.loadSnapshot(testCtx(t), j.LastSeq(), new(BootStats))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	// A save torn before its head: new chunks in the other slot, old head.
	if _, err := j.snaps.Put(testCtx(t), chunkKey("b", 0), []byte("torn")); err != nil {
		t.Fatal(err)
	}
	if st := load(); st == nil || st.Seq != 6 {
		t.Fatalf("after a torn save the snapshot is %+v, want the one at 6", st)
	}
	// A chunk that does not match the head is never used: Boot folds the
	// whole journal instead.
	if _, err := j.snaps.Put(testCtx(t), chunkKey("a", 0), []byte("garbage")); err != nil {
		t.Fatal(err)
	}
	if st := load(); st != nil {
		t.Fatalf("a corrupt snapshot was loaded: seq %d", st.Seq)
	}
	if d := diffStates(fullFold(t, j), boot(t, open(t, s, Config{}))); d != "" {
		t.Fatalf("boot over a corrupt snapshot differs from a full fold (-want +got):\n%s", d)
	}
	// The next save repairs it.
	second, err := j.StateAt(testCtx(t), 9)
	if err != nil {
		t.Fatal(err)
	}
	if err := j.SaveSnapshot(testCtx(t), second); err != nil {
		t.Fatal(err)
	}
	if st := load(); st == nil || st.Seq != 9 {
		t.Fatalf("snapshot after repair = %+v", st)
	}
	// A snapshot beyond the end of the journal (the journal was replaced)
	// is ignored by Boot and replaced by the next save.
	future := first.Clone()
	future.Seq = 1000
	if err := j.SaveSnapshot(testCtx(t), future); err != nil {
		t.Fatal(err)
	}
	if d := diffStates(fullFold(t, j), boot(t, open(t, s, Config{}))); d != "" {
		t.Fatalf("boot with a snapshot from beyond the journal (-want +got):\n%s", d)
	}
	if err := j.SaveSnapshot(testCtx(t), first); err != nil {
		t.Fatal(err)
	}
	if st := load(); st == nil || st.Seq != 6 {
		t.Fatalf("a stale future snapshot was not replaced: %+v", st)
	}
	// Another node's state is refused.
	if err := j.SaveSnapshot(testCtx(t), events.NewState("n2", events.DefaultWindow)); err == nil {
		t.Fatal("saved another node's state")
	}
}
