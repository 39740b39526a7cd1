package main

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/hcsdriver"
)

// writeJSON writes v as JSON: indented for people, or one line.
func writeJSON(w io.Writer, v any, indent bool) error {
	enc := json.NewEncoder(w)
	if indent {
		enc.SetIndent("", "  ")
	}
	return enc.Encode(v)
}

func newTable(w io.Writer) *tabwriter.Writer { return tabwriter.NewWriter(w, 0, 8, 3, ' ', 0) }

// writePs writes containers as docker ps does.
func writePs(w io.Writer, cs []events.Container, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "CONTAINER ID\tIMAGE\tCOMMAND\tCREATED\tSTATUS\tPORTS")
	for _, c := range cs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", c.ID, c.Spec.Image.Ref, quoteCommand(c.Spec.Command, 20),
			ago(c.CreatedAt, now), status(c, now), ports(c.Spec.Ports))
	}
	return tw.Flush()
}

// quoteCommand formats the command line, shortened to max runes, in quotes.
func quoteCommand(cs events.CommandSpec, max int) string {
	s := hcsdriver.CommandLine(append(append([]string{}, cs.Entrypoint...), cs.Args...))
	if r := []rune(s); len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return `"` + s + `"`
}

// status is docker's STATUS column: "Up 5 minutes", "Exited (3) 2 minutes ago".
func status(c events.Container, now time.Time) string {
	switch c.Phase {
	case events.PhaseRunning:
		return "Up " + humanDuration(now.Sub(c.StartedAt))
	case events.PhaseExited:
		if c.Exit == nil {
			return "Exited"
		}
		code := c.Exit.Reason
		if c.Exit.Code != nil {
			code = fmt.Sprint(*c.Exit.Code)
		}
		if code == "" {
			code = "unknown"
		}
		return fmt.Sprintf("Exited (%s) %s", code, ago(c.Exit.FinishedAt, now))
	case events.PhaseRemoving:
		return "Removal In Progress"
	case events.PhaseFailed, events.PhaseUnknown:
		s := titleCase(string(c.Phase))
		if c.Error != "" {
			s += ": " + shorten(c.Error, 40)
		}
		return s
	}
	return titleCase(string(c.Phase))
}

func titleCase(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

func shorten(s string, max int) string {
	if r := []rune(s); len(r) > max {
		return string(r[:max-1]) + "…"
	}
	return s
}

// ports writes published ports as docker ps does: "0.0.0.0:8080->80/tcp".
// A port mapping binds every address of the host.
func ports(ps []events.PortMapping) string {
	out := make([]string, len(ps))
	for i, p := range ps {
		proto := p.Protocol
		if proto == "" {
			proto = "tcp"
		}
		out[i] = fmt.Sprintf("0.0.0.0:%d->%d/%s", p.HostPort, p.ContainerPort, proto)
	}
	return strings.Join(out, ", ")
}

func ago(t, now time.Time) string {
	if t.IsZero() {
		return ""
	}
	return humanDuration(now.Sub(t)) + " ago"
}

// humanDuration writes d as docker does ("About a minute", "3 hours").
func humanDuration(d time.Duration) string {
	if s := int(d.Seconds()); s < 1 {
		return "Less than a second"
	} else if s == 1 {
		return "1 second"
	} else if s < 60 {
		return fmt.Sprintf("%d seconds", s)
	}
	if m := int(d.Minutes()); m == 1 {
		return "About a minute"
	} else if m < 60 {
		return fmt.Sprintf("%d minutes", m)
	}
	h := int(d.Hours() + 0.5)
	switch {
	case h == 1:
		return "About an hour"
	case h < 48:
		return fmt.Sprintf("%d hours", h)
	case h < 24*7*2:
		return fmt.Sprintf("%d days", h/24)
	case h < 24*30*2:
		return fmt.Sprintf("%d weeks", h/24/7)
	case h < 24*365*2:
		return fmt.Sprintf("%d months", h/24/30)
	}
	return fmt.Sprintf("%d years", int(d.Hours())/24/365)
}

// humanBytes writes n with a binary suffix ("1.5MiB").
func humanBytes(n uint64) string {
	units := []string{"B", "KiB", "MiB", "GiB", "TiB", "PiB"}
	f, i := float64(n), 0
	for f >= 1024 && i < len(units)-1 {
		f /= 1024
		i++
	}
	return fmt.Sprintf("%.4g%s", f, units[i])
}

// writeInspect writes a summary of each container, one field per line.
func writeInspect(w io.Writer, cs []events.Container, now time.Time) {
	for i, c := range cs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		tw := newTable(w)
		row := func(k, v string) {
			if v != "" {
				fmt.Fprintf(tw, "%s:\t%s\n", k, v)
			}
		}
		row("ID", c.ID)
		row("Phase", string(c.Phase))
		row("Status", status(c, now))
		row("Image", c.Spec.Image.Ref)
		if len(c.Spec.Command.Entrypoint)+len(c.Spec.Command.Args) > 0 {
			row("Command", quoteCommand(c.Spec.Command, 200))
		}
		row("Created", c.CreatedAt.Format(time.RFC3339))
		if !c.StartedAt.IsZero() {
			row("Started", c.StartedAt.Format(time.RFC3339))
		}
		if c.Pid != 0 {
			row("Pid", fmt.Sprint(c.Pid))
		}
		row("Host ID", c.HostID)
		row("Owner", c.Owner)
		if ep := c.Endpoint; ep != nil {
			row("Network", ep.Network)
			row("IP", ep.IP)
			row("Gateway", ep.Gateway)
			id := "not created"
			if ep.ID != "" {
				id = "id " + ep.ID
			}
			row("Endpoint", fmt.Sprintf("%s (%s)", ep.Name, id))
			row("DNS", dnsString(ep.DNS))
		} else {
			row("Network", "none")
		}
		row("Ports", ports(c.Spec.Ports))
		for _, m := range c.Spec.Mounts {
			mode := "rw"
			if m.ReadOnly {
				mode = "ro"
			}
			row("Mount", fmt.Sprintf("%s -> %s (%s)", m.Source, m.Target, mode))
		}
		row("Intent", c.Intent)
		row("Error", c.Error)
		row("Seq", fmt.Sprint(c.Seq))
		_ = tw.Flush()
	}
}

// containerStats is a stats sample with its container, as stats prints it.
type containerStats struct {
	Container string `json:"container"`
	events.Stats
}

func writeStats(w io.Writer, rows []containerStats) {
	tw := newTable(w)
	fmt.Fprintln(tw, "CONTAINER ID\tCPU TIME\tPRIVATE WORKING SET\tCOMMIT\tLIMIT\tBLOCK I/O\tUPTIME")
	for _, r := range rows {
		limit := "-"
		if r.MemoryLimitBytes > 0 {
			limit = humanBytes(r.MemoryLimitBytes)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s / %s\t%s\n", r.Container,
			(time.Duration(r.CPUTotalMicros) * time.Microsecond).String(),
			humanBytes(r.MemoryPrivateBytes), humanBytes(r.MemoryCommitBytes), limit,
			humanBytes(r.StorageReadBytes), humanBytes(r.StorageWriteBytes),
			humanDuration(time.Duration(r.UptimeMicros)*time.Microsecond))
	}
	_ = tw.Flush()
}

// writeState writes a fold: a summary line and every container.
func writeState(w io.Writer, st *events.State, now time.Time) error {
	fmt.Fprintf(w, "Node %s at journal sequence %d: %d containers\n", st.Node, st.Seq, len(st.Containers))
	if len(st.Containers) == 0 {
		return nil
	}
	cs := make([]events.Container, 0, len(st.Containers))
	for _, c := range st.Containers {
		cs = append(cs, *c)
	}
	control.SortContainers(cs)
	return writePs(w, cs, now)
}

// writePlan prints a reconciliation plan as a table, one action a row.
func writePlan(w io.Writer, actions []events.Action) error {
	if len(actions) == 0 {
		_, err := fmt.Fprintln(w, "Nothing to do: the host and the journal agree.")
		return err
	}
	tw := newTable(w)
	fmt.Fprintln(tw, "ACTION\tCONTAINER\tOBJECT\tWHY")
	for _, a := range actions {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", a.Kind, orDash(a.Container), orDash(a.Object), a.Why)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
