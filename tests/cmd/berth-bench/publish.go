package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/journal"
)

func init() {
	benches["publish"] = bench{"one JetStream publish, as the journal makes them, on this machine: plain vs atomic batches, file stream with and without SyncAlways vs memory", benchPublish}
}

// benchPublish measures the floor under every journal append: the
// round trip of one plain publish and of one atomic batch, one at a time,
// on an embedded server. The journal commits a lone event as a plain
// publish and anything larger as an atomic batch.
func benchPublish(ctx context.Context, short bool) ([]Row, error) {
	n := 500
	if short {
		n = 100
	}
	var rows []Row
	for _, c := range []struct {
		label      string
		storage    jetstream.StorageType
		syncAlways bool
	}{
		{"file, SyncAlways", jetstream.FileStorage, true},
		{"file", jetstream.FileStorage, false},
		{"memory", jetstream.MemoryStorage, false},
	} {
		r, err := publishCosts(ctx, c.label, c.storage, c.syncAlways, n)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", c.label, err)
		}
		rows = append(rows, r...)
	}
	return rows, nil
}

// tempServer starts an embedded server in a fresh directory and connects
// to it; stop closes the connection, shuts the server down and removes the
// directory.
func tempServer(ctx context.Context, syncAlways bool) (nc *nats.Conn, stop func(), err error) {
	dir, err := os.MkdirTemp("", "berth-bench-")
	if err != nil {
		return nil, nil, err
	}
	srv, err := journal.StartServer(ctx, journal.ServerOptions{DataDir: dir, SyncAlways: syncAlways})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, nil, err
	}
	stop = func() {
		if nc != nil {
			nc.Close()
		}
		srv.Shutdown()
		_ = os.RemoveAll(dir)
	}
	if nc, err = srv.Connect(); err != nil {
		stop()
		return nil, nil, err
	}
	return nc, stop, nil
}

func publishCosts(ctx context.Context, label string, storage jetstream.StorageType, syncAlways bool, n int) ([]Row, error) {
	nc, stop, err := tempServer(ctx, syncAlways)
	if err != nil {
		return nil, err
	}
	defer stop()
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, err
	}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{
		Name: "BENCH", Subjects: []string{events.NewSubjects("", benchNode).Events()}, Storage: storage, AllowAtomicPublish: true,
	}); err != nil {
		return nil, err
	}
	lc := &lifecycle{prefix: "p"}
	var rows []Row
	for _, size := range []int{1, 2, 8, 64} {
		var lat latencies
		for range n {
			msgs, err := lc.msgs(size)
			if err != nil {
				return nil, err
			}
			start := time.Now()
			if err := publishRaw(ctx, js, msgs, noFirstAck); err != nil {
				return nil, err
			}
			lat.add(time.Since(start))
		}
		what := "plain publish"
		if size > 1 {
			what = fmt.Sprintf("atomic batch of %d", size)
		}
		rows = append(rows, Row{Label: fmt.Sprintf("%s: %s", label, what), Figures: []Figure{
			{Name: "p50 ms", Value: ms(lat.pct(0.50)), Format: "%.3f"},
			{Name: "p90 ms", Value: ms(lat.pct(0.90)), Format: "%.3f"},
			{Name: "p99 ms", Value: ms(lat.pct(0.99)), Format: "%.3f"},
			{Name: "events/s", Value: float64(size) / lat.mean().Seconds()},
		}})
	}
	return rows, nil
}
