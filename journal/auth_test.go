package journal

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"testing"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/berthhq/berth/events"
)

func TestCredentialsRoundTrip(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "auth")
	subj := events.NewSubjects("", node)
	made, err := InitCredentials(dir, subj)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Roles {
		fi, err := os.Stat(SeedFile(dir, r))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm()&0o077 != 0 {
			t.Errorf("%s seed has mode %v, want no access for group and others", r, fi.Mode())
		}
	}
	loaded, err := LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range Roles {
		if loaded.Users[r] != made.Users[r] {
			t.Errorf("%s: loaded %s, made %s", r, loaded.Users[r], made.Users[r])
		}
	}
	if _, err := InitCredentials(dir, subj); !errors.Is(err, events.ErrConflict) {
		t.Fatalf("second init: %v, want ErrConflict", err)
	}

	// The configuration for an external server parses, with the same users
	// and permissions berthd gives its embedded server.
	opts, err := server.ProcessConfigFile(filepath.Join(dir, "nats-server.conf"))
	if err != nil {
		t.Fatal(err)
	}
	if len(opts.Nkeys) != len(Roles) {
		t.Fatalf("server config has %d NKey users, want %d", len(opts.Nkeys), len(Roles))
	}
	for i, r := range Roles {
		u := opts.Nkeys[i]
		want, _ := Permissions(r, subj, made.Users[r])
		if u.Nkey != made.Users[r] || !slices.Equal(u.Permissions.Publish.Allow, want.Publish.Allow) ||
			!slices.Equal(u.Permissions.Subscribe.Allow, want.Subscribe.Allow) {
			t.Errorf("server config user %d: %+v, want %s with %+v", i, u, r, want)
		}
	}
}

func TestPermissionsKeepTheOperatorFromCommands(t *testing.T) {
	subj := events.NewSubjects("", node)
	op, err := Permissions(RoleOperator, subj, "UOP")
	if err != nil {
		t.Fatal(err)
	}
	ctl, _ := Permissions(RoleControl, subj, "UCTL")
	cmd := subj.Command(events.VerbCreate)
	if !slices.Contains(ctl.Publish.Allow, subj.Commands()) {
		t.Errorf("control plane may not publish %s: %v", cmd, ctl.Publish.Allow)
	}
	for _, s := range op.Publish.Allow {
		if s == ">" || s == subj.Commands() || s == subj.Prefix+".>" || s == "$JS.>" || s == "$JS.API.>" {
			t.Errorf("operator may publish %s", s)
		}
	}
	// Each reads replies on its own inboxes only.
	if !slices.Contains(op.Subscribe.Allow, "_INBOX.UOP.>") || slices.Contains(op.Subscribe.Allow, "_INBOX.>") ||
		!slices.Contains(ctl.Subscribe.Allow, "_INBOX.UCTL.>") || slices.Contains(ctl.Subscribe.Allow, "_INBOX.>") {
		t.Errorf("inboxes: operator %v, control plane %v", op.Subscribe.Allow, ctl.Subscribe.Allow)
	}
	if _, err := Permissions("root", subj, "U"); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("unknown role: %v, want ErrInvalid", err)
	}
}

func TestLoadCredentialsRefuses(t *testing.T) {
	good := filepath.Join(t.TempDir(), "auth")
	if _, err := InitCredentials(good, events.NewSubjects("", node)); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(t.TempDir(), "auth")
	if _, err := InitCredentials(other, events.NewSubjects("", node)); err != nil {
		t.Fatal(err)
	}
	copyDir := func(t *testing.T) string {
		dir := t.TempDir()
		for _, name := range []string{"users.json", "agent.nk"} {
			b, err := os.ReadFile(filepath.Join(good, name))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	write := func(t *testing.T, dir, name, text string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := LoadCredentials(t.TempDir()); !errors.Is(err, ErrNoCredentials) {
		t.Errorf("empty directory: %v, want ErrNoCredentials", err)
	}
	for name, spoil := range map[string]func(t *testing.T, dir string){
		"users.json not JSON": func(t *testing.T, dir string) { write(t, dir, "users.json", "{") },
		"a role missing":      func(t *testing.T, dir string) { write(t, dir, "users.json", `{"agent":"x"}`) },
		"a seed for a key": func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(dir, "agent.nk"))
			write(t, dir, "users.json", `{"agent":"`+string(b[:len(b)-1])+`","control":"x","operator":"y"}`)
		},
		"agent seed garbage": func(t *testing.T, dir string) { write(t, dir, "agent.nk", "SUAGARBAGE\n") },
		"another node's agent seed": func(t *testing.T, dir string) {
			b, _ := os.ReadFile(filepath.Join(other, "agent.nk"))
			write(t, dir, "agent.nk", string(b))
		},
	} {
		t.Run(name, func(t *testing.T) {
			dir := copyDir(t)
			spoil(t, dir)
			if _, err := LoadCredentials(dir); !errors.Is(err, events.ErrInvalid) {
				t.Errorf("LoadCredentials: %v, want ErrInvalid", err)
			}
		})
	}
	dir := copyDir(t)
	if err := os.Remove(filepath.Join(dir, "agent.nk")); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadCredentials(dir); err == nil || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("without the agent seed: %v, want ErrNotExist", err)
	}
}
