package wclayer

import (
	"archive/tar"
	"bytes"
	"io"
	"testing"
	"testing/iotest"

	"github.com/berthhq/berth/imagedriver/imagedrivertest"
)

// FuzzGuard reads arbitrary layers through the guard, as the layer writer
// does, and checks that the writer never sees an entry the rules refuse,
// and reaches the end of an archive only when the guard accepts the layer.
func FuzzGuard(f *testing.F) {
	add := func(entries ...imagedrivertest.Entry) {
		b, _ := imagedrivertest.Tar(f, entries...)
		f.Add(b, false, uint8(0))
	}
	windows, _ := imagedrivertest.WindowsLayer(f, map[string]string{"Windows/win.ini": "[fonts]"})
	f.Add(windows, true, uint8(1))
	add(imagedrivertest.Entry{Name: "Files", Type: tar.TypeDir},
		imagedrivertest.Entry{Name: "Files/lnk", Type: tar.TypeSymlink, Linkname: "."},
		imagedrivertest.Entry{Name: "Files/lnk/x", Body: "x"})
	add(imagedrivertest.Entry{Name: "Files/a", Body: "a"}, imagedrivertest.Entry{Name: "Files/a:s", Body: "s"},
		imagedrivertest.Entry{Name: "Files/.wh.b"}, imagedrivertest.Entry{Name: "Files/h", Type: tar.TypeLink, Linkname: "Files/a"})
	add(imagedrivertest.Entry{Name: `Files\..\..\evil`, Body: "x"})
	f.Add([]byte("not a tar"), true, uint8(2))

	f.Fuzz(func(t *testing.T, layer []byte, base bool, split uint8) {
		src := io.Reader(bytes.NewReader(layer))
		switch split % 3 {
		case 1:
			src = iotest.OneByteReader(src)
		case 2:
			src = iotest.HalfReader(src)
		}
		g := newGuard(ctx, src, imagedrivertest.DiffID(layer), newRules(base))
		seen := newRules(base) // the writer's own run of the rules
		tr := tar.NewReader(g)
		var werr error
		atEnd := false
		for werr == nil {
			hdr, err := tr.Next()
			if err == io.EOF {
				atEnd = true
				break
			}
			if werr = err; err == nil {
				if err := seen.entry(hdr); err != nil {
					t.Fatalf("the writer saw an entry the rules refuse: %v", err)
				}
				_, werr = io.Copy(io.Discard, tr)
			}
		}
		verdict := g.end(werr)
		if atEnd && (verdict != nil || seen.finish() != nil) {
			t.Fatalf("the writer reached the end of a layer the guard refuses: %v, %v", verdict, seen.finish())
		}
		if !atEnd && verdict == nil {
			t.Fatalf("the guard accepts a layer the writer failed on: %v", werr)
		}
	})
}
