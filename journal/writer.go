package journal

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/berthhq/berth/events"
)

// request is one Append waiting for the writer.
type request struct {
	ctx  context.Context // the caller's; a request whose caller left is not sent
	evs  []events.Event  // Seq is set by the writer before it answers
	wire []wire
	done chan error // buffered; receives exactly one answer
}

// wire is an event as it travels: subject, message id, command header and
// CloudEvents document.
type wire struct {
	subject, id, command string
	data                 []byte
}

// msg builds a fresh message for one publish attempt; batch headers set on
// an earlier attempt must not leak into a later one.
func (w wire) msg() *nats.Msg {
	h := nats.Header{jetstream.MsgIDHeader: []string{w.id}}
	if w.command != "" {
		h[events.HeaderCommand] = []string{w.command}
	}
	return &nats.Msg{Subject: w.subject, Header: h, Data: w.data}
}

// writer is the state owned by the writer goroutine: the sequences of the
// most recently written event ids, so that a retried Append is answered
// without a round trip.
type writer struct {
	seqs map[string]uint64
	ring []string // ids in seqs, oldest overwritten first
	next int
}

func newWriter(n int) writer {
	return writer{seqs: make(map[string]uint64, n), ring: make([]string, n)}
}

func (w *writer) remember(id string, seq uint64) {
	if old := w.ring[w.next]; old != "" {
		delete(w.seqs, old)
	}
	w.ring[w.next], w.seqs[id] = id, seq
	w.next = (w.next + 1) % len(w.ring)
}

// answer answers r from memory if its events were written recently,
// reporting whether it did.
func (w *writer) answer(r *request) bool {
	if _, ok := w.seqs[r.evs[0].ID]; !ok {
		return false
	}
	for i := range r.evs {
		seq, ok := w.seqs[r.evs[i].ID]
		if !ok {
			r.done <- fmt.Errorf("%w: append mixes event %s, already journaled, with new event %s", events.ErrInvalid, r.evs[0].ID, r.evs[i].ID)
			return true
		}
		r.evs[i].Seq = seq
	}
	r.done <- nil
	return true
}

// errDuplicate: a batch holds an event id the stream already has, and the
// fence still holds, so nothing of the batch was stored.
var errDuplicate = errors.New("event id already journaled")

// maxLinger bounds how long the writer waits for more Appends before it
// commits a batch.
const maxLinger = time.Millisecond

// gather is the batch the writer is filling. From its second event on it
// is streamed to the server as an atomic batch while it grows, so that the
// server stages the first events, which costs it about as much as
// committing them, while later Appends are still arriving. The newest
// message is held back to carry the commit.
type gather struct {
	live []*request // taken to be written, in order
	ws   []wire     // their events, in order
	n    int        // requests taken, written or answered at once

	bp   jetstreamext.BatchPublisher // nil until a second event joins
	held *nats.Msg                   // the newest event's message, not yet sent
	err  error                       // a send failed: the batch is sent afresh at commit
}

// run is the writer goroutine. It takes every Append queued while the
// previous batch was committed, up to MaxBatch events, and commits them as
// one batch. The callers it has just answered often append again at once;
// so that they join the next batch instead of the one after it, the writer
// waits for as many requests as the last batch had plus those that queued
// meanwhile, for at most a quarter of the last commit's duration (and
// maxLinger). It returns when Close is called.
func (j *Journal) run() {
	defer close(j.exited)
	var (
		next   *request // did not fit the previous batch
		want   int      // requests expected in the next batch
		linger time.Duration
	)
	for {
		if j.ctx.Err() != nil {
			if next != nil {
				next.done <- ErrClosed
			}
			j.drain()
			return
		}
		if next == nil {
			select {
			case next = <-j.queue:
			case <-j.ctx.Done():
				continue
			}
		}
		g := &gather{}
		j.take(g, next)
		next = nil
		var timer *time.Timer
	fill:
		for len(g.ws) < j.cfg.MaxBatch {
			var r *request
			select {
			case r = <-j.queue:
			default:
				if g.n >= want || linger == 0 {
					break fill
				}
				if timer == nil {
					timer = time.NewTimer(linger)
				}
				select {
				case r = <-j.queue:
				case <-timer.C:
					break fill
				case <-j.ctx.Done():
					break fill
				}
			}
			if len(g.ws)+len(r.evs) > j.cfg.MaxBatch {
				next = r
				break
			}
			j.take(g, r)
		}
		if timer != nil {
			timer.Stop()
		}
		start := time.Now()
		j.commit(g)
		linger = min(time.Since(start)/4, maxLinger)
		want = g.n + len(j.queue)
	}
}

func (j *Journal) drain() {
	for {
		select {
		case r := <-j.queue:
			r.done <- ErrClosed
		default:
			return
		}
	}
}

// take adds r to g, or answers it at once: when the journal cannot take
// it, its caller has left, or its events were written recently.
func (j *Journal) take(g *gather, r *request) {
	g.n++
	switch {
	case j.ctx.Err() != nil:
		r.done <- ErrClosed
	case j.Err() != nil:
		r.done <- j.Err()
	case r.ctx.Err() != nil:
		r.done <- r.ctx.Err()
	case j.w.answer(r):
	default:
		g.live = append(g.live, r)
		for _, w := range r.wire {
			j.send(g, w)
		}
	}
}

// send adds w to g and streams the message before it, the first one
// fenced on the journal's last sequence.
func (j *Journal) send(g *gather, w wire) {
	g.ws = append(g.ws, w)
	if len(g.ws) == 1 || g.err != nil {
		return // a lone event goes as a plain publish
	}
	if g.bp == nil {
		if g.bp, g.err = jetstreamext.NewBatchPublisher(j.js, j.flow()); g.err != nil {
			return
		}
		g.held = g.ws[0].msg()
	}
	var opts []jetstreamext.BatchMsgOpt
	if g.bp.Size() == 0 {
		opts = append(opts, jetstreamext.WithBatchExpectLastSequence(j.last.Load()))
	}
	if g.err = g.bp.AddMsg(g.held, opts...); g.err != nil {
		_ = g.bp.Discard()
		return
	}
	g.held = w.msg()
}

// flow is the flow control of the journal's batches: no acknowledgement
// before the commit's.
func (j *Journal) flow() jetstreamext.BatchFlowControl {
	return jetstreamext.BatchFlowControl{AckFirst: false, AckTimeout: j.cfg.AttemptTimeout}
}

// commit commits the events of g and answers every request in it.
func (j *Journal) commit(g *gather) {
	live := g.live
	if len(live) == 0 {
		return
	}
	if j.ctx.Err() != nil {
		if g.bp != nil {
			_ = g.bp.Discard()
		}
		for _, r := range live {
			r.done <- ErrClosed
		}
		return
	}
	ws := g.ws
	start := time.Now()
	first, old, err := j.publish(g)
	if j.cfg.OnCommit != nil {
		j.cfg.OnCommit(len(ws), time.Since(start))
	}
	switch {
	case errors.Is(err, errDuplicate) && len(live) > 1:
		// Find the culprit: commit each Append on its own.
		for _, r := range live {
			j.commit(&gather{live: []*request{r}, ws: r.wire, n: 1})
		}
		return
	case errors.Is(err, errDuplicate):
		err = fmt.Errorf("%w: an event of this append is already in the journal", events.ErrConflict)
	case errors.Is(err, ErrFenced):
		j.fail(err)
	}
	if err != nil {
		for _, r := range live {
			r.done <- err
		}
		return
	}
	seq := first
	for _, r := range live {
		for i := range r.evs {
			r.evs[i].Seq = seq
			j.w.remember(r.evs[i].ID, seq)
			seq++
		}
	}
	if !old {
		j.last.Store(seq - 1)
		if j.cfg.OnDurable != nil {
			all := make([]events.Event, 0, len(ws))
			for _, r := range live {
				all = append(all, r.evs...)
			}
			j.cfg.OnDurable(all)
		}
	}
	for _, r := range live {
		r.done <- nil
	}
}

// publish commits the events of g after the fence, retrying with the same
// message ids until the outcome is known; the first attempt commits the
// batch g streamed, if it streamed one whole. It returns the sequence of
// the first event; old reports a single event that was already in the
// journal.
func (j *Journal) publish(g *gather) (first uint64, old bool, err error) {
	ws := g.ws
	expected := j.last.Load()
	backoff := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		if j.ctx.Err() != nil {
			return 0, false, ErrClosed
		}
		if attempt == 1 && g.bp != nil && g.err == nil {
			first, err = j.commitStreamed(g)
		} else {
			first, old, err = j.attempt(ws, expected)
		}
		if err == nil {
			return first, old, nil
		}
		if j.ctx.Err() != nil {
			return 0, false, ErrClosed
		}
		switch code := apiCode(err); {
		case code == jetstream.JSErrCodeStreamWrongLastSequence ||
			code == jetstream.JSErrCodeStreamWrongLastSequenceConstant ||
			code == jetstreamext.JSErrCodeBatchPublishDuplicateMsgID:
			// Either another writer moved the stream, or an earlier attempt
			// of ours was stored after all.
			stored, rerr := j.resolve(ws, expected)
			switch {
			case rerr == nil && stored:
				return expected + 1, false, nil
			case rerr == nil && code == jetstreamext.JSErrCodeBatchPublishDuplicateMsgID:
				return 0, false, errDuplicate
			case errors.Is(rerr, ErrFenced):
				return 0, false, rerr
			case rerr != nil:
				err = rerr
			}
		case !transient(err, code):
			return 0, false, fmt.Errorf("journal append: %w", err)
		}
		j.log.Warn().Err(err).Int("attempt", attempt).Int("events", len(ws)).Msg("journal append not confirmed; retrying")
		t := time.NewTimer(backoff)
		select {
		case <-t.C:
		case <-j.ctx.Done():
			t.Stop()
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// commitStreamed commits the batch g has streamed with its held message.
func (j *Journal) commitStreamed(g *gather) (first uint64, err error) {
	ctx, cancel := context.WithTimeout(j.ctx, j.cfg.AttemptTimeout)
	defer cancel()
	ack, err := g.bp.CommitMsg(ctx, g.held)
	if err != nil {
		return 0, err
	}
	return ack.Sequence - uint64(len(g.ws)) + 1, nil
}

// attempt publishes ws once, with the fence on the first message: as a
// plain publish when there is one event, else as an atomic batch.
//
// The fence is the stream's last sequence (Nats-Expected-Last-Sequence).
// The stream holds exactly the subjects <prefix>.evt.<node>.>, so this is
// the last sequence of that wildcard, but the server checks it in constant
// time; an expectation on the wildcard subject makes it match every
// subject the journal ever had (each entity and command id is one), which
// slows every append as the journal grows.
func (j *Journal) attempt(ws []wire, expected uint64) (first uint64, old bool, err error) {
	ctx, cancel := context.WithTimeout(j.ctx, j.cfg.AttemptTimeout)
	defer cancel()
	if len(ws) == 1 {
		ack, err := j.js.PublishMsg(ctx, ws[0].msg(), jetstream.WithExpectLastSequence(expected))
		if err != nil {
			return 0, false, err
		}
		// A duplicate is either our own earlier attempt (a cluster checks
		// ids before the fence) or an event stored long ago.
		return ack.Sequence, ack.Duplicate && ack.Sequence != expected+1, nil
	}
	bp, err := jetstreamext.NewBatchPublisher(j.js, j.flow())
	if err != nil {
		return 0, false, err
	}
	for i, w := range ws[:len(ws)-1] {
		var opts []jetstreamext.BatchMsgOpt
		if i == 0 {
			opts = append(opts, jetstreamext.WithBatchExpectLastSequence(expected))
		}
		if err := bp.AddMsg(w.msg(), opts...); err != nil {
			_ = bp.Discard()
			return 0, false, err
		}
	}
	ack, err := bp.CommitMsg(ctx, ws[len(ws)-1].msg())
	if err != nil {
		return 0, false, err
	}
	return ack.Sequence - uint64(len(ws)) + 1, false, nil
}

// resolve finds out after a conflict whether ws was stored by an earlier
// attempt (the stream ends with it), was not stored (the stream still ends
// at expected), or the stream was moved by another writer (ErrFenced).
func (j *Journal) resolve(ws []wire, expected uint64) (stored bool, err error) {
	ctx, cancel := context.WithTimeout(j.ctx, j.cfg.AttemptTimeout)
	defer cancel()
	last, err := j.streamLast(ctx)
	if err != nil {
		return false, err
	}
	switch last {
	case expected:
		return false, nil
	case expected + uint64(len(ws)):
		m, err := j.evt.GetMsg(ctx, last)
		if err != nil {
			return false, fmt.Errorf("event %d: %w", last, err)
		}
		if m.Header.Get(jetstream.MsgIDHeader) == ws[len(ws)-1].id {
			return true, nil
		}
	}
	return false, fmt.Errorf("%w: the journal was expected to end at sequence %d and ends at %d", ErrFenced, expected, last)
}

func apiCode(err error) jetstream.ErrorCode {
	var ae *jetstream.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode
	}
	return 0
}

// transient reports whether an append error leaves the outcome unknown or
// may pass, so that the same messages are sent again.
func transient(err error, code jetstream.ErrorCode) bool {
	switch code {
	case jetstreamext.JSErrCodeBatchPublishIncomplete,
		jetstreamext.JSErrCodeAtomicPublishTooManyInflight:
		return true
	}
	return errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, nats.ErrNoResponders) ||
		errors.Is(err, jetstream.ErrNoStreamResponse) ||
		errors.Is(err, nats.ErrDisconnected) ||
		errors.Is(err, nats.ErrConnectionReconnecting)
}
