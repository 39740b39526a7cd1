// Command berth-record records the journals and simulated hosts that the
// golden replay tests (tests/replay_test.go) replay: for each scenario it
// runs a real agent in process on a simulated host kept in a directory,
// drives it through the scenario (commands, host misfortunes, agent stops
// and crashes at a chosen append), and writes what was left behind:
//
//	<out>/<scenario>/journal.jsonl   the node's journal, one event a line, in order
//	<out>/<scenario>/host.json       the simulated host's state file
//
// Usage: go run ./tests/cmd/berth-record [-out tests/testdata/replay] [scenario...]
package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/journal"
	"github.com/berthhq/berth/winsim"
)

// Node is the node every scenario records.
const Node = "edge-1"

var ping = events.ContainerSpec{Image: events.ImageSpec{Ref: "nanoserver"},
	Command: events.CommandSpec{Entrypoint: []string{"ping"}, Args: []string{"-t", "localhost"}}}

var netCfg = events.NetworkConfig{ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.1.0/24", Type: "nat"}

// scenarios by name. Each leaves the agent stopped or crashed.
var scenarios = map[string]func(r *recorder) error{
	// Containers in every settled phase; while the agent is down one
	// system crashes, one init process ends, and a system and an endpoint
	// of ours appear that the journal does not know.
	"restart": func(r *recorder) error {
		r.start(nil)
		r.must(r.client.ConfigureNetwork(r.ctx, netCfg))
		r.must(r.client.Run(r.ctx, "web", ping))
		r.must(r.client.Run(r.ctx, "gone", ping))
		r.must(r.client.Run(r.ctx, "done", ping))
		r.must(r.client.Create(r.ctx, "idle", ping))
		r.must(r.client.Run(r.ctx, "old", ping))
		r.must(r.client.Stop(r.ctx, "old", nil))
		r.stop()
		r.check(r.host.CrashSystem("gone"))
		r.check(r.host.ExitInit("done", 3))
		hcs := r.host.Compute()
		sys, err := hcs.Create(r.ctx, "zombie", hcsdriver.Config{Owner: "berth"})
		r.check(err)
		r.check(sys.Start(r.ctx))
		hcs.Abandon()
		return r.err
	},
	// The agent crashes in a create, after its endpoint intent is durable.
	"crash-create": func(r *recorder) error {
		r.start(nil)
		r.must(r.client.ConfigureNetwork(r.ctx, netCfg))
		r.must(r.client.Run(r.ctx, "web", ping))
		r.crashIn(events.Command{Verb: events.VerbCreate, Container: "new", Spec: &ping}, events.ContainerEndpointCreating)
		return r.err
	},
	// The agent crashes in a stop, after its intent is durable, and in a
	// remove, after its intent is durable.
	"crash-stop-remove": func(r *recorder) error {
		r.start(nil)
		r.must(r.client.ConfigureNetwork(r.ctx, netCfg))
		r.must(r.client.Run(r.ctx, "a", ping))
		r.must(r.client.Run(r.ctx, "b", ping))
		r.must(r.client.Stop(r.ctx, "b", nil))
		r.crashIn(events.Command{Verb: events.VerbStop, Container: "a"}, events.ContainerStopping)
		r.start(nil)
		r.crashIn(events.Command{Verb: events.VerbRemove, Container: "b"}, events.ContainerRemoving)
		return r.err
	},
}

func main() {
	out := flag.String("out", filepath.Join("tests", "testdata", "replay"), "directory to write the recordings to")
	flag.Parse()
	names := flag.Args()
	if len(names) == 0 {
		names = slices.Sorted(maps.Keys(scenarios))
	}
	for _, name := range names {
		if err := record(name, filepath.Join(*out, name)); err != nil {
			fmt.Fprintf(os.Stderr, "berth-record: %s: %v\n", name, err)
			os.Exit(1)
		}
		fmt.Println("recorded", name)
	}
}

// recorder runs one scenario's agent on its host.
type recorder struct {
	ctx     context.Context
	dir     string
	host    *winsim.Host
	session *winsim.Session
	a       *agent.Agent
	client  *control.Client
	err     error // the first failure
}

func record(name, out string) error {
	scenario, ok := scenarios[name]
	if !ok {
		return fmt.Errorf("no scenario %q (have %v)", name, slices.Sorted(maps.Keys(scenarios)))
	}
	dir, err := os.MkdirTemp("", "berth-record-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	host, err := winsim.Open(filepath.Join(dir, "winsim"))
	if err != nil {
		return err
	}
	r := &recorder{ctx: context.Background(), dir: dir, host: host}
	err = scenario(r)
	if cerr := host.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	state, err := os.ReadFile(filepath.Join(dir, "winsim", winsim.StateFile))
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(out, "host.json"), state, 0o644); err != nil {
		return err
	}
	return exportJournal(r.ctx, dir, filepath.Join(out, "journal.jsonl"))
}

func (r *recorder) check(err error) {
	if err != nil && r.err == nil {
		r.err = err
	}
}

func (r *recorder) must(_ any, err error) { r.check(err) }

func (r *recorder) start(failpoint func([]events.Event, bool)) {
	if r.err != nil {
		return
	}
	r.session = r.host.Compute()
	var err error
	r.a, err = agent.Start(r.ctx, agent.Options{Node: Node, Host: "winsim", DataDir: r.dir, Compute: r.session,
		Network: r.host.Network(), StopTimeout: time.Second, Failpoint: failpoint, Logger: zerolog.Nop()})
	if err != nil {
		r.check(err)
		return
	}
	nc, err := r.a.Server.Connect()
	if err != nil {
		r.check(err)
		return
	}
	r.client, err = control.NewClient(nc, Node, control.WithTimeout(20*time.Second))
	r.check(err)
}

func (r *recorder) stop() {
	if r.a == nil {
		return
	}
	ctx, cancel := context.WithTimeout(r.ctx, 20*time.Second)
	defer cancel()
	r.check(r.a.Stop(ctx))
	r.session.Abandon()
	r.a = nil
}

// crashIn stops the running agent and starts one that crashes in cmd once
// an event of type typ is durable: as the death of the process would, NATS
// goes first, then the host handles.
func (r *recorder) crashIn(cmd events.Command, typ string) {
	r.stop()
	if r.err != nil {
		return
	}
	cmd.ID = events.NewID()
	hit, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	r.start(func(evs []events.Event, durable bool) {
		if durable && len(evs) > 0 && evs[0].Command == cmd.ID && evs[0].Type == typ {
			once.Do(func() { close(hit); <-release })
		}
	})
	if r.err != nil {
		return
	}
	go func() { _, _ = r.client.Do(r.ctx, cmd) }()
	select {
	case <-hit:
	case <-time.After(20 * time.Second):
		r.check(errors.New("the crash point was not reached"))
	}
	r.a.Conn.Close()
	r.a.Server.Shutdown()
	r.session.Abandon()
	close(release)
	ctx, cancel := context.WithTimeout(r.ctx, 20*time.Second)
	defer cancel()
	_ = r.a.Stop(ctx) // NATS is gone: errors are expected
	r.a = nil
}

// exportJournal writes the node's journal in dir, one event a line.
func exportJournal(ctx context.Context, dir, path string) error {
	srv, err := journal.StartServer(ctx, journal.ServerOptions{DataDir: filepath.Join(dir, "nats")})
	if err != nil {
		return err
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		return err
	}
	defer nc.Close()
	j, err := journal.Open(ctx, nc, journal.Config{Subjects: events.NewSubjects("", Node)})
	if err != nil {
		return err
	}
	defer j.Close()
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriter(f)
	err = j.Replay(ctx, 1, 0, func(e *events.Event) error {
		b, err := e.Marshal()
		if err != nil {
			return err
		}
		_, err = w.Write(append(b, '\n'))
		return err
	})
	if ferr := w.Flush(); err == nil {
		err = ferr
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}
