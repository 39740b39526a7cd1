package dirlayer

import "hash"

const (
	hashChunk  = 256 << 10
	hashChunks = 4
)

// hasher computes a hash on a goroutine of its own, so that hashing a
// layer's content runs beside decompressing and unpacking it rather than
// after each read. Write copies into chunks of hashChunk bytes and hands
// each full one over, at most hashChunks ahead of the hashing; Sum hashes
// the rest and returns the hash. The goroutine ends in Sum or Close, and
// waits on nothing but its caller, so both return promptly.
//
// A hasher is for one goroutine's use, like a hash.Hash.
type hasher struct {
	h    hash.Hash
	cur  []byte        // the chunk being filled
	work chan []byte   // chunks to hash; closed by Sum or Close
	free chan []byte   // hashed chunks, to fill again
	done chan struct{} // closed when the goroutine has ended
}

func newHasher(h hash.Hash) *hasher {
	a := &hasher{h: h, work: make(chan []byte, hashChunks), free: make(chan []byte, hashChunks), done: make(chan struct{})}
	for range hashChunks {
		a.free <- make([]byte, 0, hashChunk)
	}
	a.cur = <-a.free
	go func(work <-chan []byte) {
		defer close(a.done)
		for b := range work {
			a.h.Write(b)
			a.free <- b[:0]
		}
	}(a.work)
	return a
}

// Write hands p to the hashing goroutine; it never fails.
func (a *hasher) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := copy(a.cur[len(a.cur):cap(a.cur)], p)
		a.cur, p = a.cur[:len(a.cur)+k], p[k:]
		if len(a.cur) == cap(a.cur) {
			a.work <- a.cur
			a.cur = <-a.free
		}
	}
	return n, nil
}

// Sum hashes what is left, ends the goroutine and returns the hash of
// everything written. Write must not be called after it.
func (a *hasher) Sum() []byte {
	if len(a.cur) > 0 {
		a.work <- a.cur
		a.cur = nil
	}
	a.Close()
	return a.h.Sum(nil)
}

// Close ends the goroutine, once it has hashed what it was handed. It is
// safe to call more than once.
func (a *hasher) Close() {
	if a.work != nil {
		close(a.work)
		a.work = nil
	}
	<-a.done
}
