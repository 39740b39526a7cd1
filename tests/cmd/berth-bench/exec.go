package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/metrics"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
)

func init() {
	benches["exec"] = bench{"container output to a logs -f follower (lines/s), exec one-byte echo round trip, agent heap while an exec writes 100 MiB to a slow reader", benchExec}
}

// benchExec measures, on one agent over winsim: (1) lines/s from a
// container's init process through its pipe, the log writer and the log
// stream to a Client.Logs follower; (2) the round trip of one byte typed
// into an exec session of cmd /c more until its echo is back; (3) the heap
// of the process (agent, its embedded NATS server and the client) before
// and, at its peak, while an exec writes 100 MiB to a reader that takes 20
// MiB/s: in use (which the collector lets grow to about twice the live
// heap) and live after each collection.
func benchExec(ctx context.Context, short bool) ([]Row, error) {
	lines, echoes, volume := 100_000, 500, 100<<20
	if short {
		lines, echoes, volume = 20_000, 100, 20<<20
	}
	f, err := newAgentFixture(ctx, 32)
	if err != nil {
		return nil, err
	}
	defer f.close()
	var rows []Row
	row, err := execLogThroughput(ctx, f, lines)
	if err != nil {
		return nil, fmt.Errorf("log throughput: %w", err)
	}
	rows = append(rows, row)
	if _, err := f.client.Run(ctx, "shell", runSpec("ping", "-t", "localhost")); err != nil {
		return nil, err
	}
	if row, err = execEcho(ctx, f.client, echoes); err != nil {
		return nil, fmt.Errorf("echo: %w", err)
	}
	rows = append(rows, row)
	if row, err = execSlowReader(ctx, f.client, volume, 20<<20); err != nil {
		return nil, fmt.Errorf("slow reader: %w", err)
	}
	return append(rows, row), nil
}

// line is 80 bytes of output with its CRLF.
const benchLine = "0123456789abcdefghijklmnopqrstuvwxyz0123456789abcdefghijklmnopqrstuvwxyz"

func execLogThroughput(ctx context.Context, f *agentFixture, n int) (Row, error) {
	fctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	wait := followLines(fctx, f.client, "talker", n)
	start := time.Now()
	cmd := fmt.Sprintf("for /l %%i in (1,1,%d) do @echo %s %%i", n, benchLine)
	if _, err := f.client.Run(ctx, "talker", runSpec("cmd", "/c", cmd)); err != nil {
		return Row{}, err
	}
	end, err := wait()
	if err != nil {
		return Row{}, err
	}
	return Row{Label: fmt.Sprintf("%d lines of ~80 B: container → log stream → logs -f", n), Figures: []Figure{
		{Name: "lines/s", Value: float64(n) / end.Sub(start).Seconds()},
	}}, nil
}

// signalWriter reports each write on a channel.
type signalWriter struct{ c chan []byte }

func (w signalWriter) Write(p []byte) (int, error) {
	w.c <- bytes.Clone(p)
	return len(p), nil
}

func execEcho(ctx context.Context, client *control.Client, n int) (Row, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	in, typist := io.Pipe()
	out := signalWriter{c: make(chan []byte, 16)}
	done := make(chan error, 1)
	go func() {
		_, err := client.Exec(ctx, "shell", events.ExecSpec{Command: []string{"cmd", "/c", "more"}, Stdin: true},
			control.ExecStreams{Stdin: in, Stdout: out})
		done <- err
	}()
	var l latencies
	for i := 0; i < n; i++ {
		start := time.Now()
		if _, err := io.WriteString(typist, "x\n"); err != nil {
			return Row{}, err
		}
		select {
		case b := <-out.c:
			if string(b) != "x\r\n" {
				return Row{}, fmt.Errorf("echo %q, want %q", b, "x\r\n")
			}
		case err := <-done:
			return Row{}, fmt.Errorf("exec ended: %w", err)
		case <-time.After(10 * time.Second):
			return Row{}, errors.New("no echo within 10s")
		}
		l.add(time.Since(start))
	}
	typist.Close()
	if err := <-done; err != nil {
		return Row{}, err
	}
	return Row{Label: fmt.Sprintf("%d one-byte lines echoed by cmd /c more in one exec", n), Figures: []Figure{
		{Name: "p50 ms", Value: ms(l.pct(0.50)), Format: "%.2f"},
		{Name: "p99 ms", Value: ms(l.pct(0.99)), Format: "%.2f"},
	}}, nil
}

// slowWriter takes rate bytes a second.
type slowWriter struct {
	rate  int
	start time.Time
	n     int
}

func (w *slowWriter) Write(p []byte) (int, error) {
	if w.start.IsZero() {
		w.start = time.Now()
	}
	w.n += len(p)
	due := w.start.Add(time.Duration(float64(w.n) / float64(w.rate) * float64(time.Second)))
	time.Sleep(time.Until(due))
	return len(p), nil
}

// heapInUse samples the heap every 5ms until stop, and returns the largest
// heap in use (objects, reachable or not yet swept) and the largest live
// heap the collector marked (what survives a GC, the memory actually held).
func heapInUse() (stop func() (inUse, live uint64)) {
	sample := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}, {Name: "/gc/heap/live:bytes"}}
	var (
		mu         sync.Mutex
		peak, held uint64
	)
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(5 * time.Millisecond)
		defer t.Stop()
		for {
			metrics.Read(sample)
			mu.Lock()
			peak, held = max(peak, sample[0].Value.Uint64()), max(held, sample[1].Value.Uint64())
			mu.Unlock()
			select {
			case <-quit:
				return
			case <-t.C:
			}
		}
	}()
	return func() (uint64, uint64) { close(quit); <-done; return peak, held }
}

func execSlowReader(ctx context.Context, client *control.Client, volume, rate int) (Row, error) {
	line := strings.Repeat("y", 1022) // 1 KiB with CRLF
	n := volume / 1024
	base := heap()
	stop := heapInUse()
	w := &slowWriter{rate: rate}
	start := time.Now()
	x, err := client.Exec(ctx, "shell", events.ExecSpec{Command: []string{"cmd", "/c", fmt.Sprintf("for /l %%i in (1,1,%d) do @echo %s", n, line)}},
		control.ExecStreams{Stdout: w})
	peak, live := stop()
	took := time.Since(start)
	if err != nil {
		return Row{}, err
	}
	if w.n != n*1024 || x.Code == nil || *x.Code != 0 {
		return Row{}, fmt.Errorf("read %d bytes, exit %+v; want %d and 0", w.n, x, n*1024)
	}
	return Row{Label: fmt.Sprintf("%d MiB from an exec to a %d MiB/s reader", volume>>20, rate>>20), Figures: []Figure{
		{Name: "MiB/s", Value: float64(w.n) / (1 << 20) / took.Seconds(), Format: "%.1f"},
		{Name: "heap base MiB", Value: float64(base) / (1 << 20), Format: "%.1f"},
		{Name: "heap peak MiB", Value: float64(peak) / (1 << 20), Format: "%.1f"},
		{Name: "live peak MiB", Value: float64(live) / (1 << 20), Format: "%.1f"},
	}}, nil
}
