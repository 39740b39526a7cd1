package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// unsetenv removes name from the environment for the rest of the test.
func unsetenv(t *testing.T, name string) {
	t.Setenv(name, "")
	os.Unsetenv(name)
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "berthd.json")
	if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// printConfig runs `berthd config print` with args and returns its output
// decoded, or fails the test.
func printConfig(t *testing.T, args ...string) map[string]any {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run(append([]string{"config", "print"}, args...), &stdout, &stderr); code != 0 {
		t.Fatalf("berthd config print %s: exit %d, stderr %q", strings.Join(args, " "), code, stderr.String())
	}
	var got map[string]any
	if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
		t.Fatalf("config print output %q: %v", stdout.String(), err)
	}
	return got
}

// TestPrecedence sets host-ops and log-level from each source alone and
// from each combination: the command line wins over the environment, the
// environment over the config file, the file over the default.
func TestPrecedence(t *testing.T) {
	file := writeConfig(t, `{"host-ops": 3, "log-level": "warn"}`)
	for _, tt := range []struct {
		name            string
		flag, env, conf bool
		hostOps         float64
		level           string
	}{
		{name: "default", hostOps: 32, level: "info"},
		{name: "file", conf: true, hostOps: 3, level: "warn"},
		{name: "env", env: true, hostOps: 2, level: "error"},
		{name: "flag", flag: true, hostOps: 1, level: "debug"},
		{name: "flag over env", flag: true, env: true, hostOps: 1, level: "debug"},
		{name: "flag over file", flag: true, conf: true, hostOps: 1, level: "debug"},
		{name: "env over file", env: true, conf: true, hostOps: 2, level: "error"},
		{name: "flag over env over file", flag: true, env: true, conf: true, hostOps: 1, level: "debug"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			unsetenv(t, "BERTH_HOST_OPS")
			unsetenv(t, "BERTH_LOG_LEVEL")
			unsetenv(t, "BERTH_CONFIG")
			var args []string
			if tt.flag {
				args = append(args, "--host-ops", "1", "--log-level=debug")
			}
			if tt.env {
				t.Setenv("BERTH_HOST_OPS", "2")
				t.Setenv("BERTH_LOG_LEVEL", "error")
			}
			if tt.conf {
				args = append(args, "--config", file)
			}
			got := printConfig(t, args...)
			if got["host-ops"] != tt.hostOps || got["log-level"] != tt.level {
				t.Errorf("host-ops %v, log-level %v; want %v, %v", got["host-ops"], got["log-level"], tt.hostOps, tt.level)
			}
		})
	}
}

func TestConfigFileFromEnvironment(t *testing.T) {
	unsetenv(t, "BERTH_HOST_OPS")
	t.Setenv("BERTH_CONFIG", writeConfig(t, `{"host-ops": 5, "stop-timeout": "30s", "node": "n7"}`))
	got := printConfig(t)
	if got["host-ops"] != 5.0 || got["stop-timeout"] != "30s" || got["node"] != "n7" {
		t.Errorf("settings %v, want those of the file named by BERTH_CONFIG", got)
	}
	// --config wins over BERTH_CONFIG.
	if got := printConfig(t, "--config", writeConfig(t, `{"host-ops": 6}`)); got["host-ops"] != 6.0 {
		t.Errorf("host-ops %v, want 6 from --config", got["host-ops"])
	}
}

func TestConfigPrintMasksSecrets(t *testing.T) {
	unsetenv(t, "BERTH_NATS_PASSWORD")
	unsetenv(t, "BERTH_CONFIG")
	for _, args := range [][]string{
		{"--config", writeConfig(t, `{"nats-password": "hunter2", "nats-user": "ops"}`)},
		{"--nats-password", "hunter2", "--nats-user", "ops"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(append([]string{"config", "print"}, args...), &stdout, &stderr); code != 0 {
			t.Fatalf("exit %d, stderr %q", code, stderr.String())
		}
		if strings.Contains(stdout.String(), "hunter2") {
			t.Errorf("config print %s shows the password:\n%s", args, stdout.String())
		}
		var got map[string]any
		if err := json.Unmarshal(stdout.Bytes(), &got); err != nil {
			t.Fatal(err)
		}
		if got["nats-password"] != "********" || got["nats-user"] != "ops" {
			t.Errorf("nats-password %v, nats-user %v; want masked, ops", got["nats-password"], got["nats-user"])
		}
	}
	if got := printConfig(t); got["nats-password"] != "" {
		t.Errorf("unset nats-password printed as %v, want empty", got["nats-password"])
	}
}

// TestConfigFileErrors checks that a bad config file stops both berthd and
// config print with an error that names what is wrong.
func TestConfigFileErrors(t *testing.T) {
	unsetenv(t, "BERTH_CONFIG")
	unsetenv(t, "BERTH_HOST_OPS")
	for _, tt := range []struct{ body, want string }{
		{`{"data-dir": "/d", "datadir": "/x"}`, `unknown key "datadir"`},
		{`{"config": "other.json"}`, `unknown key "config"`},
		{`{"host-ops": "many"}`, `host-ops: "many"`},
		{`{"host-ops": [1]}`, `host-ops: want a string, number or boolean`},
		{`{"node": "n1"} {}`, `more than one JSON value`},
		{`["node"]`, `cannot unmarshal`},
	} {
		file := writeConfig(t, tt.body)
		for _, args := range [][]string{{"config", "print", "--config", file}, {"--config", file, "--data-dir", t.TempDir()}} {
			var stdout, stderr bytes.Buffer
			if code := run(args, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), tt.want) {
				t.Errorf("berthd %s with %s: exit %d, stderr %q; want 1 and %q", args[0], tt.body, code, stderr.String(), tt.want)
			}
		}
	}
	var stdout, stderr bytes.Buffer
	missing := filepath.Join(t.TempDir(), "none.json")
	if code := run([]string{"config", "print", "--config", missing}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "config file") {
		t.Errorf("missing config file: exit %d, stderr %q", code, stderr.String())
	}
}

func TestCheckLoopback(t *testing.T) {
	for addr, want := range map[string]error{
		"127.0.0.1:9464": nil,
		"localhost:0":    nil,
		"[::1]:9464":     nil,
		"0.0.0.0:9464":   errNotLoopback,
		":9464":          errNotLoopback,
		"10.1.2.3:9464":  errNotLoopback,
	} {
		if err := checkLoopback(addr); !errors.Is(err, want) {
			t.Errorf("checkLoopback(%q) = %v, want %v", addr, err, want)
		}
	}
	if err := checkLoopback("127.0.0.1"); err == nil {
		t.Error("an address without a port was accepted")
	}
}

// TestPrecedenceOfLimitsAndMountRoots settles the security settings the
// same way: a list of mount roots from the file, the environment (commas)
// or repeated flags, the limits as numbers.
func TestPrecedenceOfLimitsAndMountRoots(t *testing.T) {
	for _, v := range []string{"BERTH_MOUNT_ROOT", "BERTH_MAX_CONTAINERS", "BERTH_MAX_COMMAND_SIZE", "BERTH_AUTH_DIR", "BERTH_TLS_CA", "BERTH_CONFIG"} {
		unsetenv(t, v)
	}
	roots := func(got map[string]any) []any { r, _ := got["mount-root"].([]any); return r }
	if got := printConfig(t); len(roots(got)) != 0 || got["max-containers"] != 256.0 || got["max-command-size"] != 1048576.0 || got["auth-dir"] != "" {
		t.Errorf("defaults: %v", got)
	}
	file := writeConfig(t, `{"mount-root": ["D:\\data", "E:\\logs"], "max-containers": 10, "max-command-size": 65536, "auth-dir": "/etc/berth", "tls-ca": "ca.pem"}`)
	got := printConfig(t, "--config", file)
	if r := roots(got); len(r) != 2 || r[0] != `D:\data` || r[1] != `E:\logs` || got["max-containers"] != 10.0 ||
		got["max-command-size"] != 65536.0 || got["auth-dir"] != "/etc/berth" || got["tls-ca"] != "ca.pem" {
		t.Errorf("from the file: %v", got)
	}
	t.Setenv("BERTH_MOUNT_ROOT", `F:\a,G:\b,H:\c`)
	t.Setenv("BERTH_MAX_CONTAINERS", "20")
	if got := printConfig(t, "--config", file); len(roots(got)) != 3 || got["max-containers"] != 20.0 || got["max-command-size"] != 65536.0 {
		t.Errorf("environment over file: %v", got)
	}
	got = printConfig(t, "--config", file, "--mount-root", `X:\only`, "--max-containers", "0")
	if r := roots(got); len(r) != 1 || r[0] != `X:\only` || got["max-containers"] != 0.0 {
		t.Errorf("flags over environment: %v", got)
	}
	// A list where one value is wanted, or a list of non-strings: errors naming the key.
	for _, body := range []string{`{"max-containers": [1]}`, `{"mount-root": [1]}`, `{"mount-root": ["a,b"]}`} {
		var stdout, stderr bytes.Buffer
		path := writeConfig(t, body)
		if code := run([]string{"config", "print", "--config", path}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), path) {
			t.Errorf("config %s: exit %d, %q; want 1 naming the file", body, code, stderr.String())
		}
	}
}

func TestMountRootsAreCleanWindowsPaths(t *testing.T) {
	got, err := mountRoots([]string{`d:/data/`, `\\fs1\share`})
	if err != nil || len(got) != 2 || got[0] != `D:\data` || got[1] != `\\fs1\share` {
		t.Fatalf("mountRoots = %q, %v", got, err)
	}
	for _, bad := range []string{`data`, `/srv/data`, `D:\data\..`, `\\?\D:\data`} {
		if _, err := mountRoots([]string{bad}); err == nil || !strings.Contains(err.Error(), "--mount-root") {
			t.Errorf("mountRoots(%q) = %v, want an error naming --mount-root", bad, err)
		}
	}
}
