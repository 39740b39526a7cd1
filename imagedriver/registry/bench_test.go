package registry_test

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/dirlayer"
	"github.com/berthhq/berth/imagedriver/registry"
)

// BenchmarkPull pulls an image of 4 layers of incompressible files (32 MiB
// in all) from a loopback registry into a fresh dirlayer store, next to a
// plain read of the same blobs with go-containerregistry (no verification
// of diff ids, no unpacking), and reports MB/s of compressed blobs.
func BenchmarkPull(b *testing.B) {
	reg := newTestRegistry(b)
	rng := rand.New(rand.NewChaCha8([32]byte{1}))
	var layers []any
	for i := range 4 {
		files := map[string]string{}
		for j := range 8 {
			buf := make([]byte, 1<<20)
			for k := range buf {
				buf[k] = byte(rng.Uint32())
			}
			files[fmt.Sprintf("Program Files/app%d/blob%d.bin", i, j)] = string(buf)
		}
		layers = append(layers, gzipLayer(b, files))
	}
	img := winImage(b, "10.0.20348.2227", layers...)
	ref := reg.push(b, "bench:1", img)
	size := int64(0)
	for _, l := range layers {
		n, _ := l.(interface{ Size() (int64, error) }).Size()
		size += n
	}

	b.Run("berth", func(b *testing.B) {
		p := registry.New(registry.Options{Transport: newTransport(b, ""), TempDir: b.TempDir()})
		root := b.TempDir()
		b.SetBytes(size)
		for i := range b.N {
			dir := filepath.Join(root, fmt.Sprint(i))
			s, err := dirlayer.New(dir)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := p.Pull(b.Context(), ref, host2022, s, imagedriver.PullOptions{}); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			os.RemoveAll(dir)
			b.StartTimer()
		}
	})
	b.Run("ggcr-read-blobs", func(b *testing.B) {
		r, err := name.ParseReference(ref)
		if err != nil {
			b.Fatal(err)
		}
		tr := newTransport(b, "")
		b.SetBytes(size)
		for range b.N {
			im, err := remote.Image(r, remote.WithTransport(tr), remote.WithContext(b.Context()))
			if err != nil {
				b.Fatal(err)
			}
			ls, err := im.Layers()
			if err != nil {
				b.Fatal(err)
			}
			for _, l := range ls {
				rc, err := l.Compressed()
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, rc); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		}
	})
}
