// Package journal keeps a berth node's durable record in NATS JetStream:
// the event journal, state snapshots, the command inbox, and the embedded
// server that holds them when berth runs without an external NATS.
//
// The journal is one stream per node, <prefix>_EVT_<node>, on the subjects
// <prefix>.evt.<node>.<kind>.<id>. Each event is stored as its CloudEvents
// JSON document with the event id as Nats-Msg-Id, so a retried append is
// deduplicated. One writer goroutine appends: Appends that arrive while a
// batch is being committed go out together as the next atomic batch, and
// every batch carries the sequence the writer expects the journal to end
// at. A second agent writing the same node's journal therefore fails that
// check, and the journal answers ErrFenced from then on.
//
// Boot rebuilds the node's state from the latest snapshot and the events
// after it, with the pure fold of package events. Snapshots live in the KV
// bucket <prefix>_SNAP_<node>. Commands arrive through the WorkQueue stream
// <prefix>_CMD_<node>, read by [Inbox].
//
// Containers' output goes to the stream <prefix>_LOG_<node>, bounded in size
// and age, on the subjects <prefix>.log.<node>.<container>.<stdout|stderr>:
// one message a line (or a chunk of a long line), written by [LogWriter].
package journal
