package main

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/rs/zerolog"

	"github.com/berthhq/berth/journal"
)

func TestAuthInit(t *testing.T) {
	unsetenv(t, "BERTH_CONFIG")
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"auth", "init", "--data-dir", dir, "--node", "n1"}, &stdout, &stderr); code != 0 {
		t.Fatalf("auth init: exit %d, %s", code, stderr.String())
	}
	for _, r := range journal.Roles {
		if !strings.Contains(stdout.String(), journal.SeedFile(filepath.Join(dir, "auth"), r)) {
			t.Errorf("auth init output %q does not name the %s seed", stdout.String(), r)
		}
	}
	if _, err := journal.LoadCredentials(filepath.Join(dir, "auth")); err != nil {
		t.Fatal(err)
	}
	stderr.Reset()
	if code := run([]string{"auth", "init", "--data-dir", dir, "--node", "n1"}, &stdout, &stderr); code != 1 || !strings.Contains(stderr.String(), "credentials exist") {
		t.Errorf("second auth init: exit %d, %q; want 1, credentials exist", code, stderr.String())
	}
	for _, args := range [][]string{{"--node", "n1"}, {"--data-dir", dir, "--node", "Bad!"}} {
		stderr.Reset()
		if code := run(append([]string{"auth", "init"}, args...), &stdout, &stderr); code != 1 {
			t.Errorf("auth init %v: exit %d, %q; want 1", args, code, stderr.String())
		}
	}
}

func TestCredentialsByMode(t *testing.T) {
	log := zerolog.Nop()
	dir := t.TempDir()
	o := options{dataDir: dir, node: "n1", prefix: "berth"}
	if c, err := credentials(o, log); err != nil || c != nil {
		t.Fatalf("no listener: %v %v, want none", c, err)
	}
	o.natsURL = "nats://127.0.0.1:4222"
	if c, err := credentials(o, log); err != nil || c != nil {
		t.Fatalf("external server, no credentials: %v %v, want none", c, err)
	}
	o.natsURL, o.listen = "", "127.0.0.1:4222"
	made, err := credentials(o, log)
	if err != nil || made == nil {
		t.Fatalf("listener: %v %v, want credentials made", made, err)
	}
	o.listen, o.natsURL = "", "nats://127.0.0.1:4222"
	if c, err := credentials(o, log); err != nil || c == nil || c.Users[journal.RoleAgent] != made.Users[journal.RoleAgent] {
		t.Fatalf("external server with credentials: %v %v, want those made", c, err)
	}
}
