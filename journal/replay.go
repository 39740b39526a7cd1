package journal

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthhq/berth/events"
)

// Replay calls fn with every event from sequence from to sequence to
// (both included), in stream order, with Seq set. to 0 means the stream's
// last sequence when Replay starts; a to beyond it is lowered to it. An
// event that does not decode stops Replay with an ErrCorrupt error naming
// its sequence; an error from fn stops it and is returned as is.
func (j *Journal) Replay(ctx context.Context, from, to uint64, fn func(*events.Event) error) error {
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
	// A reader goroutine receives and decodes events ahead of fn, so that
	// decoding and folding run on two cores. It ends before Replay returns.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	chunks := make(chan []events.Event, 4)
	done := make(chan struct{})
	var readErr error
	go func() {
		defer close(done)
		defer it.Stop()
		defer close(chunks)
		readErr = decodeRange(ctx, it, to, chunks)
	}()
	var fnErr error
fold:
	for evs := range chunks {
		for i := range evs {
			if fnErr = fn(&evs[i]); fnErr != nil {
				break fold
			}
		}
	}
	cancel()
	<-done
	if fnErr != nil {
		return fnErr
	}
	return readErr
}

// replayChunk is how many decoded events the reader hands over at a time.
const replayChunk = 256

// decodeRange receives events from it up to sequence to and sends them,
// decoded, in chunks.
func decodeRange(ctx context.Context, it jetstream.MessagesContext, to uint64, chunks chan<- []events.Event) error {
	evs := make([]events.Event, 0, replayChunk)
	in := interner{}
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		md, err := m.Metadata()
		if err != nil {
			return fmt.Errorf("replay: %w", err)
		}
		seq := md.Sequence.Stream
		end := seq >= to || md.NumPending == 0
		if seq <= to {
			ev, err := decodeEvent(m.Data(), in)
			if err != nil {
				return fmt.Errorf("%w: event at sequence %d: %w", ErrCorrupt, seq, err)
			}
			ev.Seq = seq
			evs = append(evs, ev)
		}
		if len(evs) == replayChunk || end {
			select {
			case chunks <- evs:
			case <-ctx.Done():
				return ctx.Err()
			}
			evs = make([]events.Event, 0, replayChunk)
		}
		if end {
			return nil
		}
	}
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
	st, err := j.stateAt(ctx, seq)
	if err != nil {
		return nil, fmt.Errorf("state at %d: %w", seq, err)
	}
	return st, nil
}

func (j *Journal) stateAt(ctx context.Context, seq uint64) (*events.State, error) {
	st, err := j.loadSnapshot(ctx, seq)
	if err != nil {
		return nil, err
	}
	if st == nil {
		st = events.NewState(j.cfg.Subjects.Node, j.cfg.Window)
	}
	err = j.Replay(ctx, st.Seq+1, seq, func(ev *events.Event) error {
		if err := st.Apply(ev); err != nil {
			return fmt.Errorf("%w: event at sequence %d (%s %s): %w", ErrCorrupt, ev.Seq, ev.Short(), ev.ID, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return st, nil
}
