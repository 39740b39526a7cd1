package winsim

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/netdriver"
)

// HCN is the host's network service: it implements netdriver.Driver. HCN
// keeps no handles, so every HCN value of a host sees the same networks and
// endpoints, and they outlive the agent that made them.
type HCN struct{ h *Host }

var _ netdriver.Driver = (*HCN)(nil)

// Network returns the host's network service.
func (h *Host) Network() *HCN { return &HCN{h: h} }

// endpoint is one HCN endpoint. Every field is guarded by Host.mu.
type endpoint struct {
	netdriver.Endpoint
	system string // the compute system it was attached to; "" until then
}

func (n *HCN) host() *Host { return n.h }

func (n *HCN) usableLocked(op, id string) error {
	if n.h.closed {
		return n.fail(op, id, errHostClosed)
	}
	return nil
}

func (n *HCN) fail(op, id string, err error) error {
	if err == errHostClosed {
		err = netdriver.ErrUnavailable
	}
	return fmt.Errorf("%s %q: %w", op, id, err)
}

// call runs a network operation through do; a ctx that is done already
// fails it at once, changing nothing.
func call[T any](ctx context.Context, n *HCN, op, id string, apply func() (T, error), late func(T)) (T, error) {
	if err := ctx.Err(); err != nil {
		var zero T
		return zero, err
	}
	return do(ctx, n, op, id, apply, late)
}

// newGUIDLocked returns a network or endpoint id in HCN's GUID form. Ids
// count up and are never reused, across Open too.
func (h *Host) newGUIDLocked() string {
	h.netObjects++
	return fmt.Sprintf("%08x-0000-4000-8000-%012x", h.netObjects, h.netObjects)
}

// EnsureNetwork returns the network named spec.Name, creating it when the
// host has none (see netdriver.Driver). A network whose subnet overlaps
// spec.Subnet fails it with netdriver.ErrSubnetConflict.
func (n *HCN) EnsureNetwork(ctx context.Context, spec netdriver.NetworkSpec) (netdriver.Network, error) {
	if err := ctx.Err(); err != nil {
		return netdriver.Network{}, err
	}
	if err := spec.Validate(); err != nil {
		return netdriver.Network{}, err
	}
	return call(ctx, n, OpEnsureNetwork, spec.Name, func() (netdriver.Network, error) {
		h := n.h
		if nw, ok := h.networkLocked(spec.Name); ok {
			if err := spec.Mismatch(nw); err != nil {
				return netdriver.Network{}, err
			}
			return cloneNetwork(nw), nil
		}
		for _, other := range h.networks {
			if other.Subnet.Overlaps(spec.Subnet) {
				return netdriver.Network{}, n.fail(OpEnsureNetwork, spec.Name, fmt.Errorf("%w: subnet %v overlaps %v of network %q (%s)",
					netdriver.ErrSubnetConflict, spec.Subnet, other.Subnet, other.Name, other.ID))
			}
		}
		nw := cloneNetwork(netdriver.Network{ID: h.newGUIDLocked(), NetworkSpec: spec})
		h.networks[nw.ID] = nw
		h.changedLocked()
		return cloneNetwork(nw), nil
	}, nil)
}

// networkLocked returns the network with exactly this name.
func (h *Host) networkLocked(name string) (netdriver.Network, bool) {
	for _, nw := range h.networks {
		if nw.Name == name {
			return nw, true
		}
	}
	return netdriver.Network{}, false
}

// GetNetwork returns the network with exactly this name, or fails with
// netdriver.ErrNotFound.
func (n *HCN) GetNetwork(ctx context.Context, name string) (netdriver.Network, error) {
	return call(ctx, n, OpGetNetwork, name, func() (netdriver.Network, error) {
		nw, ok := n.h.networkLocked(name)
		if !ok {
			return netdriver.Network{}, n.fail(OpGetNetwork, name, netdriver.ErrNotFound)
		}
		return cloneNetwork(nw), nil
	}, nil)
}

// DeleteNetwork deletes the network with exactly this name. It fails with
// netdriver.ErrNotFound when there is none, and with netdriver.ErrInUse while
// the network has endpoints.
func (n *HCN) DeleteNetwork(ctx context.Context, name string) error {
	_, err := call(ctx, n, OpDeleteNetwork, name, func() (struct{}, error) {
		h := n.h
		nw, ok := h.networkLocked(name)
		if !ok {
			return struct{}{}, n.fail(OpDeleteNetwork, name, netdriver.ErrNotFound)
		}
		var names []string
		for _, ep := range h.endpoints {
			if ep.Network == nw.ID {
				names = append(names, ep.Name)
			}
		}
		if names != nil {
			slices.Sort(names)
			return struct{}{}, n.fail(OpDeleteNetwork, name, fmt.Errorf("%w: the network has endpoints %q", netdriver.ErrInUse, names))
		}
		delete(h.networks, nw.ID)
		h.changedLocked()
		return struct{}{}, nil
	}, nil)
	return err
}

// CreateEndpoint creates an endpoint (see netdriver.Driver). Besides what
// the contract names, the host refuses, with netdriver.ErrAddressInUse, the
// network's gateway address and a host port (with its protocol) that
// another endpoint maps; and, with netdriver.ErrInvalidSpec, policies the
// network's type does not take: OutboundNAT and SDN routes on other than
// L2Bridge networks, port mappings on Transparent ones. If ctx ends while
// the call waits, an endpoint it creates later is deleted again.
func (n *HCN) CreateEndpoint(ctx context.Context, spec netdriver.EndpointSpec) (netdriver.Endpoint, error) {
	if err := ctx.Err(); err != nil {
		return netdriver.Endpoint{}, err
	}
	if err := spec.Validate(); err != nil {
		return netdriver.Endpoint{}, err
	}
	return call(ctx, n, OpCreateEndpoint, spec.Name, func() (netdriver.Endpoint, error) {
		h := n.h
		if err := h.refuseEndpointLocked(spec); err != nil {
			return netdriver.Endpoint{}, n.fail(OpCreateEndpoint, spec.Name, err)
		}
		ep := &endpoint{Endpoint: cloneEndpoint(netdriver.Endpoint{ID: h.newGUIDLocked(), EndpointSpec: spec})}
		h.endpoints[ep.ID] = ep
		h.changedLocked()
		return cloneEndpoint(ep.Endpoint), nil
	}, n.h.dropUnwantedEndpoint)
}

// refuseEndpointLocked returns why the host refuses to create an endpoint
// from a valid spec, or nil.
func (h *Host) refuseEndpointLocked(spec netdriver.EndpointSpec) error {
	nw, ok := h.networks[spec.Network]
	if !ok {
		return fmt.Errorf("%w: network %s", netdriver.ErrNotFound, spec.Network)
	}
	_, last := netdriver.UsableRange(nw.Subnet)
	switch ip := spec.IP; {
	case !nw.Subnet.Contains(ip):
		return fmt.Errorf("%w: ip %v is outside network %q's subnet %v", netdriver.ErrInvalidSpec, ip, nw.Name, nw.Subnet)
	case ip == nw.Subnet.Addr() || ip == last.Next():
		return fmt.Errorf("%w: ip %v is the network or broadcast address of %v", netdriver.ErrInvalidSpec, ip, nw.Subnet)
	case ip == nw.Gateway:
		return fmt.Errorf("%w: ip %v is network %q's gateway", netdriver.ErrAddressInUse, ip, nw.Name)
	}
	if err := policiesFit(nw.Type, spec.Policies); err != nil {
		return fmt.Errorf("%w: network %q is of type %s: %v", netdriver.ErrInvalidSpec, nw.Name, nw.Type, err)
	}
	if _, ok := h.endpointLocked(spec.Name); ok {
		return fmt.Errorf("%w: endpoint %q", netdriver.ErrAlreadyExists, spec.Name)
	}
	// One endpoint at most holds an address, and one a host port: the
	// conflict reported does not depend on map order.
	for _, other := range h.endpoints {
		if other.Network == spec.Network && other.IP == spec.IP {
			return fmt.Errorf("%w: ip %v is held by endpoint %q", netdriver.ErrAddressInUse, spec.IP, other.Name)
		}
	}
	for _, other := range h.endpoints {
		for _, p := range spec.Policies.PortMappings {
			if slices.ContainsFunc(other.Policies.PortMappings, func(o netdriver.PortMapping) bool {
				return o.Protocol == p.Protocol && o.ExternalPort == p.ExternalPort
			}) {
				return fmt.Errorf("%w: host port %d/%s is mapped by endpoint %q", netdriver.ErrAddressInUse, p.ExternalPort, p.Protocol, other.Name)
			}
		}
	}
	return nil
}

// policiesFit reports a policy a network of type t does not take.
func policiesFit(t netdriver.NetworkType, p netdriver.Policies) error {
	switch {
	case t != netdriver.L2Bridge && p.OutboundNAT != nil:
		return fmt.Errorf("outbound NAT needs an l2bridge network")
	case t != netdriver.L2Bridge && len(p.SDNRoutes) > 0:
		return fmt.Errorf("SDN routes need an l2bridge network")
	case t == netdriver.Transparent && len(p.PortMappings) > 0:
		return fmt.Errorf("port mappings need a nat or l2bridge network")
	}
	return nil
}

// dropUnwantedEndpoint deletes an endpoint whose creator stopped waiting for
// it, unless a compute system has taken it since.
func (h *Host) dropUnwantedEndpoint(created netdriver.Endpoint) {
	h.mu.Lock()
	defer h.unlock()
	if ep, ok := h.endpoints[created.ID]; ok && !h.closed && ep.system == "" {
		delete(h.endpoints, ep.ID)
		h.changedLocked()
	}
}

// endpointLocked returns the endpoint with exactly this name.
func (h *Host) endpointLocked(name string) (*endpoint, bool) {
	for _, ep := range h.endpoints {
		if ep.Name == name {
			return ep, true
		}
	}
	return nil, false
}

// GetEndpointByName returns the endpoint with exactly this name, or fails
// with netdriver.ErrNotFound.
func (n *HCN) GetEndpointByName(ctx context.Context, name string) (netdriver.Endpoint, error) {
	return call(ctx, n, OpGetEndpoint, name, func() (netdriver.Endpoint, error) {
		ep, ok := n.h.endpointLocked(name)
		if !ok {
			return netdriver.Endpoint{}, n.fail(OpGetEndpoint, name, netdriver.ErrNotFound)
		}
		return cloneEndpoint(ep.Endpoint), nil
	}, nil)
}

// ListEndpoints returns the endpoints whose names start with namePrefix,
// sorted by name. An HCN listing can fail while an endpoint is being
// deleted; this host's do not unless told to:
// Fail(OpListEndpoints, "", n, netdriver.ErrUnavailable) plays that race.
func (n *HCN) ListEndpoints(ctx context.Context, namePrefix string) ([]netdriver.Endpoint, error) {
	return call(ctx, n, OpListEndpoints, namePrefix, func() ([]netdriver.Endpoint, error) {
		var out []netdriver.Endpoint
		for _, ep := range n.h.endpoints {
			if strings.HasPrefix(ep.Name, namePrefix) {
				out = append(out, cloneEndpoint(ep.Endpoint))
			}
		}
		slices.SortFunc(out, func(a, b netdriver.Endpoint) int { return cmp.Compare(a.Name, b.Name) })
		return out, nil
	}, nil)
}

// DeleteEndpoint deletes the endpoint with this id. It fails with
// netdriver.ErrNotFound when there is none, and with netdriver.ErrInUse while
// the endpoint is attached to a compute system that has not stopped.
func (n *HCN) DeleteEndpoint(ctx context.Context, id string) error {
	_, err := call(ctx, n, OpDeleteEndpoint, id, func() (struct{}, error) {
		h := n.h
		ep, ok := h.endpoints[id]
		switch {
		case !ok:
			return struct{}{}, n.fail(OpDeleteEndpoint, id, netdriver.ErrNotFound)
		case h.attachedLocked(ep):
			return struct{}{}, n.fail(OpDeleteEndpoint, id, fmt.Errorf("%w: endpoint %q is attached to compute system %q", netdriver.ErrInUse, ep.Name, ep.system))
		}
		delete(h.endpoints, id)
		h.changedLocked()
		return struct{}{}, nil
	}, nil)
	return err
}

// attachedLocked reports whether ep's compute system exists and has not
// stopped.
func (h *Host) attachedLocked(ep *endpoint) bool {
	s, ok := h.systems[ep.system]
	return ok && s.state != hcsdriver.StateStopped && slices.Contains(s.cfg.Endpoints, ep.ID)
}

// attachEndpointsLocked attaches the endpoints with these ids to the new
// compute system sys. It changes nothing and fails with hcsdriver.ErrNotFound
// when no endpoint has one of the ids, and with hcsdriver.ErrInvalidState
// when one of the endpoints was attached before: HNS attaches an endpoint to
// one compute system only, and refuses it to another even once the first has
// stopped.
func (h *Host) attachEndpointsLocked(sys string, ids []string) error {
	for _, id := range ids {
		ep, ok := h.endpoints[id]
		switch {
		case !ok:
			return fmt.Errorf("endpoint %s: %w", id, hcsdriver.ErrNotFound)
		case h.attachedLocked(ep):
			return fmt.Errorf("endpoint %s (%q) is attached to compute system %q: %w", id, ep.Name, ep.system, hcsdriver.ErrInvalidState)
		case ep.system != "":
			return fmt.Errorf("endpoint %s (%q) served compute system %q, which has stopped; use a fresh endpoint: %w", id, ep.Name, ep.system, hcsdriver.ErrInvalidState)
		}
	}
	for _, id := range ids {
		h.endpoints[id].system = sys
	}
	return nil
}

// EndpointState is one endpoint as plain data.
type EndpointState struct {
	netdriver.Endpoint
	// System is the compute system the endpoint was attached to when that
	// system was created, "" while it has never been. It stays set: the
	// endpoint cannot be attached again, so berth creates a fresh endpoint
	// for every start.
	System string `json:"system,omitempty"`
	// Attached reports that System exists and has not stopped; the endpoint
	// cannot be deleted then. It follows from the systems, and a state file's
	// value is ignored.
	Attached bool `json:"attached,omitempty"`
}

// netStateLocked adds the networks and endpoints, sorted by name, to st.
func (h *Host) netStateLocked(st *State) {
	st.NetObjects = h.netObjects
	for _, nw := range h.networks {
		st.Networks = append(st.Networks, cloneNetwork(nw))
	}
	slices.SortFunc(st.Networks, func(a, b netdriver.Network) int { return cmp.Compare(a.Name, b.Name) })
	for _, ep := range h.endpoints {
		st.Endpoints = append(st.Endpoints, EndpointState{Endpoint: cloneEndpoint(ep.Endpoint), System: ep.system, Attached: h.attachedLocked(ep)})
	}
	slices.SortFunc(st.Endpoints, func(a, b EndpointState) int { return cmp.Compare(a.Name, b.Name) })
}

// restoreNetLocked restores the networks and endpoints of st.
func (h *Host) restoreNetLocked(st State) {
	h.netObjects = st.NetObjects
	for _, nw := range st.Networks {
		h.networks[nw.ID] = cloneNetwork(nw)
	}
	for _, es := range st.Endpoints {
		h.endpoints[es.ID] = &endpoint{Endpoint: cloneEndpoint(es.Endpoint), system: es.System}
	}
}

func cloneNetwork(nw netdriver.Network) netdriver.Network {
	nw.DNS = cloneDNS(nw.DNS)
	return nw
}

func cloneDNS(d netdriver.DNS) netdriver.DNS {
	d.Servers = slices.Clone(d.Servers)
	d.Search = slices.Clone(d.Search)
	return d
}

func cloneEndpoint(ep netdriver.Endpoint) netdriver.Endpoint {
	ep.DNS = cloneDNS(ep.DNS)
	p := &ep.Policies
	if p.OutboundNAT != nil {
		p.OutboundNAT = &netdriver.OutboundNAT{Exceptions: slices.Clone(p.OutboundNAT.Exceptions)}
	}
	p.SDNRoutes = slices.Clone(p.SDNRoutes)
	p.PortMappings = slices.Clone(p.PortMappings)
	p.ACLs = slices.Clone(p.ACLs)
	for i := range p.ACLs {
		a := &p.ACLs[i]
		a.LocalAddresses, a.RemoteAddresses = slices.Clone(a.LocalAddresses), slices.Clone(a.RemoteAddresses)
		a.LocalPorts, a.RemotePorts = slices.Clone(a.LocalPorts), slices.Clone(a.RemotePorts)
	}
	return ep
}
