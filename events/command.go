package events

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
)

// Command verbs. Mutating verbs travel through the durable command inbox.
const (
	VerbCreate = "create"
	VerbStart  = "start"
	VerbRun    = "run" // create, then start
	VerbStop   = "stop"
	VerbKill   = "kill"
	VerbRemove = "remove"
	// VerbExec runs a process in a running container; the command's id
	// names the exec session.
	VerbExec = "exec"
	// VerbNetworkConfigure sets the node's network; it names no container.
	VerbNetworkConfigure = "network.configure"
)

// Verbs lists the verbs this version of the agent executes.
var Verbs = []string{VerbCreate, VerbStart, VerbRun, VerbStop, VerbKill, VerbRemove, VerbExec, VerbNetworkConfigure,
	VerbImagePull, VerbImageTag, VerbImageRemove, VerbImagePrune, VerbImageLoad}

// MaxCommandSize bounds an encoded command. Larger commands are refused
// before they are decoded.
const MaxCommandSize = 1 << 20

// Command is one request to change the node. ID is the idempotency key: the
// agent executes a command id at most once and answers repeats with the
// recorded outcome.
type Command struct {
	ID        string         `json:"id"`
	Verb      string         `json:"verb"`
	Container string         `json:"container,omitempty"`
	Spec      *ContainerSpec `json:"spec,omitempty"`    // create, run
	Timeout   *Duration      `json:"timeout,omitempty"` // stop: grace period before terminate
	Force     bool           `json:"force,omitempty"`   // remove: kill a running container first
	Network   *NetworkConfig `json:"network,omitempty"` // network.configure
	Exec      *ExecSpec      `json:"exec,omitempty"`    // exec
	Image     *ImageCommand  `json:"image,omitempty"`   // image.*
	// Auth authenticates the pull of image.pull, create and run to the
	// registry; see RegistryAuth for how it is kept secret.
	Auth *RegistryAuth `json:"auth,omitempty"`
}

// Validate checks a decoded command: the id, the verb, the container id
// (network.configure names none) and the fields the verb needs. Errors wrap
// ErrInvalid, or ErrNotFound for an unknown verb, and name the field at
// fault.
func (c *Command) Validate() error {
	if err := ValidateCommandID(c.ID); err != nil {
		return fmt.Errorf("id: %w", err)
	}
	if !slices.Contains(Verbs, c.Verb) {
		return fmt.Errorf("%w: verb %q is not one of %s", ErrNotFound, c.Verb, strings.Join(Verbs, ", "))
	}
	if c.Verb == VerbNetworkConfigure {
		return c.validateNetwork()
	}
	if IsImageVerb(c.Verb) {
		return c.validateImage()
	}
	if err := ValidateContainerID(c.Container); err != nil {
		return fmt.Errorf("container: %w", err)
	}
	needSpec := c.Verb == VerbCreate || c.Verb == VerbRun
	switch {
	case c.Network != nil:
		return fmt.Errorf("%w: network: only %s takes a network", ErrInvalid, VerbNetworkConfigure)
	case needSpec && c.Spec == nil:
		return fmt.Errorf("%w: spec: required by %s", ErrInvalid, c.Verb)
	case !needSpec && c.Spec != nil:
		return fmt.Errorf("%w: spec: not accepted by %s", ErrInvalid, c.Verb)
	case c.Timeout != nil && c.Verb != VerbStop:
		return fmt.Errorf("%w: timeout: only stop takes a timeout", ErrInvalid)
	case c.Timeout != nil && (*c.Timeout < 0 || *c.Timeout > MaxStopTimout):
		return fmt.Errorf("%w: timeout: %s is outside 0s..1h", ErrInvalid, c.Timeout.Std())
	case c.Force && c.Verb != VerbRemove:
		return fmt.Errorf("%w: force: only remove takes force", ErrInvalid)
	case c.Verb == VerbExec && c.Exec == nil:
		return fmt.Errorf("%w: exec: required by %s", ErrInvalid, c.Verb)
	case c.Verb != VerbExec && c.Exec != nil:
		return fmt.Errorf("%w: exec: only %s takes an exec spec", ErrInvalid, VerbExec)
	case c.Image != nil:
		return fmt.Errorf("%w: image: only the image verbs take one", ErrInvalid)
	case c.Auth != nil && !needSpec:
		return fmt.Errorf("%w: auth: only image.pull, create and run take registry credentials", ErrInvalid)
	}
	if c.Exec != nil {
		return c.Exec.Validate()
	}
	if needSpec {
		return c.Spec.Validate()
	}
	return nil
}

// validateNetwork checks a network.configure command, which carries a
// network configuration and nothing else.
func (c *Command) validateNetwork() error {
	switch {
	case c.Container != "":
		return fmt.Errorf("%w: container: not accepted by %s", ErrInvalid, c.Verb)
	case c.Spec != nil:
		return fmt.Errorf("%w: spec: not accepted by %s", ErrInvalid, c.Verb)
	case c.Timeout != nil:
		return fmt.Errorf("%w: timeout: only stop takes a timeout", ErrInvalid)
	case c.Force:
		return fmt.Errorf("%w: force: only remove takes force", ErrInvalid)
	case c.Exec != nil:
		return fmt.Errorf("%w: exec: only %s takes an exec spec", ErrInvalid, VerbExec)
	case c.Image != nil:
		return fmt.Errorf("%w: image: only the image verbs take one", ErrInvalid)
	case c.Auth != nil:
		return fmt.Errorf("%w: auth: only image.pull, create and run take registry credentials", ErrInvalid)
	case c.Network == nil:
		return fmt.Errorf("%w: network: required by %s", ErrInvalid, c.Verb)
	}
	return c.Network.Validate()
}

// DecodeCommand decodes and validates one command as it arrives from the
// network. subjectVerb, when not empty, is the verb token of the subject the
// command was published on; it must agree with the body. Unknown fields are
// refused, so that a misspelt option is not silently ignored.
func DecodeCommand(data []byte, subjectVerb string) (Command, error) {
	var c Command
	if len(data) > MaxCommandSize {
		return c, fmt.Errorf("%w: command is %d bytes, more than the %d byte limit", ErrInvalid, len(data), MaxCommandSize)
	}
	if err := decodeStrict(data, &c); err != nil {
		return c, fmt.Errorf("%w: command: %s", ErrInvalid, err)
	}
	if subjectVerb != "" && c.Verb == "" {
		c.Verb = subjectVerb
	}
	if subjectVerb != "" && c.Verb != subjectVerb {
		return c, fmt.Errorf("%w: verb %q does not match the subject's verb %q", ErrInvalid, c.Verb, subjectVerb)
	}
	return c, c.Validate()
}

// decodeStrict decodes exactly one JSON value into v, refusing unknown
// fields and trailing data.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if errors.Is(err, io.EOF) {
			return errors.New("empty body")
		}
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// Reply answers a command. Exactly one of Result and Error is set.
type Reply struct {
	Command string          `json:"command"`
	OK      bool            `json:"ok"`
	Result  json.RawMessage `json:"result,omitempty"`
	Error   *ReplyError     `json:"error,omitempty"`
}

// Err returns the reply's error, or nil when it succeeded.
func (r Reply) Err() error {
	if r.OK {
		return nil
	}
	if r.Error == nil {
		return &ReplyError{Code: CodeInternal, Kind: "internal", Message: "reply without ok or error"}
	}
	return r.Error
}

// ContainerResult is the result of a container verb.
type ContainerResult struct {
	Container string `json:"container"`
	Phase     Phase  `json:"phase"`
	Exit      *Exit  `json:"exit,omitempty"`
}

// NewReply builds the reply to command id from a result or an error.
func NewReply(id string, result any, err error) Reply {
	if err != nil {
		return Reply{Command: id, Error: NewReplyError(err)}
	}
	b, mErr := json.Marshal(result)
	if mErr != nil {
		return Reply{Command: id, Error: NewReplyError(fmt.Errorf("%w: encoding result: %v", ErrInternal, mErr))}
	}
	return Reply{Command: id, OK: true, Result: b}
}

// DecodeReply decodes a reply as it arrives from the network.
func DecodeReply(data []byte) (Reply, error) {
	var r Reply
	if err := json.Unmarshal(data, &r); err != nil {
		return r, fmt.Errorf("%w: reply: %s", ErrInvalid, err)
	}
	if r.OK == (r.Error != nil) {
		return r, fmt.Errorf("%w: reply: want exactly one of ok and error", ErrInvalid)
	}
	return r, nil
}
