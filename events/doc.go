// Package events is berth's vocabulary: identifiers, subject names, the
// CloudEvents envelope, command and event payloads, and the pure fold that
// turns a journal of events into the node's state.
//
// It imports only the standard library, so that the agent, the CLI, a control
// plane, replay tests and tools can all share one definition of what a fact
// means. The fold ([State.Apply]) is deterministic and performs no I/O: the
// same function runs live, during replay, in tests and in `berth state --at`.
package events
