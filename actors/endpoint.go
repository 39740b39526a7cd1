package actors

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/netdriver"
)

// attach gives the container being created its endpoint on the node's
// network: it leases an address, records endpoint_creating and creates the
// endpoint on the host. It returns nil when the container gets no endpoint:
// its spec asks for network mode none, or the node has no network. On
// success the endpoint_created event is still to be recorded, by the
// caller, with the create's outcome. On failure the address is released
// and nothing is left on the host.
//
// The intent is appended on its own rather than in one batch with
// container.creating: the lease may wait for the network's creation, and
// a single-event append is the journal's fastest.
func (e *opEnv) attach(ctx context.Context, r *opResult) (*events.Endpoint, error) {
	spec := e.cmd.Spec
	if spec.Network.Mode == "none" {
		return nil, nil
	}
	var want netip.Addr
	if spec.Network.IP != "" {
		want, _ = netip.ParseAddr(spec.Network.IP) // spec.Validate parsed it
	}
	l, err := e.n.lease(ctx, e.id, want, hostPorts(spec.Ports))
	if l == nil || err != nil {
		return nil, err
	}
	if l.net.Type == netdriver.Transparent && len(spec.Ports) > 0 {
		e.n.release(e.id)
		return nil, fmt.Errorf("%w: spec.ports: network %s is transparent: containers on it are reached at their own address and publish no ports",
			events.ErrInvalid, l.net.Name)
	}
	hostSpec, ep := endpointSpec(e.n.cfg.Owner+"-"+e.id, l, spec)
	if err := e.intent(ctx, r, events.ContainerEndpointCreating, ep); err != nil {
		e.n.release(e.id)
		return nil, journalErr(err)
	}
	var created netdriver.Endpoint
	err = e.n.hostCall(ctx, "endpoint.create", func() (err error) { created, err = e.n.cfg.Network.CreateEndpoint(ctx, hostSpec); return err })
	if err != nil {
		err = fmt.Errorf("%w: endpoint %s: %w", netdriver.Class(err), ep.Name, err)
		if aerr := e.record(ctx, r, e.event(events.ContainerEndpointCreateFailed, failure(err))); aerr != nil {
			return nil, journalErr(aerr)
		}
		e.n.release(e.id)
		return nil, err
	}
	ep.ID = created.ID
	return ep, nil
}

// endpointSpec builds the container's endpoint on leased network l: its
// address and gateway, DNS from the spec field by field over the network's
// default, outbound NAT (except to the cluster) where the network type
// takes it, and the spec's port mappings. It returns the host's spec and
// the fold's record of it.
func endpointSpec(name string, l *lease, spec *events.ContainerSpec) (netdriver.EndpointSpec, *events.Endpoint) {
	dns, want := l.dns, spec.Network.DNS
	if len(want.Servers) > 0 {
		dns.Servers = want.Servers
	}
	if want.Domain != "" {
		dns.Domain = want.Domain
	}
	if len(want.Search) > 0 {
		dns.Search = want.Search
	}
	hostDNS, _ := hostDNS(dns) // spec.Validate and network.configure checked the servers
	hs := netdriver.EndpointSpec{Name: name, Network: l.net.ID, IP: l.ip, PrefixLen: l.net.Subnet.Bits(),
		Gateway: l.net.Gateway, DNS: hostDNS, Policies: netdriver.Policies{PortMappings: hostPorts(spec.Ports)}}
	if l.net.Type == netdriver.L2Bridge {
		hs.Policies.OutboundNAT = &netdriver.OutboundNAT{Exceptions: []netip.Prefix{l.cluster}}
	}
	ep := &events.Endpoint{Name: name, Network: l.net.Name, IP: l.ip.String(), Gateway: l.net.Gateway.String(), DNS: dns}
	for _, p := range hs.Policies.PortMappings {
		ep.Ports = append(ep.Ports, events.PortMapping{HostPort: int(p.ExternalPort), ContainerPort: int(p.InternalPort), Protocol: string(p.Protocol)})
	}
	return hs, ep
}

// detach deletes the container's endpoint ep from the host, records that
// it is gone and releases its address. The compute system the endpoint was
// attached to must have stopped: the host refuses to delete an endpoint a
// live system holds.
func (e *opEnv) detach(ctx context.Context, r *opResult, ep *events.Endpoint) error {
	drv := e.n.cfg.Network
	if drv == nil {
		return fmt.Errorf("%w: endpoint %s: networking is off on this agent", events.ErrUnavailable, ep.Name)
	}
	err := e.n.hostCall(ctx, "endpoint.delete", func() error {
		id := ep.ID
		if id == "" { // an interrupted create may or may not have made it: look for it by name
			found, err := drv.GetEndpointByName(ctx, ep.Name)
			if err != nil {
				return err
			}
			id = found.ID
		}
		return drv.DeleteEndpoint(ctx, id)
	})
	if err != nil && !errors.Is(err, netdriver.ErrNotFound) {
		return fmt.Errorf("%w: deleting endpoint %s: %w", netdriver.Class(err), ep.Name, err)
	}
	if err := e.record(ctx, r, e.event(events.ContainerEndpointDeleted, nil)); err != nil {
		return journalErr(err)
	}
	e.n.release(e.id)
	return nil
}
