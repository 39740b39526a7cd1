package imagedriver

import (
	"context"
	"errors"

	"github.com/berthhq/berth/events"
)

// Error classes every puller and layer store returns, matched with errors.Is.
// Implementations classify the errors of the libraries they use into these
// before wrapping them, so that callers never inspect a vendor's error.
var (
	// ErrInvalidReference: the image reference does not parse.
	ErrInvalidReference = errors.New("invalid image reference")
	// ErrInvalid: an argument is malformed: a digest that is not
	// "sha256:<64 hex>", a container id that events.ValidateContainerID
	// refuses, or a parent chain that is out of order.
	ErrInvalid = errors.New("invalid argument")
	// ErrNotFound: the registry has no such repository, tag, manifest or blob,
	// or the store has no such layer or scratch layer.
	ErrNotFound = errors.New("not found")
	// ErrExists: a scratch layer for that container exists already.
	ErrExists = errors.New("already exists")
	// ErrInUse: the layer is a parent of another layer or of a scratch
	// layer, or is being imported.
	ErrInUse = errors.New("in use")
	// ErrUnauthorized: the registry refused the credentials, or asked for
	// credentials and had none (HTTP 401 or 403).
	ErrUnauthorized = errors.New("unauthorized")
	// ErrNoMatchingPlatform: no image of the reference can run on the
	// requested platform. The error is a *PlatformError listing the platforms
	// on offer.
	ErrNoMatchingPlatform = errors.New("no matching platform")
	// ErrDigestMismatch: content does not hash to the digest that names it (a
	// blob against its digest, an uncompressed layer against its diff id).
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrUnsafeEntry: a layer entry could land outside its layer: a name with
	// "..", an absolute name, a link whose target escapes the layer, or an
	// entry whose path passes through a symbolic link. The error names the
	// entry.
	ErrUnsafeEntry = errors.New("unsafe layer entry")
	// ErrInvalidImage: a manifest, config or layer is malformed or of a kind
	// berth does not handle (a layer that is not a tar archive, an entry type
	// a Windows layer cannot hold, an unknown manifest media type).
	ErrInvalidImage = errors.New("invalid image")
	// ErrUnavailable: the registry cannot be reached, answered with a server
	// error, or broke off a transfer; retrying later may succeed.
	ErrUnavailable = errors.New("registry unavailable")
)

// Class maps an image error to the agent's reply classes: a bad reference,
// argument, credential or image, or an image the host cannot run with the
// isolation asked for, is 400; a missing image, layer or platform is
// 404; a scratch that exists or a layer in use is 409; an unreachable
// registry, a broken transfer, corrupt content (which a retry may fix) or a
// deadline is 503. Anything else is internal.
func Class(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrInvalidReference), errors.Is(err, ErrInvalid),
		errors.Is(err, ErrUnauthorized), errors.Is(err, ErrUnsafeEntry),
		errors.Is(err, ErrInvalidImage), errors.Is(err, ErrIncompatible):
		return events.ErrInvalid
	case errors.Is(err, ErrNotFound), errors.Is(err, ErrNoMatchingPlatform):
		return events.ErrNotFound
	case errors.Is(err, ErrExists), errors.Is(err, ErrInUse):
		return events.ErrConflict
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrDigestMismatch),
		errors.Is(err, context.DeadlineExceeded):
		return events.ErrUnavailable
	}
	return events.ErrInternal
}
