package wclayer

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/berthhq/berth/imagedriver"
)

const (
	layersDir  = "layers"
	scratchDir = "scratch"
	markerExt  = ".json"
	// removingSuffix marks a folder being destroyed. It holds a character
	// that neither a layer's hex nor a container id can hold, so that no
	// layer or scratch layer is ever named like a leftover.
	removingSuffix = "~removing"
	chainFile      = "berth-chain.json"
	// sandboxDisk is the scratch layer's disk, which the layer APIs create.
	sandboxDisk = "sandbox.vhdx"
)

// layerMeta is what a layer's completion marker records.
type layerMeta struct {
	DiffID  string   `json:"diff_id"`
	Parents []string `json:"parents,omitempty"` // chain ids, immediate parent first
	Size    int64    `json:"size"`
	GUID    string   `json:"guid"`
}

func (s *Store) layerPath(hex string) string   { return filepath.Join(s.root, layersDir, hex) }
func (s *Store) scratchPath(cid string) string { return filepath.Join(s.root, scratchDir, cid) }

// readMeta reads a layer's marker; ok is false when the layer is not
// complete: no marker, a marker that does not parse or lacks a field, or no
// layer folder.
func (s *Store) readMeta(hex string) (m layerMeta, ok bool) {
	b, err := os.ReadFile(s.layerPath(hex) + markerExt)
	if err != nil || json.Unmarshal(b, &m) != nil || m.DiffID == "" || m.GUID == "" {
		return layerMeta{}, false
	}
	if fi, err := os.Lstat(s.layerPath(hex)); err != nil || !fi.IsDir() {
		return layerMeta{}, false
	}
	return m, true
}

func (s *Store) layer(hex string, m layerMeta) imagedriver.Layer {
	return imagedriver.Layer{ID: "sha256:" + hex, DiffID: m.DiffID, Parents: m.Parents,
		Path: s.layerPath(hex), Size: m.Size, GUID: m.GUID, Complete: true}
}

// readChain reads the parents a scratch layer records; ok is false when the
// scratch is not complete.
func readChain(dir string) (ids []string, ok bool) {
	b, err := os.ReadFile(filepath.Join(dir, chainFile))
	if err != nil || json.Unmarshal(b, &ids) != nil || len(ids) == 0 {
		return nil, false
	}
	return ids, true
}

func writeJSON(name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return os.WriteFile(name, b, 0o644)
}

// scan returns the names in dir that belong to each key, a name's key being
// the name without the first of suffixes it ends with. In the layers folder
// a layer's hex owns "<hex>", "<hex>.json" and "<hex>~removing"; in the
// scratch folder a container id owns "<id>" and "<id>~removing". Names whose
// key valid refuses are left out.
func scan(dir string, valid func(key string) bool, suffixes ...string) (map[string][]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	byKey := map[string][]string{}
	for _, e := range entries {
		name, key := e.Name(), e.Name()
		for _, suf := range suffixes {
			if k, ok := strings.CutSuffix(name, suf); ok {
				key = k
				break
			}
		}
		if valid(key) {
			byKey[key] = append(byKey[key], name)
		}
	}
	return byKey, nil
}

func validHex(hex string) bool { return imagedriver.ValidateDigest("sha256:"+hex) == nil }

func exists(name string) bool {
	_, err := os.Lstat(name)
	return !errors.Is(err, fs.ErrNotExist)
}
