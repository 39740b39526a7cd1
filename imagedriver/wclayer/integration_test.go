//go:build windows && integration

package wclayer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/Microsoft/hcsshim"
	"github.com/Microsoft/hcsshim/pkg/ociwclayer"

	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/imagedrivertest"
)

// baseLayerEnv names the environment variable that points the integration
// tests at an image layer folder in docker's windowsfilter store whose build
// matches the host's, such as nanoserver:ltsc2022's on Windows Server 2022
// (see .github/workflows/windows.yml).
const baseLayerEnv = "BERTH_TEST_BASE_LAYER"

// newRealStore returns a store on the real layer APIs in a new folder. Its
// cleanup removes every scratch layer and layer the test left, with the
// layer APIs, before the folder itself goes.
func newRealStore(t *testing.T) *Store {
	t.Helper()
	s, err := New(t.TempDir())
	if errors.Is(err, ErrNoPrivileges) {
		t.Skipf("the layer APIs need the backup and restore privileges: run the tests elevated (%v)", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { removeAll(t, s) })
	return s
}

// removeAll removes everything in s: scratch layers, then layers, children
// first.
func removeAll(t *testing.T, s *Store) {
	scratches, err := s.ListScratch(ctx)
	if err != nil {
		t.Error(err)
	}
	for _, sc := range scratches {
		if err := s.RemoveScratch(ctx, sc.ContainerID); err != nil {
			t.Errorf("remove scratch layer %s: %v", sc.ContainerID, err)
		}
	}
	for {
		layers, err := s.List(ctx)
		if err != nil || len(layers) == 0 {
			return
		}
		removed := 0
		for _, l := range layers {
			if err := s.Remove(ctx, l.ID); err == nil {
				removed++
			} else if !errors.Is(err, imagedriver.ErrInUse) {
				t.Errorf("remove layer %s: %v", l.ID, err)
			}
		}
		if removed == 0 {
			t.Errorf("layers left: %+v", layers)
			return
		}
	}
}

// TestRealConformance holds the store to the imagedriver contract on this
// host.
func TestRealConformance(t *testing.T) {
	imagedrivertest.RunLayerStore(t, func(t *testing.T) imagedriver.LayerStore { return newRealStore(t) })
}

// TestRealImage imports a real image's layers, exported from docker's store,
// creates a scratch layer over them, and finds the image's files in its
// volume.
func TestRealImage(t *testing.T) {
	top := os.Getenv(baseLayerEnv)
	if top == "" {
		t.Skipf("%s is unset: point it at an image layer folder (see .github/workflows/windows.yml)", baseLayerEnv)
	}
	s := newRealStore(t)
	chainPaths, err := dockerChain(top) // immediate parent first
	if err != nil {
		t.Fatal(err)
	}
	var parents []string // chain ids in the store, immediate parent first
	var layers []imagedriver.Layer
	for i := len(chainPaths) - 1; i >= 0; i-- {
		tarPath, diffID := export(t, chainPaths[i], chainPaths[i+1:])
		f, err := os.Open(tarPath)
		if err != nil {
			t.Fatal(err)
		}
		l, err := s.Import(ctx, diffID, parents, f)
		f.Close()
		if err != nil {
			t.Fatalf("import %s: %v", chainPaths[i], err)
		}
		g, err := hcsshim.NameToGuid(filepath.Base(l.Path))
		if err != nil || l.GUID != g.ToString() {
			t.Errorf("layer GUID %s; want NameToGuid of its folder, %s (%v)", l.GUID, g.ToString(), err)
		}
		layers = append([]imagedriver.Layer{l}, layers...)
		parents = append([]string{l.ID}, parents...)
	}
	sc, err := s.CreateScratch(ctx, "real-1", layers, imagedriver.ScratchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(sc.VolumePath, `\\?\Volume{`) {
		t.Errorf("VolumePath = %q; want a volume", sc.VolumePath)
	}
	if list, err := s.ListScratch(ctx); err != nil || len(list) != 1 || list[0].VolumePath != sc.VolumePath {
		t.Errorf("ListScratch = %+v, %v; want the scratch, mounted at %s", list, err, sc.VolumePath)
	}
	sys32 := strings.TrimSuffix(sc.VolumePath, `\`) + `\Windows\System32`
	if fi, err := os.Stat(sys32); err != nil || !fi.IsDir() {
		t.Errorf("the image's Windows\\System32 through the scratch volume: %v", err)
	}
	if err := s.RemoveScratch(ctx, "real-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(sc.Path); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("scratch folder after RemoveScratch: %v", err)
	}
}

// dockerChain returns the layer folders of the image whose topmost layer
// folder is top, immediate parent first: top, then the parents docker
// recorded in its layerchain.json.
func dockerChain(top string) ([]string, error) {
	paths := []string{top}
	b, err := os.ReadFile(filepath.Join(top, "layerchain.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return paths, nil
	case err != nil:
		return nil, err
	}
	var parents []string
	if err := json.Unmarshal(b, &parents); err != nil {
		return nil, err
	}
	return append(paths, parents...), nil
}

// export writes the layer at path, over parents, to a tar file and returns
// the file and its diff id.
func export(t *testing.T, path string, parents []string) (string, string) {
	t.Helper()
	name := filepath.Join(t.TempDir(), "layer.tar")
	f, err := os.Create(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if err := ociwclayer.ExportLayerToTar(ctx, io.MultiWriter(f, h), path, parents); err != nil {
		t.Fatalf("export %s: %v", path, err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	return name, "sha256:" + hex.EncodeToString(h.Sum(nil))
}
