package netdriver

import (
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestParseSlice(t *testing.T) {
	tests := []struct {
		name           string
		cluster, slice string
		wantErr        error
		wantText       []string // substrings the error must contain
	}{
		{name: "ok", cluster: "10.200.0.0/16", slice: "10.200.3.0/24"},
		{name: "slice equals cluster", cluster: "10.200.0.0/16", slice: "10.200.0.0/16"},
		{name: "smallest slice", cluster: "10.200.0.0/16", slice: "10.200.0.16/30"},
		{name: "cluster does not parse", cluster: "10.300.0.0/16", slice: "10.200.3.0/24",
			wantErr: ErrInvalidSpec, wantText: []string{"cluster CIDR", `"10.300.0.0/16"`}},
		{name: "cluster without bits", cluster: "10.200.0.0", slice: "10.200.3.0/24",
			wantErr: ErrInvalidSpec, wantText: []string{"cluster CIDR"}},
		{name: "slice does not parse", cluster: "10.200.0.0/16", slice: "banana",
			wantErr: ErrInvalidSpec, wantText: []string{"node slice", `"banana"`}},
		{name: "slice outside cluster", cluster: "10.200.0.0/16", slice: "10.201.3.0/24",
			wantErr: ErrInvalidSpec, wantText: []string{"10.201.3.0/24", "10.200.0.0/16"}},
		{name: "slice wider than cluster", cluster: "10.200.0.0/16", slice: "10.0.0.0/8",
			wantErr: ErrInvalidSpec, wantText: []string{"10.0.0.0/8", "10.200.0.0/16"}},
		{name: "host bits set", cluster: "10.200.0.0/16", slice: "10.200.3.7/24",
			wantErr: ErrInvalidSpec, wantText: []string{"host bits", "10.200.3.0/24"}},
		{name: "too small", cluster: "10.200.0.0/16", slice: "10.200.3.0/31",
			wantErr: ErrInvalidSpec, wantText: []string{"/30"}},
		{name: "ipv6", cluster: "fd00::/48", slice: "fd00::/64",
			wantErr: ErrInvalidSpec, wantText: []string{"IPv4"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cluster, slice, err := ParseSlice(tt.cluster, tt.slice)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseSlice(%q, %q) error = %v, want %v", tt.cluster, tt.slice, err, tt.wantErr)
			}
			if err != nil {
				for _, s := range tt.wantText {
					if !strings.Contains(err.Error(), s) {
						t.Errorf("error %q does not mention %q", err, s)
					}
				}
				return
			}
			if cluster.String() != tt.cluster || slice.String() != tt.slice {
				t.Errorf("ParseSlice = %v, %v, want %s, %s", cluster, slice, tt.cluster, tt.slice)
			}
		})
	}
}

func TestGatewayAndUsableRange(t *testing.T) {
	tests := []struct {
		subnet, gateway, first, last string
	}{
		{"10.200.3.0/24", "10.200.3.1", "10.200.3.2", "10.200.3.254"},
		{"10.200.0.16/28", "10.200.0.17", "10.200.0.18", "10.200.0.30"},
		{"10.200.0.0/16", "10.200.0.1", "10.200.0.2", "10.200.255.254"},
		{"192.168.7.4/30", "192.168.7.5", "192.168.7.6", "192.168.7.6"},
	}
	for _, tt := range tests {
		p := netip.MustParsePrefix(tt.subnet)
		first, last := UsableRange(p)
		if got := Gateway(p).String(); got != tt.gateway {
			t.Errorf("Gateway(%s) = %s, want %s", tt.subnet, got, tt.gateway)
		}
		if first.String() != tt.first || last.String() != tt.last {
			t.Errorf("UsableRange(%s) = %s..%s, want %s..%s", tt.subnet, first, last, tt.first, tt.last)
		}
	}
}

func TestNewAllocatorRejectsBadSlices(t *testing.T) {
	for _, s := range []netip.Prefix{{}, netip.MustParsePrefix("10.0.0.1/24"), netip.MustParsePrefix("10.0.0.0/31"), netip.MustParsePrefix("fd00::/64")} {
		if _, err := NewAllocator(s); !errors.Is(err, ErrInvalidSpec) {
			t.Errorf("NewAllocator(%v) error = %v, want ErrInvalidSpec", s, err)
		}
	}
}

func mustAllocator(t testing.TB, slice string) Allocator {
	t.Helper()
	a, err := NewAllocator(netip.MustParsePrefix(slice))
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func mustAllocate(t testing.TB, a *Allocator, container, preferred string, ports ...PortMapping) netip.Addr {
	t.Helper()
	var pref netip.Addr
	if preferred != "" {
		pref = netip.MustParseAddr(preferred)
	}
	ip, err := a.Allocate(container, pref, ports)
	if err != nil {
		t.Fatalf("Allocate(%q, %q): %v", container, preferred, err)
	}
	return ip
}

func TestAllocatorLowestFreeFirst(t *testing.T) {
	a := mustAllocator(t, "10.200.0.16/28")
	var got []string
	for i := range 3 {
		got = append(got, mustAllocate(t, &a, fmt.Sprintf("c%d", i), "").String())
	}
	if want := []string{"10.200.0.18", "10.200.0.19", "10.200.0.20"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("addresses = %v, want %v", got, want)
	}
	if ip, ok := a.Release("c1"); !ok || ip.String() != "10.200.0.19" {
		t.Fatalf("Release(c1) = %v, %v", ip, ok)
	}
	if _, ok := a.Release("c1"); ok {
		t.Fatal("second Release(c1) reported an address")
	}
	// The freed address is the lowest free one again.
	if ip := mustAllocate(t, &a, "c3", ""); ip.String() != "10.200.0.19" {
		t.Fatalf("after release got %v, want 10.200.0.19", ip)
	}
	// An explicit address is honoured, and skipped by later automatic picks.
	if ip := mustAllocate(t, &a, "c4", "10.200.0.21"); ip.String() != "10.200.0.21" {
		t.Fatalf("preferred got %v", ip)
	}
	if ip := mustAllocate(t, &a, "c5", ""); ip.String() != "10.200.0.22" {
		t.Fatalf("next got %v, want 10.200.0.22", ip)
	}
}

func TestAllocatorDeterministicReplay(t *testing.T) {
	// Two allocators fed the same calls end equal, whatever map order does.
	run := func() Allocator {
		a := mustAllocator(t, "10.200.1.0/24")
		for i := range 40 {
			mustAllocate(t, &a, fmt.Sprintf("c%02d", i), "", PortMapping{TCP, 80, uint16(8000 + i)})
			if i%3 == 0 {
				a.Release(fmt.Sprintf("c%02d", i/2))
			}
		}
		return a
	}
	if a, b := run(), run(); !reflect.DeepEqual(a, b) {
		t.Fatalf("replays differ:\n%v\n%v", a, b)
	}
}

func TestAllocatorRetryIsHarmless(t *testing.T) {
	a := mustAllocator(t, "10.200.1.0/24")
	web := PortMapping{TCP, 80, 8080}
	first := mustAllocate(t, &a, "web", "", web)
	before := a.Clone()
	if again := mustAllocate(t, &a, "web", "", web); again != first {
		t.Fatalf("retry got %v, want %v", again, first)
	}
	if again := mustAllocate(t, &a, "web", first.String(), web); again != first {
		t.Fatalf("retry with the address got %v, want %v", again, first)
	}
	if !reflect.DeepEqual(a, before) {
		t.Fatalf("retry changed the table:\n%v\n%v", before, a)
	}
	if _, err := a.Allocate("web", netip.MustParseAddr("10.200.1.77"), []PortMapping{web}); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("different address for a holder: %v, want ErrAlreadyExists", err)
	}
	if _, err := a.Allocate("web", netip.Addr{}, nil); !errors.Is(err, ErrAlreadyExists) {
		t.Fatalf("different ports for a holder: %v, want ErrAlreadyExists", err)
	}
}

// TestAllocatorBadInput checks every refusal: a clear error of the right
// class, naming what is at fault, and the table exactly as it was.
func TestAllocatorBadInput(t *testing.T) {
	full := mustAllocator(t, "10.200.0.4/30") // one usable address: .6
	mustAllocate(t, &full, "only", "")

	base := mustAllocator(t, "10.200.1.0/24")
	mustAllocate(t, &base, "web", "10.200.1.9", PortMapping{TCP, 80, 8080})

	tests := []struct {
		name      string
		a         Allocator
		container string
		preferred string
		ports     []PortMapping
		wantErr   error
		wantText  []string
	}{
		{name: "exhausted slice", a: full, container: "late",
			wantErr: ErrExhausted, wantText: []string{"10.200.0.4/30", "exhausted"}},
		{name: "ip outside the slice", a: base, container: "db", preferred: "10.200.2.9",
			wantErr: ErrInvalidSpec, wantText: []string{"10.200.2.9", "outside", "10.200.1.0/24"}},
		{name: "ipv6 address", a: base, container: "db", preferred: "fd00::9",
			wantErr: ErrInvalidSpec, wantText: []string{"fd00::9", "outside"}},
		{name: "gateway", a: base, container: "db", preferred: "10.200.1.1",
			wantErr: ErrInvalidSpec, wantText: []string{"gateway"}},
		{name: "network address", a: base, container: "db", preferred: "10.200.1.0",
			wantErr: ErrInvalidSpec, wantText: []string{"network or broadcast"}},
		{name: "broadcast address", a: base, container: "db", preferred: "10.200.1.255",
			wantErr: ErrInvalidSpec, wantText: []string{"network or broadcast"}},
		{name: "address held", a: base, container: "db", preferred: "10.200.1.9",
			wantErr: ErrAddressInUse, wantText: []string{"10.200.1.9", `"web"`}},
		{name: "host port held", a: base, container: "db", ports: []PortMapping{{TCP, 80, 8080}},
			wantErr: ErrAddressInUse, wantText: []string{"8080/tcp", `"web"`}},
		{name: "port mapped twice", a: base, container: "db", ports: []PortMapping{{UDP, 53, 5353}, {UDP, 54, 5353}},
			wantErr: ErrInvalidSpec, wantText: []string{"5353/udp", "twice"}},
		{name: "bad protocol", a: base, container: "db", ports: []PortMapping{{"sctp", 1, 1}},
			wantErr: ErrInvalidSpec, wantText: []string{"sctp"}},
		{name: "port zero", a: base, container: "db", ports: []PortMapping{{TCP, 0, 81}},
			wantErr: ErrInvalidSpec, wantText: []string{"1..65535"}},
		{name: "no container", a: base, container: "",
			wantErr: ErrInvalidSpec, wantText: []string{"named"}},
		{name: "zero allocator", a: Allocator{}, container: "db",
			wantErr: ErrInvalidSpec, wantText: []string{"slice"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := tt.a.Clone()
			var pref netip.Addr
			if tt.preferred != "" {
				pref = netip.MustParseAddr(tt.preferred)
			}
			ip, err := a.Allocate(tt.container, pref, tt.ports)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Allocate = %v, %v; want error %v", ip, err, tt.wantErr)
			}
			if ip.IsValid() {
				t.Errorf("Allocate returned address %v with its error", ip)
			}
			for _, s := range tt.wantText {
				if !strings.Contains(err.Error(), s) {
					t.Errorf("error %q does not mention %q", err, s)
				}
			}
			if !reflect.DeepEqual(a, tt.a) {
				t.Errorf("table changed:\nbefore %v\nafter  %v", tt.a, a)
			}
		})
	}
}

func TestAllocatorReleaseFreesPorts(t *testing.T) {
	a := mustAllocator(t, "10.200.1.0/24")
	mustAllocate(t, &a, "web", "", PortMapping{TCP, 80, 8080}, PortMapping{UDP, 53, 53})
	a.Release("web")
	if len(a.Allocations) != 0 || len(a.Ports) != 0 {
		t.Fatalf("after release: %+v", a)
	}
	mustAllocate(t, &a, "web2", "", PortMapping{TCP, 81, 8080})
	if got := a.Ports["8080/tcp"]; got != "web2" {
		t.Fatalf("port 8080/tcp held by %q, want web2", got)
	}
}

func TestAllocatorJSONRoundTrip(t *testing.T) {
	a := mustAllocator(t, "10.200.1.0/24")
	mustAllocate(t, &a, "web", "", PortMapping{TCP, 80, 8080})
	mustAllocate(t, &a, "db", "10.200.1.40")
	b, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	const want = `{"slice":"10.200.1.0/24","allocations":{"10.200.1.2":"web","10.200.1.40":"db"},"ports":{"8080/tcp":"web"}}`
	if string(b) != want {
		t.Fatalf("JSON = %s\nwant   %s", b, want)
	}
	var back Allocator
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, a) {
		t.Fatalf("round trip = %+v, want %+v", back, a)
	}
}

func TestAllocatorCloneIsIndependent(t *testing.T) {
	a := mustAllocator(t, "10.200.1.0/24")
	mustAllocate(t, &a, "web", "", PortMapping{TCP, 80, 8080})
	c := a.Clone()
	mustAllocate(t, &c, "db", "")
	c.Release("web")
	if _, ok := a.Lookup("web"); !ok || len(a.Allocations) != 1 || a.Ports["8080/tcp"] != "web" {
		t.Fatalf("changing the clone changed the original: %+v", a)
	}
}

// BenchmarkAllocate reports the cost of one allocation and release with
// held addresses already allocated. Both are linear in the number held (a
// node holds hundreds, not tens of thousands).
func BenchmarkAllocate(b *testing.B) {
	for _, bb := range []struct {
		slice string
		held  int
	}{{"10.200.1.0/24", 250}, {"10.200.0.0/16", 1000}, {"10.200.0.0/16", 4000}} {
		b.Run(fmt.Sprintf("%s/held=%d", bb.slice, bb.held), func(b *testing.B) {
			a := mustAllocator(b, bb.slice)
			for i := range bb.held {
				mustAllocate(b, &a, fmt.Sprintf("c%d", i), "")
			}
			for b.Loop() {
				if _, err := a.Allocate("probe", netip.Addr{}, []PortMapping{{TCP, 80, 8080}}); err != nil {
					b.Fatal(err)
				}
				a.Release("probe")
			}
		})
	}
}

// TestAllocatorInvariants drives an allocator with a seeded random mix of
// requests, good and bad, and checks after each one that every address is a
// usable address of the slice held by at most one container, that every
// held host port belongs to a container holding an address, that an
// automatic pick is the lowest free address, and that a refusal changed
// nothing.
func TestAllocatorInvariants(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 2))
	a := mustAllocator(t, "10.200.0.16/28")
	first, last := UsableRange(a.Slice)
	containers := []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p"}
	var refusals, grants int
	for step := range 5000 {
		c := containers[rng.IntN(len(containers))]
		if rng.IntN(4) == 0 {
			a.Release(c)
		} else {
			var pref netip.Addr
			if rng.IntN(2) == 0 {
				pref = fromU32(toU32(a.Slice.Addr()) - 2 + uint32(rng.IntN(20))) // inside and around the slice
			}
			var ports []PortMapping
			for range rng.IntN(3) {
				ports = append(ports, PortMapping{Protocol: []Protocol{TCP, UDP}[rng.IntN(2)], InternalPort: 80, ExternalPort: uint16(8000 + rng.IntN(6))})
			}
			before := a.Clone()
			_, held := before.Lookup(c)
			lowest := netip.Addr{}
			for u := toU32(first); u <= toU32(last) && !lowest.IsValid(); u++ {
				if _, taken := before.Allocations[fromU32(u)]; !taken {
					lowest = fromU32(u)
				}
			}
			ip, err := a.Allocate(c, pref, ports)
			switch {
			case err != nil:
				refusals++
				if !reflect.DeepEqual(a, before) {
					t.Fatalf("step %d: refused Allocate(%s, %v, %v) changed the table: %v", step, c, pref, ports, err)
				}
			case !held && !pref.IsValid() && ip != lowest:
				t.Fatalf("step %d: automatic pick %v, lowest free is %v", step, ip, lowest)
			case !held:
				grants++
			}
		}
		seen := map[string]bool{}
		for ip, holder := range a.Allocations {
			if ip.Less(first) || last.Less(ip) {
				t.Fatalf("step %d: %v held by %s is not usable", step, ip, holder)
			}
			if seen[holder] {
				t.Fatalf("step %d: %s holds two addresses", step, holder)
			}
			seen[holder] = true
		}
		for port, holder := range a.Ports {
			if !seen[holder] {
				t.Fatalf("step %d: port %s held by %s, which holds no address", step, port, holder)
			}
		}
	}
	if refusals == 0 || grants == 0 {
		t.Fatalf("the mix exercised too little: %d grants, %d refusals", grants, refusals)
	}
}
