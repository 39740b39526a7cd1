package netdrivertest_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/berthhq/berth/netdriver"
	"github.com/berthhq/berth/netdriver/netdrivertest"
)

// memHost is a minimal host that keeps every netdriver promise, so that the
// suite itself can be run and checked here. The simulated Windows host
// (package winsim) is the model the agent's tests use.
type memHost struct {
	mu        sync.Mutex
	seq       int
	networks  map[string]netdriver.Network  // by id
	endpoints map[string]netdriver.Endpoint // by id
	broken    string                        // a promise to break, for TestSuiteCanFail
}

type memDriver struct{ h *memHost }

var _ netdriver.Driver = memDriver{}

func newMemHost() *memHost {
	return &memHost{networks: map[string]netdriver.Network{}, endpoints: map[string]netdriver.Endpoint{}}
}

func (h *memHost) newID() string {
	h.seq++
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", h.seq, h.seq)
}

func (h *memHost) networkByName(name string) (netdriver.Network, bool) {
	for _, n := range h.networks {
		if n.Name == name {
			return n, true
		}
	}
	return netdriver.Network{}, false
}

func (d memDriver) EnsureNetwork(ctx context.Context, spec netdriver.NetworkSpec) (netdriver.Network, error) {
	if err := ctx.Err(); err != nil {
		return netdriver.Network{}, err
	}
	if err := spec.Validate(); err != nil {
		return netdriver.Network{}, err
	}
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if n, ok := d.h.networkByName(spec.Name); ok {
		return n, spec.Mismatch(n)
	}
	for _, n := range d.h.networks {
		if n.Subnet.Overlaps(spec.Subnet) {
			return netdriver.Network{}, fmt.Errorf("%w: %v overlaps network %q", netdriver.ErrSubnetConflict, spec.Subnet, n.Name)
		}
	}
	n := netdriver.Network{ID: d.h.newID(), NetworkSpec: spec}
	d.h.networks[n.ID] = n
	return n, nil
}

func (d memDriver) GetNetwork(ctx context.Context, name string) (netdriver.Network, error) {
	if err := ctx.Err(); err != nil {
		return netdriver.Network{}, err
	}
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if n, ok := d.h.networkByName(name); ok {
		return n, nil
	}
	return netdriver.Network{}, fmt.Errorf("%w: network %q", netdriver.ErrNotFound, name)
}

func (d memDriver) DeleteNetwork(ctx context.Context, name string) error {
	n, err := d.GetNetwork(ctx, name)
	if err != nil {
		return err
	}
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	delete(d.h.networks, n.ID)
	return nil
}

func (d memDriver) CreateEndpoint(ctx context.Context, spec netdriver.EndpointSpec) (netdriver.Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return netdriver.Endpoint{}, err
	}
	if err := spec.Validate(); err != nil {
		return netdriver.Endpoint{}, err
	}
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	n, ok := d.h.networks[spec.Network]
	if !ok {
		return netdriver.Endpoint{}, fmt.Errorf("%w: network %s", netdriver.ErrNotFound, spec.Network)
	}
	if !n.Subnet.Contains(spec.IP) {
		return netdriver.Endpoint{}, fmt.Errorf("%w: %v is outside %v", netdriver.ErrInvalidSpec, spec.IP, n.Subnet)
	}
	for _, ep := range d.h.endpoints {
		if ep.Name == spec.Name {
			return netdriver.Endpoint{}, fmt.Errorf("%w: endpoint %q", netdriver.ErrAlreadyExists, spec.Name)
		}
		if ep.Network == spec.Network && ep.IP == spec.IP && d.h.broken != "address" {
			return netdriver.Endpoint{}, fmt.Errorf("%w: %v", netdriver.ErrAddressInUse, spec.IP)
		}
	}
	ep := netdriver.Endpoint{ID: d.h.newID(), EndpointSpec: spec}
	d.h.endpoints[ep.ID] = ep
	return ep, nil
}

func (d memDriver) GetEndpointByName(ctx context.Context, name string) (netdriver.Endpoint, error) {
	eps, err := d.ListEndpoints(ctx, name)
	if err != nil {
		return netdriver.Endpoint{}, err
	}
	for _, ep := range eps {
		if ep.Name == name {
			return ep, nil
		}
	}
	return netdriver.Endpoint{}, fmt.Errorf("%w: endpoint %q", netdriver.ErrNotFound, name)
}

func (d memDriver) ListEndpoints(ctx context.Context, prefix string) ([]netdriver.Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	var out []netdriver.Endpoint
	for _, ep := range d.h.endpoints {
		if strings.HasPrefix(ep.Name, prefix) {
			out = append(out, ep)
		}
	}
	slices.SortFunc(out, func(a, b netdriver.Endpoint) int { return strings.Compare(a.Name, b.Name) })
	if d.h.broken == "order" {
		slices.Reverse(out)
	}
	return out, nil
}

func (d memDriver) DeleteEndpoint(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	d.h.mu.Lock()
	defer d.h.mu.Unlock()
	if _, ok := d.h.endpoints[id]; !ok {
		return fmt.Errorf("%w: endpoint %s", netdriver.ErrNotFound, id)
	}
	delete(d.h.endpoints, id)
	return nil
}

func harness(h *memHost) netdrivertest.Harness {
	acl := netdriver.ACL{Action: netdriver.Allow, Direction: netdriver.In, Protocol: netdriver.TCP, LocalPorts: []uint16{80}}
	return netdrivertest.Harness{
		NewDriver: func(*testing.T) netdriver.Driver { return memDriver{h} },
		Network: netdriver.NetworkSpec{
			Name: "berth-conformance", Type: netdriver.L2Bridge, Adapter: "Ethernet 2",
			Subnet: netip.MustParsePrefix("10.200.7.0/24"), Gateway: netip.MustParseAddr("10.200.7.1"),
		},
		Policies: netdriver.Policies{
			OutboundNAT:  &netdriver.OutboundNAT{Exceptions: []netip.Prefix{netip.MustParsePrefix("10.200.0.0/16")}},
			SDNRoutes:    []netdriver.SDNRoute{{DestinationPrefix: netip.MustParsePrefix("10.200.0.0/16"), NeedEncap: true}},
			ACLs:         []netdriver.ACL{acl},
			PortMappings: []netdriver.PortMapping{{Protocol: netdriver.TCP, InternalPort: 80, ExternalPort: 8080}},
		},
	}
}

func TestSuite(t *testing.T) {
	h := newMemHost()
	netdrivertest.Run(t, harness(h))
	if len(h.networks) != 0 || len(h.endpoints) != 0 {
		t.Errorf("the suite left %d networks and %d endpoints behind", len(h.networks), len(h.endpoints))
	}
}

// TestSuiteCanFail runs the suite against hosts that each break one promise,
// in a child process, and checks that the suite fails where it should.
func TestSuiteCanFail(t *testing.T) {
	if b := os.Getenv("NETDRIVERTEST_BROKEN"); b != "" {
		h := newMemHost()
		h.broken = b
		netdrivertest.Run(t, harness(h))
		return
	}
	for broken, subtest := range map[string]string{
		"address": "EndpointConflicts",
		"order":   "ListEndpoints",
	} {
		cmd := exec.Command(os.Args[0], "-test.run=^TestSuiteCanFail$", "-test.v")
		cmd.Env = append(os.Environ(), "NETDRIVERTEST_BROKEN="+broken)
		out, err := cmd.CombinedOutput()
		var exit *exec.ExitError
		if !errors.As(err, &exit) {
			t.Fatalf("broken %s: the suite passed (err %v):\n%s", broken, err, out)
		}
		if want := "--- FAIL: TestSuiteCanFail/" + subtest; !strings.Contains(string(out), want) {
			t.Errorf("broken %s: output lacks %q:\n%s", broken, want, out)
		}
	}
}
