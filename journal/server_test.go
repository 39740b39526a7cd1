package journal

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/berthhq/berth/events"
)

func TestServerInProcessOnly(t *testing.T) {
	dir := t.TempDir()
	s := startServer(t, dir)
	if u := s.ClientURL(); u != "" {
		t.Fatalf("ClientURL without a listener = %q", u)
	}
	j := open(t, s, Config{})
	boot(t, j)
	appendAll(t, j, created("c1"))
	if _, err := os.Stat(filepath.Join(dir, "jetstream")); err != nil {
		t.Fatalf("JetStream does not store under the data directory: %v", err)
	}
}

func TestServerListenWithAuth(t *testing.T) {
	ctx := testCtx(t)
	s, err := StartServer(ctx, ServerOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0", User: "agent", Password: "s3cret", Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Shutdown)
	url := s.ClientURL()
	if !strings.HasPrefix(url, "nats://127.0.0.1:") || strings.HasSuffix(url, ":0") || strings.HasSuffix(url, ":4222") {
		t.Fatalf("ClientURL = %q, want a random loopback port", url)
	}

	nc, err := Connect(ctx, url, nats.UserInfo("agent", "s3cret"))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	j, err := Open(ctx, nc, Config{Subjects: events.NewSubjects("", node)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = j.Close() }()

	// In-process clients authenticate too.
	if in, err := s.Connect(); err != nil {
		t.Fatalf("in-process connect with the configured user: %v", err)
	} else {
		in.Close()
	}
	if !testing.Short() { // the server then waits out a 10s write deadline on the pipe
		if in, err := s.Connect(nats.UserInfo("agent", "wrong")); err == nil {
			in.Close()
			t.Fatal("an in-process client with a wrong password connected")
		}
	}
	// Without credentials the connection never comes up.
	short, cancel := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel()
	if nc, err := Connect(short, url); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	} else if !errors.Is(err, events.ErrUnavailable) {
		t.Fatalf("connect without credentials: %v, want ErrUnavailable", err)
	}
}

func TestServerOptionsRefused(t *testing.T) {
	for name, o := range map[string]ServerOptions{
		"no data dir":                {},
		"listener beyond loopback":   {DataDir: t.TempDir(), Listen: "0.0.0.0:0"},
		"listen without a port":      {DataDir: t.TempDir(), Listen: "127.0.0.1"},
		"listen with a bad port":     {DataDir: t.TempDir(), Listen: "127.0.0.1:http"},
		"listen with a port too big": {DataDir: t.TempDir(), Listen: "127.0.0.1:70000"},
	} {
		if s, err := StartServer(testCtx(t), o); !errors.Is(err, events.ErrInvalid) {
			if err == nil {
				s.Shutdown()
			}
			t.Errorf("%s: StartServer = %v, want ErrInvalid", name, err)
		}
	}
}

func TestOpenRefusesBadConfig(t *testing.T) {
	s := startServer(t, "")
	nc := connect(t, s)
	for name, cfg := range map[string]Config{
		"no node":         {},
		"bad node":        {Subjects: events.NewSubjects("", "N.1")},
		"batch too large": {Subjects: events.NewSubjects("", node), MaxBatch: MaxBatch + 1},
	} {
		if j, err := Open(testCtx(t), nc, cfg); !errors.Is(err, events.ErrInvalid) {
			if err == nil {
				_ = j.Close()
			}
			t.Errorf("%s: Open = %v, want ErrInvalid", name, err)
		}
	}
}
