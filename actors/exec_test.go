package actors_test

import (
	"context"
	"io"
	"slices"
	"sync"
	"testing"

	"github.com/berthhq/berth/actors"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/winsim"
)

// drainingAttacher serves exec sessions by discarding their output; their
// ends are never reported, as when the agent dies with its streams.
type drainingAttacher struct {
	mu   sync.Mutex
	live map[string]bool
	wg   sync.WaitGroup
}

func (d *drainingAttacher) Attach(_ context.Context, id string, p hcsdriver.Process, _ bool) (<-chan events.ExecExit, error) {
	_, out, errOut, err := p.Stdio()
	if err != nil {
		return nil, err
	}
	for _, r := range []io.ReadCloser{out, errOut} {
		if r != nil {
			d.wg.Add(1)
			go func() { defer d.wg.Done(); _, _ = io.Copy(io.Discard, r) }()
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.live == nil {
		d.live = map[string]bool{}
	}
	d.live[id] = true
	return make(chan events.ExecExit), nil
}

func (d *drainingAttacher) Serves(id string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.live[id]
}

// TestRestartKillsOrphanExecs: an agent that went away with an exec running
// left its process without a client; the next agent kills it and records
// why, since an exec's pipes cannot be reattached.
func TestRestartKillsOrphanExecs(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	dir := t.TempDir()
	first := &drainingAttacher{}
	a := startAgent(t, host, dir, func(c *actors.Config) { c.Exec = first })
	a.ok(run("box", "ping", "-t", "localhost"))
	r := a.do(events.Command{Verb: events.VerbExec, Container: "box", Exec: &events.ExecSpec{Command: []string{"ping", "-t", "localhost"}}})
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	c, err := a.node.Inspect(context.Background(), "box")
	if err != nil || len(c.Execs) != 1 {
		t.Fatalf("after exec: execs %v, %v", c.Execs, err)
	}
	var pid int
	for _, p := range c.Execs {
		pid = p
	}
	running := func() bool {
		for _, s := range host.Snapshot().Systems {
			for _, p := range s.Processes {
				if s.ID == "box" && p.Pid == pid && !p.Exited {
					return true
				}
			}
		}
		return false
	}
	if !running() {
		t.Fatalf("exec process %d not running on the host", pid)
	}
	a.stop()
	if !running() {
		t.Fatalf("exec process %d ended with the agent", pid)
	}

	b := startAgent(t, host, dir, func(c *actors.Config) { c.Exec = &drainingAttacher{} })
	waitUntil(t, "the orphan exec recorded as ended", func() bool {
		c, err := b.node.Inspect(context.Background(), "box")
		return err == nil && len(c.Execs) == 0
	})
	if h := b.history("box"); !slices.Contains(h, "container.exec_exited") {
		t.Errorf("history %v, want exec_exited", h)
	}
	if running() {
		t.Errorf("exec process %d still runs after the restart", pid)
	}
	if c, err := b.node.Inspect(context.Background(), "box"); err != nil || c.Phase != events.PhaseRunning {
		t.Errorf("box after restart: %v %v, want running", c.Phase, err)
	}
	first.wg.Wait()
}
