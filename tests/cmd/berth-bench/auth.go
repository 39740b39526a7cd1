package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/journal"
	"github.com/berthhq/berth/winsim"
)

func init() {
	benches["auth"] = bench{"ps query and run/rm command round trips: in process vs loopback TCP signed in with the control plane's NKey (subject permissions checked)", benchAuth}
}

// benchAuth measures what the listener's authentication and permissions
// cost a client: the same query and commands, one at a time, through the
// agent's in-process server and through its loopback listener as the
// control plane identity.
func benchAuth(ctx context.Context, short bool) (rows []Row, err error) {
	n := 2000
	if short {
		n = 200
	}
	dir, err := os.MkdirTemp("", "berth-bench-auth-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	authDir := filepath.Join(dir, "auth")
	creds, err := journal.InitCredentials(authDir, events.NewSubjects("", benchNode))
	if err != nil {
		return nil, err
	}
	host := winsim.New()
	defer host.Close()
	a, err := agent.Start(ctx, agent.Options{Node: benchNode, DataDir: dir, Host: "winsim", Compute: host.Compute(),
		Listen: "127.0.0.1:0", Credentials: &creds, StopTimeout: 10 * time.Second, Logger: zerolog.New(os.Stderr).Level(zerolog.WarnLevel)})
	if err != nil {
		return nil, err
	}
	defer stopAgent(a)
	inproc, err := a.Server.Connect()
	if err != nil {
		return nil, err
	}
	defer inproc.Close()
	sign, err := journal.NKeyOptions(journal.SeedFile(authDir, journal.RoleControl))
	if err != nil {
		return nil, err
	}
	tcp, err := nats.Connect(a.Server.ClientURL(), sign...)
	if err != nil {
		return nil, err
	}
	defer tcp.Close()
	for i, c := range []struct {
		label string
		nc    *nats.Conn
	}{{"in process (agent identity)", inproc}, {"loopback TCP, control NKey", tcp}} {
		client, err := control.NewClient(c.nc, benchNode, control.WithTimeout(time.Minute))
		if err != nil {
			return nil, err
		}
		var ps, cmds latencies
		for range n {
			t := time.Now()
			if _, err := client.Ps(ctx, true); err != nil {
				return nil, err
			}
			ps.add(time.Since(t))
		}
		for j := range n / 10 {
			id := fmt.Sprintf("auth-%d-%d", i, j)
			t := time.Now()
			if _, err := client.Run(ctx, id, runSpec("ping", "-t", "localhost")); err != nil {
				return nil, err
			}
			if _, err := client.Remove(ctx, id, true); err != nil {
				return nil, err
			}
			cmds.add(time.Since(t) / 2)
		}
		rows = append(rows, Row{Label: c.label, Figures: []Figure{
			{Name: "ps p50 ms", Value: ms(ps.pct(0.5)), Format: "%.3f"}, {Name: "ps p99 ms", Value: ms(ps.pct(0.99)), Format: "%.3f"},
			{Name: "command p50 ms", Value: ms(cmds.pct(0.5)), Format: "%.3f"}, {Name: "command p99 ms", Value: ms(cmds.pct(0.99)), Format: "%.3f"},
		}})
	}
	return rows, nil
}
