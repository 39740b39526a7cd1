package tests

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/journal"
	"github.com/berthhq/berth/winsim"
)

// execEnv is an agent on a simulated host with one running container.
type execEnv struct {
	a      *agent.Agent
	host   *winsim.Host
	client *control.Client
}

const execCtr = "shell"

func newExecEnv(t *testing.T, o agent.Options) *execEnv {
	t.Helper()
	host := winsim.New()
	t.Cleanup(func() { host.Close() })
	o.DataDir, o.Compute = t.TempDir(), host.Compute()
	a := startAgent(t, o)
	t.Cleanup(func() { stopAgent(t, a) })
	env := &execEnv{a: a, host: host, client: connectClient(t, a.Server)}
	if _, err := env.client.Run(context.Background(), execCtr, pingSpec); err != nil {
		t.Fatal(err)
	}
	return env
}

func (e *execEnv) exec(t *testing.T, spec events.ExecSpec, stdin string) (string, string, events.ExecExit, error) {
	t.Helper()
	var out, errOut bytes.Buffer
	st := control.ExecStreams{Stdout: &out, Stderr: &errOut}
	if stdin != "" {
		st.Stdin = strings.NewReader(stdin)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	x, err := e.client.Exec(ctx, execCtr, spec, st)
	return out.String(), errOut.String(), x, err
}

// execEvents returns the exec events of the container, as "type exec
// reason code" lines.
func (e *execEnv) execEvents(t *testing.T) []events.Event {
	t.Helper()
	var evs []events.Event
	err := e.client.Events(context.Background(), control.EventsOptions{Container: execCtr,
		Types: []string{events.ContainerExecStarted, events.ContainerExecExited}}, func(ev events.Event) error {
		evs = append(evs, ev)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return evs
}

func TestExecStdioAndExitCode(t *testing.T) {
	e := newExecEnv(t, agent.Options{})
	for _, tc := range []struct {
		name           string
		spec           events.ExecSpec
		stdin          string
		stdout, stderr string
		code           int
	}{
		{"echo stdin", events.ExecSpec{Command: []string{"cmd", "/c", "more"}, Stdin: true}, "hello\r\nworld\r\n", "hello\r\nworld\r\n", "", 0},
		{"stdin asked for, none given", events.ExecSpec{Command: []string{"cmd", "/c", "more"}, Stdin: true}, "", "", "", 0},
		{"streams and code", events.ExecSpec{Command: []string{"cmd", "/c", "echo out& echo err 1>&2& exit /b 7"}}, "", "out\r\n", "err \r\n", 7},
		{"env, workdir, user", events.ExecSpec{Command: []string{"cmd", "/c", "echo %MODE%& echo %USERNAME%& cd"},
			Env: map[string]string{"MODE": "debug"}, Workdir: `C:\app`, User: "ContainerUser"}, "", "debug\r\nContainerUser\r\nC:\\app\r\n", "", 0},
		{"tty merges stderr", events.ExecSpec{Command: []string{"cmd", "/c", "echo err 1>&2"}, TTY: true, Width: 100, Height: 30}, "", "err \r\n", "", 0},
	} {
		out, errOut, x, err := e.exec(t, tc.spec, tc.stdin)
		if err != nil {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if out != tc.stdout || errOut != tc.stderr || x.Code == nil || *x.Code != tc.code || x.Reason != events.ReasonExited {
			t.Errorf("%s: got stdout %q stderr %q exit %+v, want %q %q code %d", tc.name, out, errOut, x, tc.stdout, tc.stderr, tc.code)
		}
	}
	// Output larger than the flow-control window arrives whole and in order.
	out, _, x, err := e.exec(t, events.ExecSpec{Command: []string{"cmd", "/c", "for /l %i in (1,1,40000) do @echo line %i of many lines"}}, "")
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSuffix(out, "\r\n"), "\r\n")
	if len(lines) != 40000 || lines[39999] != "line 40000 of many lines" || x.Frames == 0 {
		t.Errorf("got %d lines (last %q), %d frames; want 40000", len(lines), lines[len(lines)-1], x.Frames)
	}
	// A session's exec_exited is recorded after its client has the exit.
	var evs []events.Event
	waitFor(t, "started and exited of 6 execs", func() bool { evs = e.execEvents(t); return len(evs) >= 12 })
	if len(evs) != 12 {
		t.Fatalf("%d exec events, want 12 (started and exited of 6 execs)", len(evs))
	}
	var started events.ExecStartedData
	var exited events.ExecExit
	if err := evs[4].Decode(&started); err != nil || evs[4].Type != events.ContainerExecStarted || started.Command[0] != "cmd" || started.Pid == 0 {
		t.Errorf("fifth exec event %s %+v (%v), want exec_started of cmd with a pid", evs[4].Type, started, err)
	}
	if err := evs[5].Decode(&exited); err != nil || exited.Exec != started.Exec || exited.Code == nil || *exited.Code != 7 || evs[5].Command != started.Exec {
		t.Errorf("sixth exec event %s %+v (%v), want exec_exited of %s with code 7", evs[5].Type, exited, err, started.Exec)
	}
}

func TestExecRefusals(t *testing.T) {
	e := newExecEnv(t, agent.Options{MaxExecs: 1})
	ctx := context.Background()
	spec := events.ExecSpec{Command: []string{"cmd", "/c", "echo hi"}}

	if _, err := e.client.Create(ctx, "idle", events.ContainerSpec{Image: events.ImageSpec{Ref: "nanoserver"},
		Command: events.CommandSpec{Entrypoint: []string{"cmd"}}}); err != nil {
		t.Fatal(err)
	}
	_, err := e.client.Exec(ctx, "idle", spec, control.ExecStreams{})
	if !errors.Is(err, events.ErrWrongPhase) || !strings.Contains(err.Error(), "exec needs a running container") {
		t.Errorf("exec in a created container: %v, want 409 wrong_phase", err)
	}
	_, err = e.client.Exec(ctx, "nope", spec, control.ExecStreams{})
	if !errors.Is(err, events.ErrNotFound) {
		t.Errorf("exec in an unknown container: %v, want 404", err)
	}
	_, err = e.client.Exec(ctx, execCtr, events.ExecSpec{Command: []string{"no-such.exe"}}, control.ExecStreams{})
	if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), "exec.command") {
		t.Errorf("exec of an unknown program: %v, want 400 naming exec.command", err)
	}
	_, err = e.client.Exec(ctx, execCtr, events.ExecSpec{}, control.ExecStreams{})
	if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), "exec.command") {
		t.Errorf("exec without a command: %v, want 400 naming exec.command", err)
	}
	if err := e.client.ExecResize(ctx, "no-such-exec", control.ConsoleSize{Width: 80, Height: 25}); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("resize of an unknown exec id: %v, want 404", err)
	}

	// One session runs; a second is over the limit.
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	var first error
	go func() {
		defer wg.Done()
		_, first = e.client.Exec(lctx, execCtr, events.ExecSpec{Command: []string{"ping", "-t", "localhost"}}, control.ExecStreams{})
	}()
	waitFor(t, "the first exec session", func() bool {
		c, err := e.client.Inspect(ctx, execCtr)
		return err == nil && len(c.Execs) == 1
	})
	_, err = e.client.Exec(ctx, execCtr, spec, control.ExecStreams{})
	if !errors.Is(err, events.ErrConflict) || !strings.Contains(err.Error(), "exec sessions") {
		t.Errorf("exec over the limit: %v, want 409 conflict naming the limit", err)
	}
	stop()
	wg.Wait()
	if !errors.Is(first, context.Canceled) {
		t.Errorf("cancelled exec returned %v", first)
	}
	waitFor(t, "the cancelled exec recorded as ended", func() bool {
		c, err := e.client.Inspect(ctx, execCtr)
		return err == nil && len(c.Execs) == 0
	})
	evs := e.execEvents(t)
	var x events.ExecExit
	if err := evs[len(evs)-1].Decode(&x); err != nil || x.Reason != events.ReasonClientLost || x.Code == nil {
		t.Errorf("last exec event %+v (%v), want the cancelled exec killed with reason client_lost and a code", x, err)
	}
}

func TestExecOff(t *testing.T) {
	e := newExecEnv(t, agent.Options{ExecOff: true})
	_, err := e.client.Exec(context.Background(), execCtr, events.ExecSpec{Command: []string{"cmd", "/c", "echo hi"}}, control.ExecStreams{})
	if !errors.Is(err, events.ErrConflict) || !strings.Contains(err.Error(), "exec is turned off") {
		t.Errorf("exec on a node with exec off: %v, want 409 saying exec is turned off", err)
	}
}

// TestExecClientVanishes: a client whose connection dies mid-stream sends
// no more credit; the agent kills its process after the idle timeout and
// records why.
func TestExecClientVanishes(t *testing.T) {
	e := newExecEnv(t, agent.Options{ExecIdle: 2 * control.ExecHeartbeat})
	nc, err := e.a.Server.Connect()
	if err != nil {
		t.Fatal(err)
	}
	doomed, err := control.NewClient(nc, testNode, control.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	var out lockedBuffer
	go func() {
		_, err := doomed.Exec(context.Background(), execCtr, events.ExecSpec{Command: []string{"ping", "-t", "localhost"}}, control.ExecStreams{Stdout: &out})
		done <- err
	}()
	waitFor(t, "output from the exec", func() bool { return strings.Contains(out.String(), "Reply from") })
	nc.Close()
	if err := <-done; err == nil {
		t.Errorf("Exec on a closed connection returned no error")
	}
	ctx := context.Background()
	waitFor(t, "the vanished client's exec killed", func() bool {
		c, err := e.client.Inspect(ctx, execCtr)
		return err == nil && len(c.Execs) == 0
	})
	evs := e.execEvents(t)
	var x events.ExecExit
	if err := evs[len(evs)-1].Decode(&x); err != nil || x.Reason != events.ReasonClientLost || !strings.Contains(x.Message, "no word from the client") {
		t.Errorf("exec_exited %+v (%v), want reason client_lost after silence", x, err)
	}
}

// TestExecTTYResize resizes a console session, through the resize stream
// of Exec and through ExecResize, and checks the size the host's process
// has. (A session without a console is TestExecBadFrames'.)
func TestExecTTYResize(t *testing.T) {
	e := newExecEnv(t, agent.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sizes := make(chan control.ConsoleSize, 1)
	sizes <- control.ConsoleSize{Width: 132, Height: 50}
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Exec(ctx, execCtr, events.ExecSpec{Command: []string{"ping", "-t", "localhost"}, TTY: true},
			control.ExecStreams{Stdout: &out, Resize: sizes})
		done <- err
	}()
	waitFor(t, "console output", func() bool { return strings.Contains(out.String(), "Reply from") })
	c, err := e.client.Inspect(ctx, execCtr)
	if err != nil || len(c.Execs) != 1 {
		t.Fatalf("inspect: %v, %v", c.Execs, err)
	}
	console := func() (w, h uint16) {
		for _, sys := range e.host.Snapshot().Systems {
			for _, p := range sys.Processes {
				if sys.ID == execCtr && p.Config.EmulateConsole && !p.Exited {
					return p.Config.ConsoleWidth, p.Config.ConsoleHeight
				}
			}
		}
		return 0, 0
	}
	waitFor(t, "the console at 132x50", func() bool { w, h := console(); return w == 132 && h == 50 })
	for id := range c.Execs {
		if err := e.client.ExecResize(ctx, id, control.ConsoleSize{Width: 90, Height: 20}); err != nil {
			t.Errorf("ExecResize of a console session: %v", err)
		}
	}
	if w, h := console(); w != 90 || h != 20 {
		t.Errorf("console after ExecResize: %dx%d, want 90x20", w, h)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Exec after cancel: %v", err)
	}
}

// lockedBuffer is a bytes.Buffer safe for one writer and one reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestExecWithSubjectPermissions: the control plane's NKey identity may run
// an exec with stdin, whose subjects its permissions name; the read-only
// operator's may not.
func TestExecWithSubjectPermissions(t *testing.T) {
	ctx := context.Background()
	a, authDir := startListeningAgent(t, journal.TLSFiles{})
	url := a.Server.ClientURL()
	clientAs := func(role journal.Role) *control.Client {
		c, err := control.NewClient(connectAs(t, url, authDir, role), testNode, control.WithTimeout(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctl := clientAs(journal.RoleControl)
	if _, err := ctl.Run(ctx, execCtr, pingSpec); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	x, err := ctl.Exec(ctx, execCtr, events.ExecSpec{Command: []string{"cmd", "/c", "more"}, Stdin: true},
		control.ExecStreams{Stdin: strings.NewReader("through the permissions\r\n"), Stdout: &out})
	if err != nil || x.Code == nil || *x.Code != 0 || out.String() != "through the permissions\r\n" {
		t.Errorf("control plane exec: %+v %q %v", x, out.String(), err)
	}
	if _, err := clientAs(journal.RoleOperator).Exec(ctx, execCtr, events.ExecSpec{Command: []string{"cmd", "/c", "echo hi"}}, control.ExecStreams{}); err == nil {
		t.Errorf("the read-only operator ran an exec")
	}
}

// TestExecBadFrames sends frames straight to the exec subjects of a running
// session, as a faulty or hostile client might: each is refused with the
// class it deserves, and the session goes on.
func TestExecBadFrames(t *testing.T) {
	e := newExecEnv(t, agent.Options{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out lockedBuffer
	done := make(chan error, 1)
	go func() {
		_, err := e.client.Exec(ctx, execCtr, events.ExecSpec{Command: []string{"ping", "-t", "localhost"}}, control.ExecStreams{Stdout: &out})
		done <- err
	}()
	waitFor(t, "exec output", func() bool { return strings.Contains(out.String(), "Reply from") })
	c, err := e.client.Inspect(ctx, execCtr)
	if err != nil || len(c.Execs) != 1 {
		t.Fatalf("inspect: %v %v", c.Execs, err)
	}
	var id string
	for id = range c.Execs {
	}
	nc, err := e.a.Server.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	subj := events.NewSubjects("", testNode)
	ask := func(execID, ch string, data []byte) error {
		m, err := nc.Request(subj.Exec(execID, ch), data, 5*time.Second)
		if err != nil {
			t.Fatalf("request on %s: %v", ch, err)
		}
		f, err := events.DecodeExecFrame(m.Data)
		if err != nil {
			t.Fatalf("answer on %s: %v", ch, err)
		}
		return f.Err()
	}
	data := events.ExecFrame{Kind: events.FrameData, Seq: 1, Data: []byte("x")}
	for _, tc := range []struct {
		name, exec, ch string
		data           []byte
		want           error
	}{
		{"garbage on in", id, events.ExecIn, []byte("\x00garbage"), events.ErrInvalid},
		{"resize frame on in", id, events.ExecIn, (&events.ExecFrame{Kind: events.FrameResize, Width: 1, Height: 1}).Encode(), events.ErrInvalid},
		{"stdin to a session without stdin", id, events.ExecIn, data.Encode(), events.ErrConflict},
		{"resize without a console", id, events.ExecResize, (&events.ExecFrame{Kind: events.FrameResize, Width: 80, Height: 25}).Encode(), events.ErrConflict},
		{"zero console size", id, events.ExecResize, []byte("r\x00\x00\x00\x00"), events.ErrInvalid},
		{"exit frame from a client", id, events.ExecCredit, (&events.ExecFrame{Kind: events.FrameExit, Exit: &events.ExecExit{}}).Encode(), events.ErrInvalid},
		{"stdin to an unknown exec", "no-such-exec", events.ExecIn, data.Encode(), events.ErrNotFound},
		{"credit to an unknown exec", "no-such-exec", events.ExecCredit, (&events.ExecFrame{Kind: events.FrameCredit, Bytes: 1, Frames: 1}).Encode(), events.ErrNotFound},
	} {
		if err := ask(tc.exec, tc.ch, tc.data); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	// The session survived all of it.
	before := len(out.String())
	waitFor(t, "more output after the bad frames", func() bool { return len(out.String()) > before })
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Exec: %v", err)
	}
}
