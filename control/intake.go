package control

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/berthhq/berth/events"
)

// acker settles one inbox message.
type acker interface {
	Ack() error
	Term(reason string) error
	InProgress() error
}

// message is one command message as the intake sees it.
type message struct {
	Verb      string // the subject after <prefix>.cmd.<node>., such as "network.configure"
	ID        string // Nats-Msg-Id
	ReplyTo   string // events.HeaderReplyTo
	Data      []byte
	Delivered uint64
	acker
}

// Intake retry pacing when the inbox fails.
const (
	minRetry = 100 * time.Millisecond
	maxRetry = 30 * time.Second
)

// runIntake consumes the inbox until ctx ends, starting again with backoff
// when the inbox fails.
func (s *Server) runIntake(ctx context.Context) {
	defer close(s.intakeDone)
	wait := minRetry
	for {
		err := s.opts.Inbox.Consume(ctx, s.consumer(ctx))
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			err = fmt.Errorf("inbox ended")
		}
		s.setIntakeErr(err)
		s.log.Error().Err(err).Dur("retry_in", wait).Msg("command inbox")
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		wait = min(wait*2, maxRetry)
	}
}

// take handles one message: it refuses bad input, or submits the command
// and starts a waiter for its reply. It blocks while MaxInFlight commands
// await replies, which holds back the inbox.
func (s *Server) take(ctx context.Context, m message) {
	s.setIntakeErr(nil)
	start := time.Now()
	cmd, err := s.admit(m)
	if err != nil {
		s.refuse(m, cmd, err, start)
		return
	}
	select {
	case s.slots <- struct{}{}:
	case <-ctx.Done():
		return // not submitted, not acked: the inbox delivers it again
	}
	log := s.log.With().Str("command", cmd.ID).Str("verb", cmd.Verb).Str("container", cmd.Container).Logger()
	if m.Delivered > 1 {
		log.Info().Uint64("delivered", m.Delivered).Msg("command delivered again")
	}
	ch := s.opts.Agent.Submit(cmd)
	s.waiters.Add(1)
	go s.await(m, cmd, ch, start)
}

// admit checks m against the node's limits, then decodes and checks it.
func (s *Server) admit(m message) (events.Command, error) {
	if s.opts.MaxCommandSize > 0 && len(m.Data) > s.opts.MaxCommandSize {
		return events.Command{}, fmt.Errorf("%w: command is %d bytes, more than this node's %d byte limit (berthd --max-command-size)", events.ErrInvalid, len(m.Data), s.opts.MaxCommandSize)
	}
	cmd, err := admit(s.subj.Prefix, m.Verb, m.ID, m.ReplyTo, m.Data)
	if err == nil {
		err = events.CheckMounts(cmd.Spec, s.opts.MountRoots)
	}
	return cmd, err
}

// admit decodes and checks a command message published under prefix. On
// error the returned command holds whatever could be decoded, and the error
// wraps events.ErrInvalid or events.ErrNotFound.
func admit(prefix, verb, msgID, replyTo string, data []byte) (events.Command, error) {
	if err := checkReplySubject(prefix, replyTo); err != nil {
		return events.Command{}, err
	}
	cmd, err := events.DecodeCommand(data, verb)
	if err != nil {
		return cmd, err
	}
	if msgID != cmd.ID {
		return cmd, fmt.Errorf("%w: id: %q differs from the message's Nats-Msg-Id %q", events.ErrInvalid, cmd.ID, msgID)
	}
	return cmd, nil
}

// checkReplySubject refuses reply subjects that are not plain subjects,
// those under "$" (JetStream and system APIs) and those under berth's own
// prefix, so that a command cannot make the agent publish into a journal, an
// inbox or an API.
func checkReplySubject(prefix, subj string) error {
	if subj == "" {
		return nil
	}
	bad := len(subj) > 512 || strings.HasPrefix(subj, "$") || strings.HasPrefix(subj, prefix+".") ||
		strings.HasPrefix(subj, ".") || strings.HasSuffix(subj, ".") || strings.Contains(subj, "..") ||
		strings.ContainsAny(subj, "*> \t\r\n\x00")
	if bad {
		return fmt.Errorf("%w: header %s: %q is not a subject a reply can be published on", events.ErrInvalid, events.HeaderReplyTo, subj)
	}
	return nil
}

// refuse answers a command that never reaches the agent and removes it from
// the inbox.
func (s *Server) refuse(m message, cmd events.Command, err error, start time.Time) {
	id := cmd.ID
	if id == "" {
		id = m.ID
	}
	r := events.NewReply(id, nil, err)
	s.log.Warn().Str("command", id).Str("verb", m.Verb).Int("code", r.Error.Code).Str("error", r.Error.Message).Msg("command refused")
	verb := m.Verb
	if !slices.Contains(events.Verbs, verb) {
		verb = "unknown" // the subject is the sender's: keep label values bounded
	}
	s.observe(verb, r, start)
	if checkReplySubject(s.subj.Prefix, m.ReplyTo) == nil {
		s.publishReply(m.ReplyTo, r)
	}
	if tErr := m.Term(r.Error.Message); tErr != nil {
		s.log.Error().Err(tErr).Str("command", id).Msg("command term")
	}
}

// await waits for the agent's reply to cmd, keeping the message in progress
// meanwhile, then publishes the reply and acknowledges the message.
func (s *Server) await(m message, cmd events.Command, ch <-chan events.Reply, start time.Time) {
	defer s.waiters.Done()
	defer func() { <-s.slots }()
	log := s.log.With().Str("command", cmd.ID).Logger()
	t := time.NewTicker(s.opts.ProgressInterval)
	defer t.Stop()
	for {
		select {
		case r, ok := <-ch:
			if !ok {
				log.Error().Msg("agent closed the reply channel without a reply; the command stays in the inbox")
				return
			}
			if r.Command == "" {
				r.Command = cmd.ID
			}
			// Log and count before replying: whoever has the reply finds both.
			logDone(log, cmd, r, start)
			s.observe(cmd.Verb, r, start)
			s.publishReply(m.ReplyTo, r)
			if err := m.Ack(); err != nil {
				log.Error().Err(err).Msg("command ack")
			}
			return
		case <-t.C:
			if err := m.InProgress(); err != nil {
				log.Warn().Err(err).Msg("command in progress")
			}
		case <-s.abort:
			log.Warn().Msg("stopping before the reply: the command stays in the inbox")
			return
		}
	}
}

// logDone logs a command answered, with the span name and fields of the
// seed runtime's traces (events.LogSpan and friends).
func logDone(log zerolog.Logger, cmd events.Command, r events.Reply, start time.Time) {
	ev := log.Info().Str(events.LogSpan, events.SpanName(cmd.Verb)).Str("verb", cmd.Verb).Dur("took", time.Since(start))
	if cmd.Container != "" {
		ev = ev.Str(events.LogContainer, cmd.Container)
	}
	switch {
	case cmd.Spec != nil:
		ev = ev.Str(events.LogImage, cmd.Spec.Image.Ref)
	case cmd.Image != nil && cmd.Image.Ref != "":
		ev = ev.Str(events.LogImage, cmd.Image.Ref)
	}
	code := events.CodeOK
	if r.Error != nil {
		code = r.Error.Code
		ev = ev.Str("error", r.Error.Message)
	}
	ev.Int("code", code).Msg("command answered")
}

// observe tells the observer, if any, of the reply r to a command of verb
// received at start.
func (s *Server) observe(verb string, r events.Reply, start time.Time) {
	if s.opts.Observer == nil {
		return
	}
	code := events.CodeOK
	if r.Error != nil {
		code = r.Error.Code
	}
	s.opts.Observer.ObserveCommand(verb, code, time.Since(start))
}

// publishReply publishes r on subj, if subj is set. A reply that cannot be
// published is logged: the command's outcome is in the journal either way.
func (s *Server) publishReply(subj string, r events.Reply) {
	if subj == "" {
		return
	}
	msg, err := replyMsg(subj, r)
	if err == nil {
		err = s.opts.Conn.PublishMsg(msg)
	}
	if err != nil {
		s.log.Error().Err(err).Str("command", r.Command).Str("reply_to", subj).Msg("command reply")
	}
}

// replyMsg encodes r with the micro error headers when it is an error.
func replyMsg(subj string, r events.Reply) (*nats.Msg, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("encoding reply: %w", err)
	}
	msg := nats.NewMsg(subj)
	msg.Data = b
	msg.Header.Set(events.HeaderCommand, r.Command)
	if !r.OK {
		code, text := events.CodeInternal, "reply without ok or error"
		if r.Error != nil {
			code, text = r.Error.Code, r.Error.Message
		}
		msg.Header.Set(micro.ErrorCodeHeader, strconv.Itoa(code))
		msg.Header.Set(micro.ErrorHeader, headerText(text))
	}
	return msg, nil
}

// headerText makes s fit a header value: one line, at most 1 KiB.
func headerText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	if len(s) > 1024 {
		s = strings.ToValidUTF8(s[:1021], "") + "..."
	}
	return s
}
