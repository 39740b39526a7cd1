package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
	"go.uber.org/goleak"

	"github.com/berthhq/berth/events"
)

// hang bounds every wait in these tests, so that a broken protocol fails
// the test instead of blocking it; nothing is timed.
const hang = 10 * time.Second

// testFlags are some of berthd's flags, as run defines them.
func testFlags() *pflag.FlagSet {
	fs := pflag.NewFlagSet("berthd", pflag.ContinueOnError)
	fs.String("data-dir", "", "")
	fs.String("node", defaultNode(), "")
	fs.Int("host-ops", 32, "")
	fs.Duration("stop-timeout", 10*time.Second, "")
	fs.String("log-format", "json", "")
	fs.String("config", "", "")
	return fs
}

func TestNewServiceSpec(t *testing.T) {
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	type specCase struct {
		name    string
		args    []string
		want    []string
		wantErr error  // matched with errors.Is when set
		errText string // otherwise a part of the error's text; "" for no error
	}
	pinned := specCase{name: "node pinned to the host name", args: []string{"--data-dir", "/d"},
		want: []string{"--data-dir=/d", "--node=" + defaultNode()}}
	if defaultNode() == "" {
		pinned = specCase{name: "node required: the host name is no node id", args: []string{"--data-dir", "/d"},
			errText: "--node is required"}
	}
	tests := []specCase{
		pinned,
		{name: "data dir and node", args: []string{"--data-dir", "/var/lib/berth", "--node", "n1"},
			want: []string{"--data-dir=/var/lib/berth", "--node=n1"}},
		{name: "flags in name order, one spelling", args: []string{"--stop-timeout", "30s", "--node=n1", "--host-ops=4", "--data-dir=/d"},
			want: []string{"--data-dir=/d", "--host-ops=4", "--node=n1", "--stop-timeout=30s"}},
		{name: "relative data dir made absolute", args: []string{"--data-dir", "state", "--node", "n1"},
			want: []string{"--data-dir=" + filepath.Join(cwd, "state"), "--node=n1"}},
		{name: "relative config file made absolute", args: []string{"--data-dir", "/d", "--node", "n1", "--config", "berthd.json"},
			want: []string{"--config=" + filepath.Join(cwd, "berthd.json"), "--data-dir=/d", "--node=n1"}},
		{name: "data dir required", args: []string{"--node", "n1"}, errText: "--data-dir is required"},
		{name: "invalid node", args: []string{"--data-dir", "/d", "--node", "Node_1"}, wantErr: events.ErrInvalid},
		{name: "positional argument", args: []string{"--data-dir", "/d", "--node", "n1", "version"}, errText: `unexpected argument "version"`},
		{name: "unknown flag", args: []string{"--data-dir", "/d", "--nodes", "n1"}, errText: "unknown flag: --nodes"},
		{name: "malformed value", args: []string{"--data-dir", "/d", "--host-ops", "many"}, errText: "host-ops"},
		{name: "help", args: []string{"--data-dir", "/d", "-h"}, wantErr: pflag.ErrHelp},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec, err := newServiceSpec("/opt/berth/berthd", testFlags(), tt.args)
			switch {
			case tt.wantErr != nil:
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
				return
			case tt.errText != "":
				if err == nil || !strings.Contains(err.Error(), tt.errText) {
					t.Fatalf("error %v, want one containing %q", err, tt.errText)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if !slices.Equal(spec.Args, tt.want) {
				t.Errorf("args %q, want %q", spec.Args, tt.want)
			}
			if spec.Exe != "/opt/berth/berthd" {
				t.Errorf("exe %q", spec.Exe)
			}
		})
	}
}

func TestNewServiceSpecReadsNoEnvironment(t *testing.T) {
	fs := testFlags()
	// As applySettings does for BERTH_HOST_OPS: the value is set, the flag not
	// marked as given.
	if err := fs.Lookup("host-ops").Value.Set("8"); err != nil {
		t.Fatal(err)
	}
	spec, err := newServiceSpec("/opt/berth/berthd", fs, []string{"--data-dir", "/d", "--node", "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"--data-dir=/d", "--node=n1"}; !slices.Equal(spec.Args, want) {
		t.Errorf("args %q, want %q", spec.Args, want)
	}
	fs = testFlags()
	if err := fs.Lookup("data-dir").Value.Set("/from-env"); err != nil {
		t.Fatal(err)
	}
	if _, err := newServiceSpec("/opt/berth/berthd", fs, []string{"--node", "n1"}); err == nil {
		t.Error("a data directory from the environment was accepted; the service would not see it")
	}
}

func TestServiceSpecRegistration(t *testing.T) {
	spec, err := newServiceSpec(`C:\Program Files\berth\berthd.exe`, testFlags(), []string{"--data-dir", "/d", "--node", "n1"})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := spec.commandLine(), `"C:\Program Files\berth\berthd.exe" --data-dir=/d --node=n1`; got != want {
		t.Errorf("command line %s, want %s", got, want)
	}
	if !slices.Equal(spec.Dependencies, []string{"vmcompute", "hns"}) {
		t.Errorf("dependencies %q, want HCS and HNS", spec.Dependencies)
	}
	if len(spec.RestartDelays) == 0 || spec.ResetAfter <= 0 {
		t.Errorf("no restart on failure: delays %v, reset after %v", spec.RestartDelays, spec.ResetAfter)
	}
	for _, d := range spec.RestartDelays {
		if d <= 0 {
			t.Errorf("restart delay %v", d)
		}
	}
	if spec.DisplayName == "" || spec.Description == "" {
		t.Error("no display name or description")
	}
}

// testSession runs an scmSession whose requests, statuses and ticks are the
// test's.
type testSession struct {
	requests chan scmRequest
	statuses chan scmStatus
	ticks    chan time.Time
	result   chan sessionResult
}

type sessionResult struct {
	code uint32
	err  error
}

func startSession(serve func(context.Context) error) *testSession {
	s := &testSession{
		requests: make(chan scmRequest),
		statuses: make(chan scmStatus),
		ticks:    make(chan time.Time),
		result:   make(chan sessionResult, 1),
	}
	session := scmSession[scmRequest]{
		requests: s.requests,
		kind:     func(r scmRequest) scmRequest { return r },
		report:   func(st scmStatus) { s.statuses <- st },
		ticks:    s.ticks,
	}
	go func() {
		code, err := session.run(serve)
		s.result <- sessionResult{code, err}
	}()
	return s
}

func (s *testSession) expect(t *testing.T, want scmStatus) {
	t.Helper()
	select {
	case got := <-s.statuses:
		if got != want {
			t.Fatalf("status %+v, want %+v", got, want)
		}
	case r := <-s.result:
		t.Fatalf("session ended (%d, %v), want status %+v", r.code, r.err, want)
	case <-time.After(hang):
		t.Fatalf("no status, want %+v", want)
	}
}

func (s *testSession) send(t *testing.T, r scmRequest) {
	t.Helper()
	select {
	case s.requests <- r:
	case <-time.After(hang):
		t.Fatalf("request %d not taken", r)
	}
}

func (s *testSession) tick(t *testing.T) {
	t.Helper()
	select {
	case s.ticks <- time.Now():
	case <-time.After(hang):
		t.Fatal("tick not taken")
	}
}

func (s *testSession) end(t *testing.T) sessionResult {
	t.Helper()
	select {
	case r := <-s.result:
		return r
	case st := <-s.statuses:
		t.Fatalf("status %+v, want the session's end", st)
	case <-time.After(hang):
		t.Fatal("session did not end")
	}
	return sessionResult{}
}

func wait(t *testing.T, c <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-c:
	case <-time.After(hang):
		t.Fatalf("no %s", what)
	}
}

var (
	startPending = scmStatus{State: stateStartPending, WaitHint: startWaitHint}
	running      = scmStatus{State: stateRunning, AcceptStop: true}
)

func stopPending(checkpoint uint32) scmStatus {
	return scmStatus{State: stateStopPending, CheckPoint: checkpoint, WaitHint: stopWaitHint}
}

func TestServiceRunningBeforeTheAgentIsReady(t *testing.T) {
	defer goleak.VerifyNone(t)
	replaying := make(chan struct{})
	s := startSession(func(ctx context.Context) error {
		close(replaying)
		<-ctx.Done() // a replay that never finishes
		return ctx.Err()
	})
	s.expect(t, startPending)
	s.expect(t, running)
	wait(t, replaying, "replay")
	s.send(t, requestInterrogate)
	s.expect(t, running)
	s.send(t, requestOther) // pause: not accepted, nothing to report
	s.send(t, requestStop)
	s.expect(t, stopPending(1))
	r := s.end(t)
	if r.code != 0 || !errors.Is(r.err, context.Canceled) {
		t.Errorf("ended (%d, %v), want (0, %v)", r.code, r.err, context.Canceled)
	}
}

func TestServiceStopWaitsForTheAgent(t *testing.T) {
	defer goleak.VerifyNone(t)
	cancelled := make(chan struct{})
	stopped := make(chan error)
	s := startSession(func(ctx context.Context) error {
		<-ctx.Done()
		close(cancelled)
		return <-stopped
	})
	s.expect(t, startPending)
	s.expect(t, running)
	s.send(t, requestStop)
	s.expect(t, stopPending(1))
	wait(t, cancelled, "cancellation of the agent's context")
	s.tick(t)
	s.expect(t, stopPending(2))
	s.send(t, requestInterrogate)
	s.expect(t, stopPending(2))
	s.send(t, requestStop) // a second stop changes nothing
	s.send(t, requestOther)
	s.tick(t)
	s.expect(t, stopPending(3))
	stopped <- nil
	if r := s.end(t); r.code != 0 || r.err != nil {
		t.Errorf("ended (%d, %v), want (0, nil)", r.code, r.err)
	}
}

func TestServiceStopBudget(t *testing.T) {
	defer goleak.VerifyNone(t)
	release := make(chan struct{})
	s := startSession(func(context.Context) error {
		<-release // deaf to cancellation
		return nil
	})
	defer close(release)
	s.expect(t, startPending)
	s.expect(t, running)
	s.send(t, requestStop)
	s.expect(t, stopPending(1))
	for cp := uint32(2); cp <= stopCheckpoints; cp++ {
		s.tick(t)
		s.expect(t, stopPending(cp))
	}
	s.tick(t)
	if r := s.end(t); r.code != 0 || !errors.Is(r.err, errStopTimeout) {
		t.Errorf("ended (%d, %v), want (0, %v)", r.code, r.err, errStopTimeout)
	}
}

func TestServiceAgentEndsOnItsOwn(t *testing.T) {
	errBoom := errors.New("journal unreachable")
	tests := []struct {
		name    string
		serve   error
		wantErr error
	}{
		{"with an error", errBoom, errBoom},
		{"without one", nil, errAgentEnded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer goleak.VerifyNone(t)
			s := startSession(func(context.Context) error { return tt.serve })
			s.expect(t, startPending)
			s.expect(t, running)
			if r := s.end(t); r.code != exitAgentFailed || !errors.Is(r.err, tt.wantErr) {
				t.Errorf("ended (%d, %v), want (%d, %v)", r.code, r.err, exitAgentFailed, tt.wantErr)
			}
		})
	}
}

func TestServiceStopWithTrouble(t *testing.T) {
	defer goleak.VerifyNone(t)
	errClose := errors.New("journal close")
	s := startSession(func(ctx context.Context) error {
		<-ctx.Done()
		return errClose
	})
	s.expect(t, startPending)
	s.expect(t, running)
	s.send(t, requestStop)
	s.expect(t, stopPending(1))
	if r := s.end(t); r.code != 0 || !errors.Is(r.err, errClose) {
		t.Errorf("ended (%d, %v), want (0, %v): an asked-for stop is no failure", r.code, r.err, errClose)
	}
}

// fakeSCM is a service control manager holding one service. As with the
// real one, a start or stop request moves the service to a pending state,
// which settles after a few queries: a start to Running, or to Stopped with
// failExit when that is set; a stop to Stopped. Stop is accepted only from
// Running, remove only when stopped.
type fakeSCM struct {
	installed bool
	st        scmStatus
	pending   int // queries before the pending state settles; < 0: never
	failExit  uint32
	calls     []string // create, remove, start, stop
}

func (f *fakeSCM) create(serviceSpec) error {
	f.calls = append(f.calls, "create")
	if f.installed {
		return errServiceExists
	}
	f.installed, f.st = true, scmStatus{State: stateStopped}
	return nil
}

func (f *fakeSCM) remove() error {
	f.calls = append(f.calls, "remove")
	if !f.installed {
		return errServiceNotInstalled
	}
	if f.st.State != stateStopped {
		return errors.New("service is " + f.st.State.String())
	}
	f.installed = false
	return nil
}

func (f *fakeSCM) start() error {
	f.calls = append(f.calls, "start")
	if f.st.State != stateStopped {
		return errors.New("service is " + f.st.State.String())
	}
	f.st, f.pending = scmStatus{State: stateStartPending}, 2
	return nil
}

func (f *fakeSCM) stop() error {
	f.calls = append(f.calls, "stop")
	if f.st.State != stateRunning {
		return errors.New("service cannot accept a stop while " + f.st.State.String())
	}
	f.st, f.pending = scmStatus{State: stateStopPending}, 2
	return nil
}

func (f *fakeSCM) query() (scmStatus, error) {
	if !f.installed {
		return scmStatus{}, errServiceNotInstalled
	}
	if f.st.State == stateStartPending || f.st.State == stateStopPending {
		switch {
		case f.pending > 0:
			f.pending--
		case f.pending == 0 && f.st.State == stateStopPending:
			f.st = scmStatus{State: stateStopped}
		case f.pending == 0 && f.failExit != 0:
			f.st = scmStatus{State: stateStopped, ExitCode: f.failExit}
		case f.pending == 0:
			f.st = scmStatus{State: stateRunning, AcceptStop: true}
		}
	}
	return f.st, nil
}

func (f *fakeSCM) close() error { return nil }

func TestServiceCommands(t *testing.T) {
	type command func(context.Context, serviceControl, *bytes.Buffer) error
	do := func(f func(context.Context, serviceControl, io.Writer, time.Duration) error) command {
		return func(ctx context.Context, c serviceControl, out *bytes.Buffer) error {
			return f(ctx, c, out, time.Millisecond)
		}
	}
	start, stop, uninstall := do(startService), do(stopService), do(uninstallService)
	tests := []struct {
		name      string
		scm       fakeSCM
		cmd       command
		wantCalls []string
		wantState scmState
		wantOut   string
		wantErr   error
	}{
		{name: "start", scm: fakeSCM{installed: true, st: scmStatus{State: stateStopped}}, cmd: start,
			wantCalls: []string{"start"}, wantState: stateRunning, wantOut: "service berthd started"},
		{name: "start a running service", scm: fakeSCM{installed: true, st: running}, cmd: start,
			wantState: stateRunning, wantOut: "already running"},
		{name: "start a stopping service", scm: fakeSCM{installed: true, st: stopPending(1), pending: 1}, cmd: start,
			wantCalls: []string{"start"}, wantState: stateRunning, wantOut: "service berthd started"},
		{name: "start a failing service", scm: fakeSCM{installed: true, st: scmStatus{State: stateStopped}, failExit: exitAgentFailed}, cmd: start,
			wantCalls: []string{"start"}, wantState: stateStopped, wantErr: errServiceFailed},
		{name: "start what is not installed", scm: fakeSCM{}, cmd: start, wantErr: errServiceNotInstalled},
		{name: "stop", scm: fakeSCM{installed: true, st: running}, cmd: stop,
			wantCalls: []string{"stop"}, wantState: stateStopped, wantOut: "service berthd stopped"},
		{name: "stop a stopped service", scm: fakeSCM{installed: true, st: scmStatus{State: stateStopped}}, cmd: stop,
			wantState: stateStopped, wantOut: "not running"},
		{name: "stop a starting service", scm: fakeSCM{installed: true, st: startPending, pending: 1}, cmd: stop,
			wantCalls: []string{"stop"}, wantState: stateStopped, wantOut: "service berthd stopped"},
		{name: "uninstall a running service", scm: fakeSCM{installed: true, st: running}, cmd: uninstall,
			wantCalls: []string{"stop", "remove"}, wantOut: "service berthd removed"},
		{name: "uninstall a stopped service", scm: fakeSCM{installed: true, st: scmStatus{State: stateStopped}}, cmd: uninstall,
			wantCalls: []string{"remove"}, wantOut: "service berthd removed"},
		{name: "uninstall what is not installed", scm: fakeSCM{}, cmd: uninstall, wantErr: errServiceNotInstalled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), hang)
			defer cancel()
			var out bytes.Buffer
			scm := tt.scm
			err := tt.cmd(ctx, &scm, &out)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("error %v, want %v", err, tt.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(scm.calls, tt.wantCalls) {
				t.Errorf("calls %q, want %q", scm.calls, tt.wantCalls)
			}
			if scm.installed && scm.st.State != tt.wantState {
				t.Errorf("service %s, want %s", scm.st.State, tt.wantState)
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output %q, want %q in it", out.String(), tt.wantOut)
			}
		})
	}
}

func TestServiceStartFailureNamesTheExitCode(t *testing.T) {
	scm := &fakeSCM{installed: true, st: scmStatus{State: stateStopped}, failExit: 1066}
	err := startService(context.Background(), scm, io.Discard, time.Millisecond)
	if !errors.Is(err, errServiceFailed) || !strings.Contains(err.Error(), "exit code 1066") {
		t.Errorf("error %v, want %v naming exit code 1066", err, errServiceFailed)
	}
}

func TestServiceCommandsGiveUpOnAStuckService(t *testing.T) {
	scm := &fakeSCM{installed: true, st: stopPending(1), pending: -1}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := startService(ctx, scm, io.Discard, time.Millisecond); !errors.Is(err, context.Canceled) {
		t.Errorf("error %v, want %v", err, context.Canceled)
	}
	if len(scm.calls) != 0 {
		t.Errorf("calls %q on a service still stopping", scm.calls)
	}
}

func TestOpenServiceLog(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	write := func(s string) {
		t.Helper()
		f, err := openServiceLog(dir, 10)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := f.WriteString(s); err != nil {
			t.Fatal(err)
		}
	}
	read := func(name string) string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	write("first\n")  // creates the directory and the file
	write("second\n") // 6 bytes: appended
	if got := read(serviceLogName); got != "first\nsecond\n" {
		t.Fatalf("log %q", got)
	}
	write("third\n") // 13 bytes > 10: rotated first
	if got := read(serviceLogName); got != "third\n" {
		t.Errorf("log %q, want only the new line", got)
	}
	if got := read(serviceLogName + ".1"); got != "first\nsecond\n" {
		t.Errorf("rotated log %q", got)
	}
}
