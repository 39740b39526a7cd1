package control

import (
	"context"

	"github.com/berthhq/berth/journal"
)

// Inbox is the node's durable command inbox. *journal.Inbox satisfies it.
type Inbox interface {
	// Consume calls fn for each message, one at a time and in order, until
	// ctx ends.
	Consume(ctx context.Context, fn func(*journal.InboxMsg)) error
}

// consumer adapts take to the inbox's callback.
func (s *Server) consumer(ctx context.Context) func(*journal.InboxMsg) {
	return func(m *journal.InboxMsg) {
		s.take(ctx, message{Verb: m.Verb, ID: m.ID, ReplyTo: m.ReplyTo, Data: m.Data, Delivered: m.Delivered, acker: m})
	}
}
