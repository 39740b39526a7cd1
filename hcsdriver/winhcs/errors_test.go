package winhcs

import (
	"errors"
	"strings"
	"syscall"
	"testing"

	"github.com/berthhq/berth/hcsdriver"
)

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		op   string
		code uint32
		s    sentinel
		want error // nil: no class
	}{
		// Codes as hcsshim spells them (internal/hcs/errors.go).
		{"system does not exist", "open", 0xc037010e, noSentinel, hcsdriver.ErrNotFound},
		{"element not found", "open", 0x490, noSentinel, hcsdriver.ErrNotFound},
		{"system already exists", "create", 0xC037010F, noSentinel, hcsdriver.ErrAlreadyExists},
		{"win32 already exists", "create", 0xb7, noSentinel, hcsdriver.ErrAlreadyExists},
		{"already stopped", "shutdown", 0xc0370110, noSentinel, hcsdriver.ErrAlreadyStopped},
		{"system already stopped, hresult form", "terminate", 0x80370110, noSentinel, hcsdriver.ErrAlreadyStopped},
		{"process already stopped", "kill", 0x8037011f, noSentinel, hcsdriver.ErrAlreadyStopped},
		{"pending", "shutdown", 0xC0370103, noSentinel, errPending},
		{"hcs pending", "terminate", 0x80370117, noSentinel, errPending},
		{"invalid state", "start", 0xc0370105, noSentinel, hcsdriver.ErrInvalidState},
		{"invalid state, hresult form", opCreateProcess, 0x80370105, noSentinel, hcsdriver.ErrInvalidState},
		{"invalid handle", "properties", 0x6, noSentinel, hcsdriver.ErrInvalidState},
		{"unexpected exit", "wait", 0xC0370106, noSentinel, hcsdriver.ErrUnexpectedExit},
		{"terminated during start", "start", 0x80370100, noSentinel, hcsdriver.ErrUnexpectedExit},
		{"rpc server unavailable", "list", 0x6ba, noSentinel, hcsdriver.ErrUnavailable},
		{"rpc call failed", "start", 0x6be, noSentinel, hcsdriver.ErrUnavailable},
		{"rpc call failed did not execute", "terminate", 0x6bf, noSentinel, hcsdriver.ErrUnavailable},
		{"rpc unavailable as hresult", "list", 0x800706BA, noSentinel, hcsdriver.ErrUnavailable},
		{"vmcompute not running", "create", 0x426, noSentinel, hcsdriver.ErrUnavailable},
		{"hcs service not available", "create", 0x80370114, noSentinel, hcsdriver.ErrUnavailable},
		{"hcs service disconnect", "wait", 0x8037011E, noSentinel, hcsdriver.ErrUnavailable},
		{"hcs connection timeout", "start", 0xC0370109, noSentinel, hcsdriver.ErrTimeout},
		{"hcs operation timeout", "start", 0x80370118, noSentinel, hcsdriver.ErrTimeout},
		{"win32 timeout", "start", 0x5b4, noSentinel, hcsdriver.ErrTimeout},
		{"wait timeout", "wait", 0x102, noSentinel, hcsdriver.ErrTimeout},
		{"element not found as hresult", "open", 0x80070490, noSentinel, hcsdriver.ErrNotFound},

		// Codes with no class.
		{"access denied", "list", 5, noSentinel, nil},
		{"access denied as hresult", "create", 0x80070005, noSentinel, nil},
		{"invalid json", "create", 0xc037010d, noSentinel, nil},
		{"unknown hresult", "create", 0x8badf00d, noSentinel, nil},
		{"general failure", "create", 0x1f, noSentinel, nil},
		{"nothing", "create", 0, noSentinel, nil},

		// Operations that read codes their own way.
		{"kill: not delivered, process gone", opKill, 0x490, noSentinel, hcsdriver.ErrAlreadyStopped},
		{"kill: system gone", opKill, 0xc037010e, noSentinel, hcsdriver.ErrAlreadyStopped},
		{"kill: invalid state stays", opKill, 0xc0370105, noSentinel, hcsdriver.ErrInvalidState},
		{"stats: system stopping", opStats, 0xc037010e, noSentinel, hcsdriver.ErrInvalidState},
		{"stats: element not found", opStats, 0x490, noSentinel, hcsdriver.ErrInvalidState},
		{"stats: unavailable stays", opStats, 0x6ba, noSentinel, hcsdriver.ErrUnavailable},
		{"open_process: process already stopped", opOpenProcess, 0x8037011f, noSentinel, hcsdriver.ErrNotFound},
		{"open_process: element not found", opOpenProcess, 0x490, noSentinel, hcsdriver.ErrNotFound},
		{"open_process: no such pid", opOpenProcess, 0x80070057, noSentinel, hcsdriver.ErrNotFound},
		{"create_process: no such executable", opCreateProcess, 0x80070002, noSentinel, hcsdriver.ErrNotFound},
		{"create_process: no such path", opCreateProcess, 0x3, noSentinel, hcsdriver.ErrNotFound},
		{"create: a missing file has no class", "create", 0x80070002, noSentinel, nil},
		{"invalid parameter has no class", "start", 0x57, noSentinel, nil},

		// hcsshim's sentinels without a code.
		{"handle closed", "start", 0, sentinelClosed, hcsdriver.ErrClosed},
		{"notification timeout", "start", 0, sentinelTimeout, hcsdriver.ErrTimeout},
		{"exit code before exit", "exit_code", 0, sentinelProcessNotExited, hcsdriver.ErrInvalidState},
		{"unexpected container exit", "start", 0, sentinelUnexpectedExit, hcsdriver.ErrUnexpectedExit},
		{"lost vmcompute", "wait", 0, sentinelServiceLost, hcsdriver.ErrUnavailable},
		{"code wins over sentinel", "start", 0xc037010e, sentinelTimeout, hcsdriver.ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := classify(tc.op, tc.code, tc.s); got != tc.want {
				t.Errorf("classify(%q, %#x, %d) = %v; want %v", tc.op, tc.code, tc.s, got, tc.want)
			}
		})
	}
}

func TestNormalize(t *testing.T) {
	tests := []struct{ in, want uint32 }{
		{0x490, 0x490},
		{0x80070490, 0x490},
		{0xC0370110, 0x80370110},
		{0x80370110, 0x80370110},
		{0xD037010E, 0x8037010E}, // HRESULT_FROM_NT keeps the facility
		{0x0037010E, 0x0037010E}, // success codes stay
		{0x8BADF00D, 0x8BADF00D},
	}
	for _, tc := range tests {
		if got := normalize(tc.in); got != tc.want {
			t.Errorf("normalize(%#x) = %#x; want %#x", tc.in, got, tc.want)
		}
	}
}

func TestOpError(t *testing.T) {
	raw := syscall.Errno(0xc037010e) // what hcsshim carries inside its error types
	err := opError("open", "web-1", raw, uint32(raw), noSentinel)

	var op *hcsdriver.OpError
	if !errors.As(err, &op) || op.Op != "open" || op.ID != "web-1" {
		t.Fatalf("err = %#v; want an *hcsdriver.OpError for open web-1", err)
	}
	if !errors.Is(err, hcsdriver.ErrNotFound) {
		t.Errorf("errors.Is(%v, ErrNotFound) = false", err)
	}
	var errno syscall.Errno
	if !errors.As(err, &errno) || errno != raw {
		t.Errorf("the hcsshim error is lost: errors.As gave %#x", uint32(errno))
	}
	if !strings.HasPrefix(err.Error(), "open web-1: "+hcsdriver.ErrNotFound.Error()+": ") {
		t.Errorf("message = %q", err)
	}

	plain := errors.New("hcsshim: something odd")
	err = opError("create", "web-1", plain, 0, noSentinel)
	if got := err.Error(); got != "create web-1: hcsshim: something odd" {
		t.Errorf("unclassified message = %q", got)
	}
	for _, class := range []error{hcsdriver.ErrNotFound, hcsdriver.ErrInvalidState, hcsdriver.ErrUnavailable, errPending} {
		if errors.Is(err, class) {
			t.Errorf("unclassified error matches %v", class)
		}
	}
}
