package control

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/berthhq/berth/events"
)

// EventsOptions selects the events [Client.Events] delivers.
type EventsOptions struct {
	// Since skips events recorded before it; zero starts at the first event.
	Since time.Time
	// Follow keeps delivering new events until the context ends. Without
	// it, Events stops after the last event recorded when it was called.
	Follow bool
	// Container keeps only the events of this container.
	Container string
	// Types keeps only events of these types. A type is written with or
	// without the "berth." prefix ("container.started"), or as a family
	// ("container", "node", "image", "network") meaning all its types.
	Types []string
}

// eventFilter is the compiled form of EventsOptions.
type eventFilter struct {
	subjects []string
	types    []string // full types ("berth.container.started") or families ("berth.container.")
}

var families = map[string]string{"container": events.KindContainer, "node": events.KindNode,
	"image": events.KindImage, "network": events.KindNetwork}

// Validate checks the container id and the types.
func (o EventsOptions) Validate() error {
	_, err := o.filter(events.NewSubjects("", "node"))
	return err
}

// filter compiles o for the node subj names.
func (o EventsOptions) filter(subj events.Subjects) (eventFilter, error) {
	var f eventFilter
	if o.Container != "" {
		if err := events.ValidateContainerID(o.Container); err != nil {
			return f, fmt.Errorf("container: %w", err)
		}
	}
	kinds := []string{}
	for _, t := range o.Types {
		t = strings.TrimPrefix(strings.TrimSpace(t), events.TypePrefix)
		kind, family := families[t], true
		if kind == "" {
			kind, family = events.KindOf(events.TypePrefix+t), false
		}
		if kind == "" || (!family && !strings.Contains(t, ".")) {
			return f, fmt.Errorf("%w: type %q is not an event type or family (container, node, image, network)", events.ErrInvalid, t)
		}
		if family {
			f.types = append(f.types, events.TypePrefix+t+".")
		} else {
			f.types = append(f.types, events.TypePrefix+t)
		}
		if !slices.Contains(kinds, kind) {
			kinds = append(kinds, kind)
		}
	}
	switch {
	case len(kinds) == 0 && o.Container == "":
		f.subjects = []string{subj.Events()}
	case len(kinds) == 0:
		f.subjects = []string{subj.EventsOf(events.KindContainer, o.Container)}
	default:
		for _, k := range kinds {
			if o.Container == "" {
				f.subjects = append(f.subjects, subj.EventsOf(k, ""))
			} else if k == events.KindContainer {
				f.subjects = append(f.subjects, subj.EventsOf(k, o.Container))
			}
		}
		if len(f.subjects) == 0 {
			return f, fmt.Errorf("%w: types %s: none concerns a container, so none can match --container %s", events.ErrInvalid, strings.Join(o.Types, ", "), o.Container)
		}
	}
	return f, nil
}

func (f eventFilter) match(typ string) bool {
	if len(f.types) == 0 {
		return true
	}
	for _, t := range f.types {
		if typ == t || (strings.HasSuffix(t, ".") && strings.HasPrefix(typ, t)) {
			return true
		}
	}
	return false
}

// Events reads the node's journal and calls fn with each selected event, in
// journal order, with Seq set. It returns fn's first error. Without Follow
// it returns nil after the last event that was recorded when it was called;
// with Follow it returns ctx's error when ctx ends.
func (c *Client) Events(ctx context.Context, o EventsOptions, fn func(events.Event) error) error {
	f, err := o.filter(c.subj)
	if err != nil {
		return err
	}
	s, err := c.openStream(ctx, "event journal", c.subj.EventStream())
	if err != nil {
		return err
	}
	var last uint64 // without Follow: the sequence to stop at
	if !o.Follow {
		if last, err = s.lastSeq(ctx, f.subjects, o.Since); err != nil || last == 0 {
			return err
		}
	}
	return s.read(ctx, f.subjects, o.Since, func(m jetstream.Msg, md *jetstream.MsgMetadata) (bool, error) {
		e, err := events.DecodeEvent(m.Data())
		if err != nil {
			return true, s.fail(fmt.Errorf("at sequence %d: %w", md.Sequence.Stream, err))
		}
		e.Seq = md.Sequence.Stream
		if f.match(e.Type) {
			if err := fn(e); err != nil {
				return true, err
			}
		}
		return !o.Follow && (e.Seq >= last || md.NumPending == 0), nil
	})
}
