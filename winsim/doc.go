// Package winsim is berth's simulated Windows host: a deterministic model of
// the Host Compute Service and the Host Compute Network service for Linux,
// which berthd runs on outside Windows and which tests use. It never executes
// anything on the machine it runs on, and its networks carry no traffic.
//
// One Host owns all state and outlives its clients. h.Compute() returns a
// Session, an hcsdriver.Driver standing for one agent process; several
// sessions may use a host in turn or at once, and Session.Abandon models an
// agent that died. h.Network() returns the host's HCN, a netdriver.Driver;
// HCN keeps no handles, so it needs no sessions. New keeps the state in
// memory; Open keeps it in a directory, so that an agent killed and started
// again meets the host as it left it, its guests having run on in the
// meantime.
//
// # Compute systems
//
// The rules are those of HCS as hcsshim v0.15.0 exposes them through the
// hcsdriver contract:
//   - Created → Running → Stopped. Create of a taken id fails with
//     ErrAlreadyExists, an unknown id with ErrNotFound, Start of a system
//     that is not Created with ErrInvalidState, Shutdown or Terminate of a
//     stopped system with ErrAlreadyStopped, any call on a closed handle with
//     ErrClosed. Errors are *hcsdriver.OpError values.
//   - Shutdown and Terminate only request a stop; Wait observes it. Shutdown
//     ends every process with ExitCodeShutdown (1067) and stops the system
//     Profile.Stopping later; Terminate ends them with ExitCodeKilled (1) and
//     stops the system at once. A crash (Host.CrashSystem) makes Wait return
//     an ErrUnexpectedExit error.
//   - Closing a handle never stops a system. A stopped system disappears
//     when the last handle to it, across sessions, is closed.
//   - The silo keeps running when its processes exit; the agent shuts it
//     down.
//
// # Processes
//
// CreateProcess needs a running system that is not stopping. Pids are
// multiples of four, never reused. The creating handle owns the pipes that
// were asked for; Stdio hands them over once. Stdout and stderr are
// unbuffered pipes: a guest blocks until its output is read, so the agent
// must drain them. EmulateConsole merges stderr into stdout. Kill ends the
// process with ExitCodeKilled; ExitCode fails with ErrInvalidState before
// exit. OpenProcess of an exited process fails with ErrNotFound, and a
// handle from OpenProcess has no stdio.
//
// # Guest command lines
//
// The command line is split as Windows does (hcsdriver.SplitCommandLine).
// The executable may carry a directory and an .exe or .com extension; an
// unknown one fails CreateProcess with "The system cannot find the file
// specified." (class hcsdriver.ErrNotFound). Output uses CRLF line endings.
//
//	cmd /c LINE, cmd /k LINE   run LINE (cmd's quote rule: a leading quote is
//	                           removed with the last one); /k, or no /c, then
//	                           runs the lines read from stdin until EOF
//	  A & B, A && B, A || B    sequences and conditions
//	  %NAME%                   variables from the process environment, the
//	                           container defaults (COMPUTERNAME, USERNAME, ...),
//	                           %ERRORLEVEL% and %CD%, expanded once per line
//	  >nul 2>nul 1>&2 2>&1     redirections; output sent to a file is dropped
//	  echo TEXT, echo.         prints TEXT (trailing spaces included, as cmd does)
//	  exit [/b] [N]            ends cmd with N (default: the last errorlevel)
//	  cd [DIR]                 prints or changes the working directory
//	  type con                 copies stdin to stdout until EOF
//	  rem                      nothing
//	  anything else            a program below, or "'X' is not recognized as
//	                           an internal or external command", errorlevel 9009
//	ping [-n N] [-l SIZE] [-t] HOST
//	                           a reply line a second (N-1 seconds in all); -t
//	                           until killed; HOST is an IP address, localhost
//	                           or the container's host name
//	timeout /t N [/nobreak]    waits N seconds (-1: for ever) in a process with
//	                           EmulateConsole; without a console it fails at once
//	                           with "ERROR: Input redirection is not supported",
//	                           exit code 1, as on Windows
//	powershell [-Command] STATEMENT[; ...]
//	                           Start-Sleep N | -Seconds N | -Milliseconds N,
//	                           exit N, Write-Output TEXT
//	more                       copies stdin to stdout until EOF
//	hostname                   prints the host name from the Config (or the id)
//
// Pipes between commands (a | b) and files are not modelled.
//
// # Time
//
// Guests follow a schedule that starts when their process is created: a
// process sleeps until the host's Clock reaches its next step, and time it
// spent blocked on a pipe counts against later sleeps. That makes guests
// deterministic under a ManualClock (WithClock), and lets a restored guest
// (Open) catch up at once on the time the host was away.
//
// # Statistics
//
// Statistics are computed from the clock: uptime; CPU time made of the
// silo's background share (4 ms per second) plus what each process was
// charged for starting and for its work (a ping reply, for instance);
// private working set of 48 MiB for the silo plus a fixed amount per running
// process (2.5 MiB for cmd, 72 MiB for powershell, ...), capped by
// Config.MemoryMB, which is also reported as the limit. Statistics of a
// system that is not running fail with ErrInvalidState.
//
// # Networks and endpoints
//
// The rules are those of HCN as berth's netdriver contract states them, and
// these besides, as HNS has them:
//   - Networks and endpoints have GUID ids, handed out in order and never
//     reused. Names are matched whole, case included.
//   - A network's subnet may not overlap another's (ErrSubnetConflict), and a
//     network that has endpoints cannot be deleted (ErrInUse).
//   - An endpoint's address must be a host address of its network's subnet
//     (ErrInvalidSpec) that neither the network's gateway nor another
//     endpoint of the network holds (ErrAddressInUse). A host port, with its
//     protocol, is mapped by one endpoint at most (ErrAddressInUse).
//   - OutboundNAT and SDN routes need an L2Bridge network, and port
//     mappings a NAT or L2Bridge one (ErrInvalidSpec).
//   - A compute system attaches endpoints at Create through
//     hcsdriver.Config.Endpoints. An id no endpoint has fails the Create
//     with hcsdriver.ErrNotFound, and an endpoint attached to a system
//     before, even one that has stopped since, with
//     hcsdriver.ErrInvalidState: a fresh endpoint serves every start. An
//     endpoint cannot be deleted while its system exists and has not stopped
//     (ErrInUse). Snapshot shows which system each endpoint serves.
//   - Listing endpoints does not fail by itself; Fail on OpListEndpoints
//     with netdriver.ErrUnavailable plays HCN's listing that races a
//     delete.
//
// # Faults and latency
//
// Fail, Delay and Hang act on the operations named by the Op constants, for
// one system, network or endpoint, or for all. SetLatency (or WithProfile)
// sets how long each operation takes. A delayed or hung call returns
// ctx.Err() when its context ends, but, as with HCS, the operation still
// takes effect on the host when its time comes: a create whose caller gave
// up still creates the system (and the handle nobody received is released).
// An endpoint whose creator gave up is deleted again, as berth's HCN adapter
// does. A network call whose context is done before it starts changes
// nothing. CrashSystem, ExitProcess and ExitInit play the guest; Snapshot
// returns the whole state as plain data.
package winsim
