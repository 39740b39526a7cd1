package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/synadia-io/orbit.go/jetstreamext"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/journal"
)

const benchNode = "bench"

// journalFixture is an embedded server in a fresh directory with the
// journal of benchNode open on it.
type journalFixture struct {
	dir        string
	syncAlways bool
	srv        *journal.Server
	nc         *nats.Conn
	js         jetstream.JetStream
	j          *journal.Journal
}

func newJournalFixture(ctx context.Context, syncAlways bool, cfg journal.Config) (_ *journalFixture, err error) {
	f := &journalFixture{syncAlways: syncAlways}
	defer func() {
		if err != nil {
			f.close()
		}
	}()
	if f.dir, err = os.MkdirTemp("", "berth-bench-"); err != nil {
		return nil, err
	}
	if f.srv, err = journal.StartServer(ctx, journal.ServerOptions{DataDir: f.dir, SyncAlways: syncAlways}); err != nil {
		return nil, err
	}
	if f.nc, err = f.srv.Connect(); err != nil {
		return nil, err
	}
	if f.js, err = jetstream.New(f.nc); err != nil {
		return nil, err
	}
	cfg.Subjects = events.NewSubjects("", benchNode)
	if f.j, err = journal.Open(ctx, f.nc, cfg); err != nil {
		return nil, err
	}
	return f, nil
}

// restart shuts the server down cleanly and starts it again on the same
// store, as a restarted berthd does, and returns how long the start took
// (up to a connection). The fixture's journal is closed; open another.
//
// On start the server reads again every event still inside the stream's
// duplicates window (15 minutes), to rebuild its table of message ids. A
// bench writes its whole history within minutes, which a node does not: with
// aged set, the window is shortened to one second before the shutdown, so
// that the history is older than the window as on a node, and the start
// reads none of it. Journal.Open restores the window.
func (f *journalFixture) restart(ctx context.Context, aged bool) (time.Duration, error) {
	if aged {
		s, err := f.js.Stream(ctx, events.NewSubjects("", benchNode).EventStream())
		if err != nil {
			return 0, err
		}
		cfg := s.CachedInfo().Config
		cfg.Duplicates = time.Second
		if _, err := f.js.UpdateStream(ctx, cfg); err != nil {
			return 0, err
		}
		time.Sleep(time.Second)
	}
	_ = f.j.Close()
	f.nc.Close()
	f.srv.Shutdown()
	f.nc, f.srv = nil, nil
	start := time.Now()
	var err error
	if f.srv, err = journal.StartServer(ctx, journal.ServerOptions{DataDir: f.dir, SyncAlways: f.syncAlways}); err != nil {
		return 0, err
	}
	if f.nc, err = f.srv.Connect(); err != nil {
		return 0, err
	}
	took := time.Since(start)
	f.js, err = jetstream.New(f.nc)
	return took, err
}

func (f *journalFixture) close() {
	if f.j != nil {
		_ = f.j.Close()
	}
	if f.nc != nil {
		f.nc.Close()
	}
	if f.srv != nil {
		f.srv.Shutdown()
	}
	if f.dir != "" {
		_ = os.RemoveAll(f.dir)
	}
}

// journalMsg is the message of ev as Journal.Append publishes it.
func journalMsg(ev *events.Event) (*nats.Msg, error) {
	data, err := ev.Marshal()
	if err != nil {
		return nil, err
	}
	m := nats.NewMsg(events.NewSubjects("", benchNode).Event(ev.Kind(), ev.Subject))
	m.Header.Set(jetstream.MsgIDHeader, ev.ID)
	m.Header.Set(events.HeaderCommand, ev.Command)
	m.Data = data
	return m, nil
}

// lifecycle yields the events of one container after another, each living
// create, start, stop and remove with the command outcomes recorded, as the
// agent journals them.
type lifecycle struct {
	prefix string
	n      int // containers begun
	step   int
	id     string
	cmd    string
}

func (l *lifecycle) next() events.Event {
	if l.step == 0 {
		l.id = fmt.Sprintf("%s-%d", l.prefix, l.n)
		l.n++
	}
	if l.step%3 == 0 {
		l.cmd = events.NewID()
	}
	s := l.step
	l.step = (l.step + 1) % 12
	ev := func(typ string, data any) events.Event { return events.NewEvent(benchNode, typ, l.id, l.cmd, data) }
	done := func(verb string, p events.Phase) events.Event {
		return events.NewEvent(benchNode, events.NodeCommandCompleted, l.cmd, l.cmd, events.CommandCompletedData{
			Verb: verb, Container: l.id, Reply: events.NewReply(l.cmd, events.ContainerResult{Container: l.id, Phase: p}, nil)})
	}
	switch s {
	case 0:
		return ev(events.ContainerCreating, events.CreatingData{Spec: benchSpec(l.id), Owner: "berth"})
	case 1:
		return ev(events.ContainerCreated, events.CreatedData{HostID: "berth-" + l.id})
	case 2:
		return done(events.VerbCreate, events.PhaseCreated)
	case 3:
		return ev(events.ContainerStarting, nil)
	case 4:
		return ev(events.ContainerStarted, events.StartedData{Pid: 4100 + l.n})
	case 5:
		return done(events.VerbStart, events.PhaseRunning)
	case 6:
		return ev(events.ContainerStopping, events.StoppingData{Timeout: events.Duration(30 * time.Second)})
	case 7:
		return ev(events.ContainerExited, events.Exit{Code: events.ExitCode(0), Reason: events.ReasonExited, FinishedAt: time.Now().UTC()})
	case 8:
		return done(events.VerbStop, events.PhaseExited)
	case 9:
		return ev(events.ContainerRemoving, nil)
	case 10:
		return ev(events.ContainerRemoved, nil)
	default:
		return done(events.VerbRemove, events.PhaseRemoved)
	}
}

// benchSpec is a create request of the size a real one has.
func benchSpec(id string) events.ContainerSpec {
	return events.ContainerSpec{
		Image:     events.ImageSpec{Ref: "mcr.microsoft.com/windows/servercore/iis:windowsservercore-ltsc2022", PullPolicy: "if_not_present"},
		Command:   events.CommandSpec{Entrypoint: []string{"C:\\ServiceMonitor.exe"}, Args: []string{"w3svc"}, Workdir: "C:\\inetpub\\wwwroot"},
		Env:       map[string]string{"MODE": "prod", "SERVICE": "web", "INSTANCE": id, "LOG_LEVEL": "info", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://10.200.0.5:4317"},
		User:      "ContainerUser",
		Hostname:  "web-" + id[max(0, len(id)-8):],
		Resources: events.Resources{CPU: 1.5, Memory: 512 << 20},
		Network: events.NetworkSpec{Mode: "overlay", IP: "10.200.0.18",
			DNS: events.DNSSpec{Servers: []string{"10.200.0.2"}, Domain: "service.local", Search: []string{"service.local"}}},
		Ports:  []events.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, {HostPort: 8443, ContainerPort: 443}},
		Mounts: []events.Mount{{Source: "D:\\data\\web", Target: "C:\\data", ReadOnly: true}, {Source: "D:\\logs\\" + id, Target: "C:\\logs"}},
		Labels: map[string]string{"service": "web", "replica": id, "team": "platform"},
		Stop:   events.StopSpec{Timeout: events.Duration(30 * time.Second)},
	}
}

const writers = 64

// benchJournal compares durable appends through the journal with raw
// JetStream publishing on the same kind of server, all with SyncAlways.
func benchJournal(ctx context.Context, short bool) ([]Row, error) {
	dur, rounds := 4*time.Second, 5
	if short {
		dur, rounds = 1500*time.Millisecond, 2
	}
	kinds := []struct {
		label string
		run   func(context.Context, time.Duration) (rate, perBatch float64, err error)
	}{
		{"journal Append, 64 writers, 1 event each", journalAppends},
		{"raw publish, one at a time", func(ctx context.Context, d time.Duration) (float64, float64, error) {
			return rawPublishes(ctx, d, 1)
		}},
		{"raw atomic batches of 100", func(ctx context.Context, d time.Duration) (float64, float64, error) {
			return rawPublishes(ctx, d, 100)
		}},
		// The library's default above waits for the server to take the
		// first message before it sends the rest; the journal does not.
		{"raw atomic batches of 100, first not acknowledged", func(ctx context.Context, d time.Duration) (float64, float64, error) {
			return rawPublishes(ctx, d, 100, noFirstAck)
		}},
	}
	const rawBatched = 2
	// Rounds interleave the kinds, each on a fresh server, so that changes
	// in machine load and disk latency hit them alike. Rates are medians
	// over the rounds; ratios are medians of the ratios within a round.
	rates := make([][]float64, len(kinds))
	batches := make([][]float64, len(kinds))
	for range rounds {
		for i, k := range kinds {
			r, b, err := k.run(ctx, dur)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", k.label, err)
			}
			rates[i] = append(rates[i], r)
			batches[i] = append(batches[i], b)
		}
	}
	var rows []Row
	for i, k := range kinds {
		ratios := make([]float64, rounds)
		for r := range rounds {
			ratios[r] = 100 * rates[i][r] / rates[rawBatched][r]
		}
		rows = append(rows, Row{Label: k.label, Figures: []Figure{
			{Name: "events/s", Value: median(rates[i])},
			{Name: "of raw batched", Value: median(ratios), Format: "%.0f%%"},
			{Name: "lowest", Value: slices.Min(ratios), Format: "%.0f%%"},
			{Name: "highest", Value: slices.Max(ratios), Format: "%.0f%%"},
			{Name: "events/batch", Value: median(batches[i]), Format: "%.1f"},
			{Name: "rounds", Value: float64(rounds)},
		}})
	}
	return rows, nil
}

// journalAppends runs 64 writers, each appending one event per call, for
// d, and returns the durable events per second and the mean batch size.
func journalAppends(ctx context.Context, d time.Duration) (rate, perBatch float64, err error) {
	var batches, durable atomic.Int64
	f, err := newJournalFixture(ctx, true, journal.Config{OnDurable: func(evs []events.Event) {
		batches.Add(1)
		durable.Add(int64(len(evs)))
	}})
	if err != nil {
		return 0, 0, err
	}
	defer f.close()
	if _, err := f.j.Boot(ctx); err != nil {
		return 0, 0, err
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	start := time.Now()
	deadline := start.Add(d)
	for w := range writers {
		wg.Go(func() {
			lc := &lifecycle{prefix: fmt.Sprintf("w%d", w)}
			for time.Now().Before(deadline) {
				if _, err := f.j.Append(ctx, lc.next()); err != nil {
					mu.Lock()
					errs = append(errs, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := errors.Join(errs...); err != nil {
		return 0, 0, err
	}
	return float64(durable.Load()) / elapsed.Seconds(), float64(durable.Load()) / float64(batches.Load()), nil
}

// rawPublishes publishes lifecycle events for d, one at a time (batch 1)
// or in atomic batches, waiting for each acknowledgement.
func rawPublishes(ctx context.Context, d time.Duration, batch int, opts ...jetstreamext.PublishMsgBatchOpt) (rate, perBatch float64, err error) {
	f, err := newJournalFixture(ctx, true, journal.Config{})
	if err != nil {
		return 0, 0, err
	}
	defer f.close()
	lc := &lifecycle{prefix: "raw"}
	n := 0
	start := time.Now()
	for time.Since(start) < d {
		msgs, err := lc.msgs(batch)
		if err != nil {
			return 0, 0, err
		}
		if err := publishRaw(ctx, f.js, msgs, opts...); err != nil {
			return 0, 0, err
		}
		n += batch
	}
	return float64(n) / time.Since(start).Seconds(), float64(batch), nil
}

// noFirstAck is the flow control of the journal's batches: no
// acknowledgement before the commit's.
var noFirstAck = jetstreamext.BatchFlowControl{AckFirst: false}

// msgs returns the messages of l's next n events.
func (l *lifecycle) msgs(n int) ([]*nats.Msg, error) {
	msgs := make([]*nats.Msg, n)
	for i := range msgs {
		ev := l.next()
		m, err := journalMsg(&ev)
		if err != nil {
			return nil, err
		}
		msgs[i] = m
	}
	return msgs, nil
}

// publishRaw publishes one message as a plain publish, and more as one
// atomic batch, and waits for the acknowledgement.
func publishRaw(ctx context.Context, js jetstream.JetStream, msgs []*nats.Msg, opts ...jetstreamext.PublishMsgBatchOpt) error {
	if len(msgs) == 1 {
		_, err := js.PublishMsg(ctx, msgs[0])
		return err
	}
	_, err := jetstreamext.PublishMsgBatch(ctx, js, msgs, opts...)
	return err
}

// benchReplay compares Boot, which decodes and folds every event, with a
// raw ordered consumer that only receives them.
func benchReplay(ctx context.Context, short bool) ([]Row, error) {
	n, rounds := 1_000_000, 3
	if short {
		n, rounds = 50_000, 1
	}
	// Filling the stream need not fsync; reading is the same either way.
	f, err := newJournalFixture(ctx, false, journal.Config{})
	if err != nil {
		return nil, err
	}
	defer f.close()
	if _, err := f.j.Boot(ctx); err != nil {
		return nil, err
	}
	// 1,000 containers at a time, their lifecycles interleaved.
	lcs := make([]*lifecycle, 1000)
	for i := range lcs {
		lcs[i] = &lifecycle{prefix: fmt.Sprintf("r%d", i)}
	}
	buf := make([]events.Event, 0, journal.MaxBatch)
	for written, k := 0, 0; written < n; written += len(buf) {
		buf = buf[:0]
		for len(buf) < min(journal.MaxBatch, n-written) {
			buf = append(buf, lcs[k%len(lcs)].next())
			k++
		}
		if _, err := f.j.Append(ctx, buf...); err != nil {
			return nil, err
		}
	}

	var boots, raws []replayRun
	var containers int
	for range rounds {
		j, err := journal.Open(ctx, f.nc, journal.Config{Subjects: events.NewSubjects("", benchNode)})
		if err != nil {
			return nil, err
		}
		var st *events.State
		run, err := measureRead(n, func() (err error) {
			st, err = j.Boot(ctx)
			return err
		})
		_ = j.Close()
		if err != nil {
			return nil, err
		}
		if st.Seq != uint64(n) {
			return nil, fmt.Errorf("boot folded up to sequence %d, want %d", st.Seq, n)
		}
		containers = len(st.Containers)
		boots = append(boots, run)

		run, err = measureRead(n, func() error { return rawReplay(ctx, f, n) })
		if err != nil {
			return nil, err
		}
		raws = append(raws, run)
	}
	// Each round reads with Boot and then with the raw consumer, so that
	// changes in machine load hit both alike: Boot's share of raw is the
	// median of its shares within a round.
	shares := make([]float64, rounds)
	for i := range shares {
		shares[i] = 100 * boots[i].rate / raws[i].rate
	}
	row := func(label string, runs []replayRun, ofRaw float64) Row {
		rate := medianOf(runs, func(r replayRun) float64 { return r.rate })
		return Row{Label: label, Figures: []Figure{
			{Name: "events/s", Value: rate},
			{Name: "of raw", Value: ofRaw, Format: "%.0f%%"},
			{Name: "µs/event", Value: 1e6 / rate, Format: "%.2f"},
			{Name: "CPU µs/event", Value: medianOf(runs, func(r replayRun) float64 { return r.cpu }), Format: "%.2f"},
			{Name: "alloc B/event", Value: medianOf(runs, func(r replayRun) float64 { return r.alloc }), Format: "%.0f"},
			{Name: "rounds", Value: float64(rounds)},
		}}
	}
	return []Row{
		row(fmt.Sprintf("Boot: decode + fold %d events (%d containers left)", n, containers), boots, median(shares)),
		row("raw ordered consumer, receive only", raws, 100),
	}, nil
}

// replayRun is what one read of the stream took: events per second, and
// per event the process's CPU time in µs (the embedded server's included;
// 0 where the platform does not tell) and the bytes the process allocated.
type replayRun struct{ rate, cpu, alloc float64 }

// measureRead runs read, which reads n events, and measures it.
func measureRead(n int, read func() error) (replayRun, error) {
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	cpu0, _ := processCPU()
	start := time.Now()
	err := read()
	el := time.Since(start)
	cpu1, _ := processCPU()
	runtime.ReadMemStats(&m1)
	return replayRun{
		rate:  float64(n) / el.Seconds(),
		cpu:   float64((cpu1 - cpu0).Microseconds()) / float64(n),
		alloc: float64(m1.TotalAlloc-m0.TotalAlloc) / float64(n),
	}, err
}

// rawReplay reads n events from the start of the stream with an ordered
// consumer, and nothing else.
func rawReplay(ctx context.Context, f *journalFixture, n int) error {
	oc, err := f.js.OrderedConsumer(ctx, events.NewSubjects("", benchNode).EventStream(), jetstream.OrderedConsumerConfig{})
	if err != nil {
		return err
	}
	it, err := oc.Messages()
	if err != nil {
		return err
	}
	defer it.Stop()
	for range n {
		if _, err := it.Next(jetstream.NextContext(ctx)); err != nil {
			return err
		}
	}
	return nil
}

func medianOf[T any](runs []T, f func(T) float64) float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = f(r)
	}
	return median(v)
}

func median(v []float64) float64 {
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 0 {
		return (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return s[len(s)/2]
}
