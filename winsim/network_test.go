package winsim_test

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/netdriver"
	"github.com/berthhq/berth/netdriver/netdrivertest"
	"github.com/berthhq/berth/winsim"
)

func TestNetworkConformance(t *testing.T) {
	netLatency := winsim.Profile{
		EnsureNetwork: time.Millisecond, GetNetwork: time.Millisecond, DeleteNetwork: time.Millisecond,
		CreateEndpoint: time.Millisecond, GetEndpoint: time.Millisecond, ListEndpoints: time.Millisecond,
		DeleteEndpoint: time.Millisecond,
	}
	for _, tc := range []struct {
		name string
		open func(t *testing.T) (*winsim.Host, error)
	}{
		{"memory", func(*testing.T) (*winsim.Host, error) { return winsim.New(), nil }},
		{"directory", func(t *testing.T) (*winsim.Host, error) { return winsim.Open(t.TempDir()) }},
		{"latency", func(*testing.T) (*winsim.Host, error) { return winsim.New(winsim.WithProfile(netLatency)), nil }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, err := tc.open(t)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { // after the suite's own cleanup
				if st := h.Snapshot(); len(st.Networks)+len(st.Endpoints) != 0 {
					t.Errorf("the suite left networks %+v and endpoints %+v behind", st.Networks, st.Endpoints)
				}
				if err := h.Close(); err != nil {
					t.Errorf("Close: %v", err)
				}
			})
			netdrivertest.Run(t, netdrivertest.Harness{
				NewDriver: func(*testing.T) netdriver.Driver { return h.Network() },
				Network:   l2bridge,
				Policies: netdriver.Policies{
					OutboundNAT: &netdriver.OutboundNAT{Exceptions: []netip.Prefix{netip.MustParsePrefix("10.200.0.0/16")}},
					SDNRoutes:   []netdriver.SDNRoute{{DestinationPrefix: netip.MustParsePrefix("10.200.0.0/16"), NeedEncap: true}},
					ACLs: []netdriver.ACL{{
						Action: netdriver.Allow, Direction: netdriver.In, Protocol: netdriver.TCP, LocalPorts: []uint16{80},
						RemoteAddresses: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, Priority: 200,
					}},
					PortMappings: []netdriver.PortMapping{{Protocol: netdriver.TCP, InternalPort: 80, ExternalPort: 8080}},
				},
			})
		})
	}
}

// addrs lets cmp compare addresses and prefixes.
var addrs = cmpopts.EquateComparable(netip.Addr{}, netip.Prefix{})

var l2bridge = netdriver.NetworkSpec{
	Name: "berth-overlay", Type: netdriver.L2Bridge, Adapter: "Ethernet 2",
	Subnet: netip.MustParsePrefix("10.200.7.0/24"), Gateway: netip.MustParseAddr("10.200.7.1"),
}

var natNet = netdriver.NetworkSpec{
	Name: "berth-nat", Type: netdriver.NAT,
	Subnet: netip.MustParsePrefix("172.28.0.0/20"), Gateway: netip.MustParseAddr("172.28.0.1"),
}

func ensure(t *testing.T, d netdriver.Driver, spec netdriver.NetworkSpec) netdriver.Network {
	t.Helper()
	n, err := d.EnsureNetwork(testCtx(t), spec)
	if err != nil {
		t.Fatalf("EnsureNetwork(%s): %v", spec.Name, err)
	}
	return n
}

func endpointSpec(name string, n netdriver.Network, ip string) netdriver.EndpointSpec {
	return netdriver.EndpointSpec{
		Name: name, Network: n.ID, IP: netip.MustParseAddr(ip),
		PrefixLen: n.Subnet.Bits(), Gateway: n.Gateway,
	}
}

func createEndpoint(t *testing.T, d netdriver.Driver, spec netdriver.EndpointSpec) netdriver.Endpoint {
	t.Helper()
	ep, err := d.CreateEndpoint(testCtx(t), spec)
	if err != nil {
		t.Fatalf("CreateEndpoint(%s): %v", spec.Name, err)
	}
	return ep
}

func TestSubnetConflicts(t *testing.T) {
	h, _ := newHost(t)
	d := h.Network()
	base := ensure(t, d, l2bridge) // 10.200.7.0/24
	for _, tc := range []struct {
		subnet, gateway string
		want            error
	}{
		{"10.200.7.0/24", "10.200.7.1", netdriver.ErrSubnetConflict},
		{"10.200.0.0/16", "10.200.0.1", netdriver.ErrSubnetConflict},     // around it
		{"10.200.7.128/25", "10.200.7.129", netdriver.ErrSubnetConflict}, // inside it
		{"10.200.6.0/24", "10.200.6.1", nil},                             // beside it
		{"10.200.8.0/30", "10.200.8.1", nil},
	} {
		spec := natNet
		spec.Name = "other-" + tc.subnet
		spec.Subnet, spec.Gateway = netip.MustParsePrefix(tc.subnet), netip.MustParseAddr(tc.gateway)
		before := h.Snapshot()
		n, err := d.EnsureNetwork(testCtx(t), spec)
		if tc.want == nil {
			if err != nil || n.ID == "" || n.ID == base.ID {
				t.Errorf("EnsureNetwork(%v) beside %v = %+v, %v; want a new network", spec.Subnet, base.Subnet, n, err)
			}
			continue
		}
		if !errors.Is(err, tc.want) || n.ID != "" {
			t.Errorf("EnsureNetwork(%v) beside %v = %+v, %v; want %v", spec.Subnet, base.Subnet, n, err, tc.want)
		}
		if diff := cmp.Diff(before, h.Snapshot(), addrs); diff != "" {
			t.Errorf("a refused EnsureNetwork changed the host (-before +after):\n%s", diff)
		}
	}
	if got := len(h.Snapshot().Networks); got != 3 {
		t.Errorf("%d networks, want 3", got)
	}
}

func TestEndpointConflicts(t *testing.T) {
	h, _ := newHost(t)
	d := h.Network()
	l2 := ensure(t, d, l2bridge)
	nat := ensure(t, d, natNet)
	web := endpointSpec("berth-web", l2, "10.200.7.10")
	web.Policies.PortMappings = []netdriver.PortMapping{
		{Protocol: netdriver.TCP, InternalPort: 80, ExternalPort: 8080},
		{Protocol: netdriver.UDP, InternalPort: 53, ExternalPort: 5353},
	}
	webEP := createEndpoint(t, d, web)

	withPorts := func(s netdriver.EndpointSpec, ports ...netdriver.PortMapping) netdriver.EndpointSpec {
		s.Policies.PortMappings = ports
		return s
	}
	for _, tc := range []struct {
		what string
		spec netdriver.EndpointSpec
		want error
	}{
		{"the address another endpoint holds", endpointSpec("berth-a", l2, "10.200.7.10"), netdriver.ErrAddressInUse},
		{"the network's gateway", func() netdriver.EndpointSpec {
			s := endpointSpec("berth-a", l2, "10.200.7.1")
			s.Gateway = netip.Addr{}
			return s
		}(), netdriver.ErrAddressInUse},
		{"a taken name", endpointSpec("berth-web", l2, "10.200.7.11"), netdriver.ErrAlreadyExists},
		{"a taken name on another network", endpointSpec("berth-web", nat, "172.28.0.11"), netdriver.ErrAlreadyExists},
		{"a host port another endpoint maps", withPorts(endpointSpec("berth-a", nat, "172.28.0.10"),
			netdriver.PortMapping{Protocol: netdriver.TCP, InternalPort: 8000, ExternalPort: 8080}), netdriver.ErrAddressInUse},
		{"the network's broadcast address", func() netdriver.EndpointSpec {
			s := endpointSpec("berth-a", nat, "172.28.15.255")
			s.PrefixLen = 16 // a host address of the endpoint's own prefix
			return s
		}(), netdriver.ErrInvalidSpec},
		{"outbound NAT on a nat network", func() netdriver.EndpointSpec {
			s := endpointSpec("berth-a", nat, "172.28.0.10")
			s.Policies.OutboundNAT = &netdriver.OutboundNAT{}
			return s
		}(), netdriver.ErrInvalidSpec},
		{"an SDN route on a nat network", func() netdriver.EndpointSpec {
			s := endpointSpec("berth-a", nat, "172.28.0.10")
			s.Policies.SDNRoutes = []netdriver.SDNRoute{{DestinationPrefix: netip.MustParsePrefix("10.0.0.0/8")}}
			return s
		}(), netdriver.ErrInvalidSpec},
	} {
		before := h.Snapshot()
		ep, err := d.CreateEndpoint(testCtx(t), tc.spec)
		if !errors.Is(err, tc.want) {
			t.Errorf("CreateEndpoint with %s = %+v, %v; want %v", tc.what, ep, err, tc.want)
		}
		if diff := cmp.Diff(before, h.Snapshot(), addrs); diff != "" {
			t.Errorf("CreateEndpoint with %s changed the host (-before +after):\n%s", tc.what, diff)
		}
	}

	// The same port on another protocol, and the same address on another
	// network, are free.
	createEndpoint(t, d, withPorts(endpointSpec("berth-b", nat, "172.28.0.10"),
		netdriver.PortMapping{Protocol: netdriver.UDP, InternalPort: 8000, ExternalPort: 8080}))
	// Deleting the holder frees its address and ports.
	if err := d.DeleteEndpoint(testCtx(t), webEP.ID); err != nil {
		t.Fatal(err)
	}
	createEndpoint(t, d, withPorts(endpointSpec("berth-c", l2, "10.200.7.10"),
		netdriver.PortMapping{Protocol: netdriver.TCP, InternalPort: 80, ExternalPort: 8080}))

	if err := d.DeleteNetwork(testCtx(t), l2bridge.Name); !errors.Is(err, netdriver.ErrInUse) {
		t.Errorf("DeleteNetwork of a network with an endpoint: %v, want ErrInUse", err)
	}
}

func TestTransparentTakesNoPortMappings(t *testing.T) {
	h, _ := newHost(t)
	d := h.Network()
	tr := ensure(t, d, netdriver.NetworkSpec{
		Name: "berth-transparent", Type: netdriver.Transparent, Adapter: "Ethernet",
		Subnet: netip.MustParsePrefix("192.168.50.0/24"), Gateway: netip.MustParseAddr("192.168.50.1"),
	})
	spec := endpointSpec("berth-a", tr, "192.168.50.20")
	spec.Policies.PortMappings = []netdriver.PortMapping{{Protocol: netdriver.TCP, InternalPort: 80, ExternalPort: 80}}
	if _, err := d.CreateEndpoint(testCtx(t), spec); !errors.Is(err, netdriver.ErrInvalidSpec) {
		t.Errorf("port mapping on a transparent network: %v, want ErrInvalidSpec", err)
	}
	spec.Policies = netdriver.Policies{ACLs: []netdriver.ACL{{Action: netdriver.Block, Direction: netdriver.Out}}}
	createEndpoint(t, d, spec)
}

// endpointsOf returns the snapshot's endpoints by name.
func endpointsOf(h *winsim.Host) map[string]winsim.EndpointState {
	out := map[string]winsim.EndpointState{}
	for _, es := range h.Snapshot().Endpoints {
		out[es.Name] = es
	}
	return out
}

func TestComputeAttachesEndpoints(t *testing.T) {
	h, _ := newHost(t)
	d, c := h.Network(), h.Compute()
	n := ensure(t, d, l2bridge)
	first := createEndpoint(t, d, endpointSpec("berth-c1", n, "10.200.7.10"))

	// An unknown endpoint id fails the create and leaves nothing behind.
	unknown := "0badf00d-0000-4000-8000-000000000000"
	before := h.Snapshot()
	_, err := c.Create(testCtx(t), "c1", hcsdriver.Config{Owner: "berth", Endpoints: []string{first.ID, unknown}})
	var op *hcsdriver.OpError
	if !errors.Is(err, hcsdriver.ErrNotFound) || !errors.As(err, &op) || op.Op != winsim.OpCreate || op.ID != "c1" {
		t.Fatalf("Create naming an unknown endpoint: %v, want an OpError of class ErrNotFound", err)
	}
	if diff := cmp.Diff(before, h.Snapshot(), addrs); diff != "" {
		t.Fatalf("the refused Create changed the host (-before +after):\n%s", diff)
	}

	s := running(t, c, "c1", hcsdriver.Config{Owner: "berth", Endpoints: []string{first.ID}})
	if es := endpointsOf(h)["berth-c1"]; es.System != "c1" || !es.Attached {
		t.Errorf("endpoint of a running system: system %q, attached %v; want c1, attached", es.System, es.Attached)
	}
	if err := d.DeleteEndpoint(testCtx(t), first.ID); !errors.Is(err, netdriver.ErrInUse) {
		t.Errorf("DeleteEndpoint of an attached endpoint: %v, want ErrInUse", err)
	}
	if err := d.DeleteNetwork(testCtx(t), n.Name); !errors.Is(err, netdriver.ErrInUse) {
		t.Errorf("DeleteNetwork with an attached endpoint: %v, want ErrInUse", err)
	}
	if _, err := c.Create(testCtx(t), "c2", hcsdriver.Config{Endpoints: []string{first.ID}}); !errors.Is(err, hcsdriver.ErrInvalidState) {
		t.Errorf("Create with an endpoint another running system holds: %v, want ErrInvalidState", err)
	}

	// Stopped, the system keeps the endpoint from any new system, including
	// its own next incarnation, but lets it be deleted.
	if err := s.Terminate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	if es := endpointsOf(h)["berth-c1"]; es.System != "c1" || es.Attached {
		t.Errorf("endpoint of a stopped system: system %q, attached %v; want c1, detached", es.System, es.Attached)
	}
	if err := s.Close(); err != nil { // the system is removed
		t.Fatal(err)
	}
	before = h.Snapshot()
	if _, err := c.Create(testCtx(t), "c1", hcsdriver.Config{Endpoints: []string{first.ID}}); !errors.Is(err, hcsdriver.ErrInvalidState) {
		t.Errorf("Create reusing the endpoint of a stopped system: %v, want ErrInvalidState", err)
	}
	if diff := cmp.Diff(before, h.Snapshot(), addrs); diff != "" {
		t.Errorf("the refused Create changed the host (-before +after):\n%s", diff)
	}
	if err := d.DeleteEndpoint(testCtx(t), first.ID); err != nil {
		t.Fatalf("DeleteEndpoint after the system stopped: %v", err)
	}
	fresh := createEndpoint(t, d, endpointSpec("berth-c1", n, "10.200.7.10"))
	running(t, c, "c1", hcsdriver.Config{Endpoints: []string{fresh.ID}})
	if es := endpointsOf(h)["berth-c1"]; es.ID != fresh.ID || es.System != "c1" || !es.Attached {
		t.Errorf("fresh endpoint %+v, want %s attached to c1", es, fresh.ID)
	}
}

func TestNetworkFaults(t *testing.T) {
	h, _ := newHost(t)
	d := h.Network()
	ctx := testCtx(t)
	if _, err := d.ListEndpoints(ctx, ""); err != nil {
		t.Fatalf("ListEndpoints without faults: %v", err)
	}
	n := ensure(t, d, l2bridge)
	ep := createEndpoint(t, d, endpointSpec("berth-c1", n, "10.200.7.10"))
	other := l2bridge
	other.Name, other.Subnet, other.Gateway = "berth-other", netip.MustParsePrefix("10.201.0.0/24"), netip.MustParseAddr("10.201.0.1")
	for _, tc := range []struct {
		op, id string
		call   func() error
	}{
		{winsim.OpEnsureNetwork, other.Name, func() error { _, err := d.EnsureNetwork(ctx, other); return err }},
		{winsim.OpGetNetwork, n.Name, func() error { _, err := d.GetNetwork(ctx, n.Name); return err }},
		{winsim.OpDeleteNetwork, other.Name, func() error { return d.DeleteNetwork(ctx, other.Name) }},
		{winsim.OpCreateEndpoint, "berth-c2", func() error {
			_, err := d.CreateEndpoint(ctx, endpointSpec("berth-c2", n, "10.200.7.11"))
			return err
		}},
		{winsim.OpGetEndpoint, ep.Name, func() error { _, err := d.GetEndpointByName(ctx, ep.Name); return err }},
		{winsim.OpListEndpoints, "berth-", func() error { _, err := d.ListEndpoints(ctx, "berth-"); return err }},
		{winsim.OpDeleteEndpoint, ep.ID, func() error { return d.DeleteEndpoint(ctx, ep.ID) }},
	} {
		h.Fail(tc.op, tc.id, 2, netdriver.ErrUnavailable)
		before := h.Snapshot()
		for i := range 2 {
			if err := tc.call(); !errors.Is(err, netdriver.ErrUnavailable) {
				t.Fatalf("%s #%d with a fault on %q: %v, want ErrUnavailable", tc.op, i, tc.id, err)
			}
		}
		if diff := cmp.Diff(before, h.Snapshot(), addrs); diff != "" {
			t.Errorf("failed %s changed the host (-before +after):\n%s", tc.op, diff)
		}
		if err := tc.call(); err != nil {
			t.Errorf("%s after the faults ran out: %v", tc.op, err)
		}
	}
	if st := h.Snapshot(); len(st.Networks) != 1 || len(st.Endpoints) != 1 || st.Endpoints[0].Name != "berth-c2" {
		t.Errorf("after the calls: networks %+v, endpoints %+v; want %s and berth-c2", st.Networks, st.Endpoints, n.Name)
	}

	if err := h.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.GetNetwork(ctx, n.Name); !errors.Is(err, netdriver.ErrUnavailable) {
		t.Errorf("GetNetwork on a closed host: %v, want ErrUnavailable", err)
	}
}

func TestEndpointLatencyAndAbandonedCreate(t *testing.T) {
	h, clock := newHost(t)
	d := h.Network()
	n := ensure(t, d, l2bridge)
	h.SetLatency(winsim.Profile{CreateEndpoint: 200 * time.Millisecond})
	spec := endpointSpec("berth-c1", n, "10.200.7.10")

	done := make(chan error, 1)
	go func() {
		_, err := d.CreateEndpoint(context.Background(), spec)
		done <- err
	}()
	if err := clock.BlockUntil(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	clock.Advance(199 * time.Millisecond)
	if eps := h.Snapshot().Endpoints; len(eps) != 0 {
		t.Errorf("endpoint created before its latency passed: %+v", eps)
	}
	clock.Advance(time.Millisecond)
	if err := <-done; err != nil {
		t.Fatalf("CreateEndpoint: %v", err)
	}
	if eps := h.Snapshot().Endpoints; len(eps) != 1 {
		t.Fatalf("endpoints %+v, want berth-c1", eps)
	}

	// A create whose caller gives up while it hangs leaves no endpoint.
	spec = endpointSpec("berth-c2", n, "10.200.7.11")
	release := h.Hang(winsim.OpCreateEndpoint, spec.Name)
	ctx, cancel := context.WithCancel(testCtx(t))
	go func() {
		_, err := d.CreateEndpoint(ctx, spec)
		done <- err
	}()
	if err := clock.BlockUntil(testCtx(t), 1); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned CreateEndpoint: %v, want context.Canceled", err)
	}
	objects := h.Snapshot().NetObjects
	clock.Advance(200 * time.Millisecond)
	release()
	st := h.Snapshot()
	if st.NetObjects != objects+1 {
		t.Errorf("the held create handed out %d ids, want 1", st.NetObjects-objects)
	}
	if len(st.Endpoints) != 1 || st.Endpoints[0].Name != "berth-c1" {
		t.Errorf("endpoints %+v after the abandoned create, want only berth-c1", st.Endpoints)
	}
}

func TestNetworkPersistence(t *testing.T) {
	dir := t.TempDir()
	h, _ := open(t, dir, t0)
	d, c := h.Network(), h.Compute()
	n := ensure(t, d, l2bridge)
	nat := natNet
	nat.DNS = netdriver.DNS{Servers: []netip.Addr{netip.MustParseAddr("172.28.0.2")}, Domain: "corp.local"}
	ensure(t, d, nat)
	full := endpointSpec("berth-run", n, "10.200.7.10")
	full.DNS = netdriver.DNS{Servers: []netip.Addr{n.Gateway}, Domain: "service.local", Search: []string{"service.local"}}
	full.Policies = netdriver.Policies{
		OutboundNAT:  &netdriver.OutboundNAT{Exceptions: []netip.Prefix{netip.MustParsePrefix("10.200.0.0/16")}},
		PortMappings: []netdriver.PortMapping{{Protocol: netdriver.TCP, InternalPort: 80, ExternalPort: 8080}},
	}
	run := createEndpoint(t, d, full)
	stopped := createEndpoint(t, d, endpointSpec("berth-stopped", n, "10.200.7.11"))
	createEndpoint(t, d, endpointSpec("berth-idle", n, "10.200.7.12"))
	running(t, c, "run", hcsdriver.Config{Owner: "berth", Endpoints: []string{run.ID}})
	s := running(t, c, "stopped", hcsdriver.Config{Owner: "berth", Endpoints: []string{stopped.ID}})
	if err := s.Terminate(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	want := h.Snapshot()
	if err := h.Close(); err != nil { // the stopped system's handle goes with the host
		t.Fatalf("Close: %v", err)
	}

	h2, _ := open(t, dir, t0.Add(time.Minute))
	got := h2.Snapshot()
	if diff := cmp.Diff(want.Networks, got.Networks, addrs); diff != "" {
		t.Errorf("restored networks (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(want.Endpoints, got.Endpoints, addrs); diff != "" {
		t.Errorf("restored endpoints (-want +got):\n%s", diff)
	}
	if got.NetObjects != want.NetObjects {
		t.Errorf("restored id count %d, want %d", got.NetObjects, want.NetObjects)
	}

	d2, c2 := h2.Network(), h2.Compute()
	if ep, err := d2.GetEndpointByName(testCtx(t), "berth-run"); err != nil || ep.ID != run.ID {
		t.Errorf("GetEndpointByName after reload = %+v, %v; want %s", ep, err, run.ID)
	}
	if err := d2.DeleteEndpoint(testCtx(t), run.ID); !errors.Is(err, netdriver.ErrInUse) {
		t.Errorf("DeleteEndpoint of the running system's endpoint after reload: %v, want ErrInUse", err)
	}
	if _, err := c2.Create(testCtx(t), "again", hcsdriver.Config{Endpoints: []string{stopped.ID}}); !errors.Is(err, hcsdriver.ErrInvalidState) {
		t.Errorf("Create reusing a spent endpoint after reload: %v, want ErrInvalidState", err)
	}
	if _, err := d2.CreateEndpoint(testCtx(t), endpointSpec("berth-dup", n, "10.200.7.12")); !errors.Is(err, netdriver.ErrAddressInUse) {
		t.Errorf("CreateEndpoint on a restored endpoint's address: %v, want ErrAddressInUse", err)
	}
	fresh := createEndpoint(t, d2, endpointSpec("berth-new", n, "10.200.7.13"))
	for _, es := range want.Endpoints {
		if es.ID == fresh.ID {
			t.Errorf("a new endpoint got the id %s of restored endpoint %s", fresh.ID, es.Name)
		}
	}
	for _, nw := range want.Networks {
		if nw.ID == fresh.ID {
			t.Errorf("a new endpoint got the id %s of restored network %s", fresh.ID, nw.Name)
		}
	}
}
