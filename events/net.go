package events

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"unicode"
)

// Network event types (kind "net"). Their subject is the network's name,
// <owner>-overlay. Creating the network is bracketed like every host side
// effect: creating is durable before the host call, created or
// create_failed follows it.
const (
	NetworkConfigured   = "berth.network.configured"    // NetworkConfiguredData
	NetworkCreating     = "berth.network.creating"      // no data; the network may exist from now on
	NetworkCreated      = "berth.network.created"       // NetworkCreatedData
	NetworkCreateFailed = "berth.network.create_failed" // FailureData
)

// Container endpoint event types. They happen inside a container's create
// and remove operations, so they are container events. endpoint_creating
// carries the allocated address and is durable before the endpoint is
// created on the host: replay restores every allocation from it, and an
// endpoint_creating without an outcome tells reconciliation that an
// endpoint of that name may exist. The address is released by
// endpoint_create_failed and endpoint_deleted.
const (
	ContainerEndpointCreating     = "berth.container.endpoint_creating"      // Endpoint, without its id
	ContainerEndpointCreated      = "berth.container.endpoint_created"       // EndpointCreatedData
	ContainerEndpointCreateFailed = "berth.container.endpoint_create_failed" // FailureData; nothing on the host, address released
	ContainerEndpointDeleted      = "berth.container.endpoint_deleted"       // no data; the endpoint is gone, address released
)

const endpointPrefix = "berth.container.endpoint_"

// Network types (NetworkConfig.Type).
const (
	NetworkNAT         = "nat"
	NetworkL2Bridge    = "l2bridge"
	NetworkTransparent = "transparent"
)

// NetworkConfig is the node's network as the network.configure command
// sets it.
type NetworkConfig struct {
	// ClusterCIDR is the whole cluster's pod range; endpoints of an
	// l2bridge network reach it without outbound NAT.
	ClusterCIDR string `json:"cluster_cidr"`
	// NodeSlice is this node's part of ClusterCIDR, from which containers
	// get their addresses. Its first address after the network address is
	// the gateway.
	NodeSlice string `json:"node_slice"`
	// DNS is the default resolver configuration of containers; a
	// container's spec.network.dns overrides it field by field.
	DNS DNSSpec `json:"dns,omitzero"`
	// Type is nat, l2bridge or transparent. A transparent network takes
	// the named adapter over: the host's own address moves to a virtual
	// adapter and the host loses connectivity for a few seconds when the
	// network is created.
	Type string `json:"type"`
	// Adapter is the physical adapter an l2bridge or transparent network
	// binds to; a nat network takes none.
	Adapter string `json:"adapter,omitempty"`
}

// Validate checks the configuration without consulting the host and
// returns an ErrInvalid error naming the first field at fault: both CIDRs
// must be canonical IPv4 prefixes, /30 or wider, the slice inside the
// cluster CIDR, DNS servers IP addresses, the type one of nat, l2bridge and
// transparent, with an adapter exactly when the type needs one.
func (n *NetworkConfig) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: network.%s: %s", ErrInvalid, field, fmt.Sprintf(format, a...))
	}
	cluster, err := parseSubnet(n.ClusterCIDR)
	if err != nil {
		return bad("cluster_cidr", "%v", err)
	}
	slice, err := parseSubnet(n.NodeSlice)
	if err != nil {
		return bad("node_slice", "%v", err)
	}
	if slice.Bits() < cluster.Bits() || !cluster.Contains(slice.Addr()) {
		return bad("node_slice", "%v is not inside cluster_cidr %v", slice, cluster)
	}
	for i, d := range n.DNS.Servers {
		if a, err := netip.ParseAddr(d); err != nil || a.IsUnspecified() {
			return bad(fmt.Sprintf("dns.servers[%d]", i), "%q is not a server address", d)
		}
	}
	if n.DNS.Domain != "" {
		if err := checkDomain(n.DNS.Domain); err != nil {
			return bad("dns.domain", "%v", err)
		}
	}
	for i, s := range n.DNS.Search {
		if err := checkDomain(s); err != nil {
			return bad(fmt.Sprintf("dns.search[%d]", i), "%v", err)
		}
	}
	switch n.Type {
	case NetworkNAT:
		if n.Adapter != "" {
			return bad("adapter", "a nat network binds to no adapter, got %q", n.Adapter)
		}
	case NetworkL2Bridge, NetworkTransparent:
		if n.Adapter == "" || len(n.Adapter) > 256 || strings.IndexFunc(n.Adapter, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0 {
			return bad("adapter", "a %s network needs the name of the physical adapter it binds to, got %q", n.Type, n.Adapter)
		}
	default:
		return bad("type", "%q is not one of %s, %s, %s", n.Type, NetworkNAT, NetworkL2Bridge, NetworkTransparent)
	}
	return nil
}

// parseSubnet parses a canonical IPv4 prefix with room for a gateway and a
// container: /30 or wider.
func parseSubnet(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	switch {
	case err != nil:
		return p, fmt.Errorf("%q is not a CIDR prefix", s)
	case !p.Addr().Is4():
		return p, fmt.Errorf("%v is not IPv4", p)
	case p != p.Masked():
		return p, fmt.Errorf("%v has host bits set (the prefix is %v)", p, p.Masked())
	case p.Bits() > 30:
		return p, fmt.Errorf("%v is too small: /30 is the narrowest usable prefix", p)
	}
	return p, nil
}

func checkDomain(s string) error {
	if s == "" || len(s) > 253 || strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == ',' || !unicode.IsPrint(r) }) >= 0 {
		return fmt.Errorf("%q is not a domain name", s)
	}
	return nil
}

// NetworkConfiguredData is the payload of network.configured: the
// configuration, with the network's name and gateway as the agent derived
// them.
type NetworkConfiguredData struct {
	Name string `json:"name"` // <owner>-overlay
	NetworkConfig
	Gateway string `json:"gateway"`
}

// NetworkCreatedData is the payload of network.created.
type NetworkCreatedData struct {
	ID string `json:"id"` // the host's network id
}

// Endpoint is a container's endpoint on the node's network: the payload of
// endpoint_creating (without ID) and, in the fold, Container.Endpoint.
type Endpoint struct {
	ID      string `json:"id,omitempty"` // the host's endpoint id, once created
	Name    string `json:"name"`         // <owner>-<container>
	Network string `json:"network"`      // the network's name
	IP      string `json:"ip"`
	Gateway string `json:"gateway,omitempty"`
	// DNS is the container's resolver configuration: its spec's, field by
	// field over the network's default.
	DNS DNSSpec `json:"dns,omitzero"`
	// Ports are the published ports, each with its protocol.
	Ports []PortMapping `json:"ports,omitempty"`
}

// EndpointCreatedData is the payload of endpoint_created.
type EndpointCreatedData struct {
	ID string `json:"id"` // the host's endpoint id
}

// NetworkPhase is where the node's network is in its life.
type NetworkPhase string

// Network phases.
const (
	NetworkPhaseConfigured NetworkPhase = "configured" // not created on the host (yet, or since it changed shape)
	NetworkPhaseCreating   NetworkPhase = "creating"   // creation announced; the network may exist
	NetworkPhaseCreated    NetworkPhase = "created"
	NetworkPhaseFailed     NetworkPhase = "failed" // the last creation failed; the next one retries
)

// Network is the fold's record of the node's network and its address
// allocations.
type Network struct {
	NetworkConfiguredData
	Phase NetworkPhase `json:"phase"`
	ID    string       `json:"id,omitempty"`    // the host's network id, once created
	Error string       `json:"error,omitempty"` // why the last creation failed
	// Allocations maps each allocated address to the container holding it.
	// A container holds an address from its endpoint_creating until its
	// endpoint_create_failed or endpoint_deleted.
	Allocations map[string]string `json:"allocations,omitempty"`
	Seq         uint64            `json:"seq"`
}

// ShapeChanges lists the settings in which o describes another host
// network than d: name, node_slice, gateway, type, adapter. It is empty when
// the network created for d serves o too (DNS defaults and the cluster CIDR
// can change under a live network).
func (d NetworkConfiguredData) ShapeChanges(o NetworkConfiguredData) []string {
	var changed []string
	for _, f := range []struct {
		name string
		a, b string
	}{{"name", d.Name, o.Name}, {"node_slice", d.NodeSlice, o.NodeSlice}, {"gateway", d.Gateway, o.Gateway},
		{"type", d.Type, o.Type}, {"adapter", d.Adapter, o.Adapter}} {
		if f.a != f.b {
			changed = append(changed, f.name)
		}
	}
	return changed
}

func (n *Network) clone() *Network {
	c := *n
	c.DNS = n.DNS.clone()
	c.Allocations = maps.Clone(n.Allocations)
	return &c
}

func (d DNSSpec) clone() DNSSpec {
	d.Servers = slices.Clone(d.Servers)
	d.Search = slices.Clone(d.Search)
	return d
}

func (e *Endpoint) clone() *Endpoint {
	if e == nil {
		return nil
	}
	c := *e
	c.DNS = e.DNS.clone()
	c.Ports = slices.Clone(e.Ports)
	return &c
}

// applyNetwork folds a network event. A network must be configured before
// it is created; created and create_failed answer creating. A
// configuration that changes the network's shape (name, slice, gateway,
// type or adapter) is refused while containers hold addresses or a
// creation is in flight, and otherwise leaves the network to be created
// again.
func (s *State) applyNetwork(e *Event) error {
	wrong := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s for network %s: %s", ErrWrongPhase, e.Short(), e.Subject, fmt.Sprintf(format, a...))
	}
	n := s.Network
	if e.Type != NetworkConfigured {
		if n == nil {
			return wrong("no network is configured")
		}
		if e.Subject != n.Name {
			return wrong("the configured network is %s", n.Name)
		}
	}
	switch e.Type {
	case NetworkConfigured:
		var d NetworkConfiguredData
		if err := e.Decode(&d); err != nil {
			return err
		}
		if d.Name != e.Subject {
			return fmt.Errorf("%w: %s: name %q differs from the subject %q", ErrInvalid, e.Short(), d.Name, e.Subject)
		}
		if err := d.Validate(); err != nil {
			return fmt.Errorf("%s: %w", e.Short(), err)
		}
		if gw, err := netip.ParseAddr(d.Gateway); err != nil || !mustPrefix(d.NodeSlice).Contains(gw) {
			return fmt.Errorf("%w: %s: gateway %q is not an address of node slice %s", ErrInvalid, e.Short(), d.Gateway, d.NodeSlice)
		}
		switch {
		case n == nil:
			s.Network = &Network{NetworkConfiguredData: d, Phase: NetworkPhaseConfigured}
		case len(n.ShapeChanges(d)) == 0:
			n.NetworkConfiguredData = d
		case len(n.Allocations) > 0:
			return wrong("%d containers hold addresses of node slice %s", len(n.Allocations), n.NodeSlice)
		case n.Phase == NetworkPhaseCreating:
			return wrong("its creation is in flight")
		default:
			n.NetworkConfiguredData, n.Phase, n.ID, n.Error = d, NetworkPhaseConfigured, "", ""
		}
	case NetworkCreating:
		n.Phase, n.Error = NetworkPhaseCreating, ""
	case NetworkCreated, NetworkCreateFailed:
		if n.Phase != NetworkPhaseCreating {
			return wrong("the network is %s, not creating", n.Phase)
		}
		if e.Type == NetworkCreated {
			var d NetworkCreatedData
			if err := e.Decode(&d); err != nil {
				return err
			}
			n.Phase, n.ID = NetworkPhaseCreated, d.ID
		} else {
			var d FailureData
			if err := e.Decode(&d); err != nil {
				return err
			}
			n.Phase, n.Error = NetworkPhaseFailed, d.Error
		}
	default:
		return fmt.Errorf("%w: event %s: unknown network event type %q", ErrInvalid, e.ID, e.Type)
	}
	s.Network.Seq = e.Seq
	return nil
}

// mustPrefix parses a prefix that Validate has accepted.
func mustPrefix(s string) netip.Prefix {
	p, _ := netip.ParsePrefix(s)
	return p
}

// applyEndpoint checks and applies what an endpoint event does beyond its
// phase transition, to record c; it runs before the record changes. The
// record must hold no endpoint for endpoint_creating and one for the other
// events; endpoint_created and endpoint_create_failed answer an
// endpoint_creating. Unless s is a record view, the address of
// endpoint_creating must be a free address of the configured node slice;
// it is allocated to the container, and released again by
// endpoint_create_failed and endpoint_deleted.
func (s *State) applyEndpoint(e *Event, c *Container) error {
	wrong := func(format string, a ...any) error {
		return fmt.Errorf("%w: %s for container %s: %s", ErrWrongPhase, e.Short(), e.Subject, fmt.Sprintf(format, a...))
	}
	if e.Type == ContainerEndpointCreating {
		var ep Endpoint
		if err := e.Decode(&ep); err != nil {
			return err
		}
		ip, err := netip.ParseAddr(ep.IP)
		if err != nil || !ip.Is4() {
			return fmt.Errorf("%w: %s: ip %q is not an IPv4 address", ErrInvalid, e.Short(), ep.IP)
		}
		if c.Endpoint != nil {
			return wrong("it holds endpoint %s already", c.Endpoint.Name)
		}
		if !s.recordView {
			n := s.Network
			switch {
			case n == nil:
				return wrong("no network is configured")
			case !mustPrefix(n.NodeSlice).Contains(ip):
				return wrong("%v is outside node slice %s", ip, n.NodeSlice)
			case n.Allocations[ep.IP] != "":
				return wrong("%v is held by container %s", ip, n.Allocations[ep.IP])
			}
			if n.Allocations == nil {
				n.Allocations = map[string]string{}
			}
			n.Allocations[ep.IP] = e.Subject
		}
		ep.ID = ""
		c.Endpoint = &ep
		return nil
	}
	switch {
	case c.Endpoint == nil:
		return wrong("it holds no endpoint")
	case e.Type != ContainerEndpointDeleted && c.Endpoint.ID != "":
		return wrong("endpoint %s was created already", c.Endpoint.Name)
	}
	switch e.Type {
	case ContainerEndpointCreated:
		var d EndpointCreatedData
		if err := e.Decode(&d); err != nil {
			return err
		}
		c.Endpoint.ID = d.ID
		return nil
	case ContainerEndpointCreateFailed:
		var d FailureData
		if err := e.Decode(&d); err != nil {
			return err
		}
		c.Error = d.Error
	}
	s.release(c)
	return nil
}

// release frees the address record c holds.
func (s *State) release(c *Container) {
	if n := s.Network; n != nil && c.Endpoint != nil && n.Allocations[c.Endpoint.IP] == c.ID {
		delete(n.Allocations, c.Endpoint.IP)
	}
	c.Endpoint = nil
}

// RecordView returns a state that folds the events of one container into
// a copy of its record c (nil: the container does not exist), for an actor
// that keeps its own container's record. It applies the same transitions
// as the node's fold but keeps no node-wide tables: endpoint addresses are
// not checked against the node's network or allocated from it.
func RecordView(id string, c *Container) *State {
	s := &State{Containers: map[string]*Container{}, recordView: true}
	if c != nil {
		s.Containers[id] = c.Clone()
	}
	return s
}
