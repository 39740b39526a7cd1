//go:build !windows

package tests

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/journal"
	"github.com/berthhq/berth/winsim"
)

// TestSIGKILLedBerthdConverges runs a real berthd (on the simulated host it
// keeps in its data directory), kills it with SIGKILL while commands are in
// flight, starts it again on the same data directory and checks that every
// command the inbox stored got an outcome, that the restarted agent has
// nothing left to do but adopt, and, once it has stopped, that the host
// kept in the data directory matches its journal.
func TestSIGKILLedBerthdConverges(t *testing.T) {
	if testing.Short() {
		t.Skip("builds berthd; not run with -short")
	}
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go tool is needed to build berthd: %v", err)
	}
	bin := filepath.Join(t.TempDir(), "berthd")
	if out, err := exec.Command(gotool, "build", "-o", bin, "github.com/berthhq/berth/cmd/berthd").CombinedOutput(); err != nil {
		t.Fatalf("building berthd: %v\n%s", err, out)
	}
	dir, addr := t.TempDir(), freeAddr(t)
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "--data-dir", dir, "--node", testNode, "--listen", addr, "--http", "", "--log-level", "warn", "--inbox-ack-wait", "1s")
		cmd.Stderr = &testLog{t: t}
		dieWithTest(cmd)
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { // a test that failed half way
			if cmd.ProcessState == nil {
				_ = cmd.Process.Kill()
				_ = cmd.Wait()
			}
		})
		return cmd
	}
	ctx := context.Background()
	// berthd pulls the image of every container: a registry on loopback
	// serves one.
	spec := pingImage(t)

	first := start()
	client, nc := dial(t, dir, addr)
	if _, err := client.Run(ctx, "before", spec); err != nil {
		t.Fatal(err)
	}
	// A burst of commands; berthd dies while some are in flight.
	var (
		wg       sync.WaitGroup
		ids      []string
		answered atomic.Int32
		once     sync.Once
		one      = make(chan struct{})
	)
	for i := range 12 {
		cmd := events.Command{ID: events.NewID(), Verb: events.VerbRun, Container: fmt.Sprintf("c%d", i), Spec: &spec}
		if i%3 == 2 {
			cmd = events.Command{ID: events.NewID(), Verb: events.VerbRemove, Container: fmt.Sprintf("c%d", i-1), Force: true}
		}
		ids = append(ids, cmd.ID)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := client.Do(ctx, cmd); err == nil {
				answered.Add(1)
				once.Do(func() { close(one) })
			}
		}()
	}
	all := make(chan struct{})
	go func() {
		wg.Wait()
		close(all)
	}()
	select {
	case <-one:
	case <-all:
		if answered.Load() == 0 {
			t.Fatal("berthd answered none of the burst")
		}
	}
	if err := first.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = first.Wait()
	nc.Close()
	wg.Wait()
	t.Logf("%d of %d commands answered before the SIGKILL", answered.Load(), len(ids))

	second := start()
	client, nc = dial(t, dir, addr)
	defer nc.Close()
	waitFor(t, "every stored command's outcome", func() bool {
		st, err := stateWithOutcomes(ctx, nc)
		if err != nil {
			return false
		}
		for _, id := range ids {
			if _, ok := st.Outcome(id); !ok {
				return false
			}
		}
		return true
	})
	waitFor(t, "a plan of nothing but adoptions", func() bool {
		plan, err := client.Plan(ctx)
		if err != nil {
			return false
		}
		for _, a := range plan {
			if a.Kind != events.ActionAdopt {
				return false
			}
		}
		return true
	})
	st, err := client.State(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if c := st.Containers["before"]; c == nil || c.Phase != events.PhaseRunning {
		t.Fatalf("before: %+v", c)
	}
	if err := second.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := second.Wait(); err != nil {
		t.Fatalf("berthd after SIGTERM: %v", err)
	}
	host, err := winsim.Open(filepath.Join(dir, "winsim"))
	if err != nil {
		t.Fatal(err)
	}
	defer host.Close()
	if err := converged(st, host.Snapshot()); err != nil {
		t.Fatal(err)
	}
}

// dial connects to the berthd listening on addr as the control plane.
func dial(t *testing.T, dir, addr string) (*control.Client, *nats.Conn) {
	t.Helper()
	var (
		nc  *nats.Conn
		err error
	)
	waitFor(t, "berthd to listen", func() bool {
		var opts []nats.Option
		if opts, err = journal.NKeyOptions(journal.SeedFile(filepath.Join(dir, "auth"), journal.RoleControl)); err != nil {
			return false
		}
		nc, err = nats.Connect("nats://"+addr, opts...)
		return err == nil
	})
	client, err := control.NewClient(nc, testNode, control.WithTimeout(20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "berthd to be ready", func() bool {
		_, err := client.Health(context.Background())
		return err == nil
	})
	return client, nc
}

// stateWithOutcomes asks the state query for the fold with its command
// outcomes.
func stateWithOutcomes(ctx context.Context, nc *nats.Conn) (*events.State, error) {
	req, _ := json.Marshal(control.StateRequest{Outcomes: true})
	msg, err := nc.RequestWithContext(ctx, events.NewSubjects("", testNode).API(control.EndpointState), req)
	if err != nil {
		return nil, err
	}
	st := events.NewState(testNode, events.DefaultWindow)
	if err := json.Unmarshal(msg.Data, st); err != nil {
		return nil, err
	}
	return st, nil
}

func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// testLog writes a child's log lines into the test's output.
type testLog struct {
	t  *testing.T
	mu sync.Mutex
}

func (l *testLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.t.Logf("berthd: %s", p)
	return len(p), nil
}
