package journal

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"

	"github.com/berthhq/berth/events"
)

// Headers of a log message. Its data is one line of output without the line
// end, or one chunk of a longer line.
const (
	// HeaderLogTime is when the agent read the line, RFC 3339 with nanoseconds.
	HeaderLogTime = "Berth-Time"
	// HeaderLogStream is events.Stdout or events.Stderr.
	HeaderLogStream = "Berth-Stream"
	// HeaderLogPartial is "true" on a chunk that does not end its line: a
	// chunk of a line longer than LogChunk, or output that ended without a
	// line end.
	HeaderLogPartial = "Berth-Partial"
	// HeaderLogDropped is on the marker line that stands for output dropped
	// because the container went over its log rate (Config.LogRate): the
	// number of bytes dropped. The marker reads "[berth: N bytes of output
	// dropped: over the log rate of R bytes/s]".
	HeaderLogDropped = "Berth-Dropped"
)

// Log stream defaults.
const (
	// DefaultLogMaxBytes bounds the node's log stream when
	// Config.LogMaxBytes is 0; the oldest lines are discarded first.
	DefaultLogMaxBytes = 1 << 30
	// DefaultLogMaxAge is how long lines are kept when Config.LogMaxAge is 0.
	DefaultLogMaxAge = 7 * 24 * time.Hour
	// DefaultLogMaxPending bounds the unacknowledged log publishes when
	// Config.LogMaxPending is 0.
	DefaultLogMaxPending = 256
	// LogChunk is the most bytes of output one log message carries; a
	// longer line is split into chunks of this size.
	LogChunk = 16 << 10
)

func (c *Config) setLogDefaults() {
	if c.LogMaxBytes <= 0 {
		c.LogMaxBytes = DefaultLogMaxBytes
	}
	if c.LogMaxAge <= 0 {
		c.LogMaxAge = DefaultLogMaxAge
	}
	if c.LogMaxPending <= 0 {
		c.LogMaxPending = DefaultLogMaxPending
	}
	if c.LogStallWait <= 0 {
		c.LogStallWait = time.Second
	}
}

// openLogs creates or updates the log stream and its writer. A log stream
// of one replica persists asynchronously: the server writes lines to its
// files within milliseconds and syncs them at its sync interval, not one
// fsync per line as the journal does, so that a chatty container does not
// load the disk the journal syncs to. A server killed outright loses the
// last few milliseconds of output; power loss loses what was not synced.
// Replicated streams do not offer the mode and stay as the server is set,
// and so does an existing stream: the server does not change the mode of a
// stream.
func (j *Journal) openLogs(ctx context.Context, nc *nats.Conn) error {
	s := j.cfg.Subjects
	persist := jetstream.DefaultPersistMode
	if j.cfg.Replicas <= 1 {
		persist = jetstream.AsyncPersistMode
	}
	if st, err := j.js.Stream(ctx, s.LogStream()); err == nil {
		persist = st.CachedInfo().Config.PersistMode
	}
	if _, err := j.js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              s.LogStream(),
		Description:       "berth container output of node " + s.Node,
		Subjects:          []string{s.Logs("")},
		Storage:           jetstream.FileStorage,
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxBytes:          j.cfg.LogMaxBytes,
		MaxAge:            j.cfg.LogMaxAge,
		MaxMsgsPerSubject: -1,
		AllowDirect:       true,
		Replicas:          j.cfg.Replicas,
		PersistMode:       persist,
	}); err != nil {
		return err
	}
	w, err := newLogWriter(nc, s, j.cfg.LogMaxPending, j.cfg.LogStallWait, j.log)
	w.rate, w.onDrop = j.cfg.LogRate, j.cfg.OnLogDrop
	j.logs = w
	return err
}

func newLogWriter(nc *nats.Conn, s events.Subjects, maxPending int, stall time.Duration, log zerolog.Logger) (*LogWriter, error) {
	w := &LogWriter{subj: s, stall: stall, log: log, limits: map[string]*containerLimit{}}
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncMaxPending(maxPending),
		jetstream.WithPublishAsyncErrHandler(func(jetstream.JetStream, *nats.Msg, error) { w.failed.Add(1) }))
	w.js = js
	return w, err
}

// LogWriter publishes containers' output into the node's log stream. Its
// methods are safe for concurrent use.
type LogWriter struct {
	js    jetstream.JetStream
	subj  events.Subjects
	stall time.Duration
	log   zerolog.Logger

	rate   int                            // bytes/s per container; 0: no limit
	onDrop func(reason string, bytes int) // may be nil

	mu     sync.Mutex                 // guards limits
	limits map[string]*containerLimit // by container, while a Copy of it runs

	published atomic.Uint64
	dropped   atomic.Uint64
	rated     atomic.Uint64
	failed    atomic.Uint64
}

// containerLimit is the log rate of one container, shared by the Copy of
// its stdout and the Copy of its stderr.
type containerLimit struct {
	lim  *rate.Limiter
	refs int // Copy calls using it; guarded by LogWriter.mu
}

// limiter returns container's limiter, nil without a rate, and takes a
// reference that release gives back.
func (w *LogWriter) limiter(container string) *rate.Limiter {
	if w.rate <= 0 {
		return nil
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	cl, ok := w.limits[container]
	if !ok {
		cl = &containerLimit{lim: rate.NewLimiter(rate.Limit(w.rate), max(w.rate, LogChunk))}
		w.limits[container] = cl
	}
	cl.refs++
	return cl.lim
}

func (w *LogWriter) release(container string) {
	if w.rate <= 0 {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if cl := w.limits[container]; cl != nil {
		if cl.refs--; cl.refs == 0 {
			delete(w.limits, container)
		}
	}
}

// Logs returns the journal's log writer.
func (j *Journal) Logs() *LogWriter { return j.logs }

// Copy reads r until EOF or a read error and publishes each line of it, as
// it is read, to the log subject of container and stream (events.Stdout or
// events.Stderr), time-stamped. Lines longer than LogChunk go out in chunks
// of LogChunk bytes, so Copy holds at most LogChunk bytes of r at a time.
// Publishes are asynchronous with at most Config.LogMaxPending
// unacknowledged; when that many are pending for longer than
// Config.LogStallWait, the line is dropped (and counted) instead of
// blocking the writer of r any longer. So the output of all containers
// together holds at most Config.LogMaxPending messages of at most LogChunk
// bytes in memory, plus LogChunk bytes per Copy. Copy has the signature of
// actors.Config.Output.
//
// With Config.LogRate set, the output of one container (both streams) is
// held to that rate: a line beyond it is dropped, and before the next line
// that fits (or at EOF) one marker line says how many bytes were dropped.
func (w *LogWriter) Copy(container, stream string, r io.Reader) {
	subject := w.subj.Log(container, stream)
	lim := w.limiter(container)
	defer w.release(container)
	dropped := 0 // bytes over the rate since the last marker
	marker := func() {
		if dropped == 0 {
			return
		}
		m := w.message(subject, stream, fmt.Appendf(nil, "[berth: %d bytes of output dropped: over the log rate of %d bytes/s]", dropped, w.rate), true)
		m.Header.Set(HeaderLogDropped, strconv.Itoa(dropped))
		w.send(m)
		dropped = 0
	}
	br := bufio.NewReaderSize(r, LogChunk)
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if lim != nil && !lim.AllowN(time.Now(), len(line)) {
				dropped += len(line)
				w.rated.Add(uint64(len(line)))
				if w.onDrop != nil {
					w.onDrop("rate", len(line))
				}
			} else {
				marker()
				w.publish(subject, stream, line, err == nil)
			}
		}
		if err == nil || errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		marker()
		if !errors.Is(err, io.EOF) {
			w.log.Debug().Err(err).Str("container", container).Str("stream", stream).Msg("container output ended")
		}
		return
	}
}

// publish sends one line (or chunk) of output; whole reports that it ended
// with a line end, which is not sent.
func (w *LogWriter) publish(subject, stream string, line []byte, whole bool) {
	if whole {
		line = bytes.TrimSuffix(bytes.TrimSuffix(line, []byte{'\n'}), []byte{'\r'})
	}
	w.send(w.message(subject, stream, bytes.Clone(line), whole)) // line is the reader's buffer
}

// message builds a log message carrying data.
func (w *LogWriter) message(subject, stream string, data []byte, whole bool) *nats.Msg {
	m := nats.NewMsg(subject)
	m.Data = data
	m.Header.Set(HeaderLogTime, time.Now().UTC().Format(time.RFC3339Nano))
	m.Header.Set(HeaderLogStream, stream)
	if !whole {
		m.Header.Set(HeaderLogPartial, "true")
	}
	return m
}

// send publishes m, or drops it (and counts it) when the stream stalls.
func (w *LogWriter) send(m *nats.Msg) {
	if _, err := w.js.PublishMsgAsync(m, jetstream.WithStallWait(w.stall)); err != nil {
		if w.onDrop != nil {
			w.onDrop("stall", len(m.Data))
		}
		if n := w.dropped.Add(1); n&(n-1) == 0 { // the 1st, 2nd, 4th, 8th... drop
			w.log.Warn().Err(err).Str("subject", m.Subject).Uint64("dropped", n).Msg("container output dropped: the log stream does not keep up")
		}
		return
	}
	w.published.Add(1)
}

// Flush waits until every publish so far is acknowledged or ctx ends.
func (w *LogWriter) Flush(ctx context.Context) error {
	select {
	case <-w.js.PublishAsyncComplete():
		return nil
	case <-ctx.Done():
		return fmt.Errorf("log flush: %d publishes pending: %w", w.Pending(), ctx.Err())
	}
}

// Pending returns the number of publishes not yet acknowledged.
func (w *LogWriter) Pending() int { return w.js.PublishAsyncPending() }

// LogCounts counts the lines and chunks a [LogWriter] handled.
type LogCounts struct {
	Published uint64 // handed to NATS
	Dropped   uint64 // not sent: too many publishes were pending for too long
	Failed    uint64 // sent but not stored (the publish was refused or timed out)
	// OverRate counts the bytes dropped because a container went over
	// Config.LogRate.
	OverRate uint64
}

// Counts returns the writer's counts so far.
func (w *LogWriter) Counts() LogCounts {
	return LogCounts{Published: w.published.Load(), Dropped: w.dropped.Load(), Failed: w.failed.Load(), OverRate: w.rated.Load()}
}
