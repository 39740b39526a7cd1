//go:build windows

package winhcn

import (
	"context"
	"errors"
	"fmt"
	"github.com/berthhq/berth/internal/blocking"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/Microsoft/go-winio/pkg/guid"
	"github.com/Microsoft/hcsshim/hcn"
	"golang.org/x/sys/windows"

	"github.com/berthhq/berth/netdriver"
)

// listAttempts bounds how often ListEndpoints lists again after an endpoint
// vanished in the middle of a listing.
const listAttempts = 3

// Driver is the netdriver contract on HCN.
type Driver struct {
	// ensure serialises EnsureNetwork, so that concurrent calls create a
	// network at most once.
	ensure sync.Mutex

	mu       sync.Mutex
	creating map[string]bool // endpoint names being created; guarded by mu
}

var _ netdriver.Driver = (*Driver)(nil)

// New returns a driver for this host's HCN service. It fails with
// netdriver.ErrUnavailable when computenetwork.dll cannot be loaded (the
// Containers feature is not installed): hcn panics instead of failing when
// its procedures are missing.
func New() (*Driver, error) {
	if err := windows.NewLazySystemDLL("computenetwork.dll").Load(); err != nil {
		return nil, fmt.Errorf("%w: computenetwork.dll: %v", netdriver.ErrUnavailable, err)
	}
	return &Driver{creating: map[string]bool{}}, nil
}

// faultOf reads what classify needs out of an hcn error.
func faultOf(err error) fault {
	f := fault{notFound: hcn.IsNotFoundError(err) || hcn.IsElementNotFoundError(err)}
	var he *hcn.HcnError
	if errors.As(err, &he) && he.HcsError != nil {
		var code syscall.Errno
		if errors.As(he.Err, &code) {
			f.code = uint32(code)
		}
	}
	return f
}

func fail(op, name string, err error) error { return wrap(op, name, err, faultOf(err)) }

func networkOf(n *hcn.HostComputeNetwork) (netdriver.Network, error) {
	m, err := mirrorOf[HostComputeNetwork](n)
	if err != nil {
		return netdriver.Network{}, fmt.Errorf("network %q: %w", n.Name, err)
	}
	return NetworkFromDocument(m), nil
}

func endpointOf(e *hcn.HostComputeEndpoint) (netdriver.Endpoint, error) {
	m, err := mirrorOf[HostComputeEndpoint](e)
	if err != nil {
		return netdriver.Endpoint{}, fmt.Errorf("endpoint %q: %w", e.Name, err)
	}
	return EndpointFromDocument(m), nil
}

// EnsureNetwork implements netdriver.Driver. Before creating a network it
// lists the host's networks and refuses a subnet that overlaps one of them.
func (d *Driver) EnsureNetwork(ctx context.Context, spec netdriver.NetworkSpec) (netdriver.Network, error) {
	if err := ctx.Err(); err != nil {
		return netdriver.Network{}, err
	}
	doc, err := NetworkDocument(spec)
	if err != nil {
		return netdriver.Network{}, err
	}
	return blocking.Call(ctx, func() (netdriver.Network, error) {
		d.ensure.Lock()
		defer d.ensure.Unlock()
		existing, err := hcn.GetNetworkByName(spec.Name)
		switch {
		case err == nil:
			n, err := networkOf(existing)
			if err == nil {
				err = spec.Mismatch(n)
			}
			if err != nil {
				return netdriver.Network{}, err
			}
			return n, nil
		case !hcn.IsNotFoundError(err):
			return netdriver.Network{}, fail(opGetNetwork, spec.Name, err)
		}
		all, err := hcn.ListNetworks()
		if err != nil {
			return netdriver.Network{}, fail(opListNetworks, spec.Name, err)
		}
		for i := range all {
			other, err := networkOf(&all[i])
			if err == nil && other.Subnet.IsValid() && other.Subnet.Overlaps(spec.Subnet) {
				return netdriver.Network{}, fmt.Errorf("%w: network %q: subnet %v overlaps %v of network %q (%s)",
					netdriver.ErrSubnetConflict, spec.Name, spec.Subnet, other.Subnet, other.Name, other.ID)
			}
		}
		h, err := hcnNetwork(doc)
		if err != nil {
			return netdriver.Network{}, fmt.Errorf("%s %q: %w", opCreateNetwork, spec.Name, err)
		}
		created, err := h.Create()
		if err != nil {
			return netdriver.Network{}, fail(opCreateNetwork, spec.Name, err)
		}
		return networkOf(created)
	}, nil)
}

// GetNetwork implements netdriver.Driver.
func (d *Driver) GetNetwork(ctx context.Context, name string) (netdriver.Network, error) {
	return blocking.Call(ctx, func() (netdriver.Network, error) {
		n, err := hcn.GetNetworkByName(name)
		if err != nil {
			return netdriver.Network{}, fail(opGetNetwork, name, err)
		}
		return networkOf(n)
	}, nil)
}

// DeleteNetwork implements netdriver.Driver.
func (d *Driver) DeleteNetwork(ctx context.Context, name string) error {
	_, err := blocking.Call(ctx, func() (struct{}, error) {
		n, err := hcn.GetNetworkByName(name)
		if err != nil {
			return struct{}{}, fail(opGetNetwork, name, err)
		}
		if err := n.Delete(); err != nil {
			return struct{}{}, fail(opDeleteNetwork, name, err)
		}
		return struct{}{}, nil
	}, nil)
	return err
}

// reserve marks name as being created; it reports false when it already is.
func (d *Driver) reserve(name string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.creating[name] {
		return false
	}
	d.creating[name] = true
	return true
}

func (d *Driver) unreserve(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.creating, name)
}

// CreateEndpoint implements netdriver.Driver. HNS itself allows two
// endpoints of one name, so the driver looks the name up first and refuses a
// name another call on this Driver is creating.
func (d *Driver) CreateEndpoint(ctx context.Context, spec netdriver.EndpointSpec) (netdriver.Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return netdriver.Endpoint{}, err
	}
	doc, err := EndpointDocument(spec)
	if err != nil {
		return netdriver.Endpoint{}, err
	}
	if _, err := guid.FromString(spec.Network); err != nil {
		return netdriver.Endpoint{}, fmt.Errorf("%w: endpoint %q: network %q", netdriver.ErrNotFound, spec.Name, spec.Network)
	}
	if !d.reserve(spec.Name) {
		return netdriver.Endpoint{}, fmt.Errorf("%w: endpoint %q is being created", netdriver.ErrAlreadyExists, spec.Name)
	}
	return blocking.Call(ctx, func() (netdriver.Endpoint, error) {
		defer d.unreserve(spec.Name)
		nw, err := hcn.GetNetworkByID(spec.Network)
		if err != nil {
			return netdriver.Endpoint{}, fail(opGetNetwork, spec.Network, err)
		}
		if n, err := networkOf(nw); err == nil && n.Subnet.IsValid() && !n.Subnet.Contains(spec.IP) {
			return netdriver.Endpoint{}, fmt.Errorf("%w: endpoint %q: ip %v is outside network %q's subnet %v",
				netdriver.ErrInvalidSpec, spec.Name, spec.IP, n.Name, n.Subnet)
		}
		switch _, err := hcn.GetEndpointByName(spec.Name); {
		case err == nil:
			return netdriver.Endpoint{}, fmt.Errorf("%w: endpoint %q", netdriver.ErrAlreadyExists, spec.Name)
		case !hcn.IsNotFoundError(err):
			return netdriver.Endpoint{}, fail(opGetEndpoint, spec.Name, err)
		}
		h, err := hcnEndpoint(doc)
		if err != nil {
			return netdriver.Endpoint{}, fmt.Errorf("%s %q: %w", opCreateEndpoint, spec.Name, err)
		}
		created, err := nw.CreateEndpoint(h)
		if err != nil {
			return netdriver.Endpoint{}, fail(opCreateEndpoint, spec.Name, err)
		}
		ep, err := endpointOf(created)
		if err != nil {
			_ = created.Delete()
			return netdriver.Endpoint{}, err
		}
		return ep, nil
	}, func(ep netdriver.Endpoint) {
		// The caller gave up: leave nothing behind.
		_ = (&hcn.HostComputeEndpoint{Id: ep.ID}).Delete()
	})
}

// GetEndpointByName implements netdriver.Driver.
func (d *Driver) GetEndpointByName(ctx context.Context, name string) (netdriver.Endpoint, error) {
	return blocking.Call(ctx, func() (netdriver.Endpoint, error) {
		e, err := hcn.GetEndpointByName(name)
		if err != nil {
			return netdriver.Endpoint{}, fail(opGetEndpoint, name, err)
		}
		if e.Name != name { // guard against a filter that ignores case
			return netdriver.Endpoint{}, fmt.Errorf("%w: endpoint %q (host has %q)", netdriver.ErrNotFound, name, e.Name)
		}
		return endpointOf(e)
	}, nil)
}

// ListEndpoints implements netdriver.Driver.
func (d *Driver) ListEndpoints(ctx context.Context, namePrefix string) ([]netdriver.Endpoint, error) {
	return blocking.Call(ctx, func() ([]netdriver.Endpoint, error) {
		var all []hcn.HostComputeEndpoint
		var err error
		for range listAttempts {
			if all, err = hcn.ListEndpoints(); err == nil || !faultOf(err).notFound {
				break
			}
		}
		if err != nil {
			return nil, fail(opListEndpoints, namePrefix, err)
		}
		var out []netdriver.Endpoint
		for i := range all {
			if !strings.HasPrefix(all[i].Name, namePrefix) {
				continue
			}
			ep, err := endpointOf(&all[i])
			if err != nil {
				return nil, err
			}
			out = append(out, ep)
		}
		slices.SortFunc(out, func(a, b netdriver.Endpoint) int {
			return strings.Compare(a.Name+"\x00"+a.ID, b.Name+"\x00"+b.ID)
		})
		return out, nil
	}, nil)
}

// DeleteEndpoint implements netdriver.Driver.
func (d *Driver) DeleteEndpoint(ctx context.Context, id string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if _, err := guid.FromString(id); err != nil {
		return fmt.Errorf("%w: endpoint id %q", netdriver.ErrNotFound, id)
	}
	_, err := blocking.Call(ctx, func() (struct{}, error) {
		if err := (&hcn.HostComputeEndpoint{Id: id}).Delete(); err != nil {
			return struct{}{}, fail(opDeleteEndpoint, id, err)
		}
		return struct{}{}, nil
	}, nil)
	return err
}
