package wclayer

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"

	"github.com/berthhq/berth/imagedriver"
)

// chunkSize is how much of the layer the guard reads, and checks, at a time.
const chunkSize = 256 << 10

// guard is the reader a layer writer reads a layer tar through. It hashes
// the tar and checks its entries against the rules before the writer can see
// them: its checker, a tar reader on a goroutine of the guard's own, parses
// the same bytes in lock step, and each chunk read from the source is passed
// on only once the checker has parsed all of it and every entry header it
// completes has passed the rules. The writer parses the same bytes with the
// same tar reader, so it cannot complete a header the checker has not
// passed.
//
// Read is for one goroutine; end must be called once the writer is done: it
// ends the checker.
type guard struct {
	ctx      context.Context
	src      io.Reader
	h        hash.Hash
	diffID   string
	chunk    []byte // where the source is read into
	buf      []byte // checked bytes not yet passed on
	eof      bool   // the source has ended
	err      error  // the first failure of the source, ctx or the checks; sticky
	srcErr   error  // the source's own failure
	ctxErr   error  // ctx's end, met while reading
	checkErr error  // the checker's verdict on what was read

	feed    chan []byte   // to the checker: a chunk; closed once the source has ended
	ack     chan struct{} // from the checker: the chunk is parsed and passed
	done    chan struct{} // closed when the checker has ended
	verdict error         // why the checker ended early; read only after done
	closed  bool
}

// newGuard returns a guard over src, the layer tar whose sha256 must be
// diffID, checked with r, and starts its checker.
func newGuard(ctx context.Context, src io.Reader, diffID string, r *rules) *guard {
	g := &guard{ctx: ctx, src: src, h: sha256.New(), diffID: diffID, chunk: make([]byte, chunkSize),
		feed: make(chan []byte), ack: make(chan struct{}), done: make(chan struct{})}
	go g.check(r)
	return g
}

// Read passes on the checked layer.
func (g *guard) Read(p []byte) (int, error) {
	for len(g.buf) == 0 {
		if g.err != nil {
			return 0, g.err
		}
		if g.eof {
			return 0, io.EOF
		}
		g.fill()
	}
	n := copy(p, g.buf)
	g.buf = g.buf[n:]
	return n, nil
}

// fill reads the next chunk from the source and has it checked.
func (g *guard) fill() {
	if err := g.ctx.Err(); err != nil {
		g.ctxErr, g.err = err, err
		return
	}
	n, err := g.src.Read(g.chunk)
	g.h.Write(g.chunk[:n])
	if n > 0 {
		if verdict := g.handOver(g.chunk[:n]); verdict != nil {
			g.checkErr, g.err = verdict, verdict
			return
		}
		g.buf = g.chunk[:n]
	}
	switch {
	case err == io.EOF:
		g.eof = true
		g.close()
		if g.verdict != nil {
			g.checkErr, g.err = g.verdict, g.verdict
		}
	case err != nil:
		g.srcErr, g.err = err, err
	}
}

// handOver gives the checker a chunk and waits until it has parsed all of
// it. It returns the checker's verdict when the checker ends instead.
func (g *guard) handOver(chunk []byte) error {
	select {
	case g.feed <- chunk:
	case <-g.done:
		return g.verdict
	}
	select {
	case <-g.ack:
		return nil
	case <-g.done:
		return g.verdict
	}
}

// close ends the checker and waits for it. A checker ended before the end of
// the source finds the archive cut short: only a verdict it reached before,
// kept in checkErr, counts.
func (g *guard) close() {
	if !g.closed {
		g.closed = true
		close(g.feed)
		<-g.done
	}
}

// check is the checker: it parses the chunks it is fed, runs the rules on
// each entry, and ends when the feed is closed or at its first failure,
// which it leaves in g.verdict.
func (g *guard) check(r *rules) {
	defer close(g.done)
	fr := &feedReader{g: g}
	tr := tar.NewReader(fr)
	for {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil && !(errors.Is(err, tar.ErrInsecurePath) && hdr != nil) {
			g.verdict = archiveError{err}
			return
		}
		if rerr := r.entry(hdr); rerr != nil {
			g.verdict = rerr
			return
		}
		if err != nil { // a name the tar reader finds insecure that the rules let pass
			g.verdict = imagedriver.UnsafeEntryError(hdr.Name, "not a local name")
			return
		}
	}
	if err := r.finish(); err != nil {
		g.verdict = err
		return
	}
	// What follows the end of the archive is not looked at.
	io.Copy(io.Discard, fr)
}

// archiveError is a checker's verdict on a layer that does not parse as a
// tar archive.
type archiveError struct{ err error }

func (e archiveError) Error() string { return "layer is not a valid tar archive: " + e.err.Error() }

// feedReader is the checker's source: the chunks the guard feeds it. When a
// chunk is used up and more is asked for, everything before has been
// parsed, so it acknowledges the chunk before it waits for the next.
type feedReader struct {
	g     *guard
	cur   []byte
	owing bool // cur came from the feed and is not acknowledged yet
}

func (f *feedReader) Read(p []byte) (int, error) {
	for len(f.cur) == 0 {
		if f.owing {
			f.owing = false
			f.g.ack <- struct{}{}
		}
		chunk, ok := <-f.g.feed
		if !ok {
			return 0, io.EOF
		}
		f.cur, f.owing = chunk, true
	}
	n := copy(p, f.cur)
	f.cur = f.cur[n:]
	return n, nil
}

// end finishes an import through the guard, once the layer writer has
// returned writeErr, and returns the import's error, classified: the
// source's failure, wrapped; ctx's error; the rules' refusal
// (imagedriver.ErrUnsafeEntry, ErrInvalidImage); imagedriver.ErrDigestMismatch
// when the layer does not hash to its diff id; ErrInvalidImage when it does
// but is not a tar archive, or the writer failed on its content (see
// contentFault); writeErr itself when the host failed. Unless the host
// failed or the rules refused an entry, the rest of the source is read
// first: what follows the archive counts toward the diff id, and a damaged
// transfer is told from a bad layer only by its digest.
func (g *guard) end(writeErr error) error {
	g.close()
	var archive archiveError
	refused := g.checkErr != nil && !errors.As(g.checkErr, &archive)
	if !refused && (writeErr == nil || g.checkErr != nil || contentFault(writeErr)) {
		g.drain()
	}
	switch {
	case g.srcErr != nil:
		return fmt.Errorf("read layer: %w", g.srcErr)
	case g.ctxErr != nil:
		return g.ctxErr
	case writeErr != nil && g.ctx.Err() != nil:
		return g.ctx.Err()
	case refused:
		return g.checkErr
	case !g.eof:
		return writeErr // the host's failure: the rest was not read
	}
	if got := "sha256:" + hex.EncodeToString(g.h.Sum(nil)); got != g.diffID {
		return fmt.Errorf("%w: layer content has diff id %s, want %s", imagedriver.ErrDigestMismatch, got, g.diffID)
	}
	switch {
	case g.checkErr != nil:
		return fmt.Errorf("%w: %w", imagedriver.ErrInvalidImage, g.checkErr)
	case writeErr != nil && contentFault(writeErr):
		return fmt.Errorf("%w: %w", imagedriver.ErrInvalidImage, writeErr)
	}
	return writeErr
}

// drain reads the rest of the source into the hash, past the checker.
func (g *guard) drain() {
	for !g.eof && g.srcErr == nil && g.ctxErr == nil {
		if err := g.ctx.Err(); err != nil {
			g.ctxErr = err
			return
		}
		n, err := g.src.Read(g.chunk)
		g.h.Write(g.chunk[:n])
		if err == io.EOF {
			g.eof = true
		} else if err != nil {
			g.srcErr = err
		}
	}
}
