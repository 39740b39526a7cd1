package main

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/berthhq/berth/events"
)

// parseNetwork parses network configure's flags as the command does.
func parseNetwork(args ...string) (events.NetworkConfig, error) {
	var f netFlags
	fs := pflag.NewFlagSet("configure", pflag.ContinueOnError)
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return events.NetworkConfig{}, err
	}
	return f.config()
}

func TestNetworkFlags(t *testing.T) {
	base := []string{"--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.1.0/24"}
	tests := []struct {
		args []string
		want events.NetworkConfig
	}{
		{nil, events.NetworkConfig{ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.1.0/24", Type: events.NetworkNAT}},
		{[]string{"--type", "l2bridge", "--adapter", "Ethernet 2", "--dns", "10.200.0.2", "--dns", "10.200.0.3",
			"--dns-domain", "service.local", "--dns-search", "a.local,b.local", "--dns-search", "c.local"},
			events.NetworkConfig{ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.1.0/24", Type: events.NetworkL2Bridge, Adapter: "Ethernet 2",
				DNS: events.DNSSpec{Servers: []string{"10.200.0.2", "10.200.0.3"}, Domain: "service.local", Search: []string{"a.local", "b.local", "c.local"}}}},
		{[]string{"--type", "transparent", "--adapter", "Ethernet0", "--dns", "10.200.0.2,10.200.0.3"},
			events.NetworkConfig{ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.1.0/24", Type: events.NetworkTransparent, Adapter: "Ethernet0",
				DNS: events.DNSSpec{Servers: []string{"10.200.0.2", "10.200.0.3"}}}},
	}
	for _, tt := range tests {
		got, err := parseNetwork(append(append([]string{}, base...), tt.args...)...)
		if err != nil || !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%v: %+v, %v\nwant %+v", tt.args, got, err, tt.want)
		}
	}
}

func TestNetworkFlags_Errors(t *testing.T) {
	tests := []struct {
		args []string
		flag string // the flag the error must name
	}{
		{[]string{"--cluster-cidr", "10.200.0.0", "--node-slice", "10.200.1.0/24"}, "--cluster-cidr"},
		{[]string{"--cluster-cidr", "10.200.0.1/16", "--node-slice", "10.200.1.0/24"}, "--cluster-cidr"},
		{[]string{"--cluster-cidr", "fd00::/64", "--node-slice", "10.200.1.0/24"}, "--cluster-cidr"},
		{[]string{"--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.201.1.0/24"}, "--node-slice"},
		{[]string{"--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.1.0/31"}, "--node-slice"},
		{[]string{"--cluster-cidr", "10.200.0.0/16"}, "--node-slice"},
		{[]string{"--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.1.0/24", "--type", "vxlan"}, "--type"},
		{[]string{"--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.1.0/24", "--type", "l2bridge"}, "--adapter"},
		{[]string{"--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.1.0/24", "--adapter", "Ethernet0"}, "--adapter"},
		{[]string{"--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.1.0/24", "--dns", "dns.local"}, "--dns"},
		{[]string{"--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.1.0/24", "--dns-domain", "a b"}, "--dns-domain"},
		{[]string{"--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.1.0/24", "--dns-search", "a.local,,b.local"}, "--dns-search"},
	}
	for _, tt := range tests {
		_, err := parseNetwork(tt.args...)
		var fe *flagError
		if !errors.As(err, &fe) || fe.flag != tt.flag {
			t.Errorf("%v: error %v, want a flag error naming %s", tt.args, err, tt.flag)
		}
	}
}

func TestCLI_Network(t *testing.T) {
	url, agent := agentServer(t)
	ok := func(args ...string) string { t.Helper(); return berthOK(t, url, args...) }
	fails := func(code int, want string, args ...string) {
		t.Helper()
		got, _, stderr := berth(t, url, args...)
		if got != code || !strings.Contains(stderr, want) {
			t.Errorf("berth %v: exit %d, stderr %q; want exit %d mentioning %q", args, got, stderr, code, want)
		}
	}

	if out := ok("network", "inspect"); !strings.Contains(out, "No network is configured on node n1") {
		t.Errorf("network inspect before configure printed %q", out)
	}
	if out := ok("network", "inspect", "-o", "json"); strings.TrimSpace(out) != "null" {
		t.Errorf("network inspect -o json before configure printed %q", out)
	}
	// Bad flags never reach the agent.
	fails(exitUsage, "--node-slice", "network", "configure", "--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.201.1.0/24")
	fails(exitUsage, "node-slice", "network", "configure", "--cluster-cidr", "10.200.0.0/16")
	fails(exitUsage, "--adapter", "network", "configure", "--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.1.0/24", "--type", "transparent")
	fails(exitUsage, "no arguments", "network", "configure", "--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.1.0/24", "extra")
	if n := len(agent.submitted()); n != 0 {
		t.Fatalf("the agent got %d commands from bad flags", n)
	}

	out := ok("network", "configure", "--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.1.0/24",
		"--dns", "10.200.0.2", "--dns-domain", "service.local", "--dns-search", "service.local,corp.local")
	if want := "berth-overlay: nat network, node slice 10.200.1.0/24, gateway 10.200.1.1\n"; out != want {
		t.Errorf("network configure printed %q, want %q", out, want)
	}
	wantCfg := events.NetworkConfig{ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.1.0/24", Type: events.NetworkNAT,
		DNS: events.DNSSpec{Servers: []string{"10.200.0.2"}, Domain: "service.local", Search: []string{"service.local", "corp.local"}}}
	got := agent.submitted()
	if len(got) != 1 || got[0].Verb != events.VerbNetworkConfigure || got[0].Network == nil || !reflect.DeepEqual(*got[0].Network, wantCfg) {
		t.Fatalf("the agent got %+v, want one network.configure of %+v", got, wantCfg)
	}

	ok("run", "--name", "web-1", "-p", "8080:80", "-p", "53:53/udp", "img")
	ok("run", "--name", "web-2", "--dns", "10.0.0.53", "img")
	ok("run", "--name", "solo", "--network", "none", "img")

	ps := ok("ps")
	if !strings.Contains(ps, "0.0.0.0:8080->80/tcp, 0.0.0.0:53->53/udp") {
		t.Errorf("ps printed\n%s\nwant docker-style ports", ps)
	}
	web1 := ok("inspect", "-o", "table", "web-1")
	for _, want := range []string{"Network:    berth-overlay", "IP:         10.200.1.2", "Gateway:    10.200.1.1",
		"Endpoint:   berth-web-1 (id ep-web-1)", "DNS:        10.200.0.2, domain service.local, search service.local corp.local",
		"Ports:      0.0.0.0:8080->80/tcp, 0.0.0.0:53->53/udp"} {
		if !strings.Contains(web1, want) {
			t.Errorf("inspect -o table web-1 lacks %q:\n%s", want, web1)
		}
	}
	if web2 := ok("inspect", "-o", "table", "web-2"); !strings.Contains(web2, "IP:         10.200.1.3") || !strings.Contains(web2, "DNS:        10.0.0.53, domain service.local") {
		t.Errorf("inspect -o table web-2:\n%s", web2)
	}
	if solo := ok("inspect", "-o", "table", "solo"); !strings.Contains(solo, "Network:   none") || strings.Contains(solo, "IP:") {
		t.Errorf("inspect -o table of a container without a network:\n%s", solo)
	}

	table := ok("network", "inspect")
	for _, want := range []string{"Name:           berth-overlay", "Type:           nat", "Node slice:     10.200.1.0/24", "Gateway:        10.200.1.1",
		"HCN ID:         hcn-berth-overlay", "Phase:          created", "Allocations:    2", "10.200.1.2   web-1", "10.200.1.3   web-2"} {
		if !strings.Contains(table, want) {
			t.Errorf("network inspect lacks %q:\n%s", want, table)
		}
	}
	var n events.Network
	if err := json.Unmarshal([]byte(ok("network", "inspect", "-o", "json")), &n); err != nil {
		t.Fatal(err)
	}
	if n.Phase != events.NetworkPhaseCreated || !reflect.DeepEqual(n.Allocations, map[string]string{"10.200.1.2": "web-1", "10.200.1.3": "web-2"}) {
		t.Errorf("network inspect -o json: %+v", n)
	}

	// The agent refuses to move the network under its containers: exit 1
	// with its message.
	fails(exitFailure, "409 conflict", "network", "configure", "--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.2.0/24")
	fails(exitFailure, "2 containers hold addresses of node slice 10.200.1.0/24", "network", "configure", "--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.2.0/24")
	// The DNS defaults can change under live containers; -o json prints the result.
	var res events.NetworkConfiguredData
	out = ok("network", "configure", "--cluster-cidr", "10.200.0.0/16", "--node-slice", "10.200.1.0/24", "--dns", "10.200.0.3", "-o", "json")
	if err := json.Unmarshal([]byte(out), &res); err != nil || res.Gateway != "10.200.1.1" || res.DNS.Servers[0] != "10.200.0.3" {
		t.Errorf("network configure -o json printed %q (%v)", out, err)
	}

	ok("rm", "-f", "web-1")
	if out := ok("network", "inspect"); !strings.Contains(out, "Allocations:    1") || strings.Contains(out, "web-1") {
		t.Errorf("network inspect after rm web-1:\n%s", out)
	}
}
