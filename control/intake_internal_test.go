package control

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/events"
)

// recorder is an inbox message that records how it was settled.
type recorder struct {
	mu         sync.Mutex
	acks       int
	terms      []string
	progress   int
	progressed chan struct{}
}

func newRecorder() *recorder { return &recorder{progressed: make(chan struct{}, 100)} }

func (r *recorder) Ack() error { r.mu.Lock(); r.acks++; r.mu.Unlock(); return nil }
func (r *recorder) Term(reason string) error {
	r.mu.Lock()
	r.terms = append(r.terms, reason)
	r.mu.Unlock()
	return nil
}
func (r *recorder) InProgress() error {
	r.mu.Lock()
	r.progress++
	r.mu.Unlock()
	r.progressed <- struct{}{}
	return nil
}

// stubAgent answers each command with the reply on its channel.
type stubAgent struct {
	Agent // queries are not used by the intake
	mu    sync.Mutex
	got   []events.Command
	reply chan events.Reply
}

func (a *stubAgent) Submit(cmd events.Command) <-chan events.Reply {
	a.mu.Lock()
	a.got = append(a.got, cmd)
	a.mu.Unlock()
	if a.reply != nil {
		return a.reply
	}
	ch := make(chan events.Reply, 1)
	ch <- events.NewReply(cmd.ID, events.ContainerResult{Container: cmd.Container}, nil)
	return ch
}

// intakeOnly is a server with the intake's state and no connection; it can
// only take messages without reply subjects.
func intakeOnly(a Agent, progress time.Duration) *Server {
	return &Server{opts: Options{Agent: a, ProgressInterval: progress, MountRoots: []string{`D:\`}}, subj: events.NewSubjects("", "n1"),
		abort: make(chan struct{}), slots: make(chan struct{}, 1)}
}

// The waiter keeps a command in progress while its reply is outstanding,
// then acknowledges it once.
func TestAwait_InProgressThenAck(t *testing.T) {
	a := &stubAgent{reply: make(chan events.Reply, 1)}
	s := intakeOnly(a, time.Millisecond)
	m := newRecorder()
	id := events.NewID()
	body := []byte(`{"id":"` + id + `","verb":"start","container":"web-1"}`)
	s.take(context.Background(), message{Verb: "start", ID: id, Data: body, acker: m})
	<-m.progressed
	<-m.progressed
	a.reply <- events.NewReply(id, nil, nil)
	s.waiters.Wait()
	if m.acks != 1 || len(m.terms) != 0 || m.progress < 2 {
		t.Errorf("acks %d, terms %v, progress %d; want 1 ack after at least 2 progress calls", m.acks, m.terms, m.progress)
	}
}

// FuzzIntake feeds arbitrary messages to the intake: each is either refused
// with a 4xx and terminated without reaching the agent, or submitted as a
// valid command whose id is the message's and acknowledged. Seeds are in
// testdata/fuzz/FuzzIntake.
func FuzzIntake(f *testing.F) {
	f.Fuzz(func(t *testing.T, verb, msgID string, data []byte) {
		a := &stubAgent{}
		s := intakeOnly(a, time.Hour)
		m := newRecorder()
		s.take(context.Background(), message{Verb: verb, ID: msgID, Data: data, Delivered: 1, acker: m})
		s.waiters.Wait()

		cmd, err := s.admit(message{Verb: verb, ID: msgID, Data: data})
		switch {
		case err != nil:
			if code, _ := events.CodeOf(err); code != events.CodeInvalid && code != events.CodeNotFound {
				t.Fatalf("refused with %d: %v", code, err)
			}
			if len(a.got) != 0 || len(m.terms) != 1 || m.acks != 0 {
				t.Fatalf("refused command: %d submitted, terms %v, %d acks", len(a.got), m.terms, m.acks)
			}
		default:
			if len(a.got) != 1 || len(m.terms) != 0 || m.acks != 1 {
				t.Fatalf("valid command: %d submitted, terms %v, %d acks", len(a.got), m.terms, m.acks)
			}
			if a.got[0].ID != msgID || a.got[0].Validate() != nil || (verb != "" && a.got[0].Verb != verb) {
				t.Fatalf("submitted %+v for message %q on verb %q", a.got[0], msgID, verb)
			}
			if a.got[0].ID != cmd.ID {
				t.Fatalf("admit and take disagree: %s vs %s", cmd.ID, a.got[0].ID)
			}
		}
	})
}
