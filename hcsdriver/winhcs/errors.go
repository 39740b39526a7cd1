package winhcs

import (
	"errors"
	"fmt"

	"github.com/berthhq/berth/hcsdriver"
)

// sentinel names the hcsshim errors that carry no Win32 or HRESULT code. The
// Windows side recognises them; classify maps them.
type sentinel int

const (
	noSentinel               sentinel = iota
	sentinelClosed                    // hcsshim.ErrAlreadyClosed, ErrHandleClose: our handle was closed
	sentinelTimeout                   // hcsshim.ErrTimeout: a wait for an HCS notification timed out
	sentinelProcessNotExited          // hcsshim.ErrInvalidProcessState: ExitCode before exit
	sentinelUnexpectedExit            // hcsshim.ErrUnexpectedContainerExit
	sentinelServiceLost               // hcsshim.ErrUnexpectedProcessAbort: connection to vmcompute lost
)

// errPending is the class of HCS's "operation pending" result. It is not a
// failure: hcsshim's Shutdown and Terminate return it when HCS has accepted
// the request.
var errPending = errors.New("operation pending")

// Operations whose codes classify differently from the rest; see classify.
const (
	opKill          = "kill"
	opStats         = "stats"
	opCreateProcess = "create_process"
	opOpenProcess   = "open_process"
)

// codeClasses maps normalised codes (see normalize) to contract classes. The
// values are those of hcsshim's internal/hcs/errors.go and HCS's documented
// HCS_E_* HRESULTs.
var codeClasses = map[uint32]error{
	0x80370103: errPending,                  // VMCOMPUTE_E_OPERATION_PENDING (hcsshim: 0xC0370103)
	0x80370117: errPending,                  // HCS_E_OPERATION_PENDING
	0x8037010E: hcsdriver.ErrNotFound,       // HCS_E_SYSTEM_NOT_FOUND (hcsshim: 0xC037010E)
	0x490:      hcsdriver.ErrNotFound,       // ERROR_NOT_FOUND, "element not found"
	0x8037010F: hcsdriver.ErrAlreadyExists,  // HCS_E_SYSTEM_ALREADY_EXISTS
	0xB7:       hcsdriver.ErrAlreadyExists,  // ERROR_ALREADY_EXISTS
	0x80370105: hcsdriver.ErrInvalidState,   // HCS_E_INVALID_STATE (hcsshim: 0xC0370105)
	0x6:        hcsdriver.ErrInvalidState,   // ERROR_INVALID_HANDLE: HCS dropped a stopping system's handle
	0x80370110: hcsdriver.ErrAlreadyStopped, // HCS_E_SYSTEM_ALREADY_STOPPED (hcsshim: 0xC0370110, 0x80370110)
	0x8037011F: hcsdriver.ErrAlreadyStopped, // HCS_E_PROCESS_ALREADY_STOPPED
	0x80370106: hcsdriver.ErrUnexpectedExit, // HCS_E_UNEXPECTED_EXIT (hcsshim: 0xC0370106)
	0x80370100: hcsdriver.ErrUnexpectedExit, // HCS_E_TERMINATED_DURING_START
	0x6BA:      hcsdriver.ErrUnavailable,    // RPC_S_SERVER_UNAVAILABLE
	0x6BE:      hcsdriver.ErrUnavailable,    // RPC_S_CALL_FAILED
	0x6BF:      hcsdriver.ErrUnavailable,    // RPC_S_CALL_FAILED_DNE
	0x426:      hcsdriver.ErrUnavailable,    // ERROR_SERVICE_NOT_ACTIVE: vmcompute is stopped
	0x80370108: hcsdriver.ErrUnavailable,    // HCS_E_CONNECT_FAILED
	0x8037010A: hcsdriver.ErrUnavailable,    // HCS_E_CONNECTION_CLOSED
	0x80370114: hcsdriver.ErrUnavailable,    // HCS_E_SERVICE_NOT_AVAILABLE
	0x8037011E: hcsdriver.ErrUnavailable,    // HCS_E_SERVICE_DISCONNECT
	0x80370109: hcsdriver.ErrTimeout,        // HCS_E_CONNECTION_TIMEOUT (hcsshim: 0xC0370109)
	0x80370118: hcsdriver.ErrTimeout,        // HCS_E_OPERATION_TIMEOUT
	0x5B4:      hcsdriver.ErrTimeout,        // ERROR_TIMEOUT
	0x102:      hcsdriver.ErrTimeout,        // WAIT_TIMEOUT
}

// opCodeClasses holds codes that mean something of their own in one
// operation, ahead of codeClasses.
var opCodeClasses = map[string]map[uint32]error{
	opCreateProcess: {
		0x2: hcsdriver.ErrNotFound, // ERROR_FILE_NOT_FOUND: no such executable
		0x3: hcsdriver.ErrNotFound, // ERROR_PATH_NOT_FOUND
	},
	opOpenProcess: {
		0x57: hcsdriver.ErrNotFound, // ERROR_INVALID_PARAMETER: no process has that pid
	},
}

var sentinelClasses = map[sentinel]error{
	sentinelClosed:           hcsdriver.ErrClosed,
	sentinelTimeout:          hcsdriver.ErrTimeout,
	sentinelProcessNotExited: hcsdriver.ErrInvalidState,
	sentinelUnexpectedExit:   hcsdriver.ErrUnexpectedExit,
	sentinelServiceLost:      hcsdriver.ErrUnavailable,
}

// classify returns the contract class of an HCS failure during op: code is
// the Win32 error or HRESULT the error carries (0 for none), s the hcsshim
// sentinel it is (noSentinel for none). It returns errPending for HCS's
// "operation pending", and nil for a failure that has no class, such as
// access denied (the agent lacks rights: an internal error, not a state).
//
// A code takes precedence over a sentinel. Some operations read classes their
// own way: for kill, a process that is not found has already stopped; for
// stats, a system that is not found is stopping, since the caller still holds
// a handle to it; for open_process, a process that has stopped is not found
// (its exit code is lost); for create_process, a missing file is a missing
// executable.
func classify(op string, code uint32, s sentinel) error {
	class := sentinelClasses[s]
	if code != 0 {
		code = normalize(code)
		if class = opCodeClasses[op][code]; class == nil {
			class = codeClasses[code]
		}
	}
	switch {
	case op == opKill && class == hcsdriver.ErrNotFound:
		return hcsdriver.ErrAlreadyStopped
	case op == opStats && class == hcsdriver.ErrNotFound:
		return hcsdriver.ErrInvalidState
	case op == opOpenProcess && class == hcsdriver.ErrAlreadyStopped:
		return hcsdriver.ErrNotFound
	}
	return class
}

// normalize folds the spellings of one code together: an HRESULT made from a
// Win32 error (0x8007xxxx) becomes that error, as hcsshim's syscall wrappers
// already do, and a vmcompute code in NTSTATUS form (0xC037xxxx) becomes its
// HRESULT form (0x8037xxxx).
func normalize(code uint32) uint32 {
	if code&0x80000000 == 0 {
		return code
	}
	switch facility := code >> 16 & 0x7ff; facility {
	case 0x7: // FACILITY_WIN32
		return code & 0xffff
	case 0x37: // FACILITY_VMCOMPUTE
		return 0x80370000 | code&0xffff
	}
	return code
}

// opError wraps err, an hcsshim error carrying code and s, as an
// *hcsdriver.OpError. The result matches the class classify gives with
// errors.Is, and still unwraps to err for errors.As; with no class it wraps
// err alone.
func opError(op, id string, err error, code uint32, s sentinel) error {
	if class := classify(op, code, s); class != nil {
		err = fmt.Errorf("%w: %w", class, err)
	}
	return &hcsdriver.OpError{Op: op, ID: id, Err: err}
}
