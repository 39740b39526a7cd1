package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/nats-io/nats.go/micro"

	"github.com/berthhq/berth/events"
)

// DefaultTimeout bounds a client call whose context has no deadline.
const DefaultTimeout = 30 * time.Second

// ErrPending reports that a command is stored in the node's inbox but its
// reply has not arrived (yet). The command is durable: the agent executes it
// when it takes it, and sending it again with the same id does not execute
// it twice.
var ErrPending = errors.New("command queued, no reply yet")

// ErrForbidden reports a command the NATS server refused to take from this
// connection's user: its permissions do not allow publishing it.
var ErrForbidden = errors.New("not permitted")

// Client talks to one node's agent: it sends commands through the durable
// inbox and asks queries of the micro service. It is safe for concurrent use.
type Client struct {
	nc      *nats.Conn
	js      jetstream.JetStream
	subj    events.Subjects
	timeout time.Duration
	replies replies
}

// ClientOption configures a [Client].
type ClientOption func(*Client)

// WithPrefix sets the subject prefix (default events.DefaultPrefix).
func WithPrefix(prefix string) ClientOption {
	return func(c *Client) { c.subj = events.NewSubjects(prefix, c.subj.Node) }
}

// WithTimeout sets the time a call may take when its context has no
// deadline (default DefaultTimeout).
func WithTimeout(d time.Duration) ClientOption {
	return func(c *Client) {
		if d > 0 {
			c.timeout = d
		}
	}
}

// NewClient returns a client for node over nc.
func NewClient(nc *nats.Conn, node string, opts ...ClientOption) (*Client, error) {
	if nc == nil {
		return nil, fmt.Errorf("%w: control client: no NATS connection", events.ErrInvalid)
	}
	if err := events.ValidateNodeID(node); err != nil {
		return nil, fmt.Errorf("control client: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return nil, fmt.Errorf("control client: %w", err)
	}
	c := &Client{nc: nc, js: js, subj: events.NewSubjects("", node), timeout: DefaultTimeout}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

func (c *Client) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, c.timeout)
}

// Do sends cmd through the node's inbox and waits for its reply. A command
// that fails validation is refused before it is sent, with an
// events.ErrInvalid error. When the agent answers with an error, Do returns
// the reply and its *events.ReplyError, so errors.Is(err, events.ErrWrongPhase)
// and the like work. When no reply arrives before ctx (or the client's
// timeout) ends, the error wraps ErrPending: the command stays queued.
// Sending the same command id again is safe: the inbox drops a repeat
// within its duplicate window (Do then reports ErrPending, since the reply
// went to the first sender), and the agent answers a later repeat with the
// recorded outcome.
func (c *Client) Do(ctx context.Context, cmd events.Command) (events.Reply, error) {
	if err := cmd.Validate(); err != nil {
		return events.Reply{}, fmt.Errorf("command: %w", err)
	}
	data, err := json.Marshal(cmd)
	if err != nil {
		return events.Reply{}, fmt.Errorf("%w: encoding command: %v", events.ErrInvalid, err)
	}
	if len(data) > events.MaxCommandSize {
		return events.Reply{}, fmt.Errorf("%w: command is %d bytes, more than the %d byte limit", events.ErrInvalid, len(data), events.MaxCommandSize)
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()

	inbox, replies, forget, err := c.replies.await(c.nc)
	if err != nil {
		return events.Reply{}, err
	}
	defer forget()

	msg := nats.NewMsg(c.subj.Command(cmd.Verb))
	msg.Data = data
	msg.Header.Set(events.HeaderReplyTo, inbox)
	ack, err := c.js.PublishMsg(ctx, msg, jetstream.WithMsgID(cmd.ID))
	switch {
	case err != nil && refused(c.nc, msg.Subject):
		return events.Reply{}, fmt.Errorf("command %s: %w: the NATS server refused to take %s from this user: %w", cmd.ID, ErrForbidden, msg.Subject, c.nc.LastError())
	case errors.Is(err, jetstream.ErrNoStreamResponse):
		return events.Reply{}, fmt.Errorf("%w: command %s: no inbox stream for node %s answered: %w", events.ErrUnavailable, cmd.ID, c.subj.Node, err)
	case err != nil && ctx.Err() != nil:
		return events.Reply{}, fmt.Errorf("%w: command %s: sending it timed out, so it may or may not be queued; send it again with the same id: %w", events.ErrUnavailable, cmd.ID, err)
	case err != nil:
		return events.Reply{}, fmt.Errorf("command %s: %w", cmd.ID, err)
	case ack.Duplicate:
		return events.Reply{}, fmt.Errorf("command %s: %w: the inbox already holds this id, and its reply goes to the first sender", cmd.ID, ErrPending)
	}

	var rm *nats.Msg
	queued := func(why error) error {
		return fmt.Errorf("command %s (%s) is in %s as message %d: %w: %w", cmd.ID, strings.TrimSpace(cmd.Verb+" "+cmd.Container), ack.Stream, ack.Sequence, ErrPending, why)
	}
	select {
	case rm = <-replies:
	case <-c.replies.gone:
		return events.Reply{}, queued(nats.ErrConnectionClosed)
	case <-ctx.Done():
		return events.Reply{}, queued(ctx.Err())
	}
	r, err := events.DecodeReply(rm.Data)
	if err != nil {
		return events.Reply{}, fmt.Errorf("command %s: %w", cmd.ID, err)
	}
	return r, r.Err()
}

// send gives cmd a fresh id, sends it and decodes its result into a T.
func send[T any](ctx context.Context, c *Client, cmd events.Command) (T, error) {
	cmd.ID = events.NewID()
	var res T
	r, err := c.Do(ctx, cmd)
	if err != nil {
		return res, err
	}
	if len(r.Result) == 0 {
		return res, nil
	}
	if err := json.Unmarshal(r.Result, &res); err != nil {
		return res, fmt.Errorf("%w: command %s result: %v", events.ErrInvalid, cmd.ID, err)
	}
	return res, nil
}

// do sends a container verb and decodes its result.
func (c *Client) do(ctx context.Context, cmd events.Command) (events.ContainerResult, error) {
	return send[events.ContainerResult](ctx, c, cmd)
}

// ConfigureNetwork sets the node's network with a network.configure
// command, published on <prefix>.cmd.<node>.network.configure. A
// configuration that fails events.NetworkConfig.Validate is refused unsent,
// with an events.ErrInvalid error naming the field. The result is the
// configuration as the agent recorded it, with the network's name and
// gateway. Changing the network's shape (slice, type, adapter) while
// containers hold addresses fails with events.ErrConflict.
func (c *Client) ConfigureNetwork(ctx context.Context, cfg events.NetworkConfig) (events.NetworkConfiguredData, error) {
	return send[events.NetworkConfiguredData](ctx, c, events.Command{Verb: events.VerbNetworkConfigure, Network: &cfg})
}

// CreateOption sets an optional part of a create or run command.
type CreateOption func(*events.Command)

// WithRegistryAuth sends auth, credentials for the registry of the spec's
// image, with the command; the agent uses them for that command's pull only.
// A nil auth sends none.
func WithRegistryAuth(auth *events.RegistryAuth) CreateOption {
	return func(cmd *events.Command) { cmd.Auth = auth }
}

// Create creates container from spec.
func (c *Client) Create(ctx context.Context, container string, spec events.ContainerSpec, opts ...CreateOption) (events.ContainerResult, error) {
	return c.do(ctx, withOptions(events.Command{Verb: events.VerbCreate, Container: container, Spec: &spec}, opts))
}

// Run creates container from spec and starts it.
func (c *Client) Run(ctx context.Context, container string, spec events.ContainerSpec, opts ...CreateOption) (events.ContainerResult, error) {
	return c.do(ctx, withOptions(events.Command{Verb: events.VerbRun, Container: container, Spec: &spec}, opts))
}

func withOptions(cmd events.Command, opts []CreateOption) events.Command {
	for _, o := range opts {
		o(&cmd)
	}
	return cmd
}

// Start starts a created container.
func (c *Client) Start(ctx context.Context, container string) (events.ContainerResult, error) {
	return c.do(ctx, events.Command{Verb: events.VerbStart, Container: container})
}

// Stop stops container gracefully, terminating it after timeout; a nil
// timeout uses the container's own stop timeout.
func (c *Client) Stop(ctx context.Context, container string, timeout *time.Duration) (events.ContainerResult, error) {
	cmd := events.Command{Verb: events.VerbStop, Container: container}
	if timeout != nil {
		d := events.Duration(*timeout)
		cmd.Timeout = &d
	}
	return c.do(ctx, cmd)
}

// Kill terminates container at once.
func (c *Client) Kill(ctx context.Context, container string) (events.ContainerResult, error) {
	return c.do(ctx, events.Command{Verb: events.VerbKill, Container: container})
}

// refused reports whether the server's last asynchronous error on nc is a
// refusal to let it publish to subject. NATS reports that asynchronously,
// so a refused publish otherwise looks like a timeout.
func refused(nc *nats.Conn, subject string) bool {
	err := nc.LastError()
	return errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), `Publish to "`+subject+`"`)
}

// Remove removes container; force kills it first if it is running.
func (c *Client) Remove(ctx context.Context, container string, force bool) (events.ContainerResult, error) {
	return c.do(ctx, events.Command{Verb: events.VerbRemove, Container: container, Force: force})
}

// query asks endpoint with req (nil for an empty body) and decodes the
// answer into res. Errors the service reports come back as
// *events.ReplyError.
func (c *Client) query(ctx context.Context, endpoint string, req, res any) error {
	var data []byte
	if req != nil {
		b, err := json.Marshal(req)
		if err != nil {
			return fmt.Errorf("%w: encoding %s query: %v", events.ErrInvalid, endpoint, err)
		}
		data = b
	}
	ctx, cancel := c.withTimeout(ctx)
	defer cancel()
	subj := c.subj.API(endpoint)
	msg, err := c.nc.RequestWithContext(ctx, subj, data)
	switch {
	case errors.Is(err, nats.ErrNoResponders):
		return fmt.Errorf("%w: no agent answers for node %s on %s", events.ErrUnavailable, c.subj.Node, subj)
	case err != nil && ctx.Err() != nil:
		return fmt.Errorf("%w: %s query: no answer: %w", events.ErrUnavailable, endpoint, err)
	case err != nil:
		return fmt.Errorf("%s query: %w", endpoint, err)
	}
	if code := msg.Header.Get(micro.ErrorCodeHeader); code != "" {
		return queryError(code, msg.Header.Get(micro.ErrorHeader), msg.Data)
	}
	if err := json.Unmarshal(msg.Data, res); err != nil {
		return fmt.Errorf("%w: %s answer: %v", events.ErrInvalid, endpoint, err)
	}
	return nil
}

// queryError rebuilds the error a query endpoint reported: from its JSON
// body when there is one, else from the micro headers.
func queryError(code, text string, body []byte) error {
	var re events.ReplyError
	if json.Unmarshal(body, &re) == nil && re.Kind != "" {
		return &re
	}
	n, _ := strconv.Atoi(code)
	kind := map[int]string{
		events.CodeInvalid: "invalid", events.CodeNotFound: "not_found", events.CodeConflict: "conflict",
		events.CodeUnavailable: "unavailable",
	}[n]
	if kind == "" {
		kind = "internal"
	}
	return &events.ReplyError{Code: n, Kind: kind, Message: text}
}

// Ps lists the node's containers, newest first: by default those [Listed]
// shows, with all every container the node knows.
func (c *Client) Ps(ctx context.Context, all bool) ([]events.Container, error) {
	var res PsResult
	if err := c.query(ctx, EndpointPs, PsRequest{All: all}, &res); err != nil {
		return nil, err
	}
	return res.Containers, nil
}

// Plan returns what the node's reconciliation would do now, without doing
// it.
func (c *Client) Plan(ctx context.Context) ([]events.Action, error) {
	var res PlanResult
	if err := c.query(ctx, EndpointPlan, nil, &res); err != nil {
		return nil, err
	}
	return res.Actions, nil
}

// Inspect returns the node's record of container.
func (c *Client) Inspect(ctx context.Context, container string) (events.Container, error) {
	var res events.Container
	err := c.query(ctx, EndpointInspect, ContainerRequest{Container: container}, &res)
	return res, err
}

// Stats returns a resource usage sample of a running container.
func (c *Client) Stats(ctx context.Context, container string) (events.Stats, error) {
	var res events.Stats
	err := c.query(ctx, EndpointStats, ContainerRequest{Container: container}, &res)
	return res, err
}

// State returns the node's fold: the current one when at is 0, else as it
// stood after journal sequence at. Command outcomes are left out.
func (c *Client) State(ctx context.Context, at uint64) (*events.State, error) {
	st := events.NewState(c.subj.Node, events.DefaultWindow)
	if err := c.query(ctx, EndpointState, StateRequest{At: at}, st); err != nil {
		return nil, err
	}
	return st, nil
}

// Health reports whether the agent answers, and how it is doing.
func (c *Client) Health(ctx context.Context) (Health, error) {
	var res Health
	err := c.query(ctx, EndpointHealth, nil, &res)
	return res, err
}
