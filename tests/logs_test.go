package tests

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/winsim"
)

// TestLogsSurviveAnAgentRestart runs a container that writes to stdout and
// stderr, checks that its output reaches the log stream through the agent's
// wiring, per stream in the order written, and that it is still there after
// the agent restarts on the same data directory.
func TestLogsSurviveAnAgentRestart(t *testing.T) {
	ctx := context.Background()
	host := winsim.New()
	defer host.Close()
	dir := t.TempDir()
	start := func() *agent.Agent {
		return startAgent(t, agent.Options{DataDir: dir, Compute: host.Compute()})
	}
	logs := func(client *control.Client) string {
		var out, errs []string
		err := client.Logs(ctx, "talker", control.LogsOptions{}, func(l control.LogLine) error {
			if l.Stream == events.Stderr {
				errs = append(errs, string(l.Data))
			} else {
				out = append(out, string(l.Data))
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(out, ",") + " | " + strings.Join(errs, ",")
	}

	a := start()
	client := connectClient(t, a.Server)
	spec := events.ContainerSpec{Image: events.ImageSpec{Ref: "nanoserver"}, Command: events.CommandSpec{
		Entrypoint: []string{"cmd"}, Args: []string{"/c", "echo hi& echo oops 1>&2& echo bye& echo again 1>&2"}}}
	if _, err := client.Run(ctx, "talker", spec); err != nil {
		t.Fatal(err)
	}
	const want = "hi,bye | oops ,again " // cmd echoes the space before a redirection
	waitFor(t, "the container's output in the log stream", func() bool { return logs(client) == want })
	stopAgent(t, a)

	b := start()
	defer stopAgent(t, b)
	if got := logs(connectClient(t, b.Server)); got != want {
		t.Errorf("after a restart the log stream holds %q, want %q", got, want)
	}
}

// TestReadoptedContainerOutputNotCaptured pins what the platform allows
// after an agent restart: the reopened init process has no pipes, so the
// adopted container runs on but what it prints from then on does not reach
// the log stream; what it printed before is kept.
func TestReadoptedContainerOutputNotCaptured(t *testing.T) {
	ctx := context.Background()
	host := winsim.New()
	defer host.Close()
	dir := t.TempDir()
	start := func() (*agent.Agent, *control.Client) {
		a := startAgent(t, agent.Options{DataDir: dir, Compute: host.Compute()})
		return a, connectClient(t, a.Server)
	}
	lines := func(client *control.Client) int {
		n := 0
		if err := client.Logs(ctx, "pinger", control.LogsOptions{}, func(control.LogLine) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	a, client := start()
	if _, err := client.Run(ctx, "pinger", pingSpec); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "two replies in the log stream", func() bool { return lines(client) >= 4 })
	stopAgent(t, a)

	b, client := start()
	defer stopAgent(t, b)
	waitFor(t, "the container adopted", func() bool {
		c, err := client.Inspect(ctx, "pinger")
		return err == nil && c.Phase == events.PhaseRunning && c.Intent == ""
	})
	before := lines(client)
	time.Sleep(2500 * time.Millisecond) // ping prints a line a second
	if after := lines(client); after != before || before < 4 {
		t.Errorf("log lines: %d before the wait, %d after; want the pre-restart lines (at least 4) and no new ones", before, after)
	}
	if c, err := client.Inspect(ctx, "pinger"); err != nil || c.Phase != events.PhaseRunning {
		t.Errorf("adopted container: %+v %v, want still running", c.Phase, err)
	}
}
