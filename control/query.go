package control

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"time"

	"github.com/nats-io/nats.go/micro"

	"github.com/berthhq/berth/events"
)

// Query endpoint names: the last token of <prefix>.api.<node>.<endpoint>.
const (
	EndpointPs      = "ps"
	EndpointInspect = "inspect"
	EndpointStats   = "stats"
	EndpointState   = "state"
	EndpointHealth  = "health"
	EndpointPlan    = "plan"
)

// MaxQuerySize bounds a query's request body.
const MaxQuerySize = 64 << 10

// PsRequest is the body of a ps query. An empty body lists the containers
// [Listed] shows by default.
type PsRequest struct {
	All bool `json:"all,omitempty"` // include created, exited and failed containers
}

// PsResult answers a ps query, newest container first.
type PsResult struct {
	Containers []events.Container `json:"containers"`
}

// ContainerRequest is the body of inspect and stats queries.
type ContainerRequest struct {
	Container string `json:"container"`
}

// StateRequest is the body of a state query. At 0 asks for the current fold;
// any other value for the fold as it stood after that journal sequence. The
// fold's command outcomes, which can be many, are left out unless Outcomes
// is set.
type StateRequest struct {
	At       uint64 `json:"at,omitempty"`
	Outcomes bool   `json:"outcomes,omitempty"`
}

// PlanResult answers a plan query: what reconciliation would do now, in
// order, without doing it.
type PlanResult struct {
	Actions []events.Action `json:"actions"`
}

// Health answers a health query.
type Health struct {
	Node       string    `json:"node"`
	Version    string    `json:"version"`
	Started    time.Time `json:"started"`
	Seq        uint64    `json:"seq"`        // last journal sequence in the fold
	Containers int       `json:"containers"` // containers in the fold
	Intake     string    `json:"intake"`     // consuming, retrying: <error>, stopped or disabled
}

// Listed reports whether ps shows a container in phase p. Like docker ps,
// the default view shows what is running or in motion (creating, running,
// stopping, removing) and what needs an operator (unknown); all adds
// created, exited and failed containers.
func Listed(p events.Phase, all bool) bool {
	switch p {
	case events.PhaseCreated, events.PhaseExited, events.PhaseFailed, events.PhaseRemoved:
		return all
	}
	return true
}

func (s *Server) addService() (micro.Service, error) {
	svc, err := micro.AddService(s.opts.Conn, micro.Config{
		Name:        s.subj.ServiceName(),
		Version:     s.opts.Version,
		Description: "berth node agent queries",
		Metadata:    map[string]string{"node": s.subj.Node},
	})
	if err != nil {
		return nil, fmt.Errorf("query service: %w", err)
	}
	for _, ep := range []struct {
		name string
		h    func(context.Context, []byte) (any, error)
	}{
		{EndpointPs, s.ps},
		{EndpointInspect, s.inspect},
		{EndpointStats, s.stats},
		{EndpointState, s.state},
		{EndpointHealth, s.health},
		{EndpointImages, s.images},
		{EndpointPlan, s.plan},
	} {
		err := svc.AddEndpoint(ep.name, s.endpoint(ep.h),
			micro.WithEndpointSubject(s.subj.API(ep.name)),
			micro.WithEndpointPendingLimits(1024, 16<<20))
		if err != nil {
			_ = svc.Stop()
			return nil, fmt.Errorf("query endpoint %s: %w", ep.name, err)
		}
	}
	return svc, nil
}

// endpoint adapts a query function to micro: it bounds the request, calls
// h with a timeout, and answers with JSON or with the micro error headers
// and a JSON events.ReplyError body.
func (s *Server) endpoint(h func(context.Context, []byte) (any, error)) micro.Handler {
	return micro.HandlerFunc(func(req micro.Request) {
		ctx, cancel := context.WithTimeout(s.ctx, s.opts.QueryTimeout)
		defer cancel()
		var (
			res any
			err error
		)
		if n := len(req.Data()); n > MaxQuerySize {
			err = fmt.Errorf("%w: query is %d bytes, more than the %d byte limit", events.ErrInvalid, n, MaxQuerySize)
		} else {
			res, err = h(ctx, req.Data())
		}
		var b []byte
		if err == nil {
			b, err = json.Marshal(res)
		}
		if err == nil && int64(len(b)) > s.opts.Conn.MaxPayload() {
			err = fmt.Errorf("%w: answer is %d bytes, more than the connection's %d byte payload limit", events.ErrInternal, len(b), s.opts.Conn.MaxPayload())
		}
		if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
			err = fmt.Errorf("%w: %w", events.ErrUnavailable, err)
		}
		if err != nil {
			re := events.NewReplyError(err)
			data, _ := json.Marshal(re)
			if rErr := req.Error(strconv.Itoa(re.Code), headerText(re.Message), data); rErr != nil {
				s.log.Error().Err(rErr).Str("subject", req.Subject()).Msg("query error reply")
			}
			return
		}
		if rErr := req.Respond(b); rErr != nil {
			s.log.Error().Err(rErr).Str("subject", req.Subject()).Msg("query reply")
		}
	})
}

// decodeQuery decodes a query body strictly into v; an empty body leaves v
// as it is.
func decodeQuery(data []byte, v any) error {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("%w: query: %s", events.ErrInvalid, err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: query: trailing data after the JSON value", events.ErrInvalid)
	}
	return nil
}

func decodeContainer(data []byte) (string, error) {
	var r ContainerRequest
	if err := decodeQuery(data, &r); err != nil {
		return "", err
	}
	if err := events.ValidateContainerID(r.Container); err != nil {
		return "", fmt.Errorf("container: %w", err)
	}
	return r.Container, nil
}

func (s *Server) ps(ctx context.Context, data []byte) (any, error) {
	var r PsRequest
	if err := decodeQuery(data, &r); err != nil {
		return nil, err
	}
	st, err := s.opts.Agent.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("node state: %w", err)
	}
	res := PsResult{Containers: []events.Container{}}
	for _, c := range st.Containers {
		if Listed(c.Phase, r.All) {
			res.Containers = append(res.Containers, *c)
		}
	}
	SortContainers(res.Containers)
	return res, nil
}

// SortContainers orders containers as ps lists them: newest first, then by id.
func SortContainers(cs []events.Container) {
	slices.SortFunc(cs, func(a, b events.Container) int {
		return cmp.Or(b.CreatedAt.Compare(a.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
}

func (s *Server) inspect(ctx context.Context, data []byte) (any, error) {
	id, err := decodeContainer(data)
	if err != nil {
		return nil, err
	}
	return s.opts.Agent.Inspect(ctx, id)
}

func (s *Server) stats(ctx context.Context, data []byte) (any, error) {
	id, err := decodeContainer(data)
	if err != nil {
		return nil, err
	}
	return s.opts.Agent.Stats(ctx, id)
}

func (s *Server) state(ctx context.Context, data []byte) (any, error) {
	var r StateRequest
	if err := decodeQuery(data, &r); err != nil {
		return nil, err
	}
	var (
		st  *events.State
		err error
	)
	switch {
	case r.At == 0:
		st, err = s.opts.Agent.State(ctx)
	case s.opts.History == nil:
		err = fmt.Errorf("%w: this agent keeps no journal history to rebuild past states from", events.ErrUnavailable)
	default:
		st, err = s.opts.History.StateAt(ctx, r.At)
	}
	if err != nil {
		return nil, fmt.Errorf("state at %d: %w", r.At, err)
	}
	if !r.Outcomes {
		st.Outcomes = nil
	}
	return st, nil
}

func (s *Server) health(ctx context.Context, data []byte) (any, error) {
	if err := decodeQuery(data, &struct{}{}); err != nil {
		return nil, err
	}
	st, err := s.opts.Agent.State(ctx)
	if err != nil {
		return nil, fmt.Errorf("%w: node state: %w", events.ErrUnavailable, err)
	}
	return Health{Node: s.subj.Node, Version: s.opts.Version, Started: s.started, Seq: st.Seq,
		Containers: len(st.Containers), Intake: s.intakeStatus()}, nil
}

func (s *Server) plan(ctx context.Context, data []byte) (any, error) {
	if err := decodeQuery(data, &struct{}{}); err != nil {
		return nil, err
	}
	if s.opts.Planner == nil {
		return nil, fmt.Errorf("%w: this agent does not plan reconciliation", events.ErrUnavailable)
	}
	actions, err := s.opts.Planner.Plan(ctx)
	if err != nil {
		return nil, fmt.Errorf("plan: %w", err)
	}
	return PlanResult{Actions: append([]events.Action{}, actions...)}, nil
}
