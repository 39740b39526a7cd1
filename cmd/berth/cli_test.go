package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/journal"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const node = "n1"

// agentServer starts a NATS server listening on loopback, the node's
// journal, a fake agent and the control server, and returns the URL the
// CLI connects to and the agent.
func agentServer(t *testing.T) (string, *fakeAgent) {
	t.Helper()
	ctx := context.Background()
	ns, err := journal.StartServer(ctx, journal.ServerOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0", User: "berth", Password: "pw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	nc, err := ns.Connect()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	subj := events.NewSubjects("", node)
	j, err := journal.Open(ctx, nc, journal.Config{Subjects: subj})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = j.Close() })
	st, err := j.Boot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	inbox, err := j.Inbox(ctx)
	if err != nil {
		t.Fatal(err)
	}
	agent := &fakeAgent{j: j, st: st}
	srv, err := control.NewServer(control.Options{Conn: nc, Subjects: subj, Agent: agent, Inbox: inbox, History: j, Planner: agent, MountRoots: []string{`D:\data`}})
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = srv.Stop(ctx) })
	return strings.Replace(ns.ClientURL(), "nats://", "nats://berth:pw@", 1), agent
}

// berth runs the CLI with args and returns its exit code and outputs.
func berth(t *testing.T, url string, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	env := map[string]string{"BERTH_NATS_URL": url, "BERTH_NODE": node}
	code := run(context.Background(), args, &stdout, &stderr, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	return code, stdout.String(), stderr.String()
}

// berthOK runs the CLI with args, fails the test unless it exits 0 and
// returns its standard output.
func berthOK(t *testing.T, url string, args ...string) string {
	t.Helper()
	code, stdout, stderr := berth(t, url, args...)
	if code != 0 {
		t.Fatalf("berth %v: exit %d: %s", args, code, stderr)
	}
	return stdout
}

func TestCLI_ExitCodes(t *testing.T) {
	tests := []struct {
		args []string
		code int
		want string // stderr must contain it
	}{
		{[]string{"frobnicate"}, exitUsage, "unknown command"},
		{[]string{"ps", "--bogus"}, exitUsage, "--bogus"},
		{[]string{"-o", "yaml", "ps"}, exitUsage, "-o, --output"},
		{[]string{"run", "--memory", "lots", "img"}, exitUsage, "--memory"},
		{[]string{"run", "-v", `C:\data`, "img"}, exitUsage, "--volume"},
		{[]string{"run"}, exitUsage, "IMAGE"},
		{[]string{"stop", "-t", "soon", "web-1"}, exitUsage, "--time"},
		{[]string{"events", "--since", "yesterday"}, exitUsage, "--since"},
		{[]string{"events", "--type", "explosion"}, exitUsage, "--type"},
		{[]string{"events", "--container", "Bad!"}, exitUsage, "--container"},
		{[]string{"start"}, exitUsage, "CONTAINER"},
		{[]string{"ps", "extra"}, exitUsage, "no arguments"},
		{[]string{"network", "bogus"}, exitUsage, `unknown command "bogus" for "berth network"`},
		{[]string{"network", "configure", "--node-slice", "10.200.1.0/24"}, exitUsage, "cluster-cidr"},
		{[]string{"network", "configure", "--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.1.0/24", "--type", "vxlan"}, exitUsage, "--type"},
		{[]string{"--node", "Bad_Node", "ps"}, exitUsage, "--node"},
		{[]string{"--timeout", "0s", "ps"}, exitUsage, "--timeout"},
		{[]string{"--nkey", "no-such.nk", "ps"}, exitUsage, "--nkey"},
		{[]string{"--tls-cert", "client.pem", "ps"}, exitUsage, "a certificate needs its key"},
		{[]string{"--nats-url", "nats://u:secret@127.0.0.1:1", "--timeout", "200ms", "ps"}, exitFailure, "connecting to nats://u:xxxxx@127.0.0.1:1"},
	}
	for _, tt := range tests {
		code, _, stderr := berth(t, "nats://127.0.0.1:1", tt.args...)
		if code != tt.code || !strings.Contains(stderr, tt.want) {
			t.Errorf("berth %v: exit %d, stderr %q; want exit %d mentioning %q", tt.args, code, stderr, tt.code, tt.want)
		}
		if strings.Contains(stderr, "secret") {
			t.Errorf("berth %v printed the password: %q", tt.args, stderr)
		}
	}
}

// TestCLI_NKey signs in to a server that knows only berth's NKey users:
// with --nkey (or BERTH_NKEY) the CLI gets in, without it the server
// refuses it.
func TestCLI_NKey(t *testing.T) {
	dir := t.TempDir()
	subj := events.NewSubjects("", node)
	creds, err := journal.InitCredentials(dir, subj)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := journal.StartServer(context.Background(), journal.ServerOptions{DataDir: t.TempDir(), Listen: "127.0.0.1:0", Credentials: &creds, Subjects: subj})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ns.Shutdown)
	url := ns.ClientURL()
	// Signed in, the query finds no agent (none runs): not an auth error.
	code, _, stderr := berth(t, url, "--nkey", journal.SeedFile(dir, journal.RoleOperator), "--timeout", "1s", "ps")
	if code != exitFailure || !strings.Contains(stderr, "no agent answers") {
		t.Errorf("berth --nkey operator.nk ps: exit %d, %q; want exit 1, no agent answers", code, stderr)
	}
	// The operator may not send commands: one clear error, exit 1.
	code, _, stderr = berth(t, url, "--nkey", journal.SeedFile(dir, journal.RoleOperator), "--timeout", "1s", "stop", "web-1")
	if code != exitFailure || !strings.Contains(stderr, "not permitted: the NATS server refused to take berth.cmd.n1.stop") ||
		strings.Count(stderr, "Permissions Violation") != 1 {
		t.Errorf("berth --nkey operator.nk stop: exit %d, %q; want exit 1, not permitted, said once", code, stderr)
	}
	code, _, stderr = berth(t, url, "--timeout", "1s", "ps")
	if code != exitFailure || !strings.Contains(stderr, "Authorization Violation") {
		t.Errorf("berth ps without a key: exit %d, %q; want exit 1, authorization violation", code, stderr)
	}
}

func TestCLI_EndToEnd(t *testing.T) {
	url, _ := agentServer(t)
	ok := func(args ...string) string { t.Helper(); return berthOK(t, url, args...) }

	if out := ok("run", "--name", "web-1", "-p", "8080:80", "-v", `D:\data:C:\data:ro`, "-e", "MODE=prod",
		"--memory", "512Mi", "mcr.microsoft.com/windows/nanoserver:ltsc2022", "cmd", "/c", "echo hi"); out != "web-1\n" {
		t.Errorf("run printed %q", out)
	}
	if out := ok("create", "img"); !strings.HasPrefix(out, "img-") {
		t.Errorf("create without --name printed %q", out)
	}
	ok("run", "--name", "web-2", "img")
	ok("stop", "-t", "5", "web-2")

	ps := ok("ps")
	lines := strings.Split(strings.TrimSpace(ps), "\n")
	if len(lines) != 2 || !strings.HasPrefix(lines[0], "CONTAINER ID") {
		t.Fatalf("ps printed\n%s\nwant a header and web-1", ps)
	}
	for _, want := range []string{"web-1", "mcr.microsoft.com/windows/nanoserver:ltsc2022", `"cmd /c "echo hi""`, "Up ", "8080->80/tcp"} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("ps row %q lacks %q", lines[1], want)
		}
	}
	psAll := ok("ps", "-a")
	if !strings.Contains(psAll, "Exited (0) Less than a second ago") || !strings.Contains(psAll, "Created") {
		t.Errorf("ps -a printed\n%s", psAll)
	}
	var cs []events.Container
	if err := json.Unmarshal([]byte(ok("ps", "-a", "-o", "json")), &cs); err != nil || len(cs) != 3 {
		t.Fatalf("ps -a -o json: %d containers, %v", len(cs), err)
	}

	var inspected []events.Container
	if err := json.Unmarshal([]byte(ok("inspect", "web-1")), &inspected); err != nil || len(inspected) != 1 {
		t.Fatalf("inspect: %v", err)
	}
	c := inspected[0]
	if c.Spec.Resources.Memory != 512<<20 || c.Spec.Env["MODE"] != "prod" || len(c.Spec.Mounts) != 1 || c.Spec.Mounts[0].Source != `D:\data` {
		t.Errorf("inspect web-1 spec = %+v", c.Spec)
	}
	if out := ok("inspect", "-o", "table", "web-1"); !strings.Contains(out, `D:\data -> C:\data (ro)`) {
		t.Errorf("inspect -o table printed\n%s", out)
	}
	if out := ok("stats", "web-1"); !strings.Contains(out, "64MiB") {
		t.Errorf("stats printed\n%s", out)
	}

	// A command the agent refuses: exit 1 and the agent's message.
	code, _, stderr := berth(t, url, "start", "web-1")
	if code != exitFailure || !strings.Contains(stderr, "409 wrong_phase") {
		t.Errorf("start of a running container: exit %d, %q", code, stderr)
	}
	code, _, stderr = berth(t, url, "inspect", "nope")
	if code != exitFailure || !strings.Contains(stderr, "404 not_found") {
		t.Errorf("inspect of an unknown container: exit %d, %q", code, stderr)
	}

	ok("rm", "-f", "web-1")
	evs := ok("events", "--container", "web-1")
	if n := strings.Count(evs, "\n"); n != 8 || !strings.Contains(evs, "container.removed web-1") {
		t.Errorf("events of web-1 (%d lines):\n%s", n, evs)
	}
	var started []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(ok("events", "--type", "container.started", "-o", "json")), "\n") {
		var e map[string]any
		if err := json.Unmarshal([]byte(l), &e); err != nil {
			t.Fatalf("events -o json line %q: %v", l, err)
		}
		started = append(started, e)
	}
	if len(started) != 2 || started[0]["seq"] == nil || started[0]["type"] != events.ContainerStarted {
		t.Errorf("started events: %v", started)
	}

	if out := ok("plan"); !regexp.MustCompile(`(?m)^ACTION +CONTAINER +OBJECT +WHY\n(adopt +\S+ +- +running in the journal and on the host\n)*reap_system +- +zombie +no container in the journal owns it\n$`).MatchString(out) {
		t.Errorf("plan printed\n%s", out)
	}

	// The state as it stood when web-1 started.
	seq := uint64(started[0]["seq"].(float64))
	past := ok("state", "--at", fmt.Sprint(seq))
	if !strings.Contains(past, fmt.Sprintf("at journal sequence %d: 1 containers", seq)) || !strings.Contains(past, "web-1") {
		t.Errorf("state --at %d printed\n%s", seq, past)
	}
	if out := ok("version"); !strings.Contains(out, "Client:  "+control.Version) || !strings.Contains(out, "node n1") {
		t.Errorf("version printed\n%s", out)
	}
}

func TestCLI_EventsFollow(t *testing.T) {
	url, _ := agentServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	out := &syncBuffer{changed: make(chan struct{}, 1)}
	done := make(chan int, 1)
	env := map[string]string{"BERTH_NATS_URL": url, "BERTH_NODE": node}
	go func() {
		done <- run(ctx, []string{"events", "-f", "--type", "container"}, out, &bytes.Buffer{}, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	}()
	// Commands are sent until the follower shows them: it prints only what
	// happens after it started.
	for i := 0; !strings.Contains(out.String(), "container.started"); i++ {
		if code, _, stderr := berth(t, url, "run", "--name", fmt.Sprintf("web-%d", i), "img"); code != 0 {
			t.Fatal(stderr)
		}
		select {
		case <-out.changed:
		case <-time.After(200 * time.Millisecond):
		}
		if i > 50 {
			t.Fatalf("events -f printed nothing for %d containers", i)
		}
	}
	cancel()
	if code := <-done; code != 0 {
		t.Errorf("events -f ended with %d after an interrupt, want 0", code)
	}
	if strings.Contains(out.String(), "node.") {
		t.Errorf("events -f --type container printed node events:\n%s", out.String())
	}
}

// syncBuffer is an output the test reads while the CLI writes it.
type syncBuffer struct {
	mu      sync.Mutex
	b       bytes.Buffer
	changed chan struct{}
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	select {
	case s.changed <- struct{}{}:
	default:
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// fakeAgent is a small node for the CLI's tests: it checks each command
// against the fold, appends the events it implies to the real journal and
// applies them. Once a network is configured, it gives each container it
// creates (unless its network mode is none) an endpoint with the next free
// address of the node slice, creating the network first.
type fakeAgent struct {
	j   *journal.Journal
	mu  sync.Mutex
	st  *events.State
	got []events.Command
}

func (a *fakeAgent) Submit(cmd events.Command) <-chan events.Reply {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.got = append(a.got, cmd)
	ch := make(chan events.Reply, 1)
	ch <- a.exec(cmd)
	return ch
}

// submitted returns the commands the agent received.
func (a *fakeAgent) submitted() []events.Command {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.got)
}

func (a *fakeAgent) exec(cmd events.Command) events.Reply {
	id := cmd.Container
	c := a.st.Containers[id]
	ev := func(typ string, data any) events.Event { return events.NewEvent(node, typ, id, cmd.ID, data) }
	exited := func(code int, reason string) events.Event {
		return ev(events.ContainerExited, events.Exit{Code: events.ExitCode(code), Reason: reason, FinishedAt: time.Now().UTC()})
	}
	var evs []events.Event
	var err error
	var res any = events.ContainerResult{Container: id}
	switch {
	case cmd.Verb == events.VerbNetworkConfigure:
		var d events.NetworkConfiguredData
		if d, err = a.configure(cmd); err == nil {
			evs = append(evs, events.NewEvent(node, events.NetworkConfigured, d.Name, cmd.ID, d))
			res = d
		}
	case cmd.Verb == events.VerbCreate || cmd.Verb == events.VerbRun:
		evs = append(evs, ev(events.ContainerCreating, events.CreatingData{Spec: *cmd.Spec}))
		if n := a.st.Network; n != nil && cmd.Spec.Network.Mode != "none" {
			if n.Phase != events.NetworkPhaseCreated {
				evs = append(evs, events.NewEvent(node, events.NetworkCreating, n.Name, cmd.ID, nil),
					events.NewEvent(node, events.NetworkCreated, n.Name, cmd.ID, events.NetworkCreatedData{ID: "hcn-" + n.Name}))
			}
			evs = append(evs, ev(events.ContainerEndpointCreating, a.endpoint(id, cmd.Spec)),
				ev(events.ContainerEndpointCreated, events.EndpointCreatedData{ID: "ep-" + id}))
		}
		evs = append(evs, ev(events.ContainerCreated, events.CreatedData{HostID: id}))
		if cmd.Verb == events.VerbRun {
			evs = append(evs, ev(events.ContainerStarting, nil), ev(events.ContainerStarted, events.StartedData{Pid: 4}))
		}
	case c == nil:
		err = fmt.Errorf("%w: container %s", events.ErrNotFound, id)
	case cmd.Verb == events.VerbStart && c.Phase != events.PhaseCreated:
		err = fmt.Errorf("%w: container %s is %s", events.ErrWrongPhase, id, c.Phase)
	case cmd.Verb == events.VerbStart:
		evs = append(evs, ev(events.ContainerStarting, nil), ev(events.ContainerStarted, events.StartedData{Pid: 4}))
	case cmd.Verb == events.VerbStop || cmd.Verb == events.VerbKill:
		evs = append(evs, ev(events.ContainerStopping, events.StoppingData{}), exited(0, events.ReasonExited))
	case cmd.Verb == events.VerbRemove:
		if c.Phase == events.PhaseRunning {
			evs = append(evs, ev(events.ContainerStopping, events.StoppingData{Kill: true}), exited(137, events.ReasonKilled))
		}
		evs = append(evs, ev(events.ContainerRemoving, nil))
		if c.Endpoint != nil {
			evs = append(evs, ev(events.ContainerEndpointDeleted, nil))
		}
		evs = append(evs, ev(events.ContainerRemoved, nil))
	}
	r := events.NewReply(cmd.ID, res, err)
	evs = append(evs, events.NewEvent(node, events.NodeCommandCompleted, cmd.ID, cmd.ID, events.CommandCompletedData{Verb: cmd.Verb, Container: id, Reply: r}))
	durable, err := a.j.Append(context.Background(), evs...)
	for i := range durable {
		if err == nil {
			err = a.st.Apply(&durable[i])
		}
	}
	if err != nil {
		return events.NewReply(cmd.ID, nil, fmt.Errorf("%w: %w", events.ErrInternal, err))
	}
	if c := a.st.Containers[id]; c != nil {
		r.Result, _ = json.Marshal(events.ContainerResult{Container: id, Phase: c.Phase})
	}
	return r
}

// configure derives the network's name and gateway as the agent does, and
// refuses to change the network's shape while containers hold addresses.
func (a *fakeAgent) configure(cmd events.Command) (events.NetworkConfiguredData, error) {
	d := events.NetworkConfiguredData{Name: "berth-overlay", NetworkConfig: *cmd.Network,
		Gateway: netip.MustParsePrefix(cmd.Network.NodeSlice).Addr().Next().String()}
	if n := a.st.Network; n != nil && len(n.Allocations) > 0 {
		if changed := n.ShapeChanges(d); len(changed) > 0 {
			return d, fmt.Errorf("%w: network: %d containers hold addresses of node slice %s: remove them before changing the network's %s",
				events.ErrConflict, len(n.Allocations), n.NodeSlice, strings.Join(changed, ", "))
		}
	}
	return d, nil
}

// endpoint returns the endpoint of a container created from spec: the
// spec's address or the first free one after the gateway, the network's
// DNS defaults under the spec's.
func (a *fakeAgent) endpoint(id string, spec *events.ContainerSpec) events.Endpoint {
	n := a.st.Network
	ip := spec.Network.IP
	for addr := netip.MustParseAddr(n.Gateway).Next(); ip == ""; addr = addr.Next() {
		if n.Allocations[addr.String()] == "" {
			ip = addr.String()
		}
	}
	dns := n.DNS
	if s := spec.Network.DNS; len(s.Servers) > 0 {
		dns.Servers = s.Servers
	}
	if s := spec.Network.DNS; len(s.Search) > 0 {
		dns.Search = s.Search
	}
	return events.Endpoint{Name: "berth-" + id, Network: n.Name, IP: ip, Gateway: n.Gateway, DNS: dns, Ports: spec.Ports}
}

// Plan plans one adopt per running container of the fold and reaps a
// zombie the host is said to hold.
func (a *fakeAgent) Plan(context.Context) ([]events.Action, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	var plan []events.Action
	for _, id := range slices.Sorted(maps.Keys(a.st.Containers)) {
		if c := a.st.Containers[id]; c.Phase == events.PhaseRunning {
			plan = append(plan, events.Action{Kind: events.ActionAdopt, Container: id, Pid: c.Pid, Why: "running in the journal and on the host"})
		}
	}
	return append(plan, events.Action{Kind: events.ActionReapSystem, Object: "zombie", Why: "no container in the journal owns it"}), nil
}

func (a *fakeAgent) State(context.Context) (*events.State, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.st.Clone(), nil
}

func (a *fakeAgent) Inspect(_ context.Context, id string) (events.Container, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if c, ok := a.st.Containers[id]; ok {
		return *c, nil
	}
	return events.Container{}, fmt.Errorf("%w: container %s", events.ErrNotFound, id)
}

func (a *fakeAgent) Stats(_ context.Context, id string) (events.Stats, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if _, ok := a.st.Containers[id]; !ok {
		return events.Stats{}, fmt.Errorf("%w: container %s", events.ErrNotFound, id)
	}
	return events.Stats{MemoryPrivateBytes: 64 << 20, CPUTotalMicros: 1500}, nil
}
