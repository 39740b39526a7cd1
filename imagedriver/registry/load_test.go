package registry_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/registry"
)

func TestNormalize(t *testing.T) {
	p := registry.New(registry.Options{})
	for ref, want := range map[string]string{
		"nanoserver:ltsc2022":                           "index.docker.io/library/nanoserver:ltsc2022",
		"mcr.microsoft.com/windows/nanoserver:ltsc2022": "mcr.microsoft.com/windows/nanoserver:ltsc2022",
		"127.0.0.1:5000/app":                            "127.0.0.1:5000/app:latest",
	} {
		if got, err := p.Normalize(ref); err != nil || got != want {
			t.Errorf("Normalize(%q) = %q, %v; want %q", ref, got, err, want)
		}
	}
	if _, err := p.Normalize("UPPER::x"); !errors.Is(err, imagedriver.ErrInvalidReference) {
		t.Errorf("Normalize of a bad reference: %v", err)
	}
}

// TestLoad imports images from a docker save tarball and from an OCI
// layout holding a multi-platform index, and refuses what it cannot load.
func TestLoad(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	img := winImage(t, "10.0.20348.2227", gzipLayer(t, map[string]string{"a.txt": "a"}), gzipLayer(t, map[string]string{"b.txt": "b"}))
	tag, _ := name.NewTag("example.com/app:1")
	tag2, _ := name.NewTag("example.com/app:latest")
	tarPath := filepath.Join(dir, "app.tar")
	if err := tarball.MultiRefWriteToFile(tarPath, map[name.Reference]v1.Image{tag: img, tag2: img}); err != nil {
		t.Fatal(err)
	}
	p, store := newPuller(t, registry.Options{}), newStore(t)
	got, err := p.Load(ctx, tarPath, host2022, store)
	if err != nil {
		t.Fatal(err)
	}
	digest, _ := img.Digest()
	if len(got) != 2 || got[0].Digest != digest.String() || got[1].Digest != digest.String() || len(got[0].Layers) != 2 {
		t.Fatalf("Load(tarball) = %+v", got)
	}
	refs := []string{got[0].Ref, got[1].Ref}
	if !strings.Contains(strings.Join(refs, " "), "example.com/app:1") || !strings.Contains(strings.Join(refs, " "), "example.com/app:latest") {
		t.Errorf("refs %v", refs)
	}
	if ok, _ := store.Has(ctx, got[0].TopLayer()); !ok {
		t.Error("top layer not in the store")
	}

	// An OCI layout with an index of two builds: the host's is chosen.
	idx := mutate.AppendManifests(empty.Index,
		mutate.IndexAddendum{Add: winImage(t, "10.0.17763.1", gzipLayer(t, map[string]string{"c.txt": "2019"})),
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.17763.1"}}},
		mutate.IndexAddendum{Add: img,
			Descriptor: v1.Descriptor{Platform: &v1.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2227"}}})
	outer := mutate.AppendManifests(empty.Index, mutate.IndexAddendum{Add: idx,
		Descriptor: v1.Descriptor{Annotations: map[string]string{"io.containerd.image.name": "example.com/multi:1"}}})
	layoutDir := filepath.Join(dir, "layout")
	if _, err := layout.Write(layoutDir, outer); err != nil {
		t.Fatal(err)
	}
	got, err = p.Load(ctx, layoutDir, host2022, store)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Ref != "example.com/multi:1" || got[0].Digest != digest.String() {
		t.Fatalf("Load(layout) = %+v", got)
	}
	_, err = p.Load(ctx, layoutDir, imagedriver.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.14393.1"}, store)
	if !errors.Is(err, imagedriver.ErrNoMatchingPlatform) || !strings.Contains(err.Error(), "10.0.17763.1") {
		t.Errorf("Load for a host nothing fits: %v", err)
	}

	bogus := filepath.Join(dir, "bogus.tar")
	if err := os.WriteFile(bogus, []byte("not a tarball"), 0o644); err != nil {
		t.Fatal(err)
	}
	for path, class := range map[string]error{
		filepath.Join(dir, "missing.tar"): imagedriver.ErrNotFound,
		bogus:                             imagedriver.ErrInvalidImage,
		t.TempDir():                       imagedriver.ErrInvalidImage,
	} {
		if _, err := p.Load(ctx, path, host2022, store); !errors.Is(err, class) || !strings.Contains(err.Error(), path) {
			t.Errorf("Load(%s) = %v, want %v naming the path", path, err, class)
		}
	}
}
