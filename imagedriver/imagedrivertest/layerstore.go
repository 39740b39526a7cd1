package imagedrivertest

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/berthhq/berth/imagedriver"
)

// RunLayerStore runs the conformance suite of [imagedriver.LayerStore]
// against stores made by newStore, one fresh, empty store per subtest.
// Subtests run in parallel.
func RunLayerStore(t *testing.T, newStore func(t *testing.T) imagedriver.LayerStore) {
	for _, tc := range layerStoreCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

var layerStoreCases = []struct {
	name string
	run  func(t *testing.T, s imagedriver.LayerStore)
}{
	{"ImportBase", testImportBase},
	{"ImportChain", testImportChain},
	{"SameDiffOnTwoBasesIsTwoLayers", testSameDiffTwoBases},
	{"ImportOfCompleteLayerReadsNothing", testImportPresent},
	{"ConcurrentImportsResultInOne", testConcurrentImports},
	{"DigestMismatch", testDigestMismatch},
	{"ReaderError", testReaderError},
	{"ContextCancelled", testImportCancelled},
	{"UnsafeEntries", testUnsafeEntries},
	{"NotATar", testNotATar},
	{"ParentsMustBeAChainInTheStore", testImportParents},
	{"InvalidIDs", testInvalidIDs},
	{"RemoveChildBeforeParent", testRemove},
	{"Scratch", testScratch},
	{"UnmountedScratch", testUnmountedScratch},
	{"ScratchErrors", testScratchErrors},
	{"ObserveHoldings", testObserve},
}

var ctx = context.Background()

type layerFixture struct {
	tar    []byte
	diffID string
}

func fixture(t *testing.T, files map[string]string) layerFixture {
	b, d := WindowsLayer(t, files)
	return layerFixture{b, d}
}

func mustImport(t *testing.T, s imagedriver.LayerStore, f layerFixture, parents ...string) imagedriver.Layer {
	t.Helper()
	l, err := s.Import(ctx, f.diffID, parents, bytes.NewReader(f.tar))
	if err != nil {
		t.Fatalf("Import %s: %v", f.diffID, err)
	}
	return l
}

// wantAbsent checks that nothing of id is usable.
func wantAbsent(t *testing.T, s imagedriver.LayerStore, id string) {
	t.Helper()
	if ok, err := s.Has(ctx, id); ok || err != nil {
		t.Errorf("Has(%s) = %v, %v; want false", id, ok, err)
	}
	if _, err := s.Get(ctx, id); !errors.Is(err, imagedriver.ErrNotFound) {
		t.Errorf("Get(%s) = %v; want ErrNotFound", id, err)
	}
	all, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range all {
		if l.ID == id && l.Complete {
			t.Errorf("List reports %s complete", id)
		}
	}
}

func testImportBase(t *testing.T, s imagedriver.LayerStore) {
	f := fixture(t, map[string]string{"Windows/System32/cmd.exe": "MZ cmd"})
	wantAbsent(t, s, f.diffID)
	l := mustImport(t, s, f)
	if l.ID != f.diffID || l.DiffID != f.diffID || len(l.Parents) != 0 || !l.Complete {
		t.Fatalf("Import = %+v; want a complete base layer with id = diff id %s", l, f.diffID)
	}
	if l.Size != int64(len("MZ cmd")+len("regfDefaultUser_Delta")+len("regfSam_Delta")+
		len("regfSecurity_Delta")+len("regfSoftware_Delta")+len("regfSystem_Delta")) {
		t.Errorf("Size = %d; want the bytes of file content", l.Size)
	}
	if fi, err := os.Stat(l.Path); err != nil || !fi.IsDir() {
		t.Errorf("layer path %q: %v; want a folder", l.Path, err)
	}
	if ok, err := s.Has(ctx, l.ID); !ok || err != nil {
		t.Errorf("Has = %v, %v", ok, err)
	}
	got, err := s.Get(ctx, l.ID)
	if err != nil || !equalLayer(got, l) {
		t.Errorf("Get = %+v, %v; want %+v", got, err, l)
	}
	all, err := s.List(ctx)
	if err != nil || len(all) != 1 || !equalLayer(all[0], l) {
		t.Errorf("List = %+v, %v; want [%+v]", all, err, l)
	}
}

func equalLayer(a, b imagedriver.Layer) bool {
	return a.ID == b.ID && a.DiffID == b.DiffID && slices.Equal(a.Parents, b.Parents) &&
		a.Path == b.Path && a.Size == b.Size && a.Complete == b.Complete
}

func chainOf(t *testing.T, s imagedriver.LayerStore, n int) []imagedriver.Layer {
	t.Helper()
	var layers []imagedriver.Layer
	var parents []string // immediate parent first
	for i := range n {
		f := fixture(t, map[string]string{fmt.Sprintf("layer%d.txt", i): fmt.Sprint(i)})
		l := mustImport(t, s, f, parents...)
		layers = append(layers, l)
		parents = append([]string{l.ID}, parents...)
	}
	return layers
}

func testImportChain(t *testing.T, s imagedriver.LayerStore) {
	layers := chainOf(t, s, 3)
	diffs := []string{layers[0].DiffID, layers[1].DiffID, layers[2].DiffID}
	ids := imagedriver.ChainIDs(diffs)
	for i, l := range layers {
		if l.ID != ids[i] {
			t.Errorf("layer %d id = %s, want chain id %s", i, l.ID, ids[i])
		}
	}
	if want := []string{ids[1], ids[0]}; !slices.Equal(layers[2].Parents, want) {
		t.Errorf("top layer parents = %v, want %v (immediate parent first)", layers[2].Parents, want)
	}
	for _, l := range layers {
		if got, err := s.Get(ctx, l.ID); err != nil || !equalLayer(got, l) {
			t.Errorf("Get(%s) = %+v, %v; want %+v", l.ID, got, err, l)
		}
	}
}

func testSameDiffTwoBases(t *testing.T, s imagedriver.LayerStore) {
	a := mustImport(t, s, fixture(t, map[string]string{"base": "a"}))
	b := mustImport(t, s, fixture(t, map[string]string{"base": "b"}))
	diff := fixture(t, map[string]string{"app.exe": "same"})
	onA := mustImport(t, s, diff, a.ID)
	onB := mustImport(t, s, diff, b.ID)
	if onA.ID == onB.ID || onA.DiffID != onB.DiffID {
		t.Fatalf("one diff on two bases: %s and %s; want two layers of one diff id", onA.ID, onB.ID)
	}
	if err := s.Remove(ctx, onA.ID); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.Has(ctx, onB.ID); !ok {
		t.Fatal("removing one layer removed the other")
	}
}

// failingReader fails on first read.
type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

func testImportPresent(t *testing.T, s imagedriver.LayerStore) {
	f := fixture(t, map[string]string{"a": "b"})
	l := mustImport(t, s, f)
	again, err := s.Import(ctx, f.diffID, nil, failingReader{errors.New("read")})
	if err != nil || !equalLayer(again, l) {
		t.Fatalf("Import of a complete layer = %+v, %v; want %+v without reading", again, err, l)
	}
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

func testConcurrentImports(t *testing.T, s imagedriver.LayerStore) {
	f := fixture(t, map[string]string{"big.bin": strings.Repeat("x", 1<<20)})
	const n = 8
	var wg sync.WaitGroup
	layers := make([]imagedriver.Layer, n)
	errs := make([]error, n)
	counts := make([]atomic.Int64, n)
	for i := range n {
		wg.Go(func() {
			layers[i], errs[i] = s.Import(ctx, f.diffID, nil, countingReader{bytes.NewReader(f.tar), &counts[i]})
		})
	}
	wg.Wait()
	readers := 0
	for i := range n {
		if errs[i] != nil || !equalLayer(layers[i], layers[0]) {
			t.Errorf("import %d = %+v, %v; want %+v", i, layers[i], errs[i], layers[0])
		}
		if counts[i].Load() > 0 {
			readers++
		}
	}
	if readers != 1 {
		t.Errorf("%d of %d concurrent imports read their layer; want 1", readers, n)
	}
	if all, _ := s.List(ctx); len(all) != 1 {
		t.Errorf("List = %+v; want one layer", all)
	}
}

func testDigestMismatch(t *testing.T, s imagedriver.LayerStore) {
	f := fixture(t, map[string]string{"a": "b"})
	other := fixture(t, map[string]string{"a": "c"})
	_, err := s.Import(ctx, other.diffID, nil, bytes.NewReader(f.tar))
	if !errors.Is(err, imagedriver.ErrDigestMismatch) {
		t.Fatalf("Import with a wrong diff id = %v; want ErrDigestMismatch", err)
	}
	wantAbsent(t, s, other.diffID)
	wantAbsent(t, s, f.diffID)
	// Content damaged on its way fails as a mismatch, not as a bad archive.
	damaged := bytes.Clone(f.tar)
	damaged[100] ^= 0xff // in the first header's mode field: its checksum no longer holds
	if _, err := s.Import(ctx, f.diffID, nil, bytes.NewReader(damaged)); !errors.Is(err, imagedriver.ErrDigestMismatch) {
		t.Errorf("Import of a damaged tar = %v; want ErrDigestMismatch", err)
	}
	// So does content cut short.
	if _, err := s.Import(ctx, f.diffID, nil, bytes.NewReader(f.tar[:len(f.tar)/2])); !errors.Is(err, imagedriver.ErrDigestMismatch) {
		t.Errorf("Import of half a tar = %v; want ErrDigestMismatch", err)
	}
	wantAbsent(t, s, f.diffID)
	mustImport(t, s, other)
}

// failAfter returns b, then err.
type failAfter struct {
	b   []byte
	err error
}

func (r *failAfter) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, r.err
	}
	n := copy(p, r.b)
	r.b = r.b[n:]
	return n, nil
}

func testReaderError(t *testing.T, s imagedriver.LayerStore) {
	f := fixture(t, map[string]string{"big.bin": strings.Repeat("y", 256<<10)})
	cause := errors.New("connection reset")
	_, err := s.Import(ctx, f.diffID, nil, &failAfter{b: f.tar[:len(f.tar)/2], err: cause})
	if !errors.Is(err, cause) {
		t.Fatalf("Import = %v; want the reader's error wrapped", err)
	}
	wantAbsent(t, s, f.diffID)
	mustImport(t, s, f)
}

func testImportCancelled(t *testing.T, s imagedriver.LayerStore) {
	f := fixture(t, map[string]string{"a": "b"})
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Import(cctx, f.diffID, nil, bytes.NewReader(f.tar)); !errors.Is(err, context.Canceled) {
		t.Fatalf("Import with a cancelled context = %v; want context.Canceled", err)
	}
	wantAbsent(t, s, f.diffID)
}

func testUnsafeEntries(t *testing.T, s imagedriver.LayerStore) {
	dir := Entry{Name: "Files", Type: tar.TypeDir}
	cases := []struct {
		name    string
		entries []Entry
		culprit string // the entry the error must name
	}{
		{"dot-dot", []Entry{dir, {Name: "../evil", Body: "x"}}, "../evil"},
		{"dot-dot inside", []Entry{dir, {Name: "Files/../../evil", Body: "x"}}, "Files/../../evil"},
		{"absolute", []Entry{{Name: "/etc/evil", Body: "x"}}, "/etc/evil"},
		{"drive letter", []Entry{{Name: `C:\Windows\evil`, Body: "x"}}, `C:\Windows\evil`},
		{"backslash dot-dot", []Entry{{Name: `Files\..\..\evil`, Body: "x"}}, `Files\..\..\evil`},
		{"symlink out", []Entry{dir, {Name: "Files/out", Type: tar.TypeSymlink, Linkname: "../../outside"}}, "Files/out"},
		{"absolute symlink", []Entry{dir, {Name: "Files/etc", Type: tar.TypeSymlink, Linkname: "/etc"}}, "Files/etc"},
		{"symlink chain out", []Entry{dir,
			{Name: "Files/a/b", Type: tar.TypeDir},
			{Name: "Files/a/b/up", Type: tar.TypeSymlink, Linkname: ".."},
			{Name: "Files/a/b/esc", Type: tar.TypeSymlink, Linkname: "up/../../../.."}}, "Files/a/b/esc"},
		{"write through symlink", []Entry{dir,
			{Name: "Files/lnk", Type: tar.TypeSymlink, Linkname: "."},
			{Name: "Files/lnk/x", Body: "x"}}, "Files/lnk/x"},
		{"hard link out", []Entry{dir, {Name: "Files/hl", Type: tar.TypeLink, Linkname: "../../etc/passwd"}}, "Files/hl"},
		{"hard link through symlink", []Entry{dir,
			{Name: "Files/s", Type: tar.TypeSymlink, Linkname: "."},
			{Name: "Files/f", Body: "x"},
			{Name: "Files/hl", Type: tar.TypeLink, Linkname: "Files/s/f"}}, "Files/hl"},
	}
	for _, c := range cases {
		b, d := Tar(t, c.entries...)
		_, err := s.Import(ctx, d, nil, bytes.NewReader(b))
		named := err != nil && (strings.Contains(err.Error(), c.culprit) || strings.Contains(err.Error(), strconv.Quote(c.culprit)))
		if !errors.Is(err, imagedriver.ErrUnsafeEntry) || !named {
			t.Errorf("%s: Import = %v; want ErrUnsafeEntry naming %q", c.name, err, c.culprit)
		}
		wantAbsent(t, s, d)
	}
	if all, err := s.List(ctx); err != nil || len(all) != 0 {
		t.Errorf("List after refused imports = %+v, %v; want nothing", all, err)
	}
}

func testNotATar(t *testing.T, s imagedriver.LayerStore) {
	junk := bytes.Repeat([]byte("not a tar archive. "), 64)
	d := DiffID(junk)
	if _, err := s.Import(ctx, d, nil, bytes.NewReader(junk)); !errors.Is(err, imagedriver.ErrInvalidImage) {
		t.Fatalf("Import of junk = %v; want ErrInvalidImage", err)
	}
	wantAbsent(t, s, d)
}

func testImportParents(t *testing.T, s imagedriver.LayerStore) {
	layers := chainOf(t, s, 2)
	base, mid := layers[0], layers[1]
	f := fixture(t, map[string]string{"top": "1"})
	unknown := fixture(t, map[string]string{"unknown": "1"}).diffID
	for _, c := range []struct {
		name    string
		parents []string
		want    error
	}{
		{"missing parent", []string{unknown}, imagedriver.ErrNotFound},
		{"missing grandparent", []string{mid.ID, unknown}, imagedriver.ErrInvalid},
		{"grandparent left out", []string{mid.ID}, imagedriver.ErrInvalid},
		{"out of order", []string{base.ID, mid.ID}, imagedriver.ErrInvalid},
		{"invalid id", []string{"sha256:nope"}, imagedriver.ErrInvalid},
	} {
		_, err := s.Import(ctx, f.diffID, c.parents, bytes.NewReader(f.tar))
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Import = %v; want %v", c.name, err, c.want)
		}
	}
	if all, _ := s.List(ctx); len(all) != 2 {
		t.Errorf("List = %+v; want only the two good layers", all)
	}
	mustImport(t, s, f, mid.ID, base.ID)
}

func testInvalidIDs(t *testing.T, s imagedriver.LayerStore) {
	for _, id := range []string{"", "abc", "sha256:../../x", "sha256:" + strings.Repeat("A", 64)} {
		if _, err := s.Has(ctx, id); !errors.Is(err, imagedriver.ErrInvalid) {
			t.Errorf("Has(%q) = %v; want ErrInvalid", id, err)
		}
		if _, err := s.Get(ctx, id); !errors.Is(err, imagedriver.ErrInvalid) {
			t.Errorf("Get(%q) = %v; want ErrInvalid", id, err)
		}
		if err := s.Remove(ctx, id); !errors.Is(err, imagedriver.ErrInvalid) {
			t.Errorf("Remove(%q) = %v; want ErrInvalid", id, err)
		}
		if _, err := s.Import(ctx, id, nil, bytes.NewReader(nil)); !errors.Is(err, imagedriver.ErrInvalid) {
			t.Errorf("Import(%q) = %v; want ErrInvalid", id, err)
		}
	}
}

func testRemove(t *testing.T, s imagedriver.LayerStore) {
	layers := chainOf(t, s, 2)
	base, top := layers[0], layers[1]
	if err := s.Remove(ctx, base.ID); !errors.Is(err, imagedriver.ErrInUse) {
		t.Fatalf("Remove of a parent = %v; want ErrInUse", err)
	}
	if ok, _ := s.Has(ctx, base.ID); !ok {
		t.Fatal("a refused Remove removed the layer")
	}
	for _, l := range []imagedriver.Layer{top, base} {
		if err := s.Remove(ctx, l.ID); err != nil {
			t.Fatalf("Remove(%s): %v", l.ID, err)
		}
		wantAbsent(t, s, l.ID)
		if err := s.Remove(ctx, l.ID); !errors.Is(err, imagedriver.ErrNotFound) {
			t.Errorf("second Remove = %v; want ErrNotFound", err)
		}
	}
	if _, err := os.Stat(base.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("layer folder after Remove: %v; want it gone", err)
	}
	if all, _ := s.List(ctx); len(all) != 0 {
		t.Errorf("List = %+v; want nothing", all)
	}
	// A removed layer imports again.
	f := fixture(t, map[string]string{"layer0.txt": "0"})
	mustImport(t, s, f)
}

func testScratch(t *testing.T, s imagedriver.LayerStore) {
	layers := chainOf(t, s, 2)
	chain := []imagedriver.Layer{layers[1], layers[0]}
	sc, err := s.CreateScratch(ctx, "web-rep-1", chain, imagedriver.ScratchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if sc.ContainerID != "web-rep-1" || !sc.Complete || !slices.Equal(sc.Parents, []string{layers[1].ID, layers[0].ID}) {
		t.Fatalf("CreateScratch = %+v; want a complete scratch over %s, %s", sc, layers[1].ID, layers[0].ID)
	}
	if fi, err := os.Stat(sc.Path); err != nil || !fi.IsDir() {
		t.Errorf("scratch path %q: %v; want a folder", sc.Path, err)
	}
	if _, err := s.CreateScratch(ctx, "web-rep-1", chain, imagedriver.ScratchOptions{}); !errors.Is(err, imagedriver.ErrExists) {
		t.Errorf("second CreateScratch = %v; want ErrExists", err)
	}
	for _, l := range layers {
		if err := s.Remove(ctx, l.ID); !errors.Is(err, imagedriver.ErrInUse) {
			t.Errorf("Remove of a layer under a scratch = %v; want ErrInUse", err)
		}
	}
	if _, err := s.CreateScratch(ctx, "web-rep-2", chain, imagedriver.ScratchOptions{}); err != nil {
		t.Fatal(err)
	}
	list, err := s.ListScratch(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListScratch = %+v, %v; want two", list, err)
	}
	for _, id := range []string{"web-rep-1", "web-rep-2"} {
		if err := s.RemoveScratch(ctx, id); err != nil {
			t.Fatal(err)
		}
		if err := s.RemoveScratch(ctx, id); !errors.Is(err, imagedriver.ErrNotFound) {
			t.Errorf("second RemoveScratch = %v; want ErrNotFound", err)
		}
	}
	if list, _ := s.ListScratch(ctx); len(list) != 0 {
		t.Errorf("ListScratch = %+v; want none", list)
	}
	if _, err := os.Stat(sc.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("scratch folder after RemoveScratch: %v; want it gone", err)
	}
	if err := s.Remove(ctx, layers[1].ID); err != nil {
		t.Errorf("Remove after the scratch went: %v", err)
	}
}

func testUnmountedScratch(t *testing.T, s imagedriver.LayerStore) {
	layers := chainOf(t, s, 2)
	chain := []imagedriver.Layer{layers[1], layers[0]}
	mounted, err := s.CreateScratch(ctx, "web-mounted", chain, imagedriver.ScratchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if mounted.VolumePath == "" {
		t.Errorf("CreateScratch = %+v; want a volume path", mounted)
	}
	sc, err := s.CreateScratch(ctx, "web-hv", chain, imagedriver.ScratchOptions{Unmounted: true})
	if err != nil {
		t.Fatal(err)
	}
	if !sc.Complete || sc.VolumePath != "" || !slices.Equal(sc.Parents, []string{layers[1].ID, layers[0].ID}) {
		t.Fatalf("unmounted CreateScratch = %+v; want a complete scratch over the chain without a volume", sc)
	}
	list, err := s.ListScratch(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("ListScratch = %+v, %v; want two", list, err)
	}
	for _, l := range list {
		if want := l.ContainerID == "web-mounted"; (l.VolumePath != "") != want || !l.Complete {
			t.Errorf("ListScratch lists %+v; want it complete, with a volume only if mounted", l)
		}
	}
	for _, id := range []string{"web-hv", "web-mounted"} {
		if err := s.RemoveScratch(ctx, id); err != nil {
			t.Fatalf("RemoveScratch(%s): %v", id, err)
		}
	}
	if _, err := os.Stat(sc.Path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unmounted scratch folder after RemoveScratch: %v; want it gone", err)
	}
}

func testScratchErrors(t *testing.T, s imagedriver.LayerStore) {
	layers := chainOf(t, s, 2)
	base, top := layers[0], layers[1]
	ghost := imagedriver.Layer{ID: fixture(t, map[string]string{"ghost": "1"}).diffID}
	for _, c := range []struct {
		name string
		id   string
		on   []imagedriver.Layer
		want error
	}{
		{"invalid container id", "Web/1", []imagedriver.Layer{top, base}, imagedriver.ErrInvalid},
		{"dot-dot container id", "..", []imagedriver.Layer{top, base}, imagedriver.ErrInvalid},
		{"no parents", "c1", nil, imagedriver.ErrInvalid},
		{"parent not in the store", "c1", []imagedriver.Layer{ghost}, imagedriver.ErrNotFound},
		{"chain out of order", "c1", []imagedriver.Layer{base, top}, imagedriver.ErrInvalid},
		{"chain cut short", "c1", []imagedriver.Layer{top}, imagedriver.ErrInvalid},
	} {
		if _, err := s.CreateScratch(ctx, c.id, c.on, imagedriver.ScratchOptions{}); !errors.Is(err, c.want) {
			t.Errorf("%s: CreateScratch = %v; want %v", c.name, err, c.want)
		}
	}
	if list, err := s.ListScratch(ctx); err != nil || len(list) != 0 {
		t.Errorf("ListScratch after refusals = %+v, %v; want none", list, err)
	}
	if err := s.RemoveScratch(ctx, "never"); !errors.Is(err, imagedriver.ErrNotFound) {
		t.Errorf("RemoveScratch of nothing = %v; want ErrNotFound", err)
	}
	if err := s.RemoveScratch(ctx, "../x"); !errors.Is(err, imagedriver.ErrInvalid) {
		t.Errorf("RemoveScratch(../x) = %v; want ErrInvalid", err)
	}
}

// testObserve: Observe reports the complete layers and every container's
// scratch layer, and nothing incomplete in a store that had no crash.
func testObserve(t *testing.T, s imagedriver.LayerStore) {
	h, err := imagedriver.Observe(ctx, s)
	if err != nil || len(h.Layers)+len(h.Incomplete)+len(h.Scratches) != 0 {
		t.Fatalf("Observe on an empty store = %+v, %v", h, err)
	}
	chain := chainOf(t, s, 2)
	parents := []imagedriver.Layer{chain[1], chain[0]}
	for _, id := range []string{"web-1", "web-2"} {
		if _, err := s.CreateScratch(ctx, id, parents, imagedriver.ScratchOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	h, err = imagedriver.Observe(ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, sc := range h.Scratches {
		if !sc.Complete || !slices.Equal(sc.Parents, []string{chain[1].ID, chain[0].ID}) {
			t.Errorf("scratch %+v; want complete over the chain", sc)
		}
		ids = append(ids, sc.ContainerID)
	}
	slices.Sort(ids)
	if !slices.Equal(ids, []string{"web-1", "web-2"}) || len(h.Layers) != 2 || len(h.Incomplete) != 0 {
		t.Fatalf("Observe = scratches %v, %d layers, %d incomplete; want web-1 and web-2, 2 and 0", ids, len(h.Layers), len(h.Incomplete))
	}
}
