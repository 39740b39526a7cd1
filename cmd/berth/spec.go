package main

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
)

// specFlags holds the flags of run and create, which map docker's flags
// onto an events.ContainerSpec.
type specFlags struct {
	name        string
	cpus        float64
	memory      string
	env         []string
	envFiles    []string
	workdir     string
	user        string
	hostname    string
	entrypoint  string
	isolation   string
	ip          string
	network     string
	dns         []string
	dnsSearch   []string
	publish     []string
	volumes     []string
	labels      []string
	pull        string
	stopTimeout string
	detach      bool
}

func (f *specFlags) register(fs *pflag.FlagSet) {
	fs.StringVar(&f.name, "name", "", "container id (default: the image name and a random suffix)")
	fs.Float64Var(&f.cpus, "cpus", 0, "number of processors, fractions allowed")
	fs.StringVarP(&f.memory, "memory", "m", "", "memory limit: 512Mi, 2Gi, 512m (docker style, binary), 1048576")
	fs.StringArrayVarP(&f.env, "env", "e", nil, "set an environment variable: K=V, or K to copy it from this environment")
	fs.StringArrayVar(&f.envFiles, "env-file", nil, "read environment variables from a file of K=V lines")
	fs.StringVarP(&f.workdir, "workdir", "w", "", "working directory inside the container")
	fs.StringVarP(&f.user, "user", "u", "", "user the container's process runs as")
	fs.StringVar(&f.hostname, "hostname", "", "container host name")
	fs.StringVar(&f.entrypoint, "entrypoint", "", "override the image's entrypoint (a Windows command line)")
	fs.StringVar(&f.isolation, "isolation", "", "isolation: process or hyperv")
	fs.StringVar(&f.ip, "ip", "", "IPv4 address on the node's network (default: allocated)")
	fs.StringVar(&f.network, "network", "", "network: overlay (default) or none")
	fs.StringArrayVar(&f.dns, "dns", nil, "DNS server address (repeatable)")
	fs.StringArrayVar(&f.dnsSearch, "dns-search", nil, "DNS search domain (repeatable)")
	fs.StringArrayVarP(&f.publish, "publish", "p", nil, "publish a port: HOST:CONTAINER[/tcp|/udp] (repeatable)")
	fs.StringArrayVarP(&f.volumes, "volume", "v", nil, `mount a host directory: SOURCE:TARGET[:ro|:rw], e.g. 'D:\data:C:\data:ro' (repeatable)`)
	fs.StringArrayVarP(&f.labels, "label", "l", nil, "set a label: K=V (repeatable)")
	fs.StringVar(&f.pull, "pull", "", "pull policy: always, if_not_present (also: missing), never, newer")
	fs.StringVar(&f.stopTimeout, "stop-timeout", "", "grace period before a stop terminates the container: 30s, or seconds")
}

// flagError is an invalid flag value; it names the flag.
type flagError struct {
	flag  string
	value string
	err   error
}

func (e *flagError) Error() string {
	if e.value == "" {
		return fmt.Sprintf("invalid %s: %v", e.flag, e.err)
	}
	return fmt.Sprintf("invalid argument %q for %s: %v", e.value, e.flag, e.err)
}

func (e *flagError) Unwrap() error { return e.err }

func badFlag(flag, value string, err error) error {
	return &flagError{flag: flag, value: value, err: err}
}

// spec builds the container id and spec from the flags and the positional
// arguments IMAGE [COMMAND [ARG...]]. lookup reads this process's
// environment. Every error is a *flagError naming the flag or argument.
func (f *specFlags) spec(args []string, lookup func(string) (string, bool)) (string, events.ContainerSpec, error) {
	var s events.ContainerSpec
	if len(args) == 0 || args[0] == "" {
		return "", s, badFlag("IMAGE", "", errors.New("an image is required"))
	}
	s.Image.Ref = args[0]
	s.Command.Args = args[1:]
	s.Command.Workdir = f.workdir
	if f.entrypoint != "" {
		s.Command.Entrypoint = hcsdriver.SplitCommandLine(f.entrypoint)
	}
	s.User, s.Hostname = f.user, f.hostname
	s.Resources.CPU = f.cpus
	if f.memory != "" {
		m, err := parseMemory(f.memory)
		if err != nil {
			return "", s, badFlag("-m, --memory", f.memory, err)
		}
		s.Resources.Memory = m
	}
	s.Isolation = f.isolation
	if s.Isolation == "default" {
		s.Isolation = ""
	}
	s.Network = events.NetworkSpec{Mode: f.network, IP: f.ip, DNS: events.DNSSpec{Servers: f.dns, Search: f.dnsSearch}}
	s.Image.PullPolicy = f.pull
	if f.pull == "missing" {
		s.Image.PullPolicy = "if_not_present"
	}

	env := map[string]string{}
	for _, file := range f.envFiles {
		data, err := os.ReadFile(file)
		if err != nil {
			return "", s, badFlag("--env-file", file, err)
		}
		if err := parseEnvFile(data, lookup, env); err != nil {
			return "", s, badFlag("--env-file", file, err)
		}
	}
	for _, kv := range f.env {
		if err := setEnv(kv, lookup, env); err != nil {
			return "", s, badFlag("-e, --env", kv, err)
		}
	}
	if len(env) > 0 {
		s.Env = env
	}
	for _, kv := range f.labels {
		k, v, _ := strings.Cut(kv, "=")
		if k == "" {
			return "", s, badFlag("-l, --label", kv, errors.New("the label name is empty"))
		}
		if s.Labels == nil {
			s.Labels = map[string]string{}
		}
		s.Labels[k] = v
	}
	for _, p := range f.publish {
		pm, err := parsePort(p)
		if err != nil {
			return "", s, badFlag("-p, --publish", p, err)
		}
		s.Ports = append(s.Ports, pm)
	}
	for _, v := range f.volumes {
		m, err := parseVolume(v)
		if err != nil {
			return "", s, badFlag("-v, --volume", v, err)
		}
		s.Mounts = append(s.Mounts, m)
	}
	if f.stopTimeout != "" {
		d, err := parseTimeout(f.stopTimeout)
		if err != nil {
			return "", s, badFlag("--stop-timeout", f.stopTimeout, err)
		}
		s.Stop.Timeout = events.Duration(d)
	}
	if err := s.Validate(); err != nil {
		return "", s, badFlag(flagOfField(specFields, err.Error(), "container spec"), "", err)
	}

	id := f.name
	if id == "" {
		id = generateName(s.Image.Ref)
	}
	if err := events.ValidateContainerID(id); err != nil {
		return "", s, badFlag("--name", f.name, err)
	}
	return id, s, nil
}

// fieldFlag ties a field path, as a Validate method names it, to the flag
// that sets it.
type fieldFlag struct{ field, flag string }

// specFields maps spec field paths, as ContainerSpec.Validate names them, to
// the flag that sets them. Longer paths come first.
var specFields = []fieldFlag{
	{"spec.image.ref", "IMAGE"},
	{"spec.image.pull_policy", "--pull"},
	{"spec.command", "COMMAND"},
	{"spec.env", "-e, --env"},
	{"spec.hostname", "--hostname"},
	{"spec.user", "-u, --user"},
	{"spec.resources.cpu", "--cpus"},
	{"spec.resources.memory", "-m, --memory"},
	{"spec.isolation", "--isolation"},
	{"spec.network.mode", "--network"},
	{"spec.network.ip", "--ip"},
	{"spec.network.dns.servers", "--dns"},
	{"spec.ports", "-p, --publish"},
	{"spec.mounts", "-v, --volume"},
	{"spec.labels", "-l, --label"},
	{"spec.stop.timeout", "--stop-timeout"},
}

// flagOfField names the flag behind the first of fields that a validation
// message names, or def.
func flagOfField(fields []fieldFlag, msg, def string) string {
	for _, f := range fields {
		if strings.Contains(msg, f.field) {
			return f.flag
		}
	}
	return def
}

// parseMemory reads a memory size: the spec's form ("512Mi", "2Gi", "1G",
// a number of bytes) or docker's lower-case binary suffixes ("512m", "2g",
// "512mb").
func parseMemory(s string) (events.Size, error) {
	lower := strings.ToLower(s)
	for _, suf := range []struct{ docker, spec string }{
		{"kb", "Ki"}, {"mb", "Mi"}, {"gb", "Gi"}, {"tb", "Ti"}, {"b", ""},
		{"k", "Ki"}, {"m", "Mi"}, {"g", "Gi"}, {"t", "Ti"},
	} {
		if num, ok := strings.CutSuffix(s, suf.docker); ok && lower == s {
			return events.ParseSize(num + suf.spec)
		}
	}
	return events.ParseSize(s)
}

// parseTimeout reads a duration: a Go duration ("30s", "1m30s") or a whole
// number of seconds, as docker writes it.
func parseTimeout(s string) (time.Duration, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n < 0 {
			return 0, errors.New("must not be negative")
		}
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, errors.New("want a duration such as 30s, or a number of seconds")
	}
	if d < 0 {
		return 0, errors.New("must not be negative")
	}
	return d, nil
}

// setEnv adds one K=V (or K, copied from lookup when set) to env.
func setEnv(kv string, lookup func(string) (string, bool), env map[string]string) error {
	k, v, hasValue := strings.Cut(kv, "=")
	if k == "" {
		return errors.New("the variable name is empty")
	}
	if strings.ContainsAny(k, " \t") {
		return fmt.Errorf("the variable name %q contains white space", k)
	}
	if !hasValue {
		var ok bool
		if v, ok = lookup(k); !ok {
			return nil // like docker: an unset variable is left out
		}
	}
	env[k] = v
	return nil
}

// parseEnvFile reads docker's env-file format: one K=V per line, K alone to
// copy it from lookup, blank lines and lines starting with # ignored. Values
// are taken verbatim, without quote processing.
func parseEnvFile(data []byte, lookup func(string) (string, bool), env map[string]string) error {
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(nil, 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimLeft(strings.TrimSuffix(sc.Text(), "\r"), " \t")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if err := setEnv(line, lookup, env); err != nil {
			return fmt.Errorf("line %d: %w", n, err)
		}
	}
	return sc.Err()
}

// parsePort reads HOST:CONTAINER[/tcp|/udp].
func parsePort(s string) (events.PortMapping, error) {
	var pm events.PortMapping
	ports, proto, hasProto := strings.Cut(s, "/")
	if hasProto {
		if proto != "tcp" && proto != "udp" {
			return pm, fmt.Errorf("protocol %q is not tcp or udp", proto)
		}
		pm.Protocol = proto
	}
	parts := strings.Split(ports, ":")
	switch len(parts) {
	case 1:
		return pm, errors.New("a host port is required: write HOST:CONTAINER, such as 8080:80")
	case 2:
	default:
		return pm, errors.New("binding a host address is not supported: write HOST:CONTAINER, such as 8080:80")
	}
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 {
			what := "host"
			if i == 1 {
				what = "container"
			}
			return pm, fmt.Errorf("%s port %q is not a number in 1..65535", what, p)
		}
		if i == 0 {
			pm.HostPort = n
		} else {
			pm.ContainerPort = n
		}
	}
	return pm, nil
}

// parseVolume reads SOURCE:TARGET[:ro|:rw], where either path may be a
// Windows path with a drive letter ("D:\data", "c:/data"). A colon right
// after a single letter at the start of a path is read as a drive letter.
func parseVolume(s string) (events.Mount, error) {
	var m events.Mount
	raw := strings.Split(s, ":")
	var parts []string
	for i := 0; i < len(raw); i++ {
		p := raw[i]
		if len(p) == 1 && isLetter(p[0]) && i+1 < len(raw) && (strings.HasPrefix(raw[i+1], `\`) || strings.HasPrefix(raw[i+1], "/")) {
			p += ":" + raw[i+1]
			i++
		}
		parts = append(parts, p)
	}
	switch len(parts) {
	case 2:
	case 3:
		switch parts[2] {
		case "ro":
			m.ReadOnly = true
		case "rw":
		default:
			return m, fmt.Errorf("mode %q is not ro or rw", parts[2])
		}
	default:
		return m, errors.New(`want SOURCE:TARGET[:ro|:rw], such as 'D:\data:C:\data:ro'`)
	}
	m.Source, m.Target = parts[0], parts[1]
	if m.Source == "" || m.Target == "" {
		return m, errors.New("source and target must both be set")
	}
	return m, nil
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

// generateName makes a container id from the image's name and a random
// suffix, as in "nanoserver-4f1c2a".
func generateName(ref string) string {
	base := ref
	if i := strings.LastIndexAny(base, "/"); i >= 0 {
		base = base[i+1:]
	}
	if i := strings.IndexAny(base, ":@"); i >= 0 {
		base = base[:i]
	}
	var b strings.Builder
	for _, r := range strings.ToLower(base) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
		case b.Len() > 0 && b.Len() < 40:
			b.WriteByte('-')
		}
		if b.Len() >= 40 {
			break
		}
	}
	name := strings.Trim(b.String(), "-")
	if name == "" {
		name = "ctr"
	}
	var suffix [3]byte
	_, _ = rand.Read(suffix[:])
	return name + "-" + hex.EncodeToString(suffix[:])
}
