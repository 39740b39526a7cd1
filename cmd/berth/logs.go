package main

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
)

func (c *cli) logsCmd() *cobra.Command {
	var (
		o          control.LogsOptions
		since      string
		timestamps bool
	)
	cmd := &cobra.Command{
		Use:   "logs [-f] [--tail N] [--since 10m|RFC3339] [--timestamps] [--stdout|--stderr] CONTAINER",
		Short: "Show what a container's init process printed",
		Long: `Show what a container's init process printed, from the node's log stream: lines
it wrote to stdout on stdout, to stderr on stderr. Without -f, print the lines
stored so far and exit; with -f, keep printing new lines until interrupted.
With -o json, print one JSON object a line on stdout (data is base64).`,
		Args: args(1, 1, "a container"),
	}
	fl := cmd.Flags()
	fl.BoolVarP(&o.Follow, "follow", "f", false, "keep printing new lines")
	fl.IntVarP(&o.Tail, "tail", "n", 0, "start with only the last N lines (0: all)")
	fl.StringVar(&since, "since", "", "only lines since a time (RFC 3339) or a duration ago (10m)")
	fl.BoolVarP(&timestamps, "timestamps", "t", false, "prefix each line with the time it was read")
	fl.BoolVar(&o.Stdout, "stdout", false, "only stdout")
	fl.BoolVar(&o.Stderr, "stderr", false, "only stderr")
	cmd.RunE = runE(func(cmd *cobra.Command, a []string) error {
		if err := events.ValidateContainerID(a[0]); err != nil {
			return usageError(err)
		}
		if o.Tail < 0 {
			return badFlag("--tail", "", errors.New("must not be negative"))
		}
		if since != "" {
			t, err := parseSince(since, c.now())
			if err != nil {
				return badFlag("--since", since, err)
			}
			o.Since = t
		}
		cl, err := c.connect()
		if err != nil {
			return err
		}
		asJSON := c.json("table")
		midLine := map[string]bool{} // by stream: the last chunk was partial
		err = cl.Logs(cmd.Context(), a[0], o, func(l control.LogLine) error {
			if asJSON {
				return writeJSON(c.stdout, l, false)
			}
			err := writeLogLine(c.stdout, c.stderr, l, timestamps && !midLine[l.Stream])
			midLine[l.Stream] = l.Partial
			return err
		})
		if o.Follow && errors.Is(err, context.Canceled) {
			return nil // interrupted: the normal end of a follow
		}
		return err
	})
	return cmd
}

// writeLogLine prints l to stdout or stderr by its stream, after its time
// when timestamp is set. A partial chunk is printed without a line end, so
// a long line comes out whole.
func writeLogLine(stdout, stderr io.Writer, l control.LogLine, timestamp bool) error {
	w := stdout
	if l.Stream == events.Stderr {
		w = stderr
	}
	b := make([]byte, 0, len(l.Data)+40)
	if timestamp {
		b = append(l.Time.UTC().AppendFormat(b, time.RFC3339Nano), ' ')
	}
	b = append(b, l.Data...)
	if !l.Partial {
		b = append(b, '\n')
	}
	_, err := w.Write(b)
	return err
}
