package wclayer

import (
	"archive/tar"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/berthhq/berth/imagedriver"
)

type ent struct {
	name, link string
	typ        byte // tar.TypeReg when zero
	pax        map[string]string
}

// checkAll runs the rules over entries, as the guard does, and returns the
// first refusal.
func checkAll(base bool, entries ...ent) error {
	r := newRules(base)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		if err := r.entry(&tar.Header{Name: e.name, Linkname: e.link, Typeflag: typ, PAXRecords: e.pax}); err != nil {
			return err
		}
	}
	return r.finish()
}

func TestRules(t *testing.T) {
	dir := ent{name: "Files", typ: tar.TypeDir}
	sym := func(name, target string) ent { return ent{name: name, link: target, typ: tar.TypeSymlink} }
	hard := func(name, target string) ent { return ent{name: name, link: target, typ: tar.TypeLink} }
	for _, c := range []struct {
		name    string
		base    bool
		entries []ent
		want    error  // nil, ErrUnsafeEntry or ErrInvalidImage
		culprit string // the entry the error names
	}{
		{"windows layer", true, []ent{dir, {name: "Files/Windows", typ: tar.TypeDir}, {name: "Files/Windows/win.ini"},
			{name: "Hives", typ: tar.TypeDir}, {name: "Hives/Sam_Delta"}, {name: "UtilityVM/Files", typ: tar.TypeDir}}, nil, ""},
		{"backslashes", true, []ent{{name: `Files\Windows\win.ini`}}, nil, ""},
		{"dot entries", true, []ent{{name: "./", typ: tar.TypeDir}, {name: "./Files/./a"}}, nil, ""},
		{"links inside", true, []ent{dir, {name: "Files/a/b", typ: tar.TypeDir}, {name: "Files/a/b/f"},
			sym("Files/a/up", ".."), sym("Files/a/b/rel", `..\..\a\b\f`), hard("Files/h", "Files/a/b/f")}, nil, ""},
		{"hard link into a parent layer", false, []ent{hard("Files/h", "Files/Windows/System32/cmd.exe")}, nil, ""},
		{"alternate data stream", true, []ent{{name: "Files/a.txt"}, {name: "Files/a.txt:Zone.Identifier"},
			{name: "Files/a.txt:more"}, {name: "Files/d", typ: tar.TypeDir}, {name: "Files/d:s"}}, nil, ""},
		{"whiteout", false, []ent{{name: "Files/.wh.old.txt"}, {name: `Files\dir\.wh.x`}}, nil, ""},

		{"dot-dot", true, []ent{{name: "Files/../../evil"}}, imagedriver.ErrUnsafeEntry, "Files/../../evil"},
		{"backslash dot-dot", true, []ent{{name: `Files\..\..\evil`}}, imagedriver.ErrUnsafeEntry, `Files\..\..\evil`},
		{"absolute", true, []ent{{name: "/Windows/evil"}}, imagedriver.ErrUnsafeEntry, "/Windows/evil"},
		{"UNC", true, []ent{{name: `\\server\share\evil`}}, imagedriver.ErrUnsafeEntry, `\\server\share\evil`},
		{"drive letter", true, []ent{{name: `C:\Windows\evil`}}, imagedriver.ErrUnsafeEntry, `C:\Windows\evil`},
		{"drive relative", true, []ent{{name: "c:evil"}}, imagedriver.ErrUnsafeEntry, "c:evil"},
		{"NUL", true, []ent{{name: "Files/a\x00b"}}, imagedriver.ErrUnsafeEntry, "Files/a\x00b"},
		{"symlink out", true, []ent{sym("Files/out", `..\..\outside`)}, imagedriver.ErrUnsafeEntry, "Files/out"},
		{"device path symlink", true, []ent{sym("Files/Documents and Settings", `\??\C:\Users`)}, imagedriver.ErrUnsafeEntry, "Files/Documents and Settings"},
		{"drive symlink", true, []ent{sym("Files/all", `C:\ProgramData`)}, imagedriver.ErrUnsafeEntry, "Files/all"},
		{"write through symlink", true, []ent{sym("Files/lnk", "."), {name: "Files/lnk/x"}}, imagedriver.ErrUnsafeEntry, "Files/lnk/x"},
		{"write through symlink, other case", true, []ent{sym("Files/Lnk", "."), {name: `FILES\lnk\x`}}, imagedriver.ErrUnsafeEntry, `FILES\lnk\x`},
		{"whiteout through symlink", false, []ent{sym("Files/lnk", "."), {name: "Files/lnk/.wh.x"}}, imagedriver.ErrUnsafeEntry, "Files/lnk/.wh.x"},
		{"symlink resolved later", true, []ent{dir, {name: "Files/y", typ: tar.TypeDir}, sym("Files/x", "y/.."),
			sym("Files/y", "..")}, imagedriver.ErrUnsafeEntry, "Files/x"},
		{"link loop", true, []ent{sym("Files/a", "b"), sym("Files/b", "a")}, imagedriver.ErrUnsafeEntry, "Files/b"},
		{"hard link out", true, []ent{hard("Files/h", "../../etc/passwd")}, imagedriver.ErrUnsafeEntry, "Files/h"},
		{"hard link absolute", true, []ent{hard("Files/h", `C:\Windows\win.ini`)}, imagedriver.ErrUnsafeEntry, "Files/h"},
		{"hard link through symlink", true, []ent{sym("Files/s", "."), {name: "Files/f"}, hard("Files/h", "Files/s/f")}, imagedriver.ErrUnsafeEntry, "Files/h"},
		{"hard link to symlink", true, []ent{sym("Files/s", "f"), {name: "Files/f"}, hard("Files/h", "files/S")}, imagedriver.ErrUnsafeEntry, "Files/h"},

		{"device", true, []ent{{name: "Files/dev", typ: tar.TypeChar}}, imagedriver.ErrInvalidImage, "Files/dev"},
		{"fifo", true, []ent{{name: "Files/fifo", typ: tar.TypeFifo}}, imagedriver.ErrInvalidImage, "Files/fifo"},
		{"sparse", true, []ent{{name: "Files/s", pax: map[string]string{"GNU.sparse.map": "0,1"}}}, imagedriver.ErrInvalidImage, "Files/s"},
		{"stream without its file", true, []ent{{name: "Files/a.txt"}, {name: "Files/b.txt:s"}}, imagedriver.ErrInvalidImage, "Files/b.txt:s"},
		{"stream after a whiteout", false, []ent{{name: "Files/.wh.a"}, {name: "Files/.wh.a:s"}}, imagedriver.ErrInvalidImage, "Files/.wh.a:s"},
		{"stream after a hard link", true, []ent{{name: "Files/f"}, hard("Files/h", "Files/f"), {name: "Files/h:s"}}, imagedriver.ErrInvalidImage, "Files/h:s"},
		{"stream as a folder", true, []ent{{name: "Files/a:s", typ: tar.TypeDir}}, imagedriver.ErrInvalidImage, "Files/a:s"},
		{"colon in a folder", true, []ent{{name: "Files/a:s/b"}}, imagedriver.ErrInvalidImage, "Files/a:s/b"},
		{"hard link to a stream", true, []ent{{name: "Files/f"}, hard("Files/h", "Files/f:s")}, imagedriver.ErrInvalidImage, "Files/h"},
		{"hard link to itself", true, []ent{hard("Files/h", "files/H")}, imagedriver.ErrInvalidImage, "Files/h"},
		{"symlink to nothing", true, []ent{sym("Files/s", "")}, imagedriver.ErrInvalidImage, "Files/s"},
		{"whiteout in a base layer", true, []ent{{name: "Files/.wh.x"}}, imagedriver.ErrInvalidImage, "Files/.wh.x"},
		{"whiteout of nothing", false, []ent{{name: "Files/.wh."}}, imagedriver.ErrInvalidImage, "Files/.wh."},
		{"whiteout of the parent", false, []ent{{name: "Files/.wh..."}}, imagedriver.ErrInvalidImage, "Files/.wh..."},
		{"opaque whiteout", false, []ent{{name: "Files/dir/.wh..wh..opq"}}, imagedriver.ErrInvalidImage, "Files/dir/.wh..wh..opq"},
		{"name too long", true, []ent{{name: "Files/" + strings.Repeat("a", maxNameLen)}}, imagedriver.ErrInvalidImage, "Files/aaa"},
		{"too deep", true, []ent{{name: strings.Repeat("d/", maxDepth) + "f"}}, imagedriver.ErrInvalidImage, "d/d/d"},
	} {
		err := checkAll(c.base, c.entries...)
		switch {
		case c.want == nil && err != nil:
			t.Errorf("%s: %v; want it accepted", c.name, err)
		case c.want != nil && !errors.Is(err, c.want):
			t.Errorf("%s: %v; want %v", c.name, err, c.want)
		case c.want != nil && !strings.Contains(err.Error(), strconv.Quote(c.culprit)) && !strings.Contains(err.Error(), c.culprit):
			t.Errorf("%s: %v; want it to name %q", c.name, err, c.culprit)
		}
	}
}
