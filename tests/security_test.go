package tests

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/journal"
	"github.com/berthhq/berth/winsim"
)

// asyncErrors collects a connection's asynchronous errors, where NATS
// reports permission violations.
type asyncErrors struct {
	mu   sync.Mutex
	errs []error
}

func (a *asyncErrors) option() nats.Option {
	return nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		a.mu.Lock()
		defer a.mu.Unlock()
		a.errs = append(a.errs, err)
	})
}

func (a *asyncErrors) find(substr string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, err := range a.errs {
		if strings.Contains(err.Error(), substr) {
			return true
		}
	}
	return false
}

// connectAs connects to url signing in with the seed file of role in dir.
func connectAs(t *testing.T, url, dir string, role journal.Role, opts ...nats.Option) *nats.Conn {
	t.Helper()
	sign, err := journal.NKeyOptions(journal.SeedFile(dir, role))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(url, append(sign, opts...)...)
	if err != nil {
		t.Fatalf("connect as %s: %v", role, err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// creds returns the public keys of the credentials in dir.
func creds(t *testing.T, dir string) map[journal.Role]string {
	t.Helper()
	c, err := journal.LoadCredentials(dir)
	if err != nil {
		t.Fatal(err)
	}
	return c.Users
}

// commandSeen reports whether any event in the journal was caused by the
// command id.
func commandSeen(t *testing.T, client *control.Client, id string) bool {
	t.Helper()
	seen := false
	err := client.Events(context.Background(), control.EventsOptions{}, func(e events.Event) error {
		seen = seen || e.Command == id
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return seen
}

// startListeningAgent starts an agent whose embedded server listens on
// loopback for berth's NKey users, made anew (with TLS from tls, if set).
// It returns the agent, stopped when the test ends, and the directory of
// the credentials.
func startListeningAgent(t *testing.T, tls journal.TLSFiles) (*agent.Agent, string) {
	t.Helper()
	dir := t.TempDir()
	authDir := filepath.Join(dir, "auth")
	creds, err := journal.InitCredentials(authDir, events.NewSubjects("", testNode))
	if err != nil {
		t.Fatal(err)
	}
	host := winsim.New()
	t.Cleanup(func() { host.Close() })
	a := startAgent(t, agent.Options{DataDir: dir, Listen: "127.0.0.1:0", Credentials: &creds, Compute: host.Compute(), TLS: tls})
	t.Cleanup(func() { stopAgent(t, a) })
	return a, authDir
}

// TestBusAuthentication runs the agent with its embedded server listening
// on loopback with berth's NKey users, and checks who may do what: a
// client without credentials or with an unknown key is refused, the
// read-only operator can query and read events but its commands never
// reach the inbox or the journal, and the control plane runs commands.
func TestBusAuthentication(t *testing.T) {
	ctx := context.Background()
	a, authDir := startListeningAgent(t, journal.TLSFiles{})
	url := a.Server.ClientURL()
	if url == "" {
		t.Fatal("the agent does not listen")
	}

	// No credentials, or a key the server does not know: refused.
	if nc, err := nats.Connect(url); err == nil {
		nc.Close()
		t.Fatal("connected without credentials")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect without credentials: %v, want an authorization violation", err)
	}
	stranger, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := stranger.PublicKey()
	if nc, err := nats.Connect(url, nats.Nkey(pub, stranger.Sign)); err == nil {
		nc.Close()
		t.Fatal("connected with an unknown NKey")
	} else if !errors.Is(err, nats.ErrAuthorization) {
		t.Fatalf("connect with an unknown NKey: %v, want an authorization violation", err)
	}

	// The control plane runs commands and reads their replies.
	ctl := connectAs(t, url, authDir, journal.RoleControl)
	control1, err := control.NewClient(ctl, testNode, control.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := control1.Run(ctx, "web", pingSpec); err != nil || r.Phase != events.PhaseRunning {
		t.Fatalf("control plane run: %+v %v", r, err)
	}

	// The operator reads: queries, events, logs.
	var opErrs asyncErrors
	op := connectAs(t, url, authDir, journal.RoleOperator, opErrs.option())
	operator, err := control.NewClient(op, testNode, control.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if cs, err := operator.Ps(ctx, true); err != nil || len(cs) != 1 {
		t.Fatalf("operator ps: %v %v", cs, err)
	}
	if !commandSeen(t, operator, "") {
		t.Fatal("the operator read no event")
	}
	if err := operator.Logs(ctx, "web", control.LogsOptions{}, func(control.LogLine) error { return nil }); err != nil {
		t.Fatalf("operator logs: %v", err)
	}

	// ... but its command is refused by the server and never stored.
	cmd := events.Command{ID: events.NewID(), Verb: events.VerbKill, Container: "web"}
	short, cancel := context.WithTimeout(ctx, time.Second)
	_, err = operator.Do(short, cmd)
	cancel()
	if !errors.Is(err, control.ErrForbidden) {
		t.Fatalf("the operator's command: %v, want ErrForbidden", err)
	}
	if !opErrs.find("Permissions Violation for Publish") {
		t.Fatal("no permissions violation reported to the operator's connection")
	}
	if c, err := control1.Inspect(ctx, "web"); err != nil || c.Phase != events.PhaseRunning {
		t.Fatalf("after the operator's kill: %+v %v, want running", c, err)
	}
	if commandSeen(t, control1, cmd.ID) {
		t.Fatal("the operator's command reached the journal")
	}
	js, err := a.Conn.JetStream()
	if err != nil {
		t.Fatal(err)
	}
	if info, err := js.StreamInfo(a.Subjects.CommandStream()); err != nil || info.State.Msgs != 0 {
		t.Fatalf("command inbox after the operator's command: %+v %v, want empty", info, err)
	}

	// The operator cannot read commands off the inbox nor write events.
	if _, err := op.Request("$JS.API.CONSUMER.CREATE."+a.Subjects.CommandStream(), []byte(`{}`), time.Second); err == nil {
		t.Fatal("the operator created a consumer on the command inbox")
	}
	if err := op.Publish(a.Subjects.Event(events.KindContainer, "web"), []byte(`{}`)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the event permission violation", func() bool {
		return opErrs.find(`Permissions Violation for Publish to "` + a.Subjects.Event(events.KindContainer, "web"))
	})

	// Nor read the control plane's replies: its inboxes are its own.
	ctlInbox := journal.InboxPrefix(creds(t, authDir)[journal.RoleControl]) + ".>"
	for _, subj := range []string{"_INBOX.>", ctlInbox} {
		if _, err := op.SubscribeSync(subj); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the subscription violation on "+subj, func() bool {
			return opErrs.find(`Permissions Violation for Subscription to "` + subj + `"`)
		})
	}

	// The control plane's kill goes through.
	if r, err := control1.Kill(ctx, "web"); err != nil || r.Phase != events.PhaseExited {
		t.Fatalf("control plane kill: %+v %v", r, err)
	}
}

// TestBusTLS runs the embedded listener with a server certificate and a
// client CA: a client with a certificate the CA signed gets in (with its
// NKey), a client without one does not.
func TestBusTLS(t *testing.T) {
	ctx := context.Background()
	pki := newPKI(t, t.TempDir())
	a, authDir := startListeningAgent(t, journal.TLSFiles{CA: pki.ca, Cert: pki.serverCert, Key: pki.serverKey})
	url := strings.Replace(a.Server.ClientURL(), "nats://", "tls://", 1)

	tlsOpts, err := journal.TLSFiles{CA: pki.ca, Cert: pki.clientCert, Key: pki.clientKey}.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	nc := connectAs(t, url, authDir, journal.RoleOperator, tlsOpts...)
	if !nc.TLSRequired() {
		t.Fatal("the connection is not TLS")
	}
	client, err := control.NewClient(nc, testNode, control.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := client.Health(ctx); err != nil {
		t.Fatalf("health over TLS: %v", err)
	}

	// The server's CA alone, no client certificate: refused.
	caOnly, err := journal.TLSFiles{CA: pki.ca}.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	sign, err := journal.NKeyOptions(journal.SeedFile(authDir, journal.RoleOperator))
	if err != nil {
		t.Fatal(err)
	}
	if nc, err := nats.Connect(url, append(append(caOnly, sign...), nats.Timeout(3*time.Second))...); err == nil {
		nc.Close()
		t.Fatal("connected without a client certificate")
	}
}

// pki holds the PEM files of a test certificate authority, a server
// certificate for 127.0.0.1 and a client certificate.
type pki struct {
	ca, serverCert, serverKey, clientCert, clientKey string
}

func newPKI(t *testing.T, dir string) pki {
	t.Helper()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	newKey := func() *ecdsa.PrivateKey {
		k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		return k
	}
	now := time.Now()
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "berth test CA"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	p := pki{ca: write("ca.pem", "CERTIFICATE", caDER)}
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) (string, string) {
		k := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, err := x509.MarshalECPrivateKey(k)
		if err != nil {
			t.Fatal(err)
		}
		return write(name+".pem", "CERTIFICATE", der), write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	p.serverCert, p.serverKey = leaf("server", 2, x509.ExtKeyUsageServerAuth)
	p.clientCert, p.clientKey = leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return p
}

// TestAgentOverTLSToAnExternalServer runs the agent in external mode
// against a server that requires TLS with client certificates and berth's
// NKey users: the agent signs in with its seed and its client certificate,
// and a control plane client gets its commands answered over the same.
func TestAgentOverTLSToAnExternalServer(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	pki := newPKI(t, filepath.Join(dir, "pki"))
	authDir := filepath.Join(dir, "auth")
	subj := events.NewSubjects("", testNode)
	creds, err := journal.InitCredentials(authDir, subj)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := journal.StartServer(ctx, journal.ServerOptions{DataDir: filepath.Join(dir, "nats"), Listen: "127.0.0.1:0",
		Credentials: &creds, Subjects: subj, TLS: journal.TLSFiles{CA: pki.ca, Cert: pki.serverCert, Key: pki.serverKey}})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Shutdown()
	url := strings.Replace(srv.ClientURL(), "nats://", "tls://", 1)
	client := journal.TLSFiles{CA: pki.ca, Cert: pki.clientCert, Key: pki.clientKey}
	host := winsim.New()
	defer host.Close()
	a := startAgent(t, agent.Options{NATSURL: url, Replicas: 1, Credentials: &creds, TLS: client, Compute: host.Compute()})
	defer stopAgent(t, a)
	if !a.Conn.TLSRequired() {
		t.Fatal("the agent's connection is not TLS")
	}
	tlsOpts, err := client.ClientOptions()
	if err != nil {
		t.Fatal(err)
	}
	ctl, err := control.NewClient(connectAs(t, url, authDir, journal.RoleControl, tlsOpts...), testNode, control.WithTimeout(10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if r, err := ctl.Run(ctx, "web", pingSpec); err != nil || r.Phase != events.PhaseRunning {
		t.Fatalf("run over TLS: %+v %v", r, err)
	}
}
