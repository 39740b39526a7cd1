package winhcn

import (
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/berthhq/berth/netdriver"
)

// defaultRoute is the destination of a subnet's or endpoint's default route.
const defaultRoute = "0.0.0.0/0"

// networkTypes maps netdriver network types to hcn.NetworkType names.
var networkTypes = map[netdriver.NetworkType]string{
	netdriver.NAT:         "NAT",
	netdriver.L2Bridge:    "L2Bridge",
	netdriver.Transparent: "Transparent",
}

// protocols maps netdriver protocols to IANA protocol numbers, which HCN
// takes.
var protocols = map[netdriver.Protocol]uint32{
	netdriver.ICMP: 1,
	netdriver.TCP:  6,
	netdriver.UDP:  17,
}

// acl spellings in HCN.
var (
	aclActions    = map[netdriver.ACLAction]string{netdriver.Allow: "Allow", netdriver.Block: "Block"}
	aclDirections = map[netdriver.ACLDirection]string{netdriver.In: "In", netdriver.Out: "Out"}
)

// aclRuleType makes ACLs VFP rules on the endpoint's switch port, which apply
// to container traffic ("Host" rules are WFP rules for the host's own).
const aclRuleType = "Switch"

// NetworkDocument builds the HostComputeNetwork document that creates spec:
// static IPAM with the subnet and a default route through the gateway (hcn
// refuses a subnet without one), and a NetAdapterName policy binding
// Transparent and L2Bridge networks to their adapter. It fails with
// netdriver.ErrInvalidSpec when spec.Validate does.
func NetworkDocument(spec netdriver.NetworkSpec) (HostComputeNetwork, error) {
	if err := spec.Validate(); err != nil {
		return HostComputeNetwork{}, err
	}
	doc := HostComputeNetwork{
		Name: spec.Name,
		Type: networkTypes[spec.Type],
		Dns:  dnsDocument(spec.DNS),
		Ipams: []Ipam{{Type: "Static", Subnets: []Subnet{{
			IpAddressPrefix: spec.Subnet.String(),
			Routes:          []Route{{NextHop: spec.Gateway.String(), DestinationPrefix: defaultRoute}},
		}}}},
		SchemaVersion: schemaV2,
	}
	if spec.Adapter != "" {
		doc.Policies = []NetworkPolicy{{Type: policyNetAdapterName,
			Settings: &NetAdapterNameNetworkPolicySetting{NetworkAdapterName: spec.Adapter}}}
	}
	return doc, nil
}

// EndpointDocument builds the HostComputeEndpoint document that creates spec
// on its network: one static IP configuration, a default route through the
// gateway when there is one, the DNS settings, and the policies in a fixed
// order (OutBoundNAT, SDNRoute, ACL, PortMapping). It fails with
// netdriver.ErrInvalidSpec when spec.Validate does.
func EndpointDocument(spec netdriver.EndpointSpec) (HostComputeEndpoint, error) {
	if err := spec.Validate(); err != nil {
		return HostComputeEndpoint{}, err
	}
	doc := HostComputeEndpoint{
		Name:               spec.Name,
		HostComputeNetwork: spec.Network,
		IpConfigurations:   []IpConfig{{IpAddress: spec.IP.String(), PrefixLength: uint8(spec.PrefixLen)}},
		Dns:                dnsDocument(spec.DNS),
		SchemaVersion:      schemaV2,
	}
	if spec.Gateway.IsValid() {
		doc.Routes = []Route{{NextHop: spec.Gateway.String(), DestinationPrefix: defaultRoute}}
	}
	p := spec.Policies
	if p.OutboundNAT != nil {
		doc.Policies = append(doc.Policies, EndpointPolicy{Type: policyOutBoundNAT,
			Settings: &OutboundNatPolicySetting{Exceptions: strs(p.OutboundNAT.Exceptions)}})
	}
	for _, r := range p.SDNRoutes {
		doc.Policies = append(doc.Policies, EndpointPolicy{Type: policySDNRoute,
			Settings: &SDNRoutePolicySetting{DestinationPrefix: r.DestinationPrefix.String(), NeedEncap: r.NeedEncap}})
	}
	for _, a := range p.ACLs {
		s := &AclPolicySetting{
			Action:          aclActions[a.Action],
			Direction:       aclDirections[a.Direction],
			LocalAddresses:  strings.Join(strs(a.LocalAddresses), ","),
			RemoteAddresses: strings.Join(strs(a.RemoteAddresses), ","),
			LocalPorts:      joinPorts(a.LocalPorts),
			RemotePorts:     joinPorts(a.RemotePorts),
			RuleType:        aclRuleType,
			Priority:        a.Priority,
		}
		if a.Protocol != "" {
			s.Protocols = strconv.FormatUint(uint64(protocols[a.Protocol]), 10)
		}
		doc.Policies = append(doc.Policies, EndpointPolicy{Type: policyACL, Settings: s})
	}
	for _, m := range p.PortMappings {
		doc.Policies = append(doc.Policies, EndpointPolicy{Type: policyPortMapping, Settings: &PortMappingPolicySetting{
			Protocol: protocols[m.Protocol], InternalPort: m.InternalPort, ExternalPort: m.ExternalPort}})
	}
	return doc, nil
}

func dnsDocument(d netdriver.DNS) Dns {
	return Dns{Domain: d.Domain, Search: slices.Clone(d.Search), ServerList: strs(d.Servers)}
}

func strs[T interface{ String() string }](vs []T) []string {
	if len(vs) == 0 {
		return nil
	}
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.String()
	}
	return out
}

func joinPorts(ports []uint16) string {
	s := make([]string, len(ports))
	for i, p := range ports {
		s[i] = strconv.Itoa(int(p))
	}
	return strings.Join(s, ",")
}

// NetworkFromDocument reads a network as HNS reports it. Fields it cannot
// parse stay zero, so that spec.Mismatch names them.
func NetworkFromDocument(doc HostComputeNetwork) netdriver.Network {
	n := netdriver.Network{ID: doc.Id, NetworkSpec: netdriver.NetworkSpec{
		Name: doc.Name,
		Type: netdriver.NetworkType(strings.ToLower(doc.Type)),
		DNS:  dnsOf(doc.Dns),
	}}
	for t, name := range networkTypes {
		if strings.EqualFold(doc.Type, name) {
			n.Type = t
		}
	}
	for _, ipam := range doc.Ipams {
		for _, s := range ipam.Subnets {
			p, err := netip.ParsePrefix(s.IpAddressPrefix)
			if err != nil || !p.Addr().Is4() || n.Subnet.IsValid() {
				continue
			}
			n.Subnet, n.Gateway = p, gatewayOf(s.Routes)
		}
	}
	for _, p := range doc.Policies {
		if s, ok := p.Settings.(*NetAdapterNameNetworkPolicySetting); ok && p.Type == policyNetAdapterName {
			n.Adapter = s.NetworkAdapterName
		}
	}
	return n
}

// EndpointFromDocument reads an endpoint as HNS reports it: its first IPv4
// configuration, default route, DNS settings and the policies berth knows.
// Fields and policies it cannot parse are left out.
func EndpointFromDocument(doc HostComputeEndpoint) netdriver.Endpoint {
	ep := netdriver.Endpoint{ID: doc.Id, EndpointSpec: netdriver.EndpointSpec{
		Name:    doc.Name,
		Network: doc.HostComputeNetwork,
		Gateway: gatewayOf(doc.Routes),
		DNS:     dnsOf(doc.Dns),
	}}
	for _, c := range doc.IpConfigurations {
		if a, err := netip.ParseAddr(c.IpAddress); err == nil && a.Is4() {
			ep.IP, ep.PrefixLen = a, int(c.PrefixLength)
			break
		}
	}
	p := &ep.Policies
	for _, pol := range doc.Policies {
		switch s := pol.Settings.(type) {
		case *OutboundNatPolicySetting:
			p.OutboundNAT = &netdriver.OutboundNAT{Exceptions: prefixes(strings.Join(s.Exceptions, ","))}
		case *SDNRoutePolicySetting:
			if d, err := netip.ParsePrefix(s.DestinationPrefix); err == nil {
				p.SDNRoutes = append(p.SDNRoutes, netdriver.SDNRoute{DestinationPrefix: d, NeedEncap: s.NeedEncap})
			}
		case *AclPolicySetting:
			if a, ok := aclOf(s); ok {
				p.ACLs = append(p.ACLs, a)
			}
		case *PortMappingPolicySetting:
			if proto := protocolOf(s.Protocol); proto == netdriver.TCP || proto == netdriver.UDP {
				p.PortMappings = append(p.PortMappings, netdriver.PortMapping{Protocol: proto, InternalPort: s.InternalPort, ExternalPort: s.ExternalPort})
			}
		}
	}
	return ep
}

func aclOf(s *AclPolicySetting) (netdriver.ACL, bool) {
	a := netdriver.ACL{
		LocalAddresses:  prefixes(s.LocalAddresses),
		RemoteAddresses: prefixes(s.RemoteAddresses),
		LocalPorts:      ports(s.LocalPorts),
		RemotePorts:     ports(s.RemotePorts),
		Priority:        s.Priority,
	}
	if s.Protocols != "" {
		if n, err := strconv.ParseUint(s.Protocols, 10, 32); err == nil {
			a.Protocol = protocolOf(uint32(n))
		}
	}
	for k, v := range aclActions {
		if strings.EqualFold(s.Action, v) {
			a.Action = k
		}
	}
	for k, v := range aclDirections {
		if strings.EqualFold(s.Direction, v) {
			a.Direction = k
		}
	}
	return a, a.Action != "" && a.Direction != "" && (s.Protocols == "" || a.Protocol != "")
}

// protocolOf reads an HCN protocol number; "" when it is none berth knows.
func protocolOf(n uint32) netdriver.Protocol {
	for k, v := range protocols {
		if n == v {
			return k
		}
	}
	return ""
}

func gatewayOf(routes []Route) netip.Addr {
	for _, r := range routes {
		if r.DestinationPrefix == defaultRoute {
			if a, err := netip.ParseAddr(r.NextHop); err == nil {
				return a
			}
		}
	}
	return netip.Addr{}
}

func dnsOf(d Dns) netdriver.DNS {
	out := netdriver.DNS{Domain: d.Domain, Search: slices.Clone(d.Search)}
	for _, s := range d.ServerList {
		if a, err := netip.ParseAddr(s); err == nil {
			out.Servers = append(out.Servers, a)
		}
	}
	return out
}

// prefixes reads a comma-separated list of prefixes or addresses (an address
// stands for its host prefix).
func prefixes(list string) []netip.Prefix {
	var out []netip.Prefix
	for s := range strings.SplitSeq(list, ",") {
		s = strings.TrimSpace(s)
		if p, err := netip.ParsePrefix(s); err == nil {
			out = append(out, p)
		} else if a, err := netip.ParseAddr(s); err == nil {
			out = append(out, netip.PrefixFrom(a, a.BitLen()))
		}
	}
	return out
}

func ports(list string) []uint16 {
	var out []uint16
	for s := range strings.SplitSeq(list, ",") {
		if p, err := strconv.ParseUint(strings.TrimSpace(s), 10, 16); err == nil {
			out = append(out, uint16(p))
		}
	}
	return out
}
