//go:build windows && integration

package winhcs

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/Microsoft/hcsshim"

	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/hcsdriver/hcsdrivertest"
)

// baseLayerEnv names the environment variable that points the integration
// tests at an image layer folder whose build matches the host's, such as
// nanoserver:ltsc2022's on Windows Server 2022. After `docker pull`, docker
// prints the folder with
//
//	docker image inspect --format '{{.GraphDriver.Data.dir}}' mcr.microsoft.com/windows/nanoserver:ltsc2022
const baseLayerEnv = "BERTH_TEST_BASE_LAYER"

// TestConformance holds the driver to the hcsdriver contract on this host,
// with process isolation: each compute system gets a scratch layer of its own
// over the image's layers, destroyed after the system is gone.
func TestConformance(t *testing.T) {
	top := os.Getenv(baseLayerEnv)
	if top == "" {
		t.Skipf("%s is unset: point it at an image layer folder (see the workflow in .github/workflows/windows.yml)", baseLayerEnv)
	}
	layers, err := layerChain(top)
	if err != nil {
		t.Fatal(err)
	}
	scratchRoot := t.TempDir()
	hcsdrivertest.Run(t, hcsdrivertest.Harness{
		NewDriver: func(*testing.T) hcsdriver.Driver { return New() },
		Config: func(t *testing.T, id string) hcsdriver.Config {
			return scratch(t, scratchRoot, id, layers)
		},
	})
}

// layerChain returns the layers of the image whose topmost layer folder is
// top, immediate parent first: top, then the parents docker recorded in its
// layerchain.json. Each layer's id is NameToGuid of its folder name.
func layerChain(top string) ([]hcsdriver.Layer, error) {
	paths := []string{top}
	b, err := os.ReadFile(filepath.Join(top, "layerchain.json"))
	switch {
	case errors.Is(err, fs.ErrNotExist): // a base layer
	case err != nil:
		return nil, err
	default:
		var parents []string
		if err := json.Unmarshal(b, &parents); err != nil {
			return nil, err
		}
		paths = append(paths, parents...)
	}
	layers := make([]hcsdriver.Layer, 0, len(paths))
	for _, p := range paths {
		g, err := hcsshim.NameToGuid(filepath.Base(p))
		if err != nil {
			return nil, err
		}
		layers = append(layers, hcsdriver.Layer{ID: g.ToString(), Path: p})
	}
	return layers, nil
}

// scratch creates, activates and prepares a scratch layer for compute system
// id under root, and returns the config that mounts it. Its cleanups run after
// the suite's own for the system: unprepare, deactivate, destroy.
func scratch(t *testing.T, root, id string, layers []hcsdriver.Layer) hcsdriver.Config {
	t.Helper()
	di := hcsshim.DriverInfo{HomeDir: root}
	parents := make([]string, len(layers))
	for i, l := range layers {
		parents[i] = l.Path
	}
	// Each step's undo is registered once the step has succeeded, so
	// cleanups run them in reverse: unprepare, deactivate, destroy.
	for _, step := range []struct {
		name string
		do   func() error
		undo func(hcsshim.DriverInfo, string) error
	}{
		{"create", func() error { return hcsshim.CreateScratchLayer(di, id, "", parents) }, hcsshim.DestroyLayer},
		{"activate", func() error { return hcsshim.ActivateLayer(di, id) }, hcsshim.DeactivateLayer},
		{"prepare", func() error { return hcsshim.PrepareLayer(di, id, parents) }, hcsshim.UnprepareLayer},
	} {
		if err := step.do(); err != nil {
			t.Fatalf("%s scratch layer %s: %v", step.name, id, err)
		}
		t.Cleanup(func() {
			if err := step.undo(di, id); err != nil {
				t.Errorf("undo %s of scratch layer %s: %v", step.name, id, err)
			}
		})
	}
	vol, err := hcsshim.GetLayerMountPath(di, id)
	if err != nil {
		t.Fatalf("mount path of scratch layer %s: %v", id, err)
	}
	return hcsdriver.Config{Layers: layers, VolumePath: vol, LayerFolderPath: filepath.Join(root, id)}
}
