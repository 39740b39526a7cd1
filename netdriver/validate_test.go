package netdriver

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/berthhq/berth/events"
)

func validNetwork() NetworkSpec {
	return NetworkSpec{
		Name:    "berth-overlay",
		Type:    L2Bridge,
		Subnet:  netip.MustParsePrefix("10.200.1.0/24"),
		Gateway: netip.MustParseAddr("10.200.1.1"),
		Adapter: "Ethernet 2",
		DNS:     DNS{Servers: []netip.Addr{netip.MustParseAddr("10.200.0.2")}, Domain: "service.local"},
	}
}

func TestNetworkSpecValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*NetworkSpec)
		field  string // "" when valid
	}{
		{"valid l2bridge", func(*NetworkSpec) {}, ""},
		{"valid transparent", func(s *NetworkSpec) { s.Type = Transparent }, ""},
		{"valid nat", func(s *NetworkSpec) { s.Type, s.Adapter = NAT, "" }, ""},
		{"no name", func(s *NetworkSpec) { s.Name = "" }, "name"},
		{"control character in name", func(s *NetworkSpec) { s.Name = "a\nb" }, "name"},
		{"long name", func(s *NetworkSpec) { s.Name = strings.Repeat("n", maxNameLen+1) }, "name"},
		{"unknown type", func(s *NetworkSpec) { s.Type = "overlay" }, "type"},
		{"hcn spelling of type", func(s *NetworkSpec) { s.Type = "L2Bridge" }, "type"},
		{"transparent without adapter", func(s *NetworkSpec) { s.Type, s.Adapter = Transparent, "" }, "adapter"},
		{"nat with adapter", func(s *NetworkSpec) { s.Type = NAT }, "adapter"},
		{"no subnet", func(s *NetworkSpec) { s.Subnet = netip.Prefix{} }, "subnet"},
		{"subnet with host bits", func(s *NetworkSpec) { s.Subnet = netip.MustParsePrefix("10.200.1.7/24") }, "subnet"},
		{"ipv6 subnet", func(s *NetworkSpec) { s.Subnet = netip.MustParsePrefix("fd00::/64") }, "subnet"},
		{"gateway outside", func(s *NetworkSpec) { s.Gateway = netip.MustParseAddr("10.200.2.1") }, "gateway"},
		{"gateway is network address", func(s *NetworkSpec) { s.Gateway = netip.MustParseAddr("10.200.1.0") }, "gateway"},
		{"gateway is broadcast", func(s *NetworkSpec) { s.Gateway = netip.MustParseAddr("10.200.1.255") }, "gateway"},
		{"no gateway", func(s *NetworkSpec) { s.Gateway = netip.Addr{} }, "gateway"},
		{"unspecified dns server", func(s *NetworkSpec) { s.DNS.Servers = []netip.Addr{netip.IPv4Unspecified()} }, "dns"},
		{"domain with space", func(s *NetworkSpec) { s.DNS.Domain = "a b" }, "dns"},
		{"empty search entry", func(s *NetworkSpec) { s.DNS.Search = []string{""} }, "dns"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validNetwork()
			tt.change(&s)
			wantField(t, s.Validate(), tt.field)
		})
	}
}

// wantField checks a Validate result: nil when field is "", else an
// ErrInvalidSpec that names field.
func wantField(t *testing.T, err error, field string) {
	t.Helper()
	if field == "" {
		if err != nil {
			t.Fatalf("Validate: %v", err)
		}
		return
	}
	if !errors.Is(err, ErrInvalidSpec) {
		t.Fatalf("Validate = %v, want ErrInvalidSpec", err)
	}
	if !strings.Contains(err.Error(), ": "+field+": ") {
		t.Errorf("error %q does not name field %q", err, field)
	}
}

func TestNetworkSpecMismatch(t *testing.T) {
	spec := validNetwork()
	host := Network{ID: "2d5f9c1e-0000-4000-8000-000000000001", NetworkSpec: spec}
	if err := spec.Mismatch(host); err != nil {
		t.Fatalf("identical network: %v", err)
	}
	noAdapter := host
	noAdapter.Adapter = ""
	if err := spec.Mismatch(noAdapter); err != nil {
		t.Fatalf("host reporting no adapter: %v", err)
	}
	otherDNS := host
	otherDNS.DNS = DNS{}
	if err := spec.Mismatch(otherDNS); err != nil {
		t.Fatalf("other DNS defaults: %v", err)
	}
	differ := host
	differ.Type = Transparent
	differ.Subnet = netip.MustParsePrefix("10.200.0.0/16")
	differ.Adapter = "Ethernet 3"
	err := spec.Mismatch(differ)
	if !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("Mismatch = %v, want ErrAlreadyExists", err)
	}
	for _, s := range []string{"type transparent, want l2bridge", "subnet 10.200.0.0/16, want 10.200.1.0/24", `adapter "Ethernet 3", want "Ethernet 2"`, host.ID} {
		if !strings.Contains(err.Error(), s) {
			t.Errorf("error %q does not say %q", err, s)
		}
	}
	if strings.Contains(err.Error(), "gateway") {
		t.Errorf("error %q names the gateway, which matches", err)
	}
}

func validEndpoint() EndpointSpec {
	return EndpointSpec{
		Name:      "berth-web-1",
		Network:   "2d5f9c1e-0000-4000-8000-000000000001",
		IP:        netip.MustParseAddr("10.200.1.18"),
		PrefixLen: 24,
		Gateway:   netip.MustParseAddr("10.200.1.1"),
		DNS:       DNS{Servers: []netip.Addr{netip.MustParseAddr("10.200.0.2")}, Domain: "service.local", Search: []string{"service.local", "corp.local"}},
		Policies: Policies{
			OutboundNAT: &OutboundNAT{Exceptions: []netip.Prefix{netip.MustParsePrefix("10.200.0.0/16")}},
			SDNRoutes:   []SDNRoute{{DestinationPrefix: netip.MustParsePrefix("10.200.0.0/16"), NeedEncap: true}},
			ACLs: []ACL{
				{Action: Allow, Direction: In, Protocol: TCP, LocalPorts: []uint16{80, 443}, RemoteAddresses: []netip.Prefix{netip.MustParsePrefix("10.200.0.0/16")}, Priority: 200},
				{Action: Block, Direction: Out, Protocol: ICMP},
			},
			PortMappings: []PortMapping{{TCP, 80, 8080}, {UDP, 53, 8080}},
		},
	}
}

func TestEndpointSpecValidate(t *testing.T) {
	tests := []struct {
		name   string
		change func(*EndpointSpec)
		field  string
	}{
		{"valid", func(*EndpointSpec) {}, ""},
		{"bare", func(s *EndpointSpec) { s.Gateway, s.DNS, s.Policies = netip.Addr{}, DNS{}, Policies{} }, ""},
		{"host route", func(s *EndpointSpec) { s.PrefixLen, s.Gateway = 32, netip.Addr{} }, ""},
		{"no name", func(s *EndpointSpec) { s.Name = "" }, "name"},
		{"no network", func(s *EndpointSpec) { s.Network = "" }, "network"},
		{"no ip", func(s *EndpointSpec) { s.IP = netip.Addr{} }, "ip"},
		{"ipv6", func(s *EndpointSpec) { s.IP = netip.MustParseAddr("fd00::5") }, "ip"},
		{"prefix zero", func(s *EndpointSpec) { s.PrefixLen = 0 }, "prefix_len"},
		{"prefix 33", func(s *EndpointSpec) { s.PrefixLen = 33 }, "prefix_len"},
		{"network address", func(s *EndpointSpec) { s.IP = netip.MustParseAddr("10.200.1.0") }, "ip"},
		{"broadcast address", func(s *EndpointSpec) { s.IP = netip.MustParseAddr("10.200.1.255") }, "ip"},
		{"gateway outside", func(s *EndpointSpec) { s.Gateway = netip.MustParseAddr("10.200.2.1") }, "gateway"},
		{"gateway is self", func(s *EndpointSpec) { s.Gateway = s.IP }, "gateway"},
		{"bad dns", func(s *EndpointSpec) { s.DNS.Search = []string{"a,b"} }, "dns"},
		{"bad nat exception", func(s *EndpointSpec) { s.Policies.OutboundNAT.Exceptions = []netip.Prefix{{}} }, "policies.outbound_nat.exceptions[0]"},
		{"non-canonical route", func(s *EndpointSpec) {
			s.Policies.SDNRoutes[0].DestinationPrefix = netip.MustParsePrefix("10.200.3.4/16")
		}, "policies.sdn_routes[0].destination_prefix"},
		{"acl action", func(s *EndpointSpec) { s.Policies.ACLs[1].Action = "pass" }, "policies.acls[1]"},
		{"acl direction", func(s *EndpointSpec) { s.Policies.ACLs[0].Direction = "both" }, "policies.acls[0]"},
		{"acl protocol", func(s *EndpointSpec) { s.Policies.ACLs[0].Protocol = "gre" }, "policies.acls[0]"},
		{"acl ports without protocol", func(s *EndpointSpec) { s.Policies.ACLs[0].Protocol = "" }, "policies.acls[0]"},
		{"acl port zero", func(s *EndpointSpec) { s.Policies.ACLs[0].RemotePorts = []uint16{0} }, "policies.acls[0]"},
		{"port mapped twice", func(s *EndpointSpec) { s.Policies.PortMappings[1].Protocol = TCP }, "policies.port_mappings"},
		{"port protocol", func(s *EndpointSpec) { s.Policies.PortMappings[0].Protocol = "" }, "policies.port_mappings"},
		{"port zero", func(s *EndpointSpec) { s.Policies.PortMappings[0].InternalPort = 0 }, "policies.port_mappings"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := validEndpoint()
			tt.change(&s)
			wantField(t, s.Validate(), tt.field)
		})
	}
}

func TestClass(t *testing.T) {
	tests := []struct {
		err  error
		want error
	}{
		{nil, nil},
		{ErrNotFound, events.ErrNotFound},
		{ErrInvalidSpec, events.ErrInvalid},
		{ErrAlreadyExists, events.ErrConflict},
		{ErrAddressInUse, events.ErrConflict},
		{ErrSubnetConflict, events.ErrConflict},
		{ErrExhausted, events.ErrConflict},
		{ErrInUse, events.ErrConflict},
		{ErrUnavailable, events.ErrUnavailable},
		{errors.New("something else"), events.ErrInternal},
	}
	for _, tt := range tests {
		wrapped := tt.err
		if tt.err != nil {
			wrapped = fmt.Errorf("create endpoint %q: %w", "berth-web-1", tt.err)
		}
		if got := Class(wrapped); got != tt.want {
			t.Errorf("Class(%v) = %v, want %v", wrapped, got, tt.want)
		}
	}
}
