package tests

import (
	"context"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/berthhq/berth/internal/agent"
)

// testNode is the node the end-to-end tests run.
const testNode = "edge-1"

// startAgent starts an agent for testNode with o, logging warnings into
// the test output.
func startAgent(t *testing.T, o agent.Options) *agent.Agent {
	t.Helper()
	o.Node, o.Host, o.StopTimeout = testNode, "winsim", time.Second
	o.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	a, err := agent.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// stopAgent stops a the way berthd does; its containers keep running.
func stopAgent(t *testing.T, a *agent.Agent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
