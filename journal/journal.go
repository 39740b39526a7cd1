package journal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/berthhq/berth/events"
)

// Errors of the journal. ErrFenced and ErrClosed also match
// events.ErrUnavailable.
var (
	// ErrFenced: another writer appended to this node's journal. This agent's
	// view is stale; it must stop. The journal refuses every later append.
	ErrFenced = fmt.Errorf("journal fenced by another writer: %w", events.ErrUnavailable)
	// ErrClosed: the journal was closed.
	ErrClosed = fmt.Errorf("journal closed: %w", events.ErrUnavailable)
	// ErrNotBooted: Append was called before Boot.
	ErrNotBooted = errors.New("journal not booted")
	// ErrCorrupt: a stored event cannot be decoded or the fold refuses it.
	ErrCorrupt = errors.New("corrupt journal")
)

// MaxBatch is the largest atomic batch the server accepts.
const MaxBatch = 1000

// Config configures the journal of one node.
type Config struct {
	Subjects events.Subjects
	// Replicas is the replica count of the streams and the snapshot bucket:
	// 1 embedded, 3 on a cluster. 0 means 1.
	Replicas int
	// SnapshotEvery is how many events may follow the last snapshot before
	// ShouldSnapshot says to write a new one. 0 means 10,000.
	SnapshotEvery int
	// Window bounds the command outcomes of folds built by Boot and
	// StateAt. The zero Window means events.DefaultWindow.
	Window events.Window
	// MaxBatch is the most events committed in one atomic batch, at most
	// (and by default) MaxBatch. An Append of more events is refused.
	MaxBatch int
	// QueueLen bounds the Appends waiting for the writer; a full queue
	// makes Append wait. 0 means 1024.
	QueueLen int
	// AttemptTimeout bounds one attempt to commit a batch; an attempt that
	// times out is retried with the same message ids. 0 means 10s.
	AttemptTimeout time.Duration
	// OnDurable, when set, is called by the single writer goroutine after
	// each batch is durable, with the batch's events (Seq set), strictly in
	// stream order, before the Append calls of that batch return. It must
	// not call Append.
	OnDurable func([]events.Event)
	// InboxAckWait is how long a delivered command may stay unacknowledged
	// before it is delivered again; InProgress restarts the clock. 0 means 2m.
	InboxAckWait time.Duration
	// InboxMaxDeliver bounds the deliveries of one command. 0 means 10.
	InboxMaxDeliver int
	// OnCommit, when set, is called by the writer goroutine after each
	// batch, with its event count and how long its commit took to become
	// durable or fail, retries included. A batch of several events is
	// streamed to the server while the writer gathers it; only the time
	// from its commit message on is counted. It must be cheap.
	OnCommit func(events int, took time.Duration)
	// LogMaxBytes and LogMaxAge bound the node's log stream; the oldest
	// lines go first. 0 means DefaultLogMaxBytes and DefaultLogMaxAge.
	LogMaxBytes int64
	LogMaxAge   time.Duration
	// LogMaxPending bounds the log publishes awaiting acknowledgement; 0
	// means DefaultLogMaxPending. LogStallWait is how long a line may wait
	// for room before it is dropped; 0 means 1s.
	LogMaxPending int
	LogStallWait  time.Duration
	// LogRate, when positive, bounds each container's output, stdout and
	// stderr together, to LogRate bytes per second on average, with bursts
	// of up to max(LogRate, LogChunk) bytes. Output beyond it is dropped
	// and replaced by one marker line (see [HeaderLogDropped]).
	LogRate int
	// OnLogDrop, when set, is told of output dropped, with the reason
	// ("rate": over LogRate; "stall": the stream did not keep up) and its
	// size in bytes. It must be cheap.
	OnLogDrop func(reason string, bytes int)
	Logger    zerolog.Logger
}

func (c *Config) setDefaults() error {
	if err := events.ValidateNodeID(c.Subjects.Node); err != nil {
		return fmt.Errorf("journal config: %w", err)
	}
	c.Subjects = events.NewSubjects(c.Subjects.Prefix, c.Subjects.Node) // also a literal Subjects{Node: ...}
	if c.MaxBatch > MaxBatch || c.MaxBatch < 0 {
		return fmt.Errorf("%w: journal config: max batch %d is outside 0..%d", events.ErrInvalid, c.MaxBatch, MaxBatch)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&c.Replicas, 1)
	def(&c.SnapshotEvery, 10_000)
	def(&c.MaxBatch, MaxBatch)
	def(&c.QueueLen, 1024)
	def(&c.InboxMaxDeliver, 10)
	if c.Window == (events.Window{}) {
		c.Window = events.DefaultWindow
	}
	if c.AttemptTimeout <= 0 {
		c.AttemptTimeout = 10 * time.Second
	}
	if c.InboxAckWait <= 0 {
		c.InboxAckWait = 2 * time.Minute
	}
	c.setLogDefaults()
	return nil
}

// Journal is the event journal of one node: a JetStream stream with one
// writer, fenced against any other. Its methods are safe for concurrent use.
type Journal struct {
	cfg   Config
	log   zerolog.Logger
	js    jetstream.JetStream
	evt   jetstream.Stream
	snaps jetstream.KeyValue

	queue  chan *request
	ctx    context.Context // ends when Close is called
	cancel context.CancelFunc
	exited chan struct{} // closed when the writer goroutine returns

	bootMu    sync.Mutex
	booted    atomic.Bool
	bootStats BootStats     // written by Boot before booted is set
	last      atomic.Uint64 // last durable sequence; written by Boot, then only by the writer

	failMu   sync.Mutex
	failed   error         // ErrFenced once fenced
	failedCh chan struct{} // closed when failed is set

	snapMu    sync.Mutex    // serialises SaveSnapshot
	snapSeq   atomic.Uint64 // sequence of the newest snapshot loaded or saved
	chunkSize int           // snapshot bytes per KV value

	w    writer // owned by the writer goroutine
	logs *LogWriter
}

// Open creates or updates the node's event stream, snapshot bucket,
// command stream and log stream, and starts the journal's writer goroutine, which runs
// until Close.
func Open(ctx context.Context, nc *nats.Conn, cfg Config) (*Journal, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	s := cfg.Subjects
	evt, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:               s.EventStream(),
		Description:        "berth event journal of node " + s.Node,
		Subjects:           []string{s.Events()},
		Storage:            jetstream.FileStorage,
		Retention:          jetstream.LimitsPolicy,
		Discard:            jetstream.DiscardNew,
		MaxMsgsPerSubject:  -1,
		Duplicates:         15 * time.Minute,
		DenyDelete:         true,
		AllowDirect:        true,
		AllowAtomicPublish: true,
		Replicas:           cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("event stream %s: %w", s.EventStream(), err)
	}
	snaps, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      s.SnapshotBucket(),
		Description: "berth state snapshots of node " + s.Node,
		History:     1,
		Storage:     jetstream.FileStorage,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("snapshot bucket %s: %w", s.SnapshotBucket(), err)
	}
	_, err = js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        s.CommandStream(),
		Description: "berth command inbox of node " + s.Node,
		Subjects:    []string{s.Commands()},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Duplicates:  time.Hour,
		MaxAge:      24 * time.Hour,
		MaxMsgSize:  maxPayload,
		Replicas:    cfg.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("command stream %s: %w", s.CommandStream(), err)
	}
	j := &Journal{
		cfg:      cfg,
		log:      cfg.Logger.With().Str("component", "journal").Str("node", s.Node).Logger(),
		js:       js,
		evt:      evt,
		snaps:    snaps,
		queue:    make(chan *request, cfg.QueueLen),
		exited:   make(chan struct{}),
		failedCh: make(chan struct{}),
		w:        newWriter(4 * cfg.MaxBatch),
		// Leave room for headers below the connection's max payload.
		chunkSize: int(nc.MaxPayload()) - 16<<10,
	}
	if err := j.openLogs(ctx, nc); err != nil {
		return nil, fmt.Errorf("log stream %s: %w", s.LogStream(), err)
	}
	j.ctx, j.cancel = context.WithCancel(context.Background())
	go j.run()
	return j, nil
}

// Close stops the writer and waits for it. Appends still queued or in
// flight fail with ErrClosed (an in-flight batch may still have become
// durable). Close is idempotent and always returns nil.
func (j *Journal) Close() error {
	j.cancel()
	<-j.exited
	return nil
}

// LastSeq returns the last stream sequence known durable: the one read
// by Boot, advanced by every successful Append.
func (j *Journal) LastSeq() uint64 { return j.last.Load() }

// ShouldSnapshot reports whether a state at sequence seq is at least
// Config.SnapshotEvery events past the newest snapshot this journal loaded
// or saved.
func (j *Journal) ShouldSnapshot(seq uint64) bool {
	return seq >= j.snapSeq.Load()+uint64(j.cfg.SnapshotEvery)
}

// Boot rebuilds the node's state: the latest snapshot (when there is one
// and it is not newer than the stream), then every later event up to the
// stream's last sequence, read once at the start. That sequence becomes the
// fence every later Append carries. Boot must be called once, before Append.
func (j *Journal) Boot(ctx context.Context) (*events.State, error) {
	j.bootMu.Lock()
	defer j.bootMu.Unlock()
	if j.booted.Load() {
		return nil, errors.New("journal boot: already booted")
	}
	var bs BootStats
	start := time.Now()
	last, err := j.streamLast(ctx)
	if err != nil {
		return nil, fmt.Errorf("journal boot: %w", err)
	}
	bs.Last, bs.Lookup = last, time.Since(start)
	st, err := j.stateAt(ctx, last, &bs)
	if err != nil {
		return nil, fmt.Errorf("journal boot: %w", err)
	}
	j.last.Store(last)
	j.bootStats = bs
	j.booted.Store(true)
	j.log.Info().Uint64("seq", last).Int("containers", len(st.Containers)).
		Uint64("snapshot_seq", bs.SnapshotSeq).Int("snapshot_bytes", bs.SnapshotBytes).
		Dur("snapshot_get", bs.SnapshotGet).Dur("snapshot_decode", bs.SnapshotDecode).
		Int("tail_events", bs.TailEvents).Dur("tail", bs.Tail).Msg("journal booted")
	return st, nil
}

// BootStats says what Boot read and where its time went.
type BootStats struct {
	Last           uint64        // the stream's last sequence, the fence
	Lookup         time.Duration // reading Last
	SnapshotSeq    uint64        // the sequence of the snapshot used; 0 for none
	SnapshotBytes  int           // its stored (compressed) size
	SnapshotGet    time.Duration // reading its head and chunks from the bucket
	SnapshotDecode time.Duration // checking, decompressing and decoding it
	TailEvents     int           // events folded after the snapshot
	Tail           time.Duration // reading and folding them
}

// BootStats returns the figures of Boot; they are zero before Boot
// returns.
func (j *Journal) BootStats() BootStats {
	if !j.booted.Load() {
		return BootStats{}
	}
	return j.bootStats
}

// streamLast returns the stream's last sequence (0 when empty). It asks the
// stream leader, so on a cluster the answer is never stale.
func (j *Journal) streamLast(ctx context.Context) (uint64, error) {
	info, err := j.evt.Info(ctx)
	if err != nil {
		return 0, fmt.Errorf("event stream info: %w", err)
	}
	return info.State.LastSeq, nil
}

// Append makes evs durable as one atomic batch, after every event appended
// before it, and returns them with Seq set. Events of concurrent Appends go
// out together in one batch; the events of one call stay contiguous and in
// order. An event id is never stored twice: a repeat of a recent Append
// (same ids) returns the sequences of the first, a single event already in
// the journal returns its sequence, and an older batch fails with
// events.ErrConflict. If ctx ends after the events were handed to the
// writer, Append returns ctx's error and the events may still become
// durable; appending the same events again tells which.
//
// Append fails with ErrNotBooted before Boot, ErrClosed after Close, and
// ErrFenced (wrapped) once another writer has appended to the stream.
// Invalid events fail with events.ErrInvalid and nothing is written.
func (j *Journal) Append(ctx context.Context, evs ...events.Event) ([]events.Event, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	if len(evs) > j.cfg.MaxBatch {
		return nil, fmt.Errorf("%w: append of %d events, more than the batch limit of %d", events.ErrInvalid, len(evs), j.cfg.MaxBatch)
	}
	if err := j.usable(); err != nil {
		return nil, err
	}
	r := &request{ctx: ctx, evs: make([]events.Event, len(evs)), wire: make([]wire, len(evs)), done: make(chan error, 1)}
	for i := range evs {
		r.evs[i] = evs[i]
		w, err := j.encode(&r.evs[i])
		if err != nil {
			return nil, err
		}
		r.wire[i] = w
	}
	select {
	case j.queue <- r:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-j.ctx.Done():
		return nil, ErrClosed
	}
	var err error
	select {
	case err = <-r.done:
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-j.exited: // the writer answers what it took before it exits
		select {
		case err = <-r.done:
		default:
			err = ErrClosed
		}
	}
	if err != nil {
		return nil, err
	}
	return r.evs, nil
}

func (j *Journal) usable() error {
	switch {
	case j.ctx.Err() != nil:
		return ErrClosed
	case !j.booted.Load():
		return ErrNotBooted
	}
	return j.Err()
}

// Err returns the reason the journal refuses appends, or nil.
func (j *Journal) Err() error {
	j.failMu.Lock()
	defer j.failMu.Unlock()
	return j.failed
}

func (j *Journal) fail(err error) {
	j.failMu.Lock()
	defer j.failMu.Unlock()
	if j.failed == nil {
		j.failed = err
		close(j.failedCh)
		j.log.Error().Err(err).Msg("journal refuses further appends")
	}
}

// Failed returns a channel that is closed once the journal refuses every
// further append (it was fenced by another writer); Err then says why.
func (j *Journal) Failed() <-chan struct{} { return j.failedCh }

// encode checks ev and builds its journal message.
func (j *Journal) encode(ev *events.Event) (wire, error) {
	bad := func(format string, a ...any) (wire, error) {
		return wire{}, fmt.Errorf("%w: event %q: %s", events.ErrInvalid, ev.ID, fmt.Sprintf(format, a...))
	}
	if ev.ID == "" || len(ev.ID) > 128 || strings.ContainsFunc(ev.ID, func(r rune) bool { return r <= ' ' || r > '~' }) {
		return bad("id must be 1 to 128 printable ASCII characters")
	}
	kind := ev.Kind()
	if kind == "" {
		return bad("unknown type %q", ev.Type)
	}
	if !validSubjectPart(ev.Subject) {
		return bad("subject %q cannot be part of a NATS subject", ev.Subject)
	}
	data, err := ev.Marshal()
	if err != nil {
		return bad("encoding: %v", err)
	}
	return wire{subject: j.cfg.Subjects.Event(kind, ev.Subject), id: ev.ID, command: ev.Command, data: data}, nil
}

// validSubjectPart reports whether s can end a NATS subject: no wildcards,
// no white space and no empty tokens.
func validSubjectPart(s string) bool {
	if s == "" || strings.ContainsAny(s, "*> \t\r\n") {
		return false
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return false
		}
	}
	return true
}
