package actors

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/netdriver"
)

// The network actor owns the node's network configuration, the network's
// creation on the host and the table of container addresses. Containers
// lease an address from it and release it; their operations create and
// delete their endpoints themselves.
//
// Endpoint calls stay in the container's operation goroutine, because the
// container owns its endpoint (DESIGN §5) and brackets it with its own
// intent and outcome events, in order with its compute system; the network
// actor would only relay them. What must be serialized across containers
// stays here: the network is created once, by one goroutine the actor owns,
// while leases wait in the actor's state, and addresses are handed out one
// message at a time. The actor itself never blocks: journal appends and
// host calls run in goroutines that report back with a message.
type networkActor struct {
	n *Node
	s *netState
}

// netState is the network actor's state. It lives in the Node, so that an
// actor rebuilt after a panic continues with it (the ensure or configure in
// flight reports to the rebuilt actor).
type netState struct {
	cfg *events.NetworkConfiguredData // nil until configured
	// net is the configured network; its ID is empty until the network is
	// created (or adopted) on the host.
	net     netdriver.Network
	cluster netip.Prefix
	alloc   netdriver.Allocator

	busy     bool // an ensure or a configure is in flight
	eager    bool // create the network as soon as the actor is idle
	waiting  []*leaseReq
	commands []events.Command // configure commands waiting for the actor to be idle
	renewing []chan error     // reconciliation waits for the network's re-creation
}

// Messages to the network actor.
type (
	// leaseReq asks for an address for container: ip when valid, the
	// lowest free one otherwise, with host ports for ports. The reply is
	// nil when no network is configured.
	leaseReq struct {
		container string
		ip        netip.Addr
		ports     []netdriver.PortMapping
		reply     chan result[*lease]
	}
	// releaseMsg frees what container holds. It is sent once the event
	// that releases the address in the fold is durable.
	releaseMsg struct{ container string }
	ensured    struct {
		net netdriver.Network
		err error
	}
	configured struct {
		d      *events.NetworkConfiguredData // nil when nothing was recorded
		answer *answer
	}
	// renewNetwork asks for the network's creation again: the journal says
	// it was created, the host no longer has it. done receives the outcome.
	renewNetwork struct{ done chan error }
)

// lease is an address on the node's network for one container, with what
// its endpoint needs to know of the network.
type lease struct {
	ip      netip.Addr
	net     netdriver.Network // with the host's id
	cluster netip.Prefix
	dns     events.DNSSpec // the network's default
}

// newNetState restores the network actor's state from the fold: the
// configuration, whether the network exists, and every container's
// address and host ports.
func newNetState(st *events.State, n *Node) *netState {
	s := &netState{}
	nw := st.Network
	if nw == nil {
		return s
	}
	if err := s.install(nw.NetworkConfiguredData); err != nil {
		n.cfg.Logger.Error().Err(err).Msg("the journal's network configuration does not parse; networking is off until network.configure")
		return &netState{}
	}
	if nw.Phase == events.NetworkPhaseCreated {
		s.net.ID = nw.ID
	}
	s.eager = s.net.ID == ""
	for _, c := range st.Containers {
		if c.Endpoint == nil {
			continue
		}
		ip, _ := netip.ParseAddr(c.Endpoint.IP)
		if _, err := s.alloc.Allocate(c.ID, ip, hostPorts(c.Endpoint.Ports)); err != nil {
			n.cfg.Logger.Error().Err(err).Str("container", c.ID).Msg("address from the journal not restored")
		}
	}
	return s
}

// install installs d. A change of the network's shape empties the
// allocation table (the caller has checked it is empty) and leaves the
// network to be created.
func (s *netState) install(d events.NetworkConfiguredData) error {
	cluster, slice, err := netdriver.ParseSlice(d.ClusterCIDR, d.NodeSlice)
	if err != nil {
		return err
	}
	gw, err := netip.ParseAddr(d.Gateway)
	if err != nil {
		return fmt.Errorf("%w: gateway %q: %v", netdriver.ErrInvalidSpec, d.Gateway, err)
	}
	dns, err := hostDNS(d.DNS)
	if err != nil {
		return err
	}
	if s.cfg == nil || len(s.cfg.ShapeChanges(d)) > 0 {
		if s.alloc, err = netdriver.NewAllocator(slice); err != nil {
			return err
		}
		s.net.ID = ""
	}
	s.cfg, s.cluster = &d, cluster
	s.net.NetworkSpec = netdriver.NetworkSpec{Name: d.Name, Type: netdriver.NetworkType(d.Type), Subnet: slice,
		Gateway: gw, Adapter: d.Adapter, DNS: dns}
	return nil
}

func (a *networkActor) Receive(ctx actor.Context) {
	if hook := receiveHook.Load(); hook != nil {
		(*hook)("", ctx.Message())
	}
	s := a.s
	switch m := ctx.Message().(type) {
	case *actor.Started:
		a.pump(ctx)
	case *leaseReq:
		s.waiting = append(s.waiting, m)
		a.pump(ctx)
	case *releaseMsg:
		s.alloc.Release(m.container)
	case *cmdMsg:
		s.commands = append(s.commands, m.cmd)
		a.pump(ctx)
	case *renewNetwork:
		s.net.ID, s.eager = "", true
		s.renewing = append(s.renewing, m.done)
		a.pump(ctx)
	case *ensured:
		s.busy = false
		if m.err != nil {
			for _, w := range s.waiting {
				w.reply <- result[*lease]{err: m.err}
			}
			s.waiting = nil
		} else {
			s.net.ID = m.net.ID
		}
		for _, done := range s.renewing {
			done <- m.err
		}
		s.renewing = nil
		a.pump(ctx)
	case *configured:
		s.busy = false
		if m.d != nil {
			if err := s.install(*m.d); err != nil { // checked before it was recorded
				a.n.cfg.Logger.Error().Err(err).Msg("recorded network configuration not installed")
			}
			s.eager = s.net.ID == ""
		}
		ctx.Send(ctx.Parent(), m.answer)
		a.pump(ctx)
	}
}

// pump starts what the actor can do next: a queued configure, then the
// network's creation when leases wait for it or it is due, and otherwise
// it serves the waiting leases.
func (a *networkActor) pump(ctx actor.Context) {
	s := a.s
	switch {
	case s.busy:
	case len(s.commands) > 0:
		cmd := s.commands[0]
		s.commands = s.commands[1:]
		a.configure(ctx, cmd)
	case s.cfg != nil && s.net.ID == "" && (s.eager || len(s.waiting) > 0):
		a.ensure(ctx)
	default:
		for _, w := range s.waiting {
			w.reply <- a.lease(w)
		}
		s.waiting = nil
	}
}

func (a *networkActor) lease(w *leaseReq) result[*lease] {
	s := a.s
	if s.cfg == nil {
		return result[*lease]{}
	}
	ip, err := s.alloc.Allocate(w.container, w.ip, w.ports)
	if err != nil {
		return result[*lease]{err: fmt.Errorf("%w: %v", netdriver.Class(err), err)}
	}
	// The configuration's slices are replaced, never written to, so the
	// lease may share them.
	return result[*lease]{v: &lease{ip: ip, net: s.net, cluster: s.cluster, dns: s.cfg.DNS}}
}

// ensure creates the network on the host, or adopts the one there, in a
// goroutine; the result arrives as an ensured message.
func (a *networkActor) ensure(ctx actor.Context) {
	s, n, self := a.s, a.n, ctx.Self()
	s.busy, s.eager = true, false
	spec := s.net.NetworkSpec
	n.goOwned(func() {
		nw, err := n.ensureNetwork(n.ctx, spec)
		n.sys.Root.Send(self, &ensured{net: nw, err: err})
	})
}

// ensureNetwork records the intent, ensures the network on the host and
// records the outcome. A network of this name whose shape differs is left
// from an earlier configuration (the name carries the owner tag): it is
// replaced, which the host refuses while it has endpoints.
func (n *Node) ensureNetwork(ctx context.Context, spec netdriver.NetworkSpec) (netdriver.Network, error) {
	event := func(typ string, data any) events.Event { return events.NewEvent(n.cfg.Node, typ, spec.Name, "", data) }
	if _, err := n.cfg.Journal.Append(ctx, event(events.NetworkCreating, nil)); err != nil {
		return netdriver.Network{}, journalErr(err)
	}
	drv := n.cfg.Network
	var nw netdriver.Network
	err := n.hostCall(ctx, "network.ensure", func() (err error) {
		nw, err = drv.EnsureNetwork(ctx, spec)
		if errors.Is(err, netdriver.ErrAlreadyExists) {
			n.cfg.Logger.Info().Err(err).Str("network", spec.Name).Msg("replacing the network of an earlier configuration")
			if err = drv.DeleteNetwork(ctx, spec.Name); err == nil {
				nw, err = drv.EnsureNetwork(ctx, spec)
			}
		}
		return err
	})
	outcome := event(events.NetworkCreated, events.NetworkCreatedData{ID: nw.ID})
	if err != nil {
		err = fmt.Errorf("%w: network %s: %w", netdriver.Class(err), spec.Name, err)
		outcome = event(events.NetworkCreateFailed, failure(err))
	}
	if _, aerr := n.cfg.Journal.Append(ctx, outcome); aerr != nil {
		return netdriver.Network{}, journalErr(aerr)
	}
	return nw, err
}

// configure checks a network.configure command and records it in a
// goroutine; the result arrives as a configured message.
func (a *networkActor) configure(ctx actor.Context, cmd events.Command) {
	s, n, self := a.s, a.n, ctx.Self()
	s.busy = true
	d, err := a.check(cmd)
	var evs []events.Event
	if err == nil {
		evs = append(evs, events.NewEvent(n.cfg.Node, events.NetworkConfigured, d.Name, cmd.ID, d))
	}
	evs = append(evs, completed(n.cfg.Node, cmd, d, err))
	n.goOwned(func() {
		m := &configured{answer: &answer{id: cmd.ID, reply: events.NewReply(cmd.ID, d, err)}}
		if _, aerr := n.cfg.Journal.Append(n.ctx, evs...); aerr != nil {
			m.answer.reply = events.NewReply(cmd.ID, nil, journalErr(aerr))
		} else if err == nil {
			m.d = d
		}
		n.sys.Root.Send(self, m)
	})
}

// check validates a configuration and derives the network's name and
// gateway. Changing the network's shape while containers hold addresses
// is a conflict.
func (a *networkActor) check(cmd events.Command) (*events.NetworkConfiguredData, error) {
	if err := cmd.Validate(); err != nil {
		return nil, err
	}
	c := *cmd.Network
	c.DNS.Servers, c.DNS.Search = slices.Clone(c.DNS.Servers), slices.Clone(c.DNS.Search)
	slice := netip.MustParsePrefix(c.NodeSlice) // Validate parsed it
	d := &events.NetworkConfiguredData{Name: a.n.cfg.Owner + "-overlay", NetworkConfig: c, Gateway: netdriver.Gateway(slice).String()}
	s := a.s
	if s.cfg == nil || len(s.alloc.Allocations) == 0 {
		return d, nil
	}
	if changed := s.cfg.ShapeChanges(*d); len(changed) > 0 {
		return nil, fmt.Errorf("%w: network: %d containers hold addresses of node slice %s: remove them before changing the network's %s",
			events.ErrConflict, len(s.alloc.Allocations), s.cfg.NodeSlice, strings.Join(changed, ", "))
	}
	return d, nil
}

// lease asks the network actor for an address for container. It returns
// nil when the node has no network: networking is off (no network driver)
// or no network is configured.
func (n *Node) lease(ctx context.Context, container string, ip netip.Addr, ports []netdriver.PortMapping) (*lease, error) {
	pid := n.netPID.Load()
	if pid == nil {
		return nil, nil
	}
	c := make(chan result[*lease], 1)
	n.sys.Root.Send(pid, &leaseReq{container: container, ip: ip, ports: ports, reply: c})
	select {
	case r := <-c:
		return r.v, r.err
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: waiting for an address: %v", events.ErrUnavailable, ctx.Err())
	}
}

// release frees the address and host ports container holds. Callers send
// it once the event that releases them in the fold is durable, so that no
// other container's endpoint_creating reaches the journal first.
func (n *Node) release(container string) {
	if pid := n.netPID.Load(); pid != nil {
		n.sys.Root.Send(pid, &releaseMsg{container: container})
	}
}

// hostPorts maps a spec's port mappings onto the host's, tcp by default.
func hostPorts(ports []events.PortMapping) []netdriver.PortMapping {
	var out []netdriver.PortMapping
	for _, p := range ports {
		out = append(out, netdriver.PortMapping{Protocol: netdriver.Protocol(cmp.Or(p.Protocol, string(netdriver.TCP))),
			InternalPort: uint16(p.ContainerPort), ExternalPort: uint16(p.HostPort)})
	}
	return out
}

// hostDNS parses a resolver configuration.
func hostDNS(d events.DNSSpec) (netdriver.DNS, error) {
	out := netdriver.DNS{Domain: d.Domain, Search: slices.Clone(d.Search)}
	for _, s := range d.Servers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return netdriver.DNS{}, fmt.Errorf("%w: dns server %q: %v", netdriver.ErrInvalidSpec, s, err)
		}
		out.Servers = append(out.Servers, a)
	}
	return out, nil
}
