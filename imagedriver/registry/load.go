package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"

	"github.com/berthhq/berth/imagedriver"
)

// Normalize returns ref fully qualified, as go-containerregistry's name
// package reads it ("nanoserver:ltsc2022" is
// "index.docker.io/library/nanoserver:ltsc2022"), or fails with
// imagedriver.ErrInvalidReference.
func (p *Puller) Normalize(ref string) (string, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return "", fmt.Errorf("%w %q: %v", imagedriver.ErrInvalidReference, ref, err)
	}
	return r.Name(), nil
}

// Annotations that name an image in an OCI image layout.
const (
	annotationContainerdName = "io.containerd.image.name"
	annotationRefName        = "org.opencontainers.image.ref.name"
)

// Load imports the images of source, a `docker save` tarball or an OCI
// image layout folder, into store, for nodes without a registry. Every
// image must run on platform (from an index of a layout, the one that best
// runs on it is chosen). It returns one Image per name an image was saved
// under (Descriptor.Ref, normalized), or one with Ref "" for an image saved
// without a name. Layers are verified against their diff ids as in Pull;
// layers the store has are not read. The error classes are Pull's, with
// ErrNotFound for a source that does not exist and ErrInvalidImage for one
// that is neither a tarball nor a layout.
func (p *Puller) Load(ctx context.Context, source string, platform imagedriver.Platform, store imagedriver.LayerStore) ([]imagedriver.Image, error) {
	fi, err := os.Stat(source)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("load %s: %w: %v", source, imagedriver.ErrNotFound, err)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", source, err)
	}
	var out []imagedriver.Image
	if fi.IsDir() {
		out, err = p.loadLayout(ctx, source, platform, store)
	} else {
		out, err = p.loadTarball(ctx, source, platform, store)
	}
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", source, err)
	}
	return out, nil
}

func (p *Puller) loadTarball(ctx context.Context, path string, platform imagedriver.Platform, store imagedriver.LayerStore) ([]imagedriver.Image, error) {
	m, err := tarball.LoadManifest(func() (io.ReadCloser, error) { return os.Open(path) })
	if err != nil {
		return nil, fmt.Errorf("%w: not a docker save tarball: %v", imagedriver.ErrInvalidImage, err)
	}
	var out []imagedriver.Image
	for i, d := range m {
		if len(d.RepoTags) == 0 {
			if len(m) > 1 {
				return nil, fmt.Errorf("%w: image %d of %d has no name; load the images one by one", imagedriver.ErrInvalidImage, i+1, len(m))
			}
			img, err := tarball.ImageFromPath(path, nil)
			if err != nil {
				return nil, fmt.Errorf("%w: %v", imagedriver.ErrInvalidImage, err)
			}
			im, err := p.loadImage(ctx, "", img, platform, store)
			if err != nil {
				return nil, err
			}
			out = append(out, im)
			continue
		}
		for _, t := range d.RepoTags {
			tag, err := name.NewTag(t)
			if err != nil {
				return nil, fmt.Errorf("%w: repo tag %q: %v", imagedriver.ErrInvalidImage, t, err)
			}
			img, err := tarball.ImageFromPath(path, &tag)
			if err != nil {
				return nil, fmt.Errorf("%w: %s: %v", imagedriver.ErrInvalidImage, t, err)
			}
			im, err := p.loadImage(ctx, tag.Name(), img, platform, store)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", t, err)
			}
			out = append(out, im)
		}
	}
	return out, nil
}

func (p *Puller) loadLayout(ctx context.Context, path string, platform imagedriver.Platform, store imagedriver.LayerStore) ([]imagedriver.Image, error) {
	idx, err := layout.ImageIndexFromPath(path)
	if err != nil {
		return nil, fmt.Errorf("%w: not an OCI image layout: %v", imagedriver.ErrInvalidImage, err)
	}
	im, err := idx.IndexManifest()
	if err != nil {
		return nil, fmt.Errorf("%w: index.json: %v", imagedriver.ErrInvalidImage, err)
	}
	var out []imagedriver.Image
	for _, d := range im.Manifests {
		ref := ""
		if n := d.Annotations[annotationContainerdName]; n != "" {
			ref = n
		} else if n := d.Annotations[annotationRefName]; strings.ContainsAny(n, "/:") {
			ref = n
		}
		if ref != "" {
			if ref, err = p.Normalize(ref); err != nil {
				return nil, fmt.Errorf("%w: %v", imagedriver.ErrInvalidImage, err)
			}
		}
		var img v1.Image
		switch {
		case d.MediaType.IsIndex():
			inner, err := idx.ImageIndex(d.Digest)
			if err != nil {
				return nil, fmt.Errorf("%w: index %s: %v", imagedriver.ErrInvalidImage, d.Digest, err)
			}
			if _, _, img, err = choose(inner, platform, ref); err != nil {
				return nil, err
			}
		case d.MediaType.IsImage():
			if img, err = idx.Image(d.Digest); err != nil {
				return nil, fmt.Errorf("%w: image %s: %v", imagedriver.ErrInvalidImage, d.Digest, err)
			}
		default:
			continue
		}
		loaded, err := p.loadImage(ctx, ref, img, platform, store)
		if err != nil {
			return nil, err
		}
		out = append(out, loaded)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%w: the layout holds no image", imagedriver.ErrInvalidImage)
	}
	return out, nil
}

// choose picks the image of idx that best runs on platform; ref names idx
// in a *PlatformError.
func choose(idx v1.ImageIndex, platform imagedriver.Platform, ref string) (v1.Descriptor, imagedriver.Platform, v1.Image, error) {
	im, err := idx.IndexManifest()
	if err != nil {
		return v1.Descriptor{}, imagedriver.Platform{}, nil, fmt.Errorf("index: %w", classify(err, imagedriver.ErrInvalidImage))
	}
	var images []v1.Descriptor
	var offered []imagedriver.Platform
	for _, m := range im.Manifests {
		if m.Platform == nil || !m.MediaType.IsImage() {
			continue
		}
		images = append(images, m)
		offered = append(offered, imagedriver.Platform{OS: m.Platform.OS, Architecture: m.Platform.Architecture, OSVersion: m.Platform.OSVersion})
	}
	i, err := imagedriver.MatchPlatform(platform, offered)
	if err != nil {
		var pe *imagedriver.PlatformError
		if errors.As(err, &pe) {
			pe.Ref = ref
		}
		return v1.Descriptor{}, imagedriver.Platform{}, nil, err
	}
	img, err := idx.Image(images[i].Digest)
	if err != nil {
		return v1.Descriptor{}, imagedriver.Platform{}, nil, fmt.Errorf("image %s: %w", images[i].Digest, classify(err, imagedriver.ErrInvalidImage))
	}
	return images[i], offered[i], img, nil
}

// loadImage imports one image read from an archive.
func (p *Puller) loadImage(ctx context.Context, ref string, img v1.Image, platform imagedriver.Platform, store imagedriver.LayerStore) (imagedriver.Image, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return imagedriver.Image{}, fmt.Errorf("%w: image config: %v", imagedriver.ErrInvalidImage, err)
	}
	plat := imagedriver.Platform{OS: cfg.OS, Architecture: cfg.Architecture, OSVersion: cfg.OSVersion}
	if _, err := imagedriver.MatchPlatform(platform, []imagedriver.Platform{plat}); err != nil {
		var pe *imagedriver.PlatformError
		if errors.As(err, &pe) {
			pe.Ref = ref
		}
		return imagedriver.Image{}, err
	}
	digest, err := img.Digest()
	if err != nil {
		return imagedriver.Image{}, fmt.Errorf("%w: manifest: %v", imagedriver.ErrInvalidImage, err)
	}
	mt, _ := img.MediaType()
	size, _ := img.Size()
	desc := imagedriver.Descriptor{Ref: ref, Digest: digest.String(), MediaType: string(mt), Size: size, Platform: plat}
	out, layers, err := describe(desc, img)
	if err != nil {
		return imagedriver.Image{}, err
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	pl := &pull{p: p, store: store, image: out, layers: layers, progress: newProgress(ref, out.Layers, imagedriver.PullOptions{})}
	if err := pl.run(ctx, cancel); err != nil {
		return imagedriver.Image{}, err
	}
	return out, nil
}
