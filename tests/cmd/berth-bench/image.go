package main

import (
	"archive/tar"
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/klauspost/compress/gzip"
	"github.com/rs/zerolog"

	"github.com/berthhq/berth/control"
	"github.com/berthhq/berth/events"
	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/dirlayer"
	"github.com/berthhq/berth/imagedriver/registry"
	"github.com/berthhq/berth/imagedriver/registry/registrytest"
	"github.com/berthhq/berth/internal/agent"
	"github.com/berthhq/berth/winsim"
)

func init() {
	benches["image"] = bench{"pull + unpack of a 4-layer image (~200 MiB) from a loopback registry: berth image.pull through the agent vs crane pull", benchImage}
}

// benchImage pushes a Windows-shaped image of four layers to a registry on
// loopback, then times, three times each, berth pulling it (an image.pull
// command to an agent with an empty folder layer store: download, verify,
// decompress, unpack into Files/ and Hives/, record) and crane pulling it
// into a tarball (download and verify only). It reports the median of each,
// in compressed MiB/s, and their ratio. CPU s is the CPU time of that median
// run where the platform tells: for berth, this process's (agent and
// registry); for crane, its process's and this one's (the registry).
func benchImage(ctx context.Context, short bool) ([]Row, error) {
	crane, err := findCrane()
	if err != nil {
		return nil, err
	}
	total := 200 << 20
	if short {
		total = 40 << 20
	}
	reg := registrytest.New()
	defer reg.Close()
	img, size, err := benchImageOf(total, 4)
	if err != nil {
		return nil, err
	}
	ref, err := reg.Push("bench/app:1", img)
	if err != nil {
		return nil, err
	}
	const runs = 3
	var berthRuns, craneRuns []pullRun
	for range runs {
		r, err := berthPull(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("berth pull: %w", err)
		}
		berthRuns = append(berthRuns, r)
		r, err = cranePull(ctx, crane, ref)
		if err != nil {
			return nil, fmt.Errorf("crane pull: %w", err)
		}
		craneRuns = append(craneRuns, r)
	}
	mib := float64(size) / (1 << 20)
	row := func(label string, rs []pullRun) (Row, float64) {
		slices.SortFunc(rs, func(a, b pullRun) int { return cmp.Compare(a.wall, b.wall) })
		med := rs[len(rs)/2]
		rate := mib / med.wall.Seconds()
		figs := []Figure{
			{Name: "MiB", Value: mib, Format: "%.1f"},
			{Name: "median s", Value: med.wall.Seconds(), Format: "%.2f"},
			{Name: "best s", Value: rs[0].wall.Seconds(), Format: "%.2f"},
			{Name: "MiB/s", Value: rate, Format: "%.1f"},
		}
		if med.cpu > 0 {
			figs = append(figs, Figure{Name: "CPU s", Value: med.cpu.Seconds(), Format: "%.2f"})
		}
		return Row{Label: label, Figures: figs}, rate
	}
	b, br := row("berth image.pull → dirlayer (unpacked)", berthRuns)
	c, cr := row("crane pull → tarball ("+crane+")", craneRuns)
	return []Row{b, c, {Label: "berth / crane throughput", Figures: []Figure{{Name: "MiB/s", Value: br / cr, Format: "%.2f×"}}}}, nil
}

// findCrane finds the crane binary on PATH, then in GOBIN or GOPATH/bin.
func findCrane() (string, error) {
	if p, err := exec.LookPath("crane"); err == nil {
		return p, nil
	}
	var dirs []string
	if d := os.Getenv("GOBIN"); d != "" {
		dirs = append(dirs, d)
	}
	if out, err := exec.Command("go", "env", "GOBIN", "GOPATH").Output(); err == nil {
		for _, l := range bytes.Fields(out) {
			dirs = append(dirs, string(l), filepath.Join(string(l), "bin"))
		}
	}
	for _, d := range dirs {
		p := filepath.Join(d, "crane")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("crane is not on PATH nor in GOBIN or GOPATH/bin; install it with " +
		"go install github.com/google/go-containerregistry/cmd/crane@v0.22.1")
}

// benchImageOf builds a Windows image of n layers holding total bytes of
// random file content (which does not compress, so the compressed size is
// about total), each layer gzipped once, and returns it with the layers'
// compressed size.
func benchImageOf(total, n int) (v1.Image, int64, error) {
	rng := rand.New(rand.NewChaCha8([32]byte{'b', 'e', 'r', 't', 'h'}))
	var layers []v1.Layer
	var size int64
	for i := range n {
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		add := func(name string, body []byte) error {
			if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Format: tar.FormatPAX}); err != nil {
				return err
			}
			_, err := tw.Write(body)
			return err
		}
		const file = 4 << 20
		for j := range total / n / file {
			body := make([]byte, file)
			for k := 0; k < len(body); k += 8 {
				v := rng.Uint64()
				for b := range 8 {
					body[k+b] = byte(v >> (8 * b))
				}
			}
			if err := add(fmt.Sprintf("Files/layer%d/file%03d.bin", i, j), body); err != nil {
				return nil, 0, err
			}
		}
		if err := add("Hives/Software_Delta", []byte("regf")); err != nil {
			return nil, 0, err
		}
		if err := tw.Close(); err != nil {
			return nil, 0, err
		}
		var gz bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&gz, gzip.BestSpeed)
		if _, err := zw.Write(tb.Bytes()); err != nil {
			return nil, 0, err
		}
		if err := zw.Close(); err != nil {
			return nil, 0, err
		}
		blob := gz.Bytes()
		l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(blob)), nil })
		if err != nil {
			return nil, 0, err
		}
		layers = append(layers, l)
		size += int64(len(blob))
	}
	img, err := registrytest.Image("10.0.20348.2227", v1.Config{Entrypoint: []string{"cmd", "/c"}, Cmd: []string{"echo hi"}}, layers...)
	return img, size, err
}

// pullRun is one timed pull: its wall time, and the CPU time it took (zero
// when the platform does not tell).
type pullRun struct {
	wall, cpu time.Duration
}

// berthPull starts an agent with an empty layer store and times one
// image.pull of ref through its command inbox.
func berthPull(ctx context.Context, ref string) (pullRun, error) {
	dir, err := os.MkdirTemp("", "berth-bench-image-")
	if err != nil {
		return pullRun{}, err
	}
	defer os.RemoveAll(dir)
	store, err := dirlayer.New(filepath.Join(dir, "layers"))
	if err != nil {
		return pullRun{}, err
	}
	host := winsim.New()
	defer host.Close()
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	a, err := agent.Start(ctx, agent.Options{
		Node: benchNode, DataDir: dir, Host: "winsim", Compute: host.Compute(),
		Images: registry.New(registry.Options{Transport: tr, TempDir: dir, Keychain: authn.NewMultiKeychain()}),
		Layers: store, Platform: imagedriver.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2227"},
		Logger: zerolog.New(os.Stderr).Level(zerolog.WarnLevel),
	})
	if err != nil {
		return pullRun{}, err
	}
	defer stopAgent(a)
	nc, err := a.Server.Connect()
	if err != nil {
		return pullRun{}, err
	}
	defer nc.Close()
	client, err := control.NewClient(nc, benchNode, control.WithTimeout(10*time.Minute))
	if err != nil {
		return pullRun{}, err
	}
	cpu0, cpuOK := processCPU()
	start := time.Now()
	res, err := client.Pull(ctx, ref, events.PullAlways, nil)
	run := pullRun{wall: time.Since(start)}
	if cpu1, _ := processCPU(); cpuOK {
		run.cpu = cpu1 - cpu0
	}
	if err == nil && !res.Pulled {
		err = errors.New("the image was not fetched")
	}
	return run, err
}

// cranePull times crane pulling ref into a tarball.
func cranePull(ctx context.Context, crane, ref string) (pullRun, error) {
	dir, err := os.MkdirTemp("", "berth-bench-crane-")
	if err != nil {
		return pullRun{}, err
	}
	defer os.RemoveAll(dir)
	cmd := exec.CommandContext(ctx, crane, "pull", "--insecure", ref, filepath.Join(dir, "image.tar"))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	cpu0, cpuOK := processCPU()
	start := time.Now()
	err = cmd.Run()
	run := pullRun{wall: time.Since(start)}
	if err != nil {
		return pullRun{}, fmt.Errorf("%w: %s", err, stderr.Bytes())
	}
	if cpu1, _ := processCPU(); cpuOK {
		run.cpu = cpu1 - cpu0 + cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	return run, nil
}
