// Command berth-bench measures berth and prints one table of figures per
// benchmark.
//
//	berth-bench [-short] [-list] [-cpuprofile file] [name...]
//
// Without names it runs every benchmark, in name order. -short asks each
// benchmark for a quick run with smaller inputs. Figures depend on the
// machine and its load, so the report starts with both.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"os/signal"
	"runtime"
	"runtime/pprof"
	"slices"
	"strings"
	"text/tabwriter"
	"time"
)

// Row is one line of a benchmark's table: what was measured and its
// figures. Tables put figures of the same name in one column.
type Row struct {
	Label   string
	Figures []Figure
}

// Figure is one measured value.
type Figure struct {
	Name   string // column heading, such as "events/s"
	Value  float64
	Format string // fmt verb for Value; "%.0f" when empty
}

func (f Figure) String() string {
	if f.Format == "" {
		return fmt.Sprintf("%.0f", f.Value)
	}
	return fmt.Sprintf(f.Format, f.Value)
}

// bench is a registered benchmark.
type bench struct {
	about string
	run   func(ctx context.Context, short bool) ([]Row, error)
}

// benches lists every benchmark by name.
var benches = map[string]bench{
	"journal": {"durable events/s: Journal.Append from 64 writers (SyncAlways, group commit) vs raw JetStream", benchJournal},
	"replay":  {"events/s folded by Journal.Boot (no snapshot) vs a raw ordered consumer on the same stream, with the CPU time and bytes allocated per event", benchReplay},
}

func main() { os.Exit(run(os.Args[1:], os.Stdout, os.Stderr)) }

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("berth-bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	short := fs.Bool("short", false, "quick runs with smaller inputs")
	list := fs.Bool("list", false, "list the benchmarks and exit")
	cpuprofile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file`")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: berth-bench [-short] [-list] [-cpuprofile file] [name...]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	names := slices.Sorted(maps.Keys(benches))
	if *list {
		for _, n := range names {
			fmt.Fprintf(stdout, "%-10s %s\n", n, benches[n].about)
		}
		return 0
	}
	if fs.NArg() > 0 {
		names = fs.Args()
		for _, n := range names {
			if _, ok := benches[n]; !ok {
				fmt.Fprintf(stderr, "berth-bench: no benchmark %q (have %s)\n", n, strings.Join(slices.Sorted(maps.Keys(benches)), ", "))
				return 2
			}
		}
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if *cpuprofile != "" {
		f, err := os.Create(*cpuprofile)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			fmt.Fprintf(stderr, "berth-bench: %v\n", err)
			return 1
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
		}()
	}

	fmt.Fprintf(stdout, "berth-bench: %s %s/%s, %d CPUs, GOMAXPROCS %d%s, short=%v\n\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.NumCPU(), runtime.GOMAXPROCS(0), loadAverage(), *short)
	code := 0
	for _, n := range names {
		b := benches[n]
		fmt.Fprintf(stdout, "== %s: %s\n", n, b.about)
		start := time.Now()
		rows, err := b.run(ctx, *short)
		if err != nil {
			fmt.Fprintf(stderr, "berth-bench: %s: %v\n", n, err)
			code = 1
			if errors.Is(err, context.Canceled) {
				return code
			}
			continue
		}
		printTable(stdout, rows)
		fmt.Fprintf(stdout, "(%s in %s%s)\n\n", n, time.Since(start).Round(time.Millisecond), loadAverage())
	}
	return code
}

// printTable writes rows as an aligned table, one column per figure name
// in order of first appearance.
func printTable(w io.Writer, rows []Row) {
	var cols []string
	width := 0
	for _, r := range rows {
		width = max(width, len(r.Label))
		for _, f := range r.Figures {
			if !slices.Contains(cols, f.Name) {
				cols = append(cols, f.Name)
			}
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	// Cells are right-aligned; labels padded to one width stay left-aligned.
	fmt.Fprintf(tw, "%-*s\t%s\t\n", width, "", strings.Join(cols, "\t"))
	for _, r := range rows {
		cells := make([]string, len(cols))
		for i := range cells {
			cells[i] = "-"
		}
		for _, f := range r.Figures {
			cells[slices.Index(cols, f.Name)] = f.String()
		}
		fmt.Fprintf(tw, "%-*s\t%s\t\n", width, r.Label, strings.Join(cells, "\t"))
	}
	tw.Flush()
}

// loadAverage returns ", load a b c" from /proc/loadavg, or "" where there
// is none.
func loadAverage() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return ", load " + strings.Join(f[:3], " ")
}
