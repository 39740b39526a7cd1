package events

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"strings"
)

// ExecSpec is what an exec command runs in a running container. The exec
// session is named by the command's id: its stdio flows on
// <prefix>.exec.<node>.<command id>.<channel> (see [Subjects.Exec]).
type ExecSpec struct {
	Command []string          `json:"command"`
	Env     map[string]string `json:"env,omitempty"`
	Workdir string            `json:"workdir,omitempty"`
	User    string            `json:"user,omitempty"`
	// Stdin attaches the client's input; without it the process reads EOF.
	Stdin bool `json:"stdin,omitempty"`
	// TTY runs the process on a pseudo console of Width x Height
	// characters (80x25 when zero); its stderr is merged into stdout.
	TTY    bool   `json:"tty,omitempty"`
	Width  uint16 `json:"width,omitempty"`
	Height uint16 `json:"height,omitempty"`
}

// MaxConsoleSize bounds a console's width and height.
const MaxConsoleSize = 4096

// Validate checks the spec and returns an ErrInvalid error naming the field
// at fault.
func (s *ExecSpec) Validate() error {
	bad := func(field, format string, a ...any) error {
		return fmt.Errorf("%w: exec.%s: %s", ErrInvalid, field, fmt.Sprintf(format, a...))
	}
	switch {
	case len(s.Command) == 0:
		return bad("command", "must not be empty")
	case len(s.Command) > maxArgs:
		return bad("command", "%d arguments, more than %d", len(s.Command), maxArgs)
	case strings.TrimSpace(s.Command[0]) == "":
		return bad("command", "the program name must not be blank")
	}
	if i, ok := badArg(s.Command); ok {
		return bad("command", "argument %d is longer than %d bytes or contains NUL", i, maxStringLen)
	}
	if err := checkEnv(s.Env); err != "" {
		return bad("env", "%s", err)
	}
	if len(s.Workdir) > maxStringLen || strings.ContainsRune(s.Workdir, 0) {
		return bad("workdir", "%q is not a directory", s.Workdir)
	}
	if len(s.User) > 256 || strings.ContainsRune(s.User, 0) {
		return bad("user", "%q is not a user name", s.User)
	}
	if !s.TTY && (s.Width != 0 || s.Height != 0) {
		return bad("width", "a console size needs tty")
	}
	if s.Width > MaxConsoleSize || s.Height > MaxConsoleSize {
		return bad("width", "%dx%d is larger than %dx%d", s.Width, s.Height, MaxConsoleSize, MaxConsoleSize)
	}
	return nil
}

// Exec event types. They change neither the container's phase nor its
// intent.
const (
	ContainerExecStarted = "berth.container.exec_started" // ExecStartedData
	ContainerExecExited  = "berth.container.exec_exited"  // ExecExit
)

// ExecStartedData is the payload of container.exec_started.
type ExecStartedData struct {
	Exec    string   `json:"exec"` // the exec id (the command's id)
	Command []string `json:"command"`
	Pid     int      `json:"pid"`
	TTY     bool     `json:"tty,omitempty"`
}

// Exec exit reasons, besides ReasonExited (the process ended by itself).
const (
	ReasonClientLost   = "client_lost"   // the client left or went silent; berth killed the process
	ReasonAgentStopped = "agent_stopped" // the agent stopped; berth killed the process
)

// ExecExit is how an exec session ended: the payload of
// container.exec_exited, and the last frame of the session. Code is nil when
// the platform did not report one.
type ExecExit struct {
	Exec    string `json:"exec"`
	Code    *int   `json:"code"`
	Reason  string `json:"reason"`
	Message string `json:"message,omitempty"`
	// Frames is how many output frames (stdout and stderr) the agent sent,
	// so a client can tell that it received all of them.
	Frames uint64 `json:"frames"`
}

// ExecResult is the result of an exec command.
type ExecResult struct {
	Exec      string `json:"exec"`
	Container string `json:"container"`
	Pid       int    `json:"pid"`
}

// Exec channels: the last token of an exec subject. The client publishes in,
// resize and credit; the agent publishes out, err and exit.
const (
	ExecIn     = "in"
	ExecOut    = "out"
	ExecErr    = "err"
	ExecResize = "resize"
	ExecCredit = "credit"
	ExecExitCh = "exit"
)

// ExecFrameKind is the first byte of an exec frame.
type ExecFrameKind byte

// Exec frame kinds.
const (
	// FrameData carries bytes of stdin, stdout or stderr. Output frames are
	// numbered from 1 across stdout and stderr; stdin frames from 1.
	FrameData ExecFrameKind = 'd'
	// FrameEOF closes the process's stdin (on in).
	FrameEOF ExecFrameKind = 'e'
	// FrameResize sets the console size (on resize).
	FrameResize ExecFrameKind = 'r'
	// FrameCredit grants output (on credit): the agent may send output
	// while it has sent fewer than Bytes bytes and Frames frames in all.
	// Limits only grow; a repeat is the client's heartbeat.
	FrameCredit ExecFrameKind = 'c'
	// FrameKill: the client leaves and the process is to be killed (on credit).
	FrameKill ExecFrameKind = 'k'
	// FrameExit ends the session (on exit); Exit says how.
	FrameExit ExecFrameKind = 'x'
	// FrameStatus answers a client's request (stdin, resize, the first
	// credit): Code 200, or an error code and Message.
	FrameStatus ExecFrameKind = 's'
)

// ExecChunk is the most bytes a data frame carries.
const ExecChunk = 32 << 10

// ExecFrame is one message of an exec session. Which fields are used
// depends on Kind. Data, Resize and Credit frames are binary; Exit and
// Status frames carry JSON after the kind byte.
type ExecFrame struct {
	Kind          ExecFrameKind
	Seq           uint64 // data
	Data          []byte // data
	Width, Height uint16 // resize
	Bytes, Frames uint64 // credit
	Exit          *ExecExit
	Code          int    // status
	ErrKind       string // status: the error class's kind, as in a reply
	Message       string // status
}

type execStatus struct {
	Code    int    `json:"code"`
	Kind    string `json:"kind,omitempty"`
	Message string `json:"message,omitempty"`
}

// Append appends the encoding of f to b.
func (f *ExecFrame) Append(b []byte) []byte {
	b = append(b, byte(f.Kind))
	switch f.Kind {
	case FrameData:
		b = binary.AppendUvarint(b, f.Seq)
		b = append(b, f.Data...)
	case FrameEOF:
		b = binary.AppendUvarint(b, f.Seq)
	case FrameResize:
		b = binary.BigEndian.AppendUint16(b, f.Width)
		b = binary.BigEndian.AppendUint16(b, f.Height)
	case FrameCredit:
		b = binary.AppendUvarint(b, f.Bytes)
		b = binary.AppendUvarint(b, f.Frames)
	case FrameExit:
		j, _ := json.Marshal(f.Exit) // plain fields: cannot fail
		b = append(b, j...)
	case FrameStatus:
		j, _ := json.Marshal(execStatus{Code: f.Code, Kind: f.ErrKind, Message: f.Message})
		b = append(b, j...)
	}
	return b
}

// Encode returns the encoding of f.
func (f *ExecFrame) Encode() []byte { return f.Append(nil) }

// DecodeExecFrame decodes one exec frame as it arrives from the network.
// Errors wrap ErrInvalid and say what is wrong. A data frame's Data aliases
// data.
func DecodeExecFrame(data []byte) (ExecFrame, error) {
	var f ExecFrame
	bad := func(format string, a ...any) (ExecFrame, error) {
		return ExecFrame{}, fmt.Errorf("%w: exec frame: %s", ErrInvalid, fmt.Sprintf(format, a...))
	}
	if len(data) == 0 {
		return bad("empty")
	}
	f.Kind, data = ExecFrameKind(data[0]), data[1:]
	uvarint := func() (uint64, bool) {
		v, n := binary.Uvarint(data)
		if n <= 0 {
			return 0, false
		}
		data = data[n:]
		return v, true
	}
	switch f.Kind {
	case FrameData, FrameEOF:
		seq, ok := uvarint()
		if !ok || seq == 0 {
			return bad("%c: sequence number missing or zero", f.Kind)
		}
		f.Seq = seq
		if f.Kind == FrameEOF && len(data) > 0 {
			return bad("eof: %d bytes after the sequence number", len(data))
		}
		if len(data) > ExecChunk {
			return bad("data: %d bytes, more than %d", len(data), ExecChunk)
		}
		if f.Kind == FrameData {
			f.Data = data
		}
	case FrameResize:
		if len(data) != 4 {
			return bad("resize: %d bytes, want 4", len(data))
		}
		f.Width, f.Height = binary.BigEndian.Uint16(data), binary.BigEndian.Uint16(data[2:])
		if f.Width == 0 || f.Height == 0 || f.Width > MaxConsoleSize || f.Height > MaxConsoleSize {
			return bad("resize: %dx%d is outside 1x1..%dx%d", f.Width, f.Height, MaxConsoleSize, MaxConsoleSize)
		}
	case FrameCredit:
		var ok1, ok2 bool
		f.Bytes, ok1 = uvarint()
		f.Frames, ok2 = uvarint()
		if !ok1 || !ok2 || len(data) > 0 {
			return bad("credit: want two varints")
		}
	case FrameKill:
		if len(data) > 0 {
			return bad("kill: %d unexpected bytes", len(data))
		}
	case FrameExit:
		var x ExecExit
		if err := decodeStrict(data, &x); err != nil {
			return bad("exit: %s", err)
		}
		f.Exit = &x
	case FrameStatus:
		var s execStatus
		if err := decodeStrict(data, &s); err != nil {
			return bad("status: %s", err)
		}
		if s.Code < 100 || s.Code > 599 {
			return bad("status: code %d", s.Code)
		}
		f.Code, f.ErrKind, f.Message = s.Code, s.Kind, s.Message
	default:
		return bad("unknown kind %q", byte(f.Kind))
	}
	return f, nil
}

// StatusFrame answers a client's request with err's reply code, or 200.
func StatusFrame(err error) ExecFrame {
	if err == nil {
		return ExecFrame{Kind: FrameStatus, Code: CodeOK}
	}
	code, kind := CodeOf(err)
	return ExecFrame{Kind: FrameStatus, Code: code, ErrKind: kind, Message: err.Error()}
}

// Err returns the error a status frame reports, or nil for 200, matched
// with errors.Is against the error classes.
func (f *ExecFrame) Err() error {
	if f.Kind != FrameStatus {
		return fmt.Errorf("%w: exec: want a status frame, got %q", ErrInvalid, byte(f.Kind))
	}
	if f.Code == CodeOK {
		return nil
	}
	kind := f.ErrKind
	if kind == "" { // the first class with the code
		for _, c := range classes {
			if c.code == f.Code {
				kind = c.kind
				break
			}
		}
	}
	return &ReplyError{Code: f.Code, Kind: kind, Message: f.Message}
}
