// Package registrytest serves images from a real go-containerregistry
// registry on loopback, for the tests and benchmarks of the packages that
// pull: it counts blob requests, can require basic auth, and builds
// Windows-shaped images (os windows, os.version set, layers holding Files/
// and Hives/).
package registrytest

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"log"
	"maps"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	ggcrregistry "github.com/google/go-containerregistry/pkg/registry"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// Registry is a registry on loopback. Close it when done.
type Registry struct {
	srv   *httptest.Server
	inner http.Handler

	mu         sync.Mutex
	blobGets   map[string]int // by digest
	user, pass string
	broken     map[string]Fault // by digest
}

// Fault is how the registry misbehaves on a blob.
type Fault int

const (
	// BreakOff sends half the blob, then drops the connection.
	BreakOff Fault = iota + 1
	// Corrupt sends the whole blob with one byte changed.
	Corrupt
)

// Break makes the registry serve blob digest with fault f, from now on; a
// fault of 0 serves it as it is again.
func (r *Registry) Break(digest string, f Fault) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.broken == nil {
		r.broken = map[string]Fault{}
	}
	r.broken[digest] = f
}

// New starts a registry.
func New() *Registry { return NewWrapped(nil) }

// NewWrapped starts a registry that serves what passes its auth check, its
// blob counts and its faults with wrap(storage), storage being
// go-containerregistry's registry: for tests that need more misbehaviour.
// A nil wrap serves with storage itself.
func NewWrapped(wrap func(storage http.Handler) http.Handler) *Registry {
	// go-containerregistry's registry logs every request to stderr unless
	// handed a logger; this one discards.
	var inner http.Handler = ggcrregistry.New(ggcrregistry.Logger(log.New(io.Discard, "", 0)))
	if wrap != nil {
		inner = wrap(inner)
	}
	r := &Registry{blobGets: map[string]int{}, inner: inner}
	r.srv = httptest.NewServer(r)
	return r
}

// Close stops the registry and closes its connections.
func (r *Registry) Close() { r.srv.Close() }

// Host is the registry's "127.0.0.1:port", the start of its references.
func (r *Registry) Host() string { return strings.TrimPrefix(r.srv.URL, "http://") }

// RequireAuth makes every request need basic auth with user and pass.
func (r *Registry) RequireAuth(user, pass string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.user, r.pass = user, pass
}

// BlobGets returns how many times each blob was requested, by digest.
func (r *Registry) BlobGets() map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return maps.Clone(r.blobGets)
}

func (r *Registry) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	r.mu.Lock()
	user, pass := r.user, r.pass
	r.mu.Unlock()
	if user != "" {
		if u, p, ok := req.BasicAuth(); !ok || u != user || p != pass {
			w.Header().Set("WWW-Authenticate", `Basic realm="registrytest"`)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusUnauthorized)
			io.WriteString(w, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`)
			return
		}
	}
	i := strings.LastIndex(req.URL.Path, "/blobs/")
	if req.Method != http.MethodGet || i < 0 {
		r.inner.ServeHTTP(w, req)
		return
	}
	digest := req.URL.Path[i+len("/blobs/"):]
	r.mu.Lock()
	r.blobGets[digest]++
	fault := r.broken[digest]
	r.mu.Unlock()
	if fault == 0 {
		r.inner.ServeHTTP(w, req)
		return
	}
	rec := httptest.NewRecorder()
	r.inner.ServeHTTP(rec, req)
	body := bytes.Clone(rec.Body.Bytes())
	maps.Copy(w.Header(), rec.Header())
	w.WriteHeader(rec.Code)
	if fault == Corrupt {
		body[len(body)/2] ^= 0xff
		w.Write(body)
		return
	}
	w.Write(body[:len(body)/2])
	w.(http.Flusher).Flush()
	panic(http.ErrAbortHandler) // the connection drops mid-body
}

// TarLayer returns a gzip-compressed layer of the tar archive b, whose
// entries it keeps as they are: for layers no builder would make, such as
// one with an entry that escapes it.
func TarLayer(b []byte) (v1.Layer, error) {
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil },
		tarball.WithCompressedCaching)
}

// Push stores img (a v1.Image or v1.ImageIndex) as repoTag ("app:1") and
// returns its full reference ("127.0.0.1:port/app:1").
func (r *Registry) Push(repoTag string, img any) (string, error) {
	ref, err := name.ParseReference(r.Host() + "/" + repoTag)
	if err != nil {
		return "", err
	}
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	opts := []remote.Option{remote.WithTransport(tr)}
	r.mu.Lock()
	if r.user != "" {
		opts = append(opts, remote.WithAuth(&authn.Basic{Username: r.user, Password: r.pass}))
	}
	r.mu.Unlock()
	switch v := img.(type) {
	case v1.Image:
		err = remote.Write(ref, v, opts...)
	case v1.ImageIndex:
		err = remote.WriteIndex(ref, v, opts...)
	default:
		err = fmt.Errorf("push %T: not an image or an index", img)
	}
	if err != nil {
		return "", fmt.Errorf("push %s: %w", ref, err)
	}
	return ref.String(), nil
}

// Layer returns a gzip-compressed Windows layer holding files under
// Files/ (names relative to Files/, slashes) and the registry hives a base
// layer has under Hives/.
func Layer(files map[string][]byte) (v1.Layer, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	add := func(name string, body []byte) error {
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Format: tar.FormatPAX}); err != nil {
			return err
		}
		_, err := tw.Write(body)
		return err
	}
	for _, d := range []string{"Files/", "Hives/"} {
		if err := tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755, Format: tar.FormatPAX}); err != nil {
			return nil, err
		}
	}
	for _, h := range []string{"DefaultUser", "Sam", "Security", "Software", "System"} {
		if err := add("Hives/"+h+"_Delta", []byte("regf"+h+"_Delta")); err != nil {
			return nil, err
		}
	}
	for _, n := range slices.Sorted(maps.Keys(files)) {
		if err := add("Files/"+n, files[n]); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	b := buf.Bytes()
	return tarball.LayerFromOpener(func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil })
}

// Image builds a Windows image of build osVersion ("10.0.20348.2227") with
// configuration cfg over layers, base first.
func Image(osVersion string, cfg v1.Config, layers ...v1.Layer) (v1.Image, error) {
	img, err := mutate.ConfigFile(empty.Image, &v1.ConfigFile{
		OS: "windows", Architecture: "amd64", OSVersion: osVersion, Config: cfg, RootFS: v1.RootFS{Type: "layers"},
	})
	if err != nil {
		return nil, err
	}
	return mutate.AppendLayers(img, layers...)
}
