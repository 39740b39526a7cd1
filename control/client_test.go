package control_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
)

func TestClient_ContainerVerbs(t *testing.T) {
	h := newHarness(t, hconfig{})
	ctx := context.Background()
	steps := []struct {
		name  string
		do    func() (events.ContainerResult, error)
		phase events.Phase
		err   error
	}{
		{"create", func() (events.ContainerResult, error) { return h.client.Create(ctx, "web-1", *spec("img")) }, events.PhaseCreated, nil},
		{"create again", func() (events.ContainerResult, error) { return h.client.Create(ctx, "web-1", *spec("img")) }, "", events.ErrConflict},
		{"start", func() (events.ContainerResult, error) { return h.client.Start(ctx, "web-1") }, events.PhaseRunning, nil},
		{"start again", func() (events.ContainerResult, error) { return h.client.Start(ctx, "web-1") }, "", events.ErrWrongPhase},
		{"remove running", func() (events.ContainerResult, error) { return h.client.Remove(ctx, "web-1", false) }, "", events.ErrWrongPhase},
		{"stop", func() (events.ContainerResult, error) {
			d := 5 * time.Second
			return h.client.Stop(ctx, "web-1", &d)
		}, events.PhaseExited, nil},
		{"kill exited", func() (events.ContainerResult, error) { return h.client.Kill(ctx, "web-1") }, "", events.ErrWrongPhase},
		{"remove", func() (events.ContainerResult, error) { return h.client.Remove(ctx, "web-1", false) }, events.PhaseRemoved, nil},
		{"start removed", func() (events.ContainerResult, error) { return h.client.Start(ctx, "web-1") }, "", events.ErrNotFound},
		{"run", func() (events.ContainerResult, error) { return h.client.Run(ctx, "web-2", *spec("img")) }, events.PhaseRunning, nil},
		{"kill", func() (events.ContainerResult, error) { return h.client.Kill(ctx, "web-2") }, events.PhaseExited, nil},
	}
	for _, s := range steps {
		res, err := s.do()
		switch {
		case s.err != nil && !errors.Is(err, s.err):
			t.Fatalf("%s: %v, want %v", s.name, err, s.err)
		case s.err != nil:
			var re *events.ReplyError
			if !errors.As(err, &re) {
				t.Errorf("%s: error %T, want *events.ReplyError", s.name, err)
			}
		case err != nil:
			t.Fatalf("%s: %v", s.name, err)
		case res.Phase != s.phase:
			t.Fatalf("%s: phase %s, want %s", s.name, res.Phase, s.phase)
		}
	}
	got := h.agent.submitted()
	if got[5].Timeout == nil || got[5].Timeout.Std() != 5*time.Second {
		t.Errorf("stop reached the agent as %+v, want a 5s timeout", got[5])
	}
}

// Concurrent commands on one client each get the reply to their own
// command.
func TestClient_ConcurrentCommandsGetTheirOwnReplies(t *testing.T) {
	h := newHarness(t, hconfig{})
	ctx := context.Background()
	if _, err := h.client.Create(ctx, "warm", *spec("img")); err != nil {
		t.Fatal(err)
	}
	subs := h.cnc.NumSubscriptions()
	const n = 32
	errs := make(chan error, n)
	for i := range n {
		go func() {
			id := fmt.Sprintf("web-%d", i)
			res, err := h.client.Create(ctx, id, *spec("img"))
			if err == nil && res.Container != id {
				err = fmt.Errorf("create %s answered for %s", id, res.Container)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if got := h.cnc.NumSubscriptions(); got != subs {
		t.Errorf("the client holds %d subscriptions after %d commands, %d before", got, n, subs)
	}
}

// Commands waiting for their replies share the client's one reply
// subscription.
func TestClient_WaitingCommandsShareOneSubscription(t *testing.T) {
	h := newHarness(t, hconfig{noInbox: true}) // nothing answers
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := h.client.Create(short, "warm", *spec("img")); !errors.Is(err, control.ErrPending) {
		t.Fatalf("unanswered create: %v, want ErrPending", err)
	}
	subs := h.cnc.NumSubscriptions()
	ctx, stop := context.WithCancel(context.Background())
	const n = 8
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { _, _ = h.client.Create(ctx, fmt.Sprintf("web-%d", i), *spec("img")) })
	}
	h.inboxHolds(n + 1)
	got := h.cnc.NumSubscriptions()
	stop()
	wg.Wait()
	if got != subs {
		t.Errorf("the client holds %d subscriptions while %d commands wait, %d with none waiting", got, n, subs)
	}
}

// A call waiting for a reply ends when its connection closes: the command
// stays queued.
func TestClient_DoEndsWhenTheConnectionCloses(t *testing.T) {
	h := newHarness(t, hconfig{noInbox: true})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	js, err := jetstream.New(h.nc) // the agent's connection stays open
	if err != nil {
		t.Fatal(err)
	}
	in := h.cnc.Stats().InMsgs
	go func() { // closes the client's connection once the command is queued and the client has its PubAck
		for ctx.Err() == nil {
			if st, err := js.Stream(ctx, h.subj.CommandStream()); err == nil && st.CachedInfo().State.Msgs > 0 && h.cnc.Stats().InMsgs > in {
				h.cnc.Close()
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	_, err = h.client.Create(ctx, "web-1", *spec("img"))
	if !errors.Is(err, nats.ErrConnectionClosed) || !errors.Is(err, control.ErrPending) {
		t.Fatalf("create while the connection closed: %v, want ErrPending and nats.ErrConnectionClosed", err)
	}
}

func TestClient_DoRefusesInvalidCommandsUnsent(t *testing.T) {
	h := newHarness(t, hconfig{})
	_, err := h.client.Do(context.Background(), events.Command{ID: events.NewID(), Verb: events.VerbStart, Container: "Bad"})
	if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), "container") {
		t.Errorf("Do with a bad container id: %v, want ErrInvalid naming the container", err)
	}
	if n := h.streamMsgs(h.subj.CommandStream()); n != 0 || len(h.agent.submitted()) != 0 {
		t.Errorf("an invalid command was sent: %d queued, %d submitted", n, len(h.agent.submitted()))
	}
}

// With no intake running, a command is stored and Do reports it pending;
// sending the same id again is deduplicated by the inbox; once the intake
// runs, the agent gets the command exactly once.
func TestClient_PendingWhileAgentIsDown(t *testing.T) {
	h := newHarness(t, hconfig{noInbox: true})
	cmd := events.Command{ID: events.NewID(), Verb: events.VerbCreate, Container: "web-1", Spec: spec("img")}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if _, err := h.client.Do(ctx, cmd); !errors.Is(err, control.ErrPending) || !strings.Contains(err.Error(), h.subj.CommandStream()) {
		t.Fatalf("Do with no agent: %v, want ErrPending naming the inbox", err)
	}
	if _, err := h.client.Do(context.Background(), cmd); !errors.Is(err, control.ErrPending) || !strings.Contains(err.Error(), "already holds") {
		t.Fatalf("Do again with the same id: %v, want ErrPending for a duplicate", err)
	}
	if n := h.streamMsgs(h.subj.CommandStream()); n != 1 {
		t.Fatalf("%d commands queued, want 1", n)
	}

	if err := h.srv.Stop(context.Background()); err != nil {
		t.Fatal(err)
	}
	inbox, err := h.j.Inbox(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	h.opts.Inbox = inbox
	h.start()
	if got := h.agent.waitSubmit(t); got.ID != cmd.ID {
		t.Fatalf("agent got %s, want %s", got.ID, cmd.ID)
	}
	c, err := h.client.Inspect(context.Background(), "web-1")
	if err != nil || c.Phase != events.PhaseCreated {
		t.Fatalf("inspect after the agent came back: %+v, %v", c, err)
	}
	if n := len(h.agent.submitted()); n != 1 {
		t.Errorf("agent got %d commands, want 1", n)
	}
}

func TestClient_Events(t *testing.T) {
	h := newHarness(t, hconfig{})
	ctx := context.Background()
	if _, err := h.client.Run(ctx, "web-1", *spec("img")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Run(ctx, "web-2", *spec("img")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Stop(ctx, "web-1", nil); err != nil {
		t.Fatal(err)
	}
	collect := func(o control.EventsOptions) []events.Event {
		t.Helper()
		var got []events.Event
		if err := h.client.Events(ctx, o, func(e events.Event) error { got = append(got, e); return nil }); err != nil {
			t.Fatal(err)
		}
		return got
	}
	short := func(evs []events.Event) string {
		var s []string
		for _, e := range evs {
			s = append(s, e.Short()+"/"+e.Subject)
		}
		return strings.Join(s, " ")
	}

	all := collect(control.EventsOptions{})
	if uint64(len(all)) != h.j.LastSeq() {
		t.Fatalf("%d events, want all %d", len(all), h.j.LastSeq())
	}
	for i, e := range all {
		if e.Seq != uint64(i+1) {
			t.Fatalf("event %d has seq %d", i, e.Seq)
		}
	}

	tests := []struct {
		name string
		o    control.EventsOptions
		want string
	}{
		{"container", control.EventsOptions{Container: "web-1"},
			"container.creating/web-1 container.created/web-1 container.starting/web-1 container.started/web-1 container.stopping/web-1 container.exited/web-1"},
		{"type", control.EventsOptions{Types: []string{"container.started"}}, "container.started/web-1 container.started/web-2"},
		{"types with prefix and container", control.EventsOptions{Types: []string{"berth.container.exited", "container.created"}, Container: "web-1"},
			"container.created/web-1 container.exited/web-1"},
		{"family", control.EventsOptions{Types: []string{"node"}}, ""}, // checked below
		{"since after the last event", control.EventsOptions{Since: time.Now().Add(time.Hour)}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := collect(tt.o)
			if tt.name == "family" {
				if len(got) != 3 || slices.ContainsFunc(got, func(e events.Event) bool { return e.Kind() != events.KindNode }) {
					t.Errorf("node events: %s, want the 3 command outcomes", short(got))
				}
				return
			}
			if s := short(got); s != tt.want {
				t.Errorf("got %s\nwant %s", s, tt.want)
			}
		})
	}

	for _, bad := range []control.EventsOptions{
		{Types: []string{"explosion"}},
		{Container: "Bad!"},
		{Types: []string{"node"}, Container: "web-1"},
	} {
		if err := h.client.Events(ctx, bad, func(events.Event) error { return nil }); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("Events(%+v) = %v, want ErrInvalid", bad, err)
		}
	}

	stop := errors.New("enough")
	n := 0
	err := h.client.Events(ctx, control.EventsOptions{}, func(events.Event) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("Events with a failing fn: %v after %d events, want fn's error after 1", err, n)
	}
}

func TestClient_EventsFollow(t *testing.T) {
	h := newHarness(t, hconfig{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := h.client.Run(ctx, "web-1", *spec("img")); err != nil {
		t.Fatal(err)
	}
	got := make(chan events.Event, 100)
	done := make(chan error, 1)
	go func() {
		done <- h.client.Events(ctx, control.EventsOptions{Follow: true, Container: "web-2", Types: []string{"container"}},
			func(e events.Event) error { got <- e; return nil })
	}()
	if _, err := h.client.Run(ctx, "web-2", *spec("img")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.client.Kill(ctx, "web-2"); err != nil {
		t.Fatal(err)
	}
	var seen []string
	for e := range recv(t, got) {
		if e.Subject != "web-2" {
			t.Errorf("followed event of %s", e.Subject)
		}
		seen = append(seen, e.Short())
		if e.Type == events.ContainerExited {
			break
		}
	}
	want := "container.creating container.created container.starting container.started container.stopping container.exited"
	if s := strings.Join(seen, " "); s != want {
		t.Errorf("followed %s\nwant %s", s, want)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Errorf("Events with Follow after cancel = %v, want context.Canceled", err)
	}
}

// recv yields what arrives on ch, failing the test if nothing arrives for
// ten seconds.
func recv[T any](t *testing.T, ch <-chan T) func(func(T) bool) {
	return func(yield func(T) bool) {
		for {
			select {
			case v := <-ch:
				if !yield(v) {
					return
				}
			case <-time.After(10 * time.Second):
				t.Error("nothing arrived for 10s")
				return
			}
		}
	}
}

func TestClient_ConfigureNetwork(t *testing.T) {
	h := newHarness(t, hconfig{})
	ctx := context.Background()
	// A plain subscriber sees what the client publishes into the inbox.
	published, err := h.cnc.SubscribeSync(h.subj.Commands())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = published.Unsubscribe() }()

	cfg := events.NetworkConfig{ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.1.0/24", Type: events.NetworkL2Bridge, Adapter: "Ethernet0",
		DNS: events.DNSSpec{Servers: []string{"10.200.0.2"}, Domain: "service.local", Search: []string{"a.local", "b.local"}}}
	res, err := h.client.ConfigureNetwork(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if res.Name != "berth-overlay" || res.Gateway != "10.200.1.1" || !reflect.DeepEqual(res.NetworkConfig, cfg) {
		t.Errorf("result %+v, want berth-overlay, gateway 10.200.1.1 and the configuration sent", res)
	}
	if m := h.next(published); m.Subject != "berth.cmd.n1.network.configure" {
		t.Errorf("published on %s, want berth.cmd.n1.network.configure", m.Subject)
	}
	got := h.agent.submitted()
	if len(got) != 1 || got[0].Verb != events.VerbNetworkConfigure || got[0].Container != "" || !reflect.DeepEqual(*got[0].Network, cfg) {
		t.Errorf("agent got %+v, want the network.configure command", got)
	}
	st, err := h.client.State(ctx, 0)
	if err != nil || st.Network == nil || st.Network.Name != "berth-overlay" || st.Network.Phase != events.NetworkPhaseConfigured {
		t.Fatalf("state after configure: network %+v, %v", st.Network, err)
	}

	for _, tt := range []struct {
		mutate func(*events.NetworkConfig)
		field  string
	}{
		{func(c *events.NetworkConfig) { c.ClusterCIDR = "10.200.0.0" }, "cluster_cidr"},
		{func(c *events.NetworkConfig) { c.NodeSlice = "10.300.1.0/24" }, "node_slice"},
		{func(c *events.NetworkConfig) { c.Type = "vxlan" }, "type"},
		{func(c *events.NetworkConfig) { c.Adapter = "" }, "adapter"},
		{func(c *events.NetworkConfig) { c.DNS.Servers = []string{"dns.local"} }, "dns.servers[0]"},
	} {
		bad := cfg
		tt.mutate(&bad)
		if _, err := h.client.ConfigureNetwork(ctx, bad); !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), "network."+tt.field) {
			t.Errorf("configure %+v: %v, want ErrInvalid naming network.%s", bad, err, tt.field)
		}
	}
	if n := len(h.agent.submitted()); n != 1 {
		t.Errorf("invalid configurations were sent: the agent got %d commands, want 1", n)
	}
}
