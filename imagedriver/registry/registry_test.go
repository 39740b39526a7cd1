package registry_test

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/imagedrivertest"
	"github.com/berthhq/berth/imagedriver/registry"
	"github.com/berthhq/berth/imagedriver/registry/registrytest"
)

func TestPullWindowsImage(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	base := gzipLayer(t, map[string]string{"Windows/System32/cmd.exe": "MZ cmd", "Windows/System32/ping.exe": "MZ ping"})
	mid := zstdLayer(t, map[string]string{"app/run.bat": "@echo hi"})
	top := plainLayer(t, dirEntry("Files"), imagedrivertest.Entry{Name: "Files/app/config.ini", Body: "x=1"},
		imagedrivertest.Entry{Name: "Files/Windows/System32/.wh.ping.exe"})
	img := winImage(t, "10.0.20348.2227", base, mid, top)
	ref := reg.push(t, "windows/app:1", img)
	s := newStore(t)
	p := newPuller(t, registry.Options{})
	ctx := testContext(t)

	var mu sync.Mutex
	var updates []imagedriver.ProgressUpdate
	overlapping := false
	var busy sync.Mutex
	got, err := p.Pull(ctx, ref, host2022, s, imagedriver.PullOptions{Progress: func(u imagedriver.ProgressUpdate) {
		if !busy.TryLock() {
			overlapping = true
			return
		}
		defer busy.Unlock()
		mu.Lock()
		updates = append(updates, u)
		mu.Unlock()
	}})
	if err != nil {
		t.Fatal(err)
	}

	manifestDigest := digestOf(t, img)
	if got.Ref != ref || got.Digest != manifestDigest || got.IndexDigest != "" || got.MediaType != string(types.DockerManifestSchema2) {
		t.Errorf("descriptor = %+v; want %s at %s", got.Descriptor, ref, manifestDigest)
	}
	if got.Platform != host2022 {
		t.Errorf("platform = %v", got.Platform)
	}
	wantCfg := imagedriver.ImageConfig{Entrypoint: []string{"cmd", "/c"}, Cmd: []string{"echo hi"}, Env: []string{"BUILD=10.0.20348.2227"},
		WorkingDir: `C:\app`, User: "ContainerUser", Labels: map[string]string{"build": "10.0.20348.2227"},
		OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2227"}
	if fmt.Sprint(got.Config) != fmt.Sprint(wantCfg) {
		t.Errorf("config = %+v\nwant     %+v", got.Config, wantCfg)
	}
	var diffIDs []string
	var size int64
	for i, l := range []v1.Layer{base, mid, top} {
		diffIDs = append(diffIDs, diffIDOf(t, l))
		mt, _ := l.MediaType()
		n, _ := l.Size()
		size += n
		li := got.Layers[i]
		if li.Digest != digestOf(t, l) || li.DiffID != diffIDs[i] || li.Size != n || li.MediaType != string(mt) || li.Foreign {
			t.Errorf("layer %d = %+v", i, li)
		}
	}
	chain := imagedriver.ChainIDs(diffIDs)
	for i, l := range got.Layers {
		if l.ChainID != chain[i] {
			t.Errorf("layer %d chain id = %s, want %s", i, l.ChainID, chain[i])
		}
		if ok, _ := s.Has(ctx, chain[i]); !ok {
			t.Errorf("layer %d not in the store", i)
		}
	}
	if got.Size != size || got.TopLayer() != chain[2] {
		t.Errorf("size = %d, top = %s; want %d, %s", got.Size, got.TopLayer(), size, chain[2])
	}

	// The files, whiteouts applied, as a container over the image sees them.
	for name, want := range map[string]bool{
		"Files/Windows/System32/cmd.exe": true, "Files/app/run.bat": true, "Files/app/config.ini": true,
		"Hives/Software_Delta": true, "Files/Windows/System32/ping.exe": false,
	} {
		_, err := s.Lookup(ctx, got.TopLayer(), name)
		if (err == nil) != want {
			t.Errorf("Lookup(%s) = %v; want found %v", name, err, want)
		}
	}

	// Progress: never overlapping, bytes per layer never going back, and a
	// last update with every layer done.
	if overlapping {
		t.Error("Progress calls overlapped")
	}
	if len(updates) < 2 {
		t.Fatalf("%d progress updates", len(updates))
	}
	for i := 1; i < len(updates); i++ {
		for j, l := range updates[i].Layers {
			if l.Current < updates[i-1].Layers[j].Current || l.Current > l.Total {
				t.Fatalf("update %d layer %d: %+v after %+v", i, j, l, updates[i-1].Layers[j])
			}
		}
	}
	last := updates[len(updates)-1]
	for i, l := range last.Layers {
		if last.Ref != ref || l.State != imagedriver.LayerDone || l.Current != l.Total || l.Digest != got.Layers[i].Digest {
			t.Errorf("last update, layer %d = %+v", i, l)
		}
	}

	// Resolve finds the same image without fetching a blob.
	reg.resetCounts()
	d, err := p.Resolve(ctx, ref, host2022, nil)
	if err != nil || d != got.Descriptor {
		t.Errorf("Resolve = %+v, %v; want %+v", d, err, got.Descriptor)
	}
	for _, l := range got.Layers {
		if n := reg.gets(l.Digest); n != 0 {
			t.Errorf("Resolve fetched layer %s %d times", l.Digest, n)
		}
	}
}

func TestProgressInterval(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	ref := reg.push(t, "app:1", winImage(t, "10.0.20348.2227",
		gzipLayer(t, map[string]string{"a": strings.Repeat("a", 1<<20)}), gzipLayer(t, map[string]string{"b": "b"})))
	calls := 0
	_, err := newPuller(t, registry.Options{}).Pull(testContext(t), ref, host2022, newStore(t), imagedriver.PullOptions{
		ProgressInterval: 1 << 62, // far longer than the pull
		Progress:         func(imagedriver.ProgressUpdate) { calls++ },
	})
	if err != nil {
		t.Fatal(err)
	}
	if calls != 2 { // the first change, then the final update
		t.Fatalf("%d progress calls within one interval; want the first and the last", calls)
	}
}

// platformIndex pushes an index of Windows images of several builds and a
// Linux image. Each image's top layer holds a file naming its build.
func platformIndex(t *testing.T, reg *testRegistry, versions []string) (string, map[string]v1.Image) {
	t.Helper()
	base := gzipLayer(t, map[string]string{"Windows/System32/cmd.exe": "MZ"})
	idx := mutate.IndexMediaType(empty.Index, types.OCIImageIndex)
	images := map[string]v1.Image{}
	for _, v := range versions {
		img := winImage(t, v, base, gzipLayer(t, map[string]string{"build.txt": v}))
		images[v] = img
		idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: img, Descriptor: v1.Descriptor{
			Platform: &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: v}}})
	}
	linux, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{OS: "linux", Architecture: "amd64"})
	if err != nil {
		t.Fatal(err)
	}
	idx = mutate.AppendManifests(idx, mutate.IndexAddendum{Add: linux, Descriptor: v1.Descriptor{
		Platform: &v1.Platform{OS: "linux", Architecture: "amd64"}}})
	return reg.push(t, "windows/multi:latest", idx), images
}

func TestPullSelectsPlatform(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	versions := []string{"10.0.17763.5329", "10.0.20348.2227", "10.0.20348.2400", "10.0.26100.1742"}
	ref, images := platformIndex(t, reg, versions)
	p := newPuller(t, registry.Options{})
	ctx := testContext(t)
	for _, c := range []struct{ host, want string }{
		{"10.0.20348.2227", "10.0.20348.2227"}, // exact
		{"10.0.20348.2300", "10.0.20348.2400"}, // same build, highest revision
		{"10.0.17763.1", "10.0.17763.5329"},    // 2019 needs its own build
		{"10.0.26100.9", "10.0.26100.1742"},    // 2025 prefers its own build
		{"10.0.22631.3007", "10.0.20348.2400"}, // Windows 11 runs 2022
	} {
		s := newStore(t)
		host := imagedriver.Platform{OS: "windows", Architecture: "amd64", OSVersion: c.host}
		got, err := p.Pull(ctx, ref, host, s, imagedriver.PullOptions{})
		if err != nil {
			t.Fatalf("host %s: %v", c.host, err)
		}
		if want := digestOf(t, images[c.want]); got.Digest != want || got.Config.OSVersion != c.want || got.Platform.OSVersion != c.want {
			t.Errorf("host %s: pulled %s (%s); want the %s image %s", c.host, got.Digest, got.Config.OSVersion, c.want, want)
		}
		if got.IndexDigest == "" || got.Ref != ref {
			t.Errorf("host %s: descriptor %+v; want the index digest", c.host, got.Descriptor)
		}
		path, err := s.Lookup(ctx, got.TopLayer(), "Files/build.txt")
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := os.ReadFile(path); string(b) != c.want {
			t.Errorf("host %s: unpacked the layers of %s", c.host, b)
		}
	}

	// No image fits a 2016 host: the error lists what is on offer, and
	// nothing is fetched.
	reg.resetCounts()
	s := newStore(t)
	_, err := p.Pull(ctx, ref, imagedriver.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.14393.1"}, s, imagedriver.PullOptions{})
	t.Logf("no platform: %v", err)
	var pe *imagedriver.PlatformError
	if !errors.As(err, &pe) || imagedriver.Class(err) != events.ErrNotFound {
		t.Fatalf("Pull for 2016 = %v; want a PlatformError", err)
	}
	for _, want := range append(slices.Clone(versions), "linux/amd64") {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("%q does not list %s", err, want)
		}
	}
	if pe.Ref != ref || len(pe.Offered) != 5 {
		t.Errorf("PlatformError = %+v", pe)
	}
	if all, _ := s.List(ctx); len(all) != 0 {
		t.Errorf("store after a refused pull: %+v", all)
	}

	// A single image that does not fit is refused the same way.
	single := reg.push(t, "windows/new:1", winImage(t, "10.0.26100.1742", gzipLayer(t, map[string]string{"a": "1"})))
	if _, err := p.Resolve(ctx, single, host2022, nil); !errors.Is(err, imagedriver.ErrNoMatchingPlatform) ||
		!strings.Contains(err.Error(), "windows/amd64:10.0.26100.1742") {
		t.Errorf("Resolve of a 2025 image for a 2022 host = %v", err)
	}
}

func TestSharedLayerFetchedOnce(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	base := gzipLayer(t, map[string]string{"Windows/System32/cmd.exe": "MZ", "big.bin": strings.Repeat("z", 256<<10)})
	app1 := winImage(t, "10.0.20348.2227", base, gzipLayer(t, map[string]string{"app1.exe": "1"}))
	app2 := winImage(t, "10.0.20348.2227", base, gzipLayer(t, map[string]string{"app2.exe": "2"}))
	ref1, ref2 := reg.push(t, "app1:1", app1), reg.push(t, "app2:1", app2)
	reg.resetCounts()
	p := newPuller(t, registry.Options{})
	s := newStore(t)
	ctx := testContext(t)
	im1, err := p.Pull(ctx, ref1, host2022, s, imagedriver.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	im2, err := p.Pull(ctx, ref2, host2022, s, imagedriver.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if im1.Layers[0].ChainID != im2.Layers[0].ChainID {
		t.Fatal("the two images do not share their base")
	}
	for _, l := range []imagedriver.LayerInfo{im1.Layers[0], im1.Layers[1], im2.Layers[1]} {
		if n := reg.gets(l.Digest); n != 1 {
			t.Errorf("layer %s fetched %d times; want once", l.Digest, n)
		}
	}
	var progress []imagedriver.LayerState
	if _, err := p.Pull(ctx, ref1, host2022, s, imagedriver.PullOptions{Progress: func(u imagedriver.ProgressUpdate) {
		progress = progress[:0]
		for _, l := range u.Layers {
			progress = append(progress, l.State)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	if n := reg.gets(im1.Layers[0].Digest) + reg.gets(im1.Layers[1].Digest); n != 2 {
		t.Errorf("pulling an image the store holds fetched %d layer blobs more", n-2)
	}
	if !slices.Equal(progress, []imagedriver.LayerState{imagedriver.LayerPresent, imagedriver.LayerPresent}) {
		t.Errorf("progress of a pull of present layers: %v", progress)
	}
}

func TestBasicAuth(t *testing.T) {
	reg := newTestRegistry(t)
	reg.RequireAuth("alice", "s3cret-pw")
	ref := reg.push(t, "private/app:1", winImage(t, "10.0.20348.2227", gzipLayer(t, map[string]string{"a": "1"})))
	ctx := testContext(t)
	p := newPuller(t, registry.Options{})
	for _, c := range []struct {
		name string
		auth *imagedriver.Credentials
	}{
		{"no credentials", nil},
		{"wrong password", &imagedriver.Credentials{Username: "alice", Password: "not-the-pw"}},
	} {
		s := newStore(t)
		_, err := p.Pull(ctx, ref, host2022, s, imagedriver.PullOptions{Auth: c.auth})
		t.Logf("%s: %v", c.name, err)
		if !errors.Is(err, imagedriver.ErrUnauthorized) || imagedriver.Class(err) != events.ErrInvalid {
			t.Errorf("%s: Pull = %v; want ErrUnauthorized", c.name, err)
		} else if strings.Contains(err.Error(), "not-the-pw") || strings.Contains(err.Error(), "s3cret") {
			t.Errorf("%s: the error shows a password: %v", c.name, err)
		}
		if all, _ := s.List(ctx); len(all) != 0 {
			t.Errorf("%s: store holds %+v", c.name, all)
		}
	}
	if _, err := p.Pull(ctx, ref, host2022, newStore(t), imagedriver.PullOptions{
		Auth: &imagedriver.Credentials{Username: "alice", Password: "s3cret-pw"}}); err != nil {
		t.Errorf("Pull with inline credentials: %v", err)
	}

	// Docker's config.json, through the default keychain.
	dir := t.TempDir()
	auth := base64.StdEncoding.EncodeToString([]byte("alice:s3cret-pw"))
	cfg := fmt.Sprintf(`{"auths":{%q:{"auth":%q}}}`, reg.Host(), auth)
	if err := os.WriteFile(filepath.Join(dir, "config.json"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", dir)
	withKeychain := registry.New(registry.Options{Transport: newTransport(t, ""), TempDir: t.TempDir()})
	if _, err := withKeychain.Pull(ctx, ref, host2022, newStore(t), imagedriver.PullOptions{}); err != nil {
		t.Errorf("Pull with the default keychain: %v", err)
	}
	if _, err := withKeychain.Resolve(ctx, ref, host2022, &imagedriver.Credentials{Username: "alice", Password: "nope"}); !errors.Is(err, imagedriver.ErrUnauthorized) {
		t.Errorf("inline credentials should override the keychain: %v", err)
	}
}

func TestForeignLayer(t *testing.T) {
	t.Parallel()
	// The layer's own media type keeps the push from uploading it.
	base := compressedLayer(t, map[string]string{"Windows/System32/cmd.exe": "MZ foreign base"}, compression.GZip,
		tarball.WithMediaType(types.DockerForeignLayer))
	blob, err := base.Compressed()
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(blob)
	if err != nil {
		t.Fatal(err)
	}
	blob.Close()
	var mu sync.Mutex
	gets := 0
	foreignGets := func() int {
		mu.Lock()
		defer mu.Unlock()
		return gets
	}
	foreign := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		gets++
		mu.Unlock()
		w.Write(body)
	}))
	t.Cleanup(foreign.Close)
	_, port, _ := net.SplitHostPort(foreign.Listener.Addr().String())
	// A name, not an IP: go-containerregistry refuses foreign URLs on
	// loopback addresses. The test transport sends it to the server above.
	url := "http://foreign.test:" + port + "/layers/base.tar.gz"

	reg := newTestRegistry(t)
	img := winImage(t, "10.0.20348.2227",
		mutate.Addendum{Layer: base, MediaType: types.DockerForeignLayer, URLs: []string{url}},
		gzipLayer(t, map[string]string{"app.exe": "app"}))
	ref := reg.push(t, "foreign/app:1", img)
	p := newPuller(t, registry.Options{Transport: newTransport(t, foreign.Listener.Addr().String())})
	s := newStore(t)
	got, err := p.Pull(testContext(t), ref, host2022, s, imagedriver.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	l := got.Layers[0]
	if !l.Foreign || !slices.Equal(l.URLs, []string{url}) || l.MediaType != string(types.DockerForeignLayer) {
		t.Errorf("foreign layer = %+v", l)
	}
	if foreignGets() != 1 {
		t.Errorf("foreign server served %d requests; want 1", foreignGets())
	}
	if n := reg.gets(l.Digest); n > 1 {
		t.Errorf("asked the registry for the foreign layer %d times", n)
	}
	path, err := s.Lookup(testContext(t), got.TopLayer(), "Files/Windows/System32/cmd.exe")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "MZ foreign base" {
		t.Errorf("foreign layer content %q", b)
	}

	// A foreign URL on a loopback address is refused without a request.
	loopback := "http://" + foreign.Listener.Addr().String() + "/layers/base.tar.gz"
	ref = reg.push(t, "foreign/loopback:1", winImage(t, "10.0.20348.2227",
		mutate.Addendum{Layer: base, MediaType: types.DockerForeignLayer, URLs: []string{loopback}}))
	_, err = p.Pull(testContext(t), ref, host2022, newStore(t), imagedriver.PullOptions{})
	t.Logf("loopback foreign URL: %v", err)
	if err == nil || !strings.Contains(err.Error(), "private or link-local") {
		t.Errorf("Pull with a loopback foreign URL = %v; want it refused", err)
	}
	if foreignGets() != 1 {
		t.Errorf("foreign server served %d requests; want no more than the first", foreignGets())
	}
}

func TestBrokenTransfer(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	base := gzipLayer(t, map[string]string{"Windows/System32/cmd.exe": "MZ"})
	top := gzipLayer(t, map[string]string{"big.bin": strings.Repeat("q", 512<<10)})
	ref := reg.push(t, "app:1", winImage(t, "10.0.20348.2227", base, top))
	tmp := t.TempDir()
	// One layer at a time: the base lands before the top breaks, so that no
	// cancelled request of the base is still on its way to the registry
	// when the counts are reset.
	p := newPuller(t, registry.Options{TempDir: tmp, Concurrency: 1})
	s := newStore(t)
	ctx := testContext(t)
	for _, c := range []struct {
		name  string
		fault registrytest.Fault
		want  error
	}{
		{"connection drops mid-blob", registrytest.BreakOff, imagedriver.ErrUnavailable},
		{"content does not match its digest", registrytest.Corrupt, imagedriver.ErrDigestMismatch},
	} {
		reg.Break(digestOf(t, top), c.fault)
		_, err := p.Pull(ctx, ref, host2022, s, imagedriver.PullOptions{})
		t.Logf("%s: %v", c.name, err)
		if !errors.Is(err, c.want) || imagedriver.Class(err) != events.ErrUnavailable {
			t.Fatalf("%s: Pull = %v; want %v", c.name, err, c.want)
		}
		if !strings.Contains(err.Error(), digestOf(t, top)) {
			t.Errorf("%s: %q does not name the blob", c.name, err)
		}
		all, err := s.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range all {
			if !l.Complete {
				t.Errorf("%s: incomplete layer left: %+v", c.name, l)
			}
		}
		if ok, _ := s.Has(ctx, imagedriver.ChainIDs([]string{diffIDOf(t, base), diffIDOf(t, top)})[1]); ok {
			t.Errorf("%s: the broken layer is in the store", c.name)
		}
		if left, _ := os.ReadDir(tmp); len(left) != 0 {
			t.Errorf("%s: temporary files left: %v", c.name, left)
		}
	}
	// Once the registry behaves, the pull fetches only what is missing.
	reg.Break(digestOf(t, top), 0)
	reg.resetCounts()
	if _, err := p.Pull(ctx, ref, host2022, s, imagedriver.PullOptions{}); err != nil {
		t.Fatal(err)
	}
	if reg.gets(digestOf(t, base)) != 0 || reg.gets(digestOf(t, top)) != 1 {
		t.Errorf("retry fetched base %d and top %d times; want 0 and 1", reg.gets(digestOf(t, base)), reg.gets(digestOf(t, top)))
	}
}

// TestRefusedLayerEndsAStalledDownload checks that a layer the store
// refuses from its first entry fails the pull at once, even when the
// registry then stalls mid-blob: the bytes that came are handed to the
// store without waiting for more, and giving up on the blob ends its
// download. (A pull that waited would end only with the test's context.)
func TestRefusedLayerEndsAStalledDownload(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	layer := plainLayer(t, unsafeEntry, imagedrivertest.Entry{Name: "Files/big.bin", Body: strings.Repeat("b", 1<<20)})
	ref := reg.push(t, "stalls:1", winImage(t, "10.0.20348.2227", layer))
	reg.set(func(r *testRegistry) { r.stallAfter = map[string]int{digestOf(t, layer): 8 << 10} })
	s := newStore(t)
	_, err := newPuller(t, registry.Options{}).Pull(testContext(t), ref, host2022, s, imagedriver.PullOptions{})
	if !errors.Is(err, imagedriver.ErrUnsafeEntry) || !strings.Contains(err.Error(), unsafeEntry.Name) {
		t.Fatalf("Pull = %v; want ErrUnsafeEntry naming %q", err, unsafeEntry.Name)
	}
	if all, _ := s.List(testContext(t)); len(all) != 0 {
		t.Errorf("store holds %v", all)
	}
}

func TestBadInput(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	good := reg.push(t, "app:1", winImage(t, "10.0.20348.2227", gzipLayer(t, map[string]string{"a": "1"})))
	unsafe := reg.push(t, "unsafe:1", winImage(t, "10.0.20348.2227",
		gzipLayer(t, map[string]string{"a": "1"}), plainLayer(t, dirEntry("Files"), unsafeEntry)))
	notGzip := static.NewLayer(append([]byte{0x1f, 0x8b}, "not gzip at all"...), types.DockerLayer)
	badGzip := reg.push(t, "badgzip:1", winImage(t, "10.0.20348.2227", notGzip))
	notTar := static.NewLayer([]byte(strings.Repeat("not a tar archive ", 64)), types.OCIUncompressedLayer)
	badTar := reg.push(t, "badtar:1", winImage(t, "10.0.20348.2227", notTar))
	failing := newTestRegistry(t)
	failing.set(func(r *testRegistry) { r.manifestStatus = http.StatusServiceUnavailable })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := ln.Addr().String()
	ln.Close()
	p := newPuller(t, registry.Options{})
	ctx := testContext(t)
	for _, c := range []struct {
		name, ref string
		want      error
		class     error
		mention   string // the error must name it
	}{
		{"unparseable reference", "Not A Reference!", imagedriver.ErrInvalidReference, events.ErrInvalid, "Not A Reference!"},
		{"upper case repository", reg.Host() + "/App:1", imagedriver.ErrInvalidReference, events.ErrInvalid, "App"},
		{"unreachable registry", closedAddr + "/app:1", imagedriver.ErrUnavailable, events.ErrUnavailable, closedAddr},
		{"unknown tag", strings.Replace(good, ":1", ":2", 1), imagedriver.ErrNotFound, events.ErrNotFound, "app:2"},
		{"unknown repository", reg.Host() + "/nothing:1", imagedriver.ErrNotFound, events.ErrNotFound, "nothing"},
		{"entry escaping its layer", unsafe, imagedriver.ErrUnsafeEntry, events.ErrInvalid, unsafeEntry.Name},
		{"layer that is not gzip", badGzip, imagedriver.ErrInvalidImage, events.ErrInvalid, digestOf(t, notGzip)},
		{"layer that is not a tar", badTar, imagedriver.ErrInvalidImage, events.ErrInvalid, digestOf(t, notTar)},
		{"registry server error", failing.Host() + "/app:1", imagedriver.ErrUnavailable, events.ErrUnavailable, "503"},
	} {
		s := newStore(t)
		_, err := p.Pull(ctx, c.ref, host2022, s, imagedriver.PullOptions{})
		t.Logf("%s: %v", c.name, err)
		if !errors.Is(err, c.want) || imagedriver.Class(err) != c.class || !strings.Contains(err.Error(), c.mention) {
			t.Errorf("%s: Pull = %v; want %v naming %q", c.name, err, c.want, c.mention)
		}
		all, _ := s.List(ctx)
		for _, l := range all {
			if !l.Complete {
				t.Errorf("%s: incomplete layer left: %+v", c.name, l)
			}
		}
		if len(all) > 1 {
			t.Errorf("%s: store holds %d layers", c.name, len(all))
		}
	}
}

func TestDownloadsInParallelWithinBound(t *testing.T) {
	t.Parallel()
	reg := newTestRegistry(t)
	var layers []any
	for i := range 6 {
		layers = append(layers, gzipLayer(t, map[string]string{fmt.Sprintf("layer%d", i): strings.Repeat("p", 64<<10)}))
	}
	ref := reg.push(t, "layers:6", winImage(t, "10.0.20348.2227", layers...))
	// Hold every blob until two are requested at once: a puller that
	// downloads one layer at a time never gets past the first (and fails
	// when the test's context ends).
	only := map[string]bool{}
	for _, l := range layers {
		only[digestOf(t, l.(v1.Layer))] = true
	}
	reg.set(func(r *testRegistry) { r.gate, r.gateAt, r.gateOnly, r.maxInFlight = make(chan struct{}), 2, only, 0 })
	s := newStore(t)
	tmp := t.TempDir()
	got, err := newPuller(t, registry.Options{Concurrency: 2, TempDir: tmp}).Pull(testContext(t), ref, host2022, s, imagedriver.PullOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reg.mu.Lock()
	most := reg.maxInFlight
	reg.mu.Unlock()
	if most != 2 {
		t.Errorf("at most %d blobs in flight; want the bound, 2", most)
	}
	for _, l := range got.Layers {
		if ok, _ := s.Has(testContext(t), l.ChainID); !ok {
			t.Errorf("layer %s missing", l.ChainID)
		}
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("temporary files left: %v", left)
	}
}
