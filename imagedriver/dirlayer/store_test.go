package dirlayer_test

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/dirlayer"
	"github.com/berthhq/berth/imagedriver/imagedrivertest"
)

var ctx = context.Background()

func hexOf(id string) string { return strings.TrimPrefix(id, "sha256:") }

func importTar(t *testing.T, s *dirlayer.Store, b []byte, d string, parents ...string) imagedriver.Layer {
	t.Helper()
	l, err := s.Import(ctx, d, parents, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWindowsLayout(t *testing.T) {
	root := t.TempDir()
	s, err := dirlayer.New(root)
	if err != nil {
		t.Fatal(err)
	}
	b, d := imagedrivertest.WindowsLayer(t, map[string]string{
		"Windows/System32/cmd.exe": "MZ cmd", "License.txt": "terms"})
	l := importTar(t, s, b, d)
	if want := filepath.Join(root, "layers", hexOf(d)); l.Path != want {
		t.Fatalf("Path = %s, want %s", l.Path, want)
	}
	if got := readFile(t, filepath.Join(l.Path, "Files", "Windows", "System32", "cmd.exe")); got != "MZ cmd" {
		t.Errorf("cmd.exe = %q", got)
	}
	if got := readFile(t, filepath.Join(l.Path, "Hives", "Software_Delta")); got != "regfSoftware_Delta" {
		t.Errorf("Software_Delta = %q", got)
	}
	entries, _ := os.ReadDir(l.Path)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if !slices.Equal(names, []string{"Files", "Hives"}) {
		t.Errorf("layer folder holds %v; want exactly what the tar holds", names)
	}
	var marker struct {
		DiffID string `json:"diff_id"`
		Size   int64  `json:"size"`
	}
	if err := json.Unmarshal([]byte(readFile(t, l.Path+".json")), &marker); err != nil || marker.DiffID != d || marker.Size != l.Size {
		t.Errorf("marker = %+v, %v", marker, err)
	}
	// Another Store on the same folder (an agent restart) sees the layer.
	again, err := dirlayer.New(root)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := again.Get(ctx, l.ID); err != nil || got.Path != l.Path || got.Size != l.Size {
		t.Errorf("Get after reopening = %+v, %v", got, err)
	}
}

func TestLinksInsideTheLayer(t *testing.T) {
	s := newStore(t)
	b, d := imagedrivertest.Tar(t,
		imagedrivertest.Entry{Name: "Files/", Type: tar.TypeDir},
		imagedrivertest.Entry{Name: "Files/app/bin/tool.exe", Body: "MZ tool"},
		imagedrivertest.Entry{Name: "Files/app/current", Type: tar.TypeSymlink, Linkname: "bin"},
		imagedrivertest.Entry{Name: "Files/app/bin/up", Type: tar.TypeSymlink, Linkname: `..\..\app`},
		imagedrivertest.Entry{Name: "Files/tool-hard.exe", Type: tar.TypeLink, Linkname: "Files/app/bin/tool.exe"},
		imagedrivertest.Entry{Name: "./Files/./replaced", Body: "first"},
		imagedrivertest.Entry{Name: "Files/replaced", Body: "second"},
	)
	l := importTar(t, s, b, d)
	files := filepath.Join(l.Path, "Files")
	if got := readFile(t, filepath.Join(files, "app", "current", "tool.exe")); got != "MZ tool" {
		t.Errorf("through the link: %q", got)
	}
	a, _ := os.Stat(filepath.Join(files, "app", "bin", "tool.exe"))
	h, _ := os.Stat(filepath.Join(files, "tool-hard.exe"))
	if a == nil || h == nil || !os.SameFile(a, h) {
		t.Error("the hard link is not the same file")
	}
	if got := readFile(t, filepath.Join(files, "replaced")); got != "second" {
		t.Errorf("a later entry should replace an earlier one: %q", got)
	}
	if l.Size != int64(len("MZ tool")+len("second")) {
		t.Errorf("Size = %d; a hard link and a replaced file add nothing", l.Size)
	}
}

// TestFolderReplaced checks entries that replace a folder the unpacking
// has written into with a file or a link, and then make it
// a folder again: each lands where its name says, and nothing of the
// replaced folder is left.
func TestFolderReplaced(t *testing.T) {
	s := newStore(t)
	b, d := imagedrivertest.Tar(t,
		imagedrivertest.Entry{Name: "Files/app/bin/a.exe", Body: "a"},
		imagedrivertest.Entry{Name: "Files/app/bin/b.exe", Body: "b"},
		imagedrivertest.Entry{Name: "Files/app", Body: "now a file"},
		imagedrivertest.Entry{Name: "Files/other/c.txt", Body: "c"},
		imagedrivertest.Entry{Name: "Files/other", Type: tar.TypeSymlink, Linkname: "app"},
		imagedrivertest.Entry{Name: "Files/app/bin/d.exe", Body: "d"},
	)
	// Files/app/bin/d.exe needs Files/app to be a folder, which a file is
	// not: refused, naming the entry.
	if _, err := s.Import(ctx, d, nil, bytes.NewReader(b)); !errors.Is(err, imagedriver.ErrInvalidImage) || !strings.Contains(err.Error(), "Files/app/bin/d.exe") {
		t.Fatalf("a file where a folder must go: %v; want ErrInvalidImage naming Files/app/bin/d.exe", err)
	}
	b, d = imagedrivertest.Tar(t,
		imagedrivertest.Entry{Name: "Files/app/bin/a.exe", Body: "a"},
		imagedrivertest.Entry{Name: "Files/app", Body: "now a file"},
		imagedrivertest.Entry{Name: "Files/app", Type: tar.TypeDir},
		imagedrivertest.Entry{Name: "Files/app/bin/d.exe", Body: "d"},
		imagedrivertest.Entry{Name: "Files/x/y/e.txt", Body: "e"},
		imagedrivertest.Entry{Name: "Files/x", Type: tar.TypeSymlink, Linkname: "app"},
		imagedrivertest.Entry{Name: "Files/x2/f.txt", Body: "f"},
	)
	l := importTar(t, s, b, d)
	files := filepath.Join(l.Path, "Files")
	if got := readFile(t, filepath.Join(files, "app", "bin", "d.exe")); got != "d" {
		t.Errorf("d.exe: %q", got)
	}
	if _, err := os.Lstat(filepath.Join(files, "app", "bin", "a.exe")); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a.exe of the replaced folder: %v; want it gone", err)
	}
	if fi, err := os.Lstat(filepath.Join(files, "x")); err != nil || fi.Mode()&fs.ModeSymlink == 0 {
		t.Errorf("Files/x: %v, %v; want the symbolic link", fi, err)
	}
	if got := readFile(t, filepath.Join(files, "x2", "f.txt")); got != "f" {
		t.Errorf("f.txt: %q", got)
	}
	if l.Size != int64(len("d")+len("f")) {
		t.Errorf("Size = %d; want the files that are left", l.Size)
	}
}

func TestSpecialFilesRefused(t *testing.T) {
	s := newStore(t)
	for _, typ := range []byte{tar.TypeChar, tar.TypeBlock, tar.TypeFifo} {
		b, d := imagedrivertest.Tar(t, imagedrivertest.Entry{Name: "Files/dev", Type: typ})
		if _, err := s.Import(ctx, d, nil, bytes.NewReader(b)); !errors.Is(err, imagedriver.ErrInvalidImage) {
			t.Errorf("type %q: %v; want ErrInvalidImage", typ, err)
		}
	}
}

// TestUnsafeEntriesWriteNothingOutside checks the folders around the store,
// not just the store's answers.
func TestUnsafeEntriesWriteNothingOutside(t *testing.T) {
	parent := t.TempDir()
	s, err := dirlayer.New(filepath.Join(parent, "store"))
	if err != nil {
		t.Fatal(err)
	}
	for _, entries := range [][]imagedrivertest.Entry{
		{{Name: "../evil", Body: "x"}},
		{{Name: "../../evil", Body: "x"}},
		{{Name: "Files/out", Type: tar.TypeSymlink, Linkname: "../../.."}, {Name: "Files/out/evil", Body: "x"}},
		{{Name: "Files/out", Type: tar.TypeSymlink, Linkname: "../../.."}, {Name: "Files/hl", Type: tar.TypeLink, Linkname: "Files/out/evil"}},
		{{Name: filepath.Join(parent, "evil"), Body: "x"}},
	} {
		b, d := imagedrivertest.Tar(t, entries...)
		if _, err := s.Import(ctx, d, nil, bytes.NewReader(b)); !errors.Is(err, imagedriver.ErrUnsafeEntry) {
			t.Errorf("%+v: %v; want ErrUnsafeEntry", entries, err)
		}
	}
	assertOnlyStore(t, parent)
	assertEmptyLayers(t, s)
}

// assertOnlyStore checks that parent holds nothing but the store's folder.
func assertOnlyStore(t *testing.T, parent string) {
	t.Helper()
	entries, err := os.ReadDir(parent)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != "store" {
			t.Errorf("%s appeared beside the store", e.Name())
		}
	}
}

func assertEmptyLayers(t *testing.T, s *dirlayer.Store) {
	t.Helper()
	if all, err := s.List(ctx); err != nil || len(all) != 0 {
		t.Errorf("List = %+v, %v; want nothing", all, err)
	}
}

func TestWhiteoutsAppliedByLookup(t *testing.T) {
	s := newStore(t)
	bb, bd := imagedrivertest.WindowsLayer(t, map[string]string{
		"gone.txt": "1", "keep.txt": "2", "dir/x": "3", "dir/sub/y": "4", "other/z": "5"})
	base := importTar(t, s, bb, bd)
	cb, cd := imagedrivertest.Tar(t,
		imagedrivertest.Entry{Name: "Files/.wh.gone.txt", Body: ""},
		imagedrivertest.Entry{Name: "Files/dir/", Type: tar.TypeDir},
		imagedrivertest.Entry{Name: "Files/dir/.wh..wh..opq", Body: ""},
		imagedrivertest.Entry{Name: "Files/dir/new", Body: "6"},
		imagedrivertest.Entry{Name: "Files/.wh.other", Body: ""},
		imagedrivertest.Entry{Name: "Files/.wh..wh.plnk", Body: ""},
	)
	child := importTar(t, s, cb, cd, base.ID)
	for _, name := range []string{".wh.gone.txt", "dir/.wh..wh..opq", ".wh.other", ".wh..wh.plnk"} {
		if _, err := os.Lstat(filepath.Join(child.Path, "Files", filepath.FromSlash(name))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("whiteout %s was written as a file", name)
		}
	}
	for _, c := range []struct {
		layer imagedriver.Layer
		name  string
		want  string // the layer whose copy is visible; "" for none
	}{
		{child, "Files/gone.txt", ""},
		{child, "Files/keep.txt", base.Path},
		{child, "Files/dir/x", ""},
		{child, "Files/dir/sub/y", ""},
		{child, "Files/dir/new", child.Path},
		{child, "Files/dir", child.Path},
		{child, "Files/other/z", ""},
		{child, "Files/other", ""},
		{child, "Hives/Sam_Delta", base.Path},
		{child, `Files\keep.txt`, base.Path},
		{base, "Files/gone.txt", base.Path},
		{base, "Files/dir/x", base.Path},
		{base, "Files/nothing", ""},
	} {
		got, err := s.Lookup(ctx, c.layer.ID, c.name)
		if c.want == "" {
			if !errors.Is(err, imagedriver.ErrNotFound) {
				t.Errorf("Lookup(%s) = %q, %v; want ErrNotFound", c.name, got, err)
			}
			continue
		}
		if err != nil || !strings.HasPrefix(got, c.want+string(filepath.Separator)) {
			t.Errorf("Lookup(%s) = %q, %v; want a path in %s", c.name, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "/Files/x", "../x"} {
		if _, err := s.Lookup(ctx, child.ID, bad); !errors.Is(err, imagedriver.ErrInvalid) {
			t.Errorf("Lookup(%q) = %v; want ErrInvalid", bad, err)
		}
	}
}

func TestLeftoversListedAndRemoved(t *testing.T) {
	root := t.TempDir()
	s, err := dirlayer.New(root)
	if err != nil {
		t.Fatal(err)
	}
	good := importFiles(t, s, map[string]string{"a": "1"})
	halfB, halfD := imagedrivertest.WindowsLayer(t, map[string]string{"b": "2"})
	torn, _ := imagedrivertest.WindowsLayer(t, map[string]string{"c": "3"})
	tornD := imagedrivertest.DiffID(torn)
	tmpD := imagedrivertest.DiffID([]byte("tmp"))
	layers := filepath.Join(root, "layers")
	// A crash after the rename and before the marker: a folder without marker.
	if err := os.MkdirAll(filepath.Join(layers, hexOf(halfD), "Files"), 0o755); err != nil {
		t.Fatal(err)
	}
	// A crash while writing the marker: a torn marker.
	if err := os.MkdirAll(filepath.Join(layers, hexOf(tornD), "Files"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(layers, hexOf(tornD)+".json"), []byte(`{"diff_id":"sha`), 0o644); err != nil {
		t.Fatal(err)
	}
	// A crash during the unpacking: a temporary folder.
	if err := os.MkdirAll(filepath.Join(layers, hexOf(tmpD)+".tmp-123", "Files"), 0o755); err != nil {
		t.Fatal(err)
	}
	s, err = dirlayer.New(root) // the agent restarts
	if err != nil {
		t.Fatal(err)
	}
	all, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var complete, incomplete []string
	for _, l := range all {
		if l.Complete {
			complete = append(complete, l.ID)
		} else {
			incomplete = append(incomplete, l.ID)
		}
	}
	wantIncomplete := []string{halfD, tornD, tmpD}
	slices.Sort(wantIncomplete)
	if !slices.Equal(complete, []string{good.ID}) || !slices.Equal(incomplete, wantIncomplete) {
		t.Fatalf("List: complete %v, incomplete %v; want %v and %v", complete, incomplete, good.ID, wantIncomplete)
	}
	h, err := imagedriver.Observe(ctx, s)
	if err != nil || len(h.Layers) != 1 || len(h.Incomplete) != len(wantIncomplete) {
		t.Fatalf("Observe = %+v, %v; want %d incomplete layers", h, err, len(wantIncomplete))
	}
	for _, id := range wantIncomplete {
		if ok, _ := s.Has(ctx, id); ok {
			t.Errorf("Has(%s) for a leftover", id)
		}
		if _, err := s.Get(ctx, id); !errors.Is(err, imagedriver.ErrNotFound) {
			t.Errorf("Get(%s) = %v for a leftover; want ErrNotFound", id, err)
		}
	}
	// An import over a leftover replaces it.
	l := importTar(t, s, halfB, halfD)
	if got := readFile(t, filepath.Join(l.Path, "Files", "b")); got != "2" {
		t.Errorf("re-imported layer holds %q", got)
	}
	for _, id := range []string{tornD, tmpD} {
		if err := s.Remove(ctx, id); err != nil {
			t.Fatalf("Remove(%s): %v", id, err)
		}
	}
	entries, _ := os.ReadDir(layers)
	if len(entries) != 4 { // two layers, two markers
		t.Errorf("layers folder after cleanup: %d entries; want the two layers and their markers", len(entries))
	}
}

func importFiles(t *testing.T, s *dirlayer.Store, files map[string]string, parents ...string) imagedriver.Layer {
	t.Helper()
	b, d := imagedrivertest.WindowsLayer(t, files)
	return importTar(t, s, b, d, parents...)
}

func TestScratchOnDisk(t *testing.T) {
	root := t.TempDir()
	s, err := dirlayer.New(root)
	if err != nil {
		t.Fatal(err)
	}
	base := importFiles(t, s, map[string]string{"a": "1"})
	top := importFiles(t, s, map[string]string{"b": "2"}, base.ID)
	sc, err := s.CreateScratch(ctx, "web-1", []imagedriver.Layer{top, base}, imagedriver.ScratchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.Path != filepath.Join(root, "scratch", "web-1") || sc.VolumePath != sc.Path {
		t.Errorf("Path = %s, VolumePath = %s; want both the scratch folder", sc.Path, sc.VolumePath)
	}
	var chain []string
	if err := json.Unmarshal([]byte(readFile(t, filepath.Join(sc.Path, "layerchain.json"))), &chain); err != nil ||
		!slices.Equal(chain, []string{top.ID, base.ID}) {
		t.Errorf("layerchain.json = %v, %v; want immediate parent first", chain, err)
	}
	if fi, err := os.Stat(filepath.Join(sc.Path, "Files")); err != nil || !fi.IsDir() {
		t.Errorf("scratch Files folder: %v", err)
	}
	// A scratch whose creation was cut short: no chain file.
	if err := os.MkdirAll(filepath.Join(root, "scratch", "web-2", "Files"), 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListScratch(ctx)
	if err != nil || len(list) != 2 || !list[0].Complete || list[1].Complete || list[1].ContainerID != "web-2" ||
		list[0].VolumePath != sc.Path || list[1].VolumePath != "" {
		t.Fatalf("ListScratch = %+v, %v; want web-1 complete and mounted, web-2 neither", list, err)
	}
	if err := s.RemoveScratch(ctx, "web-2"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "scratch", "web-2")); !errors.Is(err, os.ErrNotExist) {
		t.Error("incomplete scratch still there")
	}
}

// gatedReader hands out r only once open is closed.
type gatedReader struct {
	open <-chan struct{}
	r    io.Reader
}

func (g gatedReader) Read(p []byte) (int, error) {
	<-g.open
	return g.r.Read(p)
}

func TestImportInProgress(t *testing.T) {
	s := newStore(t)
	b, d := imagedrivertest.WindowsLayer(t, map[string]string{"a": "1"})
	open := make(chan struct{})
	started := make(chan struct{})
	result := make(chan error, 1)
	go func() {
		close(started)
		_, err := s.Import(ctx, d, nil, gatedReader{open, bytes.NewReader(b)})
		result <- err
	}()
	<-started
	// Wait until the import has claimed the layer.
	for {
		if err := s.Remove(ctx, d); errors.Is(err, imagedriver.ErrInUse) {
			break
		}
		runtime.Gosched()
	}
	assertEmptyLayers(t, s) // an import in progress is not listed
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Import(cctx, d, nil, bytes.NewReader(b)); !errors.Is(err, context.Canceled) {
		t.Errorf("waiting import with a cancelled context = %v", err)
	}
	close(open)
	if err := <-result; err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, d); !ok {
		t.Fatal("import did not complete")
	}
}

// TestGUIDs checks the stand-in for the layer APIs' NameToGuid: a layer's
// GUID is a GUID, stable across stores, and differs between layers.
func TestGUIDs(t *testing.T) {
	guid := regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-5[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)
	var guids []string
	for range 2 {
		s, err := dirlayer.New(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		base := importFiles(t, s, map[string]string{"a": "1"})
		top := importFiles(t, s, map[string]string{"b": "2"}, base.ID)
		got, err := s.Get(ctx, top.ID)
		if err != nil || got.GUID != top.GUID {
			t.Fatalf("Get = %+v, %v; want GUID %s", got, err, top.GUID)
		}
		guids = append(guids, base.GUID, top.GUID)
	}
	for _, g := range guids {
		if !guid.MatchString(g) {
			t.Errorf("GUID %q is not a version 5 GUID", g)
		}
	}
	if guids[0] != guids[2] || guids[1] != guids[3] || guids[0] == guids[1] {
		t.Errorf("GUIDs %v; want one per layer, the same in both stores", guids)
	}
}

// TestImportAhead: a layer unpacks while its parent is not in the store
// yet and is published once ready closes and the parent is there; a
// parent that never arrives, or a context that ends first, leaves nothing.
func TestImportAhead(t *testing.T) {
	root := t.TempDir()
	s, err := dirlayer.New(root)
	if err != nil {
		t.Fatal(err)
	}
	baseTar, baseD := imagedrivertest.WindowsLayer(t, map[string]string{"a": "1"})
	topTar, topD := imagedrivertest.WindowsLayer(t, map[string]string{"b": "2"})
	top := imagedriver.ChainID(baseD, topD)

	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := s.ImportAhead(ctx, topD, []string{baseD}, bytes.NewReader(topTar), ready)
		done <- err
	}()
	// The child unpacks (its file lands in its temporary folder) before the
	// parent exists.
	deadline := time.Now().Add(10 * time.Second)
	for {
		unpacked, _ := filepath.Glob(filepath.Join(root, "layers", "*.tmp-*", "Files", "b"))
		if len(unpacked) == 1 {
			break
		}
		entries, _ := os.ReadDir(filepath.Join(root, "layers"))
		if time.Now().After(deadline) {
			t.Fatalf("no import in progress: %v", entries)
		}
		time.Sleep(time.Millisecond)
	}
	if ok, _ := s.Has(ctx, top); ok {
		t.Fatal("published before its parent")
	}
	importTar(t, s, baseTar, baseD)
	close(ready)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	l, err := s.Get(ctx, top)
	if err != nil || !slices.Equal(l.Parents, []string{baseD}) {
		t.Fatalf("Get = %+v, %v", l, err)
	}

	// A parent that is not there when ready closes.
	otherTar, otherD := imagedrivertest.WindowsLayer(t, map[string]string{"c": "3"})
	missing := "sha256:" + strings.Repeat("ab", 32)
	closed := make(chan struct{})
	close(closed)
	if _, err := s.ImportAhead(ctx, otherD, []string{missing}, bytes.NewReader(otherTar), closed); !errors.Is(err, imagedriver.ErrNotFound) {
		t.Fatalf("ImportAhead over a missing parent = %v; want ErrNotFound", err)
	}
	// A context that ends while it waits.
	cctx, cancel := context.WithCancel(ctx)
	go func() { time.Sleep(20 * time.Millisecond); cancel() }()
	if _, err := s.ImportAhead(cctx, otherD, []string{missing}, bytes.NewReader(otherTar), make(chan struct{})); !errors.Is(err, context.Canceled) {
		t.Fatalf("ImportAhead with an ended context = %v", err)
	}
	all, _ := s.List(ctx)
	entries, _ := os.ReadDir(filepath.Join(root, "layers"))
	if len(all) != 2 || len(entries) != 4 { // two layers and their markers
		t.Fatalf("after the failures: layers %+v, folder %d entries", all, len(entries))
	}
}
