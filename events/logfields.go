package events

import (
	"slices"
	"strings"
)

// Log field names berth's zerolog lines share, after the seed runtime's
// tracing spans (zlayer-agent's HCS runtime: otel.name "image.pull",
// "container.create", "container.start", "container.stop",
// "container.remove", with container.id and container.image.name), so that
// one query finds the same operation in either agent's logs.
const (
	LogSpan      = "span"                 // the operation: SpanName of the verb
	LogContainer = "container.id"         // the container the operation is about
	LogImage     = "container.image.name" // the image reference it names
)

// SpanName returns the span name of a command of verb: "container.<verb>"
// for the container verbs (so create, start, stop and remove give the
// seed's container.create, container.start, container.stop and
// container.remove), the verb itself for the image.* and network.* verbs
// (image.pull as the seed's), and "" for a verb berth does not know.
func SpanName(verb string) string {
	switch {
	case verb == VerbCreate, verb == VerbStart, verb == VerbRun, verb == VerbStop, verb == VerbKill, verb == VerbRemove, verb == VerbExec:
		return "container." + verb
	case (strings.HasPrefix(verb, "image.") || strings.HasPrefix(verb, "network.")) && slices.Contains(Verbs, verb):
		return verb
	}
	return ""
}
