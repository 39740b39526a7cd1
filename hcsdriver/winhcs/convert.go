//go:build windows

package winhcs

import (
	"context"
	"errors"
	"syscall"

	"github.com/Microsoft/hcsshim"

	"github.com/berthhq/berth/hcsdriver"
)

// hcs converts the document to hcsshim's ContainerConfig, field by field.
func (d *Document) hcs() *hcsshim.ContainerConfig {
	c := &hcsshim.ContainerConfig{
		SystemType:                  d.SystemType,
		Name:                        d.Name,
		Owner:                       d.Owner,
		VolumePath:                  d.VolumePath,
		LayerFolderPath:             d.LayerFolderPath,
		ProcessorCount:              d.ProcessorCount,
		ProcessorWeight:             d.ProcessorWeight,
		ProcessorMaximum:            d.ProcessorMaximum,
		MemoryMaximumInMB:           d.MemoryMaximumInMB,
		HostName:                    d.HostName,
		HvPartition:                 d.HvPartition,
		EndpointList:                d.EndpointList,
		DNSSearchList:               d.DNSSearchList,
		TerminateOnLastHandleClosed: d.TerminateOnLastHandleClosed,
	}
	for _, l := range d.Layers {
		c.Layers = append(c.Layers, hcsshim.Layer{ID: l.ID, Path: l.Path})
	}
	for _, m := range d.MappedDirectories {
		c.MappedDirectories = append(c.MappedDirectories, hcsshim.MappedDir{
			HostPath:          m.HostPath,
			ContainerPath:     m.ContainerPath,
			ReadOnly:          m.ReadOnly,
			BandwidthMaximum:  m.BandwidthMaximum,
			IOPSMaximum:       m.IOPSMaximum,
			CreateInUtilityVM: m.CreateInUtilityVM,
		})
	}
	for _, p := range d.MappedPipes {
		c.MappedPipes = append(c.MappedPipes, hcsshim.MappedPipe{HostPath: p.HostPath, ContainerPipeName: p.ContainerPipeName})
	}
	if d.HvRuntime != nil {
		c.HvRuntime = &hcsshim.HvRuntime{ImagePath: d.HvRuntime.ImagePath}
	}
	return c
}

// hcs converts the process document to hcsshim's ProcessConfig, field by
// field.
func (p *ProcessDocument) hcs() *hcsshim.ProcessConfig {
	return &hcsshim.ProcessConfig{
		CommandLine:      p.CommandLine,
		User:             p.User,
		WorkingDirectory: p.WorkingDirectory,
		Environment:      p.Environment,
		EmulateConsole:   p.EmulateConsole,
		CreateStdInPipe:  p.CreateStdInPipe,
		CreateStdOutPipe: p.CreateStdOutPipe,
		CreateStdErrPipe: p.CreateStdErrPipe,
		ConsoleSize:      p.ConsoleSize,
	}
}

// sampleOf reads the figures berth reports out of hcsshim's statistics.
func sampleOf(s hcsshim.Statistics) sample {
	return sample{
		Timestamp:               s.Timestamp,
		StartTime:               s.ContainerStartTime,
		Uptime100ns:             s.Uptime100ns,
		CPUTotal100ns:           s.Processor.TotalRuntime100ns,
		CPUUser100ns:            s.Processor.RuntimeUser100ns,
		CPUKernel100ns:          s.Processor.RuntimeKernel100ns,
		MemoryPrivateWorkingSet: s.Memory.UsagePrivateWorkingSetBytes,
		MemoryCommit:            s.Memory.UsageCommitBytes,
		MemoryCommitPeak:        s.Memory.UsageCommitPeakBytes,
		StorageReadBytes:        s.Storage.ReadSizeBytes,
		StorageWriteBytes:       s.Storage.WriteSizeBytes,
	}
}

// sentinels are hcsshim's code-less errors that classify knows.
var sentinels = []struct {
	err error
	s   sentinel
}{
	{hcsshim.ErrAlreadyClosed, sentinelClosed},
	{hcsshim.ErrHandleClose, sentinelClosed},
	{hcsshim.ErrTimeout, sentinelTimeout},
	{hcsshim.ErrInvalidProcessState, sentinelProcessNotExited},
	{hcsshim.ErrUnexpectedContainerExit, sentinelUnexpectedExit},
	{hcsshim.ErrUnexpectedProcessAbort, sentinelServiceLost},
}

// causeOf reads what classify needs out of an error from hcsshim: the Win32
// or HRESULT code it carries, or the sentinel it is. hcsshim's ContainerError,
// ProcessError and HcsError do not unwrap, so they are peeled here; its
// internal error types do unwrap, and errors.As sees through them.
func causeOf(err error) (uint32, sentinel) {
	var (
		ce *hcsshim.ContainerError
		pe *hcsshim.ProcessError
		he *hcsshim.HcsError
	)
	if errors.As(err, &ce) {
		err = ce.Err
	} else if errors.As(err, &pe) {
		err = pe.Err
	}
	if errors.As(err, &he) {
		err = he.Err
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return uint32(errno), noSentinel
	}
	for _, x := range sentinels {
		if errors.Is(err, x.err) {
			return 0, x.s
		}
	}
	return 0, noSentinel
}

// fail wraps err from an hcsshim call during op on system id as an
// *hcsdriver.OpError matching its class. A context error, from call giving
// up the wait, is wrapped unclassified.
func fail(op, id string, err error) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return &hcsdriver.OpError{Op: op, ID: id, Err: err}
	}
	code, s := causeOf(err)
	return opError(op, id, err, code, s)
}
