package hcsdriver

import (
	"errors"
	"fmt"

	"github.com/berthhq/berth/events"
)

// Error classes every implementation returns, matched with errors.Is. The
// Windows adapter classifies HRESULTs into these before wrapping (hcsshim's
// errors do not unwrap).
var (
	ErrNotFound       = errors.New("compute system or process not found")
	ErrAlreadyExists  = errors.New("compute system already exists")
	ErrInvalidState   = errors.New("operation invalid in the current state")
	ErrAlreadyStopped = errors.New("already stopped")
	ErrClosed         = errors.New("handle closed")
	ErrUnexpectedExit = errors.New("compute system exited unexpectedly")
	ErrUnavailable    = errors.New("host compute service unavailable")
	ErrTimeout        = errors.New("host operation timed out")
)

// OpError records a failed operation on a compute system or process.
type OpError struct {
	Op  string // "create", "start", "shutdown", ...
	ID  string // compute system id
	Err error
}

func (e *OpError) Error() string { return fmt.Sprintf("%s %s: %v", e.Op, e.ID, e.Err) }
func (e *OpError) Unwrap() error { return e.Err }

// Class maps a driver error to the agent's reply classes: a missing system
// is 404, a wrong state 409, an unavailable or slow host 503. Anything else
// is internal.
func Class(err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, ErrNotFound):
		return events.ErrNotFound
	case errors.Is(err, ErrAlreadyExists):
		return events.ErrConflict
	case errors.Is(err, ErrInvalidState), errors.Is(err, ErrAlreadyStopped):
		return events.ErrWrongPhase
	case errors.Is(err, ErrUnavailable), errors.Is(err, ErrTimeout):
		return events.ErrUnavailable
	}
	return events.ErrInternal
}
