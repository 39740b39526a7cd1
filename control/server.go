package control

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"github.com/rs/zerolog"

	"github.com/berthhq/berth/events"
)

// Defaults for [Options].
const (
	DefaultMaxInFlight      = 64
	DefaultProgressInterval = 10 * time.Second
	DefaultQueryTimeout     = 10 * time.Second
)

// Options configures a [Server].
type Options struct {
	Conn     *nats.Conn      // required
	Subjects events.Subjects // required: the node's names
	Agent    Agent           // required
	// Inbox is the node's command inbox. Nil serves queries only.
	Inbox Inbox
	// History answers state queries for a past sequence. Nil answers them
	// with 503.
	History History
	// Planner answers plan queries. Nil answers them with 503.
	Planner Planner
	Logger  zerolog.Logger
	// MaxInFlight bounds the commands submitted to the agent whose replies
	// have not arrived yet; the intake takes no further command while the
	// bound is reached. Default DefaultMaxInFlight.
	MaxInFlight int
	// ProgressInterval is how often the intake tells the inbox that a
	// command still awaiting its reply is being worked on, so that it is not
	// redelivered. It must be shorter than the inbox's ack wait. Default
	// DefaultProgressInterval.
	ProgressInterval time.Duration
	// QueryTimeout bounds each query's calls into the agent. Default
	// DefaultQueryTimeout.
	QueryTimeout time.Duration
	// Version is the version the micro service announces. Default [Version].
	Version string
	// Observer, when set, is told of every command the intake answers.
	Observer Observer
	// MountRoots are the host folders bind mounts may come from (clean
	// Windows paths, see events.CleanWindowsPath); a spec mounting anything
	// else is refused with 400. None refuses every bind mount.
	MountRoots []string
	// MaxCommandSize refuses larger command messages with 400. Default and
	// ceiling events.MaxCommandSize.
	MaxCommandSize int
}

// Observer is told of each command's outcome just before its reply is
// published, so a client holding a reply finds the command counted.
type Observer interface {
	// ObserveCommand reports that a command of verb was answered with code
	// (events.CodeOK for success, else the reply's error code), took after
	// the intake received it. verb is one of events.Verbs, or "unknown" for
	// a refused message naming no known verb. It is called from many
	// goroutines and must be cheap.
	ObserveCommand(verb string, code int, took time.Duration)
}

// Server is the node's NATS API: the command intake and the query service.
type Server struct {
	opts Options
	subj events.Subjects
	log  zerolog.Logger

	// ctx bounds query handlers and is cancelled when Stop returns.
	ctx    context.Context
	cancel context.CancelFunc

	stopIntake context.CancelFunc // ends Consume
	intakeDone chan struct{}      // closed when the intake goroutine returns
	abort      chan struct{}      // closed when Stop gives up on replies in flight
	slots      chan struct{}      // one token per command awaiting its reply
	waiters    sync.WaitGroup     // reply waiters
	svc        micro.Service
	started    time.Time

	consuming atomic.Bool // set once Start has started the intake

	mu        sync.Mutex
	intakeErr error // last error of the inbox, nil while consuming
	stopped   bool
}

// NewServer checks opts and returns a server that is not started.
func NewServer(opts Options) (*Server, error) {
	switch {
	case opts.Conn == nil:
		return nil, fmt.Errorf("%w: control server: no NATS connection", events.ErrInvalid)
	case opts.Agent == nil:
		return nil, fmt.Errorf("%w: control server: no agent", events.ErrInvalid)
	}
	if err := events.ValidateNodeID(opts.Subjects.Node); err != nil {
		return nil, fmt.Errorf("control server: %w", err)
	}
	if opts.Subjects.Prefix == "" {
		opts.Subjects = events.NewSubjects("", opts.Subjects.Node)
	}
	if opts.MaxInFlight <= 0 {
		opts.MaxInFlight = DefaultMaxInFlight
	}
	if opts.ProgressInterval <= 0 {
		opts.ProgressInterval = DefaultProgressInterval
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = DefaultQueryTimeout
	}
	if opts.MaxCommandSize <= 0 || opts.MaxCommandSize > events.MaxCommandSize {
		opts.MaxCommandSize = events.MaxCommandSize
	}
	if opts.Version == "" {
		opts.Version = Version
	}
	return &Server{
		opts:       opts,
		subj:       opts.Subjects,
		log:        opts.Logger.With().Str("component", "control").Logger(),
		intakeDone: make(chan struct{}),
		abort:      make(chan struct{}),
		slots:      make(chan struct{}, opts.MaxInFlight),
	}, nil
}

// Start registers the query service and, when an inbox is configured,
// starts consuming commands. When it returns, queries are answered. A
// server starts once; ctx bounds only the start itself.
func (s *Server) Start(ctx context.Context) error {
	if s.ctx != nil {
		return errors.New("control server: already started")
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.started = time.Now().UTC()
	svc, err := s.addService()
	if err != nil {
		s.cancel()
		return err
	}
	s.svc = svc
	// Once the server has seen the subscriptions, queries reach the service.
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.opts.QueryTimeout)
		defer cancel()
	}
	if err := s.opts.Conn.FlushWithContext(ctx); err != nil {
		_ = svc.Stop()
		s.cancel()
		return fmt.Errorf("query service: %w", err)
	}
	intakeCtx, stop := context.WithCancel(s.ctx)
	s.stopIntake = stop
	if s.opts.Inbox == nil {
		close(s.intakeDone)
		return nil
	}
	go s.runIntake(intakeCtx)
	s.consuming.Store(true)
	return nil
}

// Stop stops taking commands and waits until the replies of commands
// already submitted have been published and acknowledged, or until ctx ends.
// Commands still awaiting their replies then are left unacknowledged: the
// inbox delivers them again, and the agent answers a repeated command id
// with its recorded outcome. Stop then stops the query service: queries
// already received are still answered, later ones find no responder. When
// Stop returns, every goroutine the server started has ended. Stop returns
// ctx's error if it gave up on replies, and does nothing after the first
// call. It must not be called before Start has returned.
func (s *Server) Stop(ctx context.Context) error {
	s.mu.Lock()
	if s.stopped || s.cancel == nil {
		s.mu.Unlock()
		return nil
	}
	s.stopped = true
	s.mu.Unlock()

	s.stopIntake()
	<-s.intakeDone
	done := make(chan struct{})
	go func() { s.waiters.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("control server: replies in flight abandoned: %w", ctx.Err())
		close(s.abort)
		<-done
	}
	if svcErr := s.svc.Stop(); svcErr != nil && !errors.Is(svcErr, nats.ErrConnectionClosed) {
		err = errors.Join(err, fmt.Errorf("query service stop: %w", svcErr))
	}
	// Once the server has seen the unsubscriptions, no new query arrives.
	_ = s.opts.Conn.FlushTimeout(s.opts.QueryTimeout)
	s.cancel()
	return err
}

func (s *Server) setIntakeErr(err error) {
	s.mu.Lock()
	s.intakeErr = err
	s.mu.Unlock()
}

// Consuming reports whether Start has started the command intake, Stop has
// not been called, and the intake's last read of the inbox succeeded. It is
// false for a server without an inbox. It is safe to call at any time from
// any goroutine.
func (s *Server) Consuming() bool {
	return s.consuming.Load() && s.intakeStatus() == "consuming"
}

func (s *Server) intakeStatus() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.opts.Inbox == nil:
		return "disabled"
	case s.stopped:
		return "stopped"
	case s.intakeErr != nil:
		return "retrying: " + s.intakeErr.Error()
	}
	return "consuming"
}
