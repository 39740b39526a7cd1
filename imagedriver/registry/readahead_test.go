package registry

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
	"testing/iotest"
	"time"
)

// TestReadAhead checks that a readAhead passes on its source's bytes, in
// order and whole, then the source's own final error, whatever the sizes of
// the source's reads and of the reader's.
func TestReadAhead(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	data := make([]byte, readAheadChunks*readAheadChunk*2+777)
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	boom := errors.New("boom")
	short := data[:3*readAheadChunk+5]
	for _, tc := range []struct {
		name    string
		src     io.Reader
		want    []byte
		wantErr error
	}{
		{"whole reads", bytes.NewReader(data), data, nil},
		{"one byte reads", iotest.OneByteReader(bytes.NewReader(short)), short, nil},
		{"failing at the end", io.MultiReader(bytes.NewReader(data), iotest.ErrReader(boom)), data, boom},
		{"data and EOF together", iotest.DataErrReader(bytes.NewReader(data)), data, nil},
		{"empty", bytes.NewReader(nil), nil, nil},
		{"failing at once", iotest.ErrReader(boom), nil, boom},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := newReadAhead(io.NopCloser(tc.src))
			defer r.Close()
			got, err := io.ReadAll(iotest.HalfReader(r))
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("read %d bytes, want %d, or other bytes", len(got), len(tc.want))
			}
		})
	}
}

// TestReadAhead_CloseEndsABlockedRead checks that Close returns while the
// source's Read blocks (until the source is closed), that the goroutine has
// ended then (goleak, in TestMain), and that reading after Close fails.
func TestReadAhead_CloseEndsABlockedRead(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	r := newReadAhead(pr)
	go pw.Write([]byte("some")) // then the source blocks, with a chunk not full
	time.Sleep(10 * time.Millisecond)
	if err := r.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if _, err := r.Read(make([]byte, 1)); !errors.Is(err, errReadAfterClose) {
		t.Fatalf("Read after Close: %v, want %v", err, errReadAfterClose)
	}
	if err := r.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}
