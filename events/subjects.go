package events

import "strings"

// DefaultPrefix is the subject prefix used when none is configured.
const DefaultPrefix = "berth"

// Entity kinds: the fourth token of an event subject.
const (
	KindNode      = "node"
	KindNetwork   = "net"
	KindImage     = "img"
	KindContainer = "ctr"
)

// Log stream names: the last token of a log subject.
const (
	Stdout = "stdout"
	Stderr = "stderr"
)

// Subjects names every subject, stream and bucket of one node. The zero
// value is not usable; build it with [NewSubjects].
type Subjects struct {
	Prefix string // subject prefix, "berth" by default
	Node   string // node id
	up     string // Prefix upper-cased for stream names
}

// NewSubjects returns the names for node under prefix ("" means
// [DefaultPrefix]). It does not validate node; callers do that once at start.
func NewSubjects(prefix, node string) Subjects {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return Subjects{Prefix: prefix, Node: node, up: strings.ToUpper(strings.ReplaceAll(prefix, ".", "_"))}
}

func (s Subjects) join(parts ...string) string {
	return s.Prefix + "." + strings.Join(parts, ".")
}

// Command is the subject for a command verb: <prefix>.cmd.<node>.<verb>.
func (s Subjects) Command(verb string) string { return s.join("cmd", s.Node, verb) }

// Commands matches every command for the node.
func (s Subjects) Commands() string { return s.join("cmd", s.Node, ">") }

// Event is the subject of an event: <prefix>.evt.<node>.<kind>.<id>.
func (s Subjects) Event(kind, id string) string { return s.join("evt", s.Node, kind, id) }

// Events matches every event of the node.
func (s Subjects) Events() string { return s.join("evt", s.Node, ">") }

// EventsOf matches the events of one kind, or of one entity when id is not "".
func (s Subjects) EventsOf(kind, id string) string {
	if id == "" {
		id = "*"
	}
	return s.join("evt", s.Node, kind, id)
}

// Log is the subject of one container's output stream (stdout or stderr).
func (s Subjects) Log(container, stream string) string {
	return s.join("log", s.Node, container, stream)
}

// Logs matches one container's output, or every container's when container is "".
func (s Subjects) Logs(container string) string {
	if container == "" {
		container = "*"
	}
	return s.join("log", s.Node, container, ">")
}

// Progress is the (not persisted) progress subject of one entity.
func (s Subjects) Progress(kind, id string) string { return s.join("progress", s.Node, kind, id) }

// Exec is the subject of one channel of an exec session: in, out, err,
// resize or exit.
func (s Subjects) Exec(execID, channel string) string { return s.join("exec", s.Node, execID, channel) }

// API is the subject of a query endpoint of the node's micro service.
func (s Subjects) API(endpoint string) string { return s.join("api", s.Node, endpoint) }

// APIGroup is the subject prefix of the node's query endpoints.
func (s Subjects) APIGroup() string { return s.join("api", s.Node) }

// CommandStream names the node's durable command inbox (WorkQueue).
func (s Subjects) CommandStream() string { return s.up + "_CMD_" + s.Node }

// EventStream names the node's event journal.
func (s Subjects) EventStream() string { return s.up + "_EVT_" + s.Node }

// LogStream names the node's log stream.
func (s Subjects) LogStream() string { return s.up + "_LOG_" + s.Node }

// SnapshotBucket names the node's snapshot KV bucket.
func (s Subjects) SnapshotBucket() string { return s.up + "_SNAP_" + s.Node }

// ServiceName is the name of the micro service that answers queries: the
// prefix with dots replaced by underscores, because micro service names
// allow only letters, digits, '-' and '_'.
func (s Subjects) ServiceName() string { return strings.ReplaceAll(s.Prefix, ".", "_") }

// Message headers berth sets on NATS messages besides Nats-Msg-Id.
const (
	// HeaderReplyTo carries the subject a command's reply is published on.
	// Commands travel through a stream, so the core NATS reply subject is
	// not available to the agent.
	HeaderReplyTo = "Berth-Reply-To"
	// HeaderCommand names the command an event or reply belongs to.
	HeaderCommand = "Berth-Command"
)
