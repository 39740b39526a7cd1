package actors_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berthhq/berth/actors"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/hcsdriver/winhcs"
	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/dirlayer"
	"github.com/berthhq/berth/imagedriver/imagedrivertest"
	"github.com/berthhq/berth/imagedriver/registry"
	"github.com/berthhq/berth/imagedriver/registry/registrytest"
	"github.com/berthhq/berth/winsim"
)

var ltsc2022 = imagedriver.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2227"}

// imageHost is an agent with images: a loopback registry, a puller and a
// folder layer store.
type imageHost struct {
	*agent
	reg    *registrytest.Registry
	store  *dirlayer.Store
	puller *registry.Puller
	host   *winsim.Host
	dir    string // the journal's
}

func startImageAgent(t *testing.T, opts ...func(*actors.Config)) *imageHost {
	t.Helper()
	reg := registrytest.New()
	t.Cleanup(reg.Close)
	store, err := dirlayer.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	puller := registry.New(registry.Options{Transport: tr, TempDir: t.TempDir(), Keychain: authn.NewMultiKeychain(),
		Retry: &remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 1}})
	host := winsim.New()
	t.Cleanup(func() { host.Close() })
	dir := t.TempDir()
	a := startAgent(t, host, dir, append([]func(*actors.Config){func(c *actors.Config) {
		c.Images, c.Layers, c.Platform = puller, store, ltsc2022
	}}, opts...)...)
	return &imageHost{agent: a, reg: reg, store: store, puller: puller, host: host, dir: dir}
}

// push builds a Windows image of layers (one file each) with cfg and
// pushes it as repoTag.
func (h *imageHost) push(repoTag string, cfg v1.Config, layers ...v1.Layer) string {
	h.t.Helper()
	img, err := registrytest.Image(ltsc2022.OSVersion, cfg, layers...)
	if err != nil {
		h.t.Fatal(err)
	}
	ref, err := h.reg.Push(repoTag, img)
	if err != nil {
		h.t.Fatal(err)
	}
	return ref
}

func layer(t testing.TB, name, body string) v1.Layer {
	t.Helper()
	l, err := registrytest.Layer(map[string][]byte{name: []byte(body)})
	if err != nil {
		t.Fatal(err)
	}
	return l
}

var echoConfig = v1.Config{Entrypoint: []string{"cmd", "/c"}, Cmd: []string{"echo hi"}, Env: []string{"MODE=image", "KEEP=1"}, WorkingDir: `C:\app`}

// imageEvents returns the image event types the journal holds, in order.
func (a *agent) imageEvents() []string {
	a.t.Helper()
	var types []string
	err := a.j.Replay(context.Background(), 1, a.j.LastSeq(), func(e *events.Event) error {
		if e.Kind() == events.KindImage {
			types = append(types, e.Short())
		}
		return nil
	})
	if err != nil {
		a.t.Fatal(err)
	}
	return types
}

func decode[T any](t testing.TB, r events.Reply) T {
	t.Helper()
	var v T
	if err := r.Err(); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(r.Result, &v); err != nil {
		t.Fatal(err)
	}
	return v
}

func imageCmd(verb string, ic events.ImageCommand) events.Command {
	return events.Command{Verb: verb, Image: &ic}
}

// TestImage_CreateRunsTheImage: a create pulls the missing image, creates
// the scratch layer over its layers, runs the image's command with its
// environment under the spec's, and a remove deletes the scratch layer.
func TestImage_CreateRunsTheImage(t *testing.T) {
	h := startImageAgent(t)
	ref := h.push("app:1", echoConfig, layer(t, "base.txt", "base"), layer(t, "app.txt", "app"))
	sp := &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}, Env: map[string]string{"MODE": "spec"}}
	h.ok(events.Command{Verb: events.VerbCreate, Container: "web-1", Spec: sp})

	c, err := h.node.Inspect(context.Background(), "web-1")
	if err != nil {
		t.Fatal(err)
	}
	want := events.CommandSpec{Entrypoint: []string{"cmd", "/c"}, Args: []string{"echo hi"}, Workdir: `C:\app`}
	if d := cmp.Diff(want, c.Spec.Command); d != "" {
		t.Errorf("command (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]string{"MODE": "spec", "KEEP": "1"}, c.Spec.Env); d != "" {
		t.Errorf("env (-want +got):\n%s", d)
	}
	if c.Image == "" || c.Scratch == nil || len(c.Scratch.Parents) != 2 {
		t.Fatalf("record: image %q scratch %+v", c.Image, c.Scratch)
	}
	if fi, err := os.Stat(c.Scratch.Path); err != nil || !fi.IsDir() {
		t.Fatalf("scratch folder %s: %v", c.Scratch.Path, err)
	}
	cfg := hostConfig(t, h.host, "web-1")
	if len(cfg.Layers) != 2 || cfg.VolumePath != c.Scratch.VolumePath || cfg.LayerFolderPath != c.Scratch.Path || cfg.Layers[0].ID == "" {
		t.Fatalf("compute config: %+v", cfg)
	}
	if got, _ := h.store.Get(context.Background(), c.Scratch.Parents[0]); cfg.Layers[0].Path != got.Path {
		t.Fatalf("immediate parent first: %+v, want %s", cfg.Layers, got.Path)
	}

	h.ok(verb(events.VerbStart, "web-1"))
	if ex := h.wait("web-1"); ex.Code == nil || *ex.Code != 0 {
		t.Fatalf("exit %+v", ex)
	}
	h.ok(verb(events.VerbRemove, "web-1"))
	if sc, _ := h.store.ListScratch(context.Background()); len(sc) != 0 {
		t.Fatalf("scratch layers after remove: %+v", sc)
	}
	wantHistory := []string{"container.creating", "container.scratch_creating", "container.scratch_created", "container.created",
		"container.starting", "container.started", "container.exited", "container.removing", "container.scratch_removed", "container.removed"}
	if d := cmp.Diff(wantHistory, h.history("web-1")); d != "" {
		t.Fatalf("journal (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{"image.pulled"}, h.imageEvents()); d != "" {
		t.Fatalf("image events (-want +got):\n%s", d)
	}
}

func hostConfig(t *testing.T, host *winsim.Host, id string) hcsdriver.Config {
	t.Helper()
	for _, sys := range host.Snapshot().Systems {
		if sys.ID == id {
			return sys.Config
		}
	}
	t.Fatalf("host has no system %s", id)
	return hcsdriver.Config{}
}

// TestImage_ConcurrentPullsShareOneDownload: ten creates and ten pulls of
// one reference at once fetch each blob once, and a second image sharing
// the base layer neither fetches nor stores it again.
func TestImage_ConcurrentPullsShareOneDownload(t *testing.T) {
	h := startImageAgent(t)
	base := layer(t, "base.txt", strings.Repeat("b", 1<<20))
	ref := h.push("app:1", echoConfig, base, layer(t, "app.txt", "app"))
	var wg sync.WaitGroup
	replies := make([]events.Reply, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				replies[i] = h.do(events.Command{Verb: events.VerbCreate, Container: fmt.Sprintf("c-%d", i),
					Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}}})
			} else {
				replies[i] = h.do(imageCmd(events.VerbImagePull, events.ImageCommand{Ref: ref, PullPolicy: events.PullIfNotPresent}))
			}
		}()
	}
	wg.Wait()
	for i, r := range replies {
		if err := r.Err(); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	for d, n := range h.reg.BlobGets() {
		if n != 1 {
			t.Errorf("blob %s fetched %d times, want once", d, n)
		}
	}
	if n := len(h.reg.BlobGets()); n != 3 { // config and two layers
		t.Errorf("%d blobs fetched, want 3", n)
	}

	ref2 := h.push("other:1", echoConfig, base, layer(t, "other.txt", "other"))
	res := decode[events.ImageResult](t, h.do(imageCmd(events.VerbImagePull, events.ImageCommand{Ref: ref2})))
	if !res.Pulled || len(res.Image.Layers) != 2 {
		t.Fatalf("pull of the second image: %+v", res)
	}
	baseDigest, _ := base.Digest()
	if n := h.reg.BlobGets()[baseDigest.String()]; n != 1 {
		t.Errorf("shared base fetched %d times, want once", n)
	}
	layers, err := h.store.List(context.Background())
	if err != nil || len(layers) != 3 {
		t.Fatalf("store holds %d layers (%v), want 3: the base once and two tops", len(layers), err)
	}
}

// TestImage_RemoveAndPrune: an image in use is not removed (409 naming the
// container); with force its names go and its layers stay to the
// container; once the container is removed, prune reclaims them.
func TestImage_RemoveAndPrune(t *testing.T) {
	h := startImageAgent(t)
	ref := h.push("app:1", echoConfig, layer(t, "base.txt", strings.Repeat("b", 4096)), layer(t, "app.txt", "app"))
	h.ok(events.Command{Verb: events.VerbRun, Container: "web-1",
		Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}, Command: events.CommandSpec{Entrypoint: []string{"ping", "-t", "localhost"}}}})

	e := h.refused(imageCmd(events.VerbImageRemove, events.ImageCommand{Ref: ref}), events.ErrConflict)
	if !strings.Contains(e.Message, "web-1") || !strings.Contains(e.Message, "force") {
		t.Errorf("409 message %q does not name the container and force", e.Message)
	}
	h.ok(imageCmd(events.VerbImageTag, events.ImageCommand{Ref: ref, Target: h.reg.Host() + "/app:prod"}))
	imgs := h.images()
	if len(imgs) != 1 || len(imgs[0].Refs) != 2 || !slices.Equal(imgs[0].Containers, []string{"web-1"}) {
		t.Fatalf("images after tag: %+v", imgs)
	}
	// One name of two: only that name goes.
	res := decode[events.ImageRemoveResult](t, h.do(imageCmd(events.VerbImageRemove, events.ImageCommand{Ref: h.reg.Host() + "/app:prod"})))
	if len(res.Untagged) != 1 || len(res.Deleted) != 0 {
		t.Fatalf("untag: %+v", res)
	}
	cmd := imageCmd(events.VerbImageRemove, events.ImageCommand{Ref: ref})
	cmd.Force = true
	res = decode[events.ImageRemoveResult](t, h.do(cmd))
	if !slices.Equal(res.Kept, []string{"web-1"}) || len(res.Deleted) != 0 || res.Reclaimed != 0 {
		t.Fatalf("forced remove of an image in use: %+v", res)
	}
	if c, _ := h.node.Inspect(context.Background(), "web-1"); c.Phase != events.PhaseRunning {
		t.Fatalf("container after the forced remove: %s", c.Phase)
	}
	res = decode[events.ImageRemoveResult](t, h.do(imageCmd(events.VerbImagePrune, events.ImageCommand{})))
	if len(res.Deleted) != 0 || res.Layers != 0 {
		t.Fatalf("prune while the container uses the layers: %+v", res)
	}
	rm := verb(events.VerbRemove, "web-1")
	rm.Force = true
	h.ok(rm)
	res = decode[events.ImageRemoveResult](t, h.do(imageCmd(events.VerbImagePrune, events.ImageCommand{})))
	if len(res.Deleted) != 1 || res.Layers != 2 || res.Reclaimed < 4096 {
		t.Fatalf("prune: %+v", res)
	}
	if l, _ := h.store.List(context.Background()); len(l) != 0 {
		t.Fatalf("layers left after prune: %+v", l)
	}
	if imgs := h.images(); len(imgs) != 0 {
		t.Fatalf("images left after prune: %+v", imgs)
	}
	h.refused(imageCmd(events.VerbImageRemove, events.ImageCommand{Ref: ref}), events.ErrNotFound)
}

// TestImage_PullPolicies: never refuses a missing image, if_not_present
// asks no registry for a present one, always and newer ask it and fetch
// only what changed.
func TestImage_PullPolicies(t *testing.T) {
	h := startImageAgent(t)
	v1Layer := layer(t, "base.txt", "v1")
	ref := h.push("app:1", echoConfig, v1Layer)
	layerDigest, _ := v1Layer.Digest()
	create := func(id, policy string) events.Reply {
		return h.do(events.Command{Verb: events.VerbCreate, Container: id,
			Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref, PullPolicy: policy}}})
	}
	if err := create("a", events.PullNever).Err(); !strings.Contains(fmt.Sprint(err), "pull policy is never") {
		t.Fatalf("never, absent: %v", err)
	}
	if _, err := h.node.Inspect(context.Background(), "a"); err == nil {
		t.Fatal("a create whose image is missing left a record")
	}
	h.ok(imageCmd(events.VerbImagePull, events.ImageCommand{Ref: ref}))
	for _, p := range []string{events.PullNever, events.PullIfNotPresent, events.PullAlways, events.PullNewer} {
		if err := create("c-"+strings.ReplaceAll(p, "_", "-"), p).Err(); err != nil {
			t.Fatalf("%s, present: %v", p, err)
		}
	}
	// always and newer read the manifest and the config again, never a
	// layer the store has.
	if n := h.reg.BlobGets()[layerDigest.String()]; n != 1 {
		t.Fatalf("layer of a present image fetched %d times, want once", n)
	}
	ref2 := h.push("app:1", echoConfig, layer(t, "base.txt", "v2"))
	if ref2 != ref {
		t.Fatal(ref2)
	}
	old := h.images()
	if err := create("d", events.PullNewer).Err(); err != nil {
		t.Fatal(err)
	}
	c, _ := h.node.Inspect(context.Background(), "d")
	if len(old) != 1 || c.Image == old[0].ID {
		t.Fatalf("newer kept the old image %s", c.Image)
	}
	// image.pull, the create that always pulls, the create that found a newer image.
	wantEv := []string{"image.pull_failed", "image.pulled", "image.pulled", "image.pulled"}
	if d := cmp.Diff(wantEv, h.imageEvents()); d != "" {
		t.Fatalf("image events (-want +got):\n%s", d)
	}
}

// TestImage_BadInput: each bad pull gets a clear error of its class and an
// image.pull_failed event; nothing is left in the store.
func TestImage_BadInput(t *testing.T) {
	h := startImageAgent(t)
	newer, err := registrytest.Image("10.0.26100.1", echoConfig, layer(t, "b.txt", "b"))
	if err != nil {
		t.Fatal(err)
	}
	newerRef, err := h.reg.Push("newer:1", newer)
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	for _, tc := range []struct {
		ref   string
		class error
		msg   string
	}{
		{"UPPER/Case::x", events.ErrInvalid, "invalid image reference"},
		{dead + "/app:1", events.ErrUnavailable, "registry unavailable"},
		{h.reg.Host() + "/missing:1", events.ErrNotFound, "not found"},
		{newerRef, events.ErrNotFound, "windows/amd64:10.0.26100.1"},
	} {
		e := h.refused(imageCmd(events.VerbImagePull, events.ImageCommand{Ref: tc.ref}), tc.class)
		if !strings.Contains(e.Message, tc.msg) {
			t.Errorf("pull %s: %q does not say %q", tc.ref, e.Message, tc.msg)
		}
	}
	if got := h.imageEvents(); len(got) != 4 || slices.ContainsFunc(got, func(s string) bool { return s != "image.pull_failed" }) {
		t.Fatalf("image events %v, want four pull_failed", got)
	}
	if l, _ := h.store.List(context.Background()); len(l) != 0 {
		t.Fatalf("layers left: %+v", l)
	}
	h.refused(imageCmd(events.VerbImageTag, events.ImageCommand{Ref: "nothing:1", Target: "x:1"}), events.ErrNotFound)
}

// TestImage_FailedCreateRemovesTheScratch: a compute system the host
// refuses leaves no scratch layer, and the journal says so.
func TestImage_FailedCreateRemovesTheScratch(t *testing.T) {
	h := startImageAgent(t)
	ref := h.push("app:1", echoConfig, layer(t, "base.txt", "base"))
	h.host.Fail(winsim.OpCreate, "web-1", 1, hcsdriver.ErrInvalidState)
	h.refused(events.Command{Verb: events.VerbCreate, Container: "web-1", Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}}},
		events.ErrWrongPhase)
	if sc, _ := h.store.ListScratch(context.Background()); len(sc) != 0 {
		t.Fatalf("scratch layers after a failed create: %+v", sc)
	}
	want := []string{"container.creating", "container.scratch_creating", "container.scratch_created",
		"container.scratch_removed", "container.create_failed"}
	if d := cmp.Diff(want, h.history("web-1")); d != "" {
		t.Fatalf("journal (-want +got):\n%s", d)
	}
	c, err := h.node.Inspect(context.Background(), "web-1")
	if err != nil || c.Phase != events.PhaseFailed || c.Scratch != nil {
		t.Fatalf("record: %+v, %v", c, err)
	}
	if imgs := h.images(); len(imgs) != 1 || len(imgs[0].Containers) != 0 {
		t.Fatalf("a failed create uses the image: %+v", imgs)
	}
	// The same id can be created again.
	h.ok(events.Command{Verb: events.VerbCreate, Container: "web-1", Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}}})
}

func (a *agent) images() []events.ImageSummary {
	a.t.Helper()
	st, err := a.node.State(context.Background())
	if err != nil {
		a.t.Fatal(err)
	}
	return st.ImageList()
}

// TestImage_InlineCredentials: a registry that needs basic auth refuses a
// pull without credentials (400 unauthorized) and serves one that brings
// them; the password reaches neither the journal nor the log.
func TestImage_InlineCredentials(t *testing.T) {
	h := startImageAgent(t)
	h.reg.RequireAuth("bob", "s3cret-pw")
	ref := h.push("private:1", echoConfig, layer(t, "base.txt", "base"))
	e := h.refused(imageCmd(events.VerbImagePull, events.ImageCommand{Ref: ref}), events.ErrInvalid)
	if !strings.Contains(e.Message, "unauthorized") {
		t.Errorf("pull without credentials: %q", e.Message)
	}
	pull := imageCmd(events.VerbImagePull, events.ImageCommand{Ref: ref})
	pull.Auth = &events.RegistryAuth{Username: "bob", Password: "s3cret-pw"}
	h.ok(pull)
	create := events.Command{Verb: events.VerbCreate, Container: "web-1", Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref, PullPolicy: events.PullAlways}},
		Auth: &events.RegistryAuth{Username: "bob", Password: "s3cret-pw"}}
	h.ok(create)
	err := h.j.Replay(context.Background(), 1, h.j.LastSeq(), func(e *events.Event) error {
		if b, _ := e.Marshal(); strings.Contains(string(b), "s3cret") {
			t.Errorf("journal event %s holds the password: %s", e.Short(), b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range h.logs.all() {
		if strings.Contains(l, "s3cret") {
			t.Errorf("log line holds the password: %s", l)
		}
	}
}

// TestImage_BadContent: a blob that breaks off, one that does not match
// its digest, and a layer with an entry that escapes it each fail the pull
// with a clear error of its class and image.pull_failed, and leave nothing
// usable in the store.
func TestImage_BadContent(t *testing.T) {
	h := startImageAgent(t)
	evil, _ := imagedrivertest.Tar(t, imagedrivertest.Entry{Name: "Files/../../evil.txt", Body: "x"})
	evilLayer, err := registrytest.TarLayer(evil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name  string
		fault registrytest.Fault
		layer v1.Layer
		class error
		msg   string
	}{
		{"broken", registrytest.BreakOff, layer(t, "a.txt", strings.Repeat("a", 1<<20)), events.ErrUnavailable, "broke off"},
		{"corrupt", registrytest.Corrupt, layer(t, "b.txt", strings.Repeat("b", 1<<20)), events.ErrUnavailable, "digest mismatch"},
		{"unsafe", 0, evilLayer, events.ErrInvalid, "Files/../../evil.txt"},
	} {
		ref := h.push(tc.name+":1", echoConfig, tc.layer)
		if tc.fault != 0 {
			d, _ := tc.layer.Digest()
			h.reg.Break(d.String(), tc.fault)
		}
		e := h.refused(events.Command{Verb: events.VerbCreate, Container: tc.name, Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}}}, tc.class)
		if !strings.Contains(e.Message, tc.msg) {
			t.Errorf("%s: %q does not say %q", tc.name, e.Message, tc.msg)
		}
	}
	if got := h.imageEvents(); !slices.Equal(got, []string{"image.pull_failed", "image.pull_failed", "image.pull_failed"}) {
		t.Fatalf("image events %v", got)
	}
	if l, _ := h.store.List(context.Background()); len(l) != 0 {
		t.Fatalf("layers left: %+v", l)
	}
	if imgs := h.images(); len(imgs) != 0 {
		t.Fatalf("images: %+v", imgs)
	}
}

// TestImage_Replay: after a restart the fold still knows the images and
// the containers' scratch layers, a remove deletes the scratch layer, and
// an image pulled before the restart is not fetched again.
func TestImage_Replay(t *testing.T) {
	h := startImageAgent(t)
	ref := h.push("app:1", echoConfig, layer(t, "base.txt", "base"))
	h.ok(events.Command{Verb: events.VerbCreate, Container: "web-1", Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}}})
	before := h.images()
	gets := h.reg.BlobGets()
	h.stop()

	b := startAgent(t, h.host, h.dir, func(c *actors.Config) {
		c.Images, c.Layers, c.Platform = h.puller, h.store, ltsc2022
	})
	if d := cmp.Diff(before, b.images()); d != "" {
		t.Fatalf("images after the restart (-before +after):\n%s", d)
	}
	b.ok(events.Command{Verb: events.VerbCreate, Container: "web-2", Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}}})
	if d := cmp.Diff(gets, h.reg.BlobGets()); d != "" {
		t.Fatalf("blobs fetched after the restart (-before +after):\n%s", d)
	}
	b.ok(verb(events.VerbRemove, "web-1"))
	sc, _ := h.store.ListScratch(context.Background())
	if len(sc) != 1 || sc[0].ContainerID != "web-2" {
		t.Fatalf("scratch layers: %+v", sc)
	}
}

// TestImage_ConfigBuildsAnHCSDocument: the compute config of a container
// created from an image is one the Windows adapter turns into an HCS
// document: layers immediate parent first with their GUIDs, and for Hyper-V
// isolation the scratch folder and no volume. (Process isolation needs the
// \\?\Volume{GUID} of a mounted scratch, which only the Windows layer store
// gives; the folder store's volume path is its folder.)
func TestImage_ConfigBuildsAnHCSDocument(t *testing.T) {
	h := startImageAgent(t)
	ref := h.push("app:1", echoConfig, layer(t, "base.txt", "base"), layer(t, "app.txt", "app"))
	h.ok(events.Command{Verb: events.VerbCreate, Container: "hv-1",
		Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}, Isolation: "hyperv"}})
	cfg := hostConfig(t, h.host, "hv-1")
	doc, err := winhcs.BuildDocument("hv-1", cfg, 4)
	if err != nil {
		t.Fatalf("BuildDocument(%+v): %v", cfg, err)
	}
	c, _ := h.node.Inspect(context.Background(), "hv-1")
	base, _ := h.store.Get(context.Background(), c.Scratch.Parents[1])
	if len(doc.Layers) != 2 || doc.Layers[1].Path != base.Path || doc.LayerFolderPath != c.Scratch.Path ||
		doc.VolumePath != "" || doc.HvRuntime == nil || doc.HvRuntime.ImagePath != base.Path+`\UtilityVM` {
		t.Fatalf("document: %+v", doc)
	}

	h.ok(events.Command{Verb: events.VerbCreate, Container: "p-1", Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}}})
	cfg = hostConfig(t, h.host, "p-1")
	cfg.VolumePath = `\\?\Volume{0b5a3c2e-9a44-4f0e-8d7b-2f8a4b2c1d3e}` // what wclayer mounts
	if _, err := winhcs.BuildDocument("p-1", cfg, 4); err != nil {
		t.Fatalf("BuildDocument of a process-isolated container: %v", err)
	}
}

// TestImage_MultiPlatformIndex: from an index of an ltsc2019 and two
// ltsc2022 builds, a create on an ltsc2022 host runs the highest revision of
// its own build, and the fold records the index and the platform.
func TestImage_MultiPlatformIndex(t *testing.T) {
	h := startImageAgent(t)
	var adds []mutate.IndexAddendum
	for _, v := range []string{"10.0.17763.5329", "10.0.20348.2113", "10.0.20348.2227"} {
		img, err := registrytest.Image(v, echoConfig, layer(t, "build.txt", v))
		if err != nil {
			t.Fatal(err)
		}
		adds = append(adds, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: v}}})
	}
	idx := mutate.AppendManifests(empty.Index, adds...)
	ref, err := h.reg.Push("multi:1", idx)
	if err != nil {
		t.Fatal(err)
	}
	h.ok(events.Command{Verb: events.VerbCreate, Container: "web-1", Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}}})
	imgs := h.images()
	idxDigest, _ := idx.Digest()
	want, _ := adds[2].Add.Digest()
	if len(imgs) != 1 || imgs[0].ID != want.String() || imgs[0].IndexDigest != idxDigest.String() ||
		imgs[0].Platform != "windows/amd64:10.0.20348.2227" {
		t.Fatalf("images: %+v; want %s from index %s", imgs, want, idxDigest)
	}
}

// TestImage_PanicAnswersTheWaitingCreates makes the image actor panic
// while it handles a create's ensure, then while it handles the outcome of
// a pull that creates wait for, then the outcome of a tag: every create
// gets an answer (503 naming the image, or success for those that came
// after the rebuild or waited behind the tag), none waits until the agent
// stops, the tag is answered, and no lease is left behind.
func TestImage_PanicAnswersTheWaitingCreates(t *testing.T) {
	h := startImageAgent(t)
	ref := h.push("app:1", echoConfig, layer(t, "base.txt", "base"))
	ref2 := h.push("other:1", echoConfig, layer(t, "other.txt", "other"))
	var onEnsure, onPullDone, onExclusiveDone atomic.Bool
	actors.SetReceiveHook(func(_ string, msg any) {
		if _, ok := actors.EnsureFor(msg); ok && onEnsure.CompareAndSwap(true, false) {
			panic("injected on an ensure")
		}
		if _, ok := actors.PullDoneFor(msg); ok && onPullDone.CompareAndSwap(true, false) {
			panic("injected on a pull's outcome")
		}
		if actors.IsExclusiveDone(msg) && onExclusiveDone.CompareAndSwap(true, false) {
			panic("injected on a tag's outcome")
		}
	})
	defer actors.SetReceiveHook(nil)
	create := func(id, ref string) <-chan events.Reply {
		return h.node.Submit(events.Command{ID: events.NewID(), Verb: events.VerbCreate, Container: id,
			Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}}})
	}
	await := func(id string, ch <-chan events.Reply) error {
		t.Helper()
		select {
		case r := <-ch:
			return r.Err()
		case <-time.After(30 * time.Second):
			t.Fatalf("create %s: no answer", id)
			return nil
		}
	}
	unavailable := func(ref string, err error) bool {
		return errors.Is(err, events.ErrUnavailable) && strings.Contains(err.Error(), "image "+ref+": the image actor panicked")
	}

	onEnsure.Store(true)
	if err := await("c1", create("c1", ref)); !unavailable(ref, err) {
		t.Fatalf("create c1, whose ensure panicked: %v, want 503 naming %s", err, ref)
	}
	if _, err := h.node.Inspect(context.Background(), "c1"); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("c1 after its failed create: %v, want not found", err)
	}
	h.ok(events.Command{Verb: events.VerbCreate, Container: "c2", Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref}}})

	onPullDone.Store(true)
	const n = 4
	chans := make([]<-chan events.Reply, n)
	for i := range n {
		chans[i] = create(fmt.Sprintf("d%d", i), ref2)
	}
	failed := 0
	for i, ch := range chans {
		id := fmt.Sprintf("d%d", i)
		switch err := await(id, ch); {
		case err == nil:
		case unavailable(ref2, err):
			failed++
		default:
			t.Errorf("create %s: %v, want success or 503 naming %s", id, err, ref2)
		}
	}
	if failed == 0 || onPullDone.Load() {
		t.Errorf("%d creates failed (panic pending: %v); want at least the one that started the pull", failed, onPullDone.Load())
	}
	h.ok(events.Command{Verb: events.VerbCreate, Container: "d-after", Spec: &events.ContainerSpec{Image: events.ImageSpec{Ref: ref2}}})

	onExclusiveDone.Store(true)
	tag := imageCmd(events.VerbImageTag, events.ImageCommand{Ref: ref, Target: h.reg.Host() + "/app:2"})
	tag.ID = events.NewID()
	tagged := h.node.Submit(tag)
	behind := create("e1", ref)
	if err := await("tag", tagged); err != nil {
		t.Errorf("tag whose outcome panicked: %v", err)
	}
	if err := await("e1", behind); err != nil {
		t.Errorf("create e1, behind the tag: %v", err)
	}
	if onExclusiveDone.Load() {
		t.Error("the tag's outcome did not panic")
	}

	// No lease outlives its create: once the containers are gone, the
	// images go without force.
	st, err := h.node.State(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for id := range st.Containers {
		h.ok(events.Command{Verb: events.VerbRemove, Container: id, Force: true})
	}
	for _, r := range []string{ref, h.reg.Host() + "/app:2", ref2} {
		if err := h.do(imageCmd(events.VerbImageRemove, events.ImageCommand{Ref: r})).Err(); err != nil {
			t.Errorf("image.remove %s: %v", r, err)
		}
	}
}
