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

// lifecycleDocs returns the journal documents of n containers going
// through create, start, stop and remove, each command's outcome recorded:
// the mix of event types a replay reads.
func lifecycleDocs(b testing.TB, n int) [][]byte {
	var docs [][]byte
	for i := range n {
		id := fmt.Sprintf("c%d", i)
		evs := created(id)
		r := ran(id)
		cmd := r[0].Command
		evs = append(evs, r[0], r[1], completed(cmd+"s", events.VerbStart, id, events.PhaseRunning),
			r[2], r[3], completed(cmd+"t", events.VerbStop, id, events.PhaseExited),
			r[4], r[5], completed(cmd+"r", events.VerbRemove, id, events.PhaseRemoved))
		docs = append(docs, marshalAll(b, evs)...)
	}
	return docs
}

// BenchmarkDecodeFold decodes and folds lifecycle documents on one
// goroutine, as a replay does without the server: the CPU a replay spends
// per event beyond receiving it.
func BenchmarkDecodeFold(b *testing.B) {
	docs := lifecycleDocs(b, 1000)
	in := new(interner)
	b.ReportAllocs()
	b.ResetTimer()
	n := 0
	for b.Loop() {
		st := events.NewState(node, events.DefaultWindow)
		for i, d := range docs {
			ev, data, err := decodeEvent(d, in, true)
			if err != nil {
				b.Fatal(err)
			}
			ev.Seq = uint64(i + 1)
			if err := st.ApplyDecoded(&ev, data); err != nil {
				b.Fatal(err)
			}
		}
		n += len(docs)
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(n), "ns/event")
}
