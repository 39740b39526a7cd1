package actors

import (
	"context"
	"net/netip"
)

// LeaseAddress asks n's network actor for an address for container, as a
// create does; the zero address when the node has no network.
func LeaseAddress(ctx context.Context, n *Node, container string) (netip.Addr, error) {
	l, err := n.lease(ctx, container, netip.Addr{}, nil)
	if l == nil {
		return netip.Addr{}, err
	}
	return l.ip, err
}

// ReleaseAddress frees what container holds, as a remove does.
func ReleaseAddress(n *Node, container string) { n.release(container) }

// SetReceiveHook installs f to run at the start of every container actor
// Receive, and of the network and image actors' with container "" (nil
// removes it), so that tests can make an actor panic while it handles a
// given message, or see messages arrive.
func SetReceiveHook(f func(container string, msg any)) {
	if f == nil {
		receiveHook.Store(nil)
		return
	}
	receiveHook.Store(&f)
}

// LeaseFor returns the container a network actor message asks an address
// for, if it is such a request.
func LeaseFor(msg any) (string, bool) {
	if m, ok := msg.(*leaseReq); ok {
		return m.container, true
	}
	return "", false
}

// CommandOf returns the command a container actor message carries, if any.
func CommandOf(msg any) (string, bool) {
	if m, ok := msg.(*cmdMsg); ok {
		return m.cmd.ID, true
	}
	return "", false
}

// EnsureFor returns the image reference an image actor message asks for on
// behalf of a create, if it is such a request.
func EnsureFor(msg any) (string, bool) {
	if m, ok := msg.(*ensureReq); ok {
		return m.ref, true
	}
	return "", false
}

// PullDoneFor returns the reference of a finished pull an image actor
// message reports, if it is such a report.
func PullDoneFor(msg any) (string, bool) {
	if m, ok := msg.(*pullDone); ok {
		return m.key, true
	}
	return "", false
}

// IsExclusiveDone reports whether an image actor message reports the end
// of a tag, remove, prune or load.
func IsExclusiveDone(msg any) bool {
	_, ok := msg.(*exclusiveDone)
	return ok
}
