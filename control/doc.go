// Package control is berth's NATS API: the intake that takes commands from
// the node's durable inbox and answers them, the micro service that answers
// queries, and a typed Go client for both that a control plane or the berth
// CLI can import.
//
// Commands travel through a JetStream WorkQueue stream
// (<prefix>.cmd.<node>.<verb>), so a command sent while the agent is down is
// kept. The publisher sets Nats-Msg-Id to the command id and names a reply
// subject in the Berth-Reply-To header. The intake decodes and checks every
// command before the node sees it: malformed, oversized or unknown input is
// answered with a 400 or 404 reply naming the field and removed from the
// inbox. Valid commands are handed to the [Agent] in inbox order; the reply
// is published with the micro error headers (Nats-Service-Error-Code,
// Nats-Service-Error) and the message is acknowledged.
//
// Queries (ps, inspect, stats, state, health) are endpoints of a nats.go
// micro service named after the subject prefix, under
// <prefix>.api.<node>.<endpoint>. Errors carry the micro error headers and a
// JSON [events.ReplyError] body.
//
// control reaches the node through the small [Agent] interface; it never
// imports the actors or the drivers.
package control
