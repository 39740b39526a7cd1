package events

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"
)

// SpecVersion is the CloudEvents version of the envelope.
const SpecVersion = "1.0"

// SchemaVersion is the payload schema version berth writes (berthschema).
const SchemaVersion = 1

// TypePrefix starts every event type.
const TypePrefix = "berth."

// Event is one fact in CloudEvents 1.0 structured form. ID is also the
// Nats-Msg-Id of the journal message, so a retried append is deduplicated.
// Seq is the journal's stream sequence; it is set when the event is read
// from, or acknowledged by, the journal and is not part of the document.
type Event struct {
	SpecVersion string          `json:"specversion"`
	ID          string          `json:"id"`
	Source      string          `json:"source"`
	Type        string          `json:"type"`
	Subject     string          `json:"subject"`
	Time        time.Time       `json:"time"`
	ContentType string          `json:"datacontenttype,omitempty"`
	Command     string          `json:"berthcommand,omitempty"`
	Schema      int             `json:"berthschema"`
	Data        json.RawMessage `json:"data,omitempty"`

	Seq uint64 `json:"-"`
}

// NewEvent builds an event of type typ about subject on node, caused by
// command (may be empty), with data encoded as JSON. It panics if data
// cannot be encoded, which only a programming error can cause: payloads are
// plain structs.
func NewEvent(node, typ, subject, command string, data any) Event {
	var raw json.RawMessage
	if data != nil {
		b, err := json.Marshal(data)
		if err != nil {
			panic(fmt.Sprintf("events: encoding %s payload: %v", typ, err))
		}
		raw = b
	}
	return Event{
		SpecVersion: SpecVersion,
		ID:          NewID(),
		Source:      "berth/" + node,
		Type:        typ,
		Subject:     subject,
		Time:        time.Now().UTC(),
		ContentType: "application/json",
		Command:     command,
		Schema:      SchemaVersion,
		Data:        raw,
	}
}

// Kind returns the entity kind of the event's type: "ctr" for
// berth.container.*, "node" for berth.node.*, "img" for berth.image.* and
// "net" for berth.network.*. It returns "" for a type it does not know.
func (e *Event) Kind() string { return KindOf(e.Type) }

// KindOf maps an event type to its entity kind (see [Event.Kind]).
func KindOf(typ string) string {
	rest, ok := strings.CutPrefix(typ, TypePrefix)
	if !ok {
		return ""
	}
	family, _, _ := strings.Cut(rest, ".")
	switch family {
	case "container":
		return KindContainer
	case "node":
		return KindNode
	case "image":
		return KindImage
	case "network":
		return KindNetwork
	}
	return ""
}

// Short returns the type without the "berth." prefix, such as
// "container.started".
func (e *Event) Short() string { return strings.TrimPrefix(e.Type, TypePrefix) }

// Decode decodes the event's data into v.
func (e *Event) Decode(v any) error {
	if len(e.Data) == 0 {
		return nil
	}
	if err := json.Unmarshal(e.Data, v); err != nil {
		return fmt.Errorf("%w: %s data: %v", ErrInvalid, e.Type, err)
	}
	return nil
}

// Marshal encodes the event as its CloudEvents JSON document.
func (e *Event) Marshal() ([]byte, error) { return json.Marshal(e) }

// DecodeEvent decodes and checks one event document as it arrives from the
// journal or the network.
func DecodeEvent(b []byte) (Event, error) {
	var e Event
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w: event: %v", ErrInvalid, err)
	}
	switch {
	case e.SpecVersion != SpecVersion:
		return e, fmt.Errorf("%w: event %s: specversion %q, want %q", ErrInvalid, e.ID, e.SpecVersion, SpecVersion)
	case e.ID == "":
		return e, fmt.Errorf("%w: event: empty id", ErrInvalid)
	case KindOf(e.Type) == "":
		return e, fmt.Errorf("%w: event %s: unknown type %q", ErrInvalid, e.ID, e.Type)
	case e.Subject == "":
		return e, fmt.Errorf("%w: event %s: empty subject", ErrInvalid, e.ID)
	case e.Schema > SchemaVersion:
		return e, fmt.Errorf("%w: event %s: schema %d is newer than this agent's %d", ErrInvalid, e.ID, e.Schema, SchemaVersion)
	}
	return e, nil
}
