// Command berthd is the berth agent: one per Windows node. It keeps the
// node's journal in NATS JetStream (an embedded server by default), runs
// one actor per container on the host's compute service, and serves the
// command inbox and the query API.
//
// On Windows it drives HCS; elsewhere it runs on the simulated Windows host,
// whose state it keeps in the data directory, and says so when it starts.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/rs/zerolog"
	"github.com/spf13/cobra"

	"github.com/berthhq/berth/actors"
	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/imagedriver/registry"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/internal/metrics"
	"github.com/berthhq/berth/journal"
)

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

// options are berthd's settings. Each flag can also be set with an
// environment variable named BERTH_ and the flag's name in upper case with
// dashes as underscores (--data-dir: BERTH_DATA_DIR) and in a config file;
// applySettings applies the precedence.
type options struct {
	config        string
	http          string
	dataDir       string
	node          string
	prefix        string
	owner         string
	listen        string
	natsURL       string
	natsUser      string
	natsPassword  string
	authDir       string
	tls           journal.TLSFiles
	mountRoots    []string
	maxContainers int
	maxCommand    int
	replicas      int
	hostOps       int
	stopTimeout   time.Duration
	inboxAckWait  time.Duration
	snapshotEvery int
	exec          bool
	maxExecs      int
	execIdle      time.Duration
	logMaxBytes   string
	logMaxAge     time.Duration
	logRate       string
	logFormat     string
	logLevel      string
}

func run(args []string, stdout, stderr io.Writer) int {
	var o options
	cmd := &cobra.Command{
		Use:           "berthd --data-dir DIR --node NAME",
		Short:         "berth agent: runs the containers of one Windows node",
		Long:          "berth agent: runs the containers of one Windows node.\n\n" + precedence,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		PreRunE:       func(cmd *cobra.Command, _ []string) error { return applySettings(cmd.Flags(), os.LookupEnv) },
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return serve(ctx, o, stderr)
		},
	}
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	f := cmd.Flags()
	f.StringVar(&o.config, "config", "", "JSON config file whose keys are these flags' names (env BERTH_CONFIG)")
	f.StringVar(&o.http, "http", defaultHTTP, "serve /metrics, /healthz and /readyz on this loopback address (host:port); empty: off")
	f.StringVar(&o.dataDir, "data-dir", "", "directory for the journal, NATS storage, image layers (layers, tmp) and (off Windows) the simulated host")
	f.StringVar(&o.node, "node", defaultNode(), "node id: [a-z0-9][a-z0-9-]{0,62}")
	f.StringVar(&o.prefix, "prefix", events.DefaultPrefix, "NATS subject prefix")
	f.StringVar(&o.owner, "owner", "berth", "owner tag on every host object berth creates")
	f.StringVar(&o.listen, "listen", "", "embedded NATS: also listen on this address (host:port); clients sign in with the NKeys of --auth-dir")
	f.StringVar(&o.natsURL, "nats-url", "", "use this external NATS server instead of the embedded one")
	f.StringVar(&o.authDir, "auth-dir", "", "NKey credentials (berthd auth init); default DATA-DIR/auth, made on the first --listen")
	f.StringVar(&o.natsUser, "nats-user", "berth", "external NATS user, when --auth-dir holds no credentials")
	f.StringVar(&o.natsPassword, "nats-password", "", "external NATS password, when --auth-dir holds no credentials")
	f.StringVar(&o.tls.CA, "tls-ca", "", "external NATS: the server's CA; --listen: the CA client certificates must be signed by (PEM)")
	f.StringVar(&o.tls.Cert, "tls-cert", "", "external NATS: client certificate; --listen: the listener's certificate (PEM)")
	f.StringVar(&o.tls.Key, "tls-key", "", "the private key of --tls-cert (PEM)")
	f.IntVar(&o.replicas, "replicas", 0, "stream replicas (default 1 embedded, 3 external)")
	f.IntVar(&o.hostOps, "host-ops", 32, "concurrent host operations; more wait their turn")
	f.StringSliceVar(&o.mountRoots, "mount-root", nil, "host folder bind mounts may come from (Windows path; repeat or separate with commas); none: no bind mounts")
	f.IntVar(&o.maxContainers, "max-containers", 256, "containers the node may hold; creates beyond are refused (409); 0: no limit")
	f.IntVar(&o.maxCommand, "max-command-size", events.MaxCommandSize, "largest command message in bytes; larger ones are refused (400); at most the default")
	f.DurationVar(&o.stopTimeout, "stop-timeout", 10*time.Second, "grace period of a stop that names none")
	f.DurationVar(&o.inboxAckWait, "inbox-ack-wait", 2*time.Minute, "how long a command may go unanswered before the inbox delivers it again (after a crash)")
	f.IntVar(&o.snapshotEvery, "snapshot-every", 10000, "save a snapshot of the fold every N events")
	f.BoolVar(&o.exec, "exec", true, "serve exec; false refuses exec commands with 409")
	f.IntVar(&o.maxExecs, "exec-max-per-container", actors.DefaultMaxExecs, "exec sessions one container may run at once")
	f.DurationVar(&o.execIdle, "exec-idle-timeout", control.DefaultExecIdle, "kill an exec whose client sends nothing (no credit, no heartbeat) for this long")
	f.StringVar(&o.logMaxBytes, "log-max-bytes", "1Gi", "size limit of the node's log stream (container output); the oldest lines go first")
	f.DurationVar(&o.logMaxAge, "log-max-age", journal.DefaultLogMaxAge, "age limit of the node's log stream")
	f.StringVar(&o.logRate, "log-rate", "16Mi", "output a container may log per second (stdout and stderr together; bursts up to the same, so a 10 MiB line passes whole at the default); beyond it lines are dropped and one marker line says how much; 0: no limit")
	f.StringVar(&o.logFormat, "log-format", "json", "json, or console for people")
	f.StringVar(&o.logLevel, "log-level", "info", "debug, info, warn or error")
	cmd.AddCommand(&cobra.Command{
		Use:   "version",
		Short: "print the version",
		Args:  cobra.NoArgs,
		Run:   func(cmd *cobra.Command, _ []string) { fmt.Fprintln(cmd.OutOrStdout(), control.Version) },
	})
	addServiceCommand(cmd, &o)
	addConfigCommand(cmd)
	addAuthCommand(cmd, &o)
	if err := cmd.Execute(); err != nil {
		fmt.Fprintln(stderr, "berthd:", err)
		if errors.Is(err, errServiceUnsupported) {
			return 2
		}
		return 1
	}
	return 0
}

func defaultNode() string {
	h, err := os.Hostname()
	if err != nil {
		return ""
	}
	h = strings.ToLower(strings.SplitN(h, ".", 2)[0])
	if events.ValidateNodeID(h) != nil {
		return ""
	}
	return h
}

func newLogger(o options, w io.Writer) (zerolog.Logger, error) {
	lvl, err := zerolog.ParseLevel(o.logLevel)
	if err != nil {
		return zerolog.Nop(), fmt.Errorf("--log-level %q: %w", o.logLevel, err)
	}
	switch o.logFormat {
	case "json":
	case "console":
		w = zerolog.ConsoleWriter{Out: w, TimeFormat: time.RFC3339}
	default:
		return zerolog.Nop(), fmt.Errorf("--log-format %q: want json or console", o.logFormat)
	}
	zerolog.MessageFieldName = "msg" // protoactor's dead-letter logs carry a "message" attribute
	return zerolog.New(w).Level(lvl).With().Timestamp().Str("node", o.node).Logger(), nil
}

// mountRoots returns roots cleaned, or an error naming the first bad one.
func mountRoots(roots []string) ([]string, error) {
	var clean []string
	for _, r := range roots {
		c, err := events.CleanWindowsPath(r)
		if err != nil {
			return nil, fmt.Errorf("--mount-root: %w", err)
		}
		clean = append(clean, c)
	}
	return clean, nil
}

// serve runs the agent until ctx ends.
func serve(ctx context.Context, o options, stderr io.Writer) error {
	log, err := newLogger(o, stderr)
	if err != nil {
		return err
	}
	if o.dataDir == "" {
		return errors.New("--data-dir is required")
	}
	if err := events.ValidateNodeID(o.node); err != nil {
		return fmt.Errorf("--node: %w", err)
	}
	if err := os.MkdirAll(o.dataDir, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	logMax, err := events.ParseSize(o.logMaxBytes)
	if err != nil || logMax < 1<<20 {
		return fmt.Errorf("--log-max-bytes %q: want a size of at least 1Mi such as 512Mi or 2Gi", o.logMaxBytes)
	}
	logRate, err := events.ParseSize(o.logRate)
	if err != nil || logRate > 1<<30 {
		return fmt.Errorf("--log-rate %q: want 0 or a size per second such as 256Ki or 1Mi, at most 1Gi", o.logRate)
	}
	if o.logMaxAge < time.Minute {
		return fmt.Errorf("--log-max-age %s: want at least 1m", o.logMaxAge)
	}
	if o.maxExecs < 1 {
		return fmt.Errorf("--exec-max-per-container %d: want at least 1 (turn exec off with --exec=false)", o.maxExecs)
	}
	if o.execIdle < 2*control.ExecHeartbeat {
		return fmt.Errorf("--exec-idle-timeout %s: want at least %s, twice the clients' heartbeat", o.execIdle, 2*control.ExecHeartbeat)
	}
	if o.maxCommand < 1 || o.maxCommand > events.MaxCommandSize {
		return fmt.Errorf("--max-command-size %d: want 1..%d", o.maxCommand, events.MaxCommandSize)
	}
	if o.maxContainers < 0 {
		return fmt.Errorf("--max-containers %d: want 0 (no limit) or more", o.maxContainers)
	}
	roots, err := mountRoots(o.mountRoots)
	if err != nil {
		return err
	}
	m := metrics.New()
	var running atomic.Pointer[agent.Agent]
	if o.http != "" {
		stopHTTP, err := startHTTP(o.http, metrics.Handler(m, func() bool {
			a := running.Load()
			return a != nil && a.Ready()
		}), log)
		if err != nil {
			return err
		}
		defer stopHTTP()
	}
	h, err := openHost(ctx, o, log)
	if err != nil {
		return err
	}
	defer h.close()
	log.Info().Str("host", h.name).Str("data_dir", o.dataDir).Str("version", control.Version).
		Msgf("berthd starting on %s", h.describe)

	// Layers that wait for their parent during a pull are spooled here.
	tmp := filepath.Join(o.dataDir, "tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		return fmt.Errorf("data directory: %w", err)
	}
	ao := agent.Options{
		Node: o.node, Prefix: o.prefix, Owner: o.owner, DataDir: o.dataDir,
		Listen: o.listen, User: o.natsUser, Password: o.natsPassword, NATSURL: o.natsURL, TLS: o.tls, Replicas: o.replicas,
		Host: h.name, Compute: h.compute, Network: h.network, HostOps: o.hostOps, StopTimeout: o.stopTimeout, InboxAckWait: o.inboxAckWait,
		Images: registry.New(registry.Options{TempDir: tmp}), Layers: h.layers, Platform: h.platform, ClientEdition: h.client,
		SnapshotEvery: o.snapshotEvery, ExecOff: !o.exec, MaxExecs: o.maxExecs, ExecIdle: o.execIdle,
		LogMaxBytes: int64(logMax), LogMaxAge: o.logMaxAge, LogRate: int(logRate), MaxContainers: o.maxContainers, MaxCommandSize: o.maxCommand,
		MountRoots: roots, Metrics: m, Logger: log,
	}
	if ao.Credentials, err = credentials(o, log); err != nil {
		return err
	}
	a, err := agent.Start(ctx, ao)
	if err != nil {
		return err
	}
	running.Store(a)
	var fenced error
	select {
	case <-ctx.Done():
	case <-a.Fenced():
		fenced = a.FenceError()
		log.Error().Err(fenced).Msg("berthd fenced")
	}
	log.Info().Msg("berthd stopping")
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	return errors.Join(fenced, a.Stop(sctx))
}
