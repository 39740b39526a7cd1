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

// TestAgentLimits runs the agent with its limits set, as berthd sets them,
// and checks each refusal: its code and the field or limit it names.
func TestAgentLimits(t *testing.T) {
	ctx := context.Background()
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, agent.Options{DataDir: t.TempDir(), Compute: host.Compute(),
		MountRoots: []string{`D:\data`}, MaxContainers: 1, MaxCommandSize: 2048})
	defer stopAgent(t, a)
	client := connectClient(t, a.Server)
	spec := func(mounts ...events.Mount) events.ContainerSpec {
		s := pingSpec
		s.Mounts = mounts
		return s
	}
	refused := func(what string, err error, class error, code int, text string) {
		t.Helper()
		var re *events.ReplyError
		if !errors.Is(err, class) || !errors.As(err, &re) || re.Code != code || !strings.Contains(re.Message, text) {
			t.Errorf("%s: %v; want %d naming %q", what, err, code, text)
		}
	}

	_, err := client.Run(ctx, "web", spec(events.Mount{Source: `D:\data\web`, Target: `C:\web`}, events.Mount{Source: `C:\Windows`, Target: `C:\w`}))
	refused("mount outside the roots", err, events.ErrInvalid, 400, `spec.mounts[1].source: "C:\\Windows" is outside the allowed roots`)
	big := spec()
	big.Labels = map[string]string{"note": strings.Repeat("x", 2048)}
	_, err = client.Run(ctx, "web", big)
	refused("command over the size limit", err, events.ErrInvalid, 400, "byte limit (berthd --max-command-size)")

	if _, err := client.Run(ctx, "web", spec(events.Mount{Source: `D:\data\web`, Target: `C:\web`, ReadOnly: true})); err != nil {
		t.Fatalf("run with a mount inside the roots: %v", err)
	}
	_, err = client.Run(ctx, "api", spec())
	refused("a container beyond the limit", err, events.ErrConflict, 409, "its limit (berthd --max-containers)")
	if got := host.Snapshot().Systems; len(got) != 1 {
		t.Fatalf("host holds %d systems, want 1", len(got))
	}
}

// TestAgentStartFailsCleanly starts an agent whose NATS server cannot be
// reached and which gives up when its context ends: Start returns an error
// naming the server, and stops what it started.
func TestAgentStartFailsCleanly(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	a, err := agent.Start(ctx, agent.Options{Node: testNode, NATSURL: "nats://127.0.0.1:1", Compute: host.Compute()})
	if err == nil {
		a.Stop(context.Background())
		t.Fatal("started without a reachable NATS server")
	}
	if !errors.Is(err, events.ErrUnavailable) || !strings.Contains(err.Error(), "nats://127.0.0.1:1") {
		t.Fatalf("Start: %v, want ErrUnavailable naming the server", err)
	}
}
