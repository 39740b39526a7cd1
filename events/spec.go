package events

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// ContainerSpec is what a create or run command asks for. Field names are
// the JSON spelling used on the wire; see DESIGN §4.
type ContainerSpec struct {
	Image     ImageSpec         `json:"image"`
	Command   CommandSpec       `json:"command,omitzero"`
	Env       map[string]string `json:"env,omitempty"`
	User      string            `json:"user,omitempty"`
	Hostname  string            `json:"hostname,omitempty"`
	Resources Resources         `json:"resources,omitzero"`
	Isolation string            `json:"isolation,omitempty"` // "process" (default) or "hyperv"
	Network   NetworkSpec       `json:"network,omitzero"`
	Ports     []PortMapping     `json:"ports,omitempty"`
	Mounts    []Mount           `json:"mounts,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
	Stop      StopSpec          `json:"stop,omitzero"`
}

// ImageSpec names the image and how to obtain it.
type ImageSpec struct {
	Ref        string `json:"ref"`
	PullPolicy string `json:"pull_policy,omitempty"` // always, if_not_present (default), never, newer
}

// CommandSpec overrides the image's entrypoint, arguments and working directory.
type CommandSpec struct {
	Entrypoint []string `json:"entrypoint,omitempty"`
	Args       []string `json:"args,omitempty"`
	Workdir    string   `json:"workdir,omitempty"`
}

// Resources limits a container. CPU is a number of processors, fractions allowed.
type Resources struct {
	CPU    float64 `json:"cpu,omitempty"`
	Memory Size    `json:"memory,omitempty"`
}

// NetworkSpec attaches a container to the node's network.
type NetworkSpec struct {
	Mode string  `json:"mode,omitempty"` // "overlay" (default) or "none"
	IP   string  `json:"ip,omitempty"`   // explicit address; allocated when empty
	DNS  DNSSpec `json:"dns,omitzero"`
}

// DNSSpec configures the container's resolver.
type DNSSpec struct {
	Servers []string `json:"servers,omitempty"`
	Domain  string   `json:"domain,omitempty"`
	Search  []string `json:"search,omitempty"`
}

// PortMapping publishes a container port on the host.
type PortMapping struct {
	HostPort      int    `json:"host_port"`
	ContainerPort int    `json:"container_port"`
	Protocol      string `json:"protocol,omitempty"` // tcp (default) or udp
}

// Mount maps a host directory into the container.
type Mount struct {
	Source   string `json:"source"`
	Target   string `json:"target"`
	ReadOnly bool   `json:"readonly,omitempty"`
}

// StopSpec says how a container is stopped by default.
type StopSpec struct {
	Timeout Duration `json:"timeout,omitempty"`
}

// Limits on spec contents.
const (
	maxArgs       = 4096
	maxEnv        = 4096
	maxLabels     = 256
	maxStringLen  = 32 << 10
	MaxStopTimout = Duration(3600e9)
)

// Validate checks the spec and returns an ErrInvalid error naming the first
// field at fault. It does not consult the host: an image that does not
// exist or an address already taken are found later.
func (s *ContainerSpec) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: spec.%s: %s", ErrInvalid, field, fmt.Sprintf(format, a...))
	}
	if strings.TrimSpace(s.Image.Ref) == "" {
		return bad("image.ref", "must not be empty")
	}
	if len(s.Image.Ref) > 1024 || strings.ContainsAny(s.Image.Ref, " \t\r\n") {
		return bad("image.ref", "%q is not an image reference", s.Image.Ref)
	}
	switch s.Image.PullPolicy {
	case "", "always", "if_not_present", "never", "newer":
	default:
		return bad("image.pull_policy", "%q is not one of always, if_not_present, never, newer", s.Image.PullPolicy)
	}
	if n := len(s.Command.Entrypoint) + len(s.Command.Args); n > maxArgs {
		return bad("command", "%d arguments, more than %d", n, maxArgs)
	}
	if i, ok := badArg(slices.Concat(s.Command.Entrypoint, s.Command.Args)); ok {
		return bad("command", "argument %d is longer than %d bytes or contains NUL", i, maxStringLen)
	}
	if err := checkEnv(s.Env); err != "" {
		return bad("env", "%s", err)
	}
	if len(s.Hostname) > 63 || strings.ContainsAny(s.Hostname, " \t./\\") {
		return bad("hostname", "%q is not a host name (at most 63 characters, no dots or spaces)", s.Hostname)
	}
	if len(s.User) > 256 || strings.ContainsRune(s.User, 0) {
		return bad("user", "%q is not a user name", s.User)
	}
	if s.Resources.CPU < 0 || s.Resources.CPU > 1024 {
		return bad("resources.cpu", "%v is outside 0..1024", s.Resources.CPU)
	}
	if s.Resources.Memory != 0 && s.Resources.Memory < 1<<20 {
		return bad("resources.memory", "%s is below the 1Mi minimum", s.Resources.Memory)
	}
	switch s.Isolation {
	case "", "process", "hyperv":
	default:
		return bad("isolation", "%q is not one of process, hyperv", s.Isolation)
	}
	switch s.Network.Mode {
	case "", "overlay", "none":
	default:
		return bad("network.mode", "%q is not one of overlay, none", s.Network.Mode)
	}
	if s.Network.IP != "" {
		if a, err := netip.ParseAddr(s.Network.IP); err != nil || !a.Is4() {
			return bad("network.ip", "%q is not an IPv4 address", s.Network.IP)
		}
		if s.Network.Mode == "none" {
			return bad("network.ip", "an address makes no sense with network mode none")
		}
	}
	for i, d := range s.Network.DNS.Servers {
		if _, err := netip.ParseAddr(d); err != nil {
			return bad(fmt.Sprintf("network.dns.servers[%d]", i), "%q is not an IP address", d)
		}
	}
	seen := map[string]int{}
	for i, p := range s.Ports {
		f := fmt.Sprintf("ports[%d]", i)
		if p.HostPort < 1 || p.HostPort > 65535 {
			return bad(f+".host_port", "%d is outside 1..65535", p.HostPort)
		}
		if p.ContainerPort < 1 || p.ContainerPort > 65535 {
			return bad(f+".container_port", "%d is outside 1..65535", p.ContainerPort)
		}
		proto := p.Protocol
		switch proto {
		case "":
			proto = "tcp"
		case "tcp", "udp":
		default:
			return bad(f+".protocol", "%q is not one of tcp, udp", p.Protocol)
		}
		key := fmt.Sprintf("%d/%s", p.HostPort, proto)
		if j, dup := seen[key]; dup {
			return bad(f+".host_port", "%s is already mapped by ports[%d]", key, j)
		}
		seen[key] = i
	}
	for i, m := range s.Mounts {
		f := fmt.Sprintf("mounts[%d]", i)
		if m.Source == "" || m.Target == "" {
			return bad(f, "source and target must both be set")
		}
		if _, err := cleanWindowsPath(m.Source); err != nil {
			return bad(f+".source", "%v", err)
		}
		if _, err := cleanWindowsPath(m.Target); err != nil {
			return bad(f+".target", "%v", err)
		}
	}
	if len(s.Labels) > maxLabels {
		return bad("labels", "%d labels, more than %d", len(s.Labels), maxLabels)
	}
	for k, v := range s.Labels {
		if k == "" || len(k)+len(v) > maxStringLen {
			return bad("labels", "label %q: keys must be non-empty and short", k)
		}
	}
	if s.Stop.Timeout < 0 || s.Stop.Timeout > MaxStopTimout {
		return bad("stop.timeout", "%s is outside 0s..1h", s.Stop.Timeout.Std())
	}
	return nil
}

// badArg returns the index of the first argument longer than maxStringLen
// or holding NUL.
func badArg(args []string) (int, bool) {
	for i, a := range args {
		if len(a) > maxStringLen || strings.ContainsRune(a, 0) {
			return i, true
		}
	}
	return 0, false
}

// checkEnv says what is wrong with an environment, or "".
func checkEnv(env map[string]string) string {
	if len(env) > maxEnv {
		return fmt.Sprintf("%d variables, more than %d", len(env), maxEnv)
	}
	for k, v := range env {
		if k == "" || strings.ContainsAny(k, "=\x00") || strings.ContainsRune(v, 0) || len(k)+len(v) > maxStringLen {
			return fmt.Sprintf("variable %q: names must be non-empty without '=' or NUL, values without NUL", k)
		}
	}
	return ""
}
