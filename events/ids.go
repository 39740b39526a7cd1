package events

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// ValidateNodeID reports whether id is a valid node id:
// [a-z0-9][a-z0-9-]{0,62}. Node ids are used verbatim as NATS subject tokens
// and stream names.
func ValidateNodeID(id string) error {
	if err := validateID(id, 63, "-"); err != nil {
		return fmt.Errorf("%w: node id %q: %s", ErrInvalid, id, err)
	}
	return nil
}

// ValidateContainerID reports whether id is a valid container id:
// [a-z0-9][a-z0-9_.-]{0,127} with no ".." and no final ".". Container ids are
// used verbatim as NATS subject tokens, HCS compute system ids and folder
// names: NATS matches no subscriber for a subject with an empty token, and
// Windows drops a folder name's final dot.
func ValidateContainerID(id string) error {
	if err := validateDottedID(id); err != nil {
		return fmt.Errorf("%w: container id %q: %s", ErrInvalid, id, err)
	}
	return nil
}

// ValidateExecID reports whether id can name an exec session. Exec ids follow
// the container id rules because they too are subject tokens.
func ValidateExecID(id string) error {
	if err := validateDottedID(id); err != nil {
		return fmt.Errorf("%w: exec id %q: %s", ErrInvalid, id, err)
	}
	return nil
}

func validateDottedID(id string) error {
	if err := validateID(id, 128, "_.-"); err != nil {
		return err
	}
	switch {
	case strings.Contains(id, ".."):
		return fmt.Errorf("must not contain \"..\"")
	case strings.HasSuffix(id, "."):
		return fmt.Errorf("must not end with \".\"")
	}
	return nil
}

func validateID(id string, max int, extra string) error {
	switch {
	case id == "":
		return fmt.Errorf("must not be empty")
	case len(id) > max:
		return fmt.Errorf("longer than %d characters", max)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		alnum := (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')
		if alnum || (i > 0 && strings.IndexByte(extra, c) >= 0) {
			continue
		}
		if i == 0 {
			return fmt.Errorf("must start with a lowercase letter or digit")
		}
		return fmt.Errorf("character %q at %d is not allowed (use lowercase letters, digits and %q)", c, i, extra)
	}
	return nil
}

// ValidateCommandID reports whether id can be used as a command id:
// 1 to 128 letters, digits, '-' and '_' (a UUID fits). Command ids become
// Nats-Msg-Id headers and the subject token of node.command_completed, so
// nothing that splits or widens a subject ('.', '*', '>') is allowed.
func ValidateCommandID(id string) error {
	if id == "" {
		return fmt.Errorf("%w: command id must not be empty", ErrInvalid)
	}
	if len(id) > 128 {
		return fmt.Errorf("%w: command id longer than 128 characters", ErrInvalid)
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' {
			continue
		}
		return fmt.Errorf("%w: command id %q: byte %d (%q) is not a letter, digit, '-' or '_'", ErrInvalid, id, i, c)
	}
	return nil
}

// NewID returns a new UUIDv7 (RFC 9562) as a string. UUIDv7 ids sort by the
// millisecond in which they were made, so event ids double as a coarse clock.
func NewID() string {
	var u [16]byte
	binary.BigEndian.PutUint64(u[:8], uint64(time.Now().UnixMilli())<<16)
	if _, err := rand.Read(u[6:]); err != nil {
		panic(fmt.Sprintf("events: crypto/rand: %v", err))
	}
	u[6] = (u[6] & 0x0f) | 0x70 // version 7
	u[8] = (u[8] & 0x3f) | 0x80 // variant 10
	var b [36]byte
	hex.Encode(b[0:8], u[0:4])
	b[8] = '-'
	hex.Encode(b[9:13], u[4:6])
	b[13] = '-'
	hex.Encode(b[14:18], u[6:8])
	b[18] = '-'
	hex.Encode(b[19:23], u[8:10])
	b[23] = '-'
	hex.Encode(b[24:], u[10:])
	return string(b[:])
}
