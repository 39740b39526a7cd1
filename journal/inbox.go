package journal

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
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

// inboxPullExpiry bounds each pull request of the inbox consumer. A pull
// whose messages and heartbeats stop arriving (the client missed them while
// the machine was saturated) is noticed after two heartbeats, half an expiry
// each; with nats.go's 30 s default, commands then waited up to 30 s.
const inboxPullExpiry = 2 * time.Second

// Consume calls fn with each command, one at a time, in stream order, on
// the calling goroutine, until ctx ends; then it stops its subscription,
// waits until the subscription has ended, and returns nil. It fails only if
// the subscription does (the connection was closed or the consumer
// deleted). fn decides when each message is acknowledged, possibly after
// Consume has returned.
func (in *Inbox) Consume(ctx context.Context, fn func(*InboxMsg)) error {
	msgs := make(chan jetstream.Msg)
	var lastErr atomic.Pointer[error]
	// One message at a time: a command fetched but not handed to fn when
	// ctx ends is given back at once (Nak) rather than after the ack wait.
	cc, err := in.cons.Consume(func(m jetstream.Msg) {
		select {
		case msgs <- m:
		case <-ctx.Done():
			_ = m.Nak()
		}
	}, jetstream.PullMaxMessages(1), jetstream.PullExpiry(inboxPullExpiry), jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
		lastErr.Store(&err)
		in.log.Warn().Err(err).Msg("command inbox")
	}))
	if err != nil {
		return fmt.Errorf("command inbox: %w", err)
	}
	closed := cc.Closed()
	defer func() {
		cc.Stop()
		<-closed
	}()
	for {
		select {
		case m := <-msgs:
			fn(in.newInboxMsg(m))
		case <-ctx.Done():
			return nil
		case <-closed:
			if err := lastErr.Load(); err != nil {
				return fmt.Errorf("command inbox: %w", *err)
			}
			return errors.New("command inbox: subscription ended")
		}
	}
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
