package winsim

import (
	"bufio"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/berthhq/berth/hcsdriver"
)

// createProcessLocked starts a guest process in the system sh refers to and
// returns the creating handle, which owns the pipes.
func (h *Host) createProcessLocked(sh *systemHandle, cfg hcsdriver.ProcessConfig) (hcsdriver.Process, error) {
	sys := sh.sys
	if sys.state != hcsdriver.StateRunning || !sys.stopAt.IsZero() {
		return nil, sh.opErr(OpCreateProcess, hcsdriver.ErrInvalidState)
	}
	argv := hcsdriver.SplitCommandLine(cfg.CommandLine)
	prog := lookupProgram(argv)
	if prog == nil {
		return nil, sh.opErr(OpCreateProcess, errFileNotFound)
	}
	p := &process{
		sys:        sys,
		pid:        h.nextPid,
		cfg:        cloneProcessConfig(cfg),
		image:      prog.image,
		workingSet: prog.workingSet,
		startedAt:  h.clock.Now(),
		done:       make(chan struct{}),
	}
	h.nextPid += 4
	sys.procs[p.pid] = p
	if sys.initPid == 0 {
		sys.initPid = p.pid
	}
	sys.storageRead += prog.imageSize
	sys.commitPeak = max(sys.commitPeak, commitOf(sys.workingSetLocked()))
	if cfg.Stdin {
		p.gIn, p.hIn = io.Pipe()
	}
	if cfg.Stdout {
		p.hOut, p.gOut = io.Pipe()
	}
	if cfg.Stderr && !cfg.EmulateConsole {
		p.hErr, p.gErr = io.Pipe()
	}
	ph := sh.s.attachProcessLocked(p, true)
	h.startGuestLocked(p, prog, argv, nil)
	h.changedLocked()
	return ph, nil
}

// startGuestLocked runs prog for p in a goroutine owned by the host. The
// guest's time starts at p.startedAt, so a guest started late (after a
// restore) catches up on its schedule at once. settled, if not nil, is
// closed once the guest has caught up with the clock or has exited.
func (h *Host) startGuestLocked(p *process, prog *program, argv []string, settled chan struct{}) {
	g := &guest{
		h: h, p: p, t: p.startedAt, console: p.cfg.EmulateConsole,
		hostname: hostName(p.sys), cwd: p.cfg.WorkingDirectory,
	}
	if g.cwd == "" {
		g.cwd = `C:\`
	}
	g.settle = func() {}
	if settled != nil {
		g.settle = sync.OnceFunc(func() { close(settled) })
	}
	if p.gIn != nil {
		g.stdin = bufio.NewReader(p.gIn)
	}
	g.stdout = stream{g: g, w: p.gOut}
	g.stderr = stream{g: g, w: p.gErr}
	if p.cfg.EmulateConsole {
		g.stderr = g.stdout
	}
	g.env = guestEnv(p)
	x := &exec{g: g, argv: argv, rest: restOf(p.cfg.CommandLine), stdout: g.stdout, stderr: g.stderr}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		defer g.settle() // after the exit is recorded
		code := invoke(prog, x)
		h.mu.Lock()
		defer h.unlock()
		if !h.closed {
			h.endProcessLocked(p, code, g.exitTime())
		}
	}()
}

// guest is the running program of one process. Only its goroutine uses it.
type guest struct {
	h        *Host
	p        *process
	t        time.Time // how far the program has got in its schedule
	lastIO   time.Time // when it last moved data through a live pipe
	console  bool
	stdin    *bufio.Reader // nil: no stdin pipe, reads see EOF
	stdout   stream
	stderr   stream
	env      map[string]string // keys upper case
	hostname string
	cwd      string
	settle   func()
}

// stream is where a guest writes: a pipe, or nothing (w == nil).
type stream struct {
	g *guest
	w *io.PipeWriter
}

// print writes s, blocking until the reader takes it. Write errors (the
// reader went away) are ignored, as a Windows program writing to a broken
// pipe carries on.
func (s stream) print(text string) {
	if s.w == nil || text == "" {
		return
	}
	s.g.settle()
	s.w.Write([]byte(text))
	s.g.lastIO = s.g.h.clock.Now()
}

// alive reports whether the process has not been ended and the host is open.
func (g *guest) alive() bool {
	select {
	case <-g.p.done:
		return false
	case <-g.h.quit:
		return false
	default:
		return true
	}
}

// sleep advances the guest's schedule by d and waits until the clock has
// caught up with it. Time the guest spent blocked on a pipe counts against
// the sleep. It returns false when the process has been ended, and the
// program must then return.
func (g *guest) sleep(d time.Duration) bool {
	g.t = g.t.Add(d)
	if !g.alive() {
		return false
	}
	if !g.t.After(g.h.clock.Now()) {
		return true
	}
	g.settle()
	fired := make(chan struct{})
	stop := g.h.clock.At(g.t, func() { close(fired) })
	defer stop()
	select {
	case <-fired:
		return true
	case <-g.p.done:
	case <-g.h.quit:
	}
	return false
}

// skip moves the schedule of a periodic guest forward by whole periods it
// has fallen behind the clock (after a restore, say), less one, and returns
// how many it skipped, so that catching up costs no time.
func (g *guest) skip(period time.Duration) int {
	behind := g.h.clock.Now().Sub(g.t)
	n := int(behind/period) - 1
	if n <= 0 {
		return 0
	}
	g.t = g.t.Add(time.Duration(n) * period)
	return n
}

// busy charges d of CPU time to the process.
func (g *guest) busy(d time.Duration) {
	g.h.mu.Lock()
	defer g.h.unlock()
	g.p.cpu += d
}

// readLine reads one line of stdin, with its line ending, and reports false
// at EOF.
func (g *guest) readLine() (string, bool) {
	if g.stdin == nil {
		return "", false
	}
	g.settle()
	var (
		line string
		err  error
	)
	if g.console {
		line, err = g.readConsoleLine()
	} else {
		line, err = g.stdin.ReadString('\n')
	}
	g.lastIO = g.h.clock.Now()
	return line, err == nil
}

// readConsoleLine reads a line as a console in line mode does: Enter ends
// it whether the terminal sends CR (a raw terminal) or LF, a CR LF pair
// counts once, and the console echoes the line as it is read. The line is
// returned with CR LF.
func (g *guest) readConsoleLine() (string, error) {
	var b strings.Builder
	for {
		c, err := g.stdin.ReadByte()
		if err != nil {
			if b.Len() > 0 {
				g.stdout.print(b.String())
			}
			return b.String(), err
		}
		if c == '\r' || c == '\n' {
			if c == '\r' && g.stdin.Buffered() > 0 {
				if next, _ := g.stdin.Peek(1); next[0] == '\n' {
					_, _ = g.stdin.ReadByte()
				}
			}
			g.stdout.print(b.String() + "\r\n")
			return b.String() + "\r\n", nil
		}
		b.WriteByte(c)
	}
}

// exitTime is when the program ended: on its schedule, or later if it was
// held up on a pipe.
func (g *guest) exitTime() time.Time {
	if g.lastIO.After(g.t) {
		return g.lastIO
	}
	return g.t
}

// guestEnv is the environment of p: the Windows defaults of a container,
// then the process configuration. Keys are upper case, as lookups in cmd
// and PowerShell ignore case.
func guestEnv(p *process) map[string]string {
	user := p.cfg.User
	if user == "" {
		user = "ContainerAdministrator"
	}
	env := map[string]string{
		"COMPUTERNAME": strings.ToUpper(hostName(p.sys)),
		"USERPROFILE":  `C:\Users\` + user,
		"USERNAME":     user,
		"SYSTEMROOT":   `C:\Windows`,
		"COMSPEC":      `C:\Windows\system32\cmd.exe`,
		"PATH":         `C:\Windows\system32;C:\Windows;C:\Windows\System32\Wbem;C:\Windows\System32\WindowsPowerShell\v1.0\`,
	}
	for k, v := range p.cfg.Environment {
		env[strings.ToUpper(k)] = v
	}
	return env
}

func hostName(s *system) string {
	if s.cfg.HostName != "" {
		return s.cfg.HostName
	}
	return s.id
}
