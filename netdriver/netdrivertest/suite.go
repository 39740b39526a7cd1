// Package netdrivertest is the conformance suite of the netdriver contract, in
// the style of testing/fstest: Run holds an implementation to every promise
// written in package netdriver. It runs against the simulated host (package
// winsim) on every OS and, under the integration build tag, against the
// Windows adapter on a real host. There it creates one network, the harness's,
// and deletes it at the end; every endpoint it creates carries a random name
// prefix and is deleted by the subtest that made it.
package netdrivertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"sync"
	"testing"

	"github.com/berthhq/berth/netdriver"
)

// MinAddresses is how many free host addresses Run needs in the network's
// subnet.
const MinAddresses = 8

// Harness supplies what only the environment under test knows.
type Harness struct {
	// NewDriver returns a driver on the host under test. Every driver
	// returned during one Run must see the same host, as two agent
	// processes on one machine do.
	NewDriver func(t *testing.T) netdriver.Driver
	// Network is the network Run creates, uses and deletes: on a real host,
	// its type, subnet, gateway and adapter. It must be valid and must not
	// overlap a network that exists when Run starts.
	Network netdriver.NetworkSpec
	// Addresses are at least MinAddresses free host addresses of
	// Network.Subnet, other than its gateway, that Run may give endpoints.
	// Empty means the top MinAddresses of the subnet's usable range.
	Addresses []netip.Addr
	// Policies go on the endpoints Run creates with policies: those the
	// host accepts on Network's type.
	Policies netdriver.Policies
}

// Run runs the suite as subtests of t.
func Run(t *testing.T, h Harness) {
	if err := h.Network.Validate(); err != nil {
		t.Fatalf("harness network: %v", err)
	}
	if len(h.Addresses) == 0 {
		first, last := netdriver.UsableRange(h.Network.Subnet)
		for a := last; len(h.Addresses) < MinAddresses && !a.Less(first); a = a.Prev() {
			if a != h.Network.Gateway {
				h.Addresses = append(h.Addresses, a)
			}
		}
	}
	if len(h.Addresses) < MinAddresses {
		t.Fatalf("harness: %d addresses, need %d", len(h.Addresses), MinAddresses)
	}
	s := &suite{h: h, prefix: "berthtest-" + randomHex(4) + "-"}
	s.d = h.NewDriver(t)

	t.Run("InvalidNetwork", s.testInvalidNetwork)
	t.Run("MissingNetwork", s.testMissingNetwork)
	t.Cleanup(func() {
		if err := s.d.DeleteNetwork(context.Background(), h.Network.Name); err != nil && !errors.Is(err, netdriver.ErrNotFound) {
			t.Errorf("cleanup: DeleteNetwork(%q): %v", h.Network.Name, err)
		}
	})
	if !t.Run("EnsureNetworkCreatesOnce", s.testEnsureCreates) {
		return // nothing below can run without the network
	}
	for _, tc := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"EnsureNetworkAdopts", s.testEnsureAdopts},
		{"EnsureNetworkMismatch", s.testEnsureMismatch},
		{"SubnetConflict", s.testSubnetConflict},
		{"Endpoint", s.testEndpoint},
		{"EndpointNameIsExact", s.testEndpointNameExact},
		{"ListEndpoints", s.testListEndpoints},
		{"EndpointConflicts", s.testEndpointConflicts},
		{"InvalidEndpoint", s.testInvalidEndpoint},
		{"ConcurrentEndpoints", s.testConcurrentEndpoints},
		{"CanceledContext", s.testCanceledContext},
		{"DeleteNetwork", s.testDeleteNetwork}, // last
	} {
		t.Run(tc.name, tc.fn)
	}
}

type suite struct {
	h      Harness
	d      netdriver.Driver
	prefix string            // of every endpoint and extra network name
	net    netdriver.Network // the harness network, once created
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomGUID returns an id in HCN's GUID form that no object has.
func randomGUID() string {
	h := randomHex(16)
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// outside returns the network address of a subnet as wide as p that does not
// overlap it.
func outside(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	a[0] ^= 0x80
	return netip.AddrFrom4(a)
}

func wantErr(t *testing.T, what string, err, want error) {
	t.Helper()
	if !errors.Is(err, want) {
		t.Fatalf("%s: error = %v, want %v", what, err, want)
	}
}

func (s *suite) testInvalidNetwork(t *testing.T) {
	ctx := t.Context()
	base := s.h.Network
	base.Name = s.prefix + "bad"
	for _, c := range []struct {
		name   string
		change func(*netdriver.NetworkSpec)
	}{
		{"unknown type", func(n *netdriver.NetworkSpec) { n.Type = "overlay" }},
		{"gateway outside subnet", func(n *netdriver.NetworkSpec) { n.Gateway = outside(n.Subnet).Next() }},
		{"subnet with host bits", func(n *netdriver.NetworkSpec) {
			n.Subnet = netip.PrefixFrom(n.Gateway, n.Subnet.Bits())
		}},
		{"transparent without adapter", func(n *netdriver.NetworkSpec) { n.Type, n.Adapter = netdriver.Transparent, "" }},
	} {
		spec := base
		c.change(&spec)
		_, err := s.d.EnsureNetwork(ctx, spec)
		wantErr(t, c.name, err, netdriver.ErrInvalidSpec)
		_, err = s.d.GetNetwork(ctx, spec.Name)
		wantErr(t, c.name+": GetNetwork after refusal", err, netdriver.ErrNotFound)
	}
}

func (s *suite) testMissingNetwork(t *testing.T) {
	ctx := t.Context()
	_, err := s.d.GetNetwork(ctx, s.prefix+"absent")
	wantErr(t, "GetNetwork", err, netdriver.ErrNotFound)
	wantErr(t, "DeleteNetwork", s.d.DeleteNetwork(ctx, s.prefix+"absent"), netdriver.ErrNotFound)
}

func checkNetwork(t *testing.T, what string, got netdriver.Network, want netdriver.NetworkSpec) {
	t.Helper()
	if got.ID == "" {
		t.Errorf("%s: network has no id", what)
	}
	if err := want.Mismatch(got); err != nil {
		t.Errorf("%s: %v", what, err)
	}
}

// testEnsureCreates creates the harness network from several goroutines at
// once: all of them get the one network.
func (s *suite) testEnsureCreates(t *testing.T) {
	const n = 4
	nets := make([]netdriver.Network, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { nets[i], errs[i] = s.d.EnsureNetwork(t.Context(), s.h.Network) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("EnsureNetwork #%d: %v", i, errs[i])
		}
		checkNetwork(t, fmt.Sprintf("EnsureNetwork #%d", i), nets[i], s.h.Network)
		if nets[i].ID != nets[0].ID {
			t.Fatalf("EnsureNetwork #%d returned network %s, #0 returned %s", i, nets[i].ID, nets[0].ID)
		}
	}
	s.net = nets[0]
	got, err := s.d.GetNetwork(t.Context(), s.h.Network.Name)
	if err != nil {
		t.Fatalf("GetNetwork: %v", err)
	}
	if got.ID != s.net.ID {
		t.Fatalf("GetNetwork id %s, EnsureNetwork returned %s", got.ID, s.net.ID)
	}
}

func (s *suite) testEnsureAdopts(t *testing.T) {
	ctx := t.Context()
	again, err := s.d.EnsureNetwork(ctx, s.h.Network)
	if err != nil || again.ID != s.net.ID {
		t.Fatalf("EnsureNetwork again = %s, %v; want %s", again.ID, err, s.net.ID)
	}
	fresh := s.h.NewDriver(t) // an agent restart
	got, err := fresh.GetNetwork(ctx, s.h.Network.Name)
	if err != nil || got.ID != s.net.ID {
		t.Fatalf("fresh driver: GetNetwork = %s, %v; want %s", got.ID, err, s.net.ID)
	}
	checkNetwork(t, "fresh driver: GetNetwork", got, s.h.Network)
	adopted, err := fresh.EnsureNetwork(ctx, s.h.Network)
	if err != nil || adopted.ID != s.net.ID {
		t.Fatalf("fresh driver: EnsureNetwork = %s, %v; want %s", adopted.ID, err, s.net.ID)
	}
}

func (s *suite) testEnsureMismatch(t *testing.T) {
	ctx := t.Context()
	wider := s.h.Network
	wider.Subnet = netip.PrefixFrom(wider.Subnet.Addr(), wider.Subnet.Bits()-1).Masked()
	otherGateway := s.h.Network
	otherGateway.Gateway = s.h.Addresses[0]
	for what, spec := range map[string]netdriver.NetworkSpec{"wider subnet": wider, "other gateway": otherGateway} {
		_, err := s.d.EnsureNetwork(ctx, spec)
		wantErr(t, what, err, netdriver.ErrAlreadyExists)
	}
	got, err := s.d.GetNetwork(ctx, s.h.Network.Name)
	if err != nil || got.ID != s.net.ID {
		t.Fatalf("GetNetwork after refusals = %s, %v; want %s", got.ID, err, s.net.ID)
	}
	checkNetwork(t, "GetNetwork after refusals", got, s.h.Network)
}

func (s *suite) testSubnetConflict(t *testing.T) {
	ctx := t.Context()
	same := s.h.Network
	same.Name = s.prefix + "same-subnet"
	wider := same
	wider.Name = s.prefix + "wider-subnet"
	wider.Subnet = netip.PrefixFrom(wider.Subnet.Addr(), wider.Subnet.Bits()-1).Masked()
	for _, spec := range []netdriver.NetworkSpec{same, wider} {
		n, err := s.d.EnsureNetwork(ctx, spec)
		if err == nil {
			t.Cleanup(func() { _ = s.d.DeleteNetwork(context.Background(), spec.Name) })
		}
		wantErr(t, fmt.Sprintf("EnsureNetwork(%s, %v) beside %v", spec.Name, spec.Subnet, s.h.Network.Subnet), err, netdriver.ErrSubnetConflict)
		if n.ID != "" {
			t.Errorf("refused EnsureNetwork returned network %s", n.ID)
		}
		_, err = s.d.GetNetwork(ctx, spec.Name)
		wantErr(t, "GetNetwork after refusal", err, netdriver.ErrNotFound)
	}
}

// endpoint returns a spec for an endpoint named s.prefix+name at
// s.h.Addresses[addr] on the harness network.
func (s *suite) endpoint(name string, addr int) netdriver.EndpointSpec {
	return netdriver.EndpointSpec{
		Name:      s.prefix + name,
		Network:   s.net.ID,
		IP:        s.h.Addresses[addr],
		PrefixLen: s.h.Network.Subnet.Bits(),
		Gateway:   s.h.Network.Gateway,
	}
}

// create creates an endpoint and deletes it when t ends.
func (s *suite) create(t *testing.T, spec netdriver.EndpointSpec) netdriver.Endpoint {
	t.Helper()
	ep, err := s.d.CreateEndpoint(t.Context(), spec)
	if err != nil {
		t.Fatalf("CreateEndpoint(%s): %v", spec.Name, err)
	}
	s.cleanup(t, ep)
	return ep
}

func (s *suite) cleanup(t *testing.T, ep netdriver.Endpoint) {
	t.Cleanup(func() {
		if err := s.d.DeleteEndpoint(context.Background(), ep.ID); err != nil && !errors.Is(err, netdriver.ErrNotFound) {
			t.Errorf("cleanup: DeleteEndpoint(%s %s): %v", ep.Name, ep.ID, err)
		}
	})
}

// checkEndpoint checks that got reports spec: the same fields, and every
// policy of the spec among its policies.
func checkEndpoint(t *testing.T, what string, got netdriver.Endpoint, spec netdriver.EndpointSpec) {
	t.Helper()
	if got.ID == "" {
		t.Errorf("%s: endpoint has no id", what)
	}
	g, w := got.EndpointSpec, spec
	g.Policies, w.Policies = netdriver.Policies{}, netdriver.Policies{}
	for _, d := range []*netdriver.DNS{&g.DNS, &w.DNS} { // nil and empty lists are the same
		if len(d.Servers) == 0 {
			d.Servers = nil
		}
		if len(d.Search) == 0 {
			d.Search = nil
		}
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got  %+v\n want %+v", what, g, w)
	}
	gp, wp := got.Policies, spec.Policies
	if wp.OutboundNAT != nil && (gp.OutboundNAT == nil || !samePrefixes(gp.OutboundNAT.Exceptions, wp.OutboundNAT.Exceptions)) {
		t.Errorf("%s: outbound NAT %+v, want %+v", what, gp.OutboundNAT, wp.OutboundNAT)
	}
	contains(t, what+": SDN routes", gp.SDNRoutes, wp.SDNRoutes)
	contains(t, what+": ACLs", gp.ACLs, wp.ACLs)
	contains(t, what+": port mappings", gp.PortMappings, wp.PortMappings)
}

func samePrefixes(a, b []netip.Prefix) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	cmp := func(x, y netip.Prefix) int { return x.Addr().Compare(y.Addr())*64 + x.Bits() - y.Bits() }
	slices.SortFunc(a, cmp)
	slices.SortFunc(b, cmp)
	return slices.Equal(a, b)
}

func contains[T any](t *testing.T, what string, got, want []T) {
	t.Helper()
	for _, w := range want {
		if !slices.ContainsFunc(got, func(g T) bool { return reflect.DeepEqual(g, w) }) {
			t.Errorf("%s: %+v lacks %+v", what, got, w)
		}
	}
}

func (s *suite) testEndpoint(t *testing.T) {
	ctx := t.Context()
	spec := s.endpoint("full", 0)
	spec.DNS = netdriver.DNS{
		Servers: []netip.Addr{s.h.Network.Gateway},
		Domain:  "service.local",
		Search:  []string{"service.local", "corp.example"},
	}
	spec.Policies = s.h.Policies
	ep, err := s.d.CreateEndpoint(ctx, spec)
	if err != nil {
		t.Fatalf("CreateEndpoint: %v", err)
	}
	s.cleanup(t, ep)
	checkEndpoint(t, "CreateEndpoint", ep, spec)

	got, err := s.d.GetEndpointByName(ctx, spec.Name)
	if err != nil || got.ID != ep.ID {
		t.Fatalf("GetEndpointByName = %s, %v; want %s", got.ID, err, ep.ID)
	}
	checkEndpoint(t, "GetEndpointByName", got, spec)
	fresh, err := s.h.NewDriver(t).GetEndpointByName(ctx, spec.Name)
	if err != nil || fresh.ID != ep.ID {
		t.Fatalf("fresh driver: GetEndpointByName = %s, %v; want %s", fresh.ID, err, ep.ID)
	}

	if err := s.d.DeleteEndpoint(ctx, ep.ID); err != nil {
		t.Fatalf("DeleteEndpoint: %v", err)
	}
	_, err = s.d.GetEndpointByName(ctx, spec.Name)
	wantErr(t, "GetEndpointByName after delete", err, netdriver.ErrNotFound)
	wantErr(t, "second DeleteEndpoint", s.d.DeleteEndpoint(ctx, ep.ID), netdriver.ErrNotFound)
	wantErr(t, "DeleteEndpoint of an unknown id", s.d.DeleteEndpoint(ctx, randomGUID()), netdriver.ErrNotFound)
	wantErr(t, "DeleteEndpoint of a malformed id", s.d.DeleteEndpoint(ctx, "not-an-id"), netdriver.ErrNotFound)
}

func (s *suite) testEndpointNameExact(t *testing.T) {
	ctx := t.Context()
	ep := s.create(t, s.endpoint("web-1", 0))
	for _, name := range []string{s.prefix + "web-", s.prefix + "web-10", s.prefix + "WEB-1", s.prefix + "web-1 "} {
		_, err := s.d.GetEndpointByName(ctx, name)
		wantErr(t, fmt.Sprintf("GetEndpointByName(%q) beside %q", name, ep.Name), err, netdriver.ErrNotFound)
	}
}

func (s *suite) testListEndpoints(t *testing.T) {
	ctx := t.Context()
	b := s.create(t, s.endpoint("list-b", 0))
	a := s.create(t, s.endpoint("list-a", 1))
	c := s.create(t, s.endpoint("other-c", 2))
	names := func(what, prefix string) []string {
		eps, err := s.d.ListEndpoints(ctx, prefix)
		if err != nil {
			t.Fatalf("%s: ListEndpoints(%q): %v", what, prefix, err)
		}
		var out []string
		for _, ep := range eps {
			out = append(out, ep.Name)
		}
		return out
	}
	for _, tc := range []struct {
		prefix string
		want   []string
	}{
		{s.prefix + "list-", []string{a.Name, b.Name}},
		{s.prefix, []string{a.Name, b.Name, c.Name}},
		{s.prefix + "none-", nil},
	} {
		if got := names("", tc.prefix); !slices.Equal(got, tc.want) {
			t.Errorf("ListEndpoints(%q) = %q, want %q", tc.prefix, got, tc.want)
		}
	}
	all := names("all", "")
	for _, n := range []string{a.Name, b.Name, c.Name} {
		if !slices.Contains(all, n) {
			t.Errorf(`ListEndpoints("") lacks %q`, n)
		}
	}
	if !slices.IsSorted(all) {
		t.Errorf(`ListEndpoints("") is not sorted by name: %q`, all)
	}
	eps, err := s.h.NewDriver(t).ListEndpoints(ctx, s.prefix+"list-")
	if err != nil || len(eps) != 2 || eps[0].ID != a.ID || eps[1].ID != b.ID ||
		eps[0].Network != s.net.ID || eps[0].IP != a.IP {
		t.Errorf("fresh driver: ListEndpoints = %+v, %v; want %s and %s", eps, err, a.ID, b.ID)
	}
}

func (s *suite) testEndpointConflicts(t *testing.T) {
	ctx := t.Context()
	first := s.create(t, s.endpoint("conflict", 0))

	sameName := s.endpoint("conflict", 1)
	ep, err := s.d.CreateEndpoint(ctx, sameName)
	if err == nil {
		s.cleanup(t, ep)
	}
	wantErr(t, "CreateEndpoint with a taken name", err, netdriver.ErrAlreadyExists)

	sameIP := s.endpoint("conflict-ip", 0)
	ep, err = s.d.CreateEndpoint(ctx, sameIP)
	if err == nil {
		s.cleanup(t, ep)
	}
	wantErr(t, "CreateEndpoint with a taken address", err, netdriver.ErrAddressInUse)

	eps, err := s.d.ListEndpoints(ctx, s.prefix+"conflict")
	if err != nil || len(eps) != 1 || eps[0].ID != first.ID {
		t.Fatalf("after refusals ListEndpoints = %+v, %v; want only %s", eps, err, first.ID)
	}
}

func (s *suite) testInvalidEndpoint(t *testing.T) {
	ctx := t.Context()
	other := outside(s.h.Network.Subnet)
	for _, c := range []struct {
		name   string
		change func(*netdriver.EndpointSpec)
		want   error
	}{
		{"no name", func(e *netdriver.EndpointSpec) { e.Name = "" }, netdriver.ErrInvalidSpec},
		{"prefix length 0", func(e *netdriver.EndpointSpec) { e.PrefixLen = 0 }, netdriver.ErrInvalidSpec},
		{"port mapped twice", func(e *netdriver.EndpointSpec) {
			e.Policies.PortMappings = []netdriver.PortMapping{
				{Protocol: netdriver.TCP, InternalPort: 80, ExternalPort: 8080},
				{Protocol: netdriver.TCP, InternalPort: 81, ExternalPort: 8080},
			}
		}, netdriver.ErrInvalidSpec},
		{"address outside the network", func(e *netdriver.EndpointSpec) {
			e.IP = other.Next().Next()
			e.Gateway = other.Next()
		}, netdriver.ErrInvalidSpec},
		{"unknown network", func(e *netdriver.EndpointSpec) { e.Network = randomGUID() }, netdriver.ErrNotFound},
	} {
		spec := s.endpoint("invalid", 0)
		c.change(&spec)
		ep, err := s.d.CreateEndpoint(ctx, spec)
		if err == nil {
			s.cleanup(t, ep)
		}
		wantErr(t, c.name, err, c.want)
	}
	if eps, err := s.d.ListEndpoints(ctx, s.prefix+"invalid"); err != nil || len(eps) != 0 {
		t.Fatalf("after refusals ListEndpoints = %+v, %v; want none", eps, err)
	}
}

// testConcurrentEndpoints creates distinct endpoints at once, and one name
// from several goroutines at once: exactly one of those wins.
func (s *suite) testConcurrentEndpoints(t *testing.T) {
	ctx := t.Context()
	const distinct = MinAddresses - 1
	eps := make([]netdriver.Endpoint, MinAddresses+3)
	errs := make([]error, len(eps))
	var wg sync.WaitGroup
	for i := range eps {
		spec := s.endpoint("contested", distinct)
		if i < distinct {
			spec = s.endpoint(fmt.Sprintf("many-%d", i), i)
		}
		wg.Go(func() { eps[i], errs[i] = s.d.CreateEndpoint(ctx, spec) })
	}
	wg.Wait()
	ids := map[string]bool{}
	winners := 0
	for i, ep := range eps {
		if errs[i] == nil {
			s.cleanup(t, ep)
			if ids[ep.ID] {
				t.Errorf("endpoint id %s returned twice", ep.ID)
			}
			ids[ep.ID] = true
		}
		switch {
		case i < distinct && errs[i] != nil:
			t.Errorf("CreateEndpoint(many-%d): %v", i, errs[i])
		case i >= distinct && errs[i] == nil:
			winners++
		case i >= distinct:
			wantErr(t, "losing CreateEndpoint(contested)", errs[i], netdriver.ErrAlreadyExists)
		}
	}
	if winners != 1 {
		t.Errorf("%d concurrent creates of one name succeeded, want 1", winners)
	}
	listed, err := s.d.ListEndpoints(ctx, s.prefix)
	if err != nil || len(listed) != distinct+1 {
		t.Fatalf("ListEndpoints = %d endpoints, %v; want %d", len(listed), err, distinct+1)
	}
}

func (s *suite) testCanceledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	spec := s.endpoint("canceled", 0)
	ep, err := s.d.CreateEndpoint(ctx, spec)
	if err == nil {
		s.cleanup(t, ep)
	}
	wantErr(t, "CreateEndpoint", err, context.Canceled)
	_, err = s.d.GetEndpointByName(t.Context(), spec.Name)
	wantErr(t, "GetEndpointByName after a canceled create", err, netdriver.ErrNotFound)
	_, err = s.d.EnsureNetwork(ctx, s.h.Network)
	wantErr(t, "EnsureNetwork", err, context.Canceled)
	_, err = s.d.ListEndpoints(ctx, "")
	wantErr(t, "ListEndpoints", err, context.Canceled)
	wantErr(t, "DeleteNetwork", s.d.DeleteNetwork(ctx, s.h.Network.Name), context.Canceled)
	if _, err := s.d.GetNetwork(t.Context(), s.h.Network.Name); err != nil {
		t.Fatalf("GetNetwork after a canceled delete: %v", err)
	}
}

func (s *suite) testDeleteNetwork(t *testing.T) {
	ctx := t.Context()
	if err := s.d.DeleteNetwork(ctx, s.h.Network.Name); err != nil {
		t.Fatalf("DeleteNetwork: %v", err)
	}
	_, err := s.d.GetNetwork(ctx, s.h.Network.Name)
	wantErr(t, "GetNetwork after delete", err, netdriver.ErrNotFound)
	wantErr(t, "second DeleteNetwork", s.d.DeleteNetwork(ctx, s.h.Network.Name), netdriver.ErrNotFound)
	_, err = s.d.CreateEndpoint(ctx, s.endpoint("orphan", 0))
	wantErr(t, "CreateEndpoint on a deleted network", err, netdriver.ErrNotFound)
}
