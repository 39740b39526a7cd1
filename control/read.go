package control

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthhq/berth/events"
)

// nodeStream is one of the node's streams opened for reading, with fail
// naming it in errors.
type nodeStream struct {
	jetstream.Stream
	fail func(error) error
}

// openStream opens stream name, described as what in errors ("event
// journal", "log stream"). A stream that does not exist is ErrNotFound.
func (c *Client) openStream(ctx context.Context, what, name string) (nodeStream, error) {
	fail := func(err error) error { return fmt.Errorf("%s %s: %w", what, name, err) }
	s, err := c.js.Stream(ctx, name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nodeStream{}, fmt.Errorf("%w: %w", events.ErrNotFound, fail(err))
	}
	if err != nil {
		return nodeStream{}, fail(err)
	}
	return nodeStream{Stream: s, fail: fail}, nil
}

// lastSeq returns the sequence of the last message on subjects stored at or
// after since, or 0 when there is none.
func (s nodeStream) lastSeq(ctx context.Context, subjects []string, since time.Time) (uint64, error) {
	var last uint64
	for _, subj := range subjects {
		m, err := s.GetLastMsgForSubject(ctx, subj)
		switch {
		case errors.Is(err, jetstream.ErrMsgNotFound):
		case err != nil:
			return 0, s.fail(fmt.Errorf("last message on %s: %w", subj, err))
		case !m.Time.Before(since):
			last = max(last, m.Sequence)
		}
	}
	return last, nil
}

// read calls fn with each message on subjects stored from since (the zero
// time: from the start), in stream order, through an ordered consumer it
// deletes when done (the server would keep an idle one for minutes). It
// returns nil when fn says stop, fn's error, or ctx's error when ctx ends.
func (s nodeStream) read(ctx context.Context, subjects []string, since time.Time,
	fn func(m jetstream.Msg, md *jetstream.MsgMetadata) (stop bool, err error)) error {
	cfg := jetstream.OrderedConsumerConfig{FilterSubjects: subjects, DeliverPolicy: jetstream.DeliverAllPolicy}
	if !since.IsZero() {
		cfg.DeliverPolicy, cfg.OptStartTime = jetstream.DeliverByStartTimePolicy, &since
	}
	cons, err := s.OrderedConsumer(ctx, cfg)
	if err != nil {
		return s.fail(err)
	}
	defer func() {
		if info := cons.CachedInfo(); info != nil {
			dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			_ = s.DeleteConsumer(dctx, info.Name)
			cancel()
		}
	}()
	it, err := cons.Messages()
	if err != nil {
		return s.fail(err)
	}
	defer it.Stop()
	for {
		m, err := it.Next(jetstream.NextContext(ctx))
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			return s.fail(err)
		}
		md, err := m.Metadata()
		if err != nil {
			return s.fail(err)
		}
		if stop, err := fn(m, md); stop || err != nil {
			return err
		}
	}
}
