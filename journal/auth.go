package journal

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/berthhq/berth/events"
)

// Role is an identity on the bus. Each role is an NKey user whose subject
// permissions [Permissions] states.
type Role string

// The roles berth knows.
const (
	// RoleAgent is the agent's own identity: everything of its node.
	RoleAgent Role = "agent"
	// RoleControl is the control plane: it publishes the node's commands,
	// reads their replies, asks queries and reads events and logs.
	RoleControl Role = "control"
	// RoleOperator is a read-only operator: queries, events and logs, but
	// no command.
	RoleOperator Role = "operator"
)

// Roles lists every role, in the order `berthd auth init` writes them.
var Roles = []Role{RoleAgent, RoleControl, RoleOperator}

// ErrNoCredentials reports an auth directory without berth's credentials.
var ErrNoCredentials = errors.New("no credentials")

// usersFile names the public keys by role in an auth directory.
const usersFile = "users.json"

// SeedFile returns the path of role's NKey seed file in the auth directory dir.
func SeedFile(dir string, role Role) string { return filepath.Join(dir, string(role)+".nk") }

// InboxPrefix is the inbox prefix of the NKey user whose public key is pub:
// the control plane and the operator may subscribe to no other inboxes, so
// that neither reads the other's replies. A client signing in as pub must
// use it (nats.CustomInboxPrefix), as [NKeyOptions] does.
func InboxPrefix(pub string) string { return "_INBOX." + pub }

// NKeyOptions returns the nats.go options that sign in as the NKey user
// whose seed is in file, with that user's inbox prefix.
func NKeyOptions(file string) ([]nats.Option, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("nkey seed: %w", err)
	}
	kp, err := nkeys.FromSeed(bytes.TrimSpace(b))
	if err != nil {
		return nil, fmt.Errorf("%w: nkey seed %s: %v", events.ErrInvalid, file, err)
	}
	pub, _ := kp.PublicKey()
	return []nats.Option{nats.Nkey(pub, kp.Sign), nats.CustomInboxPrefix(InboxPrefix(pub))}, nil
}

// Permissions returns what role, signed in as the NKey user pub, may
// publish and subscribe to for the node and prefix of subj. Replies and
// JetStream API answers go to inboxes: the agent's under "_INBOX.", the
// other roles' under their own [InboxPrefix].
//
// The control plane and the operator read the node's event and log streams
// through the JetStream API (stream info, direct gets, ordered consumers)
// and ask queries with request/reply on the node's API subjects. Only the
// control plane (and the agent) may publish to the node's command subjects.
func Permissions(role Role, subj events.Subjects, pub string) (*server.Permissions, error) {
	node := subj.Node
	anyOf := func(kind string) string { return subj.Prefix + "." + kind + "." + node + ".>" }
	read := []string{anyOf("api"), "$SRV.>", "$JS.API.INFO"}
	for _, s := range []string{subj.EventStream(), subj.LogStream()} {
		read = append(read,
			"$JS.API.STREAM.INFO."+s,
			"$JS.API.STREAM.MSG.GET."+s,
			"$JS.API.DIRECT.GET."+s, "$JS.API.DIRECT.GET."+s+".>",
			"$JS.API.CONSUMER.CREATE."+s, "$JS.API.CONSUMER.CREATE."+s+".>",
			"$JS.API.CONSUMER.MSG.NEXT."+s+".>",
			"$JS.API.CONSUMER.INFO."+s+".>",
			"$JS.API.CONSUMER.DELETE."+s+".>",
		)
	}
	sub := []string{InboxPrefix(pub) + ".>", anyOf("evt"), anyOf("log"), anyOf("progress")}
	allow := func(pub, sub []string) *server.Permissions {
		return &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: pub},
			Subscribe: &server.SubjectPermission{Allow: sub},
		}
	}
	switch role {
	case RoleOperator:
		return allow(read, sub), nil
	case RoleControl:
		// Exec stdio: the client side publishes in, resize and credit and
		// reads out, err and exit of any exec id of the node.
		exec := func(ch string) string { return subj.Exec("*", ch) }
		pub := append([]string{anyOf("cmd"), exec(events.ExecIn), exec(events.ExecResize), exec(events.ExecCredit)}, read...)
		return allow(pub, append(sub, exec(events.ExecOut), exec(events.ExecErr), exec(events.ExecExitCh))), nil
	case RoleAgent:
		// The agent owns its node's streams, answers on inboxes and serves
		// the micro service; it is kept to its own node's subjects.
		mine := subj.Prefix + ".*." + node + ".>"
		return allow(
			[]string{mine, "_INBOX.>", "$JS.>", "$KV." + subj.SnapshotBucket() + ".>", "$SRV.>"},
			[]string{mine, "_INBOX.>", "$SRV.>"},
		), nil
	}
	return nil, fmt.Errorf("%w: role %q: want agent, control or operator", events.ErrInvalid, role)
}

// Credentials are the NKey users of a node: each role's public key, and
// the agent's seed, which the agent signs its own connections with.
type Credentials struct {
	Users     map[Role]string // public keys (U...)
	AgentSeed []byte
}

// InitCredentials creates dir if needed and writes a new NKey user for
// every role: the seed to dir/<role>.nk (mode 0600) and the public keys to
// dir/users.json. For an external NATS server it also writes
// dir/nats-server.conf, an authorization block with the three users and
// their permissions for subj's node (NATS configuration accepts JSON).
// It refuses to overwrite existing credentials.
func InitCredentials(dir string, subj events.Subjects) (Credentials, error) {
	if _, err := os.Stat(filepath.Join(dir, usersFile)); err == nil {
		return Credentials{}, fmt.Errorf("%w: credentials exist in %s; remove them first to make new ones", events.ErrConflict, dir)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return Credentials{}, fmt.Errorf("auth directory: %w", err)
	}
	c := Credentials{Users: map[Role]string{}}
	type user struct {
		NKey        string              `json:"nkey"`
		Permissions *server.Permissions `json:"permissions"`
	}
	var users []user
	for _, r := range Roles {
		kp, err := nkeys.CreateUser()
		if err != nil {
			return Credentials{}, fmt.Errorf("nkey for %s: %w", r, err)
		}
		seed, _ := kp.Seed()
		pub, _ := kp.PublicKey()
		if err := os.WriteFile(SeedFile(dir, r), append(seed, '\n'), 0o600); err != nil {
			return Credentials{}, fmt.Errorf("seed of %s: %w", r, err)
		}
		perms, _ := Permissions(r, subj, pub)
		users = append(users, user{NKey: pub, Permissions: perms})
		c.Users[r] = pub
		if r == RoleAgent {
			c.AgentSeed = seed
		}
	}
	// NATS configuration reads JSON, but not the \u escapes of '>' that
	// json.Marshal writes by default.
	var conf bytes.Buffer
	enc := json.NewEncoder(&conf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(map[string]any{"authorization": map[string]any{"users": users}}); err != nil {
		return Credentials{}, err
	}
	if err := os.WriteFile(filepath.Join(dir, "nats-server.conf"), conf.Bytes(), 0o600); err != nil {
		return Credentials{}, fmt.Errorf("server config: %w", err)
	}
	pubs, _ := json.MarshalIndent(c.Users, "", "  ")
	if err := os.WriteFile(filepath.Join(dir, usersFile), append(pubs, '\n'), 0o600); err != nil {
		return Credentials{}, fmt.Errorf("public keys: %w", err)
	}
	return c, nil
}

// LoadCredentials reads the credentials InitCredentials wrote to dir: the
// public keys of every role and the agent's seed. The control plane's and
// the operator's seeds need not stay in dir. A directory without them is
// an error wrapping ErrNoCredentials.
func LoadCredentials(dir string) (Credentials, error) {
	b, err := os.ReadFile(filepath.Join(dir, usersFile))
	if errors.Is(err, os.ErrNotExist) {
		return Credentials{}, fmt.Errorf("%w in %s (berthd auth init writes them)", ErrNoCredentials, dir)
	}
	if err != nil {
		return Credentials{}, fmt.Errorf("credentials: %w", err)
	}
	var c Credentials
	if err := json.Unmarshal(b, &c.Users); err != nil {
		return Credentials{}, fmt.Errorf("%w: credentials %s: %v", events.ErrInvalid, filepath.Join(dir, usersFile), err)
	}
	for _, r := range Roles {
		if !nkeys.IsValidPublicUserKey(c.Users[r]) {
			return Credentials{}, fmt.Errorf("%w: credentials %s: %s: %q is not an NKey user public key", events.ErrInvalid, filepath.Join(dir, usersFile), r, c.Users[r])
		}
	}
	if c.AgentSeed, err = os.ReadFile(SeedFile(dir, RoleAgent)); err != nil {
		return Credentials{}, fmt.Errorf("agent seed: %w", err)
	}
	c.AgentSeed = []byte(strings.TrimSpace(string(c.AgentSeed)))
	kp, err := nkeys.FromSeed(c.AgentSeed)
	if err != nil {
		return Credentials{}, fmt.Errorf("%w: agent seed %s: %v", events.ErrInvalid, SeedFile(dir, RoleAgent), err)
	}
	if pub, _ := kp.PublicKey(); pub != c.Users[RoleAgent] {
		return Credentials{}, fmt.Errorf("%w: agent seed %s does not belong to the agent's public key in %s", events.ErrInvalid, SeedFile(dir, RoleAgent), usersFile)
	}
	return c, nil
}

// nkeyUsers returns the server's NKey users for c with their permissions.
func (c Credentials) nkeyUsers(subj events.Subjects) ([]*server.NkeyUser, error) {
	var us []*server.NkeyUser
	for _, r := range Roles {
		perms, err := Permissions(r, subj, c.Users[r])
		if err != nil {
			return nil, err
		}
		us = append(us, &server.NkeyUser{Nkey: c.Users[r], Permissions: perms})
	}
	return us, nil
}

// AgentOption returns the option that authenticates a connection as the
// agent, signing with its seed.
func (c Credentials) AgentOption() (nats.Option, error) {
	kp, err := nkeys.FromSeed(c.AgentSeed)
	if err != nil {
		return nil, fmt.Errorf("%w: agent seed: %v", events.ErrInvalid, err)
	}
	pub, _ := kp.PublicKey()
	return nats.Nkey(pub, kp.Sign), nil
}

// TLSFiles names PEM files for TLS: a certificate authority, and a
// certificate with its private key. For a client, CA verifies the server
// and Cert/Key are its client certificate; for the embedded server's
// listener, Cert/Key are the server's and CA, when set, the authority that
// every client's certificate must be signed by.
type TLSFiles struct{ CA, Cert, Key string }

// IsZero reports whether no file is named.
func (f TLSFiles) IsZero() bool { return f == TLSFiles{} }

func (f TLSFiles) check() error {
	if (f.Cert == "") != (f.Key == "") {
		return fmt.Errorf("%w: tls: a certificate needs its key and a key its certificate", events.ErrInvalid)
	}
	return nil
}

// ClientOptions returns the nats.go options for a TLS connection with f.
func (f TLSFiles) ClientOptions() ([]nats.Option, error) {
	if err := f.check(); err != nil {
		return nil, err
	}
	var opts []nats.Option
	if f.CA != "" {
		opts = append(opts, nats.RootCAs(f.CA))
	}
	if f.Cert != "" {
		opts = append(opts, nats.ClientCert(f.Cert, f.Key))
	}
	return opts, nil
}
