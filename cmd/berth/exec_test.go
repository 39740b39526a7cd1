package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/winsim"
)

// listeningAgent starts a real agent from o, listening on loopback for the
// CLI and stopped at the end of the test, and returns its URL.
func listeningAgent(t *testing.T, o agent.Options) string {
	t.Helper()
	o.Node, o.Host, o.DataDir, o.Listen, o.User, o.Password = node, "winsim", t.TempDir(), "127.0.0.1:0", "berth", "pw"
	o.StopTimeout = time.Second
	o.Logger = zerolog.New(zerolog.NewTestWriter(t)).Level(zerolog.WarnLevel)
	a, err := agent.Start(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := a.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	return strings.Replace(a.Server.ClientURL(), "nats://", "nats://berth:pw@", 1)
}

// execAgent runs an agent on a simulated host with a running container
// "shell" and a created one "idle", and returns its URL.
func execAgent(t *testing.T) string {
	t.Helper()
	host := winsim.New()
	t.Cleanup(func() { host.Close() })
	url := listeningAgent(t, agent.Options{Compute: host.Compute()})
	berthOK(t, url, "run", "--name", "shell", "nanoserver", "ping", "-t", "localhost")
	berthOK(t, url, "create", "--name", "idle", "nanoserver", "cmd")
	return url
}

func TestCLI_Exec(t *testing.T) {
	url := execAgent(t)
	old := stdin
	stdin = strings.NewReader("typed\r\n")
	t.Cleanup(func() { stdin = old })
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr string
	}{
		{[]string{"exec", "shell", "cmd", "/c", "echo out& echo err 1>&2& exit /b 3"}, 3, "out\r\n", "err \r\n"},
		{[]string{"exec", "-e", "A=1", "-w", `C:\x`, "shell", "cmd", "/c", "echo %A%& cd"}, 0, "1\r\nC:\\x\r\n", ""},
		{[]string{"exec", "-i", "shell", "cmd", "/c", "more"}, 0, "typed\r\n", ""},
		{[]string{"exec", "-t", "shell", "cmd", "/c", "echo err 1>&2"}, 0, "err \r\n", ""},
		{[]string{"exec", "idle", "cmd", "/c", "echo hi"}, exitFailure, "", "exec needs a running container"},
		{[]string{"exec", "nope", "cmd"}, exitFailure, "", "404 not_found"},
		{[]string{"exec", "shell"}, exitUsage, "", "a container and a command"},
		{[]string{"exec", "-e", "=x", "shell", "cmd"}, exitUsage, "", "--env"},
	} {
		code, stdout, stderr := berth(t, url, tc.args...)
		if code != tc.code || stdout != tc.stdout || !strings.Contains(stderr, tc.stderr) || (tc.stderr == "" && stderr != "") {
			t.Errorf("berth %q: exit %d, stdout %q, stderr %q; want %d, %q, %q", tc.args, code, stdout, stderr, tc.code, tc.stdout, tc.stderr)
		}
	}
	if code, stdout, _ := berth(t, url, "events", "--type", "container.exec_exited"); code != 0 || strings.Count(stdout, "exec_exited") != 4 {
		t.Errorf("events --type container.exec_exited: exit %d, %q; want the 4 execs that ran", code, stdout)
	}
}
