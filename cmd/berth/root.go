package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/spf13/cobra"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/journal"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1 // a command failed
	exitUsage   = 2 // bad flags or arguments
)

// exitError carries the exit code of an error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func usageError(err error) error { return &exitError{code: exitUsage, err: err} }

// errReported ends a verb whose failures were already printed, one per
// container.
var errReported = errors.New("failures reported above")

// report prints one container's failure.
func (c *cli) report(id string, err error) {
	fmt.Fprintf(c.stderr, "berth: %s: %v\n", id, err)
}

// cli is one invocation of berth: its flags, outputs and connection.
type cli struct {
	stdout, stderr io.Writer
	lookup         func(string) (string, bool)
	now            func() time.Time

	natsURL string
	creds   string
	nkey    string
	tls     journal.TLSFiles
	node    string
	prefix  string
	timeout time.Duration
	output  string

	nc     *nats.Conn
	client *control.Client
}

// run executes berth with args and returns the process exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, lookup func(string) (string, bool)) int {
	c := &cli{stdout: stdout, stderr: stderr, lookup: lookup, now: time.Now}
	defer c.close()
	root := c.rootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	code := exitUsage // errors cobra reports itself: unknown verbs, flags, arguments
	var ee *exitError
	if errors.As(err, &ee) {
		code = ee.code
	}
	if !errors.Is(err, errReported) {
		fmt.Fprintf(stderr, "berth: %v\n", err)
	}
	if code == exitUsage && cmd != nil {
		fmt.Fprintf(stderr, "See '%s --help'.\n", cmd.CommandPath())
	}
	return code
}

func (c *cli) env(key, def string) string {
	if v, ok := c.lookup(key); ok && v != "" {
		return v
	}
	return def
}

func (c *cli) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "berth",
		Short: "Run and inspect containers on a berth node",
		Long: `berth sends commands to a berth agent through the node's durable command inbox
and asks the node's query service, over NATS. A command sent while the agent is
down is kept and runs when the agent comes back.

Sign in with an NKey seed file that berthd auth init wrote (--nkey control.nk for
the control plane, operator.nk to only read), a credentials file (--creds), or a
user and password in the URL: nats://user:password@host:4222. For TLS, give the
server's CA (--tls-ca) and, if the server asks for one, a client certificate.`,
		SilenceUsage:      true,
		SilenceErrors:     true,
		PersistentPreRunE: c.checkGlobals,
	}
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError(err) })
	pf := root.PersistentFlags()
	pf.StringVar(&c.natsURL, "nats-url", c.env("BERTH_NATS_URL", nats.DefaultURL), "NATS server URL (env BERTH_NATS_URL)")
	pf.StringVar(&c.creds, "creds", c.env("BERTH_NATS_CREDS", ""), "NATS credentials file (env BERTH_NATS_CREDS)")
	pf.StringVar(&c.nkey, "nkey", c.env("BERTH_NKEY", ""), "NKey seed file to sign in with (env BERTH_NKEY)")
	pf.StringVar(&c.tls.CA, "tls-ca", c.env("BERTH_TLS_CA", ""), "CA of the NATS server's certificate, PEM (env BERTH_TLS_CA)")
	pf.StringVar(&c.tls.Cert, "tls-cert", c.env("BERTH_TLS_CERT", ""), "client certificate, PEM (env BERTH_TLS_CERT)")
	pf.StringVar(&c.tls.Key, "tls-key", c.env("BERTH_TLS_KEY", ""), "client certificate's private key, PEM (env BERTH_TLS_KEY)")
	pf.StringVar(&c.node, "node", c.env("BERTH_NODE", defaultNode(os.Hostname)), "node id (env BERTH_NODE, else this host's name)")
	pf.StringVar(&c.prefix, "prefix", c.env("BERTH_PREFIX", events.DefaultPrefix), "subject prefix (env BERTH_PREFIX)")
	pf.DurationVar(&c.timeout, "timeout", control.DefaultTimeout, "how long to wait for the agent")
	pf.StringVarP(&c.output, "output", "o", "", "output format: table or json")

	root.AddCommand(
		c.runCmd(events.VerbRun), c.runCmd(events.VerbCreate),
		c.containerCmd("start", "Start created containers", (*control.Client).Start), c.stopCmd(),
		c.containerCmd("kill", "Terminate running containers at once", (*control.Client).Kill), c.rmCmd(),
		c.psCmd(), c.inspectCmd(), c.statsCmd(), c.logsCmd(), c.execCmd(), c.eventsCmd(), c.stateCmd(), c.planCmd(), c.networkCmd(), c.versionCmd(),
		c.pullCmd(), c.imagesCmd(), c.rmiCmd(), c.tagCmd(), c.loadCmd(), c.imageCmd(),
	)
	return root
}

// defaultNode returns the host name lower-cased when it is a valid node id,
// else "".
func defaultNode(hostname func() (string, error)) string {
	h, err := hostname()
	if err != nil {
		return ""
	}
	h, _, _ = strings.Cut(strings.ToLower(h), ".")
	if events.ValidateNodeID(h) != nil {
		return ""
	}
	return h
}

func (c *cli) checkGlobals(*cobra.Command, []string) error {
	switch c.output {
	case "", "table", "json":
	default:
		return usageError(fmt.Errorf("invalid argument %q for -o, --output: want table or json", c.output))
	}
	if c.timeout <= 0 {
		return usageError(fmt.Errorf("invalid argument %q for --timeout: must be positive", c.timeout))
	}
	return nil
}

// json reports whether output is JSON; def is the verb's default.
func (c *cli) json(def string) bool {
	if c.output == "" {
		return def == "json"
	}
	return c.output == "json"
}

// connect opens the NATS connection and the client, once.
func (c *cli) connect() (*control.Client, error) {
	if c.client != nil {
		return c.client, nil
	}
	if c.node == "" {
		return nil, usageError(errors.New("--node is required: this host's name is not a valid node id; set --node or BERTH_NODE"))
	}
	if err := events.ValidateNodeID(c.node); err != nil {
		return nil, usageError(fmt.Errorf("invalid argument %q for --node: %w", c.node, err))
	}
	opts := []nats.Option{nats.Name("berth"), nats.Timeout(min(c.timeout, 10*time.Second)), nats.MaxReconnects(2),
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			if !errors.Is(err, nats.ErrPermissionViolation) { // the verb reports those as its own error
				fmt.Fprintf(c.stderr, "berth: nats: %v\n", err)
			}
		})}
	if c.creds != "" {
		opts = append(opts, nats.UserCredentials(c.creds))
	}
	if c.nkey != "" {
		sign, err := journal.NKeyOptions(c.nkey)
		if err != nil {
			return nil, usageError(fmt.Errorf("invalid argument %q for --nkey: %w", c.nkey, err))
		}
		opts = append(opts, sign...)
	}
	tlsOpts, err := c.tls.ClientOptions()
	if err != nil {
		return nil, usageError(err)
	}
	opts = append(opts, tlsOpts...)
	nc, err := nats.Connect(c.natsURL, opts...)
	if err != nil {
		return nil, fmt.Errorf("connecting to %s: %w", redact(c.natsURL), err)
	}
	cl, err := control.NewClient(nc, c.node, control.WithPrefix(c.prefix), control.WithTimeout(c.timeout))
	if err != nil {
		nc.Close()
		return nil, err
	}
	c.nc, c.client = nc, cl
	return cl, nil
}

func (c *cli) close() {
	if c.nc != nil {
		c.nc.Close()
	}
}

// redact hides passwords in NATS URLs.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			parts[i] = u.Redacted()
		}
	}
	return strings.Join(parts, ",")
}

// runE wraps a verb so that its errors exit with 1, unless they carry their
// own code.
func runE(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		err := fn(cmd, args)
		var ee *exitError
		var fe *flagError
		switch {
		case err == nil, errors.As(err, &ee):
			return err
		case errors.As(err, &fe):
			return usageError(err)
		}
		return &exitError{code: exitFailure, err: err}
	}
}

// args checks the positional argument count and reports a usage error.
func args(min, max int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, a []string) error {
		switch {
		case len(a) < min:
			return usageError(fmt.Errorf("%q requires %s", cmd.CommandPath(), what))
		case max >= 0 && len(a) > max:
			return usageError(fmt.Errorf("%q accepts %s, got %d arguments", cmd.CommandPath(), what, len(a)))
		}
		return nil
	}
}
