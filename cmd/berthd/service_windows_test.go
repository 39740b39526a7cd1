//go:build windows

package main

import (
	"testing"
	"time"

	"golang.org/x/sys/windows"
	"golang.org/x/sys/windows/svc"
)

func TestRequestOf(t *testing.T) {
	for cmd, want := range map[svc.Cmd]scmRequest{
		svc.Stop:        requestStop,
		svc.PreShutdown: requestStop,
		svc.Shutdown:    requestStop,
		svc.Interrogate: requestInterrogate,
		svc.Pause:       requestOther,
		svc.ParamChange: requestOther,
	} {
		if got := requestOf(svc.ChangeRequest{Cmd: cmd}); got != want {
			t.Errorf("request %d: %d, want %d", cmd, got, want)
		}
	}
}

func TestSvcStatus(t *testing.T) {
	for _, st := range []scmStatus{
		{State: stateStartPending, WaitHint: startWaitHint},
		{State: stateRunning, AcceptStop: true},
		{State: stateStopPending, CheckPoint: 7, WaitHint: stopWaitHint},
		{State: stateStopped},
	} {
		s := svcStatusOf(st)
		if st.AcceptStop != (s.Accepts == svc.AcceptStop|svc.AcceptPreShutdown|svc.AcceptShutdown) {
			t.Errorf("%+v: accepts %d", st, s.Accepts)
		}
		if back := scmStatusOf(s); back != st {
			t.Errorf("%+v: read back as %+v", st, back)
		}
	}
	if s := svcStatusOf(scmStatus{State: stateStopPending, WaitHint: 1500 * time.Millisecond}); s.State != svc.StopPending || s.WaitHint != 1500 {
		t.Errorf("status %+v, want stop pending with a 1500 ms hint", s)
	}
	failed := svc.Status{State: svc.Stopped, Win32ExitCode: uint32(windows.ERROR_SERVICE_SPECIFIC_ERROR), ServiceSpecificExitCode: exitAgentFailed}
	if st := scmStatusOf(failed); st.State != stateStopped || st.ExitCode != exitAgentFailed {
		t.Errorf("failed service read as %+v, want stopped with exit code %d", st, exitAgentFailed)
	}
	if st := scmStatusOf(svc.Status{State: svc.Stopped, Win32ExitCode: uint32(windows.ERROR_ACCESS_DENIED)}); st.ExitCode != uint32(windows.ERROR_ACCESS_DENIED) {
		t.Errorf("exit code %d, want the Win32 one", st.ExitCode)
	}
}
