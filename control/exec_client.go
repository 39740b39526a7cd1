package control

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/berthhq/berth/events"
)

// ErrExecLost reports that output frames of an exec session did not arrive
// (core NATS drops messages for a client that falls too far behind).
var ErrExecLost = errors.New("exec output lost")

// Exec flow-control defaults: the output a client lets the agent send
// ahead of what it has written, and how often it repeats its credit as a
// heartbeat.
const (
	ExecWindowBytes  = 1 << 20
	ExecWindowFrames = 256
	ExecHeartbeat    = time.Second
)

// ConsoleSize is a console's width and height in characters.
type ConsoleSize struct{ Width, Height uint16 }

// ExecStreams connects an exec session to the caller.
type ExecStreams struct {
	// Stdin, when the spec asks for stdin, is copied to the process; at its
	// EOF (at once when Stdin is nil) the process's stdin is closed. Exec does not wait for a Read in
	// progress when the process has ended: that goroutine ends when the Read
	// returns.
	Stdin io.Reader
	// Stdout and Stderr receive the process's output as it arrives (nil
	// discards it). A slow writer slows the process down: the agent sends
	// only what the client has room for. With TTY, all output goes to Stdout.
	Stdout, Stderr io.Writer
	// Resize, when not nil, carries console sizes to apply while the
	// process runs (TTY only).
	Resize <-chan ConsoleSize
}

// Exec runs spec in the running container and streams its stdio until it
// exits, then returns how it ended (its exit code is in the result, not in
// the error). The exec command goes through the node's inbox like any
// other command: an error reply (404 unknown container, 409 not running or
// too many exec sessions or exec turned off, 400 bad spec) is returned as
// its *events.ReplyError. When ctx ends first, Exec asks the agent to kill
// the process and returns ctx.Err(); a client that vanishes without asking
// has its process killed after the agent's idle timeout.
func (c *Client) Exec(ctx context.Context, container string, spec events.ExecSpec, st ExecStreams) (events.ExecExit, error) {
	id := events.NewID()
	subj := func(ch string) string { return c.subj.Exec(id, ch) }
	msgs := make(chan *nats.Msg, 2*ExecWindowFrames+8)
	for _, ch := range []string{events.ExecOut, events.ExecErr, events.ExecExitCh} {
		sub, err := c.nc.ChanSubscribe(subj(ch), msgs)
		if err != nil {
			return events.ExecExit{}, fmt.Errorf("exec %s subscription: %w", ch, err)
		}
		defer func() { _ = sub.Unsubscribe() }()
	}
	sctx, cancel := c.withTimeout(ctx)
	_, err := c.Do(sctx, events.Command{ID: id, Verb: events.VerbExec, Container: container, Exec: &spec})
	cancel()
	if err != nil {
		return events.ExecExit{}, err
	}
	x := &execClient{c: c, id: id, subj: subj, granted: credit{ExecWindowBytes, ExecWindowFrames}}
	// The first credit is a request: it tells that the session is there.
	if err := x.request(ctx, events.ExecCredit, x.creditFrame()); err != nil {
		return events.ExecExit{}, fmt.Errorf("exec %s: attaching: %w", id, err)
	}
	actx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer wg.Wait()
	defer stop()
	lost := make(chan error, 1)
	wg.Add(1)
	go func() { defer wg.Done(); lost <- x.heartbeat(actx) }()
	feedErr := make(chan error, 1)
	if spec.Stdin {
		in := st.Stdin
		if in == nil {
			in = strings.NewReader("") // stdin asked for, none given: at its end at once
		}
		go func() { feedErr <- x.feed(actx, in) }() // ends with its Read
	}
	if st.Resize != nil {
		wg.Add(1)
		go func() { defer wg.Done(); x.resize(actx, st.Resize) }()
	}
	// kill asks the agent to end the process; the session's end is not
	// awaited.
	kill := func() {
		f := events.ExecFrame{Kind: events.FrameKill}
		_ = c.nc.Publish(subj(events.ExecCredit), f.Encode())
	}
	for {
		select {
		case <-ctx.Done():
			kill()
			return events.ExecExit{}, ctx.Err()
		case err := <-lost:
			return events.ExecExit{}, fmt.Errorf("exec %s: %w", id, err)
		case err := <-feedErr:
			if err != nil && !errors.Is(err, context.Canceled) {
				kill()
				return events.ExecExit{}, fmt.Errorf("exec %s: stdin: %w", id, err)
			}
		case m := <-msgs:
			exit, done, err := x.receive(m, st)
			if err != nil || done {
				if err != nil {
					kill()
				}
				return exit, err
			}
		}
	}
}

type credit struct{ bytes, frames uint64 }

// execClient is the client side of one session. Lock: mu guards granted.
type execClient struct {
	c    *Client
	id   string
	subj func(channel string) string

	mu       sync.Mutex
	granted  credit // cumulative limits sent to the agent
	received credit // output written to the caller
}

func (x *execClient) creditFrame() events.ExecFrame {
	x.mu.Lock()
	defer x.mu.Unlock()
	return events.ExecFrame{Kind: events.FrameCredit, Bytes: x.granted.bytes, Frames: x.granted.frames}
}

// request sends a frame on channel and waits for the agent's status.
func (x *execClient) request(ctx context.Context, channel string, f events.ExecFrame) error {
	rctx, cancel := x.c.withTimeout(ctx)
	defer cancel()
	m, err := x.c.nc.RequestWithContext(rctx, x.subj(channel), f.Encode())
	if errors.Is(err, nats.ErrNoResponders) {
		return fmt.Errorf("%w: exec %s: no agent serves exec on node %s", events.ErrUnavailable, x.id, x.c.subj.Node)
	}
	if err != nil {
		return err
	}
	st, err := events.DecodeExecFrame(m.Data)
	if err != nil {
		return err
	}
	return st.Err()
}

// receive handles one message from the agent: output is written and
// credited, the exit frame ends the session.
func (x *execClient) receive(m *nats.Msg, st ExecStreams) (events.ExecExit, bool, error) {
	f, err := events.DecodeExecFrame(m.Data)
	if err != nil {
		return events.ExecExit{}, true, fmt.Errorf("exec %s: %w", x.id, err)
	}
	if f.Kind == events.FrameExit {
		if f.Exit.Frames != x.received.frames {
			return *f.Exit, true, fmt.Errorf("%w: exec %s: the agent sent %d output frames, %d arrived", ErrExecLost, x.id, f.Exit.Frames, x.received.frames)
		}
		return *f.Exit, true, nil
	}
	if f.Kind != events.FrameData {
		return events.ExecExit{}, true, fmt.Errorf("%w: exec %s: unexpected %q frame on %s", events.ErrInvalid, x.id, byte(f.Kind), m.Subject)
	}
	if f.Seq != x.received.frames+1 {
		return events.ExecExit{}, true, fmt.Errorf("%w: exec %s: output frame %d arrived after frame %d", ErrExecLost, x.id, f.Seq, x.received.frames)
	}
	w := st.Stdout
	if m.Subject == x.subj(events.ExecErr) {
		w = st.Stderr
	}
	if w != nil {
		if _, err := w.Write(f.Data); err != nil {
			return events.ExecExit{}, true, fmt.Errorf("exec %s: writing output: %w", x.id, err)
		}
	}
	x.mu.Lock()
	x.received.frames++
	x.received.bytes += uint64(len(f.Data))
	// Grant more once half the window is used.
	regrant := x.granted.bytes-x.received.bytes < ExecWindowBytes/2 || x.granted.frames-x.received.frames < ExecWindowFrames/2
	if regrant {
		x.granted = credit{x.received.bytes + ExecWindowBytes, x.received.frames + ExecWindowFrames}
	}
	x.mu.Unlock()
	if regrant {
		cf := x.creditFrame()
		_ = x.c.nc.Publish(x.subj(events.ExecCredit), cf.Encode())
	}
	return events.ExecExit{}, false, nil
}

// heartbeat repeats the credit so the agent knows the client is there,
// until ctx ends or the connection is closed.
func (x *execClient) heartbeat(ctx context.Context) error {
	t := time.NewTicker(ExecHeartbeat)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			f := x.creditFrame()
			if err := x.c.nc.Publish(x.subj(events.ExecCredit), f.Encode()); errors.Is(err, nats.ErrConnectionClosed) {
				return fmt.Errorf("connection to NATS: %w", err)
			}
		}
	}
}

// feed copies r to the process's stdin, one acknowledged frame at a time.
func (x *execClient) feed(ctx context.Context, r io.Reader) error {
	buf := make([]byte, events.ExecChunk)
	var seq uint64
	for {
		n, rerr := r.Read(buf)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if n > 0 {
			seq++
			if err := x.request(ctx, events.ExecIn, events.ExecFrame{Kind: events.FrameData, Seq: seq, Data: buf[:n]}); err != nil {
				if errors.Is(err, events.ErrConflict) || errors.Is(err, events.ErrNotFound) {
					return nil // the process stopped reading or ended: not the client's fault
				}
				return err
			}
		}
		if errors.Is(rerr, io.EOF) {
			seq++
			err := x.request(ctx, events.ExecIn, events.ExecFrame{Kind: events.FrameEOF, Seq: seq})
			if errors.Is(err, events.ErrConflict) || errors.Is(err, events.ErrNotFound) {
				return nil
			}
			return err
		}
		if rerr != nil {
			return rerr
		}
	}
}

// resize applies console sizes as they come.
func (x *execClient) resize(ctx context.Context, sizes <-chan ConsoleSize) {
	for {
		select {
		case <-ctx.Done():
			return
		case sz, ok := <-sizes:
			if !ok {
				return
			}
			if sz.Width == 0 || sz.Height == 0 {
				continue
			}
			// A failed resize leaves the console as it was; the session goes on.
			_ = x.request(ctx, events.ExecResize, events.ExecFrame{Kind: events.FrameResize, Width: sz.Width, Height: sz.Height})
		}
	}
}

// ExecResize sets the console size of a running exec session. It fails
// with events.ErrNotFound for an exec id the node does not run and
// events.ErrConflict for a session without a console.
func (c *Client) ExecResize(ctx context.Context, execID string, size ConsoleSize) error {
	if err := events.ValidateCommandID(execID); err != nil {
		return fmt.Errorf("exec id: %w", err)
	}
	x := &execClient{c: c, id: execID, subj: func(ch string) string { return c.subj.Exec(execID, ch) }}
	return x.request(ctx, events.ExecResize, events.ExecFrame{Kind: events.FrameResize, Width: size.Width, Height: size.Height})
}
