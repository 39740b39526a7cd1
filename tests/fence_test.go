package tests

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/journal"
	"github.com/berthhq/berth/winsim"
)

// TestSecondAgentIsFenced runs two agents for one node on one NATS server:
// the journal fences the one whose view is stale, which says so, and the
// other goes on serving the node.
func TestSecondAgentIsFenced(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	creds, err := journal.InitCredentials(filepath.Join(dir, "auth"), events.NewSubjects("", testNode))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := journal.StartServer(ctx, journal.ServerOptions{DataDir: dir, Listen: "127.0.0.1:-1",
		Credentials: &creds, Subjects: events.NewSubjects("", testNode)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	host := winsim.New()
	defer host.Close()
	first := startAgent(t, agent.Options{NATSURL: srv.ClientURL(), Credentials: &creds, Replicas: 1, Compute: host.Compute()})
	second := startAgent(t, agent.Options{NATSURL: srv.ClientURL(), Credentials: &creds, Replicas: 1, Compute: host.Compute()})
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
	err = first.FenceError()
	if !errors.Is(err, agent.ErrFenced) || !strings.Contains(err.Error(), "another agent for this node") || !strings.Contains(err.Error(), testNode) {
		t.Fatalf("fence error %q", err)
	}
	stopAgent(t, first)

	// The node is the second agent's.
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	client, err := control.NewClient(nc, testNode, control.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Run(ctx, "web", pingSpec); err != nil {
		t.Fatal(err)
	}
	if len(host.Snapshot().Systems) != 1 {
		t.Fatalf("host systems: %+v", host.Snapshot().Systems)
	}
}
