// Package registry pulls images from OCI and Docker registries with
// go-containerregistry, on any operating system. It implements
// imagedriver.Puller.
//
// References are parsed by go-containerregistry's name package, so
// "nanoserver:ltsc2022" means Docker Hub's library/nanoserver. Credentials
// come from a keychain (by default Docker's config.json and its credential
// helpers) or, for one call, from imagedriver.Credentials; they are never
// logged and never part of an error. From a multi-platform index the image
// is chosen with imagedriver.MatchPlatform, never with go-containerregistry's
// own exact-string match.
//
// Blobs are verified while they stream: a compressed layer against its
// digest and size, by go-containerregistry, whose refusal is reported as
// imagedriver.ErrDigestMismatch; the uncompressed layer against its diff id,
// by the layer store. Foreign (non-distributable) layers are
// fetched from the URLs of their descriptors by go-containerregistry, which
// refuses URLs of another scheme than the registry's and hosts that are IP
// addresses in private, loopback or link-local ranges.
//
// Each layer's work is spread over goroutines, so that a pull keeps more
// than one core busy even when one layer is left: one receives the blob and
// checks its digest, another decompresses it and unpacks it into the store
// (which hashes for the diff id on a third, in the folder store).
//
// Layers download in parallel, at most Options.Concurrency at once. A layer
// streams from the registry straight into the store when its parent is
// there when its download starts. Otherwise, a store that can unpack ahead
// of the parent (imagedriver.AheadImporter, such as the folder store) gets
// the stream at once and publishes the layer once its parent is in; any
// other store's layer waits for its parent in a temporary file.
package registry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"slices"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"golang.org/x/sync/errgroup"

	"github.com/berthhq/berth/imagedriver"
)

// DefaultConcurrency is how many layers a pull downloads at once unless
// Options say otherwise (Docker's default too).
const DefaultConcurrency = 3

// Options configure a Puller. The zero value is ready to use.
type Options struct {
	// Keychain finds credentials for a registry when a call brings none.
	// Nil means authn.DefaultKeychain: Docker's config.json (in
	// $DOCKER_CONFIG or ~/.docker) and its credential helpers.
	Keychain authn.Keychain
	// Transport carries every request, to registries and to the URLs of
	// foreign layers. Nil means remote.DefaultTransport.
	Transport http.RoundTripper
	// Concurrency bounds the layers downloading at once; zero means
	// DefaultConcurrency.
	Concurrency int
	// TempDir holds the layers that wait for their parent; "" means
	// os.TempDir().
	TempDir string
	// Retry, when set, replaces go-containerregistry's retry schedule for
	// failed requests (three tries, 1 s and 3 s apart).
	Retry *remote.Backoff
	// UserAgent is sent with every request; "" means "berth".
	UserAgent string
}

// Puller pulls images from registries. It is safe for concurrent use.
type Puller struct {
	opts Options
}

var _ imagedriver.Puller = (*Puller)(nil)

// New returns a Puller.
func New(opts Options) *Puller {
	if opts.Keychain == nil {
		opts.Keychain = authn.DefaultKeychain
	}
	if opts.Transport == nil {
		opts.Transport = remote.DefaultTransport
	}
	if opts.Concurrency <= 0 {
		opts.Concurrency = DefaultConcurrency
	}
	if opts.UserAgent == "" {
		opts.UserAgent = "berth"
	}
	return &Puller{opts: opts}
}

func (p *Puller) remoteOptions(ctx context.Context, auth *imagedriver.Credentials) []remote.Option {
	o := []remote.Option{
		remote.WithContext(ctx),
		remote.WithTransport(p.opts.Transport),
		remote.WithUserAgent(p.opts.UserAgent),
	}
	if auth != nil {
		o = append(o, remote.WithAuth(authn.FromConfig(authn.AuthConfig{
			Username: auth.Username, Password: auth.Password,
			IdentityToken: auth.IdentityToken, RegistryToken: auth.RegistryToken,
		})))
	} else {
		o = append(o, remote.WithAuthFromKeychain(p.opts.Keychain))
	}
	if p.opts.Retry != nil {
		o = append(o, remote.WithRetryBackoff(*p.opts.Retry))
	}
	return o
}

// Resolve returns the descriptor of the image of ref that best runs on
// platform, as imagedriver.Puller.Resolve promises.
func (p *Puller) Resolve(ctx context.Context, ref string, platform imagedriver.Platform, auth *imagedriver.Credentials) (imagedriver.Descriptor, error) {
	d, _, err := p.resolve(ctx, ref, platform, auth)
	if err != nil {
		return imagedriver.Descriptor{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	return d, nil
}

func (p *Puller) resolve(ctx context.Context, ref string, platform imagedriver.Platform, auth *imagedriver.Credentials) (imagedriver.Descriptor, v1.Image, error) {
	r, err := name.ParseReference(ref)
	if err != nil {
		return imagedriver.Descriptor{}, nil, fmt.Errorf("%w %q: %v", imagedriver.ErrInvalidReference, ref, err)
	}
	desc, err := remote.Get(r, p.remoteOptions(ctx, auth)...)
	if err != nil {
		return imagedriver.Descriptor{}, nil, fmt.Errorf("manifest: %w", classify(err, nil))
	}
	out := imagedriver.Descriptor{Ref: r.Name(), Digest: desc.Digest.String(), MediaType: string(desc.MediaType), Size: desc.Size}
	noMatch := func(err error) error {
		var pe *imagedriver.PlatformError
		if errors.As(err, &pe) {
			pe.Ref = r.Name()
		}
		return err
	}
	switch {
	case desc.MediaType.IsIndex():
		idx, err := desc.ImageIndex()
		if err != nil {
			return imagedriver.Descriptor{}, nil, fmt.Errorf("index: %w", classify(err, imagedriver.ErrInvalidImage))
		}
		chosen, plat, img, err := choose(idx, platform, r.Name())
		if err != nil {
			return imagedriver.Descriptor{}, nil, err
		}
		out.IndexDigest, out.Digest = out.Digest, chosen.Digest.String()
		out.MediaType, out.Size, out.Platform = string(chosen.MediaType), chosen.Size, plat
		return out, img, nil
	case desc.MediaType.IsImage():
		img, err := desc.Image()
		if err != nil {
			return imagedriver.Descriptor{}, nil, fmt.Errorf("image: %w", classify(err, imagedriver.ErrInvalidImage))
		}
		cfg, err := img.ConfigFile()
		if err != nil {
			return imagedriver.Descriptor{}, nil, fmt.Errorf("image config: %w", classify(err, imagedriver.ErrInvalidImage))
		}
		out.Platform = imagedriver.Platform{OS: cfg.OS, Architecture: cfg.Architecture, OSVersion: cfg.OSVersion}
		if _, err := imagedriver.MatchPlatform(platform, []imagedriver.Platform{out.Platform}); err != nil {
			return imagedriver.Descriptor{}, nil, noMatch(err)
		}
		return out, img, nil
	}
	return imagedriver.Descriptor{}, nil, fmt.Errorf("%w: manifest media type %q is neither an image nor an index", imagedriver.ErrInvalidImage, desc.MediaType)
}

// Pull pulls the image of ref that best runs on platform into store, as
// imagedriver.Puller.Pull promises.
func (p *Puller) Pull(ctx context.Context, ref string, platform imagedriver.Platform, store imagedriver.LayerStore, opts imagedriver.PullOptions) (imagedriver.Image, error) {
	// A failing layer cancels its siblings through ctx, which the remote
	// image keeps for every blob it fetches later.
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	desc, img, err := p.resolve(ctx, ref, platform, opts.Auth)
	if err != nil {
		return imagedriver.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	out, layers, err := describe(desc, img)
	if err != nil {
		return imagedriver.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	pl := &pull{p: p, store: store, image: out, layers: layers, progress: newProgress(ref, out.Layers, opts)}
	if err := pl.run(ctx, cancel); err != nil {
		return imagedriver.Image{}, fmt.Errorf("pull %s: %w", ref, err)
	}
	return out, nil
}

// describe reads an image's manifest and config into berth's terms.
func describe(desc imagedriver.Descriptor, img v1.Image) (imagedriver.Image, []v1.Layer, error) {
	m, err := img.Manifest()
	if err != nil {
		return imagedriver.Image{}, nil, fmt.Errorf("manifest: %w", classify(err, imagedriver.ErrInvalidImage))
	}
	cfg, err := img.ConfigFile()
	if err != nil {
		return imagedriver.Image{}, nil, fmt.Errorf("image config: %w", classify(err, imagedriver.ErrInvalidImage))
	}
	layers, err := img.Layers()
	if err != nil {
		return imagedriver.Image{}, nil, fmt.Errorf("layers: %w", classify(err, imagedriver.ErrInvalidImage))
	}
	if len(cfg.RootFS.DiffIDs) != len(m.Layers) || len(layers) != len(m.Layers) {
		return imagedriver.Image{}, nil, fmt.Errorf("%w: the manifest lists %d layers and the config %d diff ids",
			imagedriver.ErrInvalidImage, len(m.Layers), len(cfg.RootFS.DiffIDs))
	}
	out := imagedriver.Image{
		Descriptor: desc,
		Config: imagedriver.ImageConfig{
			Entrypoint: cfg.Config.Entrypoint, Cmd: cfg.Config.Cmd, Env: cfg.Config.Env,
			WorkingDir: cfg.Config.WorkingDir, User: cfg.Config.User, Labels: cfg.Config.Labels,
			OS: cfg.OS, Architecture: cfg.Architecture, OSVersion: cfg.OSVersion,
		},
	}
	diffIDs := make([]string, len(m.Layers))
	for i, d := range cfg.RootFS.DiffIDs {
		diffIDs[i] = d.String()
		for _, dg := range []string{diffIDs[i], m.Layers[i].Digest.String()} {
			if err := imagedriver.ValidateDigest(dg); err != nil {
				return imagedriver.Image{}, nil, fmt.Errorf("layer %d: %w: %w", i, imagedriver.ErrInvalidImage, err)
			}
		}
	}
	chain := imagedriver.ChainIDs(diffIDs)
	for i, l := range m.Layers {
		out.Layers = append(out.Layers, imagedriver.LayerInfo{
			Digest: l.Digest.String(), DiffID: diffIDs[i], ChainID: chain[i], Size: l.Size,
			MediaType: string(l.MediaType), Foreign: !l.MediaType.IsDistributable(), URLs: slices.Clone(l.URLs),
		})
		out.Size += l.Size
	}
	return out, layers, nil
}

// pull is one Pull's layer work.
type pull struct {
	p        *Puller
	store    imagedriver.LayerStore
	image    imagedriver.Image
	layers   []v1.Layer
	progress *progress
	// inStore[i] is closed once layer i is in the store.
	inStore []chan struct{}
}

func (pl *pull) run(ctx context.Context, cancel context.CancelCauseFunc) error {
	n := len(pl.layers)
	pl.inStore = make([]chan struct{}, n)
	missing := make([]bool, n)
	for i, l := range pl.image.Layers {
		pl.inStore[i] = make(chan struct{})
		has, err := pl.store.Has(ctx, l.ChainID)
		if err != nil {
			return fmt.Errorf("layer store: %w", err)
		}
		if has {
			pl.progress.set(i, 0, imagedriver.LayerPresent)
			close(pl.inStore[i])
		}
		missing[i] = !has
	}
	var g errgroup.Group
	g.SetLimit(pl.p.opts.Concurrency)
	for i := range n {
		if !missing[i] {
			continue
		}
		if ctx.Err() != nil {
			break // a layer failed: launch no more
		}
		g.Go(func() error {
			if err := pl.layer(ctx, i); err != nil {
				err = fmt.Errorf("layer %s: %w", pl.image.Layers[i].Digest, err)
				cancel(err)
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		// The first failure cancelled the others; report it, not theirs.
		if cause := context.Cause(ctx); cause != nil {
			return cause
		}
		return err
	}
	pl.progress.finish()
	return nil
}

// layer fetches layer i and imports it once its parent is in the store.
func (pl *pull) layer(ctx context.Context, i int) error {
	info := pl.image.Layers[i]
	var parentDone <-chan struct{} = closed
	var parents []string // immediate parent first
	for j := i - 1; j >= 0; j-- {
		parents = append(parents, pl.image.Layers[j].ChainID)
	}
	if i > 0 {
		parentDone = pl.inStore[i-1]
	}
	if ahead, ok := pl.store.(imagedriver.AheadImporter); ok && i > 0 {
		select {
		case <-parentDone:
		default:
			// Unpack now; the store publishes once the parent is in.
			content := &lazyReader{open: func() (io.ReadCloser, error) { return pl.open(i) }}
			defer content.Close()
			if _, err := ahead.ImportAhead(ctx, info.DiffID, parents, content, parentDone); err != nil {
				return err
			}
			pl.imported(i)
			return nil
		}
	}
	var content io.ReadCloser
	select {
	case <-parentDone:
		// Stream from the registry into the store. The blob is opened on the
		// store's first read, so a layer another pull just imported is not
		// fetched at all.
		content = &lazyReader{open: func() (io.ReadCloser, error) { return pl.open(i) }}
	default:
		f, err := pl.spool(i)
		if err != nil {
			return err
		}
		defer os.Remove(f.Name())
		defer f.Close()
		select {
		case <-parentDone:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		if content, err = uncompressed(f, f); err != nil {
			return err
		}
	}
	defer content.Close()
	if _, err := pl.store.Import(ctx, info.DiffID, parents, content); err != nil {
		return err
	}
	pl.imported(i)
	return nil
}

// imported records that layer i is in the store.
func (pl *pull) imported(i int) {
	close(pl.inStore[i])
	pl.progress.set(i, pl.image.Layers[i].Size, imagedriver.LayerDone)
}

var closed = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// open fetches layer i and returns its verified, uncompressed content. The
// blob is received and its digest checked on a goroutine of its own, ahead
// of the decompression and the store's unpacking.
func (pl *pull) open(i int) (io.ReadCloser, error) {
	blob, err := pl.blob(i)
	if err != nil {
		return nil, err
	}
	ra := newReadAhead(blob)
	rc, err := uncompressed(ra, ra)
	if err != nil {
		ra.Close()
		return nil, err
	}
	return rc, nil
}

// spool downloads layer i, verified, into a temporary file and returns it
// positioned at its start.
func (pl *pull) spool(i int) (*os.File, error) {
	blob, err := pl.blob(i)
	if err != nil {
		return nil, err
	}
	defer blob.Close()
	f, err := os.CreateTemp(pl.p.opts.TempDir, "berth-layer-*")
	if err != nil {
		return nil, fmt.Errorf("spool: %w", err)
	}
	_, err = io.Copy(f, blob)
	if err == nil {
		_, err = f.Seek(0, io.SeekStart)
	}
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	pl.progress.set(i, pl.image.Layers[i].Size, imagedriver.LayerUnpacking)
	return f, nil
}

// blob opens layer i's compressed blob: from the registry, or for a foreign
// layer from its URLs.
func (pl *pull) blob(i int) (*blobReader, error) {
	info := pl.image.Layers[i]
	pl.progress.set(i, 0, imagedriver.LayerDownloading)
	rc, err := pl.layers[i].Compressed()
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", classify(err, imagedriver.ErrUnavailable))
	}
	return newBlobReader(rc, info.Digest, info.Size, func(n int64) {
		state := imagedriver.LayerDownloading
		if n >= info.Size {
			state = imagedriver.LayerUnpacking
		}
		pl.progress.set(i, n, state)
	}), nil
}

// lazyReader opens its content on the first Read.
type lazyReader struct {
	open func() (io.ReadCloser, error)
	rc   io.ReadCloser
	err  error
}

func (l *lazyReader) Read(p []byte) (int, error) {
	if l.rc == nil && l.err == nil {
		l.rc, l.err = l.open()
	}
	if l.err != nil {
		return 0, l.err
	}
	return l.rc.Read(p)
}

func (l *lazyReader) Close() error {
	if l.rc == nil {
		return nil
	}
	return l.rc.Close()
}

// classify maps an error of go-containerregistry or of the network to the
// imagedriver classes; an error it cannot place is wrapped with fallback, or
// returned as it is when fallback is nil.
func classify(err error, fallback error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || isClassified(err) {
		return err
	}
	if class := transportClass(err); class != nil {
		return fmt.Errorf("%w: %w", class, err)
	}
	if isNetwork(err) {
		return fmt.Errorf("%w: %w", imagedriver.ErrUnavailable, err)
	}
	if fallback != nil {
		return fmt.Errorf("%w: %w", fallback, err)
	}
	return err
}

func isClassified(err error) bool {
	for _, class := range []error{
		imagedriver.ErrInvalidReference, imagedriver.ErrInvalid, imagedriver.ErrNotFound,
		imagedriver.ErrUnauthorized, imagedriver.ErrNoMatchingPlatform, imagedriver.ErrDigestMismatch,
		imagedriver.ErrUnsafeEntry, imagedriver.ErrInvalidImage, imagedriver.ErrUnavailable,
	} {
		if errors.Is(err, class) {
			return true
		}
	}
	return false
}
