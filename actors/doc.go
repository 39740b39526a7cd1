// Package actors runs berth's node as protoactor-go actors.
//
// The node actor owns the fold (the node's [events.State]) and one child
// actor per container. Every fact reaches the fold the same way: an actor
// appends events to the journal, the journal hands them back once they are
// durable, in stream order, and the node actor applies them. A command is
// answered only when its outcome (a node.command_completed event) is durable,
// so an answered command is never lost and never executed twice: a repeated
// command id gets the recorded reply.
//
// A container actor keeps one driver operation in flight. The operation runs
// in a goroutine (HCS calls block and take no context) and reports back with
// a message; other commands wait in order. A kill that arrives during a slow
// create or start is applied as soon as that operation returns; a kill that
// arrives during a graceful stop terminates the system at once. The init
// process is watched by a goroutine tied to the container's life, and its
// exit arrives as a message.
//
// The network actor, also a child of the node, owns the node's network: it
// records network.configure, creates the network on the host once (leases
// wait for it), and hands out container addresses from the node's slice,
// restoring them from the fold at start. A create leases an address,
// records endpoint_creating, creates the endpoint and then the compute
// system with it; a remove deletes the system, then the endpoint, and
// releases the address. Without a network driver (Config.Network) or a
// configured network, containers get no endpoint.
//
// The image actor, a third kind of child, owns the node's images
// (Config.Images and Config.Layers). Pulls of one reference share one
// download, whoever asks (a create or image.pull); pull policies decide
// whether the registry is asked; tag, remove, prune and load run one at a
// time, with no pull in flight. A create first ensures its image (nothing
// is recorded for a container whose image cannot be had), merges the
// image's command, environment, working directory and user into its spec,
// then brackets the scratch layer with scratch_creating and
// scratch_created inside its create, as it does the endpoint; a remove
// deletes the scratch layer after the compute system. An image is in use
// while a container that is not failed was created from it.
//
// After Start, Reconcile makes the fold and the host agree before any
// command runs (DESIGN §7): Observe lists what the host holds of ours, the
// pure function Plan decides one action per container and host object (the
// reconciliation matrix is in Plan's cases), and each action is carried
// out, through the container's actor for a container, and journaled; a
// node.reconciled event sums them up. A container actor rebuilt after a
// panic plans and reconciles its own container the same way.
//
// Panics are logged with their stack; the actor is rebuilt from the fold and
// the command it was handling is answered with an internal error.
package actors
