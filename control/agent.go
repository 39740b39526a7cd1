package control

import (
	"context"

	"github.com/berthhq/berth/events"
)

// Agent is what the API needs of the node.
type Agent interface {
	// Submit hands a validated command to the node. Calls are ordered: commands submitted in sequence reach their
	// containers in that sequence. Submit does not block on execution; the returned channel yields exactly one
	// reply (the recorded outcome if the command id was already handled).
	Submit(cmd events.Command) <-chan events.Reply
	State(ctx context.Context) (*events.State, error)                 // a consistent copy of the fold
	Inspect(ctx context.Context, id string) (events.Container, error) // events.ErrNotFound if unknown
	Stats(ctx context.Context, id string) (events.Stats, error)       // ErrNotFound / ErrWrongPhase
}

// History rebuilds the fold as it stood at a journal sequence.
// *journal.Journal satisfies it.
type History interface {
	StateAt(ctx context.Context, seq uint64) (*events.State, error)
}

// Version is berth's version string, reported by the query service and the
// CLI. It is semantic versioning, as micro requires; release builds set it
// with -ldflags "-X github.com/berthhq/berth/control.Version=1.2.3".
var Version = "0.1.0-dev"

// Planner computes what reconciliation would do now, without doing it.
// *actors.Node satisfies it.
type Planner interface {
	Plan(ctx context.Context) ([]events.Action, error)
}
