package journal

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/berthhq/berth/events"
)

// benchEvent is a typical small lifecycle event.
func benchEvent(i int64) events.Event {
	return events.NewEvent(node, events.ContainerStarted, fmt.Sprintf("c%d", i%1000), "", events.StartedData{Pid: int(i)})
}

func reportRate(b *testing.B, n int) {
	b.ReportMetric(float64(n)/b.Elapsed().Seconds(), "events/s")
}

// BenchmarkAppend64 appends one event per call from 64 goroutines, with
// SyncAlways: the writer's group commit is what keeps the rate up.
func BenchmarkAppend64(b *testing.B) {
	s := startServer(b, "")
	j := open(b, s, Config{})
	boot(b, j)
	var i atomic.Int64
	b.SetParallelism(max(1, 64/runtime.GOMAXPROCS(0)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		ctx := testCtx(b)
		for pb.Next() {
			if _, err := j.Append(ctx, benchEvent(i.Add(1))); err != nil {
				b.Error(err)
				return
			}
		}
	})
	reportRate(b, b.N)
}

// BenchmarkRawPublish publishes one event at a time, waiting for each ack.
func BenchmarkRawPublish(b *testing.B) {
	s := startServer(b, "")
	j := open(b, s, Config{})
	js := rawJS(b, s)
	ctx := testCtx(b)
	b.ResetTimer()
	for i := range b.N {
		ev := benchEvent(int64(i))
		w, err := j.encode(&ev)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := js.PublishMsg(ctx, w.msg()); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, b.N)
}

// BenchmarkRawBatch100 publishes atomic batches of 100 events.
func BenchmarkRawBatch100(b *testing.B) {
	s := startServer(b, "")
	j := open(b, s, Config{})
	js := rawJS(b, s)
	ctx := testCtx(b)
	b.ResetTimer()
	for i := 0; i < b.N; i += 100 {
		msgs := make([]*nats.Msg, 0, 100)
		for k := range 100 {
			ev := benchEvent(int64(i + k))
			w, err := j.encode(&ev)
			if err != nil {
				b.Fatal(err)
			}
			msgs = append(msgs, w.msg())
		}
		if _, err := jetstreamext.PublishMsgBatch(ctx, js, msgs); err != nil {
			b.Fatal(err)
		}
	}
	reportRate(b, (b.N+99)/100*100)
}

// BenchmarkBoot folds a journal of lifecycle events with specs, without a
// snapshot, next to a raw ordered consumer reading the same stream.
func BenchmarkBoot(b *testing.B) {
	const containers = 2000
	s := startServer(b, "")
	j := open(b, s, Config{})
	boot(b, j)
	var evs []events.Event
	for _, g := range workload(containers) {
		evs = append(evs, g...)
	}
	for i := 0; i < len(evs); i += MaxBatch {
		appendAll(b, j, evs[i:min(i+MaxBatch, len(evs))])
	}
	n := len(evs)
	b.Run("boot", func(b *testing.B) {
		for range b.N {
			j := open(b, s, Config{})
			if _, err := j.Boot(testCtx(b)); err != nil {
				b.Fatal(err)
			}
		}
		reportRate(b, b.N*n)
	})
	b.Run("raw", func(b *testing.B) {
		ctx := testCtx(b)
		for range b.N {
			oc, err := j.evt.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
			if err != nil {
				b.Fatal(err)
			}
			it, err := oc.Messages()
			if err != nil {
				b.Fatal(err)
			}
			for range n {
				if _, err := it.Next(); err != nil {
					b.Fatal(err)
				}
			}
			it.Stop()
		}
		reportRate(b, b.N*n)
	})
}
