package main

import (
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"runtime"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/berthhq/berth/actors"
	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/internal/metrics"
	"github.com/berthhq/berth/journal"
	"github.com/berthhq/berth/winsim"
)

func init() {
	benches["lifecycle"] = bench{"containers through run → stop → rm via the command inbox, 50 in flight, winsim with zero latency", benchLifecycle}
	benches["burst"] = bench{"200 containers run at once, winsim latency create 300ms + start 500ms, vs the ideal for the host-operation limit", benchBurst}
	benches["memory"] = bench{"heap per idle container actor, including its record in the fold", benchMemory}
}

// agentFixture is a whole agent in process, on winsim, with a client on a
// connection of its own.
type agentFixture struct {
	dir     string
	metrics *metrics.Metrics
	host    *winsim.Host
	agent   *agent.Agent
	client  *control.Client
}

func newAgentFixture(ctx context.Context, hostOps int) (f *agentFixture, err error) {
	f = &agentFixture{host: winsim.New(), metrics: metrics.New()}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if f.dir, err = os.MkdirTemp("", "berth-bench-"); err != nil {
		return nil, err
	}
	f.agent, err = agent.Start(ctx, agent.Options{
		Node: benchNode, DataDir: f.dir, Host: "winsim", Compute: f.host.Compute(), HostOps: hostOps,
		StopTimeout: 10 * time.Second, Logger: zerolog.New(os.Stderr).Level(zerolog.WarnLevel), Metrics: f.metrics,
	})
	if err != nil {
		return nil, err
	}
	nc, err := f.agent.Server.Connect()
	if err != nil {
		return nil, err
	}
	f.client, err = control.NewClient(nc, benchNode, control.WithTimeout(time.Minute))
	return f, err
}

func (f *agentFixture) close() {
	if f.agent != nil {
		stopAgent(f.agent)
	}
	_ = f.host.Close()
	if f.dir != "" {
		_ = os.RemoveAll(f.dir)
	}
}

// stopAgent stops a, giving it a minute.
func stopAgent(a *agent.Agent) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	_ = a.Stop(ctx)
}

func runSpec(args ...string) events.ContainerSpec {
	return events.ContainerSpec{
		Image:   events.ImageSpec{Ref: "mcr.microsoft.com/windows/nanoserver:ltsc2022"},
		Command: events.CommandSpec{Entrypoint: args[:1], Args: args[1:]},
	}
}

// latencies collects command round trips.
type latencies struct {
	mu sync.Mutex
	d  []time.Duration
}

func (l *latencies) add(d time.Duration) {
	l.mu.Lock()
	l.d = append(l.d, d)
	l.mu.Unlock()
}

func (l *latencies) mean() time.Duration {
	if len(l.d) == 0 {
		return 0
	}
	var sum time.Duration
	for _, d := range l.d {
		sum += d
	}
	return sum / time.Duration(len(l.d))
}

func (l *latencies) pct(p float64) time.Duration {
	slices.Sort(l.d)
	if len(l.d) == 0 {
		return 0
	}
	return l.d[int(math.Ceil(p*float64(len(l.d))))-1]
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// benchLifecycle drives containers through run → stop → rm with 50
// commands in flight (the figure), then with 10 and 1, so that the
// latency a single command sees can be told apart from the queueing that
// 50 concurrent clients add (by Little's law, p50 ≈ in flight / rate).
// Beside the client's view, each row shows from the agent's metrics the
// mean time from a command's intake to its reply (the rest is the command
// inbox: storing, delivering, acknowledging) and the journal's batches.
func benchLifecycle(ctx context.Context, short bool) ([]Row, error) {
	n := 1000
	if short {
		n = 200
	}
	f, err := newAgentFixture(ctx, 64)
	if err != nil {
		return nil, err
	}
	defer f.close()
	var rows []Row
	for _, inFlight := range []int{50, 10, 1} {
		count := n
		if inFlight == 1 {
			count = n / 5
		}
		row, err := lifecycleRun(ctx, f, fmt.Sprintf("life%d", inFlight), count, inFlight)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func lifecycleRun(ctx context.Context, f *agentFixture, prefix string, n, inFlight int) (Row, error) {
	var lat latencies
	timed := func(do func() error) error {
		t := time.Now()
		err := do()
		lat.add(time.Since(t))
		return err
	}
	zero := time.Duration(0)
	ids := make(chan string, n)
	for i := range n {
		ids <- fmt.Sprintf("%s-%d", prefix, i)
	}
	close(ids)
	before, err := agentSums(f.metrics)
	if err != nil {
		return Row{}, err
	}
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, inFlight)
	for range inFlight {
		wg.Go(func() {
			for id := range ids {
				spec := runSpec("ping", "-t", "localhost")
				err := errors.Join(
					timed(func() error { _, err := f.client.Run(ctx, id, spec); return err }),
					timed(func() error { _, err := f.client.Stop(ctx, id, &zero); return err }),
					timed(func() error { _, err := f.client.Remove(ctx, id, false); return err }))
				if err != nil {
					errs <- fmt.Errorf("%s: %w", id, err)
					return
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		return Row{}, err
	}
	after, err := agentSums(f.metrics)
	if err != nil {
		return Row{}, err
	}
	b := after.sub(before)
	return Row{Label: fmt.Sprintf("%d containers, %d in flight", n, inFlight), Figures: []Figure{
		{Name: "containers/s", Value: float64(n) / took.Seconds(), Format: "%.1f"},
		{Name: "commands", Value: float64(len(lat.d))},
		{Name: "p50 ms", Value: ms(lat.pct(0.50)), Format: "%.2f"},
		{Name: "p99 ms", Value: ms(lat.pct(0.99)), Format: "%.2f"},
		{Name: "max ms", Value: ms(lat.pct(1)), Format: "%.2f"},
		{Name: "target p99 ms", Value: 20},
		{Name: "mean ms", Value: ms(lat.mean()), Format: "%.2f"},
		{Name: "in agent ms", Value: 1e3 * b.cmdSeconds / b.cmds, Format: "%.2f"},
		{Name: "batches/s", Value: b.n / took.Seconds(), Format: "%.0f"},
		{Name: "events/batch", Value: b.events / b.n, Format: "%.1f"},
		{Name: "commit ms", Value: 1e3 * b.seconds / b.n, Format: "%.2f"},
	}}, nil
}

// agentTotals are sums from the agent's histograms: journal batches
// committed, their events and the seconds their commits took; commands
// answered and the seconds from their intake to their reply.
type agentTotals struct{ n, events, seconds, cmds, cmdSeconds float64 }

func (a agentTotals) sub(b agentTotals) agentTotals {
	return agentTotals{a.n - b.n, a.events - b.events, a.seconds - b.seconds, a.cmds - b.cmds, a.cmdSeconds - b.cmdSeconds}
}

// agentSums reads the totals from the agent's metrics.
func agentSums(m *metrics.Metrics) (agentTotals, error) {
	fams, err := m.Gatherer().Gather()
	if err != nil {
		return agentTotals{}, err
	}
	var t agentTotals
	for _, f := range fams {
		for _, mt := range f.GetMetric() {
			h := mt.GetHistogram()
			switch f.GetName() {
			case "berth_journal_batch_events":
				t.n, t.events = float64(h.GetSampleCount()), h.GetSampleSum()
			case "berth_journal_append_duration_seconds":
				t.seconds = h.GetSampleSum()
			case "berth_command_duration_seconds":
				t.cmds += float64(h.GetSampleCount())
				t.cmdSeconds += h.GetSampleSum()
			}
		}
	}
	return t, nil
}

func benchBurst(ctx context.Context, short bool) ([]Row, error) {
	n, hostOps := 200, 32
	create, start := 300*time.Millisecond, 500*time.Millisecond
	if short {
		n = 64
	}
	f, err := newAgentFixture(ctx, hostOps)
	if err != nil {
		return nil, err
	}
	defer f.close()
	f.host.SetLatency(winsim.Profile{Create: create, Start: start})
	t0 := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			if _, err := f.client.Run(ctx, fmt.Sprintf("burst-%d", i), runSpec("ping", "-t", "localhost")); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	makespan := time.Since(t0)
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	// Each container needs create+start of one host-operation slot; with
	// hostOps slots the work cannot finish sooner than this.
	per := create + start
	ideal := max(per, time.Duration(math.Ceil(float64(n)*float64(per)/float64(hostOps))))
	return []Row{{Label: fmt.Sprintf("%d containers, host-ops %d", n, hostOps), Figures: []Figure{
		{Name: "makespan s", Value: makespan.Seconds(), Format: "%.2f"},
		{Name: "ideal s", Value: ideal.Seconds(), Format: "%.2f"},
		{Name: "ratio", Value: makespan.Seconds() / ideal.Seconds(), Format: "%.2f×"},
		{Name: "target", Value: 1.5, Format: "≤ %.1f×"},
	}}}, nil
}

// benchMemory spawns actors for containers that exist on the host, the way
// a restarted agent does, and measures the heap they add with their records.
func benchMemory(ctx context.Context, short bool) ([]Row, error) {
	n := 10000
	if short {
		n = 2000
	}
	host := winsim.New()
	defer host.Close()
	hostSide := host.Compute()
	st := events.NewState(benchNode, events.DefaultWindow)
	spec := runSpec("ping", "-t", "localhost")
	for i := range n {
		id := fmt.Sprintf("mem-%d", i)
		sys, err := hostSide.Create(ctx, id, hcsdriver.Config{Owner: "berth"})
		if err != nil {
			return nil, err
		}
		_ = sys.Close()
	}
	nc, stop, err := tempServer(ctx, false)
	if err != nil {
		return nil, err
	}
	defer stop()
	node, err := actors.New(actors.Config{Node: benchNode, Compute: host.Compute(), Logger: zerolog.Nop()})
	if err != nil {
		return nil, err
	}
	j, err := journal.Open(ctx, nc, journal.Config{Subjects: events.NewSubjects("", benchNode), OnDurable: node.Durable})
	if err != nil {
		return nil, err
	}
	defer j.Close()
	if _, err := j.Boot(ctx); err != nil {
		return nil, err
	}

	before := heap()
	for i := range n {
		id := fmt.Sprintf("mem-%d", i)
		s := spec
		st.Containers[id] = &events.Container{ID: id, Phase: events.PhaseCreated, Spec: s, Owner: "berth", HostID: id, CreatedAt: time.Now()}
	}
	if err := node.Start(j, st); err != nil {
		return nil, err
	}
	// Reconciliation reopens every system, as at an agent's boot.
	rec, err := node.Reconcile(ctx)
	if err != nil {
		return nil, err
	}
	if got := rec.Summary["adopt/ok"]; got != n || openHandles(host) < n {
		return nil, fmt.Errorf("reconciliation adopted %d containers (%d handles open), want %d: %v", got, openHandles(host), n, rec.Summary)
	}
	time.Sleep(200 * time.Millisecond) // the actors go idle
	after := heap()
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := node.Shutdown(sctx); err != nil {
		return nil, err
	}
	per := float64(after-before) / float64(n)
	return []Row{{Label: fmt.Sprintf("%d idle container actors", n), Figures: []Figure{
		{Name: "heap/actor KiB", Value: per / 1024, Format: "%.2f"},
		{Name: "target KiB", Value: 16, Format: "≤ %.0f"},
	}}}, nil
}

func heap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

func openHandles(h *winsim.Host) (n int) {
	for _, s := range h.Snapshot().Systems {
		n += s.Handles
	}
	return n
}
