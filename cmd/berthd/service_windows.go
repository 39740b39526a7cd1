//go:build windows

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime/debug"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
	"golang.org/x/sys/windows/svc/eventlog"
	"golang.org/x/sys/windows/svc/mgr"
)

// eventID is the Application event log id of every event berthd writes.
const eventID = 1

// logRotateSize: a log file larger than this when the service starts is
// moved to berthd.log.1 (replacing the one before) and a new one begun.
const logRotateSize = 64 << 20

// runAsService runs the agent as the service serviceName when the service
// control manager started this process, and then reports true; otherwise it
// reports false and does nothing.
//
// A service has no console, so the agent logs to berthd.log in the data
// directory (see openServiceLog), which also receives the stack of a panic
// or fatal runtime error. The service's start, stop and failure are also
// written to the Application event log under the source berthd, which
// `berthd service install` registers; a failure to open the log file shows
// there.
func runAsService(o options) (bool, error) {
	isService, err := svc.IsWindowsService()
	if err != nil {
		return false, fmt.Errorf("detecting the service control manager: %w", err)
	}
	if !isService {
		return false, nil
	}
	h := &serviceHandler{o: o, log: zerolog.Nop()}
	if h.events, err = eventlog.Open(serviceName); err == nil {
		defer h.events.Close()
	}
	if h.file, h.fileErr = openServiceLog(o.dataDir, logRotateSize); h.fileErr == nil {
		defer h.file.Close()
		_ = debug.SetCrashOutput(h.file, debug.CrashOptions{})
		if h.log, err = newLogger(o, h.file); err != nil {
			h.log = zerolog.New(h.file).With().Timestamp().Logger()
		}
	}
	return true, svc.Run(serviceName, h)
}

// serviceHandler runs the agent for svc.Run.
type serviceHandler struct {
	o       options
	file    *os.File // the log file; nil when fileErr says why
	fileErr error
	log     zerolog.Logger // into file
	events  *eventlog.Log  // nil when the event log cannot be opened
}

func (h *serviceHandler) Execute(_ []string, r <-chan svc.ChangeRequest, s chan<- svc.Status) (bool, uint32) {
	ticker := time.NewTicker(checkpointEvery)
	defer ticker.Stop()
	session := scmSession[svc.ChangeRequest]{
		requests: r,
		kind:     requestOf,
		report:   func(st scmStatus) { s <- svcStatusOf(st) },
		ticks:    ticker.C,
	}
	code, err := session.run(h.serve)
	switch {
	case code != 0:
		h.note(zerolog.ErrorLevel, fmt.Sprintf("berthd service failed: %v", err))
	case err != nil:
		h.note(zerolog.WarnLevel, fmt.Sprintf("berthd service stopped: %v", err))
	default:
		h.note(zerolog.InfoLevel, "berthd service stopped")
	}
	return true, code
}

func (h *serviceHandler) serve(ctx context.Context) error {
	if h.fileErr != nil {
		return h.fileErr
	}
	h.note(zerolog.InfoLevel, "berthd service running; its log is "+filepath.Join(h.o.dataDir, serviceLogName))
	return serve(ctx, h.o, h.file)
}

// note writes msg to the log file and the event log.
func (h *serviceHandler) note(level zerolog.Level, msg string) {
	h.log.WithLevel(level).Msg(msg)
	if h.events == nil {
		return
	}
	switch level {
	case zerolog.ErrorLevel:
		_ = h.events.Error(eventID, msg)
	case zerolog.WarnLevel:
		_ = h.events.Warning(eventID, msg)
	default:
		_ = h.events.Info(eventID, msg)
	}
}

func requestOf(c svc.ChangeRequest) scmRequest {
	switch c.Cmd {
	case svc.Stop, svc.PreShutdown, svc.Shutdown:
		return requestStop
	case svc.Interrogate:
		return requestInterrogate
	}
	return requestOther
}

var svcStates = []struct {
	berthd scmState
	svc    svc.State
}{
	{stateStopped, svc.Stopped},
	{stateStartPending, svc.StartPending},
	{stateRunning, svc.Running},
	{stateStopPending, svc.StopPending},
}

func svcStatusOf(st scmStatus) svc.Status {
	s := svc.Status{CheckPoint: st.CheckPoint, WaitHint: uint32(st.WaitHint / time.Millisecond)}
	for _, p := range svcStates {
		if p.berthd == st.State {
			s.State = p.svc
		}
	}
	if st.AcceptStop {
		s.Accepts = svc.AcceptStop | svc.AcceptPreShutdown | svc.AcceptShutdown
	}
	return s
}

func scmStatusOf(s svc.Status) scmStatus {
	st := scmStatus{State: stateOther, CheckPoint: s.CheckPoint, WaitHint: time.Duration(s.WaitHint) * time.Millisecond,
		AcceptStop: s.Accepts&svc.AcceptStop != 0, ExitCode: s.Win32ExitCode}
	if s.Win32ExitCode == uint32(windows.ERROR_SERVICE_SPECIFIC_ERROR) {
		st.ExitCode = s.ServiceSpecificExitCode
	}
	for _, p := range svcStates {
		if p.svc == s.State {
			st.State = p.berthd
		}
	}
	return st
}

// winControl is the Windows service control manager.
type winControl struct{ m *mgr.Mgr }

func newServiceControl() (serviceControl, error) {
	m, err := mgr.Connect()
	if errors.Is(err, windows.ERROR_ACCESS_DENIED) {
		return nil, fmt.Errorf("connecting to the service control manager needs an administrator: %w", err)
	}
	if err != nil {
		return nil, fmt.Errorf("connecting to the service control manager: %w", err)
	}
	return winControl{m}, nil
}

func (c winControl) close() error { return c.m.Disconnect() }

// create registers the service and its event log source; on error it
// removes what it registered.
func (c winControl) create(spec serviceSpec) (err error) {
	s, err := c.m.CreateService(serviceName, spec.Exe, mgr.Config{
		StartType:    mgr.StartAutomatic,
		ErrorControl: mgr.ErrorNormal,
		DisplayName:  spec.DisplayName,
		Description:  spec.Description,
		Dependencies: spec.Dependencies,
	}, spec.Args...)
	if errors.Is(err, windows.ERROR_SERVICE_EXISTS) {
		return fmt.Errorf("%w: uninstall it first", errServiceExists)
	}
	if err != nil {
		return fmt.Errorf("creating service %s: %w", serviceName, err)
	}
	defer s.Close()
	defer func() {
		if err != nil {
			_ = s.Delete()
		}
	}()
	actions := make([]mgr.RecoveryAction, len(spec.RestartDelays))
	for i, d := range spec.RestartDelays {
		actions[i] = mgr.RecoveryAction{Type: mgr.ServiceRestart, Delay: d}
	}
	if err := s.SetRecoveryActions(actions, uint32(spec.ResetAfter/time.Second)); err != nil {
		return fmt.Errorf("recovery actions: %w", err)
	}
	// At shutdown Windows gives services that accept only Shutdown a few
	// seconds in all; with PreShutdown, the agent is told first and may take
	// as long as its stop checkpoints allow.
	preshutdown := uint32((stopCheckpoints * checkpointEvery) / time.Millisecond)
	if err := windows.ChangeServiceConfig2(s.Handle, windows.SERVICE_CONFIG_PRESHUTDOWN_INFO, (*byte)(unsafe.Pointer(&preshutdown))); err != nil {
		return fmt.Errorf("preshutdown timeout: %w", err)
	}
	// A non-zero exit code counts as a failure too, not only a crash.
	if err := s.SetRecoveryActionsOnNonCrashFailures(true); err != nil {
		return fmt.Errorf("recovery actions: %w", err)
	}
	_ = eventlog.Remove(serviceName) // a source left by an earlier install
	if err := eventlog.InstallAsEventCreate(serviceName, eventlog.Error|eventlog.Warning|eventlog.Info); err != nil {
		return fmt.Errorf("event log source: %w", err)
	}
	return nil
}

func (c winControl) open() (*mgr.Service, error) {
	s, err := c.m.OpenService(serviceName)
	if errors.Is(err, windows.ERROR_SERVICE_DOES_NOT_EXIST) {
		return nil, errServiceNotInstalled
	}
	if err != nil {
		return nil, fmt.Errorf("opening service %s: %w", serviceName, err)
	}
	return s, nil
}

func (c winControl) remove() error {
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.Close()
	if err := s.Delete(); err != nil {
		return fmt.Errorf("removing service %s: %w", serviceName, err)
	}
	if err := eventlog.Remove(serviceName); err != nil && !errors.Is(err, windows.ERROR_FILE_NOT_FOUND) {
		return fmt.Errorf("removing the event log source: %w", err)
	}
	return nil
}

func (c winControl) start() error {
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.Close()
	return s.Start()
}

func (c winControl) stop() error {
	s, err := c.open()
	if err != nil {
		return err
	}
	defer s.Close()
	_, err = s.Control(svc.Stop)
	return err
}

func (c winControl) query() (scmStatus, error) {
	s, err := c.open()
	if err != nil {
		return scmStatus{}, err
	}
	defer s.Close()
	st, err := s.Query()
	if err != nil {
		return scmStatus{}, fmt.Errorf("querying service %s: %w", serviceName, err)
	}
	return scmStatusOf(st), nil
}
