package journal

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthhq/berth/events"
)

func TestAppendRoundTrip(t *testing.T) {
	s := startServer(t, "")
	j := open(t, s, Config{})
	if st := boot(t, j); len(st.Containers) != 0 || st.Seq != 0 || j.LastSeq() != 0 {
		t.Fatalf("empty journal booted to seq %d with %d containers, last %d", st.Seq, len(st.Containers), j.LastSeq())
	}
	want := appendAll(t, j, workload(3)...)
	for i, ev := range want {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("event %d (%s) got seq %d, want %d", i, ev.Short(), ev.Seq, i+1)
		}
	}
	if j.LastSeq() != uint64(len(want)) {
		t.Fatalf("LastSeq = %d, want %d", j.LastSeq(), len(want))
	}

	var got []events.Event
	if err := j.Replay(testCtx(t), 0, 0, func(ev *events.Event) error {
		got = append(got, *ev)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("replayed %d events, want %d", len(got), len(want))
	}
	for i := range want {
		w, g := want[i], got[i]
		if g.ID != w.ID || g.Type != w.Type || g.Subject != w.Subject || g.Seq != w.Seq || string(g.Data) != string(w.Data) || !g.Time.Equal(w.Time) {
			t.Fatalf("replayed event %d = %+v, want %+v", i, g, w)
		}
	}

	// A window of the journal.
	var seqs []uint64
	if err := j.Replay(testCtx(t), 4, 6, func(ev *events.Event) error {
		seqs = append(seqs, ev.Seq)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(seqs, []uint64{4, 5, 6}) {
		t.Fatalf("Replay(4, 6) gave sequences %v", seqs)
	}

	st, err := j.StateAt(testCtx(t), j.LastSeq())
	if err != nil {
		t.Fatal(err)
	}
	if d := diffStates(fold(t, want), st); d != "" {
		t.Fatalf("StateAt(last) differs from the live fold (-want +got):\n%s", d)
	}
	if st, err := j.StateAt(testCtx(t), 3); err != nil || st.Seq != 3 || st.Containers["c0"].Phase != events.PhaseCreated || len(st.Containers) != 1 {
		t.Fatalf("StateAt(3) = %+v, %v; want c0 created at seq 3", st, err)
	}
	if _, err := j.StateAt(testCtx(t), j.LastSeq()+1); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("StateAt beyond the end: %v, want ErrNotFound", err)
	}
}

func TestAppendRefusals(t *testing.T) {
	s := startServer(t, "")
	j := open(t, s, Config{MaxBatch: 5})
	ok := created("c1")
	if _, err := j.Append(testCtx(t), ok...); !errors.Is(err, ErrNotBooted) {
		t.Fatalf("Append before Boot: %v, want ErrNotBooted", err)
	}
	boot(t, j)
	if _, err := j.Boot(testCtx(t)); err == nil {
		t.Fatal("a second Boot succeeded")
	}
	bad := func(mutate func(*events.Event)) events.Event {
		ev := events.NewEvent(node, events.ContainerCreating, "c2", "", events.CreatingData{Spec: spec("c2")})
		mutate(&ev)
		return ev
	}
	for name, ev := range map[string]events.Event{
		"unknown type":     bad(func(e *events.Event) { e.Type = "berth.thing.happened" }),
		"wildcard subject": bad(func(e *events.Event) { e.Subject = "c*" }),
		"empty token":      bad(func(e *events.Event) { e.Subject = "a..b" }),
		"space in subject": bad(func(e *events.Event) { e.Subject = "a b" }),
		"empty id":         bad(func(e *events.Event) { e.ID = "" }),
		"id with newline":  bad(func(e *events.Event) { e.ID = "x\r\ny" }),
	} {
		if _, err := j.Append(testCtx(t), ok[0], ev); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("%s: Append = %v, want ErrInvalid", name, err)
		}
	}
	if _, err := j.Append(testCtx(t), slices.Concat(ok, ran("c1"))...); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("Append of more than MaxBatch events: %v, want ErrInvalid", err)
	}
	if n := streamMsgs(t, j); n != 0 {
		t.Fatalf("refused appends stored %d messages", n)
	}
	appendAll(t, j, ok)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := j.Append(testCtx(t), ran("c1")[0]); !errors.Is(err, ErrClosed) || !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("Append after Close: %v, want ErrClosed", err)
	}
}

func TestRetriedAppendIsNotDuplicated(t *testing.T) {
	s := startServer(t, "")
	j := open(t, s, Config{})
	boot(t, j)
	first := appendAll(t, j, created("c1"))
	// The same Append again, as a caller whose context ended would retry it.
	again, err := j.Append(testCtx(t), first...)
	if err != nil {
		t.Fatal(err)
	}
	for i := range first {
		if again[i].Seq != first[i].Seq {
			t.Fatalf("retried event %d got seq %d, first append gave %d", i, again[i].Seq, first[i].Seq)
		}
	}
	if n := streamMsgs(t, j); n != uint64(len(first)) {
		t.Fatalf("stream holds %d messages after a retry, want %d", n, len(first))
	}
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}

	// A new journal has no memory of those ids: the server's dedupe answers.
	j2 := open(t, s, Config{})
	boot(t, j2)
	one, err := j2.Append(testCtx(t), first[1])
	if err != nil {
		t.Fatal(err)
	}
	if one[0].Seq != first[1].Seq {
		t.Fatalf("a single old event came back at seq %d, want its original %d", one[0].Seq, first[1].Seq)
	}
	if _, err := j2.Append(testCtx(t), first...); !errors.Is(err, events.ErrConflict) {
		t.Fatalf("re-appending an old batch: %v, want ErrConflict", err)
	}
	if n := streamMsgs(t, j2); n != uint64(len(first)) {
		t.Fatalf("stream holds %d messages after retries, want %d", n, len(first))
	}
	// Neither was a fence: the journal goes on.
	more := appendAll(t, j2, ran("c1"))
	if more[0].Seq != uint64(len(first)+1) {
		t.Fatalf("next append got seq %d, want %d", more[0].Seq, len(first)+1)
	}
}

// A batch that holds an old event id fails only the Append it came from,
// not the others committed with it.
func TestDuplicateFailsOnlyItsAppend(t *testing.T) {
	s := startServer(t, "")
	old := created("c0")
	{
		j := open(t, s, Config{})
		boot(t, j)
		appendAll(t, j, old)
		if err := j.Close(); err != nil {
			t.Fatal(err)
		}
	}
	release := make(chan struct{})
	calls := 0
	j := open(t, s, Config{OnDurable: func([]events.Event) {
		if calls++; calls == 1 {
			<-release
		}
	}})
	boot(t, j)
	var wg sync.WaitGroup
	errs := make([]error, 3)
	appendAsync := func(i int, evs []events.Event) {
		wg.Go(func() { _, errs[i] = j.Append(testCtx(t), evs...) })
	}
	appendAsync(0, created("c1")) // holds the writer in OnDurable
	waitFor(t, "the first batch", func() bool { return len(j.queue) == 0 && j.LastSeq() > 3 })
	appendAsync(1, old)
	appendAsync(2, created("c2"))
	waitFor(t, "two queued appends", func() bool { return len(j.queue) == 2 })
	close(release)
	wg.Wait()
	if errs[0] != nil || errs[2] != nil {
		t.Fatalf("innocent appends failed: %v, %v", errs[0], errs[2])
	}
	if !errors.Is(errs[1], events.ErrConflict) {
		t.Fatalf("old batch: %v, want ErrConflict", errs[1])
	}
	if n := streamMsgs(t, j); n != 9 {
		t.Fatalf("stream holds %d messages, want 9", n)
	}
}

func TestSecondWriterIsFenced(t *testing.T) {
	s := startServer(t, "")
	j1 := open(t, s, Config{})
	j2 := open(t, s, Config{})
	boot(t, j1)
	boot(t, j2)
	appendAll(t, j1, created("c1"))

	for _, evs := range [][]events.Event{created("c2"), created("c3")[:1]} { // a batch and a single event
		j3 := open(t, s, Config{})
		boot(t, j3)
		appendAll(t, j1, ran("c1")[:1])
		_, err := j3.Append(testCtx(t), evs...)
		if !errors.Is(err, ErrFenced) || !errors.Is(err, events.ErrUnavailable) {
			t.Fatalf("stale writer appending %d events: %v, want ErrFenced", len(evs), err)
		}
	}
	_, err := j2.Append(testCtx(t), created("c4")...)
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("stale writer: %v, want ErrFenced", err)
	}
	// Once fenced, always fenced, even for an append that would fit.
	_, err = j2.Append(testCtx(t), created("c5")...)
	if !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced writer appended again: %v", err)
	}
	if err := j2.SaveSnapshot(testCtx(t), events.NewState(node, events.DefaultWindow)); !errors.Is(err, ErrFenced) {
		t.Fatalf("fenced writer saved a snapshot: %v", err)
	}
	if n := streamMsgs(t, j1); n != 5 {
		t.Fatalf("stream holds %d messages, want the first writer's 5", n)
	}
	appendAll(t, j1, ran("c1")[1:2])
}

func TestReplayAfterRestart(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	j := open(t, s, Config{})
	boot(t, j)
	evs := appendAll(t, j, workload(20)...)
	want := fold(t, evs)
	if err := j.Close(); err != nil {
		t.Fatal(err)
	}
	j.js.Conn().Close()
	s.Shutdown()

	s = startServer(t, dir)
	j = open(t, s, Config{})
	got := boot(t, j)
	if d := diffStates(want, got); d != "" {
		t.Fatalf("fold after a restart differs (-want +got):\n%s", d)
	}
	if j.LastSeq() != uint64(len(evs)) {
		t.Fatalf("LastSeq after restart = %d, want %d", j.LastSeq(), len(evs))
	}
	if next := appendAll(t, j, created("d1")); next[0].Seq != uint64(len(evs)+1) {
		t.Fatalf("first append after restart got seq %d", next[0].Seq)
	}
}

func TestConcurrentAppends(t *testing.T) {
	const writers, appends = 32, 20
	s := startServer(t, "")
	var (
		mu      sync.Mutex
		durable []events.Event
		batches int
	)
	j := open(t, s, Config{OnDurable: func(evs []events.Event) {
		mu.Lock()
		defer mu.Unlock()
		durable = append(durable, evs...)
		batches++
	}})
	boot(t, j)
	var wg sync.WaitGroup
	results := make([][][]events.Event, writers)
	for w := range writers {
		wg.Go(func() {
			for a := range appends {
				n := 1 + (w+a)%4
				var evs []events.Event
				for k := range n {
					evs = append(evs, events.NewEvent(node, events.NodeStarted, fmt.Sprintf("w%d-a%d-e%d", w, a, k), "", events.NodeStartedData{}))
				}
				got, err := j.Append(testCtx(t), evs...)
				if err != nil {
					t.Error(err)
					return
				}
				results[w] = append(results[w], got)
			}
		})
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	total := 0
	for w := range writers {
		for a, got := range results[w] {
			for k := range got {
				want := fmt.Sprintf("w%d-a%d-e%d", w, a, k)
				if got[k].Subject != want || got[k].Seq != got[0].Seq+uint64(k) {
					t.Fatalf("append %d of writer %d: event %d is %s at seq %d, want %s at %d", a, w, k, got[k].Subject, got[k].Seq, want, got[0].Seq+uint64(k))
				}
			}
			if a > 0 && got[0].Seq <= results[w][a-1][0].Seq {
				t.Fatalf("writer %d: append %d at seq %d is not after the previous one", w, a, got[0].Seq)
			}
			total += len(got)
		}
	}
	if len(durable) != total {
		t.Fatalf("OnDurable saw %d events, Appends returned %d", len(durable), total)
	}
	for i, ev := range durable {
		if ev.Seq != uint64(i+1) {
			t.Fatalf("OnDurable event %d has seq %d: not strictly in stream order", i, ev.Seq)
		}
	}
	t.Logf("%d events in %d appends went out in %d batches", total, writers*appends, batches)
	var replayed []string
	if err := j.Replay(testCtx(t), 1, 0, func(ev *events.Event) error {
		replayed = append(replayed, ev.ID)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, ev := range durable {
		if replayed[i] != ev.ID {
			t.Fatalf("journal event %d is %s, OnDurable said %s", i+1, replayed[i], ev.ID)
		}
	}
}

// Appends queued while a batch commits go out together as the next batch.
func TestGroupCommit(t *testing.T) {
	const queued = 10
	s := startServer(t, "")
	release := make(chan struct{})
	var batches [][]events.Event
	j := open(t, s, Config{OnDurable: func(evs []events.Event) {
		if batches = append(batches, evs); len(batches) == 1 {
			<-release
		}
	}})
	boot(t, j)
	var wg sync.WaitGroup
	wg.Go(func() { appendAll(t, j, created("c0")) })
	waitFor(t, "the first batch", func() bool { return j.LastSeq() == 3 })
	for i := 1; i <= queued; i++ {
		wg.Go(func() { appendAll(t, j, created(fmt.Sprintf("c%d", i))) })
	}
	waitFor(t, "queued appends", func() bool { return len(j.queue) == queued })
	close(release)
	wg.Wait()
	if len(batches) != 2 || len(batches[1]) != 3*queued {
		sizes := make([]int, len(batches))
		for i, b := range batches {
			sizes[i] = len(b)
		}
		t.Fatalf("batch sizes %v, want [3 %d]", sizes, 3*queued)
	}
	// Each Append's three events are contiguous within the batch.
	for i := 0; i < len(batches[1]); i += 3 {
		b := batches[1][i : i+3]
		if b[0].Subject != b[1].Subject || b[0].Type != events.ContainerCreating || b[1].Type != events.ContainerCreated || b[2].Type != events.NodeCommandCompleted {
			t.Fatalf("batch events %d..%d are not one Append's: %s %s %s", i, i+2, b[0].Short(), b[1].Short(), b[2].Short())
		}
	}
}

func TestCorruptJournal(t *testing.T) {
	for name, tc := range map[string]struct {
		data string
		want string
	}{
		"refused by the fold": {
			data: marshal(t, events.NewEvent(node, events.ContainerStarted, "ghost", "", events.StartedData{Pid: 1})),
			want: "sequence 4 (container.started",
		},
		"not an event": {data: `{"specversion":"0.3"}`, want: "sequence 4"},
	} {
		t.Run(name, func(t *testing.T) {
			s := startServer(t, "")
			j := open(t, s, Config{})
			boot(t, j)
			appendAll(t, j, created("c1"))
			js := rawJS(t, s)
			if _, err := js.Publish(testCtx(t), j.cfg.Subjects.Event(events.KindContainer, "ghost"), []byte(tc.data)); err != nil {
				t.Fatal(err)
			}
			_, err := open(t, s, Config{}).Boot(testCtx(t))
			if !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Boot over a bad event: %v, want ErrCorrupt naming %q", err, tc.want)
			}
		})
	}
}

func marshal(t *testing.T, ev events.Event) string {
	b, err := ev.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestStreamConfig(t *testing.T) {
	s := startServer(t, "")
	j := open(t, s, Config{})
	info, err := j.evt.Info(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	c := info.Config
	if c.Name != "BERTH_EVT_n1" || !slices.Equal(c.Subjects, []string{"berth.evt.n1.>"}) || c.Storage != jetstream.FileStorage ||
		c.Retention != jetstream.LimitsPolicy || c.Discard != jetstream.DiscardNew || c.MaxMsgsPerSubject != -1 ||
		c.Duplicates < 10*60e9 || !c.DenyDelete || !c.AllowDirect || !c.AllowAtomicPublish {
		t.Fatalf("event stream config %+v", c)
	}
	cs, err := j.js.Stream(testCtx(t), "BERTH_CMD_n1")
	if err != nil {
		t.Fatal(err)
	}
	c = cs.CachedInfo().Config
	if !slices.Equal(c.Subjects, []string{"berth.cmd.n1.>"}) || c.Retention != jetstream.WorkQueuePolicy || c.Storage != jetstream.FileStorage ||
		c.Duplicates < 3600e9 || c.MaxAge != 24*3600e9 || c.MaxMsgSize <= events.MaxCommandSize {
		t.Fatalf("command stream config %+v", c)
	}
	// Opening again with the same settings is fine.
	open(t, s, Config{})
}

// A publish whose acknowledgement was lost is retried with the same ids
// and fence; the journal sees its own events at the end of the stream and
// takes that as success, without storing them twice.
func TestRetryAfterLostAck(t *testing.T) {
	s := startServer(t, "")
	j := open(t, s, Config{})
	boot(t, j)
	for _, tc := range []struct {
		name     string
		evs      []events.Event
		streamed bool
	}{
		{"a plain publish", created("c1")[:1], false},
		{"a batch", created("c2"), false},
		{"a batch streamed while gathered", created("c3"), true},
	} {
		ws := make([]wire, len(tc.evs))
		for i := range tc.evs {
			w, err := j.encode(&tc.evs[i])
			if err != nil {
				t.Fatal(err)
			}
			ws[i] = w
		}
		expected := j.LastSeq()
		var err error
		if tc.streamed {
			g := &gather{}
			for _, w := range ws {
				j.send(g, w)
			}
			if g.bp == nil || g.err != nil {
				t.Fatalf("%s: not streamed: %v", tc.name, g.err)
			}
			_, err = j.commitStreamed(g)
		} else {
			_, _, err = j.attempt(ws, expected)
		}
		if err != nil { // stored; say the ack never came
			t.Fatalf("%s: %v", tc.name, err)
		}
		first, old, err := j.publish(&gather{ws: ws})
		if err != nil || old || first != expected+1 {
			t.Fatalf("retry of %s: first %d, old %v, %v; want %d", tc.name, first, old, err, expected+1)
		}
		if n := streamMsgs(t, j); n != expected+uint64(len(ws)) {
			t.Fatalf("stream holds %d messages after the retry of %s, want %d", n, tc.name, expected+uint64(len(ws)))
		}
		j.last.Store(expected + uint64(len(ws))) // as commit does after success
	}
}

// Close fails the Appends still waiting for the writer with ErrClosed.
func TestCloseFailsQueuedAppends(t *testing.T) {
	s := startServer(t, "")
	release := make(chan struct{})
	j := open(t, s, Config{OnDurable: func([]events.Event) { <-release }})
	boot(t, j)
	appendAsync := func(evs []events.Event) <-chan error {
		errc := make(chan error, 1)
		go func() {
			_, err := j.Append(testCtx(t), evs...)
			errc <- err
		}()
		return errc
	}
	first := appendAsync(created("c1"))
	waitFor(t, "the first batch", func() bool { return j.LastSeq() == 3 })
	second := appendAsync(created("c2"))
	waitFor(t, "a queued append", func() bool { return len(j.queue) == 1 })
	closed := make(chan struct{})
	go func() {
		_ = j.Close()
		close(closed)
	}()
	waitFor(t, "Close to begin", func() bool { return j.ctx.Err() != nil })
	close(release)
	<-closed
	if err1, err2 := <-first, <-second; err1 != nil || !errors.Is(err2, ErrClosed) {
		t.Fatalf("Appends around Close: %v, %v; want nil, ErrClosed", err1, err2)
	}
	if n := streamMsgs(t, j); n != 3 {
		t.Fatalf("stream holds %d messages, want the first append's 3", n)
	}
}
