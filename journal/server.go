package journal

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"

	"github.com/berthhq/berth/events"
)

// DefaultMaxStore is the JetStream storage limit of an embedded server when
// [ServerOptions.MaxStore] is 0. It is set explicitly because the server
// cannot measure free disk space on every platform (on Windows it assumes
// 1 TiB).
const DefaultMaxStore = 8 << 30

// maxPayload is the largest message the embedded server accepts: a command
// of [events.MaxCommandSize] plus room for its headers.
const maxPayload = events.MaxCommandSize + 64<<10

// ServerOptions configures the embedded NATS server.
type ServerOptions struct {
	// DataDir holds the server's state; JetStream stores under DataDir/jetstream.
	DataDir string
	// Listen is "" for no network listener (in-process clients only), or a
	// host:port such as "127.0.0.1:4222"; port 0 or -1 picks a free port.
	// A listener requires authentication: Credentials or User.
	Listen string
	// User and Password, when User is set, are required of every client,
	// in-process ones included.
	User, Password string
	// Credentials, when set, make the server accept only their NKey users,
	// each with its role's [Permissions] for Subjects' node, in-process
	// clients included; [Server.Connect] signs in as the agent.
	Credentials *Credentials
	Subjects    events.Subjects
	// TLS, when it names a certificate, makes the listener speak TLS; when
	// it also names a CA, clients must present a certificate it signed.
	// In-process clients never use TLS.
	TLS TLSFiles
	// SyncAlways makes JetStream fsync every write before acknowledging it.
	SyncAlways bool
	// MaxStore limits JetStream file storage in bytes; 0 means DefaultMaxStore.
	MaxStore int64
	// Name is the server name; "" lets the server choose one.
	Name string
	// Logger receives the server's log at debug, info, warn and error level.
	// The zero Logger discards it.
	Logger zerolog.Logger
}

// Server is an embedded NATS server with JetStream.
type Server struct {
	ns             *server.Server
	user, password string
	agent          nats.Option // signs in as the agent, with Credentials
	listening      bool
}

// StartServer starts an embedded server and returns once it accepts
// connections and JetStream is enabled. If ctx ends first, the server is
// shut down and ctx's error returned.
func StartServer(ctx context.Context, o ServerOptions) (*Server, error) {
	if o.DataDir == "" {
		return nil, fmt.Errorf("%w: server options: empty data directory", events.ErrInvalid)
	}
	if o.MaxStore == 0 {
		o.MaxStore = DefaultMaxStore
	}
	opts := &server.Options{
		ServerName:             o.Name,
		DontListen:             o.Listen == "",
		NoSigs:                 true,
		MaxPayload:             maxPayload,
		JetStream:              true,
		StoreDir:               o.DataDir, // the server adds "jetstream"
		JetStreamMaxStore:      o.MaxStore,
		JetStreamMaxMemory:     64 << 20,
		SyncAlways:             o.SyncAlways,
		DisableJetStreamBanner: true,
	}
	if o.Listen != "" {
		host, port, err := listenAddr(o.Listen)
		if err != nil {
			return nil, err
		}
		if o.User == "" && o.Credentials == nil {
			return nil, fmt.Errorf("%w: listen %s: a listener needs credentials or a user and password", events.ErrInvalid, o.Listen)
		}
		opts.Host, opts.Port = host, port
		if err := listenTLS(opts, o.TLS); err != nil {
			return nil, err
		}
	} else if !o.TLS.IsZero() {
		return nil, fmt.Errorf("%w: tls: certificates are for a listener, and there is none", events.ErrInvalid)
	}
	if o.User != "" && o.Credentials != nil {
		return nil, fmt.Errorf("%w: server options: a user and password, or credentials, not both", events.ErrInvalid)
	}
	if o.User != "" {
		opts.Users = []*server.User{{Username: o.User, Password: o.Password}}
	}
	var agent nats.Option
	if o.Credentials != nil {
		us, err := o.Credentials.nkeyUsers(o.Subjects)
		if err != nil {
			return nil, err
		}
		if agent, err = o.Credentials.AgentOption(); err != nil {
			return nil, err
		}
		opts.Nkeys = us
	}
	ns, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats server: %w", err)
	}
	lg := o.Logger.With().Str("component", "nats").Logger()
	ns.SetLoggerV2(serverLogger{lg}, enabled(lg, zerolog.DebugLevel), enabled(lg, zerolog.TraceLevel), false)
	ns.Start()
	for !ns.ReadyForConnections(100 * time.Millisecond) {
		if err := ctx.Err(); err != nil {
			ns.Shutdown()
			ns.WaitForShutdown()
			return nil, fmt.Errorf("nats server start: %w", err)
		}
	}
	if !ns.JetStreamEnabled() {
		ns.Shutdown()
		ns.WaitForShutdown()
		return nil, fmt.Errorf("nats server start: %w: jetstream is not enabled (see the server log)", events.ErrUnavailable)
	}
	return &Server{ns: ns, user: o.User, password: o.Password, agent: agent, listening: o.Listen != ""}, nil
}

// listenTLS sets the listener's TLS from f.
func listenTLS(opts *server.Options, f TLSFiles) error {
	if f.IsZero() {
		return nil
	}
	if err := f.check(); err != nil {
		return err
	}
	if f.Cert == "" {
		return fmt.Errorf("%w: tls: the listener needs a certificate and key", events.ErrInvalid)
	}
	cfg, err := server.GenTLSConfig(&server.TLSConfigOpts{CertFile: f.Cert, KeyFile: f.Key, CaFile: f.CA, Verify: f.CA != ""})
	if err != nil {
		return fmt.Errorf("%w: tls: %v", events.ErrInvalid, err)
	}
	opts.TLSConfig, opts.TLS, opts.TLSVerify = cfg, true, f.CA != ""
	opts.TLSTimeout = 2
	return nil
}

func listenAddr(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, fmt.Errorf("%w: listen %q: %v", events.ErrInvalid, addr, err)
	}
	port, err := strconv.Atoi(p)
	if err != nil || port < -1 || port > 65535 {
		return "", 0, fmt.Errorf("%w: listen %q: port %q is not a number in -1..65535", events.ErrInvalid, addr, p)
	}
	if port == 0 {
		port = server.RANDOM_PORT // the server reads 0 as its default port
	}
	return host, port, nil
}

// Connect opens an in-process connection to the server, authenticated as
// the configured user, or as the agent with Credentials. opts are applied after berth's own options.
func (s *Server) Connect(opts ...nats.Option) (*nats.Conn, error) {
	base := []nats.Option{nats.InProcessServer(s.ns), nats.Name("berth-inprocess")}
	if s.user != "" {
		base = append(base, nats.UserInfo(s.user, s.password))
	}
	if s.agent != nil {
		base = append(base, s.agent)
	}
	nc, err := nats.Connect("", append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("nats in-process connect: %w", err)
	}
	return nc, nil
}

// ClientURL returns the URL clients reach the server at, or "" when it
// does not listen.
func (s *Server) ClientURL() string {
	if !s.listening {
		return ""
	}
	return s.ns.ClientURL()
}

// Shutdown stops the server and waits until it has stopped. Clients should
// close their connections first; an in-process connection left open tries
// to reconnect.
func (s *Server) Shutdown() {
	s.ns.Shutdown()
	s.ns.WaitForShutdown()
}

// Connect connects to an external NATS server at url and waits until the
// first connection is up or ctx ends. The connection reconnects forever;
// disconnects, reconnects and asynchronous errors (such as permission
// violations) are logged to zerolog.Ctx(ctx). opts are applied after
// berth's own options.
func Connect(ctx context.Context, url string, opts ...nats.Option) (*nats.Conn, error) {
	log := zerolog.Ctx(ctx).With().Str("component", "nats").Logger()
	base := []nats.Option{
		nats.Name("berth"),
		nats.MaxReconnects(-1),
		nats.RetryOnFailedConnect(true),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			log.Warn().Err(err).Msg("disconnected from nats")
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info().Str("url", nc.ConnectedUrlRedacted()).Msg("reconnected to nats")
		}),
		nats.ClosedHandler(func(*nats.Conn) { log.Info().Msg("nats connection closed") }),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			ev := log.Error().Err(err)
			if sub != nil {
				ev = ev.Str("subject", sub.Subject)
			}
			ev.Msg("nats asynchronous error")
		}),
	}
	nc, err := nats.Connect(url, append(base, opts...)...)
	if err != nil {
		return nil, fmt.Errorf("nats connect: %w", err)
	}
	up := nc.StatusChanged(nats.CONNECTED)
	defer nc.RemoveStatusListener(up)
	if nc.IsConnected() {
		return nc, nil
	}
	select {
	case <-up:
		return nc, nil
	case <-ctx.Done():
		nc.Close()
		return nil, fmt.Errorf("nats connect: %w: %w", events.ErrUnavailable, ctx.Err())
	}
}

// enabled reports whether l writes at level lvl.
func enabled(l zerolog.Logger, lvl zerolog.Level) bool {
	e := l.WithLevel(lvl)
	ok := e.Enabled()
	e.Discard()
	return ok
}

// serverLogger routes the server's log to zerolog.
type serverLogger struct{ l zerolog.Logger }

func (s serverLogger) Noticef(f string, v ...any) { s.l.Info().Msgf(f, v...) }
func (s serverLogger) Warnf(f string, v ...any)   { s.l.Warn().Msgf(f, v...) }
func (s serverLogger) Fatalf(f string, v ...any)  { s.l.Error().Msgf(f, v...) }
func (s serverLogger) Errorf(f string, v ...any)  { s.l.Error().Msgf(f, v...) }
func (s serverLogger) Debugf(f string, v ...any)  { s.l.Debug().Msgf(f, v...) }
func (s serverLogger) Tracef(f string, v ...any)  { s.l.Trace().Msgf(f, v...) }
