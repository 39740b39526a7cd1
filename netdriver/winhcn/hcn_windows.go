//go:build windows

package winhcn

import (
	"encoding/json"
	"fmt"

	"github.com/Microsoft/hcsshim/hcn"
)

// The conversions below copy the mirrors into hcn's types field by field, so
// that the compiler checks every name. HNS's answers come back through JSON
// (mirrorOf), whose names the golden tests and hcn_windows_test.go pin.

func hcnNetwork(n HostComputeNetwork) (*hcn.HostComputeNetwork, error) {
	policies := make([]hcn.NetworkPolicy, len(n.Policies))
	for i, p := range n.Policies {
		s, err := hcnSettings(p.Settings)
		if err != nil {
			return nil, fmt.Errorf("network policy %s: %w", p.Type, err)
		}
		policies[i] = hcn.NetworkPolicy{Type: hcn.NetworkPolicyType(p.Type), Settings: s}
	}
	ipams := make([]hcn.Ipam, len(n.Ipams))
	for i, ip := range n.Ipams {
		ipams[i] = hcn.Ipam{Type: ip.Type, Subnets: make([]hcn.Subnet, len(ip.Subnets))}
		for j, s := range ip.Subnets {
			ipams[i].Subnets[j] = hcn.Subnet{
				IpAddressPrefix: s.IpAddressPrefix,
				Policies:        s.Policies,
				Routes:          hcnRoutes(s.Routes),
				Flags:           hcn.SubnetFlags(s.Flags),
			}
		}
	}
	ranges := make([]hcn.MacRange, len(n.MacPool.Ranges))
	for i, r := range n.MacPool.Ranges {
		ranges[i] = hcn.MacRange{StartMacAddress: r.StartMacAddress, EndMacAddress: r.EndMacAddress}
	}
	return &hcn.HostComputeNetwork{
		Id:            n.Id,
		Name:          n.Name,
		Type:          hcn.NetworkType(n.Type),
		Policies:      policies,
		MacPool:       hcn.MacPool{Ranges: ranges},
		Dns:           hcnDNS(n.Dns),
		Ipams:         ipams,
		Flags:         hcn.NetworkFlags(n.Flags),
		Health:        hcnHealth(n.Health),
		SchemaVersion: hcn.SchemaVersion{Major: n.SchemaVersion.Major, Minor: n.SchemaVersion.Minor},
	}, nil
}

func hcnEndpoint(e HostComputeEndpoint) (*hcn.HostComputeEndpoint, error) {
	policies := make([]hcn.EndpointPolicy, len(e.Policies))
	for i, p := range e.Policies {
		s, err := hcnSettings(p.Settings)
		if err != nil {
			return nil, fmt.Errorf("endpoint policy %s: %w", p.Type, err)
		}
		policies[i] = hcn.EndpointPolicy{Type: hcn.EndpointPolicyType(p.Type), Settings: s}
	}
	ipcs := make([]hcn.IpConfig, len(e.IpConfigurations))
	for i, c := range e.IpConfigurations {
		ipcs[i] = hcn.IpConfig{IpAddress: c.IpAddress, PrefixLength: c.PrefixLength}
	}
	return &hcn.HostComputeEndpoint{
		Id:                   e.Id,
		Name:                 e.Name,
		HostComputeNetwork:   e.HostComputeNetwork,
		HostComputeNamespace: e.HostComputeNamespace,
		Policies:             policies,
		IpConfigurations:     ipcs,
		Dns:                  hcnDNS(e.Dns),
		Routes:               hcnRoutes(e.Routes),
		MacAddress:           e.MacAddress,
		Flags:                hcn.EndpointFlags(e.Flags),
		Health:               hcnHealth(e.Health),
		SchemaVersion:        hcn.SchemaVersion{Major: e.SchemaVersion.Major, Minor: e.SchemaVersion.Minor},
	}, nil
}

func hcnRoutes(rs []Route) []hcn.Route {
	out := make([]hcn.Route, len(rs))
	for i, r := range rs {
		out[i] = hcn.Route{NextHop: r.NextHop, DestinationPrefix: r.DestinationPrefix, Metric: r.Metric}
	}
	return out
}

func hcnDNS(d Dns) hcn.Dns {
	return hcn.Dns{Domain: d.Domain, Search: d.Search, ServerList: d.ServerList, Options: d.Options}
}

func hcnHealth(h Health) hcn.Health {
	x := h.Extra
	return hcn.Health{Data: h.Data, Extra: hcn.ExtraParams{
		Resources:        x.Resources,
		SharedContainers: x.SharedContainers,
		LayeredOn:        x.LayeredOn,
		SwitchGuid:       x.SwitchGuid,
		UtilityVM:        x.UtilityVM,
		VirtualMachine:   x.VirtualMachine,
	}}
}

// hcnSettings marshals a mirror policy setting through hcn's own settings
// type.
func hcnSettings(s any) (json.RawMessage, error) {
	var v any
	switch s := s.(type) {
	case nil:
		return nil, nil
	case json.RawMessage:
		return s, nil
	case *NetAdapterNameNetworkPolicySetting:
		v = hcn.NetAdapterNameNetworkPolicySetting{NetworkAdapterName: s.NetworkAdapterName}
	case *OutboundNatPolicySetting:
		v = hcn.OutboundNatPolicySetting{
			VirtualIP:        s.VirtualIP,
			Exceptions:       s.Exceptions,
			Destinations:     s.Destinations,
			Flags:            hcn.NatFlags(s.Flags),
			MaxPortPoolUsage: s.MaxPortPoolUsage,
		}
	case *SDNRoutePolicySetting:
		v = hcn.SDNRoutePolicySetting{DestinationPrefix: s.DestinationPrefix, NextHop: s.NextHop, NeedEncap: s.NeedEncap}
	case *AclPolicySetting:
		v = hcn.AclPolicySetting{
			Protocols:       s.Protocols,
			Action:          hcn.ActionType(s.Action),
			Direction:       hcn.DirectionType(s.Direction),
			LocalAddresses:  s.LocalAddresses,
			RemoteAddresses: s.RemoteAddresses,
			LocalPorts:      s.LocalPorts,
			RemotePorts:     s.RemotePorts,
			RuleType:        hcn.RuleType(s.RuleType),
			Priority:        s.Priority,
		}
	case *PortMappingPolicySetting:
		v = hcn.PortMappingPolicySetting{
			Protocol:     s.Protocol,
			InternalPort: s.InternalPort,
			ExternalPort: s.ExternalPort,
			VIP:          s.VIP,
			Flags:        hcn.NatFlags(s.Flags),
		}
	default:
		return nil, fmt.Errorf("settings of type %T", s)
	}
	return json.Marshal(v)
}

// mirrorOf reads one of hcn's values into its mirror through JSON.
func mirrorOf[M any](v any) (M, error) {
	var m M
	b, err := json.Marshal(v)
	if err == nil {
		err = json.Unmarshal(b, &m)
	}
	return m, err
}
