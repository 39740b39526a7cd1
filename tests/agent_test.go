package tests

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/rs/zerolog"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/registry/registrytest"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/journal"
)

// testNode is the node the end-to-end tests run.
const testNode = "edge-1"

// startAgent starts an agent for testNode with o, logging warnings into
// the test output.
func startAgent(t *testing.T, o agent.Options) *agent.Agent {
	t.Helper()
	o.Node, o.Host, o.StopTimeout = testNode, "winsim", time.Second
	o.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	a, err := agent.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// stopAgent stops a the way berthd does; its containers keep running.
func stopAgent(t *testing.T, a *agent.Agent) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := a.Stop(ctx); err != nil {
		t.Fatal(err)
	}
}

// pingSpec is a container that runs until it is stopped.
var pingSpec = events.ContainerSpec{Image: events.ImageSpec{Ref: "nanoserver"},
	Command: events.CommandSpec{Entrypoint: []string{"ping"}, Args: []string{"-t", "localhost"}}}

// pingPlatform is the platform of the simulated host and of pingImage's
// image.
var pingPlatform = imagedriver.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2227"}

// pingImage returns pingSpec with a real image: one layer, pushed to a
// loopback registry that the test's end closes.
func pingImage(t *testing.T) events.ContainerSpec {
	t.Helper()
	reg := registrytest.New()
	t.Cleanup(reg.Close)
	layer, err := registrytest.Layer(map[string][]byte{"Files/app.txt": []byte("app")})
	if err != nil {
		t.Fatal(err)
	}
	img, err := registrytest.Image(pingPlatform.OSVersion, v1.Config{Entrypoint: []string{"ping"}, Cmd: []string{"-t", "localhost"}}, layer)
	if err != nil {
		t.Fatal(err)
	}
	spec := pingSpec
	if spec.Image.Ref, err = reg.Push("app:1", img); err != nil {
		t.Fatal(err)
	}
	return spec
}

// startExternalServer starts a NATS server of the test's own on loopback,
// with berth's NKey users made anew, shut down when the test ends. It
// returns the server and the options of an agent that uses it (external
// mode, one replica); the caller adds the host.
func startExternalServer(t *testing.T) (*journal.Server, agent.Options) {
	t.Helper()
	dir := t.TempDir()
	creds, err := journal.InitCredentials(filepath.Join(dir, "auth"), events.NewSubjects("", testNode))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := journal.StartServer(context.Background(), journal.ServerOptions{DataDir: dir, Listen: "127.0.0.1:-1",
		Credentials: &creds, Subjects: events.NewSubjects("", testNode)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Shutdown)
	return srv, agent.Options{NATSURL: srv.ClientURL(), Credentials: &creds, Replicas: 1}
}

// connectClient connects a control client for testNode to srv, with a 10 s
// timeout; its connection is closed when the test ends.
func connectClient(t *testing.T, srv *journal.Server) *control.Client {
	t.Helper()
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	client, err := control.NewClient(nc, testNode, control.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
