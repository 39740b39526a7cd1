// Package dirlayer is the portable layer store: image layers and scratch
// layers as plain folders, for the simulated Windows host and for any
// operating system. It implements imagedriver.LayerStore.
//
// # On disk
//
//	<root>/layers/<hex>/                 a layer, as its tar holds it (Files/, Hives/, UtilityVM/ ...)
//	<root>/layers/<hex>.json             its completion marker: diff id, parents, size, whiteouts
//	<root>/layers/<hex>.tmp-<random>/    an import in progress, or cut short by a crash
//	<root>/scratch/<container>/Files/    a container's writable layer
//	<root>/scratch/<container>/layerchain.json  its parent chain, immediate parent first; written last
//
// <hex> is the layer's chain id without "sha256:". An import unpacks into a
// temporary folder, renames it into place, and writes the marker last, so a
// layer folder without a valid marker is a leftover: Get never returns it,
// List reports it with Complete false, Remove deletes it. Removal deletes the
// marker first. Files are not synced to disk: the ordering holds across a
// crash of the process, not across a power loss.
//
// # Entries
//
// Entry names use slashes; a backslash also counts as a separator, as it would
// on Windows. An entry whose name is absolute (a leading slash or a drive
// letter) or holds "..", an entry whose path passes through a symbolic link,
// a hard link to anything but a regular file of the layer, and a symbolic link
// whose target, resolved through the layer's links as the operating system
// would, is absolute or leaves the layer, are refused with
// imagedriver.ErrUnsafeEntry naming the entry. Files land through an os.Root
// opened on the import's folder, so no path can reach outside it whatever
// the checks above miss. Device nodes and other special files are refused
// with imagedriver.ErrInvalidImage. Permissions are normalised (0755 for
// folders and executables, 0644 for other files); ownership, times and the
// Windows attributes and security descriptors of the tar's PAX records are
// not kept.
//
// # Whiteouts
//
// A layer folder holds what its layer adds; its parents stay untouched in
// their own folders. So a whiteout entry (".wh.<name>", deleting <name> from
// the parents, or ".wh..wh..opq", hiding everything the parents hold under its
// folder) is not written as a file: it is recorded in the layer's marker, and
// applied when the chain is read through [Store.Lookup]. Entries of a layer
// are never hidden by that layer's own whiteouts, as the OCI image spec says.
package dirlayer

import (
	"context"
	"crypto/sha1"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/imagedriver"
)

const (
	markerExt = ".json"
	tmpInfix  = ".tmp-"
	chainFile = "layerchain.json"
	// unmountedFile marks a scratch layer created unmounted (for Hyper-V
	// isolation): it is listed without a volume, as Windows lists it.
	unmountedFile = "unmounted"
	layersDir     = "layers"
	scratchDir    = "scratch"
)

// Store is a layer store in a folder. It is safe for concurrent use; one
// folder must be served by one Store at a time.
type Store struct {
	root string

	mu sync.Mutex // guards importing, and every change to the folders
	// importing holds the imports in progress, by layer hex.
	importing map[string]*importCall
}

type importCall struct {
	done    chan struct{} // closed when the import has ended
	parents []string
	tmp     string // base name of its temporary folder
}

var _ imagedriver.LayerStore = (*Store)(nil)

// New returns the store in folder root, creating the folder if needed.
func New(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("layer store root: %w", err)
	}
	for _, d := range []string{layersDir, scratchDir} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o755); err != nil {
			return nil, fmt.Errorf("layer store root: %w", err)
		}
	}
	return &Store{root: abs, importing: map[string]*importCall{}}, nil
}

func (s *Store) layerPath(hex string) string   { return filepath.Join(s.root, layersDir, hex) }
func (s *Store) scratchPath(cid string) string { return filepath.Join(s.root, scratchDir, cid) }

// meta reads a layer's marker; ok is false when the layer is not complete.
// Call with s.mu held.
func (s *Store) meta(hex string) (layerMeta, bool) {
	b, err := os.ReadFile(s.layerPath(hex) + markerExt)
	if err != nil {
		return layerMeta{}, false
	}
	var m layerMeta
	if json.Unmarshal(b, &m) != nil || m.DiffID == "" {
		return layerMeta{}, false
	}
	if fi, err := os.Lstat(s.layerPath(hex)); err != nil || !fi.IsDir() {
		return layerMeta{}, false
	}
	return m, true
}

func (s *Store) layer(hex string, m layerMeta) imagedriver.Layer {
	return imagedriver.Layer{ID: "sha256:" + hex, DiffID: m.DiffID, Parents: m.Parents,
		Path: s.layerPath(hex), Size: m.Size, GUID: guidOf(hex), Complete: true}
}

// guidOf stands in, on the simulated host, for the GUID the Windows layer
// APIs derive from a layer folder's name: a stable GUID made of the SHA-1 of
// name, laid out as an RFC 9562 version 5 UUID.
func guidOf(name string) string {
	h := sha1.Sum([]byte(name))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// Has reports whether the layer is complete in the store.
func (s *Store) Has(ctx context.Context, id string) (bool, error) {
	hex, err := imagedriver.DigestHex(id)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.meta(hex)
	return ok, nil
}

// Get returns a complete layer, or imagedriver.ErrNotFound.
func (s *Store) Get(ctx context.Context, id string) (imagedriver.Layer, error) {
	hex, err := imagedriver.DigestHex(id)
	if err != nil {
		return imagedriver.Layer{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	m, ok := s.meta(hex)
	if !ok {
		return imagedriver.Layer{}, fmt.Errorf("layer %s: %w", id, imagedriver.ErrNotFound)
	}
	return s.layer(hex, m), nil
}

// Import unpacks a layer, as imagedriver.LayerStore.Import promises.
func (s *Store) Import(ctx context.Context, diffID string, parents []string, r io.Reader) (imagedriver.Layer, error) {
	return s.importLayer(ctx, diffID, parents, r, nil)
}

// ImportAhead unpacks a layer before its parents are complete, as
// imagedriver.AheadImporter promises: a layer's folder holds only what its
// tar adds, and its whiteouts go into its marker, so unpacking reads no
// parent.
func (s *Store) ImportAhead(ctx context.Context, diffID string, parents []string, r io.Reader, ready <-chan struct{}) (imagedriver.Layer, error) {
	return s.importLayer(ctx, diffID, parents, r, ready)
}

var _ imagedriver.AheadImporter = (*Store)(nil)

// importLayer imports a layer; with ready not nil, it checks the parents
// only once ready has closed and the layer is unpacked.
func (s *Store) importLayer(ctx context.Context, diffID string, parents []string, r io.Reader, ready <-chan struct{}) (imagedriver.Layer, error) {
	id, err := imagedriver.ImportID(diffID, parents)
	if err != nil {
		return imagedriver.Layer{}, err
	}
	hex := strings.TrimPrefix(id, "sha256:")
	for {
		if err := ctx.Err(); err != nil {
			return imagedriver.Layer{}, err
		}
		s.mu.Lock()
		if m, ok := s.meta(hex); ok {
			s.mu.Unlock()
			return s.layer(hex, m), nil
		}
		if call := s.importing[hex]; call != nil {
			s.mu.Unlock()
			select {
			case <-call.done:
				continue // it ended: take its layer, or import when it failed
			case <-ctx.Done():
				return imagedriver.Layer{}, ctx.Err()
			}
		}
		call, err := s.startImport(hex, parents, ready == nil)
		s.mu.Unlock()
		if err != nil {
			return imagedriver.Layer{}, fmt.Errorf("import layer %s: %w", id, err)
		}
		m, err := unpack(ctx, filepath.Join(s.root, layersDir, call.tmp), r, diffID)
		if err == nil && ready != nil {
			select {
			case <-ready:
			case <-ctx.Done():
				err = ctx.Err()
			}
		}
		l, err := s.publish(hex, call, m, err, ready != nil)
		if err != nil {
			return imagedriver.Layer{}, fmt.Errorf("import layer %s: %w", id, err)
		}
		return l, nil
	}
}

// startImport checks the parents, when check is true, and claims the
// import of hex. Call with s.mu held.
func (s *Store) startImport(hex string, parents []string, check bool) (*importCall, error) {
	if check {
		if err := s.checkChain(parents); err != nil {
			return nil, err
		}
	}
	tmp, err := os.MkdirTemp(filepath.Join(s.root, layersDir), hex+tmpInfix)
	if err != nil {
		return nil, err
	}
	call := &importCall{done: make(chan struct{}), parents: slices.Clone(parents), tmp: filepath.Base(tmp)}
	s.importing[hex] = call
	return call, nil
}

// publish ends an import: after unpacking failed with err, or the parents
// fail the check that check asks for, it removes the temporary folder;
// otherwise it renames the folder into place and writes the marker.
func (s *Store) publish(hex string, call *importCall, m layerMeta, err error, check bool) (imagedriver.Layer, error) {
	tmp := filepath.Join(s.root, layersDir, call.tmp)
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() {
		delete(s.importing, hex)
		close(call.done)
	}()
	if err == nil && check {
		err = s.checkChain(call.parents)
	}
	if err != nil {
		os.RemoveAll(tmp)
		return imagedriver.Layer{}, err
	}
	m.Parents = call.parents
	final := s.layerPath(hex)
	// A folder without its marker is a leftover of a crash: replace it.
	if err := os.RemoveAll(final); err != nil {
		os.RemoveAll(tmp)
		return imagedriver.Layer{}, err
	}
	if err := os.Rename(tmp, final); err != nil {
		os.RemoveAll(tmp)
		return imagedriver.Layer{}, err
	}
	if err := writeJSON(final+markerExt, m); err != nil {
		os.RemoveAll(final)
		return imagedriver.Layer{}, err
	}
	return s.layer(hex, m), nil
}

// checkChain checks that parents (immediate parent first) are complete and
// form the whole chain of parents[0]. Call with s.mu held.
func (s *Store) checkChain(parents []string) error {
	return imagedriver.CheckChain(parents, func(id string) ([]string, bool) {
		m, ok := s.meta(strings.TrimPrefix(id, "sha256:"))
		return m.Parents, ok
	})
}

// List returns every layer, complete or not, sorted by id.
func (s *Store) List(ctx context.Context) ([]imagedriver.Layer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	byID, err := s.scanLayers()
	if err != nil {
		return nil, err
	}
	out := make([]imagedriver.Layer, 0, len(byID))
	for _, hex := range slices.Sorted(maps.Keys(byID)) {
		if m, ok := s.meta(hex); ok {
			out = append(out, s.layer(hex, m))
			continue
		}
		p := s.layerPath(hex)
		if _, err := os.Lstat(p); err != nil {
			p = filepath.Join(s.root, layersDir, byID[hex][0])
		}
		out = append(out, imagedriver.Layer{ID: "sha256:" + hex, Path: p})
	}
	return out, nil
}

// scanLayers returns the names in the layers folder that belong to each
// layer hex, leaving out the folders of imports in progress. Call with s.mu
// held.
func (s *Store) scanLayers() (map[string][]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, layersDir))
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	active := map[string]bool{}
	for _, c := range s.importing {
		active[c.tmp] = true
	}
	byID := map[string][]string{}
	for _, e := range entries {
		name := e.Name()
		hex := strings.TrimSuffix(name, markerExt)
		if i := strings.Index(name, tmpInfix); i >= 0 {
			hex = name[:i]
		}
		if active[name] || imagedriver.ValidateDigest("sha256:"+hex) != nil {
			continue
		}
		byID[hex] = append(byID[hex], name)
	}
	return byID, nil
}

// Remove deletes a layer, as imagedriver.LayerStore.Remove promises.
func (s *Store) Remove(ctx context.Context, id string) error {
	hex, err := imagedriver.DigestHex(id)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.usedBy(id); err != nil {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	byID, err := s.scanLayers()
	if err != nil {
		return err
	}
	names := byID[hex]
	if len(names) == 0 {
		return fmt.Errorf("layer %s: %w", id, imagedriver.ErrNotFound)
	}
	// The marker goes first, so that a crash leaves an incomplete layer.
	marker := s.layerPath(hex) + markerExt
	if err := os.Remove(marker); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove layer %s: %w", id, err)
	}
	for _, n := range names {
		if err := os.RemoveAll(filepath.Join(s.root, layersDir, n)); err != nil {
			return fmt.Errorf("remove layer %s: %w", id, err)
		}
	}
	return nil
}

// usedBy returns an ErrInUse error when a complete layer, an import or a
// scratch layer has id among its parents, or id is being imported. Call
// with s.mu held.
func (s *Store) usedBy(id string) error {
	hex := strings.TrimPrefix(id, "sha256:")
	if s.importing[hex] != nil {
		return fmt.Errorf("%w: being imported", imagedriver.ErrInUse)
	}
	for other, c := range s.importing {
		if slices.Contains(c.parents, id) {
			return fmt.Errorf("%w: parent of layer sha256:%s, being imported", imagedriver.ErrInUse, other)
		}
	}
	byID, err := s.scanLayers()
	if err != nil {
		return err
	}
	for _, other := range slices.Sorted(maps.Keys(byID)) {
		if m, ok := s.meta(other); ok && slices.Contains(m.Parents, id) {
			return fmt.Errorf("%w: parent of layer sha256:%s", imagedriver.ErrInUse, other)
		}
	}
	scratches, err := s.scanScratch()
	if err != nil {
		return err
	}
	for _, sc := range scratches {
		if slices.Contains(sc.Parents, id) {
			return fmt.Errorf("%w: parent of the scratch layer of container %s", imagedriver.ErrInUse, sc.ContainerID)
		}
	}
	return nil
}

// CreateScratch creates a container's scratch layer, as
// imagedriver.LayerStore.CreateScratch promises.
func (s *Store) CreateScratch(ctx context.Context, containerID string, parents []imagedriver.Layer, opts imagedriver.ScratchOptions) (imagedriver.Scratch, error) {
	ids, err := imagedriver.ScratchChain(containerID, parents)
	if err != nil {
		return imagedriver.Scratch{}, err
	}
	if err := ctx.Err(); err != nil {
		return imagedriver.Scratch{}, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.checkChain(ids); err != nil {
		return imagedriver.Scratch{}, fmt.Errorf("scratch layer of %s: %w", containerID, err)
	}
	dir := s.scratchPath(containerID)
	if err := os.Mkdir(dir, 0o755); errors.Is(err, fs.ErrExist) {
		return imagedriver.Scratch{}, fmt.Errorf("scratch layer of %s: %w", containerID, imagedriver.ErrExists)
	} else if err != nil {
		return imagedriver.Scratch{}, fmt.Errorf("scratch layer of %s: %w", containerID, err)
	}
	err = os.Mkdir(filepath.Join(dir, "Files"), 0o755)
	if err == nil && opts.Unmounted {
		err = os.WriteFile(filepath.Join(dir, unmountedFile), nil, 0o644)
	}
	if err == nil {
		err = writeJSON(filepath.Join(dir, chainFile), ids)
	}
	if err != nil {
		os.RemoveAll(dir)
		return imagedriver.Scratch{}, fmt.Errorf("scratch layer of %s: %w", containerID, err)
	}
	sc := imagedriver.Scratch{ContainerID: containerID, Path: dir, Parents: ids, VolumePath: dir, Complete: true}
	if opts.Unmounted {
		sc.VolumePath = ""
	}
	return sc, nil
}

// RemoveScratch deletes a container's scratch layer, complete or not.
func (s *Store) RemoveScratch(ctx context.Context, containerID string) error {
	if err := events.ValidateContainerID(containerID); err != nil {
		return fmt.Errorf("%w: %w", imagedriver.ErrInvalid, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	dir := s.scratchPath(containerID)
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("scratch layer of %s: %w", containerID, imagedriver.ErrNotFound)
	}
	// The chain goes first, so that a crash leaves an incomplete scratch.
	if err := os.Remove(filepath.Join(dir, chainFile)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove scratch layer of %s: %w", containerID, err)
	}
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("remove scratch layer of %s: %w", containerID, err)
	}
	return nil
}

// ListScratch returns every scratch layer, complete or not, sorted by
// container id.
func (s *Store) ListScratch(ctx context.Context) ([]imagedriver.Scratch, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.scanScratch()
}

// scanScratch reads the scratch folder. Call with s.mu held.
func (s *Store) scanScratch() ([]imagedriver.Scratch, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, scratchDir))
	if err != nil {
		return nil, fmt.Errorf("list scratch layers: %w", err)
	}
	out := make([]imagedriver.Scratch, 0, len(entries))
	for _, e := range entries {
		sc := imagedriver.Scratch{ContainerID: e.Name(), Path: s.scratchPath(e.Name())}
		if b, err := os.ReadFile(filepath.Join(sc.Path, chainFile)); err == nil {
			var ids []string
			if json.Unmarshal(b, &ids) == nil && len(ids) > 0 {
				sc.Parents, sc.VolumePath, sc.Complete = ids, sc.Path, true
			}
			if _, err := os.Lstat(filepath.Join(sc.Path, unmountedFile)); err == nil {
				sc.VolumePath = ""
			}
		}
		out = append(out, sc)
	}
	return out, nil
}

// Lookup finds name (slash-separated, relative to a layer's folder, such as
// "Files/Windows/System32/cmd.exe") in the view of layer id over its
// parents, whiteouts applied: it returns the host path of the topmost layer's
// copy, or imagedriver.ErrNotFound when no layer of the chain holds it or a
// layer above the one holding it deleted it. It fails with
// imagedriver.ErrInvalid when name is not a name inside a layer.
func (s *Store) Lookup(ctx context.Context, id, name string) (string, error) {
	hex, err := imagedriver.DigestHex(id)
	if err != nil {
		return "", err
	}
	n, ok := cleanName(name)
	if !ok || n == "" {
		return "", fmt.Errorf("lookup %q: %w: not a name inside a layer", name, imagedriver.ErrInvalid)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	top, ok := s.meta(hex)
	if !ok {
		return "", fmt.Errorf("layer %s: %w", id, imagedriver.ErrNotFound)
	}
	notFound := fmt.Errorf("%s in layer %s: %w", name, id, imagedriver.ErrNotFound)
	for _, lid := range append([]string{id}, top.Parents...) {
		lhex := strings.TrimPrefix(lid, "sha256:")
		m, ok := s.meta(lhex)
		if !ok {
			return "", fmt.Errorf("layer %s: %w", lid, imagedriver.ErrNotFound)
		}
		p := filepath.Join(s.layerPath(lhex), filepath.FromSlash(n))
		if _, err := os.Lstat(p); err == nil {
			return p, nil
		}
		for a := n; a != "."; a = path.Dir(a) {
			if slices.Contains(m.Whiteouts, a) || (a != n && slices.Contains(m.Opaque, a)) {
				return "", notFound
			}
		}
		if slices.Contains(m.Opaque, ".") {
			return "", notFound
		}
	}
	return "", notFound
}

func writeJSON(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(name, b, 0o644)
}
