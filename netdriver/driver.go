// Package netdriver is berth's contract with the Host Compute Network service
// (HCN): the node's network and one endpoint per container, with its address,
// DNS settings and policies. The Windows adapter (package winhcn) implements it
// on hcsshim/hcn; the simulated host (package winsim) implements it for Linux.
// The conformance suite in netdrivertest holds both to the promises written
// here.
//
// The package also holds berth's address management (see [Allocator]): pure
// functions and values that parse the cluster CIDR and the node's slice of it
// and hand out container addresses deterministically, so that the fold can
// replay every allocation.
//
// There are no HCN namespaces in this contract. berth creates schema v1
// compute systems, which attach endpoints by id through their EndpointList
// (hcsdriver.Config.Endpoints); HCS creates the network compartment itself.
// Namespaces only serve schema v2 documents.
//
// Every method takes a context. A call whose context is done before it starts
// returns ctx.Err() and changes nothing. HCN calls cannot be cancelled, so an
// implementation may return ctx.Err() while the platform call runs on; callers
// then treat the outcome as unknown and observe the host again (an endpoint is
// found by its name).
package netdriver

import (
	"context"
	"net/netip"
)

// Driver manages networks and endpoints on one host. Implementations are safe
// for concurrent use. Several Driver values may serve one host in turn (an
// agent restart): the host's networks and endpoints outlive them.
type Driver interface {
	// EnsureNetwork returns the network named spec.Name, creating it when
	// the host has none. An existing network is adopted when spec.Mismatch
	// finds no difference; otherwise EnsureNetwork fails with
	// ErrAlreadyExists and leaves it alone. It fails with ErrSubnetConflict,
	// creating nothing, when another network's subnet overlaps spec.Subnet,
	// and with ErrInvalidSpec when spec.Validate does. Concurrent calls for
	// one name on one Driver create the network at most once.
	EnsureNetwork(ctx context.Context, spec NetworkSpec) (Network, error)
	// GetNetwork returns the network with exactly this name, or ErrNotFound.
	GetNetwork(ctx context.Context, name string) (Network, error)
	// DeleteNetwork deletes the network with exactly this name, or fails with
	// ErrNotFound. Callers delete the network's endpoints first.
	DeleteNetwork(ctx context.Context, name string) error

	// CreateEndpoint creates an endpoint on network spec.Network (an id, as
	// Network.ID reports it) and returns it as the host holds it. It fails
	// with ErrInvalidSpec when spec.Validate does or spec.IP lies outside the
	// network's subnet, ErrNotFound when the network does not exist,
	// ErrAlreadyExists when an endpoint with that name exists (also when
	// another call is creating it), and ErrAddressInUse when another
	// endpoint holds spec.IP. On error nothing is left on the host.
	CreateEndpoint(ctx context.Context, spec EndpointSpec) (Endpoint, error)
	// GetEndpointByName returns the endpoint with exactly this name (HCN
	// queries match whole names only), or ErrNotFound.
	GetEndpointByName(ctx context.Context, name string) (Endpoint, error)
	// ListEndpoints returns the host's endpoints whose names start with
	// namePrefix ("" lists all), sorted by name. HCN lists ids and then
	// opens each endpoint, so a listing that races a delete may fail with
	// ErrUnavailable; the caller lists again.
	ListEndpoints(ctx context.Context, namePrefix string) ([]Endpoint, error)
	// DeleteEndpoint deletes the endpoint with this id. An id no endpoint
	// has fails with ErrNotFound, which callers that only want the endpoint
	// gone ignore.
	DeleteEndpoint(ctx context.Context, id string) error
}

// NetworkType is the kind of HCN network.
type NetworkType string

// Network types.
const (
	// NAT puts containers behind the host's address on an internal
	// vSwitch; published ports reach them through port mappings.
	NAT NetworkType = "nat"
	// L2Bridge bridges containers onto the physical network at layer 2
	// while they share the host's MAC address; addresses come from the
	// node's slice and are routed to the node.
	L2Bridge NetworkType = "l2bridge"
	// Transparent puts an external vSwitch on a physical adapter so that
	// containers are full hosts on its network. Creating it takes the
	// adapter over: the host's own address moves to a virtual adapter and
	// the host loses connectivity for a few seconds. Name the physical
	// adapter (not a vEthernet one) in NetworkSpec.Adapter, and create the
	// network before depending on the connection (the agent does so at
	// start, once). Inside a Hyper-V VM the adapter needs MAC spoofing.
	Transparent NetworkType = "transparent"
)

// NetworkSpec describes the node's network.
type NetworkSpec struct {
	Name    string       `json:"name"`
	Type    NetworkType  `json:"type"`
	Subnet  netip.Prefix `json:"subnet"`
	Gateway netip.Addr   `json:"gateway"`
	// Adapter is the physical network adapter a Transparent or L2Bridge
	// network binds to (for example "Ethernet 2"); a NAT network has none.
	Adapter string `json:"adapter,omitempty"`
	// DNS is the network's default resolver configuration; endpoints carry
	// their own.
	DNS DNS `json:"dns,omitzero"`
}

// Network is a network as the host reports it.
type Network struct {
	ID string `json:"id"`
	NetworkSpec
}

// DNS configures a resolver.
type DNS struct {
	Servers []netip.Addr `json:"servers,omitempty"`
	Domain  string       `json:"domain,omitempty"`
	Search  []string     `json:"search,omitempty"`
}

// EndpointSpec describes one container's endpoint.
type EndpointSpec struct {
	// Name identifies the endpoint; berth names it <owner>-<container>.
	Name string `json:"name"`
	// Network is the id of the network the endpoint joins.
	Network   string     `json:"network"`
	IP        netip.Addr `json:"ip"`
	PrefixLen int        `json:"prefix_len"`
	// Gateway, when set, becomes the endpoint's default route.
	Gateway  netip.Addr `json:"gateway,omitzero"`
	DNS      DNS        `json:"dns,omitzero"`
	Policies Policies   `json:"policies,omitzero"`
}

// Endpoint is an endpoint as the host reports it. Its policies include every
// policy of the spec it was created from; a host may report more.
type Endpoint struct {
	ID string `json:"id"`
	EndpointSpec
}

// Policies are an endpoint's HCN policies. Which ones a host accepts depends
// on the network type and the Windows build (OutboundNAT and SDNRoute serve
// L2Bridge networks, port mappings NAT and L2Bridge ones); a host refuses
// what it does not support with ErrInvalidSpec.
type Policies struct {
	OutboundNAT  *OutboundNAT  `json:"outbound_nat,omitempty"`
	SDNRoutes    []SDNRoute    `json:"sdn_routes,omitempty"`
	ACLs         []ACL         `json:"acls,omitempty"`
	PortMappings []PortMapping `json:"port_mappings,omitempty"`
}

// OutboundNAT translates the endpoint's outbound traffic to the host's
// address, except traffic to the Exceptions (typically the cluster CIDR).
type OutboundNAT struct {
	Exceptions []netip.Prefix `json:"exceptions,omitempty"`
}

// SDNRoute routes DestinationPrefix through the virtual switch, encapsulated
// when NeedEncap is set.
type SDNRoute struct {
	DestinationPrefix netip.Prefix `json:"destination_prefix"`
	NeedEncap         bool         `json:"need_encap,omitempty"`
}

// ACL is one firewall rule on the endpoint's switch port. Empty address and
// port lists match everything.
type ACL struct {
	Action          ACLAction      `json:"action"`
	Direction       ACLDirection   `json:"direction"`
	Protocol        Protocol       `json:"protocol,omitempty"` // "" matches every protocol
	LocalAddresses  []netip.Prefix `json:"local_addresses,omitempty"`
	RemoteAddresses []netip.Prefix `json:"remote_addresses,omitempty"`
	LocalPorts      []uint16       `json:"local_ports,omitempty"`
	RemotePorts     []uint16       `json:"remote_ports,omitempty"`
	// Priority orders rules, lower numbers first; 0 leaves the host's
	// default.
	Priority uint16 `json:"priority,omitempty"`
}

// ACLAction says what an ACL does with matching traffic.
type ACLAction string

// ACL actions.
const (
	Allow ACLAction = "allow"
	Block ACLAction = "block"
)

// ACLDirection says which traffic an ACL matches.
type ACLDirection string

// ACL directions.
const (
	In  ACLDirection = "in"  // traffic arriving at the endpoint
	Out ACLDirection = "out" // traffic leaving the endpoint
)

// Protocol is an IP protocol.
type Protocol string

// Protocols. Port mappings take TCP or UDP; ACLs also ICMP.
const (
	TCP  Protocol = "tcp"
	UDP  Protocol = "udp"
	ICMP Protocol = "icmp"
)

// PortMapping publishes the endpoint's InternalPort on the host's
// ExternalPort.
type PortMapping struct {
	Protocol     Protocol `json:"protocol"`
	InternalPort uint16   `json:"internal_port"`
	ExternalPort uint16   `json:"external_port"`
}
