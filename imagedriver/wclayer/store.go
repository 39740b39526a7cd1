package wclayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/imagedriver"
)

// Store is the Windows layer store in a folder. It is safe for concurrent
// use; one folder must be served by one Store at a time. Build it with New.
type Store struct {
	root  string
	host  host
	retry retryPolicy

	// mu guards layerOps and scratchOps, and every write of a marker or a
	// chain file. It is never held during a layer API call.
	mu sync.Mutex
	// layerOps holds the imports and removals in progress, by layer hex;
	// scratchOps the scratch creations and removals, by container id.
	layerOps   map[string]*op
	scratchOps map[string]*op
}

// op is an operation in progress on one layer or scratch layer. Others that
// need the same one wait for done.
type op struct {
	done      chan struct{}
	parents   []string // chain ids the operation builds on
	importing bool     // a layer import, as opposed to a removal
}

var _ imagedriver.LayerStore = (*Store)(nil)

func newStore(root string, h host, retry retryPolicy) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("layer store root: %w", err)
	}
	for _, d := range []string{layersDir, scratchDir} {
		if err := os.MkdirAll(filepath.Join(abs, d), 0o755); err != nil {
			return nil, fmt.Errorf("layer store root: %w", err)
		}
	}
	return &Store{root: abs, host: h, retry: retry, layerOps: map[string]*op{}, scratchOps: map[string]*op{}}, nil
}

// begin registers o as the operation on key. Call with s.mu held.
func begin(ops map[string]*op, key string, o *op) *op {
	o.done = make(chan struct{})
	ops[key] = o
	return o
}

// end retires the operation on key.
func (s *Store) end(ops map[string]*op, key string, o *op) {
	s.mu.Lock()
	delete(ops, key)
	s.mu.Unlock()
	close(o.done)
}

// wait waits for o to end, or for ctx.
func wait(ctx context.Context, o *op) error {
	select {
	case <-o.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Has reports whether the layer is complete in the store.
func (s *Store) Has(ctx context.Context, id string) (bool, error) {
	hex, err := imagedriver.DigestHex(id)
	if err != nil {
		return false, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	_, ok := s.readMeta(hex)
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
	m, ok := s.readMeta(hex)
	if !ok {
		return imagedriver.Layer{}, fmt.Errorf("layer %s: %w", id, imagedriver.ErrNotFound)
	}
	return s.layer(hex, m), nil
}

// Import unpacks a layer into its folder with the layer APIs, as
// imagedriver.LayerStore.Import promises. The layer is imported into its
// final folder, whose name its GUID derives from, and published by its
// marker, written last.
func (s *Store) Import(ctx context.Context, diffID string, parents []string, r io.Reader) (imagedriver.Layer, error) {
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
		if m, ok := s.readMeta(hex); ok {
			s.mu.Unlock()
			return s.layer(hex, m), nil
		}
		if o := s.layerOps[hex]; o != nil {
			s.mu.Unlock()
			if err := wait(ctx, o); err != nil {
				return imagedriver.Layer{}, err
			}
			continue // it ended: take its layer, or import when it failed
		}
		err := s.checkChain(parents)
		var o *op
		if err == nil {
			o = begin(s.layerOps, hex, &op{parents: slices.Clone(parents), importing: true})
		}
		s.mu.Unlock()
		if err != nil {
			return imagedriver.Layer{}, fmt.Errorf("import layer %s: %w", id, err)
		}
		l, err := s.importLayer(ctx, hex, diffID, parents, r)
		s.end(s.layerOps, hex, o)
		if err != nil {
			return imagedriver.Layer{}, fmt.Errorf("import layer %s: %w", id, err)
		}
		return l, nil
	}
}

// importLayer imports the layer hex, claimed by the caller.
func (s *Store) importLayer(ctx context.Context, hex, diffID string, parents []string, r io.Reader) (imagedriver.Layer, error) {
	// Whatever a crash or a failed removal left of the layer goes first: the
	// layer APIs import into a new folder.
	if err := s.removeLayer(ctx, hex); err != nil {
		return imagedriver.Layer{}, fmt.Errorf("leftover: %w", err)
	}
	g := newGuard(ctx, r, diffID, newRules(len(parents) == 0))
	size, err := s.host.importLayer(ctx, g, s.layerPath(hex), s.layerPaths(parents))
	err = g.end(err)
	m := layerMeta{DiffID: diffID, Parents: slices.Clone(parents), Size: size}
	if err == nil {
		m.GUID, err = s.host.layerGUID(hex)
	}
	if err == nil {
		s.mu.Lock()
		err = writeJSON(s.layerPath(hex)+markerExt, m)
		s.mu.Unlock()
	}
	if err != nil {
		if rerr := s.removeLayer(context.WithoutCancel(ctx), hex); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove partial layer: %w", rerr))
		}
		return imagedriver.Layer{}, err
	}
	return s.layer(hex, m), nil
}

func (s *Store) layerPaths(ids []string) []string {
	paths := make([]string, len(ids))
	for i, id := range ids {
		paths[i] = s.layerPath(strings.TrimPrefix(id, "sha256:"))
	}
	return paths
}

// checkChain checks that parents (immediate parent first) are complete and
// form the whole chain of parents[0]. Call with s.mu held.
func (s *Store) checkChain(parents []string) error {
	return imagedriver.CheckChain(parents, func(id string) ([]string, bool) {
		m, ok := s.readMeta(strings.TrimPrefix(id, "sha256:"))
		return m.Parents, ok
	})
}

// List returns every layer, complete or not, sorted by id. Layers being
// imported or removed are not listed.
func (s *Store) List(ctx context.Context) ([]imagedriver.Layer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	byHex, err := s.scanLayers()
	if err != nil {
		return nil, err
	}
	out := make([]imagedriver.Layer, 0, len(byHex))
	for _, hex := range slices.Sorted(maps.Keys(byHex)) {
		if s.layerOps[hex] != nil {
			continue
		}
		if m, ok := s.readMeta(hex); ok {
			out = append(out, s.layer(hex, m))
			continue
		}
		p := s.layerPath(hex)
		if !exists(p) && exists(p+removingSuffix) {
			p += removingSuffix
		}
		out = append(out, imagedriver.Layer{ID: "sha256:" + hex, Path: p})
	}
	return out, nil
}

func (s *Store) scanLayers() (map[string][]string, error) {
	byHex, err := scan(filepath.Join(s.root, layersDir), validHex, removingSuffix, markerExt)
	if err != nil {
		return nil, fmt.Errorf("list layers: %w", err)
	}
	return byHex, nil
}

// Remove deletes a layer, as imagedriver.LayerStore.Remove promises: its
// marker first, so that a crash leaves an incomplete layer, then its folder
// (see destroy).
func (s *Store) Remove(ctx context.Context, id string) error {
	hex, err := imagedriver.DigestHex(id)
	if err != nil {
		return err
	}
	for {
		s.mu.Lock()
		if o := s.layerOps[hex]; o != nil {
			s.mu.Unlock()
			if o.importing {
				return fmt.Errorf("remove layer %s: %w: being imported", id, imagedriver.ErrInUse)
			}
			if err := wait(ctx, o); err != nil {
				return err
			}
			continue // a removal ended: see what is left
		}
		err := s.usedBy(id)
		var byHex map[string][]string
		if err == nil {
			byHex, err = s.scanLayers()
		}
		if err == nil && len(byHex[hex]) == 0 {
			err = imagedriver.ErrNotFound
		}
		var o *op
		if err == nil {
			if err = removeFile(s.layerPath(hex) + markerExt); err == nil {
				o = begin(s.layerOps, hex, &op{})
			}
		}
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("remove layer %s: %w", id, err)
		}
		err = s.removeLayer(ctx, hex)
		s.end(s.layerOps, hex, o)
		if err != nil {
			return fmt.Errorf("remove layer %s: %w", id, err)
		}
		return nil
	}
}

// removeLayer deletes what the store holds of layer hex: its marker, its
// folder and the leftover of an earlier removal.
func (s *Store) removeLayer(ctx context.Context, hex string) error {
	s.mu.Lock()
	err := removeFile(s.layerPath(hex) + markerExt)
	s.mu.Unlock()
	if err != nil {
		return err
	}
	return s.destroy(ctx, s.layerPath(hex), false)
}

func removeFile(name string) error {
	if err := os.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// usedBy returns an ErrInUse error when an import, a complete layer or a
// scratch layer (complete or being created) builds on id. Call with s.mu
// held.
func (s *Store) usedBy(id string) error {
	for _, hex := range slices.Sorted(maps.Keys(s.layerOps)) {
		if o := s.layerOps[hex]; o.importing && slices.Contains(o.parents, id) {
			return fmt.Errorf("%w: parent of layer sha256:%s, being imported", imagedriver.ErrInUse, hex)
		}
	}
	byHex, err := s.scanLayers()
	if err != nil {
		return err
	}
	for _, hex := range slices.Sorted(maps.Keys(byHex)) {
		if m, ok := s.readMeta(hex); ok && slices.Contains(m.Parents, id) {
			return fmt.Errorf("%w: parent of layer sha256:%s", imagedriver.ErrInUse, hex)
		}
	}
	for _, cid := range slices.Sorted(maps.Keys(s.scratchOps)) {
		if slices.Contains(s.scratchOps[cid].parents, id) {
			return fmt.Errorf("%w: parent of the scratch layer of container %s, being created", imagedriver.ErrInUse, cid)
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

// CreateScratch creates a container's scratch layer over parents with the
// layer APIs and mounts it, as imagedriver.LayerStore.CreateScratch
// promises: it creates the scratch, activates and prepares it over the
// parents' folders (trying both again while they fail in a way that may
// pass), reads its volume, and records the chain last. On error, or when ctx
// ends between two of these steps, it undoes what it did.
func (s *Store) CreateScratch(ctx context.Context, containerID string, parents []imagedriver.Layer, opts imagedriver.ScratchOptions) (imagedriver.Scratch, error) {
	ids, err := imagedriver.ScratchChain(containerID, parents)
	if err != nil {
		return imagedriver.Scratch{}, err
	}
	for {
		if err := ctx.Err(); err != nil {
			return imagedriver.Scratch{}, err
		}
		s.mu.Lock()
		if o := s.scratchOps[containerID]; o != nil {
			s.mu.Unlock()
			if err := wait(ctx, o); err != nil {
				return imagedriver.Scratch{}, err
			}
			continue
		}
		err := s.checkChain(ids)
		if err == nil && exists(s.scratchPath(containerID)) {
			err = imagedriver.ErrExists
		}
		var o *op
		if err == nil {
			o = begin(s.scratchOps, containerID, &op{parents: ids})
		}
		s.mu.Unlock()
		if err != nil {
			return imagedriver.Scratch{}, fmt.Errorf("scratch layer of %s: %w", containerID, err)
		}
		sc, err := s.createScratch(ctx, containerID, ids, !opts.Unmounted)
		s.end(s.scratchOps, containerID, o)
		if err != nil {
			return imagedriver.Scratch{}, fmt.Errorf("scratch layer of %s: %w", containerID, err)
		}
		return sc, nil
	}
}

// createScratch creates the scratch layer of cid, claimed by the caller, and
// mounts it when mount is true.
func (s *Store) createScratch(ctx context.Context, cid string, ids []string, mount bool) (imagedriver.Scratch, error) {
	dir, parents := s.scratchPath(cid), s.layerPaths(ids)
	// The leftover of a failed removal (the scratch itself does not exist).
	if err := s.destroy(ctx, dir, true); err != nil {
		return imagedriver.Scratch{}, fmt.Errorf("leftover: %w", err)
	}
	var vol string
	err := s.host.createScratch(dir, parents)
	if err == nil {
		err = ctx.Err()
	}
	if err == nil && mount {
		vol, err = s.mount(ctx, dir, parents)
	}
	if err == nil {
		err = ctx.Err()
	}
	if err == nil {
		s.mu.Lock()
		err = writeJSON(filepath.Join(dir, chainFile), ids)
		s.mu.Unlock()
	}
	if err != nil {
		if derr := s.destroy(context.WithoutCancel(ctx), dir, true); derr != nil {
			err = errors.Join(err, fmt.Errorf("remove partial scratch layer: %w", derr))
		}
		return imagedriver.Scratch{}, err
	}
	return imagedriver.Scratch{ContainerID: cid, Path: dir, Parents: ids, VolumePath: vol, Complete: true}, nil
}

// RemoveScratch unmounts and deletes a container's scratch layer, complete
// or not, with the leftover of an earlier removal: its chain first, so that
// a crash leaves an incomplete scratch, then the scratch (see destroy). Call
// it once no compute system uses the scratch any more.
func (s *Store) RemoveScratch(ctx context.Context, containerID string) error {
	if err := events.ValidateContainerID(containerID); err != nil {
		return fmt.Errorf("%w: %w", imagedriver.ErrInvalid, err)
	}
	dir := s.scratchPath(containerID)
	for {
		s.mu.Lock()
		if o := s.scratchOps[containerID]; o != nil {
			s.mu.Unlock()
			if err := wait(ctx, o); err != nil {
				return err
			}
			continue
		}
		var err error
		if !exists(dir) && !exists(dir+removingSuffix) {
			err = imagedriver.ErrNotFound
		} else {
			err = removeFile(filepath.Join(dir, chainFile))
		}
		var o *op
		if err == nil {
			o = begin(s.scratchOps, containerID, &op{})
		}
		s.mu.Unlock()
		if err == nil {
			err = s.destroy(ctx, dir, true)
			s.end(s.scratchOps, containerID, o)
		}
		if err != nil {
			return fmt.Errorf("remove scratch layer of %s: %w", containerID, err)
		}
		return nil
	}
}

// ListScratch returns every scratch layer, complete or not, sorted by
// container id, with the volume of each complete one that is mounted.
// Scratch layers being created or removed are not listed.
func (s *Store) ListScratch(ctx context.Context) ([]imagedriver.Scratch, error) {
	s.mu.Lock()
	list, err := s.scanScratch()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	for i, sc := range list {
		if sc.Complete {
			if vol, err := s.host.mountPath(sc.Path); err == nil {
				list[i].VolumePath = vol
			}
		}
	}
	return list, nil
}

// scanScratch reads the scratch folder, leaving out the scratch layers being
// created or removed. Call with s.mu held.
func (s *Store) scanScratch() ([]imagedriver.Scratch, error) {
	valid := func(cid string) bool { return events.ValidateContainerID(cid) == nil }
	byID, err := scan(filepath.Join(s.root, scratchDir), valid, removingSuffix)
	if err != nil {
		return nil, fmt.Errorf("list scratch layers: %w", err)
	}
	out := make([]imagedriver.Scratch, 0, len(byID))
	for _, cid := range slices.Sorted(maps.Keys(byID)) {
		if s.scratchOps[cid] != nil {
			continue
		}
		sc := imagedriver.Scratch{ContainerID: cid, Path: s.scratchPath(cid)}
		if exists(sc.Path) {
			sc.Parents, sc.Complete = readChain(sc.Path)
		} else {
			sc.Path += removingSuffix
		}
		out = append(out, sc)
	}
	return out, nil
}
