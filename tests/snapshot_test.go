package tests

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/winsim"
)

// TestAgentSavesSnapshots checks that the node saves a snapshot of its fold
// once the journal says enough events have passed since the last one.
func TestAgentSavesSnapshots(t *testing.T) {
	ctx := context.Background()
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, agent.Options{DataDir: t.TempDir(), Compute: host.Compute(), SnapshotEvery: 3})
	defer stopAgent(t, a)
	nc, err := a.Server.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	client, err := control.NewClient(nc, testNode)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Run(ctx, "snap", pingSpec); err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, a.Subjects.SnapshotBucket())
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "a snapshot", func() bool {
		_, err := kv.Get(ctx, "head")
		return err == nil
	})
}
