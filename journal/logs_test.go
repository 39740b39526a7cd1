package journal

import (
	"bytes"
	"io"
	"runtime"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthhq/berth/events"
)

// logMsgs returns every message of the node's log stream.
func logMsgs(t *testing.T, s *Server) []jetstream.RawStreamMsg {
	t.Helper()
	ctx := testCtx(t)
	st, err := rawJS(t, s).Stream(ctx, events.NewSubjects("", node).LogStream())
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []jetstream.RawStreamMsg
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		m, err := st.GetMsg(ctx, seq)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, *m)
	}
	return out
}

func TestLogWriter_LinesChunksTimes(t *testing.T) {
	s := startServer(t, "")
	// No drops on a slow disk: this test is about lines and chunks, not the
	// stall policy (TestLogWriter_BoundedPending).
	j := open(t, s, Config{LogStallWait: time.Minute})
	long := bytes.Repeat([]byte("0123456789abcdef"), (10<<20)/16+1) // 10 MiB + 16 bytes
	in := "first\r\n\n" + string(long) + "\n" + "last without end"
	before := time.Now()
	j.Logs().Copy("web-1", events.Stderr, strings.NewReader(in))
	if err := j.Logs().Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	after := time.Now()
	msgs := logMsgs(t, s)
	chunks := (len(long) + LogChunk - 1) / LogChunk
	if want := 2 + chunks + 1; len(msgs) != want {
		t.Fatalf("%d messages in the log stream, want %d", len(msgs), want)
	}
	var joined []byte
	for i, m := range msgs {
		if want := events.NewSubjects("", node).Log("web-1", events.Stderr); m.Subject != want {
			t.Fatalf("message %d on %s, want %s", i, m.Subject, want)
		}
		if got := m.Header.Get(HeaderLogStream); got != events.Stderr {
			t.Errorf("message %d: stream header %q", i, got)
		}
		ts, err := time.Parse(time.RFC3339Nano, m.Header.Get(HeaderLogTime))
		if err != nil || ts.Before(before) || ts.After(after) {
			t.Errorf("message %d: time %q (%v) is not between %v and %v", i, m.Header.Get(HeaderLogTime), err, before, after)
		}
		if len(m.Data) > LogChunk {
			t.Errorf("message %d carries %d bytes, more than %d", i, len(m.Data), LogChunk)
		}
		partial := m.Header.Get(HeaderLogPartial) == "true"
		switch {
		case i == 0 && (string(m.Data) != "first" || partial), i == 1 && (len(m.Data) != 0 || partial):
			t.Errorf("message %d: %q partial=%v", i, m.Data, partial)
		case i >= 2 && i < 2+chunks:
			joined = append(joined, m.Data...)
			if partial != (i < 2+chunks-1) {
				t.Errorf("chunk %d: partial=%v", i-2, partial)
			}
		case i == len(msgs)-1 && (string(m.Data) != "last without end" || !partial):
			t.Errorf("last message: %q partial=%v, want the unended line, partial", m.Data, partial)
		}
	}
	if !bytes.Equal(joined, long) {
		t.Errorf("the long line's chunks join to %d bytes, want the %d written", len(joined), len(long))
	}
	if c := j.Logs().Counts(); c != (LogCounts{Published: uint64(len(msgs))}) {
		t.Errorf("counts %+v, want %d published", c, len(msgs))
	}
}

// TestLogWriter_Order: lines of one stream keep their order, and lines of
// stdout and stderr keep the order in which they were read.
func TestLogWriter_Order(t *testing.T) {
	s := startServer(t, "")
	j := open(t, s, Config{LogStallWait: time.Minute}) // no drops on a slow disk
	var in strings.Builder
	for i := range 1000 {
		in.WriteString(strconv.Itoa(i) + "\n")
	}
	j.Logs().Copy("web-1", events.Stdout, strings.NewReader(in.String()))

	outR, outW := io.Pipe()
	errR, errW := io.Pipe()
	done := make(chan struct{}, 2)
	for stream, r := range map[string]io.Reader{events.Stdout: outR, events.Stderr: errR} {
		go func() {
			j.Logs().Copy("web-1", stream, r)
			done <- struct{}{}
		}()
	}
	for i, w := range []*io.PipeWriter{errW, outW, errW, errW, outW} {
		if _, err := io.WriteString(w, "x"+strconv.Itoa(i)+"\n"); err != nil {
			t.Fatal(err)
		}
		// The next line is written once this one is read and published.
		waitFor(t, "line "+strconv.Itoa(i), func() bool { return j.Logs().Counts().Published == uint64(1001+i) })
	}
	outW.Close()
	errW.Close()
	<-done
	<-done
	if err := j.Logs().Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	msgs := logMsgs(t, s)
	if len(msgs) != 1005 {
		t.Fatalf("%d messages, want 1005", len(msgs))
	}
	for i, m := range msgs[:1000] {
		if string(m.Data) != strconv.Itoa(i) {
			t.Fatalf("message %d is %q", i, m.Data)
		}
	}
	want := []string{"stderr x0", "stdout x1", "stderr x2", "stderr x3", "stdout x4"}
	for i, m := range msgs[1000:] {
		if got := m.Header.Get(HeaderLogStream) + " " + string(m.Data); got != want[i] {
			t.Errorf("interleaved line %d is %q, want %q", i, got, want[i])
		}
	}
}

// TestLogWriter_BoundedPending: when acknowledgements do not come, at most
// the configured number of publishes stay pending, and the rest of the
// output is dropped and counted instead of blocking the reader.
func TestLogWriter_BoundedPending(t *testing.T) {
	s := startServer(t, "")
	nc := connect(t, s)
	// A subscriber that never acknowledges stands in for a stalled stream.
	subj := events.NewSubjects("stalled", node)
	sub, err := nc.SubscribeSync(subj.Logs(""))
	if err != nil {
		t.Fatal(err)
	}
	w, err := newLogWriter(connect(t, s), subj, 4, 10*time.Millisecond, testLogger(t))
	if err != nil {
		t.Fatal(err)
	}
	w.Copy("web-1", events.Stdout, strings.NewReader(strings.Repeat("line\n", 20)))
	if c := w.Counts(); c.Published != 4 || c.Dropped != 16 {
		t.Errorf("counts %+v, want 4 published and 16 dropped", c)
	}
	if n := w.Pending(); n != 4 {
		t.Errorf("%d publishes pending, want 4", n)
	}
	for range 4 {
		if _, err := sub.NextMsg(10 * time.Second); err != nil {
			t.Fatal(err)
		}
	}
}

func TestOpen_LogStreamLimits(t *testing.T) {
	s := startServer(t, "")
	open(t, s, Config{LogMaxBytes: 1 << 20, LogMaxAge: time.Hour})
	st, err := rawJS(t, s).Stream(testCtx(t), events.NewSubjects("", node).LogStream())
	if err != nil {
		t.Fatal(err)
	}
	cfg := st.CachedInfo().Config
	if cfg.MaxBytes != 1<<20 || cfg.MaxAge != time.Hour || cfg.Discard != jetstream.DiscardOld || cfg.Storage != jetstream.FileStorage {
		t.Errorf("log stream config %+v", cfg)
	}
}

// A new log stream persists asynchronously; the event stream syncs every
// write (the server's SyncAlways). A log stream an earlier agent created
// keeps its mode, which the server does not change.
func TestOpen_LogStreamPersistsAsync(t *testing.T) {
	ctx := testCtx(t)
	subj := events.NewSubjects("", node)
	mode := func(js jetstream.JetStream, name string) jetstream.PersistModeType {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		return st.CachedInfo().Config.PersistMode
	}

	s := startServer(t, "")
	open(t, s, Config{})
	js := rawJS(t, s)
	if got := mode(js, subj.LogStream()); got != jetstream.AsyncPersistMode {
		t.Errorf("new log stream persist mode %v, want async", got)
	}
	if got := mode(js, subj.EventStream()); got != jetstream.DefaultPersistMode {
		t.Errorf("event stream persist mode %v, want default", got)
	}

	s = startServer(t, "")
	js = rawJS(t, s)
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: subj.LogStream(), Subjects: []string{subj.Logs("")}, Storage: jetstream.FileStorage}); err != nil {
		t.Fatal(err)
	}
	open(t, s, Config{})
	if got := mode(js, subj.LogStream()); got != jetstream.DefaultPersistMode {
		t.Errorf("existing log stream persist mode %v, want it kept (default)", got)
	}
}

// TestLogWriter_RateLimitPerContainer writes more output than the rate
// allows on both streams of one container at once: what is kept stays
// within the budget, the rest is counted and stands as marker lines that
// carry the number of bytes they replace, and nothing is lost unaccounted.
func TestLogWriter_RateLimitPerContainer(t *testing.T) {
	s := startServer(t, "")
	var mu sync.Mutex
	reported := map[string]int{}
	j := open(t, s, Config{LogRate: LogChunk, OnLogDrop: func(reason string, n int) {
		mu.Lock()
		reported[reason] += n
		mu.Unlock()
	}})
	const lines, size = 60, 1000 // per stream, bytes per line with its end
	line := strings.Repeat("x", size-1) + "\n"
	start := time.Now()
	var wg sync.WaitGroup
	for _, stream := range []string{events.Stdout, events.Stderr} {
		r, pw := io.Pipe()
		wg.Add(2)
		go func() { defer wg.Done(); j.Logs().Copy("web-1", stream, r) }()
		go func() {
			defer wg.Done()
			for range lines {
				pw.Write([]byte(line))
			}
			pw.Close()
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := j.Logs().Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	kept, dropped, markers := 0, 0, 0
	for _, m := range logMsgs(t, s) {
		if d := m.Header.Get(HeaderLogDropped); d != "" {
			n, err := strconv.Atoi(d)
			if err != nil || n <= 0 || !strings.Contains(string(m.Data), "bytes of output dropped: over the log rate of 16384 bytes/s") {
				t.Errorf("marker %q with %s=%q", m.Data, HeaderLogDropped, d)
			}
			dropped += n
			markers++
			continue
		}
		if len(m.Data) != size-1 {
			t.Errorf("kept line of %d bytes, want %d", len(m.Data), size-1)
		}
		kept += size
	}
	if kept+dropped != 2*lines*size {
		t.Fatalf("kept %d + dropped %d bytes, want %d in all", kept, dropped, 2*lines*size)
	}
	if budget := LogChunk + int(elapsed.Seconds()*LogChunk) + 2*size; kept > budget {
		t.Errorf("kept %d bytes in %v, more than the budget of %d", kept, elapsed, budget)
	}
	if dropped == 0 || markers == 0 {
		t.Fatalf("nothing dropped of %d bytes in %v at %d bytes/s", 2*lines*size, elapsed, LogChunk)
	}
	if c := j.Logs().Counts(); c.OverRate != uint64(dropped) {
		t.Errorf("Counts().OverRate = %d, want %d", c.OverRate, dropped)
	}
	mu.Lock()
	defer mu.Unlock()
	if reported["rate"] != dropped {
		t.Errorf("OnLogDrop reported %v, want rate %d", reported, dropped)
	}
}

// lineSource yields one line of n bytes and its line end without holding
// it: the line exists only as the reader asks for it.
type lineSource struct {
	n, read int
	onRead  func(p []byte)
}

func (s *lineSource) Read(p []byte) (int, error) {
	s.onRead(p)
	if s.read > s.n {
		return 0, io.EOF
	}
	k := 0
	for ; k < len(p) && s.read < s.n; k++ {
		p[k] = 'a' + byte(s.read%26)
		s.read++
	}
	if k < len(p) && s.read == s.n {
		p[k] = '\n'
		k++
		s.read++
	}
	return k, nil
}

// TestLogWriter_LongLineMemoryBounded copies a 10 MiB line from a reader
// that never holds it: every chunk reaches the stream, Copy never asks for
// more than LogChunk bytes at a time, no more than LogMaxPending publishes
// wait. Those two bound what the writer holds: LogChunk bytes of the reader
// and pending chunks of LogChunk bytes. (The heap in use is logged, not
// checked: it includes the embedded server's cache of the stream's blocks.)
func TestLogWriter_LongLineMemoryBounded(t *testing.T) {
	s := startServer(t, "")
	const pending = 8
	j := open(t, s, Config{LogMaxPending: pending, LogStallWait: time.Minute})
	runtime.GC()
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(sample)
	base := sample[0].Value.Uint64()
	var peak uint64
	maxAsk, maxPending := 0, 0
	const size = 10 << 20
	src := &lineSource{n: size, onRead: func(p []byte) {
		maxAsk = max(maxAsk, len(p))
		maxPending = max(maxPending, j.Logs().Pending())
		metrics.Read(sample)
		peak = max(peak, sample[0].Value.Uint64())
	}}
	j.Logs().Copy("big", events.Stdout, src)
	if err := j.Logs().Flush(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if c := j.Logs().Counts(); c.Dropped != 0 || c.Failed != 0 || c.Published != size/LogChunk+1 {
		t.Errorf("counts %+v, want %d published, none dropped", c, size/LogChunk+1)
	}
	var total int
	for _, m := range logMsgs(t, s) {
		total += len(m.Data)
	}
	if total != size {
		t.Errorf("the stream holds %d bytes of the line, want %d", total, size)
	}
	if maxAsk > LogChunk || maxPending > pending {
		t.Errorf("Copy read up to %d bytes at once with %d publishes pending; want at most %d and %d", maxAsk, maxPending, LogChunk, pending)
	}
	t.Logf("heap in use: base %d, peak %d", base, peak)
}

// BenchmarkLogWriterRate is the cost of the per-container rate check on a
// line that the limit drops (no publish), the path a flooding container
// takes for every line over its rate.
func BenchmarkLogWriterRate(b *testing.B) {
	w := open(b, startServer(b, ""), Config{LogRate: 1}).Logs() // past the first burst, every line is over
	line := strings.Repeat("x", 99) + "\n"
	r := &repeatReader{line: []byte(line), n: b.N}
	b.SetBytes(int64(len(line)))
	b.ResetTimer()
	w.Copy("web-1", events.Stdout, r)
	if got := w.Counts().OverRate; got+LogChunk < uint64(b.N*len(line)) {
		b.Fatalf("dropped %d bytes of %d lines", got, b.N)
	}
}

// repeatReader yields line n times.
type repeatReader struct {
	line []byte
	n    int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.n == 0 {
		return 0, io.EOF
	}
	r.n--
	return copy(p, r.line), nil
}
