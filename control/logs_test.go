package control_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
)

// writeLogs copies lines of stream into the log stream through the
// journal's log writer and waits until they are stored.
func (h *harness) writeLogs(container, stream string, lines ...string) {
	h.t.Helper()
	h.j.Logs().Copy(container, stream, strings.NewReader(strings.Join(lines, "\n")+"\n"))
	if err := h.j.Logs().Flush(context.Background()); err != nil {
		h.t.Fatal(err)
	}
}

func collectLogs(t *testing.T, c *control.Client, id string, o control.LogsOptions) []string {
	t.Helper()
	var got []string
	err := c.Logs(context.Background(), id, o, func(l control.LogLine) error {
		if l.Time.IsZero() || l.Seq == 0 {
			t.Errorf("line %q without time or sequence: %+v", l.Data, l)
		}
		got = append(got, l.Stream+" "+string(l.Data))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

func TestClient_Logs(t *testing.T) {
	h := newHarness(t, hconfig{noInbox: true})
	h.writeLogs("web-1", events.Stdout, "a", "b")
	h.writeLogs("other", events.Stdout, "not mine")
	h.writeLogs("web-1", events.Stderr, "c")
	h.writeLogs("web-1", events.Stdout, "d")
	mid := time.Now()
	h.writeLogs("web-1", events.Stdout, "e")
	h.writeLogs("other", events.Stdout, "not mine either")

	for _, tc := range []struct {
		name string
		o    control.LogsOptions
		want string
	}{
		{"all", control.LogsOptions{}, "stdout a|stdout b|stderr c|stdout d|stdout e"},
		{"stdout", control.LogsOptions{Stdout: true}, "stdout a|stdout b|stdout d|stdout e"},
		{"stderr", control.LogsOptions{Stderr: true}, "stderr c"},
		{"tail", control.LogsOptions{Tail: 3}, "stderr c|stdout d|stdout e"},
		{"tail beyond", control.LogsOptions{Tail: 10}, "stdout a|stdout b|stderr c|stdout d|stdout e"},
		{"tail stdout", control.LogsOptions{Tail: 2, Stdout: true}, "stdout d|stdout e"},
		{"since", control.LogsOptions{Since: mid}, "stdout e"},
		{"since future", control.LogsOptions{Since: time.Now().Add(time.Hour)}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := strings.Join(collectLogs(t, h.client, "web-1", tc.o), "|"); got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
	if got := collectLogs(t, h.client, "silent", control.LogsOptions{}); len(got) != 0 {
		t.Errorf("a container without output printed %q", got)
	}
	err := h.client.Logs(context.Background(), "Bad Id", control.LogsOptions{}, func(control.LogLine) error { return nil })
	if !errors.Is(err, events.ErrInvalid) {
		t.Errorf("invalid container id: %v, want ErrInvalid", err)
	}
	stop := errors.New("enough")
	err = h.client.Logs(context.Background(), "web-1", control.LogsOptions{}, func(control.LogLine) error { return stop })
	if !errors.Is(err, stop) {
		t.Errorf("Logs returned %v, want fn's error", err)
	}
}

func TestClient_LogsFollow(t *testing.T) {
	h := newHarness(t, hconfig{noInbox: true})
	h.writeLogs("web-1", events.Stdout, "old-1", "old-2", "old-3")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	lines := make(chan string)
	done := make(chan error, 1)
	go func() {
		done <- h.client.Logs(ctx, "web-1", control.LogsOptions{Follow: true, Tail: 1}, func(l control.LogLine) error {
			select {
			case lines <- string(l.Data):
			case <-ctx.Done():
			}
			return nil
		})
	}()
	next := func() string {
		select {
		case l := <-lines:
			return l
		case err := <-done:
			t.Fatalf("Logs -f ended: %v", err)
		}
		return ""
	}
	if got := next(); got != "old-3" {
		t.Fatalf("first followed line %q, want the tail old-3", got)
	}
	for i := range 3 {
		want := fmt.Sprintf("new-%d", i)
		h.writeLogs("web-1", events.Stderr, want)
		if got := next(); got != want {
			t.Fatalf("followed line %q, want %q", got, want)
		}
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Logs -f returned %v after cancel, want context.Canceled", err)
	}
}
