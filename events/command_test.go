package events_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthhq/berth/events"
)

// designCreate is the create command of DESIGN §4, verbatim but for the id,
// which DESIGN abbreviates ("0193b6c1-...").
const designCreate = `{"id": "0193b6c1-7c7e-7a4e-9c1b-2f4d5e6f7a8b", "verb": "create", "container": "web-rep-1",
 "spec": {"image": {"ref": "mcr.microsoft.com/windows/nanoserver:ltsc2022", "pull_policy": "if_not_present"},
          "command": {"entrypoint": ["cmd", "/c"], "args": ["echo hi"], "workdir": "C:\\app"},
          "env": {"MODE": "prod"}, "user": "ContainerUser", "hostname": "web-1",
          "resources": {"cpu": 1.5, "memory": "512Mi"}, "isolation": "process",
          "network": {"mode": "overlay", "ip": "10.200.0.18", "dns": {"servers": ["10.200.0.2"], "domain": "service.local"}},
          "ports": [{"host_port": 8080, "container_port": 80, "protocol": "tcp"}],
          "mounts": [{"source": "D:\\data", "target": "C:\\data", "readonly": true}],
          "labels": {"service": "web"}, "stop": {"timeout": "30s"}}}`

func TestDecodeCommand_DesignExample(t *testing.T) {
	got, err := events.DecodeCommand([]byte(designCreate), events.VerbCreate)
	if err != nil {
		t.Fatal(err)
	}
	spec := fullSpec()
	spec.Network.DNS.Search = nil
	want := events.Command{ID: "0193b6c1-7c7e-7a4e-9c1b-2f4d5e6f7a8b", Verb: events.VerbCreate, Container: "web-rep-1", Spec: &spec}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("DecodeCommand (-want +got):\n%s", diff)
	}
}

// cmdJSON builds a command document from fields, each a JSON member.
func cmdJSON(members ...string) []byte {
	return []byte("{" + strings.Join(members, ",") + "}")
}

func TestDecodeCommand(t *testing.T) {
	const (
		id      = `"id":"c-1"`
		box     = `"container":"box-1"`
		spec    = `"spec":{"image":{"ref":"busybox"}}`
		stop    = `"verb":"stop"`
		create  = `"verb":"create"`
		maxSize = events.MaxCommandSize
	)
	atLimit := cmdJSON(id, stop, box)
	atLimit = append(atLimit, strings.Repeat(" ", maxSize-len(atLimit))...)
	d := func(v time.Duration) *events.Duration { x := events.Duration(v); return &x }

	tests := []struct {
		name        string
		data        []byte
		subjectVerb string
		want        events.Command // checked when wantErr is nil
		wantErr     error
		wantMsg     string // a substring of the error that names the field
	}{
		{name: "start", data: cmdJSON(id, `"verb":"start"`, box),
			want: events.Command{ID: "c-1", Verb: events.VerbStart, Container: "box-1"}},
		{name: "stop with timeout", data: cmdJSON(id, stop, box, `"timeout":"1m30s"`), subjectVerb: "stop",
			want: events.Command{ID: "c-1", Verb: events.VerbStop, Container: "box-1", Timeout: d(90 * time.Second)}},
		{name: "stop with the longest timeout", data: cmdJSON(id, stop, box, `"timeout":"1h"`),
			want: events.Command{ID: "c-1", Verb: events.VerbStop, Container: "box-1", Timeout: d(time.Hour)}},
		{name: "kill", data: cmdJSON(id, `"verb":"kill"`, box),
			want: events.Command{ID: "c-1", Verb: events.VerbKill, Container: "box-1"}},
		{name: "remove with force", data: cmdJSON(id, `"verb":"remove"`, box, `"force":true`),
			want: events.Command{ID: "c-1", Verb: events.VerbRemove, Container: "box-1", Force: true}},
		{name: "run", data: cmdJSON(id, `"verb":"run"`, box, spec),
			want: events.Command{ID: "c-1", Verb: events.VerbRun, Container: "box-1", Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: "busybox"}}}},
		{name: "verb taken from the subject", data: cmdJSON(id, box), subjectVerb: "kill",
			want: events.Command{ID: "c-1", Verb: events.VerbKill, Container: "box-1"}},
		{name: "exactly the size limit", data: atLimit,
			want: events.Command{ID: "c-1", Verb: events.VerbStop, Container: "box-1"}},

		{name: "malformed json", data: []byte(`{"id":"c-1",`), wantErr: events.ErrInvalid, wantMsg: "command: unexpected EOF"},
		{name: "not an object", data: []byte(`["stop"]`), wantErr: events.ErrInvalid, wantMsg: "cannot unmarshal array"},
		{name: "empty body", data: nil, wantErr: events.ErrInvalid, wantMsg: "empty body"},
		{name: "blank body", data: []byte(" \n\t"), wantErr: events.ErrInvalid, wantMsg: "empty body"},
		{name: "trailing object", data: append(cmdJSON(id, stop, box), `{}`...), wantErr: events.ErrInvalid, wantMsg: "trailing data"},
		{name: "trailing garbage", data: append(cmdJSON(id, stop, box), ` x`...), wantErr: events.ErrInvalid, wantMsg: "trailing data"},
		{name: "unknown field", data: cmdJSON(id, stop, box, `"forse":true`), wantErr: events.ErrInvalid, wantMsg: `unknown field "forse"`},
		{name: "unknown spec field", data: cmdJSON(id, create, box, `"spec":{"image":{"ref":"a"},"memory":"1Gi"}`), wantErr: events.ErrInvalid, wantMsg: `unknown field "memory"`},
		{name: "over the size limit", data: append(atLimit, ' '), wantErr: events.ErrInvalid, wantMsg: fmt.Sprintf("%d bytes, more than the %d byte limit", maxSize+1, maxSize)},
		{name: "unknown verb", data: cmdJSON(id, `"verb":"explode"`, box), wantErr: events.ErrNotFound, wantMsg: `verb "explode"`},
		{name: "unknown verb from the subject", data: cmdJSON(id, box), subjectVerb: "explode", wantErr: events.ErrNotFound, wantMsg: `verb "explode"`},
		{name: "no verb", data: cmdJSON(id, box), wantErr: events.ErrNotFound, wantMsg: `verb ""`},
		{name: "subject verb mismatch", data: cmdJSON(id, stop, box), subjectVerb: "kill", wantErr: events.ErrInvalid, wantMsg: `verb "stop" does not match the subject's verb "kill"`},
		{name: "no id", data: cmdJSON(stop, box), wantErr: events.ErrInvalid, wantMsg: "id: invalid input: command id must not be empty"},
		{name: "id with a space", data: cmdJSON(`"id":"c 1"`, stop, box), wantErr: events.ErrInvalid, wantMsg: "id: invalid input: command id"},
		{name: "id of the wrong type", data: cmdJSON(`"id":1`, stop, box), wantErr: events.ErrInvalid, wantMsg: "Command.id"},
		{name: "no container", data: cmdJSON(id, stop), wantErr: events.ErrInvalid, wantMsg: "container: invalid input: container id"},
		{name: "invalid container id", data: cmdJSON(id, stop, `"container":"Web_1"`), wantErr: events.ErrInvalid, wantMsg: `container: invalid input: container id "Web_1"`},
		{name: "create without spec", data: cmdJSON(id, create, box), wantErr: events.ErrInvalid, wantMsg: "spec: required by create"},
		{name: "run without spec", data: cmdJSON(id, `"verb":"run"`, box), wantErr: events.ErrInvalid, wantMsg: "spec: required by run"},
		{name: "create with null spec", data: cmdJSON(id, create, box, `"spec":null`), wantErr: events.ErrInvalid, wantMsg: "spec: required by create"},
		{name: "spec on stop", data: cmdJSON(id, stop, box, spec), wantErr: events.ErrInvalid, wantMsg: "spec: not accepted by stop"},
		{name: "spec of the wrong type", data: cmdJSON(id, create, box, `"spec":5`), wantErr: events.ErrInvalid, wantMsg: "Command.spec"},
		{name: "invalid spec", data: cmdJSON(id, create, box, `"spec":{"image":{"ref":""}}`), wantErr: events.ErrInvalid, wantMsg: "spec.image.ref"},
		{name: "bad memory", data: cmdJSON(id, create, box, `"spec":{"image":{"ref":"a"},"resources":{"memory":"lots"}}`), wantErr: events.ErrInvalid, wantMsg: "spec.resources.memory"},
		{name: "bad cpu", data: cmdJSON(id, create, box, `"spec":{"image":{"ref":"a"},"resources":{"cpu":"2"}}`), wantErr: events.ErrInvalid, wantMsg: "spec.resources.cpu"},
		{name: "bad stop timeout", data: cmdJSON(id, create, box, `"spec":{"image":{"ref":"a"},"stop":{"timeout":30}}`), wantErr: events.ErrInvalid, wantMsg: "spec.stop.timeout"},
		{name: "timeout on kill", data: cmdJSON(id, `"verb":"kill"`, box, `"timeout":"1s"`), wantErr: events.ErrInvalid, wantMsg: "timeout: only stop"},
		{name: "timeout on create", data: cmdJSON(id, create, box, spec, `"timeout":"1s"`), wantErr: events.ErrInvalid, wantMsg: "timeout: only stop"},
		{name: "negative timeout", data: cmdJSON(id, stop, box, `"timeout":"-1s"`), wantErr: events.ErrInvalid, wantMsg: "timeout: -1s is outside"},
		{name: "timeout over an hour", data: cmdJSON(id, stop, box, `"timeout":"1h0m1s"`), wantErr: events.ErrInvalid, wantMsg: "timeout: 1h0m1s is outside"},
		{name: "timeout not a duration", data: cmdJSON(id, stop, box, `"timeout":"soon"`), wantErr: events.ErrInvalid, wantMsg: "Command.timeout"},
		{name: "timeout as a number", data: cmdJSON(id, stop, box, `"timeout":30`), wantErr: events.ErrInvalid, wantMsg: "Command.timeout"},
		{name: "force on stop", data: cmdJSON(id, stop, box, `"force":true`), wantErr: events.ErrInvalid, wantMsg: "force: only remove"},
		{name: "force of the wrong type", data: cmdJSON(id, `"verb":"remove"`, box, `"force":"yes"`), wantErr: events.ErrInvalid, wantMsg: "Command.force"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := events.DecodeCommand(tc.data, tc.subjectVerb)
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("DecodeCommand = %v, want nil", err)
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("DecodeCommand (-want +got):\n%s", diff)
				}
				return
			}
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("DecodeCommand = %v, want an error matching %v", err, tc.wantErr)
			}
			for _, other := range []error{events.ErrInvalid, events.ErrNotFound} {
				if other != tc.wantErr && errors.Is(err, other) {
					t.Errorf("DecodeCommand = %v, also matches %v", err, other)
				}
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("DecodeCommand = %q, want it to contain %q", err, tc.wantMsg)
			}
			if code, _ := events.CodeOf(err); code != events.CodeInvalid && code != events.CodeNotFound {
				t.Errorf("CodeOf = %d, want 400 or 404", code)
			}
		})
	}
}

func TestContainerSpec_Validate(t *testing.T) {
	long := func(n int) string { return strings.Repeat("x", n) }
	many := func(n int) map[string]string {
		m := make(map[string]string, n)
		for i := range n {
			m[strconv.Itoa(i)] = "v"
		}
		return m
	}
	tests := []struct {
		name    string
		edit    func(s *events.ContainerSpec)
		wantMsg string // "" when valid; otherwise a substring naming the field
	}{
		{"full spec", func(*events.ContainerSpec) {}, ""},
		{"only an image", func(s *events.ContainerSpec) { *s = events.ContainerSpec{Image: events.ImageSpec{Ref: "busybox"}} }, ""},
		{"image ref with digest", func(s *events.ContainerSpec) { s.Image.Ref = "reg.local:5000/a/b@sha256:" + strings.Repeat("a", 64) }, ""},
		{"image ref empty", func(s *events.ContainerSpec) { s.Image.Ref = "" }, "spec.image.ref: must not be empty"},
		{"image ref blank", func(s *events.ContainerSpec) { s.Image.Ref = " \t" }, "spec.image.ref: must not be empty"},
		{"image ref with a space", func(s *events.ContainerSpec) { s.Image.Ref = "busy box" }, "spec.image.ref"},
		{"image ref with a newline", func(s *events.ContainerSpec) { s.Image.Ref = "busybox\n" }, "spec.image.ref"},
		{"image ref longest", func(s *events.ContainerSpec) { s.Image.Ref = long(1024) }, ""},
		{"image ref too long", func(s *events.ContainerSpec) { s.Image.Ref = long(1025) }, "spec.image.ref"},
		{"pull policy always", func(s *events.ContainerSpec) { s.Image.PullPolicy = "always" }, ""},
		{"pull policy never", func(s *events.ContainerSpec) { s.Image.PullPolicy = "never" }, ""},
		{"pull policy newer", func(s *events.ContainerSpec) { s.Image.PullPolicy = "newer" }, ""},
		{"pull policy default", func(s *events.ContainerSpec) { s.Image.PullPolicy = "" }, ""},
		{"pull policy unknown", func(s *events.ContainerSpec) { s.Image.PullPolicy = "IfNotPresent" }, "spec.image.pull_policy"},
		{"most arguments", func(s *events.ContainerSpec) {
			s.Command.Entrypoint, s.Command.Args = make([]string, 96), make([]string, 4000)
		}, ""},
		{"too many arguments", func(s *events.ContainerSpec) {
			s.Command.Entrypoint, s.Command.Args = make([]string, 97), make([]string, 4000)
		}, "spec.command: 4097 arguments"},
		{"argument with NUL", func(s *events.ContainerSpec) { s.Command.Args = []string{"a", "b\x00"} }, "spec.command: argument 3"}, // entrypoint first, then args
		{"entrypoint with NUL", func(s *events.ContainerSpec) { s.Command.Entrypoint = []string{"\x00"} }, "spec.command: argument 0"},
		{"longest argument", func(s *events.ContainerSpec) { s.Command.Args = []string{long(32 << 10)} }, ""},
		{"argument too long", func(s *events.ContainerSpec) { s.Command.Args = []string{long(32<<10 + 1)} }, "spec.command: argument 2"},
		{"most env", func(s *events.ContainerSpec) { s.Env = many(4096) }, ""},
		{"too many env", func(s *events.ContainerSpec) { s.Env = many(4097) }, "spec.env: 4097 variables"},
		{"env empty name", func(s *events.ContainerSpec) { s.Env = map[string]string{"": "x"} }, "spec.env"},
		{"env name with =", func(s *events.ContainerSpec) { s.Env = map[string]string{"A=B": "x"} }, `spec.env: variable "A=B"`},
		{"env name with NUL", func(s *events.ContainerSpec) { s.Env = map[string]string{"A\x00": "x"} }, "spec.env"},
		{"env value with NUL", func(s *events.ContainerSpec) { s.Env = map[string]string{"A": "x\x00"} }, `spec.env: variable "A"`},
		{"env value with = and spaces", func(s *events.ContainerSpec) { s.Env = map[string]string{"A": "b=c d"} }, ""},
		{"env too long", func(s *events.ContainerSpec) { s.Env = map[string]string{"A": long(32 << 10)} }, `spec.env: variable "A"`},
		{"hostname empty", func(s *events.ContainerSpec) { s.Hostname = "" }, ""},
		{"hostname longest", func(s *events.ContainerSpec) { s.Hostname = long(63) }, ""},
		{"hostname too long", func(s *events.ContainerSpec) { s.Hostname = long(64) }, "spec.hostname"},
		{"hostname with a dot", func(s *events.ContainerSpec) { s.Hostname = "web.local" }, "spec.hostname"},
		{"hostname with a space", func(s *events.ContainerSpec) { s.Hostname = "web 1" }, "spec.hostname"},
		{"hostname with a backslash", func(s *events.ContainerSpec) { s.Hostname = `web\1` }, "spec.hostname"},
		{"user too long", func(s *events.ContainerSpec) { s.User = long(257) }, "spec.user"},
		{"user with NUL", func(s *events.ContainerSpec) { s.User = "a\x00" }, "spec.user"},
		{"user domain", func(s *events.ContainerSpec) { s.User = `NT AUTHORITY\SYSTEM` }, ""},
		{"cpu zero", func(s *events.ContainerSpec) { s.Resources.CPU = 0 }, ""},
		{"cpu largest", func(s *events.ContainerSpec) { s.Resources.CPU = 1024 }, ""},
		{"cpu negative", func(s *events.ContainerSpec) { s.Resources.CPU = -0.5 }, "spec.resources.cpu"},
		{"cpu too many", func(s *events.ContainerSpec) { s.Resources.CPU = 1024.5 }, "spec.resources.cpu"},
		{"memory unset", func(s *events.ContainerSpec) { s.Resources.Memory = 0 }, ""},
		{"memory smallest", func(s *events.ContainerSpec) { s.Resources.Memory = 1 << 20 }, ""},
		{"memory too small", func(s *events.ContainerSpec) { s.Resources.Memory = 1<<20 - 1 }, "spec.resources.memory: 1048575 is below the 1Mi minimum"},
		{"memory negative", func(s *events.ContainerSpec) { s.Resources.Memory = -1 << 20 }, "spec.resources.memory"},
		{"isolation hyperv", func(s *events.ContainerSpec) { s.Isolation = "hyperv" }, ""},
		{"isolation default", func(s *events.ContainerSpec) { s.Isolation = "" }, ""},
		{"isolation unknown", func(s *events.ContainerSpec) { s.Isolation = "vm" }, "spec.isolation"},
		{"network none", func(s *events.ContainerSpec) { s.Network = events.NetworkSpec{Mode: "none"} }, ""},
		{"network mode unknown", func(s *events.ContainerSpec) { s.Network.Mode = "bridge" }, "spec.network.mode"},
		{"ip allocated", func(s *events.ContainerSpec) { s.Network.IP = "" }, ""},
		{"ip malformed", func(s *events.ContainerSpec) { s.Network.IP = "10.200.0.300" }, "spec.network.ip"},
		{"ip is IPv6", func(s *events.ContainerSpec) { s.Network.IP = "fd00::18" }, "spec.network.ip"},
		{"ip with a prefix", func(s *events.ContainerSpec) { s.Network.IP = "10.200.0.18/24" }, "spec.network.ip"},
		{"ip with mode none", func(s *events.ContainerSpec) { s.Network.Mode = "none" }, "spec.network.ip: an address makes no sense"},
		{"dns server IPv6", func(s *events.ContainerSpec) { s.Network.DNS.Servers = []string{"10.0.0.1", "fd00::53"} }, ""},
		{"dns server a name", func(s *events.ContainerSpec) { s.Network.DNS.Servers = []string{"10.0.0.1", "dns.local"} }, "spec.network.dns.servers[1]"},
		{"dns server empty", func(s *events.ContainerSpec) { s.Network.DNS.Servers = []string{""} }, "spec.network.dns.servers[0]"},
		{"ports same host port, other protocol", func(s *events.ContainerSpec) {
			s.Ports = []events.PortMapping{{HostPort: 53, ContainerPort: 53}, {HostPort: 53, ContainerPort: 53, Protocol: "udp"}}
		}, ""},
		{"port limits", func(s *events.ContainerSpec) {
			s.Ports = []events.PortMapping{{HostPort: 1, ContainerPort: 65535}, {HostPort: 65535, ContainerPort: 1}}
		}, ""},
		{"host port zero", func(s *events.ContainerSpec) { s.Ports[0].HostPort = 0 }, "spec.ports[0].host_port: 0 is outside"},
		{"host port too high", func(s *events.ContainerSpec) { s.Ports[0].HostPort = 65536 }, "spec.ports[0].host_port"},
		{"container port zero", func(s *events.ContainerSpec) { s.Ports[0].ContainerPort = 0 }, "spec.ports[0].container_port"},
		{"container port negative", func(s *events.ContainerSpec) { s.Ports[0].ContainerPort = -80 }, "spec.ports[0].container_port"},
		{"protocol unknown", func(s *events.ContainerSpec) { s.Ports[0].Protocol = "sctp" }, "spec.ports[0].protocol"},
		{"protocol upper case", func(s *events.ContainerSpec) { s.Ports[0].Protocol = "TCP" }, "spec.ports[0].protocol"},
		{"duplicate mapping, tcp by default", func(s *events.ContainerSpec) {
			s.Ports = []events.PortMapping{{HostPort: 8080, ContainerPort: 80, Protocol: "tcp"}, {HostPort: 9090, ContainerPort: 90}, {HostPort: 8080, ContainerPort: 81}}
		}, "spec.ports[2].host_port: 8080/tcp is already mapped by ports[0]"},
		{"mount without source", func(s *events.ContainerSpec) { s.Mounts[0].Source = "" }, "spec.mounts[0]: source and target"},
		{"mount without target", func(s *events.ContainerSpec) {
			s.Mounts = append(s.Mounts, events.Mount{Source: `D:\logs`})
		}, "spec.mounts[1]: source and target"},
		{"mount path with NUL", func(s *events.ContainerSpec) { s.Mounts[0].Target = "C:\\data\x00" }, "spec.mounts[0].target: \"C:\\\\data\\x00\": component"},
		{"mount path too long", func(s *events.ContainerSpec) { s.Mounts[0].Source = long(4097) }, "spec.mounts[0].source: 4097 bytes"},
		{"mount source relative", func(s *events.ContainerSpec) { s.Mounts[0].Source = `data` }, "spec.mounts[0].source: \"data\" is not absolute"},
		{"mount source with ..", func(s *events.ContainerSpec) { s.Mounts[0].Source = `D:\data\..\Windows` }, `spec.mounts[0].source: "D:\\data\\..\\Windows": ".." components`},
		{"mount source POSIX", func(s *events.ContainerSpec) { s.Mounts[0].Source = "/etc" }, "spec.mounts[0].source: \"/etc\" is not absolute"},
		{"mount target relative", func(s *events.ContainerSpec) { s.Mounts[0].Target = `C:data` }, "spec.mounts[0].target: \"C:data\" is relative to the drive"},
		{"most labels", func(s *events.ContainerSpec) { s.Labels = many(256) }, ""},
		{"too many labels", func(s *events.ContainerSpec) { s.Labels = many(257) }, "spec.labels: 257 labels"},
		{"label empty key", func(s *events.ContainerSpec) { s.Labels = map[string]string{"": "web"} }, "spec.labels"},
		{"label empty value", func(s *events.ContainerSpec) { s.Labels = map[string]string{"flag": ""} }, ""},
		{"label too long", func(s *events.ContainerSpec) { s.Labels = map[string]string{"k": long(32 << 10)} }, `spec.labels: label "k"`},
		{"stop timeout zero", func(s *events.ContainerSpec) { s.Stop.Timeout = 0 }, ""},
		{"stop timeout an hour", func(s *events.ContainerSpec) { s.Stop.Timeout = events.Duration(time.Hour) }, ""},
		{"stop timeout over an hour", func(s *events.ContainerSpec) { s.Stop.Timeout = events.Duration(time.Hour + 1) }, "spec.stop.timeout"},
		{"stop timeout negative", func(s *events.ContainerSpec) { s.Stop.Timeout = -1 }, "spec.stop.timeout"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := fullSpec()
			tc.edit(&s)
			err := s.Validate()
			if tc.wantMsg == "" {
				if err != nil {
					t.Fatalf("Validate = %v, want nil", err)
				}
				return
			}
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("Validate = %v, want an ErrInvalid error", err)
			}
			if !strings.Contains(err.Error(), tc.wantMsg) {
				t.Errorf("Validate = %q, want it to contain %q", err, tc.wantMsg)
			}
		})
	}
}

var classes = []struct {
	err  error
	code int
	kind string
}{
	{events.ErrInvalid, events.CodeInvalid, "invalid"},
	{events.ErrNotFound, events.CodeNotFound, "not_found"},
	{events.ErrWrongPhase, events.CodeConflict, "wrong_phase"},
	{events.ErrConflict, events.CodeConflict, "conflict"},
	{events.ErrUnavailable, events.CodeUnavailable, "unavailable"},
	{events.ErrInternal, events.CodeInternal, "internal"},
}

func TestCodeOf(t *testing.T) {
	for _, c := range classes {
		for _, err := range []error{c.err, fmt.Errorf("start web: %w", c.err), fmt.Errorf("outer: %w", fmt.Errorf("inner: %w", c.err))} {
			if code, kind := events.CodeOf(err); code != c.code || kind != c.kind {
				t.Errorf("CodeOf(%q) = %d %s, want %d %s", err, code, kind, c.code, c.kind)
			}
		}
	}
	if code, kind := events.CodeOf(errors.New("disk on fire")); code != events.CodeInternal || kind != "internal" {
		t.Errorf("CodeOf(unclassified) = %d %s, want 500 internal", code, kind)
	}
}

// TestReply_RoundTrip sends a reply for every outcome over the wire and
// checks that the client sees the same reply, with the same error class.
func TestReply_RoundTrip(t *testing.T) {
	type replyCase struct {
		name   string
		result any
		err    error
		class  error // nil for success
	}
	cases := []replyCase{
		{name: "ok", result: events.ContainerResult{Container: ctr, Phase: events.PhaseExited,
			Exit: &events.Exit{Code: events.ExitCode(0), Reason: events.ReasonExited, FinishedAt: t0}}},
		{name: "ok without result"},
		{name: "result that does not encode", result: math.Inf(1), class: events.ErrInternal},
	}
	for _, c := range classes {
		cases = append(cases, replyCase{name: c.kind, err: fmt.Errorf("container %s: %w", ctr, c.err), class: c.err})
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := events.NewReply("cmd-1", tc.result, tc.err)
			b, err := json.Marshal(r)
			if err != nil {
				t.Fatal(err)
			}
			got, err := events.DecodeReply(b)
			if err != nil {
				t.Fatalf("DecodeReply(%s) = %v", b, err)
			}
			if diff := cmp.Diff(r, got); diff != "" {
				t.Errorf("round trip (-sent +received):\n%s", diff)
			}
			if got.Command != "cmd-1" {
				t.Errorf("reply names command %q", got.Command)
			}
			if tc.class == nil {
				if !got.OK || got.Err() != nil || got.Error != nil {
					t.Fatalf("reply = %s, want ok", b)
				}
				var res events.ContainerResult
				if tc.result != nil {
					if err := json.Unmarshal(got.Result, &res); err != nil || !cmp.Equal(res, tc.result) {
						t.Errorf("result = %s (%v), want %+v", got.Result, err, tc.result)
					}
				}
				return
			}
			rerr := got.Err()
			if got.OK || rerr == nil {
				t.Fatalf("reply = %s, want an error", b)
			}
			for _, c := range classes {
				if is := errors.Is(rerr, c.err); is != (c.err == tc.class) {
					t.Errorf("errors.Is(%v, %v) = %v", rerr, c.err, is)
				}
				if c.err == tc.class && (got.Error.Code != c.code || got.Error.Kind != c.kind) {
					t.Errorf("reply error %d %s, want %d %s", got.Error.Code, got.Error.Kind, c.code, c.kind)
				}
			}
			if tc.err != nil && !strings.Contains(rerr.Error(), tc.err.Error()) {
				t.Errorf("reply error %q does not carry the message %q", rerr, tc.err)
			}
		})
	}
}

func TestDecodeReply_Refused(t *testing.T) {
	for _, data := range []string{
		``,
		`{"command":"c"`,
		`{"command":"c","ok":"yes"}`,
		`{"command":"c"}`,
		`{"command":"c","ok":false,"error":null}`,
		`{"command":"c","ok":true,"error":{"code":409,"kind":"conflict","message":"taken"}}`,
	} {
		if r, err := events.DecodeReply([]byte(data)); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("DecodeReply(%s) = %+v, %v; want an ErrInvalid error", data, r, err)
		}
	}
}

func TestReplyError(t *testing.T) {
	// A reply that claims failure without saying why is an internal error.
	if err := (events.Reply{Command: "c"}).Err(); !errors.Is(err, events.ErrInternal) {
		t.Errorf("Err() of an empty failed reply = %v, want ErrInternal", err)
	}
	// A kind this client does not know counts as internal, and as nothing else.
	e := &events.ReplyError{Code: 418, Kind: "teapot", Message: "short and stout"}
	for _, c := range classes {
		if got := errors.Is(e, c.err); got != (c.err == events.ErrInternal) {
			t.Errorf("errors.Is(kind teapot, %v) = %v", c.err, got)
		}
	}
	if got, want := e.Error(), "short and stout (418 teapot)"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	// Forwarding a reply error keeps its class.
	fwd := events.NewReplyError(fmt.Errorf("agent n1: %w", &events.ReplyError{Code: 409, Kind: "wrong_phase", Message: "running"}))
	if fwd.Code != events.CodeConflict || fwd.Kind != "wrong_phase" {
		t.Errorf("forwarded reply error = %+v, want 409 wrong_phase", fwd)
	}
}

func TestDuration_JSON(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		json string
	}{
		{0, `"0s"`},
		{time.Nanosecond, `"1ns"`},
		{30 * time.Second, `"30s"`},
		{90 * time.Second, `"1m30s"`},
		{time.Hour, `"1h0m0s"`},
		{-5 * time.Millisecond, `"-5ms"`},
		{math.MaxInt64, `"2562047h47m16.854775807s"`},
	} {
		b, err := json.Marshal(events.Duration(tc.d))
		if err != nil || string(b) != tc.json {
			t.Errorf("Marshal(%v) = %s, %v; want %s", tc.d, b, err, tc.json)
		}
		var got events.Duration
		if err := json.Unmarshal(b, &got); err != nil || got.Std() != tc.d {
			t.Errorf("Unmarshal(%s) = %v, %v; want %v", b, got.Std(), err, tc.d)
		}
	}
	for _, in := range []string{`"90s"`, `"1.5m"`, `" 90s"`} {
		var got events.Duration
		err := json.Unmarshal([]byte(in), &got)
		if want := strings.HasPrefix(in, `" `); (err != nil) != want || (err == nil && got.Std() != 90*time.Second) {
			t.Errorf("Unmarshal(%s) = %v, %v", in, got.Std(), err)
		}
	}
	for _, in := range []string{`30`, `"30"`, `"soon"`, `""`, `"9999999999h"`, `true`, `{}`, `["1s"]`} {
		var got events.Duration
		err := json.Unmarshal([]byte(in), &got)
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) || !strings.Contains(err.Error(), "duration") {
			t.Errorf("Unmarshal(%s) = %v, %v; want a type error that asks for a duration", in, got.Std(), err)
		}
	}
}

func TestParseSize(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    events.Size
		wantErr string
	}{
		{in: "0", want: 0},
		{in: "1048576", want: 1 << 20},
		{in: "1Ki", want: 1 << 10},
		{in: "512Mi", want: 512 << 20},
		{in: "2Gi", want: 2 << 30},
		{in: "3Ti", want: 3 << 40},
		{in: "1K", want: 1000},
		{in: "5M", want: 5_000_000},
		{in: "1G", want: 1_000_000_000},
		{in: "2T", want: 2_000_000_000_000},
		{in: " 64Mi ", want: 64 << 20},
		{in: "4194304Ti", want: 1 << 62},
		{in: "4611686018427387904", want: 1 << 62},
		{in: "", wantErr: "whole number"},
		{in: "Mi", wantErr: "whole number"},
		{in: "-1", wantErr: "non-negative"},
		{in: "-1Gi", wantErr: "non-negative"},
		{in: "1.5Gi", wantErr: "whole number"},
		{in: "1 Gi", wantErr: "whole number"},
		{in: "1gi", wantErr: "whole number"},
		{in: "1Pi", wantErr: "whole number"},
		{in: "0x10", wantErr: "whole number"},
		{in: "4194305Ti", wantErr: "larger than 4Ei"},
		{in: "4611686018427387905", wantErr: "larger than 4Ei"},
		{in: "9223372036854775808", wantErr: "whole number"},
		{in: "9999999999Gi", wantErr: "larger than 4Ei"},
	} {
		got, err := events.ParseSize(tc.in)
		switch {
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("ParseSize(%q) = %d, %v; want %d", tc.in, got, err, tc.want)
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), strconv.Quote(tc.in))):
			t.Errorf("ParseSize(%q) = %d, %v; want an error quoting the input and saying %q", tc.in, got, err, tc.wantErr)
		}
	}
}

func TestSize_JSON(t *testing.T) {
	for _, tc := range []struct {
		z    events.Size
		json string
	}{
		{0, `"0"`},
		{1000, `"1000"`},
		{1536, `"1536"`},
		{1 << 10, `"1Ki"`},
		{512 << 20, `"512Mi"`},
		{3 << 29, `"1536Mi"`},
		{2 << 30, `"2Gi"`},
		{1_000_000_000, `"1000000000"`},
		{1 << 62, `"4194304Ti"`},
	} {
		b, err := json.Marshal(tc.z)
		if err != nil || string(b) != tc.json {
			t.Errorf("Marshal(%d) = %s, %v; want %s", tc.z, b, err, tc.json)
		}
		var got events.Size
		if err := json.Unmarshal(b, &got); err != nil || got != tc.z {
			t.Errorf("Unmarshal(%s) = %d, %v; want %d", b, got, err, tc.z)
		}
	}
	for in, want := range map[string]events.Size{`1048576`: 1 << 20, `0`: 0, `"1G"`: 1e9, `"8Gi"`: 8 << 30, `4611686018427387904`: 1 << 62} {
		var got events.Size
		if err := json.Unmarshal([]byte(in), &got); err != nil || got != want {
			t.Errorf("Unmarshal(%s) = %d, %v; want %d", in, got, err, want)
		}
	}
	for _, in := range []string{`-1`, `1.5`, `1e6`, `"lots"`, `"-1Mi"`, `4611686018427387905`, `9223372036854775807`, `99999999999999999999`, `true`, `{}`, `[1]`} {
		var got events.Size
		err := json.Unmarshal([]byte(in), &got)
		var te *json.UnmarshalTypeError
		if !errors.As(err, &te) {
			t.Errorf("Unmarshal(%s) = %d, %v; want a type error", in, got, err)
		}
	}
}
