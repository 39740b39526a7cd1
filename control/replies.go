package control

import (
	"fmt"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// replies routes command replies to the Do calls waiting for them, over one
// wildcard subscription per client instead of one subscription per command.
// The subscription is made at the first command and lasts as long as the
// connection; its delivery goroutine belongs to nats.go and ends when the
// connection closes, which closes gone.
type replies struct {
	once   sync.Once
	err    error
	prefix string        // reply subjects are prefix + token
	gone   chan struct{} // closed when the subscription ends

	mu   sync.Mutex
	wait map[string]chan *nats.Msg
}

// await returns a fresh reply subject, the channel its first reply arrives
// on, and a func that forgets the subject; the caller must call it. No
// reply arrives once r.gone is closed.
func (r *replies) await(nc *nats.Conn) (string, <-chan *nats.Msg, func(), error) {
	r.once.Do(func() {
		r.prefix = nc.NewInbox() + "."
		r.wait = make(map[string]chan *nats.Msg)
		r.gone = make(chan struct{})
		sub, err := nc.Subscribe(r.prefix+"*", r.deliver)
		if err != nil {
			r.err = fmt.Errorf("reply subscription: %w", err)
			return
		}
		var closed sync.Once
		done := func(string) { closed.Do(func() { close(r.gone) }) }
		sub.SetClosedHandler(done)
		if !sub.IsValid() { // it ended before the handler was set
			done("")
		}
	})
	if r.err != nil {
		return "", nil, nil, r.err
	}
	subj := r.prefix + nuid.Next()
	ch := make(chan *nats.Msg, 1)
	r.mu.Lock()
	r.wait[subj] = ch
	r.mu.Unlock()
	return subj, ch, func() {
		r.mu.Lock()
		delete(r.wait, subj)
		r.mu.Unlock()
	}, nil
}

// deliver hands m to the call waiting on its subject. A reply nobody waits
// for any more, or a second reply to one subject, is dropped.
func (r *replies) deliver(m *nats.Msg) {
	r.mu.Lock()
	ch := r.wait[m.Subject]
	r.mu.Unlock()
	select {
	case ch <- m:
	default:
	}
}
