package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
)

// output writes lines of a container's stream through the journal's log
// writer, as the agent does, and waits until they are stored.
func (a *fakeAgent) output(t *testing.T, container, stream, text string) {
	t.Helper()
	a.j.Logs().Copy(container, stream, strings.NewReader(text))
	if err := a.j.Logs().Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestCLI_Logs(t *testing.T) {
	url, agent := agentServer(t)
	agent.output(t, "web-1", events.Stdout, "hello\r\nworld\n")
	agent.output(t, "web-1", events.Stderr, "oops\n")
	agent.output(t, "web-1", events.Stdout, "bye\n")
	agent.output(t, "web-2", events.Stdout, "not mine\n")

	for _, tc := range []struct {
		args           []string
		stdout, stderr string
	}{
		{[]string{"logs", "web-1"}, "hello\nworld\nbye\n", "oops\n"},
		{[]string{"logs", "--tail", "2", "web-1"}, "bye\n", "oops\n"},
		{[]string{"logs", "--stderr", "web-1"}, "", "oops\n"},
		{[]string{"logs", "--stdout", "--tail", "1", "web-1"}, "bye\n", ""},
		{[]string{"logs", "--since", "2999-01-01T00:00:00Z", "web-1"}, "", ""},
		{[]string{"logs", "web-9"}, "", ""},
	} {
		code, stdout, stderr := berth(t, url, tc.args...)
		if code != 0 || stdout != tc.stdout || stderr != tc.stderr {
			t.Errorf("berth %v: exit %d, stdout %q, stderr %q; want 0, %q, %q", tc.args, code, stdout, stderr, tc.stdout, tc.stderr)
		}
	}

	long := strings.Repeat("y", 3*16<<10+7) // four chunks, one time stamp
	agent.output(t, "web-1", events.Stdout, long+"\n")
	code, stdout, _ := berth(t, url, "logs", "--timestamps", "--stdout", "web-1")
	lines := strings.Split(strings.TrimSuffix(stdout, "\n"), "\n")
	if code != 0 || len(lines) != 4 || !strings.HasSuffix(lines[3], " "+long) {
		t.Fatalf("logs --timestamps: exit %d, %q", code, stdout)
	}
	for _, l := range lines {
		ts, _, _ := strings.Cut(l, " ")
		if _, err := time.Parse(time.RFC3339Nano, ts); err != nil || strings.Count(l, "Z ") != 1 {
			t.Errorf("logs --timestamps line %q: %v", l, err)
		}
	}

	code, stdout, _ = berth(t, url, "-o", "json", "logs", "web-1")
	var got []string
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var l control.LogLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("-o json line %q: %v", sc.Text(), err)
		}
		got = append(got, l.Stream+":"+string(l.Data))
	}
	if want := "stdout:hello stdout:world stderr:oops stdout:bye" + strings.Repeat(" stdout:"+long[:16<<10], 3) + " stdout:yyyyyyy"; code != 0 || strings.Join(got, " ") != want {
		t.Errorf("logs -o json: exit %d, %q, want %q", code, got, want)
	}

	for _, args := range [][]string{{"logs"}, {"logs", "Bad!"}, {"logs", "--tail", "-1", "web-1"}, {"logs", "--since", "later", "web-1"}} {
		if code, _, _ := berth(t, url, args...); code != exitUsage {
			t.Errorf("berth %v: exit %d, want %d", args, code, exitUsage)
		}
	}
}

func TestCLI_LogsFollow(t *testing.T) {
	url, agent := agentServer(t)
	agent.output(t, "web-1", events.Stdout, "before\n")
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{changed: make(chan struct{}, 1)}
	done := make(chan int, 1)
	env := map[string]string{"BERTH_NATS_URL": url, "BERTH_NODE": node}
	go func() {
		done <- run(ctx, []string{"logs", "-f", "web-1"}, out, &bytes.Buffer{}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}()
	for !strings.Contains(out.String(), "before\n") {
		<-out.changed
	}
	// A long line written while following comes out whole.
	long := strings.Repeat("x", 40<<10)
	agent.output(t, "web-1", events.Stdout, long+"\nafter\n")
	for !strings.HasSuffix(out.String(), "after\n") {
		<-out.changed
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("logs -f ended with %d after an interrupt, want 0", code)
	}
	if want := "before\n" + long + "\nafter\n"; out.String() != want {
		t.Errorf("logs -f printed %d bytes, want %d", len(out.String()), len(want))
	}
}
