package hcsdriver

import "strings"

// EscapeArg quotes one argument so that the Windows command-line parser
// (CommandLineToArgvW, and the C runtime's) reads it back unchanged. It
// returns what golang.org/x/sys/windows.EscapeArg returns, and is kept here
// so that command lines are built and tested on every OS: `""` for an empty
// argument; otherwise each quote is escaped with a backslash, backslashes are
// doubled only before a quote or the closing quote, and the argument is
// wrapped in quotes only if it holds a space or a tab.
func EscapeArg(s string) string {
	if s == "" {
		return `""`
	}
	if !strings.ContainsAny(s, " \t\"\\") {
		return s
	}
	quote := strings.ContainsAny(s, " \t")
	var b strings.Builder
	if quote {
		b.WriteByte('"')
	}
	slashes := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			slashes++
		case '"':
			b.WriteString(strings.Repeat(`\`, slashes+1))
			slashes = 0
		default:
			slashes = 0
		}
		b.WriteByte(c)
	}
	if quote {
		b.WriteString(strings.Repeat(`\`, slashes))
		b.WriteByte('"')
	}
	return b.String()
}

// CommandLine joins args into one Windows command line, quoting each with
// EscapeArg.
func CommandLine(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		q[i] = EscapeArg(a)
	}
	return strings.Join(q, " ")
}

// SplitCommandLine splits a Windows command line into arguments the way
// CommandLineToArgvW does (2008 rules): spaces and tabs separate arguments
// outside quotes; 2n backslashes before a quote yield n backslashes and a
// quote delimiter; 2n+1 yield n backslashes and a literal quote; "" inside a
// quoted argument yields a literal quote.
func SplitCommandLine(cmd string) []string {
	var (
		args    []string
		cur     strings.Builder
		inArg   bool
		inQuote bool
	)
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch {
		case c == '\\':
			n := 0
			for i < len(cmd) && cmd[i] == '\\' {
				n++
				i++
			}
			inArg = true
			if i < len(cmd) && cmd[i] == '"' {
				cur.WriteString(strings.Repeat(`\`, n/2))
				if n%2 == 1 {
					cur.WriteByte('"')
					continue
				}
			} else {
				cur.WriteString(strings.Repeat(`\`, n))
			}
			i--
		case c == '"':
			inArg = true
			if inQuote && i+1 < len(cmd) && cmd[i+1] == '"' {
				cur.WriteByte('"')
				i++
				continue
			}
			inQuote = !inQuote
		case (c == ' ' || c == '\t') && !inQuote:
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		default:
			inArg = true
			cur.WriteByte(c)
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	return args
}
