package winsim

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/berthhq/berth/hcsdriver"
)

// program is one executable the guest knows. To teach the guest a new
// command, add an entry to programs: run gets the invocation and returns the
// exit code; it writes with x.stdout.print, waits with x.g.sleep (and returns
// as soon as that reports false), and charges CPU time with x.g.busy.
type program struct {
	image      string        // file name, as Windows reports it
	workingSet uint64        // private working set while it runs
	imageSize  uint64        // bytes read from storage to load it
	startCPU   time.Duration // CPU time to start
	run        func(x *exec) int
}

// exec is one invocation of a program: by CreateProcess, or by cmd.
type exec struct {
	g              *guest
	argv           []string // argv[0] names the program
	rest           string   // the raw command line after argv[0]
	stdout, stderr stream
}

const mib = 1 << 20

// programs maps a lower-case file name without extension to its program.
var programs map[string]*program

func init() {
	programs = map[string]*program{
		"cmd":        {image: "cmd.exe", workingSet: 2560 << 10, imageSize: 289 << 10, startCPU: 8 * time.Millisecond, run: runCmd},
		"ping":       {image: "PING.EXE", workingSet: 3 * mib, imageSize: 80 << 10, startCPU: 4 * time.Millisecond, run: runPing},
		"timeout":    {image: "timeout.exe", workingSet: 2 * mib, imageSize: 32 << 10, startCPU: 3 * time.Millisecond, run: runTimeout},
		"powershell": {image: "powershell.exe", workingSet: 72 * mib, imageSize: 24 * mib, startCPU: 350 * time.Millisecond, run: runPowerShell},
		"more":       {image: "more.com", workingSet: 2 * mib, imageSize: 28 << 10, startCPU: 3 * time.Millisecond, run: runMore},
		"hostname":   {image: "HOSTNAME.EXE", workingSet: 1536 << 10, imageSize: 20 << 10, startCPU: 2 * time.Millisecond, run: runHostname},
	}
}

// winError is a Windows error as HCS reports it, in a berth error class.
type winError struct {
	msg   string
	class error
}

func (e *winError) Error() string        { return e.msg }
func (e *winError) Is(target error) bool { return target == e.class }

// errFileNotFound is what CreateProcess reports for an unknown executable.
var errFileNotFound = &winError{msg: "The system cannot find the file specified.", class: hcsdriver.ErrNotFound}

// lookupProgram finds the program argv[0] names, with or without a
// directory and an .exe or .com extension, ignoring case.
func lookupProgram(argv []string) *program {
	if len(argv) == 0 {
		return nil
	}
	name := argv[0]
	if i := strings.LastIndexAny(name, `\/`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.ToLower(name)
	name = strings.TrimSuffix(strings.TrimSuffix(name, ".exe"), ".com")
	return programs[name]
}

// invoke runs prog for x.
func invoke(prog *program, x *exec) int {
	x.g.busy(prog.startCPU)
	return prog.run(x)
}

// cutArg splits the first argument off a raw command line, quotes kept, and
// returns it and the rest after it.
func cutArg(s string) (arg, rest string) {
	s = strings.TrimLeft(s, " \t")
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			quoted = !quoted
		case (c == ' ' || c == '\t') && !quoted:
			return s[:i], s[i:]
		}
	}
	return s, ""
}

// restOf returns the raw command line after its first argument.
func restOf(cmdline string) string {
	_, rest := cutArg(cmdline)
	return rest
}

// ---- cmd ----

// shell is the state of one cmd.exe.
type shell struct {
	x          *exec
	errorlevel int
}

func runCmd(x *exec) int {
	sh := &shell{x: x}
	rest := x.rest
	for {
		tok, after := cutArg(rest)
		switch t := strings.ToLower(tok); {
		case t == "/c" || t == "/k":
			code, exited := sh.run(unquoteCmd(strings.TrimLeft(after, " \t")))
			if t == "/c" || exited {
				return code
			}
			return sh.interactive()
		case strings.HasPrefix(t, "/"): // /s /q /d /a /u /v:on /e:on ...
			rest = after
		default:
			return sh.interactive()
		}
	}
}

// interactive runs the lines read from stdin, as cmd does when its input is
// a pipe (without banner or prompt), until EOF or exit.
func (sh *shell) interactive() int {
	for sh.x.g.alive() {
		line, ok := sh.x.g.readLine()
		if code, exited := sh.run(strings.TrimRight(line, "\r\n")); exited {
			return code
		}
		if !ok {
			break
		}
	}
	return sh.errorlevel
}

// unquoteCmd applies cmd /c's quote rule: a leading quote is removed
// together with the last quote on the line.
func unquoteCmd(s string) string {
	if !strings.HasPrefix(s, `"`) {
		return s
	}
	s = s[1:]
	if i := strings.LastIndexByte(s, '"'); i >= 0 {
		s = s[:i] + s[i+1:]
	}
	return s
}

// run runs one command line: variables are expanded once, then commands
// separated by &, && and || run in turn. It reports whether exit was run.
func (sh *shell) run(line string) (code int, exited bool) {
	ok := true
	for _, c := range splitCommands(sh.expand(line)) {
		if !sh.x.g.alive() {
			return sh.errorlevel, true
		}
		if (c.op == "&&" && !ok) || (c.op == "||" && ok) {
			continue
		}
		code, exited := sh.command(c.text)
		if exited {
			return code, true
		}
		ok = sh.errorlevel == 0
	}
	return sh.errorlevel, false
}

// expand replaces %NAME% with the variable's value; undefined variables
// stay as written, as on a cmd command line.
func (sh *shell) expand(line string) string {
	var b strings.Builder
	for {
		i := strings.IndexByte(line, '%')
		if i < 0 {
			b.WriteString(line)
			return b.String()
		}
		j := strings.IndexByte(line[i+1:], '%')
		if j < 0 {
			b.WriteString(line)
			return b.String()
		}
		name := strings.ToUpper(line[i+1 : i+1+j])
		b.WriteString(line[:i])
		if v, ok := sh.variable(name); ok {
			b.WriteString(v)
			line = line[i+j+2:]
		} else {
			b.WriteString(line[i : i+1+j])
			line = line[i+1+j:]
		}
	}
}

func (sh *shell) variable(name string) (string, bool) {
	switch name {
	case "ERRORLEVEL":
		return strconv.Itoa(sh.errorlevel), true
	case "CD":
		return sh.x.g.cwd, true
	}
	v, ok := sh.x.g.env[name]
	return v, ok
}

type command struct {
	op   string // "", "&", "&&" or "||": how it joins the previous command
	text string
}

// splitCommands splits a line at &, && and || outside quotes (but not the
// & of a redirection such as 2>&1).
func splitCommands(line string) []command {
	var (
		cmds   []command
		op     string
		start  int
		quoted bool
	)
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '^':
			i++
		case c == '&' && (i == 0 || line[i-1] != '>'), c == '|' && i+1 < len(line) && line[i+1] == '|':
			cmds = append(cmds, command{op: op, text: line[start:i]})
			op = string(c)
			if i+1 < len(line) && line[i+1] == c {
				op += string(c)
				i++
			}
			start = i + 1
		}
	}
	return append(cmds, command{op: op, text: line[start:]})
}

// redirect removes the redirections from text (>nul, 2>nul, 1>&2, 2>&1,
// >file, >>file) and returns the streams the command writes to. Output sent
// to a file is discarded: the guest has no file system.
func (sh *shell) redirect(text string) (string, stream, stream) {
	out, errw := sh.x.stdout, sh.x.stderr
	quoted := false
	for i := 0; i < len(text); i++ {
		c := text[i]
		if c == '"' {
			quoted = !quoted
		}
		if quoted || c != '>' {
			continue
		}
		start, handle := i, byte('1')
		if i > 0 && (text[i-1] == '1' || text[i-1] == '2') && (i == 1 || text[i-2] == ' ' || text[i-2] == '\t') {
			start, handle = i-1, text[i-1]
		}
		j := i + 1
		if j < len(text) && text[j] == '>' {
			j++
		}
		for j < len(text) && (text[j] == ' ' || text[j] == '\t') {
			j++
		}
		target, after := cutArg(text[j:])
		var to stream
		switch target {
		case "&1":
			to = out
		case "&2":
			to = errw
		default:
			to = stream{g: sh.x.g} // nul or a file
		}
		if handle == '1' {
			out = to
		} else {
			errw = to
		}
		text = text[:start] + after
		i = start - 1
	}
	return text, out, errw
}

// command runs one command and reports whether it was exit.
func (sh *shell) command(text string) (code int, exited bool) {
	text, out, errw := sh.redirect(text)
	text = strings.TrimPrefix(strings.TrimLeft(text, " \t"), "@")
	verb, args := cutArg(text)
	switch lv := strings.ToLower(text); {
	case strings.TrimSpace(text) == "":
		return sh.errorlevel, false
	case strings.HasPrefix(lv, "echo") && (len(lv) == 4 || strings.ContainsRune(" \t.,;:=/(+[]\\", rune(lv[4]))):
		msg := text[4:]
		switch {
		case strings.TrimSpace(msg) == "":
			out.print("ECHO is on.\r\n")
		case strings.EqualFold(strings.TrimSpace(msg), "on"), strings.EqualFold(strings.TrimSpace(msg), "off"):
		default:
			out.print(msg[1:] + "\r\n")
		}
		return sh.errorlevel, false
	}
	switch strings.ToLower(verb) {
	case "exit":
		fields := strings.Fields(args)
		if len(fields) > 0 && strings.EqualFold(fields[0], "/b") {
			fields = fields[1:]
		}
		code := sh.errorlevel
		if len(fields) > 0 {
			code, _ = strconv.Atoi(fields[0])
		}
		return code, true
	case "rem":
	case "for":
		return sh.forLoop(args, out, errw)
	case "cd", "chdir":
		dir := strings.TrimSpace(args)
		if d, ok := strings.CutPrefix(dir, "/d "); ok {
			dir = strings.TrimSpace(d)
		}
		switch {
		case dir == "":
			out.print(sh.x.g.cwd + "\r\n")
		case len(dir) >= 2 && dir[1] == ':':
			sh.x.g.cwd = dir
		default:
			sh.x.g.cwd = strings.TrimSuffix(sh.x.g.cwd, `\`) + `\` + dir
		}
		sh.errorlevel = 0
	case "type":
		if !strings.EqualFold(strings.TrimSpace(args), "con") {
			errw.print("The system cannot find the file specified.\r\n")
			sh.errorlevel = 1
			break
		}
		sh.errorlevel = copyLines(sh.x.g, out)
	default:
		argv := hcsdriver.SplitCommandLine(text)
		prog := lookupProgram(argv)
		if prog == nil {
			errw.print(fmt.Sprintf("'%s' is not recognized as an internal or external command,\r\noperable program or batch file.\r\n", strings.Trim(verb, `"`)))
			sh.errorlevel = 9009
			break
		}
		sh.errorlevel = invoke(prog, &exec{g: sh.x.g, argv: argv, rest: args, stdout: out, stderr: errw})
	}
	return sh.errorlevel, false
}

// forLoop runs cmd's counting loop, FOR /L %v IN (start,step,end) DO
// command: the command runs once per value, with %v replaced by it, and is
// echoed with a prompt unless it starts with '@', as cmd does with echo on.
// Other forms of FOR are refused as cmd refuses a malformed one.
func (sh *shell) forLoop(args string, out, errw stream) (code int, exited bool) {
	syntax := func() (int, bool) {
		errw.print(strings.TrimSpace(args) + " was unexpected at this time.\r\n")
		sh.errorlevel = 255
		return sh.errorlevel, false
	}
	f := strings.Fields(args)
	if len(f) < 5 || !strings.EqualFold(f[0], "/l") || len(f[1]) != 2 || f[1][0] != '%' || !strings.EqualFold(f[2], "in") {
		return syntax()
	}
	v := f[1]
	rest := strings.TrimSpace(args[strings.Index(args, f[2])+len(f[2]):])
	lp, rp := strings.IndexByte(rest, '('), strings.IndexByte(rest, ')')
	if lp != 0 || rp < 0 {
		return syntax()
	}
	var bounds [3]int
	for i, s := range strings.Split(rest[1:rp], ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if i > 2 || err != nil {
			return syntax()
		}
		bounds[i] = n
	}
	do, body := cutArg(rest[rp+1:])
	body = strings.TrimLeft(body, " \t")
	if !strings.EqualFold(do, "do") || body == "" {
		return syntax()
	}
	start, step, end := bounds[0], bounds[1], bounds[2]
	for i := start; (step > 0 && i <= end) || (step < 0 && i >= end); i += step {
		if !sh.x.g.alive() {
			return sh.errorlevel, true
		}
		line := strings.ReplaceAll(body, v, strconv.Itoa(i))
		if !strings.HasPrefix(line, "@") {
			out.print("\r\n" + sh.x.g.cwd + ">" + line + "\r\n")
		}
		if code, exited := sh.run(line); exited {
			return code, true
		}
	}
	return sh.errorlevel, false
}

// copyLines copies stdin to out line by line, with CRLF line endings, until
// EOF.
func copyLines(g *guest, out stream) int {
	for g.alive() {
		line, ok := g.readLine()
		if line != "" {
			out.print(strings.TrimRight(line, "\r\n") + "\r\n")
		}
		if !ok {
			break
		}
	}
	return 0
}

// ---- more, hostname ----

func runMore(x *exec) int { return copyLines(x.g, x.stdout) }

func runHostname(x *exec) int {
	x.stdout.print(x.g.hostname + "\r\n")
	return 0
}

// ---- ping ----

const pingCPU = 200 * time.Microsecond // per echo

func runPing(x *exec) int {
	var (
		host    string
		count   = 4
		forever bool
		size    = 32
	)
	args := x.argv[1:]
	for i := 0; i < len(args); i++ {
		a := strings.ToLower(args[i])
		if !strings.HasPrefix(a, "-") && !strings.HasPrefix(a, "/") {
			host = args[i]
			continue
		}
		switch a[1:] {
		case "t":
			forever = true
		case "a", "f", "4", "6", "r":
		case "n", "l", "w", "i", "v", "s", "j", "k", "p":
			if i+1 >= len(args) {
				x.stdout.print(fmt.Sprintf("Value must be supplied for option %s.\r\n", args[i]))
				return 1
			}
			i++
			n, err := strconv.Atoi(args[i])
			switch {
			case a[1:] == "n" && (err != nil || n < 1):
				x.stdout.print("Bad value for option -n, valid range is from 1 to 4294967295.\r\n")
				return 1
			case a[1:] == "n":
				count = n
			case a[1:] == "l" && (err != nil || n < 0 || n > 65500):
				x.stdout.print("Bad value for option -l, valid range is from 0 to 65500.\r\n")
				return 1
			case a[1:] == "l":
				size = n
			}
		default:
			x.stdout.print(fmt.Sprintf("Bad option %s.\r\n", args[i]))
			return 1
		}
	}
	if host == "" {
		x.stdout.print("\r\nUsage: ping [-t] [-a] [-n count] [-l size] [-f] [-i TTL] [-v TOS]\r\n            [-r count] [-s count] [[-j host-list] | [-k host-list]]\r\n            [-w timeout] [-R] [-S srcaddr] [-c compartment] [-p]\r\n            [-4] [-6] target_name\r\n")
		return 1
	}
	addr := host
	switch {
	case net.ParseIP(host) != nil:
	case strings.EqualFold(host, "localhost"), strings.EqualFold(host, x.g.hostname):
		addr = "127.0.0.1"
	default:
		x.stdout.print(fmt.Sprintf("Ping request could not find host %s. Please check the name and try again.\r\n", host))
		return 1
	}
	if addr == host {
		x.stdout.print(fmt.Sprintf("\r\nPinging %s with %d bytes of data:\r\n", host, size))
	} else {
		x.stdout.print(fmt.Sprintf("\r\nPinging %s [%s] with %d bytes of data:\r\n", host, addr, size))
	}
	sent := 0
	for sent < count || forever {
		if sent > 0 {
			if forever && x.stdout.w == nil { // nobody would see the replies
				n := x.g.skip(time.Second)
				sent += n
				x.g.busy(time.Duration(n) * pingCPU)
			}
			if !x.g.sleep(time.Second) {
				return ExitCodeKilled
			}
		}
		sent++
		x.g.busy(pingCPU)
		x.stdout.print(fmt.Sprintf("Reply from %s: bytes=%d time<1ms TTL=128\r\n", addr, size))
	}
	x.stdout.print(fmt.Sprintf("\r\nPing statistics for %s:\r\n"+
		"    Packets: Sent = %d, Received = %d, Lost = 0 (0%% loss),\r\n"+
		"Approximate round trip times in milli-seconds:\r\n"+
		"    Minimum = 0ms, Maximum = 0ms, Average = 0ms\r\n", addr, sent, sent))
	return 0
}

// ---- timeout ----

func runTimeout(x *exec) int {
	secs, set := 0, false
	args := x.argv[1:]
	for i := 0; i < len(args); i++ {
		a := strings.ToLower(args[i])
		switch {
		case a == "/nobreak":
		case a == "/t" && i+1 < len(args):
			i++
			a = args[i]
			fallthrough
		case !strings.HasPrefix(a, "/") && !set:
			n, err := strconv.Atoi(a)
			if err != nil || n < -1 || n > 99999 {
				x.stderr.print("ERROR: Invalid value for timeout (/T) specified. Valid range is -1 to 99999.\r\n")
				return 1
			}
			secs, set = n, true
		default:
			x.stderr.print("ERROR: Invalid syntax. Default option is not allowed more than '1' time(s).\r\nType \"TIMEOUT /?\" for usage.\r\n")
			return 1
		}
	}
	if !set {
		x.stderr.print("ERROR: Invalid syntax. Default option is not allowed more than '1' time(s).\r\nType \"TIMEOUT /?\" for usage.\r\n")
		return 1
	}
	if !x.g.console {
		x.stderr.print("ERROR: Input redirection is not supported, exiting the process immediately.\r\n")
		return 1
	}
	x.stdout.print(fmt.Sprintf("\r\nWaiting for %d seconds, press a key to continue ...", secs))
	for left := secs; left != 0; left-- {
		if secs < 0 {
			x.g.skip(time.Second)
		}
		if !x.g.sleep(time.Second) {
			return ExitCodeKilled
		}
	}
	x.stdout.print("\r\n")
	return 0
}

// ---- powershell ----

// runPowerShell understands -Command (or a bare script) made of statements
// separated by ';': Start-Sleep (sleep), exit, Write-Output (echo,
// Write-Host).
func runPowerShell(x *exec) int {
	args := x.argv[1:]
	var script []string
argsLoop:
	for i := 0; i < len(args); i++ {
		switch a := strings.ToLower(args[i]); {
		case a == "-command" || a == "-c":
			script = args[i+1:]
			break argsLoop
		case a == "-executionpolicy" || a == "-ep" || a == "-inputformat" || a == "-outputformat" || a == "-windowstyle":
			i++
		case strings.HasPrefix(a, "-"):
		default:
			script = args[i:]
			break argsLoop
		}
	}
	failed := false
	for _, stmt := range splitOutside(strings.Join(script, " "), ';') {
		words := psWords(stmt)
		if len(words) == 0 {
			continue
		}
		failed = false
		switch verb := strings.ToLower(words[0]); verb {
		case "start-sleep", "sleep":
			d, ok := psDuration(words[1:])
			if !ok {
				x.stderr.print(fmt.Sprintf("Start-Sleep : Cannot bind parameter. Cannot convert value %q to type \"System.Double\".\r\n", strings.Join(words[1:], " ")))
				failed = true
				continue
			}
			if !x.g.sleep(d) {
				return ExitCodeKilled
			}
		case "exit":
			code := 0
			if len(words) > 1 {
				code, _ = strconv.Atoi(words[1])
			}
			return code
		case "write-output", "echo", "write-host":
			x.stdout.print(strings.Join(words[1:], " ") + "\r\n")
		default:
			x.stderr.print(fmt.Sprintf("%s : The term '%s' is not recognized as the name of a cmdlet, function, script file, or operable program. Check the spelling of the name, or if a path was included, verify that the path is correct and try again.\r\n", words[0], words[0]))
			failed = true
		}
	}
	if failed {
		return 1
	}
	return 0
}

// psDuration parses Start-Sleep's arguments: N, -Seconds N, -s N,
// -Milliseconds N, -m N.
func psDuration(args []string) (time.Duration, bool) {
	unit := time.Second
	if len(args) == 2 {
		switch strings.ToLower(args[0]) {
		case "-seconds", "-s":
		case "-milliseconds", "-m":
			unit = time.Millisecond
		default:
			return 0, false
		}
		args = args[1:]
	}
	if len(args) != 1 {
		return 0, false
	}
	n, err := strconv.ParseFloat(args[0], 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return time.Duration(n * float64(unit)), true
}

// splitOutside splits s at sep outside single or double quotes.
func splitOutside(s string, sep byte) []string {
	var (
		parts []string
		quote byte
		start int
	)
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case quote != 0:
			if c == quote {
				quote = 0
			}
		case c == '"' || c == '\'':
			quote = c
		case c == sep:
			parts = append(parts, s[start:i])
			start = i + 1
		}
	}
	return append(parts, s[start:])
}

// psWords splits a statement into words at spaces outside quotes, and
// removes the quotes.
func psWords(stmt string) []string {
	var words []string
	for _, w := range splitOutside(strings.TrimSpace(stmt), ' ') {
		if w == "" {
			continue
		}
		if len(w) >= 2 && (w[0] == '"' || w[0] == '\'') && w[len(w)-1] == w[0] {
			w = w[1 : len(w)-1]
		}
		words = append(words, w)
	}
	return words
}
