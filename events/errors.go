package events

import (
	"errors"
	"fmt"
)

// Error classes shared by the agent, its API and its clients. Match them with
// errors.Is; each maps to one reply code (see [CodeOf]).
var (
	// ErrInvalid: the input is malformed or violates a rule (400).
	ErrInvalid = errors.New("invalid input")
	// ErrNotFound: the named container, image or exec does not exist (404).
	ErrNotFound = errors.New("not found")
	// ErrWrongPhase: the entity exists but its phase forbids the verb (409).
	ErrWrongPhase = errors.New("wrong phase")
	// ErrConflict: the request collides with existing state, such as a
	// container id already in use or an address already allocated (409).
	ErrConflict = errors.New("conflict")
	// ErrUnavailable: the host or the journal cannot serve the request now;
	// retrying later may succeed (503).
	ErrUnavailable = errors.New("unavailable")
	// ErrInternal: a fault inside the agent (500).
	ErrInternal = errors.New("internal error")
)

// Reply codes, after HTTP and the nats.go micro error headers.
const (
	CodeOK          = 200
	CodeInvalid     = 400
	CodeNotFound    = 404
	CodeConflict    = 409
	CodeInternal    = 500
	CodeUnavailable = 503
)

var classes = []struct {
	err  error
	code int
	kind string
}{
	{ErrInvalid, CodeInvalid, "invalid"},
	{ErrNotFound, CodeNotFound, "not_found"},
	{ErrWrongPhase, CodeConflict, "wrong_phase"},
	{ErrConflict, CodeConflict, "conflict"},
	{ErrUnavailable, CodeUnavailable, "unavailable"},
	{ErrInternal, CodeInternal, "internal"},
}

// CodeOf returns the reply code and kind for err: the first error class that
// err matches, or 500 "internal" when it matches none.
func CodeOf(err error) (code int, kind string) {
	for _, c := range classes {
		if errors.Is(err, c.err) {
			return c.code, c.kind
		}
	}
	return CodeInternal, "internal"
}

// ReplyError is the error part of a [Reply]. It satisfies error, and
// errors.Is matches it against the class its Kind names, so a client can
// write errors.Is(err, events.ErrWrongPhase).
type ReplyError struct {
	Code    int    `json:"code"`
	Kind    string `json:"kind"`
	Message string `json:"message"`
}

// NewReplyError builds the reply form of err.
func NewReplyError(err error) *ReplyError {
	code, kind := CodeOf(err)
	return &ReplyError{Code: code, Kind: kind, Message: err.Error()}
}

func (e *ReplyError) Error() string { return fmt.Sprintf("%s (%d %s)", e.Message, e.Code, e.Kind) }

// Is reports whether target is the error class named by e.Kind.
func (e *ReplyError) Is(target error) bool {
	for _, c := range classes {
		if c.kind == e.Kind {
			return c.err == target
		}
	}
	return target == ErrInternal
}
