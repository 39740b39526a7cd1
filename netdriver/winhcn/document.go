package winhcn

import "encoding/json"

// The types below mirror hcsshim/hcn v0.15.0 (hcnnetwork.go, hcnendpoint.go,
// hcnpolicy.go, hcn.go): the same Go field names, order, types and JSON tags,
// so that they marshal to the bytes hcn sends to HNS. hcn itself builds on
// Windows only; these build everywhere, so the documents berth sends are
// pinned by golden files on every OS. The Windows side copies them into hcn's
// types field by field (hcn_windows.go), which lets the compiler check every
// name, and a Windows test checks that both marshal alike.

// SchemaVersion mirrors hcn.SchemaVersion.
type SchemaVersion struct {
	Major int `json:"Major"`
	Minor int `json:"Minor"`
}

// schemaV2 is hcn.V2SchemaVersion().
var schemaV2 = SchemaVersion{Major: 2, Minor: 0}

// HostComputeNetwork mirrors hcn.HostComputeNetwork.
type HostComputeNetwork struct {
	Id            string          `json:"ID,omitempty"`
	Name          string          `json:",omitempty"`
	Type          string          `json:",omitempty"` // hcn.NetworkType: "NAT", "Transparent", "L2Bridge", ...
	Policies      []NetworkPolicy `json:",omitempty"`
	MacPool       MacPool         `json:",omitempty"`
	Dns           Dns             `json:",omitempty"`
	Ipams         []Ipam          `json:",omitempty"`
	Flags         uint32          `json:",omitempty"` // hcn.NetworkFlags
	Health        Health          `json:",omitempty"`
	SchemaVersion SchemaVersion   `json:",omitempty"`
}

// MacPool mirrors hcn.MacPool.
type MacPool struct {
	Ranges []MacRange `json:",omitempty"`
}

// MacRange mirrors hcn.MacRange.
type MacRange struct {
	StartMacAddress string `json:",omitempty"`
	EndMacAddress   string `json:",omitempty"`
}

// Dns mirrors hcn.Dns.
type Dns struct {
	Domain     string   `json:",omitempty"`
	Search     []string `json:",omitempty"`
	ServerList []string `json:",omitempty"`
	Options    []string `json:",omitempty"`
}

// Ipam mirrors hcn.Ipam.
type Ipam struct {
	Type    string   `json:",omitempty"` // "Static" or "DHCP"
	Subnets []Subnet `json:",omitempty"`
}

// Subnet mirrors hcn.Subnet.
type Subnet struct {
	IpAddressPrefix string            `json:",omitempty"`
	Policies        []json.RawMessage `json:",omitempty"`
	Routes          []Route           `json:",omitempty"`
	Flags           uint32            `json:",omitempty"` // hcn.SubnetFlags
}

// Route mirrors hcn.Route.
type Route struct {
	NextHop           string `json:",omitempty"`
	DestinationPrefix string `json:",omitempty"`
	Metric            uint16 `json:",omitempty"`
}

// Health mirrors hcn.Health, which HNS fills in its answers.
type Health struct {
	Data  any         `json:",omitempty"`
	Extra ExtraParams `json:",omitempty"`
}

// ExtraParams mirrors hcn.ExtraParams.
type ExtraParams struct {
	Resources        json.RawMessage `json:",omitempty"`
	SharedContainers json.RawMessage `json:",omitempty"`
	LayeredOn        string          `json:",omitempty"`
	SwitchGuid       string          `json:",omitempty"`
	UtilityVM        string          `json:",omitempty"`
	VirtualMachine   string          `json:",omitempty"`
}

// HostComputeEndpoint mirrors hcn.HostComputeEndpoint.
type HostComputeEndpoint struct {
	Id                   string           `json:"ID,omitempty"`
	Name                 string           `json:",omitempty"`
	HostComputeNetwork   string           `json:",omitempty"` // network id
	HostComputeNamespace string           `json:",omitempty"` // read-only
	Policies             []EndpointPolicy `json:",omitempty"`
	IpConfigurations     []IpConfig       `json:",omitempty"`
	Dns                  Dns              `json:",omitempty"`
	Routes               []Route          `json:",omitempty"`
	MacAddress           string           `json:",omitempty"`
	Flags                uint32           `json:",omitempty"` // hcn.EndpointFlags
	Health               Health           `json:",omitempty"`
	SchemaVersion        SchemaVersion    `json:",omitempty"`
}

// IpConfig mirrors hcn.IpConfig.
type IpConfig struct {
	IpAddress    string `json:",omitempty"`
	PrefixLength uint8  `json:",omitempty"`
}

// NetworkPolicy mirrors hcn.NetworkPolicy. Settings holds one of the
// *Setting types below (hcn keeps them as raw JSON); it marshals as that
// value.
type NetworkPolicy struct {
	Type     string `json:""` // hcn.NetworkPolicyType
	Settings any    `json:",omitempty"`
}

// EndpointPolicy mirrors hcn.EndpointPolicy; see NetworkPolicy.
type EndpointPolicy struct {
	Type     string `json:""` // hcn.EndpointPolicyType
	Settings any    `json:",omitempty"`
}

// Policy type names, as hcn spells them.
const (
	policyNetAdapterName = "NetAdapterName" // hcn.NetAdapterName (network)
	policyOutBoundNAT    = "OutBoundNAT"    // hcn.OutBoundNAT
	policySDNRoute       = "SDNRoute"       // hcn.SDNRoute
	policyACL            = "ACL"            // hcn.ACL
	policyPortMapping    = "PortMapping"    // hcn.PortMapping
)

// NetAdapterNameNetworkPolicySetting mirrors hcn's.
type NetAdapterNameNetworkPolicySetting struct {
	NetworkAdapterName string `json:",omitempty"`
}

// OutboundNatPolicySetting mirrors hcn's.
type OutboundNatPolicySetting struct {
	VirtualIP        string   `json:",omitempty"`
	Exceptions       []string `json:",omitempty"`
	Destinations     []string `json:",omitempty"`
	Flags            uint32   `json:",omitempty"` // hcn.NatFlags
	MaxPortPoolUsage uint16   `json:",omitempty"`
}

// SDNRoutePolicySetting mirrors hcn's.
type SDNRoutePolicySetting struct {
	DestinationPrefix string `json:",omitempty"`
	NextHop           string `json:",omitempty"`
	NeedEncap         bool   `json:",omitempty"`
}

// AclPolicySetting mirrors hcn's.
type AclPolicySetting struct {
	Protocols       string `json:",omitempty"` // "6" (TCP), "17" (UDP), "1" (ICMPv4)
	Action          string `json:""`           // hcn.ActionType: "Allow", "Block"
	Direction       string `json:""`           // hcn.DirectionType: "In", "Out"
	LocalAddresses  string `json:",omitempty"`
	RemoteAddresses string `json:",omitempty"`
	LocalPorts      string `json:",omitempty"`
	RemotePorts     string `json:",omitempty"`
	RuleType        string `json:",omitempty"` // hcn.RuleType: "Switch" (VFP) or "Host" (WFP)
	Priority        uint16 `json:",omitempty"`
}

// PortMappingPolicySetting mirrors hcn's.
type PortMappingPolicySetting struct {
	Protocol     uint32 `json:",omitempty"` // 6 (TCP), 17 (UDP)
	InternalPort uint16 `json:",omitempty"`
	ExternalPort uint16 `json:",omitempty"`
	VIP          string `json:",omitempty"`
	Flags        uint32 `json:",omitempty"` // hcn.NatFlags
}

// decodeSetting decodes the raw settings of a policy of type typ into its
// *Setting type. Unknown types, which HNS may report on its own, and settings
// that do not decode keep their raw JSON.
func decodeSetting(typ string, raw json.RawMessage) any {
	var v any
	switch typ {
	case policyNetAdapterName:
		v = new(NetAdapterNameNetworkPolicySetting)
	case policyOutBoundNAT:
		v = new(OutboundNatPolicySetting)
	case policySDNRoute:
		v = new(SDNRoutePolicySetting)
	case policyACL:
		v = new(AclPolicySetting)
	case policyPortMapping:
		v = new(PortMappingPolicySetting)
	default:
		return raw
	}
	if len(raw) > 0 && json.Unmarshal(raw, v) != nil {
		return raw
	}
	return v
}

type rawPolicy struct {
	Type     string
	Settings json.RawMessage
}

// UnmarshalJSON decodes Settings into the *Setting type that Type names.
func (p *NetworkPolicy) UnmarshalJSON(b []byte) error {
	var r rawPolicy
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	*p = NetworkPolicy{Type: r.Type, Settings: decodeSetting(r.Type, r.Settings)}
	return nil
}

// UnmarshalJSON decodes Settings into the *Setting type that Type names.
func (p *EndpointPolicy) UnmarshalJSON(b []byte) error {
	var r rawPolicy
	if err := json.Unmarshal(b, &r); err != nil {
		return err
	}
	*p = EndpointPolicy{Type: r.Type, Settings: decodeSetting(r.Type, r.Settings)}
	return nil
}
