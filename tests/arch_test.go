package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// The import rules of DESIGN §1, checked on the package graph that
// `go list -deps` reports for linux and for windows (with the integration
// tag), so that files behind build tags are seen too. A rule about a package
// that does not exist yet is skipped with a log line.

const module = "github.com/berthhq/berth"

// listedPackage holds the fields of `go list -json` the rules read.
type listedPackage struct {
	ImportPath   string
	Standard     bool
	Imports      []string // direct imports of the package's files
	TestImports  []string // direct imports of its in-package tests
	XTestImports []string // direct imports of its external tests
	Deps         []string // every package it depends on, transitively (not tests)
	Error        *struct{ Err string }
}

// graph is one build target's package list, by import path.
type graph map[string]*listedPackage

// rel returns path relative to the module ("" for a path outside it).
func rel(path string) string {
	if path == module {
		return "."
	}
	r, ok := strings.CutPrefix(path, module+"/")
	if !ok {
		return ""
	}
	return r
}

// under reports whether the module-relative path r is dir or inside it.
func under(r, dir string) bool { return r == dir || strings.HasPrefix(r, dir+"/") }

func underAny(r string, dirs ...string) bool {
	return slices.ContainsFunc(dirs, func(d string) bool { return under(r, d) })
}

func (g graph) standard(path string) bool {
	if p, ok := g[path]; ok {
		return p.Standard
	}
	first, _, _ := strings.Cut(path, "/")
	return !strings.Contains(first, ".")
}

// project returns the module's packages whose relative path satisfies match.
func (g graph) project(match func(r string) bool) []*listedPackage {
	var ps []*listedPackage
	for path, p := range g {
		if r := rel(path); r != "" && match(r) {
			ps = append(ps, p)
		}
	}
	slices.SortFunc(ps, func(a, b *listedPackage) int { return strings.Compare(a.ImportPath, b.ImportPath) })
	return ps
}

func listGraph(t *testing.T, goos, tags string) graph {
	t.Helper()
	gotool, err := exec.LookPath("go")
	if err != nil {
		t.Skipf("import rules not checked: the go tool is not available (%v)", err)
	}
	cmd := exec.Command(gotool, "list", "-e", "-deps", "-tags", tags,
		"-json=ImportPath,Standard,Imports,TestImports,XTestImports,Deps,Error", module+"/...")
	cmd.Env = append(os.Environ(), "GOOS="+goos)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list for %s: %v\n%s", goos, err, stderr.Bytes())
	}
	g := graph{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listedPackage
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("go list output: %v", err)
		}
		g[p.ImportPath] = &p
		if p.Error != nil && rel(p.ImportPath) != "" && !strings.Contains(p.Error.Err, "build constraints exclude all Go files") {
			t.Logf("%s: go list reports: %s", p.ImportPath, p.Error.Err)
		}
	}
	if len(g.project(func(string) bool { return true })) == 0 {
		t.Fatalf("go list for %s found no package of %s", goos, module)
	}
	return g
}

// depRule constrains what a package depends on, transitively.
type depRule struct {
	name  string
	pkgs  func(r string) bool            // the packages the rule applies to
	allow func(g graph, dep string) bool // reports whether dep is allowed
}

var (
	vendorBannedInActors = []string{
		"github.com/nats-io/nats.go", "github.com/nats-io/nats-server",
		"github.com/Microsoft/hcsshim", "github.com/google/go-containerregistry",
	}
	winAdapters = []string{"hcsdriver/winhcs", "netdriver/winhcn", "imagedriver/wclayer"}
)

func is(dirs ...string) func(string) bool {
	return func(r string) bool { return slices.Contains(dirs, r) }
}

func inside(dir string) func(string) bool { return func(r string) bool { return under(r, dir) } }

// projectOnly allows the standard library, any other library when vendors
// is true, and of the project only the listed packages and own's subtree.
func projectOnly(own string, vendors bool, allowed ...string) func(graph, string) bool {
	return func(g graph, dep string) bool {
		r := rel(dep)
		switch {
		case r != "":
			return under(r, own) || slices.Contains(allowed, r)
		case g.standard(dep):
			return true
		}
		return vendors
	}
}

var depRules = []depRule{
	{"events imports only the standard library", is("events"), projectOnly("events", false)},
	{"the contracts import only the standard library and events",
		is("hcsdriver", "netdriver", "imagedriver"),
		func(g graph, dep string) bool { return g.standard(dep) || rel(dep) == "events" }},
	{"actors links no NATS, hcsshim or go-containerregistry, nor journal, control, winsim or cmd",
		inside("actors"),
		func(g graph, dep string) bool {
			if r := rel(dep); r != "" {
				return !underAny(r, "journal", "control", "winsim", "cmd")
			}
			return !slices.ContainsFunc(vendorBannedInActors, func(v string) bool { return dep == v || strings.HasPrefix(dep, v+"/") })
		}},
	{"journal imports of the project only events", inside("journal"), projectOnly("journal", true, "events")},
	{"control imports of the project only events and journal", inside("control"), projectOnly("control", true, "events", "journal")},
}

// importRule constrains a package's direct imports, tests included.
type importRule struct {
	name  string
	check func(r, imp string) bool // reports whether package r may import imp
}

var importRules = []importRule{
	{"nothing outside tests imports tests/...", func(r, imp string) bool {
		return under(r, "tests") || !under(rel(imp), "tests")
	}},
	{"only the Windows adapters import hcsshim", func(r, imp string) bool {
		hcsshim := imp == "github.com/Microsoft/hcsshim" || strings.HasPrefix(imp, "github.com/Microsoft/hcsshim/")
		return !hcsshim || underAny(r, winAdapters...)
	}},
}

func TestImportRules(t *testing.T) {
	for _, target := range []struct{ goos, tags string }{
		{"linux", ""},
		{"windows", "integration"},
	} {
		t.Run(target.goos, func(t *testing.T) {
			t.Parallel()
			g := listGraph(t, target.goos, target.tags)

			for _, rule := range depRules {
				pkgs := g.project(rule.pkgs)
				if len(pkgs) == 0 {
					t.Logf("rule %q skipped: its packages do not exist yet", rule.name)
					continue
				}
				t.Logf("rule %q: checking %d package(s), %s first", rule.name, len(pkgs), pkgs[0].ImportPath)
				for _, p := range pkgs {
					var bad []string
					for _, dep := range p.Deps {
						if !rule.allow(g, dep) {
							bad = append(bad, dep+via(g, p, dep))
						}
					}
					if len(bad) > 3 {
						bad = append(bad[:3], "...")
					}
					if len(bad) > 0 {
						t.Errorf("%s: %s depends on %s", rule.name, p.ImportPath, strings.Join(bad, ", "))
					}
				}
			}

			for _, p := range g.project(func(string) bool { return true }) {
				r := rel(p.ImportPath)
				for _, imps := range [][]string{p.Imports, p.TestImports, p.XTestImports} {
					for _, imp := range imps {
						for _, rule := range importRules {
							if !rule.check(r, imp) {
								t.Errorf("%s: %s imports %s", rule.name, p.ImportPath, imp)
							}
						}
					}
				}
			}
		})
	}
}

// via names a direct import of p through which p reaches dep, to point at
// the import to remove.
func via(g graph, p *listedPackage, dep string) string {
	if slices.Contains(p.Imports, dep) {
		return ""
	}
	for _, imp := range p.Imports {
		if q, ok := g[imp]; ok && slices.Contains(q.Deps, dep) {
			return " (through " + imp + ")"
		}
	}
	return ""
}
