package dirlayer_test

import (
	"bytes"
	"io/fs"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthhq/berth/imagedriver/dirlayer"
	"github.com/berthhq/berth/imagedriver/imagedrivertest"
)

// FuzzImport feeds arbitrary bytes to Import as a layer tar (with their true
// diff id, so that the archive itself is exercised). It must never panic,
// never write outside the store's folder, publish a layer only when the
// import succeeds, leave nothing behind when it fails, and never publish a
// symbolic link that leads outside its layer. The seed corpus is in
// testdata/fuzz/FuzzImport.
func FuzzImport(f *testing.F) {
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		s, err := dirlayer.New(filepath.Join(parent, "store"))
		if err != nil {
			t.Fatal(err)
		}
		d := imagedrivertest.DiffID(data)
		l, err := s.Import(ctx, d, nil, bytes.NewReader(data))
		assertOnlyStore(t, parent)
		if err != nil {
			if ok, _ := s.Has(ctx, d); ok {
				t.Fatalf("failed import (%v) published the layer", err)
			}
			assertEmptyLayers(t, s)
			return
		}
		if !l.Complete || l.ID != d {
			t.Fatalf("Import = %+v", l)
		}
		checkLinksStayInside(t, l.Path)
	})
}

// checkLinksStayInside resolves every symbolic link of a layer that resolves
// at all, and fails when one lands outside the layer.
func checkLinksStayInside(t *testing.T, layer string) {
	t.Helper()
	real, err := filepath.EvalSymlinks(layer)
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(layer, func(p string, e fs.DirEntry, err error) error {
		if err != nil || e.Type()&fs.ModeSymlink == 0 {
			return err
		}
		to, err := filepath.EvalSymlinks(p)
		if err != nil {
			return nil // dangling or looping: it leads nowhere
		}
		if to != real && !strings.HasPrefix(to, real+string(filepath.Separator)) {
			t.Errorf("link %s leads to %s, outside the layer", p, to)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
