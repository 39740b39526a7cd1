package hcsdriver_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/berthhq/berth/hcsdriver"
)

// TestEscapeArg holds EscapeArg to golang.org/x/sys/windows.EscapeArg, which
// builds only on Windows: these are the examples of its reference tests
// (syscall's TestEscapeArg, the same algorithm), plus the rules of its doc
// comment one by one.
func TestEscapeArg(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, `""`},
		{`a`, `a`},
		{` `, `" "`},
		{`\`, `\`},
		{`"`, `\"`},
		{`\"`, `\\\"`},
		{`\\"`, `\\\\\"`},
		{`\\ `, `"\\ "`},
		{` \\`, `" \\\\"`},
		{`a `, `"a "`},
		{`C:\`, `C:\`},
		{`C:\Program Files (x32)\Common\`, `"C:\Program Files (x32)\Common\\"`},
		{`C:\Users\Игорь\`, `C:\Users\Игорь\`},
		{`Андрей\file`, `Андрей\file`},
		{`C:\Windows\temp`, `C:\Windows\temp`},
		{`c:\temp\newfile`, `c:\temp\newfile`},
		{`\\?\C:\Windows`, `\\?\C:\Windows`},
		{`\\?\`, `\\?\`},
		{`\\.\C:\Windows\`, `\\.\C:\Windows\`},
		{`\\server\share\file`, `\\server\share\file`},
		{`\\newserver\tempshare\really.txt`, `\\newserver\tempshare\really.txt`},
		// Doc comment rules: quotes are escaped; backslashes doubled only
		// before a quote; wrapped in quotes only for a space or a tab.
		{`say"hi"`, `say\"hi\"`},
		{`a\b\"c`, `a\b\\\"c`},
		{"a\tb", "\"a\tb\""},
		{"a\nb", "a\nb"},
		{"a\vb", "a\vb"},
		{`echo "hi there"`, `"echo \"hi there\""`},
		{`D:\data:C:\data:ro`, `D:\data:C:\data:ro`},
	} {
		if got := hcsdriver.EscapeArg(tc.in); got != tc.want {
			t.Errorf("EscapeArg(%#q) = %#q, want %#q", tc.in, got, tc.want)
		}
	}
}

func TestCommandLine(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no args", nil, ""},
		{"plain", []string{"cmd", "/c", "exit", "/b", "3"}, `cmd /c exit /b 3`},
		{"spaces", []string{"cmd", "/c", "echo hi"}, `cmd /c "echo hi"`},
		{"empty args", []string{"prog", "", "x", ""}, `prog "" x ""`},
		{"quotes", []string{"prog", `say "hi"`, `"`}, `prog "say \"hi\"" \"`},
		{"trailing backslash quoted", []string{`C:\Program Files\`, `x`}, `"C:\Program Files\\" x`},
		{"trailing backslash bare", []string{`C:\dir\`, `x`}, `C:\dir\ x`},
		{"tab", []string{"a\tb"}, "\"a\tb\""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := hcsdriver.CommandLine(tc.args)
			if got != tc.want {
				t.Errorf("CommandLine(%#q) = %#q, want %#q", tc.args, got, tc.want)
			}
			if back := hcsdriver.SplitCommandLine(got); !slices.Equal(back, tc.args) {
				t.Errorf("SplitCommandLine(%#q) = %#q, want %#q", got, back, tc.args)
			}
		})
	}
}

// TestSplitCommandLine parses command lines written by hand, among them the
// examples of Microsoft's "Parsing C++ command-line arguments".
func TestSplitCommandLine(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{``, nil},
		{"  \t ", nil},
		{`prog "abc" d e`, []string{"prog", "abc", "d", "e"}},
		{`prog a\\b d"e f"g h`, []string{"prog", `a\\b`, "de fg", "h"}},
		{`prog a\\\"b c d`, []string{"prog", `a\"b`, "c", "d"}},
		{`prog a\\\\"b c" d e`, []string{"prog", `a\\b c`, "d", "e"}},
		{`prog a"b"" c d`, []string{"prog", `ab" c d`}},
		{`  lead   and  trail  `, []string{"lead", "and", "trail"}},
		{"tabs\tseparate", []string{"tabs", "separate"}},
		{"newlines\ndo\vnot", []string{"newlines\ndo\vnot"}},
		{`"" ""`, []string{"", ""}},
		{`a""b`, []string{"ab"}},
		{`"unterminated quote`, []string{"unterminated quote"}},
		{`trailing\\`, []string{`trailing\\`}},
		{`"quoted trailing\\"`, []string{`quoted trailing\`}},
		{`\\\\server\share`, []string{`\\\\server\share`}},
		{`cmd /c "echo "hi""`, []string{"cmd", "/c", "echo hi"}},
	} {
		if got := hcsdriver.SplitCommandLine(tc.in); !slices.Equal(got, tc.want) {
			t.Errorf("SplitCommandLine(%#q) = %#q, want %#q", tc.in, got, tc.want)
		}
	}
}

// FuzzCommandLine: any arguments without NUL come back unchanged from
// SplitCommandLine(CommandLine(args)). The input is the arguments joined
// with NUL; seeds are in testdata/fuzz/FuzzCommandLine.
func FuzzCommandLine(f *testing.F) {
	f.Fuzz(func(t *testing.T, joined string) {
		args := strings.Split(joined, "\x00")
		line := hcsdriver.CommandLine(args)
		if got := hcsdriver.SplitCommandLine(line); !slices.Equal(got, args) {
			t.Fatalf("SplitCommandLine(%#q) = %#q, want %#q", line, got, args)
		}
		for _, a := range args {
			if got := hcsdriver.SplitCommandLine(hcsdriver.EscapeArg(a)); len(got) != 1 || got[0] != a {
				t.Fatalf("EscapeArg(%#q) = %#q splits to %#q", a, hcsdriver.EscapeArg(a), got)
			}
		}
	})
}
