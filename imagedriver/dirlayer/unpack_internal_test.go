package dirlayer

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"math/rand/v2"
	"slices"
	"testing"
	"testing/iotest"
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

// TestCopyFull checks that copyFull copies everything in writes of the
// buffer's size but the last, and passes on the reader's failures (an
// archive cut short included) and the writer's.
func TestCopyFull(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 1000)
	var sizes []int
	w := writerFunc(func(p []byte) (int, error) { sizes = append(sizes, len(p)); return len(p), nil })
	n, err := copyFull(w, iotest.OneByteReader(bytes.NewReader(data)), make([]byte, 4096))
	if n != int64(len(data)) || err != nil {
		t.Fatalf("copyFull = %d, %v; want %d, nil", n, err, len(data))
	}
	if want := []int{4096, 4096, 1808}; !slices.Equal(sizes, want) {
		t.Errorf("writes of %v bytes, want %v", sizes, want)
	}
	if _, err := copyFull(io.Discard, io.MultiReader(bytes.NewReader(data), iotest.ErrReader(io.ErrUnexpectedEOF)), make([]byte, 4096)); err != io.ErrUnexpectedEOF {
		t.Errorf("reader cut short: err %v, want %v", err, io.ErrUnexpectedEOF)
	}
	boom := errors.New("disk full")
	failing := writerFunc(func(p []byte) (int, error) { return 10, boom })
	if n, err := copyFull(failing, bytes.NewReader(data), make([]byte, 4096)); n != 10 || err != boom {
		t.Errorf("failing writer: %d, %v; want 10, %v", n, err, boom)
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
