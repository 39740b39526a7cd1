package netdriver

import (
	"fmt"
	"net/netip"
	"strings"
	"unicode"
)

// maxNameLen bounds network and endpoint names and ids.
const maxNameLen = 256

// Validate checks the spec without consulting the host and returns an
// ErrInvalidSpec error naming the first field at fault. A Transparent or
// L2Bridge network needs an adapter; a NAT network takes none.
func (s NetworkSpec) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: network %q: %s: %s", ErrInvalidSpec, s.Name, field, fmt.Sprintf(format, a...))
	}
	if err := checkName(s.Name); err != nil {
		return bad("name", "%v", err)
	}
	switch s.Type {
	case NAT:
		if s.Adapter != "" {
			return bad("adapter", "a nat network binds to no adapter, got %q", s.Adapter)
		}
	case L2Bridge, Transparent:
		if err := checkName(s.Adapter); err != nil {
			return bad("adapter", "a %s network needs the physical adapter's name: %v", s.Type, err)
		}
	default:
		return bad("type", "%q is not one of %s, %s, %s", s.Type, NAT, L2Bridge, Transparent)
	}
	if err := checkSubnet(s.Subnet); err != nil {
		return bad("subnet", "%v", err)
	}
	if err := checkHost(s.Gateway, s.Subnet); err != nil {
		return bad("gateway", "%v", err)
	}
	if err := s.DNS.check(); err != nil {
		return bad("dns", "%v", err)
	}
	return nil
}

// Mismatch compares spec with an existing network of the same name and
// returns nil when the network can be adopted: same type, subnet and gateway,
// and the same adapter when the host reports one. Otherwise it returns an
// ErrAlreadyExists error naming every difference. DNS defaults are not
// compared: endpoints carry their own.
func (s NetworkSpec) Mismatch(n Network) error {
	var diffs []string
	diff := func(field string, have, want any) {
		diffs = append(diffs, fmt.Sprintf("%s %v, want %v", field, have, want))
	}
	if n.Name != s.Name {
		diff("name", n.Name, s.Name)
	}
	if n.Type != s.Type {
		diff("type", n.Type, s.Type)
	}
	if n.Subnet != s.Subnet {
		diff("subnet", n.Subnet, s.Subnet)
	}
	if n.Gateway != s.Gateway {
		diff("gateway", n.Gateway, s.Gateway)
	}
	if n.Adapter != "" && n.Adapter != s.Adapter {
		diff("adapter", fmt.Sprintf("%q", n.Adapter), fmt.Sprintf("%q", s.Adapter))
	}
	if diffs == nil {
		return nil
	}
	return fmt.Errorf("%w: network %q (%s) has %s", ErrAlreadyExists, s.Name, n.ID, strings.Join(diffs, "; "))
}

// Validate checks the spec without consulting the host and returns an
// ErrInvalidSpec error naming the first field at fault: the address must be
// an IPv4 host address of its prefix, the gateway inside that prefix, and no
// host port may be mapped twice.
func (s EndpointSpec) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: endpoint %q: %s: %s", ErrInvalidSpec, s.Name, field, fmt.Sprintf(format, a...))
	}
	if err := checkName(s.Name); err != nil {
		return bad("name", "%v", err)
	}
	if err := checkName(s.Network); err != nil {
		return bad("network", "%v", err)
	}
	if !s.IP.Is4() {
		return bad("ip", "%v is not an IPv4 address", s.IP)
	}
	if s.PrefixLen < 1 || s.PrefixLen > 32 {
		return bad("prefix_len", "%d is outside 1..32", s.PrefixLen)
	}
	subnet := netip.PrefixFrom(s.IP, s.PrefixLen).Masked()
	if err := checkHost(s.IP, subnet); err != nil {
		return bad("ip", "%v", err)
	}
	if s.Gateway.IsValid() {
		if err := checkHost(s.Gateway, subnet); err != nil {
			return bad("gateway", "%v", err)
		}
		if s.Gateway == s.IP {
			return bad("gateway", "%v is the endpoint's own address", s.Gateway)
		}
	}
	if err := s.DNS.check(); err != nil {
		return bad("dns", "%v", err)
	}
	p := s.Policies
	if p.OutboundNAT != nil {
		for i, e := range p.OutboundNAT.Exceptions {
			if err := checkPrefix(e); err != nil {
				return bad(fmt.Sprintf("policies.outbound_nat.exceptions[%d]", i), "%v", err)
			}
		}
	}
	for i, r := range p.SDNRoutes {
		if err := checkPrefix(r.DestinationPrefix); err != nil {
			return bad(fmt.Sprintf("policies.sdn_routes[%d].destination_prefix", i), "%v", err)
		}
	}
	for i, a := range p.ACLs {
		if err := a.check(); err != nil {
			return bad(fmt.Sprintf("policies.acls[%d]", i), "%v", err)
		}
	}
	if err := checkPorts(p.PortMappings); err != nil {
		return bad("policies.port_mappings", "%v", err)
	}
	return nil
}

func (a ACL) check() error {
	switch a.Action {
	case Allow, Block:
	default:
		return fmt.Errorf("action %q is not one of %s, %s", a.Action, Allow, Block)
	}
	switch a.Direction {
	case In, Out:
	default:
		return fmt.Errorf("direction %q is not one of %s, %s", a.Direction, In, Out)
	}
	switch a.Protocol {
	case TCP, UDP:
	case "", ICMP:
		if len(a.LocalPorts)+len(a.RemotePorts) > 0 {
			return fmt.Errorf("ports need protocol %s or %s", TCP, UDP)
		}
	default:
		return fmt.Errorf("protocol %q is not one of %s, %s, %s", a.Protocol, TCP, UDP, ICMP)
	}
	for _, p := range append(append([]uint16{}, a.LocalPorts...), a.RemotePorts...) {
		if p == 0 {
			return fmt.Errorf("port 0 is not a port")
		}
	}
	for _, p := range append(append([]netip.Prefix{}, a.LocalAddresses...), a.RemoteAddresses...) {
		if err := checkPrefix(p); err != nil {
			return err
		}
	}
	return nil
}

// checkPorts checks each mapping and that no host port is mapped twice.
func checkPorts(ports []PortMapping) error {
	seen := make(map[string]int, len(ports))
	for i, p := range ports {
		if p.Protocol != TCP && p.Protocol != UDP {
			return fmt.Errorf("[%d]: protocol %q is not one of %s, %s", i, p.Protocol, TCP, UDP)
		}
		if p.InternalPort == 0 || p.ExternalPort == 0 {
			return fmt.Errorf("[%d]: ports must be in 1..65535", i)
		}
		key := portKey(p.Protocol, p.ExternalPort)
		if j, dup := seen[key]; dup {
			return fmt.Errorf("[%d]: host port %s is mapped twice (also by [%d])", i, key, j)
		}
		seen[key] = i
	}
	return nil
}

func portKey(proto Protocol, port uint16) string { return fmt.Sprintf("%d/%s", port, proto) }

func (d DNS) check() error {
	for i, a := range d.Servers {
		if !a.IsValid() || a.IsUnspecified() {
			return fmt.Errorf("servers[%d]: %v is not a server address", i, a)
		}
	}
	if err := checkDomain(d.Domain, true); err != nil {
		return fmt.Errorf("domain: %w", err)
	}
	for i, s := range d.Search {
		if err := checkDomain(s, false); err != nil {
			return fmt.Errorf("search[%d]: %w", i, err)
		}
	}
	return nil
}

func checkDomain(s string, emptyOK bool) error {
	switch {
	case s == "" && emptyOK:
		return nil
	case s == "" || len(s) > 253:
		return fmt.Errorf("%q is not a domain name (1..253 characters)", s)
	case strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || r == ',' || !unicode.IsPrint(r) }) >= 0:
		return fmt.Errorf("%q is not a domain name (spaces, commas or control characters)", s)
	}
	return nil
}

func checkName(s string) error {
	switch {
	case s == "":
		return fmt.Errorf("must not be empty")
	case len(s) > maxNameLen:
		return fmt.Errorf("longer than %d bytes", maxNameLen)
	case strings.IndexFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }) >= 0:
		return fmt.Errorf("%q contains control characters", s)
	}
	return nil
}

// checkPrefix accepts a valid prefix in canonical form, IPv4 or IPv6.
func checkPrefix(p netip.Prefix) error {
	switch {
	case !p.IsValid():
		return fmt.Errorf("%v is not a prefix", p)
	case p != p.Masked():
		return fmt.Errorf("%v has host bits set (the network is %v)", p, p.Masked())
	}
	return nil
}

// checkSubnet accepts a canonical IPv4 prefix with room for a gateway and at
// least one more host: /30 or wider.
func checkSubnet(p netip.Prefix) error {
	if err := checkPrefix(p); err != nil {
		return err
	}
	switch {
	case !p.Addr().Is4():
		return fmt.Errorf("%v is not IPv4: only IPv4 is supported", p)
	case p.Bits() > 30:
		return fmt.Errorf("%v is too small: /30 is the narrowest usable subnet", p)
	}
	return nil
}

// checkHost reports whether a is an IPv4 host address of subnet: inside it,
// and neither its network nor its broadcast address when the subnet has
// those (/30 and wider).
func checkHost(a netip.Addr, subnet netip.Prefix) error {
	switch {
	case !a.Is4():
		return fmt.Errorf("%v is not an IPv4 address", a)
	case !subnet.Contains(a):
		return fmt.Errorf("%v is outside %v", a, subnet)
	case subnet.Bits() <= 30 && a == subnet.Addr():
		return fmt.Errorf("%v is the network address of %v", a, subnet)
	case subnet.Bits() <= 30 && a == broadcast(subnet):
		return fmt.Errorf("%v is the broadcast address of %v", a, subnet)
	}
	return nil
}
