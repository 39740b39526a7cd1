package journal

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthhq/berth/events"
)

// sendCommand publishes a command as a control plane does: through
// JetStream, with its id as Nats-Msg-Id and a reply subject header.
func sendCommand(t *testing.T, js jetstream.JetStream, verb, id string) {
	t.Helper()
	m := nats.NewMsg(events.NewSubjects("", node).Command(verb))
	m.Header.Set(events.HeaderReplyTo, "_INBOX.reply."+id)
	m.Data = []byte(fmt.Sprintf(`{"id":%q,"verb":%q,"container":"c1"}`, id, verb))
	if _, err := js.PublishMsg(testCtx(t), m, jetstream.WithMsgID(id)); err != nil {
		t.Fatal(err)
	}
}

// consume runs in.Consume until stop is called and returns its deliveries.
func consume(t *testing.T, in *Inbox, fn func(*InboxMsg)) (deliveries <-chan *InboxMsg, stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(testCtx(t))
	ch := make(chan *InboxMsg, 100)
	errc := make(chan error, 1)
	go func() {
		errc <- in.Consume(ctx, func(m *InboxMsg) {
			fn(m)
			ch <- m
		})
	}()
	return ch, func() {
		cancel()
		if err := <-errc; err != nil {
			t.Errorf("Consume: %v", err)
		}
	}
}

func next(t *testing.T, ch <-chan *InboxMsg) *InboxMsg {
	t.Helper()
	select {
	case m := <-ch:
		return m
	case <-testCtx(t).Done():
		t.Fatal("no command delivered")
		return nil
	}
}

func inboxLen(t *testing.T, j *Journal) uint64 {
	t.Helper()
	st, err := j.js.Stream(testCtx(t), j.cfg.Subjects.CommandStream())
	if err != nil {
		t.Fatal(err)
	}
	return st.CachedInfo().State.Msgs
}

func TestInboxDeliversInOrderAndAckRemoves(t *testing.T) {
	s := startServer(t, "")
	j := open(t, s, Config{})
	js := rawJS(t, s)
	verbs := []string{events.VerbCreate, events.VerbStart, events.VerbStop, events.VerbRemove}
	for i, v := range verbs {
		sendCommand(t, js, v, fmt.Sprintf("cmd-%d", i))
	}
	sendCommand(t, js, events.VerbCreate, "cmd-0") // a resend, deduplicated by the stream
	if n := inboxLen(t, j); n != uint64(len(verbs)) {
		t.Fatalf("inbox holds %d commands, want %d", n, len(verbs))
	}
	in, err := j.Inbox(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	got, stop := consume(t, in, func(m *InboxMsg) {
		if err := m.Ack(); err != nil {
			t.Error(err)
		}
	})
	defer stop()
	for i, v := range verbs {
		m := next(t, got)
		id := fmt.Sprintf("cmd-%d", i)
		if m.Verb != v || m.ID != id || m.ReplyTo != "_INBOX.reply."+id || m.Subject != "berth.cmd.n1."+v ||
			m.Delivered != 1 || m.Seq != uint64(i+1) {
			t.Fatalf("delivery %d = %+v, want %s %s at seq %d", i, m, v, id, i+1)
		}
		if want := fmt.Sprintf(`{"id":%q,"verb":%q,"container":"c1"}`, id, v); string(m.Data) != want {
			t.Fatalf("delivery %d carries %s, want %s", i, m.Data, want)
		}
	}
	// Acks are acknowledged asynchronously; the stream empties.
	waitFor(t, "acked commands to leave the inbox", func() bool { return inboxLen(t, j) == 0 })
}

func TestInboxTermRemovesAndUnackedIsRedelivered(t *testing.T) {
	s := startServer(t, "")
	j := open(t, s, Config{InboxAckWait: 200 * time.Millisecond})
	js := rawJS(t, s)
	in, err := j.Inbox(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	got, stop := consume(t, in, func(m *InboxMsg) {
		var err error
		switch {
		case m.ID == "bad":
			err = m.Term("invalid input")
		case m.ID == "slow" && m.Delivered == 1:
			err = m.InProgress() // then nothing: the ack wait runs out
		default:
			err = m.Ack()
		}
		if err != nil {
			t.Error(err)
		}
	})
	defer stop()
	sendCommand(t, js, events.VerbCreate, "bad")
	if m := next(t, got); m.ID != "bad" {
		t.Fatalf("got %s, want bad", m.ID)
	}
	waitFor(t, "the terminated command to leave the inbox", func() bool { return inboxLen(t, j) == 0 })

	sendCommand(t, js, events.VerbStart, "slow")
	first := next(t, got)
	again := next(t, got)
	if first.ID != "slow" || again.ID != "slow" || again.Delivered != 2 || again.Seq != first.Seq {
		t.Fatalf("deliveries %+v then %+v, want slow delivered twice", first, again)
	}
	waitFor(t, "the acked command to leave the inbox", func() bool { return inboxLen(t, j) == 0 })
}

func TestInboxResumesAfterRestartOfConsumer(t *testing.T) {
	s := startServer(t, "")
	j := open(t, s, Config{})
	js := rawJS(t, s)
	in, err := j.Inbox(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	got, stop := consume(t, in, func(m *InboxMsg) { _ = m.Ack() })
	sendCommand(t, js, events.VerbCreate, "one")
	m := next(t, got)
	stop()
	if m.ID != "one" {
		t.Fatalf("got %s", m.ID)
	}
	// Sent while nothing consumes: kept, and delivered to the next consumer.
	sendCommand(t, js, events.VerbStart, "two")
	in2, err := open(t, s, Config{}).Inbox(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	got, stop = consume(t, in2, func(m *InboxMsg) { _ = m.Ack() })
	defer stop()
	// The stopped consumer's last pull request may still have been open on
	// the server and taken "two"; it gives such a command back at once
	// (Nak), so it arrives here promptly, possibly on its second delivery.
	if m := next(t, got); m.ID != "two" {
		t.Fatalf("after a restart got %+v, want two", m)
	}
}
