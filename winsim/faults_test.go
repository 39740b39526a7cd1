package winsim_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/winsim"
)

func TestFail(t *testing.T) {
	h, _ := newHost(t)
	d := h.Compute()
	h.Fail(winsim.OpCreate, "a", 2, hcsdriver.ErrUnavailable)
	h.Fail(winsim.OpStart, "", 1, hcsdriver.ErrTimeout)
	for i := range 2 {
		_, err := d.Create(testCtx(t), "a", hcsdriver.Config{})
		var op *hcsdriver.OpError
		if !errors.Is(err, hcsdriver.ErrUnavailable) || !errors.As(err, &op) || op.Op != winsim.OpCreate || op.ID != "a" {
			t.Fatalf("create %d: %v, want the injected error", i, err)
		}
	}
	if st := h.Snapshot(); len(st.Systems) != 0 {
		t.Fatalf("failed creates left %+v", st.Systems)
	}
	b, err := d.Create(testCtx(t), "b", hcsdriver.Config{})
	if err != nil {
		t.Fatalf("create of another id: %v", err)
	}
	defer b.Close()
	a, err := d.Create(testCtx(t), "a", hcsdriver.Config{})
	if err != nil {
		t.Fatalf("third create: %v", err)
	}
	defer a.Close()
	if err := b.Start(testCtx(t)); !errors.Is(err, hcsdriver.ErrTimeout) {
		t.Errorf("start: %v, want the injected ErrTimeout", err)
	}
	if err := b.Start(testCtx(t)); err != nil {
		t.Errorf("second start: %v", err)
	}
	h.Fail(winsim.OpStats, "", 5, hcsdriver.ErrUnavailable)
	h.ClearFaults()
	if _, err := b.Statistics(testCtx(t)); err != nil {
		t.Errorf("statistics after ClearFaults: %v", err)
	}
}

func TestLatencyProfile(t *testing.T) {
	h, clock := newHost(t)
	h.SetLatency(winsim.Profile{Create: 300 * time.Millisecond})
	d := h.Compute()
	type result struct {
		s   hcsdriver.System
		err error
	}
	done := make(chan result, 1)
	go func() {
		s, err := d.Create(context.Background(), "a", hcsdriver.Config{})
		done <- result{s, err}
	}()
	if err := clock.BlockUntil(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(299 * time.Millisecond)
	if st := h.Snapshot(); len(st.Systems) != 0 {
		t.Errorf("system created before its latency passed: %+v", st.Systems)
	}
	clock.Advance(time.Millisecond)
	r := <-done
	if r.err != nil {
		t.Fatalf("Create: %v", r.err)
	}
	defer r.s.Close()
	if got := h.Snapshot().Systems; len(got) != 1 || !got[0].CreatedAt.Equal(t0.Add(300*time.Millisecond)) {
		t.Errorf("systems %+v, want one created after 300ms", got)
	}
}

func TestDelayHonoursContext(t *testing.T) {
	h, clock := newHost(t)
	s := running(t, h.Compute(), "a", hcsdriver.Config{})
	undo := h.Delay(winsim.OpStats, "a", time.Second)
	ctx, cancel := context.WithCancel(testCtx(t))
	done := make(chan error, 1)
	go func() {
		_, err := s.Statistics(ctx)
		done <- err
	}()
	if err := clock.BlockUntil(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("delayed call: %v, want context.Canceled", err)
	}
	undo()
	if _, err := s.Statistics(testCtx(t)); err != nil {
		t.Errorf("after undo: %v", err)
	}
}

func TestHungCallStillTakesEffect(t *testing.T) {
	h, _ := newHost(t)
	d := h.Compute()
	gone, cancel := context.WithCancel(testCtx(t))
	cancel()

	release := h.Hang(winsim.OpCreate, "a")
	if _, err := d.Create(gone, "a", hcsdriver.Config{Owner: "berth"}); !errors.Is(err, context.Canceled) {
		t.Fatalf("hung Create: %v, want context.Canceled", err)
	}
	if st := h.Snapshot(); len(st.Systems) != 0 {
		t.Fatalf("system exists while the create hangs: %+v", st.Systems)
	}
	release()
	want := []winsim.SystemState{{ID: "a", Config: hcsdriver.Config{Owner: "berth"}, State: hcsdriver.StateCreated, CreatedAt: t0}}
	if diff := cmp.Diff(want, h.Snapshot().Systems); diff != "" {
		t.Errorf("after release (-want +got), the create completes and its handle is released:\n%s", diff)
	}

	s, err := d.Open(testCtx(t), "a")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	release = h.Hang(winsim.OpStart, "")
	if err := s.Start(gone); !errors.Is(err, context.Canceled) {
		t.Fatalf("hung Start: %v, want context.Canceled", err)
	}
	release()
	if info, _ := s.Properties(testCtx(t)); info.State != hcsdriver.StateRunning {
		t.Errorf("state %s after the hung start was released, want Running", info.State)
	}

	release = h.Hang(winsim.OpCreateProcess, "a")
	if _, err := s.CreateProcess(gone, hcsdriver.ProcessConfig{CommandLine: "ping -t 127.0.0.1", Stdout: true}); !errors.Is(err, context.Canceled) {
		t.Fatalf("hung CreateProcess: %v, want context.Canceled", err)
	}
	release()
	procs := h.Snapshot().Systems[0].Processes
	if len(procs) != 1 || procs[0].Exited || procs[0].Handles != 0 {
		t.Errorf("processes %+v, want one running, nobody holding it", procs)
	}
}

func TestCloseEndsHungCalls(t *testing.T) {
	clock := winsim.NewManualClock(t0)
	h := winsim.New(winsim.WithClock(clock))
	s, err := h.Compute().Create(testCtx(t), "a", hcsdriver.Config{})
	if err != nil {
		t.Fatal(err)
	}
	release := h.Hang(winsim.OpStart, "a")
	defer release()
	h.SetLatency(winsim.Profile{Terminate: time.Hour})
	started, terminated := make(chan error, 1), make(chan error, 1)
	go func() { started <- s.Start(context.Background()) }()
	go func() { terminated <- s.Terminate(context.Background()) }()
	waited := make(chan error, 1)
	go func() { waited <- s.Wait(context.Background()) }()
	if err := clock.BlockUntil(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	for what, c := range map[string]chan error{"Start": started, "Terminate": terminated, "Wait": waited} {
		if err := <-c; !errors.Is(err, hcsdriver.ErrUnavailable) {
			t.Errorf("%s after Close: %v, want ErrUnavailable", what, err)
		}
	}
	if clock.Timers() != 0 {
		t.Errorf("%d timers left after Close", clock.Timers())
	}
}
