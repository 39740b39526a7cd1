package metrics_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"go.uber.org/goleak"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/internal/metrics"
	"github.com/berthhq/berth/winsim"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

// pingSpec is a container that runs until it is stopped.
var pingSpec = events.ContainerSpec{Image: events.ImageSpec{Ref: "nanoserver"},
	Command: events.CommandSpec{Entrypoint: []string{"ping"}, Args: []string{"-t", "localhost"}}}

// runWeb connects to a's server and runs pingSpec as container web; the
// caller closes the connection.
func runWeb(ctx context.Context, t *testing.T, a *agent.Agent) (*nats.Conn, *control.Client) {
	t.Helper()
	nc, err := a.Server.Connect()
	if err != nil {
		t.Fatal(err)
	}
	client, err := control.NewClient(nc, "edge-1", control.WithTimeout(10*time.Second))
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	if _, err := client.Run(ctx, "web", pingSpec); err != nil {
		nc.Close()
		t.Fatal(err)
	}
	return nc, client
}

// wantFamilies checks that the /metrics body has each of wants, and logs
// the body when one is missing.
func wantFamilies(t *testing.T, body string, wants ...string) {
	t.Helper()
	for _, want := range wants {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if t.Failed() {
		t.Log(body)
	}
}

// TestHealthReadyAndMetrics runs an agent on the simulated host behind the
// HTTP handler: /readyz is 503 before Start returns, 200 while the agent
// consumes commands and 503 after Stop; /healthz is 200 throughout; and
// after a command has run, /metrics has every berth_* family.
func TestHealthReadyAndMetrics(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	m := metrics.New()
	var running atomic.Pointer[agent.Agent]
	srv := httptest.NewServer(metrics.Handler(m, func() bool {
		a := running.Load()
		return a != nil && a.Ready()
	}))
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()

	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz before start: %d, want 200", code)
	}
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz before start: %d, want 503", code)
	}

	host := winsim.New()
	defer host.Close()
	a, err := agent.Start(ctx, agent.Options{
		Node: "edge-1", DataDir: t.TempDir(), Host: "winsim", Compute: host.Compute(), StopTimeout: time.Second,
		Metrics: m, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
	})
	if err != nil {
		t.Fatal(err)
	}
	running.Store(a)
	stopped := false
	defer func() {
		if !stopped {
			a.Stop(context.Background())
		}
	}()
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Fatalf("/readyz after start: %d, want 200", code)
	}

	nc, client := runWeb(ctx, t, a)
	defer nc.Close()
	_, err = client.Run(ctx, "web", pingSpec) // the name is taken
	refused, _ := events.CodeOf(err)
	if err == nil || refused == events.CodeOK {
		t.Fatalf("second run of web: %v, want an error", err)
	}

	code, body := get(t, srv.URL+"/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	wantFamilies(t, body,
		`berth_commands_total{code="200",verb="run"} 1`,
		fmt.Sprintf(`berth_commands_total{code="%d",verb="run"} 1`, refused),
		`berth_command_duration_seconds_count{verb="run"} 2`,
		`berth_journal_append_duration_seconds_count`,
		`berth_journal_batch_events_count`,
		`berth_host_operation_duration_seconds_count{op="container.create",outcome="ok"} 1`,
		`berth_host_operation_duration_seconds_count{op="container.start",outcome="ok"} 1`,
		`berth_containers{phase="running"} 1`,
		`go_goroutines`,
	)

	sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	stopped = true
	if err := a.Stop(sctx); err != nil {
		t.Fatal(err)
	}
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("/readyz after stop: %d, want 503", code)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after stop: %d, want 200", code)
	}
	code, body = get(t, srv.URL+"/metrics")
	if code != http.StatusOK || !strings.Contains(body, "berth_commands_total") || strings.Contains(body, "berth_containers{") {
		t.Errorf("/metrics after stop: %d, want 200 with the other families and no berth_containers:\n%s", code, body)
	}
}

// TestNilMetricsHooks checks that the hooks do nothing on a nil *Metrics
// and that the handler then serves health without /metrics.
func TestNilMetricsHooks(t *testing.T) {
	var m *metrics.Metrics
	m.ObserveCommand("run", 200, time.Millisecond)
	m.ObserveCommit(3, time.Millisecond)
	m.ObserveHostCall("container.start", time.Millisecond, nil)
	m.WatchContainers(nil)
	srv := httptest.NewServer(metrics.Handler(m, func() bool { return true }))
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()
	if code, _ := get(t, srv.URL+"/metrics"); code != http.StatusNotFound {
		t.Errorf("/metrics without metrics: %d, want 404", code)
	}
	if code, _ := get(t, srv.URL+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz when ready: %d, want 200", code)
	}
}

// BenchmarkHooks measures what the hooks add to each command, batch and
// host operation.
func BenchmarkHooks(b *testing.B) {
	m := metrics.New()
	b.Run("command", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.ObserveCommand(events.VerbRun, events.CodeOK, time.Millisecond)
		}
	})
	b.Run("commit", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.ObserveCommit(4, time.Millisecond)
		}
	})
	b.Run("host-call", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			m.ObserveHostCall("container.start", time.Millisecond, nil)
		}
	})
}

// TestReconcileAndLogDropFamilies restarts an agent over a running
// container: the second agent adopts it, and berth_reconcile_actions_total
// counts that; a log drop reported through the hook shows under its reason.
func TestReconcileAndLogDropFamilies(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := context.Background()
	host := winsim.New()
	defer host.Close()
	dir := t.TempDir()
	start := func(m *metrics.Metrics) *agent.Agent {
		a, err := agent.Start(ctx, agent.Options{
			Node: "edge-1", DataDir: dir, Host: "winsim", Compute: host.Compute(), StopTimeout: time.Second,
			Metrics: m, Logger: zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel),
		})
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	a := start(nil)
	nc, _ := runWeb(ctx, t, a)
	nc.Close()
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}

	m := metrics.New()
	b := start(m)
	defer b.Stop(ctx)
	m.ObserveLogDrop("rate", 4096)
	srv := httptest.NewServer(metrics.Handler(m, func() bool { return true }))
	defer srv.Close()
	defer http.DefaultClient.CloseIdleConnections()
	_, body := get(t, srv.URL+"/metrics")
	wantFamilies(t, body,
		fmt.Sprintf(`berth_reconcile_actions_total{kind="%s",outcome="ok"} 1`, events.ActionAdopt),
		`berth_log_dropped_bytes_total{reason="rate"} 4096`,
	)
}
