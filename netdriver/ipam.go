package netdriver

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
)

// ParsePrefix parses an IPv4 prefix in canonical form ("10.200.0.0/16"), /30
// or wider. what names the setting in the error, which is of class
// ErrInvalidSpec.
func ParsePrefix(what, s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err == nil {
		err = checkSubnet(p)
	}
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%w: %s %q: %v", ErrInvalidSpec, what, s, err)
	}
	return p, nil
}

// ParseSlice parses the cluster CIDR and the node's slice of it. It fails
// with ErrInvalidSpec when either does not parse or the slice does not lie
// inside the cluster CIDR, naming both.
func ParseSlice(clusterCIDR, nodeSlice string) (cluster, slice netip.Prefix, err error) {
	if cluster, err = ParsePrefix("cluster CIDR", clusterCIDR); err != nil {
		return netip.Prefix{}, netip.Prefix{}, err
	}
	if slice, err = ParsePrefix("node slice", nodeSlice); err != nil {
		return netip.Prefix{}, netip.Prefix{}, err
	}
	if slice.Bits() < cluster.Bits() || !cluster.Contains(slice.Addr()) {
		return netip.Prefix{}, netip.Prefix{}, fmt.Errorf("%w: node slice %v is not inside cluster CIDR %v", ErrInvalidSpec, slice, cluster)
	}
	return cluster, slice, nil
}

// Gateway returns the gateway of a subnet: its first address after the
// network address. The subnet must be valid, as ParsePrefix returns it.
func Gateway(subnet netip.Prefix) netip.Addr { return fromU32(toU32(subnet.Addr()) + 1) }

// UsableRange returns the first and last address a container may get in a
// subnet: every address except the network address, the gateway and the
// broadcast address. The subnet must be valid, as ParsePrefix returns it.
func UsableRange(subnet netip.Prefix) (first, last netip.Addr) {
	return fromU32(toU32(subnet.Addr()) + 2), fromU32(toU32(broadcast(subnet)) - 1)
}

func broadcast(p netip.Prefix) netip.Addr {
	return fromU32(toU32(p.Addr()) | uint32(uint64(1)<<(32-p.Bits())-1))
}

func toU32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func fromU32(u uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)})
}

// Allocator hands out the node slice's addresses and the host's published
// ports to containers. It is a plain value: its fields are the whole state,
// they marshal to JSON, and replaying the same Allocate and Release calls
// rebuilds the same value. Copies share the maps; use Clone for an
// independent copy. An Allocator is not safe for concurrent use.
//
// Every method that fails leaves the Allocator unchanged.
type Allocator struct {
	Slice netip.Prefix `json:"slice"`
	// Allocations maps each allocated address to the container holding it.
	Allocations map[netip.Addr]string `json:"allocations,omitempty"`
	// Ports maps each published host port ("8080/tcp") to the container
	// holding it.
	Ports map[string]string `json:"ports,omitempty"`
}

// NewAllocator returns an empty Allocator for a node slice, which must be a
// canonical IPv4 prefix, /30 or wider (ErrInvalidSpec otherwise).
func NewAllocator(slice netip.Prefix) (Allocator, error) {
	if err := checkSubnet(slice); err != nil {
		return Allocator{}, fmt.Errorf("%w: node slice: %v", ErrInvalidSpec, err)
	}
	return Allocator{Slice: slice}, nil
}

// Allocate gives container an address of the slice and the host ports its
// mappings publish, and returns the address.
//
// A valid preferred address is honoured when it is free and usable; one
// outside the slice, or the slice's network, gateway or broadcast address,
// fails with ErrInvalidSpec, and one held by another container with
// ErrAddressInUse naming the holder. Without a preferred address Allocate
// takes the lowest free usable address, and fails with ErrExhausted naming
// the slice when there is none. A host port held by another container fails
// with ErrAddressInUse, a port mapped twice in ports with ErrInvalidSpec.
//
// Asking again for what container already holds (the same address, or no
// preference, and the same host ports) returns its address unchanged, so a
// retried request is harmless; asking for anything else while it holds an
// allocation fails with ErrAlreadyExists.
func (a *Allocator) Allocate(container string, preferred netip.Addr, ports []PortMapping) (netip.Addr, error) {
	fail := func(class error, format string, args ...any) (netip.Addr, error) {
		return netip.Addr{}, fmt.Errorf("%w: container %q: %s", class, container, fmt.Sprintf(format, args...))
	}
	if err := checkSubnet(a.Slice); err != nil {
		return fail(ErrInvalidSpec, "allocator slice: %v", err)
	}
	if container == "" {
		return fail(ErrInvalidSpec, "the container must be named")
	}
	if err := checkPorts(ports); err != nil {
		return fail(ErrInvalidSpec, "ports%v", err)
	}
	keys := make([]string, len(ports))
	for i, p := range ports {
		keys[i] = portKey(p.Protocol, p.ExternalPort)
	}
	slices.Sort(keys)
	if held, ok := a.Lookup(container); ok {
		heldKeys := a.portsOf(container)
		if (!preferred.IsValid() || preferred == held) && slices.Equal(keys, heldKeys) {
			return held, nil
		}
		return fail(ErrAlreadyExists, "already holds %v and host ports [%s]; release them first", held, strings.Join(heldKeys, " "))
	}
	for _, k := range keys {
		if holder, ok := a.Ports[k]; ok {
			return fail(ErrAddressInUse, "host port %s is held by container %q", k, holder)
		}
	}
	ip := preferred
	if ip.IsValid() {
		if err := a.checkUsable(ip); err != nil {
			return fail(ErrInvalidSpec, "%v", err)
		}
		if holder, ok := a.Allocations[ip]; ok {
			return fail(ErrAddressInUse, "%v is held by container %q", ip, holder)
		}
	} else {
		first, last := UsableRange(a.Slice)
		for u := toU32(first); u <= toU32(last); u++ {
			if _, held := a.Allocations[fromU32(u)]; !held {
				ip = fromU32(u)
				break
			}
		}
		if !ip.IsValid() {
			return fail(ErrExhausted, "node slice %v is exhausted: all %d usable addresses are allocated",
				a.Slice, toU32(last)-toU32(first)+1)
		}
	}
	if a.Allocations == nil {
		a.Allocations = make(map[netip.Addr]string)
	}
	a.Allocations[ip] = container
	if len(keys) > 0 && a.Ports == nil {
		a.Ports = make(map[string]string, len(keys))
	}
	for _, k := range keys {
		a.Ports[k] = container
	}
	return ip, nil
}

func (a *Allocator) checkUsable(ip netip.Addr) error {
	switch first, last := UsableRange(a.Slice); {
	case !ip.Is4() || !a.Slice.Contains(ip):
		return fmt.Errorf("%v is outside node slice %v", ip, a.Slice)
	case ip == Gateway(a.Slice):
		return fmt.Errorf("%v is the gateway of node slice %v", ip, a.Slice)
	case ip.Less(first) || last.Less(ip):
		return fmt.Errorf("%v is the network or broadcast address of node slice %v", ip, a.Slice)
	}
	return nil
}

// Release frees the address and host ports container holds and returns the
// address; ok is false when it held nothing.
func (a *Allocator) Release(container string) (ip netip.Addr, ok bool) {
	ip, ok = a.Lookup(container)
	if ok {
		delete(a.Allocations, ip)
	}
	for k, holder := range a.Ports {
		if holder == container {
			delete(a.Ports, k)
		}
	}
	return ip, ok
}

// Lookup returns the address container holds.
func (a Allocator) Lookup(container string) (netip.Addr, bool) {
	var found netip.Addr
	for ip, holder := range a.Allocations {
		if holder == container && (!found.IsValid() || ip.Less(found)) {
			found = ip
		}
	}
	return found, found.IsValid()
}

// portsOf returns the host ports container holds, sorted.
func (a Allocator) portsOf(container string) []string {
	var keys []string
	for k, holder := range a.Ports {
		if holder == container {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys
}

// Clone returns a copy that shares nothing with a.
func (a Allocator) Clone() Allocator {
	return Allocator{Slice: a.Slice, Allocations: maps.Clone(a.Allocations), Ports: maps.Clone(a.Ports)}
}
