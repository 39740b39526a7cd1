package wclayer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"
)

// host is what the store needs of the Windows layer APIs. Every path is a
// layer folder's absolute path; parents are layer folders, immediate parent
// first. Failures are *hostError values carrying the Win32 code of the
// failure, so that the store can tell them apart on any OS. On Windows the
// store runs on hcsshim (hcsHost); its tests run it on a model.
type host interface {
	// importLayer unpacks the layer tar r into path over parents and returns
	// the bytes of file content it held (ociwclayer.ImportLayerFromTar).
	importLayer(ctx context.Context, r io.Reader, path string, parents []string) (int64, error)
	// destroyLayer deletes the layer at path, its folder included.
	destroyLayer(path string) error
	// layerGUID returns the GUID of the layer whose folder is named name.
	layerGUID(name string) (string, error)
	// createScratch creates a scratch layer (its folder and sandbox.vhdx).
	createScratch(path string, parents []string) error
	// activate attaches a scratch layer's disk; deactivate detaches it.
	activate(path string) error
	deactivate(path string) error
	// prepare attaches the file system filter that unites a scratch with its
	// parents; unprepare detaches it.
	prepare(path string, parents []string) error
	unprepare(path string) error
	// mountPath returns the volume of an activated scratch layer.
	mountPath(path string) (string, error)
	// detachDisk detaches a scratch layer's sandbox.vhdx however it was
	// attached, as a last resort when the scratch cannot be deleted.
	detachDisk(path string) error
	// rename renames a folder.
	rename(oldPath, newPath string) error
}

// hostError is a failure of a layer API call.
type hostError struct {
	op   string
	code uint32 // Win32 error code; 0 when the failure carries none
	err  error
}

func (e *hostError) Error() string { return e.op + ": " + e.err.Error() }
func (e *hostError) Unwrap() error { return e.err }

// Win32 error codes the store acts on.
const (
	codeFileNotFound       = 0x2
	codePathNotFound       = 0x3
	codeAccessDenied       = 0x5
	codeNotReady           = 0x15
	codeSharingViolation   = 0x20
	codeFileExists         = 0x50
	codeInvalidName        = 0x7B
	codeBadPathname        = 0xA1
	codeAlreadyExists      = 0xB7
	codeDirectory          = 0x10B
	codeDeviceNotConnected = 0x48F
	codeNotAReparsePoint   = 0x1126
)

// codeOf returns the Win32 code of a host failure, 0 for none. An HRESULT
// made from a Win32 error (0x8007xxxx) counts as that error.
func codeOf(err error) uint32 {
	var he *hostError
	if !errors.As(err, &he) {
		return 0
	}
	if he.code&0xffff0000 == 0x80070000 {
		return he.code & 0xffff
	}
	return he.code
}

// transient reports whether a failure to activate or prepare a scratch
// layer may pass when tried again: the disk was not ready, or vanished under
// load (ERROR_NOT_READY, ERROR_DEVICE_NOT_CONNECTED), as hcsshim's own mount
// code retries them.
func transient(err error) bool {
	c := codeOf(err)
	return c == codeNotReady || c == codeDeviceNotConnected
}

// locked reports whether a failure to rename or destroy a layer folder
// means something still holds a file in it: a disk still attached after a
// crash, or a scanner reading a file (ERROR_ACCESS_DENIED,
// ERROR_SHARING_VIOLATION).
func locked(err error) bool {
	c := codeOf(err)
	return c == codeAccessDenied || c == codeSharingViolation
}

// contentFault reports whether a failed import may be the layer's fault
// rather than the host's: a failure with no Win32 code (the layer writer's
// own checks: a link to nothing, a whiteout in a base layer, a malformed
// Windows attribute) or one about the names and kinds of the entries (a
// missing folder, an entry written twice, a name the file system refuses).
// Others (a full disk, access denied) are the host's.
func contentFault(err error) bool {
	var he *hostError
	if !errors.As(err, &he) {
		return false
	}
	switch codeOf(err) {
	case 0, codeFileNotFound, codePathNotFound, codeFileExists, codeInvalidName,
		codeBadPathname, codeAlreadyExists, codeDirectory, codeNotAReparsePoint:
		return true
	}
	return false
}

// retryPolicy says how often and how patiently a layer API call is tried.
type retryPolicy struct {
	attempts int           // tries in all; at least one
	delay    time.Duration // between two tries
}

// defaultRetry is hcsshim's own policy for mounting scratch layers: five
// tries, 100 ms apart.
var defaultRetry = retryPolicy{attempts: 5, delay: 100 * time.Millisecond}

// do runs fn until it succeeds, fails in a way retryable does not accept,
// or has been tried p.attempts times; before each new try it runs between,
// when not nil, and waits p.delay. It returns fn's last error, or ctx's
// error when ctx ends during a wait.
func (p retryPolicy) do(ctx context.Context, fn func() error, retryable func(error) bool, between func()) error {
	for i := 1; ; i++ {
		err := fn()
		if err == nil || i >= p.attempts || !retryable(err) {
			return err
		}
		if between != nil {
			between()
		}
		if p.delay > 0 {
			t := time.NewTimer(p.delay)
			select {
			case <-t.C:
			case <-ctx.Done():
				t.Stop()
				return fmt.Errorf("%w (after %d tries: %w)", ctx.Err(), i, err)
			}
		}
	}
}
