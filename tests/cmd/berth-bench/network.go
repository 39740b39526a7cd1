package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/netdriver"
	"github.com/berthhq/berth/winsim"
)

func init() {
	benches["network"] = bench{"time the agent adds to an endpoint create over the driver's own latency (winsim CreateEndpoint 20ms), 1 and 32 in flight", benchNetwork}
}

// benchNetwork creates containers through the node's actors with an
// endpoint and without one (network mode none), and calls the driver's
// CreateEndpoint directly as often. What a create with an endpoint takes
// beyond a create without one and the driver's own call is what the actor
// path adds: the lease from the network actor, the durable
// endpoint_creating intent and the larger outcome batch.
func benchNetwork(ctx context.Context, short bool) ([]Row, error) {
	n, latency := 200, 20*time.Millisecond
	if short {
		n = 50
	}
	host := winsim.New(winsim.WithProfile(winsim.Profile{CreateEndpoint: latency}))
	defer host.Close()
	dir, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	a, err := agent.Start(ctx, agent.Options{Node: benchNode, DataDir: dir, Host: "winsim", Compute: host.Compute(),
		Network: host.Network(), HostOps: 64, StopTimeout: 10 * time.Second, Logger: zerolog.Nop()})
	if err != nil {
		return nil, err
	}
	defer stopAgent(a)
	submit := func(cmd events.Command) error {
		cmd.ID = events.NewID()
		select {
		case r := <-a.Node.Submit(cmd):
			return r.Err()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// A /20 slice: room for every container and, above them, the direct calls.
	if err := submit(events.Command{Verb: events.VerbNetworkConfigure, Network: &events.NetworkConfig{
		ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.0.0/20", Type: events.NetworkNAT}}); err != nil {
		return nil, fmt.Errorf("configure: %w", err)
	}
	if err := submit(events.Command{Verb: events.VerbCreate, Container: "warm-up", Spec: ptrTo(runSpec("ping", "-t", "localhost"))}); err != nil {
		return nil, fmt.Errorf("warm-up create: %w", err)
	}
	st, err := a.Node.State(ctx)
	if err != nil {
		return nil, err
	}
	networkID := st.Network.ID

	create := func(id, mode string) error {
		spec := runSpec("ping", "-t", "localhost")
		spec.Network.Mode = mode
		return submit(events.Command{Verb: events.VerbCreate, Container: id, Spec: &spec})
	}
	drv, next := host.Network(), netip.MustParseAddr("10.200.8.0")
	var mu sync.Mutex
	direct := func(name string) error {
		mu.Lock()
		next = next.Next()
		ip := next
		mu.Unlock()
		_, err := drv.CreateEndpoint(ctx, netdriver.EndpointSpec{Name: name, Network: networkID,
			IP: ip, PrefixLen: 20, Gateway: netip.MustParseAddr("10.200.0.1")})
		return err
	}
	// round runs n jobs of each kind, inFlight at a time, the kinds taking
	// turns, and times each job and the whole round.
	kinds := map[string]func(id string) error{
		"none":     func(id string) error { return create(id, "none") },
		"endpoint": func(id string) error { return create(id, "") },
		"driver":   direct,
	}
	round := func(inFlight int, names ...string) (map[string]*latencies, time.Duration, error) {
		lat := map[string]*latencies{}
		for _, k := range names {
			lat[k] = &latencies{}
		}
		jobs := make(chan int, n*len(names))
		for i := range n * len(names) {
			jobs <- i
		}
		close(jobs)
		errs := make(chan error, inFlight)
		start := time.Now()
		var wg sync.WaitGroup
		for range inFlight {
			wg.Go(func() {
				for i := range jobs {
					k := names[i%len(names)]
					id := fmt.Sprintf("%s-%d-%d", k, inFlight, i)
					t := time.Now()
					if err := kinds[k](id); err != nil {
						errs <- fmt.Errorf("%s: %w", id, err)
						return
					}
					lat[k].add(time.Since(t))
				}
			})
		}
		wg.Wait()
		took := time.Since(start)
		close(errs)
		return lat, took, <-errs
	}

	// One at a time, interleaved: medians of each kind's latency.
	lat, _, err := round(1, "none", "endpoint", "driver")
	if err != nil {
		return nil, err
	}
	p50n, p50w, p50d := lat["none"].pct(0.5), lat["endpoint"].pct(0.5), lat["driver"].pct(0.5)
	rows := []Row{{Label: fmt.Sprintf("%d creates each way, 1 in flight, p50", n), Figures: []Figure{
		{Name: "create, no network ms", Value: ms(p50n), Format: "%.2f"},
		{Name: "create, endpoint ms", Value: ms(p50w), Format: "%.2f"},
		{Name: "CreateEndpoint ms", Value: ms(p50d), Format: "%.2f"},
		{Name: "added ms", Value: ms(p50w - p50n - p50d), Format: "%.2f"},
		{Name: "target ms", Value: 1, Format: "≤ %.0f"},
	}}}
	// 32 in flight, one kind per round: makespan per create.
	const inFlight = 32
	per := map[string]float64{}
	for _, k := range []string{"none", "endpoint", "driver"} {
		_, took, err := round(inFlight, k)
		if err != nil {
			return nil, err
		}
		per[k] = ms(took) / float64(n)
	}
	rows = append(rows, Row{Label: fmt.Sprintf("%d creates each way, %d in flight, makespan/n", n, inFlight), Figures: []Figure{
		{Name: "create, no network ms", Value: per["none"], Format: "%.2f"},
		{Name: "create, endpoint ms", Value: per["endpoint"], Format: "%.2f"},
		{Name: "CreateEndpoint ms", Value: per["driver"], Format: "%.2f"},
		{Name: "added ms", Value: per["endpoint"] - per["none"] - per["driver"], Format: "%.2f"},
		{Name: "target ms", Value: 1, Format: "≤ %.0f"},
	}})
	return rows, nil
}

func ptrTo[T any](v T) *T { return &v }
