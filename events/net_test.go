package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/berthhq/berth/events"
)

const netName = "berth-overlay"

func netConfig() events.NetworkConfig {
	return events.NetworkConfig{ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.1.0/24", Type: events.NetworkNAT,
		DNS: events.DNSSpec{Servers: []string{"10.200.0.10"}, Domain: "cluster.local", Search: []string{"cluster.local"}}}
}

func configured(edit func(*events.NetworkConfiguredData)) events.NetworkConfiguredData {
	d := events.NetworkConfiguredData{Name: netName, NetworkConfig: netConfig(), Gateway: "10.200.1.1"}
	if edit != nil {
		edit(&d)
	}
	return d
}

func endpoint(ip string) events.Endpoint {
	return events.Endpoint{Name: "berth-" + ctr, Network: netName, IP: ip, Gateway: "10.200.1.1", DNS: netConfig().DNS,
		Ports: []events.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}}}
}

func TestDecodeCommand_NetworkConfigure(t *testing.T) {
	const (
		id   = `"id":"c-1"`
		verb = `"verb":"network.configure"`
	)
	network := func(fields string) string { return `"network":{` + fields + `}` }
	valid := `"cluster_cidr":"10.200.0.0/16","node_slice":"10.200.1.0/24","type":"nat"`
	tests := []struct {
		name    string
		data    []byte
		want    *events.NetworkConfig
		wantMsg string // a substring of the ErrInvalid error
	}{
		{name: "nat", data: cmdJSON(id, verb, network(valid)),
			want: &events.NetworkConfig{ClusterCIDR: "10.200.0.0/16", NodeSlice: "10.200.1.0/24", Type: "nat"}},
		{name: "l2bridge with dns", data: cmdJSON(id, verb, network(`"cluster_cidr":"10.0.0.0/8","node_slice":"10.0.0.0/8","type":"l2bridge","adapter":"Ethernet 2",
			"dns":{"servers":["10.0.0.10","fd00::10"],"domain":"cluster.local","search":["svc.cluster.local","cluster.local"]}`)),
			want: &events.NetworkConfig{ClusterCIDR: "10.0.0.0/8", NodeSlice: "10.0.0.0/8", Type: "l2bridge", Adapter: "Ethernet 2",
				DNS: events.DNSSpec{Servers: []string{"10.0.0.10", "fd00::10"}, Domain: "cluster.local", Search: []string{"svc.cluster.local", "cluster.local"}}}},
		{name: "transparent, narrowest slice", data: cmdJSON(id, verb, network(`"cluster_cidr":"192.168.0.0/16","node_slice":"192.168.7.4/30","type":"transparent","adapter":"Ethernet"`)),
			want: &events.NetworkConfig{ClusterCIDR: "192.168.0.0/16", NodeSlice: "192.168.7.4/30", Type: "transparent", Adapter: "Ethernet"}},

		{name: "no network", data: cmdJSON(id, verb), wantMsg: "network: required by network.configure"},
		{name: "container named", data: cmdJSON(id, verb, `"container":"web"`, network(valid)), wantMsg: "container: not accepted by network.configure"},
		{name: "spec", data: cmdJSON(id, verb, `"spec":{"image":{"ref":"a"}}`, network(valid)), wantMsg: "spec: not accepted by network.configure"},
		{name: "force", data: cmdJSON(id, verb, `"force":true`, network(valid)), wantMsg: "force: only remove"},
		{name: "network on create", data: cmdJSON(id, `"verb":"create"`, `"container":"web"`, `"spec":{"image":{"ref":"a"}}`, network(valid)), wantMsg: "network: only network.configure"},
		{name: "unknown field", data: cmdJSON(id, verb, network(valid+`,"subnet":"10.0.0.0/8"`)), wantMsg: `unknown field "subnet"`},
		{name: "cidr does not parse", data: cmdJSON(id, verb, network(`"cluster_cidr":"10.200.0.0","node_slice":"10.200.1.0/24","type":"nat"`)), wantMsg: "network.cluster_cidr"},
		{name: "cidr too long", data: cmdJSON(id, verb, network(`"cluster_cidr":"10.200.0.0/33","node_slice":"10.200.1.0/24","type":"nat"`)), wantMsg: "network.cluster_cidr"},
		{name: "cidr ipv6", data: cmdJSON(id, verb, network(`"cluster_cidr":"fd00::/64","node_slice":"10.200.1.0/24","type":"nat"`)), wantMsg: "network.cluster_cidr: fd00::/64 is not IPv4"},
		{name: "slice missing", data: cmdJSON(id, verb, network(`"cluster_cidr":"10.200.0.0/16","type":"nat"`)), wantMsg: "network.node_slice"},
		{name: "slice with host bits", data: cmdJSON(id, verb, network(`"cluster_cidr":"10.200.0.0/16","node_slice":"10.200.1.9/24","type":"nat"`)), wantMsg: "network.node_slice: 10.200.1.9/24 has host bits set"},
		{name: "slice too small", data: cmdJSON(id, verb, network(`"cluster_cidr":"10.200.0.0/16","node_slice":"10.200.1.0/31","type":"nat"`)), wantMsg: "network.node_slice: 10.200.1.0/31 is too small"},
		{name: "slice outside", data: cmdJSON(id, verb, network(`"cluster_cidr":"10.200.0.0/16","node_slice":"10.201.1.0/24","type":"nat"`)), wantMsg: "network.node_slice: 10.201.1.0/24 is not inside cluster_cidr 10.200.0.0/16"},
		{name: "slice wider than the cluster", data: cmdJSON(id, verb, network(`"cluster_cidr":"10.200.0.0/16","node_slice":"10.0.0.0/8","type":"nat"`)), wantMsg: "network.node_slice: 10.0.0.0/8 is not inside"},
		{name: "dns server", data: cmdJSON(id, verb, network(valid+`,"dns":{"servers":["10.0.0.1","ns1"]}`)), wantMsg: `network.dns.servers[1]: "ns1"`},
		{name: "dns server unspecified", data: cmdJSON(id, verb, network(valid+`,"dns":{"servers":["0.0.0.0"]}`)), wantMsg: "network.dns.servers[0]"},
		{name: "dns domain", data: cmdJSON(id, verb, network(valid+`,"dns":{"domain":"a b"}`)), wantMsg: "network.dns.domain"},
		{name: "dns search", data: cmdJSON(id, verb, network(valid+`,"dns":{"search":["ok",""]}`)), wantMsg: "network.dns.search[1]"},
		{name: "no type", data: cmdJSON(id, verb, network(`"cluster_cidr":"10.200.0.0/16","node_slice":"10.200.1.0/24"`)), wantMsg: `network.type: "" is not one of nat, l2bridge, transparent`},
		{name: "unknown type", data: cmdJSON(id, verb, network(`"cluster_cidr":"10.200.0.0/16","node_slice":"10.200.1.0/24","type":"overlay"`)), wantMsg: "network.type"},
		{name: "l2bridge without adapter", data: cmdJSON(id, verb, network(`"cluster_cidr":"10.200.0.0/16","node_slice":"10.200.1.0/24","type":"l2bridge"`)), wantMsg: "network.adapter: a l2bridge network needs"},
		{name: "nat with adapter", data: cmdJSON(id, verb, network(valid+`,"adapter":"Ethernet"`)), wantMsg: "network.adapter: a nat network binds to no adapter"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events.DecodeCommand(tc.data, "")
			if tc.want != nil {
				if err != nil {
					t.Fatalf("DecodeCommand = %v", err)
				}
				want := events.Command{ID: "c-1", Verb: events.VerbNetworkConfigure, Network: tc.want}
				if d := cmp.Diff(want, got); d != "" {
					t.Errorf("DecodeCommand (-want +got):\n%s", d)
				}
				return
			}
			if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), tc.wantMsg) {
				t.Fatalf("DecodeCommand = %v, want an invalid-input error containing %q", err, tc.wantMsg)
			}
		})
	}
}

// netStates are the starting points of the network transition table.
var netStates = map[string]func() *events.State{
	"unconfigured": func() *events.State { return events.NewState(testNode, events.DefaultWindow) },
	"configured":   func() *events.State { return withNetwork(events.NetworkPhaseConfigured, "") },
	"creating":     func() *events.State { return withNetwork(events.NetworkPhaseCreating, "") },
	"created":      func() *events.State { return withNetwork(events.NetworkPhaseCreated, "net-1") },
	"failed":       func() *events.State { return withNetwork(events.NetworkPhaseFailed, "") },
	"holding":      func() *events.State { return holding() },
}

func withNetwork(p events.NetworkPhase, id string) *events.State {
	s := events.NewState(testNode, events.DefaultWindow)
	s.Seq = 10
	s.Network = &events.Network{NetworkConfiguredData: configured(nil), Phase: p, ID: id, Seq: 10}
	if p == events.NetworkPhaseFailed {
		s.Network.Error = "earlier failure"
	}
	return s
}

// holding is a created network with ctr holding 10.200.1.2.
func holding() *events.State {
	s := withNetwork(events.NetworkPhaseCreated, "net-1")
	ep := endpoint("10.200.1.2")
	ep.ID = "ep-1"
	s.Containers[ctr] = &events.Container{ID: ctr, Phase: events.PhaseRunning, Owner: "berth", CreatedAt: t0, Endpoint: &ep, Seq: 10}
	s.Network.Allocations = map[string]string{"10.200.1.2": ctr}
	return s
}

func TestApply_NetworkTransitions(t *testing.T) {
	dnsOnly := configured(func(d *events.NetworkConfiguredData) {
		d.DNS.Servers = []string{"10.200.0.11"}
		d.ClusterCIDR = "10.0.0.0/8"
	})
	moved := configured(func(d *events.NetworkConfiguredData) { d.NodeSlice, d.Gateway = "10.200.2.0/24", "10.200.2.1" })
	tests := []struct {
		typ, subject string
		data         any
		// want maps each starting state that accepts the event to the
		// network it leaves (nil: no network); the others refuse it.
		want map[string]*events.Network
	}{
		{events.NetworkConfigured, netName, configured(nil), map[string]*events.Network{
			"unconfigured": {NetworkConfiguredData: configured(nil), Phase: events.NetworkPhaseConfigured},
			"configured":   {NetworkConfiguredData: configured(nil), Phase: events.NetworkPhaseConfigured},
			"creating":     {NetworkConfiguredData: configured(nil), Phase: events.NetworkPhaseCreating},
			"created":      {NetworkConfiguredData: configured(nil), Phase: events.NetworkPhaseCreated, ID: "net-1"},
			"failed":       {NetworkConfiguredData: configured(nil), Phase: events.NetworkPhaseFailed, Error: "earlier failure"},
			"holding":      {NetworkConfiguredData: configured(nil), Phase: events.NetworkPhaseCreated, ID: "net-1", Allocations: map[string]string{"10.200.1.2": ctr}},
		}},
		{events.NetworkConfigured, netName, dnsOnly, map[string]*events.Network{
			"unconfigured": {NetworkConfiguredData: dnsOnly, Phase: events.NetworkPhaseConfigured},
			"configured":   {NetworkConfiguredData: dnsOnly, Phase: events.NetworkPhaseConfigured},
			"creating":     {NetworkConfiguredData: dnsOnly, Phase: events.NetworkPhaseCreating},
			"created":      {NetworkConfiguredData: dnsOnly, Phase: events.NetworkPhaseCreated, ID: "net-1"},
			"failed":       {NetworkConfiguredData: dnsOnly, Phase: events.NetworkPhaseFailed, Error: "earlier failure"},
			"holding":      {NetworkConfiguredData: dnsOnly, Phase: events.NetworkPhaseCreated, ID: "net-1", Allocations: map[string]string{"10.200.1.2": ctr}},
		}},
		{events.NetworkConfigured, netName, moved, map[string]*events.Network{ // a new shape: created again
			"unconfigured": {NetworkConfiguredData: moved, Phase: events.NetworkPhaseConfigured},
			"configured":   {NetworkConfiguredData: moved, Phase: events.NetworkPhaseConfigured},
			"created":      {NetworkConfiguredData: moved, Phase: events.NetworkPhaseConfigured},
			"failed":       {NetworkConfiguredData: moved, Phase: events.NetworkPhaseConfigured},
		}},
		{events.NetworkCreating, netName, nil, map[string]*events.Network{
			"configured": {NetworkConfiguredData: configured(nil), Phase: events.NetworkPhaseCreating},
			"creating":   {NetworkConfiguredData: configured(nil), Phase: events.NetworkPhaseCreating},
			"created":    {NetworkConfiguredData: configured(nil), Phase: events.NetworkPhaseCreating, ID: "net-1"},
			"failed":     {NetworkConfiguredData: configured(nil), Phase: events.NetworkPhaseCreating},
			"holding":    {NetworkConfiguredData: configured(nil), Phase: events.NetworkPhaseCreating, ID: "net-1", Allocations: map[string]string{"10.200.1.2": ctr}},
		}},
		{events.NetworkCreating, "other-overlay", nil, nil},
		{events.NetworkCreated, netName, events.NetworkCreatedData{ID: "net-2"}, map[string]*events.Network{
			"creating": {NetworkConfiguredData: configured(nil), Phase: events.NetworkPhaseCreated, ID: "net-2"},
		}},
		{events.NetworkCreateFailed, netName, events.FailureData{Error: "subnet conflict"}, map[string]*events.Network{
			"creating": {NetworkConfiguredData: configured(nil), Phase: events.NetworkPhaseFailed, Error: "subnet conflict"},
		}},
	}
	for i, tc := range tests {
		for from, build := range netStates {
			t.Run(fmt.Sprintf("%d_%s/from_%s", i, strings.TrimPrefix(tc.typ, "berth.network."), from), func(t *testing.T) {
				s := build()
				before := s.Clone()
				e := event(tc.typ, tc.subject, 11, tc.data)
				err := s.Apply(e)
				want, allowed := tc.want[from]
				if !allowed {
					if !errors.Is(err, events.ErrWrongPhase) {
						t.Fatalf("Apply = %v, want an ErrWrongPhase error", err)
					}
					wantUnchanged(t, before, s)
					return
				}
				if err != nil {
					t.Fatalf("Apply = %v", err)
				}
				want.Seq = 11
				if d := cmp.Diff(want, s.Network); d != "" {
					t.Errorf("network (-want +got):\n%s", d)
				}
				if s.Seq != 11 {
					t.Errorf("seq %d", s.Seq)
				}
			})
		}
	}
}

func TestApply_NetworkBadPayload(t *testing.T) {
	for _, tc := range []struct {
		name    string
		typ     string
		subject string
		data    any
	}{
		{"configured undecodable", events.NetworkConfigured, netName, []int{1}},
		{"configured name differs from subject", events.NetworkConfigured, "x-overlay", configured(nil)},
		{"configured invalid", events.NetworkConfigured, netName, configured(func(d *events.NetworkConfiguredData) { d.Type = "bridge" })},
		{"configured gateway outside the slice", events.NetworkConfigured, netName, configured(func(d *events.NetworkConfiguredData) { d.Gateway = "10.9.9.9" })},
		{"created undecodable", events.NetworkCreated, netName, "id"},
		{"unknown type", "berth.network.deleted", netName, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := withNetwork(events.NetworkPhaseCreating, "")
			before := s.Clone()
			if err := s.Apply(event(tc.typ, tc.subject, 11, tc.data)); !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("Apply = %v, want an ErrInvalid error", err)
			}
			if d := cmp.Diff(before, s, ignoreIndex); d != "" {
				t.Errorf("state changed (-before +after):\n%s", d)
			}
		})
	}
}

// TestApply_EndpointTransitions applies each endpoint event to a container
// in each phase, with and without an endpoint.
func TestApply_EndpointTransitions(t *testing.T) {
	const ip = "10.200.1.7"
	type start struct {
		phase    events.Phase
		endpoint string // "": none; "creating": without id; "created": with id
	}
	// setup builds a node with a created network, container "other"
	// holding 10.200.1.3, and ctr as st says.
	setup := func(st start) *events.State {
		s := withNetwork(events.NetworkPhaseCreated, "net-1")
		other := endpoint("10.200.1.3")
		other.Name, other.ID = "berth-other", "ep-0"
		s.Containers["other"] = &events.Container{ID: "other", Phase: events.PhaseRunning, Endpoint: &other, Seq: 10}
		s.Network.Allocations = map[string]string{"10.200.1.3": "other"}
		if st.phase == phaseNone {
			return s
		}
		c := &events.Container{ID: ctr, Phase: st.phase, Owner: "berth", CreatedAt: t0, Seq: 10}
		if intent, ok := map[events.Phase]string{events.PhaseCreating: events.ContainerCreating, events.PhaseRemoving: events.ContainerRemoving}[st.phase]; ok {
			c.Intent = intent
		}
		if st.endpoint != "" {
			ep := endpoint(ip)
			if st.endpoint == "created" {
				ep.ID = "ep-1"
			} else {
				c.Intent = events.ContainerEndpointCreating
			}
			c.Endpoint = &ep
			s.Network.Allocations[ip] = ctr
		}
		s.Containers[ctr] = c
		return s
	}
	var starts []start
	for _, p := range allPhases {
		for _, ep := range []string{"", "creating", "created"} {
			if p != phaseNone && p != events.PhaseRemoved || ep == "" {
				starts = append(starts, start{p, ep})
			}
		}
	}
	type effect struct {
		endpoint string // what the record holds after: "", "creating", "created"
		intent   string
		errMsg   string // from failure data
	}
	tests := []struct {
		typ  string
		data any
		want map[start]effect // accepted starting points; the others are refused
	}{
		{events.ContainerEndpointCreating, endpoint(ip), map[start]effect{
			{events.PhaseCreating, ""}: {endpoint: "creating", intent: events.ContainerEndpointCreating},
		}},
		{events.ContainerEndpointCreated, events.EndpointCreatedData{ID: "ep-1"}, map[start]effect{
			{events.PhaseCreating, "creating"}: {endpoint: "created", intent: events.ContainerCreating},
		}},
		{events.ContainerEndpointCreateFailed, events.FailureData{Error: "hns says no"}, map[start]effect{
			{events.PhaseCreating, "creating"}: {intent: events.ContainerCreating, errMsg: "hns says no"},
		}},
		{events.ContainerEndpointDeleted, nil, map[start]effect{
			{events.PhaseCreating, "creating"}: {intent: events.ContainerCreating},
			{events.PhaseCreating, "created"}:  {intent: events.ContainerCreating},
			{events.PhaseFailed, "creating"}:   {},
			{events.PhaseFailed, "created"}:    {},
			{events.PhaseRemoving, "creating"}: {intent: events.ContainerRemoving},
			{events.PhaseRemoving, "created"}:  {intent: events.ContainerRemoving},
		}},
	}
	for _, tc := range tests {
		for _, st := range starts {
			name := fmt.Sprintf("%s/from_%s_%s", strings.TrimPrefix(tc.typ, "berth.container."), or(string(st.phase), "absent"), or(st.endpoint, "none"))
			t.Run(name, func(t *testing.T) {
				s := setup(st)
				before := s.Clone()
				err := s.Apply(event(tc.typ, ctr, 11, tc.data))
				eff, allowed := tc.want[st]
				if !allowed {
					if !errors.Is(err, events.ErrWrongPhase) {
						t.Fatalf("Apply = %v, want an ErrWrongPhase error", err)
					}
					wantUnchanged(t, before, s)
					return
				}
				if err != nil {
					t.Fatalf("Apply = %v", err)
				}
				want := before.Clone()
				want.Seq = 11
				c := want.Containers[ctr]
				c.Seq, c.Intent = 11, eff.intent
				if eff.errMsg != "" {
					c.Error = eff.errMsg
				}
				switch eff.endpoint {
				case "":
					c.Endpoint = nil
					delete(want.Network.Allocations, ip)
				case "creating":
					ep := endpoint(ip)
					c.Endpoint = &ep
					want.Network.Allocations[ip] = ctr
				case "created":
					c.Endpoint.ID = "ep-1"
				}
				if d := cmp.Diff(want, s, ignoreIndex); d != "" {
					t.Errorf("state (-want +got):\n%s", d)
				}
			})
		}
	}
}

// TestApply_EndpointAddress checks the address rules of endpoint_creating
// and that a record holding an endpoint neither leaves the fold nor is
// replaced nor becomes created without it.
func TestApply_EndpointAddress(t *testing.T) {
	creating := func() *events.State {
		s := holding()
		s.Containers["new"] = &events.Container{ID: "new", Phase: events.PhaseCreating, Intent: events.ContainerCreating, Seq: 10}
		return s
	}
	withEndpoint := func(p events.Phase, id string) func() *events.State {
		return func() *events.State {
			s := holding()
			c := s.Containers[ctr]
			c.Phase, c.Endpoint.ID = p, id
			return s
		}
	}
	ep := func(name, ip string) events.Endpoint { e := endpoint(ip); e.Name = name; return e }
	for _, tc := range []struct {
		name    string
		state   func() *events.State
		e       *events.Event
		class   error
		message string
	}{
		{"address held", creating, event(events.ContainerEndpointCreating, "new", 11, ep("berth-new", "10.200.1.2")), events.ErrWrongPhase, "10.200.1.2 is held by container " + ctr},
		{"address outside the slice", creating, event(events.ContainerEndpointCreating, "new", 11, ep("berth-new", "10.200.2.2")), events.ErrWrongPhase, "outside node slice 10.200.1.0/24"},
		{"not an address", creating, event(events.ContainerEndpointCreating, "new", 11, ep("berth-new", "10.200.1")), events.ErrInvalid, `ip "10.200.1"`},
		{"no network", func() *events.State {
			s := creating()
			s.Network = nil
			return s
		}, event(events.ContainerEndpointCreating, "new", 11, ep("berth-new", "10.200.1.9")), events.ErrWrongPhase, "no network is configured"},
		{"removed while holding", withEndpoint(events.PhaseRemoving, "ep-1"), event(events.ContainerRemoved, ctr, 11, nil), events.ErrWrongPhase, "still holds endpoint berth-" + ctr},
		{"re-created while holding", withEndpoint(events.PhaseFailed, "ep-1"), event(events.ContainerCreating, ctr, 11, events.CreatingData{Owner: "berth"}), events.ErrWrongPhase, "still holds endpoint"},
		{"created before its endpoint", withEndpoint(events.PhaseCreating, ""), event(events.ContainerCreated, ctr, 11, events.CreatedData{HostID: ctr}), events.ErrWrongPhase, "is not created"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := tc.state()
			before := s.Clone()
			err := s.Apply(tc.e)
			if !errors.Is(err, tc.class) || !strings.Contains(err.Error(), tc.message) {
				t.Fatalf("Apply = %v, want %v naming %q", err, tc.class, tc.message)
			}
			wantUnchanged(t, before, s)
		})
	}
}

// TestApply_NetworkedLifecycle folds a create with an endpoint, a remove,
// and a failed attach, and checks the allocation table after each step, in
// the fold and through a snapshot.
func TestApply_NetworkedLifecycle(t *testing.T) {
	s := events.NewState(testNode, events.DefaultWindow)
	created := endpoint("10.200.1.2")
	created.ID = "ep-1"
	steps := []struct {
		e     *events.Event
		alloc map[string]string
		ep    *events.Endpoint // ctr's endpoint after the step
	}{
		{event(events.NetworkConfigured, netName, 1, configured(nil)), nil, nil},
		{event(events.NetworkCreating, netName, 2, nil), nil, nil},
		{event(events.NetworkCreated, netName, 3, events.NetworkCreatedData{ID: "net-1"}), nil, nil},
		{event(events.ContainerCreating, ctr, 4, events.CreatingData{Spec: fullSpec(), Owner: "berth"}), nil, nil},
		{event(events.ContainerEndpointCreating, ctr, 5, endpoint("10.200.1.2")), map[string]string{"10.200.1.2": ctr}, ptr(endpoint("10.200.1.2"))},
		{event(events.ContainerEndpointCreated, ctr, 6, events.EndpointCreatedData{ID: "ep-1"}), map[string]string{"10.200.1.2": ctr}, &created},
		{event(events.ContainerCreated, ctr, 7, events.CreatedData{HostID: ctr}), map[string]string{"10.200.1.2": ctr}, &created},
		{event(events.ContainerRemoving, ctr, 8, nil), map[string]string{"10.200.1.2": ctr}, &created},
		{event(events.ContainerEndpointDeleted, ctr, 9, nil), map[string]string{}, nil},
		{event(events.ContainerRemoved, ctr, 10, nil), map[string]string{}, nil},
		{event(events.ContainerCreating, ctr, 11, events.CreatingData{Spec: fullSpec(), Owner: "berth"}), map[string]string{}, nil},
		{event(events.ContainerEndpointCreating, ctr, 12, endpoint("10.200.1.2")), map[string]string{"10.200.1.2": ctr}, ptr(endpoint("10.200.1.2"))},
		{event(events.ContainerEndpointCreateFailed, ctr, 13, events.FailureData{Error: "no"}), map[string]string{}, nil},
		{event(events.ContainerCreateFailed, ctr, 14, events.FailureData{Error: "no"}), map[string]string{}, nil},
	}
	for i, st := range steps {
		if err := s.Apply(st.e); err != nil {
			t.Fatalf("step %d: Apply(%s) = %v", i, st.e.Short(), err)
		}
		b, err := json.Marshal(s)
		if err != nil {
			t.Fatal(err)
		}
		restored := events.NewState(testNode, events.DefaultWindow)
		if err := json.Unmarshal(b, restored); err != nil {
			t.Fatal(err)
		}
		for name, got := range map[string]*events.State{"fold": s, "snapshot": restored} {
			if d := cmp.Diff(st.alloc, got.Network.Allocations, cmpopts.EquateEmpty()); d != "" {
				t.Errorf("step %d (%s), %s: allocations (-want +got):\n%s", i, st.e.Short(), name, d)
			}
			var ep *events.Endpoint
			if c := got.Containers[ctr]; c != nil {
				ep = c.Endpoint
			}
			if d := cmp.Diff(st.ep, ep); d != "" {
				t.Errorf("step %d (%s), %s: endpoint (-want +got):\n%s", i, st.e.Short(), name, d)
			}
		}
	}
}

func ptr[T any](v T) *T { return &v }

func or(s, otherwise string) string {
	if s == "" {
		return otherwise
	}
	return s
}

func TestRecordView_KeepsNoAllocations(t *testing.T) {
	c := &events.Container{ID: ctr, Phase: events.PhaseCreating, Intent: events.ContainerCreating, Seq: 10}
	v := events.RecordView(ctr, c)
	// The view knows no network, yet follows the record.
	if err := v.Apply(event(events.ContainerEndpointCreating, ctr, 11, endpoint("10.200.1.2"))); err != nil {
		t.Fatal(err)
	}
	if err := v.Apply(event(events.ContainerEndpointCreated, ctr, 12, events.EndpointCreatedData{ID: "ep-1"})); err != nil {
		t.Fatal(err)
	}
	got := v.Containers[ctr]
	if got.Endpoint == nil || got.Endpoint.ID != "ep-1" || v.Network != nil {
		t.Fatalf("view record %+v, network %+v", got, v.Network)
	}
	if c.Endpoint != nil || c.Seq != 10 {
		t.Errorf("the view changed the record it was given: %+v", c)
	}
	// Transitions still hold.
	if err := v.Apply(event(events.ContainerRemoved, ctr, 13, nil)); !errors.Is(err, events.ErrWrongPhase) {
		t.Errorf("removed while creating: %v", err)
	}
}

func TestState_CloneIsDeep_Network(t *testing.T) {
	s := holding()
	original, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	c := s.Clone()
	c.Network.Allocations["10.200.1.9"] = "x"
	c.Network.DNS.Servers[0] = "x"
	c.Network.DNS.Search[0] = "x"
	ep := c.Containers[ctr].Endpoint
	ep.ID, ep.DNS.Servers[0], ep.Ports[0].HostPort = "x", "x", 1
	after, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(original) {
		t.Errorf("writing to the clone changed the original:\nbefore %s\nafter  %s", original, after)
	}
}
