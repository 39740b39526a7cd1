package tests

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/journal"
	"github.com/berthhq/berth/winsim"
)

var update = flag.Bool("update", false, "rewrite the golden files of TestGoldenReplay")

// TestGoldenReplay replays each journal recorded by tests/cmd/berth-record
// (testdata/replay/<name>/journal.jsonl) into a fresh agent, on the
// simulated host recorded with it (host.json), and compares what the agent
// planned and did (its node.reconciled event) and the state it reached
// with the golden files plan.golden.json and state.golden.json. Run with
// -update to rewrite them after a deliberate change, and review the diff.
func TestGoldenReplay(t *testing.T) {
	dirs, err := filepath.Glob(filepath.Join("testdata", "replay", "*"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no recordings in testdata/replay: %v", err)
	}
	for _, rec := range dirs {
		t.Run(filepath.Base(rec), func(t *testing.T) {
			ctx := context.Background()
			data := t.TempDir()
			loadJournal(t, filepath.Join(rec, "journal.jsonl"), data)
			hostDir := filepath.Join(data, "winsim")
			state, err := os.ReadFile(filepath.Join(rec, "host.json"))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.MkdirAll(hostDir, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(hostDir, winsim.StateFile), state, 0o644); err != nil {
				t.Fatal(err)
			}
			host, err := winsim.Open(hostDir)
			if err != nil {
				t.Fatal(err)
			}
			defer host.Close()
			session := host.Compute()
			a := startAgent(t, agent.Options{DataDir: data, Compute: session, Network: host.Network()})
			defer func() { stopAgent(t, a); session.Abandon() }()

			r := &rig{t: t, host: host, a: a}
			plan := reconciled(t, r)
			plan.Took = 0
			golden(t, filepath.Join(rec, "plan.golden.json"), plan)

			var st *events.State
			r.settled(ctx)
			if st, err = a.Node.State(ctx); err != nil {
				t.Fatal(err)
			}
			golden(t, filepath.Join(rec, "state.golden.json"), normalized(st))

			// Nothing is left to do but adopt what runs.
			again, err := a.Node.Plan(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, act := range again {
				if act.Kind != events.ActionAdopt {
					t.Errorf("after reconciliation the plan still holds %+v", act)
				}
			}
		})
	}
}

// loadJournal appends the recorded events, as they are, to the journal of
// a fresh embedded server in dir/nats.
func loadJournal(t *testing.T, path, dir string) {
	t.Helper()
	ctx := context.Background()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	srv, err := journal.StartServer(ctx, journal.ServerOptions{DataDir: filepath.Join(dir, "nats")})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	nc, err := srv.Connect()
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	j, err := journal.Open(ctx, nc, journal.Config{Subjects: events.NewSubjects("", testNode)})
	if err != nil {
		t.Fatal(err)
	}
	defer j.Close()
	if _, err := j.Boot(ctx); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		e, err := events.DecodeEvent(sc.Bytes())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := j.Append(ctx, e); err != nil {
			t.Fatal(err)
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
}

// normalized is st without what differs from run to run: times, and the
// sequence of each container's last event (reconciliation runs container
// actions concurrently, so their events interleave in any order).
func normalized(st *events.State) *events.State {
	st = st.Clone()
	for _, c := range st.Containers {
		c.CreatedAt, c.StartedAt, c.Seq = time.Time{}, time.Time{}, 0
		if c.Exit != nil {
			c.Exit.FinishedAt = time.Time{}
		}
	}
	for i := range st.Outcomes {
		st.Outcomes[i].At = time.Time{}
	}
	return st
}

// golden compares v, as indented JSON, with the file at path, or writes it
// there with -update.
func golden(t *testing.T, path string, v any) {
	t.Helper()
	got, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs (-want +got):\n%s", path, cmp.Diff(string(want), string(got)))
	}
}
