package winsim_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/winsim"
)

// open opens the host kept in dir on a manual clock reading at.
func open(t *testing.T, dir string, at time.Time, opts ...winsim.Option) (*winsim.Host, *winsim.ManualClock) {
	t.Helper()
	clock := winsim.NewManualClock(at)
	h, err := winsim.Open(dir, append([]winsim.Option{winsim.WithClock(clock)}, opts...)...)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { h.Close() })
	return h, clock
}

// usage ignores the simulated resource usage, which other tests cover.
var usage = cmpopts.IgnoreFields(winsim.SystemState{}, "CPUExited", "StorageRead", "CommitPeak")

func TestPersistenceAcrossAgentAndHostRestart(t *testing.T) {
	dir := t.TempDir()
	h, clock := open(t, dir, t0)
	d := h.Compute()
	cfg := hcsdriver.Config{Owner: "berth", HostName: "web-1", MemoryMB: 256, Layers: []hcsdriver.Layer{{ID: "l1", Path: `C:\layers\l1`}}}
	run := running(t, d, "run", cfg)
	short := spawn(t, run, hcsdriver.ProcessConfig{CommandLine: "ping -n 10 127.0.0.1", Stdout: true})
	long := spawn(t, run, hcsdriver.ProcessConfig{CommandLine: "ping -t 127.0.0.1", Stdout: true, Environment: map[string]string{"A": "b"}})
	created, err := d.Create(testCtx(t), "created", hcsdriver.Config{Owner: "berth"})
	if err != nil {
		t.Fatal(err)
	}
	defer created.Close()
	stopped := running(t, d, "stopped", hcsdriver.Config{Owner: "berth"})
	if err := stopped.Terminate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	clock.Advance(3 * time.Second)
	// The agent and the host go away without closing anything.
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	h2, clock2 := open(t, dir, t0.Add(23*time.Second))
	want := winsim.State{
		NextPid: long.Pid() + 4,
		Systems: []winsim.SystemState{
			{ID: "created", Config: hcsdriver.Config{Owner: "berth"}, State: hcsdriver.StateCreated, CreatedAt: t0},
			{
				ID: "run", Config: cfg, State: hcsdriver.StateRunning, CreatedAt: t0, StartedAt: t0, InitPid: short.Pid(),
				Processes: []winsim.ProcessState{{
					Pid: long.Pid(), Image: "PING.EXE", StartedAt: t0,
					Config: hcsdriver.ProcessConfig{CommandLine: "ping -t 127.0.0.1", Stdout: true, Environment: map[string]string{"A": "b"}},
				}},
			},
		},
	}
	got := h2.Snapshot()
	if diff := cmp.Diff(want, got, usage, cmpopts.IgnoreFields(winsim.ProcessState{}, "CPU")); diff != "" {
		t.Errorf("restored host (-want +got):\n%s", diff)
	}
	if cpu := got.Systems[1].Processes[0].CPU; cpu == 0 {
		t.Errorf("the ping that ran on for 23s used no CPU")
	}

	d2 := h2.Compute()
	s, err := d2.Open(testCtx(t), "run")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.OpenProcess(testCtx(t), short.Pid()); !errors.Is(err, hcsdriver.ErrNotFound) {
		t.Errorf("OpenProcess of the ping that finished while the host was away: %v, want ErrNotFound", err)
	}
	p, err := s.OpenProcess(testCtx(t), long.Pid())
	if err != nil {
		t.Fatalf("OpenProcess of the ping that runs on: %v", err)
	}
	defer p.Close()
	if _, err := d2.Open(testCtx(t), "stopped"); !errors.Is(err, hcsdriver.ErrNotFound) {
		t.Errorf("Open of the stopped system: %v, want ErrNotFound", err)
	}
	if err := clock2.BlockUntil(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if err := p.Kill(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if code := exitCode(t, p); code != winsim.ExitCodeKilled {
		t.Errorf("exit code %d, want %d", code, winsim.ExitCodeKilled)
	}
}

func TestPersistedGuestFinishesOnSchedule(t *testing.T) {
	dir := t.TempDir()
	h, _ := open(t, dir, t0)
	s := running(t, h.Compute(), "run", hcsdriver.Config{})
	p := spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "ping -n 10 127.0.0.1"})
	pid := p.Pid()
	h.Close()

	h2, clock := open(t, dir, t0.Add(5*time.Second))
	s2, err := h2.Compute().Open(testCtx(t), "run")
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	p2, err := s2.OpenProcess(testCtx(t), pid)
	if err != nil {
		t.Fatalf("OpenProcess 5s in: %v", err)
	}
	defer p2.Close()
	if err := clock.BlockUntil(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(4 * time.Second)
	if code := exitCode(t, p2); code != 0 {
		t.Errorf("exit code %d, want 0", code)
	}
	if got := h2.Snapshot().Systems[0].Processes[0].ExitedAt; !got.Equal(t0.Add(9 * time.Second)) {
		t.Errorf("exited at %v, want 9s after start", got.Sub(t0))
	}
}

func TestPersistedGracefulStop(t *testing.T) {
	dir := t.TempDir()
	h, _ := open(t, dir, t0, winsim.WithProfile(winsim.Profile{Stopping: 10 * time.Second}))
	d := h.Compute()
	for _, id := range []string{"a", "b"} {
		s := running(t, d, id, hcsdriver.Config{})
		if err := s.Shutdown(testCtx(t)); err != nil {
			t.Fatal(err)
		}
	}
	h.Close()

	h2, clock := open(t, dir, t0.Add(5*time.Second))
	st := h2.Snapshot()
	if len(st.Systems) != 2 || !st.Systems[0].StopAt.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("restored %+v, want both systems still stopping", st.Systems)
	}
	s, err := h2.Compute().Open(testCtx(t), "a")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	clock.Advance(5 * time.Second)
	if err := s.Wait(testCtx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if st := h2.Snapshot(); len(st.Systems) != 1 || st.Systems[0].ID != "a" || st.Systems[0].State != hcsdriver.StateStopped {
		t.Errorf("after the stop completed: %+v, want only a, held by a handle", st.Systems)
	}
	h2.Close()

	h3, _ := open(t, dir, t0.Add(time.Hour))
	if st := h3.Snapshot(); len(st.Systems) != 0 {
		t.Errorf("stopped systems survived a restart: %+v", st.Systems)
	}
}

func TestReopenWithoutChangesKeepsState(t *testing.T) {
	dir := t.TempDir()
	h, _ := open(t, dir, t0)
	s := running(t, h.Compute(), "run", hcsdriver.Config{Owner: "berth"})
	spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "ping -t 127.0.0.1"})
	h.Close()
	h2, _ := open(t, dir, t0)
	first := h2.Snapshot()
	h2.Close()
	h3, _ := open(t, dir, t0)
	if diff := cmp.Diff(first, h3.Snapshot()); diff != "" {
		t.Errorf("state changed across a restart with no time passing (-first +second):\n%s", diff)
	}
}

func TestOpenRejectsBadState(t *testing.T) {
	for name, content := range map[string]string{
		"not json":      "{",
		"wrong version": `{"version": 99}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, winsim.StateFile), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
			if h, err := winsim.Open(dir); err == nil {
				h.Close()
				t.Errorf("Open accepted %q", content)
			}
		})
	}
}
