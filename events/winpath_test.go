package events_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/berthhq/berth/events"
)

func TestCleanWindowsPath(t *testing.T) {
	ok := []struct{ in, want string }{
		{`C:\data\x`, `C:\data\x`},
		{`c:/data/x`, `C:\data\x`},
		{`D:\data\\logs\`, `D:\data\logs`},
		{`D:\`, `D:\`},
		{`D:`, `D:\`},
		{`\\fs1\share\apps`, `\\fs1\share\apps`},
		{`//fs1/share`, `\\fs1\share`},
		{`C:\Program Files\app.v2\bin`, `C:\Program Files\app.v2\bin`},
		{`C:\data\...x`, `C:\data\...x`},
		{`C:\data\console`, `C:\data\console`},
	}
	for _, tt := range ok {
		got, err := events.CleanWindowsPath(tt.in)
		if err != nil || got != tt.want {
			t.Errorf("CleanWindowsPath(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
		}
	}
	bad := []struct{ in, why string }{
		{``, "empty"},
		{`data\x`, "not absolute"},
		{`/data/x`, "not absolute"},
		{`\data\x`, "not absolute"},
		{`C:data`, "relative to the drive"},
		{`1:\data`, "not absolute"},
		{`\\?\C:\data`, "verbatim"},
		{`\\.\PhysicalDrive0`, "device"},
		{`\??\C:\data`, "device"},
		{`\\server`, "share path"},
		{`\\server\`, "share path"},
		{`\\..\share\x`, `".."`},
		{`C:\data\..\Windows`, `".."`},
		{`C:/data/../Windows`, `".."`},
		{`C:\data\.\x`, `"."`},
		{`C:\data\.. \Windows`, "dot or space"},
		{`C:\data\...\Windows`, "dot or space"},
		{`C:\data.\x`, "dot or space"},
		{`C:\data \x`, "dot or space"},
		{`C:\data\file.txt:secret`, "alternate data stream"},
		{`C:\data\a*b`, "forbids"},
		{`C:\data\a|b`, "forbids"},
		{"C:\\data\\a\x01b", "forbids"},
		{"C:\\data\x00", "forbids"},
		{`C:\data\NUL`, "reserved device"},
		{`C:\data\con.txt`, "reserved device"},
		{`C:\data\COM1`, "reserved device"},
		{`C:\data\lpt9.log`, "reserved device"},
		{`C:\` + strings.Repeat("a", 4097), "more than 4096"},
	}
	for _, tt := range bad {
		_, err := events.CleanWindowsPath(tt.in)
		if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("CleanWindowsPath(%q) = %v; want ErrInvalid saying %q", tt.in, err, tt.why)
		}
	}
}

func TestCheckMounts(t *testing.T) {
	roots := []string{`D:\data`, `\\fs1\share`, `E:\`}
	spec := func(sources ...string) *events.ContainerSpec {
		s := &events.ContainerSpec{}
		for _, src := range sources {
			s.Mounts = append(s.Mounts, events.Mount{Source: src, Target: `C:\m`})
		}
		return s
	}
	for _, src := range []string{`D:\data`, `d:\DATA\app`, `D:/data/app/logs`, `\\FS1\Share\x`, `E:\anything`, `e:`} {
		if err := events.CheckMounts(spec(src), roots); err != nil {
			t.Errorf("CheckMounts(%q): %v, want allowed", src, err)
		}
	}
	for _, tt := range []struct {
		srcs  []string
		roots []string
		want  string
	}{
		{[]string{`D:\data\x`, `D:\database`}, roots, `spec.mounts[1].source: "D:\\database" is outside the allowed roots`},
		{[]string{`D:\data\x`, `D:\data\..\secret`}, roots, `spec.mounts[1].source: "D:\\data\\..\\secret": ".." components`},
		{[]string{`C:\Windows`}, roots, `spec.mounts[0].source: "C:\\Windows" is outside`},
		{[]string{`\\fs1\other`}, roots, `outside`},
		{[]string{`/data`}, roots, `spec.mounts[0].source: "/data" is not absolute`},
		{[]string{`D:\data`}, nil, `spec.mounts[0].source: "D:\\data": this node allows no bind mounts`},
	} {
		err := events.CheckMounts(spec(tt.srcs...), tt.roots)
		if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckMounts(%q, %q) = %v; want ErrInvalid with %q", tt.srcs, tt.roots, err, tt.want)
		}
	}
	if err := events.CheckMounts(nil, nil); err != nil {
		t.Errorf("CheckMounts(nil) = %v", err)
	}
}

// BenchmarkCheckMounts is the intake's cost for a spec with four mounts
// checked against two roots.
func BenchmarkCheckMounts(b *testing.B) {
	spec := &events.ContainerSpec{Mounts: []events.Mount{
		{Source: `D:\data\web\static`, Target: `C:\static`}, {Source: `d:/data/web/logs`, Target: `C:\logs`},
		{Source: `\\fs1\share\config`, Target: `C:\config`}, {Source: `D:\data\certs`, Target: `C:\certs`},
	}}
	roots := []string{`D:\data`, `\\fs1\share`}
	for b.Loop() {
		if err := events.CheckMounts(spec, roots); err != nil {
			b.Fatal(err)
		}
	}
}

// FuzzCleanWindowsPath checks what the mount check relies on: a path it
// accepts comes out clean (cleaning it again changes nothing), absolute,
// with no component Windows would read as "." or "..", and inside a root
// exactly when its clean form, compared without regard to case, starts
// with the root. Seeds are in testdata/fuzz/FuzzCleanWindowsPath.
func FuzzCleanWindowsPath(f *testing.F) {
	f.Fuzz(func(t *testing.T, p, root string) {
		c, err := events.CleanWindowsPath(p)
		if err != nil {
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("CleanWindowsPath(%q): %v, want ErrInvalid", p, err)
			}
			return
		}
		if again, err := events.CleanWindowsPath(c); err != nil || again != c {
			t.Fatalf("CleanWindowsPath(%q) = %q, which cleans to %q, %v", p, c, again, err)
		}
		if !(len(c) >= 3 && c[1] == ':' && c[2] == '\\') && !strings.HasPrefix(c, `\\`) {
			t.Fatalf("CleanWindowsPath(%q) = %q, not absolute", p, c)
		}
		for _, n := range strings.Split(strings.TrimPrefix(c, `\\`), `\`) {
			if strings.Trim(n, ". ") == "" && n != "" || strings.HasSuffix(n, ".") || strings.HasSuffix(n, " ") {
				t.Fatalf("CleanWindowsPath(%q) = %q keeps component %q", p, c, n)
			}
		}
		r, err := events.CleanWindowsPath(root)
		if err != nil {
			return
		}
		lc, lr := strings.ToLower(c), strings.ToLower(strings.TrimSuffix(r, `\`))
		want := lc == lr || strings.HasPrefix(lc, lr+`\`) || lc == lr+`\`
		// The components checked above hold no "..", so a path within a root
		// cannot leave it again ("..a" is a name, not a parent).
		if got := events.WithinRoots(c, []string{r}); got != want {
			t.Fatalf("WithinRoots(%q, %q) = %v, want %v", c, r, got, want)
		}
	})
}
