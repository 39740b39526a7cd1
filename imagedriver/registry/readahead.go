package registry

import (
	"errors"
	"io"
)

const (
	readAheadChunk  = 256 << 10
	readAheadChunks = 4
)

var errReadAfterClose = errors.New("read after close")

// readAhead reads src on a goroutine of its own, up to readAheadChunks
// reads (of at most readAheadChunk bytes each) ahead of its reader: what
// reading a blob costs (receiving it, and go-containerregistry's digest
// check) then runs beside what is done with it (decompressing and
// unpacking), not in turn. It passes src's bytes and its final error on as
// they are, each read's bytes as soon as they came.
//
// Close closes src first, so that a read blocked on the network ends, then
// waits for the goroutine: src's Close must be safe to call while a Read
// runs, as an HTTP response body's is. A readAhead is for one goroutine's
// use.
type readAhead struct {
	src  io.ReadCloser
	full chan chunk    // chunks read, in order; never blocks (one place per buffer)
	free chan []byte   // chunks handed back, to fill again
	stop chan struct{} // closed by Close
	done chan struct{} // closed when the goroutine has ended

	last   []byte // the chunk being read from, to hand back
	cur    []byte // its unread part
	err    error  // src's final error, once its chunk is reached
	closed bool
}

type chunk struct {
	b   []byte
	err error
}

func newReadAhead(src io.ReadCloser) *readAhead {
	r := &readAhead{src: src, full: make(chan chunk, readAheadChunks), free: make(chan []byte, readAheadChunks),
		stop: make(chan struct{}), done: make(chan struct{})}
	for range readAheadChunks {
		r.free <- make([]byte, readAheadChunk)
	}
	go r.fill()
	return r
}

// fill reads src into free chunks until src fails or ends, or Close.
func (r *readAhead) fill() {
	defer close(r.done)
	for {
		var b []byte
		select {
		case b = <-r.free:
		case <-r.stop:
			return
		}
		// One read a chunk: what the network has is handed over at once,
		// so that the reader can refuse a bad start of a blob that then
		// stalls. A chunk fills up when the reader falls behind.
		n, err := r.src.Read(b)
		for n == 0 && err == nil {
			n, err = r.src.Read(b)
		}
		r.full <- chunk{b[:n], err}
		if err != nil {
			return
		}
	}
}

func (r *readAhead) Read(p []byte) (int, error) {
	if r.closed {
		return 0, errReadAfterClose
	}
	for len(r.cur) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.last != nil {
			r.free <- r.last[:cap(r.last)]
		}
		c := <-r.full
		r.last, r.cur, r.err = c.b, c.b, c.err
	}
	n := copy(p, r.cur)
	r.cur = r.cur[n:]
	if len(r.cur) == 0 && r.err != nil {
		return n, r.err
	}
	return n, nil
}

// Close closes src and waits for the goroutine to end.
func (r *readAhead) Close() error {
	if r.closed {
		return nil
	}
	r.closed = true
	close(r.stop)
	err := r.src.Close()
	<-r.done
	return err
}
