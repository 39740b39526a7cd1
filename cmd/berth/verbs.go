package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
)

// runCmd builds run (create, then start) or create.
func (c *cli) runCmd(verb string) *cobra.Command {
	var f specFlags
	var creds registryCreds
	short := "Create a container"
	if verb == events.VerbRun {
		short = "Create a container and start it"
	}
	cmd := &cobra.Command{
		Use:   verb + " [flags] IMAGE [COMMAND [ARG...]]",
		Short: short,
		Long:  short + ", pulling its image first unless the node has it (see --pull).\n\n" + credsHelp,
		Args:  args(1, -1, "an IMAGE"),
		Example: `  berth ` + verb + ` --name web-rep-1 --cpus 1.5 --memory 512Mi -e MODE=prod \
    --isolation process -p 8080:80 -v 'D:\data:C:\data:ro' \
    mcr.microsoft.com/windows/nanoserver:ltsc2022 cmd /c "echo hi"
  ` + passwordEnv + `=... berth ` + verb + ` --username bob registry.example.com/app:1`,
	}
	if verb == events.VerbRun {
		cmd.Flags().BoolVarP(&f.detach, "detach", "d", true, "accepted for docker compatibility: berth always runs containers detached")
	}
	cmd.Flags().SetInterspersed(false) // flags after IMAGE belong to the container's command
	f.register(cmd.Flags())
	creds.register(cmd.Flags(), "") // -u is --user
	cmd.RunE = runE(func(cmd *cobra.Command, a []string) error {
		id, spec, err := f.spec(a, c.lookup)
		if err != nil {
			return err
		}
		auth, err := creds.auth(c.lookup)
		if err != nil {
			return err
		}
		cl, err := c.connect()
		if err != nil {
			return err
		}
		do := cl.Create
		if verb == events.VerbRun {
			do = cl.Run
		}
		res, err := do(cmd.Context(), id, spec, control.WithRegistryAuth(auth))
		if err != nil {
			return err
		}
		if c.json("table") {
			return writeJSON(c.stdout, res, false)
		}
		fmt.Fprintln(c.stdout, res.Container)
		return nil
	})
	return cmd
}

// containerOp is one container verb of the client, such as
// (*control.Client).Start.
type containerOp func(cl *control.Client, ctx context.Context, container string) (events.ContainerResult, error)

// eachContainer applies do to every container argument, as docker does:
// it prints each container it handled (or its result in JSON), reports
// each failure on stderr, and fails if any failed.
func (c *cli) eachContainer(ctx context.Context, ids []string, do containerOp) error {
	cl, err := c.connect()
	if err != nil {
		return err
	}
	results := []events.ContainerResult{}
	failed := false
	for _, id := range ids {
		res, err := do(cl, ctx, id)
		if err != nil {
			failed = true
			c.report(id, err)
			continue
		}
		results = append(results, res)
		if !c.json("table") {
			fmt.Fprintln(c.stdout, id)
		}
	}
	if c.json("table") {
		if err := writeJSON(c.stdout, results, true); err != nil {
			return err
		}
	}
	if failed {
		return errReported
	}
	return nil
}

// containerCmd builds a verb without flags of its own that applies do to
// each container argument.
func (c *cli) containerCmd(use, short string, do containerOp) *cobra.Command {
	return &cobra.Command{
		Use:   use + " CONTAINER...",
		Short: short,
		Args:  args(1, -1, "at least one CONTAINER"),
		RunE: runE(func(cmd *cobra.Command, a []string) error {
			return c.eachContainer(cmd.Context(), a, do)
		}),
	}
}

func (c *cli) stopCmd() *cobra.Command {
	var timeout string
	cmd := &cobra.Command{
		Use:   "stop [-t DURATION] CONTAINER...",
		Short: "Stop running containers gracefully",
		Args:  args(1, -1, "at least one CONTAINER"),
	}
	cmd.Flags().StringVarP(&timeout, "time", "t", "", "grace period before terminating: 30s, or seconds (default: the container's stop timeout)")
	cmd.RunE = runE(func(cmd *cobra.Command, a []string) error {
		var t *time.Duration
		if timeout != "" {
			d, err := parseTimeout(timeout)
			if err != nil {
				return badFlag("-t, --time", timeout, err)
			}
			t = &d
		}
		return c.eachContainer(cmd.Context(), a, func(cl *control.Client, ctx context.Context, id string) (events.ContainerResult, error) {
			return cl.Stop(ctx, id, t)
		})
	})
	return cmd
}

func (c *cli) rmCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:     "rm [-f] CONTAINER...",
		Aliases: []string{"remove"},
		Short:   "Remove containers",
		Args:    args(1, -1, "at least one CONTAINER"),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "kill a running container first")
	cmd.RunE = runE(func(cmd *cobra.Command, a []string) error {
		return c.eachContainer(cmd.Context(), a, func(cl *control.Client, ctx context.Context, id string) (events.ContainerResult, error) {
			return cl.Remove(ctx, id, force)
		})
	})
	return cmd
}

func (c *cli) psCmd() *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "ps [-a]",
		Short: "List containers",
		Long:  "List containers, newest first. Without -a, only those running or in motion (and any in phase unknown).",
		Args:  args(0, 0, "no arguments"),
	}
	cmd.Flags().BoolVarP(&all, "all", "a", false, "also show created, exited and failed containers")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		cl, err := c.connect()
		if err != nil {
			return err
		}
		cs, err := cl.Ps(cmd.Context(), all)
		if err != nil {
			return err
		}
		if c.json("table") {
			return writeJSON(c.stdout, cs, true)
		}
		return writePs(c.stdout, cs, c.now())
	})
	return cmd
}

func (c *cli) inspectCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "inspect CONTAINER...",
		Short: "Show the node's record of containers (JSON; -o table for a summary)",
		Args:  args(1, -1, "at least one CONTAINER"),
		RunE: runE(func(cmd *cobra.Command, a []string) error {
			cl, err := c.connect()
			if err != nil {
				return err
			}
			cs := []events.Container{}
			var failed error
			for _, id := range a {
				ct, err := cl.Inspect(cmd.Context(), id)
				if err != nil {
					failed = errReported
					c.report(id, err)
					continue
				}
				cs = append(cs, ct)
			}
			if c.json("json") {
				if err := writeJSON(c.stdout, cs, true); err != nil {
					return err
				}
			} else {
				writeInspect(c.stdout, cs, c.now())
			}
			return failed
		}),
	}
}

func (c *cli) statsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "stats CONTAINER...",
		Short: "Show one resource usage sample of running containers",
		Args:  args(1, -1, "at least one CONTAINER"),
		RunE: runE(func(cmd *cobra.Command, a []string) error {
			cl, err := c.connect()
			if err != nil {
				return err
			}
			rows := []containerStats{}
			var failed error
			for _, id := range a {
				st, err := cl.Stats(cmd.Context(), id)
				if err != nil {
					failed = errReported
					c.report(id, err)
					continue
				}
				rows = append(rows, containerStats{Container: id, Stats: st})
			}
			if c.json("table") {
				if err := writeJSON(c.stdout, rows, true); err != nil {
					return err
				}
			} else {
				writeStats(c.stdout, rows)
			}
			return failed
		}),
	}
}

func (c *cli) eventsCmd() *cobra.Command {
	var (
		o     control.EventsOptions
		since string
	)
	cmd := &cobra.Command{
		Use:   "events [-f] [--since 10m|RFC3339] [--container ID] [--type TYPE]",
		Short: "Show the node's journal of events",
		Long: `Show the node's journal of events. Without -f, print the events recorded so far
and exit; with -f, print new events as they are recorded until interrupted (from
--since if given). A type is written as "container.started", or as a family
("container", "node", "image", "network").`,
		Args: args(0, 0, "no arguments"),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&o.Follow, "follow", "f", false, "keep printing new events")
	fl.StringVar(&since, "since", "", "only events since a time (RFC 3339) or a duration ago (10m)")
	fl.StringVar(&o.Container, "container", "", "only events of this container")
	fl.StringArrayVar(&o.Types, "type", nil, "only events of this type or family (repeatable)")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if o.Container != "" {
			if err := events.ValidateContainerID(o.Container); err != nil {
				return badFlag("--container", o.Container, err)
			}
		}
		if err := o.Validate(); err != nil {
			return badFlag("--type", "", err)
		}
		if since != "" {
			t, err := parseSince(since, c.now())
			if err != nil {
				return badFlag("--since", since, err)
			}
			o.Since = t
		} else if o.Follow {
			o.Since = c.now() // like docker events: only what happens from now on
		}
		cl, err := c.connect()
		if err != nil {
			return err
		}
		asJSON := c.json("table")
		err = cl.Events(cmd.Context(), o, func(e events.Event) error {
			if asJSON {
				return writeJSON(c.stdout, seqEvent{Seq: e.Seq, Event: e}, false)
			}
			_, err := fmt.Fprintln(c.stdout, eventLine(e))
			return err
		})
		if o.Follow && errors.Is(err, context.Canceled) {
			return nil // interrupted: the normal end of a follow
		}
		return err
	})
	return cmd
}

// parseSince reads an RFC 3339 time, or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if d, err := time.ParseDuration(s); err == nil {
		if d < 0 {
			return time.Time{}, errors.New("the duration must not be negative")
		}
		return now.Add(-d), nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	return time.Time{}, errors.New("want a duration such as 10m, or a time such as 2026-01-02T15:04:05Z")
}

func (c *cli) stateCmd() *cobra.Command {
	var at uint64
	cmd := &cobra.Command{
		Use:   "state [--at SEQ]",
		Short: "Show the node's state, now or as it stood after a journal sequence",
		Args:  args(0, 0, "no arguments"),
	}
	cmd.Flags().Uint64Var(&at, "at", 0, "journal sequence (see the events verb); 0 for now")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		cl, err := c.connect()
		if err != nil {
			return err
		}
		st, err := cl.State(cmd.Context(), at)
		if err != nil {
			return err
		}
		if c.json("table") {
			return writeJSON(c.stdout, st, true)
		}
		return writeState(c.stdout, st, c.now())
	})
	return cmd
}

func (c *cli) planCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "plan",
		Short: "Show what the agent's reconciliation with the host would do now, without doing it",
		Long: "Show what the agent's reconciliation with the host would do now, without doing it.\n\n" +
			"The agent observes the host (compute systems, endpoints and layers carrying its owner tag) and plans\n" +
			"against its state, as it does at every start. On a running agent every live container shows as adopt.",
		Args: args(0, 0, "no arguments"),
	}
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		cl, err := c.connect()
		if err != nil {
			return err
		}
		actions, err := cl.Plan(cmd.Context())
		if err != nil {
			return err
		}
		if c.json("table") {
			return writeJSON(c.stdout, control.PlanResult{Actions: actions}, true)
		}
		return writePlan(c.stdout, actions)
	})
	return cmd
}

func (c *cli) versionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Show the versions of this client and of the node's agent",
		Args:  args(0, 0, "no arguments"),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			v := versionInfo{Client: control.Version}
			cl, err := c.connect()
			if err == nil {
				var h control.Health
				if h, err = cl.Health(cmd.Context()); err == nil {
					v.Server = &h
				}
			}
			if c.json("table") {
				if wErr := writeJSON(c.stdout, v, true); wErr != nil {
					return wErr
				}
			} else {
				fmt.Fprintf(c.stdout, "Client:  %s\n", v.Client)
				if v.Server != nil {
					fmt.Fprintf(c.stdout, "Server:  %s (node %s, journal at %d, %d containers, intake %s)\n",
						v.Server.Version, v.Server.Node, v.Server.Seq, v.Server.Containers, v.Server.Intake)
				}
			}
			if err != nil {
				return fmt.Errorf("server: %w", err)
			}
			return nil
		}),
	}
}

type versionInfo struct {
	Client string          `json:"client"`
	Server *control.Health `json:"server,omitempty"`
}

// seqEvent is an event as events -o json prints it: the CloudEvents
// document plus its journal sequence.
type seqEvent struct {
	Seq uint64 `json:"seq"`
	events.Event
}

// eventLine formats one event for people: time, sequence, type, subject and
// its data, shortened.
func eventLine(e events.Event) string {
	line := fmt.Sprintf("%s #%d %s %s %s", e.Time.UTC().Format("2006-01-02T15:04:05.000Z"), e.Seq, e.Short(), e.Subject,
		shorten(strings.TrimSpace(string(e.Data)), 120))
	return strings.TrimRight(line, " ")
}
