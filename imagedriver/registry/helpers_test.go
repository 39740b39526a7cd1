package registry_test

import (
	"archive/tar"
	"bytes"
	"context"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/compression"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
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
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// testRegistry is a go-containerregistry registry on loopback, wrapped to
// count blob requests, require basic auth, and misbehave on chosen blobs.
type testRegistry struct {
	srv   *httptest.Server
	inner http.Handler

	mu          sync.Mutex
	blobGets    map[string]int // by digest
	inFlight    int            // blob GETs being served
	maxInFlight int
	user, pass  string // basic auth required when user is set
	breakBlob   string // digest whose body breaks off halfway
	corruptBlob string // digest served with one byte changed
	// manifestStatus, when set, is the answer to every manifest request.
	manifestStatus int
	// gate, when set, holds the blob GETs of gateOnly until gateAt of them
	// are in flight at once.
	gate     chan struct{}
	gateAt   int
	gateOnly map[string]bool // the digests the gate holds
}

func newTestRegistry(t testing.TB) *testRegistry {
	r := &testRegistry{blobGets: map[string]int{},
		// go-containerregistry's registry logs every request to stderr
		// unless handed a logger; this one discards.
		inner: ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))}
	r.srv = httptest.NewServer(r)
	t.Cleanup(r.srv.Close)
	return r
}

// host is the registry's "127.0.0.1:port".
func (r *testRegistry) host() string { return strings.TrimPrefix(r.srv.URL, "http://") }

func (r *testRegistry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	user, pass, breakBlob, corrupt, gate, status := r.user, r.pass, r.breakBlob, r.corruptBlob, r.gate, r.manifestStatus
	r.mu.Unlock()
	if user != "" {
		if u, p, ok := req.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="berth-test"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
	}
	if status != 0 && strings.Contains(req.URL.Path, "/manifests/") {
		http.Error(w, http.StatusText(status), status)
		return
	}
	i := strings.LastIndex(req.URL.Path, "/blobs/")
	if req.Method != http.MethodGet || i < 0 {
		r.inner.ServeHTTP(w, req)
		return
	}
	digest := req.URL.Path[i+len("/blobs/"):]
	r.mu.Lock()
	r.blobGets[digest]++
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
	if digest != breakBlob && digest != corrupt {
		r.inner.ServeHTTP(w, req)
		return
	}
	rec := httptest.NewRecorder()
	r.inner.ServeHTTP(rec, req)
	body := rec.Body.Bytes()
	for k, v := range rec.Header() {
		w.Header()[k] = v
	}
	w.WriteHeader(rec.Code)
	if digest == corrupt {
		body = bytes.Clone(body)
		body[len(body)/2] ^= 0xff
		w.Write(body)
		return
	}
	w.Write(body[:len(body)/2])
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler) // the connection drops mid-body
}

func (r *testRegistry) set(f func(r *testRegistry)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *testRegistry) gets(digest string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.blobGets[digest]
}

func (r *testRegistry) resetCounts() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.blobGets = map[string]int{}
	r.maxInFlight = 0
}

// push stores img (a v1.Image or v1.ImageIndex) under repo:tag and returns
// the reference.
func (r *testRegistry) push(t testing.TB, repoTag string, img any) string {
	t.Helper()
	ref, err := name.ParseReference(r.host() + "/" + repoTag)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	opts := []remote.Option{remote.WithTransport(newTransport(t, ""))}
	if r.user != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.user, Password: r.pass}))
	}
	r.mu.Unlock()
	switch v := img.(type) {
	case v1.Image:
		err = remote.Write(ref, v, opts...)
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, v, opts...)
	}
	if err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	return ref.String()
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
