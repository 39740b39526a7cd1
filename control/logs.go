package control

import (
	"context"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/journal"
)

// LogsOptions selects the output [Client.Logs] delivers.
type LogsOptions struct {
	// Follow keeps delivering new lines until the context ends. Without it,
	// Logs stops after the last line stored when it was called.
	Follow bool
	// Tail, when positive, starts with only the last Tail lines (chunks of
	// long lines count as lines) stored when Logs was called.
	Tail int
	// Since skips lines stored before it.
	Since time.Time
	// Stdout and Stderr select the streams; neither set means both.
	Stdout, Stderr bool
}

// LogLine is one line of a container's output, or one chunk of a long line.
type LogLine struct {
	Seq    uint64    `json:"seq"`    // log stream sequence
	Time   time.Time `json:"time"`   // when the agent read it
	Stream string    `json:"stream"` // events.Stdout or events.Stderr
	// Data is the line without its line end.
	Data []byte `json:"data"`
	// Partial marks a chunk that does not end its line.
	Partial bool `json:"partial,omitempty"`
}

// Logs reads the container's output from the node's log stream and calls fn
// with each selected line in stream order, which is the order the agent
// read them in. It returns fn's first error. Without Follow it returns nil
// after the last line stored when it was called; with Follow it returns
// ctx's error when ctx ends.
//
// Tail reads the container's lines from Since (or the start) up to that
// last line and keeps only the last Tail of them, so its cost grows with
// the container's stored output, not with the stream's.
func (c *Client) Logs(ctx context.Context, container string, o LogsOptions, fn func(LogLine) error) error {
	if err := events.ValidateContainerID(container); err != nil {
		return fmt.Errorf("logs: %w", err)
	}
	if o.Tail < 0 {
		return fmt.Errorf("%w: logs: negative tail %d", events.ErrInvalid, o.Tail)
	}
	var subjects []string
	if o.Stdout || !o.Stderr {
		subjects = append(subjects, c.subj.Log(container, events.Stdout))
	}
	if o.Stderr || !o.Stdout {
		subjects = append(subjects, c.subj.Log(container, events.Stderr))
	}
	s, err := c.openStream(ctx, "log stream", c.subj.LogStream())
	if err != nil {
		return err
	}
	last, err := s.lastSeq(ctx, subjects, o.Since) // the last selected line stored now
	if err != nil {
		return err
	}
	if last == 0 && !o.Follow {
		return nil
	}
	var tail []LogLine // ring of the last Tail lines up to last
	emit := func(l LogLine) error {
		if o.Tail == 0 || l.Seq > last {
			return fn(l)
		}
		if len(tail) == o.Tail {
			tail = tail[1:]
		}
		tail = append(tail, l)
		if l.Seq < last {
			return nil
		}
		for _, t := range tail {
			if err := fn(t); err != nil {
				return err
			}
		}
		tail = nil
		return nil
	}
	return s.read(ctx, subjects, o.Since, func(m jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		l := LogLine{Seq: md.Sequence.Stream, Time: md.Timestamp, Stream: m.Headers().Get(journal.HeaderLogStream),
			Data: m.Data(), Partial: m.Headers().Get(journal.HeaderLogPartial) == "true"}
		if t, err := time.Parse(time.RFC3339Nano, m.Headers().Get(journal.HeaderLogTime)); err == nil {
			l.Time = t
		}
		if !o.Follow && l.Seq > last {
			return true, nil
		}
		if err := emit(l); err != nil {
			return true, err
		}
		return !o.Follow && l.Seq >= last, nil
	})
}
