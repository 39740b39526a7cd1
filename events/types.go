package events

import "time"

// Container event types. Side effects on the host are bracketed: an intent
// (creating, starting, stopping, removing) is durable before the driver call
// and an outcome follows it. An intent without an outcome tells
// reconciliation which host object may exist.
const (
	ContainerCreating     = "berth.container.creating"      // CreatingData; the compute system may exist from now on
	ContainerCreated      = "berth.container.created"       // CreatedData
	ContainerCreateFailed = "berth.container.create_failed" // FailureData; rolled back, nothing left on the host
	ContainerStarting     = "berth.container.starting"      // no data
	ContainerStarted      = "berth.container.started"       // StartedData
	ContainerStopping     = "berth.container.stopping"      // StoppingData
	ContainerExited       = "berth.container.exited"        // Exit
	ContainerRemoving     = "berth.container.removing"      // no data
	ContainerRemoved      = "berth.container.removed"       // no data; the record leaves the fold
	ContainerRemoveFailed = "berth.container.remove_failed" // FailureData; still removing, retry allowed
	ContainerUnknown      = "berth.container.unknown"       // FailureData; reconciliation could not decide
)

// Node event types.
const (
	NodeStarted          = "berth.node.started"           // NodeStartedData
	NodeCommandCompleted = "berth.node.command_completed" // CommandCompletedData
)

// Phase is where a container is in its life.
type Phase string

// Container phases (DESIGN §3).
const (
	PhaseCreating Phase = "creating"
	PhaseCreated  Phase = "created"
	PhaseRunning  Phase = "running"
	PhaseStopping Phase = "stopping"
	PhaseExited   Phase = "exited"
	PhaseRemoving Phase = "removing"
	PhaseRemoved  Phase = "removed"
	PhaseFailed   Phase = "failed"  // create failed and was rolled back
	PhaseUnknown  Phase = "unknown" // reconciliation could not decide; kept for an operator
)

// Exit reasons.
const (
	ReasonExited       = "exited"        // the init process ended by itself, or a graceful stop completed
	ReasonKilled       = "killed"        // berth terminated it (kill, or a stop that timed out)
	ReasonHostLost     = "host_lost"     // the host no longer has the compute system
	ReasonRuntimeError = "runtime_error" // the platform failed to run or watch it
)

// Exit is how a container ended. Code is nil when no exit code is known:
// berth never invents one.
type Exit struct {
	Code       *int      `json:"code"`
	Reason     string    `json:"reason"`
	FinishedAt time.Time `json:"finished_at"`
	Message    string    `json:"message,omitempty"`
}

// ExitCode returns a pointer to c, for building an [Exit].
func ExitCode(c int) *int { return &c }

// CreatingData is the payload of container.creating.
type CreatingData struct {
	Spec  ContainerSpec `json:"spec"`
	Owner string        `json:"owner"` // owner tag the compute system carries
}

// CreatedData is the payload of container.created.
type CreatedData struct {
	HostID string `json:"host_id"` // compute system id on the host
}

// StartedData is the payload of container.started.
type StartedData struct {
	Pid int `json:"pid"` // init process id inside the container
}

// StoppingData is the payload of container.stopping.
type StoppingData struct {
	Timeout Duration `json:"timeout"` // grace period before terminate; 0 for kill
	Kill    bool     `json:"kill,omitempty"`
}

// FailureData carries the reason an operation failed.
type FailureData struct {
	Error string `json:"error"`
	Code  int    `json:"code,omitempty"` // reply code class of the failure
}

// NodeStartedData is the payload of node.started.
type NodeStartedData struct {
	Version string `json:"version"`
	Host    string `json:"host"` // "hcs" or "winsim"
	Owner   string `json:"owner"`
}

// CommandCompletedData records a command's outcome, so that a repeat of the
// same command id is answered without executing it again.
type CommandCompletedData struct {
	Verb      string `json:"verb"`
	Container string `json:"container,omitempty"`
	Reply     Reply  `json:"reply"`
}

// Stats is a resource usage sample of one container, as drivers report it
// and the API returns it. CPU times are in microseconds (HCS reports 100 ns
// ticks; the Windows adapter converts).
type Stats struct {
	Timestamp          time.Time `json:"timestamp"`
	StartedAt          time.Time `json:"started_at"`
	UptimeMicros       uint64    `json:"uptime_us"`
	CPUTotalMicros     uint64    `json:"cpu_total_us"`
	CPUUserMicros      uint64    `json:"cpu_user_us"`
	CPUKernelMicros    uint64    `json:"cpu_kernel_us"`
	MemoryPrivateBytes uint64    `json:"memory_private_working_set_bytes"`
	MemoryCommitBytes  uint64    `json:"memory_commit_bytes"`
	MemoryCommitPeak   uint64    `json:"memory_commit_peak_bytes"`
	MemoryLimitBytes   uint64    `json:"memory_limit_bytes,omitempty"`
	StorageReadBytes   uint64    `json:"storage_read_bytes"`
	StorageWriteBytes  uint64    `json:"storage_write_bytes"`
}
