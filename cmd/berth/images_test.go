package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/dirlayer"
	"github.com/berthhq/berth/imagedriver/registry"
	"github.com/berthhq/berth/imagedriver/registry/registrytest"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/winsim"
)

// imageAgent starts a real agent with images from a loopback registry on
// the simulated host, listening on loopback for the CLI.
func imageAgent(t *testing.T) (string, *registrytest.Registry) {
	t.Helper()
	reg := registrytest.New()
	t.Cleanup(reg.Close)
	store, err := dirlayer.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	host := winsim.New()
	t.Cleanup(func() { host.Close() })
	url := listeningAgent(t, agent.Options{
		Compute: host.Compute(),
		Images: registry.New(registry.Options{Transport: tr, TempDir: t.TempDir(), Keychain: authn.NewMultiKeychain(),
			Retry: &remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 1}}),
		Layers: store, Platform: imagedriver.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2227"},
	})
	return url, reg
}

func testImage(t *testing.T, files ...string) v1.Image {
	t.Helper()
	var layers []v1.Layer
	for _, f := range files {
		l, err := registrytest.Layer(map[string][]byte{f: []byte(strings.Repeat(f, 1000))})
		if err != nil {
			t.Fatal(err)
		}
		layers = append(layers, l)
	}
	img, err := registrytest.Image("10.0.20348.2227", v1.Config{Entrypoint: []string{"cmd", "/c"}, Cmd: []string{"echo hi"}}, layers...)
	if err != nil {
		t.Fatal(err)
	}
	return img
}

func TestCLI_Images(t *testing.T) {
	url, reg := imageAgent(t)
	ref, err := reg.Push("app:1", testImage(t, "base.txt", "app.txt"))
	if err != nil {
		t.Fatal(err)
	}
	must := func(args ...string) string { t.Helper(); return berthOK(t, url, args...) }
	fails := func(wantCode int, want string, args ...string) {
		t.Helper()
		code, _, errOut := berth(t, url, args...)
		if code != wantCode || !strings.Contains(errOut, want) {
			t.Fatalf("berth %v: exit %d, stderr %q; want exit %d saying %q", args, code, errOut, wantCode, want)
		}
	}

	// -o json: progress messages as JSON lines, then the result.
	lines := strings.Split(strings.TrimSpace(must("-o", "json", "pull", ref)), "\n")
	var res events.ImageResult
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &res); err != nil || !res.Pulled || len(res.Image.Layers) != 2 {
		t.Fatalf("last line %q: %+v, %v", lines[len(lines)-1], res, err)
	}
	if len(lines) < 2 {
		t.Fatalf("no progress line before the result: %q", lines)
	}
	var p events.ImageProgress
	if err := json.Unmarshal([]byte(lines[len(lines)-2]), &p); err != nil || len(p.Layers) != 2 || p.Ref != ref {
		t.Fatalf("progress line %q: %+v, %v", lines[len(lines)-2], p, err)
	}
	if out := must("pull", "--policy", "if_not_present", ref); !strings.Contains(out, "is up to date") {
		t.Errorf("pull of a present image: %q", out)
	}
	// Not on a terminal: a line per layer state, then the outcome.
	ref2, err := reg.Push("other:1", testImage(t, "other.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if out := must("pull", ref2); !regexp.MustCompile(`(?m)^[0-9a-f]{12}: done$`).MatchString(out) || !strings.Contains(out, "Pulled "+ref2) {
		t.Errorf("pull without a terminal:\n%s", out)
	}
	must("rmi", ref2)
	id := strings.TrimPrefix(res.Image.ID, "sha256:")[:12]
	out := must("images")
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(ref) + `\s+` + id + `\s+windows/amd64:10\.0\.20348\.2227`).MatchString(out) {
		t.Errorf("images:\n%s", out)
	}
	prod := reg.Host() + "/app:prod"
	must("tag", ref, prod)
	must("run", "--name", "web", ref)
	fails(exitFailure, "has several names", "rmi", id)
	if out := must("rmi", prod); !strings.Contains(out, "Untagged: "+prod) {
		t.Errorf("rmi of one name: %q", out)
	}
	fails(exitFailure, "used by container web", "rmi", ref)
	if out := must("rmi", "-f", ref); !strings.Contains(out, "Kept for container web") {
		t.Errorf("rmi -f of an image in use: %q", out)
	}
	must("rm", "-f", "web")
	if out := must("image", "prune"); !strings.Contains(out, "Deleted: sha256:"+id) || !strings.Contains(out, "Total reclaimed space") {
		t.Errorf("prune: %q", out)
	}
	if out := must("images", "-q"); out != "" {
		t.Errorf("images after prune: %q", out)
	}

	// load from a docker save tarball on the node.
	path := filepath.Join(t.TempDir(), "app.tar")
	tag, _ := name.NewTag("example.com/offline:1")
	if err := tarball.WriteToFile(path, tag, testImage(t, "offline.txt")); err != nil {
		t.Fatal(err)
	}
	if out := must("load", "-i", path); !strings.Contains(out, "Loaded image: example.com/offline:1") {
		t.Errorf("load: %q", out)
	}

	fails(exitUsage, "IMAGE", "pull", "UPPER::x")
	fails(exitFailure, "not found", "pull", reg.Host()+"/missing:1")
	fails(exitUsage, "--input", "load")
	fails(exitFailure, "not found", "load", "-i", filepath.Join(t.TempDir(), "none.tar"))
	fails(exitFailure, "not on the node", "tag", "nothing:1", "x:1")
}

// TestCLI_RunWithCredentials runs and creates containers from an image in
// a registry that needs basic auth, with --username and the password in
// BERTH_REGISTRY_PASSWORD, as berth pull takes them.
func TestCLI_RunWithCredentials(t *testing.T) {
	url, reg := imageAgent(t)
	reg.RequireAuth("bob", "s3cret-pw")
	ref, err := reg.Push("private:1", testImage(t, "private.txt"))
	if err != nil {
		t.Fatal(err)
	}
	// berthPW runs the CLI as berth does, with password pw (none if "").
	berthPW := func(pw string, args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		env := map[string]string{"BERTH_NATS_URL": url, "BERTH_NODE": node}
		if pw != "" {
			env[passwordEnv] = pw
		}
		code := run(context.Background(), args, &stdout, &stderr, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
		if strings.Contains(stdout.String()+stderr.String(), "s3cret-pw") {
			t.Errorf("berth %v printed the password", args)
		}
		return code, stdout.String(), stderr.String()
	}
	for _, tt := range []struct {
		pw       string
		args     []string
		wantCode int
		want     string // in stdout if wantCode is 0, else in stderr
	}{
		{"", []string{"run", "--name", "anon", ref}, exitFailure, "unauthorized"},
		{"", []string{"run", "--name", "nopw", "--username", "bob", ref}, exitUsage, "--username bob: " + passwordEnv + " is not set"},
		{"wrong", []string{"create", "--name", "wrong", "--username", "bob", ref}, exitFailure, "unauthorized"},
		{"s3cret-pw", []string{"create", "--name", "c1", "--username", "bob", ref}, 0, "c1"},
		{"s3cret-pw", []string{"run", "--name", "r1", "--pull", "always", "--username", "bob", ref}, 0, "r1"},
		{"s3cret-pw", []string{"pull", "-u", "bob", ref}, 0, "Pulled " + ref},
		{"", []string{"pull", "-u", "bob", ref}, exitUsage, passwordEnv},
	} {
		code, out, errOut := berthPW(tt.pw, tt.args...)
		got := out
		if tt.wantCode != 0 {
			got = errOut
		}
		if code != tt.wantCode || !strings.Contains(got, tt.want) {
			t.Errorf("berth %v (password %q): exit %d, stdout %q, stderr %q; want exit %d with %q", tt.args, tt.pw, code, out, errOut, tt.wantCode, tt.want)
		}
	}
	code, out, errOut := berth(t, url, "ps", "-a")
	if code != 0 || !strings.Contains(out, "c1") || !strings.Contains(out, "r1") || strings.Contains(out, "anon") || strings.Contains(out, "wrong") {
		t.Errorf("ps -a: exit %d, %q %q; want c1 and r1 only", code, out, errOut)
	}
}
