package main

import (
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthhq/berth/events"
)

func (c *cli) networkCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Configure and inspect the node's container network",
		Args: func(cmd *cobra.Command, a []string) error {
			if len(a) > 0 {
				return usageError(fmt.Errorf("unknown command %q for %q: want configure or inspect", a[0], cmd.CommandPath()))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.AddCommand(c.networkConfigureCmd(), c.networkInspectCmd())
	return cmd
}

// netFlags holds the flags of network configure.
type netFlags struct {
	clusterCIDR string
	nodeSlice   string
	typ         string
	adapter     string
	dns         []string
	dnsDomain   string
	dnsSearch   []string
}

func (f *netFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.clusterCIDR, "cluster-cidr", "", "the whole cluster's container range, such as 10.200.0.0/16 (required)")
	fs.StringVar(&f.nodeSlice, "node-slice", "", "this node's part of the cluster range, such as 10.200.1.0/24; containers get addresses from it (required)")
	fs.StringVar(&f.typ, "type", events.NetworkNAT, "network type: nat, l2bridge or transparent (transparent takes the adapter over: the host loses connectivity for a few seconds)")
	fs.StringVar(&f.adapter, "adapter", "", "physical adapter an l2bridge or transparent network binds to")
	fs.StringSliceVar(&f.dns, "dns", nil, "default DNS server of containers (repeatable, or comma-separated)")
	fs.StringVar(&f.dnsDomain, "dns-domain", "", "default DNS domain of containers")
	fs.StringSliceVar(&f.dnsSearch, "dns-search", nil, "default DNS search domains of containers (repeatable, or comma-separated)")
}

// netFields maps the fields NetworkConfig.Validate names to the flags that
// set them.
var netFields = []fieldFlag{
	{"network.cluster_cidr", "--cluster-cidr"},
	{"network.node_slice", "--node-slice"},
	{"network.type", "--type"},
	{"network.adapter", "--adapter"},
	{"network.dns.servers", "--dns"},
	{"network.dns.domain", "--dns-domain"},
	{"network.dns.search", "--dns-search"},
}

// config builds the network configuration from the flags. Every error is
// a *flagError naming the flag at fault.
func (f *netFlags) config() (events.NetworkConfig, error) {
	n := events.NetworkConfig{
		ClusterCIDR: f.clusterCIDR,
		NodeSlice:   f.nodeSlice,
		Type:        f.typ,
		Adapter:     f.adapter,
		DNS:         events.DNSSpec{Servers: f.dns, Domain: f.dnsDomain, Search: f.dnsSearch},
	}
	if err := n.Validate(); err != nil {
		return n, badFlag(flagOfField(netFields, err.Error(), "network configuration"), "", err)
	}
	return n, nil
}

func (c *cli) networkConfigureCmd() *cobra.Command {
	var f netFlags
	cmd := &cobra.Command{
		Use:   "configure --cluster-cidr CIDR --node-slice CIDR [flags]",
		Short: "Set the node's network: its address range, type and DNS defaults",
		Long: `Set the node's network. Containers created afterwards get an address from the
node slice, an endpoint on the network and the DNS defaults (a container's own
--dns flags override them). The agent creates the network on the host when the
first container needs it. Changing the slice, type or adapter is refused while
containers hold addresses; the DNS defaults and the cluster range can change at
any time.`,
		Example: `  berth network configure --cluster-cidr 10.200.0.0/16 --node-slice 10.200.1.0/24 \
    --dns 10.200.0.2 --dns-domain service.local --dns-search service.local,corp.local
  berth network configure --cluster-cidr 10.200.0.0/16 --node-slice 10.200.1.0/24 \
    --type l2bridge --adapter Ethernet0`,
		Args: args(0, 0, "no arguments"),
	}
	f.register(cmd.Flags())
	_ = cmd.MarkFlagRequired("cluster-cidr")
	_ = cmd.MarkFlagRequired("node-slice")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		cfg, err := f.config()
		if err != nil {
			return err
		}
		cl, err := c.connect()
		if err != nil {
			return err
		}
		res, err := cl.ConfigureNetwork(cmd.Context(), cfg)
		if err != nil {
			return err
		}
		if c.json("table") {
			return writeJSON(c.stdout, res, false)
		}
		fmt.Fprintf(c.stdout, "%s: %s network, node slice %s, gateway %s\n", res.Name, res.Type, res.NodeSlice, res.Gateway)
		return nil
	})
	return cmd
}

func (c *cli) networkInspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect",
		Short: "Show the node's network and its address allocations",
		Long:  "Show the node's network and its address allocations. With -o json, prints null when no network is configured.",
		Args:  args(0, 0, "no arguments"),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			cl, err := c.connect()
			if err != nil {
				return err
			}
			st, err := cl.State(cmd.Context(), 0)
			if err != nil {
				return err
			}
			if c.json("table") {
				return writeJSON(c.stdout, st.Network, true)
			}
			writeNetwork(c.stdout, st.Node, st.Network)
			return nil
		}),
	}
}

// writeNetwork writes the network one field per line, then its
// allocations in address order.
func writeNetwork(w io.Writer, node string, n *events.Network) {
	if n == nil {
		fmt.Fprintf(w, "No network is configured on node %s: see 'berth network configure --help'.\n", node)
		return
	}
	tw := newTable(w)
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(tw, "%s:\t%s\n", k, v)
		}
	}
	row("Name", n.Name)
	row("Type", n.Type)
	row("Adapter", n.Adapter)
	row("Cluster CIDR", n.ClusterCIDR)
	row("Node slice", n.NodeSlice)
	row("Gateway", n.Gateway)
	row("DNS", dnsString(n.DNS))
	row("HCN ID", n.ID)
	row("Phase", string(n.Phase))
	row("Error", n.Error)
	row("Allocations", fmt.Sprint(len(n.Allocations)))
	row("Seq", fmt.Sprint(n.Seq))
	_ = tw.Flush()
	if len(n.Allocations) == 0 {
		return
	}
	ips := make([]netip.Addr, 0, len(n.Allocations))
	for ip := range n.Allocations {
		if a, err := netip.ParseAddr(ip); err == nil {
			ips = append(ips, a)
		}
	}
	slices.SortFunc(ips, netip.Addr.Compare)
	fmt.Fprintln(w)
	tw = newTable(w)
	fmt.Fprintln(tw, "IP\tCONTAINER")
	for _, ip := range ips {
		fmt.Fprintf(tw, "%s\t%s\n", ip, n.Allocations[ip.String()])
	}
	_ = tw.Flush()
}

// dnsString writes a resolver configuration on one line:
// "10.200.0.2, domain service.local, search a.local b.local".
func dnsString(d events.DNSSpec) string {
	var parts []string
	if len(d.Servers) > 0 {
		parts = append(parts, strings.Join(d.Servers, " "))
	}
	if d.Domain != "" {
		parts = append(parts, "domain "+d.Domain)
	}
	if len(d.Search) > 0 {
		parts = append(parts, "search "+strings.Join(d.Search, " "))
	}
	return strings.Join(parts, ", ")
}
