package netdriver

import (
	"errors"

	"github.com/berthhq/berth/events"
)

// Error classes every implementation and the address helpers return, matched
// with errors.Is. The Windows adapter classifies HCN errors into these before
// wrapping them.
var (
	ErrNotFound      = errors.New("network or endpoint not found")
	ErrAlreadyExists = errors.New("already exists")
	// ErrAddressInUse: another endpoint or container holds the address or
	// host port.
	ErrAddressInUse = errors.New("address in use")
	// ErrSubnetConflict: the subnet overlaps another network's.
	ErrSubnetConflict = errors.New("subnet conflict")
	// ErrExhausted: every usable address of the node's slice is allocated.
	ErrExhausted = errors.New("address range exhausted")
	// ErrInUse: the host refuses because another object still refers to
	// this one (a network with endpoints, an endpoint attached to a
	// compute system).
	ErrInUse       = errors.New("in use")
	ErrInvalidSpec = errors.New("invalid network spec")
	// ErrUnavailable: the host network service cannot serve the request
	// now; retrying later may succeed.
	ErrUnavailable = errors.New("host network service unavailable")
)

// Class maps a driver or address error to the agent's reply classes: a
// missing network or endpoint is 404, an invalid spec 400, a collision 409,
// an unavailable host 503. Anything else is internal.
func Class(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return events.ErrNotFound
	case errors.Is(err, ErrInvalidSpec):
		return events.ErrInvalid
	case errors.Is(err, ErrAlreadyExists), errors.Is(err, ErrAddressInUse),
		errors.Is(err, ErrSubnetConflict), errors.Is(err, ErrExhausted), errors.Is(err, ErrInUse):
		return events.ErrConflict
	case errors.Is(err, ErrUnavailable):
		return events.ErrUnavailable
	}
	return events.ErrInternal
}
