//go:build windows && integration

package winhcn

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/berthhq/berth/netdriver"
	"github.com/berthhq/berth/netdriver/netdrivertest"
)

// TestConformance runs the netdriver conformance suite against this host's
// HCN. It creates a network, so it runs only when told which:
//
//	BERTH_HCN_TYPE     nat, l2bridge or transparent (default nat)
//	BERTH_HCN_SUBNET   the network's subnet, e.g. 172.31.240.0/24 (required)
//	BERTH_HCN_GATEWAY  its gateway (default: the subnet's first address)
//	BERTH_HCN_ADAPTER  the physical adapter for l2bridge and transparent
//
// A transparent network takes the adapter over: the host loses connectivity
// for a few seconds when the suite creates it and again when it deletes it.
func TestConformance(t *testing.T) {
	subnet := os.Getenv("BERTH_HCN_SUBNET")
	if subnet == "" {
		t.Skip("set BERTH_HCN_SUBNET (and BERTH_HCN_TYPE, BERTH_HCN_GATEWAY, BERTH_HCN_ADAPTER) to run the HCN conformance suite; it creates and deletes a network on this host")
	}
	spec := netdriver.NetworkSpec{
		Name:    "berth-conformance",
		Type:    netdriver.NetworkType(strings.ToLower(os.Getenv("BERTH_HCN_TYPE"))),
		Adapter: os.Getenv("BERTH_HCN_ADAPTER"),
	}
	if spec.Type == "" {
		spec.Type = netdriver.NAT
	}
	var err error
	if spec.Subnet, err = netdriver.ParsePrefix("BERTH_HCN_SUBNET", subnet); err != nil {
		t.Fatal(err)
	}
	spec.Gateway = netdriver.Gateway(spec.Subnet)
	if g := os.Getenv("BERTH_HCN_GATEWAY"); g != "" {
		if spec.Gateway, err = netip.ParseAddr(g); err != nil {
			t.Fatalf("BERTH_HCN_GATEWAY: %v", err)
		}
	}
	var policies netdriver.Policies
	ports := []netdriver.PortMapping{{Protocol: netdriver.TCP, InternalPort: 80, ExternalPort: 18080}}
	switch spec.Type {
	case netdriver.NAT:
		policies.PortMappings = ports
	case netdriver.L2Bridge:
		policies = netdriver.Policies{
			OutboundNAT:  &netdriver.OutboundNAT{Exceptions: []netip.Prefix{spec.Subnet}},
			SDNRoutes:    []netdriver.SDNRoute{{DestinationPrefix: spec.Subnet}},
			PortMappings: ports,
		}
	}
	netdrivertest.Run(t, netdrivertest.Harness{
		NewDriver: func(t *testing.T) netdriver.Driver {
			d, err := New()
			if err != nil {
				t.Fatal(err)
			}
			return d
		},
		Network:  spec,
		Policies: policies,
	})
}
