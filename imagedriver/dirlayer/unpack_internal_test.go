package dirlayer

import (
	"bytes"
	"crypto/sha256"
	"math/rand/v2"
	"testing"
)

// TestHasher checks that the hasher's sum is sha256's over writes of every
// size, across chunk boundaries, and that Close without Sum ends it.
func TestHasher(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	data := make([]byte, 3*hashChunk*hashChunks+12345)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	for _, step := range []int{1, 511, 512, hashChunk - 1, hashChunk, hashChunk + 1, len(data)} {
		h := newHasher(sha256.New())
		for p := data; len(p) > 0; {
			n := min(step, len(p))
			if k, err := h.Write(p[:n]); k != n || err != nil {
				t.Fatalf("step %d: Write = %d, %v", step, k, err)
			}
			p = p[n:]
		}
		want := sha256.Sum256(data)
		if got := h.Sum(); !bytes.Equal(got, want[:]) {
			t.Errorf("step %d: sum %x, want %x", step, got, want)
		}
		h.Close() // after Sum: a no-op
	}
	empty := newHasher(sha256.New())
	want := sha256.Sum256(nil)
	if got := empty.Sum(); !bytes.Equal(got, want[:]) {
		t.Errorf("empty: sum %x, want %x", got, want)
	}
	abandoned := newHasher(sha256.New())
	abandoned.Write(data)
	abandoned.Close()
	abandoned.Close()
}
