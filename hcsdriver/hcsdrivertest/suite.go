// Package hcsdrivertest is the conformance suite of the hcsdriver contract,
// in the style of testing/fstest: Run holds an implementation to every promise
// written in package hcsdriver. It runs against the simulated host (package
// winsim) on every OS and, under the integration build tag, against the
// Windows adapter on a real host, so it uses only command lines that work on
// Windows Server Core and Nano Server images (cmd /c ..., ping).
package hcsdrivertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/hcsdriver"
)

// Harness supplies what only the environment under test knows.
type Harness struct {
	// NewDriver returns a driver session on the host under test. Every
	// driver returned during one Run must see the same host, as two agent
	// processes on one machine do.
	NewDriver func(t *testing.T) hcsdriver.Driver
	// Config returns what compute system id is created from on this host
	// (image layers and a scratch volume on Windows). It may register
	// cleanups with t, which run after the system is gone. Nil means an
	// empty Config. The suite sets Owner.
	Config func(t *testing.T, id string) hcsdriver.Config
	// Owner tags every system the suite creates; "berth-conformance" if empty.
	Owner string
	// Timeout bounds each wait on the host; two minutes if zero.
	Timeout time.Duration
}

// pingForever runs until killed, printing a line a second.
const pingForever = "ping -t 127.0.0.1"

// Run runs the suite as subtests of t.
func Run(t *testing.T, h Harness) {
	if h.Owner == "" {
		h.Owner = "berth-conformance"
	}
	if h.Timeout == 0 {
		h.Timeout = 2 * time.Minute
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, Harness)
	}{
		{"CreateOpen", testCreateOpen},
		{"CreateDuplicateID", testCreateDuplicate},
		{"OpenNotFound", testOpenNotFound},
		{"ListByOwner", testListByOwner},
		{"StartOnlyCreated", testStartOnlyCreated},
		{"ShutdownWait", testShutdownWait},
		{"TerminateWait", testTerminateWait},
		{"TerminateCreated", testTerminateCreated},
		{"WaitHonoursContext", testWaitContext},
		{"ClosedHandle", testClosedHandle},
		{"CloseDoesNotStop", testCloseDoesNotStop},
		{"StoppedSystemVanishesAfterLastClose", testStoppedVanishes},
		{"InitExitKeepsSystemRunning", testInitExit},
		{"ProcessOutputAndExitCode", testProcessOutput},
		{"ProcessStdin", testProcessStdin},
		{"ProcessCloseStdin", testProcessCloseStdin},
		{"ProcessEnvironment", testProcessEnvironment},
		{"ProcessManyLines", testProcessManyLines},
		{"StdioOnce", testStdioOnce},
		{"EmulateConsole", testEmulateConsole},
		{"ExitCodeUnknownBeforeExit", testExitCodeBeforeExit},
		{"ProcessWaitHonoursContext", testProcessWaitContext},
		{"ProcessCloseDoesNotKill", testProcessCloseDoesNotKill},
		{"OpenProcess", testOpenProcess},
		{"OpenExitedProcess", testOpenExitedProcess},
		{"CreateProcessNotRunning", testCreateProcessNotRunning},
		{"CreateProcessUnknownExecutable", testUnknownExecutable},
		{"ShutdownEndsProcesses", testShutdownEndsProcesses},
		{"Statistics", testStatistics},
	} {
		t.Run(tc.name, func(t *testing.T) { tc.fn(t, h) })
	}
}

// ---- helpers ----

func (h Harness) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), h.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// newID returns a system id unique on the host, readable in its listing.
func newID(t *testing.T) string {
	var b [4]byte
	rand.Read(b[:])
	name := t.Name()
	if i := strings.LastIndexByte(name, '/'); i >= 0 {
		name = name[i+1:]
	}
	slug := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '-'
	}, name)
	return "hcsdt-" + slug[:min(len(slug), 32)] + "-" + hex.EncodeToString(b[:])
}

// create creates a system owned by h.Owner and registers its removal: the
// handle is closed, then the system is terminated through a new handle and
// waited for.
func (h Harness) create(t *testing.T, d hcsdriver.Driver, id string) hcsdriver.System {
	t.Helper()
	return h.createOwned(t, d, id, h.Owner)
}

func (h Harness) createOwned(t *testing.T, d hcsdriver.Driver, id, owner string) hcsdriver.System {
	t.Helper()
	var cfg hcsdriver.Config
	if h.Config != nil {
		cfg = h.Config(t, id)
	}
	cfg.Owner = owner
	s, err := d.Create(h.ctx(t), id, cfg)
	if err != nil {
		t.Fatalf("Create(%s): %v", id, err)
	}
	t.Cleanup(func() { h.remove(t, d, id) })
	t.Cleanup(func() { s.Close() })
	return s
}

func (h Harness) remove(t *testing.T, d hcsdriver.Driver, id string) {
	ctx, cancel := context.WithTimeout(context.Background(), h.Timeout)
	defer cancel()
	s, err := d.Open(ctx, id)
	if errors.Is(err, hcsdriver.ErrNotFound) {
		return
	}
	if err != nil {
		t.Errorf("cleanup: Open(%s): %v", id, err)
		return
	}
	defer s.Close()
	err = s.Terminate(ctx)
	if err != nil && !errors.Is(err, hcsdriver.ErrAlreadyStopped) {
		t.Errorf("cleanup: Terminate(%s): %v", id, err)
		return
	}
	if err := s.Wait(ctx); err != nil && !errors.Is(err, hcsdriver.ErrUnexpectedExit) {
		t.Errorf("cleanup: Wait(%s): %v", id, err)
	}
}

// started creates and starts a system.
func (h Harness) started(t *testing.T, d hcsdriver.Driver) hcsdriver.System {
	t.Helper()
	s := h.create(t, d, newID(t))
	if err := s.Start(h.ctx(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	return s
}

// spawn creates a process with the given stdio and closes its handle at the
// end of the test.
func (h Harness) spawn(t *testing.T, s hcsdriver.System, cfg hcsdriver.ProcessConfig) hcsdriver.Process {
	t.Helper()
	p, err := s.CreateProcess(h.ctx(t), cfg)
	if err != nil {
		t.Fatalf("CreateProcess(%q): %v", cfg.CommandLine, err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// result is what a process printed and how it ended.
type result struct {
	stdout, stderr string
	code           int
}

// run runs cmdline to completion, feeding it stdin (if not empty) and
// draining its output.
func (h Harness) run(t *testing.T, s hcsdriver.System, cmdline, stdin string) result {
	t.Helper()
	p := h.spawn(t, s, hcsdriver.ProcessConfig{CommandLine: cmdline, Stdin: stdin != "", Stdout: true, Stderr: true})
	in, out, errOut, err := p.Stdio()
	if err != nil {
		t.Fatalf("Stdio: %v", err)
	}
	outc, errc := drain(out), drain(errOut)
	if in != nil {
		if _, err := io.WriteString(in, stdin); err != nil {
			t.Errorf("write stdin: %v", err)
		}
		if err := in.Close(); err != nil {
			t.Errorf("close stdin: %v", err)
		}
	}
	if err := p.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait(%q): %v", cmdline, err)
	}
	code, err := p.ExitCode()
	if err != nil {
		t.Fatalf("ExitCode(%q) after Wait: %v", cmdline, err)
	}
	return result{stdout: <-outc, stderr: <-errc, code: code}
}

// drain reads r to EOF in a goroutine that ends with it.
func drain(r io.ReadCloser) <-chan string {
	c := make(chan string, 1)
	if r == nil {
		c <- ""
		return c
	}
	go func() {
		defer r.Close()
		b, _ := io.ReadAll(r)
		c <- string(b)
	}()
	return c
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Errorf("%s: err = %v, want %v", what, err, want)
	}
}

func wantState(t *testing.T, h Harness, s hcsdriver.System, want hcsdriver.State) hcsdriver.Info {
	t.Helper()
	info, err := s.Properties(h.ctx(t))
	if err != nil {
		t.Fatalf("Properties: %v", err)
	}
	if info.State != want || info.Stopped != (want == hcsdriver.StateStopped) {
		t.Errorf("Properties = %+v, want state %s", info, want)
	}
	return info
}

// ---- compute systems ----

func testCreateOpen(t *testing.T, h Harness) {
	d := h.NewDriver(t)
	id := newID(t)
	s := h.create(t, d, id)
	if s.ID() != id {
		t.Errorf("ID() = %q, want %q", s.ID(), id)
	}
	info := wantState(t, h, s, hcsdriver.StateCreated)
	if info.ID != id || info.Owner != h.Owner {
		t.Errorf("Properties = %+v, want id %s owner %s", info, id, h.Owner)
	}
	o, err := h.NewDriver(t).Open(h.ctx(t), id)
	if err != nil {
		t.Fatalf("Open from another driver: %v", err)
	}
	defer o.Close()
	if o.ID() != id {
		t.Errorf("opened ID() = %q, want %q", o.ID(), id)
	}
	if err := s.Start(h.ctx(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	wantState(t, h, o, hcsdriver.StateRunning)
}

func testCreateDuplicate(t *testing.T, h Harness) {
	d := h.NewDriver(t)
	id := newID(t)
	s := h.create(t, d, id)
	if err := s.Start(h.ctx(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	var cfg hcsdriver.Config
	if h.Config != nil {
		cfg = h.Config(t, id+"-dup")
	}
	cfg.Owner = h.Owner
	dup, err := h.NewDriver(t).Create(h.ctx(t), id, cfg)
	if err == nil {
		dup.Close()
	}
	wantErr(t, "second Create", err, hcsdriver.ErrAlreadyExists)
	wantState(t, h, s, hcsdriver.StateRunning)
}

func testOpenNotFound(t *testing.T, h Harness) {
	s, err := h.NewDriver(t).Open(h.ctx(t), newID(t))
	if err == nil {
		s.Close()
	}
	wantErr(t, "Open of an unknown id", err, hcsdriver.ErrNotFound)
}

func testListByOwner(t *testing.T, h Harness) {
	d := h.NewDriver(t)
	mine, other := newID(t), newID(t)
	h.create(t, d, mine)
	h.createOwned(t, d, other, h.Owner+"-other")
	ids := func(owner string) []string {
		infos, err := h.NewDriver(t).List(h.ctx(t), owner)
		if err != nil {
			t.Fatalf("List(%q): %v", owner, err)
		}
		var ids []string
		for _, i := range infos {
			if owner != "" && i.Owner != owner {
				t.Errorf("List(%q) returned %+v", owner, i)
			}
			if i.ID == mine && (i.Owner != h.Owner || i.State != hcsdriver.StateCreated) {
				t.Errorf("List(%q) returned %+v, want owner %s, state Created", owner, i, h.Owner)
			}
			ids = append(ids, i.ID)
		}
		return ids
	}
	if got := ids(h.Owner); !slices.Contains(got, mine) || slices.Contains(got, other) {
		t.Errorf("List(%q) = %v, want %s and not %s", h.Owner, got, mine, other)
	}
	if got := ids(""); !slices.Contains(got, mine) || !slices.Contains(got, other) {
		t.Errorf(`List("") = %v, want both %s and %s`, got, mine, other)
	}
}

func testStartOnlyCreated(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	wantErr(t, "Start of a running system", s.Start(h.ctx(t)), hcsdriver.ErrInvalidState)
	if err := s.Terminate(h.ctx(t)); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if err := s.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	wantErr(t, "Start of a stopped system", s.Start(h.ctx(t)), hcsdriver.ErrInvalidState)
}

func testStop(t *testing.T, h Harness, stop func(hcsdriver.System, context.Context) error) {
	s := h.started(t, h.NewDriver(t))
	if err := stop(s, h.ctx(t)); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if err := s.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	info := wantState(t, h, s, hcsdriver.StateStopped)
	if info.ExitType == "UnexpectedExit" {
		t.Errorf("Properties = %+v after a requested stop", info)
	}
	wantErr(t, "Shutdown of a stopped system", s.Shutdown(h.ctx(t)), hcsdriver.ErrAlreadyStopped)
	wantErr(t, "Terminate of a stopped system", s.Terminate(h.ctx(t)), hcsdriver.ErrAlreadyStopped)
	if err := s.Wait(h.ctx(t)); err != nil {
		t.Errorf("second Wait: %v", err)
	}
}

func testShutdownWait(t *testing.T, h Harness) { testStop(t, h, hcsdriver.System.Shutdown) }

func testTerminateWait(t *testing.T, h Harness) { testStop(t, h, hcsdriver.System.Terminate) }

func testTerminateCreated(t *testing.T, h Harness) {
	s := h.create(t, h.NewDriver(t), newID(t))
	if err := s.Terminate(h.ctx(t)); err != nil {
		t.Fatalf("Terminate of a created system: %v", err)
	}
	if err := s.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	wantState(t, h, s, hcsdriver.StateStopped)
}

func testWaitContext(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	ctx, cancel := context.WithTimeout(h.ctx(t), 20*time.Millisecond)
	defer cancel()
	wantErr(t, "Wait on a running system", s.Wait(ctx), context.DeadlineExceeded)
	wantState(t, h, s, hcsdriver.StateRunning)
}

func testClosedHandle(t *testing.T, h Harness) {
	d := h.NewDriver(t)
	id := newID(t)
	s := h.create(t, d, id)
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	ctx := h.ctx(t)
	_, perr := s.Properties(ctx)
	_, serr := s.Statistics(ctx)
	_, cerr := s.CreateProcess(ctx, hcsdriver.ProcessConfig{CommandLine: "cmd /c echo hi"})
	_, oerr := s.OpenProcess(ctx, 4)
	for what, err := range map[string]error{
		"Start": s.Start(ctx), "Shutdown": s.Shutdown(ctx), "Terminate": s.Terminate(ctx), "Wait": s.Wait(ctx),
		"Properties": perr, "Statistics": serr, "CreateProcess": cerr, "OpenProcess": oerr,
	} {
		wantErr(t, what+" on a closed handle", err, hcsdriver.ErrClosed)
	}
	o, err := d.Open(ctx, id)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	defer o.Close()
	wantState(t, h, o, hcsdriver.StateCreated)
}

func testCloseDoesNotStop(t *testing.T, h Harness) {
	d := h.NewDriver(t)
	s := h.started(t, d)
	p := h.spawn(t, s, hcsdriver.ProcessConfig{CommandLine: pingForever})
	s.Close()
	o, err := h.NewDriver(t).Open(h.ctx(t), s.ID())
	if err != nil {
		t.Fatalf("Open after the only handle closed: %v", err)
	}
	defer o.Close()
	wantState(t, h, o, hcsdriver.StateRunning)
	if _, err := p.ExitCode(); !errors.Is(err, hcsdriver.ErrInvalidState) {
		t.Errorf("process ExitCode after the system handle closed: err = %v, want it still running", err)
	}
}

func testStoppedVanishes(t *testing.T, h Harness) {
	d1, d2 := h.NewDriver(t), h.NewDriver(t)
	id := newID(t)
	s1 := h.create(t, d1, id)
	s2, err := d2.Open(h.ctx(t), id)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer s2.Close()
	if err := s1.Start(h.ctx(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := s1.Terminate(h.ctx(t)); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if err := s1.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	s1.Close()
	s3, err := h.NewDriver(t).Open(h.ctx(t), id)
	if err != nil {
		t.Fatalf("Open of a stopped system another handle holds: %v", err)
	}
	wantState(t, h, s3, hcsdriver.StateStopped)
	s3.Close()
	s2.Close()
	s4, err := h.NewDriver(t).Open(h.ctx(t), id)
	if err == nil {
		s4.Close()
	}
	wantErr(t, "Open after the last handle closed", err, hcsdriver.ErrNotFound)
	infos, err := d1.List(h.ctx(t), h.Owner)
	if err != nil {
		t.Fatalf("List: %v", err)
	}
	for _, i := range infos {
		if i.ID == id {
			t.Errorf("List still has %+v", i)
		}
	}
}

// ---- processes ----

func testInitExit(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	if r := h.run(t, s, "cmd /c exit /b 0", ""); r.code != 0 {
		t.Errorf("exit code %d, want 0", r.code)
	}
	wantState(t, h, s, hcsdriver.StateRunning)
}

func testProcessOutput(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	for _, tc := range []struct {
		cmdline string
		want    result
	}{
		{"cmd /c echo hi", result{stdout: "hi\r\n"}},
		{"cmd /c exit /b 3", result{code: 3}},
		{`cmd /c "echo a & echo b & exit /b 2"`, result{stdout: "a \r\nb \r\n", code: 2}},
		{`cmd /c "echo out& echo err 1>&2& exit /b 7"`, result{stdout: "out\r\n", stderr: "err \r\n", code: 7}},
		{"cmd /c exit /b 258", result{code: 258}},
	} {
		if got := h.run(t, s, tc.cmdline, ""); got != tc.want {
			t.Errorf("%s: got %+v, want %+v", tc.cmdline, got, tc.want)
		}
	}
}

func testProcessStdin(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	r := h.run(t, s, "cmd /c more", "hello\r\nworld\r\n")
	if r.code != 0 || !strings.Contains(r.stdout, "hello\r\nworld\r\n") {
		t.Errorf("more: got %+v, want the input echoed and exit code 0", r)
	}
}

func testProcessCloseStdin(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	p := h.spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "cmd /c more", Stdin: true, Stdout: true})
	in, out, _, err := p.Stdio()
	if err != nil {
		t.Fatalf("Stdio: %v", err)
	}
	outc := drain(out)
	if _, err := io.WriteString(in, "typed\r\n"); err != nil {
		t.Fatalf("write stdin: %v", err)
	}
	// The process must end on CloseStdin alone, without the caller closing
	// its end of the pipe.
	if err := p.CloseStdin(h.ctx(t)); err != nil {
		t.Fatalf("CloseStdin: %v", err)
	}
	if err := p.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if code, err := p.ExitCode(); err != nil || code != 0 {
		t.Errorf("ExitCode() = %d, %v; want 0", code, err)
	}
	if got := <-outc; !strings.Contains(got, "typed\r\n") {
		t.Errorf("stdout = %q, want the input echoed", got)
	}
	in.Close()
}

func testProcessEnvironment(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	p := h.spawn(t, s, hcsdriver.ProcessConfig{
		CommandLine: `cmd /c "echo %BERTH_TEST%& echo %USERNAME%& cd"`, Environment: map[string]string{"BERTH_TEST": "v=1"},
		WorkingDirectory: `C:\Windows`, User: "ContainerUser", Stdout: true,
	})
	_, out, _, err := p.Stdio()
	if err != nil {
		t.Fatalf("Stdio: %v", err)
	}
	outc := drain(out)
	if err := p.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if got, want := <-outc, "v=1\r\nContainerUser\r\nC:\\Windows\r\n"; got != want {
		t.Errorf("stdout = %q, want %q", got, want)
	}
}

func testProcessManyLines(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	const n = 2000
	r := h.run(t, s, fmt.Sprintf(`cmd /c "for /l %%i in (1,1,%d) do @echo line %%i"`, n), "")
	lines := strings.Split(strings.TrimSuffix(r.stdout, "\r\n"), "\r\n")
	if r.code != 0 || len(lines) != n || lines[0] != "line 1" || lines[n-1] != fmt.Sprintf("line %d", n) {
		t.Errorf("got code %d and %d lines (first %q, last %q), want 0 and %d lines", r.code, len(lines), lines[0], lines[len(lines)-1], n)
	}
}

func testStdioOnce(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	p := h.spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "cmd /c echo hi", Stdout: true})
	in, out, errOut, err := p.Stdio()
	if err != nil {
		t.Fatalf("Stdio: %v", err)
	}
	if in != nil || errOut != nil || out == nil {
		t.Errorf("Stdio = %v, %v, %v; want only stdout", in, out, errOut)
	}
	outc := drain(out)
	_, _, _, err = p.Stdio()
	wantErr(t, "second Stdio", err, hcsdriver.ErrInvalidState)
	if err := p.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if got := <-outc; got != "hi\r\n" {
		t.Errorf("stdout = %q, want %q", got, "hi\r\n")
	}
}

func testEmulateConsole(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	p := h.spawn(t, s, hcsdriver.ProcessConfig{
		CommandLine: `cmd /c "echo to-err 1>&2"`, EmulateConsole: true, ConsoleWidth: 80, ConsoleHeight: 25,
		Stdout: true, Stderr: true,
	})
	_, out, errOut, err := p.Stdio()
	if err != nil {
		t.Fatalf("Stdio: %v", err)
	}
	if errOut != nil {
		t.Errorf("Stdio gave a stderr pipe to a console process")
	}
	outc := drain(out)
	if err := p.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if got := <-outc; !strings.Contains(got, "to-err") {
		t.Errorf("console output = %q, want stderr merged in", got)
	}

	q := h.spawn(t, s, hcsdriver.ProcessConfig{CommandLine: pingForever, EmulateConsole: true, Stdout: true})
	_, out, _, err = q.Stdio()
	if err != nil {
		t.Fatalf("Stdio: %v", err)
	}
	drain(out)
	if err := q.ResizeConsole(h.ctx(t), 120, 40); err != nil {
		t.Errorf("ResizeConsole: %v", err)
	}
	if err := q.Kill(h.ctx(t)); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := q.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
}

func testExitCodeBeforeExit(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	p := h.spawn(t, s, hcsdriver.ProcessConfig{CommandLine: pingForever})
	if p.Pid() <= 0 {
		t.Errorf("Pid() = %d", p.Pid())
	}
	_, err := p.ExitCode()
	wantErr(t, "ExitCode of a running process", err, hcsdriver.ErrInvalidState)
	if err := p.Kill(h.ctx(t)); err != nil {
		t.Fatalf("Kill: %v", err)
	}
	if err := p.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if _, err := p.ExitCode(); err != nil {
		t.Errorf("ExitCode after Wait: %v", err)
	}
	wantErr(t, "second Kill", p.Kill(h.ctx(t)), hcsdriver.ErrAlreadyStopped)
	wantState(t, h, s, hcsdriver.StateRunning)
}

func testProcessWaitContext(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	p := h.spawn(t, s, hcsdriver.ProcessConfig{CommandLine: pingForever})
	ctx, cancel := context.WithTimeout(h.ctx(t), 20*time.Millisecond)
	defer cancel()
	wantErr(t, "Wait on a running process", p.Wait(ctx), context.DeadlineExceeded)
	if err := p.Kill(h.ctx(t)); err != nil {
		t.Fatalf("Kill: %v", err)
	}
}

func testProcessCloseDoesNotKill(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	p := h.spawn(t, s, hcsdriver.ProcessConfig{CommandLine: pingForever})
	pid := p.Pid()
	if err := p.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := p.Close(); err != nil {
		t.Errorf("second Close = %v, want nil", err)
	}
	_, err := p.ExitCode()
	wantErr(t, "ExitCode on a closed handle", err, hcsdriver.ErrClosed)
	wantErr(t, "Kill on a closed handle", p.Kill(h.ctx(t)), hcsdriver.ErrClosed)
	q, err := s.OpenProcess(h.ctx(t), pid)
	if err != nil {
		t.Fatalf("OpenProcess after Close: %v", err)
	}
	defer q.Close()
	if err := q.Kill(h.ctx(t)); err != nil {
		t.Errorf("Kill through the reopened handle: %v", err)
	}
}

func testOpenProcess(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	p := h.spawn(t, s, hcsdriver.ProcessConfig{CommandLine: pingForever})
	o, err := h.NewDriver(t).Open(h.ctx(t), s.ID())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	defer o.Close()
	q, err := o.OpenProcess(h.ctx(t), p.Pid())
	if err != nil {
		t.Fatalf("OpenProcess: %v", err)
	}
	defer q.Close()
	if q.Pid() != p.Pid() {
		t.Errorf("reopened Pid() = %d, want %d", q.Pid(), p.Pid())
	}
	// The pipes belong to the handle that created the process: an agent
	// that reopens a process after a restart cannot read its output.
	_, _, _, err = q.Stdio()
	wantErr(t, "Stdio of a reopened process", err, hcsdriver.ErrInvalidState)
	if err := q.Kill(h.ctx(t)); err != nil {
		t.Fatalf("Kill through the reopened handle: %v", err)
	}
	if err := p.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait through the first handle: %v", err)
	}
	if err := q.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait through the reopened handle: %v", err)
	}
	_, err = o.OpenProcess(h.ctx(t), p.Pid())
	wantErr(t, "OpenProcess of the exited process", err, hcsdriver.ErrNotFound)
}

func testOpenExitedProcess(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	p := h.spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "cmd /c exit /b 5"})
	if err := p.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if code, err := p.ExitCode(); err != nil || code != 5 {
		t.Errorf("ExitCode() = %d, %v; want 5", code, err)
	}
	_, err := s.OpenProcess(h.ctx(t), p.Pid())
	wantErr(t, "OpenProcess of an exited process", err, hcsdriver.ErrNotFound)
}

func testCreateProcessNotRunning(t *testing.T, h Harness) {
	d := h.NewDriver(t)
	s := h.create(t, d, newID(t))
	cfg := hcsdriver.ProcessConfig{CommandLine: "cmd /c echo hi"}
	_, err := s.CreateProcess(h.ctx(t), cfg)
	wantErr(t, "CreateProcess in a created system", err, hcsdriver.ErrInvalidState)
	if err := s.Start(h.ctx(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	if err := s.Terminate(h.ctx(t)); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if err := s.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	_, err = s.CreateProcess(h.ctx(t), cfg)
	wantErr(t, "CreateProcess in a stopped system", err, hcsdriver.ErrInvalidState)
}

func testUnknownExecutable(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	p, err := s.CreateProcess(h.ctx(t), hcsdriver.ProcessConfig{CommandLine: "no-such-program-berth.exe /x", Stdout: true})
	if err == nil {
		p.Close()
	}
	wantErr(t, "CreateProcess of an unknown executable", err, hcsdriver.ErrNotFound)
	wantState(t, h, s, hcsdriver.StateRunning)
}

func testShutdownEndsProcesses(t *testing.T, h Harness) {
	s := h.started(t, h.NewDriver(t))
	p := h.spawn(t, s, hcsdriver.ProcessConfig{CommandLine: pingForever})
	if err := s.Shutdown(h.ctx(t)); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := s.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	if err := p.Wait(h.ctx(t)); err != nil {
		t.Fatalf("process Wait: %v", err)
	}
	if _, err := p.ExitCode(); err != nil {
		t.Errorf("ExitCode: %v", err)
	}
}

func testStatistics(t *testing.T, h Harness) {
	d := h.NewDriver(t)
	s := h.create(t, d, newID(t))
	_, err := s.Statistics(h.ctx(t))
	wantErr(t, "Statistics of a created system", err, hcsdriver.ErrInvalidState)
	if err := s.Start(h.ctx(t)); err != nil {
		t.Fatalf("Start: %v", err)
	}
	st, err := s.Statistics(h.ctx(t))
	if err != nil {
		t.Fatalf("Statistics: %v", err)
	}
	if st.Timestamp.IsZero() || st.StartedAt.IsZero() || st.StartedAt.After(st.Timestamp) || st.MemoryPrivateBytes == 0 {
		t.Errorf("Statistics = %+v, want timestamps and a working set", st)
	}
	if err := s.Terminate(h.ctx(t)); err != nil {
		t.Fatalf("Terminate: %v", err)
	}
	if err := s.Wait(h.ctx(t)); err != nil {
		t.Fatalf("Wait: %v", err)
	}
	_, err = s.Statistics(h.ctx(t))
	wantErr(t, "Statistics of a stopped system", err, hcsdriver.ErrInvalidState)
}
