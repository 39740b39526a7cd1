package registry_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"maps"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/compression"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/static"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/google/go-containerregistry/pkg/v1/types"
	"go.uber.org/goleak"

	"github.com/berthhq/berth/imagedriver"
	"github.com/berthhq/berth/imagedriver/dirlayer"
	"github.com/berthhq/berth/imagedriver/imagedrivertest"
	"github.com/berthhq/berth/imagedriver/registry"
	"github.com/berthhq/berth/imagedriver/registry/registrytest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testRegistry is a registrytest registry that can also hold blob GETs
// back, counts how many are in flight, and can answer every manifest request
// with one status.
type testRegistry struct {
	*registrytest.Registry

	mu          sync.Mutex
	inFlight    int // blob GETs being served
	maxInFlight int
	counted     map[string]int // blob GETs by digest at the last resetCounts
	// manifestStatus, when set, is the answer to every manifest request.
	manifestStatus int
	// gate, when set, holds the blob GETs of gateOnly until gateAt of them
	// are in flight at once.
	gate     chan struct{}
	gateAt   int
	gateOnly map[string]bool // the digests the gate holds
	// stallAfter holds blob GETs by digest: the registry sends that many
	// bytes of the blob, then nothing more until the request ends.
	stallAfter map[string]int
}

func newTestRegistry(t testing.TB) *testRegistry {
	r := &testRegistry{}
	r.Registry = registrytest.NewWrapped(r.wrap)
	t.Cleanup(r.Close)
	return r
}

// wrap serves storage with the testRegistry's own knobs.
func (r *testRegistry) wrap(storage http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		r.mu.Lock()
		gate, status, stallAfter := r.gate, r.manifestStatus, r.stallAfter
		r.mu.Unlock()
		if status != 0 && strings.Contains(req.URL.Path, "/manifests/") {
			http.Error(w, http.StatusText(status), status)
			return
		}
		i := strings.LastIndex(req.URL.Path, "/blobs/")
		if req.Method != http.MethodGet || i < 0 {
			storage.ServeHTTP(w, req)
			return
		}
		digest := req.URL.Path[i+len("/blobs/"):]
		r.mu.Lock()
		r.inFlight++
		r.maxInFlight = max(r.maxInFlight, r.inFlight)
		gated := r.gate != nil && r.gateOnly[digest]
		if gated && r.inFlight >= r.gateAt {
			close(r.gate)
			r.gate = nil
		}
		r.mu.Unlock()
		defer func() {
			r.mu.Lock()
			r.inFlight--
			r.mu.Unlock()
		}()
		if gated {
			select {
			case <-gate:
			case <-req.Context().Done():
				return
			}
		}
		if n, ok := stallAfter[digest]; ok {
			rec := httptest.NewRecorder()
			storage.ServeHTTP(rec, req)
			maps.Copy(w.Header(), rec.Header())
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes()[:n])
			w.(http.Flusher).Flush()
			<-req.Context().Done()
			return
		}
		storage.ServeHTTP(w, req)
	})
}

func (r *testRegistry) set(f func(r *testRegistry)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

// gets returns how many times blob digest was requested since the last
// resetCounts.
func (r *testRegistry) gets(digest string) int {
	n := r.BlobGets()[digest]
	r.mu.Lock()
	defer r.mu.Unlock()
	return n - r.counted[digest]
}

func (r *testRegistry) resetCounts() {
	counted := r.BlobGets()
	r.mu.Lock()
	defer r.mu.Unlock()
	r.counted = counted
	r.maxInFlight = 0
}

// push stores img (a v1.Image or v1.ImageIndex) under repo:tag and returns
// the reference.
func (r *testRegistry) push(t testing.TB, repoTag string, img any) string {
	t.Helper()
	ref, err := r.Push(repoTag, img)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// newTransport returns a transport the test owns (so that goleak sees its
// connections closed). Requests for host foreign.test go to foreignAddr.
func newTransport(t testing.TB, foreignAddr string) *http.Transport {
	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		if foreignAddr != "" && strings.HasPrefix(addr, "foreign.test:") {
			addr = foreignAddr
		}
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}
	t.Cleanup(tr.CloseIdleConnections)
	return tr
}

func newPuller(t *testing.T, opts registry.Options) *registry.Puller {
	if opts.Transport == nil {
		opts.Transport = newTransport(t, "")
	}
	if opts.TempDir == "" {
		opts.TempDir = t.TempDir()
	}
	if opts.Retry == nil {
		opts.Retry = &remote.Backoff{Duration: time.Millisecond, Factor: 1, Steps: 1}
	}
	if opts.Keychain == nil {
		opts.Keychain = authn.NewMultiKeychain() // nothing from this machine's Docker config
	}
	return registry.New(opts)
}

func newStore(t *testing.T) *dirlayer.Store {
	s, err := dirlayer.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// gzipLayer, zstdLayer and plainLayer make a Windows layer holding files,
// compressed or not.
func gzipLayer(t testing.TB, files map[string]string) v1.Layer {
	return compressedLayer(t, files, compression.GZip)
}

func zstdLayer(t testing.TB, files map[string]string) v1.Layer {
	return compressedLayer(t, files, compression.ZStd)
}

func compressedLayer(t testing.TB, files map[string]string, c compression.Compression, opts ...tarball.LayerOption) v1.Layer {
	t.Helper()
	b, _ := imagedrivertest.WindowsLayer(t, files)
	l, err := tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		append(opts, tarball.WithCompression(c))...)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func plainLayer(t testing.TB, entries ...imagedrivertest.Entry) v1.Layer {
	t.Helper()
	b, _ := imagedrivertest.Tar(t, entries...)
	return static.NewLayer(b, types.OCIUncompressedLayer)
}

// winImage builds a Windows image of build osVersion over layers (base
// first), each added as given or as addenda.
func winImage(t testing.TB, osVersion string, layers ...any) v1.Image {
	t.Helper()
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: "windows", Architecture: "amd64", OSVersion: osVersion,
		Config: v1.Config{Entrypoint: []string{"cmd", "/c"}, Cmd: []string{"echo hi"}, Env: []string{"BUILD=" + osVersion},
			WorkingDir: `C:\app`, User: "ContainerUser", Labels: map[string]string{"build": osVersion}},
		RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		add, ok := l.(mutate.Addendum)
		if !ok {
			add = mutate.Addendum{Layer: l.(v1.Layer)}
		}
		if img, err = mutate.Append(img, add); err != nil {
			t.Fatal(err)
		}
	}
	return img
}

func digestOf(t testing.TB, l interface{ Digest() (v1.Hash, error) }) string {
	t.Helper()
	d, err := l.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

func diffIDOf(t testing.TB, l v1.Layer) string {
	t.Helper()
	d, err := l.DiffID()
	if err != nil {
		t.Fatal(err)
	}
	return d.String()
}

var host2022 = imagedriver.Platform{OS: "windows", Architecture: "amd64", OSVersion: "10.0.20348.2227"}

// unsafeEntry is a layer entry that climbs out of its layer.
var unsafeEntry = imagedrivertest.Entry{Name: "Files/../../evil.txt", Body: "x"}

// dirEntry is a folder entry.
func dirEntry(name string) imagedrivertest.Entry {
	return imagedrivertest.Entry{Name: name, Type: tar.TypeDir}
}
