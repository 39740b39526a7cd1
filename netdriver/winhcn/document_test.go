package winhcn

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/berthhq/berth/netdriver"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const networkID = "5e7c1a2b-3d4f-4a6b-8c9d-0e1f2a3b4c5d"

var (
	clusterCIDR = netip.MustParsePrefix("10.200.0.0/16")
	dnsServer   = netip.MustParseAddr("10.200.0.2")
)

// networkCases are the network specs pinned by golden files in testdata.
func networkCases() map[string]netdriver.NetworkSpec {
	return map[string]netdriver.NetworkSpec{
		"network_transparent": {
			Name: "berth-overlay", Type: netdriver.Transparent, Adapter: "Ethernet 2",
			Subnet: netip.MustParsePrefix("192.168.40.0/24"), Gateway: netip.MustParseAddr("192.168.40.1"),
			DNS: netdriver.DNS{Servers: []netip.Addr{netip.MustParseAddr("192.168.40.2"), netip.MustParseAddr("192.168.40.3")}},
		},
		"network_l2bridge": {
			Name: "berth-overlay", Type: netdriver.L2Bridge, Adapter: "Ethernet",
			Subnet: netip.MustParsePrefix("10.200.1.0/24"), Gateway: netip.MustParseAddr("10.200.1.1"),
			DNS: netdriver.DNS{Servers: []netip.Addr{dnsServer}, Domain: "service.local", Search: []string{"service.local"}},
		},
		"network_nat": {
			Name: "berth-nat", Type: netdriver.NAT,
			Subnet: netip.MustParsePrefix("172.30.0.0/20"), Gateway: netip.MustParseAddr("172.30.0.1"),
		},
	}
}

func baseEndpoint() netdriver.EndpointSpec {
	return netdriver.EndpointSpec{
		Name:      "berth-web-1",
		Network:   networkID,
		IP:        netip.MustParseAddr("10.200.1.18"),
		PrefixLen: 24,
		Gateway:   netip.MustParseAddr("10.200.1.1"),
	}
}

// endpointCases are the endpoint specs pinned by golden files in testdata:
// DNS, each policy kind alone, and the endpoint berth makes on an L2Bridge
// network with all of them.
func endpointCases() map[string]netdriver.EndpointSpec {
	dns := netdriver.DNS{Servers: []netip.Addr{dnsServer}, Domain: "service.local", Search: []string{"service.local", "corp.example"}}
	nat := &netdriver.OutboundNAT{Exceptions: []netip.Prefix{clusterCIDR, netip.MustParsePrefix("192.168.40.0/24")}}
	routes := []netdriver.SDNRoute{{DestinationPrefix: clusterCIDR, NeedEncap: true}, {DestinationPrefix: netip.MustParsePrefix("10.201.0.0/16")}}
	acls := []netdriver.ACL{
		{Action: netdriver.Allow, Direction: netdriver.In, Protocol: netdriver.TCP, LocalPorts: []uint16{80, 443},
			RemoteAddresses: []netip.Prefix{clusterCIDR}, Priority: 200},
		{Action: netdriver.Block, Direction: netdriver.Out, Protocol: netdriver.ICMP,
			LocalAddresses: []netip.Prefix{netip.MustParsePrefix("10.200.1.18/32")}, Priority: 300},
		{Action: netdriver.Allow, Direction: netdriver.Out, Protocol: netdriver.UDP, RemotePorts: []uint16{53}},
		{Action: netdriver.Block, Direction: netdriver.In},
	}
	ports := []netdriver.PortMapping{
		{Protocol: netdriver.TCP, InternalPort: 80, ExternalPort: 8080},
		{Protocol: netdriver.UDP, InternalPort: 53, ExternalPort: 5353},
	}
	cases := map[string]func(*netdriver.EndpointSpec){
		"endpoint_minimal":     func(e *netdriver.EndpointSpec) { e.Gateway = netip.Addr{} },
		"endpoint_dns":         func(e *netdriver.EndpointSpec) { e.DNS = dns },
		"endpoint_outboundnat": func(e *netdriver.EndpointSpec) { e.Policies.OutboundNAT = nat },
		"endpoint_sdnroute":    func(e *netdriver.EndpointSpec) { e.Policies.SDNRoutes = routes },
		"endpoint_acl":         func(e *netdriver.EndpointSpec) { e.Policies.ACLs = acls },
		"endpoint_portmapping": func(e *netdriver.EndpointSpec) { e.Policies.PortMappings = ports },
		"endpoint_l2bridge": func(e *netdriver.EndpointSpec) {
			e.DNS = dns
			e.Policies = netdriver.Policies{OutboundNAT: nat, SDNRoutes: routes[:1], ACLs: acls[:1], PortMappings: ports}
		},
	}
	out := map[string]netdriver.EndpointSpec{}
	for name, change := range cases {
		e := baseEndpoint()
		change(&e)
		out[name] = e
	}
	return out
}

// golden compares got, marshalled as indented JSON, with
// testdata/name.json, or rewrites the file under -update.
func golden(t *testing.T, name string, got any) {
	t.Helper()
	b, err := json.MarshalIndent(got, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	b = append(b, '\n')
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(b, want) {
		t.Errorf("%s differs from the golden file:\n--- got\n%s--- want\n%s", path, b, want)
	}
}

// readGolden decodes testdata/name.json into a document, as HNS's answer
// would be decoded.
func readGolden[T any](t *testing.T, name string) T {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var doc T
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	return doc
}

func TestNetworkDocuments(t *testing.T) {
	for name, spec := range networkCases() {
		t.Run(name, func(t *testing.T) {
			doc, err := NetworkDocument(spec)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name, doc)
			back := readGolden[HostComputeNetwork](t, name)
			if !reflect.DeepEqual(back, doc) {
				t.Errorf("decoded golden file differs:\n got  %+v\n want %+v", back, doc)
			}
			read := NetworkFromDocument(back)
			if !reflect.DeepEqual(read.NetworkSpec, spec) {
				t.Errorf("NetworkFromDocument:\n got  %+v\n want %+v", read.NetworkSpec, spec)
			}
			if err := spec.Mismatch(read); err != nil {
				t.Errorf("the network read back does not match its spec: %v", err)
			}
		})
	}
}

func TestEndpointDocuments(t *testing.T) {
	for name, spec := range endpointCases() {
		t.Run(name, func(t *testing.T) {
			doc, err := EndpointDocument(spec)
			if err != nil {
				t.Fatal(err)
			}
			golden(t, name, doc)
			back := readGolden[HostComputeEndpoint](t, name)
			if !reflect.DeepEqual(back, doc) {
				t.Errorf("decoded golden file differs:\n got  %+v\n want %+v", back, doc)
			}
			if read := EndpointFromDocument(back); !reflect.DeepEqual(read.EndpointSpec, spec) {
				t.Errorf("EndpointFromDocument:\n got  %+v\n want %+v", read.EndpointSpec, spec)
			}
		})
	}
}

func TestDocumentsRejectInvalidSpecs(t *testing.T) {
	nat := networkCases()["network_nat"]
	nat.Adapter = "Ethernet"
	if _, err := NetworkDocument(nat); !errors.Is(err, netdriver.ErrInvalidSpec) {
		t.Errorf("NetworkDocument(nat with adapter) = %v, want ErrInvalidSpec", err)
	}
	ep := baseEndpoint()
	ep.Policies.PortMappings = []netdriver.PortMapping{
		{Protocol: netdriver.TCP, InternalPort: 80, ExternalPort: 8080},
		{Protocol: netdriver.TCP, InternalPort: 81, ExternalPort: 8080},
	}
	if _, err := EndpointDocument(ep); !errors.Is(err, netdriver.ErrInvalidSpec) {
		t.Errorf("EndpointDocument(port mapped twice) = %v, want ErrInvalidSpec", err)
	}
}

// An answer shaped like HNS's: extra fields, a policy berth does not make,
// addresses without prefix lengths in policies, an IPv6 configuration first.
const hnsEndpoint = `{
  "ID": "0f6b2c1a-8e7d-4c3b-9a2f-1e0d9c8b7a65",
  "Name": "berth-web-1",
  "HostComputeNetwork": "5e7c1a2b-3d4f-4a6b-8c9d-0e1f2a3b4c5d",
  "HostComputeNamespace": "9a8b7c6d-5e4f-4a3b-2c1d-0e9f8a7b6c5d",
  "Policies": [
    {"Type": "L2Driver", "Settings": {"Type": "VLAN", "Value": 7}},
    {"Type": "OutBoundNAT", "Settings": {"Exceptions": ["10.200.0.0/16", "192.168.40.9"]}},
    {"Type": "ACL", "Settings": {"Protocols": "6", "Action": "Allow", "Direction": "In", "LocalPorts": "80, 443", "RuleType": "Switch", "Priority": 200}},
    {"Type": "ACL", "Settings": {"Protocols": "47", "Action": "Allow", "Direction": "In"}},
    {"Type": "PortMapping", "Settings": {"Protocol": 6, "InternalPort": 80, "ExternalPort": 8080, "Flags": 2}},
    {"Type": "SDNRoute", "Settings": "not an object"}
  ],
  "IpConfigurations": [{"IpAddress": "fd00::12", "PrefixLength": 64}, {"IpAddress": "10.200.1.18", "PrefixLength": 24}],
  "Dns": {"ServerList": ["10.200.0.2", "bogus"], "Domain": "service.local"},
  "Routes": [{"NextHop": "10.200.1.1", "DestinationPrefix": "0.0.0.0/0", "Metric": 5}],
  "MacAddress": "00-15-5D-12-34-56",
  "Health": {"Extra": {"SharedContainers": ["web-1"]}},
  "SchemaVersion": {"Major": 2, "Minor": 0}
}`

func TestEndpointFromHNSAnswer(t *testing.T) {
	var doc HostComputeEndpoint
	if err := json.Unmarshal([]byte(hnsEndpoint), &doc); err != nil {
		t.Fatal(err)
	}
	if raw, ok := doc.Policies[0].Settings.(json.RawMessage); !ok || !json.Valid(raw) {
		t.Errorf("unknown policy settings = %#v, want the raw JSON", doc.Policies[0].Settings)
	}
	got := EndpointFromDocument(doc)
	want := netdriver.Endpoint{ID: "0f6b2c1a-8e7d-4c3b-9a2f-1e0d9c8b7a65", EndpointSpec: baseEndpoint()}
	want.DNS = netdriver.DNS{Servers: []netip.Addr{dnsServer}, Domain: "service.local"}
	want.Policies = netdriver.Policies{
		OutboundNAT:  &netdriver.OutboundNAT{Exceptions: []netip.Prefix{clusterCIDR, netip.MustParsePrefix("192.168.40.9/32")}},
		ACLs:         []netdriver.ACL{{Action: netdriver.Allow, Direction: netdriver.In, Protocol: netdriver.TCP, LocalPorts: []uint16{80, 443}, Priority: 200}},
		PortMappings: []netdriver.PortMapping{{Protocol: netdriver.TCP, InternalPort: 80, ExternalPort: 8080}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("EndpointFromDocument:\n got  %+v\n want %+v", got, want)
	}
}

func TestNetworkFromHNSAnswer(t *testing.T) {
	// HNS reports the default NAT network with its own type and no adapter.
	const answer = `{"ID": "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9", "Name": "nat", "Type": "ICS",
	  "Ipams": [{"Type": "Static", "Subnets": [{"IpAddressPrefix": "fd00::/64"},
	    {"IpAddressPrefix": "172.22.160.0/20", "Routes": [{"NextHop": "172.22.160.1", "DestinationPrefix": "0.0.0.0/0"}]}]}],
	  "Policies": [{"Type": "NetAdapterName", "Settings": {"NetworkAdapterName": "vEthernet (nat)"}}],
	  "Flags": 8}`
	var doc HostComputeNetwork
	if err := json.Unmarshal([]byte(answer), &doc); err != nil {
		t.Fatal(err)
	}
	got := NetworkFromDocument(doc)
	want := netdriver.Network{ID: "f1e2d3c4-b5a6-4978-8695-a4b3c2d1e0f9", NetworkSpec: netdriver.NetworkSpec{
		Name: "nat", Type: "ics", Adapter: "vEthernet (nat)",
		Subnet: netip.MustParsePrefix("172.22.160.0/20"), Gateway: netip.MustParseAddr("172.22.160.1"),
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("NetworkFromDocument:\n got  %+v\n want %+v", got, want)
	}
	spec := want.NetworkSpec
	spec.Type, spec.Adapter = netdriver.NAT, ""
	if err := spec.Mismatch(got); !errors.Is(err, netdriver.ErrAlreadyExists) {
		t.Errorf("Mismatch with another type = %v, want ErrAlreadyExists", err)
	}
}
