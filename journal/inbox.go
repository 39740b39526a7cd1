package journal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"

	"github.com/berthhq/berth/events"
)

// InboxConsumer is the durable consumer of the command stream.
const InboxConsumer = "agent"

// Inbox is the node's durable command inbox: a WorkQueue stream read by
// the durable consumer InboxConsumer with explicit acknowledgement. A
// command stays in the stream until it is acknowledged or terminated; one
// left unacknowledged for Config.InboxAckWait is delivered again, at most
// Config.InboxMaxDeliver times in all.
type Inbox struct {
	cons jetstream.Consumer
	base string // "<prefix>.cmd.<node>.": what precedes the verb in a subject
	log  zerolog.Logger
}

// Inbox creates or updates the inbox's durable consumer.
func (j *Journal) Inbox(ctx context.Context) (*Inbox, error) {
	cons, err := j.js.CreateOrUpdateConsumer(ctx, j.cfg.Subjects.CommandStream(), jetstream.ConsumerConfig{
		Durable:       InboxConsumer,
		Description:   "berth agent of node " + j.cfg.Subjects.Node,
		DeliverPolicy: jetstream.DeliverAllPolicy,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       j.cfg.InboxAckWait,
		MaxDeliver:    j.cfg.InboxMaxDeliver,
		MaxAckPending: 1000,
	})
	if err != nil {
		return nil, fmt.Errorf("command inbox: %w", err)
	}
	return &Inbox{cons: cons, base: strings.TrimSuffix(j.cfg.Subjects.Commands(), ">"), log: j.log}, nil
}

// InboxMsg is one delivered command.
type InboxMsg struct {
	Subject   string
	Verb      string // Subject after "<prefix>.cmd.<node>.", such as "run" or "network.configure"
	ID        string // Nats-Msg-Id header: the command id the sender deduplicates on
	ReplyTo   string // events.HeaderReplyTo header; "" when no reply is wanted
	Data      []byte
	Seq       uint64 // stream sequence
	Delivered uint64 // 1 on the first delivery

	msg jetstream.Msg
}

// Ack removes the command from the inbox.
func (m *InboxMsg) Ack() error { return m.msg.Ack() }

// Term removes the command from the inbox without executing it; reason,
// when not empty, is recorded in the server's advisory.
func (m *InboxMsg) Term(reason string) error {
	if reason == "" {
		return m.msg.Term()
	}
	return m.msg.TermWithReason(reason)
}

// InProgress restarts the redelivery clock of a command still being
// executed.
func (m *InboxMsg) InProgress() error { return m.msg.InProgress() }

// Inbox pulls: each pull asks for up to inboxPullBatch commands and lasts
// at most inboxPullExpiry. Commands are handed to the caller as they
// arrive, so a pull that is still open delays nothing.
//
// The inbox pulls with Fetch rather than a Consume subscription: a pull
// that is answered or expires is simply followed by the next one, with no
// heartbeats to miss. nats.go's Consume with small buffers lost track of
// its pulls when its callback was slow and then waited two heartbeats
// (seconds) before pulling again, which showed as stalls of whole seconds
// in the command latency under load.
const (
	inboxPullBatch  = 16
	inboxPullExpiry = 2 * time.Second
)

// Consume calls fn with each command, one at a time, in stream order, on
// the calling goroutine, until ctx ends; then it gives back (Nak) the
// commands it fetched but did not hand to fn and returns nil. It fails only
// if a pull does (the connection was closed or the consumer deleted). fn
// decides when each message is acknowledged, possibly after Consume has
// returned.
func (in *Inbox) Consume(ctx context.Context, fn func(*InboxMsg)) error {
	for ctx.Err() == nil {
		if err := in.pull(ctx, fn); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("command inbox: %w", err)
		}
	}
	return nil
}

// pull runs one pull request to its end.
func (in *Inbox) pull(ctx context.Context, fn func(*InboxMsg)) error {
	pctx, cancel := context.WithTimeout(ctx, inboxPullExpiry)
	defer cancel()
	batch, err := in.cons.Fetch(inboxPullBatch, jetstream.FetchContext(pctx))
	if err != nil {
		return err
	}
	for m := range batch.Messages() {
		if ctx.Err() != nil {
			_ = m.Nak()
			continue
		}
		fn(in.newInboxMsg(m))
	}
	if err := batch.Error(); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

func (in *Inbox) newInboxMsg(m jetstream.Msg) *InboxMsg {
	im := &InboxMsg{Subject: m.Subject(), Data: m.Data(), msg: m}
	im.Verb = strings.TrimPrefix(im.Subject, in.base)
	im.ID = m.Headers().Get(jetstream.MsgIDHeader)
	im.ReplyTo = m.Headers().Get(events.HeaderReplyTo)
	if md, err := m.Metadata(); err == nil {
		im.Seq, im.Delivered = md.Sequence.Stream, md.NumDelivered
	}
	return im
}
