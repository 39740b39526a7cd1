package actors_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthhq/berth/actors"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/netdriver"
	"github.com/berthhq/berth/winsim"
)

// natNet is a valid configuration: a /24 slice of a /16 cluster.
func natNet() events.NetworkConfig {
	return events.NetworkConfig{ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.1.0/24", Type: events.NetworkNAT,
		DNS: events.DNSSpec{Servers: []string{"10.200.0.10"}, Domain: "cluster.local", Search: []string{"cluster.local"}}}
}

func configure(c events.NetworkConfig) events.Command {
	return events.Command{Verb: events.VerbNetworkConfigure, Network: &c}
}

func create(id string, s *events.ContainerSpec) events.Command {
	return events.Command{Verb: events.VerbCreate, Container: id, Spec: s}
}

func (a *agent) inspect(id string) events.Container {
	a.t.Helper()
	c, err := a.node.Inspect(context.Background(), id)
	if err != nil {
		a.t.Fatalf("inspect %s: %v", id, err)
	}
	return c
}

func (a *agent) state() *events.State {
	a.t.Helper()
	st, err := a.node.State(context.Background())
	if err != nil {
		a.t.Fatal(err)
	}
	return st
}

// allocations returns the fold's allocation table.
func (a *agent) allocations() map[string]string {
	a.t.Helper()
	if nw := a.state().Network; nw != nil {
		return nw.Allocations
	}
	return nil
}

// waitNetwork waits until the fold records the network as created.
func (a *agent) waitNetwork() *events.Network {
	a.t.Helper()
	var nw *events.Network
	waitUntil(a.t, "the network to be created", func() bool {
		nw = a.state().Network
		return nw != nil && nw.Phase == events.NetworkPhaseCreated
	})
	return nw
}

// hostEndpoints returns the host's endpoints by name.
func hostEndpoints(h *winsim.Host) map[string]winsim.EndpointState {
	m := map[string]winsim.EndpointState{}
	for _, ep := range h.Snapshot().Endpoints {
		m[ep.Name] = ep
	}
	return m
}

func hostSystem(t *testing.T, h *winsim.Host, id string) winsim.SystemState {
	t.Helper()
	for _, s := range h.Snapshot().Systems {
		if s.ID == id {
			return s
		}
	}
	t.Fatalf("the host has no compute system %s", id)
	return winsim.SystemState{}
}

// countingNetwork counts EnsureNetwork calls on the way to a driver.
type countingNetwork struct {
	netdriver.Driver
	ensures atomic.Int64
}

func (c *countingNetwork) EnsureNetwork(ctx context.Context, spec netdriver.NetworkSpec) (netdriver.Network, error) {
	c.ensures.Add(1)
	return c.Driver.EnsureNetwork(ctx, spec)
}

func withNetwork(d netdriver.Driver) func(*actors.Config) {
	return func(c *actors.Config) { c.Network = d }
}

func TestEndpointPerContainer(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, host, t.TempDir())

	cfg := natNet()
	cfg.Type, cfg.Adapter = events.NetworkL2Bridge, "Ethernet 2"
	r := a.do(configure(cfg))
	var got events.NetworkConfiguredData
	if err := r.Err(); err != nil || json.Unmarshal(r.Result, &got) != nil {
		t.Fatalf("configure: %v (%s)", err, r.Result)
	}
	want := events.NetworkConfiguredData{Name: "berth-overlay", NetworkConfig: cfg, Gateway: "10.200.1.1"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("configure result (-want +got):\n%s", d)
	}

	web := spec("ping", "-t", "localhost")
	web.Ports = []events.PortMapping{{HostPort: 8080, ContainerPort: 80}, {HostPort: 5353, ContainerPort: 53, Protocol: "udp"}}
	resolver := spec("ping", "-t", "localhost")
	resolver.Network.DNS = events.DNSSpec{Servers: []string{"1.1.1.1"}, Search: []string{"svc.local"}}
	quiet := spec("ping", "-t", "localhost")
	quiet.Network.Mode = "none"
	a.ok(events.Command{Verb: events.VerbRun, Container: "web", Spec: web})
	a.ok(create("resolver", resolver))
	a.ok(events.Command{Verb: events.VerbRun, Container: "quiet", Spec: quiet})

	nw := a.waitNetwork()
	eps := hostEndpoints(host)
	wantRec := map[string]*events.Endpoint{
		"web": {Name: "berth-web", Network: "berth-overlay", IP: "10.200.1.2", Gateway: "10.200.1.1", DNS: cfg.DNS,
			Ports: []events.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, {HostPort: 5353, ContainerPort: 53, Protocol: "udp"}}},
		"resolver": {Name: "berth-resolver", Network: "berth-overlay", IP: "10.200.1.3", Gateway: "10.200.1.1",
			DNS: events.DNSSpec{Servers: []string{"1.1.1.1"}, Domain: "cluster.local", Search: []string{"svc.local"}}},
		"quiet": nil,
	}
	for id, want := range wantRec {
		c := a.inspect(id)
		if want != nil {
			want.ID = eps["berth-"+id].ID
		}
		if d := cmp.Diff(want, c.Endpoint); d != "" {
			t.Errorf("inspect %s: endpoint (-want +got):\n%s", id, d)
		}
	}
	// The host holds what the records say, and the systems are attached.
	mask := netip.MustParsePrefix("10.200.0.0/16")
	wantHost := map[string]netdriver.Endpoint{
		"berth-web": {EndpointSpec: netdriver.EndpointSpec{Name: "berth-web", Network: nw.ID,
			IP: netip.MustParseAddr("10.200.1.2"), PrefixLen: 24, Gateway: netip.MustParseAddr("10.200.1.1"),
			DNS: netdriver.DNS{Servers: []netip.Addr{netip.MustParseAddr("10.200.0.10")}, Domain: "cluster.local", Search: []string{"cluster.local"}},
			Policies: netdriver.Policies{OutboundNAT: &netdriver.OutboundNAT{Exceptions: []netip.Prefix{mask}},
				PortMappings: []netdriver.PortMapping{{Protocol: netdriver.TCP, InternalPort: 80, ExternalPort: 8080}, {Protocol: netdriver.UDP, InternalPort: 53, ExternalPort: 5353}}}}},
		"berth-resolver": {EndpointSpec: netdriver.EndpointSpec{Name: "berth-resolver", Network: nw.ID,
			IP: netip.MustParseAddr("10.200.1.3"), PrefixLen: 24, Gateway: netip.MustParseAddr("10.200.1.1"),
			DNS:      netdriver.DNS{Servers: []netip.Addr{netip.MustParseAddr("1.1.1.1")}, Domain: "cluster.local", Search: []string{"svc.local"}},
			Policies: netdriver.Policies{OutboundNAT: &netdriver.OutboundNAT{Exceptions: []netip.Prefix{mask}}}}},
	}
	gotHost := map[string]netdriver.Endpoint{}
	for name, ep := range eps {
		gotHost[name] = ep.Endpoint
		if id := strings.TrimPrefix(name, "berth-"); ep.System != id || !ep.Attached {
			t.Errorf("endpoint %s: attached to %q (%v), want %s", name, ep.System, ep.Attached, id)
		}
		if s := hostSystem(t, host, ep.System); !cmp.Equal(s.Config.Endpoints, []string{ep.ID}) {
			t.Errorf("system %s has endpoints %v, want [%s]", s.ID, s.Config.Endpoints, ep.ID)
		}
	}
	if d := cmp.Diff(wantHost, gotHost, cmpopts.IgnoreFields(netdriver.Endpoint{}, "ID"), cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})); d != "" {
		t.Errorf("host endpoints (-want +got):\n%s", d)
	}
	if s := hostSystem(t, host, "web"); !cmp.Equal(s.Config.DNSSearchList, []string{"cluster.local"}) {
		t.Errorf("web's DNS search list %v", s.Config.DNSSearchList)
	}
	if s := hostSystem(t, host, "quiet"); len(s.Config.Endpoints) != 0 {
		t.Errorf("quiet (network none) has endpoints %v", s.Config.Endpoints)
	}
	if d := cmp.Diff(map[string]string{"10.200.1.2": "web", "10.200.1.3": "resolver"}, a.allocations()); d != "" {
		t.Errorf("allocations (-want +got):\n%s", d)
	}
	wantHistory := []string{"container.creating", "container.endpoint_creating", "container.endpoint_created",
		"container.created", "container.starting", "container.started"}
	if d := cmp.Diff(wantHistory, a.history("web")); d != "" {
		t.Errorf("journal of web (-want +got):\n%s", d)
	}

	// Remove deletes the endpoint and releases the address, which the next
	// container gets.
	a.ok(events.Command{Verb: events.VerbRemove, Container: "web", Force: true})
	if _, ok := hostEndpoints(host)["berth-web"]; ok {
		t.Fatal("the host still has web's endpoint after remove")
	}
	if d := cmp.Diff(map[string]string{"10.200.1.3": "resolver"}, a.allocations()); d != "" {
		t.Errorf("allocations after remove (-want +got):\n%s", d)
	}
	web.Ports = web.Ports[:1] // the host port is free again too
	a.ok(events.Command{Verb: events.VerbRun, Container: "next", Spec: web})
	if ip := a.inspect("next").Endpoint.IP; ip != "10.200.1.2" {
		t.Fatalf("next got %s, want the released 10.200.1.2", ip)
	}
}

func TestAddressesAndPortsAreExclusive(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, host, t.TempDir())
	cfg := natNet()
	cfg.NodeSlice = "10.200.1.0/29" // usable: .2 to .6
	a.ok(configure(cfg))

	fixed := spec("ping", "-t", "localhost")
	fixed.Network.IP = "10.200.1.5"
	fixed.Ports = []events.PortMapping{{HostPort: 8080, ContainerPort: 80}}
	a.ok(create("fixed", fixed))
	if ip := a.inspect("fixed").Endpoint.IP; ip != "10.200.1.5" {
		t.Fatalf("explicit address: got %s", ip)
	}

	withIP := func(ip string) *events.ContainerSpec {
		s := spec("ping", "-t", "localhost")
		s.Network.IP = ip
		return s
	}
	withPort := spec("ping", "-t", "localhost")
	withPort.Ports = []events.PortMapping{{HostPort: 8080, ContainerPort: 8080, Protocol: "tcp"}}
	refusals := []struct {
		id    string
		spec  *events.ContainerSpec
		class error
		msg   string
	}{
		{"taken", withIP("10.200.1.5"), events.ErrConflict, `10.200.1.5 is held by container "fixed"`},
		{"outside", withIP("10.200.9.9"), events.ErrInvalid, "10.200.9.9 is outside node slice 10.200.1.0/29"},
		{"gateway", withIP("10.200.1.1"), events.ErrInvalid, "gateway"},
		{"port", withPort, events.ErrConflict, `host port 8080/tcp is held by container "fixed"`},
	}
	check := func(id string, class error, msg string, s *events.ContainerSpec) {
		t.Helper()
		allocs, eps := a.allocations(), len(hostEndpoints(host))
		e := a.refused(create(id, s), class)
		if !strings.Contains(e.Message, msg) {
			t.Errorf("%s: %q does not say %q", id, e.Message, msg)
		}
		if d := cmp.Diff(allocs, a.allocations()); d != "" {
			t.Errorf("%s: the allocation table changed (-before +after):\n%s", id, d)
		}
		if n := len(hostEndpoints(host)); n != eps {
			t.Errorf("%s: the host has %d endpoints, had %d", id, n, eps)
		}
		if c := a.inspect(id); c.Phase != events.PhaseFailed || c.Endpoint != nil {
			t.Errorf("%s: %s with endpoint %+v, want failed without one", id, c.Phase, c.Endpoint)
		}
	}
	for _, r := range refusals {
		check(r.id, r.class, r.msg, r.spec)
	}

	for i := range 4 {
		a.ok(create(fmt.Sprintf("fill-%d", i), spec("ping", "-t", "localhost")))
	}
	check("one-too-many", events.ErrConflict, "node slice 10.200.1.0/29 is exhausted", spec("ping", "-t", "localhost"))
	want := map[string]string{"10.200.1.2": "fill-0", "10.200.1.3": "fill-1", "10.200.1.4": "fill-2", "10.200.1.5": "fixed", "10.200.1.6": "fill-3"}
	if d := cmp.Diff(want, a.allocations()); d != "" {
		t.Errorf("allocations (-want +got):\n%s", d)
	}
	// A refused container is removed like any failed one.
	a.ok(verb(events.VerbRemove, "one-too-many"))
}

func TestConfigure(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, host, t.TempDir())
	a.ok(configure(natNet()))
	a.ok(run("c1", "ping", "-t", "localhost"))
	first := a.waitNetwork()

	bad := func(edit func(*events.NetworkConfig)) *events.NetworkConfig {
		c := natNet()
		edit(&c)
		return &c
	}
	for _, tc := range []struct {
		name  string
		cfg   *events.NetworkConfig
		class error
		field string
	}{
		{"no configuration", nil, events.ErrInvalid, "network: required"},
		{"cidr does not parse", bad(func(c *events.NetworkConfig) { c.ClusterCIDR = "10.200.0.0/33" }), events.ErrInvalid, "network.cluster_cidr"},
		{"slice does not parse", bad(func(c *events.NetworkConfig) { c.NodeSlice = "10.200.1.0" }), events.ErrInvalid, "network.node_slice"},
		{"slice outside the cluster", bad(func(c *events.NetworkConfig) { c.NodeSlice = "10.201.1.0/24" }), events.ErrInvalid, "network.node_slice: 10.201.1.0/24 is not inside cluster_cidr 10.200.0.0/16"},
		{"slice wider than the cluster", bad(func(c *events.NetworkConfig) { c.NodeSlice = "10.0.0.0/8" }), events.ErrInvalid, "network.node_slice"},
		{"slice with host bits", bad(func(c *events.NetworkConfig) { c.NodeSlice = "10.200.1.7/24" }), events.ErrInvalid, "network.node_slice"},
		{"dns server", bad(func(c *events.NetworkConfig) { c.DNS.Servers = []string{"10.200.0.10", "dns.local"} }), events.ErrInvalid, "network.dns.servers[1]"},
		{"type", bad(func(c *events.NetworkConfig) { c.Type = "overlay" }), events.ErrInvalid, "network.type"},
		{"l2bridge without adapter", bad(func(c *events.NetworkConfig) { c.Type = events.NetworkL2Bridge }), events.ErrInvalid, "network.adapter"},
		{"nat with adapter", bad(func(c *events.NetworkConfig) { c.Adapter = "Ethernet" }), events.ErrInvalid, "network.adapter"},
		{"another slice while addresses are held", bad(func(c *events.NetworkConfig) { c.NodeSlice = "10.200.2.0/24" }), events.ErrConflict, "remove them before changing the network's node_slice, gateway"},
		{"another type while addresses are held", bad(func(c *events.NetworkConfig) { c.Type, c.Adapter = events.NetworkTransparent, "Ethernet" }), events.ErrConflict, "type, adapter"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := a.state().Network
			e := a.refused(events.Command{Verb: events.VerbNetworkConfigure, Network: tc.cfg}, tc.class)
			if !strings.Contains(e.Message, tc.field) {
				t.Errorf("%q does not name %q", e.Message, tc.field)
			}
			if d := cmp.Diff(before, a.state().Network); d != "" {
				t.Errorf("the network record changed (-before +after):\n%s", d)
			}
		})
	}

	// New DNS defaults apply to later containers, on the same network.
	cfg := natNet()
	cfg.DNS.Servers = []string{"10.200.0.11"}
	a.ok(configure(cfg))
	a.ok(run("c2", "ping", "-t", "localhost"))
	if got := a.inspect("c2").Endpoint.DNS.Servers; !cmp.Equal(got, []string{"10.200.0.11"}) {
		t.Errorf("c2's DNS servers %v", got)
	}
	if nw := a.state().Network; nw.Phase != events.NetworkPhaseCreated || nw.ID != first.ID {
		t.Errorf("network after a DNS change: %s %s, want created %s", nw.Phase, nw.ID, first.ID)
	}

	// Once no container holds an address, the slice can move: the host's
	// network of the earlier shape is replaced.
	a.ok(events.Command{Verb: events.VerbRemove, Container: "c1", Force: true})
	a.ok(events.Command{Verb: events.VerbRemove, Container: "c2", Force: true})
	cfg.NodeSlice = "10.200.2.0/24"
	a.ok(configure(cfg))
	a.waitNetwork()
	nets := host.Snapshot().Networks
	if len(nets) != 1 || nets[0].Name != "berth-overlay" || nets[0].Subnet != netip.MustParsePrefix("10.200.2.0/24") {
		t.Fatalf("host networks %+v, want berth-overlay on 10.200.2.0/24 only", nets)
	}
	a.ok(run("c3", "ping", "-t", "localhost"))
	if ip := a.inspect("c3").Endpoint.IP; ip != "10.200.2.2" {
		t.Errorf("c3 got %s, want 10.200.2.2", ip)
	}
}

func TestNetworkingOff(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, host, t.TempDir(), withNetwork(nil))
	a.refused(configure(natNet()), events.ErrUnavailable)
	a.ok(run("c1", "ping", "-t", "localhost"))
	if c := a.inspect("c1"); c.Endpoint != nil || len(hostEndpoints(host)) != 0 {
		t.Fatalf("endpoint %+v with networking off", c.Endpoint)
	}
}

func TestExistingNetworkIsAdopted(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	pre, err := host.Network().EnsureNetwork(context.Background(), netdriver.NetworkSpec{Name: "berth-overlay", Type: netdriver.NAT,
		Subnet: netip.MustParsePrefix("10.200.1.0/24"), Gateway: netip.MustParseAddr("10.200.1.1")})
	if err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, host, t.TempDir())
	a.ok(configure(natNet()))
	if nw := a.waitNetwork(); nw.ID != pre.ID {
		t.Fatalf("network %s, want the host's %s adopted", nw.ID, pre.ID)
	}
	if n := len(host.Snapshot().Networks); n != 1 {
		t.Fatalf("the host has %d networks", n)
	}
}

func TestFailedAttachIsRolledBack(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, host, t.TempDir())
	a.ok(configure(natNet()))

	clean := func(id string) {
		t.Helper()
		if _, ok := hostEndpoints(host)["berth-"+id]; ok {
			t.Errorf("%s: endpoint left on the host", id)
		}
		if _, ok := hostSystems(host)[id]; ok {
			t.Errorf("%s: compute system left on the host", id)
		}
		if n := len(a.allocations()); n != 0 {
			t.Errorf("%s: %d addresses still allocated: %v", id, n, a.allocations())
		}
		if c := a.inspect(id); c.Phase != events.PhaseFailed || c.Endpoint != nil || c.Intent != "" {
			t.Errorf("%s: %s, intent %q, endpoint %+v; want failed, settled, without endpoint", id, c.Phase, c.Intent, c.Endpoint)
		}
	}

	// The endpoint cannot be created.
	host.Fail(winsim.OpCreateEndpoint, "berth-c1", 1, netdriver.ErrUnavailable)
	a.refused(run("c1", "ping", "-t", "localhost"), events.ErrUnavailable)
	clean("c1")
	if d := cmp.Diff([]string{"container.creating", "container.endpoint_creating", "container.endpoint_create_failed", "container.create_failed"}, a.history("c1")); d != "" {
		t.Errorf("journal of c1 (-want +got):\n%s", d)
	}

	// The compute system refuses the endpoint.
	host.Fail(winsim.OpCreate, "c2", 1, hcsdriver.ErrInvalidState)
	a.refused(run("c2", "ping", "-t", "localhost"), events.ErrWrongPhase)
	clean("c2")
	if d := cmp.Diff([]string{"container.creating", "container.endpoint_creating", "container.endpoint_created",
		"container.endpoint_deleted", "container.create_failed"}, a.history("c2")); d != "" {
		t.Errorf("journal of c2 (-want +got):\n%s", d)
	}

	// Both can be created again, from the first address.
	a.ok(run("c1", "ping", "-t", "localhost"))
	if ip := a.inspect("c1").Endpoint.IP; ip != "10.200.1.2" {
		t.Errorf("c1 got %s, want 10.200.1.2", ip)
	}
}

func TestRestartRestoresAllocations(t *testing.T) {
	host := winsim.New()
	defer host.Close()
	dir := t.TempDir()
	a := startAgent(t, host, dir)
	a.ok(configure(natNet()))
	for _, id := range []string{"c1", "c2", "c3"} {
		a.ok(run(id, "ping", "-t", "localhost"))
	}
	a.ok(events.Command{Verb: events.VerbRemove, Container: "c2", Force: true})
	// A create cut short after its endpoint exists: the journal holds
	// endpoint_creating without an outcome.
	// (The agent stops before it answers.)
	release := host.Hang(winsim.OpCreate, "cut")
	a.node.Submit(func() events.Command { c := run("cut", "ping", "-t", "localhost"); c.ID = events.NewID(); return c }())
	waitUntil(t, "the endpoint of cut", func() bool { _, ok := hostEndpoints(host)["berth-cut"]; return ok })
	a.stop()
	release()

	counting := &countingNetwork{Driver: host.Network()}
	b := startAgent(t, host, dir, withNetwork(counting))
	waitUntil(t, "the interrupted create to be rolled back", func() bool { return b.inspect("cut").Phase == events.PhaseFailed })
	if _, ok := hostEndpoints(host)["berth-cut"]; ok {
		t.Error("the interrupted create's endpoint is left on the host")
	}
	if _, ok := hostSystems(host)["cut"]; ok {
		t.Error("the interrupted create's compute system is left on the host")
	}
	if d := cmp.Diff(map[string]string{"10.200.1.2": "c1", "10.200.1.4": "c3"}, b.allocations()); d != "" {
		t.Fatalf("allocations after restart (-want +got):\n%s", d)
	}
	b.ok(run("c4", "ping", "-t", "localhost"))
	b.ok(run("c5", "ping", "-t", "localhost"))
	for id, want := range map[string]string{"c1": "10.200.1.2", "c3": "10.200.1.4", "c4": "10.200.1.3", "c5": "10.200.1.5"} {
		if got := b.inspect(id).Endpoint.IP; got != want {
			t.Errorf("%s has %s, want %s", id, got, want)
		}
	}
	if n := counting.ensures.Load(); n != 0 {
		t.Errorf("the restarted agent ensured the network %d times; the journal says it exists", n)
	}
}

func TestConcurrentCreatesCreateTheNetworkOnce(t *testing.T) {
	const n = 200
	host := winsim.New()
	defer host.Close()
	counting := &countingNetwork{Driver: host.Network()}
	a := startAgent(t, host, t.TempDir(), withNetwork(counting))
	release := host.Hang(winsim.OpEnsureNetwork, "berth-overlay")
	defer release()
	var leases atomic.Int64
	actors.SetReceiveHook(func(_ string, msg any) {
		if _, ok := actors.LeaseFor(msg); ok {
			leases.Add(1)
		}
	})
	defer actors.SetReceiveHook(nil)
	a.ok(configure(natNet()))

	replies := make([]<-chan events.Reply, n)
	for i := range n {
		replies[i] = a.node.Submit(events.Command{ID: events.NewID(), Verb: events.VerbCreate, Container: fmt.Sprintf("c%d", i),
			Spec: spec("ping", "-t", "localhost")})
	}
	waitUntil(t, "every create to wait for the network", func() bool { return leases.Load() == n })
	release()
	for i, r := range replies {
		if err := (<-r).Err(); err != nil {
			t.Fatalf("create c%d: %v", i, err)
		}
	}
	if got := counting.ensures.Load(); got != 1 {
		t.Errorf("%d network creations, want 1", got)
	}
	slice := netip.MustParsePrefix("10.200.1.0/24")
	ips := map[netip.Addr]string{}
	for _, ep := range host.Snapshot().Endpoints {
		if other, dup := ips[ep.IP]; dup {
			t.Errorf("%s and %s share %v", ep.Name, other, ep.IP)
		}
		if !slice.Contains(ep.IP) {
			t.Errorf("%s has %v, outside the slice", ep.Name, ep.IP)
		}
		ips[ep.IP] = ep.Name
	}
	if len(ips) != n || len(a.allocations()) != n {
		t.Errorf("%d addresses on the host, %d allocated; want %d", len(ips), len(a.allocations()), n)
	}
}

// BenchmarkLease measures the network actor's part of an endpoint create:
// a lease and its release, through the actor's mailbox.
func BenchmarkLease(b *testing.B) {
	host := winsim.New()
	defer host.Close()
	a := startAgent(b, host, b.TempDir())
	a.ok(configure(natNet()))
	a.waitNetwork()
	ctx := context.Background()
	for b.Loop() {
		ip, err := actors.LeaseAddress(ctx, a.node, "bench")
		if err != nil || !ip.IsValid() {
			b.Fatalf("lease: %v %v", ip, err)
		}
		actors.ReleaseAddress(a.node, "bench")
	}
}
