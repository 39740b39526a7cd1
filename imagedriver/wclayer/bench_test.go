package wclayer

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/berthhq/berth/imagedriver/imagedrivertest"
)

// BenchmarkGuard measures what checking a layer in lock step costs the
// layer writer: it reads a layer of many small files and a few large ones
// (16 MiB in all) with a tar reader, hashing it as every import does, then
// through the guard, which also hashes it.
func BenchmarkGuard(b *testing.B) {
	files := map[string]string{}
	for i := range 512 {
		files[fmt.Sprintf("Windows/WinSxS/f%04d.dll", i)] = strings.Repeat("s", 16<<10)
	}
	for i := range 2 {
		files[fmt.Sprintf("Windows/System32/big%d.dll", i)] = strings.Repeat("b", 4<<20)
	}
	layer, diffID := imagedrivertest.WindowsLayer(b, files)
	read := func(r io.Reader) error {
		tr := tar.NewReader(r)
		buf := make([]byte, 32<<10) // as the layer writer copies
		for {
			if _, err := tr.Next(); err == io.EOF {
				return nil
			} else if err != nil {
				return err
			}
			if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{tr}, buf); err != nil {
				return err
			}
		}
	}
	b.Run("hashed", func(b *testing.B) {
		b.SetBytes(int64(len(layer)))
		for b.Loop() {
			if err := read(io.TeeReader(bytes.NewReader(layer), sha256.New())); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("guarded", func(b *testing.B) {
		b.SetBytes(int64(len(layer)))
		for b.Loop() {
			g := newGuard(ctx, bytes.NewReader(layer), diffID, newRules(true))
			if err := g.end(read(g)); err != nil {
				b.Fatal(err)
			}
		}
	})
}
