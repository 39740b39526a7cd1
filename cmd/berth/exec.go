package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
)

// stdin is what berth exec -i reads; tests replace it.
var stdin io.Reader = os.Stdin

func (c *cli) execCmd() *cobra.Command {
	var (
		spec events.ExecSpec
		env  []string
	)
	cmd := &cobra.Command{
		Use:   "exec [-i] [-t] [-e K=V] [-w DIR] [-u USER] CONTAINER COMMAND [ARG...]",
		Short: "Run a command in a running container",
		Long: `Run a command in a running container and stream its output here: stdout to
stdout, stderr to stderr. berth exits with the command's exit code (a shell
sees it modulo 256), or 1 when berth itself fails.

-i attaches this terminal's (or pipe's) input to the command; at its end the
command's stdin is closed. -t runs the command on a console (a pseudo
terminal): stderr is merged into stdout, and with -i and a terminal here, the
terminal is switched to raw mode so keys such as Ctrl-C reach the command;
resizing the terminal resizes the console. For a person: berth exec -it web-1
cmd. For scripts: berth exec web-1 cmd /c "dir C:\app".

Interrupting berth (Ctrl-C without -t) kills the command. If berth vanishes
without a word, the agent kills the command after its idle timeout.`,
		Args: args(2, -1, "a container and a command"),
	}
	fl := cmd.Flags()
	fl.SetInterspersed(false) // flags after CONTAINER belong to the command
	fl.BoolVarP(&spec.Stdin, "interactive", "i", false, "attach stdin")
	fl.BoolVarP(&spec.TTY, "tty", "t", false, "run on a console; raw terminal mode with -i")
	fl.StringArrayVarP(&env, "env", "e", nil, "set an environment variable: K=V, or K to copy it from this environment")
	fl.StringVarP(&spec.Workdir, "workdir", "w", "", "working directory in the container")
	fl.StringVarP(&spec.User, "user", "u", "", "user to run as (ContainerUser, ContainerAdministrator)")
	cmd.RunE = runE(func(cmd *cobra.Command, a []string) error {
		if err := events.ValidateContainerID(a[0]); err != nil {
			return usageError(err)
		}
		spec.Command = a[1:]
		for _, kv := range env {
			if spec.Env == nil {
				spec.Env = map[string]string{}
			}
			if err := setEnv(kv, c.lookup, spec.Env); err != nil {
				return badFlag("-e, --env", kv, err)
			}
		}
		cl, err := c.connect()
		if err != nil {
			return err
		}
		return c.exec(cmd.Context(), cl, a[0], spec)
	})
	return cmd
}

// exec runs spec and turns its exit code into berth's.
func (c *cli) exec(ctx context.Context, cl *control.Client, container string, spec events.ExecSpec) error {
	st := control.ExecStreams{Stdout: c.stdout, Stderr: c.stderr}
	if spec.Stdin {
		st.Stdin = stdin
	}
	if spec.TTY {
		out, isFile := c.stdout.(*os.File)
		if isFile && term.IsTerminal(int(out.Fd())) {
			if w, h, err := term.GetSize(int(out.Fd())); err == nil {
				spec.Width, spec.Height = clampSize(w), clampSize(h)
			}
			sizes, stop := watchSize(ctx, out)
			defer stop()
			st.Resize = sizes
		}
		if in, ok := stdin.(*os.File); ok && spec.Stdin && term.IsTerminal(int(in.Fd())) {
			old, err := term.MakeRaw(int(in.Fd()))
			if err != nil {
				return fmt.Errorf("raw terminal: %w", err)
			}
			defer term.Restore(int(in.Fd()), old)
		}
	}
	x, err := cl.Exec(ctx, container, spec, st)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			return errors.New("exec: interrupted; the command was killed")
		}
		return err
	}
	if x.Code == nil {
		return fmt.Errorf("exec ended without an exit code: %s %s", x.Reason, x.Message)
	}
	if *x.Code != 0 {
		return &exitError{code: *x.Code, err: errReported}
	}
	return nil
}

func clampSize(n int) uint16 { return uint16(max(1, min(n, events.MaxConsoleSize))) }
