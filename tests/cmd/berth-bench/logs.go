package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/journal"
)

func init() {
	benches["logs"] = bench{"lines/s of one container's output (80-byte lines) through the log writer and stream to a Client.Logs follower", benchLogs}
}

// benchLogs writes n lines through the journal's log writer, as the
// agent's Output hook does, while a follower on a second connection reads
// them with Client.Logs, and reports the lines per second that reached the
// follower, timed from the first write to the last line read. The server
// syncs every write or not (SyncAlways, the journal's setting); the log
// stream persists asynchronously either way (journal.Open).
func benchLogs(ctx context.Context, short bool) ([]Row, error) {
	n := 200_000
	if short {
		n = 50_000
	}
	var rows []Row
	for _, sync := range []bool{false, true} {
		rate, c, err := logsThroughput(ctx, n, sync)
		if err != nil {
			return nil, err
		}
		rows = append(rows, Row{Label: fmt.Sprintf("%d lines, server SyncAlways=%v", n, sync), Figures: []Figure{
			{Name: "lines/s", Value: rate},
			{Name: "MB/s", Value: rate * 81 / 1e6, Format: "%.1f"},
			{Name: "dropped", Value: float64(c.Dropped)},
			{Name: "failed", Value: float64(c.Failed)},
		}})
	}
	return rows, nil
}

func logsThroughput(ctx context.Context, n int, syncAlways bool) (float64, journal.LogCounts, error) {
	f, err := newJournalFixture(ctx, syncAlways, journal.Config{})
	if err != nil {
		return 0, journal.LogCounts{}, err
	}
	defer f.close()
	cnc, err := f.srv.Connect()
	if err != nil {
		return 0, journal.LogCounts{}, err
	}
	defer cnc.Close()
	client, err := control.NewClient(cnc, benchNode)
	if err != nil {
		return 0, journal.LogCounts{}, err
	}
	input := strings.Repeat(strings.Repeat("x", 80)+"\n", n)
	fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	wait := followLines(fctx, client, "talker", n)
	start := time.Now()
	w := f.j.Logs()
	w.Copy("talker", events.Stdout, strings.NewReader(input))
	c := w.Counts()
	if c.Dropped > 0 || c.Failed > 0 {
		cancel() // the follower would wait for lines that never come
	}
	end, err := wait()
	if err != nil {
		return 0, c, err
	}
	return float64(n) / end.Sub(start).Seconds(), w.Counts(), nil
}

// followLines follows the log stream of container on client, from its
// start, in a goroutine until n lines are read. The returned wait blocks
// until then and returns when the last line arrived, or an error naming
// how many lines were read if the follower ended before.
func followLines(ctx context.Context, client *control.Client, container string, n int) (wait func() (time.Time, error)) {
	got, done := 0, make(chan error, 1)
	var end time.Time
	enough := errors.New("all lines read")
	go func() {
		done <- client.Logs(ctx, container, control.LogsOptions{Follow: true}, func(control.LogLine) error {
			if got++; got == n {
				end = time.Now()
				return enough
			}
			return nil
		})
	}()
	return func() (time.Time, error) {
		if err := <-done; !errors.Is(err, enough) {
			return time.Time{}, fmt.Errorf("follower read %d of %d lines: %w", got, n, err)
		}
		return end, nil
	}
}
