package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"github.com/vbauerster/mpb/v8"
	"github.com/vbauerster/mpb/v8/decor"
	"golang.org/x/term"

	"github.com/berthhq/berth/events"
)

func (c *cli) pullCmd() *cobra.Command {
	var policy string
	var creds registryCreds
	cmd := &cobra.Command{
		Use:   "pull [--policy always|newer|if_not_present] [--username USER] IMAGE",
		Short: "Pull an image onto the node",
		Long: `Pull an image onto the node. On a terminal it shows a bar per layer; with
-o json it prints each progress message as a JSON line (at most every 200 ms),
then the result. Progress comes from berth.progress.<node>.img.<ref>, where ref
is the normalized reference with '.' written %2E (events.RefToken).

` + credsHelp,
		Example: `  berth pull mcr.microsoft.com/windows/nanoserver:ltsc2022
  ` + passwordEnv + `=... berth pull --username bob registry.example.com/app:1`,
		Args: args(1, 1, "an IMAGE"),
	}
	cmd.Flags().StringVar(&policy, "policy", events.PullAlways, "always: ask the registry; newer: fetch when its digest differs; if_not_present: only when the node lacks it")
	creds.register(cmd.Flags(), "u")
	cmd.RunE = runE(func(cmd *cobra.Command, a []string) error {
		ref := a[0]
		r, err := name.ParseReference(ref)
		if err != nil {
			return usageError(fmt.Errorf("IMAGE %q: %v", ref, err))
		}
		auth, err := creds.auth(c.lookup)
		if err != nil {
			return err
		}
		cl, err := c.connect()
		if err != nil {
			return err
		}
		show := c.progressView()
		stop, err := cl.WatchPull(r.Name(), show.update)
		if err != nil {
			return err
		}
		res, err := cl.Pull(cmd.Context(), ref, policy, auth)
		stop()
		show.wait(err == nil)
		if err != nil {
			return err
		}
		if c.json("table") {
			return writeJSON(c.stdout, res, false)
		}
		if res.Pulled {
			fmt.Fprintf(c.stdout, "Pulled %s (%s, %d layers, %s)\n", ref, shortID(res.Image.ID), len(res.Image.Layers), humanBytes(uint64(res.Image.Size)))
		} else {
			fmt.Fprintf(c.stdout, "%s is up to date (%s)\n", ref, shortID(res.Image.ID))
		}
		return nil
	})
	return cmd
}

// passwordEnv holds the registry password that goes with --username.
const passwordEnv = "BERTH_REGISTRY_PASSWORD"

// credsHelp explains --username in the help of the verbs that may pull.
const credsHelp = `For a registry that needs credentials beyond the node's Docker config, give
--username and put the password in ` + passwordEnv + `: it goes to the
agent with this command only and is never logged nor recorded.`

// registryCreds is the --username flag of the verbs that may pull (pull,
// run, create); the password comes from passwordEnv.
type registryCreds struct{ user string }

// register adds --username, with the shorthand short unless it is "".
func (r *registryCreds) register(fs *pflag.FlagSet, short string) {
	fs.StringVarP(&r.user, "username", short, "", "registry user name (password from "+passwordEnv+")")
}

// auth returns the credentials to send with the command: none without
// --username, else the user and the password read with lookup. A user
// without a password is a usage error naming passwordEnv.
func (r *registryCreds) auth(lookup func(string) (string, bool)) (*events.RegistryAuth, error) {
	if r.user == "" {
		return nil, nil
	}
	pw, _ := lookup(passwordEnv)
	if pw == "" {
		return nil, usageError(fmt.Errorf("--username %s: %s is not set; it holds the registry password", r.user, passwordEnv))
	}
	return &events.RegistryAuth{Username: r.user, Password: pw}, nil
}

// progressView shows a pull's progress messages: JSON lines with -o json,
// a bar per layer on a terminal, otherwise a line per layer state change.
type progressView struct {
	c    *cli
	mu   sync.Mutex
	json bool
	p    *mpb.Progress
	bars map[string]*mpb.Bar
	seen map[string]string // layer digest -> last state printed
}

func (c *cli) progressView() *progressView {
	v := &progressView{c: c, json: c.json("table"), bars: map[string]*mpb.Bar{}, seen: map[string]string{}}
	if f, ok := c.stdout.(*os.File); ok && !v.json && term.IsTerminal(int(f.Fd())) {
		v.p = mpb.New(mpb.WithOutput(f), mpb.WithWidth(40), mpb.WithRefreshRate(100*time.Millisecond))
	}
	return v
}

func (v *progressView) update(p events.ImageProgress) {
	v.mu.Lock()
	defer v.mu.Unlock()
	switch {
	case v.json:
		_ = writeJSON(v.c.stdout, p, false)
	case v.p != nil:
		for _, l := range p.Layers {
			b := v.bars[l.Digest]
			if b == nil {
				b = v.p.AddBar(max(l.Total, 1),
					mpb.PrependDecorators(decor.Name(shortID(l.Digest)+" "), decor.Any(func(decor.Statistics) string { return v.seen[l.Digest] }, decor.WCSyncWidthR)),
					mpb.AppendDecorators(decor.CountersKibiByte("% .1f / % .1f")))
				v.bars[l.Digest] = b
			}
			v.seen[l.Digest] = l.State
			switch l.State {
			case "done", "present":
				b.SetCurrent(max(l.Total, 1))
			default:
				b.SetCurrent(l.Current)
			}
		}
	default:
		for _, l := range p.Layers {
			if v.seen[l.Digest] != l.State {
				v.seen[l.Digest] = l.State
				fmt.Fprintf(v.c.stdout, "%s: %s\n", shortID(l.Digest), l.State)
			}
		}
	}
}

// wait ends the bars: completed when the pull succeeded, aborted otherwise.
func (v *progressView) wait(ok bool) {
	v.mu.Lock()
	p := v.p
	if p != nil && !ok {
		for _, b := range v.bars {
			b.Abort(false)
		}
	}
	v.mu.Unlock()
	if p != nil {
		p.Shutdown()
	}
}

// shortID is a digest's first 12 hex digits, as docker shows image ids.
func shortID(d string) string {
	h := strings.TrimPrefix(d, "sha256:")
	if len(h) > 12 {
		h = h[:12]
	}
	return h
}

func (c *cli) imagesCmd() *cobra.Command {
	var quiet bool
	cmd := &cobra.Command{
		Use:   "images [-q]",
		Short: "List the images on the node",
		Args:  args(0, 0, "no arguments"),
	}
	cmd.Flags().BoolVarP(&quiet, "quiet", "q", false, "only image ids")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		cl, err := c.connect()
		if err != nil {
			return err
		}
		imgs, err := cl.Images(cmd.Context())
		if err != nil {
			return err
		}
		if c.json("table") {
			return writeJSON(c.stdout, imgs, true)
		}
		if quiet {
			for _, im := range imgs {
				fmt.Fprintln(c.stdout, shortID(im.ID))
			}
			return nil
		}
		return writeImages(c.stdout, imgs, c.now())
	})
	return cmd
}

func writeImages(w io.Writer, imgs []events.ImageSummary, now time.Time) error {
	tw := newTable(w)
	fmt.Fprintln(tw, "REFERENCE\tIMAGE ID\tPLATFORM\tPULLED\tSIZE\tCONTAINERS")
	for _, im := range imgs {
		refs := im.Refs
		if len(refs) == 0 {
			refs = []string{"<none>"}
		}
		for _, r := range refs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r, shortID(im.ID), im.Platform, ago(im.PulledAt, now),
				humanBytes(uint64(im.Size)), strings.Join(im.Containers, ","))
		}
	}
	return tw.Flush()
}

func (c *cli) rmiCmd() *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rmi [-f] IMAGE...",
		Short: "Remove images, or names of images",
		Long: `Remove images. IMAGE is a reference or an image id. A reference that is one
of several names of an image removes that name only; the last name, or the id,
removes the image and the layers no other image uses.

An image a container uses is not removed (409). With --force its names are
removed and the container is left as it is (a running one keeps running): the
image's layers stay until the last such container is removed, and
berth image prune reclaims them then.`,
		Args: args(1, -1, "at least one IMAGE"),
	}
	cmd.Flags().BoolVarP(&force, "force", "f", false, "remove the names of an image containers use, and an image with several names by id")
	cmd.RunE = runE(func(cmd *cobra.Command, a []string) error {
		cl, err := c.connect()
		if err != nil {
			return err
		}
		var results []events.ImageRemoveResult
		var failed error
		for _, ref := range a {
			res, err := cl.RemoveImage(cmd.Context(), ref, force)
			if err != nil {
				failed = errReported
				c.report(ref, err)
				continue
			}
			results = append(results, res)
			if !c.json("table") {
				writeRemoved(c.stdout, res)
			}
		}
		if c.json("table") {
			if err := writeJSON(c.stdout, results, true); err != nil {
				return err
			}
		}
		return failed
	})
	return cmd
}

func writeRemoved(w io.Writer, res events.ImageRemoveResult) {
	for _, r := range res.Untagged {
		fmt.Fprintf(w, "Untagged: %s\n", r)
	}
	for _, id := range res.Deleted {
		fmt.Fprintf(w, "Deleted: %s\n", id)
	}
	for _, ct := range res.Kept {
		fmt.Fprintf(w, "Kept for container %s: the image's layers stay until it is removed\n", ct)
	}
}

func (c *cli) tagCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "tag SOURCE TARGET",
		Short: "Give an image another name",
		Args:  args(2, 2, "SOURCE and TARGET"),
		RunE: runE(func(cmd *cobra.Command, a []string) error {
			cl, err := c.connect()
			if err != nil {
				return err
			}
			res, err := cl.Tag(cmd.Context(), a[0], a[1])
			if err != nil {
				return err
			}
			if c.json("table") {
				return writeJSON(c.stdout, res, false)
			}
			fmt.Fprintf(c.stdout, "%s: %s\n", shortID(res.Image.ID), strings.Join(res.Image.Refs, ", "))
			return nil
		}),
	}
}

func (c *cli) loadCmd() *cobra.Command {
	var input string
	cmd := &cobra.Command{
		Use:   "load -i PATH",
		Short: "Load images from a docker save tarball or an OCI image layout on the node",
		Long: `Load images from a docker save tarball or an OCI image layout folder, for nodes
without a registry. PATH is a path on the node: the agent reads it. Copy the
archive to the node first.`,
		Args: args(0, 0, "no arguments"),
	}
	cmd.Flags().StringVarP(&input, "input", "i", "", "path, on the node, of the tarball or layout (required)")
	cmd.RunE = runE(func(cmd *cobra.Command, _ []string) error {
		if input == "" {
			return usageError(fmt.Errorf("-i, --input: required"))
		}
		cl, err := c.connect()
		if err != nil {
			return err
		}
		res, err := cl.Load(cmd.Context(), input)
		if err != nil {
			return err
		}
		if c.json("table") {
			return writeJSON(c.stdout, res, false)
		}
		for _, im := range res.Images {
			ref := strings.Join(im.Refs, ", ")
			if ref == "" {
				ref = "<none>"
			}
			fmt.Fprintf(c.stdout, "Loaded image: %s (%s)\n", ref, shortID(im.ID))
		}
		return nil
	})
	return cmd
}

func (c *cli) imageCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "image",
		Short: "Manage the node's images",
		Args:  args(0, 0, "a subcommand"),
	}
	var all bool
	prune := &cobra.Command{
		Use:   "prune [-a]",
		Short: "Remove unused images and layers, and report the space reclaimed",
		Long: `Remove the images that have no name and that no container uses (with -a, every
image no container uses), and every layer no image uses.`,
		Args: args(0, 0, "no arguments"),
		RunE: runE(func(cmd *cobra.Command, _ []string) error {
			cl, err := c.connect()
			if err != nil {
				return err
			}
			res, err := cl.Prune(cmd.Context(), all)
			if err != nil {
				return err
			}
			if c.json("table") {
				return writeJSON(c.stdout, res, false)
			}
			writeRemoved(c.stdout, res)
			fmt.Fprintf(c.stdout, "Total reclaimed space: %s (%d layers)\n", humanBytes(uint64(res.Reclaimed)), res.Layers)
			return nil
		}),
	}
	prune.Flags().BoolVarP(&all, "all", "a", false, "also images with names that no container uses")
	cmd.AddCommand(prune, renamed(c.imagesCmd(), "ls"), c.pullCmd(), renamed(c.rmiCmd(), "rm"), c.tagCmd(), c.loadCmd())
	return cmd
}

// renamed renames cmd (the first word of its Use) to use.
func renamed(cmd *cobra.Command, use string) *cobra.Command {
	_, rest, _ := strings.Cut(cmd.Use, " ")
	cmd.Use = strings.TrimSpace(use + " " + rest)
	cmd.Aliases = nil
	return cmd
}
