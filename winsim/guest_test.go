package winsim_test

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/berthhq/berth/hcsdriver"
	"github.com/berthhq/berth/winsim"
)

// runGuest runs cfg to completion on a host with a manual clock, draining
// its output, feeding it stdin, and moving the clock on while it sleeps.
func runGuest(t *testing.T, sysCfg hcsdriver.Config, cfg hcsdriver.ProcessConfig, stdin string) (stdout, stderr string, code int) {
	t.Helper()
	h, clock := newHost(t)
	s := running(t, h.Compute(), "c1", sysCfg)
	cfg.Stdout, cfg.Stderr, cfg.Stdin = true, true, stdin != ""
	p := spawn(t, s, cfg)
	in, out, errOut, err := p.Stdio()
	if err != nil {
		t.Fatal(err)
	}
	read := func(r io.Reader) <-chan string {
		c := make(chan string, 1)
		if r == nil {
			c <- ""
			return c
		}
		go func() {
			b, _ := io.ReadAll(r)
			c <- string(b)
		}()
		return c
	}
	outc, errc := read(out), read(errOut)
	if in != nil {
		go func() {
			io.WriteString(in, stdin)
			in.Close()
		}()
	}
	done := make(chan error, 1)
	go func() { done <- p.Wait(testCtx(t)) }()
	for waiting := true; waiting; {
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("Wait: %v", err)
			}
			waiting = false
		case <-time.After(time.Millisecond): // pace the clock; the guest's schedule does not depend on it
			clock.Advance(time.Second)
		}
	}
	code, err = p.ExitCode()
	if err != nil {
		t.Fatal(err)
	}
	return <-outc, <-errc, code
}

const notRecognized = "'nosuch' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n"

func pingOutput(target, addr string, n int) string {
	head := "\r\nPinging " + target + " with 32 bytes of data:\r\n"
	if target != addr {
		head = "\r\nPinging " + target + " [" + addr + "] with 32 bytes of data:\r\n"
	}
	return head + strings.Repeat("Reply from "+addr+": bytes=32 time<1ms TTL=128\r\n", n) +
		"\r\nPing statistics for " + addr + ":\r\n" +
		"    Packets: Sent = " + string(rune('0'+n)) + ", Received = " + string(rune('0'+n)) + ", Lost = 0 (0% loss),\r\n" +
		"Approximate round trip times in milli-seconds:\r\n" +
		"    Minimum = 0ms, Maximum = 0ms, Average = 0ms\r\n"
}

func TestGuestCommands(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sys     hcsdriver.Config
		cfg     hcsdriver.ProcessConfig
		stdin   string
		stdout  string
		stderr  string
		code    int
		elapsed time.Duration // of the guest's own schedule
	}{
		{name: "echo", cfg: hcsdriver.ProcessConfig{CommandLine: "cmd /c echo hi"}, stdout: "hi\r\n"},
		{name: "full path", cfg: hcsdriver.ProcessConfig{CommandLine: `"C:\Windows\System32\CMD.EXE" /c echo hi`}, stdout: "hi\r\n"},
		{name: "echo dot", cfg: hcsdriver.ProcessConfig{CommandLine: "cmd /c echo."}, stdout: "\r\n"},
		{name: "exit", cfg: hcsdriver.ProcessConfig{CommandLine: "cmd /c exit /b 3"}, code: 3},
		{name: "sequence", cfg: hcsdriver.ProcessConfig{CommandLine: `cmd /c "echo a & echo b & exit /b 2"`}, stdout: "a \r\nb \r\n", code: 2},
		{name: "quoted ampersand", cfg: hcsdriver.ProcessConfig{CommandLine: `cmd /c echo "a & b"`}, stdout: "\"a & b\"\r\n"},
		{name: "options before /c", cfg: hcsdriver.ProcessConfig{CommandLine: `cmd /s /d /c "echo x"`}, stdout: "x\r\n"},
		{name: "variables", cfg: hcsdriver.ProcessConfig{CommandLine: "cmd /c echo %mode% %NOPE% %USERNAME%", User: "ContainerUser", Environment: map[string]string{"MODE": "prod"}}, stdout: "prod %NOPE% ContainerUser\r\n"},
		{name: "computername", sys: hcsdriver.Config{HostName: "web-1"}, cfg: hcsdriver.ProcessConfig{CommandLine: "cmd /c echo %COMPUTERNAME%"}, stdout: "WEB-1\r\n"},
		{name: "unknown command", cfg: hcsdriver.ProcessConfig{CommandLine: "cmd /c nosuch"}, stderr: notRecognized, code: 9009},
		{name: "or", cfg: hcsdriver.ProcessConfig{CommandLine: `cmd /c "nosuch 2>nul && echo yes || echo no"`}, stdout: "no\r\n", code: 9009},
		{name: "and", cfg: hcsdriver.ProcessConfig{CommandLine: `cmd /c "cmd /c exit /b 0 && echo yes"`}, stdout: "yes\r\n"},
		{name: "stderr", cfg: hcsdriver.ProcessConfig{CommandLine: `cmd /c "echo out& echo err 1>&2"`}, stdout: "out\r\n", stderr: "err \r\n"},
		{name: "2>&1", cfg: hcsdriver.ProcessConfig{CommandLine: `cmd /c "nosuch 2>&1"`}, stdout: notRecognized, code: 9009},
		{name: "to nul", cfg: hcsdriver.ProcessConfig{CommandLine: `cmd /c "echo x>nul"`}},
		{name: "cd", cfg: hcsdriver.ProcessConfig{CommandLine: `cmd /c "cd & cd sub & cd"`, WorkingDirectory: `C:\app`}, stdout: "C:\\app\r\nC:\\app\\sub\r\n"},
		{name: "type con", cfg: hcsdriver.ProcessConfig{CommandLine: "cmd /c type con"}, stdin: "a\nb", stdout: "a\r\nb\r\n"},
		{name: "more", cfg: hcsdriver.ProcessConfig{CommandLine: "more"}, stdin: "hello\r\n", stdout: "hello\r\n"},
		{name: "interactive cmd", cfg: hcsdriver.ProcessConfig{CommandLine: "cmd /k echo hi"}, stdin: "echo there\r\nexit /b 6\r\necho never\r\n", stdout: "hi\r\nthere\r\n", code: 6},
		{name: "hostname", sys: hcsdriver.Config{HostName: "web-1"}, cfg: hcsdriver.ProcessConfig{CommandLine: "hostname"}, stdout: "web-1\r\n"},
		{name: "console merges stderr", cfg: hcsdriver.ProcessConfig{CommandLine: `cmd /c "echo e 1>&2"`, EmulateConsole: true}, stdout: "e \r\n"},
		{name: "ping", cfg: hcsdriver.ProcessConfig{CommandLine: "ping -n 3 127.0.0.1"}, stdout: pingOutput("127.0.0.1", "127.0.0.1", 3), elapsed: 2 * time.Second},
		{name: "ping localhost", cfg: hcsdriver.ProcessConfig{CommandLine: "PING.EXE localhost -n 1"}, stdout: pingOutput("localhost", "127.0.0.1", 1)},
		{name: "ping from cmd", cfg: hcsdriver.ProcessConfig{CommandLine: `cmd /c "ping -n 2 10.0.0.1 >nul & exit /b 4"`}, code: 4, elapsed: time.Second},
		{name: "ping unknown host", cfg: hcsdriver.ProcessConfig{CommandLine: "ping nohost"}, stdout: "Ping request could not find host nohost. Please check the name and try again.\r\n", code: 1},
		{name: "ping bad count", cfg: hcsdriver.ProcessConfig{CommandLine: "ping -n 0 127.0.0.1"}, stdout: "Bad value for option -n, valid range is from 1 to 4294967295.\r\n", code: 1},
		{name: "timeout without console", cfg: hcsdriver.ProcessConfig{CommandLine: "timeout /t 5"}, stderr: "ERROR: Input redirection is not supported, exiting the process immediately.\r\n", code: 1},
		{name: "timeout", cfg: hcsdriver.ProcessConfig{CommandLine: "timeout /t 3 /nobreak", EmulateConsole: true}, stdout: "\r\nWaiting for 3 seconds, press a key to continue ...\r\n", elapsed: 3 * time.Second},
		{name: "powershell sleep", cfg: hcsdriver.ProcessConfig{CommandLine: "powershell Start-Sleep 2"}, elapsed: 2 * time.Second},
		{name: "powershell command", cfg: hcsdriver.ProcessConfig{CommandLine: "powershell.exe -NoProfile -Command Start-Sleep -Milliseconds 1500; exit 4"}, code: 4, elapsed: 1500 * time.Millisecond},
		{name: "powershell output", cfg: hcsdriver.ProcessConfig{CommandLine: `powershell -Command "Write-Output 'hello world'"`}, stdout: "hello world\r\n"},
		{name: "powershell unknown", cfg: hcsdriver.ProcessConfig{CommandLine: "powershell -Command Get-Nothing"}, stderr: "Get-Nothing : The term 'Get-Nothing' is not recognized as the name of a cmdlet, function, script file, or operable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again.\r\n", code: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stdout, stderr, code := runGuest(t, tc.sys, tc.cfg, tc.stdin)
			if diff := cmp.Diff(tc.stdout, stdout); diff != "" {
				t.Errorf("stdout (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.stderr, stderr); diff != "" {
				t.Errorf("stderr (-want +got):\n%s", diff)
			}
			if code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
		})
		if tc.stdin != "" {
			continue // ends when its input does
		}
		t.Run(tc.name+"/schedule", func(t *testing.T) {
			// Without pipes the guest follows its schedule exactly.
			h, clock := newHost(t)
			s := running(t, h.Compute(), "c1", tc.sys)
			p := spawn(t, s, tc.cfg)
			if tc.elapsed > 0 {
				if err := clock.BlockUntil(testCtx(t), 1); err != nil {
					t.Fatal(err)
				}
				clock.Advance(tc.elapsed)
			}
			if code := exitCode(t, p); code != tc.code {
				t.Errorf("exit code %d, want %d", code, tc.code)
			}
			if got := h.Snapshot().Systems[0].Processes[0].ExitedAt; !got.Equal(t0.Add(tc.elapsed)) {
				t.Errorf("exited at %v, want %v", got.Sub(t0), tc.elapsed)
			}
		})
	}
}

func TestUnknownExecutable(t *testing.T) {
	h, _ := newHost(t)
	s := running(t, h.Compute(), "c1", hcsdriver.Config{})
	for _, cmdline := range []string{"notepad.exe", `C:\nosuch\ping.exe.bak -n 1`, ""} {
		_, err := s.CreateProcess(testCtx(t), hcsdriver.ProcessConfig{CommandLine: cmdline})
		var op *hcsdriver.OpError
		if !errors.Is(err, hcsdriver.ErrNotFound) || !errors.As(err, &op) || op.Op != winsim.OpCreateProcess ||
			!strings.Contains(err.Error(), "The system cannot find the file specified.") {
			t.Errorf("CreateProcess(%q) = %v, want the file-not-found error", cmdline, err)
		}
	}
	if procs := h.Snapshot().Systems[0].Processes; len(procs) != 0 {
		t.Errorf("failed creates left processes: %+v", procs)
	}
}

func TestPingForeverUntilKilled(t *testing.T) {
	h, clock := newHost(t)
	s := running(t, h.Compute(), "c1", hcsdriver.Config{})
	p := spawn(t, s, hcsdriver.ProcessConfig{CommandLine: "ping -t 127.0.0.1", Stdout: true})
	_, out, _, err := p.Stdio()
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		b := make([]byte, 4096)
		for {
			n, err := out.Read(b)
			if err != nil {
				return
			}
			lines <- string(b[:n])
		}
	}()
	want := []string{"\r\nPinging 127.0.0.1 with 32 bytes of data:\r\n"}
	for range 5 {
		want = append(want, "Reply from 127.0.0.1: bytes=32 time<1ms TTL=128\r\n")
	}
	var got []string
	for len(got) < len(want) {
		got = append(got, <-lines)
		if len(got) > 1 && len(got) < len(want) {
			if err := clock.BlockUntil(testCtx(t), 1); err != nil {
				t.Fatal(err)
			}
			clock.Advance(time.Second)
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("output (-want +got):\n%s", diff)
	}
	if err := p.Kill(testCtx(t)); err != nil {
		t.Fatal(err)
	}
	for range lines { // EOF once killed
	}
	if code := exitCode(t, p); code != winsim.ExitCodeKilled {
		t.Errorf("exit code %d, want %d", code, winsim.ExitCodeKilled)
	}
}

// TestConsoleInput: on a console, Enter ends a line whether it arrives as CR
// (a raw terminal) or LF, and the console echoes what is typed.
func TestConsoleInput(t *testing.T) {
	h := winsim.New()
	defer h.Close()
	ctx := context.Background()
	d := h.Compute()
	s, err := d.Create(ctx, "tty", hcsdriver.Config{Owner: "t"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Start(ctx); err != nil {
		t.Fatal(err)
	}
	p, err := s.CreateProcess(ctx, hcsdriver.ProcessConfig{CommandLine: "cmd /c more", EmulateConsole: true, Stdin: true, Stdout: true})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	in, out, _, err := p.Stdio()
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	go func() { b, _ := io.ReadAll(out); got <- string(b) }()
	if _, err := io.WriteString(in, "typed\rpiped\r\nlast\n"); err != nil {
		t.Fatal(err)
	}
	in.Close()
	if err := p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
	if out, want := <-got, "typed\r\ntyped\r\npiped\r\npiped\r\nlast\r\nlast\r\n"; out != want {
		t.Errorf("console output %q, want %q (each line echoed, then more's copy)", out, want)
	}
}
