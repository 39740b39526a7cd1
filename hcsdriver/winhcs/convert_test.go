//go:build windows

package winhcs

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/Microsoft/hcsshim"

	"github.com/berthhq/berth/hcsdriver"
)

// The mirror types must marshal exactly as hcsshim's own: this is what makes
// the golden files a picture of what HCS receives.
func TestDocument_MarshalsLikeHCSShim(t *testing.T) {
	for _, tc := range documentCases() {
		t.Run(tc.name, func(t *testing.T) {
			doc, err := BuildDocument("web-1", tc.cfg, tc.hostN)
			if err != nil {
				t.Fatal(err)
			}
			mirror, err := json.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			theirs, err := json.Marshal(doc.hcs())
			if err != nil {
				t.Fatal(err)
			}
			if string(mirror) != string(theirs) {
				t.Errorf("mirror and hcsshim documents differ:\nmirror  %s\nhcsshim %s", mirror, theirs)
			}
		})
	}
}

func TestProcessDocument_MarshalsLikeHCSShim(t *testing.T) {
	for _, cfg := range []hcsdriver.ProcessConfig{
		{CommandLine: "cmd /c echo hi", User: "ContainerUser", WorkingDirectory: `C:\`,
			Environment: map[string]string{"A": "1"}, Stdout: true, Stderr: true},
		{CommandLine: "cmd", EmulateConsole: true, ConsoleWidth: 120, ConsoleHeight: 40, Stdin: true, Stdout: true},
	} {
		doc, err := BuildProcess(cfg)
		if err != nil {
			t.Fatal(err)
		}
		mirror, _ := json.Marshal(doc)
		theirs, _ := json.Marshal(doc.hcs())
		if string(mirror) != string(theirs) {
			t.Errorf("mirror and hcsshim documents differ:\nmirror  %s\nhcsshim %s", mirror, theirs)
		}
	}
}

func TestCauseOf(t *testing.T) {
	tests := []struct {
		name string
		err  error
		code uint32
		s    sentinel
	}{
		{"container error around a code", &hcsshim.ContainerError{Err: hcsshim.ErrVmcomputeOperationPending}, 0xC0370103, noSentinel},
		{"process error around a code", &hcsshim.ProcessError{Err: hcsshim.ErrElementNotFound}, 0x490, noSentinel},
		{"wrapped container error", fmt.Errorf("start: %w", &hcsshim.ContainerError{Err: hcsshim.ErrComputeSystemDoesNotExist}), 0xc037010e, noSentinel},
		{"hcs error around a code", &hcsshim.HcsError{Err: hcsshim.ErrVmcomputeOperationInvalidState}, 0xc0370105, noSentinel},
		{"bare code", hcsshim.ErrVmcomputeAlreadyStopped, 0xc0370110, noSentinel},
		{"closed handle", &hcsshim.ContainerError{Err: hcsshim.ErrAlreadyClosed}, 0, sentinelClosed},
		{"handle closed under a wait", hcsshim.ErrHandleClose, 0, sentinelClosed},
		{"notification timeout", &hcsshim.ContainerError{Err: hcsshim.ErrTimeout}, 0, sentinelTimeout},
		{"exit code too early", &hcsshim.ProcessError{Err: hcsshim.ErrInvalidProcessState}, 0, sentinelProcessNotExited},
		{"lost vmcompute", hcsshim.ErrUnexpectedProcessAbort, 0, sentinelServiceLost},
		{"unrelated", errors.New("disk on fire"), 0, noSentinel},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, s := causeOf(tc.err)
			if code != tc.code || s != tc.s {
				t.Errorf("causeOf = %#x, %d; want %#x, %d", code, s, tc.code, tc.s)
			}
		})
	}
}

// hcsshim's Shutdown and Terminate answer "pending" on success.
func TestFail_Pending(t *testing.T) {
	err := fail("shutdown", "web-1", &hcsshim.ContainerError{Err: hcsshim.ErrVmcomputeOperationPending})
	if !errors.Is(err, errPending) {
		t.Errorf("fail(pending) = %v; want errPending", err)
	}
	err = fail("kill", "web-1", &hcsshim.ProcessError{Err: hcsshim.ErrElementNotFound})
	if !errors.Is(err, hcsdriver.ErrAlreadyStopped) {
		t.Errorf("fail(kill, element not found) = %v; want ErrAlreadyStopped", err)
	}
}

func TestSampleOf(t *testing.T) {
	at := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	var in hcsshim.Statistics
	in.Timestamp, in.ContainerStartTime, in.Uptime100ns = at, at.Add(-time.Minute), 600_000_000
	in.Processor.TotalRuntime100ns, in.Processor.RuntimeUser100ns, in.Processor.RuntimeKernel100ns = 30, 20, 10
	in.Memory.UsagePrivateWorkingSetBytes, in.Memory.UsageCommitBytes, in.Memory.UsageCommitPeakBytes = 1, 2, 3
	in.Storage.ReadSizeBytes, in.Storage.WriteSizeBytes = 4, 5
	want := sample{Timestamp: at, StartTime: at.Add(-time.Minute), Uptime100ns: 600_000_000,
		CPUTotal100ns: 30, CPUUser100ns: 20, CPUKernel100ns: 10,
		MemoryPrivateWorkingSet: 1, MemoryCommit: 2, MemoryCommitPeak: 3,
		StorageReadBytes: 4, StorageWriteBytes: 5}
	if got := sampleOf(in); got != want {
		t.Errorf("sampleOf = %+v; want %+v", got, want)
	}
}
