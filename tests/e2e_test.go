package tests

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/winsim"
)

// TestCommandsSurviveAnAgentOutage runs the agent against a NATS server of
// its own (external mode), stops the agent, queues a command while it is
// down, and checks that the next agent runs it and adopts the container
// started before the outage.
func TestCommandsSurviveAnAgentOutage(t *testing.T) {
	ctx := context.Background()
	srv, o := startExternalServer(t)
	host := winsim.New()
	defer host.Close()
	o.Compute = host.Compute()
	client := connectClient(t, srv)

	a := startAgent(t, o)
	if _, err := client.Run(ctx, "before", pingSpec); err != nil {
		t.Fatal(err)
	}
	stopAgent(t, a)

	// The agent is down: the command is stored, not answered.
	queued := events.Command{ID: events.NewID(), Verb: events.VerbRun, Container: "during", Spec: &pingSpec}
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	_, err := client.Do(short, queued)
	cancel()
	if !errors.Is(err, control.ErrPending) {
		t.Fatalf("command sent while the agent is down: %v, want ErrPending", err)
	}

	b := startAgent(t, o)
	defer stopAgent(t, b)
	waitFor(t, "the queued command to run", func() bool {
		c, err := client.Inspect(ctx, "during")
		return err == nil && c.Phase == events.PhaseRunning
	})
	// The container started before the outage was adopted, not lost.
	if c, err := client.Inspect(ctx, "before"); err != nil || c.Phase != events.PhaseRunning {
		t.Fatalf("before: %+v %v", c, err)
	}
	st, err := client.State(ctx, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(st.Containers); n != 2 {
		t.Fatalf("%d containers in the fold, want 2", n)
	}
	if got := host.Snapshot().Systems; len(got) != 2 {
		t.Fatalf("host holds %d systems, want 2", len(got))
	}
}
