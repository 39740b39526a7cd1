// Package hcsdriver is berth's contract with the Host Compute Service: create,
// open and list compute systems, start and stop them, and run processes in
// them. The Windows adapter (package winhcs) implements it on hcsshim; the
// simulated host (package winsim) implements it for Linux. The conformance
// suite in hcsdrivertest holds both to the promises written here.
//
// Every method that may block takes a context. HCS calls themselves cannot be
// cancelled, so an implementation may return ctx.Err() early while the
// platform call runs on; callers must treat that outcome as unknown and
// observe the host again.
package hcsdriver

import (
	"context"
	"io"

	"github.com/berthhq/berth/events"
)

// Driver creates and finds compute systems. Implementations are safe for
// concurrent use.
type Driver interface {
	// Create creates a compute system named id in state Created. It fails
	// with ErrAlreadyExists when a system with that id exists. On error
	// nothing is left on the host.
	Create(ctx context.Context, id string, cfg Config) (System, error)
	// Open returns a handle to an existing compute system, in whatever state
	// it is. It fails with ErrNotFound when no system has that id.
	Open(ctx context.Context, id string) (System, error)
	// List returns the compute systems carrying owner tag owner ("" lists
	// every system of type Container).
	List(ctx context.Context, owner string) ([]Info, error)
}

// System is a handle to one compute system. Closing the handle releases it;
// it does not stop the system. Methods on a closed handle return ErrClosed.
type System interface {
	// ID returns the compute system id.
	ID() string
	// Start boots a Created system. It fails with ErrInvalidState when the
	// system is not Created.
	Start(ctx context.Context) error
	// Shutdown asks the system to shut down gracefully and returns once the
	// request is accepted; Wait observes completion. It returns
	// ErrAlreadyStopped when the system has stopped already.
	Shutdown(ctx context.Context) error
	// Terminate asks the system to stop at once and returns once the request
	// is accepted; Wait observes completion. It returns ErrAlreadyStopped
	// when the system has stopped already.
	Terminate(ctx context.Context) error
	// Wait blocks until the system has stopped, and returns nil then. It
	// returns ctx.Err() if ctx ends first. A system that stopped unexpectedly
	// (a crash) returns an ErrUnexpectedExit error.
	Wait(ctx context.Context) error
	// Properties reports the system's current state.
	Properties(ctx context.Context) (Info, error)
	// Statistics reports resource usage. It fails with ErrInvalidState when
	// the system is not running.
	Statistics(ctx context.Context) (Stats, error)
	// CreateProcess starts a process in a running system. It fails with
	// ErrInvalidState when the system is not running.
	CreateProcess(ctx context.Context, cfg ProcessConfig) (Process, error)
	// OpenProcess reopens a process by pid, for example after an agent
	// restart. It fails with ErrNotFound when the process has exited: its
	// exit code is then lost.
	OpenProcess(ctx context.Context, pid int) (Process, error)
	// Close releases the handle. A second Close returns nil.
	Close() error
}

// Process is a handle to one process inside a compute system.
type Process interface {
	// Pid returns the process id inside the container.
	Pid() int
	// Stdio returns the pipes requested at creation; an entry is nil when
	// that pipe was not requested. The caller owns the pipes and must drain
	// stdout and stderr, or the process may block writing to them. Stdio may
	// be called once; later calls return ErrInvalidState.
	Stdio() (stdin io.WriteCloser, stdout, stderr io.ReadCloser, err error)
	// Wait blocks until the process has exited and returns nil, or ctx.Err().
	Wait(ctx context.Context) error
	// ExitCode returns the exit code of an exited process; before exit it
	// fails with ErrInvalidState.
	ExitCode() (int, error)
	// Kill terminates the process. It returns ErrAlreadyStopped when the
	// process has exited.
	Kill(ctx context.Context) error
	// ResizeConsole changes the console size of a process created with
	// EmulateConsole.
	ResizeConsole(ctx context.Context, width, height uint16) error
	// CloseStdin closes the process's standard input.
	CloseStdin(ctx context.Context) error
	// Close releases the handle; it does not kill the process.
	Close() error
}

// State is a compute system state as HCS names it.
type State string

// Compute system states.
const (
	StateCreated State = "Created"
	StateRunning State = "Running"
	StatePaused  State = "Paused"
	StateStopped State = "Stopped"
)

// Info describes a compute system as the host reports it.
type Info struct {
	ID    string `json:"id"`
	Owner string `json:"owner"`
	State State  `json:"state"`
	// Stopped is true when the system has stopped; ExitType says how when
	// the platform tells (for example "UnexpectedExit").
	Stopped  bool   `json:"stopped"`
	ExitType string `json:"exit_type,omitempty"`
}

// Config is what a compute system is created from: the platform-neutral
// subset of the HCS schema v1 ContainerConfig that berth uses.
type Config struct {
	Owner    string `json:"owner"`
	HostName string `json:"host_name,omitempty"`
	// Layers are the read-only parent layers, immediate parent first and
	// base layer last.
	Layers []Layer `json:"layers,omitempty"`
	// VolumePath is the mounted scratch volume (process isolation), and
	// LayerFolderPath the scratch layer folder.
	VolumePath      string `json:"volume_path,omitempty"`
	LayerFolderPath string `json:"layer_folder_path,omitempty"`
	MemoryMB        int64  `json:"memory_mb,omitempty"`
	ProcessorCount  uint32 `json:"processor_count,omitempty"`
	// ProcessorMaximum caps CPU in 1/100 of a percent of the host (1..10000).
	ProcessorMaximum int64    `json:"processor_maximum,omitempty"`
	Endpoints        []string `json:"endpoints,omitempty"` // HCN endpoint ids
	Mounts           []Mount  `json:"mounts,omitempty"`
	HyperV           bool     `json:"hyperv,omitempty"`
	UtilityVMPath    string   `json:"utility_vm_path,omitempty"` // Hyper-V isolation only
	DNSSearchList    []string `json:"dns_search_list,omitempty"`
}

// Layer is one read-only image layer.
type Layer struct {
	ID   string `json:"id"` // GUID derived from the folder name
	Path string `json:"path"`
}

// Mount maps a host directory into the container.
type Mount struct {
	HostPath      string `json:"host_path"`
	ContainerPath string `json:"container_path"`
	ReadOnly      bool   `json:"read_only,omitempty"`
}

// ProcessConfig describes a process to start in a compute system.
type ProcessConfig struct {
	// CommandLine is the full Windows command line (see CommandLine).
	CommandLine      string            `json:"command_line"`
	User             string            `json:"user,omitempty"`
	WorkingDirectory string            `json:"working_directory,omitempty"`
	Environment      map[string]string `json:"environment,omitempty"`
	EmulateConsole   bool              `json:"emulate_console,omitempty"` // TTY; stderr is merged into stdout
	ConsoleWidth     uint16            `json:"console_width,omitempty"`
	ConsoleHeight    uint16            `json:"console_height,omitempty"`
	Stdin            bool              `json:"stdin,omitempty"`
	Stdout           bool              `json:"stdout,omitempty"`
	Stderr           bool              `json:"stderr,omitempty"`
}

// Stats is a resource usage sample; see events.Stats.
type Stats = events.Stats
