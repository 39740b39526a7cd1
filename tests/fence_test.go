package tests

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/winsim"
)

// TestSecondAgentIsFenced runs two agents for one node on one NATS server:
// the journal fences the one whose view is stale, which says so, and the
// other goes on serving the node.
func TestSecondAgentIsFenced(t *testing.T) {
	ctx := context.Background()
	srv, o := startExternalServer(t)
	host := winsim.New()
	defer host.Close()
	o.Compute = host.Compute()
	first := startAgent(t, o)
	second := startAgent(t, o)
	defer stopAgent(t, second)

	// The second agent has written (node.started, node.reconciled) since the
	// first read the journal: the first one's next write is refused.
	r := <-first.Node.Submit(events.Command{ID: events.NewID(), Verb: events.VerbRun, Container: "late", Spec: &pingSpec})
	if r.OK {
		t.Fatalf("a fenced agent ran a command: %+v", r)
	}
	select {
	case <-first.Fenced():
	case <-time.After(10 * time.Second):
		t.Fatal("the first agent was not told it is fenced")
	}
	err := first.FenceError()
	if !errors.Is(err, agent.ErrFenced) || !strings.Contains(err.Error(), "another agent for this node") || !strings.Contains(err.Error(), testNode) {
		t.Fatalf("fence error %q", err)
	}
	stopAgent(t, first)

	// The node is the second agent's.
	client := connectClient(t, srv)
	if _, err := client.Run(ctx, "web", pingSpec); err != nil {
		t.Fatal(err)
	}
	if len(host.Snapshot().Systems) != 1 {
		t.Fatalf("host systems: %+v", host.Snapshot().Systems)
	}
}
