package wclayer

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/imagedrivertest"
)

// consume reads a layer tar through a guard as the layer writer does, and
// returns the names of the entries it saw, whether it reached the end of the
// archive, and the guard's verdict.
func consume(ctx context.Context, src io.Reader, diffID string, base bool) (seen []string, atEnd bool, err error) {
	g := newGuard(ctx, src, diffID, newRules(base))
	tr := tar.NewReader(g)
	var werr error
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			atEnd = true
			break
		}
		if err != nil {
			werr = err
			break
		}
		seen = append(seen, hdr.Name)
		if _, err := io.Copy(io.Discard, tr); err != nil {
			werr = err
			break
		}
	}
	if werr != nil {
		werr = &hostError{op: "import", err: werr} // as hcsHost passes it on
	}
	return seen, atEnd, g.end(werr)
}

// sources are the ways a source can hand out a layer: all at once, a byte at
// a time (so that every header straddles reads), or in halves.
var sources = []struct {
	name string
	wrap func(io.Reader) io.Reader
}{
	{"whole", func(r io.Reader) io.Reader { return r }},
	{"bytes", iotest.OneByteReader},
	{"halves", iotest.HalfReader},
}

// TestGuardHoldsBackRefusedEntries: the writer never sees an entry the
// rules refuse, nor the end of an archive the final checks refuse, however
// the source splits the layer.
func TestGuardHoldsBackRefusedEntries(t *testing.T) {
	big := strings.Repeat("x", chunkSize+1000) // the next headers straddle a chunk boundary
	for _, c := range []struct {
		name     string
		entries  []imagedrivertest.Entry
		wantSeen []string
		culprit  string
	}{
		{"write through a link", []imagedrivertest.Entry{
			{Name: "Files", Type: tar.TypeDir}, {Name: "Files/big", Body: big},
			{Name: "Files/lnk", Type: tar.TypeSymlink, Linkname: "."},
			{Name: "Files/lnk/x", Body: "x"}, {Name: "Files/after", Body: big},
		}, []string{"Files", "Files/big", "Files/lnk"}, "Files/lnk/x"},
		{"link that escapes through a later link", []imagedrivertest.Entry{
			{Name: "Files", Type: tar.TypeDir}, {Name: "Files/y", Type: tar.TypeDir},
			{Name: "Files/x", Type: tar.TypeSymlink, Linkname: "y/.."},
			{Name: "Files/big", Body: big}, {Name: "Files/y", Type: tar.TypeSymlink, Linkname: ".."},
		}, []string{"Files", "Files/y", "Files/x", "Files/big", "Files/y"}, "Files/x"},
	} {
		b, d := imagedrivertest.Tar(t, c.entries...)
		for _, src := range sources {
			// The writer sees at most the entries before the culprit: all of
			// them when the source hands out a byte at a time. What follows
			// the culprit's chunk is not read.
			counted := &countingReader{r: bytes.NewReader(b)}
			seen, atEnd, err := consume(ctx, src.wrap(counted), d, true)
			if c.name == "write through a link" && counted.n >= len(b) {
				t.Errorf("%s, %s: the whole layer was read after the refusal", c.name, src.name)
			}
			if !slices.Equal(seen, c.wantSeen[:min(len(seen), len(c.wantSeen))]) || atEnd ||
				src.name == "bytes" && len(seen) != len(c.wantSeen) {
				t.Errorf("%s, %s: writer saw %q (end of archive: %v); want at most %q and no end", c.name, src.name, seen, atEnd, c.wantSeen)
			}
			if !errors.Is(err, imagedriver.ErrUnsafeEntry) || !strings.Contains(err.Error(), c.culprit) {
				t.Errorf("%s, %s: %v; want ErrUnsafeEntry naming %s", c.name, src.name, err, c.culprit)
			}
		}
	}
}

// cancelAfter cancels its context once n bytes have been read.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}

func TestGuardVerdicts(t *testing.T) {
	b, d := imagedrivertest.WindowsLayer(t, map[string]string{"big.bin": strings.Repeat("z", 3*chunkSize)})
	trailing := append(bytes.Clone(b), "what follows the archive"...)
	damaged := bytes.Clone(b)
	damaged[100] ^= 0xff // the first header's checksum no longer holds
	junk := bytes.Repeat([]byte("not a tar archive. "), 64)
	cause := errors.New("connection reset")
	for _, c := range []struct {
		name   string
		src    func(context.CancelFunc) io.Reader
		diffID string
		check  func(error) bool
	}{
		{"layer", func(context.CancelFunc) io.Reader { return bytes.NewReader(b) }, d,
			func(err error) bool { return err == nil }},
		{"trailing data counts", func(context.CancelFunc) io.Reader { return bytes.NewReader(trailing) }, imagedrivertest.DiffID(trailing),
			func(err error) bool { return err == nil }},
		{"trailing data not in the diff id", func(context.CancelFunc) io.Reader { return bytes.NewReader(trailing) }, d,
			func(err error) bool { return errors.Is(err, imagedriver.ErrDigestMismatch) }},
		{"damaged", func(context.CancelFunc) io.Reader { return bytes.NewReader(damaged) }, d,
			func(err error) bool { return errors.Is(err, imagedriver.ErrDigestMismatch) }},
		{"cut short", func(context.CancelFunc) io.Reader { return bytes.NewReader(b[:len(b)/2]) }, d,
			func(err error) bool { return errors.Is(err, imagedriver.ErrDigestMismatch) }},
		{"not a tar", func(context.CancelFunc) io.Reader { return bytes.NewReader(junk) }, imagedrivertest.DiffID(junk),
			func(err error) bool {
				return errors.Is(err, imagedriver.ErrInvalidImage) && !errors.Is(err, imagedriver.ErrDigestMismatch)
			}},
		{"source fails", func(context.CancelFunc) io.Reader {
			return io.MultiReader(bytes.NewReader(b[:chunkSize+10]), iotest.ErrReader(cause))
		}, d, func(err error) bool { return errors.Is(err, cause) }},
		{"cancelled", func(cancel context.CancelFunc) io.Reader {
			return &cancelAfter{r: bytes.NewReader(b), n: chunkSize, cancel: cancel}
		}, d, func(err error) bool { return errors.Is(err, context.Canceled) }},
	} {
		cctx, cancel := context.WithCancel(ctx)
		_, _, err := consume(cctx, c.src(cancel), c.diffID, true)
		cancel()
		if !c.check(err) {
			t.Errorf("%s: %v", c.name, err)
		}
	}
}

// TestGuardHostFailure: when the writer fails on the host's account, the
// guard reports that failure and reads no further.
func TestGuardHostFailure(t *testing.T) {
	b, d := imagedrivertest.WindowsLayer(t, map[string]string{"big.bin": strings.Repeat("z", 3*chunkSize)})
	src := &countingReader{r: bytes.NewReader(b)}
	g := newGuard(ctx, src, d, newRules(true))
	if _, err := g.Read(make([]byte, 512)); err != nil {
		t.Fatal(err)
	}
	diskFull := &hostError{op: "import", code: 0x70, err: errors.New("disk full")}
	if err := g.end(diskFull); err != diskFull {
		t.Errorf("end = %v; want the host's failure", err)
	}
	if src.n != chunkSize {
		t.Errorf("read %d bytes; want one chunk (%d)", src.n, chunkSize)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}
