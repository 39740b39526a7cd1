package actors

// SetReceiveHook installs f to run at the start of every container actor
// Receive (nil removes it), so that tests can make an actor panic while it
// handles a given message.
func SetReceiveHook(f func(container string, msg any)) {
	if f == nil {
		receiveHook.Store(nil)
		return
	}
	receiveHook.Store(&f)
}

// CommandOf returns the command a container actor message carries, if any.
func CommandOf(msg any) (string, bool) {
	if m, ok := msg.(*cmdMsg); ok {
		return m.cmd.ID, true
	}
	return "", false
}
