package journal

import (
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthhq/berth/events"
)

// Replay calls fn with every event from sequence from to sequence to
// (both included), in stream order, with Seq set. to 0 means the stream's
// last sequence when Replay starts; a to beyond it is lowered to it. An
// event that does not decode stops Replay with an ErrCorrupt error naming
// its sequence; an error from fn stops it and is returned as is.
func (j *Journal) Replay(ctx context.Context, from, to uint64, fn func(*events.Event) error) error {
	return j.replay(ctx, from, to, false, func(ev *events.Event, _ any) error { return fn(ev) })
}

// replay is Replay; with fold set, it also decodes each event's data as
// events.DecodeData does and hands it to fn (nil when there is none), and
// fn must not keep the event after it returns: its memory is reused.
//
// Receiving, decoding and folding run on different goroutines: a reader
// receives messages in chunks, decoders decode the chunks in parallel, and
// the caller's goroutine calls fn for the chunks in stream order. Every
// goroutine ends before replay returns.
func (j *Journal) replay(ctx context.Context, from, to uint64, fold bool, fn func(*events.Event, any) error) error {
	last, err := j.streamLast(ctx)
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	from = max(from, 1)
	if to == 0 || to > last {
		to = last
	}
	if from > to {
		return nil
	}
	// No subject filter: the stream holds only this node's events, and a
	// filter would make the server match every message against it.
	oc, err := j.evt.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		DeliverPolicy: jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:   from,
	})
	if err != nil {
		return fmt.Errorf("replay: ordered consumer: %w", err)
	}
	it, err := oc.Messages()
	if err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	decoders := max(2, runtime.GOMAXPROCS(0))
	work := make(chan *chunk, decoders)
	ordered := make(chan *chunk, 2*decoders)
	// Folded chunks go back to the reader, when fn keeps no event. There
	// are never more chunks than the channels and the goroutines hold.
	var free chan *chunk
	if fold {
		free = make(chan *chunk, cap(work)+cap(ordered)+decoders+2)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(ordered)
		defer close(work)
		defer it.Stop()
		receive(ctx, it, to, work, ordered, free)
	})
	for range decoders {
		wg.Go(func() {
			in := new(interner)
			for c := range work {
				c.decode(in, fold)
			}
		})
	}
	defer wg.Wait()
	for c := range ordered {
		<-c.done
		for i := range c.evs {
			if err := fn(&c.evs[i], c.data[i]); err != nil {
				cancel()
				return err
			}
		}
		if c.err != nil {
			cancel()
			return c.err
		}
		select {
		case free <- c:
		default:
		}
	}
	return nil
}

// replayChunk is how many events make one chunk.
const replayChunk = 256

// A chunk is a run of consecutive messages, decoded by one decoder and then
// folded in stream order. Its fields are set by the decoder before it
// closes done, and read only after.
type chunk struct {
	msgs []jetstream.Msg
	seqs []uint64
	done chan struct{}

	evs  []events.Event // the events decoded, in order
	data []any          // their data, when the replay decodes it
	err  error          // why the events stop short of msgs, if they do
}

// receive reads messages from it up to sequence to and sends them in
// chunks, each to the decoders (work) and, after, to the fold (ordered). It
// takes the chunks from free while it has any. An error ends the reading
// with a last chunk carrying it.
func receive(ctx context.Context, it jetstream.MessagesContext, to uint64, work, ordered chan<- *chunk, free <-chan *chunk) {
	send := func(c *chunk) bool {
		for _, ch := range []chan<- *chunk{work, ordered} {
			select {
			case ch <- c:
			case <-ctx.Done():
				return false
			}
		}
		return true
	}
	fail := func(err error) {
		c := &chunk{err: fmt.Errorf("replay: %w", err), done: make(chan struct{})}
		close(c.done)
		select {
		case ordered <- c:
		case <-ctx.Done():
		}
	}
	c := newChunk(free)
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		var seq, pending uint64
		if err == nil {
			seq, pending, err = position(m)
		}
		if err != nil {
			if len(c.msgs) > 0 && !send(c) {
				return
			}
			fail(err)
			return
		}
		end := seq >= to || pending == 0
		if seq <= to {
			c.msgs = append(c.msgs, m)
			c.seqs = append(c.seqs, seq)
		}
		if len(c.msgs) == replayChunk || end {
			if !send(c) || end {
				return
			}
			c = newChunk(free)
		}
	}
}

// position returns the stream sequence of m, which a consumer delivered,
// and how many messages the consumer had pending after it, as m.Metadata
// reports them. Metadata, which parses every field of the reply subject
// into a new value, cost a tenth of a replay's own work; position reads the
// two it needs, and leaves any form it does not know to Metadata.
func position(m jetstream.Msg) (seq, pending uint64, err error) {
	if seq, pending, ok := ackPosition(m.Reply()); ok {
		return seq, pending, nil
	}
	md, err := m.Metadata()
	if err != nil {
		return 0, 0, err
	}
	return md.Sequence.Stream, md.NumPending, nil
}

// ackPosition reads the stream sequence and the pending count from the
// acknowledgement subject of a delivered message:
// $JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<time>.<pending>,
// or, from newer servers, with <domain>.<account hash> after $JS.ACK. and
// a token of their own at the end. ok is false for anything else.
func ackPosition(reply string) (seq, pending uint64, ok bool) {
	rest, ok := strings.CutPrefix(reply, "$JS.ACK.")
	if !ok {
		return 0, 0, false
	}
	switch n := strings.Count(rest, ".") + 1; {
	case n >= 9:
		_, rest, _ = strings.Cut(rest, ".") // domain
		_, rest, _ = strings.Cut(rest, ".") // account hash
	case n != 7:
		return 0, 0, false
	}
	var tok [7]string // stream, consumer, delivered, stream seq, consumer seq, time, pending
	for i := range tok {
		tok[i], rest, _ = strings.Cut(rest, ".")
	}
	seq, ok = decimal(tok[3])
	if !ok {
		return 0, 0, false
	}
	pending, ok = decimal(tok[6])
	return seq, pending, ok
}

// decimal parses a non-empty decimal number of at most 19 digits, which
// cannot overflow.
func decimal(s string) (n uint64, ok bool) {
	if len(s) == 0 || len(s) > 19 {
		return 0, false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + uint64(s[i]-'0')
	}
	return n, true
}

// newChunk returns an empty chunk, one from free when it has one.
func newChunk(free <-chan *chunk) *chunk {
	select {
	case c := <-free:
		clear(c.evs) // let go of what the last use held
		clear(c.data)
		*c = chunk{msgs: c.msgs[:0], seqs: c.seqs[:0], evs: c.evs[:0], data: c.data[:0], done: make(chan struct{})}
		return c
	default:
	}
	return &chunk{
		msgs: make([]jetstream.Msg, 0, replayChunk), seqs: make([]uint64, 0, replayChunk), done: make(chan struct{}),
		evs: make([]events.Event, 0, replayChunk), data: make([]any, 0, replayChunk),
	}
}

// decode decodes the chunk's messages, up to the first that does not
// decode, and closes done.
func (c *chunk) decode(in *interner, data bool) {
	defer close(c.done)
	for i, m := range c.msgs {
		ev, d, err := decodeEvent(m.Data(), in, data)
		if err != nil {
			c.err = fmt.Errorf("%w: event at sequence %d: %w", ErrCorrupt, c.seqs[i], err)
			break
		}
		ev.Seq = c.seqs[i]
		c.evs = append(c.evs, ev)
		c.data = append(c.data, d)
	}
	clear(c.msgs) // the events hold what they need of the messages' data
}

// StateAt folds the journal from the start (or from the latest snapshot,
// when it is not newer) up to sequence seq included. StateAt(ctx, 0) is the
// empty state; a seq beyond the end of the journal is events.ErrNotFound.
// An event the fold refuses fails with an ErrCorrupt error naming its
// sequence.
func (j *Journal) StateAt(ctx context.Context, seq uint64) (*events.State, error) {
	last, err := j.streamLast(ctx)
	if err != nil {
		return nil, fmt.Errorf("state at %d: %w", seq, err)
	}
	if seq > last {
		return nil, fmt.Errorf("%w: state at %d: the journal ends at sequence %d", events.ErrNotFound, seq, last)
	}
	st, err := j.stateAt(ctx, seq, nil)
	if err != nil {
		return nil, fmt.Errorf("state at %d: %w", seq, err)
	}
	return st, nil
}

// stateAt folds up to seq, recording where the time went in bs (when not
// nil).
func (j *Journal) stateAt(ctx context.Context, seq uint64, bs *BootStats) (*events.State, error) {
	if bs == nil {
		bs = new(BootStats)
	}
	st, err := j.loadSnapshot(ctx, seq, bs)
	if err != nil {
		return nil, err
	}
	if st == nil {
		st = events.NewState(j.cfg.Subjects.Node, j.cfg.Window)
	}
	start := time.Now()
	defer func() { bs.Tail = time.Since(start) }()
	err = j.replay(ctx, st.Seq+1, seq, true, func(ev *events.Event, data any) error {
		bs.TailEvents++
		if err := st.ApplyDecoded(ev, data); err != nil {
			return fmt.Errorf("%w: event at sequence %d (%s %s): %w", ErrCorrupt, ev.Seq, ev.Short(), ev.ID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}
