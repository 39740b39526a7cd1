package winsim_test

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/hcsdriver/hcsdrivertest"
	"github.com/berthhq/berth/winsim"
)

func TestConformance(t *testing.T) {
	h := winsim.New()
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	hcsdrivertest.Run(t, hcsdrivertest.Harness{
		NewDriver: func(t *testing.T) hcsdriver.Driver { return h.Compute() },
		Owner:     "berth-test",
	})
	if st := h.Snapshot(); len(st.Systems) != 0 {
		t.Errorf("the suite left systems behind: %+v", st.Systems)
	}
}

// t0 is the manual clock's start in these tests.
var t0 = time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)

// newHost returns a host on a manual clock, closed at the end of the test.
func newHost(t *testing.T, opts ...winsim.Option) (*winsim.Host, *winsim.ManualClock) {
	t.Helper()
	clock := winsim.NewManualClock(t0)
	h := winsim.New(append([]winsim.Option{winsim.WithClock(clock)}, opts...)...)
	t.Cleanup(func() {
		if err := h.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return h, clock
}

// running creates and starts system id.
func running(t *testing.T, d hcsdriver.Driver, id string, cfg hcsdriver.Config) hcsdriver.System {
	t.Helper()
	s, err := d.Create(testCtx(t), id, cfg)
	if err != nil {
		t.Fatalf("Create: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Start(testCtx(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

func spawn(t *testing.T, s hcsdriver.System, cfg hcsdriver.ProcessConfig) hcsdriver.Process {
	t.Helper()
	p, err := s.CreateProcess(testCtx(t), cfg)
	if err != nil {
		t.Fatalf("CreateProcess(%q): %v", cfg.CommandLine, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

func exitCode(t *testing.T, p hcsdriver.Process) int {
	t.Helper()
	if err := p.Wait(testCtx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	code, err := p.ExitCode()
	if err != nil {
		t.Fatalf("ExitCode: %v", err)
	}
	return code
}

func TestStopExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name     string
		stop     func(*winsim.Host, hcsdriver.System) error
		code     int
		waitErr  error
		exitType string
	}{
		{"shutdown", func(_ *winsim.Host, s hcsdriver.System) error { return s.Shutdown(context.Background()) }, winsim.ExitCodeShutdown, nil, ""},
		{"terminate", func(_ *winsim.Host, s hcsdriver.System) error { return s.Terminate(context.Background()) }, winsim.ExitCodeKilled, nil, ""},
		{"crash", func(h *winsim.Host, s hcsdriver.System) error { return h.CrashSystem(s.ID()) }, winsim.ExitCodeKilled, hcsdriver.ErrUnexpectedExit, winsim.ExitTypeUnexpected},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _ := newHost(t)
			s := running(t, h.Compute(), "c1", hcsdriver.Config{})
			p := spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "ping -t 127.0.0.1"})
			if err := tc.stop(h, s); err != nil {
				t.Fatalf("stop: %v", err)
			}
			if err := s.Wait(testCtx(t)); !errors.Is(err, tc.waitErr) || (err == nil) != (tc.waitErr == nil) {
				t.Errorf("Wait = %v, want %v", err, tc.waitErr)
			}
			if got := exitCode(t, p); got != tc.code {
				t.Errorf("process exit code %d, want %d", got, tc.code)
			}
			info, err := s.Properties(testCtx(t))
			if err != nil || info.ExitType != tc.exitType || !info.Stopped {
				t.Errorf("Properties = %+v, %v; want stopped, exit type %q", info, err, tc.exitType)
			}
		})
	}
}

func TestKillExitCode(t *testing.T) {
	h, _ := newHost(t)
	s := running(t, h.Compute(), "c1", hcsdriver.Config{})
	p := spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "ping -t 127.0.0.1"})
	if err := p.Kill(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := exitCode(t, p); got != winsim.ExitCodeKilled {
		t.Errorf("exit code %d, want %d", got, winsim.ExitCodeKilled)
	}
}

func TestGracefulStopTakesProfileStopping(t *testing.T) {
	h, clock := newHost(t, winsim.WithProfile(winsim.Profile{Stopping: 2 * time.Second}))
	s := running(t, h.Compute(), "c1", hcsdriver.Config{})
	p := spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "ping -t 127.0.0.1"})
	if err := s.Shutdown(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if got := exitCode(t, p); got != winsim.ExitCodeShutdown {
		t.Errorf("process exit code %d, want %d", got, winsim.ExitCodeShutdown)
	}
	if info, _ := s.Properties(testCtx(t)); info.State != hcsdriver.StateRunning {
		t.Errorf("state %s right after Shutdown, want Running until the stop completes", info.State)
	}
	if _, err := s.CreateProcess(testCtx(t), hcsdriver.ProcessConfig{CommandLine: "cmd /c echo hi"}); !errors.Is(err, hcsdriver.ErrInvalidState) {
		t.Errorf("CreateProcess while stopping: %v, want ErrInvalidState", err)
	}
	if err := s.Shutdown(testCtx(t)); err != nil {
		t.Errorf("second Shutdown while stopping: %v", err)
	}
	clock.Advance(time.Second)
	if info, _ := s.Properties(testCtx(t)); info.State != hcsdriver.StateRunning {
		t.Errorf("state %s after 1s, want Running", info.State)
	}
	clock.Advance(time.Second)
	if info, _ := s.Properties(testCtx(t)); info.State != hcsdriver.StateStopped {
		t.Errorf("state %s after 2s, want Stopped", info.State)
	}
	if err := s.Wait(testCtx(t)); err != nil {
		t.Errorf("Wait: %v", err)
	}
}

func TestAbandon(t *testing.T) {
	h, _ := newHost(t)
	agent := h.Compute()
	live := running(t, agent, "live", hcsdriver.Config{Owner: "berth"})
	p := spawn(t, live, hcsdriver.ProcessConfig{CommandLine: "ping -t 127.0.0.1", Stdout: true})
	_, out, _, err := p.Stdio()
	if err != nil {
		t.Fatal(err)
	}
	dead := running(t, agent, "dead", hcsdriver.Config{Owner: "berth"})
	if err := dead.Terminate(testCtx(t)); err != nil {
		t.Fatal(err)
	}

	agent.Abandon()

	if _, err := agent.List(testCtx(t), ""); !errors.Is(err, hcsdriver.ErrClosed) {
		t.Errorf("List on an abandoned session: %v, want ErrClosed", err)
	}
	if _, err := live.Properties(testCtx(t)); !errors.Is(err, hcsdriver.ErrClosed) {
		t.Errorf("Properties through an abandoned handle: %v, want ErrClosed", err)
	}
	if _, err := p.ExitCode(); !errors.Is(err, hcsdriver.ErrClosed) {
		t.Errorf("ExitCode through an abandoned handle: %v, want ErrClosed", err)
	}
	if _, err := out.Read(make([]byte, 1)); !errors.Is(err, io.ErrClosedPipe) {
		t.Errorf("read of a dead agent's pipe: %v, want io.ErrClosedPipe", err)
	}

	next := h.Compute()
	infos, err := next.List(testCtx(t), "berth")
	if err != nil {
		t.Fatal(err)
	}
	want := []hcsdriver.Info{{ID: "live", Owner: "berth", State: hcsdriver.StateRunning}}
	if diff := cmp.Diff(want, infos); diff != "" {
		t.Errorf("List after the agent died (-want +got):\n%s", diff)
	}
	s, err := next.Open(testCtx(t), "live")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	q, err := s.OpenProcess(testCtx(t), p.Pid())
	if err != nil {
		t.Fatalf("OpenProcess of the guest that ran on: %v", err)
	}
	defer q.Close()
	if _, _, _, err := q.Stdio(); !errors.Is(err, hcsdriver.ErrInvalidState) {
		t.Errorf("Stdio of a reopened process: %v, want ErrInvalidState", err)
	}
}

func TestExitInitKeepsSiloRunning(t *testing.T) {
	h, _ := newHost(t)
	s := running(t, h.Compute(), "c1", hcsdriver.Config{})
	init := spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "ping -t 127.0.0.1"})
	exec := spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "ping -t 127.0.0.1"})
	if err := h.ExitInit("c1", 42); err != nil {
		t.Fatal(err)
	}
	if got := exitCode(t, init); got != 42 {
		t.Errorf("init exit code %d, want 42", got)
	}
	if err := h.ExitProcess("c1", exec.Pid(), 7); err != nil {
		t.Fatal(err)
	}
	if got := exitCode(t, exec); got != 7 {
		t.Errorf("exec exit code %d, want 7", got)
	}
	if err := h.ExitProcess("c1", exec.Pid(), 7); !errors.Is(err, hcsdriver.ErrNotFound) {
		t.Errorf("ExitProcess of an exited process: %v, want ErrNotFound", err)
	}
	if err := h.CrashSystem("nope"); !errors.Is(err, hcsdriver.ErrNotFound) {
		t.Errorf("CrashSystem of an unknown system: %v, want ErrNotFound", err)
	}
	if info, _ := s.Properties(testCtx(t)); info.State != hcsdriver.StateRunning {
		t.Errorf("state %s after init exited, want Running", info.State)
	}
}

func TestUndrainedOutputBlocksGuest(t *testing.T) {
	h, clock := newHost(t)
	s := running(t, h.Compute(), "c1", hcsdriver.Config{})
	p := spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "ping -n 3 127.0.0.1", Stdout: true})
	_, out, _, err := p.Stdio()
	if err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Minute) // far past its schedule, but nobody reads
	if ps := h.Snapshot().Systems[0].Processes[0]; ps.Exited {
		t.Fatalf("guest exited without its output being read: %+v", ps)
	}
	b, err := io.ReadAll(out)
	if err != nil {
		t.Fatal(err)
	}
	if got := exitCode(t, p); got != 0 {
		t.Errorf("exit code %d, want 0", got)
	}
	want := "\r\nPinging 127.0.0.1 with 32 bytes of data:\r\n" +
		"Reply from 127.0.0.1: bytes=32 time<1ms TTL=128\r\n" +
		"Reply from 127.0.0.1: bytes=32 time<1ms TTL=128\r\n" +
		"Reply from 127.0.0.1: bytes=32 time<1ms TTL=128\r\n" +
		"\r\nPing statistics for 127.0.0.1:\r\n" +
		"    Packets: Sent = 3, Received = 3, Lost = 0 (0% loss),\r\n" +
		"Approximate round trip times in milli-seconds:\r\n" +
		"    Minimum = 0ms, Maximum = 0ms, Average = 0ms\r\n"
	if diff := cmp.Diff(want, string(b)); diff != "" {
		t.Errorf("ping output (-want +got):\n%s", diff)
	}
}

func TestGuestScheduleFollowsClock(t *testing.T) {
	h, clock := newHost(t)
	s := running(t, h.Compute(), "c1", hcsdriver.Config{})
	p := spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "ping -n 3 127.0.0.1"})
	for i := range 2 {
		if err := clock.BlockUntil(testCtx(t), 1); err != nil {
			t.Fatal(err)
		}
		if _, err := p.ExitCode(); !errors.Is(err, hcsdriver.ErrInvalidState) {
			t.Fatalf("after %ds: ExitCode err = %v, want it still running", i, err)
		}
		clock.Advance(time.Second)
	}
	if got := exitCode(t, p); got != 0 {
		t.Errorf("exit code %d, want 0", got)
	}
	want := winsim.ProcessState{
		Pid:       p.Pid(),
		Config:    hcsdriver.ProcessConfig{CommandLine: "ping -n 3 127.0.0.1"},
		Image:     "PING.EXE",
		StartedAt: t0,
		Exited:    true,
		ExitedAt:  t0.Add(2 * time.Second),
		Handles:   1,
	}
	got := h.Snapshot().Systems[0].Processes[0]
	got.CPU = 0
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("process (-want +got):\n%s", diff)
	}
}

func TestStatistics(t *testing.T) {
	h, clock := newHost(t)
	s := running(t, h.Compute(), "c1", hcsdriver.Config{MemoryMB: 512})
	stats := func() hcsdriver.Stats {
		t.Helper()
		st, err := s.Statistics(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		return st
	}
	idle := stats()
	if idle.MemoryLimitBytes != 512<<20 || idle.UptimeMicros != 0 || !idle.StartedAt.Equal(t0) {
		t.Errorf("fresh system: %+v", idle)
	}
	p := spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "powershell -Command Start-Sleep -Seconds 100"})
	if err := clock.BlockUntil(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(10 * time.Second)
	busy := stats()
	if busy.UptimeMicros != 10e6 {
		t.Errorf("uptime %dus, want 10s", busy.UptimeMicros)
	}
	if busy.CPUTotalMicros <= idle.CPUTotalMicros || busy.CPUUserMicros+busy.CPUKernelMicros != busy.CPUTotalMicros {
		t.Errorf("CPU did not grow: idle %+v, busy %+v", idle, busy)
	}
	if busy.MemoryPrivateBytes <= idle.MemoryPrivateBytes || busy.StorageReadBytes <= idle.StorageReadBytes {
		t.Errorf("process not accounted: idle %+v, busy %+v", idle, busy)
	}
	if err := p.Kill(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	exitCode(t, p)
	after := stats()
	if after.MemoryPrivateBytes != idle.MemoryPrivateBytes || after.CPUTotalMicros < busy.CPUTotalMicros || after.MemoryCommitPeak < busy.MemoryCommitBytes {
		t.Errorf("after the process exited: busy %+v, after %+v", busy, after)
	}
	if again := stats(); again != after {
		t.Errorf("statistics not deterministic: %+v then %+v", after, again)
	}
}
