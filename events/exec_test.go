package events_test

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthhq/berth/events"
)

var execFrames = []events.ExecFrame{
	{Kind: events.FrameData, Seq: 1, Data: []byte("hello\r\n")},
	{Kind: events.FrameData, Seq: 1 << 40, Data: bytes.Repeat([]byte{0xff}, events.ExecChunk)},
	{Kind: events.FrameEOF, Seq: 3},
	{Kind: events.FrameResize, Width: 120, Height: 40},
	{Kind: events.FrameCredit, Bytes: 256 << 10, Frames: 64},
	{Kind: events.FrameKill},
	{Kind: events.FrameExit, Exit: &events.ExecExit{Exec: "e1", Code: events.ExitCode(3), Reason: events.ReasonExited, Frames: 9}},
	{Kind: events.FrameExit, Exit: &events.ExecExit{Exec: "e2", Reason: events.ReasonClientLost, Message: "no credit for 10s"}},
	{Kind: events.FrameStatus, Code: 200},
	{Kind: events.FrameStatus, Code: 404, ErrKind: "not_found", Message: "exec x: not found"},
	{Kind: events.FrameStatus, Code: 409, ErrKind: "conflict", Message: "exec x was started without stdin"},
}

func TestExecFrameRoundTrip(t *testing.T) {
	for _, f := range execFrames {
		got, err := events.DecodeExecFrame(f.Encode())
		if err != nil {
			t.Errorf("DecodeExecFrame(%c): %v", f.Kind, err)
			continue
		}
		if diff := cmp.Diff(f, got, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("round trip of %c (-want +got):\n%s", f.Kind, diff)
		}
	}
}

func TestDecodeExecFrameBad(t *testing.T) {
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"empty", nil, "empty"},
		{"unknown kind", []byte("z"), "unknown kind"},
		{"data without seq", []byte("d"), "sequence number"},
		{"data seq zero", []byte("d\x00abc"), "sequence number"},
		{"data too long", append([]byte("d\x01"), make([]byte, events.ExecChunk+1)...), "more than"},
		{"eof with data", []byte("e\x01x"), "eof"},
		{"resize short", []byte("r\x00\x50"), "want 4"},
		{"resize zero", []byte("r\x00\x00\x00\x19"), "outside"},
		{"resize huge", []byte("r\xff\xff\x00\x19"), "outside"},
		{"credit one varint", []byte("c\x05"), "two varints"},
		{"credit trailing", []byte("c\x05\x05\x05"), "two varints"},
		{"kill trailing", []byte("kx"), "unexpected"},
		{"exit not json", []byte("x{"), "exit"},
		{"exit unknown field", []byte(`x{"exec":"a","bogus":1}`), "bogus"},
		{"status code", []byte(`s{"code":7}`), "code 7"},
	} {
		_, err := events.DecodeExecFrame(tc.data)
		if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err = %v, want ErrInvalid mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestExecStatusErr(t *testing.T) {
	for _, err := range []error{events.ErrNotFound, events.ErrWrongPhase, events.ErrConflict, events.ErrInvalid, events.ErrUnavailable} {
		f := events.StatusFrame(fmt.Errorf("%w: something", err))
		back, derr := events.DecodeExecFrame(f.Encode())
		if derr != nil {
			t.Fatal(derr)
		}
		if got := back.Err(); !errors.Is(got, err) {
			t.Errorf("status for %v: Err() = %v", err, got)
		}
	}
	ok := events.StatusFrame(nil)
	if err := ok.Err(); err != nil {
		t.Errorf("status 200: Err() = %v", err)
	}
}

func TestExecCommandValidate(t *testing.T) {
	good := events.ExecSpec{Command: []string{"cmd", "/c", "echo hi"}, Env: map[string]string{"A": "1"}, TTY: true, Width: 80, Height: 25}
	for _, tc := range []struct {
		name string
		edit func(c *events.Command)
		want string // "" for valid
	}{
		{"ok", func(*events.Command) {}, ""},
		{"no spec", func(c *events.Command) { c.Exec = nil }, "exec: required"},
		{"spec on stop", func(c *events.Command) { c.Verb = events.VerbStop }, "only exec takes"},
		{"empty command", func(c *events.Command) { c.Exec.Command = nil }, "exec.command"},
		{"blank program", func(c *events.Command) { c.Exec.Command = []string{" "} }, "exec.command"},
		{"NUL", func(c *events.Command) { c.Exec.Command = []string{"a\x00"} }, "exec.command"},
		{"env", func(c *events.Command) { c.Exec.Env = map[string]string{"A=B": "x"} }, "exec.env"},
		{"size without tty", func(c *events.Command) { c.Exec.TTY = false }, "needs tty"},
		{"size too big", func(c *events.Command) { c.Exec.Width = 5000 }, "larger than"},
		{"user", func(c *events.Command) { c.Exec.User = "a\x00" }, "exec.user"},
	} {
		spec := good
		spec.Command = append([]string(nil), good.Command...)
		c := events.Command{ID: "x1", Verb: events.VerbExec, Container: "web", Exec: &spec}
		tc.edit(&c)
		err := c.Validate()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case tc.want != "" && (!errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), tc.want)):
			t.Errorf("%s: err = %v, want ErrInvalid mentioning %q", tc.name, err, tc.want)
		}
	}
}

func TestFoldExec(t *testing.T) {
	st := events.NewState("n1", events.DefaultWindow)
	seq := uint64(0)
	apply := func(typ string, data any) error {
		seq++
		e := events.NewEvent("n1", typ, "web", "", data)
		e.Seq = seq
		return st.Apply(&e)
	}
	if err := apply(events.ContainerExecStarted, events.ExecStartedData{Exec: "x"}); !errors.Is(err, events.ErrWrongPhase) {
		t.Errorf("exec_started for a missing container: %v, want ErrWrongPhase", err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(apply(events.ContainerCreating, events.CreatingData{Spec: events.ContainerSpec{Image: events.ImageSpec{Ref: "i"}}}))
	must(apply(events.ContainerCreated, events.CreatedData{HostID: "web"}))
	if err := apply(events.ContainerExecStarted, events.ExecStartedData{Exec: "x"}); !errors.Is(err, events.ErrWrongPhase) {
		t.Errorf("exec_started in a created container: %v, want ErrWrongPhase", err)
	}
	must(apply(events.ContainerStarting, nil))
	must(apply(events.ContainerStarted, events.StartedData{Pid: 4}))
	must(apply(events.ContainerExecStarted, events.ExecStartedData{Exec: "x", Command: []string{"cmd"}, Pid: 8}))
	if got := st.Containers["web"].Execs; len(got) != 1 || got["x"] != 8 {
		t.Errorf("Execs after exec_started = %v, want x: 8", got)
	}
	must(apply(events.ContainerStopping, events.StoppingData{}))
	must(apply(events.ContainerExecExited, events.ExecExit{Exec: "x", Code: events.ExitCode(1), Reason: events.ReasonExited}))
	c := st.Containers["web"]
	if c.Phase != events.PhaseStopping || c.Intent != events.ContainerStopping || c.Seq != seq || c.Execs != nil {
		t.Errorf("after exec_exited: phase %s intent %q seq %d execs %v, want stopping, its intent, %d, none", c.Phase, c.Intent, c.Seq, c.Execs, seq)
	}
	delete(st.Containers, "web")
	must(apply(events.ContainerExecExited, events.ExecExit{Exec: "x", Reason: events.ReasonAgentStopped}))
}

// FuzzExecFrame: DecodeExecFrame never panics, fails only with ErrInvalid,
// and a frame it accepts encodes to bytes that decode to the same frame.
func FuzzExecFrame(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		fr, err := events.DecodeExecFrame(data)
		if err != nil {
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("error %v is not ErrInvalid", err)
			}
			return
		}
		back, err := events.DecodeExecFrame(fr.Encode())
		if err != nil {
			t.Fatalf("re-decoding %q: %v", fr.Encode(), err)
		}
		if diff := cmp.Diff(fr, back, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("round trip (-first +second):\n%s", diff)
		}
	})
}
