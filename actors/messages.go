package actors

import (
	"context"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
)

// Messages to the node actor.
type (
	submitMsg struct {
		cmd   events.Command
		reply chan events.Reply
	}
	durableMsg struct{ evs []events.Event }
	// answer carries a command's reply from the container actor that ran
	// it, once its outcome is durable and applied to that actor's record, or
	// once it failed unrecorded (the journal refused it, or the actor
	// panicked; a redelivery of such a command runs it again).
	answer struct {
		id    string
		reply events.Reply
	}
	stateReq   struct{ reply chan result[*events.State] }
	inspectReq struct {
		id    string
		reply chan result[events.Container]
	}
	// recordReq asks for the fold's record of a container; the node responds
	// with *recordRes.
	recordReq struct{ id string }
	recordRes struct{ rec *events.Container }
	// retired tells the node that a container actor is idle and its record
	// removed; received counts the commands it has been sent.
	retired struct {
		id       string
		received uint64
	}
	snapshotDone struct{ err error }
	// reconcileMsg asks the container's actor to carry out a reconcile
	// action (forwarded by the node); done receives its error.
	reconcileMsg struct {
		action events.Action
		done   chan error
	}
	bootMsg struct{}
)

// Messages to a container actor (the node forwards waitReq and statsReq).
type (
	cmdMsg   struct{ cmd events.Command }
	statsReq struct {
		ctx   context.Context
		id    string
		reply chan result[events.Stats]
	}
	waitReq struct {
		id    string
		reply chan result[events.Exit]
	}
	// opDone reports the end of a driver operation.
	opDone struct {
		op  uint64
		res opResult
	}
	// initExited reports that the init process ended; code is nil when the
	// platform could not say how.
	initExited struct {
		proc hcsdriver.Process
		code *int
	}
)

var _ actor.Actor = (*nodeActor)(nil)
