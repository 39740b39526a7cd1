package main

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/berthhq/berth/events"
)

func TestParseVolume(t *testing.T) {
	tests := []struct {
		in      string
		want    events.Mount
		wantErr string
	}{
		{`D:\data:C:\data`, events.Mount{Source: `D:\data`, Target: `C:\data`}, ""},
		{`D:\data:C:\data:ro`, events.Mount{Source: `D:\data`, Target: `C:\data`, ReadOnly: true}, ""},
		{`D:\data:C:\data:rw`, events.Mount{Source: `D:\data`, Target: `C:\data`}, ""},
		{`d:/data:c:/app/data:ro`, events.Mount{Source: `d:/data`, Target: `c:/app/data`, ReadOnly: true}, ""},
		{`C:\:C:\host`, events.Mount{Source: `C:\`, Target: `C:\host`}, ""},
		{`\\server\share\x:C:\x`, events.Mount{Source: `\\server\share\x`, Target: `C:\x`}, ""},
		{`cache:C:\cache`, events.Mount{Source: "cache", Target: `C:\cache`}, ""},
		{`a:C:\a:ro`, events.Mount{Source: "a", Target: `C:\a`, ReadOnly: true}, ""},
		{`D:\data with space:C:\data`, events.Mount{Source: `D:\data with space`, Target: `C:\data`}, ""},
		{`C:\data`, events.Mount{}, "SOURCE:TARGET"},
		{`D:\data:C:\data:rx`, events.Mount{}, `mode "rx"`},
		{`D:\data:C:\data:ro:extra`, events.Mount{}, "SOURCE:TARGET"},
		{`:C:\data`, events.Mount{}, "both be set"},
		{``, events.Mount{}, "SOURCE:TARGET"},
	}
	for _, tt := range tests {
		got, err := parseVolume(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parseVolume(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parseVolume(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParsePort(t *testing.T) {
	tests := []struct {
		in      string
		want    events.PortMapping
		wantErr string
	}{
		{"8080:80", events.PortMapping{HostPort: 8080, ContainerPort: 80}, ""},
		{"53:53/udp", events.PortMapping{HostPort: 53, ContainerPort: 53, Protocol: "udp"}, ""},
		{"443:8443/tcp", events.PortMapping{HostPort: 443, ContainerPort: 8443, Protocol: "tcp"}, ""},
		{"80", events.PortMapping{}, "host port is required"},
		{"127.0.0.1:8080:80", events.PortMapping{}, "host address"},
		{"8080:80/sctp", events.PortMapping{}, `"sctp"`},
		{"0:80", events.PortMapping{}, "host port"},
		{"8080:70000", events.PortMapping{}, "container port"},
		{"http:80", events.PortMapping{}, "host port"},
	}
	for _, tt := range tests {
		got, err := parsePort(tt.in)
		if tt.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("parsePort(%q) error = %v, want %q", tt.in, err, tt.wantErr)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("parsePort(%q) = %+v, %v; want %+v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseMemory(t *testing.T) {
	tests := []struct {
		in   string
		want events.Size
		ok   bool
	}{
		{"512Mi", 512 << 20, true},
		{"2Gi", 2 << 30, true},
		{"512m", 512 << 20, true},
		{"512mb", 512 << 20, true},
		{"2g", 2 << 30, true},
		{"64k", 64 << 10, true},
		{"1G", 1e9, true},
		{"1048576", 1 << 20, true},
		{"4096b", 4096, true},
		{"lots", 0, false},
		{"-1Mi", 0, false},
		{"1.5Gi", 0, false},
	}
	for _, tt := range tests {
		got, err := parseMemory(tt.in)
		if (err == nil) != tt.ok || got != tt.want {
			t.Errorf("parseMemory(%q) = %d, %v; want %d (ok %v)", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestParseTimeoutAndSince(t *testing.T) {
	for in, want := range map[string]time.Duration{"10": 10 * time.Second, "0": 0, "1m30s": 90 * time.Second, "250ms": 250 * time.Millisecond} {
		if got, err := parseTimeout(in); err != nil || got != want {
			t.Errorf("parseTimeout(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"-1", "-5s", "soon", ""} {
		if _, err := parseTimeout(in); err == nil {
			t.Errorf("parseTimeout(%q) succeeded", in)
		}
	}
	now := time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"10m":                  now.Add(-10 * time.Minute),
		"2026-01-01T00:00:00Z": time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC),
	} {
		if got, err := parseSince(in, now); err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"-10m", "yesterday", "2026-01-01"} {
		if _, err := parseSince(in, now); err == nil {
			t.Errorf("parseSince(%q) succeeded", in)
		}
	}
}

func TestEnv(t *testing.T) {
	lookup := func(k string) (string, bool) {
		v, ok := map[string]string{"HOME_DIR": `C:\Users\x`}[k]
		return v, ok
	}
	env := map[string]string{}
	file := []byte("# settings\r\nMODE=prod\n\n  LEVEL=debug=verbose\nHOME_DIR\nUNSET\nQUOTED=\"kept\"\n")
	if err := parseEnvFile(file, lookup, env); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"MODE": "prod", "LEVEL": "debug=verbose", "HOME_DIR": `C:\Users\x`, "QUOTED": `"kept"`}
	if !reflect.DeepEqual(env, want) {
		t.Errorf("env file = %v, want %v", env, want)
	}
	if err := parseEnvFile([]byte("OK=1\nBAD NAME=1\n"), lookup, env); err == nil || !strings.Contains(err.Error(), "line 2") {
		t.Errorf("env file with a bad name: %v, want an error naming line 2", err)
	}
	for _, bad := range []string{"=v", ""} {
		if err := setEnv(bad, lookup, env); err == nil {
			t.Errorf("setEnv(%q) succeeded", bad)
		}
	}
}

// parseRun parses run's flags and arguments as the command does.
func parseRun(t *testing.T, args ...string) (string, events.ContainerSpec, error) {
	t.Helper()
	var f specFlags
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	fs.SetInterspersed(false)
	f.register(fs)
	if err := fs.Parse(args); err != nil {
		return "", events.ContainerSpec{}, err
	}
	return f.spec(fs.Args(), func(k string) (string, bool) { return map[string]string{"TOKEN": "s3cret"}[k], k == "TOKEN" })
}

func TestSpecFromFlags(t *testing.T) {
	envFile := filepath.Join(t.TempDir(), "app.env")
	if err := os.WriteFile(envFile, []byte("MODE=dev\nREGION=west\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	id, s, err := parseRun(t,
		"--name", "web-rep-1", "--cpus", "1.5", "--memory", "512Mi",
		"--env-file", envFile, "-e", "MODE=prod", "-e", "TOKEN", "-e", "LIST=a,b",
		"-w", `C:\app`, "-u", "ContainerUser", "--hostname", "web-1",
		"--entrypoint", `cmd /c`, "--isolation", "process",
		"--ip", "10.200.0.18", "--network", "overlay", "--dns", "10.200.0.2", "--dns-search", "service.local",
		"-p", "8080:80", "-p", "53:53/udp", "-v", `D:\data:C:\data:ro`, "-l", "service=web", "-l", "tier",
		"--pull", "missing", "--stop-timeout", "30",
		"mcr.microsoft.com/windows/nanoserver:ltsc2022", "echo", "hi", "-n", "--not-a-flag")
	if err != nil {
		t.Fatal(err)
	}
	want := events.ContainerSpec{
		Image:     events.ImageSpec{Ref: "mcr.microsoft.com/windows/nanoserver:ltsc2022", PullPolicy: "if_not_present"},
		Command:   events.CommandSpec{Entrypoint: []string{"cmd", "/c"}, Args: []string{"echo", "hi", "-n", "--not-a-flag"}, Workdir: `C:\app`},
		Env:       map[string]string{"MODE": "prod", "REGION": "west", "TOKEN": "s3cret", "LIST": "a,b"},
		User:      "ContainerUser",
		Hostname:  "web-1",
		Resources: events.Resources{CPU: 1.5, Memory: 512 << 20},
		Isolation: "process",
		Network:   events.NetworkSpec{Mode: "overlay", IP: "10.200.0.18", DNS: events.DNSSpec{Servers: []string{"10.200.0.2"}, Search: []string{"service.local"}}},
		Ports:     []events.PortMapping{{HostPort: 8080, ContainerPort: 80}, {HostPort: 53, ContainerPort: 53, Protocol: "udp"}},
		Mounts:    []events.Mount{{Source: `D:\data`, Target: `C:\data`, ReadOnly: true}},
		Labels:    map[string]string{"service": "web", "tier": ""},
		Stop:      events.StopSpec{Timeout: events.Duration(30 * time.Second)},
	}
	if id != "web-rep-1" || !reflect.DeepEqual(s, want) {
		t.Errorf("id %q, spec\n%+v\nwant\n%+v", id, s, want)
	}
}

func TestSpecFromFlags_Errors(t *testing.T) {
	tests := []struct {
		args []string
		flag string // the flag the error must name
	}{
		{[]string{"--memory", "lots", "img"}, "--memory"},
		{[]string{"--memory", "10", "img"}, "--memory"},
		{[]string{"-p", "80", "img"}, "--publish"},
		{[]string{"-p", "8080:80", "-p", "8080:81", "img"}, "--publish"},
		{[]string{"-v", `C:\data`, "img"}, "--volume"},
		{[]string{"-e", "=x", "img"}, "--env"},
		{[]string{"--env-file", "/does/not/exist", "img"}, "--env-file"},
		{[]string{"-l", "=x", "img"}, "--label"},
		{[]string{"--cpus", "-1", "img"}, "--cpus"},
		{[]string{"--isolation", "vm", "img"}, "--isolation"},
		{[]string{"--network", "bridge", "img"}, "--network"},
		{[]string{"--ip", "fe80::1", "img"}, "--ip"},
		{[]string{"--dns", "dns.local", "img"}, "--dns"},
		{[]string{"--pull", "sometimes", "img"}, "--pull"},
		{[]string{"--stop-timeout", "2h", "img"}, "--stop-timeout"},
		{[]string{"--stop-timeout", "soon", "img"}, "--stop-timeout"},
		{[]string{"--hostname", "web.example.com", "img"}, "--hostname"},
		{[]string{"--name", "Web_1", "img"}, "--name"},
		{[]string{"--name", "web-1"}, "IMAGE"},
	}
	for _, tt := range tests {
		_, _, err := parseRun(t, tt.args...)
		var fe *flagError
		if !errors.As(err, &fe) || !strings.Contains(err.Error(), tt.flag) {
			t.Errorf("%v: error %v, want a flag error naming %s", tt.args, err, tt.flag)
		}
	}
}

func TestGeneratedName(t *testing.T) {
	for ref, prefix := range map[string]string{
		"mcr.microsoft.com/windows/nanoserver:ltsc2022": "nanoserver-",
		"registry:5000/team/Web_App@sha256:abc":         "web-app-",
		"img":                                           "img-",
		"___":                                           "ctr-",
	} {
		id, _, err := parseRun(t, ref)
		if err != nil || !strings.HasPrefix(id, prefix) || len(id) != len(prefix)+6 {
			t.Errorf("name for %s = %q, %v; want %s and 6 hex digits", ref, id, err, prefix)
		}
	}
	a, _, _ := parseRun(t, "img")
	b, _, _ := parseRun(t, "img")
	if a == b {
		t.Errorf("two generated names are both %s", a)
	}
}

func TestDefaultNode(t *testing.T) {
	for host, want := range map[string]string{"WIN-NODE01": "win-node01", "Node7.corp.example": "node7", "bad_name": "", "": ""} {
		if got := defaultNode(func() (string, error) { return host, nil }); got != want {
			t.Errorf("defaultNode(%q) = %q, want %q", host, got, want)
		}
	}
	if got := defaultNode(func() (string, error) { return "", errors.New("no host name") }); got != "" {
		t.Errorf("defaultNode with an error = %q", got)
	}
}

func TestHumanDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		0: "Less than a second", time.Second: "1 second", 45 * time.Second: "45 seconds",
		90 * time.Second: "About a minute", 5 * time.Minute: "5 minutes", 61 * time.Minute: "About an hour",
		5 * time.Hour: "5 hours", 72 * time.Hour: "3 days", 21 * 24 * time.Hour: "3 weeks",
		90 * 24 * time.Hour: "3 months", 800 * 24 * time.Hour: "2 years",
	} {
		if got := humanDuration(d); got != want {
			t.Errorf("humanDuration(%v) = %q, want %q", d, got, want)
		}
	}
}
