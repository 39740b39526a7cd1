package wclayer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"go.uber.org/goleak"

	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/imagedrivertest"
)

func TestMain(m *testing.M) {
	// go-winio serves overlapped I/O from a goroutine of its own, started on
	// first use and never ended.
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/Microsoft/go-winio.ioCompletionProcessor"))
}

var ctx = context.Background()

// TestConformance holds the store, on the model of the layer APIs, to the
// imagedriver contract.
func TestConformance(t *testing.T) {
	imagedrivertest.RunLayerStore(t, func(t *testing.T) imagedriver.LayerStore {
		s, _ := newTestStore(t)
		return s
	})
}

func importFiles(t *testing.T, s *Store, files map[string]string, parents ...string) imagedriver.Layer {
	t.Helper()
	b, d := imagedrivertest.WindowsLayer(t, files)
	l, err := s.Import(ctx, d, parents, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// chain imports a base layer and a layer over it, and returns them topmost
// first, as a scratch layer takes them.
func chain(t *testing.T, s *Store) []imagedriver.Layer {
	t.Helper()
	base := importFiles(t, s, map[string]string{"Windows/System32/cmd.exe": "MZ"})
	top := importFiles(t, s, map[string]string{"app/app.exe": "MZ app"}, base.ID)
	return []imagedriver.Layer{top, base}
}

func hexOfTest(id string) string { return strings.TrimPrefix(id, "sha256:") }

// count returns how many of calls are call.
func count(calls []string, call string) int {
	n := 0
	for _, c := range calls {
		if c == call {
			n++
		}
	}
	return n
}

func wantCalls(t *testing.T, m *model, want ...string) {
	t.Helper()
	if got := m.log(); !slices.Equal(got, want) {
		t.Errorf("layer API calls:\n got %q\nwant %q", got, want)
	}
}

func TestLayerOnDisk(t *testing.T) {
	s, m := newTestStore(t)
	base := importFiles(t, s, map[string]string{"a.txt": "a"})
	b, d := imagedrivertest.WindowsLayer(t, map[string]string{"b.txt": "b"})
	m.log()
	top, err := s.Import(ctx, d, []string{base.ID}, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	hex := hexOfTest(top.ID)
	// The import goes straight into the final folder, over the parents'
	// folders, and the GUID derives from that folder's name.
	wantCalls(t, m, "import layers/"+hex, "guid "+hex)
	if top.Path != filepath.Join(s.root, "layers", hex) || top.GUID != guidOf(hex) {
		t.Errorf("layer = %+v; want folder layers/%s and GUID %s", top, hex, guidOf(hex))
	}
	var meta layerMeta
	raw, err := os.ReadFile(top.Path + ".json")
	if err != nil || json.Unmarshal(raw, &meta) != nil {
		t.Fatalf("marker: %v, %s", err, raw)
	}
	want := layerMeta{DiffID: d, Parents: []string{base.ID}, Size: top.Size, GUID: guidOf(hex)}
	if !slices.Equal(meta.Parents, want.Parents) || meta.DiffID != want.DiffID || meta.Size != want.Size || meta.GUID != want.GUID {
		t.Errorf("marker = %+v; want %+v", meta, want)
	}
	if got, err := os.ReadFile(filepath.Join(top.Path, "Files", "b.txt")); err != nil || string(got) != "b" {
		t.Errorf("imported file: %q, %v", got, err)
	}
}

// TestScratchSequence checks the order of the layer API calls of a scratch
// layer's life: create, activate, prepare over the parents' folders
// (immediate parent first), mount path; then unprepare, deactivate, rename,
// destroy.
func TestScratchSequence(t *testing.T) {
	s, m := newTestStore(t)
	parents := chain(t, s)
	m.log()
	sc, err := s.CreateScratch(ctx, "web-1", parents, imagedriver.ScratchOptions{})
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, m, "create scratch/web-1", "activate scratch/web-1", "prepare scratch/web-1", "mountpath scratch/web-1")
	dir := filepath.Join(s.root, "scratch", "web-1")
	wantVol := `\\?\Volume{` + guidOf(dir) + `}\`
	if sc.Path != dir || sc.VolumePath != wantVol || !sc.Complete ||
		!slices.Equal(sc.Parents, []string{parents[0].ID, parents[1].ID}) {
		t.Fatalf("CreateScratch = %+v; want a complete scratch in %s mounted at %s", sc, dir, wantVol)
	}
	if got, want := m.prepared[dir], []string{parents[0].Path, parents[1].Path}; !slices.Equal(got, want) {
		t.Errorf("prepared over %q; want %q (immediate parent first)", got, want)
	}
	list, err := s.ListScratch(ctx)
	if err != nil || len(list) != 1 || list[0].VolumePath != wantVol || !list[0].Complete {
		t.Errorf("ListScratch = %+v, %v; want web-1, complete and mounted", list, err)
	}
	m.log()
	if err := s.RemoveScratch(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, m, "unprepare scratch/web-1", "deactivate scratch/web-1", "rename scratch/web-1",
		"destroy scratch/web-1~removing")
	if m.mounted(dir) || exists(dir) || exists(dir+removingSuffix) {
		t.Error("scratch left behind after RemoveScratch")
	}
}

func TestMountRetries(t *testing.T) {
	s, m := newTestStore(t)
	parents := chain(t, s)

	// Failures that may pass are tried again, activation and preparation
	// as a pair.
	m.fail("activate", codeNotReady, codeNotReady)
	m.fail("prepare", 0x8007048F) // ERROR_DEVICE_NOT_CONNECTED as an HRESULT
	m.log()
	if _, err := s.CreateScratch(ctx, "c1", parents, imagedriver.ScratchOptions{}); err != nil {
		t.Fatalf("CreateScratch after passing failures: %v", err)
	}
	wantCalls(t, m, "create scratch/c1",
		"activate scratch/c1", "activate scratch/c1",
		"activate scratch/c1", "prepare scratch/c1", "deactivate scratch/c1",
		"activate scratch/c1", "prepare scratch/c1", "mountpath scratch/c1")

	// They are tried five times in all; then the scratch is torn down.
	m.fail("activate", codeNotReady, codeNotReady, codeNotReady, codeNotReady, codeNotReady)
	_, err := s.CreateScratch(ctx, "c2", parents, imagedriver.ScratchOptions{})
	if codeOf(err) != codeNotReady {
		t.Errorf("CreateScratch after five failures = %v; want the last one", err)
	}
	if n := count(m.log(), "activate scratch/c2"); n != 5 {
		t.Errorf("%d activations; want 5", n)
	}

	// Other failures are not tried again.
	m.fail("prepare", codeAccessDenied)
	if _, err := s.CreateScratch(ctx, "c3", parents, imagedriver.ScratchOptions{}); codeOf(err) != codeAccessDenied {
		t.Errorf("CreateScratch = %v; want access denied", err)
	}
	wantCalls(t, m, "create scratch/c3", "activate scratch/c3", "prepare scratch/c3", "deactivate scratch/c3",
		"unprepare scratch/c3", "deactivate scratch/c3", "rename scratch/c3", "destroy scratch/c3~removing")

	list, err := s.ListScratch(ctx)
	if err != nil || len(list) != 1 || list[0].ContainerID != "c1" {
		t.Errorf("ListScratch = %+v, %v; want only c1", list, err)
	}
	for _, c := range []string{"c2", "c3"} {
		if exists(filepath.Join(s.root, "scratch", c)) {
			t.Errorf("failed scratch %s left behind", c)
		}
	}
}

// TestTeardownOfAHeldScratch: a scratch whose disk stays attached (its
// deactivation fails, as after a crash) cannot be renamed; the store
// deactivates and detaches the disk, and tries again.
func TestTeardownOfAHeldScratch(t *testing.T) {
	s, m := newTestStore(t)
	parents := chain(t, s)
	if _, err := s.CreateScratch(ctx, "web-1", parents, imagedriver.ScratchOptions{}); err != nil {
		t.Fatal(err)
	}
	m.fail("deactivate", 0x1F, 0x1F) // ERROR_GEN_FAILURE
	m.log()
	if err := s.RemoveScratch(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, m, "unprepare scratch/web-1", "deactivate scratch/web-1",
		"rename scratch/web-1", "deactivate scratch/web-1", "detach scratch/web-1",
		"rename scratch/web-1", "destroy scratch/web-1~removing")

	// A destruction held by a file is tried again.
	if _, err := s.CreateScratch(ctx, "web-2", parents, imagedriver.ScratchOptions{}); err != nil {
		t.Fatal(err)
	}
	m.fail("destroy", codeSharingViolation, codeSharingViolation)
	if err := s.RemoveScratch(ctx, "web-2"); err != nil {
		t.Fatal(err)
	}
	if n := count(m.log(), "destroy scratch/web-2~removing"); n != 3 {
		t.Errorf("%d destructions; want 3", n)
	}
}

// TestFailedTeardownLeavesALeftover: when the destruction keeps failing, the
// scratch is left renamed, listed as incomplete, and removed by the next
// RemoveScratch or replaced by the next CreateScratch.
func TestFailedTeardownLeavesALeftover(t *testing.T) {
	s, m := newTestStore(t)
	parents := chain(t, s)
	for _, cid := range []string{"web-1", "web-2"} {
		if _, err := s.CreateScratch(ctx, cid, parents, imagedriver.ScratchOptions{}); err != nil {
			t.Fatal(err)
		}
		m.fail("destroy", codeAccessDenied, codeAccessDenied, codeAccessDenied, codeAccessDenied, codeAccessDenied)
		if err := s.RemoveScratch(ctx, cid); codeOf(err) != codeAccessDenied {
			t.Fatalf("RemoveScratch with a held file = %v; want access denied", err)
		}
	}
	list, err := s.ListScratch(ctx)
	if err != nil || len(list) != 2 || list[0].Complete || list[0].Path != filepath.Join(s.root, "scratch", "web-1~removing") {
		t.Fatalf("ListScratch = %+v, %v; want two incomplete leftovers", list, err)
	}
	if err := s.RemoveScratch(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveScratch(ctx, "web-1"); !errors.Is(err, imagedriver.ErrNotFound) {
		t.Errorf("RemoveScratch of a removed leftover = %v; want ErrNotFound", err)
	}
	m.log()
	sc, err := s.CreateScratch(ctx, "web-2", parents, imagedriver.ScratchOptions{})
	if err != nil || !sc.Complete {
		t.Fatalf("CreateScratch over a leftover = %+v, %v", sc, err)
	}
	if got := m.log(); got[0] != "destroy scratch/web-2~removing" {
		t.Errorf("calls %q; want the leftover destroyed first", got)
	}
	if list, _ := s.ListScratch(ctx); len(list) != 1 || !list[0].Complete {
		t.Errorf("ListScratch = %+v; want web-2 alone, complete", list)
	}
}

// TestLeftoversOfACrash: what a crash leaves (a layer folder without its
// marker, a folder being destroyed, a mounted scratch without its chain) is
// listed as incomplete and cleared by Remove, RemoveScratch or the next
// import.
func TestLeftoversOfACrash(t *testing.T) {
	s, m := newTestStore(t)
	b, d := imagedrivertest.WindowsLayer(t, map[string]string{"a.txt": "a"})
	hex := hexOfTest(d)
	half := filepath.Join(s.root, "layers", hex)
	if err := os.MkdirAll(filepath.Join(half, "Files"), 0o755); err != nil {
		t.Fatal(err)
	}
	gone := filepath.Join(s.root, "layers", strings.Repeat("f", 64)+removingSuffix)
	if err := os.Mkdir(gone, 0o755); err != nil {
		t.Fatal(err)
	}
	list, err := s.List(ctx)
	if err != nil || len(list) != 2 || list[0].Complete || list[1].Complete ||
		list[0].Path != half || list[0].ID != d || list[1].Path != gone {
		t.Fatalf("List = %+v, %v; want the two leftovers, incomplete", list, err)
	}
	m.log()
	if err := s.Remove(ctx, list[1].ID); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, m, "destroy layers/"+filepath.Base(gone))
	l, err := s.Import(ctx, d, nil, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	wantCalls(t, m, "rename layers/"+hex, "destroy layers/"+hex+removingSuffix, "import layers/"+hex, "guid "+hex)
	if list, _ := s.List(ctx); len(list) != 1 || !list[0].Complete || list[0].ID != l.ID {
		t.Errorf("List = %+v; want the imported layer alone", list)
	}

	// A scratch mounted by a creation that did not finish.
	dir := filepath.Join(s.root, "scratch", "web-1")
	for _, step := range []error{
		m.createScratch(dir, []string{l.Path}), m.activate(dir), m.prepare(dir, []string{l.Path}),
	} {
		if step != nil {
			t.Fatal(step)
		}
	}
	sl, err := s.ListScratch(ctx)
	if err != nil || len(sl) != 1 || sl[0].Complete || sl[0].Parents != nil || sl[0].VolumePath != "" {
		t.Fatalf("ListScratch = %+v, %v; want web-1 incomplete", sl, err)
	}
	if err := s.Remove(ctx, l.ID); err != nil {
		t.Errorf("Remove of a layer under an incomplete scratch = %v; the store cannot tell its parents", err)
	}
	m.log()
	if err := s.RemoveScratch(ctx, "web-1"); err != nil {
		t.Fatal(err)
	}
	wantCalls(t, m, "unprepare scratch/web-1", "deactivate scratch/web-1", "rename scratch/web-1",
		"destroy scratch/web-1~removing")
}

func TestImportFailures(t *testing.T) {
	s, m := newTestStore(t)
	b, d := imagedrivertest.WindowsLayer(t, map[string]string{"a.txt": "a"})
	hex := hexOfTest(d)
	for _, c := range []struct {
		name  string
		op    string
		code  uint32
		check func(error) bool
	}{
		{"host failure", "import", 0x70, func(err error) bool { // ERROR_DISK_FULL
			return codeOf(err) == 0x70 && !errors.Is(err, imagedriver.ErrInvalidImage)
		}},
		{"content refused by the writer", "import", 0, func(err error) bool {
			return errors.Is(err, imagedriver.ErrInvalidImage)
		}},
		{"missing folder", "import", codePathNotFound, func(err error) bool {
			return errors.Is(err, imagedriver.ErrInvalidImage)
		}},
		{"no GUID", "guid", 0x57, func(err error) bool { return codeOf(err) == 0x57 }},
	} {
		m.fail(c.op, c.code)
		m.log()
		_, err := s.Import(ctx, d, nil, bytes.NewReader(b))
		if !c.check(err) {
			t.Errorf("%s: Import = %v", c.name, err)
		}
		if ok, _ := s.Has(ctx, d); ok || exists(filepath.Join(s.root, "layers", hex)) {
			t.Errorf("%s: layer left behind", c.name)
		}
	}
	// A writer that fails on damaged content reads on, and the digest tells.
	damaged := bytes.Clone(b)
	damaged[len(damaged)-1100] ^= 1 // in the last file's body
	m.fail("import", 0)
	if _, err := s.Import(ctx, d, nil, bytes.NewReader(damaged)); !errors.Is(err, imagedriver.ErrDigestMismatch) {
		t.Errorf("Import of damaged content the writer refused = %v; want ErrDigestMismatch", err)
	}
	if _, err := s.Import(ctx, d, nil, bytes.NewReader(b)); err != nil {
		t.Errorf("Import after the failures: %v", err)
	}
}

// TestOperationsInProgress: an operation in progress on a layer or a scratch
// layer holds back others on the same one, and keeps its parents in use.
func TestOperationsInProgress(t *testing.T) {
	s, _ := newTestStore(t)
	parents := chain(t, s)
	top := parents[0]
	hex := hexOfTest(top.ID)

	s.mu.Lock()
	o := begin(s.layerOps, hex, &op{})
	s.mu.Unlock()
	if list, _ := s.List(ctx); len(list) != 1 {
		t.Errorf("List during a removal = %+v; want the other layer only", list)
	}
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Remove(cctx, top.ID); !errors.Is(err, context.Canceled) {
		t.Errorf("Remove during a removal, its context cancelled = %v; want it to wait", err)
	}
	s.end(s.layerOps, hex, o)

	s.mu.Lock()
	o = begin(s.layerOps, hex, &op{importing: true})
	s.mu.Unlock()
	if err := s.Remove(ctx, top.ID); !errors.Is(err, imagedriver.ErrInUse) {
		t.Errorf("Remove during an import = %v; want ErrInUse", err)
	}
	s.end(s.layerOps, hex, o)

	s.mu.Lock()
	o = begin(s.scratchOps, "web-1", &op{parents: []string{top.ID, parents[1].ID}})
	s.mu.Unlock()
	if err := s.Remove(ctx, top.ID); !errors.Is(err, imagedriver.ErrInUse) {
		t.Errorf("Remove under a scratch being created = %v; want ErrInUse", err)
	}
	if _, err := s.CreateScratch(cctx, "web-1", parents, imagedriver.ScratchOptions{}); !errors.Is(err, context.Canceled) {
		t.Errorf("CreateScratch during another, its context cancelled = %v; want it to wait", err)
	}
	s.end(s.scratchOps, "web-1", o)
	if err := s.Remove(ctx, top.ID); err != nil {
		t.Errorf("Remove once nothing builds on the layer: %v", err)
	}
}
