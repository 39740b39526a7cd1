package main

import (
	"context"
	"fmt"
	"time"

	"github.com/rs/zerolog"

	"github.com/berthhq/berth/actors"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/journal"
	"github.com/berthhq/berth/winsim"
)

func init() {
	benches["boot"] = bench{"boot to ready (replay, then reconcile: observe, plan, adopt) with 10,000 running containers, by journal length, with and without a snapshot at the tail", benchBoot}
}

// benchBoot fills one node's journal with 10,000 running containers and
// then with lifecycles of other containers up to each history length, and
// measures how long a new agent takes from opening the journal to the end
// of reconciliation (when it would start reading commands): once with no
// snapshot, once with a snapshot at the tail. The 10,000 containers run on
// the simulated host, so reconciliation observes and adopts each of them.
func benchBoot(ctx context.Context, short bool) ([]Row, error) {
	live, sizes := 10_000, []int{100_000, 1_000_000, 3_000_000}
	if short {
		live, sizes = 1_000, []int{20_000, 100_000}
	}
	f, err := newJournalFixture(ctx, false, journal.Config{})
	if err != nil {
		return nil, err
	}
	defer f.close()
	if _, err := f.j.Boot(ctx); err != nil {
		return nil, err
	}
	host := winsim.New()
	defer host.Close()
	hcs := host.Compute()
	defer hcs.Abandon()
	st := events.NewState(benchNode, events.DefaultWindow)
	var buf []events.Event
	flush := func() error {
		evs, err := f.j.Append(ctx, buf...)
		if err != nil {
			return err
		}
		for i := range evs {
			if err := st.Apply(&evs[i]); err != nil {
				return err
			}
		}
		buf = buf[:0]
		return nil
	}
	add := func(ev events.Event) error {
		buf = append(buf, ev)
		if len(buf) == journal.MaxBatch {
			return flush()
		}
		return nil
	}
	// The live containers, as the agent journals a run, each running
	// ping -t on the host.
	for i := range live {
		id := fmt.Sprintf("live-%d", i)
		sys, err := hcs.Create(ctx, id, hcsdriver.Config{Owner: "berth"})
		if err != nil {
			return nil, err
		}
		if err := sys.Start(ctx); err != nil {
			return nil, err
		}
		p, err := sys.CreateProcess(ctx, hcsdriver.ProcessConfig{CommandLine: "ping -t localhost"})
		if err != nil {
			return nil, err
		}
		cmd := events.NewID()
		ev := func(typ string, data any) events.Event { return events.NewEvent(benchNode, typ, id, cmd, data) }
		for _, e := range []events.Event{
			ev(events.ContainerCreating, events.CreatingData{Spec: benchSpec(id), Owner: "berth"}),
			ev(events.ContainerCreated, events.CreatedData{HostID: id}),
			ev(events.ContainerStarting, nil),
			ev(events.ContainerStarted, events.StartedData{Pid: p.Pid()}),
			events.NewEvent(benchNode, events.NodeCommandCompleted, cmd, cmd, events.CommandCompletedData{
				Verb: events.VerbRun, Container: id, Reply: events.NewReply(cmd, events.ContainerResult{Container: id, Phase: events.PhaseRunning}, nil)}),
		} {
			if err := add(e); err != nil {
				return nil, err
			}
		}
	}
	lcs := make([]*lifecycle, 1000)
	for i := range lcs {
		lcs[i] = &lifecycle{prefix: fmt.Sprintf("h%d", i)}
	}
	// A booted node appends (its reconciliation), which fences the
	// writer: it takes over from the new end.
	reopen := func() error {
		_ = f.j.Close()
		if f.j, err = journal.Open(ctx, f.nc, journal.Config{Subjects: events.NewSubjects("", benchNode)}); err != nil {
			return err
		}
		st, err = f.j.Boot(ctx)
		return err
	}
	var rows []Row
	k := 0
	for _, size := range sizes {
		// Whole lifecycles only, so that only the live containers remain.
		for int(st.Seq)+len(buf) < size || k%(len(lcs)*12) != 0 {
			if err := add(lcs[k%len(lcs)].next()); err != nil {
				return nil, err
			}
			k++
		}
		if err := flush(); err != nil {
			return nil, err
		}
		kv, err := f.js.KeyValue(ctx, events.NewSubjects("", benchNode).SnapshotBucket())
		if err != nil {
			return nil, err
		}
		_ = kv.Purge(ctx, "head") // no snapshot
		// The server's start with the whole history inside the duplicates
		// window, as only a node that wrote it all in the last 15 minutes
		// would have it.
		fresh, err := f.restart(ctx, false)
		if err != nil {
			return nil, err
		}
		cold, err := bootOnce(ctx, f, host, live)
		if err != nil {
			return nil, fmt.Errorf("%d events, no snapshot: %w", st.Seq, err)
		}
		if err := reopen(); err != nil {
			return nil, err
		}
		if err := f.j.SaveSnapshot(ctx, st.Clone()); err != nil {
			return nil, err
		}
		warm, err := bootOnce(ctx, f, host, live)
		if err != nil {
			return nil, fmt.Errorf("%d events, snapshot: %w", st.Seq, err)
		}
		if err := reopen(); err != nil {
			return nil, err
		}
		for _, b := range []struct {
			what string
			r    bootResult
		}{{"no snapshot", cold}, {"snapshot at the tail", warm}} {
			rows = append(rows, Row{Label: fmt.Sprintf("%d events, %d running, %s", st.Seq, live, b.what), Figures: []Figure{
				msFigure("nats (fresh) ms", fresh),
				msFigure("nats ms", b.r.nats),
				msFigure("open ms", b.r.open),
				msFigure("last ms", b.r.stats.Lookup),
				msFigure("snap get ms", b.r.stats.SnapshotGet),
				msFigure("snap decode ms", b.r.stats.SnapshotDecode),
				{Name: "tail events", Value: float64(b.r.stats.TailEvents)},
				msFigure("tail ms", b.r.stats.Tail),
				msFigure("spawn ms", b.r.spawn),
				{Name: "replay s", Value: b.r.replay.Seconds(), Format: "%.2f"},
				{Name: "reconcile s", Value: b.r.reconcile.Seconds(), Format: "%.2f"},
				{Name: "boot to ready s", Value: (b.r.replay + b.r.reconcile).Seconds(), Format: "%.2f"},
				{Name: "with nats s", Value: (b.r.nats + b.r.replay + b.r.reconcile).Seconds(), Format: "%.2f"},
			}})
		}
	}
	return rows, nil
}

// bootResult is where one boot spent its time. replay runs from opening
// the journal to the actors being spawned; nats is the embedded server's
// start on the existing store (stream recovery) before that, with the
// history older than the duplicates window (see journalFixture.restart).
type bootResult struct {
	nats, open, spawn, replay, reconcile time.Duration
	stats                                journal.BootStats
}

// msFigure is d in whole milliseconds.
func msFigure(name string, d time.Duration) Figure {
	return Figure{Name: name, Value: ms(d), Format: "%.0f"}
}

// bootOnce restarts the embedded server on its store, then starts a node
// on the journal and the host as berthd does, up to the end of
// reconciliation, and stops it again.
func bootOnce(ctx context.Context, f *journalFixture, host *winsim.Host, live int) (bootResult, error) {
	var r bootResult
	took, err := f.restart(ctx, true)
	if err != nil {
		return r, err
	}
	r.nats = took
	session := host.Compute()
	defer session.Abandon()
	n, err := actors.New(actors.Config{Node: benchNode, Compute: session, Logger: zerolog.Nop()})
	if err != nil {
		return r, err
	}
	start := time.Now()
	j, err := journal.Open(ctx, f.nc, journal.Config{Subjects: events.NewSubjects("", benchNode), OnDurable: n.Durable})
	if err != nil {
		return r, err
	}
	defer j.Close()
	r.open = time.Since(start)
	st, err := j.Boot(ctx)
	if err != nil {
		return r, err
	}
	r.stats = j.BootStats()
	spawn := time.Now()
	if err := n.Start(j, st); err != nil {
		return r, err
	}
	r.spawn = time.Since(spawn)
	r.replay = time.Since(start)
	rec, err := n.Reconcile(ctx)
	r.reconcile = time.Since(start) - r.replay
	sctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if serr := n.Shutdown(sctx); err == nil {
		err = serr
	}
	if err != nil {
		return r, err
	}
	if got := rec.Summary["adopt/ok"]; got != live {
		return r, fmt.Errorf("reconciliation adopted %d containers, want %d: %v", got, live, rec.Summary)
	}
	return r, nil
}
