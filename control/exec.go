package control

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/berthhq/berth/events"
)

// ExecProcess is what an exec session needs of a process;
// hcsdriver.Process satisfies it.
type ExecProcess interface {
	Stdio() (stdin io.WriteCloser, stdout, stderr io.ReadCloser, err error)
	ResizeConsole(ctx context.Context, width, height uint16) error
	CloseStdin(ctx context.Context) error
	Kill(ctx context.Context) error
	Wait(ctx context.Context) error
	ExitCode() (int, error)
	Close() error
}

// DefaultExecIdle is how long an exec session waits for word from its
// client (credit, stdin, resize) before it kills the process.
const DefaultExecIdle = 15 * time.Second

// ExecHub serves the stdio of the node's exec sessions over core NATS, on
// <prefix>.exec.<node>.<exec id>.<channel>. The client publishes in, resize
// and credit; the hub publishes out, err and exit.
//
// Output is sent only against credit: the client grants bytes and frames
// (cumulative limits), and a session reads the process's pipes only while
// it has credit, so a process that writes faster than its client reads
// blocks on its pipe and the agent holds at most one ExecChunk per stream.
// A client that sends nothing for the idle timeout (the client's heartbeat
// repeats its credit every second) is taken as gone: its process is killed,
// and the session ends with reason client_lost.
//
// The methods of ExecHub are safe for concurrent use.
type ExecHub struct {
	nc   *nats.Conn
	subj events.Subjects
	idle time.Duration
	log  zerolog.Logger
	ctx  context.Context // ended by Close
	stop context.CancelFunc

	mu       sync.Mutex
	sessions map[string]*execSession // guarded by mu
	closed   bool                    // guarded by mu
	subs     []*nats.Subscription
	wg       sync.WaitGroup // every session goroutine
}

// NewExecHub subscribes to the client channels of every exec session of
// the node. idle is the client timeout (DefaultExecIdle when 0).
func NewExecHub(nc *nats.Conn, subj events.Subjects, idle time.Duration, log zerolog.Logger) (*ExecHub, error) {
	if idle <= 0 {
		idle = DefaultExecIdle
	}
	h := &ExecHub{nc: nc, subj: subj, idle: idle, log: log.With().Str("component", "exec").Logger(), sessions: map[string]*execSession{}}
	h.ctx, h.stop = context.WithCancel(context.Background())
	for ch, handle := range map[string]nats.MsgHandler{events.ExecIn: h.onIn, events.ExecResize: h.onResize, events.ExecCredit: h.onCredit} {
		sub, err := nc.Subscribe(subj.Exec("*", ch), handle)
		if err != nil {
			h.Close(context.Background())
			return nil, fmt.Errorf("exec %s subscription: %w", ch, err)
		}
		h.subs = append(h.subs, sub)
	}
	if err := nc.Flush(); err != nil {
		h.Close(context.Background())
		return nil, fmt.Errorf("exec subscriptions: %w", err)
	}
	return h, nil
}

// Close stops taking client messages, kills the processes of the sessions
// still running (they end with reason agent_stopped) and waits until their
// sessions have ended or ctx ends.
func (h *ExecHub) Close(ctx context.Context) error {
	h.mu.Lock()
	h.closed = true
	live := make([]*execSession, 0, len(h.sessions))
	for _, s := range h.sessions {
		live = append(live, s)
	}
	h.mu.Unlock()
	for _, sub := range h.subs {
		_ = sub.Unsubscribe()
	}
	for _, s := range live {
		s.abandon(events.ReasonAgentStopped, "the agent stopped")
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); close(done) }()
	defer h.stop()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("exec sessions: %d still ending: %w", h.Sessions(), ctx.Err())
	}
}

// Serves reports whether exec session id is running.
func (h *ExecHub) Serves(id string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.sessions[id] != nil
}

// Sessions returns the number of sessions running.
func (h *ExecHub) Sessions() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.sessions)
}

// Attach serves the stdio of p as exec session id, tty telling whether p
// runs on a console (then it has no stderr). The session starts sending
// output at the client's first credit. The returned channel yields how the
// session ended, once, after its exit frame is published; by then p is
// closed. Attach fails with events.ErrConflict when id is in use and with
// events.ErrUnavailable once the hub is closed; p is then the caller's.
func (h *ExecHub) Attach(ctx context.Context, id string, p ExecProcess, tty bool) (<-chan events.ExecExit, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	switch {
	case h.closed:
		return nil, fmt.Errorf("%w: exec: the agent is stopping", events.ErrUnavailable)
	case h.sessions[id] != nil:
		return nil, fmt.Errorf("%w: exec %s is running", events.ErrConflict, id)
	}
	stdin, stdout, stderr, err := p.Stdio()
	if err != nil {
		return nil, fmt.Errorf("%w: exec %s stdio: %v", events.ErrInternal, id, err)
	}
	s := &execSession{
		h: h, id: id, p: p, tty: tty, stdin: stdin, heard: time.Now(),
		in: make(chan stdinFrame, 4), done: make(chan events.ExecExit, 1), ended: make(chan struct{}),
	}
	s.cond = sync.NewCond(&s.mu)
	h.sessions[id] = s
	var pumps sync.WaitGroup
	for _, o := range []struct {
		r  io.ReadCloser
		ch string
	}{{stdout, events.ExecOut}, {stderr, events.ExecErr}} {
		if o.r == nil {
			continue
		}
		pumps.Add(1)
		h.goSession(func() { defer pumps.Done(); s.pump(o.r, o.ch) })
	}
	h.goSession(func() { s.feed() })
	h.goSession(func() { s.watch() })
	h.goSession(func() { s.wait(&pumps) })
	return s.done, nil
}

func (h *ExecHub) goSession(f func()) {
	h.wg.Add(1)
	go func() { defer h.wg.Done(); f() }()
}

// session returns the live session named by the exec subject of m and
// m's decoded frame. For an unknown session (404) or an undecodable frame
// (400) it answers m, when m is a request, and returns a nil session.
func (h *ExecHub) session(m *nats.Msg) (*execSession, events.ExecFrame) {
	id := execIDOf(m.Subject)
	h.mu.Lock()
	s := h.sessions[id]
	h.mu.Unlock()
	f, err := events.DecodeExecFrame(m.Data)
	switch {
	case s == nil:
		respond(m, fmt.Errorf("%w: exec %s: no such exec session on node %s (it never ran, or it has ended)", events.ErrNotFound, id, h.subj.Node))
		return nil, f
	case err != nil:
		respond(m, err)
		return nil, f
	}
	s.touch()
	return s, f
}

// execIDOf returns the exec id token of an exec subject.
func execIDOf(subject string) string {
	parts := strings.Split(subject, ".")
	if len(parts) < 2 {
		return ""
	}
	return parts[len(parts)-2]
}

// respond answers a client request with a status frame; a publish without
// a reply subject gets none.
func respond(m *nats.Msg, err error) {
	if m.Reply == "" {
		return
	}
	f := events.StatusFrame(err)
	_ = m.Respond(f.Encode())
}

func (h *ExecHub) onIn(m *nats.Msg) {
	s, f := h.session(m)
	if s == nil {
		return
	}
	if f.Kind != events.FrameData && f.Kind != events.FrameEOF {
		respond(m, fmt.Errorf("%w: exec %s: in takes data and eof frames, not %q", events.ErrInvalid, s.id, byte(f.Kind)))
		return
	}
	if s.stdin == nil {
		respond(m, fmt.Errorf("%w: exec %s was started without stdin", events.ErrConflict, s.id))
		return
	}
	select {
	case s.in <- stdinFrame{m, f}:
	default:
		respond(m, fmt.Errorf("%w: exec %s: stdin busy; wait for the answer to each frame", events.ErrUnavailable, s.id))
	}
}

func (h *ExecHub) onResize(m *nats.Msg) {
	s, f := h.session(m)
	if s == nil {
		return
	}
	switch {
	case f.Kind != events.FrameResize:
		respond(m, fmt.Errorf("%w: exec %s: resize takes resize frames, not %q", events.ErrInvalid, s.id, byte(f.Kind)))
	case !s.tty:
		respond(m, fmt.Errorf("%w: exec %s has no console to resize (it was started without tty)", events.ErrConflict, s.id))
	default:
		// A host call: off the subscription's goroutine.
		h.goSession(func() {
			ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
			defer cancel()
			err := s.p.ResizeConsole(ctx, f.Width, f.Height)
			if err != nil {
				err = fmt.Errorf("%w: exec %s resize: %v", events.ErrConflict, s.id, err)
			}
			respond(m, err)
		})
	}
}

func (h *ExecHub) onCredit(m *nats.Msg) {
	s, f := h.session(m)
	if s == nil {
		return
	}
	switch f.Kind {
	case events.FrameCredit:
		s.grant(f.Bytes, f.Frames)
		respond(m, nil)
	case events.FrameKill:
		s.abandon(events.ReasonClientLost, "the client left")
		respond(m, nil)
	default:
		respond(m, fmt.Errorf("%w: exec %s: credit takes credit and kill frames, not %q", events.ErrInvalid, s.id, byte(f.Kind)))
	}
}

// execSession is one running exec. Lock order: h.mu before s.mu.
type execSession struct {
	h     *ExecHub
	id    string
	p     ExecProcess
	tty   bool
	stdin io.WriteCloser  // nil without stdin
	in    chan stdinFrame // stdin frames, for feed
	done  chan events.ExecExit
	ended chan struct{} // closed when the process has exited

	mu          sync.Mutex
	cond        *sync.Cond // signals credit and abandonment; uses mu
	heard       time.Time  // last message from the client
	limitBytes  uint64     // credit: cumulative
	limitFrames uint64
	sentBytes   uint64
	sentFrames  uint64 // also the last output frame's sequence number
	abandoned   bool   // output is discarded: the client is gone or the agent stops
	reason, why string // why it was abandoned
	killed      bool
	stdinSeq    uint64 // last stdin frame written
	stdinEOF    bool
}

func (s *execSession) touch() {
	s.mu.Lock()
	s.heard = time.Now()
	s.mu.Unlock()
}

func (s *execSession) grant(bytes, frames uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.limitBytes = max(s.limitBytes, bytes)
	s.limitFrames = max(s.limitFrames, frames)
	s.cond.Broadcast()
}

// abandon stops sending output, kills the process (once) and records why.
func (s *execSession) abandon(reason, why string) {
	s.mu.Lock()
	first := !s.abandoned
	if first {
		s.abandoned, s.reason, s.why = true, reason, why
	}
	s.cond.Broadcast()
	s.mu.Unlock()
	if !first {
		return
	}
	select {
	case <-s.ended:
		return
	default:
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := s.p.Kill(ctx); err == nil {
		s.mu.Lock()
		s.killed = true
		s.mu.Unlock()
	}
	if s.stdin != nil {
		_ = s.stdin.Close() // unblocks feed's write
	}
}

// pump sends what r yields as data frames on channel ch while there is
// credit, and discards it once the session is abandoned, until EOF.
func (s *execSession) pump(r io.ReadCloser, ch string) {
	defer r.Close()
	subject := s.h.subj.Exec(s.id, ch)
	buf := make([]byte, events.ExecChunk)
	for {
		s.mu.Lock()
		for !s.abandoned && (s.sentBytes >= s.limitBytes || s.sentFrames >= s.limitFrames) {
			s.cond.Wait()
		}
		n := len(buf)
		if !s.abandoned {
			n = int(min(uint64(n), s.limitBytes-s.sentBytes))
		}
		s.mu.Unlock()
		k, err := r.Read(buf[:n])
		if k > 0 {
			s.mu.Lock()
			if !s.abandoned {
				s.sentFrames++
				s.sentBytes += uint64(k)
				f := events.ExecFrame{Kind: events.FrameData, Seq: s.sentFrames, Data: buf[:k]}
				// Published under mu, so frames go out in sequence order.
				if perr := s.h.nc.Publish(subject, f.Encode()); perr != nil {
					s.h.log.Debug().Err(perr).Str("exec", s.id).Msg("exec output not sent")
				}
			}
			s.mu.Unlock()
		}
		if err != nil {
			return
		}
	}
}

// feed writes the client's stdin frames to the process in order and
// answers each once it is written.
func (s *execSession) feed() {
	for {
		select {
		case <-s.ended:
			if s.stdin != nil {
				_ = s.stdin.Close()
			}
			return
		case in := <-s.in:
			respond(in.m, s.write(in.f))
		}
	}
}

// stdinFrame is a client's stdin message and its frame, decoded by onIn.
type stdinFrame struct {
	m *nats.Msg
	f events.ExecFrame
}

func (s *execSession) write(f events.ExecFrame) error {
	switch {
	case s.stdinEOF:
		return fmt.Errorf("%w: exec %s: stdin is closed", events.ErrConflict, s.id)
	case f.Seq <= s.stdinSeq:
		return nil // a repeat of a frame already written
	case f.Seq != s.stdinSeq+1:
		return fmt.Errorf("%w: exec %s: stdin frame %d follows frame %d", events.ErrInvalid, s.id, f.Seq, s.stdinSeq)
	}
	s.stdinSeq = f.Seq
	if f.Kind == events.FrameEOF {
		s.stdinEOF = true
		ctx, cancel := context.WithTimeout(s.h.ctx, 10*time.Second)
		defer cancel()
		err := s.p.CloseStdin(ctx)
		_ = s.stdin.Close()
		if err != nil {
			return fmt.Errorf("%w: exec %s: closing stdin: %v", events.ErrConflict, s.id, err)
		}
		return nil
	}
	if _, err := s.stdin.Write(f.Data); err != nil {
		return fmt.Errorf("%w: exec %s: the process no longer reads stdin: %v", events.ErrConflict, s.id, err)
	}
	return nil
}

// watch abandons the session when the client has been silent for the
// hub's idle timeout.
func (s *execSession) watch() {
	t := time.NewTicker(max(s.h.idle/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-s.ended:
			return
		case <-t.C:
			s.mu.Lock()
			silent := time.Since(s.heard)
			s.mu.Unlock()
			if silent > s.h.idle {
				s.abandon(events.ReasonClientLost, fmt.Sprintf("no word from the client for %s", silent.Round(time.Millisecond)))
			}
		}
	}
}

// wait waits for the process to exit and its output to be sent, then
// publishes the exit frame and reports the end.
func (s *execSession) wait(pumps *sync.WaitGroup) {
	err := s.p.Wait(s.h.ctx)
	if err != nil {
		// The hub closed first: Close has abandoned (killed) the process.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		err = s.p.Wait(ctx)
		cancel()
	}
	close(s.ended)
	pumps.Wait()
	x := events.ExecExit{Exec: s.id, Reason: events.ReasonExited}
	if code, cerr := s.p.ExitCode(); cerr == nil {
		x.Code = &code
	} else if err != nil {
		x.Message = "the process could not be waited for: " + err.Error()
	}
	_ = s.p.Close()
	s.mu.Lock()
	if s.abandoned && s.killed {
		x.Reason, x.Message = s.reason, s.why
	}
	x.Frames = s.sentFrames
	s.mu.Unlock()
	f := events.ExecFrame{Kind: events.FrameExit, Exit: &x}
	if err := s.h.nc.Publish(s.h.subj.Exec(s.id, events.ExecExitCh), f.Encode()); err != nil {
		s.h.log.Warn().Err(err).Str("exec", s.id).Msg("exec exit not sent")
	}
	s.h.mu.Lock()
	delete(s.h.sessions, s.id)
	s.h.mu.Unlock()
	s.done <- x
	close(s.done)
}
