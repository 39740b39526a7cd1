package main

// berthd as a Windows service. Everything here is platform-neutral: the
// commands, the service's registration, the protocol that maps the service
// control manager's requests to the agent's context, and the log file. The
// calls into the service control manager are in service_windows.go; other
// systems have none (service_other.go).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
)

const (
	serviceName    = "berthd"
	serviceLogName = "berthd.log" // in the data directory, when berthd runs as a service

	// startWaitHint goes with StartPending; Running follows at once.
	startWaitHint = 10 * time.Second
	// While the agent stops, StopPending is reported again every
	// checkpointEvery with the next checkpoint, each promising the next within
	// stopWaitHint, for at most stopCheckpoints checkpoints (one minute).
	checkpointEvery = 2 * time.Second
	stopWaitHint    = 10 * time.Second
	stopCheckpoints = 30

	// commandWait bounds how long start, stop and uninstall wait for the
	// service to change state; pollEvery is how often they look.
	commandWait = 2 * time.Minute
	pollEvery   = 250 * time.Millisecond

	// exitAgentFailed is the service-specific exit code of a service whose
	// agent ended without a stop request.
	exitAgentFailed = 1
)

var (
	errServiceUnsupported  = errors.New("service commands work only on Windows")
	errServiceExists       = errors.New("service " + serviceName + " is already installed")
	errServiceNotInstalled = errors.New("service " + serviceName + " is not installed")
	errServiceFailed       = errors.New("service " + serviceName + " failed")
	errAgentEnded          = errors.New("agent ended without a stop request")
	errStopTimeout         = errors.New("agent still stopping after the stop budget")
)

// addServiceCommand adds `berthd service install|uninstall|start|stop` to
// root, and makes root run the agent under the service control manager when
// it started this process (see runAsService); otherwise root runs as before.
// o holds root's parsed options.
func addServiceCommand(root *cobra.Command, o *options) {
	foreground := root.RunE
	root.RunE = func(cmd *cobra.Command, args []string) error {
		if ran, err := runAsService(*o); ran || err != nil {
			return err
		}
		return foreground(cmd, args)
	}

	service := &cobra.Command{
		Use:   "service",
		Short: "run berthd as a Windows service: install, uninstall, start, stop",
		Args:  cobra.NoArgs,
	}
	service.AddCommand(&cobra.Command{
		Use:   "install [BERTHD FLAGS]",
		Short: "register berthd as a service that runs with the flags given",
		Long: "Registers the service " + serviceName + " (automatic start, restarted on failure) to run this executable\n" +
			"with the berthd flags given, such as --data-dir C:\\ProgramData\\berth --node n1. --data-dir is required;\n" +
			"--node defaults to the host name, recorded now. The service logs to " + serviceLogName + " in the data\n" +
			"directory and notes its start, stop and failures in the Application event log.",
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			return withServiceControl(func(c serviceControl) error {
				exe, err := os.Executable()
				if err != nil {
					return fmt.Errorf("locating berthd: %w", err)
				}
				spec, err := newServiceSpec(exe, root.Flags(), args)
				if errors.Is(err, pflag.ErrHelp) {
					return cmd.Help()
				}
				if err != nil {
					return err
				}
				if err := c.create(spec); err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "service %s installed: %s\n", serviceName, spec.commandLine())
				return nil
			})
		},
	})
	for _, sub := range []struct {
		use, short string
		do         func(context.Context, serviceControl, io.Writer, time.Duration) error
	}{
		{"uninstall", "stop the service if it runs, and remove it", uninstallService},
		{"start", "start the service and wait until it runs", startService},
		{"stop", "stop the service and wait until it has stopped", stopService},
	} {
		service.AddCommand(&cobra.Command{
			Use:   sub.use,
			Short: sub.short,
			Args:  cobra.NoArgs,
			RunE: func(cmd *cobra.Command, _ []string) error {
				ctx, cancel := context.WithTimeout(cmd.Context(), commandWait)
				defer cancel()
				return withServiceControl(func(c serviceControl) error {
					return sub.do(ctx, c, cmd.OutOrStdout(), pollEvery)
				})
			},
		})
	}
	root.AddCommand(service)
}

func withServiceControl(f func(serviceControl) error) error {
	c, err := newServiceControl()
	if err != nil {
		return err
	}
	defer c.close()
	return f(c)
}

// serviceSpec is the service `berthd service install` registers: automatic
// start, run as LocalSystem, restarted on failure.
type serviceSpec struct {
	DisplayName  string
	Description  string
	Exe          string   // absolute path of the berthd executable
	Args         []string // berthd's flags, passed on every start
	Dependencies []string // services started first: HCS and HNS
	// RestartDelays are the waits before restarting after the first,
	// second, and every later failure; the count of failures goes back to
	// zero after ResetAfter without one.
	RestartDelays []time.Duration
	ResetAfter    time.Duration
}

// newServiceSpec returns the service that runs exe with the berthd flags in
// args, parsed with flags (berthd's own) as the service will parse them, so
// that mistakes show now rather than in the service's log. Positional
// arguments are refused. --data-dir is required and made absolute, since a
// service starts in the system directory. --node, when not given, is pinned
// to the host name's node id: the journal belongs to the node id, which must
// not change with the host name. The service's arguments are the flags
// given, as --name=value in name order. No environment variable is read: the
// service sees the machine's environment, not this shell's. It returns
// pflag.ErrHelp for -h or --help. Parsing sets the values in flags.
func newServiceSpec(exe string, flags *pflag.FlagSet, args []string) (serviceSpec, error) {
	fs := pflag.NewFlagSet(serviceName, pflag.ContinueOnError)
	fs.Usage = func() {}
	flags.VisitAll(func(f *pflag.Flag) {
		if f.Name != "help" {
			fs.AddFlag(f)
		}
	})
	if err := fs.Parse(args); err != nil {
		return serviceSpec{}, err
	}
	if fs.NArg() > 0 {
		return serviceSpec{}, fmt.Errorf("unexpected argument %q: the service takes berthd's flags only", fs.Arg(0))
	}
	dataDir, node := fs.Lookup("data-dir"), fs.Lookup("node")
	if dataDir == nil || node == nil {
		return serviceSpec{}, errors.New("berthd defines no --data-dir or --node flag")
	}
	if !dataDir.Changed {
		return serviceSpec{}, errors.New("--data-dir is required")
	}
	for _, name := range []string{"data-dir", "config", "auth-dir", "tls-ca", "tls-cert", "tls-key"} { // the service runs in another directory
		f := fs.Lookup(name)
		if f == nil || !f.Changed {
			continue
		}
		abs, err := filepath.Abs(f.Value.String())
		if err != nil {
			return serviceSpec{}, fmt.Errorf("--%s: %w", name, err)
		}
		if err := fs.Set(name, abs); err != nil {
			return serviceSpec{}, err
		}
	}
	if !node.Changed {
		h := defaultNode()
		if h == "" {
			return serviceSpec{}, errors.New("--node is required: the host name is not a valid node id")
		}
		if err := fs.Set("node", h); err != nil {
			return serviceSpec{}, err
		}
	}
	if err := events.ValidateNodeID(node.Value.String()); err != nil {
		return serviceSpec{}, fmt.Errorf("--node: %w", err)
	}
	var stored []string
	fs.Visit(func(f *pflag.Flag) { stored = append(stored, "--"+f.Name+"="+f.Value.String()) })
	return serviceSpec{
		DisplayName:   "berth agent",
		Description:   "Runs this node's berth containers on the Host Compute Service and keeps their journal in NATS JetStream.",
		Exe:           exe,
		Args:          stored,
		Dependencies:  []string{"vmcompute", "hns"},
		RestartDelays: []time.Duration{5 * time.Second, 15 * time.Second, time.Minute},
		ResetAfter:    24 * time.Hour,
	}, nil
}

// commandLine is the service's command line, quoted as Windows parses it.
func (s serviceSpec) commandLine() string {
	return hcsdriver.CommandLine(append([]string{s.Exe}, s.Args...))
}

// scmState is a service's state as the service control manager knows it.
type scmState int

const (
	stateOther scmState = iota // paused or pausing: berthd never is
	stateStopped
	stateStartPending
	stateRunning
	stateStopPending
)

func (s scmState) String() string {
	switch s {
	case stateStopped:
		return "stopped"
	case stateStartPending:
		return "starting"
	case stateRunning:
		return "running"
	case stateStopPending:
		return "stopping"
	}
	return "paused"
}

// scmStatus is a service's status: what berthd reports while it runs as a
// service, and what the service commands read back.
type scmStatus struct {
	State      scmState
	AcceptStop bool          // stop and shutdown requests are accepted
	CheckPoint uint32        // advances while a pending state makes progress
	WaitHint   time.Duration // until the next checkpoint or state
	ExitCode   uint32        // of a stopped service: 0, or why it failed
}

// scmRequest is a request from the service control manager, as far as
// berthd tells them apart.
type scmRequest int

const (
	requestOther       scmRequest = iota // ignored: berthd accepts only stop and shutdown
	requestInterrogate                   // report the current status again
	requestStop                          // stop or shutdown
)

// scmSession is the protocol a service follows with the service control
// manager: it receives requests, which kind classifies, and sends each
// status to report, which may block until the manager takes it. ticks paces
// the checkpoints of a stop.
type scmSession[R any] struct {
	requests <-chan R
	kind     func(R) scmRequest
	report   func(scmStatus)
	ticks    <-chan time.Time
}

// run runs serve as the service and returns the service's exit code and why
// it ended.
//
// It reports StartPending, starts serve, and reports Running, accepting
// stop, without waiting for serve to get anywhere: serve replays the journal
// and reconciles, which can outlast the manager's start timeout
// (nats-server issue #6313). An interrogation reports the current status
// again; other requests are ignored. A stop request cancels serve's context
// and reports StopPending at checkpoint 1, then the next checkpoint on every
// tick until serve returns.
//
// After a stop request the exit code is 0, and the error is serve's (its
// trouble stopping), or errStopTimeout when serve still runs at the tick
// after checkpoint stopCheckpoints; run then returns without it, and the
// process is expected to exit. Without a stop request, serve's return is a
// failure: exitAgentFailed with serve's error, or errAgentEnded when it
// returned nil, so that the manager's recovery actions restart the service.
func (s scmSession[R]) run(serve func(context.Context) error) (uint32, error) {
	s.report(scmStatus{State: stateStartPending, WaitHint: startWaitHint})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1) // buffered: after errStopTimeout nobody receives
	go func() { done <- serve(ctx) }()

	status := scmStatus{State: stateRunning, AcceptStop: true}
	s.report(status)
	for status.State == stateRunning {
		select {
		case err := <-done:
			if err == nil {
				err = errAgentEnded
			}
			return exitAgentFailed, err
		case r := <-s.requests:
			switch s.kind(r) {
			case requestInterrogate:
				s.report(status)
			case requestStop:
				cancel()
				status = scmStatus{State: stateStopPending, CheckPoint: 1, WaitHint: stopWaitHint}
				s.report(status)
			}
		}
	}
	for {
		select {
		case err := <-done:
			return 0, err
		case <-s.ticks:
			if status.CheckPoint == stopCheckpoints {
				return 0, errStopTimeout
			}
			status.CheckPoint++
			s.report(status)
		case r := <-s.requests:
			if s.kind(r) == requestInterrogate {
				s.report(status)
			}
		}
	}
}

// serviceControl is the service control manager as the service commands use
// it, for the service named serviceName. Each method other than create
// returns errServiceNotInstalled when there is no such service.
type serviceControl interface {
	create(serviceSpec) error // errServiceExists when already installed
	remove() error            // deletes the service once it has stopped
	start() error             // asks the manager to start it
	stop() error              // sends it a stop request
	query() (scmStatus, error)
	close() error
}

// settle looks at the service every `every` until it is in no pending state,
// and returns that status.
func settle(ctx context.Context, c serviceControl, every time.Duration) (scmStatus, error) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		st, err := c.query()
		if err != nil || (st.State != stateStartPending && st.State != stateStopPending) {
			return st, err
		}
		select {
		case <-ctx.Done():
			return st, fmt.Errorf("service %s still %s: %w", serviceName, st.State, ctx.Err())
		case <-t.C:
		}
	}
}

// startService starts the service and returns once it reports Running,
// which berthd does before it replays its journal; a service that stops
// instead is errServiceFailed. A running service is left alone.
func startService(ctx context.Context, c serviceControl, out io.Writer, every time.Duration) error {
	st, err := settle(ctx, c, every)
	if err != nil {
		return err
	}
	if st.State == stateRunning {
		fmt.Fprintf(out, "service %s is already running\n", serviceName)
		return nil
	}
	if err := c.start(); err != nil {
		return fmt.Errorf("starting service %s: %w", serviceName, err)
	}
	if st, err = settle(ctx, c, every); err != nil {
		return err
	}
	if st.State != stateRunning {
		return fmt.Errorf("%w: %s with exit code %d; see %s in its data directory", errServiceFailed, st.State, st.ExitCode, serviceLogName)
	}
	fmt.Fprintf(out, "service %s started\n", serviceName)
	return nil
}

// stopService stops the service and returns once it has stopped. A stopped
// service is left alone.
func stopService(ctx context.Context, c serviceControl, out io.Writer, every time.Duration) error {
	st, err := settle(ctx, c, every)
	if err != nil {
		return err
	}
	if st.State == stateStopped {
		fmt.Fprintf(out, "service %s is not running\n", serviceName)
		return nil
	}
	if err := c.stop(); err != nil {
		return fmt.Errorf("stopping service %s: %w", serviceName, err)
	}
	if st, err = settle(ctx, c, every); err != nil {
		return err
	}
	if st.State != stateStopped {
		return fmt.Errorf("service %s is %s after the stop request", serviceName, st.State)
	}
	fmt.Fprintf(out, "service %s stopped\n", serviceName)
	return nil
}

// uninstallService stops the service if it runs, then removes it.
func uninstallService(ctx context.Context, c serviceControl, out io.Writer, every time.Duration) error {
	if err := stopService(ctx, c, out, every); err != nil {
		return err
	}
	if err := c.remove(); err != nil {
		return err
	}
	fmt.Fprintf(out, "service %s removed\n", serviceName)
	return nil
}

// openServiceLog opens DIR/berthd.log for appending, creating DIR and the
// file as needed. A file larger than limit is first renamed to
// berthd.log.1, replacing the one before.
func openServiceLog(dir string, limit int64) (*os.File, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data directory: %w", err)
	}
	path := filepath.Join(dir, serviceLogName)
	if fi, err := os.Stat(path); err == nil && fi.Size() > limit {
		if err := os.Rename(path, path+".1"); err != nil {
			return nil, fmt.Errorf("rotating the log: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("log file: %w", err)
	}
	return f, nil
}
