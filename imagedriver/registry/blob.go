package registry

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"syscall"

	"github.com/google/go-containerregistry/pkg/v1/remote/transport"
	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"

	"github.com/berthhq/berth/imagedriver"
)

// blobReader watches a compressed blob as it streams and tells its failures
// apart. go-containerregistry checks every blob it hands out (from the
// registry or from a foreign URL) against its digest and size, and fails the
// read that reaches the end when they do not match; blobReader turns that
// failure into imagedriver.ErrDigestMismatch, and a transfer that breaks off
// before the end into imagedriver.ErrUnavailable.
type blobReader struct {
	rc     io.ReadCloser
	digest string
	size   int64
	n      int64
	onRead func(n int64) // bytes so far
}

func newBlobReader(rc io.ReadCloser, digest string, size int64, onRead func(int64)) *blobReader {
	return &blobReader{rc: rc, digest: digest, size: size, onRead: onRead}
}

func (b *blobReader) Read(p []byte) (int, error) {
	n, err := b.rc.Read(p)
	if n > 0 {
		b.n += int64(n)
		b.onRead(b.n)
	}
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
		return n, err
	case err == io.EOF && b.n == b.size:
		return n, io.EOF
	case err == io.EOF, b.n >= b.size:
		// The whole blob arrived (or more, or a clean end came early) and
		// the verifier refused it.
		return n, fmt.Errorf("%w: blob %s: received %d bytes, want %d bytes with that digest: %v",
			imagedriver.ErrDigestMismatch, b.digest, b.n, b.size, err)
	}
	return n, fmt.Errorf("%w: blob %s broke off after %d of %d bytes: %w", imagedriver.ErrUnavailable, b.digest, b.n, b.size, err)
}

func (b *blobReader) Close() error { return b.rc.Close() }

var (
	gzipMagic = []byte{0x1f, 0x8b}
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
)

// uncompressed returns the content of a layer blob read from r, gunzipped or
// unzstd'ed when its first bytes say so and as it is otherwise (an
// uncompressed tar). Closing it closes c too. A failure of the compressed
// format is imagedriver.ErrInvalidImage; a failure of r is passed on.
func uncompressed(r io.Reader, c io.Closer) (io.ReadCloser, error) {
	src := &sourceReader{r: r}
	br := bufio.NewReaderSize(src, 64<<10)
	out := &layerContent{src: src, closers: []func() error{c.Close}}
	magic, err := br.Peek(len(zstdMagic))
	if err != nil && err != io.EOF {
		return nil, out.fault(err)
	}
	switch {
	case bytes.HasPrefix(magic, gzipMagic):
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, out.fault(err)
		}
		out.r = zr
		out.closers = append(out.closers, zr.Close)
	case bytes.HasPrefix(magic, zstdMagic):
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, out.fault(err)
		}
		out.r = zr
		out.closers = append(out.closers, func() error { zr.Close(); return nil })
	default:
		out.r = br
	}
	return out, nil
}

// sourceReader keeps the first failure of the reader under a decompressor.
type sourceReader struct {
	r   io.Reader
	err error
}

func (s *sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF && s.err == nil {
		s.err = err
	}
	return n, err
}

type layerContent struct {
	r       io.Reader
	src     *sourceReader
	closers []func() error
}

func (l *layerContent) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if err != nil && err != io.EOF {
		err = l.fault(err)
	}
	return n, err
}

// fault passes on the source's failure and calls anything else a bad
// compressed stream. The source is read to its end first, so that a blob
// damaged on its way shows as the digest mismatch it is.
func (l *layerContent) fault(err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	if l.src.err == nil {
		io.Copy(io.Discard, l.src)
	}
	if l.src.err != nil {
		return l.src.err
	}
	return fmt.Errorf("%w: decompress layer: %v", imagedriver.ErrInvalidImage, err)
}

func (l *layerContent) Close() error {
	var errs []error
	for i := len(l.closers) - 1; i >= 0; i-- {
		errs = append(errs, l.closers[i]())
	}
	return errors.Join(errs...)
}

// transportClass returns the class of a registry's error response, nil when
// err is no such response.
func transportClass(err error) error {
	var te *transport.Error
	if !errors.As(err, &te) {
		return nil
	}
	for _, d := range te.Errors {
		switch d.Code {
		case transport.UnauthorizedErrorCode, transport.DeniedErrorCode:
			return imagedriver.ErrUnauthorized
		case transport.ManifestUnknownErrorCode, transport.NameUnknownErrorCode, transport.BlobUnknownErrorCode:
			return imagedriver.ErrNotFound
		case transport.NameInvalidErrorCode, transport.TagInvalidErrorCode:
			return imagedriver.ErrInvalidReference
		}
	}
	switch te.StatusCode {
	case 401, 403:
		return imagedriver.ErrUnauthorized
	case 404:
		return imagedriver.ErrNotFound
	}
	return imagedriver.ErrUnavailable
}

// isNetwork reports a failure to reach a host or to finish a transfer.
func isNetwork(err error) bool {
	var ne net.Error
	var ue *url.Error
	return errors.As(err, &ne) || errors.As(err, &ue) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed)
}
