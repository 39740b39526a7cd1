package dirlayer_test

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/berthhq/berth/imagedriver/dirlayer"
	"github.com/berthhq/berth/imagedriver/imagedrivertest"
)

// BenchmarkImport unpacks a layer shaped like a Windows base layer's
// folders, many small files in a deep tree, into a fresh store, and reports
// files/s next to the usual bytes/s.
func BenchmarkImport(b *testing.B) {
	files := map[string]string{}
	for d := range 64 {
		for f := range 64 {
			files[fmt.Sprintf("Windows/WinSxS/amd64_part%02d/sub/f%02d.dll", d, f)] = strings.Repeat("s", 4<<10)
		}
	}
	layer, diffID := imagedrivertest.WindowsLayer(b, files)
	root := b.TempDir()
	b.SetBytes(int64(len(layer)))
	i := 0
	for b.Loop() {
		i++
		s, err := dirlayer.New(filepath.Join(root, fmt.Sprint(i)))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.Import(ctx, diffID, nil, bytes.NewReader(layer)); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(files)*b.N)/b.Elapsed().Seconds(), "files/s")
}
